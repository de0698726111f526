/*  =========================================================================
    broker - accepts numbers from sources, leases them to workers, publishes
             numbers and verdicts to sinks, and keeps them in a journal

    One thread, one zmq_poll loop. zmq_poll rather than zpoller because the
    broker must also wait for its PUSH socket to become writable (POLLOUT)
    and must stop polling the source socket when its window is full; zpoller
    can do neither.

    Each turn of the loop:
      1. expires leases and pushes what is ready (leases.c);
      2. reads a burst of source requests and of worker reports into the
         open batch; each accepted request and each first valid report gets
         its publications built, with sequence numbers, and appended to the
         journal; anything refused is answered at once. A report carries
         one verdict bit per number (protocol 3): its P and C publications
         are built from the numbers of its dispatch. Without a journal, a
         publication of a tag no sink subscribes to is numbered, not built;
      3. ends the batch: without a journal it is settled at once (step 4).
         With one it is written (one write) at once, and the syncer thread
         fdatasyncs off the loop: a sync covers every batch written before
         it started, and the next starts as soon as one ends (group commit:
         one sync covers many turns and many sources). Once written, the
         accepted numbers go to the leases and workers are acknowledged:
         a verdict lost in a crash before the sync only means its numbers
         are leased again, and the workers test while the sync runs;
      4. once a batch's sync is done, and only then, it acknowledges the
         sources, publishes and completes the reported dispatches. If the
         write failed (a full disk), every item of the batch is refused
         with E 9 instead (nothing of it was leased), its sequence numbers
         are taken back, and the sources and workers send them again
         later; if a sync fails, the broker stops (what is on disk is then
         unknown: a restart reads back what is there).

    The source and results endpoints are ROUTERs that answer as REP sockets
    would (request.h): a REP socket cannot read a second request before it
    answered the first, and step 4 answers a whole batch at once.
    =========================================================================
*/
#include "broker.h"
#include "audit.h"
#include "sieve.h"
#include "bans.h"
#include "history.h"
#include "idtable.h"
#include "journal.h"
#include "leases.h"
#include "prime.h"
#include "publication.h"
#include "ranges.h"
#include "recent.h"
#include "request.h"
#include "zap.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

//  Dispatch ids are (incarnation << S_SEQUENCE_BITS) + sequence.
#define S_SEQUENCE_BITS     40
#define S_BURST             64      //  requests and reports read per turn, each
#define S_SUBSCRIPTIONS_MS  50      //  how often sinks' subscriptions are read
#define S_RETAIN_MS         1000    //  how often journal retention runs
#define S_ENDPOINTS         5
#define S_BATCHES           32      //  batches written and waiting for a sync,
                                    //  and the one being filled (8 held up the
                                    //  numbers of short loop turns while a sync
                                    //  ran: docs/JOURNAL.md "Commit")
#define S_BATCH_ITEMS       1024    //  requests and reports in one batch, at most
#define S_WORKERS_MAX       1024    //  workers counted by name; more share "others"
#define S_RECHECK_REACH     4096    //  a worker's latest verdict publications
                                    //  re-checked when it is caught lying
#define S_RECHECK_TURN      16      //  of those, re-checked per loop turn
#define S_REJECT_LOG_MS     10000   //  rejected messages: a window of this long
#define S_REJECT_LOG_BURST  10      //  logs this many of them, one line each; the
                                    //  rest are counted and summed up in one line

//  What one worker (by name, all its threads) did, for the stats.
typedef struct {
    char name [256];            //  its name, or a hex form of an unnamed peer's id
    uint64_t numbers;           //  numbers whose verdicts it was first to report
                                //  (and numbers of the pieces of ranges it sieved)
    uint64_t reports;           //  reports of its that published verdicts
    uint64_t duplicates;        //  numbers it reported after someone else
    uint64_t rejected;          //  reports of its answered with E
    uint64_t numbers_reported [2];  //  numbers at the last log line, snapshot
    int64_t last_seen_ms;       //  zclock_mono of its latest report
    uint64_t wrong;             //  reports of its the audit found wrong
    int64_t cut_off_until_ms;   //  zclock_mono when its latest ban ends
    int64_t *recent_seqs;       //  seqs of its latest verdict publications, a
                                //  ring of S_RECHECK_REACH (with a journal)
    size_t recent_next;         //  where the next one goes
    size_t recent_count;        //  how many it holds
} s_worker_t;

//  One request or report read in this turn, answered after the commit.
typedef enum {
    S_ACCEPT,                   //  a source request accepted, if the commit works
    S_VERDICT,                  //  a first valid report, if the commit works
    S_ECHO,                     //  a retried request or a repeated report whose
                                //  first copy is in this batch: same fate
    S_CORRECTION,               //  an X publication, from no request
    S_PIECE                     //  a first valid report of a piece of a range
} s_kind_t;

typedef struct {
    s_kind_t kind;              //  what the item is
    pz_request_t request;       //  the request or report, with its envelope
    bool from_source;           //  on the source endpoint (else results)
    bool has_id;                //  S_ACCEPT: it began with an I record
    int64_t request_id;         //  S_ACCEPT: that record's value
    size_t count;               //  records in it, for the A record (a range
                                //  is two; a piece report: numbers in the piece)
    int64_t seq;                //  S_ACCEPT: sequence number of its N publication
    size_t ranges;              //  S_ACCEPT: ranges in it
    int64_t range_key;          //  S_ACCEPT: key of its first range
    pz_piece_t *piece;          //  S_PIECE: the piece
    pz_lease_t *lease;          //  S_VERDICT, S_ECHO of a report: the dispatch
    s_worker_t *worker;         //  a report's sender
    bool answered;              //  a report acknowledged once written
    bool leased;                //  S_ACCEPT: its numbers and ranges handed to
                                //  the leases once written, before the sync
    zmq_msg_t publications [2]; //  N (accept), or P and C (verdict; empty if
                                //  none); S_PIECE: [0] its P publications and
                                //  an R announcement, one after another
} s_item_t;

//  Requests and reports written to the journal together and settled
//  together once a sync that covers them is done: one loop turn's worth
//  (or several turns', while S_BATCHES - 1 wait for a sync already).
typedef struct {
    s_item_t items [S_BATCH_ITEMS]; //  requests and reports, in the order read
    size_t count;               //  items in use
    uint64_t numbers;           //  numbers accepted in it, not yet leased
    uint64_t leased;            //  its accepts handed to the leases (written,
                                //  not yet synced)
    int64_t seq_before;         //  next_seq before its first item
    int64_t tag_seq_before [PZ_TAG_COUNT];  //  tag_seq before its first item
    int64_t seq_after;          //  next_seq after its last item
    int64_t tag_seq_after [PZ_TAG_COUNT];   //  tag_seq after its last item
    uint64_t ticket;            //  its write's number: durable once a sync
                                //  of that ticket or a later one is done
} s_batch_t;

struct _pz_broker_t {
    pz_broker_config_t config;  //  copy of the configuration (strings owned below)
    char *binds [S_ENDPOINTS];  //  owned copies of the five bind endpoints
    char *endpoints [S_ENDPOINTS];  //  resolved endpoints, same order
    char *journal_dir;          //  owned copy of config.journal_dir, or NULL
    zsock_t *source;            //  ROUTER: sources hand in N records
    zsock_t *publish;           //  XPUB: N, P and C publications to sinks
                                //  (those of tags nobody subscribes to are
                                //  not built, without a journal)
    zsock_t *dispatch;          //  PUSH: I + N messages to workers
    zsock_t *results;           //  ROUTER: workers report I + V verdict bits
    zsock_t *dispatch_monitor;  //  PAIR: dispatch's connections come and go,
                                //  without CURVE (with it the ZAP actor
                                //  monitors that socket: one monitor each)
    size_t dispatch_peers;      //  connections of dispatch, by those events
    pz_history_shared_t shared; //  what the history thread reads
    zactor_t *history;          //  the history endpoint, in its own thread
    zactor_t *zap;              //  the ZAP handler, with CURVE; else NULL
    bool shared_ready;          //  shared's lock and snapshot exist
    pz_journal_t *journal;      //  what was accepted and decided, or NULL
    pz_leases_t *leases;        //  dispatches waiting for workers or leased
    pz_ranges_t *ranges;        //  accepted ranges and their pieces
    pz_recent_t *recent;        //  acks of recent request ids
    pz_audit_t *audit;          //  samples reports and tests them again
    pz_bans_t *bans;            //  workers cut off, by key or name
    zlistx_t *rechecks;         //  seqs (int64_t *) of publications to re-check,
                                //  from workers caught lying
    pz_journal_reader_t *reader;    //  reads those back, with a journal
    uint8_t *recheck_buffer;    //  one publication read back
    uint8_t *correction;        //  the correction of it being built
    zhashx_t *workers;          //  worker name -> s_worker_t, owns them
    int64_t next_seq;           //  sequence number of the next publication
    int64_t first_seq;          //  next_seq when this process started
    int64_t tag_seq [PZ_TAG_COUNT]; //  last tag-seq of N, P, C, X, R published
    zhashx_t *topics;           //  prefixes sinks subscribe to (hex) -> itself
    bool wanted [PZ_TAG_COUNT]; //  some topic is a prefix of N, P, C, X, R
    s_batch_t batches [S_BATCHES];  //  a ring: the batches written and waiting
                                //  for a sync, oldest first, then the one
                                //  being filled
    size_t batch_first;         //  ring index of the oldest
    size_t batch_waiting;       //  written batches waiting for a sync
                                //  (0 to S_BATCHES - 1)
    uint64_t tickets_written;   //  journal writes so far
    uint64_t tickets_synced;    //  of those, how many a sync covered
    bool sync_running;          //  the syncer is at work
    int64_t sync_position;      //  pz_journal_written when it started
    zactor_t *syncer;           //  syncs the journal, so the loop never waits
    bool journal_failing;       //  the last commit failed (logged once)
    bool draining;              //  interrupted: no new numbers, finish the rest
    int64_t drain_deadline_ms;  //  when draining gives up
    int64_t started_ms;         //  zclock_mono at start, for numbers/s
    int64_t next_stats_ms;      //  when stats are logged next
    int64_t next_subscriptions_ms;  //  when subscriptions are read next
    int64_t next_retain_ms;     //  when journal retention runs next
    uint64_t results_reported [2];  //  stats.results at the last log line, snapshot
    int64_t reported_ms [2];    //  when they were made
    int64_t next_snapshot_ms;   //  when the history thread gets fresh stats
    int64_t reject_window_ms;   //  when the current rejection log window began
    uint64_t reject_logged;     //  rejections logged in it, one line each
    uint64_t reject_unlogged;   //  rejections in it beyond S_REJECT_LOG_BURST
    pz_broker_stats_t stats;    //  the counters
};

static void s_batch_clear (s_batch_t *batch);
static zsock_t *s_monitor_open (zsock_t *sock);
static int s_rebind (pz_broker_t *self, int index, zsock_t *sock);
static void s_syncer (zsock_t *pipe, void *args);

static const char *s_names [S_ENDPOINTS] = {
    "source", "publish", "dispatch", "results", "history"
};


//  --------------------------------------------------------------------------
//  Fills config with the defaults.

void
pz_broker_config_init (pz_broker_config_t *config)
{
    assert (config);
    *config = (pz_broker_config_t) {
        .source_bind = "tcp://*:5555",
        .publish_bind = "tcp://*:5556",
        .dispatch_bind = "tcp://*:5557",
        .results_bind = "tcp://*:5558",
        .history_bind = "tcp://*:5559",
        .max_inflight = 1048576,
        .max_messages = 16384,
        .lease_ms = 5000,
        .coalesce_ms = 10,
        .range_lease = PZ_RANGES_PIECE_DEFAULT,
        .range_inflight = PZ_RANGES_INFLIGHT_DEFAULT,
        .drain_ms = 1000,
        .stats_s = 10,
        .recent_requests = 65536,
        .publish_hwm = 1000,
        .audit = PZ_AUDIT_DEFAULT,
        .ban_s = 600
    };
    pz_sockopts_init (&config->sockopts);
}


//  Frees a worker's stats entry; zhashx destructor.
static void
s_worker_destroy (void **item_p)
{
    s_worker_t *worker = (s_worker_t *) *item_p;
    if (worker) {
        free (worker->recent_seqs);
        free (worker);
        *item_p = NULL;
    }
}

//  Queues the publication numbered seq for a re-check (s_take_rechecks).
static void
s_recheck_later (pz_broker_t *self, int64_t seq)
{
    int64_t *item = (int64_t *) malloc (sizeof (int64_t));
    assert (item);
    *item = seq;
    zlistx_add_end (self->rechecks, item);
}

//  Frees a seq queued for re-checking; zlistx destructor.
static void
s_seq_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Recovery: the journal's unfinished work comes back as if just accepted.

static void
s_recover_pending (void *arg, int64_t seq, int64_t request_id,
                   const uint8_t *records, size_t count)
{
    (void) request_id;
    pz_broker_t *self = (pz_broker_t *) arg;
    pz_leases_add (self->leases, records, count, seq, zclock_mono ());
    self->stats.recovered += count;
}

static void
s_recover_recent (void *arg, int64_t request_id, int64_t count)
{
    pz_recent_store (((pz_broker_t *) arg)->recent, request_id, count);
}

static void
s_recover_range (void *arg, int64_t key, char tag, int64_t lo, int64_t hi)
{
    pz_ranges_add (((pz_broker_t *) arg)->ranges, key, tag, lo, hi);
}

static void
s_recover_piece (void *arg, int64_t key, int64_t lo, int64_t hi, int64_t count)
{
    pz_ranges_restore_piece (((pz_broker_t *) arg)->ranges, key, lo, hi, count);
}

//  Opens the journal and reads it back. Returns false after logging if it
//  cannot be used.
static bool
s_journal_open (pz_broker_t *self)
{
    pz_journal_config_t config;
    pz_journal_config_init (&config);
    config.dir = self->journal_dir;
    config.retain_bytes = self->config.retain_bytes;
    config.retain_s = self->config.retain_s;
    config.recent_requests = self->config.recent_requests;
    char *error = NULL;
    self->journal = pz_journal_open (&config, &error);
    if (!self->journal) {
        zsys_error ("broker: cannot use journal %s: %s", self->journal_dir,
                    error ? error : "unknown error");
        zstr_free (&error);
        return false;
    }
    self->next_seq = pz_journal_next_seq (self->journal);
    for (int index = 0; index < PZ_TAG_COUNT; index++)
        self->tag_seq [index] = pz_journal_tag_seq (self->journal,
                                                    PZ_TAGS_PUBLISHED [index]);
    pz_journal_take_recent (self->journal, (size_t) self->config.recent_requests,
                            s_recover_recent, self);
    //  Ranges not done come back with the pieces they had done: only the
    //  rest is cut again.
    pz_journal_take_ranges (self->journal, s_recover_range, s_recover_piece, self);
    pz_ranges_keys_from (self->ranges, pz_journal_next_key (self->journal));
    pz_journal_take_pending (self->journal, s_recover_pending, self);
    pz_ranges_stats_t ranges;
    pz_ranges_stats (self->ranges, &ranges);
    zsys_info ("broker: journal %s: publications continue at sequence number %"
               PRId64 "; %" PRIu64 " acknowledged numbers without verdict "
               "dispatched again; %" PRIu64 " ranges not done go on",
               self->journal_dir, self->next_seq, self->stats.recovered, ranges.open);
    return true;
}


//  --------------------------------------------------------------------------
//  Creates a broker: journal first (a damaged one stops us before anything
//  is bound), then the five endpoints; NULL if anything fails.

pz_broker_t *
pz_broker_new (const pz_broker_config_t *config)
{
    assert (config);
    assert (config->max_inflight > 0 && config->max_messages > 0);
    assert (config->lease_ms > 0);
    assert (config->recent_requests > 0);
    pz_broker_t *self = (pz_broker_t *) zmalloc (sizeof (pz_broker_t));
    assert (self);
    self->config = *config;
    const char *binds [S_ENDPOINTS] = {
        config->source_bind, config->publish_bind, config->dispatch_bind,
        config->results_bind, config->history_bind
    };
    for (int index = 0; index < S_ENDPOINTS; index++)
        self->binds [index] = strdup (binds [index]);
    self->journal_dir = config->journal_dir ? strdup (config->journal_dir) : NULL;

    //  An incarnation from the start time and pid, so that dispatch ids
    //  from an earlier broker process are not taken for ours.
    uint64_t seed = (uint64_t) zclock_time () ^ ((uint64_t) getpid () << 20);
    int64_t incarnation = 1 + (int64_t) (pz_idtable_mix (seed)
                              % ((UINT64_C (1) << (62 - S_SEQUENCE_BITS)) - 1));
    self->leases = pz_leases_new (incarnation << S_SEQUENCE_BITS,
                                  config->lease_ms, config->coalesce_ms);
    self->ranges = pz_ranges_new (incarnation << S_SEQUENCE_BITS, config->lease_ms,
                                  config->range_lease, config->range_inflight);
    self->recent = pz_recent_new ((size_t) config->recent_requests);
    self->workers = zhashx_new ();
    self->topics = zhashx_new ();
    assert (self->topics);
    assert (self->workers);
    zhashx_set_destructor (self->workers, s_worker_destroy);
    assert (config->audit >= 0 && config->audit <= 1 && config->ban_s >= 0);
    self->audit = pz_audit_new (config->audit, 0);
    self->bans = pz_bans_new ();
    self->rechecks = zlistx_new ();
    assert (self->rechecks);
    zlistx_set_destructor (self->rechecks, s_seq_destroy);
    self->next_seq = 1;
    if (self->journal_dir && !s_journal_open (self)) {
        pz_broker_destroy (&self);
        return NULL;
    }
    if (self->journal)
        self->syncer = zactor_new (s_syncer, NULL);
    self->first_seq = self->next_seq;

    //  With CURVE, the ZAP handler is bound before any endpoint, and each
    //  endpoint gets its own ZAP domain (zap.h).
    bool curve = pz_sockopts_curve (&config->sockopts);
    if (curve) {
        int keys = -1;
        if (!config->curve_allow)
            zsys_error ("broker: a CURVE certificate needs an allow directory");
        else {
            self->zap = zactor_new (pz_zap_actor, (void *) config->curve_allow);
            zstr_send (self->zap, "SIZE");
            zsock_recv (self->zap, "i", &keys);
        }
        if (keys < 0) {
            pz_broker_destroy (&self);
            return NULL;
        }
    }
    //  The request endpoints reply from ROUTERs; publishing keeps a small
    //  linger so the last verdicts reach sinks on a clean exit.
    pz_sockopts_t opts = config->sockopts;
    opts.zap_domain = curve ? "source" : NULL;
    self->source = pz_sock_open (ZMQ_ROUTER, "source ROUTER", self->binds [0], true, &opts);
    opts.zap_domain = NULL;
    //  Sinks' and workers' receive queues fill, so no ZMTP heartbeats on
    //  those connections (sock.h): TCP keepalive finds dead ones there.
    pz_sockopts_t queued_opts = opts;
    queued_opts.heartbeat_ivl_ms = 0;
    queued_opts.linger_ms = 500;
    queued_opts.sndhwm = (int) config->publish_hwm;
    queued_opts.zap_domain = curve ? "publish" : NULL;
    self->publish = self->source ?
        pz_sock_open (ZMQ_XPUB, "publish XPUB", self->binds [1], true, &queued_opts) : NULL;
    queued_opts.linger_ms = 0;
    queued_opts.sndhwm = -1;            //  libzmq's default for the dispatch PUSH
    queued_opts.zap_domain = curve ? "dispatch" : NULL;
    self->dispatch = self->publish ?
        pz_sock_open (ZMQ_PUSH, "dispatch PUSH", self->binds [2], true, &queued_opts) : NULL;
    pz_sockopts_t results_opts = opts;
    results_opts.zap_domain = curve ? "results" : NULL;
    self->results = self->dispatch ?
        pz_sock_open (ZMQ_ROUTER, "results ROUTER", self->binds [3], true, &results_opts) : NULL;
    if (self->results && !curve)
        self->dispatch_monitor = s_monitor_open (self->dispatch);
    opts.zap_domain = curve ? "history" : NULL;
    if (self->results) {
        //  A worker whose connection broke comes back under the same name:
        //  the new connection takes it over.
        zsock_set_router_handover (self->results, 1);
        atomic_store (&self->shared.durable_seq, self->next_seq - 1);
        for (int index = 0; index < PZ_TAG_COUNT; index++)
            atomic_store (&self->shared.tag_seq [index], self->tag_seq [index]);
        atomic_store (&self->shared.tick_ms, zclock_mono ());
        self->shared.stats_json = strdup ("{}");
        pthread_mutex_init (&self->shared.stats_lock, NULL);
        self->shared_ready = true;
        pz_history_config_t history = {
            .bind = self->binds [4], .journal_dir = self->journal_dir,
            .shared = &self->shared, .sockopts = opts
        };
        //  zactor_new waits for the actor's signal; an actor that could not
        //  bind answers ENDPOINT with an empty string.
        self->history = zactor_new (pz_history_actor, &history);
        zstr_send (self->history, "ENDPOINT");
        self->endpoints [4] = zstr_recv (self->history);
    }
    if (!self->endpoints [4] || !*self->endpoints [4]) {
        pz_broker_destroy (&self);
        return NULL;
    }
    //  Every subscribe request reaches us, not just the first per topic, so
    //  the log shows each sink that joins.
    zsock_set_xpub_verbose (self->publish, 1);
    zsock_t *socks [4] = { self->source, self->publish, self->dispatch, self->results };
    for (int index = 0; index < 4; index++)
        self->endpoints [index] = zsock_last_endpoint (socks [index]);
    return self;
}


//  --------------------------------------------------------------------------
//  Destroys the broker in reverse order of creation. NULL-safe.

void
pz_broker_destroy (pz_broker_t **self_p)
{
    assert (self_p);
    pz_broker_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->history);
    if (self->shared_ready) {
        pthread_mutex_destroy (&self->shared.stats_lock);
        free (self->shared.stats_json);
    }
    //  Batches still waiting for a sync were never acknowledged: drop them.
    for (size_t batch = 0; batch < S_BATCHES; batch++)
        s_batch_clear (&self->batches [batch]);
    zactor_destroy (&self->syncer);
    //  libzmq sends monitor events with a blocking send: stop them before
    //  their reader goes.
    if (self->dispatch_monitor)
        zmq_socket_monitor (zsock_resolve (self->dispatch), NULL, 0);
    zsock_destroy (&self->dispatch_monitor);
    zsock_destroy (&self->results);
    zsock_destroy (&self->dispatch);
    zsock_destroy (&self->publish);
    zsock_destroy (&self->source);
    zactor_destroy (&self->zap);
    pz_journal_destroy (&self->journal);
    free (self->correction);
    free (self->recheck_buffer);
    pz_journal_reader_destroy (&self->reader);
    zlistx_destroy (&self->rechecks);
    pz_bans_destroy (&self->bans);
    pz_audit_destroy (&self->audit);
    zhashx_destroy (&self->workers);
    zhashx_destroy (&self->topics);
    pz_recent_destroy (&self->recent);
    pz_leases_destroy (&self->leases);
    pz_ranges_destroy (&self->ranges);
    for (int index = 0; index < S_ENDPOINTS; index++) {
        zstr_free (&self->endpoints [index]);
        zstr_free (&self->binds [index]);
    }
    zstr_free (&self->journal_dir);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Answers a request at once with one record, counting errors.

static void
s_reply (pz_broker_t *self, pz_request_t *request, zsock_t *router,
         char tag, int64_t value)
{
    if (tag == PZ_TAG_ERROR && value >= 0 && value <= PZ_ERR_MAX)
        self->stats.errors [value]++;
    if (pz_request_reply_record (request, zsock_resolve (router), tag, value) != 0
    &&  pz_log_verbose ())
        zsys_debug ("broker: reply lost (%s): peer gone?", zmq_strerror (zmq_errno ()));
}

//  Logs the count of rejections left unlogged in the window that ended, if
//  any, and starts a new window when the current one is over. A peer that
//  floods malformed messages must not flood the log (or the disk under it).
static void
s_reject_log_roll (pz_broker_t *self, int64_t now_ms)
{
    if (now_ms - self->reject_window_ms < S_REJECT_LOG_MS)
        return;
    if (self->reject_unlogged > 0)
        zsys_warning ("broker: %" PRIu64 " more rejected messages in %d s not logged "
                      "one by one (at most %d lines per %d s; the stats count every "
                      "E reply)", self->reject_unlogged, S_REJECT_LOG_MS / 1000,
                      S_REJECT_LOG_BURST, S_REJECT_LOG_MS / 1000);
    self->reject_window_ms = now_ms;
    self->reject_logged = self->reject_unlogged = 0;
}

//  Returns true if one more rejected message may be logged on its own line
//  now; else counts it for the summary line of s_reject_log_roll.
static bool
s_reject_log_allowed (pz_broker_t *self)
{
    s_reject_log_roll (self, zclock_mono ());
    if (self->reject_logged < S_REJECT_LOG_BURST) {
        self->reject_logged++;
        return true;
    }
    self->reject_unlogged++;
    return false;
}

//  Builds one publication of count records at records (the data records,
//  of one tag) into message, with the next sequence numbers.
static void
s_build_publication (pz_broker_t *self, zmq_msg_t *message, char tag,
                     const uint8_t *records, size_t count)
{
    size_t size = count * PZ_RECORD_SIZE;
    zmq_msg_init_size (message, size + PZ_TRAILER_SIZE);
    uint8_t *data = (uint8_t *) zmq_msg_data (message);
    memcpy (data, records, size);
    pz_publication_trailer (data + size, self->next_seq++,
                            ++self->tag_seq [pz_publication_tag_index (tag)]);
}

//  Numbers a publication of tag that is not built, because no sink
//  subscribes to it: it takes its seq and tag-seq all the same, so that
//  the numbering is the same whoever listens.
static void
s_skip_publication (pz_broker_t *self, char tag)
{
    self->next_seq++;
    ++self->tag_seq [pz_publication_tag_index (tag)];
}

//  Returns the batch being filled: the one after those waiting for sync.
static s_batch_t *
s_current (pz_broker_t *self)
{
    return &self->batches [(self->batch_first + self->batch_waiting) % S_BATCHES];
}

//  Returns an item waiting for its commit (in the batch being filled or
//  one written and not yet synced) that accepts request id or completes
//  lease (the other given as 0 or NULL), or NULL.
static s_item_t *
s_find_waiting (pz_broker_t *self, int64_t request_id, pz_lease_t *lease)
{
    for (size_t batch = 0; batch <= self->batch_waiting; batch++) {
        s_batch_t *items = &self->batches [(self->batch_first + batch) % S_BATCHES];
        for (size_t index = 0; index < items->count; index++) {
            s_item_t *item = &items->items [index];
            if ((request_id && item->kind == S_ACCEPT && item->request_id == request_id)
            ||  (lease && item->kind == S_VERDICT && item->lease == lease))
                return item;
        }
    }
    return NULL;
}

//  Returns a fresh item at the end of the batch being filled, holding the
//  request's frames.
static s_item_t *
s_batch_add (pz_broker_t *self, pz_request_t *request, bool from_source, s_kind_t kind)
{
    s_batch_t *batch = s_current (self);
    assert (batch->count < S_BATCH_ITEMS);
    if (batch->count == 0) {
        batch->numbers = 0;
        batch->leased = 0;
        batch->seq_before = self->next_seq;
        memcpy (batch->tag_seq_before, self->tag_seq, sizeof self->tag_seq);
    }
    s_item_t *item = &batch->items [batch->count++];
    memset (item, 0, sizeof *item);
    item->kind = kind;
    pz_request_move (&item->request, request);
    item->from_source = from_source;
    zmq_msg_init (&item->publications [0]);
    zmq_msg_init (&item->publications [1]);
    return item;
}


//  --------------------------------------------------------------------------
//  Ranges (ranges.h): the hooks of the request and report paths.

//  Builds the N publication of an accepted request that holds ranges (its
//  N records only, none if it has none) and reserves its ranges' keys.
static void
s_take_ranges (pz_broker_t *self, s_item_t *item, const uint8_t *records,
               size_t count, size_t ranges)
{
    item->ranges = ranges;
    item->range_key = pz_ranges_reserve_keys (self->ranges, ranges);
    size_t numbers = count - 2 * ranges;
    if (numbers > 0) {
        uint8_t *gathered = (uint8_t *) malloc (numbers * PZ_RECORD_SIZE);
        assert (gathered);
        size_t used = 0;
        for (size_t index = 0; index < count; index++)
            if (pz_record_tag (records + index * PZ_RECORD_SIZE) == PZ_TAG_NUMBER)
                memcpy (gathered + PZ_RECORD_SIZE * used++,
                        records + index * PZ_RECORD_SIZE, PZ_RECORD_SIZE);
        s_build_publication (self, &item->publications [0], PZ_TAG_NUMBER,
                             gathered, numbers);
        free (gathered);
    }
    if (self->journal)
        pz_journal_ranges (self->journal, item->request_id, (int64_t) count,
                           item->range_key, records, count);
}

//  Hands an accepted request's ranges to pz_ranges, once it is durable.
static void
s_settle_ranges (pz_broker_t *self, s_item_t *item, const uint8_t *records)
{
    int64_t key = item->range_key;
    for (size_t index = 0; index < item->count; index++) {
        const uint8_t *record = records + index * PZ_RECORD_SIZE;
        char tag = pz_record_tag (record);
        if (tag == PZ_TAG_RANGE || tag == PZ_TAG_RANGE_COUNT) {
            pz_ranges_add (self->ranges, key++, tag, pz_record_value (record),
                           pz_record_value (record + PZ_RECORD_SIZE));
            index++;
        }
    }
}

static void s_cut_off (pz_broker_t *self, s_worker_t *worker, const char *sender,
                       pz_lease_t *lease, const uint8_t *record);

//  Numbers of an R piece the audit tests for being left out rightly: as
//  many as a report of this many records would get tested, at most.
#define S_AUDIT_SPAN        4096

//  Returns true if value is among the count primes at records (ascending).
static bool
s_reported (const uint8_t *records, size_t count, int64_t value)
{
    size_t low = 0, high = count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        int64_t at = pz_record_value (records + middle * PZ_RECORD_SIZE);
        if (at == value)
            return true;
        if (at < value)
            low = middle + 1;
        else
            high = middle;
    }
    return false;
}

//  The audit of a Q piece's report, Q count Q c1 ... Q cm at records (m =
//  count - 1 blocks of PZ_SIEVE_BLOCK, checked against their widths by
//  pz_ranges_check): the blocks must add up to the count, and one block
//  drawn at random (every block if the audit's sample of m is all of them)
//  is counted again by the presieve and Baillie-PSW (worker/sieve.h, not
//  the workers' libprimesieve), ~1.6 ms near 10^18. Off with the audit,
//  but for the sum. Returns true, with Q <the wrong block's lo> (or Q
//  <the piece's lo> for a wrong sum) in wrong, if the report is wrong.
static bool
s_audit_count (pz_broker_t *self, pz_piece_t *piece, const uint8_t *records,
               size_t count, uint8_t *wrong)
{
    int64_t lo = pz_piece_lo (piece);
    int64_t hi = pz_piece_hi (piece);
    size_t blocks = count - 1;
    int64_t sum = 0;
    for (size_t block = 0; block < blocks; block++)
        sum += pz_record_value (records + (block + 1) * PZ_RECORD_SIZE);
    if (sum != pz_record_value (records)) {
        zsys_warning ("broker: audit: piece %" PRId64 ":%" PRId64 " counted %" PRId64
                      " in all but %" PRId64 " in its blocks", lo, hi,
                      pz_record_value (records), sum);
        pz_record_encode (wrong, PZ_TAG_RANGE_COUNT, lo);
        return true;
    }
    size_t *indexes = (size_t *) malloc (blocks * sizeof (size_t));
    assert (indexes);
    size_t samples = pz_audit_sample (self->audit, blocks, indexes);
    size_t first = 0;
    if (samples > 0 && samples < blocks) {
        //  One of the sample, each uniform: uniform itself.
        uint64_t seed = (uint64_t) zclock_usecs () ^ (uint64_t) hi;
        first = (size_t) (pz_idtable_mix (seed) % samples);
        samples = first + 1;
    }
    bool found = false;
    for (size_t sample = first; sample < samples && !found; sample++) {
        size_t block = indexes [sample];
        int64_t block_lo = lo + (int64_t) block * PZ_SIEVE_BLOCK;
        int64_t block_hi = hi - block_lo < PZ_SIEVE_BLOCK - 1 ? hi
                                                              : block_lo + PZ_SIEVE_BLOCK - 1;
        int64_t reported = pz_record_value (records + (block + 1) * PZ_RECORD_SIZE);
        int64_t right = pz_sieve_count (block_lo, block_hi, PZ_SIEVE_PRESIEVE);
        if (reported != right) {
            zsys_warning ("broker: audit: piece %" PRId64 ":%" PRId64 " counted %" PRId64
                          " primes in %" PRId64 ":%" PRId64 ", which holds %" PRId64,
                          lo, hi, reported, block_lo, block_hi, right);
            pz_record_encode (wrong, PZ_TAG_RANGE_COUNT, block_lo);
            found = true;
        }
    }
    free (indexes);
    return found;
}

//  The audit of an R piece's report, its count primes at records: a sample
//  of them tested again (audit.h), and numbers of the piece it left out,
//  as many as a report of min (width, S_AUDIT_SPAN) records gets tested,
//  drawn at random, each tested for being composite. Returns true, with
//  the wrong record in wrong (a P that is composite, or C for a prime left
//  out), if one is wrong.
static bool
s_audit_piece (pz_broker_t *self, pz_piece_t *piece, const uint8_t *records,
               size_t count, uint8_t *wrong)
{
    if (pz_piece_tag (piece) == PZ_TAG_RANGE_COUNT)
        return s_audit_count (self, piece, records, count, wrong);
    //  The audit takes reports of up to PZ_RECORDS_MAX records: a piece's
    //  primes (up to 116,505) in chunks of that, each sampled on its own.
    for (size_t first = 0; first < count; first += PZ_RECORDS_MAX) {
        size_t chunk = count - first < PZ_RECORDS_MAX ? count - first : PZ_RECORDS_MAX;
        const uint8_t *at_first = records + first * PZ_RECORD_SIZE;
        int64_t at = pz_audit_check (self->audit, at_first, chunk);
        if (at >= 0) {
            memcpy (wrong, at_first + (size_t) at * PZ_RECORD_SIZE, PZ_RECORD_SIZE);
            return true;
        }
    }
    int64_t lo = pz_piece_lo (piece);
    uint64_t width = (uint64_t) pz_piece_hi (piece) - (uint64_t) lo + 1;
    size_t indexes [S_AUDIT_SPAN];
    size_t span = width < S_AUDIT_SPAN ? (size_t) width : S_AUDIT_SPAN;
    size_t samples = pz_audit_sample (self->audit, span, indexes);
    uint64_t seed = (uint64_t) zclock_usecs () ^ (uint64_t) pz_piece_hi (piece);
    for (size_t sample = 0; sample < samples; sample++) {
        uint64_t offset = pz_idtable_mix (seed + indexes [sample] + sample) % width;
        int64_t value = (int64_t) ((uint64_t) lo + offset);
        if (!s_reported (records, count, value) && pz_prime_is_prime (value)) {
            pz_record_encode (wrong, PZ_TAG_COMPOSITE, value);
            return true;
        }
    }
    return false;
}

//  Takes a piece report (I id R lo R hi P..., or Q) into the batch, or
//  answers it at once: its primes go out as P publications of at most
//  PZ_RECORDS_MAX, and if it finishes its range, the R announcement. A
//  piece's report is audited first (R: its primes, Q: its blocks); one
//  found wrong is refused (E 11), its worker cut off and the piece pushed
//  again.
static void
s_take_piece (pz_broker_t *self, pz_request_t *request, s_worker_t *worker,
              const char *sender)
{
    const uint8_t *data = pz_request_data (request);
    size_t size = pz_request_size (request);
    pz_piece_t *piece = NULL;
    bool reported = false;
    pz_error_t error = request->error != PZ_OK ? request->error
                     : pz_ranges_check (self->ranges, data, size, &piece, &reported);
    if (error != PZ_OK) {
        bool old_count = size == 4 * PZ_RECORD_SIZE
                      && pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE_COUNT;
        zsys_warning ("broker: rejected piece report of %zu bytes from worker %s: %s%s",
                      size, worker->name, pz_error_str (error),
                      old_count ? " (a count without its block counts: a worker "
                                  "older than this broker?)" : "");
        worker->rejected++;
        s_reply (self, request, self->results, PZ_TAG_ERROR, error);
        return;
    }
    size_t peer_size;
    const uint8_t *peer = pz_request_peer (request, &peer_size);
    pz_ranges_seen (self->ranges, peer, peer_size, zclock_mono ());
    int64_t ack = (int64_t) (size / PZ_RECORD_SIZE - 1);
    if (!piece) {
        worker->duplicates++;
        s_reply (self, request, self->results, PZ_TAG_ACK, ack);
        return;
    }
    uint8_t wrong [PZ_RECORD_SIZE];
    if (!reported
    &&  s_audit_piece (self, piece, data + 3 * PZ_RECORD_SIZE,
                       size / PZ_RECORD_SIZE - 3, wrong)) {
        pz_ranges_release (self->ranges, piece);
        s_cut_off (self, worker, sender, NULL, wrong);
        s_reply (self, request, self->results, PZ_TAG_ERROR, PZ_ERR_AUDIT);
        return;
    }
    s_item_t *item = s_batch_add (self, request, false, reported ? S_ECHO : S_PIECE);
    item->count = (size_t) ack;
    item->worker = worker;
    if (reported)
        return;                 //  answered as its first copy is
    item->piece = piece;
    data = pz_request_data (&item->request);
    size_t records = size / PZ_RECORD_SIZE;
    bool counted = pz_piece_tag (piece) == PZ_TAG_RANGE_COUNT;
    size_t primes = counted ? 0 : records - 3;
    int64_t count = counted ? pz_record_value (data + 3 * PZ_RECORD_SIZE) : (int64_t) primes;
    pz_range_done_t done;
    bool finishes = pz_ranges_report (self->ranges, piece, count, &done);
    size_t messages = (primes + PZ_RECORDS_MAX - 1) / PZ_RECORDS_MAX;
    size_t total = primes * PZ_RECORD_SIZE + messages * PZ_TRAILER_SIZE
                 + (finishes ? PZ_ANNOUNCEMENT_RECORDS * PZ_RECORD_SIZE + PZ_TRAILER_SIZE : 0);
    zmq_msg_t *message = &item->publications [0];
    zmq_msg_close (message);
    zmq_msg_init_size (message, total);
    uint8_t *cursor = (uint8_t *) zmq_msg_data (message);
    for (size_t first = 0; first < primes; first += PZ_RECORDS_MAX) {
        size_t chunk = primes - first < PZ_RECORDS_MAX ? primes - first : PZ_RECORDS_MAX;
        memcpy (cursor, data + (3 + first) * PZ_RECORD_SIZE, chunk * PZ_RECORD_SIZE);
        cursor += chunk * PZ_RECORD_SIZE;
        pz_publication_trailer (cursor, self->next_seq++,
                                ++self->tag_seq [pz_publication_tag_index (PZ_TAG_PRIME)]);
        cursor += PZ_TRAILER_SIZE;
    }
    if (finishes) {
        pz_record_encode (cursor, PZ_TAG_RANGE, done.lo);
        pz_record_encode (cursor + PZ_RECORD_SIZE, PZ_TAG_RANGE, done.hi);
        pz_record_encode (cursor + 2 * PZ_RECORD_SIZE, PZ_TAG_RANGE, done.count);
        cursor += PZ_ANNOUNCEMENT_RECORDS * PZ_RECORD_SIZE;
        pz_publication_trailer (cursor, self->next_seq++,
                                ++self->tag_seq [pz_publication_tag_index (PZ_TAG_RANGE)]);
    }
    if (self->journal)
        pz_journal_piece (self->journal, pz_piece_key (piece), pz_piece_tag (piece),
                          pz_piece_lo (piece), pz_piece_hi (piece), count,
                          (const uint8_t *) zmq_msg_data (message), total);
}


//  --------------------------------------------------------------------------
//  Takes one source request into the batch, or answers it at once.

static void
s_take_request (pz_broker_t *self, pz_request_t *request)
{
    const uint8_t *data = pz_request_data (request);
    size_t size = pz_request_size (request);
    uint32_t tags = 0;
    pz_error_t error = request->error != PZ_OK ? request->error
                     : pz_record_check_tags (data, size, "NIRQ", &tags);
    bool has_id = error == PZ_OK && pz_record_tag (data) == PZ_TAG_ID;
    size_t count = error == PZ_OK ? size / PZ_RECORD_SIZE - (has_id ? 1 : 0) : 0;
    size_t ranges = 0;
    //  The ranges' own walk only when the first one saw an R or a Q.
    if (error == PZ_OK && (tags & (pz_record_tag_bit (PZ_TAG_RANGE)
                                 | pz_record_tag_bit (PZ_TAG_RANGE_COUNT))))
        error = pz_ranges_check_request (data + (has_id ? PZ_RECORD_SIZE : 0),
                                         count, &ranges);
    if (error != PZ_OK) {
        if (s_reject_log_allowed (self))
            zsys_warning ("broker: rejected source message of %zu bytes: %s",
                          size, pz_error_str (error));
        s_reply (self, request, self->source, PZ_TAG_ERROR, error);
        return;
    }
    //  An optional leading I record names the request, for safe retries.
    int64_t request_id = has_id ? pz_record_value (data) : 0;
    int64_t acked;
    if (has_id && pz_recent_lookup (self->recent, request_id, &acked)) {
        self->stats.retries++;
        s_reply (self, request, self->source, PZ_TAG_ACK, acked);
        return;
    }
    s_item_t *first = has_id ? s_find_waiting (self, request_id, NULL) : NULL;
    s_item_t *item = s_batch_add (self, request, true, first ? S_ECHO : S_ACCEPT);
    item->count = count;
    if (first)
        return;                 //  answered as its first copy is
    data = pz_request_data (&item->request);    //  moved with the frames
    const uint8_t *records = data + (has_id ? PZ_RECORD_SIZE : 0);
    item->has_id = has_id;
    item->request_id = request_id;
    item->seq = self->next_seq;
    size_t numbers = count - 2 * ranges;
    if (ranges > 0)
        s_take_ranges (self, item, records, count, ranges);
    else
    if (self->wanted [pz_publication_tag_index (PZ_TAG_NUMBER)])
        s_build_publication (self, &item->publications [0], PZ_TAG_NUMBER,
                             records, count);
    else
        s_skip_publication (self, PZ_TAG_NUMBER);
    s_current (self)->numbers += numbers;
    //  The request id goes with the ranges' entry when there are ranges, so
    //  that a retry is answered with the count of every record.
    int64_t accept_id = ranges ? 0 : request_id;
    if (self->journal && numbers > 0) {
        if (zmq_msg_size (&item->publications [0]) > 0)
            pz_journal_accept (self->journal, accept_id,
                               (const uint8_t *) zmq_msg_data (&item->publications [0]),
                               zmq_msg_size (&item->publications [0]));
        else
            //  No sink takes N live: the journal gets it in parts, as history
            //  serves it, without a message built to be dropped (a message
            //  of 9 bytes a number, allocated, copied and freed).
            pz_journal_accept_records (self->journal, accept_id, records, count,
                item->seq, self->tag_seq [pz_publication_tag_index (PZ_TAG_NUMBER)]);
    }
}

//  Returns the stats entry of the worker that sent request: by its name
//  (the routing id it chose, less its "/thread" suffix), or by a hex form
//  of the id libzmq gave an unnamed peer. Beyond S_WORKERS_MAX names, the
//  rest share one entry.
static s_worker_t *
s_worker_of (pz_broker_t *self, pz_request_t *request)
{
    size_t size;
    const uint8_t *peer = pz_request_peer (request, &size);
    char name [256];
    if (size > 0 && peer [0] != 0) {
        //  A name the peer chose: printable, else it is shown in hex.
        size_t length = 0;
        for (; length < size && length < sizeof name - 1 && peer [length] >= 32
               && peer [length] < 127 && peer [length] != '"' && peer [length] != '\\';
               length++)
            name [length] = (char) peer [length];
        name [length] = '\0';
        if (length < size)
            name [0] = '\0';
        char *slash = strrchr (name, '/');
        if (slash && slash != name)
            *slash = '\0';
    }
    else
        name [0] = '\0';
    if (!name [0]) {
        size_t used = (size_t) snprintf (name, sizeof name, "peer-");
        for (size_t index = 0; index < size && used + 3 < sizeof name; index++)
            used += (size_t) snprintf (name + used, sizeof name - used, "%02x", peer [index]);
    }
    s_worker_t *worker = (s_worker_t *) zhashx_lookup (self->workers, name);
    if (!worker && zhashx_size (self->workers) >= S_WORKERS_MAX) {
        snprintf (name, sizeof name, "others");
        worker = (s_worker_t *) zhashx_lookup (self->workers, name);
    }
    if (!worker) {
        worker = (s_worker_t *) zmalloc (sizeof (s_worker_t));
        assert (worker);
        snprintf (worker->name, sizeof worker->name, "%s", name);
        zhashx_insert (self->workers, worker->name, worker);
        zsys_info ("broker: first report from worker %s", worker->name);
    }
    worker->last_seen_ms = zclock_mono ();
    return worker;
}

//  Writes the name a report's sender is cut off by into name: its CURVE
//  key ("key:<Z85>", the User-Id the ZAP handler gave its connection) when
//  the broker has certificates, else its worker name ("worker:<name>").
static void
s_sender_name (pz_broker_t *self, pz_request_t *request, s_worker_t *worker,
               char *name, size_t size)
{
    const char *key = self->zap ? zmq_msg_gets (&request->body, "User-Id") : NULL;
    if (key && *key)
        snprintf (name, size, "key:%s", key);
    else
        snprintf (name, size, "worker:%s", worker->name);
}

//  Cuts off the sender of a report in which the audit found the wrong
//  verdict at record: bans it for ban_s (under CURVE its key, which the ZAP
//  handler then refuses, and the dispatch endpoint is bound again so that
//  its connection ends and it takes no more work), gives its dispatch to
//  another worker at once (lease NULL: a piece of a range, which the caller
//  released), and queues its earlier verdicts still in the journal for a
//  re-check (those of numbers: the primes of its earlier pieces are not).
static void
s_cut_off (pz_broker_t *self, s_worker_t *worker, const char *sender,
           pz_lease_t *lease, const uint8_t *record)
{
    int64_t now_ms = zclock_mono ();
    worker->wrong++;
    worker->rejected++;
    worker->cut_off_until_ms = now_ms + self->config.ban_s * 1000;
    self->stats.audit_failures++;
    pz_bans_add (self->bans, sender, now_ms + self->config.ban_s * 1000);
    if (lease)                  //  NULL for a piece of a range: released already
        pz_leases_release (self->leases, lease);
    int64_t value = pz_record_value (record);
    char tag = pz_record_tag (record);
    zsys_error ("broker: audit: worker %s reported %c %" PRId64 ", which is %s: "
                "report refused (E 11), %s cut off for %" PRId64 " s, its dispatch "
                "goes to another worker", worker->name, tag, value,
                tag == PZ_TAG_PRIME ? "composite"
                : tag == PZ_TAG_RANGE_COUNT ? "a wrong count from there" : "prime",
                sender, self->config.ban_s);
    if (self->zap && strncmp (sender, "key:", 4) == 0) {
        int ok = -1;
        zstr_sendf (self->zap, "BAN %s %" PRId64, sender + 4, self->config.ban_s * 1000);
        zsock_recv (self->zap, "i", &ok);
        s_rebind (self, 2, self->dispatch);
    }
    if (!self->journal)
        zsys_warning ("broker: audit: no journal, so the earlier verdicts of "
                      "worker %s cannot be re-checked", worker->name);
    for (size_t index = 0; index < worker->recent_count; index++) {
        size_t slot = (worker->recent_next + S_RECHECK_REACH - worker->recent_count
                       + index) % S_RECHECK_REACH;
        s_recheck_later (self, worker->recent_seqs [slot]);
    }
    if (worker->recent_count)
        zsys_info ("broker: audit: re-checking the %zu latest verdict publications "
                   "of worker %s", worker->recent_count, worker->name);
    worker->recent_count = 0;
}

//  Takes one worker report into the batch, or answers it at once.

static void
s_take_report (pz_broker_t *self, pz_request_t *request)
{
    const uint8_t *data = pz_request_data (request);
    size_t size = pz_request_size (request);
    pz_lease_t *lease = NULL;
    s_worker_t *worker = s_worker_of (self, request);
    char sender [320];
    s_sender_name (self, request, worker, sender, sizeof sender);
    if (pz_bans_active (self->bans, sender, zclock_mono ())) {
        //  Cut off: nothing of it is taken, not even a duplicate.
        self->stats.cut_off++;
        worker->rejected++;
        s_reply (self, request, self->results, PZ_TAG_ERROR, PZ_ERR_AUDIT);
        return;
    }
    if (size >= 2 * PZ_RECORD_SIZE
    &&  (pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE
    ||   pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE_COUNT)) {
        s_take_piece (self, request, worker, sender);
        return;
    }
    size_t count = 0;
    pz_error_t error = request->error != PZ_OK ? request->error
                     : pz_leases_check (self->leases, data, size, &lease, &count);
    //  A piece's id on a report of numbers: issued, but not for this.
    if (error == PZ_ERR_UNKNOWN_ID && pz_ranges_issued (self->ranges, pz_record_value (data)))
        error = PZ_ERR_MISMATCH;
    if (error != PZ_OK) {
        if (s_reject_log_allowed (self))
            zsys_warning ("broker: rejected report of %zu bytes from worker %s: %s",
                          size, worker->name, pz_error_str (error));
        worker->rejected++;
        s_reply (self, request, self->results, PZ_TAG_ERROR, error);
        return;
    }
    //  A thread that tests numbers sieves pieces as well: the ranges count
    //  it among the threads to cut lanes for before it sends a piece back.
    size_t peer_size;
    const uint8_t *peer = pz_request_peer (request, &peer_size);
    pz_ranges_seen (self->ranges, peer, peer_size, zclock_mono ());
    if (!lease) {
        //  Already published from an earlier report: acknowledge, so the
        //  worker moves on, but publish nothing.
        self->stats.duplicates += count;
        worker->duplicates += count;
        s_reply (self, request, self->results, PZ_TAG_ACK, (int64_t) count);
        return;
    }
    //  The numbers are the dispatch's, the verdicts the report's bits.
    const uint8_t *numbers = pz_lease_records (lease);
    s_item_t *first = s_find_waiting (self, 0, lease);
    if (!first) {
        //  The audit: a sample tested again before anything is published.
        int64_t wrong = pz_audit_check_bits (self->audit, numbers,
                                             data + PZ_RECORD_SIZE, count);
        if (wrong >= 0) {
            uint8_t record [PZ_RECORD_SIZE];
            pz_record_encode (record, pz_verdicts_get (data + PZ_RECORD_SIZE, (size_t) wrong)
                              ? PZ_TAG_PRIME : PZ_TAG_COMPOSITE,
                              pz_record_value (numbers + (size_t) wrong * PZ_RECORD_SIZE));
            s_cut_off (self, worker, sender, lease, record);
            s_reply (self, request, self->results, PZ_TAG_ERROR, PZ_ERR_AUDIT);
            return;
        }
    }
    s_item_t *item = s_batch_add (self, request, false, first ? S_ECHO : S_VERDICT);
    item->count = count;
    item->lease = lease;
    item->worker = worker;
    if (first)
        return;
    data = pz_request_data (&item->request);    //  moved with the frames
    const uint8_t *bits = data + PZ_RECORD_SIZE;
    //  Split the numbers into one P and one C publication, order kept in
    //  each, written straight into the messages' buffers: count, then fill.
    //  A half no sink subscribes to is numbered, not built: the journal
    //  keeps a verdict as its bits, not as its publications.
    size_t primes = pz_verdicts_primes (bits, count);
    size_t sizes [2] = { primes * PZ_RECORD_SIZE, (count - primes) * PZ_RECORD_SIZE };
    bool build [2] = { sizes [0] > 0 && self->wanted [pz_publication_tag_index (PZ_TAG_PRIME)],
                       sizes [1] > 0 && self->wanted [pz_publication_tag_index (PZ_TAG_COMPOSITE)] };
    uint8_t *cursor [2] = { NULL, NULL };
    for (int which = 0; which < 2; which++)
        if (build [which]) {
            zmq_msg_close (&item->publications [which]);
            zmq_msg_init_size (&item->publications [which], sizes [which] + PZ_TRAILER_SIZE);
            cursor [which] = (uint8_t *) zmq_msg_data (&item->publications [which]);
        }
    if (build [0] || build [1])
        pz_verdicts_split (numbers, bits, count, cursor);
    //  Sequence numbers in publication order: P first, then C.
    int64_t seqs [2] = { 0, 0 }, tag_seqs [2] = { 0, 0 };
    for (int which = 0; which < 2; which++)
        if (sizes [which] > 0) {
            seqs [which] = self->next_seq++;
            tag_seqs [which] = ++self->tag_seq [which + 1];
            if (build [which])
                pz_publication_trailer (cursor [which], seqs [which], tag_seqs [which]);
        }
    if (self->journal) {
        size_t covers_count;
        const int64_t *covers = pz_lease_covers (lease, &covers_count);
        pz_journal_verdict (self->journal, covers, covers_count,
                            numbers, bits, count, seqs, tag_seqs);
    }
}

//  --------------------------------------------------------------------------
//  Publishes a built publication. XPUB never blocks: a sink that cannot
//  keep up loses messages at its high-water mark, and finds the gap by
//  their sequence numbers.

static void
s_publish (pz_broker_t *self, zmq_msg_t *message)
{
    if (zmq_msg_size (message) > 0
    &&  zmq_msg_send (message, zsock_resolve (self->publish), ZMQ_DONTWAIT) != -1)
        self->stats.published++;
}

//  Publishes every publication in a message that holds several, one after
//  another (a piece's P publications and R announcement), each as its own.
static void
s_publish_all (pz_broker_t *self, zmq_msg_t *message)
{
    const uint8_t *data = (const uint8_t *) zmq_msg_data (message);
    size_t left = zmq_msg_size (message);
    size_t size;
    while (left > 0 && (size = pz_publication_next (data, left)) > 0) {
        zmq_msg_t one;
        zmq_msg_init_size (&one, size);
        memcpy (zmq_msg_data (&one), data, size);
        s_publish (self, &one);
        zmq_msg_close (&one);
        data += size;
        left -= size;
    }
}

//  Remembers the seqs of a verdict's publications in its worker's ring,
//  for a re-check if the worker is caught lying later. A verdict its worker
//  was caught lying after it was taken (it waited for its sync meanwhile)
//  is queued for the re-check at once: the ring was read already.
static void
s_remember_verdicts (pz_broker_t *self, s_item_t *item, int64_t now_ms)
{
    s_worker_t *worker = item->worker;
    bool caught = worker->wrong > 0 && now_ms < worker->cut_off_until_ms;
    if (!worker->recent_seqs) {
        worker->recent_seqs = (int64_t *) malloc (S_RECHECK_REACH * sizeof (int64_t));
        assert (worker->recent_seqs);
    }
    for (int which = 0; which < 2; which++) {
        size_t size = zmq_msg_size (&item->publications [which]);
        if (size == 0)
            continue;
        const uint8_t *trailer = (const uint8_t *) zmq_msg_data (&item->publications [which])
                               + size - PZ_TRAILER_SIZE;
        if (caught) {
            s_recheck_later (self, pz_record_value (trailer));
            continue;
        }
        worker->recent_seqs [worker->recent_next] = pz_record_value (trailer);
        worker->recent_next = (worker->recent_next + 1) % S_RECHECK_REACH;
        if (worker->recent_count < S_RECHECK_REACH)
            worker->recent_count++;
    }
}

//  Hands an accepted request's numbers and ranges to the leases and the
//  ranges, once: when its batch is written (with a journal) or settled.
static void
s_lease_accept (pz_broker_t *self, s_item_t *item, int64_t now_ms)
{
    if (item->leased)
        return;
    item->leased = true;
    const uint8_t *data = pz_request_data (&item->request);
    const uint8_t *records = data + (item->has_id ? PZ_RECORD_SIZE : 0);
    //  The N records: gathered in the publication (before it is sent),
    //  or the request's own when it holds no range and no sink wanted
    //  its publication.
    size_t numbers = item->count - 2 * item->ranges;
    const uint8_t *gathered = zmq_msg_size (&item->publications [0]) > 0
                            ? (const uint8_t *) zmq_msg_data (&item->publications [0])
                            : records;
    if (numbers > 0)
        pz_leases_add (self->leases, gathered, numbers, item->seq, now_ms);
    if (item->ranges > 0)
        s_settle_ranges (self, item, records);
}

//  Carries out one item of a committed batch: acknowledge, publish, and
//  hand over to the leases (unless its write did) or complete the dispatch.
static void
s_settle (pz_broker_t *self, s_item_t *item, int64_t now_ms)
{
    zsock_t *router = item->from_source ? self->source : self->results;
    if (item->kind == S_ACCEPT) {
        s_lease_accept (self, item, now_ms);
        if (item->request_id)       //  an id of 0 names nothing to remember
            pz_recent_store (self->recent, item->request_id, (int64_t) item->count);
        self->stats.accepted += item->count;
        self->stats.requests++;
        //  The ack first: the source is waiting for it.
        s_reply (self, &item->request, router, PZ_TAG_ACK, (int64_t) item->count);
        s_publish (self, &item->publications [0]);
    }
    else
    if (item->kind == S_CORRECTION) {
        self->stats.corrections += zmq_msg_size (&item->publications [0])
                                   / PZ_RECORD_SIZE - 3;    //  X, S, T
        s_publish (self, &item->publications [0]);
    }
    else
    if (item->kind == S_VERDICT) {
        if (self->journal)
            s_remember_verdicts (self, item, now_ms);
        s_publish (self, &item->publications [0]);
        s_publish (self, &item->publications [1]);
        pz_leases_complete (self->leases, item->lease);
        self->stats.results += item->count;
        item->worker->numbers += item->count;
        item->worker->reports++;
        if (!item->answered)
            s_reply (self, &item->request, router, PZ_TAG_ACK, (int64_t) item->count);
    }
    else
    if (item->kind == S_PIECE) {
        s_publish_all (self, &item->publications [0]);
        //  A worker's numbers: those of its pieces count as sieved.
        item->worker->numbers += (uint64_t) pz_piece_hi (item->piece)
                               - (uint64_t) pz_piece_lo (item->piece) + 1;
        pz_ranges_settle (self->ranges, item->piece);
        item->worker->reports++;
        if (!item->answered)
            s_reply (self, &item->request, router, PZ_TAG_ACK, (int64_t) item->count);
    }
    else {
        if (item->from_source)
            self->stats.retries++;
        else {
            self->stats.duplicates += item->count;
            item->worker->duplicates += item->count;
        }
        if (!item->answered)
            s_reply (self, &item->request, router, PZ_TAG_ACK, (int64_t) item->count);
    }
}

//  Closes what a batch's items still hold and empties it.
static void
s_batch_clear (s_batch_t *batch)
{
    for (size_t index = 0; index < batch->count; index++) {
        s_item_t *item = &batch->items [index];
        pz_request_close (&item->request);
        zmq_msg_close (&item->publications [0]);
        zmq_msg_close (&item->publications [1]);
    }
    batch->count = 0;
    batch->numbers = 0;
    batch->leased = 0;
}

//  Settles every item of a durable batch, in order, and tells the history
//  thread how far publications now go.
static void
s_batch_settle (pz_broker_t *self, s_batch_t *batch)
{
    int64_t now_ms = zclock_mono ();
    //  History first: a sink that got a publication and asks history for
    //  it at once must find it there (the batch is durable already).
    atomic_store (&self->shared.durable_seq, batch->seq_after - 1);
    for (int index = 0; index < PZ_TAG_COUNT; index++)
        atomic_store (&self->shared.tag_seq [index], batch->tag_seq_after [index]);
    for (size_t index = 0; index < batch->count; index++)
        s_settle (self, &batch->items [index], now_ms);
    s_batch_clear (batch);
}

//  Ends the batch being filled, at the end of a loop turn. Without a
//  journal it is settled at once. With one it is written now, even while a
//  sync runs, and waits for the next sync, which covers every batch written
//  before it starts: the syncer goes from one sync straight to the next,
//  and a batch never waits for a sync that started before it was written
//  to end first (that wait, and the loop's turn to notice it, were most of
//  an ack's latency). Only when S_BATCHES - 1 batches wait does it stay
//  open and the next turns add to it. If it cannot be written (a full
//  disk), every item is refused with E 9 and its sequence numbers are
//  taken back, so nothing of it was ever promised.
static void
s_batch_end (pz_broker_t *self)
{
    s_batch_t *batch = s_current (self);
    if (batch->count == 0 || (self->journal && self->batch_waiting == S_BATCHES - 1))
        return;
    batch->seq_after = self->next_seq;
    memcpy (batch->tag_seq_after, self->tag_seq, sizeof self->tag_seq);
    if (!self->journal) {
        s_batch_settle (self, batch);
        return;
    }
    if (pz_journal_write (self->journal) == 0) {
        if (self->journal_failing) {
            zsys_info ("broker: journal %s writable again; accepting numbers",
                       self->journal_dir);
            self->journal_failing = false;
        }
        batch->ticket = ++self->tickets_written;
        self->batch_waiting++;
        //  Workers are acknowledged now, and get the accepted numbers now,
        //  not after the sync: a verdict lost in a crash before the sync
        //  only means its numbers are leased again after the restart, and
        //  workers waiting for syncs would stop testing meanwhile. What
        //  sources are told, and what is published, still waits for it: a
        //  verdict is published after its own sync, which covers the accept
        //  written before it. (A crash before the sync loses the accept,
        //  unacknowledged, and a restarted broker ignores the verdict: its
        //  dispatch id names the old incarnation.)
        int64_t now_ms = zclock_mono ();
        for (size_t index = 0; index < batch->count; index++) {
            s_item_t *item = &batch->items [index];
            if (item->kind == S_ACCEPT) {
                s_lease_accept (self, item, now_ms);
                batch->leased++;
            }
            if (!item->from_source) {
                s_reply (self, &item->request, self->results, PZ_TAG_ACK,
                         (int64_t) item->count);
                item->answered = true;
            }
        }
        batch->numbers = 0;             //  in the leases now
        return;
    }
    if (!self->journal_failing)
        zsys_error ("broker: cannot write journal %s (%s): refusing numbers "
                    "and reports (E 9) until it can; nothing acknowledged is lost",
                    self->journal_dir, strerror (errno));
    self->journal_failing = true;
    self->next_seq = batch->seq_before;
    memcpy (self->tag_seq, batch->tag_seq_before, sizeof self->tag_seq);
    for (size_t index = batch->count; index-- > 0; ) {
        s_item_t *item = &batch->items [index];
        if (item->kind == S_PIECE)      //  latest first, as they were counted
            pz_ranges_undo (self->ranges, item->piece, zclock_mono ());
    }
    for (size_t index = 0; index < batch->count; index++) {
        s_item_t *item = &batch->items [index];
        if (item->kind == S_CORRECTION) {
            zsys_error ("broker: audit: a correction of seq %" PRId64 " is lost: the "
                        "journal cannot be written", pz_record_value (
                        (const uint8_t *) zmq_msg_data (&item->publications [0])));
            continue;
        }
        self->stats.unavailable++;
        s_reply (self, &item->request, item->from_source ? self->source : self->results,
                 PZ_TAG_ERROR, PZ_ERR_UNAVAILABLE);
    }
    s_batch_clear (batch);
}

//  Re-checks up to S_RECHECK_TURN publications of workers caught lying,
//  read back from the journal, and adds a correction to the batch for each
//  that holds a wrong verdict: `X <its seq>` and the verdicts set right.
//  A few per turn, so that sources and workers are not kept waiting.
static void
s_take_rechecks (pz_broker_t *self)
{
    if (zlistx_size (self->rechecks) == 0)
        return;
    if (!self->reader) {
        self->reader = pz_journal_reader_new (self->journal_dir);
        self->recheck_buffer = (uint8_t *) malloc (PZ_PUBLICATION_MAX);
        self->correction = (uint8_t *) malloc (PZ_PUBLICATION_MAX);
        assert (self->reader && self->recheck_buffer && self->correction);
    }
    int64_t durable = atomic_load (&self->shared.durable_seq);
    uint32_t mask = UINT32_C (1) << (PZ_TAG_PRIME - 'A') | UINT32_C (1) << (PZ_TAG_COMPOSITE - 'A');
    for (int done = 0; done < S_RECHECK_TURN && zlistx_size (self->rechecks) > 0
                       && s_current (self)->count < S_BATCH_ITEMS; done++) {
        int64_t *seq = (int64_t *) zlistx_first (self->rechecks);
        int64_t next, oldest;
        size_t size = pz_journal_reader_read (self->reader, *seq, *seq + 1, durable, mask,
                                              self->recheck_buffer, PZ_PUBLICATION_MAX,
                                              &next, &oldest);
        pz_publication_t publication;
        if (size == 0 || pz_publication_parse (self->recheck_buffer, size, &publication)
                         != PZ_OK) {
            zsys_warning ("broker: audit: publication %" PRId64 " is no longer in the "
                          "journal: not re-checked", *seq);
            zlistx_delete (self->rechecks, zlistx_cursor (self->rechecks));
            continue;
        }
        //  X <seq>, then the verdicts set right.
        uint8_t *fixed = self->correction;
        size_t wrong = 0;
        for (size_t index = 0; index < publication.count; index++) {
            const uint8_t *record = publication.records + index * PZ_RECORD_SIZE;
            int64_t value = pz_record_value (record);
            if (!pz_audit_verdict_right (pz_record_tag (record), value))
                pz_record_encode (fixed + PZ_RECORD_SIZE * (1 + wrong++),
                    pz_record_tag (record) == PZ_TAG_PRIME ? PZ_TAG_COMPOSITE : PZ_TAG_PRIME,
                    value);
        }
        if (wrong > 0) {
            pz_record_encode (fixed, PZ_TAG_CORRECTION, *seq);
            pz_request_t none;
            memset (&none, 0, sizeof none);
            zmq_msg_init (&none.body);
            s_item_t *item = s_batch_add (self, &none, false, S_CORRECTION);
            s_build_publication (self, &item->publications [0], PZ_TAG_CORRECTION,
                                 fixed, 1 + wrong);
            if (self->journal)
                pz_journal_correction (self->journal,
                    (const uint8_t *) zmq_msg_data (&item->publications [0]),
                    zmq_msg_size (&item->publications [0]));
            zsys_warning ("broker: audit: publication %" PRId64 " held %zu wrong "
                          "verdicts: correction published", *seq, wrong);
        }
        zlistx_delete (self->rechecks, zlistx_cursor (self->rechecks));
    }
}

//  Asks the syncer to sync what was written, unless it is at work already:
//  one sync then covers every write before it (group commit).
static void
s_sync_start (pz_broker_t *self)
{
    if (self->sync_running || self->tickets_synced == self->tickets_written)
        return;
    int fd = pz_journal_sync_fd (self->journal);
    self->sync_position = pz_journal_written (self->journal);
    zsock_send (self->syncer, "s48", "SYNC", fd, self->tickets_written);
    self->sync_running = true;
}

//  Handles the syncer's answer: settles the batches the sync covered.
//  Returns false if the sync failed: the broker must stop, since what the
//  journal holds on disk can no longer be known (fsync errors are not
//  retried; a restart reads back whatever is there).
static bool
s_sync_done (pz_broker_t *self)
{
    char *command = NULL;
    uint32_t error = 0;
    uint64_t ticket = 0;
    if (zsock_recv (self->syncer, "s48", &command, &error, &ticket) != 0 || !command) {
        zstr_free (&command);
        return false;
    }
    zstr_free (&command);
    self->sync_running = false;
    if (error != 0) {
        zsys_error ("broker: cannot sync journal %s (%s): stopping; nothing "
                    "unsynced was acknowledged", self->journal_dir, strerror ((int) error));
        return false;
    }
    self->tickets_synced = ticket;
    pz_journal_synced (self->journal, self->sync_position);
    self->stats.commits++;
    while (self->batch_waiting > 0
       &&  self->batches [self->batch_first].ticket <= ticket) {
        s_batch_settle (self, &self->batches [self->batch_first]);
        self->batch_first = (self->batch_first + 1) % S_BATCHES;
        self->batch_waiting--;
    }
    //  What gathered meanwhile goes out now, with the next sync.
    s_batch_end (self);
    s_sync_start (self);
    return true;
}

//  zactor body: makes the journal durable off the loop's thread. Each
//  "SYNC" brings a descriptor of its own (a dup, so that a segment rolled
//  over meanwhile cannot close it under us) and a ticket; the answer is
//  "DONE", the errno of fdatasync (0 if it worked) and the ticket.
static void
s_syncer (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal (pipe, 0);
    while (true) {
        char *command = NULL;
        uint32_t fd = 0;
        uint64_t ticket = 0;
        if (zsock_recv (pipe, "s48", &command, &fd, &ticket) != 0 || !command
        ||  streq (command, "$TERM")) {
            zstr_free (&command);
            break;
        }
        zstr_free (&command);
        int error = (int) fd < 0 ? EBADF : fdatasync ((int) fd) == 0 ? 0 : errno;
        if ((int) fd >= 0)
            close ((int) fd);
        zsock_send (pipe, "s48", "DONE", (uint32_t) error, ticket);
    }
}


//  --------------------------------------------------------------------------
//  Notes that a sink subscribed to a topic (a prefix), or that the last
//  sink subscribed to it left, and works out again which published tags
//  some topic is a prefix of. XPUB passes every subscription (verbose) but
//  an unsubscription only when no subscriber of that topic is left, so a
//  set of topics is exact.
static void
s_note_topic (pz_broker_t *self, bool subscribed, const uint8_t *topic, size_t size)
{
    char *key = (char *) malloc (2 * size + 1);
    assert (key);
    for (size_t index = 0; index < size; index++)
        snprintf (key + 2 * index, 3, "%02x", topic [index]);
    key [2 * size] = '\0';
    if (subscribed)
        zhashx_update (self->topics, key, self->topics);
    else
        zhashx_delete (self->topics, key);
    free (key);
    memset (self->wanted, 0, sizeof self->wanted);
    for (void *item = zhashx_first (self->topics); item; item = zhashx_next (self->topics)) {
        const char *name = (const char *) zhashx_cursor (self->topics);
        unsigned first = 0;
        bool empty = name [0] == '\0';
        if (!empty)
            sscanf (name, "%2x", &first);
        for (int index = 0; index < PZ_TAG_COUNT; index++)
            if (empty || first == (unsigned char) PZ_TAGS_PUBLISHED [index])
                self->wanted [index] = true;
    }
}

//  Reads subscription messages from the XPUB socket and logs them.

static void
s_read_subscriptions (pz_broker_t *self)
{
    for (int burst = 0; burst < S_BURST; burst++) {
        zmq_msg_t message;
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, zsock_resolve (self->publish), ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&message);
            return;
        }
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&message);
        size_t size = zmq_msg_size (&message);
        if (size >= 1 && (data [0] == 0 || data [0] == 1))
            s_note_topic (self, data [0] == 1, data + 1, size - 1);
        if (size >= 1 && data [0] == 1) {
            self->stats.subscriptions++;
            zsys_info ("broker: sink subscribed to '%.*s' (subscriptions: %" PRIu64 ")",
                       (int) (size - 1), (const char *) data + 1,
                       self->stats.subscriptions);
        }
        else
        if (size >= 1 && data [0] == 0 && pz_log_verbose ())
            zsys_debug ("broker: sink unsubscribed from '%.*s'",
                        (int) (size - 1), (const char *) data + 1);
        zmq_msg_close (&message);
    }
}


//  --------------------------------------------------------------------------
//  Copies the broker's counters into stats, with the leases' own.

void
pz_broker_stats (pz_broker_t *self, pz_broker_stats_t *stats)
{
    assert (self && stats);
    pz_leases_stats_t leases;
    pz_leases_stats (self->leases, &leases);
    self->stats.dispatched = leases.dispatched;
    self->stats.dispatches = leases.dispatches;
    self->stats.redispatched = leases.redispatched;
    self->stats.inflight = leases.numbers;
    pz_ranges_stats (self->ranges, &self->stats.ranges);
    pz_audit_stats_t audit;
    pz_audit_stats (self->audit, &audit);
    self->stats.audited = audit.records;
    *stats = self->stats;
}

//  A baseline for rates: the counters when the last report was made.
//  Log lines and the history endpoint's snapshots keep one each.
typedef enum { S_FOR_LOG, S_FOR_SNAPSHOT } s_audience_t;

//  Returns count per second over since_ms (0 if no time has passed).
static double
s_rate (uint64_t count, int64_t since_ms)
{
    return since_ms > 0 ? 1000.0 * (double) count / (double) since_ms : 0;
}

//  Returns the time the audience's rates are measured over: since its last
//  report, or since the start for the final one.
static int64_t
s_since_ms (pz_broker_t *self, int64_t now_ms, bool final, s_audience_t audience)
{
    return now_ms - (final ? self->started_ms : self->reported_ms [audience]);
}

//  Returns the verdicts published per second over since_ms, and moves the
//  audience's baseline to now. stats holds the current counters.
static double
s_results_rate (pz_broker_t *self, const pz_broker_stats_t *stats, int64_t now_ms,
                bool final, s_audience_t audience, int64_t since_ms)
{
    uint64_t results = stats->results - (final ? 0 : self->results_reported [audience]);
    self->results_reported [audience] = stats->results;
    self->reported_ms [audience] = now_ms;
    return s_rate (results, since_ms);
}

//  Returns a worker's numbers per second over since_ms, and moves its
//  baseline for the audience.
static double
s_worker_rate (s_worker_t *worker, bool final, s_audience_t audience, int64_t since_ms)
{
    uint64_t numbers = worker->numbers - (final ? 0 : worker->numbers_reported [audience]);
    worker->numbers_reported [audience] = worker->numbers;
    return s_rate (numbers, since_ms);
}

//  Returns the workers' names, sorted, for a stable order. Caller owns
//  return value (zlistx_destroy).
static zlistx_t *
s_worker_names (pz_broker_t *self)
{
    zlistx_t *names = zhashx_keys (self->workers);
    zlistx_set_comparator (names, (zlistx_comparator_fn *) strcmp);
    zlistx_sort (names);
    return names;
}

//  Returns the stats as one JSON object (docs/STATS.md), rates measured
//  since the audience's previous report (since the start if final), and
//  moves that audience's baseline. Caller owns return value.
static char *
s_stats_json (pz_broker_t *self, int64_t now_ms, bool final, s_audience_t audience)
{
    pz_broker_stats_t stats;
    pz_broker_stats (self, &stats);
    char *json = NULL;
    size_t json_size = 0;
    FILE *out = open_memstream (&json, &json_size);
    assert (out);
    int64_t since_ms = s_since_ms (self, now_ms, final, audience);
    double rate = s_results_rate (self, &stats, now_ms, final, audience, since_ms);
    fprintf (out, "{\"type\":\"stats\",\"final\":%s,\"uptime_ms\":%" PRId64
             ",\"accepted\":%" PRIu64 ",\"requests\":%" PRIu64
             ",\"retries\":%" PRIu64 ",\"dispatched\":%" PRIu64
             ",\"dispatches\":%" PRIu64 ",\"redispatched\":%" PRIu64
             ",\"results\":%" PRIu64 ",\"duplicates\":%" PRIu64
             ",\"inflight\":%" PRIu64 ",\"recovered\":%" PRIu64
             ",\"published\":%" PRIu64 ",\"seq\":%" PRId64
             ",\"journal\":%s,\"commits\":%" PRIu64 ",\"unavailable\":%" PRIu64
             ",\"subscriptions\":%" PRIu64 ",\"audit\":%g,\"audited\":%" PRIu64
             ",\"audit_failures\":%" PRIu64 ",\"cut_off\":%" PRIu64
             ",\"corrections\":%" PRIu64 ",\"errors\":{",
             final ? "true" : "false", now_ms - self->started_ms,
             stats.accepted, stats.requests, stats.retries, stats.dispatched,
             stats.dispatches, stats.redispatched, stats.results,
             stats.duplicates, stats.inflight, stats.recovered,
             stats.published, self->next_seq - 1,
             self->journal ? "true" : "false", stats.commits,
             stats.unavailable, stats.subscriptions, self->config.audit,
             stats.audited, stats.audit_failures, stats.cut_off, stats.corrections);
    const char *comma = "";
    for (int code = 1; code <= PZ_ERR_MAX; code++)
        if (stats.errors [code]) {
            fprintf (out, "%s\"%d\":%" PRIu64, comma, code, stats.errors [code]);
            comma = ",";
        }
    fprintf (out, "},\"ranges\":{\"open\":%" PRIu64 ",\"pieces\":%" PRIu64
             ",\"dispatched\":%" PRIu64 ",\"redispatched\":%" PRIu64 ",\"settled\":%"
             PRIu64 ",\"numbers\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"done\":%"
             PRIu64 "}", stats.ranges.open, stats.ranges.pieces, stats.ranges.dispatched,
             stats.ranges.redispatched, stats.ranges.settled, stats.ranges.numbers,
             stats.ranges.duplicates, stats.ranges.done);
    fprintf (out, ",\"rate\":%.0f,\"workers\":[", rate);
    zlistx_t *names = s_worker_names (self);
    comma = "";
    for (const char *name = (const char *) zlistx_first (names); name;
         name = (const char *) zlistx_next (names)) {
        s_worker_t *worker = (s_worker_t *) zhashx_lookup (self->workers, name);
        double worker_rate = s_worker_rate (worker, final, audience, since_ms);
        fprintf (out, "%s{\"name\":\"%s\",\"numbers\":%" PRIu64 ",\"reports\":%" PRIu64
                 ",\"duplicates\":%" PRIu64 ",\"rejected\":%" PRIu64
                 ",\"rate\":%.0f,\"last_seen_ms\":%" PRId64 ",\"wrong\":%" PRIu64
                 ",\"cut_off\":%s}",
                 comma, worker->name, worker->numbers, worker->reports,
                 worker->duplicates, worker->rejected, worker_rate,
                 now_ms - worker->last_seen_ms, worker->wrong,
                 worker->wrong && self->config.ban_s > 0
                 && now_ms < worker->cut_off_until_ms ? "true" : "false");
        comma = ",";
    }
    zlistx_destroy (&names);
    fprintf (out, "]}");
    fclose (out);
    return json;
}

//  Hands the history thread a fresh snapshot of the stats, for the stats
//  request on the history endpoint (playzmq-top, health checks).
static void
s_snapshot_stats (pz_broker_t *self, int64_t now_ms)
{
    char *json = s_stats_json (self, now_ms, false, S_FOR_SNAPSHOT);
    pthread_mutex_lock (&self->shared.stats_lock);
    char *old = self->shared.stats_json;
    self->shared.stats_json = json;
    pthread_mutex_unlock (&self->shared.stats_lock);
    free (old);
}

//  Reports the counters: one JSON object on stdout with --stats-format
//  json (docs/STATS.md), else log lines for people, the same fields by the
//  same names. final adds what happens to work without a verdict.

static void
s_log_stats (pz_broker_t *self, int64_t now_ms, bool final)
{
    if (self->config.stats_json) {
        char *json = s_stats_json (self, now_ms, final, S_FOR_LOG);
        printf ("%s\n", json);
        fflush (stdout);
        free (json);
    }
    else {
        pz_broker_stats_t stats;
        pz_broker_stats (self, &stats);
        char errors [240] = "";
        size_t used = 0;
        uint64_t error_total = 0;
        for (int code = 1; code <= PZ_ERR_MAX; code++)
            if (stats.errors [code]) {
                error_total += stats.errors [code];
                used += (size_t) snprintf (errors + used, sizeof errors - used,
                                           " E%d:%" PRIu64, code, stats.errors [code]);
            }
        int64_t since_ms = s_since_ms (self, now_ms, final, S_FOR_LOG);
        double rate = s_results_rate (self, &stats, now_ms, final, S_FOR_LOG, since_ms);
        zsys_info ("broker: %saccepted %" PRIu64 " dispatched %" PRIu64
                   " redispatched %" PRIu64 " results %" PRIu64 " duplicates %" PRIu64
                   " inflight %" PRIu64 " retries %" PRIu64 " errors %" PRIu64 "%s%s%s"
                   " requests %" PRIu64 " dispatches %" PRIu64 " recovered %" PRIu64
                   " seq %" PRId64 " workers %zu %.0f numbers/s",
                   final ? "final: " : "", stats.accepted, stats.dispatched,
                   stats.redispatched, stats.results, stats.duplicates,
                   stats.inflight, stats.retries, error_total,
                   used ? " [" : "", errors + (used ? 1 : 0), used ? "]" : "",
                   stats.requests, stats.dispatches, stats.recovered,
                   self->next_seq - 1, zhashx_size (self->workers), rate);
        zlistx_t *names = s_worker_names (self);
        for (const char *name = (const char *) zlistx_first (names); name;
             name = (const char *) zlistx_next (names)) {
            s_worker_t *worker = (s_worker_t *) zhashx_lookup (self->workers, name);
            zsys_info ("broker: %sworker %s: numbers %" PRIu64 " reports %" PRIu64
                       " duplicates %" PRIu64 " rejected %" PRIu64 " %.0f numbers/s,"
                       " last seen %" PRId64 " ms ago", final ? "final: " : "",
                       worker->name, worker->numbers, worker->reports,
                       worker->duplicates, worker->rejected,
                       s_worker_rate (worker, final, S_FOR_LOG, since_ms),
                       now_ms - worker->last_seen_ms);
        }
        zlistx_destroy (&names);
    }
    if (final && self->stats.inflight > 0) {
        if (self->journal)
            zsys_info ("broker: %" PRIu64 " acknowledged numbers have no verdict "
                       "yet; they are in the journal and go out again at the next start",
                       self->stats.inflight);
        else
            zsys_warning ("broker: %" PRIu64 " acknowledged numbers had no verdict "
                          "at exit and are lost", self->stats.inflight);
    }
}


//  --------------------------------------------------------------------------
//  Returns true if the broker may read another source message: not
//  draining, the journal writable (or so we hope: a failed commit is tried
//  again with the next request), and room in the window for numbers and for
//  messages. The second bound keeps memory small when every message holds
//  one number.

static bool
s_window_open (pz_broker_t *self)
{
    pz_leases_stats_t leases;
    pz_leases_stats (self->leases, &leases);
    //  Numbers and messages not yet handed to the leases: in batches.
    uint64_t numbers = 0, messages = 0;
    for (size_t batch = 0; batch <= self->batch_waiting; batch++) {
        s_batch_t *waiting = &self->batches [(self->batch_first + batch) % S_BATCHES];
        numbers += waiting->numbers;
        messages += waiting->count - waiting->leased;
    }
    //  Room is kept for a burst of reports after the sources.
    //  Ranges are few and small until cut: each counts as a message.
    pz_ranges_stats_t ranges;
    pz_ranges_stats (self->ranges, &ranges);
    return !self->draining
        && s_current (self)->count < S_BATCH_ITEMS - S_BURST
        && leases.numbers + numbers < (uint64_t) self->config.max_inflight
        && leases.messages + messages + ranges.open < (uint64_t) self->config.max_messages;
}

//  Reads up to S_BURST requests from a ROUTER and hands each to take.

static void
s_serve (pz_broker_t *self, zsock_t *router,
         void (*take) (pz_broker_t *, pz_request_t *), bool window_applies)
{
    for (int burst = 0; burst < S_BURST; burst++) {
        if (window_applies && !s_window_open (self))
            return;
        pz_request_t request;
        int got = pz_request_recv (&request, zsock_resolve (router));
        if (got == 0)
            return;
        if (got == 1)
            take (self, &request);
        else
        if (s_reject_log_allowed (self))
            zsys_warning ("broker: dropped a message on the %s endpoint that is "
                          "not a request (no empty delimiter frame)",
                          router == self->source ? "source" : "results");
    }
}

//  Attaches a monitor of connections accepted and ended to sock and
//  returns the PAIR that reads it, or NULL (logged: the lanes of ranges
//  then follow reporting threads only). Caller owns return value.
static zsock_t *
s_monitor_open (zsock_t *sock)
{
    //  A name of its own: tests run several brokers in one process.
    static atomic_int instances;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://playzmq-peers.%d",
              atomic_fetch_add (&instances, 1));
    if (zmq_socket_monitor (zsock_resolve (sock), endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == -1) {
        zsys_warning ("broker: cannot monitor the dispatch endpoint: %s",
                      zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    assert (monitor);
    zsock_set_linger (monitor, 0);
    zsock_set_rcvhwm (monitor, 0);      //  libzmq blocks on a full monitor
    if (zsock_connect (monitor, "%s", endpoint) == -1) {
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
        zsock_destroy (&monitor);
        zsys_warning ("broker: cannot read the dispatch endpoint's monitor");
    }
    return monitor;
}

//  Counts the dispatch socket's connections (each worker thread's PULL is
//  one) and tells the ranges, which cut as many lanes near the top before
//  any thread has reported. Without CURVE from our monitor's events, read
//  here without waiting; with CURVE the ZAP actor counts them.
static void
s_count_dispatch_peers (pz_broker_t *self)
{
    if (self->zap) {
        int peers = -1;
        zstr_send (self->zap, "PEERS dispatch");
        zsock_recv (self->zap, "i", &peers);
        self->dispatch_peers = peers > 0 ? (size_t) peers : 0;
    }
    else
    while (self->dispatch_monitor) {
        //  An event is two frames: 2 bytes of event, 4 of value; endpoint.
        zmq_msg_t head;
        zmq_msg_init (&head);
        if (zmq_msg_recv (&head, zsock_resolve (self->dispatch_monitor), ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&head);
            break;
        }
        uint16_t event = 0;
        if (zmq_msg_size (&head) == 6)
            memcpy (&event, zmq_msg_data (&head), sizeof event);
        while (zmq_msg_more (&head)) {
            zmq_msg_close (&head);
            zmq_msg_init (&head);
            zmq_msg_recv (&head, zsock_resolve (self->dispatch_monitor), 0);
        }
        zmq_msg_close (&head);
        if (event == ZMQ_EVENT_ACCEPTED)
            self->dispatch_peers++;
        else
        if (event == ZMQ_EVENT_DISCONNECTED && self->dispatch_peers > 0)
            self->dispatch_peers--;
    }
    pz_ranges_set_peers (self->ranges, self->dispatch_peers);
}

//  Unbinds one endpoint and binds it again, dropping every connection it
//  accepted (libzmq closes the sessions of a listener it unbinds); the
//  peers reconnect and pass the handshake again. 0, or -1 (logged).
static int
s_rebind (pz_broker_t *self, int index, zsock_t *sock)
{
    void *handle = zsock_resolve (sock);
    const char *endpoint = self->endpoints [index];
    if (zmq_unbind (handle, endpoint) == -1) {
        zsys_error ("broker: cannot unbind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    //  The old listener closes in libzmq's I/O thread: the port may be
    //  busy for a moment.
    for (int attempt = 0; attempt < 200; attempt++) {
        if (zmq_bind (handle, endpoint) == 0) {
            zsys_info ("broker: %s endpoint rebound to %s: its peers pass the "
                       "handshake again", s_names [index], endpoint);
            return 0;
        }
        zclock_sleep (10);
    }
    zsys_error ("broker: cannot bind %s again: %s", endpoint, zmq_strerror (zmq_errno ()));
    return -1;
}

//  Reads the allow directory again (SIGHUP, RELOAD); cuts off the roles
//  whose keys were removed. Returns the keys loaded, or -1.
static int
s_reload (pz_broker_t *self)
{
    if (!self->zap) {
        zsys_info ("broker: reload asked, but no --curve-cert: nothing to read");
        return -1;
    }
    int keys = -1, removed = 0;
    zstr_send (self->zap, "RELOAD");
    if (zsock_recv (self->zap, "ii", &keys, &removed) == -1)
        return -1;
    zsock_t *socks [4] = { self->source, self->publish, self->dispatch, self->results };
    for (int index = 0; index < 4 && keys >= 0; index++)
        if (pz_zap_domain_roles (s_names [index]) & removed)
            s_rebind (self, index, socks [index]);
    return keys;
}

//  Handles a command on the actor pipe. Returns false on $TERM.
static bool
s_handle_pipe (pz_broker_t *self, zsock_t *pipe)
{
    char *command = zstr_recv (pipe);
    bool go_on = command && !streq (command, "$TERM");
    if (command && streq (command, "ENDPOINTS"))
        zsock_send (pipe, "sssss", self->endpoints [0], self->endpoints [1],
                    self->endpoints [2], self->endpoints [3], self->endpoints [4]);
    else
    if (command && streq (command, "STATS")) {
        pz_broker_stats_t stats;
        pz_broker_stats (self, &stats);
        zsock_send (pipe, "b", &stats, sizeof stats);
    }
    else
    if (command && streq (command, "RELOAD"))
        zsock_send (pipe, "i", s_reload (self));
    zstr_free (&command);
    return go_on;
}


//  --------------------------------------------------------------------------
//  The loop: serve until interrupted (then drain) or $TERM on pipe.

int
pz_broker_run (pz_broker_t *self, zsock_t *pipe)
{
    assert (self);
    int status = 0;
    self->started_ms = zclock_mono ();
    self->reported_ms [S_FOR_LOG] = self->reported_ms [S_FOR_SNAPSHOT] = self->started_ms;
    self->next_stats_ms = self->config.stats_s > 0 ?
        self->started_ms + self->config.stats_s * 1000 : INT64_MAX;
    //  Stats to answer with from the start, before the loop's first turn:
    //  whoever saw the lines below may ask at once.
    s_snapshot_stats (self, self->started_ms);
    self->next_snapshot_ms = self->started_ms + PZ_HISTORY_SNAPSHOT_MS;
    for (int index = 0; index < S_ENDPOINTS; index++)
        zsys_info ("broker: %s endpoint bound to %s", s_names [index],
                   self->endpoints [index]);
    if (!self->journal)
        zsys_info ("broker: no journal: a crash (kill -9, power loss) loses up to "
                   "%" PRId64 " acknowledged numbers, and sinks get no history; "
                   "--journal DIR keeps them", self->config.max_inflight + PZ_RECORDS_MAX);
    if (!self->zap)
        zsys_info ("broker: no --curve-cert: running open: every endpoint takes any "
                   "peer, in plaintext (proto/PROTOCOL.md, \"Security\")");

    //  Subscriptions are only logged, so they are read every
    //  S_SUBSCRIPTIONS_MS rather than polled: one socket fewer in every
    //  zmq_poll, on the path of every source's ack.
    enum { SOURCE, RESULTS, DISPATCH, SYNCER, PIPE };
    zmq_pollitem_t items [] = {
        { zsock_resolve (self->source), 0, 0, 0 },
        { zsock_resolve (self->results), 0, 0, 0 },
        { zsock_resolve (self->dispatch), 0, 0, 0 },
        { self->syncer ? zsock_resolve (self->syncer) : NULL, 0, 0, 0 },
        { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 }
    };
    int item_count = pipe ? 5 : 4;
    while (true) {
        int64_t now_ms = zclock_mono ();
        atomic_store (&self->shared.tick_ms, now_ms);
        if (self->config.reload && *self->config.reload) {
            *self->config.reload = 0;
            s_reload (self);
        }
        if (zsys_interrupted && !self->draining) {
            self->draining = true;
            self->drain_deadline_ms = now_ms + self->config.drain_ms;
            pz_leases_stats_t leases;
            pz_leases_stats (self->leases, &leases);
            zsys_info ("broker: interrupted, taking no new numbers; waiting up "
                       "to %" PRId64 " ms for %" PRIu64 " in flight",
                       self->config.drain_ms, leases.numbers);
        }
        pz_leases_stats_t leases;
        pz_leases_stats (self->leases, &leases);
        if (self->draining && now_ms >= self->drain_deadline_ms)
            break;
        //  Pieces of ranges are not waited for: a range is cut lazily, and
        //  what is not done goes out again at the next start (journal).
        if (self->draining && leases.numbers == 0 && self->batch_waiting == 0
        &&  s_current (self)->count == 0)
            break;

        pz_leases_expire (self->leases, now_ms);
        pz_leases_push (self->leases, zsock_resolve (self->dispatch), now_ms, self->draining);
        pz_ranges_expire (self->ranges, now_ms);
        pz_ranges_push (self->ranges, zsock_resolve (self->dispatch), now_ms, self->draining);
        if (now_ms >= self->next_subscriptions_ms) {
            s_read_subscriptions (self);
            s_count_dispatch_peers (self);
            self->next_subscriptions_ms = now_ms + S_SUBSCRIPTIONS_MS;
        }
        s_reject_log_roll (self, now_ms);
        if (now_ms >= self->next_stats_ms) {
            s_log_stats (self, now_ms, false);
            self->next_stats_ms = now_ms + self->config.stats_s * 1000;
        }
        if (now_ms >= self->next_snapshot_ms) {
            s_snapshot_stats (self, now_ms);
            self->next_snapshot_ms = now_ms + PZ_HISTORY_SNAPSHOT_MS;
        }
        if (self->journal && now_ms >= self->next_retain_ms) {
            pz_journal_retain (self->journal);
            self->next_retain_ms = now_ms + S_RETAIN_MS;
        }

        //  Poll sources only while the window has room, and PUSH only for
        //  writability while work waits: that is the whole flow control.
        items [SOURCE].events = s_window_open (self) ? ZMQ_POLLIN : 0;
        //  Reports always, while the batch has room for a burst of them.
        items [RESULTS].events = s_current (self)->count <= S_BATCH_ITEMS - S_BURST ?
                                 ZMQ_POLLIN : 0;
        items [SYNCER].events = self->sync_running ? ZMQ_POLLIN : 0;
        items [DISPATCH].events = pz_leases_ready (self->leases, now_ms, self->draining)
                               || pz_ranges_ready (self->ranges, self->draining) ?
                                  ZMQ_POLLOUT : 0;

        int64_t wake_ms = self->next_stats_ms < self->next_subscriptions_ms ?
                          self->next_stats_ms : self->next_subscriptions_ms;
        if (self->next_snapshot_ms < wake_ms)
            wake_ms = self->next_snapshot_ms;
        int64_t leases_wake_ms = pz_leases_wake_ms (self->leases, now_ms, self->draining);
        if (leases_wake_ms < wake_ms)
            wake_ms = leases_wake_ms;
        if (pz_ranges_wake_ms (self->ranges) < wake_ms)
            wake_ms = pz_ranges_wake_ms (self->ranges);
        if (self->draining && self->drain_deadline_ms < wake_ms)
            wake_ms = self->drain_deadline_ms;
        //  Wake at least every 100 ms, to notice a signal that raced the poll.
        long timeout_ms = (long) (wake_ms - now_ms);
        timeout_ms = timeout_ms < 0 ? 0 : timeout_ms > 100 ? 100 : timeout_ms;

        //  Poll only the items that ask for something: zmq_poll pays a
        //  system call or two per socket item, even for one without events.
        zmq_pollitem_t active [5];
        int polled [5], active_count = 0;
        for (int index = 0; index < item_count; index++) {
            items [index].revents = 0;
            if (items [index].events) {
                polled [active_count] = index;
                active [active_count++] = items [index];
            }
        }
        if (zmq_poll (active, active_count, timeout_ms) == -1) {
            if (zmq_errno () == EINTR)
                continue;       //  a signal: the top of the loop looks at it
            zsys_error ("broker: poll failed: %s", zmq_strerror (zmq_errno ()));
            status = -1;
            break;
        }
        for (int index = 0; index < active_count; index++)
            items [polled [index]].revents = active [index].revents;

        //  A sync done settles the batches it covered, first.
        if ((items [SYNCER].revents & ZMQ_POLLIN) && !s_sync_done (self)) {
            status = -1;
            break;
        }
        //  Sources first: each waits for its ack, while a worker's next
        //  dispatch is already in its queue. Everything read in this turn
        //  is one batch, written with one write and synced together.
        if (items [SOURCE].revents & ZMQ_POLLIN)
            s_serve (self, self->source, s_take_request, true);
        if (items [RESULTS].revents & ZMQ_POLLIN)
            s_serve (self, self->results, s_take_report, false);
        s_take_rechecks (self);
        s_batch_end (self);
        if (self->journal)
            s_sync_start (self);
        if (pipe && (items [PIPE].revents & ZMQ_POLLIN) && !s_handle_pipe (self, pipe))
            break;
    }
    self->reject_window_ms = INT64_MIN / 2;     //  sums up the last window
    s_reject_log_roll (self, zclock_mono ());
    s_log_stats (self, zclock_mono (), true);
    return status;
}


//  --------------------------------------------------------------------------
//  Returns the resolved endpoint of one of the five sockets, or NULL.

const char *
pz_broker_endpoint (pz_broker_t *self, const char *which)
{
    assert (self && which);
    for (int index = 0; index < S_ENDPOINTS; index++)
        if (streq (which, s_names [index]))
            return self->endpoints [index];
    return NULL;
}


//  --------------------------------------------------------------------------
//  zactor body: a broker driven over its pipe.

void
pz_broker_actor (zsock_t *pipe, void *args)
{
    pz_broker_t *self = pz_broker_new ((const pz_broker_config_t *) args);
    zsock_signal (pipe, self ? 0 : 1);
    if (!self) {
        //  zactor_destroy still sends $TERM; wait for it before returning.
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    pz_broker_run (self, pipe);
    pz_broker_destroy (&self);
}
