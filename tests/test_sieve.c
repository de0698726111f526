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
