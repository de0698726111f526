/*  =========================================================================
    client - requests to a REP endpoint, several outstanding, on one DEALER
             socket, with Lazy Pirate retries

    Sources and workers both send requests that the broker answers with one
    record (A or E), and both want several requests on the way at once, so
    that the round trip stops being the limit. A REQ socket allows one
    outstanding request; several REQ sockets cost a poll item each, and
    zmq_poll pays two system calls per socket item per call. One DEALER
    socket carries them all.

    A DEALER can talk to a REP socket if it sends what REQ would: an empty
    delimiter frame, then the body. REP returns every frame up to and
    including the delimiter with its reply, so each request goes out as
    [tag][empty][body] and comes back as [tag][empty][reply], where tag is
    8 bytes naming the slot and the send. The broker sees only the body and
    needs nothing new: to it, this is a REQ peer.

    Slots: each request lives in a slot, with its bytes, until its reply
    arrives, so that a resend is the same request. If a reply is overdue,
    the connection is taken for broken (Lazy Pirate): the socket is
    replaced and every outstanding request is sent again on the new one.
    The caller's protocol must make a resend harmless; PlayØMQ's does, with
    request ids (sources) and dispatch ids (workers).
    =========================================================================
*/
#ifndef PZ_CLIENT_H_INCLUDED
#define PZ_CLIENT_H_INCLUDED

#include "record.h"
#include "sock.h"

#include <stdint.h>

#define PZ_CLIENT_SLOTS_MAX     1024    //  requests outstanding, at most

typedef struct _pz_client_t pz_client_t;

//  Creates a client of `slots` slots (1 to PZ_CLIENT_SLOTS_MAX) connected to
//  endpoint. name prefixes its log lines ("source"); a reply overdue by
//  timeout_ms triggers a resend, at most `retries` times per request.
//  Returns NULL after logging if the endpoint is bad. Caller owns return
//  value.
pz_client_t *
    pz_client_new (const char *name, const char *endpoint, int slots,
                   int64_t timeout_ms, int64_t retries, const pz_sockopts_t *opts);

//  Destroys the client; outstanding requests are dropped. NULL-safe.
void
    pz_client_destroy (pz_client_t **self_p);

//  Returns the index of a slot with no request outstanding, or -1 if every
//  slot is busy.
int
    pz_client_free_slot (pz_client_t *self);

//  Returns the request buffer of slot, PZ_MESSAGE_MAX bytes (or as set by
//  pz_client_set_request_max), owned by the client. Fill it, then
//  pz_client_send; it keeps its bytes until reused.
uint8_t *
    pz_client_request (pz_client_t *self, int slot);

//  Makes every slot's request buffer request_max bytes (PZ_RECORD_SIZE to
//  PZ_WIRE_MAX; default PZ_MESSAGE_MAX), for requests larger than a
//  message of 4096 records (a worker's range reports). Call while no
//  request is outstanding; earlier buffer contents are lost.
void
    pz_client_set_request_max (pz_client_t *self, size_t request_max);

//  Sends the first size bytes of slot's buffer as a request, due back
//  within the timeout. The slot is busy until its reply is received. If
//  the socket has no room for it now (more requests than its queue holds),
//  pz_client_expire tries again a millisecond later, until the timeout.
void
    pz_client_send (pz_client_t *self, int slot, size_t size, int64_t now_ms);

//  Reads one reply, waiting up to timeout_ms for it (0: only if one is
//  already waiting). Returns the slot it answers (now free) and copies the
//  reply body into reply (*reply_size: its size, or -1 if it was larger
//  than PZ_RECORD_SIZE); returns -1 if none came (or on a signal). Replies
//  that fit no outstanding request are dropped (counted as stray, logged
//  if malformed).
int
    pz_client_receive (pz_client_t *self, uint8_t *reply, int *reply_size,
                       int64_t timeout_ms);

//  If a reply is overdue at now_ms, replaces the socket and sends every
//  outstanding request again (logged, naming the endpoint). Returns 0, or
//  -1 if the overdue request has been sent 1 + retries times already.
int
    pz_client_expire (pz_client_t *self, int64_t now_ms);

//  Names this client to the broker: its socket is opened again with
//  routing_id (1 to 255 bytes) as ZMQ_ROUTING_ID, which the broker's
//  ROUTER sees (a worker's name in the broker's stats). Call before the
//  first send. Returns 0, or -1 after logging if the socket cannot be
//  opened.
int
    pz_client_set_routing_id (pz_client_t *self, const char *routing_id);

//  Before the first reply arrives, pz_client_expire keeps resending for
//  wait_ms (logging that it waits for the broker) instead of giving up
//  after the retries: a broker that is still starting is waited for.
//  Default 0.
void
    pz_client_set_wait (pz_client_t *self, int64_t wait_ms);

//  Takes back slot, whose reply (just received) said to send it again
//  later (E 9: the broker could not store it), and sends the same bytes
//  again at now_ms + delay_ms, from pz_client_expire. The slot is busy
//  meanwhile; the wait does not count as an attempt.
void
    pz_client_send_later (pz_client_t *self, int slot, int64_t now_ms,
                          int64_t delay_ms);

//  Returns when pz_client_expire next has work: the earliest deadline of an
//  outstanding request, or of a parked or unsent one's next try (never
//  later, at times a little earlier), or INT64_MAX if none is outstanding.
int64_t
    pz_client_deadline (pz_client_t *self);

//  Returns the number of requests outstanding.
int
    pz_client_busy (pz_client_t *self);

//  Returns the DEALER socket's handle, to poll for replies (ZMQ_POLLIN).
//  It changes when pz_client_expire replaces the socket.
void *
    pz_client_handle (pz_client_t *self);

//  Returns how many requests were sent again after a timeout.
uint64_t
    pz_client_resends (pz_client_t *self);

//  Returns how many replies were dropped: late, unknown or malformed.
uint64_t
    pz_client_strays (pz_client_t *self);

#endif
