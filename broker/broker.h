/*  =========================================================================
    broker - accepts numbers from sources, leases them to workers, publishes
             numbers and verdicts to sinks, and keeps them in a journal

    The broker owns five endpoints: a ROUTER for sources and one for worker
    reports (both answer as REP sockets would), an XPUB for sinks, a PUSH to
    workers, and the history ROUTER (history.h, in a thread of its own).
    Accepted source messages are published with sequence numbers and wait
    for workers in dispatches (leases.h: several messages merge into one
    while workers are busy); the first valid report for a dispatch publishes
    its verdicts. At most max_inflight numbers, in at most max_messages
    source messages, are accepted and unreported at once; past that the
    broker stops reading sources (they wait for their ack) but keeps serving
    reports. The loop never blocks on a send.

    With a journal (journal.h) no source is acknowledged and nothing is
    published before it is durable: the loop reads bursts of requests and
    reports, writes them as one block, a thread of its own syncs it, and
    only then does the loop reply and publish. Workers' reports are answered,
    and accepted numbers dispatched, once written: a verdict lost before its
    sync is computed again, and work waiting for syncs would leave the
    workers idle. A restarted broker reads the journal back and dispatches
    again what has no verdict.
    =========================================================================
*/
#ifndef PZ_BROKER_H_INCLUDED
#define PZ_BROKER_H_INCLUDED

#include <czmq.h>
#include <signal.h>
#include <stdint.h>

#include "ranges.h"
#include "record.h"
#include "sock.h"

typedef struct _pz_broker_t pz_broker_t;

//  Default port of the history endpoint (the other four are in sock.h).
#define PZ_PORT_HISTORY     5559

typedef struct {
    const char *source_bind;    //  ROUTER endpoint for sources (answers as REP)
    const char *publish_bind;   //  XPUB endpoint for sinks
    const char *dispatch_bind;  //  PUSH endpoint for workers
    const char *results_bind;   //  ROUTER endpoint for worker reports (as REP)
    const char *history_bind;   //  ROUTER endpoint serving old publications
    const char *journal_dir;    //  journal directory, or NULL for none
    int64_t retain_bytes;       //  journal kept at most this large; 0 = no limit
    int64_t retain_s;           //  journal segments kept this long; 0 = no limit
    int64_t max_inflight;       //  numbers accepted and unreported, at most
    int64_t max_messages;       //  source messages accepted and unreported, at most
    int64_t lease_ms;           //  a pushed dispatch is pushed again after this
    int64_t range_lease;        //  numbers in a piece of a Q range, at most (R
                                //  pieces: also at most PZ_RANGES_PUBLISH_MAX)
    int64_t range_inflight;     //  pieces of ranges out at once, at most
    int64_t coalesce_ms;        //  numbers may wait this long for more to join
                                //  their dispatch; 0 = push each message at once
    int64_t drain_ms;           //  on SIGINT/SIGTERM, wait this long for results
    int64_t stats_s;            //  log stats every this many seconds; 0 = at exit only
    bool stats_json;            //  stats as JSON lines on stdout, not log lines
    int64_t recent_requests;    //  source request ids remembered for retries
    int64_t publish_hwm;        //  messages queued per sink before it loses some; 0: no limit
    pz_sockopts_t sockopts;     //  heartbeats, handshake, linger; with CURVE
                                //  keys (pz_sockopts_set_curve) every endpoint
                                //  is a CURVE server, fail closed (zap.h)
    const char *curve_allow;    //  with CURVE keys: the directory of the public
                                //  certificates allowed in (required then)
    double audit;               //  share of each report's records tested again
                                //  before it is published (audit.h); 0: none
    int64_t ban_s;              //  a worker caught with a wrong verdict is cut
                                //  off for this long
    volatile sig_atomic_t *reload;  //  if not NULL: set (by a SIGHUP handler)
                                //  to have the loop read curve_allow again
} pz_broker_config_t;

typedef struct {
    uint64_t requests;          //  source messages accepted
    uint64_t accepted;          //  numbers acknowledged to sources
    uint64_t retries;           //  repeated source requests answered from memory
    uint64_t dispatched;        //  numbers pushed to workers the first time
    uint64_t dispatches;        //  messages those numbers went in (several
                                //  source messages merge while workers are busy)
    uint64_t redispatched;      //  numbers pushed again after their lease ran out
    uint64_t results;           //  numbers whose verdict was published
    uint64_t duplicates;        //  numbers in reports for completed dispatches
    uint64_t inflight;          //  numbers accepted and not yet reported
    uint64_t recovered;         //  numbers without verdict read back from the journal
    uint64_t subscriptions;     //  subscribe requests seen from sinks
    uint64_t published;         //  messages published (the last sequence number
                                //  of this process, less the first's)
    uint64_t commits;           //  journal blocks written and synced
    uint64_t unavailable;       //  requests and reports refused with E 9 because
                                //  the journal could not be written
    uint64_t audited;           //  verdicts the audit tested again
    uint64_t audit_failures;    //  reports refused for a wrong verdict (E 11)
    uint64_t cut_off;           //  reports refused because their sender is cut off
    uint64_t corrections;       //  verdicts published earlier found wrong and
                                //  corrected (X publications' records)
    uint64_t errors [PZ_ERR_MAX + 1];   //  E replies sent, by code
    pz_ranges_stats_t ranges;   //  ranges and their pieces (ranges.h)
} pz_broker_stats_t;

//  Fills config with the defaults (the ports in sock.h on all interfaces,
//  no journal).
void
    pz_broker_config_init (pz_broker_config_t *config);

//  Creates a broker: opens and reads back the journal if there is one,
//  then binds its five endpoints. Returns NULL, after logging why (an
//  endpoint that cannot be bound, a journal that is damaged or in use),
//  if it cannot serve. The config's strings are copied. Caller owns return
//  value.
pz_broker_t *
    pz_broker_new (const pz_broker_config_t *config);

//  Destroys the broker, closing its sockets and journal. NULL-safe; nulls
//  *self_p.
void
    pz_broker_destroy (pz_broker_t **self_p);

//  Serves until zsys_interrupted is set (then drains: no new numbers, up to
//  drain_ms for outstanding results) or, if pipe is not NULL, until "$TERM"
//  arrives on it (then stops at once). Logs final stats. Returns 0, or -1
//  if polling failed.
int
    pz_broker_run (pz_broker_t *self, zsock_t *pipe);

//  Returns the endpoint a socket is bound to, with a wildcard port resolved
//  ("tcp://127.0.0.1:41234"); which is "source", "publish", "dispatch",
//  "results" or "history". Returns NULL for any other name. The broker owns
//  the string.
const char *
    pz_broker_endpoint (pz_broker_t *self, const char *which);

//  Copies the broker's counters into stats.
void
    pz_broker_stats (pz_broker_t *self, pz_broker_stats_t *stats);

//  zactor body running a broker, for tests and embedding: args is a
//  pz_broker_config_t *. Signals 0 once bound, 1 if it cannot serve.
//  Commands: "ENDPOINTS" (reply: five strings, source publish dispatch
//  results history), "STATS" (reply: a frame holding a pz_broker_stats_t),
//  "RELOAD" (reads the allow directory again, as on SIGHUP; reply "i": keys
//  loaded, or -1), "$TERM".
//
//  On a reload that removed keys, the endpoints of their roles (source,
//  publish, dispatch, results) are unbound and bound again: every
//  connection there drops and must pass the handshake again, so a revoked
//  key is cut off at once. The history endpoint is not rebound: a revoked
//  sink keeps a history connection it already has until it reconnects.
void
    pz_broker_actor (zsock_t *pipe, void *args);

#endif
