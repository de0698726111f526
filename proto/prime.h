/*  =========================================================================
    prime.h - exact primality for every int64_t

    Part of PlayØMQ, a distributed prime checker on ZeroMQ.
    =========================================================================

    The worker's number crunching. Verdicts are exact for the whole int64_t
    range, never probabilistic: small values are settled by trial division,
    larger ones by a small-prime prefilter followed by the Baillie-PSW test
    (strong base-2 Miller-Rabin plus the extra strong Lucas test), which has
    no counterexample below 2^64 (Feitsma and Galway's table of base-2
    strong pseudoprimes, checked against the Lucas test). Arithmetic modulo
    n is Montgomery multiplication on 64-bit words. Pure functions: no
    state, no allocation, safe to call from any number of threads.
*/

#ifndef PZ_PRIME_H_INCLUDED
#define PZ_PRIME_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Returns true if n is prime. Exact for every int64_t value: every n < 2
//  (zero, one, all negatives, INT64_MIN) is not prime.
bool pz_prime_is_prime (int64_t n);

//  Tests count values; sets is_prime[i] to 1 if values[i] is prime, else 0.
//  Same verdicts as pz_prime_is_prime on each value; may interleave work
//  across values for speed. Neither pointer may be NULL when count > 0.
void pz_prime_check (const int64_t *values, uint8_t *is_prime, size_t count);

#ifdef __cplusplus
}
#endif

#endif
