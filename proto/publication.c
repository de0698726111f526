/*  =========================================================================
    publication - what the broker publishes: records of one tag and a
                  trailer of two sequence numbers

    Checked on every message a sink receives, so the walk over the data
    records is one comparison per record against the first tag.
    =========================================================================
*/
#include "publication.h"

#include <assert.h>

//  True for the common case, checked with one comparison per record: an
//  N, P or C publication (at least one data record, all of its first tag)
//  and its S T trailer. Anything else takes the full walk, which names the
//  first problem in the documented order.
static bool
s_plain (const uint8_t *data, size_t records)
{
    if (records < 3)
        return false;
    char tag = pz_record_tag (data);
    if (tag != PZ_TAG_NUMBER && tag != PZ_TAG_PRIME && tag != PZ_TAG_COMPOSITE)
        return false;
    size_t count = records - 2;
    for (size_t index = 1; index < count; index++)
        if (pz_record_tag (data + index * PZ_RECORD_SIZE) != tag)
            return false;
    const uint8_t *trailer = data + count * PZ_RECORD_SIZE;
    return pz_record_tag (trailer) == PZ_TAG_SEQ
        && pz_record_tag (trailer + PZ_RECORD_SIZE) == PZ_TAG_TAG_SEQ;
}

//  Checks the trailer's values of a publication whose tags are right and
//  fills *publication. Returns PZ_OK or PZ_ERR_TAG_REFUSED.
static pz_error_t
s_finish (const uint8_t *data, size_t records, pz_publication_t *publication)
{
    size_t count = records - 2;
    const uint8_t *trailer = data + count * PZ_RECORD_SIZE;
    char tag = pz_record_tag (data);
    int64_t seq = pz_record_value (trailer);
    int64_t tag_seq = pz_record_value (trailer + PZ_RECORD_SIZE);
    //  1 to 2^63 - 2: one more than any of them must still be a seq.
    if (seq < 1 || tag_seq < 1 || seq == INT64_MAX || tag_seq == INT64_MAX)
        return PZ_ERR_TAG_REFUSED;
    *publication = (pz_publication_t) {
        .tag = tag, .records = data, .count = count, .seq = seq, .tag_seq = tag_seq
    };
    return PZ_OK;
}

//  Checks one publication. Returns PZ_OK and fills *publication, or the
//  code of the first problem.
pz_error_t
pz_publication_parse (const uint8_t *data, size_t size, pz_publication_t *publication)
{
    assert (publication);
    if (size == 0 || size % PZ_RECORD_SIZE != 0)
        return PZ_ERR_LENGTH;
    assert (data);
    size_t records = size / PZ_RECORD_SIZE;
    //  Data records and the trailer; a correction's X record on top.
    if (records > PZ_RECORDS_MAX + 2 + (pz_record_tag (data) == PZ_TAG_CORRECTION))
        return PZ_ERR_TOO_MANY;
    if (s_plain (data, records))
        return s_finish (data, records, publication);
    //  Unknown tags anywhere come first, as in pz_record_check.
    for (size_t index = 0; index < records; index++)
        if (!pz_record_tag_known (pz_record_tag (data + index * PZ_RECORD_SIZE)))
            return PZ_ERR_UNKNOWN_TAG;
    if (records < 3)
        return PZ_ERR_TAG_REFUSED;      //  no room for data and a trailer
    char tag = pz_record_tag (data);
    if (pz_publication_tag_index (tag) < 0)
        return PZ_ERR_TAG_REFUSED;
    size_t count = records - 2;
    if (tag == PZ_TAG_CORRECTION) {
        //  X <seq corrected>, then at least one verdict set right.
        if (count < 2 || pz_record_value (data) < 1)
            return PZ_ERR_TAG_REFUSED;
        for (size_t index = 1; index < count; index++) {
            char verdict = pz_record_tag (data + index * PZ_RECORD_SIZE);
            if (verdict != PZ_TAG_PRIME && verdict != PZ_TAG_COMPOSITE)
                return PZ_ERR_TAG_REFUSED;
        }
    }
    else
    for (size_t index = 1; index < count; index++)
        if (pz_record_tag (data + index * PZ_RECORD_SIZE) != tag)
            return PZ_ERR_TAG_REFUSED;
    if (tag == PZ_TAG_RANGE && count != PZ_ANNOUNCEMENT_RECORDS)
        return PZ_ERR_TAG_REFUSED;      //  an announcement is R lo, R hi, R count
    const uint8_t *trailer = data + count * PZ_RECORD_SIZE;
    if (pz_record_tag (trailer) != PZ_TAG_SEQ
    ||  pz_record_tag (trailer + PZ_RECORD_SIZE) != PZ_TAG_TAG_SEQ)
        return PZ_ERR_TAG_REFUSED;
    return s_finish (data, records, publication);
}

//  Returns the size of the first publication at data, or 0 if none.
size_t
pz_publication_next (const uint8_t *data, size_t size)
{
    size_t records = size / PZ_RECORD_SIZE;
    for (size_t index = 0; index + 1 < records; index++)
        if (pz_record_tag (data + index * PZ_RECORD_SIZE) == PZ_TAG_SEQ)
            return pz_record_tag (data + (index + 1) * PZ_RECORD_SIZE) == PZ_TAG_TAG_SEQ
                 ? (index + 2) * PZ_RECORD_SIZE : 0;
    return 0;
}
