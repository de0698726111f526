/*  =========================================================================
    ranges - accepted ranges, cut into pieces and leased to workers

    A source asks for the primes of an interval with two records, R lo R hi
    (publish every prime) or Q lo Q hi (count only), 0 <= lo <= hi < 2^63
    (proto/PROTOCOL.md, "Ranges"). The broker keeps each accepted range
    here, whole: it is cut lazily into pieces, I <id> R lo R hi (or Q), at
    most piece_numbers wide (R pieces at most PZ_RANGES_PUBLISH_MAX, so
    that their primes fit one report frame, Q pieces at most
    PZ_RANGES_COUNT_MAX, so that their block counts do), only as many at once as the
    workers can take: twice the worker threads that reported (numbers or a piece) in the
    last PZ_RANGES_ACTIVE_MS (at least 2), at most inflight_max. A pushed
    piece is leased for lease_ms like a dispatch of numbers and pushed again
    when its lease runs out; the first valid report settles it, later ones
    are duplicates. When the last piece of a range is settled, the range is
    done: the broker announces it once with its count.

    Piece ids share the broker's dispatch id space: id_base (its
    incarnation) + PZ_RANGES_ID_BIT + a sequence, so that ids of an earlier
    broker process are still told apart (E 6) and a number dispatch's id is
    never a piece's.

    A reported piece goes through three steps, as the broker's batches do
    (broker.c): pz_ranges_check finds it, pz_ranges_report counts it into
    its range when its report joins a batch (and tells whether that
    finishes the range), and pz_ranges_settle removes it once the batch is
    durable, or pz_ranges_undo takes the report back if the batch could
    not be written.
    =========================================================================
*/
#ifndef PZ_RANGES_H_INCLUDED
#define PZ_RANGES_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "record.h"

//  R pieces are at most this wide: by Brun-Titchmarsh an interval of y
//  numbers holds at most 2y / ln y primes, 80,660 for 2^19, which fit one
//  report of PZ_WIRE_MAX bytes (116,505 primes).
#define PZ_RANGES_PUBLISH_MAX   (INT64_C (1) << 19)
//  Q pieces are at most this wide: their report counts each block of
//  PZ_SIEVE_BLOCK numbers (worker/sieve.h) on its own for the audit, 8,192
//  records at most, well inside one report frame.
#define PZ_RANGES_COUNT_MAX     (INT64_C (1) << 28)
//  Default width of Q pieces: about 50 ms of primesieve near 10^12. Each
//  libprimesieve call sets up its sieve again (a few ms): measured, that
//  costs 10-20 % of a 2^26 piece there, 3-6 % of a 2^27 one.
#define PZ_RANGES_PIECE_DEFAULT (INT64_C (1) << 27)
//  Default bound of pieces out at once.
#define PZ_RANGES_INFLIGHT_DEFAULT  64
//  A worker thread counts as active this long after its last piece report.
#define PZ_RANGES_ACTIVE_MS     10000
//  Piece ids: this bit set in the sequence part of a dispatch id.
#define PZ_RANGES_ID_BIT        (INT64_C (1) << 39)

typedef struct _pz_ranges_t pz_ranges_t;
typedef struct _pz_piece_t pz_piece_t;

typedef struct {
    uint64_t open;              //  ranges accepted and not yet done
    uint64_t pieces;            //  pieces out: waiting, leased or reported
    uint64_t dispatched;        //  pieces pushed the first time
    uint64_t redispatched;      //  pieces pushed again after their lease ran out
    uint64_t settled;           //  pieces whose report was settled
    uint64_t numbers;           //  numbers in those pieces
    uint64_t duplicates;        //  reports of pieces settled before
    uint64_t done;              //  ranges done (announced)
} pz_ranges_stats_t;

//  What a finished range is announced with.
typedef struct {
    int64_t lo;                 //  the range's bounds
    int64_t hi;
    int64_t count;              //  primes in [lo, hi]
} pz_range_done_t;

//  Creates an empty set. Piece ids are id_base + PZ_RANGES_ID_BIT + 1, + 2,
//  ...; Q pieces are piece_numbers wide at most, R pieces also at most
//  PZ_RANGES_PUBLISH_MAX; at most inflight_max pieces are out at once.
//  Caller owns return value.
pz_ranges_t *
    pz_ranges_new (int64_t id_base, int64_t lease_ms, int64_t piece_numbers,
                   int64_t inflight_max);

//  Destroys the set. NULL-safe; nulls *self_p.
void
    pz_ranges_destroy (pz_ranges_t **self_p);

//  Checks the range records among count records at records (a source
//  request less its I record): every R or Q record must be directly
//  followed by a partner of the same tag (E 12), lo <= hi (E 13), both >= 0
//  (E 14). Returns PZ_OK and sets *ranges to the number of ranges, or the
//  first error, checked pair by pair from the first record.
pz_error_t
    pz_ranges_check_request (const uint8_t *records, size_t count, size_t *ranges);

//  Returns the key of the next range and reserves count keys from it.
int64_t
    pz_ranges_reserve_keys (pz_ranges_t *self, size_t count);

//  Makes the next reserved key at least key (after a restart).
void
    pz_ranges_keys_from (pz_ranges_t *self, int64_t key);

//  Adds an accepted range, tag R or Q, under a key from reserve_keys.
void
    pz_ranges_add (pz_ranges_t *self, int64_t key, char tag, int64_t lo, int64_t hi);

//  Marks [lo, hi] of range key as done with count primes, as read back from
//  a journal: it is never cut again. The range must be added, the piece
//  inside it and apart from every piece marked before. Returns true if it
//  finished the range (then the range is dropped: it was announced).
bool
    pz_ranges_restore_piece (pz_ranges_t *self, int64_t key, int64_t lo, int64_t hi,
                             int64_t count);

//  Notes that a worker thread (routing id peer, size bytes) reported, a
//  piece or numbers, at now_ms: for the bound of pieces out and the lanes.
void
    pz_ranges_seen (pz_ranges_t *self, const uint8_t *peer, size_t size, int64_t now_ms);

//  Sets the connections the dispatch socket has now (each worker thread's
//  PULL is one; PUSH deals to them in turn), for the lanes: a range near
//  the top is cut into as many lanes as there are connections or threads
//  reporting lately, whichever is more, before any of them has reported.
void
    pz_ranges_set_peers (pz_ranges_t *self, size_t peers);

//  Returns true if a piece may be pushed now: one waits (a lost lease, or
//  a range with numbers left to cut) within the bound, and not draining.
bool
    pz_ranges_ready (pz_ranges_t *self, bool draining);

//  Pushes ready pieces on the PUSH socket handle while it takes them
//  without blocking; each is leased. Returns how many went.
size_t
    pz_ranges_push (pz_ranges_t *self, void *handle, int64_t now_ms, bool draining);

//  Puts pieces whose lease ran out back first in line. Returns how many.
size_t
    pz_ranges_expire (pz_ranges_t *self, int64_t now_ms);

//  Returns the earliest lease end, or INT64_MAX.
int64_t
    pz_ranges_wake_ms (pz_ranges_t *self);

//  Returns true if id is a piece id this set issued.
bool
    pz_ranges_issued (pz_ranges_t *self, int64_t id);

//  Checks a piece report of size bytes: I <id> R lo R hi P... (primes
//  strictly ascending inside [lo, hi]) or I <id> Q lo Q hi Q count Q c1 ...
//  Q cm (m = pz_ranges_blocks: 0 <= each ck <= its block's width; their
//  sum is the audit's to check), the id and bounds those of the piece
//  leased.
//  Returns PZ_OK with *piece_p the piece, *reported_p true if its report is
//  in a batch not yet settled (this one echoes it), or *piece_p NULL if the
//  piece was settled before (a duplicate); or the error to answer: E 1, 3,
//  4, 8 as for any report, E 6 for an id never issued, E 7 for a report
//  that does not match its piece.
pz_error_t
    pz_ranges_check (pz_ranges_t *self, const uint8_t *data, size_t size,
                     pz_piece_t **piece_p, bool *reported_p);

//  Returns the number of PZ_SIEVE_BLOCK blocks a Q report of [lo, hi]
//  counts one by one: ceil ((hi - lo + 1) / PZ_SIEVE_BLOCK).
size_t
    pz_ranges_blocks (int64_t lo, int64_t hi);

//  Ends a leased piece's lease early and puts it first in line (its report
//  was refused by the audit). A piece not leased is left as it is.
void
    pz_ranges_release (pz_ranges_t *self, pz_piece_t *piece);

//  Counts a checked piece's report into its range: count primes. Returns
//  true and fills *done if that finishes the range.
bool
    pz_ranges_report (pz_ranges_t *self, pz_piece_t *piece, int64_t count,
                      pz_range_done_t *done);

//  Takes back pz_ranges_report (its batch could not be written): the piece
//  is leased again at once.
void
    pz_ranges_undo (pz_ranges_t *self, pz_piece_t *piece, int64_t now_ms);

//  Removes a reported piece whose batch is durable, and its range if the
//  piece finished it.
void
    pz_ranges_settle (pz_ranges_t *self, pz_piece_t *piece);

//  A piece's range key, tag (R or Q), bounds.
int64_t
    pz_piece_key (pz_piece_t *piece);
char
    pz_piece_tag (pz_piece_t *piece);
int64_t
    pz_piece_lo (pz_piece_t *piece);
int64_t
    pz_piece_hi (pz_piece_t *piece);

//  Copies the counters into stats.
void
    pz_ranges_stats (pz_ranges_t *self, pz_ranges_stats_t *stats);

#endif
