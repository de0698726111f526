/*  =========================================================================
    worker - pulls leased dispatches, tests every number, reports verdicts

    The loop keeps two reports: one sent and waiting for its ack, and the
    next, tested while that ack travels. The REQ socket still has one
    request outstanding, as REQ must, but the multiplier is not idle during
    the round trip. Buffers are allocated once, at their largest size, so
    the loop allocates nothing per number. The worker never asserts on what
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

//  A report: I <dispatch-id> + one verdict per number.
typedef struct {
    uint8_t data [PZ_MESSAGE_MAX];      //  the records
    size_t size;                //  bytes in use; 0 = empty
    size_t count;               //  verdicts in it
} s_report_t;

struct _pz_worker_t {
    pz_worker_config_t config;  //  configuration (strings owned below)
    char *dispatch_endpoint;    //  owned copy of config.dispatch
    char *results_endpoint;     //  owned copy of config.results
    zsock_t *pull;              //  dispatches from the broker
    zsock_t *req;               //  reports to the broker; replaced on timeout
    int64_t values [PZ_RECORDS_MAX];        //  numbers of the dispatch being tested
    uint8_t verdicts [PZ_RECORDS_MAX];      //  1 = prime, per value
    s_report_t reports [2];     //  one waiting for its ack, one being readied
    s_report_t *sent;           //  sent, not yet acknowledged; NULL if none
    s_report_t *ready;          //  tested, not yet sent; NULL if none
    int64_t ack_deadline_ms;    //  resend `sent` if no ack by then
    int64_t attempts;           //  sends of `sent` so far
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
        .prefetch = 4
    };
    pz_sockopts_init (&config->sockopts);
}

//  Opens the REQ socket to the results endpoint. Returns 0 or -1.
static int
s_open_req (pz_worker_t *self)
{
    self->req = pz_sock_open (ZMQ_REQ, "results REQ", self->results_endpoint,
                              false, &self->config.sockopts);
    return self->req ? 0 : -1;
}

//  Creates a worker and connects its sockets; NULL on a bad endpoint.
pz_worker_t *
pz_worker_new (const pz_worker_config_t *config)
{
    assert (config && config->dispatch && config->results);
    pz_worker_t *self = (pz_worker_t *) zmalloc (sizeof (pz_worker_t));
    assert (self);
    self->config = *config;
    self->dispatch_endpoint = strdup (config->dispatch);
    self->results_endpoint = strdup (config->results);
    //  A small receive queue: work queued here is work no other worker can
    //  take until its lease runs out.
    pz_sockopts_t pull_opts = config->sockopts;
    pull_opts.rcvhwm = (int) config->prefetch;
    pull_opts.heartbeat_ivl_ms = 0;     //  its queue fills: see sock.h
    self->pull = pz_sock_open (ZMQ_PULL, "dispatch PULL", self->dispatch_endpoint,
                               false, &pull_opts);
    if (!self->pull || s_open_req (self) != 0)
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
    zsock_destroy (&self->req);
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

//  Tests a dispatch and builds its report in report. Returns false (after
//  logging) if the dispatch is malformed.
static bool
s_build_report (pz_worker_t *self, const uint8_t *data, size_t size,
                s_report_t *report)
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
    memcpy (report->data, data, PZ_RECORD_SIZE);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (report->data + (index + 1) * PZ_RECORD_SIZE,
                          self->verdicts [index] ? PZ_TAG_PRIME : PZ_TAG_COMPOSITE,
                          self->values [index]);
    report->size = (count + 1) * PZ_RECORD_SIZE;
    report->count = count;
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

//  Sends the ready report and makes it the one waiting for an ack.
static void
s_send_ready (pz_worker_t *self, int64_t now_ms)
{
    self->sent = self->ready;
    self->ready = NULL;
    self->attempts = 1;
    self->ack_deadline_ms = now_ms + self->config.timeout_ms;
    //  REQ queues the message even while reconnecting; a send that fails now
    //  is retried at the deadline like a lost ack.
    zmq_send (zsock_resolve (self->req), self->sent->data, self->sent->size, ZMQ_DONTWAIT);
}

//  Resends the unacknowledged report on a new REQ socket (Lazy Pirate): a
//  REQ socket that lost its reply is stuck and only a new one can send.
//  Returns false if the retries are used up (logged, naming the endpoint).
static bool
s_resend (pz_worker_t *self, int64_t now_ms)
{
    zsys_warning ("worker: no ack from %s within %" PRId64 " ms (attempt %" PRId64
                  " of %" PRId64 ")", self->results_endpoint, self->config.timeout_ms,
                  self->attempts, self->config.retries + 1);
    if (self->attempts > self->config.retries) {
        zsys_error ("worker: giving up: no ack from results endpoint %s after %" PRId64
                    " attempts", self->results_endpoint, self->attempts);
        return false;
    }
    zsock_destroy (&self->req);
    if (s_open_req (self) != 0)
        return false;
    self->stats.resends++;
    self->attempts++;
    self->ack_deadline_ms = now_ms + self->config.timeout_ms;
    zmq_send (zsock_resolve (self->req), self->sent->data, self->sent->size, ZMQ_DONTWAIT);
    return true;
}

//  Reads the broker's answer to the sent report. An E is logged and the
//  report dropped: the broker decided, and resending cannot change that.
static void
s_receive_ack (pz_worker_t *self)
{
    uint8_t reply [PZ_RECORD_SIZE];
    int size = zmq_recv (zsock_resolve (self->req), reply, sizeof reply, 0);
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ACK) {
        self->stats.reports++;
        self->stats.numbers += self->sent->count;
    }
    else {
        self->stats.rejected++;
        if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR)
            zsys_warning ("worker: broker rejected report for dispatch %" PRId64
                          ": E %" PRId64 " (%s)", pz_record_value (self->sent->data),
                          pz_record_value (reply), pz_error_str (pz_record_value (reply)));
        else
            zsys_warning ("worker: unexpected reply of %d bytes from %s",
                          size, self->results_endpoint);
    }
    self->sent = NULL;
}

//  Pulls one dispatch, if any is queued, and tests it into a free report.
static void
s_pull_dispatch (pz_worker_t *self, zmq_msg_t *dispatch)
{
    if (zmq_msg_recv (dispatch, zsock_resolve (self->pull), ZMQ_DONTWAIT) == -1)
        return;
    if (zmq_msg_more (dispatch)) {
        zsys_warning ("worker: dropped a dispatch of more than one frame");
        self->stats.malformed++;
        pz_sock_drain_frames (zsock_resolve (self->pull));
        return;
    }
    s_report_t *free_report = self->sent == &self->reports [0] ? &self->reports [1]
                                                              : &self->reports [0];
    if (s_build_report (self, (const uint8_t *) zmq_msg_data (dispatch),
                        zmq_msg_size (dispatch), free_report))
        self->ready = free_report;
}

//  Works until interrupted or $TERM. Returns 0, or -1 after giving up.
int
pz_worker_run (pz_worker_t *self, zsock_t *pipe)
{
    assert (self);
    zmq_msg_t dispatch;
    zmq_msg_init (&dispatch);
    int result = 0;
    while (!zsys_interrupted && !self->terminated) {
        int64_t now_ms = zclock_mono ();
        if (self->ready && !self->sent)
            s_send_ready (self, now_ms);
        if (self->sent && now_ms >= self->ack_deadline_ms && !s_resend (self, now_ms)) {
            result = -1;
            break;
        }
        //  Pull only when a report buffer is free: at most one dispatch is
        //  tested ahead of the ack, the rest wait where a lease covers them.
        zmq_pollitem_t items [] = {
            { zsock_resolve (self->pull), 0, self->ready ? 0 : ZMQ_POLLIN, 0 },
            { zsock_resolve (self->req), 0, self->sent ? ZMQ_POLLIN : 0, 0 },
            { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 }
        };
        //  Wake every 100 ms at least, to notice a signal that raced us.
        long timeout_ms = 100;
        if (self->sent && self->ack_deadline_ms - now_ms < timeout_ms)
            timeout_ms = (long) (self->ack_deadline_ms - now_ms);
        if (zmq_poll (items, pipe ? 3 : 2, timeout_ms < 0 ? 0 : timeout_ms) <= 0)
            continue;           //  timeout or EINTR: look at the clock and signals
        if (items [1].revents & ZMQ_POLLIN)
            s_receive_ack (self);
        if (items [0].revents & ZMQ_POLLIN)
            s_pull_dispatch (self, &dispatch);
        if (items [2].revents & ZMQ_POLLIN)
            s_handle_pipe (self, pipe);
    }
    zmq_msg_close (&dispatch);
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
