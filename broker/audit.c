/*  =========================================================================
    audit - the broker tests a sample of every report again before it
            publishes it

    The sample costs one random draw and one primality test (~50 ns) per
    record re-tested: at the default 1 % that is well under a nanosecond
    per number at batch 1024, and one test per report at batch 1, where a
    report's round trip costs a thousand times more.
    =========================================================================
*/
#include "audit.h"
#include "prime.h"
#include "record.h"

#include <assert.h>
#include <czmq.h>
#include <stdlib.h>
#include <unistd.h>

struct _pz_audit_t {
    double fraction;            //  share of records re-tested, 0 to 1
    uint64_t state;             //  the generator's state (splitmix64)
    size_t *indexes;            //  room for PZ_RECORDS_MAX sampled indexes
    pz_audit_stats_t stats;     //  counters
};

//  Returns the next 64 random bits (splitmix64: fast, and plenty for
//  sampling; not for secrets).
static uint64_t
s_next (pz_audit_t *self)
{
    uint64_t bits = (self->state += 0x9e3779b97f4a7c15ULL);
    bits = (bits ^ (bits >> 30)) * 0xbf58476d1ce4e5b9ULL;
    bits = (bits ^ (bits >> 27)) * 0x94d049bb133111ebULL;
    return bits ^ (bits >> 31);
}

//  Returns a uniform double in [0, 1).
static double
s_uniform (pz_audit_t *self)
{
    return (double) (s_next (self) >> 11) * (1.0 / 9007199254740992.0);
}

//  Creates an audit.
pz_audit_t *
pz_audit_new (double fraction, uint64_t seed)
{
    assert (fraction >= 0 && fraction <= 1);
    pz_audit_t *self = (pz_audit_t *) zmalloc (sizeof (pz_audit_t));
    assert (self);
    self->fraction = fraction;
    self->state = seed ? seed : (uint64_t) zclock_usecs () * 0x2545f4914f6cdd1dULL
                                ^ (uint64_t) getpid () << 32;
    self->indexes = (size_t *) malloc (PZ_RECORDS_MAX * sizeof (size_t));
    assert (self->indexes);
    return self;
}

//  Destroys the audit.
void
pz_audit_destroy (pz_audit_t **self_p)
{
    assert (self_p);
    pz_audit_t *self = *self_p;
    if (!self)
        return;
    free (self->indexes);
    free (self);
    *self_p = NULL;
}

//  Orders indexes, for qsort.
static int
s_compare (const void *left, const void *right)
{
    size_t a = *(const size_t *) left, b = *(const size_t *) right;
    return (a > b) - (a < b);
}

//  Sorts count indexes ascending by insertion: for the few of a sample.
static void
s_insertion_sort (size_t *indexes, size_t count)
{
    for (size_t next = 1; next < count; next++) {
        size_t value = indexes [next];
        size_t at = next;
        for (; at > 0 && indexes [at - 1] > value; at--)
            indexes [at] = indexes [at - 1];
        indexes [at] = value;
    }
}

//  Picks the records to re-test.
size_t
pz_audit_sample (pz_audit_t *self, size_t count, size_t *indexes)
{
    assert (self && (indexes || count == 0));
    if (self->fraction <= 0 || count == 0)
        return 0;
    if (self->fraction >= 1) {
        for (size_t index = 0; index < count; index++)
            indexes [index] = index;
        return count;
    }
    //  fraction * count, rounded down or up at random so the expectation
    //  is exact; never below one.
    double wanted = self->fraction * (double) count;
    size_t samples = (size_t) wanted;
    if (s_uniform (self) < wanted - (double) samples)
        samples++;
    if (samples < 1)
        samples = 1;
    if (samples > count)
        samples = count;
    for (size_t index = 0; index < samples; index++)
        indexes [index] = (size_t) (s_next (self) % count);
    //  A few picks (about 10 of a report of 1024 at the default): sorted
    //  in place by insertion, which beats qsort's setup at that size.
    if (samples <= 32)
        s_insertion_sort (indexes, samples);
    else
        qsort (indexes, samples, sizeof (size_t), s_compare);
    return samples;
}

//  Returns true if tag is the right verdict for value.
bool
pz_audit_verdict_right (char tag, int64_t value)
{
    return (tag == PZ_TAG_PRIME) == pz_prime_is_prime (value);
}

//  Draws the sample of a report of count verdicts into self->indexes and
//  counts it. Returns its size (0: nothing to test).
static size_t
s_draw (pz_audit_t *self, size_t count)
{
    assert (self && count <= PZ_RECORDS_MAX);
    size_t samples = pz_audit_sample (self, count, self->indexes);
    if (samples > 0) {
        self->stats.reports++;
        self->stats.records += samples;
    }
    return samples;
}

//  Re-tests a sample of a report's verdicts.
int64_t
pz_audit_check (pz_audit_t *self, const uint8_t *records, size_t count)
{
    size_t samples = s_draw (self, count);
    for (size_t index = 0; index < samples; index++) {
        const uint8_t *record = records + self->indexes [index] * PZ_RECORD_SIZE;
        if (!pz_audit_verdict_right (pz_record_tag (record), pz_record_value (record))) {
            self->stats.wrong++;
            return (int64_t) self->indexes [index];
        }
    }
    return -1;
}

//  Re-tests a sample of a report's verdict bits.
int64_t
pz_audit_check_bits (pz_audit_t *self, const uint8_t *numbers,
                     const uint8_t *bits, size_t count)
{
    size_t samples = s_draw (self, count);
    for (size_t index = 0; index < samples; index++) {
        size_t at = self->indexes [index];
        if (pz_verdicts_get (bits, at)
        !=  pz_prime_is_prime (pz_record_value (numbers + at * PZ_RECORD_SIZE))) {
            self->stats.wrong++;
            return (int64_t) at;
        }
    }
    return -1;
}

//  Copies the counters.
void
pz_audit_stats (pz_audit_t *self, pz_audit_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}
