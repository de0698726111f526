/*  =========================================================================
    test_sieve.c - tests for the worker's interval sieve

    Part of PlayØMQ, a distributed prime checker on ZeroMQ.
    =========================================================================

    Checks pz_sieve_count and pz_sieve_primes, by both methods (primesieve
    and presieve + Baillie-PSW) and AUTO, against oracles independent of
    worker/: tests/reference.c's Miller-Rabin on every number of an interval
    (so intervals stay short), and the known values of pi(10^k) for k <= 9
    (mathematical constants: OEIS A006880). The intervals aim at the edges:
    lengths 0 and 1, lo = hi = a prime, starts at 0, 1 and 2, the very top
    below 2^63, and segment boundaries of the presieve.
*/

#include <criterion/criterion.h>

#include "reference.h"
#include "sieve.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

#define S_MAX   200000          //  primes collected per call, at most

static int64_t s_primes [S_MAX];
static const pz_sieve_method_t s_methods [3] = {
    PZ_SIEVE_AUTO, PZ_SIEVE_PRIMESIEVE, PZ_SIEVE_PRESIEVE
};

//  Checks the methods on [lo, hi] against the reference, number by number:
//  all three, or (all false) AUTO and the presieve only. primesieve's setup
//  costs seconds near 2^63 (more under valgrind): called there sparingly.
static void
s_check_methods (int64_t lo, int64_t hi, bool all)
{
    size_t expected = 0;
    for (int64_t value = lo; ; value++) {
        if (ref_is_prime ((uint64_t) value))
            expected++;
        if (value == hi)
            break;
    }
    for (int method = 0; method < 3; method++) {
        if (!all && s_methods [method] == PZ_SIEVE_PRIMESIEVE)
            continue;
        cr_assert_eq (pz_sieve_count (lo, hi, s_methods [method]), (int64_t) expected,
                      "count [%" PRId64 ", %" PRId64 "] method %d", lo, hi, method);
        size_t found = pz_sieve_primes (lo, hi, s_primes, S_MAX, s_methods [method]);
        cr_assert_eq (found, expected, "primes [%" PRId64 ", %" PRId64 "] method %d",
                      lo, hi, method);
        //  Ascending, inside, each prime by the reference; together with
        //  the count, that is every prime of the interval.
        for (size_t index = 0; index < found; index++) {
            cr_assert (s_primes [index] >= lo && s_primes [index] <= hi);
            cr_assert (index == 0 || s_primes [index] > s_primes [index - 1]);
            cr_assert (ref_is_prime ((uint64_t) s_primes [index]),
                       "%" PRId64 " is not prime", s_primes [index]);
        }
    }
}

static void
s_check_interval (int64_t lo, int64_t hi)
{
    s_check_methods (lo, hi, true);
}

Test (sieve, edges, .timeout = 60)
{
    cr_assert (pz_sieve_valid (0, 0));
    cr_assert (pz_sieve_valid (INT64_MAX, INT64_MAX));
    cr_assert_not (pz_sieve_valid (-1, 5));
    cr_assert_not (pz_sieve_valid (6, 5));
    //  Starts at 0, 1 and 2; lengths 1 (composite, prime, 0, 1).
    s_check_interval (0, 0);
    s_check_interval (1, 1);
    s_check_interval (2, 2);
    s_check_interval (0, 1);
    s_check_interval (0, 2);
    s_check_interval (1, 100);
    s_check_interval (2, 1000);
    s_check_interval (0, 100000);
    s_check_interval (4, 4);
    s_check_interval (97, 97);
    s_check_interval (1000000007, 1000000007);
    //  Around the presieve's segment and proof boundaries.
    s_check_interval (32760, 32780);
    s_check_interval (65500, 131100);
    s_check_interval (INT64_C (4294967296) - 3000, INT64_C (4294967296) + 3000);
}

Test (sieve, top, .timeout = 120)
{
    //  2^63 - 25 is the largest prime below 2^63; the interval's top is
    //  INT64_MAX itself, and lo = hi = that prime.
    s_check_methods (INT64_MAX - 24, INT64_MAX - 24, false);
    s_check_methods (INT64_MAX, INT64_MAX, false);
    s_check_interval (INT64_MAX - 2000, INT64_MAX);
    s_check_interval (INT64_C (1000000000000000000) - 1000, INT64_C (1000000000000000000) + 1000);
}

Test (sieve, random, .timeout = 120)
{
    //  Short random intervals at every magnitude: lo = 2^k + a random part.
    uint64_t state = 12;
    for (int bits = 1; bits <= 62; bits++) {
        int64_t base = INT64_C (1) << bits;
        int64_t lo = base + (int64_t) (ref_splitmix64 (&state) % (uint64_t) base);
        int64_t width = (int64_t) (ref_splitmix64 (&state) % 1500);
        int64_t hi = lo > INT64_MAX - width ? INT64_MAX : lo + width;
        s_check_methods (lo, hi, bits <= 50);
    }
}

Test (sieve, pi_of_powers_of_ten, .timeout = 60)
{
    //  pi(10^k), k = 1..9: known values (OEIS A006880). (k = 10 takes
    //  seconds, minutes under valgrind: the pipeline test has k <= 9 too.)
    static const int64_t pi [10] = {
        0, 4, 25, 168, 1229, 9592, 78498, 664579, 5761455, 50847534
    };
    int64_t power = 1;
    for (int k = 1; k <= 9; k++) {
        power *= 10;
        cr_assert_eq (pz_sieve_count (0, power, PZ_SIEVE_AUTO), pi [k], "pi(10^%d)", k);
        if (k <= 7)
            cr_assert_eq (pz_sieve_count (0, power, PZ_SIEVE_PRESIEVE), pi [k]);
    }
    //  Split anywhere, the parts add up.
    cr_assert_eq (pz_sieve_count (0, 4999999, PZ_SIEVE_PRESIEVE)
                + pz_sieve_count (5000000, 10000000, PZ_SIEVE_PRIMESIEVE), pi [7]);
}

Test (sieve, truncated_list, .timeout = 30)
{
    //  A list longer than max: the count is whole, the first max written.
    int64_t few [3] = { 0, 0, 0 };
    for (int method = 0; method < 3; method++) {
        cr_assert_eq (pz_sieve_primes (0, 100, few, 2, s_methods [method]), 25);
        cr_assert_eq (few [0], 2);
        cr_assert_eq (few [1], 3);
        cr_assert_eq (few [2], 0);
    }
}

//  Runs pz_sieve_next on [lo, hi], listing its primes (or, every other
//  call, only counting them: both ways go through the same iterator), and
//  checks it against the reference, number by number.
static void
s_check_next (pz_sieve_t *sieve, int64_t lo, int64_t hi)
{
    static bool listing;
    listing = !listing;
    size_t expected = 0;
    for (int64_t value = lo; ; value++) {
        if (ref_is_prime ((uint64_t) value))
            expected++;
        if (value == hi)
            break;
    }
    if (!listing) {
        cr_assert_eq (pz_sieve_next (sieve, lo, hi, NULL, 0), expected,
                      "next count [%" PRId64 ", %" PRId64 "]", lo, hi);
        return;
    }
    size_t found = pz_sieve_next (sieve, lo, hi, s_primes, S_MAX);
    cr_assert_eq (found, expected, "next primes [%" PRId64 ", %" PRId64 "]", lo, hi);
    for (size_t index = 0; index < found; index++) {
        cr_assert (s_primes [index] >= lo && s_primes [index] <= hi);
        cr_assert (index == 0 || s_primes [index] > s_primes [index - 1]);
        cr_assert (ref_is_prime ((uint64_t) s_primes [index]));
    }
}

Test (sieve, continued_pieces, .timeout = 120)
{
    //  The paths of pz_sieve_next near 10^18, where it keeps its iterator:
    //  a run of consecutive pieces, gaps walked over, a piece behind the
    //  iterator, one far ahead, pieces below the iterator's threshold.
    pz_sieve_t *sieve = pz_sieve_new ();
    cr_assert (sieve);
    int64_t lo = INT64_C (1000000000000000000) - 5000;
    for (int piece = 0; piece < 6; piece++, lo += 2000)
        s_check_next (sieve, lo, lo + 1999);                //  a run
    s_check_next (sieve, lo + 1, lo + 1);                   //  gap of 1
    s_check_next (sieve, lo + 1000, lo + 3000);             //  a gap
    s_check_next (sieve, lo + 3001, lo + 3001);             //  width 1
    s_check_next (sieve, lo - 100000, lo - 99000);          //  behind
    s_check_next (sieve, lo - 98999, lo - 97000);           //  its run
    s_check_next (sieve, lo + (INT64_C (1) << 40), lo + (INT64_C (1) << 40) + 3000);
    s_check_next (sieve, 999999999999000, 1000000000001000);    //  threshold
    s_check_next (sieve, 1000000000001001, 1000000000003000);
    s_check_next (sieve, 0, 3000);                          //  below
    pz_sieve_stats_t stats;
    pz_sieve_stats (sieve, &stats);
    cr_assert_geq (stats.continued, 7, "continued %" PRIu64, stats.continued);
    cr_assert_geq (stats.walked, 2);
    cr_assert_geq (stats.jumps, 3);
    cr_assert_geq (stats.stateless, 1);
    pz_sieve_destroy (&sieve);
    pz_sieve_destroy (&sieve);
}

Test (sieve, continued_top, .timeout = 120)
{
    //  Consecutive pieces up to the very top, INT64_MAX: the iterator
    //  runs past 2^63 - 1 and must stop counting there.
    pz_sieve_t *sieve = pz_sieve_new ();
    int64_t lo = INT64_MAX - 6000;
    for (; lo < INT64_MAX - 1000; lo += 1000)
        s_check_next (sieve, lo, lo + 999);
    s_check_next (sieve, lo, INT64_MAX);
    pz_sieve_stats_t stats;
    pz_sieve_stats (sieve, &stats);
    cr_assert_eq (stats.jumps, 1);
    cr_assert_eq (stats.continued, 5);
    pz_sieve_destroy (&sieve);
}

Test (sieve, continued_wide, .timeout = 120)
{
    //  Wide consecutive pieces near 10^16 (from the iterator) add up to
    //  the count of one primesieve_count_primes call over the whole, and
    //  each equals the presieve's count of it (a different method).
    pz_sieve_t *counter = pz_sieve_new ();
    int64_t lo = INT64_C (10000000000000000);
    int64_t width = INT64_C (1) << 22;
    int64_t sum = 0;
    for (int piece = 0; piece < 4; piece++) {
        int64_t piece_lo = lo + piece * width;
        int64_t count = (int64_t) pz_sieve_next (counter, piece_lo, piece_lo + width - 1,
                                                 NULL, 0);
        if (piece == 1)
            cr_assert_eq (count, pz_sieve_count (piece_lo, piece_lo + width - 1,
                                                 PZ_SIEVE_PRESIEVE));
        sum += count;
    }
    cr_assert_eq (sum, pz_sieve_count (lo, lo + 4 * width - 1, PZ_SIEVE_PRIMESIEVE));
    pz_sieve_stats_t stats;
    pz_sieve_stats (counter, &stats);
    cr_assert_eq (stats.jumps, 1);
    cr_assert_eq (stats.continued, 3);
    pz_sieve_destroy (&counter);
}

//  Checks pz_sieve_next_counts on [lo, hi] in blocks of block numbers
//  against the reference, block by block.
static void
s_check_counts (pz_sieve_t *sieve, int64_t lo, int64_t hi, int64_t block)
{
    static int64_t counts [4096];
    int64_t total = pz_sieve_next_counts (sieve, lo, hi, block, counts);
    int64_t expected_total = 0;
    size_t index = 0;
    for (int64_t first = lo; ; index++) {
        int64_t last = hi - first < block - 1 ? hi : first + block - 1;
        int64_t expected = 0;
        for (int64_t value = first; ; value++) {
            if (ref_is_prime ((uint64_t) value))
                expected++;
            if (value == last)
                break;
        }
        cr_assert_eq (counts [index], expected, "block %zu [%" PRId64 ", %" PRId64 "]",
                      index, first, last);
        expected_total += expected;
        if (last == hi)
            break;
        first = last + 1;
    }
    cr_assert_eq (total, expected_total);
}

Test (sieve, block_counts, .timeout = 120)
{
    //  A Q report's sub-counts: runs, an isolated narrow piece (presieved),
    //  the lowest numbers, a piece of one block and of a last short block,
    //  the top.
    pz_sieve_t *sieve = pz_sieve_new ();
    s_check_counts (sieve, 0, 999, 100);
    s_check_counts (sieve, 1000, 5000, 128);
    s_check_counts (sieve, 5001, 5001, 128);
    s_check_counts (sieve, INT64_C (1000000000000), INT64_C (1000000002999), 256);
    s_check_counts (sieve, INT64_C (1000000003000), INT64_C (1000000004000), 1000);
    int64_t lo = INT64_C (1000000000000000000);
    s_check_counts (sieve, lo, lo + 2999, 300);
    s_check_counts (sieve, lo + 3000, lo + 5999, 1);
    s_check_counts (sieve, lo - 50000, lo - 49000, 64);        //  isolated
    s_check_counts (sieve, INT64_MAX - 1999, INT64_MAX, 333);
    pz_sieve_stats_t stats;
    pz_sieve_stats (sieve, &stats);
    cr_assert_geq (stats.continued, 2);
    cr_assert_geq (stats.jumps, 3);
    cr_assert_geq (stats.stateless, 1);
    pz_sieve_destroy (&sieve);
}
