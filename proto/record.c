/*  =========================================================================
    record - the PlayØMQ wire record: one tag byte and a big-endian int64

    The encoder and accessors are inline, in record.h. Validation walks a
    frame once and reports the first problem, in the order the error codes
    are numbered, so that a given bad frame always gets the same answer.
    =========================================================================
*/
#include "record.h"

#include <assert.h>
#include <string.h>

//  A set of tags as a bit mask, one bit per capital letter: a tag test is a
//  shift and an AND, cheap enough to run on every record of every message.
static uint32_t
s_tag_bit (char tag)
{
    unsigned offset = (unsigned char) tag - 'A';
    return offset < 26 ? UINT32_C (1) << offset : 0;
}

static uint32_t
s_tag_mask (const char *tags)
{
    uint32_t mask = 0;
    for (; *tags; tags++)
        mask |= s_tag_bit (*tags);
    return mask;
}

//  The tags of PZ_TAGS_KNOWN as a table, so that the test on every record of
//  every publication a sink or the journal parses is one load (building the
//  mask from the string on each call was a fifth of the journaling broker's
//  CPU). test_record checks it against PZ_TAGS_KNOWN byte for byte.
static const bool s_tag_is_known [256] = {
    [PZ_TAG_NUMBER] = true, [PZ_TAG_PRIME] = true, [PZ_TAG_COMPOSITE] = true,
    [PZ_TAG_ACK] = true, [PZ_TAG_ERROR] = true, [PZ_TAG_ID] = true,
    [PZ_TAG_SEQ] = true, [PZ_TAG_TAG_SEQ] = true, [PZ_TAG_HISTORY] = true,
    [PZ_TAG_CORRECTION] = true, [PZ_TAG_RANGE] = true, [PZ_TAG_RANGE_COUNT] = true,
    [PZ_TAG_VERDICTS] = true
};

//  Every byte's bit in a set of tags, as s_tag_bit gives it, except that a
//  byte outside 'A'..'Z' has bit 31, which no set of tags holds: so the
//  walk over a frame's records is one load and an OR per record.
#define S_BIT(byte)     ((byte) >= 'A' && (byte) <= 'Z' \
                        ? UINT32_C (1) << (((byte) - 'A') & 31) : UINT32_C (1) << 31)
#define S_ROW(row)      S_BIT (16 * (row) + 0),  S_BIT (16 * (row) + 1),  \
                        S_BIT (16 * (row) + 2),  S_BIT (16 * (row) + 3),  \
                        S_BIT (16 * (row) + 4),  S_BIT (16 * (row) + 5),  \
                        S_BIT (16 * (row) + 6),  S_BIT (16 * (row) + 7),  \
                        S_BIT (16 * (row) + 8),  S_BIT (16 * (row) + 9),  \
                        S_BIT (16 * (row) + 10), S_BIT (16 * (row) + 11), \
                        S_BIT (16 * (row) + 12), S_BIT (16 * (row) + 13), \
                        S_BIT (16 * (row) + 14), S_BIT (16 * (row) + 15)
static const uint32_t s_byte_bit [256] = {
    S_ROW (0),  S_ROW (1),  S_ROW (2),  S_ROW (3),  S_ROW (4),  S_ROW (5),
    S_ROW (6),  S_ROW (7),  S_ROW (8),  S_ROW (9),  S_ROW (10), S_ROW (11),
    S_ROW (12), S_ROW (13), S_ROW (14), S_ROW (15)
};

//  Returns true if tag is one of the tags defined by the protocol.
bool
pz_record_tag_known (char tag)
{
    return s_tag_is_known [(unsigned char) tag];
}

//  Finds the first bad record of a frame that has one, in record order.
static pz_error_t
s_first_bad_record (const uint8_t *data, size_t records, uint32_t accepted_mask)
{
    const uint32_t known_mask = s_tag_mask (PZ_TAGS_KNOWN);
    for (size_t index = 0; index < records; index++) {
        char tag = pz_record_tag (data + index * PZ_RECORD_SIZE);
        uint32_t bit = s_tag_bit (tag);
        if (!(bit & known_mask))
            return PZ_ERR_UNKNOWN_TAG;
        if (!(bit & accepted_mask))
            return PZ_ERR_TAG_REFUSED;
        //  An id names the whole message, so it leads it and never stands
        //  alone: a message of nothing but an id asks for nothing.
        if (tag == PZ_TAG_ID && (index > 0 || records == 1))
            return PZ_ERR_ID_PLACEMENT;
    }
    return PZ_OK;
}

//  Validates a frame: length, record count, then each record's tag.
//  Returns PZ_OK or the first error found.
pz_error_t
pz_record_check (const uint8_t *data, size_t size, const char *accepted)
{
    uint32_t tags;
    return pz_record_check_tags (data, size, accepted, &tags);
}

//  Validates a frame and gives the set of tags it holds.
//
//  Every record of every message passes here, in three processes, so the
//  loop over a valid frame has no branch per record: it gathers the tags
//  seen as bits and looks at them once at the end (they are the set the
//  caller gets). Only a frame with a problem is walked again, to name its
//  first one.
pz_error_t
pz_record_check_tags (const uint8_t *data, size_t size, const char *accepted,
                      uint32_t *tags_p)
{
    assert (accepted && tags_p);
    *tags_p = 0;
    if (size == 0 || size % PZ_RECORD_SIZE != 0)
        return PZ_ERR_LENGTH;
    assert (data);
    size_t records = size / PZ_RECORD_SIZE;
    bool leading_id = pz_record_tag (data) == PZ_TAG_ID;
    if (records - (leading_id ? 1 : 0) > PZ_RECORDS_MAX)
        return PZ_ERR_TOO_MANY;

    const uint32_t accepted_mask = s_tag_mask (accepted) & s_tag_mask (PZ_TAGS_KNOWN);
    const uint32_t id_bit = s_tag_bit (PZ_TAG_ID);
    //  Bits of the tags after the first record; the first one on its own,
    //  since only it may be an I. A byte outside 'A'..'Z' sets bit 31,
    //  which no mask holds.
    uint32_t rest = 0;
    for (size_t index = 1; index < records; index++)
        rest |= s_byte_bit [data [index * PZ_RECORD_SIZE]];
    uint32_t first = s_tag_bit (pz_record_tag (data));
    bool first_ok = (first & accepted_mask) && (first != id_bit || records > 1);
    if (first_ok && (rest & ~(accepted_mask & ~id_bit)) == 0) {
        *tags_p = first | rest;
        return PZ_OK;
    }
    return s_first_bad_record (data, records, accepted_mask);
}

//  Returns a short English description of an error code.
const char *
pz_error_str (int64_t code)
{
    switch (code) {
        case PZ_OK:               return "no error";
        case PZ_ERR_LENGTH:       return "length is not a positive multiple of 9";
        case PZ_ERR_TOO_MANY:     return "more than 4096 records";
        case PZ_ERR_UNKNOWN_TAG:  return "unknown tag";
        case PZ_ERR_TAG_REFUSED:  return "tag not accepted by this endpoint";
        case PZ_ERR_MULTIPART:    return "more than one frame";
        case PZ_ERR_UNKNOWN_ID:   return "dispatch id never issued by this broker";
        case PZ_ERR_MISMATCH:     return "report does not match its dispatch";
        case PZ_ERR_ID_PLACEMENT: return "I record missing, misplaced or alone";
        case PZ_ERR_UNAVAILABLE:  return "broker cannot store it now, send it again later";
        case PZ_ERR_BAD_HISTORY:  return "malformed history request";
        case PZ_ERR_AUDIT:        return "refused by the audit: a wrong verdict, sender cut off";
        case PZ_ERR_HALF_RANGE:   return "half a range: an R or Q record without its partner";
        case PZ_ERR_RANGE_ORDER:  return "a range whose lo is above its hi";
        case PZ_ERR_RANGE_NEGATIVE: return "a negative range bound";
        case PZ_ERR_OLD_REPORT:   return "old report format: P/C records where a report of "
                                         "numbers carries V verdict bits (protocol 3)";
        default:                  return "unknown error";
    }
}

//  Writes the V records of count verdicts.
size_t
pz_verdicts_encode (uint8_t *dest, const uint8_t *verdicts, size_t count)
{
    assert (dest && (verdicts || count == 0));
    size_t records = pz_verdicts_records (count);
    for (size_t record = 0; record < records; record++) {
        size_t first = record * PZ_VERDICTS_PER_RECORD;
        size_t last = first + PZ_VERDICTS_PER_RECORD < count
                    ? first + PZ_VERDICTS_PER_RECORD : count;
        uint64_t bits = 0;
        for (size_t index = first; index < last; index++)
            bits |= (uint64_t) (verdicts [index] != 0) << (index - first);
        //  The record's value is the 64 bits as they are: encode bytes
        //  directly, since converting to int64 is implementation-defined.
        uint8_t *at = dest + record * PZ_RECORD_SIZE;
        at [0] = (uint8_t) PZ_TAG_VERDICTS;
        for (int index = 8; index >= 1; index--) {
            at [index] = (uint8_t) (bits & 0xFF);
            bits >>= 8;
        }
    }
    return records * PZ_RECORD_SIZE;
}

//  Checks that V records carry exactly count verdicts.
pz_error_t
pz_verdicts_check (const uint8_t *records, size_t records_count, size_t count)
{
    if (records_count != pz_verdicts_records (count))
        return PZ_ERR_MISMATCH;
    size_t used = count % PZ_VERDICTS_PER_RECORD;
    if (used > 0) {
        uint64_t last = pz_verdicts_word (records + (records_count - 1) * PZ_RECORD_SIZE);
        if (last >> used)
            return PZ_ERR_MISMATCH;
    }
    return PZ_OK;
}

//  Splits numbers into P and C records by their verdict bits.
void
pz_verdicts_split (const uint8_t *numbers, const uint8_t *bits, size_t count,
                   uint8_t **cursor)
{
    assert (numbers && bits && cursor);
    for (size_t base = 0; base < count; base += PZ_VERDICTS_PER_RECORD) {
        uint64_t word = pz_verdicts_word (bits + (base / PZ_VERDICTS_PER_RECORD)
                                                 * PZ_RECORD_SIZE);
        size_t last = count - base < PZ_VERDICTS_PER_RECORD
                    ? count - base : PZ_VERDICTS_PER_RECORD;
        size_t index = 0;
        while (index < last) {
            uint64_t prime = (word >> index) & 1;
            size_t end = index + 1;
            while (end < last && ((word >> end) & 1) == prime)
                end++;
            int which = prime ? 0 : 1;
            if (cursor [which]) {
                uint8_t *at = cursor [which];
                size_t length = end - index;
                memcpy (at, numbers + (base + index) * PZ_RECORD_SIZE,
                        length * PZ_RECORD_SIZE);
                for (size_t record = 0; record < length; record++)
                    at [record * PZ_RECORD_SIZE] = which ? PZ_TAG_COMPOSITE : PZ_TAG_PRIME;
                cursor [which] = at + length * PZ_RECORD_SIZE;
            }
            index = end;
        }
    }
}

//  Counts the verdicts that say prime.
size_t
pz_verdicts_primes (const uint8_t *records, size_t count)
{
    size_t primes = 0;
    size_t records_count = pz_verdicts_records (count);
    for (size_t record = 0; record < records_count; record++) {
        uint64_t bits = pz_verdicts_word (records + record * PZ_RECORD_SIZE);
        while (bits) {
            bits &= bits - 1;
            primes++;
        }
    }
    return primes;
}
