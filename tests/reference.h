/*  =========================================================================
    reference - slow, obviously correct arithmetic to check the fast code

    Shared by the primality tests and benchmarks: a seeded splitmix64
    generator (same values on every machine) and a deterministic
    Miller-Rabin test with the first 12 primes as bases, exact below
    3.3 * 10^24, written with plain 128-bit remainders, independent of
    proto/prime.c's Montgomery arithmetic and Lucas test.
    =========================================================================
*/
#ifndef PZ_REFERENCE_H_INCLUDED
#define PZ_REFERENCE_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

//  Returns the next value of a splitmix64 generator and advances *state.
uint64_t
    ref_splitmix64 (uint64_t *state);

//  Returns base^exponent mod modulus (modulus > 0) by square and multiply.
uint64_t
    ref_powmod (uint64_t base, uint64_t exponent, uint64_t modulus);

//  Returns true if the odd n > 2 is a strong probable prime to base a (also
//  when n divides a, which proves nothing either way).
bool
    ref_is_strong_probable_prime (uint64_t n, uint64_t a);

//  Returns true if n is prime: exact for every uint64_t.
bool
    ref_is_prime (uint64_t n);

#endif
