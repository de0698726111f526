/*  =========================================================================
    request - a REQ-style request read from a ROUTER socket, and its answer

    A REP socket answers one request at a time: it cannot read the next one
    before it has replied. The broker wants to read many, write them to its
    journal with one sync, and only then reply to each, so its request
    endpoints are ROUTER sockets that follow REP's rule by hand: every frame
    up to and including the first empty one is the envelope (the routing id
    the ROUTER adds, then whatever the peer put before its delimiter: nothing
    for a REQ, a tag for a pz_client DEALER), the next frame is the body,
    and the reply goes back behind the same envelope. To a peer it is a REP.

    A value type, not an opaque class: the broker keeps a batch of them in an
    array on its hot path, and each only holds zmq_msg_t frames.
    =========================================================================
*/
#ifndef PZ_REQUEST_H_INCLUDED
#define PZ_REQUEST_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "record.h"

//  Envelope frames kept, at most: routing id, a client tag, the delimiter,
//  and room for a peer that routes through a proxy or two.
#define PZ_ENVELOPE_MAX     6

typedef struct {
    zmq_msg_t envelope [PZ_ENVELOPE_MAX];   //  routing id ... empty delimiter
    int frames;                 //  envelope frames held
    zmq_msg_t body;             //  the request itself
    pz_error_t error;           //  PZ_ERR_MULTIPART if frames followed the body
} pz_request_t;

//  Reads one request from ROUTER socket handle without waiting. Returns 1
//  with *self filled (close it with pz_request_reply or pz_request_close),
//  0 if nothing is waiting, or -1 if a message arrived that no REP would
//  answer (no delimiter, or an envelope over PZ_ENVELOPE_MAX frames): it
//  was read whole and dropped, and *self holds nothing.
int
    pz_request_recv (pz_request_t *self, void *handle);

//  Returns the body's bytes and size.
static inline const uint8_t *
pz_request_data (pz_request_t *self)
{
    return (const uint8_t *) zmq_msg_data (&self->body);
}
static inline size_t
pz_request_size (pz_request_t *self)
{
    return zmq_msg_size (&self->body);
}

//  Returns the routing id the ROUTER gave the peer (its ZMQ_ROUTING_ID if
//  it set one), in *size bytes. Owned by the request.
const uint8_t *
    pz_request_peer (pz_request_t *self, size_t *size);

//  Sends size bytes at data back to the peer behind the request's envelope,
//  without blocking (a peer gone or too far behind loses the reply, as with
//  REP), then closes the request. Returns 0, or -1 if the reply was dropped.
int
    pz_request_reply (pz_request_t *self, void *handle, const void *data, size_t size);

//  Replies one record (an A or E) and closes the request.
int
    pz_request_reply_record (pz_request_t *self, void *handle, char tag, int64_t value);

//  Moves the frames of source into dest (uninitialised); source is left
//  empty, to be closed or reused.
void
    pz_request_move (pz_request_t *dest, pz_request_t *source);

//  Closes the request's frames without replying.
void
    pz_request_close (pz_request_t *self);

#endif
