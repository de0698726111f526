/*  =========================================================================
    sink - subscribes to tags on the broker's PUB and prints every message
           of them, with no silent gap

    Per tag the sink tracks the last message it printed (seq, tag-seq).
    A live message whose tag-seq is not the next one reveals a gap: the
    missing range is read from history (one request at a time on a DEALER,
    in the chunks the broker serves, Lazy Pirate on timeout) and printed
    before that message; what history does not serve is lost. A message
    whose seq is not beyond the last live one means the broker restarted
    without a journal: the sequences start again at 1. A live message at or
    before what history already printed is skipped. With --from new a tag
    starts at the first message of it that arrives, or, if the sink was
    idle before that and history said none of it had been published yet,
    at its very first.

    Everything read from the network is validated: a malformed publication
    or history reply is counted, logged and dropped, never asserted on.

    The resume file is text, rewritten (FILE.tmp, then rename) after every
    write of output:

        playzmq-sink resume 1
        tag P seq 40 tag-seq 7 partial 0
        output dev 2049 ino 1311 size 5120
        output-path /home/me/primes.txt

    One `tag` line per tag with a position: the last message printed of
    that tag is seq/tag-seq; partial K > 0 means only its first K records
    were printed (--count stopped in it); tag-seq 0 means none printed yet
    and nothing before seq wanted. A tag without a line starts with new
    messages. `output` (only when the output is a regular file) names the
    file and its size after the last write, `output-path` its path: lines a
    killed run wrote after its last position are cut from that file, as
    the next run prints them again (into it or into another file).
    =========================================================================
*/
#include "sink.h"
#include "publication.h"
#include "record.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_TAGS          PZ_TAG_COUNT        //  N, P, C, X, R
#define S_FLUSH_AT      (64 * 1024)         //  write the buffer when it holds this
#define S_LINE_MAX      48                  //  bytes, longest line (JSON, INT64_MIN: 41)
#define S_BUFFER_SIZE   (S_FLUSH_AT + PZ_RECORDS_MAX * S_LINE_MAX)
#define S_REPORT_MS     1000                //  at most one gap line this often
#define S_RETRY_MS      5000                //  history silent: next try after this
#define S_PIPE_BYTES    (1024 * 1024)       //  output pipe's size asked for (Linux's default most)
#define S_RESUME_MAX    (1024 + PATH_MAX)   //  bytes of a resume file, at most
#define S_OUTPUT_PATH   "output-path "      //  its line naming the output file
#define S_RESUME_HEADER "playzmq-sink resume 1"

//  Where the sink stands in one tag's messages.
typedef struct {
    bool started;               //  seq is a position: the tag's messages up to it
                                //  are printed or accounted for
    bool baseline;              //  tag_seq is known: the next one is tag_seq + 1
    int64_t seq;                //  seq of the last message printed (or the start)
    int64_t tag_seq;            //  tag-seq of the last message printed
    int64_t skip;               //  records of message tag_seq + 1 printed by an
                                //  earlier run (resume of a partial message)
    int64_t partial;            //  records printed of the last message when
                                //  count cut it short; 0: printed whole
} s_track_t;

//  Gaps not yet reported on stderr (rate-limited).
typedef struct {
    int64_t gaps;               //  gaps
    int64_t missed;             //  messages missed in them
    int64_t filled;             //  of which printed from history
    int64_t lost;               //  of which lost
    int64_t seq_low;            //  lowest seq of the missed range
    int64_t seq_high;           //  highest seq of the missed range
    bool tags [S_TAGS];         //  tags that had gaps
} s_pending_t;

struct _pz_sink_t {
    pz_sink_config_t config;    //  configuration (strings owned below)
    char *endpoint;             //  owned copy of config.connect
    char *history_endpoint;     //  owned copy of config.history, or NULL
    char *tags;                 //  owned copy of config.tags
    char *resume_path;          //  owned copy of config.resume, or NULL
    char *resume_tmp;           //  resume_path + ".tmp"
    int out_fd;                 //  where records go; not ours
    bool out_regular;           //  out_fd is a regular file
    char *out_path;             //  its path (from /proc/self/fd), or NULL
    zsock_t *sub;               //  the subscription
    zsock_t *history;           //  DEALER to history; NULL after a failure
    bool wanted [S_TAGS];       //  N, P, C, X: print records of this tag?
    s_track_t track [S_TAGS];   //  per tag: the last message printed
    int64_t live_seq;           //  seq of the last live message, any tag; 0: none
    int64_t origin_seq;         //  seq before the first live message (start of
                                //  a --from new stream); -1: none yet
    int64_t printed;            //  records printed in this run
    char *buffer;               //  formatted output not yet written
    size_t buffered;            //  bytes in buffer
    bool dirty;                 //  position changed since the resume file was written
    bool stopped;               //  count reached, reader gone, error or strict loss
    int status;                 //  what pz_sink_run returns
    bool history_down;          //  the last request got no answer
    int64_t history_retry_ms;   //  when history_down, no request before this (mono)
    int64_t history_oldest;     //  oldest seq history holds, last reply; 0: unknown
    int64_t history_next;       //  A next of the last reply
    int64_t history_last [S_TAGS];  //  T last per tag, last reply
    int64_t trailing_last [S_TAGS]; //  T last per tag at the previous idle check
    int64_t fill_limit [S_TAGS];    //  a fill accounts tag-seqs up to this itself
    int64_t fill_upto [S_TAGS];     //  messages printed from history up to fill_limit
    s_pending_t pending;        //  gaps not reported yet
    int64_t report_ms;          //  no gap line before this (mono)
    pz_sink_stats_t stats;      //  counters
};

static const char s_tag_order [] = PZ_TAGS_PUBLISHED;  //  index into track, stats.by_tag
static const char s_pairs [] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536"
    "37383940414243444546474849505152535455565758596061626364656667686970717273"
    "74757677787980818283848586878889909192939495969798999";

//  Fills config with the defaults.
void
pz_sink_config_init (pz_sink_config_t *config)
{
    assert (config);
    *config = (pz_sink_config_t) {
        .connect = "tcp://localhost:5556",
        .tags = "PR",
        .format = PZ_SINK_TEXT,
        //  Ten times the broker's --publish-hwm: a sink that falls behind
        //  for a while (a busy machine, a slow disk) holds the backlog in
        //  its own memory, at most 10000 messages (~180 MiB at batch 1024,
        //  a few MiB at batch 1), before the broker has to drop any for it.
        .hwm = 10000,
        .history_timeout_ms = 2000,
        .idle_ms = 500
    };
    pz_sockopts_init (&config->sockopts);
}

//  Returns true if tags is a non-empty string of letters from "NPCXR".
bool
pz_sink_tags_valid (const char *tags)
{
    return tags && *tags && strspn (tags, s_tag_order) == strlen (tags);
}

//  Parses a format name. Returns false for an unknown one.
bool
pz_sink_format_parse (const char *name, pz_sink_format_t *format)
{
    assert (name && format);
    const char *names [] = { "text", "json", "csv", "none" };
    for (int index = 0; index < 4; index++)
        if (streq (name, names [index])) {
            *format = (pz_sink_format_t) index;
            return true;
        }
    return false;
}

//  Parses new, all or a sequence number. Returns false otherwise.
bool
pz_sink_from_parse (const char *text, int64_t *from_seq)
{
    assert (text && from_seq);
    if (streq (text, "new"))
        *from_seq = 0;
    else
    if (streq (text, "all"))
        *from_seq = 1;
    else {
        char *end = NULL;
        errno = 0;
        long long value = strtoll (text, &end, 10);
        if (end == text || *end || errno || value < 1 || text [0] == ' ' || text [0] == '+')
            return false;
        *from_seq = value;
    }
    return true;
}

//  Asks for a larger pipe when the output is one. Its reader (`wc`, a
//  script, `grep`) runs on another core: with the default 64 KiB the sink
//  waits at every flush until the reader has caught up, and reads nothing
//  from the broker meanwhile (`| wc -lc` of a JSON sink alone: 14.7M
//  lines/s with the sink half idle, 29M with 1 MiB). Where the size is
//  refused (pipe-max-size, a user's pipe quota), nothing changes.
static void
s_widen_pipe (int fd)
{
#ifdef F_SETPIPE_SZ
    struct stat status;
    if (fstat (fd, &status) == 0 && S_ISFIFO (status.st_mode)
    &&  fcntl (fd, F_GETPIPE_SZ) < S_PIPE_BYTES)
        fcntl (fd, F_SETPIPE_SZ, S_PIPE_BYTES);
#else
    (void) fd;
#endif
}

//  Creates a sink, connects and subscribes; NULL on a bad endpoint.
pz_sink_t *
pz_sink_new (const pz_sink_config_t *config, int out_fd)
{
    assert (config && config->connect && out_fd >= 0);
    assert (pz_sink_tags_valid (config->tags));
    pz_sink_t *self = (pz_sink_t *) zmalloc (sizeof (pz_sink_t));
    assert (self);
    self->config = *config;
    self->endpoint = strdup (config->connect);
    //  Whoever reads verdicts reads their corrections too.
    if (strpbrk (config->tags, "PC") && !strchr (config->tags, PZ_TAG_CORRECTION))
        self->tags = zsys_sprintf ("%sX", config->tags);
    else
        self->tags = strdup (config->tags);
    if (config->history && *config->history)
        self->history_endpoint = strdup (config->history);
    if (config->resume) {
        self->resume_path = strdup (config->resume);
        self->resume_tmp = zsys_sprintf ("%s.tmp", config->resume);
    }
    self->out_fd = out_fd;
    s_widen_pipe (out_fd);
    self->buffer = (char *) malloc (S_BUFFER_SIZE);
    assert (self->buffer);
    self->status = PZ_SINK_OK;
    self->origin_seq = -1;
    pz_sockopts_t opts = config->sockopts;
    opts.heartbeat_ivl_ms = 0;          //  its queue fills: see sock.h
    opts.rcvhwm = (int) config->hwm;
    self->sub = pz_sock_open (ZMQ_SUB, "publish SUB", self->endpoint, false, &opts);
    if (!self->sub) {
        pz_sink_destroy (&self);
        return NULL;
    }
    for (const char *tag = self->tags; *tag; tag++) {
        char prefix [2] = { *tag, '\0' };
        zsock_set_subscribe (self->sub, prefix);
        self->wanted [pz_publication_tag_index (*tag)] = true;
    }
    if (self->history_endpoint) {
        //  Opened now so that a bad endpoint is an error at start.
        self->history = pz_sock_open (ZMQ_DEALER, "history DEALER",
                                      self->history_endpoint, false, &config->sockopts);
        if (!self->history) {
            pz_sink_destroy (&self);
            return NULL;
        }
    }
    return self;
}

//  Destroys the sink. NULL-safe.
void
pz_sink_destroy (pz_sink_t **self_p)
{
    assert (self_p);
    pz_sink_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->history);
    zsock_destroy (&self->sub);
    free (self->buffer);
    zstr_free (&self->resume_tmp);
    zstr_free (&self->resume_path);
    zstr_free (&self->out_path);
    zstr_free (&self->tags);
    zstr_free (&self->history_endpoint);
    zstr_free (&self->endpoint);
    free (self);
    *self_p = NULL;
}

//  Copies the sink's counters into stats.
void
pz_sink_stats (pz_sink_t *self, pz_sink_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}

//  Writes the summary line into buffer.
void
pz_sink_summary (pz_sink_t *self, char *buffer, size_t size)
{
    assert (self && buffer);
    pz_sink_stats_t *stats = &self->stats;
    //  Ranges announced only when there were some: the line stays as it
    //  was for runs of numbers.
    char ranges [32] = "";
    uint64_t announced = stats->by_tag [pz_publication_tag_index (PZ_TAG_RANGE)];
    if (announced > 0)
        snprintf (ranges, sizeof ranges, ", R %" PRIu64, announced);
    snprintf (buffer, size, "printed N %" PRIu64 ", P %" PRIu64 ", C %" PRIu64
              "%s; %" PRIu64 " malformed messages dropped; gaps %" PRIu64
              ", filled %" PRIu64 " messages from history, lost %" PRIu64 " messages"
              "; corrections %" PRIu64,
              stats->by_tag [0], stats->by_tag [1], stats->by_tag [2], ranges,
              stats->malformed, stats->gaps, stats->filled, stats->lost, stats->by_tag [3]);
}

//  -------------------------------------------------------------------------
//  Output: formatting, writing, the resume file

//  Writes v (below 10^8) in decimal, without leading zeros, at cursor.
//  Returns the end of the digits.
static inline char *
s_put_small (char *cursor, uint32_t v)
{
    int digits = v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4
               : v < 100000 ? 5 : v < 1000000 ? 6 : v < 10000000 ? 7 : 8;
    char *end = cursor + digits;
    char *at = end;
    while (v >= 100) {
        at -= 2;
        memcpy (at, s_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10)
        memcpy (at - 2, s_pairs + 2 * v, 2);
    else
        at [-1] = (char) ('0' + v);
    return end;
}

//  Writes v (below 10^8) as exactly eight digits at cursor.
static inline char *
s_put_eight (char *cursor, uint32_t v)
{
    uint32_t high = v / 10000, low = v % 10000;
    memcpy (cursor, s_pairs + 2 * (high / 100), 2);
    memcpy (cursor + 2, s_pairs + 2 * (high % 100), 2);
    memcpy (cursor + 4, s_pairs + 2 * (low / 100), 2);
    memcpy (cursor + 6, s_pairs + 2 * (low % 100), 2);
    return cursor + 8;
}

//  Writes value in decimal at cursor, in chunks of eight digits so that
//  the divisions are 32-bit ones. Returns the end of the digits.
static inline char *
s_put_int (char *cursor, int64_t value)
{
    uint64_t magnitude = (uint64_t) value;
    if (value < 0) {
        *cursor++ = '-';
        magnitude = 0 - magnitude;
    }
    const uint64_t eight = 100000000;
    if (magnitude < eight)
        return s_put_small (cursor, (uint32_t) magnitude);
    if (magnitude < eight * eight) {
        cursor = s_put_small (cursor, (uint32_t) (magnitude / eight));
        return s_put_eight (cursor, (uint32_t) (magnitude % eight));
    }
    cursor = s_put_small (cursor, (uint32_t) (magnitude / (eight * eight)));
    cursor = s_put_eight (cursor, (uint32_t) (magnitude / eight % eight));
    return s_put_eight (cursor, (uint32_t) (magnitude % eight));
}

//  Writes the resume file: FILE.tmp, then rename. On failure, logs, stops
//  the run with PZ_SINK_OUTPUT_ERROR.
static void
s_save_position (pz_sink_t *self)
{
    char text [S_RESUME_MAX];
    int length = snprintf (text, sizeof text, "%s\n", S_RESUME_HEADER);
    for (int slot = 0; slot < S_TAGS; slot++) {
        s_track_t *track = &self->track [slot];
        if (!self->wanted [slot])
            continue;
        int64_t seq = track->seq, tag_seq = track->baseline ? track->tag_seq : 0;
        int64_t partial = track->partial;
        if (track->skip > 0) {
            //  An earlier run's partial message, not printed further yet.
            seq++;
            tag_seq++;
            partial = track->skip;
        }
        if (!track->started) {
            if (self->origin_seq < 0)
                continue;       //  --from new, nothing seen yet: starts new
            seq = self->origin_seq;
            tag_seq = partial = 0;
        }
        length += snprintf (text + length, sizeof text - (size_t) length,
                            "tag %c seq %" PRId64 " tag-seq %" PRId64 " partial %" PRId64 "\n",
                            s_tag_order [slot], seq, tag_seq, partial);
    }
    struct stat status;
    if (self->out_regular && fstat (self->out_fd, &status) == 0) {
        length += snprintf (text + length, sizeof text - (size_t) length,
                            "output dev %ju ino %ju size %jd\n", (uintmax_t) status.st_dev,
                            (uintmax_t) status.st_ino, (intmax_t) status.st_size);
        if (self->out_path)
            length += snprintf (text + length, sizeof text - (size_t) length,
                                S_OUTPUT_PATH "%s\n", self->out_path);
    }
    assert (length > 0 && (size_t) length < sizeof text);
    int fd = open (self->resume_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool saved = fd >= 0
              && write (fd, text, (size_t) length) == length
              && close (fd) == 0
              && rename (self->resume_tmp, self->resume_path) == 0;
    if (!saved) {
        zsys_error ("sink: cannot write the resume file '%s': %s",
                    self->resume_path, strerror (errno));
        if (fd >= 0)
            close (fd);
        self->status = PZ_SINK_OUTPUT_ERROR;
        self->stopped = true;
    }
    self->dirty = false;
}

//  Writes the buffer out (whole, handling short writes), then the resume
//  file if the position changed. Returns false if the output is closed
//  (reader gone: quietly) or failed (logged, PZ_SINK_OUTPUT_ERROR).
static bool
s_flush (pz_sink_t *self)
{
    size_t done = 0;
    while (done < self->buffered) {
        ssize_t written = write (self->out_fd, self->buffer + done, self->buffered - done);
        if (written > 0) {
            done += (size_t) written;
            continue;
        }
        if (written < 0 && errno == EINTR && !zsys_interrupted)
            continue;
        if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !zsys_interrupted) {
            struct pollfd ready = { .fd = self->out_fd, .events = POLLOUT };
            poll (&ready, 1, 100);
            continue;
        }
        if (written < 0 && errno != EPIPE && errno != EINTR) {
            zsys_error ("sink: cannot write the output: %s", strerror (errno));
            self->status = PZ_SINK_OUTPUT_ERROR;
        }
        //  Reader gone (EPIPE) or interrupted while blocked: stop quietly.
        self->buffered = 0;
        self->stopped = true;
        return false;
    }
    if (self->buffered > 0)
        self->stats.writes++;
    self->buffered = 0;
    if (self->resume_path && self->dirty)
        s_save_position (self);
    return self->status == PZ_SINK_OK;
}

//  Formats records [first, last) of a message of tag into the buffer. A
//  correction's records are verdicts set right, each printed behind an X:
//  `X C 4` (text), `X,C,4` (csv), {"tag":"X","verdict":"C","value":4}.
static void
s_format (pz_sink_t *self, char tag, const uint8_t *records, size_t first, size_t last)
{
    if (tag == PZ_TAG_CORRECTION && self->config.format != PZ_SINK_NONE) {
        if (self->buffered + (last - first) * S_LINE_MAX > S_BUFFER_SIZE)
            s_flush (self);
        for (size_t index = first; index < last; index++) {
            const uint8_t *record = records + index * PZ_RECORD_SIZE;
            const char *format = self->config.format == PZ_SINK_TEXT ? "X %c %" PRId64 "\n"
                               : self->config.format == PZ_SINK_CSV ? "X,%c,%" PRId64 "\n"
                               : "{\"tag\":\"X\",\"verdict\":\"%c\",\"value\":%" PRId64 "}\n";
            self->buffered += (size_t) snprintf (self->buffer + self->buffered,
                                                 S_BUFFER_SIZE - self->buffered, format,
                                                 pz_record_tag (record), pz_record_value (record));
        }
        return;
    }
    if (self->buffered + (last - first) * S_LINE_MAX > S_BUFFER_SIZE)
        s_flush (self);
    char *cursor = self->buffer + self->buffered;
    const uint8_t *record = records + first * PZ_RECORD_SIZE;
    const uint8_t *end = records + last * PZ_RECORD_SIZE;
    if (tag == PZ_TAG_RANGE && first == 0 && last == PZ_ANNOUNCEMENT_RECORDS) {
        //  A range's announcement, one line: R lo:hi count.
        int64_t lo = pz_record_value (records);
        int64_t hi = pz_record_value (records + PZ_RECORD_SIZE);
        int64_t count = pz_record_value (records + 2 * PZ_RECORD_SIZE);
        const char *formats [] = {
            "R %" PRId64 ":%" PRId64 " %" PRId64 "\n",
            "{\"tag\":\"R\",\"lo\":%" PRId64 ",\"hi\":%" PRId64 ",\"count\":%" PRId64 "}\n",
            "R,%" PRId64 ":%" PRId64 ",%" PRId64 "\n"
        };
        if (self->config.format != PZ_SINK_NONE)
            cursor += sprintf (cursor, formats [self->config.format], lo, hi, count);
        self->buffered = (size_t) (cursor - self->buffer);
        return;
    }
    switch (self->config.format) {
        case PZ_SINK_TEXT:
        case PZ_SINK_CSV: {
            char separator = self->config.format == PZ_SINK_TEXT ? ' ' : ',';
            for (; record < end; record += PZ_RECORD_SIZE) {
                cursor [0] = tag;
                cursor [1] = separator;
                cursor = s_put_int (cursor + 2, pz_record_value (record));
                *cursor++ = '\n';
            }
            break;
        }
        case PZ_SINK_JSON:
            for (; record < end; record += PZ_RECORD_SIZE) {
                memcpy (cursor, "{\"tag\":\"", 8);
                cursor [8] = tag;
                memcpy (cursor + 9, "\",\"value\":", 10);
                cursor = s_put_int (cursor + 19, pz_record_value (record));
                cursor [0] = '}';
                cursor [1] = '\n';
                cursor += 2;
            }
            break;
        case PZ_SINK_NONE:
            break;
    }
    self->buffered = (size_t) (cursor - self->buffer);
}

//  Prints a publication (from its first record not printed by an earlier
//  run, up to count) and makes it the tag's last message printed.
static void
s_print (pz_sink_t *self, const pz_publication_t *whole)
{
    //  A correction's X record names what it corrects and is not printed:
    //  its verdicts are the records.
    pz_publication_t corrected = *whole;
    if (whole->tag == PZ_TAG_CORRECTION) {
        corrected.records += PZ_RECORD_SIZE;
        corrected.count--;
    }
    const pz_publication_t *publication = &corrected;
    int slot = pz_publication_tag_index (publication->tag);
    s_track_t *track = &self->track [slot];
    size_t first = 0;
    if (track->skip > 0 && track->baseline && publication->tag_seq == track->tag_seq + 1)
        first = track->skip < (int64_t) publication->count ? (size_t) track->skip
                                                           : publication->count;
    size_t last = publication->count;
    //  An announcement is one line: never cut (a sink stops before it when
    //  --count is reached).
    if (self->config.count > 0 && publication->tag != PZ_TAG_RANGE
    &&  (int64_t) (last - first) > self->config.count - self->printed)
        last = first + (size_t) (self->config.count - self->printed);
    s_format (self, publication->tag, publication->records, first, last);
    //  An announcement (three records) is one line, counted as one.
    size_t lines = publication->tag == PZ_TAG_RANGE && last > first ? 1 : last - first;
    self->stats.by_tag [slot] += lines;
    self->printed += (int64_t) lines;
    track->started = track->baseline = true;
    track->seq = publication->seq;
    track->tag_seq = publication->tag_seq;
    track->skip = 0;
    track->partial = last < publication->count ? (int64_t) last : 0;
    self->dirty = true;
    if (self->config.count > 0 && self->printed >= self->config.count)
        self->stopped = true;
    if (self->buffered >= S_FLUSH_AT)
        s_flush (self);
}

//  Parses text made of 1 to 20 decimal digits (no sign, no space) into
//  *value. Returns false otherwise or on overflow.
static bool
s_parse_number (const char *text, uint64_t *value)
{
    size_t length = strlen (text);
    if (length == 0 || length > 20 || strspn (text, "0123456789") != length)
        return false;
    errno = 0;
    unsigned long long parsed = strtoull (text, NULL, 10);
    if (errno == ERANGE)
        return false;
    *value = parsed;
    return true;
}

//  A run killed between a write of its output and the save of its
//  position left lines in its output that this run prints again. Into the
//  same file they are cut off above; into another, the earlier run's file
//  is cut back here, if it is still where it was and still that file, so
//  that the outputs of the runs together hold every line once. Not being
//  able to is logged: the lines after the position then come twice.
static void
s_cut_earlier_output (pz_sink_t *self, const char *path, uint64_t dev, uint64_t ino,
                      uint64_t size)
{
    struct stat status;
    if (stat (path, &status) != 0 || (uint64_t) status.st_dev != dev
    ||  (uint64_t) status.st_ino != ino || (uint64_t) status.st_size <= size)
        return;                 //  gone, replaced, or nothing after the position
    if (truncate (path, (off_t) size) != 0) {
        zsys_warning ("sink: cannot cut the earlier output '%s' back to %" PRIu64
                      " bytes (%s): its last %jd bytes come again", path, size,
                      strerror (errno), (intmax_t) status.st_size - (intmax_t) size);
        return;
    }
    zsys_info ("sink: earlier output '%s' cut back from %jd to %" PRIu64 " bytes: lines "
               "after the position in '%s' come in this output", path,
               (intmax_t) status.st_size, size, self->resume_path);
}

//  Reads the resume file into the tags' positions, and cuts a regular
//  output file back to the size recorded. Returns 0 if loaded, 1 if there
//  is no file, -1 after logging if it is malformed or unreadable.
static int
s_load_position (pz_sink_t *self)
{
    FILE *file = fopen (self->resume_path, "r");
    if (!file) {
        if (errno == ENOENT)
            return 1;
        zsys_error ("sink: cannot read the resume file '%s': %s",
                    self->resume_path, strerror (errno));
        return -1;
    }
    char line [S_RESUME_MAX];
    char old_path [PATH_MAX] = "";  //  the output of the run that wrote it
    int number = 0;
    bool seen [S_TAGS] = { false };
    s_track_t tracks [S_TAGS];
    memset (tracks, 0, sizeof tracks);
    bool has_output = false;
    uint64_t dev = 0, ino = 0, size = 0;
    const char *why = NULL;
    while (!why && fgets (line, sizeof line, file)) {
        number++;
        size_t length = strlen (line);
        if (length == 0 || line [length - 1] != '\n') {
            if (!feof (file)) {
                why = "line too long";
                break;
            }
        }
        else
            line [--length] = '\0';
        if (number == 1) {
            if (!streq (line, S_RESUME_HEADER))
                why = "not a playzmq-sink resume file (first line)";
            continue;
        }
        size_t prefix = strlen (S_OUTPUT_PATH);
        if (strncmp (line, S_OUTPUT_PATH, prefix) == 0 && line [prefix] == '/'
        &&  !old_path [0] && has_output && length - prefix < sizeof old_path) {
            memcpy (old_path, line + prefix, length - prefix + 1);
            continue;
        }
        char *words [9];
        int count = 0;
        char *saved = NULL;
        for (char *word = strtok_r (line, " ", &saved); word; word = strtok_r (NULL, " ", &saved))
            if (count < 9)
                words [count++] = word;
            else
                count = 10;
        uint64_t numbers [3];
        if (count == 8 && streq (words [0], "tag") && strlen (words [1]) == 1
        &&  streq (words [2], "seq") && streq (words [4], "tag-seq")
        &&  streq (words [6], "partial") && s_parse_number (words [3], &numbers [0])
        &&  s_parse_number (words [5], &numbers [1]) && s_parse_number (words [7], &numbers [2])) {
            int slot = pz_publication_tag_index (words [1][0]);
            int64_t seq = (int64_t) numbers [0], tag_seq = (int64_t) numbers [1];
            int64_t partial = (int64_t) numbers [2];
            if (slot < 0)
                why = "unknown tag";
            else
            if (seen [slot])
                why = "tag given twice";
            else
            if (numbers [0] >= INT64_MAX || tag_seq > seq
            ||  partial >= PZ_RECORDS_MAX || (partial > 0 && tag_seq < 1))
                why = "position out of range";
            else {
                seen [slot] = true;
                if (partial > 0)
                    tracks [slot] = (s_track_t) { .started = true, .baseline = true,
                        .seq = seq - 1, .tag_seq = tag_seq - 1, .skip = partial };
                else
                    tracks [slot] = (s_track_t) { .started = true, .baseline = tag_seq > 0,
                        .seq = seq, .tag_seq = tag_seq };
            }
        }
        else
        if (count == 7 && streq (words [0], "output") && streq (words [1], "dev")
        &&  streq (words [3], "ino") && streq (words [5], "size") && !has_output
        &&  s_parse_number (words [2], &dev) && s_parse_number (words [4], &ino)
        &&  s_parse_number (words [6], &size) && size <= INT64_MAX)
            has_output = true;
        else
            why = "unexpected line";
    }
    if (!why && number == 0)
        why = "empty file";
    if (!why && ferror (file))
        why = strerror (errno);
    fclose (file);
    if (why) {
        zsys_error ("sink: malformed resume file '%s', line %d: %s",
                    self->resume_path, number, why);
        return -1;
    }
    for (int slot = 0; slot < S_TAGS; slot++)
        if (self->wanted [slot] && seen [slot])
            self->track [slot] = tracks [slot];
    //  Lines written after the last position recorded would come twice.
    struct stat status;
    if (has_output && self->out_regular && fstat (self->out_fd, &status) == 0
    &&  (uint64_t) status.st_dev == dev && (uint64_t) status.st_ino == ino
    &&  (uint64_t) status.st_size > size) {
        if (ftruncate (self->out_fd, (off_t) size) != 0) {
            zsys_error ("sink: cannot cut the output back to %" PRIu64 " bytes: %s",
                        size, strerror (errno));
            return -1;
        }
        lseek (self->out_fd, 0, SEEK_END);
        zsys_info ("sink: output cut back from %jd to %" PRIu64 " bytes: lines after "
                   "the position in '%s' would come twice", (intmax_t) status.st_size,
                   size, self->resume_path);
    }
    else
    if (has_output && old_path [0])
        s_cut_earlier_output (self, old_path, dev, ino, size);
    return 0;
}

//  -------------------------------------------------------------------------
//  Gaps: accounting and reporting

//  Logs the pending gaps, at most once per S_REPORT_MS unless force.
static void
s_report (pz_sink_t *self, bool force)
{
    s_pending_t *pending = &self->pending;
    if (pending->gaps == 0)
        return;
    int64_t now = zclock_mono ();
    if (!force && now < self->report_ms)
        return;
    char tags [S_TAGS + 1];
    int count = 0;
    for (int slot = 0; slot < S_TAGS; slot++)
        if (pending->tags [slot])
            tags [count++] = s_tag_order [slot];
    tags [count] = '\0';
    char gaps [32] = "";
    if (pending->gaps > 1)
        snprintf (gaps, sizeof gaps, " in %" PRId64 " gaps", pending->gaps);
    char line [256];
    snprintf (line, sizeof line, "sink: missed %" PRId64 " %s messages%s (seq %" PRId64
              "-%" PRId64 "): %" PRId64 " filled from history, %" PRId64 " lost",
              pending->missed, tags, gaps, pending->seq_low, pending->seq_high,
              pending->filled, pending->lost);
    if (pending->lost > 0)
        zsys_warning ("%s", line);
    else
        zsys_info ("%s", line);
    memset (pending, 0, sizeof *pending);
    self->report_ms = now + S_REPORT_MS;
}

//  Returns sum + more (both >= 0), or INT64_MAX if that is beyond it.
static int64_t
s_sum_capped (int64_t sum, int64_t more)
{
    return sum > INT64_MAX - more ? INT64_MAX : sum + more;
}

//  Counts one gap of missed messages of a tag, seq_low to seq_high, of
//  which filled came from history and lost are gone. With strict, a loss
//  stops the run.
static void
s_account (pz_sink_t *self, int slot, int64_t missed, int64_t filled, int64_t lost,
           int64_t seq_low, int64_t seq_high)
{
    if (missed <= 0)
        return;
    if (lost < 0)
        lost = 0;
    self->stats.gaps++;
    self->stats.lost += (uint64_t) lost;
    s_pending_t *pending = &self->pending;
    if (pending->gaps == 0 || seq_low < pending->seq_low)
        pending->seq_low = seq_low;
    if (pending->gaps == 0 || seq_high > pending->seq_high)
        pending->seq_high = seq_high;
    pending->gaps++;
    //  Capped: tag-seqs come off the wire, and a forged one makes a gap
    //  of up to 2^63 messages, more than one sum can count.
    pending->missed = s_sum_capped (pending->missed, missed);
    pending->filled = s_sum_capped (pending->filled, filled > 0 ? filled : 0);
    pending->lost = s_sum_capped (pending->lost, lost);
    pending->tags [slot] = true;
    s_report (self, false);
    if (lost > 0 && self->config.strict) {
        self->status = PZ_SINK_LOST;
        self->stopped = true;
    }
}

//  The broker restarted without a journal: every sequence starts at 1 again.
static void
s_restart (pz_sink_t *self, const char *what, int64_t from, int64_t to)
{
    zsys_warning ("sink: broker restarted: %s went back from %" PRId64 " to %" PRId64,
                  what, from, to);
    self->stats.restarts++;
    for (int slot = 0; slot < S_TAGS; slot++)
        if (self->wanted [slot])
            self->track [slot] = (s_track_t) { .started = true, .baseline = true };
    self->live_seq = 0;
    self->history_oldest = 0;
    self->history_down = false;
    self->dirty = true;
}

//  -------------------------------------------------------------------------
//  History

//  Sends one history request (H from, H until, a zero record per tag) and
//  waits for its reply, once more on a fresh socket after a timeout. Returns
//  0 with the reply's body in *reply, or -1 (no answer: history is marked
//  down and retried after S_RETRY_MS; or a malformed envelope).
static int
s_history_call (pz_sink_t *self, const char *tags, int64_t from, int64_t until,
                zmq_msg_t *reply)
{
    if (!self->history_endpoint)
        return -1;
    if (self->history_down && zclock_mono () < self->history_retry_ms)
        return -1;
    uint8_t request [PZ_RECORD_SIZE * (2 + S_TAGS)];
    size_t size = 0;
    pz_record_encode (request + size, PZ_TAG_HISTORY, from);
    size += PZ_RECORD_SIZE;
    pz_record_encode (request + size, PZ_TAG_HISTORY, until);
    size += PZ_RECORD_SIZE;
    for (const char *tag = tags; *tag; tag++, size += PZ_RECORD_SIZE)
        pz_record_encode (request + size, *tag, 0);

    for (int attempt = 0; attempt < 2 && !zsys_interrupted; attempt++) {
        if (!self->history)
            self->history = pz_sock_open (ZMQ_DEALER, "history DEALER",
                                          self->history_endpoint, false,
                                          &self->config.sockopts);
        if (!self->history)
            break;
        void *handle = zsock_resolve (self->history);
        //  [empty][request]: the ROUTER echoes up to the empty frame, as REP.
        if (zmq_send (handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0)
            zmq_send (handle, request, size, ZMQ_DONTWAIT);
        int64_t deadline = zclock_mono () + self->config.history_timeout_ms;
        while (!zsys_interrupted) {
            int64_t left = deadline - zclock_mono ();
            if (left <= 0)
                break;
            //  The SUB is polled too, for nothing: libzmq attaches a SUB's
            //  new connection (and sends its subscriptions) only when the
            //  socket is used, so a sink waiting here for a broker that
            //  restarted would otherwise stay unsubscribed meanwhile.
            zmq_pollitem_t items [] = {
                { handle, 0, ZMQ_POLLIN, 0 },
                { zsock_resolve (self->sub), 0, 0, 0 }
            };
            if (zmq_poll (items, 2, left < 100 ? (long) left : 100) <= 0
            ||  !(items [0].revents & ZMQ_POLLIN))
                continue;
            if (zmq_msg_recv (reply, handle, 0) == -1)
                continue;
            if (zmq_msg_more (reply)) {
                bool empty = zmq_msg_size (reply) == 0;
                zmq_msg_recv (reply, handle, 0);
                if (!empty || zmq_msg_more (reply)) {
                    pz_sock_drain_frames (handle);
                    self->stats.malformed++;
                    zsys_warning ("sink: history sent a reply of an unexpected shape");
                    return -1;
                }
            }
            if (self->history_down)
                zsys_info ("sink: history at %s answers again", self->history_endpoint);
            self->history_down = false;
            return 0;
        }
        //  Lazy Pirate: a fresh socket, so a late reply cannot be mistaken.
        zsock_destroy (&self->history);
    }
    if (zsys_interrupted)
        return -1;
    if (!self->history_down)
        zsys_warning ("sink: history at %s does not answer: missed messages count "
                      "as lost until it does", self->history_endpoint);
    self->history_down = true;
    self->history_retry_ms = zclock_mono () + S_RETRY_MS;
    return -1;
}

//  Takes one publication served by history: prints it if it is the tag's
//  next (or sets the tag's baseline); counts a skip in tag-seqs beyond what
//  the caller accounts (fill_limit) as a lost gap.
static void
s_accept_history (pz_sink_t *self, const pz_publication_t *publication)
{
    int slot = pz_publication_tag_index (publication->tag);
    s_track_t *track = &self->track [slot];
    if (!track->started)
        return;                             //  not asked for
    if (!track->baseline) {
        if (publication->seq <= track->seq)
            return;                         //  before the start
        track->baseline = true;
        track->tag_seq = publication->tag_seq - 1;
    }
    else
    if (publication->tag_seq <= track->tag_seq)
        return;                             //  printed already
    else
    if (publication->tag_seq > track->tag_seq + 1) {
        int64_t accounted = track->tag_seq > self->fill_limit [slot]
                          ? track->tag_seq : self->fill_limit [slot];
        int64_t missed = publication->tag_seq - 1 - accounted;
        s_account (self, slot, missed, 0, missed, track->seq + 1, publication->seq - 1);
        if (self->stopped)
            return;
    }
    s_print (self, publication);
    self->stats.filled++;
    if (publication->tag_seq <= self->fill_limit [slot])
        self->fill_upto [slot]++;
}

//  Returns true if value may be a history status's next or oldest seq.
static bool
s_status_in_range (int64_t value)
{
    return value >= 1 && value < INT64_MAX;
}

//  Reads the publications of tags with from <= seq < until (until 0: up to
//  the newest, as it was at the first reply) from history, chunk after
//  chunk, through s_accept_history. Returns true if history answered every
//  request, false if it did not (or sent garbage).
static bool
s_fill (pz_sink_t *self, const char *tags, int64_t from, int64_t until)
{
    size_t tag_count = strlen (tags);
    size_t status_size = PZ_RECORD_SIZE * (2 + tag_count);
    int64_t target [S_TAGS] = { 0 };
    bool first = true;
    zmq_msg_t reply;
    zmq_msg_init (&reply);
    bool answered = true;
    while (!self->stopped && !zsys_interrupted) {
        if (until > 0 && from >= until && !(first && from == until))
            break;                          //  done (from == until: a status)
        if (until > 0 && from < until && self->history_oldest >= until)
            break;                          //  history holds nothing of it
        if (s_history_call (self, tags, from, until, &reply) != 0) {
            answered = false;
            break;
        }
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&reply);
        size_t size = zmq_msg_size (&reply);
        if (size == PZ_RECORD_SIZE && pz_record_tag (data) == PZ_TAG_ERROR) {
            zsys_warning ("sink: history refused a request: %s",
                          pz_error_str (pz_record_value (data)));
            answered = false;
            break;
        }
        size_t offset = 0;
        size_t served = 0;
        bool bad = size < status_size || size % PZ_RECORD_SIZE != 0;
        while (!bad && !self->stopped && size - offset > status_size) {
            pz_publication_t publication;
            size_t length = pz_publication_next (data + offset, size - offset - status_size);
            if (length == 0
            ||  pz_publication_parse (data + offset, length, &publication) != PZ_OK
            ||  !strchr (tags, publication.tag) || publication.seq < from
            ||  (until > 0 && publication.seq >= until))
                bad = true;
            else {
                s_accept_history (self, &publication);
                served++;
                offset += length;
            }
        }
        if (self->stopped)
            break;
        const uint8_t *status = data + offset;
        bad = bad || pz_record_tag (status) != PZ_TAG_ACK
                  || pz_record_tag (status + PZ_RECORD_SIZE) != PZ_TAG_HISTORY;
        for (size_t index = 0; !bad && index < tag_count; index++)
            bad = pz_record_tag (status + (2 + index) * PZ_RECORD_SIZE) != PZ_TAG_TAG_SEQ;
        //  Seqs 1 .. 2^63 - 2 and tag-seqs 0 .. 2^63 - 2, as the broker
        //  sends them: the sink adds to and takes one from them.
        bad = bad || !s_status_in_range (pz_record_value (status))
                  || !s_status_in_range (pz_record_value (status + PZ_RECORD_SIZE));
        for (size_t index = 0; !bad && index < tag_count; index++) {
            int64_t last = pz_record_value (status + (2 + index) * PZ_RECORD_SIZE);
            bad = last < 0 || last == INT64_MAX;
        }
        int64_t next = bad ? 0 : pz_record_value (status);
        if (bad) {
            self->stats.malformed++;
            zsys_warning ("sink: dropped a malformed history reply of %zu bytes", size);
            answered = false;
            break;
        }
        self->history_next = next;
        self->history_oldest = pz_record_value (status + PZ_RECORD_SIZE);
        for (size_t index = 0; index < tag_count; index++) {
            int slot = pz_publication_tag_index (tags [index]);
            self->history_last [slot] = pz_record_value (status + (2 + index) * PZ_RECORD_SIZE);
            if (first)
                target [slot] = self->history_last [slot];
        }
        first = false;
        if (next <= from)
            break;                          //  no progress: nothing more
        from = next;
        if (until == 0) {
            //  Up to the newest as of the first reply, not chasing it.
            bool caught_up = true;
            for (size_t index = 0; index < tag_count; index++) {
                int slot = pz_publication_tag_index (tags [index]);
                s_track_t *track = &self->track [slot];
                if (target [slot] > 0
                &&  !(track->baseline && track->tag_seq >= target [slot]))
                    caught_up = false;
            }
            if (served == 0 || caught_up)
                break;
        }
    }
    zmq_msg_close (&reply);
    return answered;
}

//  Fills the gap that a live message of slot revealed, before it is
//  printed, and accounts what history did not have as lost.
static void
s_fill_gap (pz_sink_t *self, int slot, const pz_publication_t *publication)
{
    s_track_t *track = &self->track [slot];
    int64_t missed = publication->tag_seq - 1 - track->tag_seq;
    int64_t seq_low = track->seq + 1;
    char tags [2] = { s_tag_order [slot], '\0' };
    self->fill_limit [slot] = publication->tag_seq - 1;
    self->fill_upto [slot] = 0;
    s_fill (self, tags, seq_low, publication->seq);
    int64_t filled = self->fill_upto [slot];
    self->fill_limit [slot] = 0;
    if (self->stopped || zsys_interrupted)
        missed = filled;            //  not reached is not lost
    s_account (self, slot, missed, filled, missed - filled, seq_low,
               publication->seq - 1);
}

//  Asks history for its status when no live message came for a while and
//  fills what the tags missed at the end of a run (its T last is beyond
//  the last printed); what history does not hold is lost, once two checks
//  in a row showed it: the broker counts a publication in history just
//  before it sends it, so a status can overtake the message itself, which
//  would then be dropped as printed already.
static void
s_fill_trailing (pz_sink_t *self)
{
    char tags [S_TAGS + 1];
    int count = 0;
    int64_t position = 1;
    for (int slot = 0; slot < S_TAGS; slot++)
        if (self->wanted [slot] && self->track [slot].started) {
            tags [count++] = s_tag_order [slot];
            if (self->track [slot].seq + 1 > position)
                position = self->track [slot].seq + 1;
        }
    tags [count] = '\0';
    if (count == 0)
        snprintf (tags, sizeof tags, "%s", self->tags);     //  availability only
    if (!s_fill (self, tags, position, position))
        return;
    if (count == 0) {
        //  --from new and nothing received yet: a tag of which nothing was
        //  ever published (T last 0) starts at its very first message, so
        //  that one published from now on and missed live (the
        //  subscription not there yet, or not again: a broker restarting)
        //  is a gap, not passed over by taking the next one for the start.
        for (int slot = 0; slot < S_TAGS; slot++)
            if (self->wanted [slot] && !self->track [slot].started
            &&  self->history_last [slot] == 0)
                self->track [slot] = (s_track_t) { .started = true, .baseline = true };
        return;
    }
    char behind [S_TAGS + 1];
    int behind_count = 0;
    int64_t from = 0;
    int64_t tag_seq_before [S_TAGS] = { 0 };
    int64_t seq_before [S_TAGS] = { 0 };
    for (int slot = 0; slot < S_TAGS; slot++) {
        s_track_t *track = &self->track [slot];
        if (!self->wanted [slot] || !track->started || !track->baseline
        ||  self->history_last [slot] <= track->tag_seq)
            continue;
        behind [behind_count++] = s_tag_order [slot];
        if (from == 0 || track->seq + 1 < from)
            from = track->seq + 1;
        tag_seq_before [slot] = track->tag_seq;
        seq_before [slot] = track->seq;
        self->fill_limit [slot] = self->history_last [slot];
        self->fill_upto [slot] = 0;
    }
    behind [behind_count] = '\0';
    int64_t previous [S_TAGS];
    for (int slot = 0; slot < S_TAGS; slot++) {
        previous [slot] = self->trailing_last [slot];
        self->trailing_last [slot] = self->history_last [slot];
    }
    if (behind_count == 0)
        return;
    bool answered = s_fill (self, behind, from, 0);
    int64_t newest = (self->history_next > self->history_oldest ? self->history_next
                                                                : self->history_oldest) - 1;
    for (int slot = 0; slot < S_TAGS; slot++) {
        int64_t limit = self->fill_limit [slot];
        self->fill_limit [slot] = 0;
        if (limit == 0)
            continue;
        s_track_t *track = &self->track [slot];
        int64_t missed = limit - tag_seq_before [slot];
        int64_t filled = self->fill_upto [slot];
        int64_t seq_low = seq_before [slot] + 1;
        if (!answered || self->stopped || zsys_interrupted || limit > previous [slot])
            missed = filled;        //  not reached, or maybe on its way: not lost (yet)
        else
        if (track->tag_seq < limit) {
            //  Gone: the position moves past them, so that one still on its
            //  way is not taken for a restart.
            track->tag_seq = limit;
            if (newest > track->seq)
                track->seq = newest;
            self->dirty = true;
        }
        s_account (self, slot, missed, filled, missed - filled, seq_low,
                   newest > seq_low ? newest : seq_low);
    }
}

//  -------------------------------------------------------------------------
//  Live messages

//  Takes one live message: validates it, detects a restart, fills a gap
//  from history first, skips what history already printed, prints it.
static void
s_on_live (pz_sink_t *self, const uint8_t *data, size_t size)
{
    pz_publication_t publication;
    pz_error_t error = pz_publication_parse (data, size, &publication);
    int slot = error == PZ_OK ? pz_publication_tag_index (publication.tag) : -1;
    if (error != PZ_OK || !self->wanted [slot]) {
        self->stats.malformed++;
        zsys_warning ("sink: dropped a message of %zu bytes: %s", size,
                      error != PZ_OK ? pz_error_str (error) : "a tag not subscribed to");
        return;
    }
    if (self->live_seq > 0 && publication.seq <= self->live_seq)
        s_restart (self, "sequence", self->live_seq, publication.seq);
    self->live_seq = publication.seq;
    if (self->origin_seq < 0)
        self->origin_seq = publication.seq - 1;
    s_track_t *track = &self->track [slot];
    if (!track->started) {
        //  --from new: the first message of a tag sets its baseline.
        track->started = track->baseline = true;
        track->seq = publication.seq - 1;
        track->tag_seq = publication.tag_seq - 1;
    }
    else
    if (!track->baseline) {
        //  Started at a position (--from, resume): what lies between it
        //  and this message comes from history first.
        if (publication.seq <= track->seq)
            return;
        if (publication.seq > track->seq + 1) {
            char tags [2] = { publication.tag, '\0' };
            s_fill (self, tags, track->seq + 1, publication.seq);
            if (self->stopped)
                return;
        }
        if (!track->baseline) {
            track->baseline = true;
            track->tag_seq = publication.tag_seq - 1;
        }
        else
        if (publication.tag_seq > track->tag_seq + 1) {
            int64_t missed = publication.tag_seq - 1 - track->tag_seq;
            s_account (self, slot, missed, 0, missed, track->seq + 1, publication.seq - 1);
        }
    }
    else {
        if (publication.seq <= track->seq && publication.tag_seq <= track->tag_seq)
            return;                         //  printed already, from history
        if (publication.seq <= track->seq || publication.tag_seq <= track->tag_seq) {
            s_restart (self, "tag sequence", track->tag_seq, publication.tag_seq);
            self->live_seq = publication.seq;
        }
        if (publication.tag_seq > track->tag_seq + 1)
            s_fill_gap (self, slot, &publication);
    }
    if (!self->stopped && publication.tag_seq > track->tag_seq)
        s_print (self, &publication);
}

//  Reads the resume file or applies from, writes the CSV header of a new
//  output, and catches up from history. Returns PZ_SINK_OK or the status
//  to end with.
static int
s_start (pz_sink_t *self)
{
    struct stat status;
    if (fstat (self->out_fd, &status) == 0 && S_ISREG (status.st_mode)) {
        self->out_regular = true;
        //  Its path, for the resume file (s_cut_earlier_output): an
        //  absolute path the kernel still knows, not a deleted file.
        char link [64], path [PATH_MAX];
        snprintf (link, sizeof link, "/proc/self/fd/%d", self->out_fd);
        ssize_t length = readlink (link, path, sizeof path - 1);
        if (length > 0 && path [0] == '/') {
            path [length] = '\0';
            if (!strstr (path, " (deleted)") && !strchr (path, '\n'))
                self->out_path = strdup (path);
        }
    }
    bool resumed = false;
    if (self->resume_path) {
        int loaded = s_load_position (self);
        if (loaded < 0) {
            self->status = PZ_SINK_BAD_RESUME;
            return self->status;
        }
        resumed = loaded == 0;
    }
    if (!resumed && self->config.from_seq > 0)
        for (int slot = 0; slot < S_TAGS; slot++)
            if (self->wanted [slot])
                self->track [slot] = (s_track_t) {
                    .started = true, .seq = self->config.from_seq - 1 };
    if (!resumed && self->config.format == PZ_SINK_CSV) {
        memcpy (self->buffer, "tag,value\n", 10);
        self->buffered = 10;
        self->dirty = true;             //  a restart must not write it again
    }
    //  Catch up: every started tag, from the earliest position.
    char tags [S_TAGS + 1];
    int count = 0;
    int64_t from = 0;
    for (int slot = 0; slot < S_TAGS; slot++)
        if (self->wanted [slot] && self->track [slot].started) {
            tags [count++] = s_tag_order [slot];
            if (from == 0 || self->track [slot].seq + 1 < from)
                from = self->track [slot].seq + 1;
        }
    tags [count] = '\0';
    if (count > 0 && self->history_endpoint) {
        if (s_fill (self, tags, from, 0)) {
            //  History served all it had: a tag that had nothing starts
            //  after what it was asked for.
            for (int slot = 0; slot < S_TAGS; slot++) {
                s_track_t *track = &self->track [slot];
                if (track->started && !track->baseline && self->history_next - 1 > track->seq)
                    track->seq = self->history_next - 1;
            }
        }
        else
        if (!self->stopped)
            zsys_warning ("sink: cannot catch up from seq %" PRId64 ": going on "
                          "with live messages", from);
    }
    else
    if (count > 0)
        zsys_warning ("sink: no history endpoint to catch up from seq %" PRId64
                      ": going on with live messages", from);
    s_flush (self);
    return self->status;
}

//  Prints messages until done, interrupted, the output is closed, or a
//  loss with strict.
int
pz_sink_run (pz_sink_t *self)
{
    assert (self);
    if (s_start (self) != PZ_SINK_OK || self->stopped) {
        s_report (self, true);
        return self->status;
    }
    void *sub = zsock_resolve (self->sub);
    zmq_msg_t message;
    zmq_msg_init (&message);
    int64_t next_status_ms = zclock_mono () + self->config.idle_ms;
    while (!self->stopped && !zsys_interrupted) {
        s_report (self, false);
        int64_t now = zclock_mono ();
        if (self->history_endpoint && now >= next_status_ms) {
            s_fill_trailing (self);
            s_flush (self);
            next_status_ms = zclock_mono ()
                           + (self->history_down ? S_RETRY_MS : self->config.idle_ms);
            continue;
        }
        int64_t wait_ms = next_status_ms - now;
        zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, wait_ms < 100 ? (long) wait_ms : 100) <= 0)
            continue;           //  timeout or EINTR: look at zsys_interrupted
        //  Drain what is queued, then write once: at low rates every
        //  message appears at once, at high rates writes are 64 KiB.
        while (!self->stopped && !zsys_interrupted
           &&  zmq_msg_recv (&message, sub, ZMQ_DONTWAIT) != -1) {
            if (zmq_msg_more (&message)) {
                self->stats.malformed++;
                zsys_warning ("sink: dropped a message of more than one frame");
                pz_sock_drain_frames (sub);
                continue;
            }
            s_on_live (self, (const uint8_t *) zmq_msg_data (&message),
                       zmq_msg_size (&message));
        }
        s_flush (self);
        next_status_ms = zclock_mono () + self->config.idle_ms;
    }
    zmq_msg_close (&message);
    if (self->status != PZ_SINK_OUTPUT_ERROR)
        s_flush (self);
    s_report (self, true);
    return self->status;
}

//  -------------------------------------------------------------------------
//  pz_sink_run's steps without its SUB socket, for tests and fuzz/

//  Reads the resume file or applies from, and catches up from history.
int
pz_sink_start (pz_sink_t *self)
{
    assert (self);
    return s_start (self);
}

//  Takes one live message (or, with data NULL, does the idle step), then
//  writes what it printed.
void
pz_sink_feed (pz_sink_t *self, const uint8_t *data, size_t size)
{
    assert (self);
    if (self->stopped)
        return;
    if (data)
        s_on_live (self, data, size);
    else
        s_fill_trailing (self);
    s_flush (self);
}
