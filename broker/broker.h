/*  =========================================================================
    broker - accepts numbers from sources, leases them to workers, publishes
             numbers and verdicts to sinks

    The broker owns four sockets: a REP for sources, an XPUB for sinks, a
    PUSH to workers and a REP for their reports. Each accepted source message
    becomes one dispatch with an id; a dispatch is leased to whichever worker
    PUSH picks and pushed again when its lease runs out, until the first
    valid report for it arrives. At most max_inflight numbers, in at most
    max_dispatches messages, are accepted and unreported at once; past that
    the broker stops reading sources (they wait for their ack) but keeps
    serving reports. The loop never blocks on a send.
    =========================================================================
*/
#ifndef PZ_BROKER_H_INCLUDED
#define PZ_BROKER_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "record.h"
#include "sock.h"

typedef struct _pz_broker_t pz_broker_t;

typedef struct {
    const char *source_bind;    //  REP endpoint for sources
    const char *publish_bind;   //  PUB endpoint for sinks
    const char *dispatch_bind;  //  PUSH endpoint for workers
    const char *results_bind;   //  REP endpoint for worker reports
    int64_t max_inflight;       //  numbers accepted and unreported, at most
    int64_t max_dispatches;     //  source messages accepted and unreported, at most
    int64_t lease_ms;           //  a pushed dispatch is pushed again after this
    int64_t coalesce_ms;        //  numbers may wait this long for more to join
                                //  their dispatch; 0 = push each message at once
    int64_t drain_ms;           //  on SIGINT/SIGTERM, wait this long for results
    int64_t stats_s;            //  log stats every this many seconds; 0 = at exit only
    int64_t recent_requests;    //  source request ids remembered for retries
    int64_t publish_hwm;        //  messages queued per sink before it loses some; 0: no limit
    pz_sockopts_t sockopts;     //  heartbeats, handshake, linger
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
    uint64_t subscriptions;     //  subscribe requests seen from sinks
    uint64_t errors [PZ_ERR_MAX + 1];   //  E replies sent, by code
} pz_broker_stats_t;

//  Fills config with the defaults (the ports in sock.h on all interfaces).
void
    pz_broker_config_init (pz_broker_config_t *config);

//  Creates a broker and binds its four endpoints. Returns NULL, after
//  logging which endpoint failed, if any cannot be bound. The config's
//  strings are copied. Caller owns return value.
pz_broker_t *
    pz_broker_new (const pz_broker_config_t *config);

//  Destroys the broker, closing its sockets. NULL-safe; nulls *self_p.
void
    pz_broker_destroy (pz_broker_t **self_p);

//  Serves until zsys_interrupted is set (then drains: no new numbers, up to
//  drain_ms for outstanding results) or, if pipe is not NULL, until "$TERM"
//  arrives on it (then stops at once). Logs final stats. Returns 0.
int
    pz_broker_run (pz_broker_t *self, zsock_t *pipe);

//  Returns the endpoint a socket is bound to, with a wildcard port resolved
//  ("tcp://127.0.0.1:41234"); which is "source", "publish", "dispatch" or
//  "results". Returns NULL for any other name. The broker owns the string.
const char *
    pz_broker_endpoint (pz_broker_t *self, const char *which);

//  Copies the broker's counters into stats.
void
    pz_broker_stats (pz_broker_t *self, pz_broker_stats_t *stats);

//  zactor body running a broker, for tests and embedding: args is a
//  pz_broker_config_t *. Signals 0 once bound (-1 if binding failed).
//  Commands: "ENDPOINTS" (reply: four strings, source publish dispatch
//  results), "STATS" (reply: a frame holding a pz_broker_stats_t), "$TERM".
void
    pz_broker_actor (zsock_t *pipe, void *args);

#endif
