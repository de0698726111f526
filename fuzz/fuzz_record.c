/*  =========================================================================
    fuzz_record - frame validation (proto/record.c): pz_record_check

    Every message every PlayØMQ socket reads passes pz_record_check first.
    The first input byte and the input's length pick the set of tags the
    endpoint accepts (each bit one tag of PZ_TAGS_KNOWN, "NPCAEISTHXRQV");
    the rest is the frame. The answer is
    compared with a plain record-by-record walk of proto/PROTOCOL.md's rules
    (lowest-numbered check first), so the fast path's bit tricks must agree
    with the obvious reading, and the accessors must round-trip.
    =========================================================================
*/
#include "fuzz.h"
#include "record.h"

//  The rules as written: length, count, then each record in order.
static pz_error_t
s_reference_check (const uint8_t *data, size_t size, const char *accepted)
{
    if (size == 0 || size % PZ_RECORD_SIZE != 0)
        return PZ_ERR_LENGTH;
    size_t records = size / PZ_RECORD_SIZE;
    size_t counted = data [0] == PZ_TAG_ID ? records - 1 : records;
    if (counted > PZ_RECORDS_MAX)
        return PZ_ERR_TOO_MANY;
    for (size_t index = 0; index < records; index++) {
        char tag = (char) data [index * PZ_RECORD_SIZE];
        if (tag == '\0' || !strchr (PZ_TAGS_KNOWN, tag))
            return PZ_ERR_UNKNOWN_TAG;
        if (!strchr (accepted, tag))
            return PZ_ERR_TAG_REFUSED;
        if (tag == PZ_TAG_ID && (index > 0 || records == 1))
            return PZ_ERR_ID_PLACEMENT;
    }
    return PZ_OK;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    //  One bit per known tag: the first byte's eight, then the low bits of
    //  the input's length.
    char accepted [32];
    size_t length = 0;
    unsigned bits = data [0] | (unsigned) (size & 0xff) << 8;
    for (size_t index = 0; index < strlen (PZ_TAGS_KNOWN) && index < 16; index++)
        if (bits & (1u << index))
            accepted [length++] = PZ_TAGS_KNOWN [index];
    accepted [length] = '\0';
    const uint8_t *frame = data + 1;
    size_t frame_size = size - 1;
    //  A copy of the exact size, so that ASan sees any read past the frame.
    uint8_t *copy = (uint8_t *) malloc (frame_size ? frame_size : 1);
    PZ_FUZZ_CHECK (copy);
    memcpy (copy, frame, frame_size);
    pz_error_t fast = pz_record_check (frame_size ? copy : NULL, frame_size, accepted);
    pz_error_t slow = s_reference_check (copy, frame_size, accepted);
    PZ_FUZZ_CHECK (fast == slow);
    PZ_FUZZ_CHECK (strlen (pz_error_str (fast)) > 0);
    if (fast == PZ_OK)
        for (size_t at = 0; at < frame_size; at += PZ_RECORD_SIZE) {
            uint8_t again [PZ_RECORD_SIZE];
            pz_record_encode (again, pz_record_tag (copy + at), pz_record_value (copy + at));
            PZ_FUZZ_CHECK (memcmp (again, copy + at, PZ_RECORD_SIZE) == 0);
            PZ_FUZZ_CHECK (pz_record_tag_known (pz_record_tag (copy + at)));
        }
    free (copy);
    return 0;
}
