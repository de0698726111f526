/*  =========================================================================
    prime.c - exact primality for every int64_t

    Part of PlayØMQ, a distributed prime checker on ZeroMQ.
    =========================================================================

    Three stages, cheapest first. Values below 313^2 are settled by trial
    division alone. Larger values meet a small-prime prefilter (2 and the
    odd primes up to 313, tested by multiplying with modular inverses, no
    division instruction), which rejects 90% of random values, and the
    survivors go through Baillie-PSW: a strong base-2 Miller-Rabin test,
    then the extra strong Lucas test with Q = 1 and the least P >= 3 for
    which Jacobi(P^2 - 4, n) = -1 (Baillie's parameters, OEIS A217719).
    No base-2 strong pseudoprime below 2^64 (Feitsma and Galway's list) is
    an extra strong Lucas pseudoprime with these parameters, so the
    verdict is exact for every int64_t.

    Arithmetic mod n is 64-bit Montgomery multiplication. Every int64_t is
    below 2^63, and the spare bit pays twice: residues can sit in [-n, n]
    so no product needs a final conditional correction, and base 2's
    doubling folds into the square before its reduction. The tests are
    bound by multiplier latency, so pz_prime_check runs the Miller-Rabin
    test on four values at once and the Lucas test on two.
*/

#include "prime.h"

#include <assert.h>

//  GCC/Clang 128-bit integers: the full 64x64 product in one instruction.
__extension__ typedef unsigned __int128 s_u128;
__extension__ typedef __int128 s_i128;

//  The odd primes 3 .. 313, in order. One X-macro list feeds both tables
//  below so they cannot disagree. 64 primes: measured against 32, 48 and
//  96, a flat optimum where the products saved in Miller-Rabin by a longer
//  list match the trial divisions it adds.
#define S_PRIME_LIST(X) \
    X(3) X(5) X(7) X(11) X(13) X(17) X(19) X(23) X(29) X(31) \
    X(37) X(41) X(43) X(47) X(53) X(59) X(61) X(67) X(71) X(73) \
    X(79) X(83) X(89) X(97) X(101) X(103) X(107) X(109) X(113) X(127) \
    X(131) X(137) X(139) X(149) X(151) X(157) X(163) X(167) X(173) X(179) \
    X(181) X(191) X(193) X(197) X(199) X(211) X(223) X(227) X(229) X(233) \
    X(239) X(241) X(251) X(257) X(263) X(269) X(271) X(277) X(281) X(283) \
    X(293) X(307) X(311) X(313)

//  Newton's iteration for 1/p mod 2^64: p p = 1 mod 8 gives 3 correct
//  bits, each step doubles them, five steps give 96 >= 64. Evaluated by
//  the compiler, so the table is exact by construction.
#define S_INV_STEP(p, x) ((x) * (2 - (uint64_t) (p) * (x)))
#define S_INV(p) S_INV_STEP (p, S_INV_STEP (p, S_INV_STEP (p, \
                 S_INV_STEP (p, S_INV_STEP (p, (uint64_t) (p))))))

//  An odd p divides n iff n inv(p) mod 2^64 <= floor((2^64 - 1) / p):
//  multiplying by the inverse maps the multiples of p one to one onto
//  0 .. floor((2^64 - 1) / p), and every other n above that range.
typedef struct {
    uint64_t inv;
    uint64_t lim;
} s_divisor_t;

#define S_AS_DIVISOR(p) { S_INV (p), UINT64_MAX / (p) },
#define S_AS_PRIME(p) (p),

static const s_divisor_t s_divisors [] = { S_PRIME_LIST (S_AS_DIVISOR) };
static const uint16_t s_primes [] = { S_PRIME_LIST (S_AS_PRIME) };

#define S_PRIME_COUNT (sizeof (s_primes) / sizeof (s_primes [0]))
_Static_assert (S_PRIME_COUNT % 8 == 0, "trial division tests groups of 8");

//  A value below this with no prime factor up to 313 is prime: a
//  composite has a factor at most its square root.
#define S_SMALL_LIMIT (313 * 313)

//  Values in one pz_prime_check block: enough Baillie-PSW candidates to
//  fill the lanes, few enough for the index lists to live on the stack.
#define S_BLOCK 256

//  Moduli per interleaved Miller-Rabin run in pz_prime_check. Measured
//  per value on primes near 2^62: 1 lane 245 ns, 2 lanes 137, 4 lanes 119
//  (beyond two the multiplier's throughput, not latency, is the limit).
#define S_LANES 4


//  --------------------------------------------------------------------------
//  Trial division

//  True if the odd prime at table index i divides n.
#define S_DIVIDES(n, i) ((n) * s_divisors [i].inv <= s_divisors [i].lim)

//  Returns true if the value n, 2 <= n < S_SMALL_LIMIT, is prime. Divides
//  only by primes up to sqrt(n), stopping at the first factor.
static bool
s_small_is_prime (uint64_t n)
{
    if ((n & 1) == 0)
        return n == 2;
    for (size_t i = 0; i < S_PRIME_COUNT; i++) {
        uint64_t p = s_primes [i];
        if (p * p > n)
            return true;
        if (S_DIVIDES (n, i))
            return false;
    }
    return true;
}

//  Returns true if 2 or a table prime divides n. Tests eight primes per
//  branch: the products are independent, so a group costs about as much
//  as one mispredicted branch; the first group (2 to 23) rejects 84% of
//  random values.
static bool
s_has_small_factor (uint64_t n)
{
    unsigned hit = (n & 1) == 0;
    for (size_t j = 0; j < 8; j++)
        hit |= S_DIVIDES (n, j);
    if (hit)
        return true;
    for (size_t i = 8; i < S_PRIME_COUNT; i += 8) {
        for (size_t j = 0; j < 8; j++)
            hit |= S_DIVIDES (n, i + j);
        if (hit)
            return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Montgomery arithmetic modulo an odd n < 2^63, R = 2^64
//
//  Residues live in signed words in [-n, n], not in [0, n): the spare bit
//  of n < 2^63 bounds every product tightly enough that the reductions
//  need no final conditional correction, which would otherwise add to the
//  latency of every step of the exponentiations.

typedef struct {
    uint64_t n;         //  Modulus, odd, below 2^63
    uint64_t ninv;      //  n^-1 mod 2^64
    uint64_t half;      //  (n - 1) / 2
    uint64_t one;       //  R mod n: 1 in Montgomery form, in [0, n)
    uint64_t two;       //  2R mod n, in [0, n)
} s_mont_t;

//  Prepares Montgomery arithmetic modulo the odd value n < 2^63.
static void
s_mont_init (s_mont_t *self, uint64_t n)
{
    assert ((n & 1) && n < (UINT64_C (1) << 63));
    //  (3n) xor 2 is n^-1 to 5 bits; four Newton steps give 80 >= 64
    uint64_t x = (3 * n) ^ 2;
    for (int i = 0; i < 4; i++)
        x *= 2 - n * x;
    self->n = n;
    self->ninv = x;
    self->half = (n - 1) / 2;
    self->one = (0 - n) % n;
    //  one < n < 2^63, so one + one does not wrap
    uint64_t two = self->one + self->one;
    self->two = two >= n? two - n: two;
}

//  Returns the residue x in [-n, n] as its representative in [0, n).
static inline uint64_t
s_canonical (const s_mont_t *self, int64_t x)
{
    uint64_t r = (uint64_t) x;
    if (x < 0)
        r += self->n;
    else
    if (r >= self->n)
        r -= self->n;
    return r;
}

//  Returns the residue c in [0, n) as its representative in
//  [-(n - 1) / 2, (n - 1) / 2], the form s_mul_sub takes.
static inline int64_t
s_balanced (const s_mont_t *self, uint64_t c)
{
    return c > self->half? (int64_t) (c - self->n): (int64_t) c;
}

//  Returns r in (-n, n), r = x^2 2^bit / R mod n, for x in [-n, n], bit 0
//  or 1, and ninv_bit = ninv << bit. T = x^2 2^bit <= 2 n^2 < n R since
//  n < 2^63, so hi(T) < n, and hi(T) - hi(m n) with unsigned m lies in
//  (-n, n). Shifting ninv instead of T's low word keeps the shift off the
//  chain: (lo << bit) ninv = lo (ninv << bit) mod 2^64.
static inline int64_t
s_sqr_shift (const s_mont_t *self, int64_t x, unsigned bit, uint64_t ninv_bit)
{
    //  Signed 64x64 -> 128 square: nonnegative, below n^2
    s_u128 t = (s_u128) ((s_i128) x * x);
    uint64_t lo = (uint64_t) t;
    uint64_t hi = (uint64_t) (t >> 64);
    hi = (hi << bit) | ((lo >> 63) & bit);
    uint64_t m = lo * ninv_bit;
    uint64_t mn_hi = (uint64_t) (((s_u128) m * self->n) >> 64);
    return (int64_t) (hi - mn_hi);
}

//  Returns r in [-n, n], r = a b / R - c mod n, for a, b in [-n, n] and c
//  from s_balanced. Signed throughout: |a b| <= n^2 < n 2^63 and m in
//  [-2^63, 2^63) put hi(a b) and hi(m n) in [-(n + 1) / 2, (n - 1) / 2].
//  Subtracting c and re-balancing overlap the multiplication of m n.
static inline int64_t
s_mul_sub (const s_mont_t *self, int64_t a, int64_t b, int64_t c)
{
    s_u128 t = (s_u128) ((s_i128) a * b);
    //  GCC and Clang convert out-of-range unsigned to signed modulo 2^64
    int64_t hi = (int64_t) (uint64_t) (t >> 64);
    int64_t m = (int64_t) ((uint64_t) t * self->ninv);
    s_u128 mn = (s_u128) ((s_i128) m * (int64_t) self->n);
    int64_t mn_hi = (int64_t) (uint64_t) (mn >> 64);
    int64_t half = (int64_t) self->half;
    int64_t n = (int64_t) self->n;
    int64_t h = hi - c;
    h = h > half? h - n: h;
    h = h < -half - 1? h + n: h;
    return h - mn_hi;
}


//  --------------------------------------------------------------------------
//  Strong base-2 Miller-Rabin test

//  Returns true if the odd n > 1 is a strong probable prime to base 2,
//  given x = 2^d in Montgomery form (n - 1 = d 2^s, d odd) in [-n, n].
//  Runs the up to s - 1 squarings that finish the test.
static bool
s_sprp2_finish (const s_mont_t *self, int64_t x, int s)
{
    uint64_t minus_one = self->n - self->one;
    uint64_t y = s_canonical (self, x);
    if (y == self->one || y == minus_one)
        return true;
    for (int i = 1; i < s; i++) {
        y = s_canonical (self, s_sqr_shift (self, (int64_t) y, 0, self->ninv));
        if (y == minus_one)
            return true;
        if (y == self->one)
            return false;   //  A nontrivial square root of 1: composite
    }
    return false;
}

//  Runs the strong base-2 test on lanes (1 .. S_LANES) odd moduli at once,
//  writing the verdicts to result. The squaring chains are independent,
//  so each fills the others' multiplier latency; with a constant lanes
//  the compiler unrolls the lane loops and keeps the chains in registers.
static inline void
s_sprp2_lanes (const s_mont_t *mont, size_t lanes, bool *result)
{
    uint64_t d [S_LANES], ninv2 [S_LANES];
    int64_t x [S_LANES];
    int s [S_LANES], bits [S_LANES];
    int top = 0;
    for (size_t k = 0; k < lanes; k++) {
        uint64_t n1 = mont [k].n - 1;
        s [k] = __builtin_ctzll (n1);
        d [k] = n1 >> s [k];
        bits [k] = 63 - __builtin_clzll (d [k]);
        top = bits [k] > top? bits [k]: top;
        ninv2 [k] = mont [k].ninv << 1;
    }
    //  Left to right: square, doubling where the exponent bit is set. The
    //  top bit of d is 1, so start at 2; a shorter exponent gets leading
    //  zero bits instead, starting at 1, which squares to 1.
    for (size_t k = 0; k < lanes; k++)
        x [k] = (int64_t) (bits [k] == top? mont [k].two: mont [k].one);
    for (int i = top - 1; i >= 0; i--)
        //  Unrolled even at -O2, so the lanes' chains stay in registers
        #pragma GCC unroll 4
        for (size_t k = 0; k < lanes; k++) {
            unsigned bit = (d [k] >> i) & 1;
            uint64_t ninv_bit = bit? ninv2 [k]: mont [k].ninv;
            x [k] = s_sqr_shift (&mont [k], x [k], bit, ninv_bit);
        }
    for (size_t k = 0; k < lanes; k++)
        result [k] = s_sprp2_finish (&mont [k], x [k], s [k]);
}

//  Returns true if the odd n > 1 is a strong probable prime to base 2.
static bool
s_sprp2 (const s_mont_t *self)
{
    bool result;
    s_sprp2_lanes (self, 1, &result);
    return result;
}


//  --------------------------------------------------------------------------
//  Extra strong Lucas test

//  Returns the Jacobi symbol (a / n) for odd n > 0: 1, -1, or 0 when
//  gcd(a, n) > 1. Binary algorithm with quadratic reciprocity.
static int
s_jacobi (uint64_t a, uint64_t n)
{
    assert (n & 1);
    int t = 1;
    if (a >= n)
        a %= n;
    while (a) {
        int z = __builtin_ctzll (a);
        a >>= z;
        //  (2 / n) = -1 iff n = 3 or 5 mod 8
        if ((z & 1) && ((n & 7) == 3 || (n & 7) == 5))
            t = -t;
        //  Reciprocity: (a / n) = -(n / a) iff both are 3 mod 4
        if ((a & 3) == 3 && (n & 3) == 3)
            t = -t;
        uint64_t r = n % a;
        n = a;
        a = r;
    }
    return n == 1? t: 0;
}

//  Returns true if n > 0 is a perfect square. Integer Newton iteration
//  from above; only reached for the rare n that need many Lucas
//  parameters.
static bool
s_is_square (uint64_t n)
{
    uint64_t x = UINT64_C (1) << ((64 - __builtin_clzll (n) + 1) / 2);
    uint64_t y = (x + n / x) / 2;
    while (y < x) {
        x = y;
        y = (x + n / x) / 2;
    }
    return x * x == n;
}

//  Returns the Lucas parameter for the odd n > 1: the least P >= 3 with
//  Jacobi(P^2 - 4, n) = -1, skipping P where n divides P^2 - 4, or 0 if
//  that search shows n composite (a square, or sharing a factor).
static uint64_t
s_lucas_parameter (uint64_t n)
{
    for (uint64_t p = 3; ; p++) {
        uint64_t d = p * p - 4;
        int j = s_jacobi (d, n);
        if (j == -1)
            return p;
        //  A zero symbol means gcd(D, n) > 1: a proper factor unless n | D
        if (j == 0 && d % n != 0)
            return 0;
        //  A square never yields -1: the search would go on until P^2 - 4
        //  shared a factor with n. Non-squares almost always yield -1
        //  before P = 20.
        if (p == 20 && s_is_square (n))
            return 0;
    }
}

//  Returns the Montgomery form of the small k modulo n, in [0, n), by
//  doubling and adding: cheaper than a 128-bit division for so few bits.
static uint64_t
s_to_mont_small (const s_mont_t *self, uint64_t k)
{
    uint64_t r = 0;
    for (int i = 63 - __builtin_clzll (k); i >= 0; i--) {
        r += r;
        r = r >= self->n? r - self->n: r;
        if ((k >> i) & 1) {
            r += self->one;
            r = r >= self->n? r - self->n: r;
        }
    }
    return r;
}

//  State of one extra strong Lucas test (Q = 1): the ladder walks the bits
//  of d holding V_k and V_k+1 in Montgomery form.
typedef struct {
    uint64_t p;         //  P in Montgomery form, in [0, n)
    int64_t p_bal;      //  The same, balanced for s_mul_sub
    int64_t two_bal;    //  2 in Montgomery form, balanced
    uint64_t d;         //  Odd part of n + 1
    int s;              //  n + 1 = d 2^s
    int top;            //  Bits of d below top are still to walk
    int64_t v0, v1;     //  V_k and V_k+1, in [-n, n]
} s_lucas_t;

//  Prepares the test of n with parameter p. Consumes the top bit of d, so
//  the ladder starts at V_1 = P and V_2 = P^2 - 2.
static void
s_lucas_init (s_lucas_t *self, const s_mont_t *mont, uint64_t p)
{
    uint64_t n1 = mont->n + 1;
    self->s = __builtin_ctzll (n1);
    self->d = n1 >> self->s;
    self->top = 63 - __builtin_clzll (self->d);
    self->p = s_to_mont_small (mont, p);
    self->p_bal = s_balanced (mont, self->p);
    self->two_bal = s_balanced (mont, mont->two);
    self->v0 = (int64_t) self->p;
    self->v1 = s_mul_sub (mont, self->v0, self->v0, self->two_bal);
}

//  One ladder step on bit i of d: (V_k, V_k+1) becomes (V_2k, V_2k+1) or
//  (V_2k+1, V_2k+2), by V_2k = V_k^2 - 2 and V_2k+1 = V_k V_k+1 - P. The
//  branch is on a bit known long before the products are, so it resolves
//  early and a mispredict overlaps the multiply latency: measured faster
//  than branch-free selects, which sit on the chain.
static inline void
s_lucas_step (s_lucas_t *self, const s_mont_t *mont, int i)
{
    int64_t odd = s_mul_sub (mont, self->v0, self->v1, self->p_bal);
    if ((self->d >> i) & 1) {
        self->v1 = s_mul_sub (mont, self->v1, self->v1, self->two_bal);
        self->v0 = odd;
    }
    else {
        self->v0 = s_mul_sub (mont, self->v0, self->v0, self->two_bal);
        self->v1 = odd;
    }
}

//  Returns the verdict once the ladder has reached V_d and V_d+1: n is an
//  extra strong Lucas probable prime iff U_d = 0 and V_d = +-2, or
//  V_(d 2^r) = 0 for some 0 <= r < s - 1.
static bool
s_lucas_finish (const s_lucas_t *self, const s_mont_t *mont)
{
    uint64_t n = mont->n;
    uint64_t v = s_canonical (mont, self->v0);
    uint64_t w = s_canonical (mont, self->v1);
    //  With Q = 1, D U_d = 2 V_d+1 - P V_d, and gcd(2D, n) = 1, so
    //  U_d = 0 and V_d = +-2 iff V_d = 2, V_d+1 = P or V_d = -2, V_d+1 = -P
    if (v == mont->two && w == self->p)
        return true;
    if (v == n - mont->two && w == n - self->p)
        return true;
    for (int r = 0; r < self->s - 1; r++) {
        if (v == 0)
            return true;
        v = s_canonical (mont, s_mul_sub (mont, (int64_t) v, (int64_t) v,
                                          self->two_bal));
    }
    return false;
}

//  Returns true if the odd n > 1 is an extra strong Lucas probable prime
//  with Baillie's parameters, false if it is composite.
static bool
s_lucas (const s_mont_t *mont)
{
    uint64_t p = s_lucas_parameter (mont->n);
    if (p == 0)
        return false;
    s_lucas_t lucas;
    s_lucas_init (&lucas, mont, p);
    for (int i = lucas.top - 1; i >= 0; i--)
        s_lucas_step (&lucas, mont, i);
    return s_lucas_finish (&lucas, mont);
}

//  As s_lucas on two moduli at once, interleaving the two ladders, and
//  writing the verdicts to result.
static void
s_lucas_pair (const s_mont_t *a, const s_mont_t *b, bool *result)
{
    uint64_t ap = s_lucas_parameter (a->n);
    uint64_t bp = s_lucas_parameter (b->n);
    if (ap == 0 || bp == 0) {
        result [0] = ap && s_lucas (a);
        result [1] = bp && s_lucas (b);
        return;
    }
    s_lucas_t al, bl;
    s_lucas_init (&al, a, ap);
    s_lucas_init (&bl, b, bp);
    //  Walk the longer ladder alone until both have as many bits left
    while (al.top > bl.top) {
        al.top--;
        s_lucas_step (&al, a, al.top);
    }
    while (bl.top > al.top) {
        bl.top--;
        s_lucas_step (&bl, b, bl.top);
    }
    for (int i = al.top - 1; i >= 0; i--) {
        s_lucas_step (&al, a, i);
        s_lucas_step (&bl, b, i);
    }
    result [0] = s_lucas_finish (&al, a);
    result [1] = s_lucas_finish (&bl, b);
}


//  --------------------------------------------------------------------------
//  Public API

//  Returns 1 if the value is settled without Baillie-PSW and prime, 0 if
//  settled and not prime, -1 if it is odd, above S_SMALL_LIMIT and free of
//  small factors, so needs Baillie-PSW.
static inline int
s_prefilter (int64_t value)
{
    if (value < S_SMALL_LIMIT)
        return value >= 2 && s_small_is_prime ((uint64_t) value);
    if (s_has_small_factor ((uint64_t) value))
        return 0;
    return -1;
}

bool
pz_prime_is_prime (int64_t n)
{
    int verdict = s_prefilter (n);
    if (verdict >= 0)
        return verdict;
    s_mont_t mont;
    s_mont_init (&mont, (uint64_t) n);
    return s_sprp2 (&mont) && s_lucas (&mont);
}

void
pz_prime_check (const int64_t *values, uint8_t *is_prime, size_t count)
{
    assert (count == 0 || (values && is_prime));
    //  Per block: prefilter every value, then run Miller-Rabin on the
    //  survivors S_LANES at a time, then Lucas on its survivors in pairs
    uint16_t todo [S_BLOCK];
    uint16_t next [S_BLOCK];
    for (size_t base = 0; base < count; base += S_BLOCK) {
        size_t size = count - base < S_BLOCK? count - base: S_BLOCK;
        const int64_t *value = values + base;
        uint8_t *verdict = is_prime + base;
        size_t todo_size = 0;
        for (size_t i = 0; i < size; i++) {
            int v = s_prefilter (value [i]);
            verdict [i] = v > 0;
            if (v < 0)
                todo [todo_size++] = (uint16_t) i;
        }
        size_t next_size = 0;
        for (size_t i = 0; i < todo_size; ) {
            size_t left = todo_size - i;
            size_t lanes = left >= S_LANES? S_LANES: left >= 2? 2: 1;
            s_mont_t mont [S_LANES];
            bool pass [S_LANES];
            for (size_t k = 0; k < lanes; k++)
                s_mont_init (&mont [k], (uint64_t) value [todo [i + k]]);
            //  Constant lane counts, so each call is unrolled for its count
            if (lanes == S_LANES)
                s_sprp2_lanes (mont, S_LANES, pass);
            else
            if (lanes == 2)
                s_sprp2_lanes (mont, 2, pass);
            else
                s_sprp2_lanes (mont, 1, pass);
            for (size_t k = 0; k < lanes; k++)
                if (pass [k])
                    next [next_size++] = todo [i + k];
            i += lanes;
        }
        for (size_t i = 0; i < next_size; i += 2) {
            s_mont_t mont [2];
            bool pass [2];
            s_mont_init (&mont [0], (uint64_t) value [next [i]]);
            if (i + 1 < next_size) {
                s_mont_init (&mont [1], (uint64_t) value [next [i + 1]]);
                s_lucas_pair (&mont [0], &mont [1], pass);
                verdict [next [i + 1]] = pass [1];
            }
            else
                pass [0] = s_lucas (&mont [0]);
            verdict [next [i]] = pass [0];
        }
    }
}
