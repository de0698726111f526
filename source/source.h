/*  =========================================================================
    source - hands numbers to the broker and waits for its acks

    A source reads numbers from a seeded random generator or from a file (one
    decimal integer per line), and ranges (--range LO:HI, or lines LO:HI in
    the file: two records, R lo R hi, or Q with count_only), packs `batch`
    records per request (a range alone may exceed a batch of 1) behind an
    I <request-id> record, and sends them through a pz_client: up to
    `pipeline` requests outstanding on one DEALER socket, which the broker's
    REP answers as it would a REQ. A request whose ack does not come within
    `timeout_ms` is resent on a new connection with the same id (the Lazy
    Pirate pattern; the broker answers a repeated id from memory instead of
    accepting it twice), `retries` times, then the source gives up.
    =========================================================================
*/
#ifndef PZ_SOURCE_H_INCLUDED
#define PZ_SOURCE_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#include "sock.h"

typedef struct _pz_source_t pz_source_t;

typedef struct {
    const char *connect;        //  the broker's source REP endpoint
    const char *input;          //  file of numbers, "-" for stdin, NULL for random
    int64_t count;              //  random numbers to send
    int64_t min;                //  random numbers are uniform in [min, max]
    int64_t max;
    int64_t seed;               //  0: a different sequence every run
    int64_t batch;              //  numbers per request, 1 to PZ_RECORDS_MAX
    int64_t rate;               //  numbers per second, at most; 0: as fast as acks come
    int64_t timeout_ms;         //  wait this long for an ack before resending
    int64_t retries;            //  resends of one request before giving up
    int64_t wait_s;             //  before the broker first answers, keep trying
                                //  this long whatever the retries (0: don't)
    int64_t pipeline;           //  requests outstanding at once, 1 to
                                //  PZ_CLIENT_SLOTS_MAX (default 512)
    const char *acked_path;     //  if not NULL, every acknowledged number goes here
    const int64_t *ranges;      //  ranges to send first: lo, hi pairs (the
                                //  caller's array), or NULL
    size_t range_count;         //  ranges in it
    bool count_only;            //  send ranges as Q ranges (count only) and print
                                //  "lo:hi count" for each from its announcement
    const char *publish;        //  with count_only: the broker's publish endpoint
    const char *history;        //  with count_only: its history endpoint, for an
                                //  announcement the subscription missed; or NULL
    pz_sockopts_t sockopts;     //  heartbeats, handshake
} pz_source_config_t;

typedef struct {
    uint64_t sent;              //  numbers sent (resends not counted)
    uint64_t acked;             //  numbers the broker acknowledged
    uint64_t rejected;          //  numbers in requests answered with E
    uint64_t resends;           //  requests sent again after a timeout
    uint64_t deferred;          //  requests sent again later after an E 9
    uint64_t bad_lines;         //  input lines that were neither a 64-bit integer
                                //  nor a range LO:HI
    uint64_t ranges;            //  ranges acknowledged
    uint64_t counted;           //  of those, announced with their count (count_only)
    uint64_t range_resends;     //  requests of ranges sent again after a broker restart
    double seconds;             //  from first send to last ack
    double ack_p50_ms;          //  median request-to-ack time
    double ack_p99_ms;          //  99th percentile request-to-ack time
} pz_source_stats_t;

//  Fills config with the defaults: 100 random numbers in [1, 1000000], one
//  per request, to tcp://localhost:5555.
void
    pz_source_config_init (pz_source_config_t *config);

//  Creates a source: opens the input and acked files and connects. Returns
//  NULL after logging what failed. Caller owns return value.
pz_source_t *
    pz_source_new (const pz_source_config_t *config);

//  Destroys the source, flushing the acked file. NULL-safe; nulls *self_p.
void
    pz_source_destroy (pz_source_t **self_p);

//  Sends every number and range and waits for every ack, and with
//  count_only for every range's announcement (each printed on stdout as
//  "lo:hi count" when it comes), or stops at SIGINT/SIGTERM.
//  Returns 0 if all went well, 1 if the broker stopped answering (logged,
//  naming the endpoint), rejected a request, or an input line was bad.
int
    pz_source_run (pz_source_t *self);

//  Parses a range "LO:HI" (0 <= LO <= HI <= 2^63 - 1) into *lo and *hi.
//  Returns NULL, or a short phrase saying what is wrong with it.
const char *
    pz_source_range_parse (const char *text, int64_t *lo, int64_t *hi);

//  Copies the source's counters into stats.
void
    pz_source_stats (pz_source_t *self, pz_source_stats_t *stats);

//  Reads the next number the source would send into *value: the next
//  valid line of the input (bad lines are counted in stats.bad_lines and
//  reported on stderr, blank lines skipped), or the next random number.
//  Returns false at the end. For tests and fuzz/: pz_source_run calls the
//  same parser; the source's connection is not used.
bool
    pz_source_next_number (pz_source_t *self, int64_t *value);

#endif
