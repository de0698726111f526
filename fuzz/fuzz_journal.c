/*  =========================================================================
    fuzz_journal - the journal reader (broker/journal.c): recovery at open
                   and the history reader, on segment files of any bytes

    The input's bytes become segment files in a temporary directory; the
    journal must open them (cutting an unsynced tail) or refuse them with
    one error line, never crash, and the reader must serve only whole,
    valid publications out of them. The first byte sets:

      bit 0  the segment header's CRC is fixed up     (so the fuzzer gets
      bit 1  every block's CRC is fixed up             past the checksums)
      bit 2  the bytes are two segments: a 2-byte split point and the
             second's name (8 bytes) come first
      bit 3  a valid segment header (first seq 1, tag-seqs 0) is put in
             front of the first segment's bytes

    Checked: the reader's output is a run of valid publications of the
    wanted seqs and tags, within its buffer; an open that fails says why;
    a journal that opened takes a new accept, and opens again after it
    with the seq it was given next (what recovery cut stays cut).
    =========================================================================
*/
#include "fuzz.h"
#include "journal.h"
#include "publication.h"

#include <dirent.h>
#include <inttypes.h>
#include <unistd.h>

#define S_HEADER        96          //  a segment header's bytes
#define S_HEADER_CRC    92          //  where its CRC is (of the bytes before)
#define S_BLOCK         40          //  a block header's bytes
#define S_BUFFER        (64 * 1024) //  the reader's buffer: small, to fill it

static char s_dir [256];            //  the journal directory

static void s_remove_dir (void);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    pz_fuzz_quiet ();
    const char *base = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf (s_dir, sizeof s_dir, "%s/pz-fuzz-journal-XXXXXX", base);
    PZ_FUZZ_CHECK (mkdtemp (s_dir));
    atexit (s_remove_dir);
    return 0;
}

static void
s_put32 (uint8_t *dest, uint32_t value)
{
    for (int index = 0; index < 4; index++)
        dest [index] = (uint8_t) (value >> (8 * index));
}

static uint32_t
s_get32 (const uint8_t *src)
{
    return (uint32_t) src [0] | (uint32_t) src [1] << 8
         | (uint32_t) src [2] << 16 | (uint32_t) src [3] << 24;
}

//  Fixes up the CRCs the flags ask for, in place.
static void
s_fix (uint8_t *segment, size_t size, uint8_t flags)
{
    if ((flags & 1) && size >= S_HEADER)
        s_put32 (segment + S_HEADER_CRC, pz_journal_crc32c (0, segment, S_HEADER_CRC));
    if (!(flags & 2))
        return;
    size_t offset = S_HEADER;
    while (offset + S_BLOCK <= size && memcmp (segment + offset, "PZBK", 4) == 0) {
        uint32_t payload = s_get32 (segment + offset + 4);
        if (payload > size - offset - S_BLOCK)
            break;
        uint32_t crc = pz_journal_crc32c (0, segment + offset, 36);
        crc = pz_journal_crc32c (crc, segment + offset + S_BLOCK, payload);
        s_put32 (segment + offset + 36, crc);
        offset += S_BLOCK + payload;
    }
}

//  Writes one segment file named first_seq.
static void
s_write_segment (int64_t first_seq, const uint8_t *bytes, size_t size)
{
    char path [512];
    snprintf (path, sizeof path, "%s/%020" PRId64 ".pzj", s_dir, first_seq);
    FILE *file = fopen (path, "w");
    PZ_FUZZ_CHECK (file);
    PZ_FUZZ_CHECK (fwrite (bytes, 1, size, file) == size);
    fclose (file);
}

//  Empties the directory.
static void
s_clear (void)
{
    DIR *handle = opendir (s_dir);
    PZ_FUZZ_CHECK (handle);
    struct dirent *entry;
    while ((entry = readdir (handle))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [512];
        snprintf (path, sizeof path, "%s/%s", s_dir, entry->d_name);
        unlink (path);
    }
    closedir (handle);
}

//  Removes the directory at exit.
static void
s_remove_dir (void)
{
    s_clear ();
    rmdir (s_dir);
}

//  Reads every publication of tag_mask from seq 1 on, a buffer at a time
//  as the history thread does, and checks what comes out.
static void
s_read_all (uint32_t tag_mask)
{
    pz_journal_reader_t *reader = pz_journal_reader_new (s_dir);
    PZ_FUZZ_CHECK (reader);
    uint8_t *buffer = (uint8_t *) malloc (S_BUFFER);
    PZ_FUZZ_CHECK (buffer);
    int64_t from = 1;
    const int64_t durable_end = INT64_C (1) << 40;
    for (int calls = 0; calls < 64; calls++) {
        int64_t next, oldest;
        size_t used = pz_journal_reader_read (reader, from, 0, durable_end, tag_mask,
                                              buffer, S_BUFFER, &next, &oldest);
        PZ_FUZZ_CHECK (used <= S_BUFFER);
        PZ_FUZZ_CHECK (oldest >= 1 && next >= from);
        size_t offset = 0;
        while (offset < used) {
            size_t length = pz_publication_next (buffer + offset, used - offset);
            pz_publication_t publication;
            PZ_FUZZ_CHECK (length > 0);
            PZ_FUZZ_CHECK (pz_publication_parse (buffer + offset, length, &publication)
                           == PZ_OK);
            PZ_FUZZ_CHECK (publication.seq >= from && publication.seq < next);
            PZ_FUZZ_CHECK (tag_mask & (UINT32_C (1) << (publication.tag - 'A')));
            offset += length;
        }
        if (next <= from || next > durable_end)
            break;
        from = next;
    }
    free (buffer);
    pz_journal_reader_destroy (&reader);
}

//  Counts accepts handed back without a verdict, checking each.
static void
s_pending (void *arg, int64_t seq, int64_t request_id, const uint8_t *records, size_t count)
{
    (void) request_id;
    PZ_FUZZ_CHECK (seq >= 1 && records && count >= 1 && count <= PZ_RECORDS_MAX);
    for (size_t index = 0; index < count; index++)
        PZ_FUZZ_CHECK (pz_record_tag (records + index * PZ_RECORD_SIZE) == PZ_TAG_NUMBER);
    (*(size_t *) arg)++;
}

static void
s_recent (void *arg, int64_t request_id, int64_t count)
{
    PZ_FUZZ_CHECK (request_id != 0 && count >= 1 && count <= PZ_RECORDS_MAX);
    (*(size_t *) arg)++;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    pz_fuzz_input_t input = { data, size, 0 };
    uint8_t flags = pz_fuzz_byte (&input);
    size_t split = SIZE_MAX;
    int64_t second_name = 0;
    if (flags & 4) {
        split = pz_fuzz_length (&input, SIZE_MAX);
        second_name = pz_fuzz_int64 (&input);
        if (second_name < 2 || second_name > INT64_C (1) << 50)
            second_name = 2 + (second_name & 0xFFFF);
    }
    size_t got;
    const uint8_t *bytes = pz_fuzz_bytes (&input, size, &got);
    size_t header = flags & 8 ? S_HEADER : 0;
    uint8_t *files = (uint8_t *) malloc (header + got + 1);
    PZ_FUZZ_CHECK (files);
    if (header) {
        memset (files, 0, S_HEADER);
        memcpy (files, "PZJOURNL", 8);
        s_put32 (files + 8, PZ_JOURNAL_VERSION);
        s_put32 (files + 12, S_HEADER);
        files [16] = 1;                 //  first seq 1, little-endian
        s_put32 (files + S_HEADER_CRC, pz_journal_crc32c (0, files, S_HEADER_CRC));
    }
    memcpy (files + header, bytes, got);
    size_t total = header + got;
    size_t first_size = split < total ? split : total;

    s_clear ();
    s_fix (files, first_size, flags);
    s_write_segment (1, files, first_size);
    if (flags & 4) {
        s_fix (files + first_size, total - first_size, flags);
        s_write_segment (second_name, files + first_size, total - first_size);
    }

    //  The history reader first, on the files as they are.
    s_read_all ((UINT32_C (1) << ('N' - 'A')) | (UINT32_C (1) << ('P' - 'A'))
                | (UINT32_C (1) << ('C' - 'A')));
    s_read_all (UINT32_C (1) << ('P' - 'A'));

    pz_journal_config_t config;
    pz_journal_config_init (&config);
    config.dir = s_dir;
    config.sync = false;
    config.recent_requests = 16;
    char *error = NULL;
    pz_journal_t *journal = pz_journal_open (&config, &error);
    if (!journal) {
        PZ_FUZZ_CHECK (error && strlen (error) > 0);
        free (error);
        free (files);
        return 0;
    }
    PZ_FUZZ_CHECK (!error);
    size_t pending = 0, recent = 0;
    pz_journal_take_pending (journal, s_pending, &pending);
    pz_journal_take_recent (journal, 16, s_recent, &recent);
    PZ_FUZZ_CHECK (recent <= 16);
    int64_t next_seq = pz_journal_next_seq (journal);
    int64_t tag_seq = pz_journal_tag_seq (journal, PZ_TAG_NUMBER);
    PZ_FUZZ_CHECK (next_seq >= 1 && tag_seq >= 0);
    PZ_FUZZ_CHECK (pz_journal_oldest_seq (journal) <= next_seq);
    pz_journal_stats_t stats;
    pz_journal_stats (journal, &stats);
    PZ_FUZZ_CHECK (stats.unverdicted >= 0 && (size_t) stats.unverdicted == pending);

    //  What opened takes a new accept, and opens again after it.
    bool room = next_seq < INT64_MAX - 1 && tag_seq < INT64_MAX - 1;
    if (room) {
        uint8_t publication [3 * PZ_RECORD_SIZE];
        pz_record_encode (publication, PZ_TAG_NUMBER, 97);
        pz_publication_trailer (publication + PZ_RECORD_SIZE, next_seq, tag_seq + 1);
        pz_journal_accept (journal, 42, publication, sizeof publication);
        PZ_FUZZ_CHECK (pz_journal_commit (journal) == 0);
    }
    pz_journal_destroy (&journal);
    s_read_all (UINT32_C (1) << ('N' - 'A'));
    journal = pz_journal_open (&config, &error);
    if (!journal)
        fprintf (stderr, "fuzz: reopen failed: %s\n", error);
    PZ_FUZZ_CHECK (journal);
    PZ_FUZZ_CHECK (pz_journal_next_seq (journal) == next_seq + (room ? 1 : 0));
    pz_journal_destroy (&journal);
    free (files);
    return 0;
}
