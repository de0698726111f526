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

    pz_sieve_t keeps a primesieve_iterator and the number next up to which
    its primes are consumed: the unconsumed ones start at index in its
    buffer. A piece [lo, hi] with next <= lo goes on from there: the primes
    of [next, lo - 1] are skipped, those of [lo, hi] taken by a binary
    search of each buffer for hi (a whole buffer below hi is added at once,
    so counting costs nothing beyond primesieve's sieving). Measured near
    10^18 on the reference machine (CPU seconds, one thread): a new call
    costs 1.2 s of setup for a 2^27 piece (0.3 s of sieving), and an
    iterator told a far stop (S_AHEAD) 2.1 s once, then sieves 2^32
    numbers in the time of one primesieve_count_primes call over them
    (7.2 s against 7.4 s) where 32 calls of 2^27 take 4x as long. A gap is
    walked over when it costs less than a new setup (S_WALK_SHARE of
    sqrt(lo) numbers: with two workers, each sees every other piece). The
    far stop is only told at the start of a run (lo = the last hi + 1, or
    the first piece): an isolated piece gets stop = hi and a setup as cheap
    as a call's. Below S_CONTINUE_FROM the setup is a few ms and
    primesieve_count_primes counts 2x faster than an iterator lists
    (0.07 s against 0.15 s for 2^30 near 10^12), so the pure path stays.
    =========================================================================
*/
#include "sieve.h"
#include "prime.h"

#include <assert.h>
#include <pthread.h>
#include <primesieve.h>
#include <stdlib.h>
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
//  pz_sieve_next keeps an iterator from this lo up.
#define S_CONTINUE_FROM ((uint64_t) PZ_SIEVE_CONTINUE_FROM)
//  A run's iterator is told to stop this far past the piece (it sets up
//  for the whole distance once, 2^31 and more cost the same near 10^18).
#define S_AHEAD         (UINT64_C (1) << 40)
//  A gap of up to sqrt(lo) / S_WALK_SHARE numbers is sieved through rather
//  than paying a new setup (worth about sqrt(lo) / 2 numbers near 10^18).
#define S_WALK_SHARE    2

struct _pz_sieve_t {
    primesieve_iterator iterator;   //  the run's iterator, if open
    bool open;                  //  iterator is positioned: next, index valid
    uint64_t next;              //  the iterator's primes below this are consumed
    size_t index;               //  first unconsumed prime in iterator.primes
    uint64_t stop_hint;         //  the stop the iterator was told
    uint64_t last_hi;           //  hi of the last piece, any method
    bool used;                  //  a piece was done before
    pz_sieve_stats_t stats;     //  counters
};

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

//  Creates a sieve with no iterator open.
pz_sieve_t *
pz_sieve_new (void)
{
    pthread_once (&s_once, s_init);
    pz_sieve_t *self = (pz_sieve_t *) calloc (1, sizeof (pz_sieve_t));
    if (self)
        primesieve_init (&self->iterator);
    return self;
}

//  Frees the iterator and the sieve. NULL-safe.
void
pz_sieve_destroy (pz_sieve_t **self_p)
{
    assert (self_p);
    pz_sieve_t *self = *self_p;
    if (!self)
        return;
    primesieve_free_iterator (&self->iterator);
    free (self);
    *self_p = NULL;
}

//  Returns the first index in [from, size) of the ascending buffer whose
//  value is above limit, or size.
static size_t
s_first_above (const uint64_t *buffer, size_t from, size_t size, uint64_t limit)
{
    if (from >= size || buffer [from] > limit)
        return from;
    if (buffer [size - 1] <= limit)
        return size;
    size_t low = from, high = size - 1;     //  buffer [high] > limit
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (buffer [middle] > limit)
            high = middle;
        else
            low = middle + 1;
    }
    return low;
}

//  Takes the iterator's primes of [next, hi] (next <= hi + 1): writes those
//  from lo on into primes while found < max, adds their number to *found.
//  Returns false (iterator closed) if primesieve failed.
static bool
s_walk (pz_sieve_t *self, uint64_t lo, uint64_t hi, int64_t *primes, size_t max,
        size_t *found)
{
    primesieve_iterator *iterator = &self->iterator;
    while (true) {
        if (self->index >= iterator->size) {
            primesieve_generate_next_primes (iterator);
            self->index = 0;
            if (iterator->is_error || iterator->size == 0) {
                self->open = false;
                return false;
            }
        }
        const uint64_t *buffer = iterator->primes;
        size_t size = iterator->size;
        //  [begin, end): the buffer's primes inside [lo, hi], by binary
        //  searches (primes below lo are those of a gap walked over).
        size_t begin = lo == 0 ? self->index
                     : s_first_above (buffer, self->index, size, lo - 1);
        size_t end = s_first_above (buffer, begin, size, hi);
        for (size_t at = begin; at < end && *found + (at - begin) < max; at++)
            primes [*found + (at - begin)] = (int64_t) buffer [at];
        *found += end - begin;
        self->index = end;
        if (end < size)
            break;          //  a prime past hi is in the buffer: done
    }
    self->next = hi + 1;
    return true;
}

//  Positions the iterator for a piece [lo, hi] if that saves work: goes
//  on from where it is (a short gap ahead walked over by s_walk), or jumps
//  to lo (with a far stop at the start of a run, else stop = hi). Returns
//  false if the piece is better done by the pure functions (below
//  S_CONTINUE_FROM unless any_lo, or narrow and isolated).
static bool
s_position (pz_sieve_t *self, uint64_t lo, uint64_t hi, bool any_lo)
{
    bool run = !self->used || lo == self->last_hi + 1;
    self->used = true;
    self->last_hi = hi;
    if (!any_lo && lo < S_CONTINUE_FROM)
        return false;
    if (self->open && self->next <= lo && hi <= self->stop_hint
    &&  lo - self->next <= s_isqrt (lo) / S_WALK_SHARE) {
        self->stats.continued++;
        if (lo > self->next)
            self->stats.walked++;
        return true;
    }
    if (!run && s_choose ((int64_t) lo, (int64_t) hi, PZ_SIEVE_AUTO) != PZ_SIEVE_PRIMESIEVE)
        return false;
    self->stop_hint = run ? hi + S_AHEAD : hi;
    primesieve_jump_to (&self->iterator, lo, self->stop_hint);
    self->index = self->iterator.size;      //  nothing buffered yet
    self->next = lo;
    self->open = true;
    self->stats.jumps++;
    return true;
}

//  Primes of [lo, hi], reusing the iterator where that saves a setup.
size_t
pz_sieve_next (pz_sieve_t *self, int64_t lo, int64_t hi, int64_t *primes, size_t max)
{
    assert (self);
    assert (pz_sieve_valid (lo, hi));
    assert (primes || max == 0);
    size_t found = 0;
    if (s_position (self, (uint64_t) lo, (uint64_t) hi, false)
    &&  s_walk (self, (uint64_t) lo, (uint64_t) hi, primes, max, &found))
        return found;
    //  Not worth the iterator, or primesieve failed (it should not below
    //  2^63): the pure path.
    self->stats.stateless++;
    if (!primes)
        return (size_t) pz_sieve_count (lo, hi, PZ_SIEVE_AUTO);
    return pz_sieve_primes (lo, hi, primes, max, PZ_SIEVE_AUTO);
}

//  Counts [lo, hi] block by block into counts and returns the total.
int64_t
pz_sieve_next_counts (pz_sieve_t *self, int64_t lo, int64_t hi, int64_t block,
                      int64_t *counts)
{
    assert (self && counts && block > 0);
    assert (pz_sieve_valid (lo, hi));
    uint64_t width = (uint64_t) hi - (uint64_t) lo + 1;
    size_t blocks = (size_t) ((width - 1) / (uint64_t) block + 1);
    bool walking = s_position (self, (uint64_t) lo, (uint64_t) hi, true);
    int64_t total = 0;
    for (size_t index = 0; index < blocks; index++) {
        uint64_t first = (uint64_t) lo + index * (uint64_t) block;
        uint64_t last = (uint64_t) hi - first < (uint64_t) block - 1
                      ? (uint64_t) hi : first + (uint64_t) block - 1;
        size_t found = 0;
        if (walking && !s_walk (self, first, last, NULL, 0, &found))
            walking = false;        //  primesieve failed: the rest the pure way
        if (!walking) {
            found = (size_t) pz_sieve_count ((int64_t) first, (int64_t) last, PZ_SIEVE_AUTO);
            if (index == 0)
                self->stats.stateless++;
        }
        counts [index] = (int64_t) found;
        total += (int64_t) found;
    }
    return total;
}

//  Copies the counters.
void
pz_sieve_stats (pz_sieve_t *self, pz_sieve_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}
