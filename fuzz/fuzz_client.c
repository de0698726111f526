/*  =========================================================================
    fuzz_client - the client's reply handling (proto/client.c)

    pz_client_receive is what sources and workers read the broker's
    replies with: frames [tag][empty][body] on a DEALER, matched to an
    outstanding request by the tag. Here the broker is an inproc ROUTER
    this target drives (no network), answering with whatever frames the
    input says. Events, one byte each, then arguments:

      'S' len bytes         send a request in a free slot
      'M' n frames...       the ROUTER sends one message of n frames to the
                            client; each frame is 0 slot (the tag of that
                            slot's latest send), 1 (empty), 2 len bytes
                            (raw), 3 slot byte (a tag with one byte changed)
      'E' ms                time goes on ms * 16; pz_client_expire

    After each event every reply waiting is received, as the source does
    (an E 9 parks the slot with pz_client_send_later). Checked: a reply is
    handed to a slot only if it answers that slot's latest send; the
    reply's size is reported as at most 9 (or -1); pz_client_busy counts
    exactly the slots with a request outstanding.
    =========================================================================
*/
#include "fuzz.h"
#include "client.h"

#define S_SLOTS         4

static void *s_router;              //  the broker's side, new for each input
static char s_endpoint [64];        //  where it is bound
static unsigned s_inputs;           //  inputs run, for its name

//  What the target knows of each slot.
typedef struct {
    bool busy;                  //  outstanding (sent or parked)
    bool seen;                  //  a send of it reached the ROUTER
    bool parked;                //  answered E 9, waiting to be sent again
    uint8_t tag [8];            //  the tag of its latest send seen
} s_slot_t;

static s_slot_t s_slots [S_SLOTS];
static uint8_t s_peer [256];        //  routing id of the client's latest socket
static size_t s_peer_size;

//  Closes the socket before czmq's exit handler ends the context.
static void
s_close (void)
{
    if (s_router)
        zmq_close (s_router);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    pz_fuzz_quiet ();
    atexit (s_close);
    return 0;
}

//  A new ROUTER on a new endpoint for each input, so that nothing the
//  last input's client sent can reach this one.
static void
s_router_new (void)
{
    s_close ();
    s_router = zmq_socket (zsys_init (), ZMQ_ROUTER);
    PZ_FUZZ_CHECK (s_router);
    int linger = 0;
    zmq_setsockopt (s_router, ZMQ_LINGER, &linger, sizeof linger);
    snprintf (s_endpoint, sizeof s_endpoint, "inproc://fuzz-client-%u", s_inputs++);
    PZ_FUZZ_CHECK (zmq_bind (s_router, s_endpoint) == 0);
}

//  Reads what reached the ROUTER: [peer][tag][empty][body] per request.
//  Notes each slot's latest tag and the latest peer.
static void
s_serve_requests (void)
{
    while (true) {
        zmq_msg_t frames [4];
        int count = 0;
        bool more = true;
        while (more) {
            zmq_msg_t frame;
            zmq_msg_init (&frame);
            if (zmq_msg_recv (&frame, s_router, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close (&frame);
                break;
            }
            more = zmq_msg_more (&frame);
            if (count < 4)
                frames [count++] = frame;
            else
                zmq_msg_close (&frame);
        }
        if (count == 0)
            return;
        PZ_FUZZ_CHECK (count == 4 && zmq_msg_size (&frames [1]) == 8
                       && zmq_msg_size (&frames [2]) == 0);
        s_peer_size = zmq_msg_size (&frames [0]);
        PZ_FUZZ_CHECK (s_peer_size <= sizeof s_peer);
        memcpy (s_peer, zmq_msg_data (&frames [0]), s_peer_size);
        uint8_t *tag = (uint8_t *) zmq_msg_data (&frames [1]);
        //  The slot index is the low 10 bits; below 256 here, the first byte
        //  (little-endian host).
        size_t slot = tag [0];
        PZ_FUZZ_CHECK (slot < S_SLOTS && s_slots [slot].busy);
        memcpy (s_slots [slot].tag, tag, 8);
        s_slots [slot].seen = true;
        s_slots [slot].parked = false;      //  sent again: no longer parked
        for (int index = 0; index < count; index++)
            zmq_msg_close (&frames [index]);
    }
}

//  Receives every reply waiting, as the source's loop does.
static void
s_take_replies (pz_client_t *client, int64_t now_ms)
{
    uint8_t reply [PZ_RECORD_SIZE];
    int reply_size;
    int slot;
    while ((slot = pz_client_receive (client, reply, &reply_size, 0)) != -1) {
        PZ_FUZZ_CHECK (slot >= 0 && slot < S_SLOTS && s_slots [slot].busy);
        //  A parked request has no send outstanding: nothing answers it.
        PZ_FUZZ_CHECK (!s_slots [slot].parked);
        PZ_FUZZ_CHECK (reply_size >= -1 && reply_size <= PZ_RECORD_SIZE);
        s_slots [slot].busy = false;
        if (reply_size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR
        &&  pz_record_value (reply) == PZ_ERR_UNAVAILABLE) {
            pz_client_send_later (client, slot, now_ms, 500);
            s_slots [slot].busy = true;
            s_slots [slot].parked = true;
        }
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    pz_fuzz_input_t input = { data, size, 0 };
    memset (s_slots, 0, sizeof s_slots);
    s_peer_size = 0;
    s_router_new ();
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    opts.heartbeat_ivl_ms = 0;
    pz_client_t *client = pz_client_new ("fuzz", s_endpoint, S_SLOTS, 1000, 2, &opts);
    PZ_FUZZ_CHECK (client);
    int64_t now_ms = 1000000;

    for (int events = 0; events < 128 && pz_fuzz_more (&input); events++) {
        uint8_t event = pz_fuzz_byte (&input);
        if (event == 'S') {
            size_t length = pz_fuzz_length (&input, PZ_MESSAGE_MAX);
            size_t got;
            const uint8_t *bytes = pz_fuzz_bytes (&input, length, &got);
            int slot = pz_client_free_slot (client);
            if (slot >= 0) {
                uint8_t *request = pz_client_request (client, slot);
                memcpy (request, bytes, got);
                s_slots [slot].busy = true;
                pz_client_send (client, slot, got ? got : 1, now_ms);
            }
        }
        else
        if (event == 'M') {
            int frames = pz_fuzz_byte (&input) % 5;
            if (s_peer_size > 0
            &&  zmq_send (s_router, s_peer, s_peer_size, ZMQ_SNDMORE) != -1) {
                for (int index = 0; index < frames || index == 0; index++) {
                    uint8_t kind = pz_fuzz_byte (&input) % 4;
                    uint8_t frame [256];
                    size_t frame_size = 0;
                    if (kind == 0 || kind == 3) {
                        s_slot_t *slot = &s_slots [pz_fuzz_byte (&input) % S_SLOTS];
                        memcpy (frame, slot->tag, 8);
                        frame_size = 8;
                        if (kind == 3)
                            frame [pz_fuzz_byte (&input) % 8] ^= 0x5A;
                    }
                    else
                    if (kind == 2) {
                        size_t got;
                        const uint8_t *bytes = pz_fuzz_bytes (&input, pz_fuzz_byte (&input), &got);
                        memcpy (frame, bytes, got);
                        frame_size = got;
                    }
                    bool last = index + 1 >= frames;
                    zmq_send (s_router, frame, frame_size, last ? 0 : ZMQ_SNDMORE);
                }
            }
        }
        else
        if (event == 'E') {
            now_ms += 16 * (int64_t) pz_fuzz_byte (&input);
            pz_client_expire (client, now_ms);
        }
        s_serve_requests ();
        s_take_replies (client, now_ms);
        int busy = 0;
        for (int slot = 0; slot < S_SLOTS; slot++)
            busy += s_slots [slot].busy;
        PZ_FUZZ_CHECK (pz_client_busy (client) == busy);
        PZ_FUZZ_CHECK (pz_client_deadline (client) > 0);
    }
    pz_client_destroy (&client);
    return 0;
}
