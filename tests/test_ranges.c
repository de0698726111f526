/*  =========================================================================
    test_ranges - the broker's ranges on their own: checking range records,
                  cutting pieces, pushing and leasing them, checking piece
                  reports, completion and its count, restored pieces, undo

    pz_ranges_t is driven with clock values the test picks (no sleeping),
    and pushes over a real inproc PUSH/PULL pair, so every piece on the
    wire is read back and decoded. Counts in reports are the test's own
    numbers: the module adds them, it does not sieve.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ranges.h"
#include "record.h"
#include "sieve.h"

#define S_BASE      ((int64_t) 77 << 40)    //  id base, as a broker incarnation

typedef struct {
    zsock_t *push;
    zsock_t *pull;
} s_pair_t;

static s_pair_t
s_pair_new (void)
{
    static int counter = 0;
    s_pair_t pair;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://test-ranges-%d-%d", getpid (), ++counter);
    pair.push = zsock_new (ZMQ_PUSH);
    pair.pull = zsock_new (ZMQ_PULL);
    cr_assert (pair.push && pair.pull);
    zsock_set_linger (pair.push, 0);
    zsock_set_linger (pair.pull, 0);
    zsock_set_rcvtimeo (pair.pull, 1000);
    cr_assert_eq (zsock_bind (pair.push, "%s", endpoint), 0);
    cr_assert_eq (zsock_connect (pair.pull, "%s", endpoint), 0);
    return pair;
}

static void
s_pair_destroy (s_pair_t *pair)
{
    zsock_destroy (&pair->pull);
    zsock_destroy (&pair->push);
}

//  A piece as pushed: id, tag, bounds.
typedef struct {
    int64_t id;
    char tag;
    int64_t lo;
    int64_t hi;
} s_piece_t;

//  Decodes a pushed piece and destroys its frame; fails the test if it is
//  malformed.
static s_piece_t
s_piece_of (zframe_t **frame_p)
{
    zframe_t *frame = *frame_p;
    cr_assert_eq (zframe_size (frame), 3 * PZ_RECORD_SIZE);
    const uint8_t *data = zframe_data (frame);
    cr_assert_eq (pz_record_tag (data), 'I');
    s_piece_t piece = {
        pz_record_value (data), pz_record_tag (data + PZ_RECORD_SIZE),
        pz_record_value (data + PZ_RECORD_SIZE), pz_record_value (data + 2 * PZ_RECORD_SIZE)
    };
    cr_assert_eq (pz_record_tag (data + 2 * PZ_RECORD_SIZE), piece.tag);
    zframe_destroy (frame_p);
    return piece;
}

//  Reads one pushed piece; fails the test if none or malformed.
static s_piece_t
s_pull (s_pair_t *pair)
{
    zframe_t *frame = zframe_recv (pair->pull);
    cr_assert (frame, "no piece pushed");
    return s_piece_of (&frame);
}

//  Builds a Q report for piece with count into buffer, the count all in
//  its first block (0 in any other); returns its size.
static size_t
s_q_report (uint8_t *buffer, s_piece_t piece, int64_t count)
{
    pz_record_encode (buffer, 'I', piece.id);
    pz_record_encode (buffer + 9, 'Q', piece.lo);
    pz_record_encode (buffer + 18, 'Q', piece.hi);
    pz_record_encode (buffer + 27, 'Q', count);
    size_t blocks = pz_ranges_blocks (piece.lo, piece.hi);
    for (size_t block = 0; block < blocks; block++)
        pz_record_encode (buffer + 36 + 9 * block, 'Q', block == 0 ? count : 0);
    return 36 + 9 * blocks;
}

//  Builds an R report for piece with the given primes; returns its size.
static size_t
s_r_report (uint8_t *buffer, s_piece_t piece, const int64_t *primes, size_t count)
{
    pz_record_encode (buffer, 'I', piece.id);
    pz_record_encode (buffer + 9, 'R', piece.lo);
    pz_record_encode (buffer + 18, 'R', piece.hi);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (buffer + 27 + 9 * index, 'P', primes [index]);
    return 27 + 9 * count;
}

//  Encodes records (tag, value pairs given as two arrays) into buffer.
static size_t
s_records (uint8_t *buffer, const char *tags, const int64_t *values)
{
    size_t count = strlen (tags);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (buffer + 9 * index, tags [index], values [index]);
    return count;
}

Test (ranges, check_request, .timeout = 10)
{
    uint8_t buffer [9 * 8];
    size_t ranges = 99;
    struct { const char *tags; int64_t values [6]; pz_error_t error; size_t ranges; } cases [] = {
        { "N", { 5 }, PZ_OK, 0 },
        { "RR", { 1, 2 }, PZ_OK, 1 },
        { "NQQNRR", { 1, 0, 0, 4, 5, 5 }, PZ_OK, 2 },
        { "RRRR", { 1, 2, 3, 4 }, PZ_OK, 2 },
        { "R", { 1 }, PZ_ERR_HALF_RANGE, 0 },
        { "NR", { 1, 2 }, PZ_ERR_HALF_RANGE, 0 },
        { "RQ", { 1, 2 }, PZ_ERR_HALF_RANGE, 0 },
        { "RNR", { 1, 2, 3 }, PZ_ERR_HALF_RANGE, 0 },
        { "RRR", { 1, 2, 3 }, PZ_ERR_HALF_RANGE, 0 },
        { "RR", { 3, 2 }, PZ_ERR_RANGE_ORDER, 0 },
        { "QQ", { -1, 2 }, PZ_ERR_RANGE_NEGATIVE, 0 },
        { "QQ", { 5, -2 }, PZ_ERR_RANGE_NEGATIVE, 0 },
        { "RR", { INT64_MAX, INT64_MAX }, PZ_OK, 1 },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        size_t count = s_records (buffer, cases [index].tags, cases [index].values);
        cr_assert_eq (pz_ranges_check_request (buffer, count, &ranges), cases [index].error,
                      "case %zu", index);
        if (cases [index].error == PZ_OK)
            cr_assert_eq (ranges, cases [index].ranges, "case %zu", index);
    }
}

Test (ranges, cut_count_and_announce, .timeout = 10)
{
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 1000, 100, 64);
    //  A range of 250 numbers, cut 100 wide: three pieces, at most 2 out
    //  while no worker has reported yet.
    int64_t key = pz_ranges_reserve_keys (ranges, 1);
    pz_ranges_add (ranges, key, 'Q', 1000, 1249);
    cr_assert (pz_ranges_ready (ranges, false));
    cr_assert_not (pz_ranges_ready (ranges, true));     //  draining: nothing new
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 2);
    s_piece_t first = s_pull (&pair), second = s_pull (&pair);
    cr_assert_eq (first.tag, 'Q');
    cr_assert_eq (first.lo, 1000);
    cr_assert_eq (first.hi, 1099);
    cr_assert_eq (second.lo, 1100);
    cr_assert_eq (second.hi, 1199);
    cr_assert_eq (first.id, S_BASE + PZ_RANGES_ID_BIT + 1);
    cr_assert (pz_ranges_issued (ranges, first.id));
    cr_assert_not (pz_ranges_issued (ranges, S_BASE + 1));

    //  Report the second: not finished.
    uint8_t report [64];
    pz_piece_t *piece;
    bool reported;
    size_t size = s_q_report (report, second, 7);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &piece, &reported), PZ_OK);
    cr_assert (piece && !reported);
    pz_ranges_seen (ranges, (const uint8_t *) "w/0", 3, 0);
    pz_range_done_t done;
    cr_assert_not (pz_ranges_report (ranges, piece, 7, &done));
    //  The same report again while in the batch: an echo.
    cr_assert_eq (pz_ranges_check (ranges, report, size, &piece, &reported), PZ_OK);
    cr_assert (piece && reported);
    pz_ranges_settle (ranges, piece);
    //  Settled: later copies are duplicates.
    cr_assert_eq (pz_ranges_check (ranges, report, size, &piece, &reported), PZ_OK);
    cr_assert_null (piece);

    //  The third piece: shorter, up to hi.
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 1);
    s_piece_t third = s_pull (&pair);
    cr_assert_eq (third.lo, 1200);
    cr_assert_eq (third.hi, 1249);
    cr_assert_not (pz_ranges_ready (ranges, false));
    size = s_q_report (report, third, 5);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &piece, &reported), PZ_OK);
    cr_assert_not (pz_ranges_report (ranges, piece, 5, &done));
    pz_ranges_settle (ranges, piece);

    //  The first piece's lease runs out: pushed again, same id and bounds.
    cr_assert_eq (pz_ranges_wake_ms (ranges), 1000);
    cr_assert_eq (pz_ranges_expire (ranges, 999), 0);
    cr_assert_eq (pz_ranges_expire (ranges, 1000), 1);
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 1000, false), 1);
    s_piece_t again = s_pull (&pair);
    cr_assert_eq (again.id, first.id);
    cr_assert_eq (again.lo, first.lo);
    size = s_q_report (report, first, 11);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &piece, &reported), PZ_OK);
    cr_assert (pz_ranges_report (ranges, piece, 11, &done));
    cr_assert_eq (done.lo, 1000);
    cr_assert_eq (done.hi, 1249);
    cr_assert_eq (done.count, 7 + 5 + 11);
    pz_ranges_settle (ranges, piece);

    pz_ranges_stats_t stats;
    pz_ranges_stats (ranges, &stats);
    cr_assert_eq (stats.open, 0);
    cr_assert_eq (stats.done, 1);
    cr_assert_eq (stats.pieces, 0);
    cr_assert_eq (stats.dispatched, 3);
    cr_assert_eq (stats.redispatched, 1);
    cr_assert_eq (stats.settled, 3);
    cr_assert_eq (stats.numbers, 250);
    cr_assert_eq (stats.duplicates, 1);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, bad_reports, .timeout = 10)
{
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 1000, 1 << 30, 64);
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'R', 10, 30);
    pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false);
    s_piece_t piece = s_pull (&pair);
    cr_assert_eq (piece.tag, 'R');
    cr_assert_eq (piece.lo, 10);
    cr_assert_eq (piece.hi, 30);
    uint8_t report [256];
    pz_piece_t *found;
    bool reported;
    int64_t good [] = { 11, 13, 17, 19, 23, 29 };
    int64_t unordered [] = { 11, 17, 13 };
    int64_t outside [] = { 11, 31 };
    int64_t below [] = { 7, 11 };
    int64_t twice [] = { 11, 11 };
    //  Values out of order, outside, repeated: E 7.
    const int64_t *bad [] = { unordered, outside, below, twice };
    size_t counts [] = { 3, 2, 2, 2 };
    for (int index = 0; index < 4; index++) {
        size_t size = s_r_report (report, piece, bad [index], counts [index]);
        cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported),
                      PZ_ERR_MISMATCH, "case %d", index);
    }
    //  Other bounds: E 7. A count on an R piece: E 7.
    s_piece_t other = piece;
    other.hi = 29;
    size_t size = s_r_report (report, other, good, 6);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_ERR_MISMATCH);
    size = s_q_report (report, piece, 6);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_ERR_MISMATCH);
    //  An id never issued: E 6; a number dispatch's id: E 7.
    other = piece;
    other.id = ((int64_t) 78 << 40) + 5;
    size = s_r_report (report, other, good, 6);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_ERR_UNKNOWN_ID);
    other.id = S_BASE + 5;
    size = s_r_report (report, other, good, 6);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_ERR_MISMATCH);
    //  Shapes: length, a C record, no I.
    cr_assert_eq (pz_ranges_check (ranges, report, 10, &found, &reported), PZ_ERR_LENGTH);
    size = s_r_report (report, piece, good, 6);
    report [27] = 'C';
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_ERR_TAG_REFUSED);
    report [27] = 'P';
    report [0] = 'P';
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_ERR_ID_PLACEMENT);
    //  The right one, after all that: taken, finishes the range.
    size = s_r_report (report, piece, good, 6);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_OK);
    pz_range_done_t done;
    cr_assert (pz_ranges_report (ranges, found, 6, &done));
    cr_assert_eq (done.count, 6);
    //  Its batch could not be written: undone, out again at once.
    pz_ranges_undo (ranges, found, 50);
    cr_assert_eq (pz_ranges_expire (ranges, 50), 1);
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 50, false), 1);
    cr_assert_eq (s_pull (&pair).id, piece.id);
    cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_OK);
    cr_assert (pz_ranges_report (ranges, found, 6, &done));
    cr_assert_eq (done.count, 6);
    pz_ranges_settle (ranges, found);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, publish_pieces_capped, .timeout = 10)
{
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 1000, INT64_C (1) << 40, 64);
    //  R pieces at most PZ_RANGES_PUBLISH_MAX; Q pieces the lease width,
    //  even at the very top.
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'R', 0, INT64_MAX);
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', INT64_MAX - 5, INT64_MAX);
    pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false);
    s_piece_t piece = s_pull (&pair);
    cr_assert_eq (piece.lo, 0);
    cr_assert_eq (piece.hi, PZ_RANGES_PUBLISH_MAX - 1);
    piece = s_pull (&pair);
    cr_assert_eq (piece.lo, PZ_RANGES_PUBLISH_MAX);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, restored_pieces_skipped, .timeout = 10)
{
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 1000, 10, 64);
    //  Key 7 from a journal, [0, 49], pieces [10, 19] and [30, 39] done
    //  (12 primes), given out of order.
    pz_ranges_t *one = ranges;
    pz_ranges_destroy (&one);
    ranges = pz_ranges_new (S_BASE, 1000, 10, 1);     //  one piece out at a time
    pz_ranges_keys_from (ranges, 5);
    pz_ranges_add (ranges, 7, 'Q', 0, 49);
    cr_assert_not (pz_ranges_restore_piece (ranges, 7, 30, 39, 2));
    cr_assert_not (pz_ranges_restore_piece (ranges, 7, 10, 19, 10));
    cr_assert_eq (pz_ranges_reserve_keys (ranges, 1), 8);
    //  Cut only what is not done: [0, 9], [20, 29], [40, 49].
    int64_t los [] = { 0, 20, 40 };
    uint8_t report [64];
    pz_range_done_t done;
    for (int index = 0; index < 3; index++) {
        cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 1);
        s_piece_t piece = s_pull (&pair);
        cr_assert_eq (piece.lo, los [index]);
        cr_assert_eq (piece.hi, los [index] + 9);
        pz_piece_t *found;
        bool reported;
        size_t size = s_q_report (report, piece, 1);
        cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_OK);
        bool finished = pz_ranges_report (ranges, found, 1, &done);
        cr_assert_eq (finished, index == 2);
        pz_ranges_settle (ranges, found);
    }
    cr_assert_eq (done.count, 12 + 3);
    //  A range wholly restored is done at once.
    pz_ranges_add (ranges, 9, 'R', 5, 6);
    cr_assert (pz_ranges_restore_piece (ranges, 9, 5, 6, 1));
    pz_ranges_stats_t stats;
    pz_ranges_stats (ranges, &stats);
    cr_assert_eq (stats.open, 0);
    cr_assert_eq (stats.done, 2);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, bound_follows_active_workers, .timeout = 10)
{
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 100000, 1, 5);
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', 0, 1000);
    //  Nobody seen: 2 out. Three threads seen: 6, capped at 5.
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 2);
    for (int thread = 0; thread < 3; thread++)
        pz_ranges_seen (ranges, (const uint8_t *) &thread, sizeof thread, zclock_mono ());
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 3);
    cr_assert_not (pz_ranges_ready (ranges, false));
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, count_blocks, .timeout = 10)
{
    //  A Q report holds a count per block of PZ_SIEVE_BLOCK numbers; a
    //  report of the count alone (the format before the blocks), a block
    //  missing or too many, a block's count above its width: E 7.
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 1000, INT64_C (1) << 40, 64);
    int64_t lo = 1000000;
    int64_t hi = lo + 2 * PZ_SIEVE_BLOCK + 4;      //  3 blocks, the last 5 wide
    cr_assert_eq (pz_ranges_blocks (lo, hi), 3);
    cr_assert_eq (pz_ranges_blocks (5, 5), 1);
    cr_assert_eq (pz_ranges_blocks (0, PZ_SIEVE_BLOCK - 1), 1);
    cr_assert_eq (pz_ranges_blocks (0, PZ_SIEVE_BLOCK), 2);
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', lo, hi);
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 1);
    s_piece_t piece = s_pull (&pair);
    cr_assert_eq (piece.hi, hi);
    static uint8_t report [128];
    pz_piece_t *found;
    bool reported;
    s_q_report (report, piece, 100);
    cr_assert_eq (pz_ranges_check (ranges, report, 36, &found, &reported), PZ_ERR_MISMATCH);
    cr_assert_eq (pz_ranges_check (ranges, report, 36 + 9 * 2, &found, &reported),
                  PZ_ERR_MISMATCH);
    pz_record_encode (report + 36 + 27, 'Q', 0);
    cr_assert_eq (pz_ranges_check (ranges, report, 36 + 9 * 4, &found, &reported),
                  PZ_ERR_MISMATCH);
    pz_record_encode (report + 36 + 18, 'Q', 6);        //  last block: 5 numbers
    cr_assert_eq (pz_ranges_check (ranges, report, 36 + 9 * 3, &found, &reported),
                  PZ_ERR_MISMATCH);
    pz_record_encode (report + 36 + 18, 'Q', 5);
    cr_assert_eq (pz_ranges_check (ranges, report, 36 + 9 * 3, &found, &reported), PZ_OK);
    cr_assert (found);
    pz_record_encode (report + 36 + 18, 'P', 5);        //  a block's record not Q
    cr_assert_eq (pz_ranges_check (ranges, report, 36 + 9 * 3, &found, &reported),
                  PZ_ERR_MISMATCH);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, count_pieces_bounded, .timeout = 10)
{
    //  Q pieces are at most PZ_RANGES_COUNT_MAX wide, whatever --range-lease.
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 1000, INT64_MAX, 64);
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', 0, INT64_MAX);
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 2);
    s_piece_t first = s_pull (&pair), second = s_pull (&pair);
    cr_assert_eq (first.hi, PZ_RANGES_COUNT_MAX - 1);
    cr_assert_eq (second.lo, PZ_RANGES_COUNT_MAX);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

//  Pushes, pulls and reports (count 0) every piece of the ranges until
//  none is left; writes the pieces, in push order, to pieces (at most max).
//  Returns how many there were.
static size_t
s_drain (pz_ranges_t *ranges, s_pair_t *pair, s_piece_t *pieces, size_t max)
{
    static uint8_t report [9 * (4 + PZ_RANGES_COUNT_MAX / PZ_SIEVE_BLOCK)];
    size_t count = 0;
    while (pz_ranges_push (ranges, zsock_resolve (pair->push), 0, false) > 0) {
        //  What was pushed now, then reported, so the next push cuts more.
        s_piece_t batch [64];
        size_t pulled = 0;
        zsock_set_rcvtimeo (pair->pull, 0);
        zframe_t *probe;
        while (pulled < 64 && (probe = zframe_recv (pair->pull)) != NULL)
            batch [pulled++] = s_piece_of (&probe);
        zsock_set_rcvtimeo (pair->pull, 1000);
        for (size_t index = 0; index < pulled; index++) {
            cr_assert_lt (count, max);
            pieces [count++] = batch [index];
            pz_piece_t *found;
            bool reported;
            pz_range_done_t done;
            size_t size = s_q_report (report, batch [index], 0);
            cr_assert_eq (pz_ranges_check (ranges, report, size, &found, &reported), PZ_OK);
            pz_ranges_report (ranges, found, 0, &done);
            pz_ranges_settle (ranges, found);
        }
    }
    return count;
}

//  Asserts that pieces and the restored spans cover [lo, hi] once each.
static void
s_assert_cover (s_piece_t *pieces, size_t count, const int64_t (*spans) [2],
                size_t span_count, int64_t lo, int64_t hi)
{
    size_t width = (size_t) (hi - lo + 1);
    uint8_t *seen = (uint8_t *) calloc (width, 1);
    cr_assert (seen);
    for (size_t index = 0; index < count + span_count; index++) {
        int64_t from = index < count ? pieces [index].lo : spans [index - count][0];
        int64_t to = index < count ? pieces [index].hi : spans [index - count][1];
        cr_assert (from >= lo && to <= hi && from <= to);
        //  By offset: to may be INT64_MAX, which number++ would pass.
        for (int64_t offset = from - lo; offset <= to - lo; offset++)
            cr_assert_eq (seen [offset]++, 0, "%" PRId64 " twice", lo + offset);
    }
    for (size_t index = 0; index < width; index++)
        cr_assert_eq (seen [index], 1, "%" PRId64 " never cut", lo + (int64_t) index);
    free (seen);
}

Test (ranges, lanes_near_the_top, .timeout = 10)
{
    //  Two worker threads, a range of 20 pieces of 10 near 10^18: the cuts
    //  alternate between two lanes, each consecutive, so that each thread
    //  (PUSH deals round robin) gets a run of pieces that follow each other.
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 100000, 10, 64);
    for (int thread = 0; thread < 2; thread++)
        pz_ranges_seen (ranges, (const uint8_t *) &thread, sizeof thread, zclock_mono ());
    const int64_t lo = INT64_C (1000000000000000000), hi = lo + 199;
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', lo, hi);
    s_piece_t pieces [64];
    size_t count = s_drain (ranges, &pair, pieces, 64);
    cr_assert_eq (count, 20);
    s_assert_cover (pieces, count, NULL, 0, lo, hi);
    for (size_t index = 2; index < count; index++)
        cr_assert_eq (pieces [index].lo, pieces [index - 2].hi + 1,
                      "piece %zu does not follow its lane's last", index);
    cr_assert_eq (pieces [0].lo, lo);
    cr_assert_eq (pieces [1].lo, lo + 100);     //  the second lane: the middle
    pz_ranges_destroy (&ranges);

    //  Below 10^15 the same range is cut in order: one lane.
    ranges = pz_ranges_new (S_BASE, 100000, 10, 64);
    for (int thread = 0; thread < 2; thread++)
        pz_ranges_seen (ranges, (const uint8_t *) &thread, sizeof thread, zclock_mono ());
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', 1000, 1199);
    count = s_drain (ranges, &pair, pieces, 64);
    cr_assert_eq (count, 20);
    for (size_t index = 1; index < count; index++)
        cr_assert_eq (pieces [index].lo, pieces [index - 1].hi + 1);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, lanes_follow_connections_before_any_report, .timeout = 10)
{
    //  Three PULLs connected and none has reported yet (a range sent just
    //  after the workers started): the first cut already comes from three
    //  lanes, and six pieces go out at once, two per connection.
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 100000, 10, 64);
    pz_ranges_set_peers (ranges, 3);
    const int64_t lo = INT64_C (1000000000000000000), hi = lo + 299;
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', lo, hi);
    cr_assert_eq (pz_ranges_push (ranges, zsock_resolve (pair.push), 0, false), 6);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);

    pair = s_pair_new ();
    ranges = pz_ranges_new (S_BASE, 100000, 10, 64);
    pz_ranges_set_peers (ranges, 3);
    pz_ranges_add (ranges, pz_ranges_reserve_keys (ranges, 1), 'Q', lo, hi);
    s_piece_t pieces [64];
    size_t count = s_drain (ranges, &pair, pieces, 64);
    cr_assert_eq (count, 30);
    s_assert_cover (pieces, count, NULL, 0, lo, hi);
    cr_assert_eq (pieces [0].lo, lo);
    for (size_t index = 1; index < 3; index++)
        cr_assert_neq (pieces [index].lo, pieces [index - 1].hi + 1,
                       "the first pieces come from one lane");
    for (size_t index = 3; index < count; index++)
        cr_assert_eq (pieces [index].lo, pieces [index - 3].hi + 1,
                      "piece %zu does not follow its lane's last", index);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}

Test (ranges, lanes_skip_restored_pieces, .timeout = 10)
{
    //  Three threads, pieces done before a restart scattered over the range
    //  (one across the lanes' boundary): every other number is cut once.
    s_pair_t pair = s_pair_new ();
    pz_ranges_t *ranges = pz_ranges_new (S_BASE, 100000, 10, 64);
    for (int thread = 0; thread < 3; thread++)
        pz_ranges_seen (ranges, (const uint8_t *) &thread, sizeof thread, zclock_mono ());
    const int64_t lo = INT64_C (9223372036854775807) - 299, hi = INT64_MAX;
    pz_ranges_keys_from (ranges, 5);
    pz_ranges_add (ranges, 7, 'Q', lo, hi);
    const int64_t spans [][2] = {
        { lo + 140, lo + 169 }, { lo, lo + 9 }, { lo + 295, hi }, { lo + 61, lo + 64 }
    };
    for (size_t index = 0; index < 4; index++)
        cr_assert_not (pz_ranges_restore_piece (ranges, 7, spans [index][0],
                                                spans [index][1], 0));
    s_piece_t pieces [64];
    size_t count = s_drain (ranges, &pair, pieces, 64);
    s_assert_cover (pieces, count, spans, 4, lo, hi);
    pz_ranges_destroy (&ranges);
    s_pair_destroy (&pair);
}
