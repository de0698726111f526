/*  =========================================================================
    test_record - the wire record codec and frame validation

    Byte order is checked against byte strings written out by hand, not
    against the encoder itself, and every error code has a frame that
    produces it. Doubles as an example of building and checking records.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>

#include "publication.h"
#include "record.h"

//  Builds a frame of records from tags and values, returns its size.
static size_t
s_frame (uint8_t *frame, const char *tags, const int64_t *values)
{
    size_t count = strlen (tags);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, tags [index], values [index]);
    return count * PZ_RECORD_SIZE;
}

Test (record, encodes_big_endian_by_hand, .timeout = 5)
{
    uint8_t record [PZ_RECORD_SIZE];
    pz_record_encode (record, 'N', 0x0102030405060708);
    const uint8_t expected [PZ_RECORD_SIZE] = { 'N', 1, 2, 3, 4, 5, 6, 7, 8 };
    cr_assert_arr_eq (record, expected, PZ_RECORD_SIZE);

    pz_record_encode (record, 'P', 97);
    const uint8_t prime [PZ_RECORD_SIZE] = { 'P', 0, 0, 0, 0, 0, 0, 0, 0x61 };
    cr_assert_arr_eq (record, prime, PZ_RECORD_SIZE);

    //  Two's complement: -1 is all ones, INT64_MIN is 0x80 then zeros.
    pz_record_encode (record, 'C', -1);
    const uint8_t minus_one [PZ_RECORD_SIZE] = { 'C', 0xff, 0xff, 0xff, 0xff,
                                                 0xff, 0xff, 0xff, 0xff };
    cr_assert_arr_eq (record, minus_one, PZ_RECORD_SIZE);
    pz_record_encode (record, 'C', INT64_MIN);
    const uint8_t minimum [PZ_RECORD_SIZE] = { 'C', 0x80, 0, 0, 0, 0, 0, 0, 0 };
    cr_assert_arr_eq (record, minimum, PZ_RECORD_SIZE);
}

Test (record, decodes_hand_written_bytes, .timeout = 5)
{
    const uint8_t max [PZ_RECORD_SIZE] = { 'A', 0x7f, 0xff, 0xff, 0xff,
                                           0xff, 0xff, 0xff, 0xff };
    cr_assert_eq (pz_record_tag (max), 'A');
    cr_assert_eq (pz_record_value (max), INT64_MAX);
    const uint8_t small [PZ_RECORD_SIZE] = { 'E', 0, 0, 0, 0, 0, 0, 0x01, 0x00 };
    cr_assert_eq (pz_record_value (small), 256);
    const uint8_t negative [PZ_RECORD_SIZE] = { 'N', 0xff, 0xff, 0xff, 0xff,
                                                0xff, 0xff, 0xff, 0xfe };
    cr_assert_eq (pz_record_value (negative), -2);
}

Test (record, round_trips_edge_and_spread_values, .timeout = 5)
{
    int64_t values [] = { 0, 1, -1, 2, 255, 256, 65535, INT32_MAX, INT32_MIN,
                          (int64_t) 1 << 32, INT64_MAX, INT64_MIN, INT64_MIN + 1 };
    uint8_t record [PZ_RECORD_SIZE];
    for (size_t index = 0; index < sizeof values / sizeof values [0]; index++) {
        pz_record_encode (record, 'N', values [index]);
        cr_assert_eq (pz_record_value (record), values [index]);
        cr_assert_eq (pz_record_tag (record), 'N');
    }
    //  And a spread of bit patterns from a simple generator.
    uint64_t bits = 0x243f6a8885a308d3ULL;
    for (int round = 0; round < 100000; round++) {
        bits = bits * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t value;
        memcpy (&value, &bits, sizeof value);
        pz_record_encode (record, 'P', value);
        cr_assert_eq (pz_record_value (record), value);
    }
}

Test (record, accepts_valid_frames, .timeout = 5)
{
    static uint8_t frame [PZ_MESSAGE_MAX];
    int64_t values [4] = { 7, 11, 13, -5 };
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "N", values), "N"), PZ_OK);
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "INN", values), "NI"), PZ_OK);
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "IPCP", values), "IPC"), PZ_OK);
    //  Exactly the maximum number of records, and as many behind an id.
    for (int index = 0; index <= PZ_RECORDS_MAX; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, 'N', index);
    cr_assert_eq (pz_record_check (frame, PZ_RECORDS_MAX * PZ_RECORD_SIZE, "N"), PZ_OK);
    pz_record_encode (frame, 'I', 77);
    cr_assert_eq (pz_record_check (frame, PZ_MESSAGE_MAX, "NI"), PZ_OK);
    cr_assert_eq (PZ_MESSAGE_MAX, 36873);
}

Test (record, every_malformed_case_has_its_code, .timeout = 5)
{
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    int64_t values [3] = { 7, 11, 13 };
    //  One record too many: 4097 plain ones, or an id and 4097.
    for (int index = 0; index <= PZ_RECORDS_MAX + 1; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, 'N', index);
    cr_assert_eq (pz_record_check (frame, PZ_MESSAGE_MAX, "N"), PZ_ERR_TOO_MANY);
    pz_record_encode (frame, 'I', 77);
    cr_assert_eq (pz_record_check (frame, PZ_MESSAGE_MAX + PZ_RECORD_SIZE, "NI"),
                  PZ_ERR_TOO_MANY);
    size_t size = s_frame (frame, "NN", values);
    cr_assert_eq (pz_record_check (frame, 0, "N"), PZ_ERR_LENGTH);
    cr_assert_eq (pz_record_check (frame, 8, "N"), PZ_ERR_LENGTH);
    cr_assert_eq (pz_record_check (frame, 10, "N"), PZ_ERR_LENGTH);
    cr_assert_eq (pz_record_check (frame, size - 1, "N"), PZ_ERR_LENGTH);
    //  Length errors come before anything else: a bad tag in a bad length.
    frame [0] = 'Z';
    cr_assert_eq (pz_record_check (frame, 10, "N"), PZ_ERR_LENGTH);
    cr_assert_eq (pz_record_check (frame, 9, "N"), PZ_ERR_UNKNOWN_TAG);
    frame [0] = '\0';
    cr_assert_eq (pz_record_check (frame, 9, "N"), PZ_ERR_UNKNOWN_TAG);
    frame [0] = 'n';
    cr_assert_eq (pz_record_check (frame, 9, "N"), PZ_ERR_UNKNOWN_TAG);
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "NP", values), "N"),
                  PZ_ERR_TAG_REFUSED);
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "A", values), "PC"),
                  PZ_ERR_TAG_REFUSED);
    //  The first bad record decides: refused before unknown.
    size = s_frame (frame, "NEN", values);
    frame [2 * PZ_RECORD_SIZE] = '?';
    cr_assert_eq (pz_record_check (frame, size, "N"), PZ_ERR_TAG_REFUSED);
    //  An I record only first, and never alone.
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "NI", values), "NI"),
                  PZ_ERR_ID_PLACEMENT);
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "I", values), "NI"),
                  PZ_ERR_ID_PLACEMENT);
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "IIN", values), "NI"),
                  PZ_ERR_ID_PLACEMENT);
    //  An I where ids are not accepted is simply refused.
    cr_assert_eq (pz_record_check (frame, s_frame (frame, "IN", values), "N"),
                  PZ_ERR_TAG_REFUSED);
}

Test (record, knows_its_tags_and_describes_errors, .timeout = 5)
{
    //  Every byte: known exactly when PZ_TAGS_KNOWN lists it.
    for (int byte = 0; byte < 256; byte++) {
        bool listed = byte != 0 && strchr (PZ_TAGS_KNOWN, byte) != NULL;
        cr_assert_eq (pz_record_tag_known ((char) byte), listed, "byte %d", byte);
    }
    for (int code = 1; code <= PZ_ERR_MAX; code++)
        cr_assert_str_neq (pz_error_str (code), "unknown error");
    cr_assert_str_eq (pz_error_str (PZ_ERR_MAX + 1), "unknown error");
    cr_assert_str_eq (pz_error_str (-1), "unknown error");
}

//  Found with fuzz/fuzz_sink.c: a sink adds one to a publication's seq and
//  tag-seq, so 2^63 - 1 is refused (proto/PROTOCOL.md, "Sequence numbers").
//  The one walk of a valid frame also gives the set of its tags; a frame
//  with an error gives none.
Test (record, check_gives_the_tags_a_frame_holds, .timeout = 5)
{
    uint8_t frame [8 * PZ_RECORD_SIZE];
    int64_t values [] = { 1, 2, 3, 4, 5, 6 };
    uint32_t tags = 99;
    size_t size = s_frame (frame, "INNRRN", values);
    cr_assert_eq (pz_record_check_tags (frame, size, "NIRQ", &tags), PZ_OK);
    cr_assert_eq (tags, pz_record_tag_bit ('I') | pz_record_tag_bit ('N')
                        | pz_record_tag_bit ('R'));
    size = s_frame (frame, "NNN", values);
    cr_assert_eq (pz_record_check_tags (frame, size, "NIRQ", &tags), PZ_OK);
    cr_assert_eq (tags, pz_record_tag_bit ('N'));
    cr_assert_eq (tags & (pz_record_tag_bit ('R') | pz_record_tag_bit ('Q')), 0);
    size = s_frame (frame, "NP", values);
    cr_assert_eq (pz_record_check_tags (frame, size, "NIRQ", &tags), PZ_ERR_TAG_REFUSED);
    cr_assert_eq (tags, 0);
    cr_assert_eq (pz_record_tag_bit ('A'), 1);
    cr_assert_eq (pz_record_tag_bit ('Z'), UINT32_C (1) << 25);
    cr_assert_eq (pz_record_tag_bit ('a'), 0);
    cr_assert_eq (pz_record_tag_bit ('\0'), 0);
}

//  Verdict bits (protocol 3): bit i % 64, least significant first, of V
//  record i / 64, 1 = prime; checked against bytes written out by hand.
Test (record, encodes_verdict_bits_by_hand, .timeout = 5)
{
    //  Verdicts P C C P, then 60 more C: bits 0 and 3 set, 0x09.
    uint8_t verdicts [130] = { 1, 0, 0, 1 };
    uint8_t records [3 * PZ_RECORD_SIZE];
    cr_assert_eq (pz_verdicts_encode (records, verdicts, 4), PZ_RECORD_SIZE);
    const uint8_t small [PZ_RECORD_SIZE] = { 'V', 0, 0, 0, 0, 0, 0, 0, 0x09 };
    cr_assert_arr_eq (records, small, PZ_RECORD_SIZE);
    //  Bit 63 is the value's top bit, bit 64 the next record's lowest;
    //  bit 8 the second byte from the end.
    verdicts [8] = verdicts [63] = verdicts [64] = verdicts [129] = 1;
    cr_assert_eq (pz_verdicts_encode (records, verdicts, 130), 3 * PZ_RECORD_SIZE);
    const uint8_t expected [3 * PZ_RECORD_SIZE] = {
        'V', 0x80, 0, 0, 0, 0, 0, 0x01, 0x09,
        'V', 0, 0, 0, 0, 0, 0, 0, 0x01,
        'V', 0, 0, 0, 0, 0, 0, 0, 0x02 };
    cr_assert_arr_eq (records, expected, sizeof expected);
    cr_assert_eq (pz_verdicts_records (0), 0);
    cr_assert_eq (pz_verdicts_records (1), 1);
    cr_assert_eq (pz_verdicts_records (64), 1);
    cr_assert_eq (pz_verdicts_records (65), 2);
    cr_assert_eq (pz_verdicts_records (PZ_RECORDS_MAX), 64);
    //  A V record is a record like any: the frame check knows its tag.
    uint8_t report [4 * PZ_RECORD_SIZE];
    pz_record_encode (report, 'I', 5);
    memcpy (report + PZ_RECORD_SIZE, records, sizeof expected);
    cr_assert_eq (pz_record_check (report, sizeof report, "IV"), PZ_OK);
    cr_assert_eq (pz_record_check (report, sizeof report, "IPC"), PZ_ERR_TAG_REFUSED);
}

//  Split by their bits, numbers go to the P and C halves in order, runs
//  and single ones alike, across V record boundaries; a NULL half is
//  skipped and the other still filled. Checked number by number against
//  the verdicts the bits were made from.
Test (record, numbers_split_by_verdict_bits, .timeout = 5)
{
    enum { COUNT = 200 };
    uint8_t verdicts [COUNT], bits [4 * PZ_RECORD_SIZE];
    uint8_t numbers [COUNT * PZ_RECORD_SIZE];
    uint8_t halves [2][COUNT * PZ_RECORD_SIZE];
    for (size_t index = 0; index < COUNT; index++) {
        //  Runs of every length from 1 up, then singles.
        verdicts [index] = index < 120 ? (uint8_t) ((index * index / 37) % 2)
                                       : (uint8_t) (index % 2);
        pz_record_encode (numbers + index * PZ_RECORD_SIZE, 'N', 1000 + (int64_t) index);
    }
    pz_verdicts_encode (bits, verdicts, COUNT);
    for (int skip = -1; skip < 2; skip++) {
        uint8_t *cursor [2] = { halves [0], halves [1] };
        if (skip >= 0)
            cursor [skip] = NULL;
        pz_verdicts_split (numbers, bits, COUNT, cursor);
        size_t at [2] = { 0, 0 };
        for (size_t index = 0; index < COUNT; index++) {
            int which = verdicts [index] ? 0 : 1;
            if (which == skip)
                continue;
            const uint8_t *record = halves [which] + at [which]++ * PZ_RECORD_SIZE;
            cr_assert_eq (pz_record_tag (record), which ? 'C' : 'P');
            cr_assert_eq (pz_record_value (record), 1000 + (int64_t) index);
        }
        for (int which = 0; which < 2; which++)
            if (which != skip)
                cr_assert_eq (cursor [which], halves [which] + at [which] * PZ_RECORD_SIZE);
            else
                cr_assert_null (cursor [which]);
    }
}

//  Every verdict read back is the one written, for every count up to the
//  largest report; the primes counted; spare bits and record counts other
//  than the count needs are a mismatch.
Test (record, verdict_bits_round_trip_and_check, .timeout = 10)
{
    static uint8_t verdicts [PZ_RECORDS_MAX];
    static uint8_t records [64 * PZ_RECORD_SIZE];
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (size_t count = 1; count <= PZ_RECORDS_MAX; count += count < 200 ? 1 : 61) {
        size_t primes = 0;
        for (size_t index = 0; index < count; index++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            verdicts [index] = (uint8_t) (state >> 63);
            primes += verdicts [index];
        }
        size_t size = pz_verdicts_encode (records, verdicts, count);
        size_t used = size / PZ_RECORD_SIZE;
        cr_assert_eq (used, (count + 63) / 64);
        for (size_t index = 0; index < count; index++)
            cr_assert_eq (pz_verdicts_get (records, index), verdicts [index] != 0,
                          "count %zu index %zu", count, index);
        cr_assert_eq (pz_verdicts_primes (records, count), primes);
        cr_assert_eq (pz_verdicts_check (records, used, count), PZ_OK);
        cr_assert_eq (pz_verdicts_check (records, used + 1, count), PZ_ERR_MISMATCH);
        cr_assert_eq (pz_verdicts_check (records, used - 1, count), PZ_ERR_MISMATCH);
        if (count % 64) {
            //  One bit past the last verdict.
            uint8_t *last = records + (used - 1) * PZ_RECORD_SIZE;
            size_t bit = count % 64;
            last [8 - bit / 8] ^= (uint8_t) (1u << (bit % 8));
            cr_assert_eq (pz_verdicts_check (records, used, count), PZ_ERR_MISMATCH);
            cr_assert_eq (pz_verdicts_check (records, used, 64 * used), PZ_OK);
        }
    }
    cr_assert_str_neq (pz_error_str (PZ_ERR_OLD_REPORT), "unknown error");
}

Test (record, publication_seqs_stop_below_int64_max, .timeout = 5)
{
    uint8_t frame [3 * PZ_RECORD_SIZE];
    pz_publication_t publication;
    const int64_t cases [][2] = {
        { INT64_MAX - 1, INT64_MAX - 1 },       //  the largest accepted
        { INT64_MAX, 1 }, { 1, INT64_MAX }, { 0, 1 }, { 1, 0 }, { -1, 5 }
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        const int64_t values [3] = { 97, cases [index][0], cases [index][1] };
        size_t size = s_frame (frame, "PST", values);
        pz_error_t expected = index == 0 ? PZ_OK : PZ_ERR_TAG_REFUSED;
        cr_assert_eq (pz_publication_parse (frame, size, &publication), expected,
                      "S %lld T %lld", (long long) cases [index][0],
                      (long long) cases [index][1]);
    }
    cr_assert_eq (publication.seq, INT64_MAX - 1);
}
