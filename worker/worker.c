/*  =========================================================================
    worker - pulls leased dispatches, tests every number, reports verdicts

    Buffers for values, verdicts and the report are allocated once per
    worker, at their largest size, so the loop allocates nothing per number.
    The worker never asserts on what it pulls: a malformed dispatch is
    counted, logged and dropped (its lease brings it back to a worker that
    can do it, or it was never valid).
    =========================================================================
*/
#include "worker.h"
#include "prime.h"
#include "record.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

struct _pz_worker_t {
    pz_worker_config_t config;  //  configuration (strings owned below)
    char *dispatch_endpoint;    //  owned copy of config.dispatch
    char *results_endpoint;     //  owned copy of config.results
    zsock_t *pull;              //  dispatches from the broker
    zsock_t *req;               //  reports to the broker; replaced on timeout
    int64_t values [PZ_RECORDS_MAX];        //  numbers of the current dispatch
    uint8_t verdicts [PZ_RECORDS_MAX];      //  1 = prime, per value
    uint8_t report [PZ_RECORD_SIZE * (PZ_RECORDS_MAX + 1)];    //  I + verdicts
    size_t report_size;         //  bytes of report in use
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

//  Tests a dispatch and builds the report in self->report. Returns the
//  number of values, or 0 (after logging) if the dispatch is malformed.
static size_t
s_build_report (pz_worker_t *self, const uint8_t *data, size_t size)
{
    pz_error_t error = pz_record_check (data, size, "IN");
    if (error == PZ_OK && pz_record_tag (data) != PZ_TAG_ID)
        error = PZ_ERR_ID_PLACEMENT;
    if (error != PZ_OK) {
        zsys_warning ("worker: dropped a dispatch of %zu bytes: %s",
                      size, pz_error_str (error));
        self->stats.malformed++;
        return 0;
    }
    size_t count = size / PZ_RECORD_SIZE - 1;
    for (size_t index = 0; index < count; index++)
        self->values [index] = pz_record_value (data + (index + 1) * PZ_RECORD_SIZE);
    pz_prime_check (self->values, self->verdicts, count);

    //  The id record goes back as it came.
    memcpy (self->report, data, PZ_RECORD_SIZE);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (self->report + (index + 1) * PZ_RECORD_SIZE,
                          self->verdicts [index] ? PZ_TAG_PRIME : PZ_TAG_COMPOSITE,
                          self->values [index]);
    self->report_size = (count + 1) * PZ_RECORD_SIZE;
    return count;
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

typedef enum { S_ACKED, S_STOP, S_GAVE_UP } s_outcome_t;

//  Sends the report in self->report and waits for the broker's answer,
//  Lazy Pirate style. Returns what happened.
static s_outcome_t
s_deliver_report (pz_worker_t *self, zsock_t *pipe, size_t count)
{
    for (int64_t attempt = 0; attempt <= self->config.retries; attempt++) {
        if (attempt > 0) {
            //  A REQ socket that lost its reply is stuck; only a new one
            //  can send again.
            self->stats.resends++;
            zsock_destroy (&self->req);
            if (s_open_req (self) != 0)
                return S_GAVE_UP;
        }
        zmq_send (zsock_resolve (self->req), self->report, self->report_size,
                  ZMQ_DONTWAIT);
        zmq_pollitem_t items [] = {
            { zsock_resolve (self->req), 0, ZMQ_POLLIN, 0 },
            { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 }
        };
        int64_t deadline_ms = zclock_mono () + self->config.timeout_ms;
        while (true) {
            if (zsys_interrupted)
                return S_STOP;
            int64_t left_ms = deadline_ms - zclock_mono ();
            if (left_ms <= 0)
                break;
            //  Wake every 100 ms at least, to notice a signal that raced us.
            if (zmq_poll (items, pipe ? 2 : 1, left_ms > 100 ? 100 : (long) left_ms) == -1)
                continue;       //  EINTR: zsys_interrupted is looked at above
            if ((items [1].revents & ZMQ_POLLIN) && !s_handle_pipe (self, pipe))
                return S_STOP;
            if (!(items [0].revents & ZMQ_POLLIN))
                continue;
            uint8_t reply [PZ_RECORD_SIZE];
            int size = zmq_recv (zsock_resolve (self->req), reply, sizeof reply, 0);
            if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ACK) {
                self->stats.reports++;
                self->stats.numbers += count;
                return S_ACKED;
            }
            self->stats.rejected++;
            if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR)
                zsys_warning ("worker: broker rejected report for dispatch %" PRId64
                              ": E %" PRId64 " (%s)", pz_record_value (self->report),
                              pz_record_value (reply), pz_error_str (pz_record_value (reply)));
            else
                zsys_warning ("worker: unexpected reply of %d bytes from %s",
                              size, self->results_endpoint);
            return S_ACKED;     //  answered: nothing to resend
        }
        zsys_warning ("worker: no ack from %s within %" PRId64 " ms (attempt %" PRId64
                      " of %" PRId64 ")", self->results_endpoint, self->config.timeout_ms,
                      attempt + 1, self->config.retries + 1);
    }
    zsys_error ("worker: giving up: no ack from results endpoint %s after %" PRId64
                " attempts", self->results_endpoint, self->config.retries + 1);
    return S_GAVE_UP;
}

//  Works until interrupted or $TERM. Returns 0, or -1 after giving up.
int
pz_worker_run (pz_worker_t *self, zsock_t *pipe)
{
    assert (self);
    zmq_pollitem_t items [] = {
        { zsock_resolve (self->pull), 0, ZMQ_POLLIN, 0 },
        { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 }
    };
    zmq_msg_t dispatch;
    zmq_msg_init (&dispatch);
    int result = 0;
    while (!zsys_interrupted) {
        if (zmq_poll (items, pipe ? 2 : 1, 100) <= 0)
            continue;           //  timeout or EINTR: look at zsys_interrupted
        if ((items [1].revents & ZMQ_POLLIN) && !s_handle_pipe (self, pipe))
            break;
        if (!(items [0].revents & ZMQ_POLLIN))
            continue;
        if (zmq_msg_recv (&dispatch, zsock_resolve (self->pull), ZMQ_DONTWAIT) == -1)
            continue;
        if (zmq_msg_more (&dispatch)) {
            zsys_warning ("worker: dropped a dispatch of more than one frame");
            self->stats.malformed++;
            pz_sock_drain_frames (zsock_resolve (self->pull));
            continue;
        }
        size_t count = s_build_report (self, (const uint8_t *) zmq_msg_data (&dispatch),
                                       zmq_msg_size (&dispatch));
        if (count == 0)
            continue;
        s_outcome_t outcome = s_deliver_report (self, pipe, count);
        if (outcome == S_STOP)
            break;
        if (outcome == S_GAVE_UP) {
            result = -1;
            break;
        }
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
