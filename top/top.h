/*  =========================================================================
    top - the broker's stats for people: a terminal view that refreshes
          once a second

    pz_top asks the broker's history endpoint for its stats (the one record
    `H 0`, proto/PROTOCOL.md "History"; the reply is one JSON object,
    docs/STATS.md) on a REQ socket, Lazy Pirate style: a request that gets
    no answer within the timeout costs the socket, and the next request
    goes out on a fresh one. Each good reply is parsed by a small bounded
    parser written for exactly that schema (unknown fields are skipped,
    known fields of the wrong type, numbers out of range, nesting deeper
    than 16 or trailing bytes make it a "bad reply"), and each new snapshot
    adds its verdicts/s to a ring of the last 60.

    The renderer turns what is known into plain ASCII lines: the endpoint
    and the broker's uptime, a chart of verdicts/s over the last 60
    snapshots (one a second), the totals (in flight, accepted, results,
    redispatched, duplicates, journal and seq), and one row per worker
    with its rate, numbers, reports, rejected, last seen and its share of
    the current rate, so that the work is seen to spread as workers come
    and go. When the broker does not answer, a line says so (and the last
    answer stays on screen, with its age). pz_top_run repaints a terminal
    with ANSI escapes (no curses) until SIGINT/SIGTERM; pz_top_once prints
    one snapshot, plain or as the raw JSON object.
    =========================================================================
*/
#ifndef PZ_TOP_H_INCLUDED
#define PZ_TOP_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sock.h"

//  The broker's history endpoint, unless sock.h names it already.
#ifndef PZ_PORT_HISTORY
#define PZ_PORT_HISTORY     5559
#endif

#define PZ_TOP_NAME_MAX     255     //  bytes of a worker name kept (a routing id's)
#define PZ_TOP_WORKERS_MAX  4096    //  workers in one snapshot, at most (the broker
                                    //  names 1,024 and counts the rest as one)
#define PZ_TOP_ERRORS_MAX   32      //  distinct error codes in one snapshot
#define PZ_TOP_SAMPLES      60      //  verdicts/s kept for the chart, one per snapshot

//  One worker of a snapshot (docs/STATS.md, "Each worker").
typedef struct {
    char name [PZ_TOP_NAME_MAX + 1];    //  its name, NUL-terminated, as sent
    int64_t numbers;            //  numbers whose verdicts it was first to report
    int64_t reports;            //  its reports that published verdicts
    int64_t duplicates;         //  numbers it reported after another worker had
    int64_t rejected;           //  its reports answered with an E
    double rate;                //  numbers/s since the broker's previous snapshot
    int64_t last_seen_ms;       //  milliseconds since its latest report
    int64_t wrong;              //  its reports the audit found wrong
    bool cut_off;               //  cut off by the audit now
} pz_top_worker_t;

//  One E code and how many times the broker sent it.
typedef struct {
    int64_t code;               //  the error code (1 and up)
    int64_t count;              //  E replies with that code
} pz_top_error_t;

//  One stats object (docs/STATS.md). Fields the object lacks stay 0.
typedef struct {
    bool final;                 //  the line written at exit
    int64_t uptime_ms;          //  since the broker started serving
    int64_t accepted;           //  numbers acknowledged to sources
    int64_t requests;           //  source messages accepted
    int64_t retries;            //  repeated requests answered from memory
    int64_t dispatched;         //  numbers pushed to workers the first time
    int64_t dispatches;         //  messages those went in
    int64_t redispatched;       //  numbers pushed again after their lease ran out
    int64_t results;            //  numbers whose verdict was published
    int64_t duplicates;         //  numbers in reports for completed dispatches
    int64_t inflight;           //  acknowledged, no verdict yet
    int64_t recovered;          //  read back from the journal at start
    int64_t published;          //  messages published by this process
    int64_t seq;                //  last sequence number published
    bool journal;               //  the broker keeps a journal
    int64_t commits;            //  journal syncs
    int64_t unavailable;        //  requests and reports answered E 9
    int64_t subscriptions;      //  subscribe requests seen from sinks
    pz_top_error_t errors [PZ_TOP_ERRORS_MAX];  //  E replies sent, by code
    int error_count;            //  entries used in errors
    double rate;                //  verdicts/s since the previous snapshot
    pz_top_worker_t *workers;   //  worker_count workers, sorted by the broker;
                                //  owned (pz_top_stats_reset frees them)
    int worker_count;           //  entries in workers
    int worker_slots;           //  entries allocated in workers
} pz_top_stats_t;

//  What the latest request came to.
typedef enum {
    PZ_TOP_NONE,                //  nothing asked yet
    PZ_TOP_OK,                  //  a stats object
    PZ_TOP_SILENT,              //  no reply within the timeout, or no connection
    PZ_TOP_UNAVAILABLE,         //  E 9: the broker's loop has stalled
    PZ_TOP_REFUSED,             //  another E code (a broker without stats?)
    PZ_TOP_BAD_REPLY            //  a reply that is not a stats object
} pz_top_state_t;

//  How a screen is rendered.
typedef struct {
    int cols;                   //  characters per line, at most; 0: no limit
    int rows;                   //  lines, at most; 0: no limit
    bool chart;                 //  draw the verdicts/s chart (not for one snapshot)
} pz_top_view_t;

typedef struct _pz_top_t pz_top_t;

//  Fills stats with an empty snapshot (no workers). Call before the first
//  pz_top_stats_parse of a pz_top_stats_t that is not zeroed.
void
    pz_top_stats_init (pz_top_stats_t *stats);

//  Frees stats' workers and empties it. NULL-safe.
void
    pz_top_stats_reset (pz_top_stats_t *stats);

//  Parses size bytes of data (not NUL-terminated, any bytes) as one stats
//  object into stats, which it resets first. Returns 0, or -1 with stats
//  empty and, if why is not NULL, one line saying what and where in why.
int
    pz_top_stats_parse (pz_top_stats_t *stats, const char *data, size_t size,
                        char *why, size_t why_size);

//  Creates a view of the broker whose history endpoint is endpoint (copied)
//  and opens its REQ socket. Returns NULL after logging if the endpoint is
//  not valid. Caller owns return value.
pz_top_t *
    pz_top_new (const char *endpoint);

//  Opens the REQ socket again with opts (e.g. CURVE keys from
//  pz_sockopts_curve_flags, to ask a broker that has certificates, with a
//  sink's key). Returns 0, or -1 after logging.
int
    pz_top_set_sockopts (pz_top_t *self, const pz_sockopts_t *opts);

//  Destroys the view and its socket. NULL-safe; nulls *self_p.
void
    pz_top_destroy (pz_top_t **self_p);

//  Sends one stats request and waits up to timeout_ms for its reply, which
//  goes to pz_top_feed; no reply (or a signal) goes to pz_top_feed_silence,
//  and the socket is replaced. Returns the state it came to.
pz_top_state_t
    pz_top_fetch (pz_top_t *self, int64_t timeout_ms);

//  Takes one reply body received at now_ms (zclock_mono): an E record, or
//  a stats object that becomes the current snapshot (a new one, by its
//  uptime, adds its rate to the chart; a smaller uptime, a restarted
//  broker, clears the chart). Returns the state it came to.
pz_top_state_t
    pz_top_feed (pz_top_t *self, const char *data, size_t size, int64_t now_ms);

//  Records that a request sent at sent_ms (zclock_mono) got no answer; why
//  says how (e.g. "no reply within 2000 ms"). The last snapshot stays.
//  Returns PZ_TOP_SILENT.
pz_top_state_t
    pz_top_feed_silence (pz_top_t *self, const char *why, int64_t sent_ms);

//  Returns the state of the latest request.
pz_top_state_t
    pz_top_state (pz_top_t *self);

//  Returns one line saying why the latest request failed, naming the
//  endpoint ("broker not answering (tcp://...): ..."), or "" when it did not.
const char *
    pz_top_problem (pz_top_t *self);

//  Returns the current snapshot, or NULL before the first one. Owned by
//  self; valid until the next feed.
const pz_top_stats_t *
    pz_top_stats (pz_top_t *self);

//  Returns the current snapshot's JSON text as received (*size its bytes),
//  or NULL before the first one. Owned by self.
const char *
    pz_top_raw (pz_top_t *self, size_t *size);

//  Renders the screen at now_ms into buffer as lines ending in '\n', within
//  view's limits, NUL-terminated and cut short if size is too small.
//  Returns the length written (not counting the NUL).
size_t
    pz_top_render (pz_top_t *self, char *buffer, size_t size,
                   const pz_top_view_t *view, int64_t now_ms);

//  Repaints out_fd (a terminal: clear and home with ANSI escapes, cursor
//  hidden) every interval_ms, each request waiting up to timeout_ms, until
//  SIGINT/SIGTERM (zsys_interrupted); then shows the cursor again. Returns
//  0, or 1 if out_fd could not be written.
int
    pz_top_run (pz_top_t *self, int out_fd, int64_t interval_ms, int64_t timeout_ms);

//  Asks once, waiting up to timeout_ms, and prints the snapshot on out_fd,
//  plain (json false) or as the raw JSON object and a newline. Returns 0
//  if the broker answered with stats, else 1 after one line on stderr.
int
    pz_top_once (pz_top_t *self, int out_fd, bool json, int64_t timeout_ms);

#endif
