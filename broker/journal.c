/*  =========================================================================
    journal - the broker's durable journal: a segmented append-only log of
              every accepted source message and every verdict

    A journal is a directory of segment files, each named by the first seq
    it may hold, each a header and then blocks. A block is what one commit
    wrote: a header (length, first and last seq, entry count, the offset
    the segment was known synced through when it was written, CRC32C) and
    entries, each an accepted publication (with its request id) or a
    verdict: the K records of the accepted seqs it completes, then its
    verdict bits (when those accepts are in the same segment: the reader
    rebuilds the publications from them) or its publications.
    docs/JOURNAL.md is the normative description of the format.

    The writer buffers entries until commit, writes them with one write()
    (and one fdatasync, unless a syncer thread does that: group commit),
    and only then applies them to its state, with the same code that
    replays blocks at open: what the journal believes is always exactly
    what its files say. Damage in the files is data, never a reason to
    assert. With several blocks written and not yet synced, a power loss
    may keep a later one and lose an earlier one; so in the last segment,
    from the first bad block on, everything is cut unless a later block
    records that bad block as synced (then it was acknowledged: damage).
    Anything else makes open fail with the file and the byte offset.
    Recovery keeps in memory only what has no verdict.

    The reader serves history from another thread: it lists the directory,
    skips blocks by their header, and remembers where it stopped, so that a
    sink reading consecutive chunks costs one pass over the bytes; for a
    verdict kept as bits it finds the accepts' block by the headers and
    keeps that one block read.
    =========================================================================
*/
#include "journal.h"
#include "publication.h"
#include "ranges.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define S_SEGMENT_HEADER    96          //  bytes: magic, version, size, first seq,
                                        //  S_TAGS tag-seqs, reserved, crc
#define S_SEGMENT_CRC_AT    92          //  the header's CRC: of bytes 0..91
#define S_BLOCK_HEADER      40          //  bytes: magic, length, first, last, entries,
                                        //  synced through, crc
#define S_BLOCK_CRC_AT      36          //  the header's CRC: of bytes 0..35 + payload
#define S_SEGMENT_MAGIC     "PZJOURNL"  //  8 bytes at the start of every segment
#define S_BLOCK_MAGIC       "PZBK"      //  4 bytes at the start of every block
#define S_NAME_DIGITS       20          //  segment names: 20 digits + ".pzj"
#define S_SUFFIX            ".pzj"
#define S_LOCK_NAME         "lock"
#define S_READ_CHUNK        (256 * 1024)    //  bytes the reader reads at a time
#define S_CACHE_DROP_STEP   (1024 * 1024)   //  page cache handed back at once, at least
#define S_PAGE_BYTES        4096        //  and in whole pages (s_cache_drop)
#define S_ENTRY_MAX         (PZ_RECORD_SIZE * PZ_JOURNAL_ENTRY_RECORDS_MAX)
#define S_TAGS              8           //  tag-seq slots: N, P, C, X, R by
                                        //  pz_publication_tag_index, the rest
                                        //  kept 0 for tags to come

#ifndef PZ_TAG_SEQ
#   define PZ_TAG_SEQ       'S'
#endif
#ifndef PZ_TAG_TAG_SEQ
#   define PZ_TAG_TAG_SEQ   'T'
#endif
#define S_TAG_COVER         'K'         //  journal only: a seq a verdict completes
#define S_TAG_KEY           'W'         //  journal only: a range's key
#define S_TAG_ACKED         'A'         //  journal only: a request's ack (ranges entry)

//  One segment file, as the writer knows it.
typedef struct {
    int64_t first_seq;          //  from its name: the first seq it may hold
    int64_t bytes;              //  its size, header included
    int64_t written_s;          //  time of its last write, epoch seconds
    int64_t unverdicted;        //  accepted publications in it without verdict
    bool has_blocks;            //  at least one block in it
    uint32_t version;           //  format version of its header
} s_segment_t;

//  An accepted N publication without a verdict.
typedef struct {
    int64_t seq;                //  its seq; also the key in `unverdicted`
    int64_t request_id;         //  request id it came with, 0 if none
    uint8_t *records;           //  its N records, while recovering; else NULL
    size_t count;               //  how many
} s_pending_t;

//  An accepted range that is not done: its pieces done so far.
typedef struct {
    int64_t key;                //  its key; also the key in `ranges`
    char tag;                   //  R or Q
    int64_t lo;                 //  its bounds
    int64_t hi;
    int64_t segment_seq;        //  the name of the segment holding its accept
    uint64_t done_numbers;      //  numbers of the pieces done
    int64_t *pieces;            //  while recovering: lo, hi, count triples
    size_t piece_count;         //  how many
    size_t piece_capacity;      //  allocated
} s_range_t;

//  A request id seen while recovering.
typedef struct {
    int64_t request_id;         //  non-zero
    int64_t count;              //  records accepted with it (its ack)
} s_recent_t;

//  A block being assembled in the commit buffer.
typedef struct {
    size_t offset;              //  where its header starts in the buffer
    int64_t first_seq;          //  seq of its first publication
    int64_t last_seq;           //  seq of its last publication
    uint32_t entries;           //  entries in it
} s_staged_t;

//  What an entry is.
typedef enum {
    S_ENTRY_PUBLICATION,        //  an accept or a verdict: a publication
    S_ENTRY_BITS,               //  a verdict kept as its bits: K, V, S T [S T]
    S_ENTRY_RANGES,             //  the ranges of an accepted request
    S_ENTRY_PIECE               //  a piece of a range done
} s_entry_kind_t;

//  One journal entry, parsed.
typedef struct {
    s_entry_kind_t kind;        //  what it is; the fields below the
                                //  publication's are for ranges and pieces
    int64_t acked;              //  ranges: the request's ack
    int64_t key;                //  ranges: the first range's key; piece: its range's
    const uint8_t *ranges;      //  ranges: the range records (pairs)
    size_t range_count;         //  ranges: how many ranges
    char range_tag;             //  piece: R or Q
    int64_t lo;                 //  piece: bounds and count
    int64_t hi;
    int64_t primes;
    int64_t request_id;         //  from a leading I record, 0 if none
    const uint8_t *covers;      //  K records, or NULL
    size_t cover_count;         //  how many
    const uint8_t *publication; //  data records + S + T, exactly as published
    size_t publication_size;    //  bytes
    char tag;                   //  N, P, C or X; bits: P, or C if no prime
    size_t count;               //  data records
    int64_t seq;                //  from S
    int64_t tag_seq;            //  from T
    const uint8_t *bits;        //  bits: the V records
    size_t bit_records;         //  bits: how many
    size_t prime_bits;          //  bits: bits set (the P publication's records)
    int64_t c_seq;              //  bits with both halves: the C publication's
    int64_t c_tag_seq;          //  seq and tag-seq (the second S T), else 0
    int64_t last_seq;           //  seq of its last publication (c_seq or seq)
} s_entry_t;

struct _pz_journal_t {
    pz_journal_config_t config; //  copy of the configuration; dir owned below
    char *dir;                  //  owned copy of the directory path
    int lock_fd;                //  the lock file, flocked, or -1
    int fd;                     //  the segment being written (the last), or -1
    s_segment_t *segments;      //  segment files, oldest first
    size_t segment_count;       //  how many
    size_t segment_capacity;    //  allocated
    int64_t next_seq;           //  1 + last committed seq
    int64_t tag_seqs [S_TAGS];  //  last committed tag-seq of N, P, C
    int64_t staged_next_seq;    //  the same counting appended entries
    int64_t staged_tag_seqs [S_TAGS];   //  the same counting appended entries
    bool after_primes;          //  last entry applied was a P verdict with K
                                //  records, so a C without them may follow
    bool after_piece;           //  last entry applied was a piece, or a P
                                //  publication after one: P or R may follow
    zhashx_t *ranges;           //  key -> s_range_t: ranges not done, owns them
    int64_t next_key;           //  1 + the largest range key applied
    zhashx_t *unverdicted;      //  seq -> s_pending_t, owns them
    bool recovering;            //  keeping records (until take_pending)
    s_recent_t *recent;         //  ring of config.recent_requests while recovering
    size_t recent_next;         //  ring slot of the next request id
    size_t recent_count;        //  ids in the ring
    uint8_t *buffer;            //  blocks appended, not committed
    size_t buffer_size;         //  bytes in buffer
    size_t buffer_capacity;     //  allocated
    s_staged_t *staged;         //  blocks in buffer (more than one only past
    size_t staged_count;        //  PZ_JOURNAL_BLOCK_MAX bytes)
    size_t staged_capacity;     //  allocated
    int64_t commits;            //  successful commits
    int64_t failed_commits;     //  commits that returned -1
    int64_t synced;             //  bytes of the current segment known durable
                                //  ("synced through"), recorded in each block
    int64_t position_base;      //  pz_journal_written at offset 0 of the
                                //  current segment: bytes of the segments
                                //  before it written since open
    int64_t cache_dropped;      //  offset in the current segment below which
                                //  its page cache was handed back (s_cache_drop)
};


//  --------------------------------------------------------------------------
//  CRC32C (Castagnoli, reflected polynomial 0x82F63B78). SSE4.2 has an
//  instruction for it; other CPUs use slicing-by-8 tables built at load.

static uint32_t s_crc_table [8][256];
static bool s_crc_hardware;

//  The instruction takes 3 cycles and can start one every cycle: a long
//  buffer goes as three streams of S_CRC_STRIDE bytes at once, whose CRCs
//  are then joined by moving each past the next one's bytes (s_crc_shift).
#define S_CRC_STRIDE    1024
static uint32_t s_crc_shift_table [4][256];    //  a CRC register moved past
                                                //  S_CRC_STRIDE zero bytes

__attribute__((constructor))
//  Builds the slicing-by-8 tables and checks for SSE4.2, once at load
//  (before main, so before any thread can use them).
static void
s_crc_init (void)
{
    for (uint32_t index = 0; index < 256; index++) {
        uint32_t crc = index;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82F63B78U & (0U - (crc & 1)));
        s_crc_table [0][index] = crc;
    }
    for (uint32_t index = 0; index < 256; index++)
        for (int slice = 1; slice < 8; slice++)
            s_crc_table [slice][index] = (s_crc_table [slice - 1][index] >> 8)
                ^ s_crc_table [0][s_crc_table [slice - 1][index] & 0xFF];
    //  Moving a register past zero bytes is linear: one table per byte of
    //  it, from the moves of its 32 single bits.
    uint32_t moved [32];
    for (int bit = 0; bit < 32; bit++) {
        uint32_t crc = 1U << bit;
        for (int step = 0; step < S_CRC_STRIDE; step++)
            crc = (crc >> 8) ^ s_crc_table [0][crc & 0xFF];
        moved [bit] = crc;
    }
    for (int slice = 0; slice < 4; slice++)
        for (uint32_t index = 0; index < 256; index++) {
            uint32_t crc = 0;
            for (int bit = 0; bit < 8; bit++)
                if (index & (1U << bit))
                    crc ^= moved [8 * slice + bit];
            s_crc_shift_table [slice][index] = crc;
        }
#if defined (__x86_64__) || defined (__i386__)
    __builtin_cpu_init ();
    s_crc_hardware = __builtin_cpu_supports ("sse4.2");
#endif
}

//  CRC32C by table, eight bytes per step. Returns the updated crc.
uint32_t
pz_journal_crc32c_portable (uint32_t crc, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    crc = ~crc;
    while (size >= 8) {
        uint32_t low = crc ^ ((uint32_t) bytes [0] | (uint32_t) bytes [1] << 8
                            | (uint32_t) bytes [2] << 16 | (uint32_t) bytes [3] << 24);
        crc = s_crc_table [7][low & 0xFF] ^ s_crc_table [6][(low >> 8) & 0xFF]
            ^ s_crc_table [5][(low >> 16) & 0xFF] ^ s_crc_table [4][low >> 24]
            ^ s_crc_table [3][bytes [4]] ^ s_crc_table [2][bytes [5]]
            ^ s_crc_table [1][bytes [6]] ^ s_crc_table [0][bytes [7]];
        bytes += 8;
        size -= 8;
    }
    while (size--)
        crc = (crc >> 8) ^ s_crc_table [0][(crc ^ *bytes++) & 0xFF];
    return ~crc;
}

//  Returns the CRC register crc moved past S_CRC_STRIDE zero bytes.
static inline uint64_t
s_crc_shift (uint64_t crc)
{
    return s_crc_shift_table [0][crc & 0xFF] ^ s_crc_shift_table [1][(crc >> 8) & 0xFF]
         ^ s_crc_shift_table [2][(crc >> 16) & 0xFF] ^ s_crc_shift_table [3][(crc >> 24) & 0xFF];
}

#if defined (__x86_64__)
//  CRC32C with the SSE4.2 crc32 instruction, eight bytes per step, three
//  streams at once while 3 * S_CRC_STRIDE bytes are left.
__attribute__((target ("sse4.2")))
static uint32_t
s_crc32c_sse42 (uint32_t crc, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    uint64_t crc64 = ~crc;
    while (size >= 3 * S_CRC_STRIDE) {
        uint64_t second = 0, third = 0;
        for (size_t at = 0; at < S_CRC_STRIDE; at += 8) {
            uint64_t words [3];
            memcpy (&words [0], bytes + at, 8);
            memcpy (&words [1], bytes + S_CRC_STRIDE + at, 8);
            memcpy (&words [2], bytes + 2 * S_CRC_STRIDE + at, 8);
            crc64 = __builtin_ia32_crc32di (crc64, words [0]);
            second = __builtin_ia32_crc32di (second, words [1]);
            third = __builtin_ia32_crc32di (third, words [2]);
        }
        //  CRC (A B) = CRC (A) moved past |B| zero bytes, xor CRC from 0 of B.
        crc64 = s_crc_shift (crc64) ^ second;
        crc64 = s_crc_shift (crc64) ^ third;
        bytes += 3 * S_CRC_STRIDE;
        size -= 3 * S_CRC_STRIDE;
    }
    while (size >= 8) {
        uint64_t word;
        memcpy (&word, bytes, 8);
        crc64 = __builtin_ia32_crc32di (crc64, word);
        bytes += 8;
        size -= 8;
    }
    uint32_t crc32 = (uint32_t) crc64;
    while (size--)
        crc32 = __builtin_ia32_crc32qi (crc32, *bytes++);
    return ~crc32;
}
#endif

//  CRC32C of size bytes at data, continuing from crc: by instruction
//  where the CPU has one, by table otherwise.
uint32_t
pz_journal_crc32c (uint32_t crc, const void *data, size_t size)
{
#if defined (__x86_64__)
    if (s_crc_hardware)
        return s_crc32c_sse42 (crc, data, size);
#endif
    return pz_journal_crc32c_portable (crc, data, size);
}


//  --------------------------------------------------------------------------
//  Little-endian integers in headers, byte by byte (host order free).

static void
s_put32 (uint8_t *dest, uint32_t value)
{
    for (int index = 0; index < 4; index++)
        dest [index] = (uint8_t) (value >> (8 * index));
}

static void
s_put64 (uint8_t *dest, int64_t value)
{
    uint64_t bits = (uint64_t) value;
    for (int index = 0; index < 8; index++)
        dest [index] = (uint8_t) (bits >> (8 * index));
}

static uint32_t
s_get32 (const uint8_t *src)
{
    return (uint32_t) src [0] | (uint32_t) src [1] << 8
         | (uint32_t) src [2] << 16 | (uint32_t) src [3] << 24;
}

static int64_t
s_get64 (const uint8_t *src)
{
    uint64_t bits = 0;
    for (int index = 7; index >= 0; index--)
        bits = (bits << 8) | src [index];
    int64_t value;
    memcpy (&value, &bits, sizeof value);
    return value;
}

//  A block header, decoded. `problem` is NULL if it is well formed (its
//  CRC still to be checked against the payload).
typedef struct {
    uint32_t payload_bytes;     //  bytes after the header
    int64_t first_seq;          //  seq of its first publication
    int64_t last_seq;           //  seq of its last publication
    uint32_t entries;           //  entries in it
    int64_t synced;             //  offset its segment was known synced
                                //  through when it was written
    uint32_t crc;               //  CRC32C of header bytes 0..35 + payload
} s_block_header_t;

//  Decodes the 40 bytes of a block header at src into header. Returns
//  NULL, or what is wrong with it (its CRC is checked with the payload).
static const char *
s_block_header_decode (const uint8_t *src, s_block_header_t *header)
{
    header->payload_bytes = s_get32 (src + 4);
    header->first_seq = s_get64 (src + 8);
    header->last_seq = s_get64 (src + 16);
    header->entries = s_get32 (src + 24);
    header->synced = s_get64 (src + 28);
    header->crc = s_get32 (src + S_BLOCK_CRC_AT);
    if (memcmp (src, S_BLOCK_MAGIC, 4) != 0)
        return "no block magic";
    if (header->payload_bytes == 0 || header->payload_bytes > PZ_JOURNAL_BLOCK_MAX)
        return "block length out of range";
    return NULL;
}

//  Writes a block header at dest for the payload that follows it, CRC
//  included.
static void
s_block_header_encode (uint8_t *dest, const uint8_t *payload, uint32_t payload_bytes,
                       int64_t first_seq, int64_t last_seq, uint32_t entries,
                       int64_t synced)
{
    memcpy (dest, S_BLOCK_MAGIC, 4);
    s_put32 (dest + 4, payload_bytes);
    s_put64 (dest + 8, first_seq);
    s_put64 (dest + 16, last_seq);
    s_put32 (dest + 24, entries);
    s_put64 (dest + 28, synced);
    uint32_t crc = pz_journal_crc32c (0, dest, S_BLOCK_CRC_AT);
    s_put32 (dest + S_BLOCK_CRC_AT, pz_journal_crc32c (crc, payload, payload_bytes));
}

//  Returns true if a block's CRC matches its header bytes and payload.
static bool
s_block_crc_ok (const uint8_t *header_bytes, const s_block_header_t *header,
                const uint8_t *payload)
{
    uint32_t crc = pz_journal_crc32c (0, header_bytes, S_BLOCK_CRC_AT);
    return pz_journal_crc32c (crc, payload, header->payload_bytes) == header->crc;
}

//  Writes the segment header at dest: name, tag-seqs before it, CRC.
static void
s_segment_header_encode (uint8_t *dest, int64_t first_seq, const int64_t *tag_seqs)
{
    memcpy (dest, S_SEGMENT_MAGIC, 8);
    s_put32 (dest + 8, PZ_JOURNAL_VERSION);
    s_put32 (dest + 12, S_SEGMENT_HEADER);
    s_put64 (dest + 16, first_seq);
    for (int index = 0; index < S_TAGS; index++)
        s_put64 (dest + 24 + 8 * index, tag_seqs [index]);
    s_put32 (dest + 24 + 8 * S_TAGS, 0);
    s_put32 (dest + S_SEGMENT_CRC_AT, pz_journal_crc32c (0, dest, S_SEGMENT_CRC_AT));
}

//  Parses the rest of a verdict kept as its bits, from the first V record
//  at index: V records, then S T of its P publication if any bit is set,
//  then S T of its C publication if any is not. How many numbers the bits
//  are for is the covered accepts' to say (s_apply_bits, the reader).
//  Returns NULL, or what is wrong with it.
static const char *
s_entry_parse_bits (const uint8_t *data, size_t records, size_t index, s_entry_t *entry)
{
    if (entry->request_id)
        return "I record on a verdict";
    entry->kind = S_ENTRY_BITS;
    entry->bits = data + index * PZ_RECORD_SIZE;
    while (index < records && pz_record_tag (data + index * PZ_RECORD_SIZE) == PZ_TAG_VERDICTS)
        index++;
    entry->bit_records = (size_t) (data + index * PZ_RECORD_SIZE - entry->bits) / PZ_RECORD_SIZE;
    if (entry->bit_records > pz_verdicts_records (PZ_RECORDS_MAX))
        return "more than 64 V records";
    entry->prime_bits = pz_verdicts_primes (entry->bits,
                                        entry->bit_records * PZ_VERDICTS_PER_RECORD);
    size_t pairs = (records - index) / 2;
    if ((records - index) % 2 || pairs < 1 || pairs > 2)
        return "verdict bits not followed by one or two S T pairs";
    int64_t values [4];
    for (size_t pair = 0; pair < pairs; pair++) {
        const uint8_t *record = data + (index + 2 * pair) * PZ_RECORD_SIZE;
        if (pz_record_tag (record) != PZ_TAG_SEQ
        ||  pz_record_tag (record + PZ_RECORD_SIZE) != PZ_TAG_TAG_SEQ)
            return "verdict bits not followed by one or two S T pairs";
        values [2 * pair] = pz_record_value (record);
        values [2 * pair + 1] = pz_record_value (record + PZ_RECORD_SIZE);
        if (values [2 * pair] < 1 || values [2 * pair + 1] < 1)
            return "seq or tag-seq below 1";
        if (values [2 * pair] == INT64_MAX || values [2 * pair + 1] == INT64_MAX)
            return "seq or tag-seq 2^63 - 1: none can follow it";
    }
    //  Two halves: P, then C. One: P if any bit says prime, else C.
    if (pairs == 2 && !entry->prime_bits)
        return "verdict bits with a P publication and no prime";
    entry->tag = entry->prime_bits ? PZ_TAG_PRIME : PZ_TAG_COMPOSITE;
    entry->seq = entry->last_seq = values [0];
    entry->tag_seq = values [1];
    if (pairs == 2) {
        entry->c_seq = entry->last_seq = values [2];
        entry->c_tag_seq = values [3];
        if (entry->c_seq <= entry->seq)
            return "verdict bits' C seq not above their P seq";
    }
    return NULL;
}

//  Parses one entry of size bytes. Returns NULL, or what is wrong with it.
//  Checks the shape only: order of I, K, data records, S, T; counts; tags.
//  trusted: the entry is one this process appended, whose publication was
//  built whole and checked at its ends (s_publication_check): the tags of
//  its data records are not looked at one by one.

static const char *
s_entry_parse (const uint8_t *data, size_t size, s_entry_t *entry, bool trusted)
{
    memset (entry, 0, sizeof *entry);
    if (size == 0 || size % PZ_RECORD_SIZE || size > S_ENTRY_MAX)
        return "entry length not a multiple of 9 within bounds";
    size_t records = size / PZ_RECORD_SIZE;
    size_t index = 0;
    if (pz_record_tag (data) == PZ_TAG_ID) {
        entry->request_id = pz_record_value (data);
        if (entry->request_id == 0)
            return "request id 0";
        index++;
    }
    //  The ranges of a request: [I] A acked W first-key (R|Q lo, R|Q hi)...
    if (index + 2 < records && pz_record_tag (data + index * PZ_RECORD_SIZE) == S_TAG_ACKED) {
        entry->kind = S_ENTRY_RANGES;
        entry->acked = pz_record_value (data + index * PZ_RECORD_SIZE);
        if (pz_record_tag (data + (index + 1) * PZ_RECORD_SIZE) != S_TAG_KEY)
            return "ranges entry without its W record";
        entry->key = pz_record_value (data + (index + 1) * PZ_RECORD_SIZE);
        index += 2;
        entry->ranges = data + index * PZ_RECORD_SIZE;
        if ((records - index) % 2 || records == index)
            return "ranges entry without whole ranges";
        entry->range_count = (records - index) / 2;
        size_t ranges;
        if (pz_ranges_check_request (entry->ranges, records - index, &ranges) != PZ_OK
        ||  ranges != entry->range_count)
            return "ranges entry holds a bad range";
        for (size_t at = index; at < records; at++) {
            char tag = pz_record_tag (data + at * PZ_RECORD_SIZE);
            if (tag != PZ_TAG_RANGE && tag != PZ_TAG_RANGE_COUNT)
                return "ranges entry holds a record that is no range bound";
        }
        if (entry->key < 1 || entry->acked < 2 * (int64_t) entry->range_count)
            return "ranges entry with a key below 1 or an ack below its records";
        return NULL;
    }
    //  A piece done: W key (R|Q) lo (R|Q) hi (R|Q) count.
    if (index == 0 && records == 4 && pz_record_tag (data) == S_TAG_KEY) {
        entry->kind = S_ENTRY_PIECE;
        entry->key = pz_record_value (data);
        entry->range_tag = pz_record_tag (data + PZ_RECORD_SIZE);
        entry->lo = pz_record_value (data + PZ_RECORD_SIZE);
        entry->hi = pz_record_value (data + 2 * PZ_RECORD_SIZE);
        entry->primes = pz_record_value (data + 3 * PZ_RECORD_SIZE);
        if ((entry->range_tag != PZ_TAG_RANGE && entry->range_tag != PZ_TAG_RANGE_COUNT)
        ||  pz_record_tag (data + 2 * PZ_RECORD_SIZE) != entry->range_tag
        ||  pz_record_tag (data + 3 * PZ_RECORD_SIZE) != entry->range_tag)
            return "piece entry is not W, then three records of R or Q";
        if (entry->lo < 0 || entry->lo > entry->hi || entry->primes < 0
        ||  (uint64_t) entry->primes > (uint64_t) entry->hi - (uint64_t) entry->lo + 1)
            return "piece entry with bad bounds or count";
        return NULL;
    }
    size_t covers = index;
    while (index < records && pz_record_tag (data + index * PZ_RECORD_SIZE) == S_TAG_COVER)
        index++;
    entry->cover_count = index - covers;
    entry->covers = entry->cover_count ? data + covers * PZ_RECORD_SIZE : NULL;
    if (entry->cover_count > PZ_RECORDS_MAX)
        return "more than 4096 K records";
    if (index >= records)
        return "entry holds no publication";
    if (entry->cover_count && pz_record_tag (data + index * PZ_RECORD_SIZE) == PZ_TAG_VERDICTS)
        return s_entry_parse_bits (data, records, index, entry);
    entry->publication = data + index * PZ_RECORD_SIZE;
    entry->publication_size = size - index * PZ_RECORD_SIZE;
    entry->tag = pz_record_tag (entry->publication);
    if (pz_publication_tag_index (entry->tag) < 0)
        return "publication tag is not N, P, C, X or R";
    size_t start = index;
    bool correction = entry->tag == PZ_TAG_CORRECTION;
    if (correction) {
        //  X <seq corrected>, then the verdicts set right.
        for (index++; index < records; index++) {
            char tag = pz_record_tag (data + index * PZ_RECORD_SIZE);
            if (tag != PZ_TAG_PRIME && tag != PZ_TAG_COMPOSITE)
                break;
        }
        if (index - start < 2 || pz_record_value (entry->publication) < 1)
            return "correction without a seq or without verdicts";
    }
    else
    if (trusted && records >= index + 3)
        index = records - 2;
    else
    while (index < records && pz_record_tag (data + index * PZ_RECORD_SIZE) == entry->tag)
        index++;
    entry->count = index - start;
    if (entry->count > PZ_RECORDS_MAX + (correction ? 1u : 0u))
        return "more than 4096 data records";
    if (index + 2 != records
    ||  pz_record_tag (data + index * PZ_RECORD_SIZE) != PZ_TAG_SEQ
    ||  pz_record_tag (data + (index + 1) * PZ_RECORD_SIZE) != PZ_TAG_TAG_SEQ)
        return "publication does not end with exactly S and T";
    entry->seq = entry->last_seq = pz_record_value (data + index * PZ_RECORD_SIZE);
    entry->tag_seq = pz_record_value (data + (index + 1) * PZ_RECORD_SIZE);
    if (entry->seq < 1 || entry->tag_seq < 1)
        return "seq or tag-seq below 1";
    if (entry->seq == INT64_MAX || entry->tag_seq == INT64_MAX)
        return "seq or tag-seq 2^63 - 1: none can follow it";
    if (entry->request_id && (entry->tag != PZ_TAG_NUMBER || entry->cover_count))
        return "I record on a verdict";
    if (entry->cover_count && entry->tag == PZ_TAG_NUMBER)
        return "K records on an accept";
    if (entry->cover_count && correction)
        return "K records on a correction";
    if (entry->tag == PZ_TAG_RANGE && (entry->cover_count || entry->count != PZ_ANNOUNCEMENT_RECORDS))
        return "R publication with K records or not of three records";
    return NULL;
}


//  --------------------------------------------------------------------------
//  Seqs as hash keys: pointers to the seq inside the item (as in broker.c).

static size_t
s_seq_hash (const void *key)
{
    uint64_t bits = (uint64_t) *(const int64_t *) key;
    bits = (bits ^ (bits >> 30)) * 0xbf58476d1ce4e5b9ULL;
    bits = (bits ^ (bits >> 27)) * 0x94d049bb133111ebULL;
    return (size_t) (bits ^ (bits >> 31));
}

//  Orders seq keys, for the hash table.
static int
s_seq_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left;
    int64_t b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

//  Frees a pending accept and its records; zhashx destructor.
static void
s_pending_destroy (void **item_p)
{
    s_pending_t *self = (s_pending_t *) *item_p;
    if (self) {
        free (self->records);
        free (self);
        *item_p = NULL;
    }
}

//  Orders pointers to pending accepts by seq, for qsort.
static int
s_pending_compare (const void *left, const void *right)
{
    const s_pending_t *a = *(const s_pending_t * const *) left;
    const s_pending_t *b = *(const s_pending_t * const *) right;
    return (a->seq > b->seq) - (a->seq < b->seq);
}


//  --------------------------------------------------------------------------
//  Paths and errors.

static char *
s_segment_path (const char *dir, int64_t first_seq)
{
    char *path = NULL;
    if (asprintf (&path, "%s/%020" PRId64 S_SUFFIX, dir, first_seq) < 0)
        path = NULL;
    assert (path);
    return path;
}

//  Returns true and sets *first_seq if name is a segment name.
static bool
s_segment_name (const char *name, int64_t *first_seq)
{
    if (strlen (name) != S_NAME_DIGITS + strlen (S_SUFFIX)
    ||  strcmp (name + S_NAME_DIGITS, S_SUFFIX) != 0)
        return false;
    uint64_t value = 0;
    for (int index = 0; index < S_NAME_DIGITS; index++) {
        if (name [index] < '0' || name [index] > '9')
            return false;
        if (value > (uint64_t) (INT64_MAX - 9) / 10)
            return false;
        value = value * 10 + (uint64_t) (name [index] - '0');
    }
    if (value < 1)
        return false;
    *first_seq = (int64_t) value;
    return true;
}

//  Orders int64_t values, for qsort.
static int
s_int64_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left;
    int64_t b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

//  Lists the segments in dir, sorted. Returns the count, or -1 (errno set).
//  *list_p is allocated (caller frees) unless the count is 0 or -1.
static ssize_t
s_list_segments (const char *dir, int64_t **list_p)
{
    *list_p = NULL;
    DIR *handle = opendir (dir);
    if (!handle)
        return -1;
    size_t count = 0, capacity = 0;
    int64_t *list = NULL;
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        int64_t first_seq;
        if (!s_segment_name (entry->d_name, &first_seq))
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            list = (int64_t *) realloc (list, capacity * sizeof (int64_t));
            assert (list);
        }
        list [count++] = first_seq;
    }
    closedir (handle);
    if (count)
        qsort (list, count, sizeof (int64_t), s_int64_compare);
    *list_p = list;
    return (ssize_t) count;
}

//  Sets *error_p (if error_p) to a formatted line, or logs it. Returns NULL.
static void *
s_fail (char **error_p, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL;
    va_end (args);
    assert (message);
    if (error_p)
        *error_p = message;
    else {
        zsys_error ("%s", message);
        free (message);
    }
    return NULL;
}

//  Reads exactly size bytes at offset. Returns 0, or -1 (short or error).
static int
s_pread_full (int fd, void *data, size_t size, off_t offset)
{
    uint8_t *bytes = (uint8_t *) data;
    while (size) {
        ssize_t rc = pread (fd, bytes, size, offset);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        bytes += rc;
        size -= (size_t) rc;
        offset += rc;
    }
    return 0;
}

//  Makes the directory's entries durable (a new segment's name). Returns
//  0, or -1 with errno set.
static int
s_fsync_dir (const char *dir)
{
    int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}


//  --------------------------------------------------------------------------
//  State: applying a block to the journal's state, at open and after each
//  commit. Every rule of docs/JOURNAL.md "Recovery" is checked here.

static ssize_t
s_segment_find (pz_journal_t *self, int64_t seq)
{
    size_t low = 0, high = self->segment_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->segments [middle].first_seq <= seq)
            low = middle + 1;
        else
            high = middle;
    }
    return (ssize_t) low - 1;
}

//  Frees a range not done and its pieces; zhashx destructor.
static void
s_range_destroy (void **item_p)
{
    s_range_t *range = (s_range_t *) *item_p;
    if (range) {
        free (range->pieces);
        free (range);
        *item_p = NULL;
    }
}

//  Applies the ranges of an accepted request: each is a range not done,
//  held by the last segment until its pieces cover it.
static const char *
s_apply_ranges (pz_journal_t *self, const s_entry_t *entry, char *why, size_t why_size)
{
    self->after_primes = self->after_piece = false;
    if (entry->key < self->next_key) {
        snprintf (why, why_size, "range key %" PRId64 " not above the previous %" PRId64,
                  entry->key, self->next_key - 1);
        return why;
    }
    s_segment_t *segment = &self->segments [self->segment_count - 1];
    for (size_t index = 0; index < entry->range_count; index++) {
        const uint8_t *record = entry->ranges + 2 * index * PZ_RECORD_SIZE;
        s_range_t *range = (s_range_t *) zmalloc (sizeof (s_range_t));
        assert (range);
        range->key = entry->key + (int64_t) index;
        range->tag = pz_record_tag (record);
        range->lo = pz_record_value (record);
        range->hi = pz_record_value (record + PZ_RECORD_SIZE);
        range->segment_seq = segment->first_seq;
        int rc = zhashx_insert (self->ranges, &range->key, range);
        assert (rc == 0);           //  keys only grow
        segment->unverdicted++;
    }
    self->next_key = entry->key + (int64_t) entry->range_count;
    if (entry->request_id && self->recovering && self->recent) {
        self->recent [self->recent_next] = (s_recent_t) { entry->request_id, entry->acked };
        self->recent_next = (self->recent_next + 1) % (size_t) self->config.recent_requests;
        if (self->recent_count < (size_t) self->config.recent_requests)
            self->recent_count++;
    }
    return NULL;
}

//  Applies a piece done: counted into its range, which is done (and
//  releases its segment) once its pieces cover it.
static const char *
s_apply_piece (pz_journal_t *self, const s_entry_t *entry, char *why, size_t why_size)
{
    self->after_primes = false;
    self->after_piece = true;       //  its publications follow
    if (entry->key >= self->next_key)
        self->next_key = entry->key + 1;
    s_range_t *range = (s_range_t *) zhashx_lookup (self->ranges, &entry->key);
    if (!range) {
        //  A range accepted in a segment retention deleted was done then;
        //  a piece of it may remain in a later segment.
        if (self->segments [0].first_seq > 1)
            return NULL;
        snprintf (why, why_size, "piece of range key %" PRId64 " that is no range "
                  "not done", entry->key);
        return why;
    }
    uint64_t width = (uint64_t) entry->hi - (uint64_t) entry->lo + 1;
    if (entry->range_tag != range->tag || entry->lo < range->lo || entry->hi > range->hi
    ||  range->done_numbers + width > (uint64_t) range->hi - (uint64_t) range->lo + 1) {
        snprintf (why, why_size, "piece %" PRId64 ":%" PRId64 " does not fit range key %"
                  PRId64, entry->lo, entry->hi, entry->key);
        return why;
    }
    range->done_numbers += width;
    if (self->recovering) {
        if (range->piece_count == range->piece_capacity) {
            range->piece_capacity = range->piece_capacity ? 2 * range->piece_capacity : 8;
            range->pieces = (int64_t *) realloc (range->pieces,
                                3 * range->piece_capacity * sizeof (int64_t));
            assert (range->pieces);
        }
        int64_t *piece = range->pieces + 3 * range->piece_count++;
        piece [0] = entry->lo;
        piece [1] = entry->hi;
        piece [2] = entry->primes;
    }
    if (range->done_numbers == (uint64_t) range->hi - (uint64_t) range->lo + 1) {
        ssize_t segment = s_segment_find (self, range->segment_seq);
        if (segment >= 0 && self->segments [segment].first_seq == range->segment_seq)
            self->segments [segment].unverdicted--;
        zhashx_delete (self->ranges, &entry->key);
    }
    return NULL;
}

//  Returns true if a verdict kept as bits fits the numbers of its covered
//  accepts: one bit each, none set past them, and two S T pairs exactly
//  when there are both primes and composites.
static bool
s_bits_fit (const s_entry_t *entry, size_t numbers)
{
    bool both = entry->prime_bits > 0 && entry->prime_bits < numbers;
    return pz_verdicts_check (entry->bits, entry->bit_records, numbers) == PZ_OK
        && (entry->c_seq != 0) == both;
}

//  Applies a verdict kept as its bits: its K records name accepts without
//  a verdict in this same segment, in order, whose numbers the V records
//  carry one bit each; one S T for each half that has numbers.
static const char *
s_apply_bits (pz_journal_t *self, const s_entry_t *entry, char *why, size_t why_size)
{
    self->after_primes = self->after_piece = false;
    int tag = pz_publication_tag_index (entry->tag);
    int c_tag = pz_publication_tag_index (PZ_TAG_COMPOSITE);
    if (entry->seq < self->next_seq) {
        snprintf (why, why_size, "seq %" PRId64 " not above the previous %" PRId64,
                  entry->seq, self->next_seq - 1);
        return why;
    }
    if (entry->tag_seq <= self->tag_seqs [tag]
    ||  (entry->c_seq && entry->c_tag_seq <= self->tag_seqs [c_tag])) {
        snprintf (why, why_size, "tag-seq of verdict bits seq %" PRId64 " not above "
                  "the previous", entry->seq);
        return why;
    }
    s_segment_t *segment = &self->segments [self->segment_count - 1];
    size_t numbers = 0;
    int64_t previous = 0;
    for (size_t index = 0; index < entry->cover_count; index++) {
        int64_t cover = pz_record_value (entry->covers + index * PZ_RECORD_SIZE);
        s_pending_t *pending = cover > previous && cover >= segment->first_seq
                             && cover < entry->seq
                             ? (s_pending_t *) zhashx_lookup (self->unverdicted, &cover) : NULL;
        if (!pending) {
            snprintf (why, why_size, "K %" PRId64 " names no accepted number without "
                      "a verdict before its verdict bits in their segment", cover);
            return why;
        }
        numbers += pending->count;
        previous = cover;
    }
    if (!s_bits_fit (entry, numbers)) {
        snprintf (why, why_size, "verdict bits seq %" PRId64 " do not fit the %zu numbers "
                  "of their K records", entry->seq, numbers);
        return why;
    }
    for (size_t index = 0; index < entry->cover_count; index++) {
        int64_t cover = pz_record_value (entry->covers + index * PZ_RECORD_SIZE);
        zhashx_delete (self->unverdicted, &cover);
        segment->unverdicted--;
    }
    self->next_seq = entry->last_seq + 1;
    self->tag_seqs [tag] = entry->tag_seq;
    if (entry->c_seq)
        self->tag_seqs [c_tag] = entry->c_tag_seq;
    return NULL;
}

//  Applies one entry, in the last segment. Returns NULL or what is wrong.
static const char *
s_apply_entry (pz_journal_t *self, const s_entry_t *entry, char *why, size_t why_size)
{
    if (entry->kind == S_ENTRY_BITS)
        return s_apply_bits (self, entry, why, why_size);
    if (entry->kind == S_ENTRY_RANGES)
        return s_apply_ranges (self, entry, why, why_size);
    if (entry->kind == S_ENTRY_PIECE)
        return s_apply_piece (self, entry, why, why_size);
    int tag = pz_publication_tag_index (entry->tag);
    if (entry->seq < self->next_seq) {
        snprintf (why, why_size, "seq %" PRId64 " not above the previous %" PRId64,
                  entry->seq, self->next_seq - 1);
        return why;
    }
    if (entry->tag_seq <= self->tag_seqs [tag]) {
        snprintf (why, why_size, "%c tag-seq %" PRId64 " not above the previous %" PRId64,
                  entry->tag, entry->tag_seq, self->tag_seqs [tag]);
        return why;
    }
    bool after_primes = self->after_primes;
    bool after_piece = self->after_piece;
    self->after_primes = self->after_piece = false;
    if (entry->tag == PZ_TAG_NUMBER) {
        s_pending_t *pending = (s_pending_t *) zmalloc (sizeof (s_pending_t));
        assert (pending);
        pending->seq = entry->seq;
        pending->request_id = entry->request_id;
        pending->count = entry->count;
        if (self->recovering) {
            pending->records = (uint8_t *) malloc (entry->count * PZ_RECORD_SIZE);
            assert (pending->records);
            memcpy (pending->records, entry->publication, entry->count * PZ_RECORD_SIZE);
            if (entry->request_id && self->recent) {
                self->recent [self->recent_next] = (s_recent_t) {
                    entry->request_id, (int64_t) entry->count };
                self->recent_next = (self->recent_next + 1) % (size_t) self->config.recent_requests;
                if (self->recent_count < (size_t) self->config.recent_requests)
                    self->recent_count++;
            }
        }
        int rc = zhashx_insert (self->unverdicted, &pending->seq, pending);
        assert (rc == 0);           //  seqs only grow
        self->segments [self->segment_count - 1].unverdicted++;
    }
    else
    if (entry->tag == PZ_TAG_CORRECTION) {
        //  Corrects what a verdict published; completes nothing.
    }
    else
    if (entry->cover_count == 0) {
        //  A piece's P publications and its range's R announcement follow
        //  the piece; a C the P of its verdict.
        if (after_piece && (entry->tag == PZ_TAG_PRIME || entry->tag == PZ_TAG_RANGE))
            self->after_piece = entry->tag == PZ_TAG_PRIME;
        else
        if (!after_primes || entry->tag != PZ_TAG_COMPOSITE) {
            snprintf (why, why_size, "%c publication seq %" PRId64 " without K records "
                      "that does not follow a P verdict or a piece", entry->tag, entry->seq);
            return why;
        }
    }
    else {
        for (size_t index = 0; index < entry->cover_count; index++) {
            int64_t cover = pz_record_value (entry->covers + index * PZ_RECORD_SIZE);
            if (cover >= entry->seq) {
                snprintf (why, why_size, "K %" PRId64 " not below its verdict's seq %" PRId64,
                          cover, entry->seq);
                return why;
            }
            ssize_t segment = s_segment_find (self, cover);
            if (segment < 0)
                continue;           //  its segment was deleted: verdicted then
            s_pending_t *pending = (s_pending_t *) zhashx_lookup (self->unverdicted, &cover);
            if (!pending) {
                snprintf (why, why_size, "K %" PRId64 " names no accepted number "
                          "without a verdict", cover);
                return why;
            }
            zhashx_delete (self->unverdicted, &cover);
            self->segments [segment].unverdicted--;
        }
        self->after_primes = entry->tag == PZ_TAG_PRIME;
    }
    self->next_seq = entry->seq + 1;
    self->tag_seqs [tag] = entry->tag_seq;
    return NULL;
}

//  Applies a block whose CRC is good to the state. Returns NULL, or what is
//  wrong with it and at *where its byte offset from the block's start.
//  trusted: a block this process just wrote (s_entry_parse).
static const char *
s_apply_block (pz_journal_t *self, const s_block_header_t *header, const uint8_t *payload,
               bool trusted, size_t *where, char *why, size_t why_size)
{
    size_t offset = 0;
    uint32_t entries = 0;
    int64_t first_seq = 0, last_seq = 0;
    *where = 0;
    if (header->first_seq > header->last_seq)
        return "block's first seq above its last";
    while (offset < header->payload_bytes) {
        *where = S_BLOCK_HEADER + offset;
        if (header->payload_bytes - offset < 4)
            return "entry length cut off";
        uint32_t size = s_get32 (payload + offset);
        if (size > header->payload_bytes - offset - 4)
            return "entry runs past the end of its block";
        s_entry_t entry;
        const char *problem = s_entry_parse (payload + offset + 4, size, &entry, trusted);
        if (problem)
            return problem;
        problem = s_apply_entry (self, &entry, why, why_size);
        if (problem)
            return problem;
        entries++;
        if (entry.kind == S_ENTRY_PUBLICATION || entry.kind == S_ENTRY_BITS) {
            //  Ranges and pieces have no seq: only publications count here.
            if (first_seq == 0)
                first_seq = entry.seq;
            last_seq = entry.last_seq;
        }
        offset += 4 + size;
    }
    *where = 0;
    if (entries != header->entries)
        return "block's entry count differs from its entries";
    if (first_seq != header->first_seq || last_seq != header->last_seq)
        return "block's first or last seq differs from its entries";
    return NULL;
}


//  --------------------------------------------------------------------------
//  Fills config with the defaults.

void
pz_journal_config_init (pz_journal_config_t *config)
{
    assert (config);
    *config = (pz_journal_config_t) {
        .dir = NULL,
        .segment_bytes = 64 * 1024 * 1024,
        .retain_bytes = 0,
        .retain_s = 0,
        .sync = true,
        .recent_requests = 65536,
        .cache_bytes = 32 * 1024 * 1024
    };
}


//  --------------------------------------------------------------------------
//  Parses "SIZE", "AGE" or "SIZE,AGE". Returns true and fills both, or false.

static bool
s_parse_quantity (const char *text, size_t length, const char *suffixes,
                  const int64_t *factors, bool suffix_required, int64_t *value)
{
    size_t index = 0;
    int64_t number = 0;
    while (index < length && text [index] >= '0' && text [index] <= '9') {
        if (number > (INT64_MAX - 9) / 10)
            return false;
        number = number * 10 + (text [index++] - '0');
    }
    if (index == 0 || number == 0)
        return false;
    int64_t factor = 1;
    if (index < length) {
        const char *suffix = length - index == 1 ? strchr (suffixes, text [index]) : NULL;
        if (!suffix || !*suffix)
            return false;
        factor = factors [suffix - suffixes];
    }
    else
    if (suffix_required)
        return false;
    if (number > INT64_MAX / factor)
        return false;
    *value = number * factor;
    return true;
}

//  Parses SIZE: digits and an optional K, M, G or T (powers of 1024).
static bool
s_parse_size (const char *text, size_t length, int64_t *value)
{
    static const int64_t factors [] = {
        INT64_C (1) << 10, INT64_C (1) << 20, INT64_C (1) << 30, INT64_C (1) << 40 };
    return s_parse_quantity (text, length, "KMGT", factors, false, value);
}

//  Parses AGE: digits and s, m, h or d.
static bool
s_parse_age (const char *text, size_t length, int64_t *value)
{
    static const int64_t factors [] = { 1, 60, 3600, 86400 };
    return s_parse_quantity (text, length, "smhd", factors, true, value);
}

//  Parses "SIZE", "AGE" or "SIZE,AGE" into the two limits (0 for the part
//  not given). Returns false, changing nothing, for anything else.
bool
pz_journal_retain_parse (const char *spec, int64_t *retain_bytes, int64_t *retain_s)
{
    assert (retain_bytes && retain_s);
    if (!spec)
        return false;
    int64_t bytes = 0, seconds = 0;
    const char *comma = strchr (spec, ',');
    if (comma) {
        if (!s_parse_size (spec, (size_t) (comma - spec), &bytes)
        ||  !s_parse_age (comma + 1, strlen (comma + 1), &seconds))
            return false;
    }
    else
    if (!s_parse_size (spec, strlen (spec), &bytes)
    &&  !s_parse_age (spec, strlen (spec), &seconds))
        return false;
    *retain_bytes = bytes;
    *retain_s = seconds;
    return true;
}


//  --------------------------------------------------------------------------
//  Opening: lock, list, read every segment back.

static void
s_segment_push (pz_journal_t *self, int64_t first_seq, int64_t bytes, int64_t written_s)
{
    if (self->segment_count == self->segment_capacity) {
        self->segment_capacity = self->segment_capacity ? self->segment_capacity * 2 : 16;
        self->segments = (s_segment_t *) realloc (self->segments,
                             self->segment_capacity * sizeof (s_segment_t));
        assert (self->segments);
    }
    self->segments [self->segment_count++] = (s_segment_t) {
        .first_seq = first_seq, .bytes = bytes, .written_s = written_s,
        .version = PZ_JOURNAL_VERSION };
}

//  Creates a segment file named first_seq with its header, durably. Returns
//  its fd (write-only, positioned after the header), or -1 with errno set.
static int
s_segment_create (pz_journal_t *self, int64_t first_seq)
{
    char *path = s_segment_path (self->dir, first_seq);
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int saved = errno;
    if (fd >= 0) {
        uint8_t header [S_SEGMENT_HEADER];
        s_segment_header_encode (header, first_seq, self->tag_seqs);
        ssize_t rc = write (fd, header, sizeof header);
        if (rc != (ssize_t) sizeof header
        ||  fdatasync (fd) != 0
        ||  s_fsync_dir (self->dir) != 0) {
            saved = rc >= 0 && rc != (ssize_t) sizeof header ? ENOSPC : errno;
            close (fd);
            unlink (path);
            fd = -1;
        }
    }
    free (path);
    errno = saved;
    return fd;
}

//  What s_scan_after found: the blocks with a good CRC past a bad one.
typedef struct {
    int blocks;                 //  how many
    int64_t synced;             //  the highest synced-through they record (0: none)
    int64_t synced_at;          //  offset of the block recording it
} s_scan_t;

//  Looks for blocks with a good CRC anywhere in the file from offset start
//  on (at any byte: what is before them may be garbage), each counted once
//  (the search goes on after its end), and notes the highest synced-through
//  offset they record. A block with a good CRC is taken as written by us.
static void
s_scan_after (int fd, int64_t start, int64_t size, s_scan_t *scan)
{
    uint8_t chunk [64 * 1024];
    uint8_t *payload = NULL;
    memset (scan, 0, sizeof *scan);
    int64_t base = start;
    while (base + S_BLOCK_HEADER <= size) {
        size_t length = (size_t) (size - base < (int64_t) sizeof chunk ? size - base : (int64_t) sizeof chunk);
        if (s_pread_full (fd, chunk, length, base))
            break;
        //  Where to look next: past a block found, else the next chunk
        //  (overlapping by 3 bytes, so no magic is missed at the seam).
        int64_t next = length < sizeof chunk ? size : base + (int64_t) length - 3;
        for (size_t index = 0; index + 4 <= length; index++) {
            if (memcmp (chunk + index, S_BLOCK_MAGIC, 4) != 0)
                continue;
            int64_t at = base + (int64_t) index;
            uint8_t bytes [S_BLOCK_HEADER];
            s_block_header_t header;
            if (at + S_BLOCK_HEADER > size
            ||  s_pread_full (fd, bytes, S_BLOCK_HEADER, at)
            ||  s_block_header_decode (bytes, &header)
            ||  header.payload_bytes > size - at - S_BLOCK_HEADER)
                continue;
            payload = (uint8_t *) realloc (payload, header.payload_bytes);
            assert (payload);
            if (s_pread_full (fd, payload, header.payload_bytes, at + S_BLOCK_HEADER)
            ||  !s_block_crc_ok (bytes, &header, payload))
                continue;
            scan->blocks++;
            if (header.synced > scan->synced) {
                scan->synced = header.synced;
                scan->synced_at = at;
            }
            next = at + S_BLOCK_HEADER + header.payload_bytes;
            break;
        }
        base = next;
    }
    free (payload);
}

//  Reads segment `index` (already pushed) back. is_last: it is the last and
//  may end in blocks never synced (torn, lost, or valid after a lost one),
//  which are cut. Returns NULL, or the error line.
static char *
s_segment_recover (pz_journal_t *self, bool is_last, uint8_t **payload_p,
                   size_t *capacity_p)
{
    s_segment_t *segment = &self->segments [self->segment_count - 1];
    char *path = s_segment_path (self->dir, segment->first_seq);
    char *error = NULL;
    int fd = open (path, (is_last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    struct stat status;
    if (fd < 0 || fstat (fd, &status)) {
        s_fail (&error, "journal %s: cannot open: %s", path, strerror (errno));
        goto done;
    }
    int64_t size = status.st_size;
    segment->written_s = status.st_mtime;
    uint8_t header [S_SEGMENT_HEADER], expected [S_SEGMENT_HEADER];
    //  A segment's header holds the tag-seqs reached before it, so that
    //  they survive the deletion of the segments that counted them.
    bool is_first = self->segment_count == 1;
    s_segment_header_encode (expected, segment->first_seq, self->tag_seqs);
    if (size < S_SEGMENT_HEADER) {
        //  A crash while a new segment was being created.
        if (is_last && s_pread_full (fd, header, (size_t) size, 0) == 0
        &&  memcmp (header, expected, (size_t) size) == 0) {
            zsys_warning ("journal %s: torn segment header (%" PRId64 " bytes), rewritten",
                          path, size);
            if (ftruncate (fd, 0) || pwrite (fd, expected, sizeof expected, 0)
                != (ssize_t) sizeof expected || fdatasync (fd)) {
                s_fail (&error, "journal %s: cannot rewrite header: %s", path, strerror (errno));
                goto done;
            }
            size = S_SEGMENT_HEADER;
            goto finish;
        }
        s_fail (&error, "journal %s: offset 0: segment header cut off (%" PRId64 " bytes)",
                path, size);
        goto done;
    }
    if (s_pread_full (fd, header, sizeof header, 0)) {
        s_fail (&error, "journal %s: offset 0: cannot read header: %s", path, strerror (errno));
        goto done;
    }
    if (memcmp (header, S_SEGMENT_MAGIC, 8) != 0) {
        s_fail (&error, "journal %s: offset 0: not a journal segment (bad magic)", path);
        goto done;
    }
    //  Version 3 is version 4 without ranges, version 4 is version 5
    //  without verdicts kept as bits: each is read as it is.
    segment->version = s_get32 (header + 8);
    if (s_get32 (header + 8) < PZ_JOURNAL_VERSION_READ
    ||  s_get32 (header + 8) > PZ_JOURNAL_VERSION) {
        s_fail (&error, "journal %s: offset 8: format version %" PRIu32 ", this broker "
                "reads only versions %d to %d%s", path, s_get32 (header + 8),
                PZ_JOURNAL_VERSION_READ, PZ_JOURNAL_VERSION,
                s_get32 (header + 8) < PZ_JOURNAL_VERSION ? " (an older format: let the "
                "broker that wrote it finish its numbers, then move the directory away "
                "to start a new journal)" : "");
        goto done;
    }
    if (s_get32 (header + S_SEGMENT_CRC_AT) != pz_journal_crc32c (0, header, S_SEGMENT_CRC_AT)) {
        s_fail (&error, "journal %s: offset %d: segment header checksum mismatch", path, S_SEGMENT_CRC_AT);
        goto done;
    }
    if (s_get64 (header + 16) != segment->first_seq) {
        s_fail (&error, "journal %s: offset 16: header's first seq %" PRId64
                " does not match the file name", path, s_get64 (header + 16));
        goto done;
    }
    if (is_first)
        for (int index = 0; index < S_TAGS; index++) {
            self->tag_seqs [index] = s_get64 (header + 24 + 8 * index);
            if (self->tag_seqs [index] < 0) {
                s_fail (&error, "journal %s: offset %d: negative tag-seq", path, 24 + 8 * index);
                goto done;
            }
        }
    else
    if (memcmp (header + 24, expected + 24, 8 * S_TAGS) != 0) {
        s_fail (&error, "journal %s: offset 24: header's tag-seqs differ from the "
                "previous segment's last", path);
        goto done;
    }
    if (memcmp (header + 12, expected + 12, 4) != 0 || s_get32 (header + 24 + 8 * S_TAGS) != 0) {
        s_fail (&error, "journal %s: offset 12: header size or reserved field wrong", path);
        goto done;
    }
    int64_t offset = S_SEGMENT_HEADER;
    bool named_checked = false;     //  the name was checked against a block
    while (offset < size) {
        uint8_t bytes [S_BLOCK_HEADER];
        s_block_header_t block;
        const char *problem = NULL;
        if (size - offset < S_BLOCK_HEADER)
            problem = "block header cut off";
        else
        if (s_pread_full (fd, bytes, S_BLOCK_HEADER, offset))
            problem = "cannot read block header";
        else
            problem = s_block_header_decode (bytes, &block);
        if (!problem && block.payload_bytes > size - offset - S_BLOCK_HEADER)
            problem = "block runs past the end of the file";
        if (!problem) {
            if (block.payload_bytes > *capacity_p) {
                *capacity_p = block.payload_bytes;
                *payload_p = (uint8_t *) realloc (*payload_p, *capacity_p);
                assert (*payload_p);
            }
            if (s_pread_full (fd, *payload_p, block.payload_bytes, offset + S_BLOCK_HEADER))
                problem = "cannot read block";
            else
            if (!s_block_crc_ok (bytes, &block, *payload_p))
                problem = "block checksum mismatch";
        }
        if (problem && !is_last) {
            //  The segment after it exists only once this one was synced.
            s_fail (&error, "journal %s: offset %" PRId64 ": %s", path, offset, problem);
            goto done;
        }
        if (problem) {
            //  The first bad block of the last segment. If a block after it
            //  records a synced-through offset past its start, a sync that
            //  covered it completed before that block was written: it was
            //  acknowledged, and this is damage. Else no sync covering it
            //  ever completed, nothing from here on was acknowledged, and a
            //  power loss may have kept later blocks while losing this one.
            s_scan_t scan;
            s_scan_after (fd, offset + 1, size, &scan);
            if (scan.synced > offset) {
                s_fail (&error, "journal %s: offset %" PRId64 ": %s (the block at offset %"
                        PRId64 " records the segment synced through %" PRId64 ": damage to "
                        "acknowledged data, not an unsynced tail)", path, offset, problem,
                        scan.synced_at, scan.synced);
                goto done;
            }
            zsys_warning ("journal %s: offset %" PRId64 ": %s: cut %" PRId64 " bytes never "
                          "synced, %d valid blocks among them", path, offset, problem,
                          size - offset, scan.blocks);
            if (ftruncate (fd, offset) || fdatasync (fd)) {
                s_fail (&error, "journal %s: cannot cut the unsynced tail: %s",
                        path, strerror (errno));
                goto done;
            }
            size = offset;
            break;
        }
        //  A block claims no sync of itself or of what follows it, nor
        //  less than the segment's header, which is synced at creation.
        if (block.synced < S_SEGMENT_HEADER || block.synced > offset) {
            s_fail (&error, "journal %s: offset %" PRId64 ": synced-through offset %"
                    PRId64 " outside %d..%" PRId64, path, offset + 28, block.synced,
                    S_SEGMENT_HEADER, offset);
            goto done;
        }
        if (!named_checked && block.first_seq != 0) {
            //  The name is the seq after the previous segment's last: a
            //  segment lost or cut short before this one shows here, at
            //  its first block with publications (ranges and pieces have
            //  no seq: a block of only those has first seq 0).
            named_checked = true;
            if (block.first_seq < segment->first_seq) {
                s_fail (&error, "journal %s: offset %" PRId64 ": first seq %" PRId64
                        " below the segment's name", path, offset, block.first_seq);
                goto done;
            }
        }
        char why [160];
        size_t where;
        problem = s_apply_block (self, &block, *payload_p, false, &where, why, sizeof why);
        if (problem) {
            s_fail (&error, "journal %s: offset %" PRId64 ": %s", path, offset + (int64_t) where,
                    problem);
            goto done;
        }
        segment->has_blocks = true;
        offset += S_BLOCK_HEADER + block.payload_bytes;
    }
finish:
    segment->bytes = size;
    if (is_last) {
        //  What we read back may be in the page cache only (a process
        //  killed before its sync): make it durable before blocks written
        //  from now on record it as synced and the broker acts on it.
        if (self->config.sync && fdatasync (fd)) {
            s_fail (&error, "journal %s: cannot sync: %s", path, strerror (errno));
            goto done;
        }
        self->synced = size;
        self->fd = fd;
        fd = -1;
        if (lseek (self->fd, size, SEEK_SET) < 0)
            s_fail (&error, "journal %s: cannot seek: %s", path, strerror (errno));
    }
done:
    if (fd >= 0)
        close (fd);
    free (path);
    return error;
}

//  Locks the directory, replays every segment and cuts an unsynced tail.
//  Returns the journal, or NULL with *error_p set. Caller owns it.
pz_journal_t *
pz_journal_open (const pz_journal_config_t *config, char **error_p)
{
    assert (config && config->dir);
    assert (config->segment_bytes > 0 && config->retain_bytes >= 0 && config->retain_s >= 0);
    assert (config->recent_requests >= 0);
    if (error_p)
        *error_p = NULL;
    if (mkdir (config->dir, 0755) && errno != EEXIST)
        return s_fail (error_p, "journal %s: cannot create directory: %s",
                       config->dir, strerror (errno));

    pz_journal_t *self = (pz_journal_t *) zmalloc (sizeof (pz_journal_t));
    assert (self);
    self->config = *config;
    self->dir = strdup (config->dir);
    self->config.dir = self->dir;
    self->fd = -1;
    self->next_seq = 1;
    self->recovering = true;
    self->unverdicted = zhashx_new ();
    assert (self->unverdicted);
    zhashx_set_key_hasher (self->unverdicted, s_seq_hash);
    zhashx_set_key_comparator (self->unverdicted, s_seq_compare);
    zhashx_set_key_duplicator (self->unverdicted, NULL);
    zhashx_set_key_destructor (self->unverdicted, NULL);
    zhashx_set_destructor (self->unverdicted, s_pending_destroy);
    self->ranges = zhashx_new ();
    assert (self->ranges);
    zhashx_set_key_hasher (self->ranges, s_seq_hash);
    zhashx_set_key_comparator (self->ranges, s_seq_compare);
    zhashx_set_key_duplicator (self->ranges, NULL);
    zhashx_set_key_destructor (self->ranges, NULL);
    zhashx_set_destructor (self->ranges, s_range_destroy);
    self->next_key = 1;
    if (config->recent_requests) {
        self->recent = (s_recent_t *) calloc ((size_t) config->recent_requests,
                                              sizeof (s_recent_t));
        assert (self->recent);
    }

    char *lock_path = NULL;
    if (asprintf (&lock_path, "%s/%s", self->dir, S_LOCK_NAME) < 0)
        lock_path = NULL;
    assert (lock_path);
    self->lock_fd = open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->lock_fd < 0)
        s_fail (error_p, "journal %s: cannot open lock file: %s", lock_path, strerror (errno));
    else
    if (flock (self->lock_fd, LOCK_EX | LOCK_NB)) {
        if (errno == EWOULDBLOCK)
            s_fail (error_p, "journal %s: in use by another broker (%s is locked)",
                    self->dir, lock_path);
        else
            s_fail (error_p, "journal %s: cannot lock: %s", lock_path, strerror (errno));
        close (self->lock_fd);
        self->lock_fd = -1;
    }
    free (lock_path);
    if (self->lock_fd < 0) {
        pz_journal_destroy (&self);
        return NULL;
    }

    int64_t *names = NULL;
    ssize_t count = s_list_segments (self->dir, &names);
    char *error = NULL;
    if (count < 0)
        s_fail (&error, "journal %s: cannot list: %s", self->dir, strerror (errno));
    uint8_t *payload = NULL;
    size_t capacity = 0;
    for (ssize_t index = 0; !error && index < count; index++) {
        if (index > 0) {
            s_segment_t *previous = &self->segments [self->segment_count - 1];
            if (!previous->has_blocks || names [index] != self->next_seq) {
                char *path = s_segment_path (self->dir, names [index]);
                s_fail (&error, "journal %s: offset 0: segment does not start after the "
                        "previous one's last seq %" PRId64 " (segment missing or cut short)",
                        path, self->next_seq - 1);
                free (path);
                break;
            }
        }
        else
            self->next_seq = names [0];     //  seqs before it were deleted
        s_segment_push (self, names [index], 0, 0);
        error = s_segment_recover (self, index == count - 1, &payload, &capacity);
    }
    free (payload);
    free (names);
    if (!error && count == 0) {
        self->fd = s_segment_create (self, 1);
        if (self->fd < 0)
            s_fail (&error, "journal %s: cannot create first segment: %s",
                    self->dir, strerror (errno));
        else {
            s_segment_push (self, 1, S_SEGMENT_HEADER, (int64_t) time (NULL));
            self->synced = S_SEGMENT_HEADER;
        }
    }
    if (error) {
        if (error_p)
            *error_p = error;
        else {
            zsys_error ("%s", error);
            free (error);
        }
        pz_journal_destroy (&self);
        return NULL;
    }
    self->staged_next_seq = self->next_seq;
    memcpy (self->staged_tag_seqs, self->tag_seqs, sizeof self->tag_seqs);
    zsys_info ("journal %s: %zu segments, next seq %" PRId64 ", %zu without verdict",
               self->dir, self->segment_count, self->next_seq,
               zhashx_size (self->unverdicted));
    return self;
}


//  --------------------------------------------------------------------------
//  Destroys the journal, dropping what was not committed. NULL-safe.

void
pz_journal_destroy (pz_journal_t **self_p)
{
    assert (self_p);
    pz_journal_t *self = *self_p;
    if (self) {
        if (self->fd >= 0)
            close (self->fd);
        if (self->lock_fd >= 0)
            close (self->lock_fd);      //  releases the flock
        zhashx_destroy (&self->unverdicted);
        zhashx_destroy (&self->ranges);
        free (self->recent);
        free (self->segments);
        free (self->buffer);
        free (self->staged);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Recovered state.

int64_t
pz_journal_next_seq (pz_journal_t *self)
{
    assert (self);
    return self->next_seq;
}

//  Returns the last committed tag-seq of tag (N, P, C or X), 0 if none.
int64_t
pz_journal_tag_seq (pz_journal_t *self, char tag)
{
    assert (self);
    int index = pz_publication_tag_index (tag);
    assert (index >= 0);
    return self->tag_seqs [index];
}

//  Returns the name of the oldest segment: the smallest seq held.
int64_t
pz_journal_oldest_seq (pz_journal_t *self)
{
    assert (self && self->segment_count);
    //  Only the last segment may have no blocks, and then it is named next_seq.
    return self->segments [0].first_seq;
}

//  Calls fn for each accept without verdict, in seq order, then frees
//  their records and stops keeping records for later accepts.
void
pz_journal_take_pending (pz_journal_t *self, pz_journal_pending_fn *fn, void *arg)
{
    assert (self && fn);
    size_t count = zhashx_size (self->unverdicted);
    s_pending_t **list = (s_pending_t **) malloc ((count + 1) * sizeof (s_pending_t *));
    assert (list);
    size_t index = 0;
    for (s_pending_t *pending = (s_pending_t *) zhashx_first (self->unverdicted);
         pending; pending = (s_pending_t *) zhashx_next (self->unverdicted))
        list [index++] = pending;
    qsort (list, count, sizeof (s_pending_t *), s_pending_compare);
    for (index = 0; index < count; index++) {
        s_pending_t *pending = list [index];
        if (pending->records)
            fn (arg, pending->seq, pending->request_id, pending->records, pending->count);
        free (pending->records);
        pending->records = NULL;
    }
    free (list);
    self->recovering = false;
}

//  Calls fn for the last `limit` request ids seen at open, oldest first,
//  then frees them.
void
pz_journal_take_recent (pz_journal_t *self, size_t limit, pz_journal_recent_fn *fn, void *arg)
{
    assert (self && fn);
    size_t count = self->recent_count < limit ? self->recent_count : limit;
    size_t capacity = (size_t) self->config.recent_requests;
    for (size_t index = 0; index < count; index++) {
        size_t slot = (self->recent_next + capacity - count + index) % capacity;
        fn (arg, self->recent [slot].request_id, self->recent [slot].count);
    }
    free (self->recent);
    self->recent = NULL;
    self->recent_count = 0;
}


//  --------------------------------------------------------------------------
//  Appending.

//  Checks that a publication of tag numbered seq, tag_seq comes after what
//  was appended before, and counts it as appended.
static void
s_sequence_take (pz_journal_t *self, char tag, int64_t seq, int64_t tag_seq)
{
    int index = pz_publication_tag_index (tag);
    assert (seq >= self->staged_next_seq && tag_seq > self->staged_tag_seqs [index]);
    self->staged_next_seq = seq + 1;
    self->staged_tag_seqs [index] = tag_seq;
}

//  Checks a publication of tag the broker built, and returns its seq.
static int64_t
s_publication_check (pz_journal_t *self, const uint8_t *publication, size_t size, char tag)
{
    assert (publication && size % PZ_RECORD_SIZE == 0);
    size_t records = size / PZ_RECORD_SIZE;
    //  Its first and last records only, as the commit does (s_apply_block,
    //  trusted): the broker builds its publications whole, and a tag looked
    //  at record by record was the largest item of the journal's own CPU.
    assert (records >= 3 && pz_record_tag (publication) == tag);
    const uint8_t *trailer = publication + (records - 2) * PZ_RECORD_SIZE;
    assert (pz_record_tag (trailer) == PZ_TAG_SEQ);
    assert (pz_record_tag (trailer + PZ_RECORD_SIZE) == PZ_TAG_TAG_SEQ);
    int64_t seq = pz_record_value (trailer);
    s_sequence_take (self, tag, seq, pz_record_value (trailer + PZ_RECORD_SIZE));
    return seq;
}

//  Grows the commit buffer, by doubling, to hold `more` bytes more.
static void
s_buffer_reserve (pz_journal_t *self, size_t more)
{
    if (self->buffer_size + more > self->buffer_capacity) {
        size_t capacity = self->buffer_capacity ? self->buffer_capacity * 2 : 64 * 1024;
        while (capacity < self->buffer_size + more)
            capacity *= 2;
        self->buffer = (uint8_t *) realloc (self->buffer, capacity);
        assert (self->buffer);
        self->buffer_capacity = capacity;
    }
}

//  Makes sure the open block has room for `bytes` more of entries, starting
//  a new block if not (or if there is none).
static void
s_block_room (pz_journal_t *self, size_t bytes)
{
    s_staged_t *block = self->staged_count ? &self->staged [self->staged_count - 1] : NULL;
    if (block && self->buffer_size - block->offset - S_BLOCK_HEADER + bytes
                 <= PZ_JOURNAL_BLOCK_MAX)
        return;
    if (self->staged_count == self->staged_capacity) {
        self->staged_capacity = self->staged_capacity ? self->staged_capacity * 2 : 4;
        self->staged = (s_staged_t *) realloc (self->staged,
                           self->staged_capacity * sizeof (s_staged_t));
        assert (self->staged);
    }
    s_buffer_reserve (self, S_BLOCK_HEADER);
    self->staged [self->staged_count++] = (s_staged_t) { .offset = self->buffer_size };
    self->buffer_size += S_BLOCK_HEADER;
}

//  Appends an entry's length and returns where its size bytes go.
static uint8_t *
s_entry_stage (pz_journal_t *self, size_t size, int64_t seq)
{
    s_block_room (self, 4 + size);
    s_buffer_reserve (self, 4 + size);
    s_staged_t *block = &self->staged [self->staged_count - 1];
    block->entries++;
    if (seq) {                      //  0: ranges or a piece, no publication
        if (block->first_seq == 0)
            block->first_seq = seq;
        block->last_seq = seq;
    }
    s_put32 (self->buffer + self->buffer_size, (uint32_t) size);
    uint8_t *data = self->buffer + self->buffer_size + 4;
    self->buffer_size += 4 + size;
    return data;
}

//  Appends an accept entry: [I request-id] + the N publication.
//  Asserts that the publication is well formed and its seqs go up.
void
pz_journal_accept (pz_journal_t *self, int64_t request_id,
                   const uint8_t *publication, size_t size)
{
    assert (self);
    int64_t seq = s_publication_check (self, publication, size, PZ_TAG_NUMBER);
    size_t prefix = request_id ? PZ_RECORD_SIZE : 0;
    uint8_t *data = s_entry_stage (self, prefix + size, seq);
    if (request_id)
        pz_record_encode (data, PZ_TAG_ID, request_id);
    memcpy (data + prefix, publication, size);
}

//  Appends an accept entry from its parts: [I request-id], the N records,
//  S seq, T tag-seq. The records' tags are the caller's to have checked.
void
pz_journal_accept_records (pz_journal_t *self, int64_t request_id,
                           const uint8_t *records, size_t count,
                           int64_t seq, int64_t tag_seq)
{
    assert (self && records && count >= 1 && count <= PZ_RECORDS_MAX);
    assert (pz_record_tag (records) == PZ_TAG_NUMBER);
    s_sequence_take (self, PZ_TAG_NUMBER, seq, tag_seq);
    size_t prefix = request_id ? PZ_RECORD_SIZE : 0;
    size_t size = count * PZ_RECORD_SIZE;
    uint8_t *data = s_entry_stage (self, prefix + size + PZ_TRAILER_SIZE, seq);
    if (request_id)
        pz_record_encode (data, PZ_TAG_ID, request_id);
    memcpy (data + prefix, records, size);
    pz_publication_trailer (data + prefix + size, seq, tag_seq);
}

//  Appends a verdict. As its bits (K records, V records, S T [S T]) when
//  the history reader can find every covered accept before it in its own
//  segment: each is in the segment being written (or staged for it), no
//  rollover will come first, and the segment is of a version that has
//  bits. Otherwise as its publications: K records + its P (or only C)
//  publication, and its C publication as a second entry if it has both.
//  Asserts on misuse.
void
pz_journal_verdict (pz_journal_t *self, const int64_t *covers, size_t cover_count,
                    const uint8_t *numbers, const uint8_t *bits, size_t count,
                    const int64_t *seqs, const int64_t *tag_seqs)
{
    assert (self && covers && numbers && bits && seqs && tag_seqs);
    assert (cover_count >= 1 && cover_count <= PZ_RECORDS_MAX);
    assert (count >= 1 && count <= PZ_RECORDS_MAX);
    size_t primes = pz_verdicts_primes (bits, count);
    assert ((seqs [0] != 0) == (primes > 0) && (seqs [1] != 0) == (primes < count));
    s_segment_t *segment = &self->segments [self->segment_count - 1];
    bool as_bits = segment->version >= 5
                && !(segment->has_blocks && segment->bytes >= self->config.segment_bytes);
    //  Checked now, not at commit: a K naming no accept, once written,
    //  would make the next open refuse the journal.
    for (size_t index = 0; index < cover_count; index++) {
        int64_t cover = covers [index];
        assert (cover >= 1 && cover < self->staged_next_seq);
        assert (cover >= self->next_seq || zhashx_lookup (self->unverdicted, &cover));
        if (cover < segment->first_seq || (index && cover <= covers [index - 1]))
            as_bits = false;
    }
    size_t cover_bytes = cover_count * PZ_RECORD_SIZE;
    for (int which = 0; which < 2; which++)
        if (seqs [which])
            s_sequence_take (self, which ? PZ_TAG_COMPOSITE : PZ_TAG_PRIME,
                             seqs [which], tag_seqs [which]);
    int64_t first_seq = seqs [0] ? seqs [0] : seqs [1];
    if (as_bits) {
        size_t bit_bytes = pz_verdicts_records (count) * PZ_RECORD_SIZE;
        size_t halves = (seqs [0] != 0) + (seqs [1] != 0);
        uint8_t *data = s_entry_stage (self, cover_bytes + bit_bytes + halves * PZ_TRAILER_SIZE,
                                       first_seq);
        self->staged [self->staged_count - 1].last_seq = seqs [1] ? seqs [1] : seqs [0];
        for (size_t index = 0; index < cover_count; index++)
            pz_record_encode (data + index * PZ_RECORD_SIZE, S_TAG_COVER, covers [index]);
        data += cover_bytes;
        memcpy (data, bits, bit_bytes);
        data += bit_bytes;
        for (int which = 0; which < 2; which++)
            if (seqs [which]) {
                pz_publication_trailer (data, seqs [which], tag_seqs [which]);
                data += PZ_TRAILER_SIZE;
            }
        return;
    }
    //  Both entries of a verdict go in one block, so a cut never splits them.
    size_t sizes [2] = { primes * PZ_RECORD_SIZE, (count - primes) * PZ_RECORD_SIZE };
    s_block_room (self, 8 + cover_bytes + count * PZ_RECORD_SIZE + 2 * PZ_TRAILER_SIZE);
    size_t offsets [2] = { 0, 0 };      //  in the buffer, which may move as it grows
    for (int which = 0; which < 2; which++)
        if (seqs [which]) {
            bool first = seqs [which] == first_seq;
            size_t prefix = first ? cover_bytes : 0;
            uint8_t *data = s_entry_stage (self, prefix + sizes [which] + PZ_TRAILER_SIZE,
                                           seqs [which]);
            offsets [which] = (size_t) (data - self->buffer) + prefix;
        }
    uint8_t *data = self->buffer + offsets [seqs [0] ? 0 : 1] - cover_bytes;
    for (size_t index = 0; index < cover_count; index++)
        pz_record_encode (data + index * PZ_RECORD_SIZE, S_TAG_COVER, covers [index]);
    uint8_t *cursor [2] = { seqs [0] ? self->buffer + offsets [0] : NULL,
                            seqs [1] ? self->buffer + offsets [1] : NULL };
    pz_verdicts_split (numbers, bits, count, cursor);
    for (int which = 0; which < 2; which++)
        if (seqs [which])
            pz_publication_trailer (cursor [which], seqs [which], tag_seqs [which]);
}

//  Appends a correction: its X publication, as an entry of its own.
void
pz_journal_correction (pz_journal_t *self, const uint8_t *publication, size_t size)
{
    assert (self && publication);
    int64_t seq = s_publication_check (self, publication, size, PZ_TAG_CORRECTION);
    uint8_t *data = s_entry_stage (self, size, seq);
    memcpy (data, publication, size);
}

//  Forgets everything appended since the last commit.
static void
s_drop_staged (pz_journal_t *self)
{
    self->buffer_size = 0;
    self->staged_count = 0;
    self->staged_next_seq = self->next_seq;
    memcpy (self->staged_tag_seqs, self->tag_seqs, sizeof self->tag_seqs);
}

//  Starts a new segment, named after the last committed seq. Returns 0 or
//  -1 with errno set (then the current segment stays).
static int
s_rollover (pz_journal_t *self)
{
    //  What the old segment holds must be durable before the new one takes
    //  writes: a sync of the new file says nothing about the old one.
    if (self->config.sync && fdatasync (self->fd) != 0)
        return -1;
    int fd = s_segment_create (self, self->next_seq);
    if (fd < 0)
        return -1;
    //  The old segment is durable (synced above): all of it goes.
    if (self->config.sync && self->config.cache_bytes >= 0)
        (void) posix_fadvise (self->fd, 0, 0, POSIX_FADV_DONTNEED);
    self->cache_dropped = 0;
    close (self->fd);
    self->fd = fd;
    self->position_base += self->segments [self->segment_count - 1].bytes;
    s_segment_push (self, self->next_seq, S_SEGMENT_HEADER, (int64_t) time (NULL));
    self->synced = S_SEGMENT_HEADER;    //  its header, synced at creation
    return 0;
}

//  Hands the kernel back the page cache of the current segment's durable
//  bytes, but the newest config.cache_bytes, in steps of S_CACHE_DROP_STEP:
//  a journal is written once and read back rarely (history asks mostly for
//  what is recent), so its pages are better free and taken by the next
//  writes than cached. New page-cache pages are dear where memory is
//  touched for the first time (a VM's, docs/PERFORMANCE.md), and a
//  bounded cache leaves other files theirs. Only durable pages are clean:
//  without config.sync nothing is dropped.
static void
s_cache_drop (pz_journal_t *self)
{
    if (!self->config.sync || self->config.cache_bytes < 0)
        return;
    int64_t limit = (self->synced - self->config.cache_bytes) & ~(int64_t) (S_PAGE_BYTES - 1);
    if (limit - self->cache_dropped < S_CACHE_DROP_STEP)
        return;
    //  Advice: if it fails the pages stay cached, and nothing else changes.
    (void) posix_fadvise (self->fd, self->cache_dropped, limit - self->cache_dropped,
                          POSIX_FADV_DONTNEED);
    self->cache_dropped = limit;
}

//  Writes the staged entries as blocks. commit: sync them (if config.sync)
//  and count them as synced; else leave that to pz_journal_synced. Returns
//  0, or -1 with errno set after cutting the file back.
static int
s_commit (pz_journal_t *self, bool commit)
{
    if (self->buffer_size == 0)
        return 0;
    bool sync = commit && self->config.sync;
    s_segment_t *segment = &self->segments [self->segment_count - 1];
    if (segment->has_blocks && segment->bytes >= self->config.segment_bytes
    &&  s_rollover (self)) {
        int saved = errno;
        zsys_warning ("journal %s: cannot start a new segment: %s",
                      self->dir, strerror (saved));
        s_drop_staged (self);
        self->failed_commits++;
        errno = saved;
        return -1;
    }
    //  Encoded now, after a rollover if any: each block records how far
    //  its own segment is known synced.
    for (size_t index = 0; index < self->staged_count; index++) {
        s_staged_t *block = &self->staged [index];
        size_t end = index + 1 < self->staged_count ?
                     self->staged [index + 1].offset : self->buffer_size;
        uint8_t *header = self->buffer + block->offset;
        s_block_header_encode (header, header + S_BLOCK_HEADER,
                               (uint32_t) (end - block->offset - S_BLOCK_HEADER),
                               block->first_seq, block->last_seq, block->entries,
                               self->synced);
    }
    segment = &self->segments [self->segment_count - 1];
    size_t written = 0;
    int rc = 0;
    while (written < self->buffer_size) {
        ssize_t bytes = write (self->fd, self->buffer + written, self->buffer_size - written);
        if (bytes < 0 && errno == EINTR)
            continue;
        if (bytes <= 0) {
            if (bytes == 0)
                errno = ENOSPC;
            rc = -1;
            break;
        }
        written += (size_t) bytes;
    }
    if (rc == 0 && sync && fdatasync (self->fd))
        rc = -1;
    if (rc) {
        int saved = errno;
        zsys_warning ("journal %s: commit of %zu bytes failed: %s",
                      self->dir, self->buffer_size, strerror (saved));
        //  Nothing of it stays: cut back to where the block began.
        if (ftruncate (self->fd, segment->bytes) || lseek (self->fd, segment->bytes, SEEK_SET) < 0)
            zsys_error ("journal %s: cannot cut back a failed commit: %s",
                        self->dir, strerror (errno));
        s_drop_staged (self);
        self->failed_commits++;
        errno = saved;
        return -1;
    }
    for (size_t index = 0; index < self->staged_count; index++) {
        const uint8_t *header = self->buffer + self->staged [index].offset;
        s_block_header_t block;
        const char *problem = s_block_header_decode (header, &block);
        assert (!problem);
        char why [160];
        size_t where;
        problem = s_apply_block (self, &block, header + S_BLOCK_HEADER, true, &where,
                                 why, sizeof why);
        if (problem)
            zsys_error ("journal %s: appended entry breaks the rules: %s", self->dir, problem);
        assert (!problem);          //  the broker appended something invalid
    }
    segment->bytes += (int64_t) self->buffer_size;
    segment->has_blocks = true;
    segment->written_s = (int64_t) time (NULL);
    if (commit) {
        self->synced = segment->bytes;
        s_cache_drop (self);
    }
    self->commits++;
    s_drop_staged (self);
    return 0;
}

//  Writes and syncs what was appended (s_commit). Returns 0 or -1.
int
pz_journal_commit (pz_journal_t *self)
{
    assert (self);
    return s_commit (self, true);
}

//  Writes what was appended without syncing it. Returns 0 or -1.
int
pz_journal_write (pz_journal_t *self)
{
    assert (self);
    return s_commit (self, false);
}

//  Returns the write position: the end of the last block written, counted
//  over the segments written since open.
int64_t
pz_journal_written (pz_journal_t *self)
{
    assert (self);
    return self->position_base + self->segments [self->segment_count - 1].bytes;
}

//  Records that a sync started at write position `position` is done:
//  the current segment is durable up to it (unless it is in an older one).
void
pz_journal_synced (pz_journal_t *self, int64_t position)
{
    assert (self);
    int64_t offset = position - self->position_base;
    assert (offset <= self->segments [self->segment_count - 1].bytes);
    if (offset > self->synced) {
        self->synced = offset;
        s_cache_drop (self);
    }
}

//  Returns a dup of the current segment's descriptor, or -1.
int
pz_journal_sync_fd (pz_journal_t *self)
{
    assert (self);
    return dup (self->fd);
}

//  Returns the bytes appended since the last commit, block headers
//  included.
size_t
pz_journal_uncommitted (pz_journal_t *self)
{
    assert (self);
    return self->buffer_size;
}


//  --------------------------------------------------------------------------
//  Deletes the oldest segments past the retention limits, verdicted ones only.

int
pz_journal_retain (pz_journal_t *self)
{
    assert (self);
    if (!self->config.retain_bytes && !self->config.retain_s)
        return 0;
    int64_t total = 0;
    for (size_t index = 0; index < self->segment_count; index++)
        total += self->segments [index].bytes;
    int64_t now = (int64_t) time (NULL);
    size_t deleted = 0;
    while (self->segment_count - deleted > 1) {
        s_segment_t *segment = &self->segments [deleted];
        bool over = self->config.retain_bytes && total > self->config.retain_bytes;
        bool old = self->config.retain_s && now - segment->written_s > self->config.retain_s;
        if (segment->unverdicted > 0 || (!over && !old))
            break;
        char *path = s_segment_path (self->dir, segment->first_seq);
        if (unlink (path) && errno != ENOENT) {
            zsys_warning ("journal %s: cannot delete: %s", path, strerror (errno));
            free (path);
            break;
        }
        zsys_info ("journal %s: deleted (%s)", path, over ? "size" : "age");
        free (path);
        total -= segment->bytes;
        deleted++;
    }
    if (deleted) {
        memmove (self->segments, self->segments + deleted,
                 (self->segment_count - deleted) * sizeof (s_segment_t));
        self->segment_count -= deleted;
    }
    return (int) deleted;
}

//  Fills stats with the journal's counters.
void
pz_journal_stats (pz_journal_t *self, pz_journal_stats_t *stats)
{
    assert (self && stats);
    memset (stats, 0, sizeof *stats);
    for (size_t index = 0; index < self->segment_count; index++)
        stats->bytes += self->segments [index].bytes;
    stats->segments = (int64_t) self->segment_count;
    stats->commits = self->commits;
    stats->failed_commits = self->failed_commits;
    stats->unverdicted = (int64_t) zhashx_size (self->unverdicted);
}


//  --------------------------------------------------------------------------
//  The reader.

//  A block of the segment open for reading, by its header.
typedef struct {
    int64_t first_seq;          //  seq of its first publication
    int64_t last_seq;           //  and of its last
    int64_t offset;             //  where it starts
} s_block_ref_t;

//  An accept in the block the reader keeps for its accepts.
typedef struct {
    int64_t seq;                //  its N publication's seq
    const uint8_t *records;     //  its N records, inside accepts_block
    size_t count;               //  how many
} s_accept_ref_t;

struct _pz_journal_reader_t {
    char *dir;                  //  owned copy of the directory path
    int64_t *segments;          //  first seqs of the segments listed, sorted
    size_t segment_count;       //  how many
    int fd;                     //  the segment open for reading, or -1
    int64_t fd_first_seq;       //  its name
    int64_t resume_seq;         //  *next of the last call (0: none)
    int64_t resume_offset;      //  its block's offset in fd
    uint8_t *window;            //  bytes read from fd, valid within one call
    size_t window_capacity;     //  allocated
    int64_t window_offset;      //  file offset of window [0]
    size_t window_size;         //  valid bytes in window
    bool complained;            //  a damaged block was logged already
    //  For verdicts kept as bits: where the open segment's accepts are.
    s_block_ref_t *blocks;      //  its blocks holding publications, in order
    size_t block_count;         //  how many
    size_t block_capacity;      //  allocated
    int64_t indexed_end;        //  offset up to which blocks were listed
    uint8_t *accepts_block;     //  one block read for its accepts, or NULL
    size_t accepts_block_capacity;  //  allocated
    int64_t accepts_offset;     //  its offset (-1: none)
    s_accept_ref_t *accepts;    //  its accepts, in order
    size_t accept_count;        //  how many
    size_t accept_capacity;     //  allocated
    uint8_t *numbers;           //  a verdict's numbers, gathered from its accepts
};

//  Creates a reader on dir; it opens nothing until the first read.
//  Caller owns return value.
pz_journal_reader_t *
pz_journal_reader_new (const char *dir)
{
    assert (dir);
    pz_journal_reader_t *self = (pz_journal_reader_t *) zmalloc (sizeof (pz_journal_reader_t));
    assert (self);
    self->dir = strdup (dir);
    self->fd = -1;
    self->accepts_offset = -1;
    self->numbers = (uint8_t *) malloc (PZ_RECORDS_MAX * PZ_RECORD_SIZE);
    assert (self->numbers);
    return self;
}

//  Closes the reader's file and frees it. NULL-safe; nulls *self_p.
void
pz_journal_reader_destroy (pz_journal_reader_t **self_p)
{
    assert (self_p);
    pz_journal_reader_t *self = *self_p;
    if (self) {
        if (self->fd >= 0)
            close (self->fd);
        free (self->segments);
        free (self->window);
        free (self->blocks);
        free (self->accepts_block);
        free (self->accepts);
        free (self->numbers);
        free (self->dir);
        free (self);
        *self_p = NULL;
    }
}

//  Lists the directory again: the segments, oldest first.
static void
s_reader_list (pz_journal_reader_t *self)
{
    free (self->segments);
    ssize_t count = s_list_segments (self->dir, &self->segments);
    self->segment_count = count > 0 ? (size_t) count : 0;
}

//  Opens the segment named first_seq. Returns 0 or -1 (deleted meanwhile).
static int
s_reader_open (pz_journal_reader_t *self, int64_t first_seq)
{
    if (self->fd >= 0 && self->fd_first_seq == first_seq)
        return 0;
    if (self->fd >= 0)
        close (self->fd);
    self->window_size = 0;
    self->block_count = 0;          //  what we knew of the last one's blocks
    self->indexed_end = S_SEGMENT_HEADER;
    self->accepts_offset = -1;
    char *path = s_segment_path (self->dir, first_seq);
    self->fd = open (path, O_RDONLY | O_CLOEXEC);
    free (path);
    self->fd_first_seq = first_seq;
    return self->fd < 0 ? -1 : 0;
}

//  Returns true if the file named like the open segment is another file:
//  the writer deleted a segment whose creation failed and made it again.
static bool
s_reader_replaced (pz_journal_reader_t *self)
{
    struct stat open_status, path_status;
    char *path = s_segment_path (self->dir, self->fd_first_seq);
    bool replaced = fstat (self->fd, &open_status) == 0 && stat (path, &path_status) == 0
                 && (open_status.st_ino != path_status.st_ino
                 ||  open_status.st_dev != path_status.st_dev);
    free (path);
    return replaced;
}

//  Makes size bytes at offset available in the window. Returns a pointer to
//  them, or NULL if the file holds fewer (end of file, or being written).
static const uint8_t *
s_reader_fetch (pz_journal_reader_t *self, int64_t offset, size_t size)
{
    if (offset >= self->window_offset
    &&  offset + (int64_t) size <= self->window_offset + (int64_t) self->window_size)
        return self->window + (offset - self->window_offset);
    size_t wanted = size < S_READ_CHUNK ? S_READ_CHUNK : size;
    if (wanted > self->window_capacity) {
        free (self->window);
        self->window = (uint8_t *) malloc (wanted);
        assert (self->window);
        self->window_capacity = wanted;
    }
    self->window_offset = offset;
    self->window_size = 0;
    while (self->window_size < wanted) {
        ssize_t rc = pread (self->fd, self->window + self->window_size,
                            wanted - self->window_size, offset + (int64_t) self->window_size);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        self->window_size += (size_t) rc;
        if (self->window_size >= size)
            break;
    }
    return self->window_size >= size ? self->window : NULL;
}

//  Returns the index of the segment holding seq (0 if it is older than all).
static size_t
s_reader_find (pz_journal_reader_t *self, int64_t seq)
{
    size_t low = 0, high = self->segment_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->segments [middle] <= seq)
            low = middle + 1;
        else
            high = middle;
    }
    return low ? low - 1 : 0;
}

//  Makes room in *array (of *capacity items of item_size bytes) for item
//  count, doubling it (64 items at first).
static void
s_grow (void **array, size_t *capacity, size_t count, size_t item_size)
{
    if (count < *capacity)
        return;
    *capacity = *capacity ? 2 * *capacity : 64;
    *array = realloc (*array, *capacity * item_size);
    assert (*array);
}

//  Lists the open segment's blocks by their headers, from where the last
//  call stopped, until one holds a publication at or after seq or the
//  offset limit is reached (the verdict's own block: its accepts are before
//  it). Blocks without publications are not listed.
static void
s_reader_index (pz_journal_reader_t *self, int64_t seq, int64_t limit)
{
    while (self->indexed_end < limit
    &&  (self->block_count == 0 || self->blocks [self->block_count - 1].last_seq < seq)) {
        uint8_t bytes [S_BLOCK_HEADER];
        s_block_header_t header;
        if (s_pread_full (self->fd, bytes, S_BLOCK_HEADER, self->indexed_end)
        ||  s_block_header_decode (bytes, &header))
            return;                 //  damaged: what is behind it stays unknown
        if (header.first_seq) {
            s_grow ((void **) &self->blocks, &self->block_capacity, self->block_count,
                    sizeof (s_block_ref_t));
            self->blocks [self->block_count++] = (s_block_ref_t) {
                header.first_seq, header.last_seq, self->indexed_end };
        }
        self->indexed_end += S_BLOCK_HEADER + header.payload_bytes;
    }
}

//  Reads the block at offset into accepts_block, checks its CRC, and lists
//  its accepts. Returns 0, or -1 if it cannot be read or is damaged.
static int
s_reader_load_accepts (pz_journal_reader_t *self, int64_t offset)
{
    self->accepts_offset = -1;
    self->accept_count = 0;
    uint8_t bytes [S_BLOCK_HEADER];
    s_block_header_t header;
    if (s_pread_full (self->fd, bytes, S_BLOCK_HEADER, offset)
    ||  s_block_header_decode (bytes, &header))
        return -1;
    //  Grown, never shrunk: a fresh allocation of a large block each time
    //  would be fresh pages each time.
    if (S_BLOCK_HEADER + header.payload_bytes > self->accepts_block_capacity) {
        free (self->accepts_block);
        self->accepts_block_capacity = S_BLOCK_HEADER + header.payload_bytes;
        self->accepts_block = (uint8_t *) malloc (self->accepts_block_capacity);
        assert (self->accepts_block);
    }
    const uint8_t *payload = self->accepts_block + S_BLOCK_HEADER;
    if (s_pread_full (self->fd, self->accepts_block, S_BLOCK_HEADER + header.payload_bytes,
                      offset)
    ||  !s_block_crc_ok (self->accepts_block, &header, payload))
        return -1;
    for (size_t at = 0; at + 4 <= header.payload_bytes; ) {
        uint32_t size = s_get32 (payload + at);
        if (size > header.payload_bytes - at - 4)
            break;
        s_entry_t entry;
        if (!s_entry_parse (payload + at + 4, size, &entry, false)
        &&  entry.kind == S_ENTRY_PUBLICATION && entry.tag == PZ_TAG_NUMBER) {
            s_grow ((void **) &self->accepts, &self->accept_capacity, self->accept_count,
                    sizeof (s_accept_ref_t));
            self->accepts [self->accept_count++] = (s_accept_ref_t) {
                entry.seq, entry.publication, entry.count };
        }
        at += 4 + size;
    }
    self->accepts_offset = offset;
    return 0;
}

//  Finds the accept numbered seq before offset limit in the open segment.
//  Returns its N records and sets *count, or NULL if it is not there.
static const uint8_t *
s_reader_accept (pz_journal_reader_t *self, int64_t seq, int64_t limit, size_t *count)
{
    s_reader_index (self, seq, limit);
    size_t low = 0, high = self->block_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->blocks [middle].last_seq < seq)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == self->block_count || self->blocks [low].first_seq > seq)
        return NULL;
    if (self->accepts_offset != self->blocks [low].offset
    &&  s_reader_load_accepts (self, self->blocks [low].offset))
        return NULL;
    low = 0, high = self->accept_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->accepts [middle].seq < seq)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == self->accept_count || self->accepts [low].seq != seq)
        return NULL;
    *count = self->accepts [low].count;
    return self->accepts [low].records;
}

//  Gathers the numbers of a verdict kept as bits, from the accepts its K
//  records name, into self->numbers. Returns how many, or 0 if an accept
//  is missing or the bits do not fit them (damage: nothing is invented).
static size_t
s_reader_gather (pz_journal_reader_t *self, const s_entry_t *entry, int64_t limit)
{
    size_t total = 0;
    for (size_t index = 0; index < entry->cover_count; index++) {
        size_t count;
        const uint8_t *records = s_reader_accept (
            self, pz_record_value (entry->covers + index * PZ_RECORD_SIZE), limit, &count);
        if (!records || total + count > PZ_RECORDS_MAX)
            return 0;
        memcpy (self->numbers + total * PZ_RECORD_SIZE, records, count * PZ_RECORD_SIZE);
        total += count;
    }
    if (!s_bits_fit (entry, total))
        return 0;
    return total;
}

//  Serves the halves of a verdict kept as bits (in the block at offset)
//  that are wanted: at or after position, before end, of a tag in
//  tag_mask, rebuilt from the accepts its K records name into buf at
//  *written. Returns 0 to go on, 1 when buf is full (*next the half that
//  did not fit) or 2 when a half is at or past end.
static int
s_reader_bits (pz_journal_reader_t *self, const s_entry_t *entry, int64_t offset,
               int64_t position, int64_t end, uint32_t tag_mask,
               uint8_t *buf, size_t buf_size, size_t *written, int64_t *next)
{
    int64_t seqs [2] = { entry->prime_bits ? entry->seq : 0,
                         entry->prime_bits ? entry->c_seq : entry->seq };
    int64_t tag_seqs [2] = { entry->prime_bits ? entry->tag_seq : 0,
                             entry->prime_bits ? entry->c_tag_seq : entry->tag_seq };
    bool wanted [2] = { false, false };
    int stop = 0;
    for (int which = 0; which < 2 && !stop; which++) {
        if (!seqs [which] || seqs [which] < position)
            continue;
        if (seqs [which] >= end)
            stop = 2;
        else
            wanted [which] = (tag_mask & (UINT32_C (1) << ((which ? PZ_TAG_COMPOSITE
                                                                   : PZ_TAG_PRIME) - 'A'))) != 0;
    }
    if (!wanted [0] && !wanted [1])
        return stop;
    size_t total = s_reader_gather (self, entry, offset);
    if (total == 0) {
        if (!self->complained)
            zsys_error ("journal %s/%020" PRId64 S_SUFFIX ": offset %" PRId64 ": verdict "
                        "bits seq %" PRId64 " without their accepts, skipped", self->dir,
                        self->fd_first_seq, offset, entry->seq);
        self->complained = true;
        return stop;
    }
    size_t sizes [2] = { entry->prime_bits * PZ_RECORD_SIZE + PZ_TRAILER_SIZE,
                         (total - entry->prime_bits) * PZ_RECORD_SIZE + PZ_TRAILER_SIZE };
    uint8_t *cursor [2] = { NULL, NULL };
    size_t at = *written;
    for (int which = 0; which < 2; which++)
        if (wanted [which]) {
            if (sizes [which] > buf_size - at) {
                wanted [which] = false;
                if (which == 0)
                    wanted [1] = false;     //  in seq order: P first
                *next = seqs [which];
                stop = 1;
                break;
            }
            cursor [which] = buf + at;
            at += sizes [which];
        }
    uint8_t *starts [2] = { cursor [0], cursor [1] };
    if (wanted [0] || wanted [1])
        pz_verdicts_split (self->numbers, entry->bits, total, cursor);
    for (int which = 0; which < 2; which++)
        if (wanted [which]) {
            pz_publication_trailer (cursor [which], seqs [which], tag_seqs [which]);
            assert (cursor [which] + PZ_TRAILER_SIZE == starts [which] + sizes [which]);
        }
    *written = at;
    return stop;
}

//  Copies the wanted publications of [from, until), up to durable_end, in
//  seq order, as many whole ones as fit. Sets *next and *oldest. Returns
//  the bytes copied.
size_t
pz_journal_reader_read (pz_journal_reader_t *self, int64_t from, int64_t until,
                        int64_t durable_end, uint32_t tag_mask,
                        uint8_t *buf, size_t buf_size, int64_t *next, int64_t *oldest)
{
    assert (self && buf && next && oldest);
    assert (from >= 1 && until >= 0);
    self->window_size = 0;          //  bytes past durable_end may have changed
    //  Re-list when we know nothing, or the oldest segment was deleted.
    bool listed = false;
    if (self->segment_count) {
        char *path = s_segment_path (self->dir, self->segments [0]);
        if (access (path, F_OK) != 0) {
            s_reader_list (self);
            listed = true;
        }
        free (path);
    }
    else {
        s_reader_list (self);
        listed = true;
    }
    *oldest = self->segment_count && self->segments [0] <= durable_end ?
              self->segments [0] : durable_end + 1;
    int64_t end = durable_end + 1;
    if (until && until < end)
        end = until;
    *next = from;
    if (from >= end || !self->segment_count)
        return 0;
    *next = end;                    //  unless we stop early below
    int64_t position = from < *oldest ? *oldest : from;

    //  Where to start: where the last call stopped, if this one continues it.
    int64_t offset = S_SEGMENT_HEADER;
    size_t index;
    if (self->resume_seq && self->resume_seq == from && self->fd >= 0) {
        offset = self->resume_offset;
        for (index = 0; index < self->segment_count
                        && self->segments [index] != self->fd_first_seq; index++);
        if (index == self->segment_count) {
            //  Our segment vanished from the listing: go on from a fresh one.
            s_reader_list (self);
            listed = true;
            index = s_reader_find (self, position);
            offset = S_SEGMENT_HEADER;
        }
    }
    else
        index = s_reader_find (self, position);
    if (offset == S_SEGMENT_HEADER && s_reader_open (self, self->segments [index]) != 0) {
        if (!listed)
            s_reader_list (self);
        if (!self->segment_count)
            return 0;
        index = s_reader_find (self, position);
        if (s_reader_open (self, self->segments [index]) != 0)
            return 0;
    }
    size_t written = 0;
    self->resume_seq = 0;
    while (true) {
        const uint8_t *bytes = s_reader_fetch (self, offset, S_BLOCK_HEADER);
        s_block_header_t header;
        const char *problem = bytes ? s_block_header_decode (bytes, &header) : "end";
        if (!problem && header.first_seq >= end)
            break;                  //  nothing more wanted (or durable)
        if (!bytes && s_reader_replaced (self)) {
            int64_t current = self->fd_first_seq;
            close (self->fd);
            self->fd = -1;
            if (s_reader_open (self, current) != 0)
                break;
            continue;               //  same name, same offset, the new file
        }
        if (problem) {
            //  End of this segment: on to the next, listing again if this
            //  was the last we knew of (the writer may have started one).
            if (bytes && !self->complained) {
                zsys_error ("journal %s/%020" PRId64 S_SUFFIX ": offset %" PRId64
                            ": %s, rest of segment skipped", self->dir,
                            self->fd_first_seq, offset, problem);
                self->complained = true;
            }
            int64_t current = self->fd_first_seq;
            if (index + 1 >= self->segment_count
            ||  self->segments [index] != current) {
                s_reader_list (self);
                for (index = 0; index < self->segment_count
                                && self->segments [index] <= current; index++);
                if (index == self->segment_count)
                    break;          //  no newer segment: nothing more is there
            }
            else
                index++;
            if (s_reader_open (self, self->segments [index]) != 0)
                break;
            offset = S_SEGMENT_HEADER;
            continue;
        }
        if (header.last_seq < position) {
            offset += S_BLOCK_HEADER + header.payload_bytes;
            continue;               //  the fast path: skipped by its header
        }
        bytes = s_reader_fetch (self, offset, S_BLOCK_HEADER + header.payload_bytes);
        if (!bytes || !s_block_crc_ok (bytes, &header, bytes + S_BLOCK_HEADER)) {
            if (!self->complained)
                zsys_error ("journal %s/%020" PRId64 S_SUFFIX ": offset %" PRId64
                            ": damaged block skipped", self->dir, self->fd_first_seq, offset);
            self->complained = true;
            offset += S_BLOCK_HEADER + header.payload_bytes;
            continue;
        }
        const uint8_t *payload = bytes + S_BLOCK_HEADER;
        bool full = false, ended = false;
        for (size_t at = 0; at + 4 <= header.payload_bytes; ) {
            uint32_t size = s_get32 (payload + at);
            if (size > header.payload_bytes - at - 4)
                break;
            s_entry_t entry;
            const char *bad = s_entry_parse (payload + at + 4, size, &entry, false);
            at += 4 + size;
            if (!bad && entry.kind == S_ENTRY_BITS) {
                if (entry.last_seq < position)
                    continue;
                int stop = s_reader_bits (self, &entry, offset, position, end, tag_mask,
                                          buf, buf_size, &written, next);
                if (stop) {
                    full = stop == 1;
                    ended = stop == 2;
                    break;
                }
                continue;
            }
            if (bad || entry.seq < position)
                continue;
            if (entry.seq >= end) {
                ended = true;       //  until cut this block: the next call
                break;              //  that goes on from it starts here
            }
            if (!(tag_mask & (UINT32_C (1) << (entry.tag - 'A'))))
                continue;
            if (entry.publication_size > buf_size - written) {
                full = true;
                *next = entry.seq;
                break;
            }
            memcpy (buf + written, entry.publication, entry.publication_size);
            written += entry.publication_size;
        }
        if (full || ended) {
            self->resume_seq = *next;
            self->resume_offset = offset;
            return written;
        }
        offset += S_BLOCK_HEADER + header.payload_bytes;
        if (header.last_seq >= end - 1)
            break;
    }
    self->resume_seq = *next;
    self->resume_offset = offset;
    return written;
}

//  Appends the ranges of an accepted request: [I request-id] A acked W key
//  and its range records, in order.
void
pz_journal_ranges (pz_journal_t *self, int64_t request_id, int64_t acked,
                   int64_t first_key, const uint8_t *records, size_t count)
{
    assert (self && records && first_key >= 1);
    size_t bounds = 0;
    for (size_t index = 0; index < count; index++)
        bounds += pz_record_tag (records + index * PZ_RECORD_SIZE) != PZ_TAG_NUMBER;
    assert (bounds >= 2 && bounds % 2 == 0);
    size_t prefix = (request_id ? 3 : 2) * PZ_RECORD_SIZE;
    uint8_t *data = s_entry_stage (self, prefix + bounds * PZ_RECORD_SIZE, 0);
    if (request_id)
        pz_record_encode (data, PZ_TAG_ID, request_id);
    pz_record_encode (data + prefix - 2 * PZ_RECORD_SIZE, S_TAG_ACKED, acked);
    pz_record_encode (data + prefix - PZ_RECORD_SIZE, S_TAG_KEY, first_key);
    uint8_t *cursor = data + prefix;
    for (size_t index = 0; index < count; index++)
        if (pz_record_tag (records + index * PZ_RECORD_SIZE) != PZ_TAG_NUMBER) {
            memcpy (cursor, records + index * PZ_RECORD_SIZE, PZ_RECORD_SIZE);
            cursor += PZ_RECORD_SIZE;
        }
}

//  Appends a piece done, W key (R|Q) lo hi count, then its publications,
//  all in one block so that a cut never splits them.
void
pz_journal_piece (pz_journal_t *self, int64_t key, char tag, int64_t lo,
                  int64_t hi, int64_t count, const uint8_t *publications, size_t size)
{
    assert (self && (publications || size == 0));
    size_t entries = 1;
    for (size_t at = 0, one; at < size; at += one, entries++) {
        one = pz_publication_next (publications + at, size - at);
        assert (one > 0);
    }
    s_block_room (self, 4 * entries + 4 * PZ_RECORD_SIZE + size);
    uint8_t *data = s_entry_stage (self, 4 * PZ_RECORD_SIZE, 0);
    pz_record_encode (data, S_TAG_KEY, key);
    pz_record_encode (data + PZ_RECORD_SIZE, tag, lo);
    pz_record_encode (data + 2 * PZ_RECORD_SIZE, tag, hi);
    pz_record_encode (data + 3 * PZ_RECORD_SIZE, tag, count);
    while (size > 0) {
        size_t one = pz_publication_next (publications, size);
        assert (one > 0);
        char published = pz_record_tag (publications);
        int64_t seq = s_publication_check (self, publications, one, published);
        memcpy (s_entry_stage (self, one, seq), publications, one);
        publications += one;
        size -= one;
    }
}

//  Orders pointers to ranges by key, for qsort.
static int
s_range_compare (const void *left, const void *right)
{
    int64_t a = (*(s_range_t * const *) left)->key;
    int64_t b = (*(s_range_t * const *) right)->key;
    return (a > b) - (a < b);
}

//  Calls range_fn for each range not done, by key, then piece_fn for each
//  of its pieces done; frees the pieces.
void
pz_journal_take_ranges (pz_journal_t *self, pz_journal_range_fn *range_fn,
                        pz_journal_piece_fn *piece_fn, void *arg)
{
    assert (self && range_fn && piece_fn);
    size_t count = zhashx_size (self->ranges);
    s_range_t **list = (s_range_t **) malloc ((count + 1) * sizeof (s_range_t *));
    assert (list);
    size_t index = 0;
    for (s_range_t *range = (s_range_t *) zhashx_first (self->ranges); range;
         range = (s_range_t *) zhashx_next (self->ranges))
        list [index++] = range;
    qsort (list, count, sizeof (s_range_t *), s_range_compare);
    for (index = 0; index < count; index++) {
        s_range_t *range = list [index];
        range_fn (arg, range->key, range->tag, range->lo, range->hi);
        for (size_t piece = 0; piece < range->piece_count; piece++)
            piece_fn (arg, range->key, range->pieces [3 * piece],
                      range->pieces [3 * piece + 1], range->pieces [3 * piece + 2]);
        free (range->pieces);
        range->pieces = NULL;
        range->piece_count = range->piece_capacity = 0;
    }
    free (list);
}

//  Returns 1 + the largest range key the journal holds (1 if none).
int64_t
pz_journal_next_key (pz_journal_t *self)
{
    assert (self);
    return self->next_key;
}
