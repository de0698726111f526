/*  =========================================================================
    test_prime.c - tests for the worker's primality test

    Part of PlayØMQ, a distributed prime checker on ZeroMQ.
    =========================================================================

    Checks pz_prime_is_prime and pz_prime_check against verdicts that come
    from methods independent of proto/prime.c: a sieve of Eratosthenes
    below 10^7, factorisations stated here and checked by multiplication
    (or found here by trial division), and a deliberately plain reference,
    Miller-Rabin with the first 12 primes as bases on 128-bit remainders,
    which is deterministic below 3.3 * 10^24 and so for every int64_t.
    The inputs aim at each stage of the code under test: values settled by
    trial division, pseudoprimes that pass one half of Baillie-PSW, squares
    (for which the Lucas parameter search never ends on its own), all
    magnitudes up to INT64_MAX, and batches with awkward shapes.
*/

#include <criterion/criterion.h>

#include "prime.h"
#include "reference.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

__extension__ typedef unsigned __int128 s_u128;

#define S_SIEVE_LIMIT 10000000
#define S_RANDOM_COUNT 1000000

//  Large tables live in static storage, not on the stack
static uint8_t s_composite [S_SIEVE_LIMIT];
static int64_t s_values [S_RANDOM_COUNT];
static uint8_t s_verdicts [S_RANDOM_COUNT];


//  --------------------------------------------------------------------------
//  Independent references

//  Fills s_composite: 1 for 0, 1 and every composite below S_SIEVE_LIMIT.
static void
s_sieve (void)
{
    memset (s_composite, 0, sizeof s_composite);
    s_composite [0] = s_composite [1] = 1;
    for (uint64_t p = 2; p * p < S_SIEVE_LIMIT; p++)
        if (!s_composite [p])
            for (uint64_t m = p * p; m < S_SIEVE_LIMIT; m += p)
                s_composite [m] = 1;
}

//  The reference's bases: the first 12 primes.
static const uint64_t s_bases [12] = {
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37
};

//  Returns true if n is prime, by trial division: slow, and independent
//  even of the Miller-Rabin reference.
static bool
s_trial_is_prime (uint64_t n)
{
    if (n < 2)
        return false;
    for (uint64_t p = 2; p * p <= n; p++)
        if (n % p == 0)
            return false;
    return true;
}

//  Returns the product of count factors, or 0 if it exceeds INT64_MAX.
static uint64_t
s_product (const uint64_t *factor, size_t count)
{
    s_u128 product = 1;
    for (size_t i = 0; i < count; i++) {
        product *= factor [i];
        if (product > INT64_MAX)
            return 0;
    }
    return (uint64_t) product;
}


//  --------------------------------------------------------------------------
//  Checks

//  Expects both APIs to give the expected verdict on n.
static void
s_expect (int64_t n, bool expected)
{
    cr_expect_eq (pz_prime_is_prime (n), expected,
                  "pz_prime_is_prime (%" PRId64 ") should be %d", n, expected);
    uint8_t verdict = 2;
    pz_prime_check (&n, &verdict, 1);
    cr_expect_eq (verdict, expected,
                  "pz_prime_check (%" PRId64 ") should be %d", n, expected);
}

//  A composite stated with a factorisation. Factors need not be prime:
//  two or more factors above 1 whose product is n prove n composite.
typedef struct {
    uint64_t n;
    uint64_t factor [7];
} s_factored_t;

//  Returns the number of factors in the zero-terminated list.
static size_t
s_factor_count (const s_factored_t *self)
{
    size_t count = 0;
    while (count < 7 && self->factor [count])
        count++;
    return count;
}

//  Asserts the factorisation of each entry, then expects composite.
static void
s_expect_factored (const s_factored_t *list, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        size_t count = s_factor_count (&list [i]);
        cr_assert_geq (count, 2, "%" PRIu64 ": needs two factors", list [i].n);
        for (size_t j = 0; j < count; j++)
            cr_assert_gt (list [i].factor [j], 1);
        cr_assert_eq (s_product (list [i].factor, count), list [i].n,
                      "%" PRIu64 ": factors do not multiply to it", list [i].n);
        s_expect ((int64_t) list [i].n, false);
    }
}

//  Checks every value of s_values [0 .. count) with both APIs against the
//  reference; returns the number of disagreements, logging the first few.
static size_t
s_check_against_reference (size_t count)
{
    pz_prime_check (s_values, s_verdicts, count);
    size_t wrong = 0;
    for (size_t i = 0; i < count; i++) {
        int64_t n = s_values [i];
        bool expected = n >= 2 && ref_is_prime ((uint64_t) n);
        bool single = pz_prime_is_prime (n);
        if (single != expected || s_verdicts [i] != expected) {
            if (wrong++ < 5)
                cr_log_error ("%" PRId64 ": reference %d, is_prime %d, check %d",
                              n, expected, single, s_verdicts [i]);
        }
    }
    return wrong;
}


//  --------------------------------------------------------------------------
//  Tests

Test (prime, sieve_agrees_below_1e7, .timeout = 60)
{
    s_sieve ();
    size_t wrong = 0;
    for (int64_t n = 0; n < S_SIEVE_LIMIT; n++)
        if (pz_prime_is_prime (n) != !s_composite [n] && wrong++ < 5)
            cr_log_error ("pz_prime_is_prime (%" PRId64 ") wrong", n);
    cr_assert_eq (wrong, 0, "%zu verdicts disagree with the sieve", wrong);
}

Test (prime, check_agrees_with_sieve_below_1e7, .timeout = 60)
{
    s_sieve ();
    //  Calls of varying sizes, so blocks and lanes split differently
    size_t wrong = 0;
    size_t size = 1;
    for (int64_t base = 0; base < S_SIEVE_LIMIT; base += (int64_t) size) {
        size = (size * 7 + 3) % 4093 + 1;
        if (base + (int64_t) size > S_SIEVE_LIMIT)
            size = (size_t) (S_SIEVE_LIMIT - base);
        for (size_t i = 0; i < size; i++)
            s_values [i] = base + (int64_t) i;
        pz_prime_check (s_values, s_verdicts, size);
        for (size_t i = 0; i < size; i++)
            if (s_verdicts [i] != !s_composite [base + (int64_t) i] && wrong++ < 5)
                cr_log_error ("pz_prime_check (%" PRId64 ") wrong", base + (int64_t) i);
    }
    cr_assert_eq (wrong, 0, "%zu verdicts disagree with the sieve", wrong);
}

Test (prime, below_two_is_not_prime, .timeout = 10)
{
    const int64_t none [] = {
        INT64_MIN, INT64_MIN + 1, -INT64_MAX + 24, -(INT64_C (1) << 62),
        -4294967291, -65537, -7, -3, -2, -1, 0, 1
    };
    for (size_t i = 0; i < sizeof none / sizeof none [0]; i++)
        s_expect (none [i], false);
    s_expect (2, true);
    s_expect (3, true);
    s_expect (4, false);
    s_expect (5, true);
    s_expect (9, false);
}

Test (prime, strong_pseudoprimes_to_first_prime_bases, .timeout = 10)
{
    //  psi_k (OEIS A014233): the least strong pseudoprime to each of the
    //  first k prime bases, for k = 1 .. 9
    static const struct {
        int bases;
        s_factored_t value;
    } psi [] = {
        { 1, { 2047, { 23, 89 } } },
        { 2, { 1373653, { 829, 1657 } } },
        { 3, { 25326001, { 2251, 11251 } } },
        { 4, { 3215031751, { 151, 751, 28351 } } },
        { 5, { 2152302898747, { 6763, 10627, 29947 } } },
        { 6, { 3474749660383, { 1303, 16927, 157543 } } },
        { 7, { 341550071728321, { 10670053, 32010157 } } },
        { 9, { 3825123056546413051, { 149491, 747451, 34233211 } } },
    };
    for (size_t i = 0; i < sizeof psi / sizeof psi [0]; i++) {
        //  Confirm the claim, so the entry really tests what it says
        for (int b = 0; b < psi [i].bases; b++)
            cr_assert (ref_is_strong_probable_prime (psi [i].value.n, s_bases [b]),
                       "%" PRIu64 " should be a strong pseudoprime to %" PRIu64,
                       psi [i].value.n, s_bases [b]);
        s_expect_factored (&psi [i].value, 1);
    }
}

Test (prime, base2_strong_pseudoprimes, .timeout = 10)
{
    //  OEIS A001262, and others from the lists here: those above 313^2
    //  with no factor up to 313 pass the Miller-Rabin half of Baillie-PSW
    //  and must be caught by the Lucas half. The squares of the Wieferich
    //  primes 1093 and 3511 are the only squares that do, so the only
    //  ones to reach the Lucas parameter search, where no P yields -1
    static const s_factored_t list [] = {
        { 2047, { 23, 89 } },
        { 3277, { 29, 113 } },
        { 4033, { 37, 109 } },
        { 4681, { 31, 151 } },
        { 8321, { 53, 157 } },
        { 15841, { 7, 31, 73 } },
        { 29341, { 13, 37, 61 } },
        { 42799, { 127, 337 } },
        { 49141, { 157, 313 } },
        { 52633, { 7, 73, 103 } },
        { 1194649, { 1093, 1093 } },
        { 12327121, { 3511, 3511 } },
        { 1373653, { 829, 1657 } },
        { 25326001, { 2251, 11251 } },
        { 341550071728321, { 10670053, 32010157 } },
        { 3825123056546413051, { 149491, 747451, 34233211 } },
    };
    size_t size = sizeof list / sizeof list [0];
    for (size_t i = 0; i < size; i++)
        cr_assert (ref_is_strong_probable_prime (list [i].n, 2), "%" PRIu64 " should be a "
                   "strong pseudoprime to base 2", list [i].n);
    s_expect_factored (list, size);
}

Test (prime, generated_base2_pseudoprimes_reach_lucas, .timeout = 30)
{
    //  n = p (2p - 1) with both factors prime and 2p - 1 = +-1 mod 8 is a
    //  base-2 Fermat pseudoprime, and often a strong one. With p > 313 it
    //  has no small factor, so only the Lucas test can reject it. Search
    //  at three magnitudes; the last walks down from 2^31 - 1, the largest
    //  p for which p (2p - 1) fits in an int64_t.
    static const struct {
        uint64_t start;
        int64_t step;
    } searches [] = {
        { 1000001, 2 }, { 70710677, 2 }, { 2147483647, -2 }
    };
    size_t found = 0;
    for (size_t i = 0; i < sizeof searches / sizeof searches [0]; i++) {
        size_t here = 0;
        for (uint64_t p = searches [i].start; here < 8;
             p += (uint64_t) searches [i].step) {
            uint64_t q = 2 * p - 1;
            if ((q & 7) != 1 && (q & 7) != 7)
                continue;
            if (!ref_is_prime (p) || !ref_is_prime (q))
                continue;
            uint64_t factor [2] = { p, q };
            uint64_t n = s_product (factor, 2);
            cr_assert_neq (n, 0, "p (2p - 1) overflows int64_t");
            if (!ref_is_strong_probable_prime (n, 2))
                continue;
            s_expect ((int64_t) n, false);
            s_expect ((int64_t) p, true);
            s_expect ((int64_t) q, true);
            here++;
        }
        found += here;
    }
    cr_assert_eq (found, 24);
}

Test (prime, lucas_pseudoprimes, .timeout = 10)
{
    //  Strong Lucas pseudoprimes with Selfridge's parameters (A217255) and
    //  extra strong ones with Baillie's, as the worker uses (A217719)
    static const s_factored_t list [] = {
        { 5459, { 53, 103 } },
        { 5777, { 53, 109 } },
        { 10877, { 73, 149 } },
        { 16109, { 89, 181 } },
        { 18971, { 61, 311 } },
        { 22499, { 149, 151 } },
        { 24569, { 79, 311 } },
        { 25199, { 113, 223 } },
        { 40309, { 173, 233 } },
        { 58519, { 139, 421 } },
        { 989, { 23, 43 } },
        { 3239, { 41, 79 } },
        { 27971, { 83, 337 } },
        { 29681, { 67, 443 } },
        { 30739, { 59, 521 } },
        { 31631, { 47, 673 } },
        { 39059, { 139, 281 } },
        { 72389, { 191, 379 } },
        { 73919, { 193, 383 } },
        { 75077, { 193, 389 } },
        //  Extra strong ones with no factor up to 313 (found by a separate
        //  search): they reach Baillie-PSW, where only Miller-Rabin can
        //  reject them
        { 370229, { 431, 859 } },
        { 430127, { 463, 929 } },
        { 600059, { 547, 1097 } },
        { 621781, { 643, 967 } },
        { 632249, { 563, 1123 } },
        { 635627, { 563, 1129 } },
        { 18256391, { 2137, 8543 } },
        { 18267989, { 3023, 6043 } },
        { 18706271, { 3359, 5569 } },
        { 19000529, { 3083, 6163 } },
        { 19168477, { 433, 44269 } },
        { 19341599, { 1439, 13441 } },
    };
    s_expect_factored (list, sizeof list / sizeof list [0]);
}

Test (prime, carmichael_numbers, .timeout = 30)
{
    //  Korselt: n is a Carmichael number iff it is squarefree, composite,
    //  and p - 1 divides n - 1 for each prime p dividing n. Factored here
    //  by trial division, then checked, then expected composite.
    static const uint64_t small [] = {
        561, 1105, 1729, 2465, 2821, 6601, 8911, 10585, 15841, 29341, 41041,
        46657, 52633, 62745, 63973, 75361, 101101, 115921, 126217, 162401,
        172081, 188461, 252601, 278545, 294409, 314821, 334153, 340561,
        399001, 410041, 449065, 488881, 512461
    };
    for (size_t i = 0; i < sizeof small / sizeof small [0]; i++) {
        uint64_t n = small [i], rest = n;
        int primes = 0;
        for (uint64_t p = 2; p <= rest; p++) {
            if (rest % p)
                continue;
            rest /= p;
            cr_assert_neq (rest % p, 0, "%" PRIu64 " is not squarefree", n);
            cr_assert_eq ((n - 1) % (p - 1), 0, "%" PRIu64 " fails Korselt", n);
            primes++;
        }
        cr_assert_geq (primes, 3);
        s_expect ((int64_t) n, false);
    }
    //  psi_9 above is a Carmichael number too
    static const uint64_t big [3] = { 149491, 747451, 34233211 };
    uint64_t n = s_product (big, 3);
    cr_assert_eq (n, UINT64_C (3825123056546413051));
    for (size_t i = 0; i < 3; i++) {
        cr_assert (s_trial_is_prime (big [i]));
        cr_assert_eq ((n - 1) % (big [i] - 1), 0);
    }
    s_expect ((int64_t) n, false);
    //  Chernick's (6k + 1)(12k + 1)(18k + 1), all three prime, is always a
    //  Carmichael number: the first few above k = 1000, and the last few
    //  below INT64_MAX
    size_t found = 0;
    for (uint64_t k = 1000; found < 6; k++) {
        uint64_t factor [3] = { 6 * k + 1, 12 * k + 1, 18 * k + 1 };
        if (ref_is_prime (factor [0]) && ref_is_prime (factor [1])
        &&  ref_is_prime (factor [2])) {
            s_expect ((int64_t) s_product (factor, 3), false);
            found++;
        }
    }
    for (uint64_t k = 200000; found < 12; k--) {
        uint64_t factor [3] = { 6 * k + 1, 12 * k + 1, 18 * k + 1 };
        n = s_product (factor, 3);
        if (n && ref_is_prime (factor [0]) && ref_is_prime (factor [1])
        &&  ref_is_prime (factor [2])) {
            s_expect ((int64_t) n, false);
            found++;
        }
    }
}

Test (prime, squares_and_products_near_sqrt_int64_max, .timeout = 30)
{
    //  The largest primes p with p^2 <= INT64_MAX, found by trial division:
    //  p^2 and p q of neighbours have no small factor, the longest
    //  exponents, and factors as close together as they can be
    uint64_t primes [12];
    size_t count = 0;
    for (uint64_t p = 3037000499; count < 12; p -= 2)
        if (s_trial_is_prime (p))
            primes [count++] = p;
    cr_assert_eq (primes [0], UINT64_C (3037000493));
    for (size_t i = 0; i < count; i++) {
        s_expect ((int64_t) primes [i], true);
        uint64_t square [2] = { primes [i], primes [i] };
        cr_assert_neq (s_product (square, 2), 0);
        s_expect ((int64_t) s_product (square, 2), false);
        if (i > 0) {
            uint64_t pair [2] = { primes [i - 1], primes [i] };
            s_expect ((int64_t) s_product (pair, 2), false);
        }
    }
    //  Squares of primes at other magnitudes: just above 313, the largest
    //  table prime, and near 2^16 and 2^24
    static const uint64_t starts [] = { 317, 65521, 16777213 };
    for (size_t i = 0; i < sizeof starts / sizeof starts [0]; i++) {
        count = 0;
        for (uint64_t p = starts [i]; count < 4; p += 2)
            if (s_trial_is_prime (p)) {
                uint64_t square [2] = { p, p };
                s_expect ((int64_t) s_product (square, 2), false);
                count++;
            }
    }
}

Test (prime, neighbours_of_powers_of_two, .timeout = 30)
{
    //  Known values, each confirmed by the reference
    static const struct {
        uint64_t n;
        bool prime;
    } known [] = {
        { UINT64_C (2147483647), true },            //  2^31 - 1, Mersenne
        { UINT64_C (4294967291), true },            //  Largest below 2^32
        { UINT64_C (4294967311), true },            //  Smallest above 2^32
        { UINT64_C (2305843009213693951), true },   //  2^61 - 1, Mersenne
        { UINT64_C (9223372036854775783), true },   //  Largest below 2^63
    };
    for (size_t i = 0; i < sizeof known / sizeof known [0]; i++) {
        cr_assert_eq (ref_is_prime (known [i].n), known [i].prime);
        s_expect ((int64_t) known [i].n, known [i].prime);
    }
    //  INT64_MAX = 2^63 - 1 = 7^2 73 127 337 92737 649657
    static const s_factored_t max = {
        INT64_MAX, { 7, 7, 73, 127, 337, 92737, 649657 }
    };
    s_expect_factored (&max, 1);
    //  Windows around 2^31, 2^32, 2^61, 2^62 and below 2^63
    size_t count = 0;
    for (int k = 31; k <= 63; k++) {
        if (k != 31 && k != 32 && k != 61 && k != 62 && k != 63)
            continue;
        uint64_t power = UINT64_C (1) << k;
        uint64_t low = power - 1000;
        uint64_t high = k == 63? power - 1: power + 1000;
        for (uint64_t n = low; n <= high; n++)
            s_values [count++] = (int64_t) n;
    }
    //  Nothing between the largest prime below 2^63 and INT64_MAX is prime
    size_t primes = 0;
    for (size_t i = 0; i < count; i++)
        if ((uint64_t) s_values [i] > UINT64_C (9223372036854775783))
            primes += ref_is_prime ((uint64_t) s_values [i]);
    cr_assert_eq (primes, 0);
    cr_assert_eq (s_check_against_reference (count), 0);
}

Test (prime, random_values_agree_with_reference, .timeout = 60)
{
    //  A quarter each: uniform over [0, 2^63), uniform over [2^62, 2^63),
    //  uniform 32-bit, and of uniformly random bit length; one in 64 of
    //  all negated
    uint64_t state = 20240601;
    for (size_t i = 0; i < S_RANDOM_COUNT; i++) {
        uint64_t r = ref_splitmix64 (&state);
        uint64_t v;
        switch (i % 4) {
            case 0: v = r >> 1; break;
            case 1: v = (r >> 2) | (UINT64_C (1) << 62); break;
            case 2: v = r >> 32; break;
            default: v = r >> (1 + ref_splitmix64 (&state) % 63); break;
        }
        s_values [i] = (r & 63) == 0? -(int64_t) v: (int64_t) v;
    }
    size_t wrong = s_check_against_reference (S_RANDOM_COUNT);
    cr_assert_eq (wrong, 0, "%zu verdicts disagree with the reference", wrong);
}

Test (prime, products_of_two_32bit_primes, .timeout = 30)
{
    //  Semiprimes with both factors in [2^30, sqrt(INT64_MAX)]: no small
    //  factor, so each one goes through Baillie-PSW; half of them with
    //  neighbouring primes as factors
    uint64_t state = 42;
    size_t wrong = 0;
    for (size_t i = 0; i < 4000; i++) {
        uint64_t span = UINT64_C (3037000499) - (UINT64_C (1) << 30);
        uint64_t p, q;
        do
            p = ((UINT64_C (1) << 30) + ref_splitmix64 (&state) % span) | 1;
        while (!ref_is_prime (p));
        if (i % 2) {
            q = p + 2;
            while (!ref_is_prime (q))
                q += 2;
        }
        else
            do
                q = ((UINT64_C (1) << 30) + ref_splitmix64 (&state) % span) | 1;
            while (!ref_is_prime (q));
        uint64_t factor [2] = { p, q };
        uint64_t n = s_product (factor, 2);
        if (n == 0)
            continue;       //  Beyond INT64_MAX
        s_values [3 * i] = (int64_t) n;
        s_values [3 * i + 1] = (int64_t) p;
        s_values [3 * i + 2] = (int64_t) q;
        bool single = pz_prime_is_prime ((int64_t) n);
        if ((single || !pz_prime_is_prime ((int64_t) p)) && wrong++ < 5)
            cr_log_error ("%" PRIu64 " = %" PRIu64 " * %" PRIu64, n, p, q);
    }
    pz_prime_check (s_values, s_verdicts, 3 * 4000);
    for (size_t i = 0; i < 3 * 4000; i++)
        if (s_values [i] && s_verdicts [i] != (i % 3 != 0) && wrong++ < 5)
            cr_log_error ("pz_prime_check (%" PRId64 ") wrong", s_values [i]);
    cr_assert_eq (wrong, 0);
}

Test (prime, check_handles_batch_shapes, .timeout = 30)
{
    //  Mixed magnitudes in one call, so interleaved tests run on exponents
    //  of different lengths; counts around the block and lane sizes; and
    //  nothing written past count
    uint64_t state = 7;
    const size_t size = 6000;
    for (size_t i = 0; i < size; i++) {
        uint64_t r = ref_splitmix64 (&state);
        int bits = 2 + (int) (ref_splitmix64 (&state) % 62);
        uint64_t v = r >> (64 - bits);
        //  Most of them primes, which reach every stage
        if (i % 3)
            while (v > 2 && !ref_is_prime (v))
                v--;
        s_values [i] = i % 97 == 0? -(int64_t) v: (int64_t) v;
    }
    static const size_t counts [] = {
        0, 1, 2, 3, 4, 5, 7, 8, 9, 255, 256, 257, 511, 513, 5999
    };
    for (size_t c = 0; c < sizeof counts / sizeof counts [0]; c++) {
        size_t count = counts [c];
        size_t start = (c * 37) % (size - count);
        memset (s_verdicts, 0xA5, count + 16);
        pz_prime_check (s_values + start, s_verdicts, count);
        for (size_t i = 0; i < count; i++) {
            int64_t n = s_values [start + i];
            bool expected = n >= 2 && ref_is_prime ((uint64_t) n);
            cr_assert_eq (s_verdicts [i], expected, "count %zu, value %" PRId64,
                          count, n);
        }
        for (size_t i = count; i < count + 16; i++)
            cr_assert_eq (s_verdicts [i], 0xA5, "count %zu: wrote past the end",
                          count);
    }
    pz_prime_check (NULL, NULL, 0);
}
