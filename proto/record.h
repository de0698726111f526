/*  =========================================================================
    record - the PlayØMQ wire record: one tag byte and a big-endian int64

    Every message on every PlayØMQ socket is one ZeroMQ frame holding 1 to
    PZ_RECORDS_MAX records of PZ_RECORD_SIZE bytes each, not counting a
    leading I record (so that a request or dispatch of 4096 numbers can carry
    its id). This module encodes
    and decodes single records and validates whole frames against the set of
    tags an endpoint accepts. It never allocates and never asserts on wire
    data: a bad frame yields an error code that the caller sends back as an
    `E` record. proto/PROTOCOL.md is the normative description; the code and
    that file must agree.
    =========================================================================
*/
#ifndef PZ_RECORD_H_INCLUDED
#define PZ_RECORD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PZ_RECORD_SIZE      9           //  bytes: tag + int64
#define PZ_RECORDS_MAX      4096        //  records in one message, at most,
                                        //  not counting a leading I record
//  The largest valid message: an I record and PZ_RECORDS_MAX more.
#define PZ_MESSAGE_MAX      (PZ_RECORD_SIZE * (PZ_RECORDS_MAX + 1))   //  36,873 bytes
//  Frames up to this size are read and answered with an E record when they
//  are malformed; a peer that sends a larger frame is disconnected by libzmq
//  (ZMQ_MAXMSGSIZE) before the application sees it.
#define PZ_WIRE_MAX         (1024 * 1024)

//  The tags. Their byte value is what travels on the wire, so a SUB socket
//  subscribes to a tag by subscribing to that one-byte prefix.
#define PZ_TAG_NUMBER       'N'     //  a number to check
#define PZ_TAG_PRIME        'P'     //  a checked number that is prime
#define PZ_TAG_COMPOSITE    'C'     //  a checked number that is not prime
#define PZ_TAG_ACK          'A'     //  value = records accepted
#define PZ_TAG_ERROR        'E'     //  value = an error code below
#define PZ_TAG_ID           'I'     //  value = a request or dispatch id
#define PZ_TAG_SEQ          'S'     //  value = a publication's sequence number
#define PZ_TAG_TAG_SEQ      'T'     //  value = its number among its tag's
#define PZ_TAG_HISTORY      'H'     //  value = a position in a history request
#define PZ_TAG_CORRECTION   'X'     //  value = the seq of a publication found wrong;
                                    //  heads a correction (publish endpoint only)
#define PZ_TAG_RANGE        'R'     //  a range bound (two in a row: lo, hi) whose
                                    //  primes are published; or a range's
                                    //  announcement (lo, hi, count)
#define PZ_TAG_RANGE_COUNT  'Q'     //  a range bound of a range only counted
#define PZ_TAG_VERDICTS     'V'     //  value = 64 verdict bits of a report of
                                    //  numbers, bit i (LSB first) 1 = prime

//  Every tag the protocol defines, for validation.
#define PZ_TAGS_KNOWN       "NPCAEISTHXRQV"

//  Error codes carried in the value of an E record. Zero is never sent.
typedef enum {
    PZ_OK = 0,
    PZ_ERR_LENGTH = 1,          //  length not a positive multiple of 9
    PZ_ERR_TOO_MANY = 2,        //  more than PZ_RECORDS_MAX records after any I
    PZ_ERR_UNKNOWN_TAG = 3,     //  a tag byte that is no tag at all
    PZ_ERR_TAG_REFUSED = 4,     //  a tag this endpoint does not accept
    PZ_ERR_MULTIPART = 5,       //  more than one frame
    PZ_ERR_UNKNOWN_ID = 6,      //  a dispatch id this broker never issued
    PZ_ERR_MISMATCH = 7,        //  report's count or values differ from its dispatch
    PZ_ERR_ID_PLACEMENT = 8,    //  I record missing where required, not first,
                                //  or not followed by at least one record
    PZ_ERR_UNAVAILABLE = 9,     //  cannot be made durable now (journal write
                                //  failed): nothing taken, send it again later
    PZ_ERR_BAD_HISTORY = 10,    //  a history request that is not well formed
    PZ_ERR_AUDIT = 11,          //  a report refused by the audit: a verdict in
                                //  it is wrong, or its sender is cut off
    PZ_ERR_HALF_RANGE = 12,     //  an R or Q record not directly followed by a
                                //  partner of the same tag (or last)
    PZ_ERR_RANGE_ORDER = 13,    //  a range whose lo is above its hi
    PZ_ERR_RANGE_NEGATIVE = 14, //  a range bound below 0
    PZ_ERR_OLD_REPORT = 15      //  a report of numbers in the old format: P/C
                                //  records where V verdict bits belong
} pz_error_t;

#define PZ_ERR_MAX          15

//  Verdicts of a report of numbers: one bit per number dispatched, 64 to a
//  V record, in dispatch order (number i is bit i % 64, least significant
//  first, of V record i / 64; 1 = prime). Bits past the last number are 0.
#define PZ_VERDICTS_PER_RECORD  64

//  The three accessors are inline: they run once per record on every hop,
//  and a call per record showed in the broker's profile.

//  Writes one record (tag, value) into the PZ_RECORD_SIZE bytes at dest.
static inline void
pz_record_encode (uint8_t *dest, char tag, int64_t value)
{
    //  Conversion to unsigned is defined for negatives (two's complement by
    //  modular arithmetic), unlike shifting a negative signed value. Byte by
    //  byte, so independent of the host's byte order (no htobe64 in C11).
    uint64_t bits = (uint64_t) value;
    dest [0] = (uint8_t) tag;
    for (int index = 8; index >= 1; index--) {
        dest [index] = (uint8_t) (bits & 0xFF);
        bits >>= 8;
    }
}

//  Returns the tag byte of the record at src.
static inline char
pz_record_tag (const uint8_t *src)
{
    return (char) src [0];
}

//  Returns the value of the record at src (big-endian two's complement).
static inline int64_t
pz_record_value (const uint8_t *src)
{
    uint64_t bits = 0;
    for (int index = 1; index <= 8; index++)
        bits = (bits << 8) | src [index];
    //  Converting an out-of-range unsigned value to a signed type is
    //  implementation-defined in C11; copying the bits is not.
    int64_t value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

//  Returns the number of V records that carry count verdicts.
static inline size_t
pz_verdicts_records (size_t count)
{
    return (count + PZ_VERDICTS_PER_RECORD - 1) / PZ_VERDICTS_PER_RECORD;
}

//  Returns the 64 verdict bits of the V record at src.
static inline uint64_t
pz_verdicts_word (const uint8_t *src)
{
    uint64_t bits = 0;
    for (int index = 1; index <= 8; index++)
        bits = (bits << 8) | src [index];
    return bits;
}

//  Returns true if verdict index of the V records at records says prime.
//  Reads the one byte that holds it (the value is big-endian).
static inline bool
pz_verdicts_get (const uint8_t *records, size_t index)
{
    size_t bit = index % PZ_VERDICTS_PER_RECORD;
    return (records [(index / PZ_VERDICTS_PER_RECORD) * PZ_RECORD_SIZE + 8 - bit / 8]
            >> (bit % 8)) & 1;
}

//  Writes the V records of count verdicts (verdicts [i] nonzero = prime)
//  at dest, which has room for pz_verdicts_records (count) records.
//  Returns the bytes written.
size_t
    pz_verdicts_encode (uint8_t *dest, const uint8_t *verdicts, size_t count);

//  Checks that records V records (their tags checked already) carry count
//  verdicts: as many records as count needs, no bit set past the last
//  verdict. Returns PZ_OK or PZ_ERR_MISMATCH.
pz_error_t
    pz_verdicts_check (const uint8_t *records, size_t records_count, size_t count);

//  Returns how many of the count verdicts at records say prime.
size_t
    pz_verdicts_primes (const uint8_t *records, size_t count);

//  Splits count N records at numbers by their verdict bits (V records at
//  bits): primes as P records at cursor [0], composites as C records at
//  cursor [1], order kept in each, moving each cursor past what it wrote.
//  A NULL cursor is a half not wanted. Runs of one verdict go by memcpy.
void
    pz_verdicts_split (const uint8_t *numbers, const uint8_t *bits, size_t count,
                       uint8_t **cursor);

//  Validates a frame of size bytes: length, record count (a leading I
//  record not counted), and every tag against accepted (a string of tag
//  letters, e.g. "NI"). If accepted holds PZ_TAG_ID, an I record is allowed
//  only as the first record and must be followed by at least one record.
//  Returns PZ_OK or the first error found, checking in the order of the
//  codes: length, count, then record by record.
pz_error_t
    pz_record_check (const uint8_t *data, size_t size, const char *accepted);

//  Validates a frame as pz_record_check does, and on PZ_OK sets *tags_p to
//  the set of tags it holds: bit (tag - 'A') for each tag present, so that
//  a caller can tell from the one walk whether a tag occurs at all.
pz_error_t
    pz_record_check_tags (const uint8_t *data, size_t size, const char *accepted,
                          uint32_t *tags_p);

//  Returns the bit of tag in the sets pz_record_check_tags gives.
static inline uint32_t
pz_record_tag_bit (char tag)
{
    unsigned offset = (unsigned char) tag - 'A';
    return offset < 26 ? UINT32_C (1) << offset : 0;
}

//  Returns true if tag is one of the tags defined by the protocol.
bool
    pz_record_tag_known (char tag);

//  Returns a short English description of an error code ("unknown tag").
//  Returns "unknown error" for codes the protocol does not define.
const char *
    pz_error_str (int64_t code);

#endif
