/*  =========================================================================
    audit - the broker tests a sample of every report again before it
            publishes it

    Honest machines send wrong results too (faulty memory, an overclocked
    CPU), and a stranger with a valid key may lie on purpose. Before the
    verdicts of a report are published, the broker tests some of its
    records itself with the same exact test the workers run (prime.h) and
    refuses the whole report if one is wrong.

    Which records: each record of a report is re-tested with probability
    `fraction` (--audit), and at least one record of every report is, so a
    worker that lies on every record is caught on its first report. The
    number re-tested is fraction * count rounded up or down at random (so
    that on average exactly fraction of the records are), at least 1; each
    is drawn uniformly from the report, with replacement, by a generator
    seeded from the clock and the process, so a worker cannot predict which.

    What that catches (proto/PROTOCOL.md, "Audit"): a worker that lies on
    a share p of its records lies on a sampled one with probability about
    max (1, fraction * r) * p per report of r records. At the default
    fraction 0.01 and p = 1/1000 that is 1/1000 per report for reports of up
    to 100 records (99 % caught within 4,603 reports) and about 1/100 for
    reports of 1024 (99 % within 450).
    =========================================================================
*/
#ifndef PZ_AUDIT_H_INCLUDED
#define PZ_AUDIT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The default share of records re-tested.
#define PZ_AUDIT_DEFAULT    0.01

typedef struct _pz_audit_t pz_audit_t;

typedef struct {
    uint64_t reports;           //  reports sampled
    uint64_t records;           //  records re-tested
    uint64_t wrong;             //  reports with a wrong verdict found
} pz_audit_stats_t;

//  Creates an audit re-testing fraction (0 to 1) of the records; 0 turns
//  it off (no record is re-tested, not even one per report). seed 0 picks
//  one from the clock and the process id. Caller owns return value.
pz_audit_t *
    pz_audit_new (double fraction, uint64_t seed);

//  Destroys the audit. NULL-safe; nulls *self_p.
void
    pz_audit_destroy (pz_audit_t **self_p);

//  Picks the records of a report of count records to re-test: writes their
//  indexes (0 .. count - 1, ascending, possibly repeated) into indexes,
//  which has room for count, and returns how many: 0 if the audit is off or
//  count is 0, count (each once) if fraction is 1.
size_t
    pz_audit_sample (pz_audit_t *self, size_t count, size_t *indexes);

//  Re-tests a sample of count verdict records at records (each P or C, as a
//  report holds them after its I record). Returns the index of the first
//  wrong verdict found, or -1 if the sample holds none.
int64_t
    pz_audit_check (pz_audit_t *self, const uint8_t *records, size_t count);

//  Re-tests a sample of a report of count numbers given as verdict bits
//  (the V records after its I record) against the dispatch's N records at
//  numbers. Returns the index of the first wrong verdict found, or -1.
int64_t
    pz_audit_check_bits (pz_audit_t *self, const uint8_t *numbers,
                         const uint8_t *bits, size_t count);

//  Returns true if tag (P or C) is the right verdict for value.
bool
    pz_audit_verdict_right (char tag, int64_t value);

//  Copies the counters into stats.
void
    pz_audit_stats (pz_audit_t *self, pz_audit_stats_t *stats);

#endif
