/*  =========================================================================
    journal - the broker's durable journal: a segmented append-only log of
              every accepted source message and every verdict

    The broker (one thread) appends what it accepts and each verdict during
    one loop iteration, then writes them as one block; a syncer thread
    fdatasyncs (group commit) and the broker tells the journal how far the
    syncs got (pz_journal_synced). It acknowledges a request and publishes
    its messages only after a sync covering the block holding them is done.
    On start it opens the journal, which reads every segment back, cuts
    what was never synced from the end of the last segment, refuses any
    other damage, and hands back what was accepted and has no verdict yet,
    the sequence numbers to go on from and the recent request ids.
    A reader (pz_journal_reader_t), for the history thread, serves old
    publications from the same files, read-only, with its own descriptors.
    docs/JOURNAL.md describes the on-disk format and the recovery rules.
    =========================================================================
*/
#ifndef PZ_JOURNAL_H_INCLUDED
#define PZ_JOURNAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define PZ_JOURNAL_VERSION      5                   //  format version of new segments
#define PZ_JOURNAL_VERSION_READ 3                   //  oldest version read (3: no ranges,
                                                    //  else the same)
#define PZ_JOURNAL_BLOCK_MAX    (64 * 1024 * 1024)  //  bytes of payload in one block, at most
//  Records in one entry, at most: 4096 K records + 4096 data records + S + T.
#define PZ_JOURNAL_ENTRY_RECORDS_MAX    (2 * PZ_RECORDS_MAX + 2)

typedef struct _pz_journal_t pz_journal_t;
typedef struct _pz_journal_reader_t pz_journal_reader_t;

typedef struct {
    const char *dir;            //  journal directory; created (one level) if missing
    int64_t segment_bytes;      //  start a new segment once the current one is this large
    int64_t retain_bytes;       //  keep at most this many bytes of segments (0: no limit)
    int64_t retain_s;           //  delete segments older than this, by last write (0: no limit)
    bool sync;                  //  fdatasync on commit
    int64_t recent_requests;    //  request ids remembered at open for take_recent
    int64_t cache_bytes;        //  bytes of the segment being written left in
                                //  the page cache once durable, the newest; the
                                //  rest is handed back (-1: all stays)
} pz_journal_config_t;

typedef struct {
    int64_t bytes;              //  bytes of segment files on disk
    int64_t segments;           //  segment files
    int64_t commits;            //  successful commits since open
    int64_t failed_commits;     //  commits that returned -1 since open
    int64_t unverdicted;        //  accepted publications without a verdict
} pz_journal_stats_t;

//  Called by pz_journal_take_pending for each accepted N publication that
//  has no verdict: its seq, request id (0 if none), and its count N records.
typedef void (pz_journal_pending_fn) (void *arg, int64_t seq, int64_t request_id,
                                      const uint8_t *records, size_t count);

//  Called by pz_journal_take_ranges for each accepted range not done: its
//  key, tag (R or Q) and bounds.
typedef void (pz_journal_range_fn) (void *arg, int64_t key, char tag, int64_t lo, int64_t hi);

//  Called by pz_journal_take_ranges, after its range, for each piece of it
//  done: bounds and count of primes.
typedef void (pz_journal_piece_fn) (void *arg, int64_t key, int64_t lo, int64_t hi,
                                    int64_t count);

//  Called by pz_journal_take_recent for each recent request id, with the
//  number of records accepted with it (its ack).
typedef void (pz_journal_recent_fn) (void *arg, int64_t request_id, int64_t count);

//  Fills config with the defaults: 64 MiB segments, no retention limit,
//  fdatasync on, 65,536 recent request ids, dir NULL.
void
    pz_journal_config_init (pz_journal_config_t *config);

//  Parses a --retain spec, "SIZE", "AGE" or "SIZE,AGE": SIZE like 500M, 2G
//  or 1048576 (K M G T, powers of 1024), AGE like 90s, 30m, 12h, 7d. Returns
//  true and sets both fields (0 for the part not given), or false.
bool
    pz_journal_retain_parse (const char *spec, int64_t *retain_bytes, int64_t *retain_s);

//  Opens the journal in config->dir (created if missing), locks it, reads
//  every segment back and cuts the end of the last segment from its first
//  bad block on if no later block records that block as synced (it was
//  never acknowledged: docs/JOURNAL.md "Recovery"). Returns NULL on any
//  other damage or error (a format version outside PZ_JOURNAL_VERSION_READ
//  .. PZ_JOURNAL_VERSION too), with *error_p (if error_p is not NULL; caller frees) one line
//  naming the file, byte offset and problem. With config->sync, makes the
//  last segment durable (fdatasync) before it returns: what it read back
//  counts as synced. Caller owns return value.
pz_journal_t *
    pz_journal_open (const pz_journal_config_t *config, char **error_p);

//  Destroys the journal, dropping anything not committed, and releases the
//  lock. NULL-safe; nulls *self_p.
void
    pz_journal_destroy (pz_journal_t **self_p);

//  Returns 1 + the last committed seq (1 if the journal is empty).
int64_t
    pz_journal_next_seq (pz_journal_t *self);

//  Returns the last committed tag-seq of a published tag (N, P, C, X, R), 0 if none.
int64_t
    pz_journal_tag_seq (pz_journal_t *self, char tag);

//  Returns the smallest seq the journal still holds (next_seq when empty).
int64_t
    pz_journal_oldest_seq (pz_journal_t *self);

//  Calls fn for every accepted N publication without a verdict, in seq
//  order, then frees the records kept for it. Call once, after open.
void
    pz_journal_take_pending (pz_journal_t *self, pz_journal_pending_fn *fn, void *arg);

//  Calls range_fn for every accepted range not done, by key, each followed
//  by piece_fn for each of its pieces done, then frees those pieces. Call
//  once, after open, before take_pending.
void
    pz_journal_take_ranges (pz_journal_t *self, pz_journal_range_fn *range_fn,
                            pz_journal_piece_fn *piece_fn, void *arg);

//  Returns 1 + the largest range key the journal holds (1 if none): the
//  key of the next range.
int64_t
    pz_journal_next_key (pz_journal_t *self);

//  Calls fn for the request ids of the last `limit` accepts that carried
//  one (at most config.recent_requests), oldest first. Then frees them.
void
    pz_journal_take_recent (pz_journal_t *self, size_t limit,
                            pz_journal_recent_fn *fn, void *arg);

//  Appends an accepted source message: its publication exactly as published
//  (N records, S, T) and its request id (0 if none). Buffered until commit.
void
    pz_journal_accept (pz_journal_t *self, int64_t request_id,
                       const uint8_t *publication, size_t size);

//  The same, from the N publication's parts: its count records, then its
//  seq and tag-seq (for a publication that was numbered, not built).
void
    pz_journal_accept_records (pz_journal_t *self, int64_t request_id,
                               const uint8_t *records, size_t count,
                               int64_t seq, int64_t tag_seq);

//  Appends a verdict: the seqs of the accepted publications it completes
//  (covers), their count N records in cover order (numbers), one verdict
//  bit each (V records at bits), and the seq and tag-seq of its P (index
//  0) and C (index 1) publications, 0 for a half with no numbers. Kept as
//  the bits when every cover is in the segment being written, else as the
//  two publications (docs/JOURNAL.md). Buffered until commit.
void
    pz_journal_verdict (pz_journal_t *self, const int64_t *covers, size_t cover_count,
                        const uint8_t *numbers, const uint8_t *bits, size_t count,
                        const int64_t *seqs, const int64_t *tag_seqs);

//  Appends a correction (docs: PROTOCOL.md "Audit"): its X publication
//  exactly as published. Buffered until commit.
void
    pz_journal_correction (pz_journal_t *self, const uint8_t *publication, size_t size);

//  Appends the ranges of an accepted source message: its request id (0 if
//  none) and the count of all its records (what its ack said), the key of
//  its first range (the others follow, one each), and its count records
//  (N records among them are skipped: they went in with pz_journal_accept).
//  Buffered until commit.
void
    pz_journal_ranges (pz_journal_t *self, int64_t request_id, int64_t acked,
                       int64_t first_key, const uint8_t *records, size_t count);

//  Appends a finished piece of range key: tag (R or Q), bounds, its count
//  of primes, and the publications it made (its P publications and, if it
//  finished the range, the R announcement, one after another; size 0 for
//  none). Buffered until commit.
void
    pz_journal_piece (pz_journal_t *self, int64_t key, char tag, int64_t lo,
                      int64_t hi, int64_t count, const uint8_t *publications,
                      size_t size);

//  Writes everything appended since the last commit as one block, with one
//  write() and one fdatasync (none if config.sync is false), and counts it
//  as synced. Returns 0, or -1 with errno set: then none of it is in the
//  journal, its seqs may be used again, and the caller must forget those
//  accepts (a later verdict may not cover them).
int
    pz_journal_commit (pz_journal_t *self);

//  Like pz_journal_commit, but without the fdatasync: the block is written
//  (to the page cache) and is durable only after a sync of the descriptor
//  pz_journal_sync_fd gives, in another thread (group commit: one sync
//  covers every write before it). A new segment syncs the old one first,
//  so a sync of the current descriptor covers every earlier write. Each
//  block records how far the journal knew the segment synced when it was
//  written (pz_journal_synced): recovery trusts nothing else.
int
    pz_journal_write (pz_journal_t *self);

//  Returns the journal's write position: where the last block written
//  (by write or commit) ends, as a number that only grows while the
//  journal is open (the offset in the current segment plus the bytes of
//  the segments written before it since open). Take it when a sync starts
//  (with pz_journal_sync_fd) and hand it to pz_journal_synced when that
//  sync is done. Meaningful only to this journal object.
int64_t
    pz_journal_written (pz_journal_t *self);

//  Tells the journal that a sync (fdatasync of a pz_journal_sync_fd
//  descriptor) that started after the write position was `position`
//  (pz_journal_written) has completed: everything up to it is durable.
//  Blocks written from now on record it. A position in a segment the
//  journal has left since is ignored (the rollover synced that segment);
//  one below what is known already changes nothing. Call it only after
//  the sync succeeded: a block that claims a sync that did not happen
//  turns a harmless lost write into a journal that refuses to open.
void
    pz_journal_synced (pz_journal_t *self, int64_t position);

//  Returns a new descriptor (a dup; the caller closes it) of the segment
//  being written, to fdatasync from another thread; -1 if dup fails.
int
    pz_journal_sync_fd (pz_journal_t *self);

//  Returns the bytes appended and not yet committed.
size_t
    pz_journal_uncommitted (pz_journal_t *self);

//  Deletes the oldest segments while over retain_bytes or older than
//  retain_s, only those whose accepts all have verdicts, never the one being
//  written. Returns how many were deleted.
int
    pz_journal_retain (pz_journal_t *self);

//  Fills stats with the journal's counters.
void
    pz_journal_stats (pz_journal_t *self, pz_journal_stats_t *stats);

//  Returns CRC32C (Castagnoli) of size bytes at data, continuing from crc
//  (0 to start). Uses SSE4.2 when the CPU has it.
uint32_t
    pz_journal_crc32c (uint32_t crc, const void *data, size_t size);

//  The same, always by table (slicing-by-8): for tests.
uint32_t
    pz_journal_crc32c_portable (uint32_t crc, const void *data, size_t size);

//  Creates a reader on the journal in dir: needs nothing but the directory,
//  opens files read-only, never writes or locks. Caller owns return value.
pz_journal_reader_t *
    pz_journal_reader_new (const char *dir);

//  Destroys a reader. NULL-safe; nulls *self_p.
void
    pz_journal_reader_destroy (pz_journal_reader_t **self_p);

//  Copies the publications with from <= seq < until (until 0: no bound) and
//  seq <= durable_end whose tag's bit (tag - 'A') is in tag_mask, in seq
//  order, exactly as published, as many whole ones as fit in buf_size.
//  Sets *next (every wanted publication below it was copied or is gone) and
//  *oldest (smallest seq held; durable_end + 1 if none). Returns bytes.
size_t
    pz_journal_reader_read (pz_journal_reader_t *self, int64_t from, int64_t until,
                            int64_t durable_end, uint32_t tag_mask,
                            uint8_t *buf, size_t buf_size, int64_t *next, int64_t *oldest);

#endif
