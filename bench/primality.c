/*  =========================================================================
    primality.c - benchmark of the worker's primality test

    Part of PlayØMQ, a distributed prime checker on ZeroMQ.
    =========================================================================

    Times pz_prime_is_prime (one value per call) and pz_prime_check (whole
    set per call) on fixed, seeded value sets, and FLINT's n_is_prime on
    the same sets when built with FLINT (PZ_HAVE_FLINT), printing ns per
    value and the speed ratio FLINT / ours. Every verdict is cross-checked
    (ours one by one, ours in batch, FLINT); any disagreement is printed
    and the program exits 1. Each figure is the best of five repetitions,
    timed with CLOCK_MONOTONIC. Sets:
      random63   10^6 values uniform in [2, 2^63)
      random32   10^6 values uniform in [2, 2^32)
      primes62   10^4 consecutive primes from 2^62 - 10^7 up, found with a
                 plain Miller-Rabin reference independent of the worker
*/

#include "prime.h"
#include "reference.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifdef PZ_HAVE_FLINT
#   include <flint/ulong_extras.h>
#endif

#define S_LARGE_SET  1000000
#define S_PRIME_SET  10000
#ifndef S_REPEATS
#   define S_REPEATS 5
#endif
//  Values tested per timed repetition, at least: the prime set is run
//  several times over so each repetition is long enough to time.
#define S_MIN_WORK   200000

__extension__ typedef unsigned __int128 s_u128;

static int64_t s_values [S_LARGE_SET];
static uint8_t s_ours [S_LARGE_SET];
static uint8_t s_batch [S_LARGE_SET];
static uint8_t s_flint [S_LARGE_SET];

//  Returns the monotonic clock in nanoseconds.
static double
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

//  Prints the command, machine and CPU: how to reproduce and where.
static void
s_print_header (void)
{
    printf ("command: build/bench/playzmq-bench-primality\n");
    struct utsname un;
    const char *machine = uname (&un) == 0? un.machine: "unknown";
    char model [256] = "unknown";
    FILE *cpuinfo = fopen ("/proc/cpuinfo", "r");
    if (cpuinfo) {
        char line [512];
        while (fgets (line, sizeof line, cpuinfo)) {
            if (strncmp (line, "model name", 10) == 0) {
                const char *colon = strchr (line, ':');
                if (colon) {
                    snprintf (model, sizeof model, "%s", colon + 2);
                    model [strcspn (model, "\n")] = 0;
                }
                break;
            }
        }
        fclose (cpuinfo);
    }
    printf ("machine: %s, nproc %ld, cpu %s\n",
            machine, sysconf (_SC_NPROCESSORS_ONLN), model);
#ifdef PZ_HAVE_FLINT
    printf ("flint: %s\n", FLINT_VERSION);
#else
    printf ("flint: not built with FLINT, comparison skipped\n");
#endif
}

typedef enum { S_OURS, S_BATCH, S_FLINT } s_method_t;

//  Runs one method over the set rounds times, writing verdicts to out;
//  returns the elapsed nanoseconds.
static double
s_run (s_method_t method, size_t size, size_t rounds, uint8_t *out)
{
    double start = s_now_ns ();
    for (size_t round = 0; round < rounds; round++) {
        if (method == S_OURS)
            for (size_t i = 0; i < size; i++)
                out [i] = pz_prime_is_prime (s_values [i]);
        else
        if (method == S_BATCH)
            pz_prime_check (s_values, out, size);
#ifdef PZ_HAVE_FLINT
        else
            for (size_t i = 0; i < size; i++)
                out [i] = n_is_prime ((ulong) s_values [i]) != 0;
#endif
        //  Keep the compiler from merging or dropping repeated rounds
        __asm__ volatile ("" : : "r" (out) : "memory");
    }
    return s_now_ns () - start;
}

//  Returns the best ns per value over S_REPEATS repetitions.
static double
s_time (s_method_t method, size_t size, uint8_t *out)
{
    size_t rounds = size >= S_MIN_WORK? 1: (S_MIN_WORK + size - 1) / size;
    double best = 0;
    for (int rep = 0; rep < S_REPEATS; rep++) {
        double ns = s_run (method, size, rounds, out) / (double) (size * rounds);
        if (rep == 0 || ns < best)
            best = ns;
    }
    return best;
}

//  Times and cross-checks one set of size values in s_values; returns the
//  number of disagreeing verdicts.
static size_t
s_bench_set (const char *name, size_t size, bool all_prime)
{
    double ours = s_time (S_OURS, size, s_ours);
    double batch = s_time (S_BATCH, size, s_batch);
    size_t primes = 0;
    size_t mismatches = 0;
#ifdef PZ_HAVE_FLINT
    double flint = s_time (S_FLINT, size, s_flint);
#else
    //  Without FLINT the batch verdicts stand in, so only the ours/batch
    //  (and all-prime) checks below can fail
    memcpy (s_flint, s_batch, size);
#endif
    for (size_t i = 0; i < size; i++) {
        primes += s_ours [i];
        if (s_ours [i] != s_batch [i] || s_ours [i] != s_flint [i]
        ||  (all_prime && !s_ours [i])) {
            if (mismatches++ < 10)
                printf ("MISMATCH %s: %" PRId64 " is_prime=%d check=%d flint=%d\n",
                        name, s_values [i], s_ours [i], s_batch [i], s_flint [i]);
        }
    }
    printf ("%-9s %8zu values %7zu primes | is_prime %8.1f ns | check %8.1f ns",
            name, size, primes, ours, batch);
#ifdef PZ_HAVE_FLINT
    printf (" | flint %8.1f ns | flint/ours %.2fx, flint/check %.2fx\n",
            flint, flint / ours, flint / batch);
#else
    printf (" | flint skipped\n");
#endif
    return mismatches;
}

int
main (void)
{
    s_print_header ();
    uint64_t state = 20240601;
    size_t mismatches = 0;

    for (size_t i = 0; i < S_LARGE_SET; i++) {
        uint64_t v;
        do
            v = ref_splitmix64 (&state) >> 1;
        while (v < 2);
        s_values [i] = (int64_t) v;
    }
    mismatches += s_bench_set ("random63", S_LARGE_SET, false);

    for (size_t i = 0; i < S_LARGE_SET; i++) {
        uint64_t v;
        do
            v = ref_splitmix64 (&state) >> 32;
        while (v < 2);
        s_values [i] = (int64_t) v;
    }
    mismatches += s_bench_set ("random32", S_LARGE_SET, false);

    size_t count = 0;
    for (uint64_t n = (UINT64_C (1) << 62) - 10000000 + 1; count < S_PRIME_SET; n += 2)
        if (ref_is_prime (n))
            s_values [count++] = (int64_t) n;
    mismatches += s_bench_set ("primes62", S_PRIME_SET, true);

    if (mismatches) {
        printf ("FAILED: %zu verdicts disagree\n", mismatches);
        return 1;
    }
    printf ("all verdicts agree\n");
    return 0;
}
