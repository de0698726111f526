/*  =========================================================================
    test_journal - the broker's journal: round trip, reader, torn and
                   unsynced tails and damage, failed commits, retention,
                   the lock

    Every test works in a directory of its own (mkdtemp) that it removes.
    A model plays the broker: it accepts and verdicts numbers through the
    journal and remembers, for every commit, what the journal must give
    back if it is reopened at that point, so that recovery from any damage
    can be checked against "the state at some commit".
    =========================================================================
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "publication.h"
#include "record.h"

#define S_TAG_MASK(tag)     (UINT32_C (1) << ((tag) - 'A'))
#define S_HEADER            96      //  bytes of a segment header (docs/JOURNAL.md)
#define S_BLOCK             40      //  bytes of a block header
#define S_BLOCK_SYNCED      28      //  where in it the synced-through offset is
#define S_BLOCK_CRC         36      //  where in it the CRC is (of bytes before + payload)
#define S_ALL_TAGS          (S_TAG_MASK ('N') | S_TAG_MASK ('P') | S_TAG_MASK ('C'))

//  An accepted source message, as the model remembers it.
typedef struct {
    int64_t seq;                //  its N publication's seq
    int64_t request_id;         //  0 if none
    int64_t values [64];        //  its numbers
    size_t count;               //  how many
    int accepted_at;            //  commit that made it durable (1-based), 0 staged
    int verdict_at;             //  commit that made its verdict durable, 0 none/staged
    bool verdict_staged;        //  a verdict appended, not committed
} s_accept_t;

//  A publication the model appended.
typedef struct {
    int64_t seq;                //  its seq
    char tag;                   //  N, P or C
    uint8_t *data;              //  as published (malloc'd)
    size_t size;                //  bytes
    int committed_at;           //  commit that made it durable, 0 staged
} s_pub_t;

typedef struct {
    char *dir;                  //  the test directory (mkdtemp)
    pz_journal_config_t config; //  how the journal is opened
    pz_journal_t *journal;      //  the journal, while open
    int64_t next_seq;           //  the next seq to publish
    int64_t tag_seqs [3];       //  last tag-seq of N, P, C
    s_accept_t *accepts;        //  every accept, in order
    size_t accept_count;
    s_pub_t *pubs;              //  every publication, in order
    size_t pub_count;
    int commits;                //  successful commits
    int64_t next_seq_at [4096]; //  next_seq after each commit (index: commits)
    int64_t tag_seqs_at [4096][3];  //  tag-seqs after each commit
    uint64_t rng;               //  xorshift state
    //  Where each commit's block went, and what it records as synced.
    bool group;                 //  commit by pz_journal_write (the broker's
                                //  way: synced only when s_synced says so)
    int opened_at;              //  commits when the journal was last opened
    int64_t segment_at [4096];  //  segment (name) of commit k's block
    int64_t start_at [4096];    //  its offset there
    int64_t end_at [4096];      //  and its end
    int64_t written_at [4096];  //  pz_journal_written after commit k
    int64_t recorded_at [4096]; //  the synced-through its header must hold
    int64_t synced;             //  what the next block in the same segment
                                //  records (-1: the size at open)
} s_model_t;

static uint64_t
s_random (s_model_t *self)
{
    self->rng ^= self->rng << 13;
    self->rng ^= self->rng >> 7;
    self->rng ^= self->rng << 17;
    return self->rng;
}

static int
s_tag_index (char tag)
{
    return tag == 'N' ? 0 : tag == 'P' ? 1 : 2;
}

static void
s_open (s_model_t *self)
{
    char *error = NULL;
    self->journal = pz_journal_open (&self->config, &error);
    cr_assert (self->journal, "open failed: %s", error ? error : "?");
    self->opened_at = self->commits;
    self->synced = -1;
}

static char *s_path (s_model_t *self, int64_t first_seq);
static size_t s_segments (s_model_t *self, int64_t *names, size_t most);
static int64_t s_file_size (const char *path);

static s_model_t *
s_model_new (int64_t segment_bytes)
{
    s_model_t *self = (s_model_t *) calloc (1, sizeof (s_model_t));
    char template [] = "/tmp/test_journal-XXXXXX";
    cr_assert (mkdtemp (template));
    self->dir = strdup (template);
    pz_journal_config_init (&self->config);
    self->config.dir = self->dir;
    self->config.segment_bytes = segment_bytes;
    self->config.sync = false;      //  speed; commit() still writes the same
    self->accepts = (s_accept_t *) calloc (4096, sizeof (s_accept_t));
    self->pubs = (s_pub_t *) calloc (8192, sizeof (s_pub_t));
    self->next_seq = 1;
    self->next_seq_at [0] = 1;
    self->rng = 88172645463325252ULL;
    s_open (self);
    return self;
}

//  Removes the files in dir (the journal's: no subdirectories).
static void
s_remove_files (const char *path)
{
    DIR *dir = opendir (path);
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char name [512];
        snprintf (name, sizeof name, "%s/%s", path, entry->d_name);
        unlink (name);
    }
    if (dir)
        closedir (dir);
}

static void
s_model_destroy (s_model_t **self_p)
{
    s_model_t *self = *self_p;
    pz_journal_destroy (&self->journal);
    s_remove_files (self->dir);
    //  If a test mounted a tmpfs there: the files under it go too.
    if (umount2 (self->dir, MNT_DETACH) == 0)
        s_remove_files (self->dir);
    cr_expect_eq (rmdir (self->dir), 0, "%s left behind", self->dir);
    free (self->dir);
    free (self->accepts);
    for (size_t index = 0; index < 8192; index++)
        free (self->pubs [index].data);
    free (self->pubs);
    free (self);
    *self_p = NULL;
}

//  Builds a publication of count values of tag, appends it to the model.
static s_pub_t *
s_publish (s_model_t *self, char tag, const int64_t *values, size_t count)
{
    cr_assert (self->pub_count < 8192 && count <= PZ_RECORDS_MAX);
    s_pub_t *pub = &self->pubs [self->pub_count++];
    free (pub->data);               //  a slot a failed commit gave back
    pub->data = (uint8_t *) malloc ((count + 2) * PZ_RECORD_SIZE);
    cr_assert (pub->data);
    pub->seq = self->next_seq++;
    pub->tag = tag;
    pub->committed_at = 0;
    for (size_t index = 0; index < count; index++)
        pz_record_encode (pub->data + index * PZ_RECORD_SIZE, tag, values [index]);
    pz_record_encode (pub->data + count * PZ_RECORD_SIZE, 'S', pub->seq);
    pz_record_encode (pub->data + (count + 1) * PZ_RECORD_SIZE, 'T',
                      ++self->tag_seqs [s_tag_index (tag)]);
    pub->size = (count + 2) * PZ_RECORD_SIZE;
    return pub;
}

static s_accept_t *
s_accept (s_model_t *self, size_t count, int64_t request_id)
{
    cr_assert (self->accept_count < 4096);
    s_accept_t *accept = &self->accepts [self->accept_count++];
    memset (accept, 0, sizeof *accept);
    accept->request_id = request_id;
    accept->count = count;
    for (size_t index = 0; index < count; index++)
        accept->values [index] = (int64_t) (s_random (self) >> 1);
    s_pub_t *pub = s_publish (self, 'N', accept->values, count);
    accept->seq = pub->seq;
    pz_journal_accept (self->journal, request_id, pub->data, pub->size);
    return accept;
}

//  Verdicts the given accepts (indexes into accepts), every number of
//  them, as the broker does: odd values prime. which: 1 primes only, 2
//  composites only, 3 both (if there are some).
static void
s_verdict (s_model_t *self, const size_t *which_accepts, size_t count, int which)
{
    int64_t covers [64];
    static int64_t primes [PZ_RECORDS_MAX], composites [PZ_RECORDS_MAX];
    static uint8_t numbers [PZ_RECORDS_MAX * PZ_RECORD_SIZE], flags [PZ_RECORDS_MAX];
    static uint8_t bits [64 * PZ_RECORD_SIZE];
    size_t prime_count = 0, composite_count = 0, total = 0;
    cr_assert (count <= 64);
    for (size_t index = 0; index < count; index++) {
        s_accept_t *accept = &self->accepts [which_accepts [index]];
        cr_assert (!accept->verdict_at && !accept->verdict_staged);
        accept->verdict_staged = true;
        covers [index] = accept->seq;
        for (size_t value = 0; value < accept->count; value++) {
            cr_assert (total < PZ_RECORDS_MAX);
            int64_t number = accept->values [value];
            bool prime = which == 1 || (which == 3 && number % 2);
            pz_record_encode (numbers + total * PZ_RECORD_SIZE, 'N', number);
            flags [total++] = prime;
            if (prime)
                primes [prime_count++] = number;
            else
                composites [composite_count++] = number;
        }
    }
    s_pub_t *p = prime_count ? s_publish (self, 'P', primes, prime_count) : NULL;
    s_pub_t *c = composite_count ? s_publish (self, 'C', composites, composite_count) : NULL;
    pz_verdicts_encode (bits, flags, total);
    int64_t seqs [2] = { p ? p->seq : 0, c ? c->seq : 0 };
    int64_t tag_seqs [2] = {
        p ? pz_record_value (p->data + p->size - PZ_RECORD_SIZE) : 0,
        c ? pz_record_value (c->data + c->size - PZ_RECORD_SIZE) : 0 };
    pz_journal_verdict (self->journal, covers, count, numbers, bits, total, seqs, tag_seqs);
}

//  Verdicts up to `most` of the oldest accepts without one.
static void
s_verdict_oldest (s_model_t *self, size_t most, int which)
{
    size_t list [64], count = 0;
    for (size_t index = 0; index < self->accept_count && count < most; index++)
        if (self->accepts [index].accepted_at
        &&  !self->accepts [index].verdict_at && !self->accepts [index].verdict_staged)
            list [count++] = index;
    if (count)
        s_verdict (self, list, count, which);
}

//  Commits; on success marks everything staged durable, else forgets it
//  (and the model, like the broker, reuses the seqs).
static int
s_commit (s_model_t *self)
{
    int64_t staged = (int64_t) pz_journal_uncommitted (self->journal);
    int64_t before = pz_journal_written (self->journal);
    int rc = self->group ? pz_journal_write (self->journal)
                         : pz_journal_commit (self->journal);
    int saved = errno;
    if (rc == 0) {
        self->commits++;
        cr_assert (self->commits < 4096);
        //  Where the block went: the end of the newest segment.
        int k = self->commits;
        int64_t names [256];
        size_t count = s_segments (self, names, 256);
        cr_assert (count > 0 && count < 256);
        char *path = s_path (self, names [count - 1]);
        self->segment_at [k] = names [count - 1];
        self->end_at [k] = s_file_size (path);
        self->start_at [k] = self->end_at [k] - staged;
        self->written_at [k] = pz_journal_written (self->journal);
        free (path);
        //  What it records: S_HEADER in a new segment (the position jumped by
        //  more than the block), the size at open for the first after an
        //  open, else what the last commit or s_synced made known.
        bool rolled = self->written_at [k] - before != staged;
        cr_assert (!rolled || self->start_at [k] == S_HEADER);
        self->recorded_at [k] = rolled ? S_HEADER
                              : self->synced < 0 ? self->start_at [k] : self->synced;
        if (!staged)
            self->recorded_at [k] = -1;     //  nothing written: no block
        self->synced = self->group ? self->recorded_at [k] : self->end_at [k];
        for (size_t index = 0; index < self->accept_count; index++) {
            s_accept_t *accept = &self->accepts [index];
            if (!accept->accepted_at)
                accept->accepted_at = self->commits;
            if (accept->verdict_staged) {
                accept->verdict_staged = false;
                accept->verdict_at = self->commits;
            }
        }
        for (size_t index = 0; index < self->pub_count; index++)
            if (!self->pubs [index].committed_at)
                self->pubs [index].committed_at = self->commits;
        self->next_seq_at [self->commits] = self->next_seq;
        memcpy (self->tag_seqs_at [self->commits], self->tag_seqs, sizeof self->tag_seqs);
    }
    else {
        while (self->accept_count && !self->accepts [self->accept_count - 1].accepted_at)
            self->accept_count--;
        for (size_t index = 0; index < self->accept_count; index++)
            self->accepts [index].verdict_staged = false;
        while (self->pub_count && !self->pubs [self->pub_count - 1].committed_at)
            self->pub_count--;
        self->next_seq = self->next_seq_at [self->commits];
        memcpy (self->tag_seqs, self->tag_seqs_at [self->commits], sizeof self->tag_seqs);
    }
    errno = saved;
    return rc;
}

//  Tells the journal that a sync started after commit k's write is done,
//  as the broker does when its syncer answers.
static void
s_synced (s_model_t *self, int k)
{
    cr_assert (k > self->opened_at && k <= self->commits,
               "positions of an earlier open mean nothing");
    pz_journal_synced (self->journal, self->written_at [k]);
    if (self->segment_at [k] == self->segment_at [self->commits]
    &&  self->end_at [k] > self->synced)
        self->synced = self->end_at [k];
}

//  Reads the synced-through offset the block at offset of path records.
static int64_t
s_recorded (const char *path, int64_t offset)
{
    int fd = open (path, O_RDONLY);
    cr_assert (fd >= 0);
    uint8_t bytes [8];
    cr_assert_eq (pread (fd, bytes, 8, offset + S_BLOCK_SYNCED), 8);
    close (fd);
    int64_t value = 0;
    for (int index = 7; index >= 0; index--)
        value = (value << 8) | bytes [index];
    return value;
}

//  Checks that the blocks of commits from..to record what the model says.
static void
s_check_recorded (s_model_t *self, int from, int to)
{
    for (int k = from; k <= to; k++) {
        if (self->recorded_at [k] < 0)
            continue;
        char *path = s_path (self, self->segment_at [k]);
        cr_assert_eq (s_recorded (path, self->start_at [k]), self->recorded_at [k],
                      "commit %d's block at %" PRId64 " records %" PRId64 ", not %" PRId64,
                      k, self->start_at [k], s_recorded (path, self->start_at [k]),
                      self->recorded_at [k]);
        free (path);
    }
}

//  A mixed workload: `rounds` commits of a few accepts and verdicts.
static void
s_workload (s_model_t *self, int rounds)
{
    for (int round = 0; round < rounds; round++) {
        size_t accepts = 1 + s_random (self) % 3;
        for (size_t index = 0; index < accepts; index++)
            s_accept (self, 1 + s_random (self) % 8,
                      s_random (self) % 3 ? (int64_t) (s_random (self) >> 2) + 1 : 0);
        if (s_random (self) % 4)
            s_verdict_oldest (self, 1 + s_random (self) % 4, 1 + (int) (s_random (self) % 3));
        cr_assert_eq (s_commit (self), 0, "commit: %s", strerror (errno));
    }
}

//  What take_pending gave back.
typedef struct {
    int64_t seqs [4096];
    int64_t request_ids [4096];
    uint8_t records [4096][64 * PZ_RECORD_SIZE];
    size_t counts [4096];
    size_t count;
} s_pending_list_t;

static void
s_collect_pending (void *arg, int64_t seq, int64_t request_id,
                   const uint8_t *records, size_t count)
{
    s_pending_list_t *list = (s_pending_list_t *) arg;
    cr_assert (list->count < 4096 && count <= 64);
    list->seqs [list->count] = seq;
    list->request_ids [list->count] = request_id;
    memcpy (list->records [list->count], records, count * PZ_RECORD_SIZE);
    list->counts [list->count++] = count;
}

//  True if list is exactly the pending state after commit `at`.
static bool
s_pending_matches (s_model_t *self, const s_pending_list_t *list, int at)
{
    size_t found = 0;
    for (size_t index = 0; index < self->accept_count; index++) {
        s_accept_t *accept = &self->accepts [index];
        if (!accept->accepted_at || accept->accepted_at > at
        ||  (accept->verdict_at && accept->verdict_at <= at))
            continue;
        if (found >= list->count || list->seqs [found] != accept->seq
        ||  list->request_ids [found] != accept->request_id
        ||  list->counts [found] != accept->count)
            return false;
        for (size_t value = 0; value < accept->count; value++) {
            const uint8_t *record = list->records [found] + value * PZ_RECORD_SIZE;
            if (pz_record_tag (record) != 'N' || pz_record_value (record) != accept->values [value])
                return false;
        }
        found++;
    }
    return found == list->count;
}

//  Reopens and checks the journal holds exactly the state after commit at.
static void
s_check_state (s_model_t *self, pz_journal_t *journal, int at)
{
    cr_assert_eq (pz_journal_next_seq (journal), self->next_seq_at [at],
                  "next seq %" PRId64 ", commit %d had %" PRId64,
                  pz_journal_next_seq (journal), at, self->next_seq_at [at]);
    for (int index = 0; index < 3; index++)
        cr_assert_eq (pz_journal_tag_seq (journal, "NPC" [index]), self->tag_seqs_at [at][index],
                      "%c tag-seq %" PRId64 ", commit %d had %" PRId64, "NPC" [index],
                      pz_journal_tag_seq (journal, "NPC" [index]), at, self->tag_seqs_at [at][index]);
    s_pending_list_t *list = (s_pending_list_t *) calloc (1, sizeof (s_pending_list_t));
    pz_journal_take_pending (journal, s_collect_pending, list);
    cr_assert (s_pending_matches (self, list, at), "pending differs from commit %d", at);
    pz_journal_stats_t stats;
    pz_journal_stats (journal, &stats);
    cr_assert_eq (stats.unverdicted, (int64_t) list->count);
    free (list);
}

static void
s_reopen (s_model_t *self)
{
    pz_journal_destroy (&self->journal);
    s_open (self);
}

static char *
s_path (s_model_t *self, int64_t first_seq)
{
    char *path = NULL;
    cr_assert (asprintf (&path, "%s/%020" PRId64 ".pzj", self->dir, first_seq) > 0);
    return path;
}

//  The segment names in the directory, sorted; returns how many.
static size_t
s_segments (s_model_t *self, int64_t *names, size_t most)
{
    size_t count = 0;
    DIR *dir = opendir (self->dir);
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (strstr (entry->d_name, ".pzj") && count < most)
            names [count++] = strtoll (entry->d_name, NULL, 10);
    closedir (dir);
    for (size_t i = 1; i < count; i++)
        for (size_t j = i; j > 0 && names [j - 1] > names [j]; j--) {
            int64_t swap = names [j];
            names [j] = names [j - 1];
            names [j - 1] = swap;
        }
    return count;
}

static int64_t
s_file_size (const char *path)
{
    struct stat status;
    cr_assert_eq (stat (path, &status), 0);
    return status.st_size;
}

static uint8_t *
s_file_read (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    cr_assert (file);
    fseek (file, 0, SEEK_END);
    *size = (size_t) ftell (file);
    fseek (file, 0, SEEK_SET);
    uint8_t *data = (uint8_t *) malloc (*size + 1);
    cr_assert_eq (fread (data, 1, *size, file), *size);
    fclose (file);
    return data;
}

static void
s_file_write (const char *path, const uint8_t *data, size_t size)
{
    FILE *file = fopen (path, "wb");
    cr_assert (file);
    cr_assert_eq (fwrite (data, 1, size, file), size);
    fclose (file);
}

//  Sets the byte at offset of path to value.
static void
s_poke (const char *path, int64_t offset, uint8_t value)
{
    int fd = open (path, O_WRONLY);
    cr_assert (fd >= 0);
    cr_assert_eq (pwrite (fd, &value, 1, offset), 1);
    close (fd);
}

//  Sets the CRC of the block whose header is at block, payload bytes long,
//  to match what it holds now.
static void
s_block_reseal (uint8_t *block, size_t payload)
{
    uint32_t crc = pz_journal_crc32c (0, block, S_BLOCK_CRC);
    crc = pz_journal_crc32c (crc, block + S_BLOCK, payload);
    for (int index = 0; index < 4; index++)
        block [S_BLOCK_CRC + index] = (uint8_t) (crc >> (8 * index));
}

static void
s_quiet (void)
{
    //  The journal logs torn tails through czmq, to stdout: hundreds here.
    if (!freopen ("/dev/null", "w", stdout))
        perror ("/dev/null");
}


//  --------------------------------------------------------------------------

Test (journal, crc32c_matches_the_known_vector_on_both_paths, .timeout = 10)
{
    cr_assert_eq (pz_journal_crc32c (0, "123456789", 9), 0xE3069283);
    cr_assert_eq (pz_journal_crc32c_portable (0, "123456789", 9), 0xE3069283);
    cr_assert_eq (pz_journal_crc32c (0, "", 0), 0);
    //  Every length and alignment, and continuation, agree between the two.
    uint8_t data [300];
    for (size_t index = 0; index < sizeof data; index++)
        data [index] = (uint8_t) (index * 7 + 3);
    for (size_t start = 0; start < 9; start++)
        for (size_t length = 0; length + start <= sizeof data; length += 13) {
            uint32_t whole = pz_journal_crc32c_portable (0, data + start, length);
            cr_assert_eq (pz_journal_crc32c (0, data + start, length), whole);
            uint32_t half = pz_journal_crc32c (0, data + start, length / 2);
            cr_assert_eq (pz_journal_crc32c (half, data + start + length / 2,
                                             length - length / 2), whole);
        }
    //  Past three strides (1 KiB each) the instruction path runs three
    //  streams and joins them: lengths around each multiple of 3 KiB.
    size_t big_size = 5 * 3072 + 64;
    uint8_t *big = (uint8_t *) malloc (big_size);
    cr_assert (big);
    uint32_t seed = 12345;
    for (size_t index = 0; index < big_size; index++) {
        seed = seed * 1103515245 + 12345;
        big [index] = (uint8_t) (seed >> 16);
    }
    for (size_t start = 0; start < 3; start++)
        for (size_t length = 0; length + start <= big_size; length += 509) {
            uint32_t whole = pz_journal_crc32c_portable (0x1234567, big + start, length);
            cr_assert_eq (pz_journal_crc32c (0x1234567, big + start, length), whole,
                          "length %zu from %zu", length, start);
        }
    for (size_t length = 3072 - 9; length <= 3 * 3072 + 9; length++)
        if (length % 3072 <= 9 || length % 3072 >= 3072 - 9)
            cr_assert_eq (pz_journal_crc32c (7, big, length),
                          pz_journal_crc32c_portable (7, big, length), "length %zu", length);
    free (big);
}

Test (journal, retain_specs_parse_and_bad_ones_are_refused, .timeout = 10)
{
    int64_t bytes = -1, seconds = -1;
    cr_assert (pz_journal_retain_parse ("500M", &bytes, &seconds));
    cr_assert (bytes == 500LL << 20 && seconds == 0);
    cr_assert (pz_journal_retain_parse ("1048576", &bytes, &seconds));
    cr_assert (bytes == 1048576 && seconds == 0);
    cr_assert (pz_journal_retain_parse ("7d", &bytes, &seconds));
    cr_assert (bytes == 0 && seconds == 7 * 86400);
    cr_assert (pz_journal_retain_parse ("2G,12h", &bytes, &seconds));
    cr_assert (bytes == 2LL << 30 && seconds == 12 * 3600);
    cr_assert (pz_journal_retain_parse ("3T,90s", &bytes, &seconds));
    cr_assert (bytes == 3LL << 40 && seconds == 90);
    cr_assert (pz_journal_retain_parse ("4K,30m", &bytes, &seconds));
    cr_assert (bytes == 4096 && seconds == 1800);
    const char *bad [] = { "", "M", "5X", "-5M", "5M,", ",5d", "5d,5M", "5M,5", "5 M",
                           "5M,5d,", "0", "0d", "99999999999T", "5MB", "1.5G", "5M,5d5", NULL };
    for (int index = 0; bad [index]; index++)
        cr_assert (!pz_journal_retain_parse (bad [index], &bytes, &seconds),
                   "accepted '%s'", bad [index]);
}

//  What take_recent gave back.
typedef struct {
    int64_t ids [64];
    int64_t counts [64];
    size_t count;
} s_recent_list_t;

static void
s_collect_recent (void *arg, int64_t request_id, int64_t count)
{
    s_recent_list_t *list = (s_recent_list_t *) arg;
    cr_assert (list->count < 64);
    list->ids [list->count] = request_id;
    list->counts [list->count++] = count;
}

Test (journal, round_trip_gives_back_seqs_pending_and_recent_ids, .timeout = 20)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    cr_assert_eq (pz_journal_next_seq (model->journal), 1);
    cr_assert_eq (pz_journal_oldest_seq (model->journal), 1);
    s_accept (model, 3, 1001);      //  seq 1
    s_accept (model, 1, 0);         //  seq 2
    s_accept (model, 5, 1003);      //  seq 3
    cr_assert_eq (s_commit (model), 0);
    size_t first [] = { 0 };
    s_verdict (model, first, 1, 3);
    s_accept (model, 2, 1004);
    s_accept (model, 4, 1005);
    cr_assert_eq (s_commit (model), 0);
    size_t both [] = { 2, 4 };
    s_verdict (model, both, 2, 1);  //  primes only
    cr_assert_eq (s_commit (model), 0);
    size_t last [] = { 3 };
    s_verdict (model, last, 1, 2);  //  composites only
    cr_assert_eq (s_commit (model), 0);
    cr_assert_eq (pz_journal_commit (model->journal), 0);   //  nothing: no-op
    //  Appended and never committed: must not come back.
    s_accept (model, 2, 1006);
    cr_assert (pz_journal_uncommitted (model->journal) > 0);

    pz_journal_destroy (&model->journal);
    s_open (model);
    //  Only accepts 1 (seq 2, no id) is pending. The model agrees.
    s_recent_list_t recent = { .count = 0 };
    pz_journal_take_recent (model->journal, 3, s_collect_recent, &recent);
    cr_assert_eq (recent.count, 3);
    cr_assert (recent.ids [0] == 1003 && recent.ids [1] == 1004 && recent.ids [2] == 1005);
    cr_assert (recent.counts [0] == 5 && recent.counts [1] == 2 && recent.counts [2] == 4);
    s_check_state (model, model->journal, model->commits);
    cr_assert_eq (model->next_seq_at [model->commits], pz_journal_next_seq (model->journal));
    pz_journal_stats_t stats;
    pz_journal_stats (model->journal, &stats);
    cr_assert_eq (stats.unverdicted, 1);

    //  And the journal goes on from there: the reused seq of the dropped
    //  accept, new verdicts, another reopen.
    model->accept_count--;          //  the dropped one
    model->pub_count--;
    model->next_seq = model->next_seq_at [model->commits];
    memcpy (model->tag_seqs, model->tag_seqs_at [model->commits], sizeof model->tag_seqs);
    s_accept (model, 7, 2001);
    s_verdict_oldest (model, 2, 3);
    cr_assert_eq (s_commit (model), 0);
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    recent.count = 0;
    pz_journal_take_recent (model->journal, 100, s_collect_recent, &recent);
    cr_assert_eq (recent.count, 5);
    cr_assert (recent.ids [0] == 1001 && recent.ids [4] == 2001 && recent.counts [4] == 7);
    s_model_destroy (&model);
}

//  Expected reader output: the committed publications in range and mask.
static size_t
s_expected (s_model_t *self, int64_t from, int64_t until, int64_t durable_end,
            uint32_t mask, int64_t oldest, uint8_t *out)
{
    size_t size = 0;
    for (size_t index = 0; index < self->pub_count; index++) {
        s_pub_t *pub = &self->pubs [index];
        if (!pub->committed_at || pub->seq < from || pub->seq < oldest
        ||  (until && pub->seq >= until) || pub->seq > durable_end
        ||  !(mask & S_TAG_MASK (pub->tag)))
            continue;
        memcpy (out + size, pub->data, pub->size);
        size += pub->size;
    }
    return size;
}

//  Reads [from, until) in chunks of buf_size, as a sink would.
static size_t
s_read_all (pz_journal_reader_t *reader, int64_t from, int64_t until, int64_t durable_end,
            uint32_t mask, size_t buf_size, uint8_t *out, int64_t *oldest)
{
    uint8_t *buf = (uint8_t *) malloc (buf_size);
    size_t size = 0;
    int64_t limit = until && until <= durable_end ? until : durable_end + 1;
    for (int calls = 0; from < limit; calls++) {
        cr_assert (calls < 100000);
        int64_t next = 0;
        size_t bytes = pz_journal_reader_read (reader, from, until, durable_end, mask,
                                               buf, buf_size, &next, oldest);
        cr_assert (bytes <= buf_size);
        cr_assert (next > from, "no progress from %" PRId64, from);
        memcpy (out + size, buf, bytes);
        size += bytes;
        from = next;
    }
    free (buf);
    return size;
}

Test (journal, reader_returns_exactly_the_wanted_publications_in_chunks, .timeout = 60)
{
    s_model_t *model = s_model_new (2048);
    s_workload (model, 120);
    s_verdict_oldest (model, 64, 3);
    cr_assert_eq (s_commit (model), 0);
    pz_journal_stats_t stats;
    pz_journal_stats (model->journal, &stats);
    cr_assert_geq (stats.segments, 5, "only %" PRId64 " segments", stats.segments);
    int64_t last = model->next_seq - 1;

    uint8_t *expected = (uint8_t *) malloc (4 << 20);
    uint8_t *got = (uint8_t *) malloc (4 << 20);
    uint8_t *buf = (uint8_t *) malloc (65536);
    pz_journal_reader_t *reader = pz_journal_reader_new (model->dir);
    uint32_t masks [] = { S_TAG_MASK ('N'), S_TAG_MASK ('P'), S_TAG_MASK ('C'),
                          S_TAG_MASK ('P') | S_TAG_MASK ('C'), S_ALL_TAGS };
    //  The smallest chunk holds the largest publication, and no more.
    size_t largest = 0;
    for (size_t index = 0; index < model->pub_count; index++)
        largest = model->pubs [index].size > largest ? model->pubs [index].size : largest;
    size_t chunks [] = { largest, largest + 1000, 4096 + largest, 65536 };
    for (int round = 0; round < 300; round++) {
        int64_t from = 1 + (int64_t) (s_random (model) % (uint64_t) last);
        int64_t until = s_random (model) % 3 ? 0 : from + (int64_t) (s_random (model) % 200);
        int64_t durable_end = s_random (model) % 2 ? last
                            : from + (int64_t) (s_random (model) % (uint64_t) last);
        durable_end = durable_end > last ? last : durable_end;
        uint32_t mask = masks [round % 5];
        size_t chunk = chunks [s_random (model) % 4];
        //  A fresh reader now and then; mostly the same one, continuing.
        if (round % 50 == 0) {
            pz_journal_reader_destroy (&reader);
            reader = pz_journal_reader_new (model->dir);
        }
        int64_t oldest = 0;
        size_t size = s_read_all (reader, from, until, durable_end, mask, chunk, got, &oldest);
        cr_assert_eq (oldest, 1);
        size_t want = s_expected (model, from, until, durable_end, mask, 1, expected);
        cr_assert_eq (size, want, "round %d: from %" PRId64 " until %" PRId64 " end %"
                      PRId64 " mask %x chunk %zu", round, from, until, durable_end, mask, chunk);
        cr_assert (memcmp (got, expected, size) == 0, "round %d: bytes differ", round);
    }
    //  Nothing past durable_end, even though the files hold it.
    int64_t next = 0, oldest = 0;
    size_t bytes = pz_journal_reader_read (reader, 1, 0, 0, S_ALL_TAGS, buf, 65536,
                                           &next, &oldest);
    cr_assert (bytes == 0 && next == 1 && oldest == 1);
    //  A buffer too small for the next publication: nothing, next stays.
    bytes = pz_journal_reader_read (reader, 1, 0, last, S_ALL_TAGS, buf, 10, &next, &oldest);
    cr_assert (bytes == 0 && next == 1);
    //  One publication at a time: next goes publication by publication.
    bytes = pz_journal_reader_read (reader, 1, 0, last, S_TAG_MASK ('N'), buf,
                                    model->pubs [0].size, &next, &oldest);
    cr_assert (bytes == model->pubs [0].size && next == model->pubs [1].seq);
    //  From past the end: nothing, next stays.
    bytes = pz_journal_reader_read (reader, last + 5, 0, last, S_ALL_TAGS, buf, 65536,
                                    &next, &oldest);
    cr_assert (bytes == 0 && next == last + 5);

    //  One seq at a time, [seq, seq + 1), the same reader: every one, even
    //  where several share a block (until cuts inside it, and the next
    //  call goes on from there).
    size_t one_by_one = 0;
    for (int64_t seq = 1; seq <= last; seq++) {
        bytes = pz_journal_reader_read (reader, seq, seq + 1, last, S_ALL_TAGS,
                                        got + one_by_one, 65536, &next, &oldest);
        cr_assert_eq (next, seq + 1);
        one_by_one += bytes;
    }
    size_t every = s_expected (model, 1, 0, last, S_ALL_TAGS, 1, expected);
    cr_assert (one_by_one == every && memcmp (got, expected, every) == 0,
               "seq by seq: %zu bytes, expected %zu", one_by_one, every);

    //  The writer goes on while the reader holds its position.
    int64_t from = 1;
    size_t size = s_read_all (reader, from, 0, last, S_ALL_TAGS, 65536, got, &oldest);
    s_workload (model, 40);
    int64_t newer = model->next_seq - 1;
    size += s_read_all (reader, last + 1, 0, newer, S_ALL_TAGS, 4096, got + size, &oldest);
    size_t want = s_expected (model, 1, 0, newer, S_ALL_TAGS, 1, expected);
    cr_assert (size == want && memcmp (got, expected, size) == 0);
    pz_journal_reader_destroy (&reader);
    free (expected);
    free (got);
    free (buf);
    s_model_destroy (&model);
}

Test (journal, a_torn_last_block_is_cut_at_every_offset, .init = s_quiet, .timeout = 120)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    s_workload (model, 6);
    char *path = s_path (model, 1);
    int64_t start = s_file_size (path);
    s_accept (model, 40, 77);       //  a long last block
    s_verdict_oldest (model, 3, 3);
    cr_assert_eq (s_commit (model), 0);
    pz_journal_destroy (&model->journal);
    size_t size;
    uint8_t *whole = s_file_read (path, &size);
    cr_assert_gt ((int64_t) size, start + 400);
    for (int64_t offset = start; offset < (int64_t) size; offset++) {
        s_file_write (path, whole, (size_t) offset);
        char *error = NULL;
        pz_journal_t *journal = pz_journal_open (&model->config, &error);
        cr_assert (journal, "offset %" PRId64 ": %s", offset, error);
        cr_assert_eq (s_file_size (path), start, "offset %" PRId64 " not cut back", offset);
        s_check_state (model, journal, model->commits - 1);
        pz_journal_destroy (&journal);
    }
    //  A byte flipped anywhere in the last block: cut as well.
    for (int64_t offset = start; offset < (int64_t) size; offset += 7) {
        s_file_write (path, whole, size);
        s_poke (path, offset, whole [offset] ^ 0x20);
        char *error = NULL;
        pz_journal_t *journal = pz_journal_open (&model->config, &error);
        cr_assert (journal, "offset %" PRId64 ": %s", offset, error);
        cr_assert_eq (s_file_size (path), start);
        s_check_state (model, journal, model->commits - 1);
        pz_journal_destroy (&journal);
    }
    //  After a cut the journal goes on: a commit on top, then reopen.
    s_file_write (path, whole, (size_t) start + 5);
    s_open (model);
    int64_t next_seq = pz_journal_next_seq (model->journal);
    cr_assert_eq (next_seq, model->next_seq_at [model->commits - 1]);
    uint8_t pub [3 * PZ_RECORD_SIZE];
    pz_record_encode (pub, 'N', 12345);
    pz_record_encode (pub + PZ_RECORD_SIZE, 'S', next_seq);
    pz_record_encode (pub + 2 * PZ_RECORD_SIZE, 'T', pz_journal_tag_seq (model->journal, 'N') + 1);
    pz_journal_accept (model->journal, 99, pub, sizeof pub);
    cr_assert_eq (pz_journal_commit (model->journal), 0);
    s_reopen (model);
    cr_assert_eq (pz_journal_next_seq (model->journal), next_seq + 1);
    free (whole);
    free (path);
    s_model_destroy (&model);
}

Test (journal, damage_before_the_tail_fails_naming_file_and_offset, .init = s_quiet, .timeout = 30)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    s_workload (model, 3);
    char *path = s_path (model, 1);
    int64_t second = 0;
    {
        //  Find the second block: after the first commit's block.
        pz_journal_destroy (&model->journal);
        size_t size;
        uint8_t *data = s_file_read (path, &size);
        uint32_t length = (uint32_t) data [S_HEADER + 4] | (uint32_t) data [S_HEADER + 5] << 8
                        | (uint32_t) data [S_HEADER + 6] << 16 | (uint32_t) data [S_HEADER + 7] << 24;
        second = S_HEADER + S_BLOCK + length;
        free (data);
    }
    size_t size;
    uint8_t *whole = s_file_read (path, &size);
    int64_t targets [] = { S_HEADER + 2, S_HEADER + 10, S_HEADER + 40,
                           second - 1, second + 3, second + 33 };
    for (size_t index = 0; index < sizeof targets / sizeof targets [0]; index++) {
        s_file_write (path, whole, size);
        int64_t offset = targets [index];
        s_poke (path, offset, whole [offset] ^ 0x01);
        char *error = NULL;
        pz_journal_t *journal = pz_journal_open (&model->config, &error);
        cr_assert_null (journal, "damage at %" PRId64 " was accepted", offset);
        cr_assert (error);
        int64_t block = offset < second ? S_HEADER : second;
        char where [64];
        snprintf (where, sizeof where, "offset %" PRId64 ":", block);
        cr_assert (strstr (error, "00000000000000000001.pzj"), "%s", error);
        cr_assert (strstr (error, where), "'%s' lacks '%s'", error, where);
        cr_assert_eq (s_file_size (path), (int64_t) size, "a damaged journal was changed");
        free (error);
    }
    //  A bad segment header, and a truncated earlier block, fail too.
    s_file_write (path, whole, size);
    s_poke (path, 3, 'x');
    char *error = NULL;
    cr_assert_null (pz_journal_open (&model->config, &error));
    cr_assert (strstr (error, "offset 0:"), "%s", error);
    free (error);

    //  A block with a good checksum whose K names an unknown seq: refused,
    //  even as the last block.
    s_file_write (path, whole, size);
    s_open (model);
    s_accept (model, 1, 0);
    cr_assert_eq (s_commit (model), 0);
    int64_t start = s_file_size (path);
    size_t pick [] = { model->accept_count - 1 };
    s_verdict (model, pick, 1, 2);
    cr_assert_eq (s_commit (model), 0);
    pz_journal_destroy (&model->journal);
    free (whole);
    whole = s_file_read (path, &size);
    //  The block: header 40, entry length 4, K record at start + 44.
    cr_assert_eq (whole [start + S_BLOCK + 4], 'K');
    //  A verdict's own seq: held by the journal, no accept.
    int64_t named = 0;
    for (size_t index = 0; index < model->pub_count && !named; index++)
        if (model->pubs [index].tag != 'N')
            named = model->pubs [index].seq;
    cr_assert (named);
    pz_record_encode (whole + start + S_BLOCK + 4, 'K', named);
    s_block_reseal (whole + start, size - (size_t) start - S_BLOCK);
    s_file_write (path, whole, size);
    error = NULL;
    cr_assert_null (pz_journal_open (&model->config, &error));
    char expected_text [64];
    snprintf (expected_text, sizeof expected_text, "K %" PRId64 " names no accepted", named);
    cr_assert (strstr (error, expected_text), "%s", error);
    cr_assert_eq (s_file_size (path), (int64_t) size);
    free (error);
    free (whole);
    free (path);
    s_model_destroy (&model);
}

//  Opens the damaged journal: it fails with a message, or holds exactly
//  the state after some commit. Returns that commit, or -1 if it refused.
static int
s_open_damaged (s_model_t *model, const char *what)
{
    char *error = NULL;
    pz_journal_t *journal = pz_journal_open (&model->config, &error);
    if (!journal) {
        cr_assert (error && strstr (error, "offset"), "%s: no message: %s", what,
                   error ? error : "NULL");
        free (error);
        return -1;
    }
    int64_t next_seq = pz_journal_next_seq (journal);
    int at = -1;
    for (int commit = 0; commit <= model->commits; commit++)
        if (model->next_seq_at [commit] == next_seq)
            at = commit;
    cr_assert (at >= 0, "%s: next seq %" PRId64 " at no commit", what, next_seq);
    s_check_state (model, journal, at);
    pz_journal_destroy (&journal);
    return at;
}

//  What the recovery rule says of one cut or flipped byte at offset of
//  segment `name`: the commit whose state the journal must hold, and the
//  size of that segment after open; or -1 if it must refuse. Worked out
//  from the model's block table, not from the journal's code.
static int
s_expected_outcome (s_model_t *model, int64_t name, bool last, bool cut, int64_t offset,
                    int64_t *size)
{
    if (!last)
        return -1;                  //  synced before the next one began
    int k = 1;
    while (k <= model->commits && model->segment_at [k] != name)
        k++;
    if (offset < S_HEADER) {
        if (!cut)
            return -1;              //  a bad segment header
        *size = S_HEADER;           //  a torn header, written again
        return k - 1;               //  what the segments before it hold
    }
    while (model->end_at [k] <= offset)
        k++;                        //  the block holding the damage
    cr_assert (k <= model->commits && model->segment_at [k] == name);
    //  A later block that survived and records the damaged one as synced:
    //  a sync covering it had completed, so it was acknowledged.
    for (int later = k + 1; !cut && later <= model->commits; later++)
        if (model->recorded_at [later] > model->start_at [k])
            return -1;
    *size = model->start_at [k];
    return k - 1;
}

//  60 commits over small segments, then 400 times one of them is cut
//  short or has a byte flipped, mostly the last one, and the journal is
//  opened. Whatever the damage, it refuses or holds exactly the state
//  after some commit; and exactly as the rule says: a refusal only if the
//  damage is in an earlier segment or the segment header, or a block after
//  it records it synced; else a cut at the damaged block. group: written
//  the broker's way, with syncs that complete some commits late, or never.
static void
s_random_damage (bool group)
{
    s_model_t *model = s_model_new (1500);
    model->group = group;
    int late = 0, in_last = 0;
    //  60 commits or more: the last segment must hold a few blocks.
    for (int round = 0; round < 60 || in_last < 5; round++) {
        s_workload (model, 1);
        int k = model->commits;
        in_last = k > 1 && model->segment_at [k] == model->segment_at [k - 1] ? in_last + 1 : 1;
        int lag = (int) (s_random (model) % 5);
        if (group && model->commits - lag > 0 && s_random (model) % 3) {
            s_synced (model, model->commits - lag);
            late += lag > 0;
        }
    }
    cr_assert (!group || late > 10);
    s_check_recorded (model, 1, model->commits);
    pz_journal_destroy (&model->journal);
    int64_t names [256];
    size_t count = s_segments (model, names, 256);
    cr_assert_geq (count, 4);
    uint8_t *saved [256];
    size_t sizes [256];
    char *paths [256];
    for (size_t index = 0; index < count; index++) {
        paths [index] = s_path (model, names [index]);
        saved [index] = s_file_read (paths [index], &sizes [index]);
    }
    int opened = 0, refused = 0, dropped = 0;
    for (int round = 0; round < 400; round++) {
        for (size_t index = 0; index < count; index++)
            s_file_write (paths [index], saved [index], sizes [index]);
        //  Mostly the last segment, where unsynced blocks can be.
        size_t file = s_random (model) % 2 ? count - 1 : s_random (model) % count;
        size_t offset = s_random (model) % sizes [file];
        char what [600];
        bool cut = round % 2;
        if (cut) {
            snprintf (what, sizeof what, "%s cut at %zu", paths [file], offset);
            s_file_write (paths [file], saved [file], offset);
        }
        else {
            uint8_t flip = (uint8_t) (1 + s_random (model) % 255);
            snprintf (what, sizeof what, "%s byte %zu ^ %u", paths [file], offset, flip);
            s_poke (paths [file], (int64_t) offset, saved [file][offset] ^ flip);
        }
        int64_t size = -1;
        int expected = s_expected_outcome (model, names [file], file == count - 1, cut,
                                           (int64_t) offset, &size);
        int at = s_open_damaged (model, what);
        cr_assert_eq (at, expected, "%s: %s %d, the rule says %s %d", what,
                      at < 0 ? "refused" : "opened at commit", at,
                      expected < 0 ? "refuse" : "open at commit", expected);
        if (at >= 0) {
            cr_assert_eq (s_file_size (paths [file]), size, "%s: cut to %" PRId64 ", not %"
                          PRId64, what, s_file_size (paths [file]), size);
            opened++;
            //  Valid blocks after the damaged one, dropped with it.
            dropped += !cut && at + 1 < model->commits
                    && model->segment_at [model->commits] == names [file];
        }
        else
            refused++;
    }
    cr_assert (opened > 50 && refused > 50, "opened %d, refused %d", opened, refused);
    cr_assert (!group || dropped > 10, "only %d cuts dropped valid blocks (opened %d, refused %d)", dropped, opened, refused);
    for (size_t index = 0; index < count; index++) {
        s_file_write (paths [index], saved [index], sizes [index]);
        free (saved [index]);
        free (paths [index]);
    }
    s_open (model);
    s_model_destroy (&model);
}

Test (journal, random_damage_never_invents_state, .init = s_quiet, .timeout = 120)
{
    s_random_damage (false);
}

Test (journal, random_damage_with_late_syncs_cuts_only_what_no_later_block_vouches_for,
      .init = s_quiet, .timeout = 120)
{
    s_random_damage (true);
}

//  Forgets the commits after commit k, as a cut back to it does.
static void
s_model_rewind (s_model_t *self, int k)
{
    while (self->accept_count && self->accepts [self->accept_count - 1].accepted_at > k)
        self->accept_count--;
    for (size_t index = 0; index < self->accept_count; index++)
        if (self->accepts [index].verdict_at > k)
            self->accepts [index].verdict_at = 0;
    while (self->pub_count && self->pubs [self->pub_count - 1].committed_at > k)
        self->pub_count--;
    self->commits = k;
    self->next_seq = self->next_seq_at [k];
    memcpy (self->tag_seqs, self->tag_seqs_at [k], sizeof self->tag_seqs);
}

#define S_DAMAGES   6

//  Writes whole back to path, then damages the block of commit k: 0 its
//  magic, 1 its length, 2 its synced-through field, 3 a payload byte,
//  4 its CRC, 5 all of it zeroed (a write the disk never got).
static void
s_damage_block (s_model_t *model, const char *path, const uint8_t *whole, size_t size,
                int k, int how)
{
    s_file_write (path, whole, size);
    int64_t start = model->start_at [k], end = model->end_at [k];
    int64_t at = how == 0 ? start + 1 : how == 1 ? start + 5 : how == 2 ? start + S_BLOCK_SYNCED
               : how == 3 ? start + S_BLOCK + (end - start - S_BLOCK) / 2 : start + S_BLOCK_CRC;
    if (how < 5)
        s_poke (path, at, whole [at] ^ 0x24);
    else {
        int fd = open (path, O_WRONLY);
        cr_assert (fd >= 0);
        uint8_t zeros [4096] = { 0 };
        cr_assert ((size_t) (end - start) <= sizeof zeros);
        cr_assert_eq (pwrite (fd, zeros, (size_t) (end - start), start), end - start);
        close (fd);
    }
}

//  Opens the journal damaged by s_damage_block: it must refuse, naming the
//  file and the block's offset, and change nothing.
static void
s_expect_refused (s_model_t *model, const char *path, int k, int how, size_t size)
{
    char *error = NULL;
    pz_journal_t *journal = pz_journal_open (&model->config, &error);
    cr_assert_null (journal, "commit %d, damage %d: opened", k, how);
    char where [64];
    snprintf (where, sizeof where, "offset %" PRId64 ":", model->start_at [k]);
    cr_assert (error && strstr (error, path) && strstr (error, where),
               "commit %d, damage %d: '%s' lacks '%s' or '%s'", k, how, error, path, where);
    cr_assert_eq (s_file_size (path), (int64_t) size, "a refused journal was changed");
    free (error);
}

//  Opens the journal damaged by s_damage_block: it must open with the
//  state before commit k, the file cut where k's block began.
static void
s_expect_cut (s_model_t *model, const char *path, int k, int how)
{
    char *error = NULL;
    pz_journal_t *journal = pz_journal_open (&model->config, &error);
    cr_assert (journal, "commit %d, damage %d: %s", k, how, error);
    cr_assert_eq (s_file_size (path), model->start_at [k],
                  "commit %d, damage %d: cut to %" PRId64, k, how, s_file_size (path));
    s_check_state (model, journal, k - 1);
    pz_journal_destroy (&journal);
}

//  Power loss with blocks written and not synced: the disk may keep a
//  later one and lose an earlier one. None of them was acknowledged (a
//  sync covering them never completed), so they are all cut, the valid
//  ones after the bad one too; a synced block gone bad is still refused.
Test (journal, an_unsynced_block_lost_under_later_valid_ones_is_cut_with_them,
      .init = s_quiet, .timeout = 60)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    s_workload (model, 2);          //  commits 1, 2: committed (synced)
    model->group = true;
    s_workload (model, 4);          //  commits 3..6: written, no sync done
    s_check_recorded (model, 1, 6);
    for (int k = 3; k <= 6; k++)
        cr_assert_eq (model->recorded_at [k], model->end_at [2], "commit %d", k);
    pz_journal_destroy (&model->journal);
    char *path = s_path (model, 1);
    size_t size;
    uint8_t *whole = s_file_read (path, &size);
    for (int k = 3; k <= 6; k++)
        for (int how = 0; how < S_DAMAGES; how++) {
            s_damage_block (model, path, whole, size, k, how);
            s_expect_cut (model, path, k, how);
        }
    //  Commit 2's block is vouched for by every later block: damage.
    for (int k = 1; k <= 2; k++)
        for (int how = 0; how < S_DAMAGES; how++) {
            s_damage_block (model, path, whole, size, k, how);
            s_expect_refused (model, path, k, how, size);
        }
    //  After the cut the journal goes on; blocks written after an open
    //  record what it read back (and synced) as synced.
    s_damage_block (model, path, whole, size, 4, 5);
    s_open (model);
    s_model_rewind (model, 3);
    s_workload (model, 2);
    s_check_recorded (model, 4, 5);
    cr_assert_eq (model->recorded_at [4], model->start_at [4]);
    cr_assert_eq (model->recorded_at [5], model->start_at [4]);
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    free (whole);
    free (path);
    s_model_destroy (&model);
}

//  The broker's way: a sync done after commit 2 is reported before
//  commits 4..6 are written, so their blocks vouch for commits 1 and 2:
//  damage there is refused. Commit 3 was written before that sync was
//  known done, and no sync after it ever completed: it is cut.
Test (journal, a_block_a_later_one_records_as_synced_is_refused_when_bad,
      .init = s_quiet, .timeout = 60)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    model->group = true;
    s_workload (model, 3);          //  commits 1..3: written
    s_synced (model, 2);            //  a sync started after commit 2 is done
    s_workload (model, 3);          //  commits 4..6 record end of 2
    s_check_recorded (model, 1, 6);
    for (int k = 1; k <= 3; k++)
        cr_assert_eq (model->recorded_at [k], S_HEADER, "commit %d", k);
    for (int k = 4; k <= 6; k++)
        cr_assert_eq (model->recorded_at [k], model->end_at [2], "commit %d", k);
    pz_journal_destroy (&model->journal);
    char *path = s_path (model, 1);
    size_t size;
    uint8_t *whole = s_file_read (path, &size);
    for (int k = 1; k <= 2; k++)
        for (int how = 0; how < S_DAMAGES; how++) {
            s_damage_block (model, path, whole, size, k, how);
            s_expect_refused (model, path, k, how, size);
        }
    //  The boundary: 4..6 record the segment synced through 3's start,
    //  not past it.
    for (int k = 3; k <= 6; k++)
        for (int how = 0; how < S_DAMAGES; how++) {
            s_damage_block (model, path, whole, size, k, how);
            s_expect_cut (model, path, k, how);
        }
    //  Undamaged, all of it is there.
    s_file_write (path, whole, size);
    s_open (model);
    s_check_state (model, model->journal, 6);
    free (whole);
    free (path);
    s_model_destroy (&model);
}

//  What pz_journal_written and pz_journal_synced mean across segments:
//  the position only grows; a sync of a segment left since says nothing
//  of the new one (its header is synced: S_HEADER); a lower position changes
//  nothing; a commit counts as synced; an open counts what it read.
Test (journal, synced_positions_count_only_in_their_own_segment, .init = s_quiet,
      .timeout = 30)
{
    s_model_t *model = s_model_new (1024);
    model->group = true;
    int rolled = 0;
    while (!rolled) {
        s_workload (model, 1);
        cr_assert (model->commits < 100);
        if (model->segment_at [model->commits] != model->segment_at [1])
            rolled = model->commits;
    }
    cr_assert_gt (rolled, 2);
    for (int k = 2; k <= rolled; k++)
        cr_assert_gt (model->written_at [k], model->written_at [k - 1]);
    //  The sync of the old segment, done only now: nothing in the new one.
    s_synced (model, rolled - 1);
    s_workload (model, 1);
    cr_assert_eq (model->recorded_at [rolled + 1], S_HEADER);
    s_synced (model, rolled + 1);
    s_synced (model, rolled);       //  lower: changes nothing
    s_workload (model, 1);
    cr_assert_eq (model->recorded_at [rolled + 2], model->end_at [rolled + 1]);
    model->group = false;
    s_workload (model, 1);          //  a commit: synced when it returns
    model->group = true;
    s_workload (model, 1);
    cr_assert_eq (model->recorded_at [rolled + 4], model->end_at [rolled + 3]);
    s_reopen (model);
    s_workload (model, 1);
    cr_assert_eq (model->recorded_at [rolled + 5], model->start_at [rolled + 5]);
    s_check_recorded (model, 1, model->commits);
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    s_model_destroy (&model);
}

//  A block with a good CRC is what the journal wrote: one that claims its
//  own bytes synced, or less than the segment header, breaks a rule.
Test (journal, a_block_claiming_an_impossible_sync_is_refused, .init = s_quiet,
      .timeout = 30)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    s_workload (model, 3);
    pz_journal_destroy (&model->journal);
    char *path = s_path (model, 1);
    size_t size;
    uint8_t *whole = s_file_read (path, &size);
    int64_t claims [] = { 0, S_HEADER - 1, -1 };
    for (int k = 2; k <= 3; k++)
        for (size_t index = 0; index < 3; index++) {
            uint8_t *copy = (uint8_t *) malloc (size);
            memcpy (copy, whole, size);
            int64_t claim = claims [index] < 0 ? model->start_at [k] + 1 : claims [index];
            uint8_t *block = copy + model->start_at [k];
            for (int byte = 0; byte < 8; byte++)
                block [S_BLOCK_SYNCED + byte] = (uint8_t) ((uint64_t) claim >> (8 * byte));
            s_block_reseal (block, (size_t) (model->end_at [k] - model->start_at [k] - S_BLOCK));
            s_file_write (path, copy, size);
            char *error = NULL;
            cr_assert_null (pz_journal_open (&model->config, &error),
                            "commit %d claims %" PRId64, k, claim);
            cr_assert (error && strstr (error, "synced-through"), "%s", error);
            cr_assert_eq (s_file_size (path), (int64_t) size);
            free (error);
            free (copy);
        }
    s_file_write (path, whole, size);
    free (whole);
    free (path);
    s_open (model);
    s_model_destroy (&model);
}

//  An older format (version 2 segment headers have no room for the X
//  tag-seq; version 1 blocks no synced-through offset) is refused, and
//  the message says what to do; versions 3 (no ranges) and 4 (no verdict
//  bits) are read as they are.
Test (journal, an_older_format_is_refused_with_a_clear_message, .init = s_quiet,
      .timeout = 10)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    s_workload (model, 1);
    pz_journal_destroy (&model->journal);
    char *path = s_path (model, 1);
    size_t size;
    uint8_t *whole = s_file_read (path, &size);
    cr_assert_eq (whole [8], PZ_JOURNAL_VERSION);
    uint32_t crc;
    for (uint8_t version = 1; version < PZ_JOURNAL_VERSION; version++) {
        whole [8] = version;
        crc = pz_journal_crc32c (0, whole, S_HEADER - 4);
        for (int index = 0; index < 4; index++)
            whole [S_HEADER - 4 + index] = (uint8_t) (crc >> (8 * index));
        s_file_write (path, whole, size);
        char *error = NULL;
        pz_journal_t *journal = pz_journal_open (&model->config, &error);
        if (version >= 3) {
            cr_assert (journal, "version %d refused: %s", version, error);
            pz_journal_destroy (&journal);
            continue;
        }
        char expected [32], versions [32];
        snprintf (expected, sizeof expected, "format version %d", version);
        snprintf (versions, sizeof versions, "only versions 3 to %d", PZ_JOURNAL_VERSION);
        cr_assert_null (journal);
        cr_assert (error && strstr (error, path) && strstr (error, expected)
                   && strstr (error, versions)
                   && strstr (error, "move the directory"), "%s", error);
        cr_assert_eq (s_file_size (path), (int64_t) size);
        free (error);
    }
    whole [8] = PZ_JOURNAL_VERSION;
    crc = pz_journal_crc32c (0, whole, S_HEADER - 4);
    for (int index = 0; index < 4; index++)
        whole [S_HEADER - 4 + index] = (uint8_t) (crc >> (8 * index));
    s_file_write (path, whole, size);
    free (whole);
    free (path);
    s_open (model);
    s_model_destroy (&model);
}

Test (journal, a_failed_commit_leaves_nothing_and_a_later_one_works, .init = s_quiet,
      .timeout = 30)
{
    signal (SIGXFSZ, SIG_IGN);
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    s_workload (model, 4);
    char *path = s_path (model, 1);
    int64_t size = s_file_size (path);
    struct rlimit saved;
    getrlimit (RLIMIT_FSIZE, &saved);
    struct rlimit tight = { .rlim_cur = (rlim_t) size + 100, .rlim_max = saved.rlim_max };
    cr_assert_eq (setrlimit (RLIMIT_FSIZE, &tight), 0);
    s_accept (model, 60, 4242);
    s_accept (model, 60, 4243);
    s_verdict_oldest (model, 2, 3);
    errno = 0;
    cr_assert_eq (s_commit (model), -1);
    cr_assert_eq (errno, EFBIG, "errno %s", strerror (errno));
    cr_assert_eq (s_file_size (path), size, "a failed commit left bytes");
    cr_assert_eq (pz_journal_uncommitted (model->journal), 0);
    //  Room again: new entries (reusing the seqs) commit.
    cr_assert_eq (setrlimit (RLIMIT_FSIZE, &saved), 0);
    s_accept (model, 3, 4244);
    cr_assert_eq (s_commit (model), 0);
    pz_journal_stats_t stats;
    pz_journal_stats (model->journal, &stats);
    cr_assert_eq (stats.failed_commits, 1);
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    s_recent_list_t recent = { .count = 0 };
    pz_journal_take_recent (model->journal, 64, s_collect_recent, &recent);
    for (size_t index = 0; index < recent.count; index++)
        cr_assert (recent.ids [index] != 4242 && recent.ids [index] != 4243);
    cr_assert_eq (recent.ids [recent.count - 1], 4244);
    free (path);
    s_model_destroy (&model);
}

Test (journal, a_full_filesystem_fails_a_commit_until_space_is_freed, .init = s_quiet,
      .timeout = 30)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    pz_journal_destroy (&model->journal);
    //  A small tmpfs on the test directory, in namespaces of our own.
    uid_t uid = getuid ();
    gid_t gid = getgid ();
    if (uid != 0 && unshare (CLONE_NEWUSER | CLONE_NEWNS) == 0) {
        char map [64];
        FILE *file = fopen ("/proc/self/setgroups", "w");
        if (file) { fputs ("deny", file); fclose (file); }
        snprintf (map, sizeof map, "%u %u 1", (unsigned) uid, (unsigned) uid);
        file = fopen ("/proc/self/uid_map", "w");
        if (file) { fputs (map, file); fclose (file); }
        snprintf (map, sizeof map, "%u %u 1", (unsigned) gid, (unsigned) gid);
        file = fopen ("/proc/self/gid_map", "w");
        if (file) { fputs (map, file); fclose (file); }
    }
    else
    if (uid == 0)
        unshare (CLONE_NEWNS);
    if (mount ("tmpfs", model->dir, "tmpfs", 0, "size=256k") != 0) {
        int error = errno;
        s_model_destroy (&model);
        cr_skip_test ("cannot mount a tmpfs here: %s", strerror (error));
    }
    s_open (model);
    s_workload (model, 3);
    char filler_path [512];
    snprintf (filler_path, sizeof filler_path, "%s/filler", model->dir);
    int fd = open (filler_path, O_WRONLY | O_CREAT, 0644);
    cr_assert (fd >= 0);
    char page [4096] = { 1 };
    while (write (fd, page, sizeof page) > 0);
    close (fd);
    char *path = s_path (model, 1);
    int64_t size = s_file_size (path);
    for (int index = 0; index < 20; index++)
        s_accept (model, 60, 5000 + index);
    cr_assert_eq (s_commit (model), -1);
    cr_assert_eq (errno, ENOSPC, "errno %s", strerror (errno));
    cr_assert_eq (s_file_size (path), size);
    unlink (filler_path);
    s_workload (model, 2);
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    free (path);
    s_model_destroy (&model);
}

Test (journal, retention_deletes_verdicted_segments_by_size_and_age, .init = s_quiet,
      .timeout = 60)
{
    s_model_t *model = s_model_new (1024);
    //  An accept that stays without verdict, in the third segment or so.
    s_workload (model, 12);
    s_verdict_oldest (model, 64, 3);
    cr_assert_eq (s_commit (model), 0);
    s_accept (model, 2, 31337);
    cr_assert_eq (s_commit (model), 0);
    size_t kept = model->accept_count - 1;
    int64_t kept_seq = model->accepts [kept].seq;
    for (int round = 0; round < 40; round++) {
        s_accept (model, 1 + s_random (model) % 8, 0);
        cr_assert_eq (s_commit (model), 0);
        size_t list [64], count = 0;
        for (size_t index = 0; index < model->accept_count && count < 64; index++)
            if (index != kept && model->accepts [index].accepted_at
            &&  !model->accepts [index].verdict_at)
                list [count++] = index;
        s_verdict (model, list, count, 3);
        cr_assert_eq (s_commit (model), 0);
    }
    int64_t names [256];
    size_t before = s_segments (model, names, 256);
    cr_assert_geq (before, 8);
    cr_assert_eq (pz_journal_retain (model->journal), 0, "no limits: nothing deleted");

    //  By size: everything before the segment holding the pending accept.
    model->config.retain_bytes = 1;
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    size_t holding = 0;
    while (holding + 1 < before && names [holding + 1] <= kept_seq)
        holding++;
    cr_assert_eq (pz_journal_retain (model->journal), (int) holding);
    cr_assert_eq (pz_journal_oldest_seq (model->journal), names [holding]);
    cr_assert_eq (pz_journal_retain (model->journal), 0, "the pending accept's segment stays");
    pz_journal_reader_t *reader = pz_journal_reader_new (model->dir);
    uint8_t *got = (uint8_t *) malloc (1 << 20);
    uint8_t *expected = (uint8_t *) malloc (1 << 20);
    int64_t oldest = 0;
    int64_t last = model->next_seq - 1;
    size_t size = s_read_all (reader, 1, 0, last, S_ALL_TAGS, 4096, got, &oldest);
    cr_assert_eq (oldest, names [holding]);
    cr_assert_eq (size, s_expected (model, 1, 0, last, S_ALL_TAGS, names [holding], expected));
    cr_assert (memcmp (got, expected, size) == 0);

    //  Its verdict comes: all but the current segment go.
    size_t pick [] = { kept };
    s_verdict (model, pick, 1, 2);
    cr_assert_eq (s_commit (model), 0);
    cr_assert_geq (pz_journal_retain (model->journal), 1);
    size_t after = s_segments (model, names, 256);
    cr_assert_eq (after, 1, "%zu segments left", after);
    cr_assert_eq (pz_journal_oldest_seq (model->journal), names [0]);
    //  The reader notices the deletions; reopening ignores K records of
    //  deleted accepts.
    size = s_read_all (reader, 1, 0, model->next_seq - 1, S_ALL_TAGS, 4096, got, &oldest);
    cr_assert_eq (oldest, names [0]);
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    cr_assert_eq (pz_journal_oldest_seq (model->journal), names [0]);

    //  By age: segments last written two hours ago go, newer ones stay.
    model->config.retain_bytes = 0;
    model->config.retain_s = 3600;
    s_workload (model, 20);
    s_verdict_oldest (model, 64, 3);
    cr_assert_eq (s_commit (model), 0);
    pz_journal_destroy (&model->journal);
    size_t total = s_segments (model, names, 256);
    cr_assert_geq (total, 4);
    struct timeval old [2] = { { time (NULL) - 7200, 0 }, { time (NULL) - 7200, 0 } };
    for (size_t index = 0; index < 2; index++) {
        char *path = s_path (model, names [index]);
        cr_assert_eq (utimes (path, old), 0);
        free (path);
    }
    s_open (model);
    s_check_state (model, model->journal, model->commits);
    cr_assert_eq (pz_journal_retain (model->journal), 2);
    cr_assert_eq (pz_journal_oldest_seq (model->journal), names [2]);
    cr_assert_eq (s_segments (model, names, 256), total - 2);
    pz_journal_reader_destroy (&reader);
    free (got);
    free (expected);
    s_model_destroy (&model);
}

Test (journal, a_second_open_of_the_same_directory_is_refused, .init = s_quiet, .timeout = 10)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    char *error = NULL;
    pz_journal_t *second = pz_journal_open (&model->config, &error);
    cr_assert_null (second);
    cr_assert (error && strstr (error, "in use") && strstr (error, model->dir), "%s", error);
    free (error);
    pz_journal_destroy (&model->journal);
    second = pz_journal_open (&model->config, &error);
    cr_assert (second, "after the first closed: %s", error);
    pz_journal_destroy (&second);
    pz_journal_destroy (&second);   //  NULL-safe
    s_model_destroy (&model);
}


//  --------------------------------------------------------------------------
//  Ranges (docs/JOURNAL.md, version 3): accepted ranges and their pieces
//  come back at open, with the pieces done; a range done is gone, and its
//  publications are served as any.

//  Encodes count records of tag with values, then S seq T tag_seq, into
//  buffer. Returns the size.
static size_t
s_publication (uint8_t *buffer, char tag, const int64_t *values, size_t count,
               int64_t seq, int64_t tag_seq)
{
    for (size_t index = 0; index < count; index++)
        pz_record_encode (buffer + index * PZ_RECORD_SIZE, tag, values [index]);
    pz_record_encode (buffer + count * PZ_RECORD_SIZE, 'S', seq);
    pz_record_encode (buffer + (count + 1) * PZ_RECORD_SIZE, 'T', tag_seq);
    return (count + 2) * PZ_RECORD_SIZE;
}

//  What take_ranges hands back, gathered.
typedef struct {
    int64_t ranges [8][4];      //  key, tag, lo, hi
    size_t range_count;
    int64_t pieces [8][4];      //  key, lo, hi, count
    size_t piece_count;
    int64_t recent [8][2];      //  request id, count
    size_t recent_count;
} s_taken_t;

static void
s_take_range (void *arg, int64_t key, char tag, int64_t lo, int64_t hi)
{
    s_taken_t *taken = (s_taken_t *) arg;
    cr_assert (taken->range_count < 8);
    int64_t *range = taken->ranges [taken->range_count++];
    range [0] = key, range [1] = tag, range [2] = lo, range [3] = hi;
}

static void
s_take_piece (void *arg, int64_t key, int64_t lo, int64_t hi, int64_t count)
{
    s_taken_t *taken = (s_taken_t *) arg;
    cr_assert (taken->piece_count < 8);
    int64_t *piece = taken->pieces [taken->piece_count++];
    piece [0] = key, piece [1] = lo, piece [2] = hi, piece [3] = count;
}

static void
s_take_recent_id (void *arg, int64_t request_id, int64_t count)
{
    s_taken_t *taken = (s_taken_t *) arg;
    cr_assert (taken->recent_count < 8);
    taken->recent [taken->recent_count] [0] = request_id;
    taken->recent [taken->recent_count++] [1] = count;
}

Test (journal, ranges_and_pieces_come_back, .init = s_quiet, .timeout = 10)
{
    s_model_t *model = s_model_new (64 * 1024 * 1024);
    pz_journal_t *journal = model->journal;
    uint8_t publication [64 * PZ_RECORD_SIZE];
    //  A request I 42: N 7, R 10 R 100, Q 0 Q 1000 (ack 5): N 7 is seq 1,
    //  the ranges keys 1 and 2.
    int64_t seven = 7;
    size_t size = s_publication (publication, 'N', &seven, 1, 1, 1);
    pz_journal_accept (journal, 0, publication, size);
    uint8_t records [5 * PZ_RECORD_SIZE];
    const char tags [] = "NRRQQ";
    int64_t values [] = { 7, 10, 100, 0, 1000 };
    for (int index = 0; index < 5; index++)
        pz_record_encode (records + index * PZ_RECORD_SIZE, tags [index], values [index]);
    pz_journal_ranges (journal, 42, 5, 1, records, 5);
    cr_assert_eq (pz_journal_commit (journal), 0);
    //  A piece of key 1, [10, 50]: its 11 primes (seq 2); key 2 whole, 168
    //  primes, and its announcement (seq 3).
    int64_t primes [] = { 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47 };
    size = s_publication (publication, 'P', primes, 11, 2, 1);
    pz_journal_piece (journal, 1, 'R', 10, 50, 11, publication, size);
    int64_t announcement [] = { 0, 1000, 168 };
    size = s_publication (publication, 'R', announcement, 3, 3, 1);
    pz_journal_piece (journal, 2, 'Q', 0, 1000, 168, publication, size);
    cr_assert_eq (pz_journal_commit (journal), 0);
    pz_journal_destroy (&model->journal);

    s_open (model);
    journal = model->journal;
    cr_assert_eq (pz_journal_next_seq (journal), 4);
    cr_assert_eq (pz_journal_tag_seq (journal, 'P'), 1);
    cr_assert_eq (pz_journal_tag_seq (journal, 'R'), 1);
    cr_assert_eq (pz_journal_next_key (journal), 3);
    s_taken_t taken = { .range_count = 0 };
    pz_journal_take_recent (journal, 10, s_take_recent_id, &taken);
    cr_assert_eq (taken.recent_count, 1);
    cr_assert_eq (taken.recent [0][0], 42);
    cr_assert_eq (taken.recent [0][1], 5);
    pz_journal_take_ranges (journal, s_take_range, s_take_piece, &taken);
    //  Key 2 is done; key 1 comes back with its piece.
    cr_assert_eq (taken.range_count, 1);
    cr_assert_eq (taken.ranges [0][0], 1);
    cr_assert_eq (taken.ranges [0][1], 'R');
    cr_assert_eq (taken.ranges [0][2], 10);
    cr_assert_eq (taken.ranges [0][3], 100);
    cr_assert_eq (taken.piece_count, 1);
    cr_assert_eq (taken.pieces [0][1], 10);
    cr_assert_eq (taken.pieces [0][2], 50);
    cr_assert_eq (taken.pieces [0][3], 11);

    //  The rest of key 1, [51, 100]: 10 primes and the announcement; then
    //  nothing is left to take.
    int64_t more [] = { 53, 59, 61, 67, 71, 73, 79, 83, 89, 97 };
    size = s_publication (publication, 'P', more, 10, 4, 2);
    int64_t done [] = { 10, 100, 21 };
    size += s_publication (publication + size, 'R', done, 3, 5, 2);
    pz_journal_piece (journal, 1, 'R', 51, 100, 10, publication, size);
    cr_assert_eq (pz_journal_commit (journal), 0);
    pz_journal_destroy (&model->journal);
    s_open (model);
    memset (&taken, 0, sizeof taken);
    pz_journal_take_ranges (model->journal, s_take_range, s_take_piece, &taken);
    cr_assert_eq (taken.range_count, 0);
    cr_assert_eq (pz_journal_tag_seq (model->journal, 'R'), 2);

    //  History serves the P and R publications, skipping the journal-only
    //  entries.
    pz_journal_reader_t *reader = pz_journal_reader_new (model->dir);
    uint8_t buffer [4096];
    int64_t next, oldest;
    uint32_t mask = (UINT32_C (1) << ('P' - 'A')) | (UINT32_C (1) << ('R' - 'A'));
    size_t got = pz_journal_reader_read (reader, 1, 0, 5, mask, buffer, sizeof buffer,
                                         &next, &oldest);
    cr_assert_eq (got, (11 + 2 + 3 + 2 + 10 + 2 + 3 + 2) * PZ_RECORD_SIZE);
    cr_assert_eq (next, 6);
    cr_assert_eq (pz_record_value (buffer), 11);
    cr_assert_eq (buffer [13 * PZ_RECORD_SIZE], 'R');
    pz_journal_reader_destroy (&reader);
    s_model_destroy (&model);
}


//  Page cache: what is durable is handed back to the kernel, all but the
//  newest config.cache_bytes of the segment being written, and all of a
//  segment once a newer one takes the writes.

//  Returns how many pages of path's bytes [from, to) are in the page cache.
static size_t
s_resident_pages (const char *path, int64_t from, int64_t to)
{
    int fd = open (path, O_RDONLY);
    cr_assert (fd >= 0, "%s: %s", path, strerror (errno));
    struct stat info;
    cr_assert_eq (fstat (fd, &info), 0);
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    size_t pages = ((size_t) info.st_size + page - 1) / page;
    void *map = mmap (NULL, (size_t) info.st_size, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert (map != MAP_FAILED, "mmap: %s", strerror (errno));
    unsigned char *vector = (unsigned char *) malloc (pages);
    cr_assert_eq (mincore (map, (size_t) info.st_size, vector), 0, "mincore: %s",
                  strerror (errno));
    size_t resident = 0;
    for (size_t index = (size_t) from / page; index < pages
                       && (int64_t) (index * page) < to; index++)
        resident += vector [index] & 1;
    free (vector);
    munmap (map, (size_t) info.st_size);
    close (fd);
    return resident;
}

Test (journal, durable_bytes_leave_the_page_cache, .init = s_quiet, .timeout = 30)
{
    char dir [] = "/tmp/test_journal-XXXXXX";
    cr_assert (mkdtemp (dir));
    pz_journal_config_t config;
    pz_journal_config_init (&config);
    config.dir = dir;
    config.segment_bytes = 2 * 1024 * 1024;
    config.cache_bytes = 256 * 1024;
    char *error = NULL;
    pz_journal_t *journal = pz_journal_open (&config, &error);
    cr_assert (journal, "open failed: %s", error ? error : "?");
    //  Accepts of 1000 numbers (9,018 bytes each), one commit each.
    uint8_t publication [PZ_RECORD_SIZE * 1002];
    char first [PATH_MAX];
    snprintf (first, sizeof first, "%s/%020d.pzj", dir, 1);
    for (int64_t seq = 1; seq <= 300; seq++) {
        for (int index = 0; index < 1000; index++)
            pz_record_encode (publication + PZ_RECORD_SIZE * index, PZ_TAG_NUMBER,
                              seq * 1000 + index);
        pz_publication_trailer (publication + PZ_RECORD_SIZE * 1000, seq, seq);
        pz_journal_accept (journal, 0, publication, sizeof publication);
        cr_assert_eq (pz_journal_commit (journal), 0, "commit: %s", strerror (errno));
        if (seq == 200) {
            //  1.8 MB written and synced: its first MiB left the cache (the
            //  step: at least 1 MiB at a time); its newest 256 KiB did not.
            int64_t size = s_file_size (first);
            cr_assert_eq (size, 96 + 200 * (40 + 4 + (int64_t) sizeof publication));
            cr_assert_eq (s_resident_pages (first, 0, 1024 * 1024), 0,
                          "durable pages stayed in the page cache");
            cr_assert_gt (s_resident_pages (first, size - 256 * 1024, size), 0,
                          "the newest bytes left the page cache too");
        }
    }
    //  Past 2 MiB a second segment took the writes: the first is all gone.
    pz_journal_stats_t stats;
    pz_journal_stats (journal, &stats);
    cr_assert_eq (stats.segments, 2);
    cr_assert_eq (s_resident_pages (first, 0, s_file_size (first)), 0,
                  "a finished segment stayed in the page cache");
    pz_journal_destroy (&journal);
    s_remove_files (dir);
    rmdir (dir);
}


//  An accept handed over in parts (the broker's way when no sink takes N
//  live) is written exactly as the publication built from the same parts.
Test (journal, an_accept_in_parts_is_written_as_its_publication, .init = s_quiet,
      .timeout = 10)
{
    char dirs [2][32] = { "/tmp/test_journal-XXXXXX", "/tmp/test_journal-XXXXXX" };
    pz_journal_t *journals [2];
    for (int which = 0; which < 2; which++) {
        cr_assert (mkdtemp (dirs [which]));
        pz_journal_config_t config;
        pz_journal_config_init (&config);
        config.dir = dirs [which];
        char *error = NULL;
        journals [which] = pz_journal_open (&config, &error);
        cr_assert (journals [which], "open failed: %s", error ? error : "?");
    }
    uint8_t records [PZ_RECORD_SIZE * 5], publication [PZ_RECORD_SIZE * 7];
    for (int seq = 1; seq <= 3; seq++) {
        for (int index = 0; index < 5; index++)
            pz_record_encode (records + PZ_RECORD_SIZE * index, PZ_TAG_NUMBER,
                              1000 * seq + index);
        memcpy (publication, records, sizeof records);
        pz_publication_trailer (publication + sizeof records, seq, seq);
        int64_t request_id = seq == 2 ? 0 : 40 + seq;      //  with and without I
        pz_journal_accept (journals [0], request_id, publication, sizeof publication);
        pz_journal_accept_records (journals [1], request_id, records, 5, seq, seq);
        for (int which = 0; which < 2; which++)
            cr_assert_eq (pz_journal_commit (journals [which]), 0);
    }
    size_t sizes [2];
    uint8_t *files [2];
    for (int which = 0; which < 2; which++) {
        pz_journal_destroy (&journals [which]);
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%020d.pzj", dirs [which], 1);
        files [which] = s_file_read (path, &sizes [which]);
    }
    cr_assert_eq (sizes [0], sizes [1]);
    cr_assert (memcmp (files [0], files [1], sizes [0]) == 0, "the two journals differ");
    //  And history serves the publication of the parts.
    pz_journal_reader_t *reader = pz_journal_reader_new (dirs [1]);
    uint8_t buffer [4096];
    int64_t next, oldest;
    size_t size = pz_journal_reader_read (reader, 3, 4, 3, S_TAG_MASK ('N'), buffer,
                                          sizeof buffer, &next, &oldest);
    cr_assert_eq (size, sizeof publication);
    cr_assert (memcmp (buffer, publication, size) == 0);
    pz_journal_reader_destroy (&reader);
    for (int which = 0; which < 2; which++) {
        free (files [which]);
        s_remove_files (dirs [which]);
        rmdir (dirs [which]);
    }
}


//  A verdict is kept as its bits (K, V, S T: 9 bytes a record, not 9 a
//  number) when every accept it completes is in the segment it goes to;
//  as its publications when one is in an older segment or a rollover
//  comes first. Either way a reopen and history give back exactly what was
//  published; and history never invents a verdict whose accept it cannot
//  read.
Test (journal, a_verdict_is_kept_as_bits_where_its_accepts_are_in_its_segment,
      .init = s_quiet, .timeout = 20)
{
    s_model_t *model = s_model_new (4096);
    s_accept (model, 60, 0);                        //  accept 0
    cr_assert_eq (s_commit (model), 0);
    size_t first [] = { 0 };
    s_verdict (model, first, 1, 1);                 //  60 primes
    cr_assert_eq (s_commit (model), 0);
    int k = model->commits;
    cr_assert_eq (model->end_at [k] - model->start_at [k],
                  S_BLOCK + 4 + PZ_RECORD_SIZE * (1 + 1 + 2), "not kept as bits");

    //  Accepts until the segment is full: the next commit starts another.
    size_t old = model->accept_count;               //  stays without verdict
    while (model->end_at [model->commits] < 4096) {
        s_accept (model, 60, 0);
        cr_assert_eq (s_commit (model), 0);
    }
    size_t second [] = { old };
    s_verdict (model, second, 1, 2);                //  60 composites
    cr_assert_eq (s_commit (model), 0);
    k = model->commits;
    cr_assert_neq (model->segment_at [k], model->segment_at [k - 1], "no rollover");
    cr_assert_eq (model->end_at [k] - model->start_at [k],
                  S_BLOCK + 4 + PZ_RECORD_SIZE * (1 + 60 + 2), "not kept whole");

    //  One accept in the old segment, one in the new: whole again.
    s_accept (model, 5, 0);
    cr_assert_eq (s_commit (model), 0);
    size_t mixed [] = { old + 1, model->accept_count - 1 };
    size_t pubs_before = model->pub_count;
    s_verdict (model, mixed, 2, 3);
    cr_assert_eq (s_commit (model), 0);
    k = model->commits;
    int64_t whole = S_BLOCK + 4 + 2 * PZ_RECORD_SIZE;
    for (size_t index = pubs_before; index < model->pub_count; index++)
        whole += (int64_t) model->pubs [index].size + (index > pubs_before ? 4 : 0);
    cr_assert_eq (model->end_at [k] - model->start_at [k], whole);

    //  Both in the new one: bits, one V record per 64 numbers.
    s_accept (model, 64, 0);
    s_accept (model, 3, 0);
    cr_assert_eq (s_commit (model), 0);
    size_t fresh [] = { model->accept_count - 2, model->accept_count - 1 };
    pubs_before = model->pub_count;
    s_verdict (model, fresh, 2, 3);
    cr_assert_eq (s_commit (model), 0);
    k = model->commits;
    cr_assert_eq (model->end_at [k] - model->start_at [k],
                  S_BLOCK + 4 + PZ_RECORD_SIZE * (int64_t) (2 + 2 + 2 * (model->pub_count
                                                                        - pubs_before)));

    //  A reopen gives back the state, history every publication.
    s_reopen (model);
    s_check_state (model, model->journal, model->commits);
    int64_t last = model->next_seq - 1;
    uint8_t *expected = (uint8_t *) malloc (1 << 20);
    uint8_t *got = (uint8_t *) malloc (1 << 20);
    pz_journal_reader_t *reader = pz_journal_reader_new (model->dir);
    int64_t oldest = 0;
    size_t size = s_read_all (reader, 1, 0, last, S_ALL_TAGS, 65536, got, &oldest);
    size_t want = s_expected (model, 1, 0, last, S_ALL_TAGS, 1, expected);
    cr_assert (size == want && memcmp (got, expected, size) == 0,
               "history: %zu bytes, expected %zu", size, want);
    pz_journal_reader_destroy (&reader);

    //  Accept 0's block damaged: history skips it and the verdict kept as
    //  bits that needs it (logged), and serves everything else.
    char *path = s_path (model, model->segment_at [1]);
    s_poke (path, model->start_at [1] + S_BLOCK + 20, 0x5A);
    model->pubs [0].committed_at = model->pubs [1].committed_at = 0;
    reader = pz_journal_reader_new (model->dir);
    size = s_read_all (reader, 1, 0, last, S_ALL_TAGS, 65536, got, &oldest);
    want = s_expected (model, 1, 0, last, S_ALL_TAGS, 1, expected);
    cr_assert (size == want && memcmp (got, expected, size) == 0,
               "damaged: %zu bytes, expected %zu", size, want);
    pz_journal_reader_destroy (&reader);
    free (path);
    free (expected);
    free (got);
    s_model_destroy (&model);
}
