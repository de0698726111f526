/*  =========================================================================
    publication - what the broker publishes: records of one tag and a
                  trailer of two sequence numbers

    Every message on the publish and history endpoints is 1 to
    PZ_RECORDS_MAX data records of one tag (N, P or C), then the trailer
    `S <seq>` `T <tag-seq>`: seq numbers every publication of every tag, and
    tag-seq the publications of that tag alone, so a sink that subscribes to
    some tags can tell a message it missed from one it never asked for
    (proto/PROTOCOL.md, "Sequence numbers"). This module checks a received
    publication and writes a trailer; like record.c it never allocates and
    never asserts on wire data.
    =========================================================================
*/
#ifndef PZ_PUBLICATION_H_INCLUDED
#define PZ_PUBLICATION_H_INCLUDED

#include "record.h"

//  Bytes of the trailer, and of the largest publication (a correction's
//  X record, 4096 verdicts, the trailer).
#define PZ_TRAILER_SIZE         (2 * PZ_RECORD_SIZE)
#define PZ_PUBLICATION_MAX      (PZ_RECORD_SIZE * (PZ_RECORDS_MAX + 1) + PZ_TRAILER_SIZE)

//  The tags a publication may have, and how many. A correction (X) is the
//  one publication whose records are not all of its tag: `X <seq>` heads
//  it, naming the publication it corrects, and P and C records follow
//  with the verdicts that publication got wrong, set right. An R
//  publication is a range's announcement: exactly R lo, R hi, R count.
#define PZ_TAGS_PUBLISHED       "NPCXR"
#define PZ_TAG_COUNT            5

//  Records in an R announcement: R lo, R hi, R count (proto/PROTOCOL.md).
#define PZ_ANNOUNCEMENT_RECORDS 3

//  Returns the index of a published tag in PZ_TAGS_PUBLISHED (N 0, P 1,
//  C 2, X 3, R 4), or -1 for any other byte: for what is kept per tag
//  (tag-seqs, counters).
static inline int
pz_publication_tag_index (char tag)
{
    return tag == PZ_TAG_NUMBER ? 0 : tag == PZ_TAG_PRIME ? 1
         : tag == PZ_TAG_COMPOSITE ? 2 : tag == PZ_TAG_CORRECTION ? 3
         : tag == PZ_TAG_RANGE ? 4 : -1;
}

//  A publication, as read by pz_publication_parse. data points into the
//  message it was parsed from.
typedef struct {
    char tag;                   //  the data records' tag
    const uint8_t *records;     //  the first data record
    size_t count;               //  data records, 1 to PZ_RECORDS_MAX
    int64_t seq;                //  its sequence number, >= 1
    int64_t tag_seq;            //  its number among its tag's, >= 1
} pz_publication_t;

//  Checks that the size bytes at data are one publication: data records of
//  one tag from PZ_TAGS_PUBLISHED (for X: one X record with a positive
//  value, then P and C records), then S and T with values from 1 to
//  2^63 - 2 (INT64_MAX is refused: a reader adds one to them).
//  Returns PZ_OK and fills *publication, or the error code that names the
//  first problem (length, count, unknown or refused tag, a missing or
//  misplaced trailer: PZ_ERR_TAG_REFUSED).
pz_error_t
    pz_publication_parse (const uint8_t *data, size_t size,
                          pz_publication_t *publication);

//  Writes the trailer S seq, T tag_seq into the PZ_TRAILER_SIZE bytes at dest.
static inline void
pz_publication_trailer (uint8_t *dest, int64_t seq, int64_t tag_seq)
{
    pz_record_encode (dest, PZ_TAG_SEQ, seq);
    pz_record_encode (dest + PZ_RECORD_SIZE, PZ_TAG_TAG_SEQ, tag_seq);
}

//  Returns the size of the first publication in the size bytes at data (a
//  run of records ending with its S and T records), or 0 if there is none
//  there: for splitting a frame that holds several, as history replies do.
size_t
    pz_publication_next (const uint8_t *data, size_t size);

#endif
