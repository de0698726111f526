/*  =========================================================================
    sieve - the primes of an interval, exactly, for every 0 <= lo <= hi < 2^63

    Part of PlayØMQ, a distributed prime checker on ZeroMQ.
    =========================================================================

    The worker's range crunching: a piece of a range (proto/PROTOCOL.md,
    "Ranges") asks for the primes in [lo, hi], or only for how many there
    are. Two methods, both exact:

    - libprimesieve (Kim Walisch's segmented sieve of Eratosthenes), one
      thread per call. Fast per number (0.3 ns near 10^12, 2.4 ns near
      10^18 on the reference machine), but each call first sieves the
      primes up to sqrt(hi) again: 0.45 s near 10^18, 2 s near 2^63.
    - a presieve by the primes below 2^16, then the worker's Baillie-PSW
      test (prime.h, exact below 2^64) on the survivors: about 50 ns per
      number near 10^18 whatever the width, nothing to set up.

    PZ_SIEVE_AUTO takes the one that costs less for the interval at hand:
    the second only for pieces narrow against sqrt(hi) (a 2^19 piece of
    primes to publish near 10^18). Pure functions, safe from any number of
    threads.

    A pz_sieve_t (one per worker thread) removes the setup from a run of
    pieces: it keeps one libprimesieve iterator open across calls, and a
    piece that starts where the last one ended (what a worker sees when the
    broker leases a range's pieces in order), or a little past it, goes on
    with the same sieving primes instead of a new call. pz_sieve_next uses
    it from 10^15 up, where the setup matters (below, the pure functions);
    pz_sieve_next_counts everywhere, as counting a piece block by block
    (for the broker's audit of Q pieces) takes an iterator anyway.
*/

#ifndef PZ_SIEVE_H_INCLUDED
#define PZ_SIEVE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Width of the blocks a Q piece's report counts one by one, so that the
//  broker's audit can recount one (proto/PROTOCOL.md, "Audit").
#define PZ_SIEVE_BLOCK      (INT64_C (1) << 15)
//  From this lo up, pz_sieve_next carries one iterator across the pieces a
//  thread gets (the broker cuts a range into lanes there: ranges.h).
#define PZ_SIEVE_CONTINUE_FROM  INT64_C (1000000000000000)

typedef enum {
    PZ_SIEVE_AUTO,              //  the cheaper of the two for the interval
    PZ_SIEVE_PRIMESIEVE,        //  libprimesieve, one thread
    PZ_SIEVE_PRESIEVE           //  small-prime presieve + Baillie-PSW
} pz_sieve_method_t;

//  Returns true if [lo, hi] is an interval this module takes: 0 <= lo <=
//  hi (every int64_t hi >= lo is below 2^63).
bool
    pz_sieve_valid (int64_t lo, int64_t hi);

//  Returns the number of primes p with lo <= p <= hi. The interval must be
//  valid (pz_sieve_valid).
int64_t
    pz_sieve_count (int64_t lo, int64_t hi, pz_sieve_method_t method);

//  Writes the primes of [lo, hi], ascending, into primes, at most max of
//  them, and returns how many there are in all: a return above max means
//  only the first max were written. The interval must be valid.
size_t
    pz_sieve_primes (int64_t lo, int64_t hi, int64_t *primes, size_t max,
                     pz_sieve_method_t method);

//  A worker thread's sieve: an iterator kept open between pieces.
typedef struct _pz_sieve_t pz_sieve_t;

typedef struct {
    uint64_t continued;         //  pieces that went on from the iterator
    uint64_t walked;            //  of those, pieces after a gap walked over
    uint64_t jumps;             //  iterator (re)started at a piece's lo
    uint64_t stateless;         //  pieces done by the pure functions
} pz_sieve_stats_t;

//  Creates a sieve with no iterator open yet. Caller owns return value.
pz_sieve_t *
    pz_sieve_new (void);

//  Destroys the sieve and frees its iterator. NULL-safe; nulls *self_p.
void
    pz_sieve_destroy (pz_sieve_t **self_p);

//  As pz_sieve_primes (AUTO), primes may be NULL when max is 0 (then it
//  only counts), but a piece that continues the previous one (lo = its hi
//  + 1, or a short gap past it) reuses the open iterator. Same results as
//  the pure functions, for every valid interval in any order.
size_t
    pz_sieve_next (pz_sieve_t *self, int64_t lo, int64_t hi, int64_t *primes,
                   size_t max);

//  Counts the primes of [lo, hi] in blocks of block numbers from lo (the
//  last one may be narrower): writes the count of block k into counts [k]
//  (room for ceil ((hi - lo + 1) / block)) and returns their sum. Keeps
//  the iterator as pz_sieve_next does, from any lo (a Q report's sub-counts,
//  proto/PROTOCOL.md "Ranges": only the iterator gives them cheaply).
int64_t
    pz_sieve_next_counts (pz_sieve_t *self, int64_t lo, int64_t hi, int64_t block,
                          int64_t *counts);

//  Copies the sieve's counters into stats.
void
    pz_sieve_stats (pz_sieve_t *self, pz_sieve_stats_t *stats);

#endif
