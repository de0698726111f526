/*  =========================================================================
    worker - pulls leased dispatches, tests every number, reports verdicts

    A report of numbers is the dispatch's I record and one verdict bit per
    number (V records); a report of a range piece lists its primes. A
    worker sends its reports through a pz_client (proto/client.h): up to
    `pipeline` reports outstanding on one DEALER socket. While reports wait
    for their acks, the next dispatch is pulled and tested into a free slot,
    so the multiplier is not idle during the round trips. Slots are
    allocated once, at their largest size, so the loop allocates nothing per
    number. The worker never asserts on what it pulls: a malformed dispatch
    is counted, logged and dropped (its lease brings it back to a worker
    that can do it, or it was never valid).
    =========================================================================
*/
#include "worker.h"
#include "client.h"
#include "prime.h"
#include "record.h"
#include "sieve.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

//  Primes in one range report, at most: I, R lo, R hi and the primes fill
//  at most the largest frame the broker reads (PZ_WIRE_MAX).
#define S_RANGE_PRIMES_MAX  (PZ_WIRE_MAX / PZ_RECORD_SIZE - 3)
//  Widest Q piece whose report (I, Q lo, Q hi, Q count and a Q per block)
//  fits one frame; its block counts go through range_primes.
#define S_COUNT_WIDTH_MAX   ((uint64_t) (S_RANGE_PRIMES_MAX - 1) * PZ_SIEVE_BLOCK)

struct _pz_worker_t {
    pz_worker_config_t config;  //  configuration (strings owned below)
    char *dispatch_endpoint;    //  owned copy of config.dispatch
    char *results_endpoint;     //  owned copy of config.results
    zsock_t *pull;              //  dispatches from the broker
    pz_client_t *client;        //  reports to the broker, config.pipeline slots
    size_t counts [PZ_CLIENT_SLOTS_MAX];    //  verdicts in each slot's report
    int64_t values [PZ_RECORDS_MAX];        //  numbers of the dispatch being tested
    uint8_t verdicts [PZ_RECORDS_MAX];      //  1 = prime, per value
    int64_t *range_primes;      //  primes of the piece being sieved,
                                //  S_RANGE_PRIMES_MAX of them
    pz_sieve_t *sieve;          //  this thread's sieve, kept between pieces
    bool terminated;            //  $TERM came on the actor pipe
    bool cut_off;               //  the broker's audit refused a report (E 11)
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
        //  Reports in flight must cover the broker's ack: 32 reports of
        //  4,096 numbers are about 5 ms of testing, enough for a journaling
        //  broker's loop turn (it acks after its write) or a LAN round
        //  trip; 4 left a thread idle a third of the time with a journal.
        .pipeline = 32,
        .wait_s = 60
    };
    pz_sockopts_init (&config->sockopts);
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
    //  A small receive queue: work queued here is work no other worker can
    //  take until its lease runs out.
    pz_sockopts_t pull_opts = config->sockopts;
    pull_opts.rcvhwm = (int) config->prefetch;
    pull_opts.heartbeat_ivl_ms = 0;     //  its queue fills: see sock.h
    self->pull = pz_sock_open (ZMQ_PULL, "dispatch PULL", self->dispatch_endpoint,
                               false, &pull_opts);
    if (self->pull)
        self->client = pz_client_new ("worker", self->results_endpoint,
                                      (int) config->pipeline, config->timeout_ms,
                                      config->retries, &config->sockopts);
    if (self->client) {
        //  A range report may be far larger than a message of numbers.
        pz_client_set_request_max (self->client, PZ_WIRE_MAX);
        self->range_primes = (int64_t *) malloc (S_RANGE_PRIMES_MAX * sizeof (int64_t));
        assert (self->range_primes);
        self->sieve = pz_sieve_new ();
        assert (self->sieve);
        pz_client_set_wait (self->client, config->wait_s * 1000);
        if (config->name && pz_client_set_routing_id (self->client, config->name) != 0)
            pz_client_destroy (&self->client);
    }
    if (!self->client)
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
    pz_client_destroy (&self->client);
    free (self->range_primes);
    pz_sieve_destroy (&self->sieve);
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
    if (self->client)
        stats->resends = pz_client_resends (self->client);
}

//  Sieves a piece of a range, I <id> R lo R hi (or Q lo Q hi), and builds
//  its report in client slot index: the dispatch's three records, then P
//  for every prime of [lo, hi] ascending (R), or Q <count> and Q <count of
//  a block> for each block of PZ_SIEVE_BLOCK (Q). Returns the report's
//  size, or 0 (after logging) if the piece is malformed or its primes (or
//  blocks) would not fit one frame.
static size_t
s_build_range_report (pz_worker_t *self, const uint8_t *data, size_t size, int index)
{
    char tag = size == 3 * PZ_RECORD_SIZE ? pz_record_tag (data + PZ_RECORD_SIZE) : 0;
    int64_t lo = pz_record_value (data + PZ_RECORD_SIZE);
    int64_t hi = pz_record_value (data + 2 * PZ_RECORD_SIZE);
    if (pz_record_tag (data) != PZ_TAG_ID || (tag != PZ_TAG_RANGE && tag != PZ_TAG_RANGE_COUNT)
    ||  pz_record_tag (data + 2 * PZ_RECORD_SIZE) != tag || !pz_sieve_valid (lo, hi)) {
        zsys_warning ("worker: dropped a malformed range dispatch of %zu bytes", size);
        self->stats.malformed++;
        return 0;
    }
    uint8_t *report = pz_client_request (self->client, index);
    memcpy (report, data, size);
    if (tag == PZ_TAG_RANGE_COUNT) {
        //  Q count, then Q c for each block of PZ_SIEVE_BLOCK numbers, for
        //  the broker's audit (its pieces are at most 2^28 wide: 8,192
        //  blocks; a wider one, from no broker of ours, is dropped).
        uint64_t width = (uint64_t) hi - (uint64_t) lo + 1;
        size_t blocks = (size_t) ((width - 1) / (uint64_t) PZ_SIEVE_BLOCK + 1);
        if (width > S_COUNT_WIDTH_MAX) {
            zsys_warning ("worker: dropped range piece %" PRId64 ":%" PRId64 ": too "
                          "wide for one report of its blocks", lo, hi);
            self->stats.malformed++;
            return 0;
        }
        int64_t total = pz_sieve_next_counts (self->sieve, lo, hi, PZ_SIEVE_BLOCK,
                                              self->range_primes);
        pz_record_encode (report + size, PZ_TAG_RANGE_COUNT, total);
        for (size_t block = 0; block < blocks; block++)
            pz_record_encode (report + size + (block + 1) * PZ_RECORD_SIZE,
                              PZ_TAG_RANGE_COUNT, self->range_primes [block]);
        self->counts [index] = (size_t) width;
        return size + (blocks + 1) * PZ_RECORD_SIZE;
    }
    size_t primes = pz_sieve_next (self->sieve, lo, hi, self->range_primes,
                                   S_RANGE_PRIMES_MAX);
    if (primes > S_RANGE_PRIMES_MAX) {
        zsys_warning ("worker: dropped range piece %" PRId64 ":%" PRId64 ": its %zu "
                      "primes do not fit one report", lo, hi, primes);
        self->stats.malformed++;
        return 0;
    }
    for (size_t prime = 0; prime < primes; prime++)
        pz_record_encode (report + size + prime * PZ_RECORD_SIZE, PZ_TAG_PRIME,
                          self->range_primes [prime]);
    self->counts [index] = (size_t) ((uint64_t) hi - (uint64_t) lo + 1);
    return size + primes * PZ_RECORD_SIZE;
}

//  Tests a dispatch and builds its report in client slot index. Returns
//  the report's size in bytes, or 0 (after logging) if the dispatch is
//  malformed.
static size_t
s_build_report (pz_worker_t *self, const uint8_t *data, size_t size, int index)
{
    if (size >= 2 * PZ_RECORD_SIZE
    &&  (pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE
    ||   pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE_COUNT))
        return s_build_range_report (self, data, size, index);
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
    for (size_t record = 0; record < count; record++)
        self->values [record] = pz_record_value (data + (record + 1) * PZ_RECORD_SIZE);
    pz_prime_check (self->values, self->verdicts, count);

    //  The report: the dispatch's I record, then one verdict bit per
    //  number in V records (protocol 3); the broker holds the values.
    uint8_t *report = pz_client_request (self->client, index);
    memcpy (report, data, PZ_RECORD_SIZE);
    size_t bytes = pz_verdicts_encode (report + PZ_RECORD_SIZE, self->verdicts, count);
    self->counts [index] = count;
    return PZ_RECORD_SIZE + bytes;
}

//  Handles a command on the actor pipe. Returns false on $TERM.
static bool
s_handle_pipe (pz_worker_t *self, zsock_t *pipe)
{
    char *command = zstr_recv (pipe);
    if (command && streq (command, "$TERM"))
        self->terminated = true;
    bool go_on = command && !self->terminated;
    if (command && streq (command, "STATS")) {
        pz_worker_stats_t stats;
        pz_worker_stats (self, &stats);
        zsock_send (pipe, "b", &stats, sizeof stats);
    }
    zstr_free (&command);
    return go_on;
}

//  Handles the broker's answer to the report in client slot index. An E is
//  logged and the report dropped: the broker decided, and resending cannot
//  change that.
static void
s_handle_ack (pz_worker_t *self, int index, const uint8_t *reply, int size)
{
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ACK) {
        self->stats.reports++;
        self->stats.numbers += self->counts [index];
        return;
    }
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR
    &&  pz_record_value (reply) == PZ_ERR_UNAVAILABLE) {
        //  The broker could not store the verdicts now (a full disk): the
        //  same report goes again in a while; its lease keeps it safe
        //  meanwhile.
        self->stats.deferred++;
        pz_client_send_later (self->client, index, zclock_mono (), 500);
        return;
    }
    self->stats.rejected++;
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR
    &&  pz_record_value (reply) == PZ_ERR_AUDIT) {
        //  Our verdicts were found wrong: this machine cannot be trusted
        //  to test numbers (faulty memory or CPU?), so it stops.
        if (!self->cut_off)
            zsys_error ("worker: the broker's audit found a wrong verdict in the report "
                        "for dispatch %" PRId64 " (E 11): this worker is cut off; "
                        "stopping (check this machine's memory and CPU)",
                        pz_record_value (pz_client_request (self->client, index)));
        self->cut_off = true;
        return;
    }
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR)
        zsys_warning ("worker: broker rejected report for dispatch %" PRId64
                      ": E %" PRId64 " (%s)",
                      pz_record_value (pz_client_request (self->client, index)),
                      pz_record_value (reply), pz_error_str (pz_record_value (reply)));
    else
        zsys_warning ("worker: unexpected reply of %d bytes from %s",
                      size, self->results_endpoint);
}

//  Pulls one dispatch, if any is queued, tests it into free client slot
//  index, and sends the report.
static void
s_pull_dispatch (pz_worker_t *self, zmq_msg_t *dispatch, int index, int64_t now_ms)
{
    if (zmq_msg_recv (dispatch, zsock_resolve (self->pull), ZMQ_DONTWAIT) == -1)
        return;
    if (zmq_msg_more (dispatch)) {
        zsys_warning ("worker: dropped a dispatch of more than one frame");
        self->stats.malformed++;
        pz_sock_drain_frames (zsock_resolve (self->pull));
        return;
    }
    size_t size = s_build_report (self, (const uint8_t *) zmq_msg_data (dispatch),
                                  zmq_msg_size (dispatch), index);
    if (size > 0)
        pz_client_send (self->client, index, size, now_ms);
}

//  Works until interrupted or $TERM. Returns 0, or -1 after giving up.
int
pz_worker_run (pz_worker_t *self, zsock_t *pipe)
{
    assert (self);
    enum { PULL, RESULTS, PIPE };
    zmq_msg_t dispatch;
    zmq_msg_init (&dispatch);
    int result = 0;
    while (!zsys_interrupted && !self->terminated && result == 0) {
        int64_t now_ms = zclock_mono ();
        //  Wake every 100 ms at least, to notice a signal that raced us.
        int64_t wake_ms = now_ms + 100;
        if (pz_client_deadline (self->client) < wake_ms)
            wake_ms = pz_client_deadline (self->client);
        //  Pull only into a free slot: the rest of the work waits in the
        //  broker's queues, where a lease covers it.
        int free_slot = pz_client_free_slot (self->client);
        zmq_pollitem_t items [] = {
            { zsock_resolve (self->pull), 0, free_slot != -1 ? ZMQ_POLLIN : 0, 0 },
            { pz_client_handle (self->client), 0,
              pz_client_busy (self->client) ? ZMQ_POLLIN : 0, 0 },
            { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 }
        };
        long timeout_ms = wake_ms > now_ms ? (long) (wake_ms - now_ms) : 0;
        if (zmq_poll (items, pipe ? 3 : 2, timeout_ms) == -1)
            continue;           //  EINTR: look at the signals
        now_ms = zclock_mono ();
        if (items [RESULTS].revents & ZMQ_POLLIN) {
            uint8_t reply [PZ_RECORD_SIZE];
            int size, index;
            while ((index = pz_client_receive (self->client, reply, &size, 0)) != -1)
                s_handle_ack (self, index, reply, size);
        }
        if (items [PULL].revents & ZMQ_POLLIN)
            s_pull_dispatch (self, &dispatch, free_slot, now_ms);
        if (self->cut_off)
            result = -1;
        else
        if (pz_client_expire (self->client, now_ms) != 0) {
            zsys_error ("worker: giving up: no ack from results endpoint %s after %"
                        PRId64 " attempts", self->results_endpoint,
                        self->config.retries + 1);
            result = -1;
        }
        if (pipe && (items [PIPE].revents & ZMQ_POLLIN))
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
