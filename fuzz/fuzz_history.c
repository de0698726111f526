/*  =========================================================================
    fuzz_history - the history request parser (broker/history.c)

    What a sink (or anyone who can connect) sends the history endpoint:
    pz_history_parse, the function the history thread answers every request
    with. The input is the request frame. Checked: an accepted request is
    what proto/PROTOCOL.md "History" allows (from >= 1, until 0 or >= from,
    1 to PZ_TAG_COUNT distinct published tags), and a refusal is a defined
    error code.
    =========================================================================
*/
#include "fuzz.h"
#include "history.h"
#include "publication.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    PZ_FUZZ_CHECK (copy);
    memcpy (copy, data, size);
    int64_t from = -1, until = -1;
    char tags [PZ_TAG_COUNT] = { 0 };
    int tag_count = -1;
    pz_error_t error = pz_history_parse (size ? copy : NULL, size, &from, &until,
                                         tags, &tag_count);
    PZ_FUZZ_CHECK (error >= PZ_OK && error <= PZ_ERR_MAX);
    if (error == PZ_OK) {
        PZ_FUZZ_CHECK (size >= 3 * PZ_RECORD_SIZE
                       && size <= (2 + PZ_TAG_COUNT) * PZ_RECORD_SIZE);
        PZ_FUZZ_CHECK (from >= 1 && (until == 0 || until >= from));
        PZ_FUZZ_CHECK (tag_count >= 1 && tag_count <= PZ_TAG_COUNT);
        PZ_FUZZ_CHECK ((size_t) tag_count == size / PZ_RECORD_SIZE - 2);
        for (int index = 0; index < tag_count; index++) {
            PZ_FUZZ_CHECK (pz_publication_tag_index (tags [index]) >= 0);
            for (int other = 0; other < index; other++)
                PZ_FUZZ_CHECK (tags [other] != tags [index]);
        }
    }
    free (copy);
    return 0;
}
