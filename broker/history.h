/*  =========================================================================
    history - the broker's fifth endpoint: old publications, for sinks that
              missed some

    A ROUTER, served by a thread of its own (a zactor), so that a sink
    reading history never slows the broker's loop. With a journal it copies
    publications out of the journal's segment files, read-only; without one
    it answers the status part only (proto/PROTOCOL.md, "History"). The
    broker's loop tells it, through pz_history_shared_t, how far the journal
    is durable and the last tag-seq of each tag, and ticks a clock so that
    the answer to a status request also says the loop is alive.
    =========================================================================
*/
#ifndef PZ_HISTORY_H_INCLUDED
#define PZ_HISTORY_H_INCLUDED

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "publication.h"
#include "sock.h"

//  What the broker's loop publishes for the history thread. Written by the
//  loop only, read by the history thread only; each field on its own.
typedef struct {
    _Atomic int64_t durable_seq;    //  newest publication durable and published
    _Atomic int64_t tag_seq [PZ_TAG_COUNT]; //  newest tag-seq of each published
                                    //  tag (N, P, C, X, R) among those
    _Atomic int64_t tick_ms;        //  zclock_mono of the loop's latest turn
    pthread_mutex_t stats_lock;     //  guards stats_json
    char *stats_json;               //  the latest stats (docs/STATS.md), one
                                    //  JSON object; replaced, not edited
} pz_history_shared_t;

//  How often the loop hands the history thread fresh stats.
#define PZ_HISTORY_SNAPSHOT_MS  1000

typedef struct {
    const char *bind;               //  ROUTER endpoint
    const char *journal_dir;        //  the journal to read, or NULL for none
    pz_history_shared_t *shared;    //  the loop's state; outlives the actor
    pz_sockopts_t sockopts;         //  heartbeats, handshake, linger
} pz_history_config_t;

//  A loop silent for longer than this fails status and stats requests
//  (E 9): the health check of a container asks the history endpoint.
#define PZ_HISTORY_STALE_MS     5000

//  Checks the size bytes at data as a history request (proto/PROTOCOL.md,
//  "History"): H from, H until, then 1 to PZ_TAG_COUNT distinct published
//  tags with value 0. Returns PZ_OK and sets *from, *until, tags [0 ..
//  *tag_count) (room for PZ_TAG_COUNT), or the error code to answer with.
//  Public for fuzz/.
pz_error_t
    pz_history_parse (const uint8_t *data, size_t size, int64_t *from,
                      int64_t *until, char *tags, int *tag_count);

//  zactor body serving history: args is a pz_history_config_t * (copied).
//  Signals 0 once bound, 1 if the endpoint cannot be bound. Commands:
//  "ENDPOINT" (reply: the bound endpoint, wildcard port resolved), "$TERM".
void
    pz_history_actor (zsock_t *pipe, void *args);

#endif
