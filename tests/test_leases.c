/*  =========================================================================
    test_leases - the broker's dispatches on their own: merging source
                  messages into drafts, covers, coalescing, pushing, lease
                  expiry, checking reports, counters

    pz_leases_t is driven with clock values the test picks (no sleeping),
    and pushes over a real inproc PUSH/PULL pair, so every dispatch on the
    wire is read back and compared byte by byte.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>

#include "leases.h"
#include "record.h"

#define S_BASE      ((int64_t) 77 << 40)    //  id base: ids are S_BASE + 1, + 2, ...

//  A PUSH socket and the PULL that reads what it sends.
typedef struct {
    zsock_t *push;
    zsock_t *pull;
} s_pair_t;

//  Binds a PUSH on a fresh inproc endpoint; connects a PULL to it unless
//  with_pull is false (then a push finds no peer and must wait).
static s_pair_t
s_pair_new (bool with_pull)
{
    static int counter = 0;
    s_pair_t pair = { NULL, NULL };
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://test-leases-%d-%d", getpid (), ++counter);
    pair.push = zsock_new (ZMQ_PUSH);
    cr_assert (pair.push);
    zsock_set_linger (pair.push, 0);
    cr_assert_eq (zsock_bind (pair.push, "%s", endpoint), 0);
    if (with_pull) {
        pair.pull = zsock_new (ZMQ_PULL);
        zsock_set_rcvtimeo (pair.pull, 1000);
        zsock_set_linger (pair.pull, 0);
        cr_assert_eq (zsock_connect (pair.pull, "%s", endpoint), 0);
    }
    return pair;
}

static void
s_pair_destroy (s_pair_t *pair)
{
    zsock_destroy (&pair->pull);
    zsock_destroy (&pair->push);
}

//  Fills records with count N records first, first + 1, ...
static void
s_numbers (uint8_t *records, int64_t first, size_t count)
{
    for (size_t index = 0; index < count; index++)
        pz_record_encode (records + index * PZ_RECORD_SIZE, 'N', first + (int64_t) index);
}

//  Adds count numbers first, first + 1, ... as the publication seq.
static void
s_add (pz_leases_t *leases, int64_t first, size_t count, int64_t seq, int64_t now_ms)
{
    static uint8_t records [PZ_RECORDS_MAX * PZ_RECORD_SIZE];
    s_numbers (records, first, count);
    pz_leases_add (leases, records, count, seq, now_ms);
}

//  Receives one dispatch on pull into frame; checks it is I id then count
//  N records, first, first + 1, ...; returns its size.
static size_t
s_expect_dispatch (zsock_t *pull, uint8_t *frame, int64_t id, int64_t first, size_t count)
{
    int size = zmq_recv (zsock_resolve (pull), frame, PZ_MESSAGE_MAX + PZ_RECORD_SIZE, 0);
    cr_assert_eq (size, (int) ((count + 1) * PZ_RECORD_SIZE),
                  "dispatch of %d bytes, expected I + %zu", size, count);
    cr_assert_eq (pz_record_tag (frame), 'I');
    cr_assert_eq (pz_record_value (frame), id, "dispatch id %ld, expected base + %ld",
                  (long) pz_record_value (frame), (long) (id - S_BASE));
    for (size_t index = 0; index < count; index++) {
        const uint8_t *record = frame + (index + 1) * PZ_RECORD_SIZE;
        cr_assert_eq (pz_record_tag (record), 'N');
        cr_assert_eq (pz_record_value (record), first + (int64_t) index,
                      "number %zu is %ld", index, (long) pz_record_value (record));
    }
    return (size_t) size;
}

//  Checks that nothing was pushed.
static void
s_expect_nothing (zsock_t *pull)
{
    uint8_t frame [PZ_RECORD_SIZE];
    zsock_set_rcvtimeo (pull, 100);
    cr_assert_eq (zmq_recv (zsock_resolve (pull), frame, sizeof frame, 0), -1,
                  "a dispatch was pushed");
    zsock_set_rcvtimeo (pull, 1000);
}

//  Builds a report of numbers (protocol 3): I id, then the verdict bits of
//  one letter of verdicts (P or C) per number in V records; returns its size.
static size_t
s_report (uint8_t *frame, int64_t id, const char *verdicts)
{
    pz_record_encode (frame, 'I', id);
    size_t count = strlen (verdicts);
    uint8_t bits [PZ_RECORDS_MAX];
    for (size_t index = 0; index < count; index++)
        bits [index] = verdicts [index] == 'P';
    return PZ_RECORD_SIZE + pz_verdicts_encode (frame + PZ_RECORD_SIZE, bits, count);
}

//  Builds a report in the old format (protocol 2): I id, then one record
//  per letter of verdicts with values[i]; returns its size.
static size_t
s_old_report (uint8_t *frame, int64_t id, const char *verdicts, const int64_t *values)
{
    pz_record_encode (frame, 'I', id);
    size_t count = strlen (verdicts);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + (index + 1) * PZ_RECORD_SIZE, verdicts [index], values [index]);
    return (count + 1) * PZ_RECORD_SIZE;
}

//  Returns the result of checking a report of verdicts, with its lease in
//  *lease_p.
static pz_error_t
s_check (pz_leases_t *leases, int64_t id, const char *verdicts, pz_lease_t **lease_p)
{
    uint8_t frame [80 * PZ_RECORD_SIZE];
    size_t size = s_report (frame, id, verdicts);
    size_t count;
    return pz_leases_check (leases, frame, size, lease_p, &count);
}

static pz_leases_stats_t
s_stats (pz_leases_t *leases)
{
    pz_leases_stats_t stats;
    pz_leases_stats (leases, &stats);
    return stats;
}


//  Source messages join the open draft while the sum stays at most 4096
//  numbers (4096 exactly included); the next one starts a new dispatch.
//  Each dispatch holds its numbers in the order they were added.
Test (leases, messages_merge_into_a_draft_up_to_4096_numbers, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 1000);
    s_add (leases, 1000, 2000, 1, 0);
    s_add (leases, 3000, 2096, 2, 0);           //  4096 exactly: still joins
    s_add (leases, 9000, 1, 3, 0);              //  4097: a new dispatch
    s_add (leases, 9001, 4000, 4, 0);           //  joins the new one: 4001
    s_add (leases, 20000, 96, 5, 0);            //  4097 again: a third
    pz_leases_stats_t stats = s_stats (leases);
    cr_assert_eq (stats.numbers, 2000 + 2096 + 1 + 4000 + 96);
    cr_assert_eq (stats.messages, 5);
    cr_assert_eq (stats.dispatched, 0);
    cr_assert_eq (stats.dispatches, 0);

    s_pair_t pair = s_pair_new (true);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, true), 3);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    s_expect_dispatch (pair.pull, frame, S_BASE + 1, 1000, 4096);
    s_expect_dispatch (pair.pull, frame, S_BASE + 2, 9000, 4001);
    s_expect_dispatch (pair.pull, frame, S_BASE + 3, 20000, 96);
    s_expect_nothing (pair.pull);
    stats = s_stats (leases);
    cr_assert_eq (stats.dispatched, 4096 + 4001 + 96);
    cr_assert_eq (stats.dispatches, 3);
    cr_assert_eq (stats.numbers, 4096 + 4001 + 96);
    cr_assert_eq (stats.messages, 5);
    cr_assert_eq (stats.redispatched, 0);
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
    cr_assert_null (leases);
    pz_leases_destroy (&leases);                //  NULL-safe
}

//  A pushed dispatch is sealed: numbers added after it start a new one,
//  however few it holds.
Test (leases, a_pushed_dispatch_takes_no_more_numbers, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 0);
    s_pair_t pair = s_pair_new (true);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    s_add (leases, 50, 2, 1, 0);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, false), 1);
    s_add (leases, 52, 3, 2, 1);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 1, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 1, 50, 2);
    s_expect_dispatch (pair.pull, frame, S_BASE + 2, 52, 3);
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
}

//  A dispatch records the seqs of the source messages whose numbers it
//  holds (its covers), in the order they joined it.
Test (leases, covers_are_the_seqs_of_its_messages_in_order, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 1000);
    s_add (leases, 7, 1, 10, 0);
    s_add (leases, 8, 2, 11, 0);
    s_add (leases, 10, 1, 15, 0);
    s_add (leases, 11, 4096, 16, 0);            //  does not fit: its own dispatch
    pz_lease_t *lease = NULL;
    cr_assert_eq (s_check (leases, S_BASE + 1, "PCPC", &lease), PZ_OK);
    cr_assert_not_null (lease);
    size_t count = 0;
    const int64_t *covers = pz_lease_covers (lease, &count);
    cr_assert_eq (count, 3);
    cr_assert (covers [0] == 10 && covers [1] == 11 && covers [2] == 15,
               "covers %ld %ld %ld", (long) covers [0], (long) covers [1], (long) covers [2]);
    cr_assert_eq (pz_lease_numbers (lease), 4);

    //  The second dispatch, checked with a report of its 4096 numbers:
    //  64 V records.
    static char verdicts [PZ_RECORDS_MAX + 1];
    memset (verdicts, 'C', PZ_RECORDS_MAX);
    static uint8_t frame [65 * PZ_RECORD_SIZE];
    size_t size = s_report (frame, S_BASE + 2, verdicts);
    cr_assert_eq (size, 65 * PZ_RECORD_SIZE);
    pz_lease_t *second = NULL;
    size_t numbers = 0;
    cr_assert_eq (pz_leases_check (leases, frame, size, &second, &numbers), PZ_OK);
    cr_assert_eq (numbers, PZ_RECORDS_MAX);
    cr_assert_not_null (second);
    cr_assert_neq (second, lease);
    covers = pz_lease_covers (second, &count);
    cr_assert (count == 1 && covers [0] == 16);
    cr_assert_eq (pz_lease_numbers (second), PZ_RECORDS_MAX);
    pz_leases_destroy (&leases);
}

//  The open draft may go once it waited coalesce_ms, once it is full, or
//  when draining; a dispatch that is no longer open may go at once.
Test (leases, the_open_draft_waits_coalesce_ms_unless_full_or_draining, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 100);
    s_pair_t pair = s_pair_new (true);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    //  Nothing waits: never ready, nothing due.
    cr_assert (!pz_leases_ready (leases, 0, false));
    cr_assert (!pz_leases_ready (leases, 0, true));
    cr_assert_eq (pz_leases_wake_ms (leases, 0, false), INT64_MAX);

    s_add (leases, 100, 3, 1, 1000);
    cr_assert (!pz_leases_ready (leases, 1000, false));
    cr_assert (!pz_leases_ready (leases, 1099, false));
    cr_assert (pz_leases_ready (leases, 1100, false));
    cr_assert (pz_leases_ready (leases, 1000, true), "draining does not wait");
    cr_assert_eq (pz_leases_wake_ms (leases, 1000, false), 1100);
    //  Numbers joining later do not restart its wait.
    s_add (leases, 103, 1, 2, 1090);
    cr_assert (pz_leases_ready (leases, 1100, false));
    //  Not ready: a push sends nothing.
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 1050, false), 0);
    s_expect_nothing (pair.pull);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 1100, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 1, 100, 4);
    cr_assert (!pz_leases_ready (leases, 1100, false));

    //  Full: ready at once.
    s_add (leases, 200, PZ_RECORDS_MAX, 3, 2000);
    cr_assert (pz_leases_ready (leases, 2000, false));
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 2000, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 2, 200, PZ_RECORDS_MAX);

    //  A dispatch that a newer draft closed goes at once; the newer waits.
    s_add (leases, 5000, 4000, 4, 3000);
    s_add (leases, 9000, 200, 5, 3000);
    cr_assert (pz_leases_ready (leases, 3000, false));
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 3000, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 3, 5000, 4000);
    cr_assert (!pz_leases_ready (leases, 3000, false));
    //  Due next: the draft at 3100, before the first lease ends at 6100.
    cr_assert_eq (pz_leases_wake_ms (leases, 3000, false), 3100);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 3100, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 4, 9000, 200);
    //  Only leases now: the earliest lease end.
    cr_assert_eq (pz_leases_wake_ms (leases, 3100, false), 1100 + 5000);
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
}

//  coalesce_ms 0: a draft may go the moment it exists.
Test (leases, coalesce_ms_0_pushes_at_once, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 0);
    s_add (leases, 1, 1, 1, 500);
    cr_assert (pz_leases_ready (leases, 500, false));
    pz_leases_destroy (&leases);
}

//  A PUSH that has no peer takes nothing: the dispatch stays first in line,
//  unleased, until a worker connects.
Test (leases, a_push_without_a_worker_leaves_the_dispatch_waiting, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 300, 0);
    s_pair_t pair = s_pair_new (false);
    s_add (leases, 60, 2, 1, 0);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, false), 0);
    cr_assert (pz_leases_ready (leases, 0, false));
    cr_assert_eq (s_stats (leases).dispatched, 0);
    //  Not leased, so nothing expires.
    cr_assert_eq (pz_leases_expire (leases, 100000), 0);

    pair.pull = zsock_new (ZMQ_PULL);
    zsock_set_rcvtimeo (pair.pull, 1000);
    cr_assert_eq (zsock_connect (pair.pull, "%s", zsock_endpoint (pair.push)), 0);
    //  The connection is made by the I/O thread: try until it takes it.
    size_t pushed = 0;
    for (int attempt = 0; attempt < 200 && pushed == 0; attempt++) {
        pushed = pz_leases_push (leases, zsock_resolve (pair.push), 100000, false);
        if (!pushed)
            zclock_sleep (5);
    }
    cr_assert_eq (pushed, 1);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    s_expect_dispatch (pair.pull, frame, S_BASE + 1, 60, 2);
    cr_assert_eq (s_stats (leases).dispatched, 2);
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
}

//  A dispatch whose lease ran out goes back first in line, ahead of work
//  never pushed, and is pushed again with the same id and the same bytes;
//  each expiry counts its numbers as redispatched, never as dispatched.
Test (leases, an_expired_lease_goes_first_with_the_same_id_and_bytes, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 500, 0);
    s_pair_t pair = s_pair_new (true);
    static uint8_t first [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    static uint8_t again [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    s_add (leases, 300, 3, 1, 0);
    s_add (leases, 303, 2, 2, 0);               //  joins: 300..304
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, false), 1);
    size_t size = s_expect_dispatch (pair.pull, first, S_BASE + 1, 300, 5);
    cr_assert_eq (pz_leases_wake_ms (leases, 0, false), 500);

    s_add (leases, 400, 1, 3, 10);              //  a new dispatch, not pushed
    cr_assert_eq (pz_leases_expire (leases, 499), 0);
    cr_assert_eq (pz_leases_expire (leases, 500), 5);
    cr_assert_eq (pz_leases_expire (leases, 500), 0, "expired twice");
    pz_leases_stats_t stats = s_stats (leases);
    cr_assert_eq (stats.redispatched, 5);
    cr_assert_eq (stats.dispatched, 5);
    cr_assert_eq (stats.dispatches, 1);

    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 500, false), 2);
    cr_assert_eq (s_expect_dispatch (pair.pull, again, S_BASE + 1, 300, 5), size);
    cr_assert (memcmp (first, again, size) == 0, "pushed again with other bytes");
    s_expect_dispatch (pair.pull, frame, S_BASE + 2, 400, 1);
    stats = s_stats (leases);
    cr_assert_eq (stats.dispatched, 6);
    cr_assert_eq (stats.dispatches, 2);
    cr_assert_eq (stats.redispatched, 5);

    //  Leased again, from the second push: both run out at 1000.
    cr_assert_eq (pz_leases_wake_ms (leases, 500, false), 1000);
    cr_assert_eq (pz_leases_expire (leases, 999), 0);
    cr_assert_eq (pz_leases_expire (leases, 1000), 6);
    cr_assert_eq (s_stats (leases).redispatched, 11);
    //  Still checkable by the same id while waiting again.
    pz_lease_t *lease = NULL;
    cr_assert_eq (s_check (leases, S_BASE + 1, "CPCPC", &lease), PZ_OK);
    cr_assert_not_null (lease);
    pz_leases_complete (leases, lease);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 1000, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 2, 400, 1);
    s_expect_nothing (pair.pull);
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
}

//  A report of numbers carries one verdict bit per number dispatched (the
//  values are the broker's): as many V records as the count needs and no
//  bit past it, else E 7; an old-format report (P/C records) is E 15; an
//  id never issued is E 6; a completed dispatch's id is a duplicate: OK
//  without a lease, counted by its dispatch's numbers.
Test (leases, check_matches_a_report_against_its_dispatch, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 0);
    s_pair_t pair = s_pair_new (true);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    s_add (leases, 7, 3, 1, 0);                 //  7, 8, 9
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, false), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 1, 7, 3);

    pz_lease_t *lease = (pz_lease_t *) &lease;  //  must be set to NULL on error
    //  A verdict past the third number: a bit set past the count.
    cr_assert_eq (s_check (leases, S_BASE + 1, "PCCP", &lease), PZ_ERR_MISMATCH);
    cr_assert_null (lease);
    //  The last of 64 bits, and a second V record, are past it too.
    static char many [PZ_RECORDS_MAX + 1];
    memset (many, 'C', 64);
    many [63] = 'P';
    cr_assert_eq (s_check (leases, S_BASE + 1, many, &lease), PZ_ERR_MISMATCH);
    memset (many, 'C', 65);
    cr_assert_eq (s_check (leases, S_BASE + 1, many, &lease), PZ_ERR_MISMATCH);
    cr_assert_null (lease);

    int64_t right [] = { 7, 8, 9 };
    cr_assert_eq (s_check (leases, S_BASE + 2, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_eq (s_check (leases, S_BASE + 99, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_eq (s_check (leases, S_BASE, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_eq (s_check (leases, S_BASE - 1, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_eq (s_check (leases, 1, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_eq (s_check (leases, 0, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    //  The extremes (fuzz/fuzz_broker.c: INT64_MIN - base overflowed).
    cr_assert_eq (s_check (leases, INT64_MIN, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_eq (s_check (leases, INT64_MAX, "PCC", &lease), PZ_ERR_UNKNOWN_ID);
    cr_assert_null (lease);

    //  The old format, the values echoed as P and C records, right or
    //  not, for this dispatch or any: E 15, never read as verdicts.
    size_t count = 99;
    uint8_t old [8 * PZ_RECORD_SIZE];
    size_t old_size = s_old_report (old, S_BASE + 1, "PCC", right);
    cr_assert_eq (pz_leases_check (leases, old, old_size, &lease, &count), PZ_ERR_OLD_REPORT);
    old_size = s_old_report (old, S_BASE + 77, "C", right);
    cr_assert_eq (pz_leases_check (leases, old, old_size, &lease, &count), PZ_ERR_OLD_REPORT);
    cr_assert_null (lease);
    cr_assert_eq (count, 0);

    //  Malformed reports get the record checks' codes.
    uint8_t bad [4 * PZ_RECORD_SIZE];
    size_t size = s_report (bad, S_BASE + 1, "PCC");
    cr_assert_eq (size, 2 * PZ_RECORD_SIZE);
    cr_assert_eq (pz_leases_check (leases, bad + PZ_RECORD_SIZE, PZ_RECORD_SIZE, &lease, &count),
                  PZ_ERR_ID_PLACEMENT);
    cr_assert_eq (pz_leases_check (leases, bad, size - 1, &lease, &count), PZ_ERR_LENGTH);
    cr_assert_eq (pz_leases_check (leases, bad, PZ_RECORD_SIZE, &lease, &count),
                  PZ_ERR_ID_PLACEMENT);
    old_size = s_old_report (old, S_BASE + 1, "PNC", right);
    cr_assert_eq (pz_leases_check (leases, old, old_size, &lease, &count), PZ_ERR_TAG_REFUSED);
    pz_record_encode (bad + 2 * PZ_RECORD_SIZE, 'S', 1);
    cr_assert_eq (pz_leases_check (leases, bad, 3 * PZ_RECORD_SIZE, &lease, &count),
                  PZ_ERR_TAG_REFUSED);
    cr_assert_null (lease);
    cr_assert_eq (s_stats (leases).numbers, 3, "a refused report changed the dispatch");

    //  Any verdict bits within the count: OK, with the dispatch and its
    //  numbers, which are the dispatch's N records.
    size = s_report (bad, S_BASE + 1, "CPP");
    cr_assert_eq (pz_leases_check (leases, bad, size, &lease, &count), PZ_OK);
    cr_assert_not_null (lease);
    cr_assert_eq (count, 3);
    cr_assert_eq (pz_lease_numbers (lease), 3);
    const uint8_t *records = pz_lease_records (lease);
    for (size_t index = 0; index < 3; index++) {
        cr_assert_eq (pz_record_tag (records + index * PZ_RECORD_SIZE), PZ_TAG_NUMBER);
        cr_assert_eq (pz_record_value (records + index * PZ_RECORD_SIZE), right [index]);
    }
    pz_leases_complete (leases, lease);
    pz_leases_stats_t stats = s_stats (leases);
    cr_assert_eq (stats.numbers, 0);
    cr_assert_eq (stats.messages, 0);
    //  Completed: the same report again is OK with no dispatch (a
    //  duplicate) and the dispatch's count, and so is a mismatching one
    //  (nothing left to compare).
    lease = (pz_lease_t *) &lease;
    size = s_report (bad, S_BASE + 1, "PCC");
    cr_assert_eq (pz_leases_check (leases, bad, size, &lease, &count), PZ_OK);
    cr_assert_null (lease);
    cr_assert_eq (count, 3);
    cr_assert_eq (s_check (leases, S_BASE + 1, "P", &lease), PZ_OK);
    cr_assert_null (lease);
    //  No lease left to run out, nothing left to push.
    cr_assert_eq (pz_leases_expire (leases, 1000000), 0);
    cr_assert_eq (pz_leases_wake_ms (leases, 0, false), INT64_MAX);
    cr_assert (!pz_leases_ready (leases, 1000000, true));
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
}

//  A draft reported before its first push (its id guessed) is completed
//  and closed: numbers added afterwards start a new dispatch.
Test (leases, completing_the_open_draft_closes_it, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 5000, 1000);
    s_add (leases, 40, 2, 1, 0);
    pz_lease_t *lease = NULL;
    cr_assert_eq (s_check (leases, S_BASE + 1, "CP", &lease), PZ_OK);
    cr_assert_not_null (lease);
    pz_leases_complete (leases, lease);
    cr_assert (!pz_leases_ready (leases, 0, true));
    cr_assert_eq (pz_leases_wake_ms (leases, 0, false), INT64_MAX);

    s_add (leases, 50, 1, 2, 10);
    pz_leases_stats_t stats = s_stats (leases);
    cr_assert_eq (stats.numbers, 1);
    cr_assert_eq (stats.messages, 1);
    s_pair_t pair = s_pair_new (true);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 10, true), 1);
    s_expect_dispatch (pair.pull, frame, S_BASE + 2, 50, 1);
    s_pair_destroy (&pair);
    pz_leases_destroy (&leases);
}

//  Destroying a set with dispatches in every state frees them all
//  (valgrind checks), with sent copies still in flight.
Test (leases, destroy_frees_drafts_pending_and_leased_dispatches, .timeout = 10)
{
    pz_leases_t *leases = pz_leases_new (S_BASE, 100, 1000);
    s_pair_t pair = s_pair_new (true);
    s_add (leases, 1, 10, 1, 0);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, true), 1);
    s_add (leases, 20, 10, 2, 0);
    cr_assert_eq (pz_leases_push (leases, zsock_resolve (pair.push), 0, true), 1);
    cr_assert_eq (pz_leases_expire (leases, 100), 20);   //  both back in pending
    s_add (leases, 40, 10, 3, 100);
    s_add (leases, 50, 10, 4, 100);             //  joins the open draft
    pz_leases_stats_t stats = s_stats (leases);
    cr_assert_eq (stats.numbers, 40);
    cr_assert_eq (stats.messages, 4);
    pz_leases_destroy (&leases);
    s_pair_destroy (&pair);
}
