/*  =========================================================================
    worker - pulls leased dispatches, tests every number, reports verdicts

    A worker keeps `pipeline` report slots, each with its own REQ socket (a
    REQ socket allows one request outstanding): while reports wait for their
    acks, the next dispatch is pulled and tested into a free slot, so the
    multiplier is not idle during the round trips. Slots are allocated once,
    at their largest size, so the loop allocates nothing per number. The worker never asserts on what
    it pulls: a malformed dispatch is counted, logged and dropped (its lease
    brings it back to a worker that can do it, or it was never valid).
    =========================================================================
*/
#include "worker.h"
#include "prime.h"
#include "record.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

//  One report on its way: its bytes, its REQ socket, its deadline.
typedef struct {
    zsock_t *req;               //  this slot's REQ socket; replaced on timeout
    uint8_t data [PZ_MESSAGE_MAX];      //  I <dispatch-id> + one verdict per number
    size_t size;                //  bytes in use
    size_t count;               //  verdicts in it
    bool busy;                  //  sent, waiting for its ack
    int64_t deadline_ms;        //  resend if no ack by then
    int64_t attempts;           //  sends of this report so far
} s_slot_t;

struct _pz_worker_t {
    pz_worker_config_t config;  //  configuration (strings owned below)
    char *dispatch_endpoint;    //  owned copy of config.dispatch
    char *results_endpoint;     //  owned copy of config.results
    zsock_t *pull;              //  dispatches from the broker
    s_slot_t *slots;            //  config.pipeline report slots
    int64_t values [PZ_RECORDS_MAX];        //  numbers of the dispatch being tested
    uint8_t verdicts [PZ_RECORDS_MAX];      //  1 = prime, per value
    bool terminated;            //  $TERM came on the actor pipe
    pz_worker_stats_t stats;    //  counters
};

//  Fills config with the defaults.
void
pz_worker_config_init (pz_worker_config_t *config)
{
    assert (config);
    *config = (pz_worker_config_t) {
        .dispatch = "tcp://localhost:5557",
        .results = "tcp://localhost:5558",
        .timeout_ms = 2500,
        .retries = 3,
        .prefetch = 4,
        .pipeline = 4
    };
    pz_sockopts_init (&config->sockopts);
}

//  Opens a slot's REQ socket to the results endpoint. Returns 0 or -1.
static int
s_open_req (pz_worker_t *self, s_slot_t *slot)
{
    slot->req = pz_sock_open (ZMQ_REQ, "results REQ", self->results_endpoint,
                              false, &self->config.sockopts);
    return slot->req ? 0 : -1;
}

//  Creates a worker and connects its sockets; NULL on a bad endpoint.
pz_worker_t *
pz_worker_new (const pz_worker_config_t *config)
{
    assert (config && config->dispatch && config->results);
    assert (config->pipeline >= 1);
    pz_worker_t *self = (pz_worker_t *) zmalloc (sizeof (pz_worker_t));
    assert (self);
    self->config = *config;
    self->dispatch_endpoint = strdup (config->dispatch);
    self->results_endpoint = strdup (config->results);
    self->slots = (s_slot_t *) calloc ((size_t) config->pipeline, sizeof (s_slot_t));
    assert (self->slots);
    //  A small receive queue: work queued here is work no other worker can
    //  take until its lease runs out.
    pz_sockopts_t pull_opts = config->sockopts;
    pull_opts.rcvhwm = (int) config->prefetch;
    pull_opts.heartbeat_ivl_ms = 0;     //  its queue fills: see sock.h
    self->pull = pz_sock_open (ZMQ_PULL, "dispatch PULL", self->dispatch_endpoint,
                               false, &pull_opts);
    bool ok = self->pull != NULL;
    for (int64_t index = 0; ok && index < config->pipeline; index++)
        ok = s_open_req (self, &self->slots [index]) == 0;
    if (!ok)
        pz_worker_destroy (&self);
    return self;
}

//  Destroys the worker in reverse order of creation. NULL-safe.
void
pz_worker_destroy (pz_worker_t **self_p)
{
    assert (self_p);
    pz_worker_t *self = *self_p;
    if (!self)
        return;
    for (int64_t index = self->config.pipeline - 1; index >= 0; index--)
        zsock_destroy (&self->slots [index].req);
    free (self->slots);
    zsock_destroy (&self->pull);
    zstr_free (&self->results_endpoint);
    zstr_free (&self->dispatch_endpoint);
    free (self);
    *self_p = NULL;
}

//  Copies the worker's counters into stats.
void
pz_worker_stats (pz_worker_t *self, pz_worker_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}

//  Tests a dispatch and builds its report in slot. Returns false (after
//  logging) if the dispatch is malformed.
static bool
s_build_report (pz_worker_t *self, const uint8_t *data, size_t size, s_slot_t *slot)
{
    pz_error_t error = pz_record_check (data, size, "IN");
    if (error == PZ_OK && pz_record_tag (data) != PZ_TAG_ID)
        error = PZ_ERR_ID_PLACEMENT;
    if (error != PZ_OK) {
        zsys_warning ("worker: dropped a dispatch of %zu bytes: %s",
                      size, pz_error_str (error));
        self->stats.malformed++;
        return false;
    }
    size_t count = size / PZ_RECORD_SIZE - 1;
    for (size_t index = 0; index < count; index++)
        self->values [index] = pz_record_value (data + (index + 1) * PZ_RECORD_SIZE);
    pz_prime_check (self->values, self->verdicts, count);

    //  The id record goes back as it came.
    memcpy (slot->data, data, PZ_RECORD_SIZE);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (slot->data + (index + 1) * PZ_RECORD_SIZE,
                          self->verdicts [index] ? PZ_TAG_PRIME : PZ_TAG_COMPOSITE,
                          self->values [index]);
    slot->size = (count + 1) * PZ_RECORD_SIZE;
    slot->count = count;
    return true;
}

//  Handles a command on the actor pipe. Returns false on $TERM.
static bool
s_handle_pipe (pz_worker_t *self, zsock_t *pipe)
{
    char *command = zstr_recv (pipe);
    if (command && streq (command, "$TERM"))
        self->terminated = true;
    bool go_on = command && !self->terminated;
    if (command && streq (command, "STATS"))
        zsock_send (pipe, "b", &self->stats, sizeof self->stats);
    zstr_free (&command);
    return go_on;
}

//  Sends a slot's report (again). A resend goes on a new REQ socket (Lazy
//  Pirate): a REQ socket that lost its reply is stuck and only a new one can
//  send. Returns false if the retries are used up (logged, naming the
//  endpoint).
static bool
s_send_slot (pz_worker_t *self, s_slot_t *slot, int64_t now_ms)
{
    if (slot->attempts > 0) {
        zsys_warning ("worker: no ack from %s within %" PRId64 " ms (attempt %" PRId64
                      " of %" PRId64 ")", self->results_endpoint, self->config.timeout_ms,
                      slot->attempts, self->config.retries + 1);
        if (slot->attempts > self->config.retries) {
            zsys_error ("worker: giving up: no ack from results endpoint %s after %"
                        PRId64 " attempts", self->results_endpoint, slot->attempts);
            return false;
        }
        zsock_destroy (&slot->req);
        if (s_open_req (self, slot) != 0)
            return false;
        self->stats.resends++;
    }
    slot->attempts++;
    slot->busy = true;
    slot->deadline_ms = now_ms + self->config.timeout_ms;
    //  REQ queues the message even while reconnecting; a send that fails now
    //  is retried at the deadline like a lost ack.
    zmq_send (zsock_resolve (slot->req), slot->data, slot->size, ZMQ_DONTWAIT);
    return true;
}

//  Reads the broker's answer to a slot's report and frees the slot. An E
//  is logged and the report dropped: the broker decided, and resending
//  cannot change that.
static void
s_receive_ack (pz_worker_t *self, s_slot_t *slot)
{
    uint8_t reply [PZ_RECORD_SIZE];
    int size = zmq_recv (zsock_resolve (slot->req), reply, sizeof reply, 0);
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ACK) {
        self->stats.reports++;
        self->stats.numbers += slot->count;
    }
    else {
        self->stats.rejected++;
        if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR)
            zsys_warning ("worker: broker rejected report for dispatch %" PRId64
                          ": E %" PRId64 " (%s)", pz_record_value (slot->data),
                          pz_record_value (reply), pz_error_str (pz_record_value (reply)));
        else
            zsys_warning ("worker: unexpected reply of %d bytes from %s",
                          size, self->results_endpoint);
    }
    slot->busy = false;
}

//  Pulls one dispatch, if any is queued, tests it into the free slot, and
//  sends the report. Returns false if sending gave up.
static bool
s_pull_dispatch (pz_worker_t *self, zmq_msg_t *dispatch, s_slot_t *slot, int64_t now_ms)
{
    if (zmq_msg_recv (dispatch, zsock_resolve (self->pull), ZMQ_DONTWAIT) == -1)
        return true;
    if (zmq_msg_more (dispatch)) {
        zsys_warning ("worker: dropped a dispatch of more than one frame");
        self->stats.malformed++;
        pz_sock_drain_frames (zsock_resolve (self->pull));
        return true;
    }
    if (!s_build_report (self, (const uint8_t *) zmq_msg_data (dispatch),
                         zmq_msg_size (dispatch), slot))
        return true;
    slot->attempts = 0;
    return s_send_slot (self, slot, now_ms);
}

//  Works until interrupted or $TERM. Returns 0, or -1 after giving up.
int
pz_worker_run (pz_worker_t *self, zsock_t *pipe)
{
    assert (self);
    size_t slots = (size_t) self->config.pipeline;
    //  Items: the PULL, one REQ per slot, the pipe.
    zmq_pollitem_t *items = (zmq_pollitem_t *) calloc (slots + 2, sizeof (zmq_pollitem_t));
    assert (items);
    zmq_msg_t dispatch;
    zmq_msg_init (&dispatch);
    int result = 0;
    while (!zsys_interrupted && !self->terminated && result == 0) {
        int64_t now_ms = zclock_mono ();
        //  Wake every 100 ms at least, to notice a signal that raced us.
        int64_t wake_ms = now_ms + 100;
        s_slot_t *free_slot = NULL;
        for (size_t index = 0; index < slots; index++) {
            s_slot_t *slot = &self->slots [index];
            if (slot->busy && slot->deadline_ms <= now_ms
            && !s_send_slot (self, slot, now_ms))
                result = -1;
            if (!slot->busy && !free_slot)
                free_slot = slot;
            if (slot->busy && slot->deadline_ms < wake_ms)
                wake_ms = slot->deadline_ms;
            items [index + 1] = (zmq_pollitem_t) {
                zsock_resolve (slot->req), 0, slot->busy ? ZMQ_POLLIN : 0, 0
            };
        }
        //  Pull only into a free slot: the rest of the work waits in the
        //  broker's queues, where a lease covers it.
        items [0] = (zmq_pollitem_t) {
            zsock_resolve (self->pull), 0, free_slot ? ZMQ_POLLIN : 0, 0
        };
        items [slots + 1] = (zmq_pollitem_t) {
            pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0
        };
        if (result != 0)
            break;
        long timeout_ms = wake_ms > now_ms ? (long) (wake_ms - now_ms) : 0;
        if (zmq_poll (items, (int) slots + (pipe ? 2 : 1), timeout_ms) <= 0)
            continue;           //  timeout or EINTR: look at the clock and signals
        for (size_t index = 0; index < slots; index++)
            if (items [index + 1].revents & ZMQ_POLLIN)
                s_receive_ack (self, &self->slots [index]);
        if ((items [0].revents & ZMQ_POLLIN)
        && !s_pull_dispatch (self, &dispatch, free_slot, zclock_mono ()))
            result = -1;
        if (pipe && (items [slots + 1].revents & ZMQ_POLLIN))
            s_handle_pipe (self, pipe);
    }
    zmq_msg_close (&dispatch);
    free (items);
    return result;
}

//  zactor body: runs the worker it is given, owning it.
void
pz_worker_actor (zsock_t *pipe, void *args)
{
    pz_worker_t *self = (pz_worker_t *) args;
    zsock_signal (pipe, 0);
    if (pz_worker_run (self, pipe) == -1)
        zstr_send (pipe, "FAILED");
    //  Stopped by a signal or gave up: still answer STATS until $TERM.
    while (!self->terminated)
        s_handle_pipe (self, pipe);
    pz_worker_destroy (&self);
}
