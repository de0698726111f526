/*  =========================================================================
    worker - pulls leased dispatches, tests every number, reports verdicts

    A worker holds one PULL socket (dispatches from the broker) and one
    DEALER socket (reports to the broker, through a pz_client). For each
    dispatch, I <id> + N records, it sends one report, I <id> + one P or C
    record per number in the same order, and waits for the broker's A; up
    to `pipeline` reports wait for their acks while the next dispatch is
    tested. A missing ack is handled the Lazy Pirate way: a new connection,
    the same reports again, up to `retries` times; then the worker gives up. A report the
    broker rejects with E is logged and dropped (the lease brings the work
    back if it was ours to do). The playzmq-worker program runs `threads`
    workers, each in its own zactor.
    =========================================================================
*/
#ifndef PZ_WORKER_H_INCLUDED
#define PZ_WORKER_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "sock.h"

typedef struct _pz_worker_t pz_worker_t;

typedef struct {
    const char *dispatch;       //  PULL endpoint: the broker's dispatch PUSH
    const char *results;        //  the broker's results REP endpoint
    int64_t timeout_ms;         //  wait this long for an ack before retrying
    int64_t retries;            //  resends of one report before giving up
    int64_t prefetch;           //  dispatches queued in this worker, at most (RCVHWM)
    int64_t pipeline;           //  reports waiting for their acks at once, 1 to 64
    const char *name;           //  how the broker's stats and logs name this
                                //  worker (its results connection), or NULL
    int64_t wait_s;             //  before the broker first answers, keep trying
                                //  this long whatever the retries (0: don't)
    pz_sockopts_t sockopts;     //  heartbeats, handshake
} pz_worker_config_t;

typedef struct {
    uint64_t numbers;           //  numbers tested (or sieved, in pieces of
                                //  ranges) and acknowledged
    uint64_t reports;           //  reports acknowledged
    uint64_t rejected;          //  reports answered with E
    uint64_t deferred;          //  reports sent again later after an E 9
    uint64_t resends;           //  reports sent again after a timeout
    uint64_t malformed;         //  dispatches dropped as malformed
} pz_worker_stats_t;

//  Fills config with the defaults: tcp://localhost endpoints on the
//  default ports, 2500 ms timeout, 3 retries, 4 reports in flight.
void
    pz_worker_config_init (pz_worker_config_t *config);

//  Creates a worker and connects its two sockets. Returns NULL after logging
//  if an endpoint is invalid. The config's strings are copied.
//  Caller owns return value.
pz_worker_t *
    pz_worker_new (const pz_worker_config_t *config);

//  Destroys the worker. NULL-safe; nulls *self_p.
void
    pz_worker_destroy (pz_worker_t **self_p);

//  Works until zsys_interrupted, or "$TERM" on pipe if pipe is not NULL.
//  Returns 0 when told to stop, -1 when a report got no ack after all
//  retries (logged, naming the endpoint).
int
    pz_worker_run (pz_worker_t *self, zsock_t *pipe);

//  Copies the worker's counters into stats.
void
    pz_worker_stats (pz_worker_t *self, pz_worker_stats_t *stats);

//  zactor body running a worker: args is a pz_worker_t * whose ownership
//  passes to the actor. Signals 0 when running. Sends "FAILED" on the pipe
//  if the worker gives up. Commands: "STATS" (reply: a frame holding a
//  pz_worker_stats_t), "$TERM".
void
    pz_worker_actor (zsock_t *pipe, void *args);

#endif
