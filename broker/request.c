/*  =========================================================================
    request - a REQ-style request read from a ROUTER socket, and its answer
    =========================================================================
*/
#include "request.h"

#include <assert.h>

#include "sock.h"

//  Reads one request without waiting. Returns 1, 0 (none) or -1 (dropped).
int
pz_request_recv (pz_request_t *self, void *handle)
{
    assert (self && handle);
    self->frames = 0;
    self->error = PZ_OK;
    zmq_msg_init (&self->body);
    //  The envelope: frames up to and including the first empty one.
    while (true) {
        zmq_msg_t *frame = self->frames < PZ_ENVELOPE_MAX ?
                           &self->envelope [self->frames] : &self->body;
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, handle, ZMQ_DONTWAIT) == -1) {
            //  Only the first frame can be missing: the rest of a message
            //  arrives with it.
            zmq_msg_close (frame);
            pz_request_close (self);
            return 0;
        }
        bool more = zmq_msg_more (frame);
        if (frame == &self->body || !more) {
            //  Envelope too long, or the message ended before a delimiter
            //  and a body: a REP would drop it, and so do we.
            if (frame != &self->body)
                self->frames++;
            if (more)
                pz_sock_drain_frames (handle);
            pz_request_close (self);
            return -1;
        }
        self->frames++;
        if (zmq_msg_size (frame) == 0 && self->frames > 1)
            break;              //  the delimiter (frame 0 is the routing id)
    }
    if (zmq_msg_recv (&self->body, handle, ZMQ_DONTWAIT) == -1) {
        pz_request_close (self);
        return -1;
    }
    if (zmq_msg_more (&self->body)) {
        pz_sock_drain_frames (handle);
        self->error = PZ_ERR_MULTIPART;
    }
    return 1;
}

//  Returns the peer's routing id.
const uint8_t *
pz_request_peer (pz_request_t *self, size_t *size)
{
    assert (self && size && self->frames > 0);
    *size = zmq_msg_size (&self->envelope [0]);
    return (const uint8_t *) zmq_msg_data (&self->envelope [0]);
}

//  Sends the reply behind the envelope and closes the request.
int
pz_request_reply (pz_request_t *self, void *handle, const void *data, size_t size)
{
    assert (self && handle);
    int rc = 0;
    for (int index = 0; index < self->frames && rc == 0; index++)
        if (zmq_msg_send (&self->envelope [index], handle, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
            rc = -1;
    //  A ROUTER takes the frames of a message whole or not at all, so once
    //  the first frame went, the rest go.
    if (rc == 0 && zmq_send (handle, data, size, ZMQ_DONTWAIT) == -1)
        rc = -1;
    pz_request_close (self);
    return rc;
}

//  Replies one record and closes the request.
int
pz_request_reply_record (pz_request_t *self, void *handle, char tag, int64_t value)
{
    uint8_t record [PZ_RECORD_SIZE];
    pz_record_encode (record, tag, value);
    return pz_request_reply (self, handle, record, sizeof record);
}

//  Moves the frames of source into dest.
void
pz_request_move (pz_request_t *dest, pz_request_t *source)
{
    assert (dest && source);
    dest->frames = source->frames;
    dest->error = source->error;
    for (int index = 0; index < source->frames; index++) {
        zmq_msg_init (&dest->envelope [index]);
        zmq_msg_move (&dest->envelope [index], &source->envelope [index]);
    }
    zmq_msg_init (&dest->body);
    zmq_msg_move (&dest->body, &source->body);
}

//  Closes every frame still held. Safe to call twice.
void
pz_request_close (pz_request_t *self)
{
    assert (self);
    //  zmq_msg_send empties the frames it sends; closing an empty one is
    //  harmless.
    for (int index = 0; index < self->frames; index++)
        zmq_msg_close (&self->envelope [index]);
    self->frames = 0;
    zmq_msg_close (&self->body);
    zmq_msg_init (&self->body);
}
