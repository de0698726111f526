/*  =========================================================================
    fuzz_publication - the publication parser (proto/publication.c)

    What a sink reads from the publish socket and from history replies:
    pz_publication_parse checks one publication (data records of one tag,
    then S and T; a correction X <seq> then P and C records; an
    announcement R lo, R hi, R count), pz_publication_next splits a run of
    them. The input is the frame. Checked: a parsed publication is exactly
    what the protocol says (sizes, its tag's records, seqs from 1 to
    2^63 - 2, records inside the frame), and splitting never runs past the
    frame.
    =========================================================================
*/
#include "fuzz.h"
#include "publication.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A copy of the exact size, so that ASan sees any read past the frame.
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    PZ_FUZZ_CHECK (copy);
    memcpy (copy, data, size);
    pz_publication_t publication;
    pz_error_t error = pz_publication_parse (size ? copy : NULL, size, &publication);
    PZ_FUZZ_CHECK (error >= PZ_OK && error <= PZ_ERR_MAX);
    if (error == PZ_OK) {
        bool correction = publication.tag == PZ_TAG_CORRECTION;
        PZ_FUZZ_CHECK (publication.count >= 1
                       && publication.count <= PZ_RECORDS_MAX + (correction ? 1u : 0u));
        PZ_FUZZ_CHECK ((publication.count + 2) * PZ_RECORD_SIZE == size);
        PZ_FUZZ_CHECK (publication.records == copy);
        PZ_FUZZ_CHECK (publication.seq >= 1 && publication.tag_seq >= 1);
        PZ_FUZZ_CHECK (publication.seq < INT64_MAX && publication.tag_seq < INT64_MAX);
        PZ_FUZZ_CHECK (pz_publication_tag_index (publication.tag) >= 0);
        if (correction) {
            //  X <seq corrected >= 1>, then at least one P or C.
            PZ_FUZZ_CHECK (publication.count >= 2 && pz_record_value (copy) >= 1);
            for (size_t index = 1; index < publication.count; index++) {
                char verdict = pz_record_tag (copy + index * PZ_RECORD_SIZE);
                PZ_FUZZ_CHECK (verdict == PZ_TAG_PRIME || verdict == PZ_TAG_COMPOSITE);
            }
        }
        else
        for (size_t index = 0; index < publication.count; index++)
            PZ_FUZZ_CHECK (pz_record_tag (copy + index * PZ_RECORD_SIZE) == publication.tag);
        if (publication.tag == PZ_TAG_RANGE)
            PZ_FUZZ_CHECK (publication.count == PZ_ANNOUNCEMENT_RECORDS);
        //  The trailer reads back as pz_publication_trailer writes it.
        uint8_t trailer [PZ_TRAILER_SIZE];
        pz_publication_trailer (trailer, publication.seq, publication.tag_seq);
        PZ_FUZZ_CHECK (memcmp (trailer, copy + size - PZ_TRAILER_SIZE, PZ_TRAILER_SIZE) == 0);
    }
    //  Split the frame as s_fill does a history reply.
    size_t offset = 0;
    while (offset < size) {
        size_t length = pz_publication_next (copy + offset, size - offset);
        if (length == 0)
            break;
        PZ_FUZZ_CHECK (length % PZ_RECORD_SIZE == 0 && length <= size - offset);
        PZ_FUZZ_CHECK (length >= PZ_TRAILER_SIZE);
        pz_error_t part = pz_publication_parse (copy + offset, length, &publication);
        if (part == PZ_OK)
            PZ_FUZZ_CHECK (publication.records == copy + offset);
        offset += length;
    }
    free (copy);
    return 0;
}
