/*  =========================================================================
    sieve - the primes of an interval, exactly, for every 0 <= lo <= hi < 2^63

    The presieve works in segments of S_SEGMENT numbers: each small prime p
    (below 2^16) strikes its multiples from max(p^2, the first multiple in
    the segment) on. A survivor below 2^32 is prime (every prime up to its
    square root struck); a larger one goes to pz_prime_check, a segment's
    survivors at once so that the test can interleave them. Arithmetic is
    on uint64_t: a multiple one step past hi (< 2^63 + 2^16) cannot wrap.

    libprimesieve's thread count is a process-wide setting: it is set to
    one, once, before the first call (pthread_once), so that each worker
    thread sieves on its own core.
    =========================================================================
*/
#include "sieve.h"
#include "prime.h"

#include <assert.h>
#include <pthread.h>
#include <primesieve.h>
#include <string.h>

#define S_SMALL_LIMIT   65536       //  presieve primes are below this
#define S_SMALL_MAX     6542        //  pi(65536)
#define S_SEGMENT       32768       //  numbers per presieve segment
//  A survivor below this is prime: every prime up to its root was struck.
#define S_PROVEN_BELOW  (UINT64_C (65536) * 65536)
//  AUTO presieves an interval narrower than sqrt(hi) / S_NARROW: below
//  that width primesieve's setup (sieving primes up to sqrt(hi)) costs
//  more than testing the presieve's survivors (measured: docs/PERFORMANCE.md).
#define S_NARROW        128

static uint32_t s_small [S_SMALL_MAX];  //  the primes below S_SMALL_LIMIT
static size_t s_small_count;            //  how many
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

//  Fills s_small by a plain sieve and makes primesieve single-threaded.
static void
s_init (void)
{
    static uint8_t composite [S_SMALL_LIMIT];
    for (uint32_t value = 2; value < S_SMALL_LIMIT; value++) {
        if (composite [value])
            continue;
        s_small [s_small_count++] = value;
        for (uint32_t multiple = value * value; multiple < S_SMALL_LIMIT; multiple += value)
            composite [multiple] = 1;
    }
    assert (s_small_count == S_SMALL_MAX);
    primesieve_set_num_threads (1);
}

//  Returns true if the interval is one this module takes.
bool
pz_sieve_valid (int64_t lo, int64_t hi)
{
    return lo >= 0 && lo <= hi;
}

//  Returns floor (sqrt (value)), exactly.
static uint64_t
s_isqrt (uint64_t value)
{
    uint64_t root = 0;
    for (uint64_t bit = UINT64_C (1) << 31; bit; bit >>= 1) {
        uint64_t trial = root | bit;
        if (trial * trial <= value)
            root = trial;
    }
    return root;
}

//  Returns the method AUTO stands for on [lo, hi].
static pz_sieve_method_t
s_choose (int64_t lo, int64_t hi, pz_sieve_method_t method)
{
    if (method != PZ_SIEVE_AUTO)
        return method;
    uint64_t width = (uint64_t) hi - (uint64_t) lo + 1;
    return width < s_isqrt ((uint64_t) hi) / S_NARROW ? PZ_SIEVE_PRESIEVE
                                                     : PZ_SIEVE_PRIMESIEVE;
}

//  Presieve + Baillie-PSW over [lo, hi]: writes up to max primes into
//  primes (may be NULL when max is 0) and returns how many there are.
static size_t
s_presieve (uint64_t lo, uint64_t hi, int64_t *primes, size_t max)
{
    uint8_t struck [S_SEGMENT];
    int64_t survivors [S_SEGMENT];
    uint8_t verdicts [S_SEGMENT];
    size_t found = 0;
    uint64_t start = lo;
    while (true) {
        uint64_t end = hi - start < S_SEGMENT - 1 ? hi : start + S_SEGMENT - 1;
        size_t width = (size_t) (end - start + 1);
        memset (struck, 0, width);
        for (size_t index = 0; index < s_small_count; index++) {
            uint64_t prime = s_small [index];
            uint64_t square = prime * prime;
            if (square > end)
                break;
            uint64_t multiple = start % prime ? start + prime - start % prime : start;
            if (multiple < square)
                multiple = square;
            for (; multiple <= end; multiple += prime)
                struck [multiple - start] = 1;
        }
        size_t count = 0;
        for (size_t offset = 0; offset < width; offset++)
            if (!struck [offset] && start + offset >= 2)
                survivors [count++] = (int64_t) (start + offset);
        //  Survivors are ascending: those below S_PROVEN_BELOW are proven,
        //  the rest need the test.
        size_t proven = 0;
        while (proven < count && (uint64_t) survivors [proven] < S_PROVEN_BELOW)
            proven++;
        memset (verdicts, 1, proven);
        if (count > proven)
            pz_prime_check (survivors + proven, verdicts + proven, count - proven);
        for (size_t index = 0; index < count; index++)
            if (verdicts [index]) {
                if (found < max)
                    primes [found] = survivors [index];
                found++;
            }
        if (end == hi)
            break;
        start = end + 1;
    }
    return found;
}

//  Counts the primes in [lo, hi].
int64_t
pz_sieve_count (int64_t lo, int64_t hi, pz_sieve_method_t method)
{
    assert (pz_sieve_valid (lo, hi));
    pthread_once (&s_once, s_init);
    if (s_choose (lo, hi, method) == PZ_SIEVE_PRIMESIEVE) {
        uint64_t count = primesieve_count_primes ((uint64_t) lo, (uint64_t) hi);
        if (count != PRIMESIEVE_ERROR)
            return (int64_t) count;
        //  primesieve refused (it should not below 2^63): the slow way.
    }
    return (int64_t) s_presieve ((uint64_t) lo, (uint64_t) hi, NULL, 0);
}

//  Writes up to max primes of [lo, hi] and returns how many there are.
size_t
pz_sieve_primes (int64_t lo, int64_t hi, int64_t *primes, size_t max,
                 pz_sieve_method_t method)
{
    assert (pz_sieve_valid (lo, hi));
    assert (primes || max == 0);
    pthread_once (&s_once, s_init);
    if (s_choose (lo, hi, method) == PZ_SIEVE_PRIMESIEVE) {
        primesieve_iterator iterator;
        primesieve_init (&iterator);
        primesieve_jump_to (&iterator, (uint64_t) lo, (uint64_t) hi);
        size_t found = 0;
        uint64_t prime;
        //  The first prime past hi ends the walk; PRIMESIEVE_ERROR
        //  (UINT64_MAX) is past every hi as well.
        while ((prime = primesieve_next_prime (&iterator)) <= (uint64_t) hi) {
            if (found < max)
                primes [found] = (int64_t) prime;
            found++;
        }
        bool failed = prime == PRIMESIEVE_ERROR && iterator.is_error;
        primesieve_free_iterator (&iterator);
        if (!failed)
            return found;
    }
    return s_presieve ((uint64_t) lo, (uint64_t) hi, primes, max);
}
