/*  =========================================================================
    reference - slow, obviously correct arithmetic to check the fast code

    Every product is reduced with a 128-bit remainder: slow, but there is
    nothing to get wrong. See reference.h.
    =========================================================================
*/
#include "reference.h"

#include <stddef.h>

__extension__ typedef unsigned __int128 s_u128;

//  Returns the next value of a splitmix64 generator.
uint64_t
ref_splitmix64 (uint64_t *state)
{
    uint64_t z = (*state += UINT64_C (0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C (0x94D049BB133111EB);
    return z ^ (z >> 31);
}

//  Returns base^exponent mod modulus.
uint64_t
ref_powmod (uint64_t base, uint64_t exponent, uint64_t modulus)
{
    uint64_t result = 1 % modulus;
    base %= modulus;
    while (exponent) {
        if (exponent & 1)
            result = (uint64_t) ((s_u128) result * base % modulus);
        base = (uint64_t) ((s_u128) base * base % modulus);
        exponent >>= 1;
    }
    return result;
}

//  Returns true if the odd n > 2 is a strong probable prime to base a.
bool
ref_is_strong_probable_prime (uint64_t n, uint64_t a)
{
    uint64_t d = n - 1;
    int s = 0;
    while ((d & 1) == 0) {
        d >>= 1;
        s++;
    }
    uint64_t x = ref_powmod (a, d, n);
    if (x == 1 || x == n - 1 || x == 0)
        return true;        //  x == 0: n divides a, which proves nothing
    for (int r = 1; r < s; r++) {
        x = (uint64_t) ((s_u128) x * x % n);
        if (x == n - 1)
            return true;
    }
    return false;
}

//  Returns true if n is prime: Miller-Rabin with the first 12 primes as
//  bases, deterministic below 3.3 * 10^24.
bool
ref_is_prime (uint64_t n)
{
    static const uint64_t bases [12] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37 };
    if (n < 2)
        return false;
    for (size_t i = 0; i < 12; i++)
        if (n % bases [i] == 0)
            return n == bases [i];
    for (size_t i = 0; i < 12; i++)
        if (!ref_is_strong_probable_prime (n, bases [i]))
            return false;
    return true;
}
