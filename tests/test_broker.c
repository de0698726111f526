/*  =========================================================================
    test_broker - the broker in-process: dispatch, leases, reports, window,
                  retries, errors, sequence numbers, the journal, history

    Each test runs a broker in a zactor on free loopback ports and plays
    source, worker and sink itself with plain sockets, so every record on
    the wire is visible. Doubles as an example of talking to the broker.

    Every publication is checked whole: its data records, then its trailer
    `S seq` `T tag-seq` against numbers the test counts itself (s_seqs_t),
    so a publication that is missing, extra, or numbered wrongly fails the
    test that sees it. The journal tests run on a fresh mkdtemp directory
    that the test's .fini removes, also when an assertion failed.

    The source and results endpoints are ROUTERs that answer as REP sockets
    do: the rig talks to them with REQ sockets, and the tests at the end
    talk to them, and to the history ROUTER, with DEALERs and envelopes.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "publication.h"
#include "record.h"

//  A broker and the sockets a test talks to it with.
typedef struct _s_rig_t s_rig_t;
struct _s_rig_t {
    zactor_t *broker;           //  the broker under test
    zsock_t *source;            //  REQ to the source endpoint
    zsock_t *pull;              //  PULL from the dispatch endpoint (a worker)
    zsock_t *report;            //  REQ to the results endpoint (a worker)
    zsock_t *sub;               //  SUB to the publish endpoint, all tags (a sink)
    char *endpoints [5];        //  source, publish, dispatch, results, history
};

//  How a rig's broker is configured.
typedef struct {
    int64_t lease_ms;
    int64_t max_inflight;
    int64_t max_messages;
    int64_t coalesce_ms;
    bool with_worker;           //  connect the PULL at once
    const char *journal_dir;    //  NULL: no journal
    int64_t range_lease;        //  numbers in a piece; 0: the default
} s_options_t;

static pz_broker_stats_t
s_stats (s_rig_t *self)
{
    pz_broker_stats_t stats;
    memset (&stats, 0, sizeof stats);
    zstr_send (self->broker, "STATS");
    byte *data = NULL;
    size_t size = 0;
    zsock_recv (self->broker, "b", &data, &size);
    cr_assert_eq (size, sizeof stats);
    memcpy (&stats, data, sizeof stats);
    free (data);
    return stats;
}

//  Returns a socket of type connected to endpoint, with a 2 s receive
//  timeout so a missing message fails the test instead of hanging it.
static zsock_t *
s_connect (int type, const char *endpoint)
{
    zsock_t *sock = zsock_new (type);
    zsock_set_rcvtimeo (sock, 2000);
    zsock_set_linger (sock, 0);
    if (type == ZMQ_SUB)
        zsock_set_subscribe (sock, "");
    cr_assert_eq (zsock_connect (sock, "%s", endpoint), 0);
    return sock;
}

static s_rig_t *
s_rig_open (const s_options_t *options)
{
    s_rig_t *self = (s_rig_t *) zmalloc (sizeof (s_rig_t));
    pz_broker_config_t config;
    pz_broker_config_init (&config);
    config.source_bind = config.publish_bind = "tcp://127.0.0.1:*";
    config.dispatch_bind = config.results_bind = "tcp://127.0.0.1:*";
    config.history_bind = "tcp://127.0.0.1:*";
    config.journal_dir = options->journal_dir;
    config.lease_ms = options->lease_ms;
    config.max_inflight = options->max_inflight;
    config.max_messages = options->max_messages;
    config.stats_s = 0;
    config.coalesce_ms = options->coalesce_ms;
    if (options->range_lease)
        config.range_lease = options->range_lease;
    self->broker = zactor_new (pz_broker_actor, &config);
    zstr_send (self->broker, "ENDPOINTS");
    zsock_recv (self->broker, "sssss", &self->endpoints [0], &self->endpoints [1],
                &self->endpoints [2], &self->endpoints [3], &self->endpoints [4]);
    cr_assert (self->endpoints [4], "broker did not report its endpoints");

    self->source = s_connect (ZMQ_REQ, self->endpoints [0]);
    self->sub = s_connect (ZMQ_SUB, self->endpoints [1]);
    self->report = s_connect (ZMQ_REQ, self->endpoints [3]);
    if (options->with_worker)
        self->pull = s_connect (ZMQ_PULL, self->endpoints [2]);
    //  Wait until the SUB's subscription has reached the broker: anything
    //  published before that is not delivered to it.
    while (s_stats (self).subscriptions < 1)
        zclock_sleep (10);
    return self;
}

static s_rig_t *
s_rig_new_coalescing (int64_t lease_ms, int64_t max_inflight, int64_t max_messages,
                      bool with_worker, int64_t coalesce_ms)
{
    s_options_t options = {
        .lease_ms = lease_ms, .max_inflight = max_inflight,
        .max_messages = max_messages, .coalesce_ms = coalesce_ms,
        .with_worker = with_worker
    };
    return s_rig_open (&options);
}

//  A rig whose broker coalesces for 1 ms. The default is 10 ms; 1 ms on
//  purpose, so that a test waiting for a dispatch barely waits, while a
//  draft still does wait for company as it does by default (the tests that
//  are about coalescing set it themselves).
static s_rig_t *
s_rig_new (int64_t lease_ms, int64_t max_inflight, int64_t max_messages,
           bool with_worker)
{
    return s_rig_new_coalescing (lease_ms, max_inflight, max_messages, with_worker, 1);
}

//  A rig with a worker and a journal in dir; coalesce_ms 0, so that each
//  accepted message goes out as a dispatch of its own before the next one
//  is read (the tests below count on which numbers travel together).
static s_rig_t *
s_rig_new_journal (const char *dir)
{
    s_options_t options = {
        .lease_ms = 5000, .max_inflight = 1000, .max_messages = 1000,
        .coalesce_ms = 0, .with_worker = true, .journal_dir = dir
    };
    return s_rig_open (&options);
}

static void
s_rig_destroy (s_rig_t **self_p)
{
    s_rig_t *self = *self_p;
    zsock_destroy (&self->pull);
    zsock_destroy (&self->report);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->source);
    zactor_destroy (&self->broker);
    for (int index = 0; index < 5; index++)
        zstr_free (&self->endpoints [index]);
    free (self);
    *self_p = NULL;
}

//  Sends records (tags[i], values[i]) as one message on a REQ socket and
//  returns the one-record reply as tag and value.
static void
s_request (zsock_t *req, const char *tags, const int64_t *values,
           char *reply_tag, int64_t *reply_value)
{
    uint8_t frame [PZ_RECORD_SIZE * 16];
    size_t count = strlen (tags);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, tags [index], values [index]);
    cr_assert_eq (zmq_send (zsock_resolve (req), frame, count * PZ_RECORD_SIZE, 0),
                  (int) (count * PZ_RECORD_SIZE));
    uint8_t reply [PZ_RECORD_SIZE];
    int size = zmq_recv (zsock_resolve (req), reply, sizeof reply, 0);
    cr_assert_eq (size, PZ_RECORD_SIZE, "no reply (%d)", size);
    *reply_tag = pz_record_tag (reply);
    *reply_value = pz_record_value (reply);
}

static void
s_expect (zsock_t *req, const char *tags, const int64_t *values, char tag, int64_t value)
{
    char got_tag;
    int64_t got_value;
    s_request (req, tags, values, &got_tag, &got_value);
    cr_assert (got_tag == tag && got_value == value, "expected %c %ld, got %c %ld",
               tag, (long) value, got_tag, (long) got_value);
}

//  Sends a report of numbers (protocol 3) for dispatch id, one verdict per
//  letter of verdicts (P or C) as bits in V records, and checks the reply.
static void
s_expect_report (zsock_t *req, int64_t id, const char *verdicts, char tag, int64_t value)
{
    uint8_t frame [PZ_RECORD_SIZE * 66];
    uint8_t bits [PZ_RECORDS_MAX];
    size_t count = strlen (verdicts);
    for (size_t index = 0; index < count; index++)
        bits [index] = verdicts [index] == 'P';
    pz_record_encode (frame, PZ_TAG_ID, id);
    size_t size = PZ_RECORD_SIZE + pz_verdicts_encode (frame + PZ_RECORD_SIZE, bits, count);
    cr_assert_eq (zmq_send (zsock_resolve (req), frame, size, 0), (int) size);
    uint8_t reply [PZ_RECORD_SIZE];
    int got = zmq_recv (zsock_resolve (req), reply, sizeof reply, 0);
    cr_assert_eq (got, PZ_RECORD_SIZE, "no reply (%d)", got);
    cr_assert (pz_record_tag (reply) == tag && pz_record_value (reply) == value,
               "expected %c %ld, got %c %ld", tag, (long) value,
               pz_record_tag (reply), (long) pz_record_value (reply));
}

//  Receives one message; returns its size (0 on timeout) and copies it.
static size_t
s_receive (zsock_t *sock, uint8_t *buffer, size_t capacity)
{
    int size = zmq_recv (zsock_resolve (sock), buffer, capacity, 0);
    return size > 0 ? (size_t) size : 0;
}

//  Checks that nothing arrives on sock within ms milliseconds.
static void
s_expect_silence (zsock_t *sock, int ms, const char *what)
{
    static uint8_t frame [PZ_WIRE_MAX];
    int timeout = zsock_rcvtimeo (sock);
    zsock_set_rcvtimeo (sock, ms);
    size_t size = s_receive (sock, frame, sizeof frame);
    cr_assert_eq (size, 0, "%s: got a message of %zu bytes (%c %ld ...)", what, size,
                  pz_record_tag (frame), (long) pz_record_value (frame));
    zsock_set_rcvtimeo (sock, timeout);
}

//  Receives a dispatch; checks it holds the values; returns its id.
static int64_t
s_pull_dispatch (s_rig_t *self, const int64_t *values, size_t count)
{
    uint8_t frame [PZ_MESSAGE_MAX];
    size_t size = s_receive (self->pull, frame, sizeof frame);
    cr_assert_eq (size, (count + 1) * PZ_RECORD_SIZE, "dispatch of %zu bytes", size);
    cr_assert_eq (pz_record_tag (frame), 'I');
    for (size_t index = 0; index < count; index++) {
        cr_assert_eq (pz_record_tag (frame + (index + 1) * PZ_RECORD_SIZE), 'N');
        cr_assert_eq (pz_record_value (frame + (index + 1) * PZ_RECORD_SIZE), values [index]);
    }
    return pz_record_value (frame);
}


//  --------------------------------------------------------------------------
//  Publications and their sequence numbers, as the test counts them

//  The last seq and tag-seqs (N, P, C) published, as the test counts them.
typedef struct {
    int64_t seq;
    int64_t tag_seq [3];
} s_seqs_t;

static int
s_tag_index (char tag)
{
    return tag == 'N' ? 0 : tag == 'P' ? 1 : 2;
}

//  Bytes the test builds to compare with what the broker sends.
typedef struct {
    uint8_t data [64 * PZ_RECORD_SIZE];
    size_t size;
} s_bytes_t;

static void
s_bytes_add (s_bytes_t *self, char tag, int64_t value)
{
    cr_assert_leq (self->size + PZ_RECORD_SIZE, sizeof self->data);
    pz_record_encode (self->data + self->size, tag, value);
    self->size += PZ_RECORD_SIZE;
}

//  Appends the publication the broker should send next for count records
//  (tag, values[i]): the records, then S and T, the next numbers of seqs
//  (which it advances).
static void
s_bytes_add_publication (s_bytes_t *self, s_seqs_t *seqs, char tag,
                         const int64_t *values, size_t count)
{
    for (size_t index = 0; index < count; index++)
        s_bytes_add (self, tag, values [index]);
    s_bytes_add (self, 'S', ++seqs->seq);
    s_bytes_add (self, 'T', ++seqs->tag_seq [s_tag_index (tag)]);
}

//  Checks that got (size bytes) equals expected, naming the first record
//  that differs.
static void
s_compare (const uint8_t *got, size_t size, const s_bytes_t *expected, const char *what)
{
    size_t records = (size < expected->size ? size : expected->size) / PZ_RECORD_SIZE;
    for (size_t index = 0; index < records; index++) {
        const uint8_t *a = got + index * PZ_RECORD_SIZE;
        const uint8_t *b = expected->data + index * PZ_RECORD_SIZE;
        cr_assert (memcmp (a, b, PZ_RECORD_SIZE) == 0,
                   "%s: record %zu is %c %ld, expected %c %ld", what, index,
                   pz_record_tag (a), (long) pz_record_value (a),
                   pz_record_tag (b), (long) pz_record_value (b));
    }
    cr_assert_eq (size, expected->size, "%s: %zu bytes, expected %zu",
                  what, size, expected->size);
}

//  Receives one publication on sub and checks it is exactly count records
//  (tag, values[i]) then the trailer S, T with the next numbers of seqs.
static void
s_expect_publication (zsock_t *sub, s_seqs_t *seqs, char tag,
                      const int64_t *values, size_t count)
{
    static uint8_t frame [PZ_PUBLICATION_MAX + PZ_RECORD_SIZE];
    size_t size = s_receive (sub, frame, sizeof frame);
    cr_assert_gt (size, 0, "no %c publication (S %ld expected)", tag, (long) seqs->seq + 1);
    s_bytes_t expected = { .size = 0 };
    s_bytes_add_publication (&expected, seqs, tag, values, count);
    s_compare (frame, size, &expected, "publication");
}


//  --------------------------------------------------------------------------
//  The journal directory of the test that runs (one per process), removed
//  by .fini whether the test passed or not.

static char s_journal_dir [64];

static void
s_journal_dir_make (void)
{
    strcpy (s_journal_dir, "/tmp/pz-test-broker-XXXXXX");
    cr_assert (mkdtemp (s_journal_dir), "mkdtemp: %s", strerror (errno));
}

static void
s_journal_dir_remove (void)
{
    if (!*s_journal_dir)
        return;
    DIR *dir = opendir (s_journal_dir);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (streq (entry->d_name, ".") || streq (entry->d_name, ".."))
                continue;
            char path [PATH_MAX];
            snprintf (path, sizeof path, "%s/%s", s_journal_dir, entry->d_name);
            unlink (path);
        }
        closedir (dir);
    }
    rmdir (s_journal_dir);
    *s_journal_dir = 0;
}

//  Returns the size of the largest file in the journal directory: the
//  segment being written (the lock file is empty or tiny).
static off_t
s_journal_largest_file (void)
{
    off_t largest = 0;
    DIR *dir = opendir (s_journal_dir);
    cr_assert (dir);
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        char path [PATH_MAX];
        snprintf (path, sizeof path, "%s/%s", s_journal_dir, entry->d_name);
        struct stat status;
        if (stat (path, &status) == 0 && S_ISREG (status.st_mode)
        &&  status.st_size > largest)
            largest = status.st_size;
    }
    closedir (dir);
    return largest;
}


//  --------------------------------------------------------------------------
//  Requests on DEALER sockets, with envelopes spelled out

//  Sends [tag][empty][body] on a DEALER (no tag frame if tag is NULL), and
//  more extra body frames after body if extra > 0 (to make it multi-frame).
static void
s_dealer_send (zsock_t *dealer, const char *tag, const uint8_t *body, size_t size,
               int extra)
{
    void *handle = zsock_resolve (dealer);
    if (tag)
        cr_assert_eq (zmq_send (handle, tag, strlen (tag), ZMQ_SNDMORE), (int) strlen (tag));
    cr_assert_eq (zmq_send (handle, "", 0, ZMQ_SNDMORE), 0);
    cr_assert_eq (zmq_send (handle, body, size, extra > 0 ? ZMQ_SNDMORE : 0), (int) size);
    for (int index = 0; index < extra; index++)
        cr_assert_eq (zmq_send (handle, body, size, index + 1 < extra ? ZMQ_SNDMORE : 0),
                      (int) size);
}

//  Receives [tag][empty][reply] on a DEALER, checking the envelope (no tag
//  frame if tag is NULL) and that the reply is one frame; copies the reply
//  into buffer and returns its size.
static size_t
s_dealer_recv (zsock_t *dealer, const char *tag, uint8_t *buffer, size_t capacity)
{
    void *handle = zsock_resolve (dealer);
    char got_tag [64];
    if (tag) {
        int size = zmq_recv (handle, got_tag, sizeof got_tag, 0);
        cr_assert_eq (size, (int) strlen (tag), "tag frame of %d bytes", size);
        cr_assert (memcmp (got_tag, tag, strlen (tag)) == 0, "reply for another tag");
        cr_assert (zsock_rcvmore (dealer));
    }
    int size = zmq_recv (handle, got_tag, sizeof got_tag, 0);
    cr_assert_eq (size, 0, "no empty delimiter before the reply (%d bytes)", size);
    cr_assert (zsock_rcvmore (dealer));
    size = zmq_recv (handle, buffer, capacity, 0);
    cr_assert_geq (size, 0, "no reply body");
    cr_assert_leq ((size_t) size, capacity, "reply of %d bytes truncated", size);
    cr_assert (!zsock_rcvmore (dealer), "reply of more than one frame");
    return (size_t) size;
}

//  Sends one request of records (tags[i], values[i]) on a DEALER behind
//  tag and checks the one-record reply.
static void
s_dealer_expect (zsock_t *dealer, const char *tag, const char *tags,
                 const int64_t *values, char reply_tag, int64_t reply_value)
{
    uint8_t frame [PZ_RECORD_SIZE * 16];
    size_t count = strlen (tags);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, tags [index], values [index]);
    s_dealer_send (dealer, tag, frame, count * PZ_RECORD_SIZE, 0);
    uint8_t reply [PZ_RECORD_SIZE];
    cr_assert_eq (s_dealer_recv (dealer, tag, reply, sizeof reply), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == reply_tag && pz_record_value (reply) == reply_value,
               "expected %c %ld, got %c %ld", reply_tag, (long) reply_value,
               pz_record_tag (reply), (long) pz_record_value (reply));
}

//  Sends a history request H from, H until, then (tag, 0) per letter of
//  tags, and returns the reply (up to capacity bytes) and its size.
static size_t
s_history (zsock_t *dealer, int64_t from, int64_t until, const char *tags,
           uint8_t *reply, size_t capacity)
{
    s_bytes_t request = { .size = 0 };
    s_bytes_add (&request, 'H', from);
    s_bytes_add (&request, 'H', until);
    for (const char *tag = tags; *tag; tag++)
        s_bytes_add (&request, *tag, 0);
    s_dealer_send (dealer, NULL, request.data, request.size, 0);
    return s_dealer_recv (dealer, NULL, reply, capacity);
}


//  --------------------------------------------------------------------------
//  Accepting, dispatching, reporting

//  An accepted message is published once, with its trailer; its dispatch's
//  report is published as one P and one C message in dispatch order.
Test (broker, accepted_numbers_are_published_dispatched_and_verdicts_split, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    s_seqs_t seqs = { 0 };
    int64_t numbers [] = { 7, 8, 11, 12 };
    s_expect (rig->source, "NNNN", numbers, 'A', 4);

    //  Sinks see the N message unchanged, then S 1 T 1.
    s_expect_publication (rig->sub, &seqs, 'N', numbers, 4);

    int64_t id = s_pull_dispatch (rig, numbers, 4);
    int64_t report [] = { id, 7, 8, 11, 12 };
    s_expect_report (rig->report, report [0], "PCPC", 'A', 4);

    //  One P message and one C message, each in dispatch order, no I.
    int64_t primes [] = { 7, 11 }, composites [] = { 8, 12 };
    s_expect_publication (rig->sub, &seqs, 'P', primes, 2);
    s_expect_publication (rig->sub, &seqs, 'C', composites, 2);

    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 4);
    cr_assert_eq (stats.dispatched, 4);
    cr_assert_eq (stats.results, 4);
    cr_assert_eq (stats.inflight, 0);
    cr_assert_eq (stats.published, 3);
    s_rig_destroy (&rig);
}

//  A second report for a completed dispatch is acknowledged, counted as a
//  duplicate, and not published.
Test (broker, only_the_first_report_is_published, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    s_seqs_t seqs = { 0 };
    int64_t numbers [] = { 13 };
    s_expect (rig->source, "N", numbers, 'A', 1);
    s_expect_publication (rig->sub, &seqs, 'N', numbers, 1);
    int64_t id = s_pull_dispatch (rig, numbers, 1);
    int64_t report [] = { id, 13 };
    s_expect_report (rig->report, report [0], "P", 'A', 1);
    s_expect_report (rig->report, report [0], "P", 'A', 1);       //  a late duplicate
    s_expect_publication (rig->sub, &seqs, 'P', numbers, 1);
    s_expect_silence (rig->sub, 300, "duplicate was published");
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.results, 1);
    cr_assert_eq (stats.duplicates, 1);
    s_rig_destroy (&rig);
}

//  Receives one publication on sub and checks its tag, seq, tag-seq and
//  values.
static void
s_expect_numbered (zsock_t *sub, char tag, int64_t seq, int64_t tag_seq,
                   const int64_t *values, size_t count)
{
    static uint8_t frame [PZ_PUBLICATION_MAX];
    size_t size = s_receive (sub, frame, sizeof frame);
    cr_assert_gt (size, 0, "no %c publication (S %ld expected)", tag, (long) seq);
    pz_publication_t publication;
    cr_assert_eq (pz_publication_parse (frame, size, &publication), PZ_OK);
    cr_assert (publication.tag == tag && publication.seq == seq
               && publication.tag_seq == tag_seq && publication.count == count,
               "expected %c S %ld T %ld (%zu), got %c S %ld T %ld (%zu)", tag, (long) seq,
               (long) tag_seq, count, publication.tag, (long) publication.seq,
               (long) publication.tag_seq, publication.count);
    for (size_t index = 0; index < count; index++)
        cr_assert_eq (pz_record_value (publication.records + index * PZ_RECORD_SIZE),
                      values [index]);
}

//  Without a journal, a publication of a tag no sink subscribes to is not
//  built or sent, but it takes its seq and tag-seq all the same: a sink
//  sees the same numbering whoever else listens, and one that subscribes
//  later sees its tag's T go on from where it stands.
Test (broker, unsubscribed_tags_are_numbered_not_sent, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    zsock_t *primes = zsock_new (ZMQ_SUB);
    zsock_set_rcvtimeo (primes, 2000);
    zsock_set_linger (primes, 0);
    zsock_set_subscribe (primes, "P");
    cr_assert_eq (zsock_connect (primes, "%s", rig->endpoints [1]), 0);
    while (s_stats (rig).subscriptions < 2)
        zclock_sleep (10);
    //  The rig's SUB leaves: only P is subscribed to now.
    zsock_set_unsubscribe (rig->sub, "");
    zclock_sleep (300);         //  the broker reads subscriptions every 50 ms

    int64_t numbers [] = { 7, 8, 11, 12 };
    s_expect (rig->source, "NNNN", numbers, 'A', 4);        //  N: S 1, not sent
    int64_t id = s_pull_dispatch (rig, numbers, 4);
    s_expect_report (rig->report, id, "PCPC", 'A', 4);      //  P: S 2; C: S 3, not sent
    int64_t two_primes [] = { 7, 11 };
    s_expect_numbered (primes, 'P', 2, 1, two_primes, 2);
    cr_assert_eq (s_stats (rig).published, 1);

    //  A sink subscribes to C: from now on C is sent, numbered on.
    zsock_set_subscribe (rig->sub, "C");
    zclock_sleep (300);
    int64_t more [] = { 13, 14 };
    s_expect (rig->source, "NN", more, 'A', 2);             //  N: S 4, not sent
    id = s_pull_dispatch (rig, more, 2);
    s_expect_report (rig->report, id, "PC", 'A', 2);        //  P: S 5; C: S 6
    int64_t prime [] = { 13 }, composite [] = { 14 };
    s_expect_numbered (primes, 'P', 5, 2, prime, 1);
    s_expect_numbered (rig->sub, 'C', 6, 2, composite, 1);
    s_expect_silence (rig->sub, 200, "an unsubscribed tag was sent");

    //  Only C subscribed, and a report of 130 composites: whole words of
    //  64 set bits, the last one short.
    zsock_set_unsubscribe (primes, "P");
    zclock_sleep (300);
    int64_t evens [130];
    uint8_t frame [130 * PZ_RECORD_SIZE];
    for (size_t index = 0; index < 130; index++) {
        evens [index] = 1000 + 2 * (int64_t) index;
        pz_record_encode (frame + index * PZ_RECORD_SIZE, 'N', evens [index]);
    }
    cr_assert_eq (zmq_send (zsock_resolve (rig->source), frame, sizeof frame, 0),
                  (int) sizeof frame);
    uint8_t reply [PZ_RECORD_SIZE];
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), reply, sizeof reply, 0),
                  PZ_RECORD_SIZE);
    cr_assert_eq (pz_record_value (reply), 130);
    id = s_pull_dispatch (rig, evens, 130);                 //  N: S 7, not sent
    static char composites [131];
    memset (composites, 'C', 130);
    s_expect_report (rig->report, id, composites, 'A', 130);    //  C: S 8
    s_expect_numbered (rig->sub, 'C', 8, 3, evens, 130);
    s_expect_silence (primes, 200, "an unsubscribed tag was sent");
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.published, 4);
    cr_assert_eq (stats.results, 136);
    cr_assert_eq (stats.inflight, 0);
    zsock_destroy (&primes);
    s_rig_destroy (&rig);
}

//  Reports that do not match their dispatch, or name none, get their codes
//  and leave the dispatch outstanding.
Test (broker, bad_reports_get_errors_and_change_nothing, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    s_seqs_t seqs = { 0 };
    int64_t numbers [] = { 17, 18 };
    s_expect (rig->source, "NN", numbers, 'A', 2);
    int64_t id = s_pull_dispatch (rig, numbers, 2);

    //  Verdicts past the two numbers: a bit set past the count, or a
    //  second V record.
    s_expect_report (rig->report, id, "PCP", 'E', PZ_ERR_MISMATCH);
    static char many [66];
    memset (many, 'C', 65);
    s_expect_report (rig->report, id, many, 'E', PZ_ERR_MISMATCH);
    many [63] = 'P';
    many [64] = 0;
    s_expect_report (rig->report, id, many, 'E', PZ_ERR_MISMATCH);
    //  The old format (protocol 2), the values echoed: E 15, never read.
    int64_t old_report [] = { id, 17, 18 };
    s_expect (rig->report, "IPC", old_report, 'E', PZ_ERR_OLD_REPORT);
    s_expect (rig->report, "ICC", old_report, 'E', PZ_ERR_OLD_REPORT);
    s_expect_report (rig->report, id + 1000, "PC", 'E', PZ_ERR_UNKNOWN_ID);
    s_expect_report (rig->report, 0, "PC", 'E', PZ_ERR_UNKNOWN_ID);
    int64_t no_id [] = { 1, 2 };
    s_expect (rig->report, "VV", no_id, 'E', PZ_ERR_ID_PLACEMENT);
    int64_t wrong_tag [] = { id, 17, 18 };
    s_expect (rig->report, "INC", wrong_tag, 'E', PZ_ERR_TAG_REFUSED);
    //  S and T are publication tags: no report may carry them.
    int64_t trailer [] = { id, 1, 1 };
    s_expect (rig->report, "IVS", trailer, 'E', PZ_ERR_TAG_REFUSED);

    //  Nothing was published and the dispatch is still outstanding...
    s_expect_publication (rig->sub, &seqs, 'N', numbers, 2);
    s_expect_silence (rig->sub, 300, "a refused report was published");
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.inflight, 2);
    cr_assert_eq (stats.errors [PZ_ERR_MISMATCH], 3);
    cr_assert_eq (stats.errors [PZ_ERR_OLD_REPORT], 2);
    cr_assert_eq (stats.errors [PZ_ERR_UNKNOWN_ID], 2);
    //  ... so the right report is still taken, and numbered next.
    int64_t right [] = { id, 17, 18 };
    s_expect_report (rig->report, right [0], "PC", 'A', 2);
    int64_t prime [] = { 17 }, composite [] = { 18 };
    s_expect_publication (rig->sub, &seqs, 'P', prime, 1);
    s_expect_publication (rig->sub, &seqs, 'C', composite, 1);
    cr_assert_eq (s_stats (rig).results, 2);
    s_rig_destroy (&rig);
}

//  A dispatch whose lease runs out is pushed again with the same id, and
//  no more once reported.
Test (broker, an_expired_lease_pushes_the_same_dispatch_again, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (300, 1000, 1000, true);
    int64_t numbers [] = { 19, 21 };
    s_expect (rig->source, "NN", numbers, 'A', 2);
    int64_t start_ms = zclock_mono ();
    int64_t first = s_pull_dispatch (rig, numbers, 2);
    //  No report: after the lease the same id comes again.
    int64_t second = s_pull_dispatch (rig, numbers, 2);
    cr_assert_eq (first, second);
    cr_assert_geq (zclock_mono () - start_ms, 250, "pushed again before the lease ran out");
    cr_assert_eq (s_stats (rig).redispatched, 2);
    int64_t report [] = { first, 19, 21 };
    s_expect_report (rig->report, report [0], "PC", 'A', 2);
    //  Completed: no third push.
    s_expect_silence (rig->pull, 600, "pushed after its report");
    s_rig_destroy (&rig);
}

//  max_inflight numbers accepted and unreported: the broker stops reading
//  sources until a report makes room.
Test (broker, a_full_window_stops_reading_sources_until_results_come, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 3, 1000, false);
    int64_t numbers [] = { 2, 3, 5 };
    s_expect (rig->source, "NNN", numbers, 'A', 3);
    //  The window is full and no worker is connected: the next request
    //  waits, unanswered, and nothing of it is accepted.
    int64_t more [] = { 7 };
    uint8_t frame [PZ_RECORD_SIZE];
    pz_record_encode (frame, 'N', more [0]);
    zmq_send (zsock_resolve (rig->source), frame, sizeof frame, 0);
    zsock_set_rcvtimeo (rig->source, 500);
    int answered = zmq_recv (zsock_resolve (rig->source), frame, sizeof frame, 0);
    cr_assert_eq (answered, -1, "a request was answered past the window: %c %ld",
                  pz_record_tag (frame), (long) pz_record_value (frame));
    cr_assert_eq (s_stats (rig).accepted, 3);

    //  A worker arrives and reports: the window opens, the request is taken.
    rig->pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    int64_t id = s_pull_dispatch (rig, numbers, 3);
    int64_t report [] = { id, 2, 3, 5 };
    s_expect_report (rig->report, report [0], "PPP", 'A', 3);
    zsock_set_rcvtimeo (rig->source, 2000);
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), frame, sizeof frame, 0),
                  PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'A' && pz_record_value (frame) == 1);
    cr_assert_eq (s_stats (rig).accepted, 4);
    s_rig_destroy (&rig);
}

//  max_messages source messages unreported stop reading sources too.
Test (broker, a_full_message_window_stops_reading_sources_too, .timeout = 20)
{
    //  Room for many numbers, but for two messages only.
    s_rig_t *rig = s_rig_new (5000, 1000, 2, false);
    int64_t one [] = { 2 };
    s_expect (rig->source, "N", one, 'A', 1);
    s_expect (rig->source, "N", one, 'A', 1);
    uint8_t frame [PZ_RECORD_SIZE];
    pz_record_encode (frame, 'N', 3);
    zmq_send (zsock_resolve (rig->source), frame, sizeof frame, 0);
    zsock_set_rcvtimeo (rig->source, 500);
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), frame, sizeof frame, 0), -1,
                  "a third message was taken past max_messages 2");
    cr_assert_eq (s_stats (rig).accepted, 2);
    s_rig_destroy (&rig);
}

//  A request repeated with the same I id is answered from memory, not
//  accepted or published again; requests without an id count each time.
Test (broker, a_repeated_request_id_is_acknowledged_not_accepted_twice, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    s_seqs_t seqs = { 0 };
    int64_t request [] = { 4242, 23, 25 };
    s_expect (rig->source, "INN", request, 'A', 2);
    s_expect (rig->source, "INN", request, 'A', 2);
    int64_t other [] = { 4243, 27 };
    s_expect (rig->source, "IN", other, 'A', 1);
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 3);
    cr_assert_eq (stats.requests, 2);
    cr_assert_eq (stats.retries, 1);
    //  Requests without an id still work, and each counts.
    int64_t plain [] = { 29 };
    s_expect (rig->source, "N", plain, 'A', 1);
    s_expect (rig->source, "N", plain, 'A', 1);
    cr_assert_eq (s_stats (rig).accepted, 5);
    //  The I record is not published, and the retry is not published at
    //  all: sinks see N records only, each accepted message once.
    s_expect_publication (rig->sub, &seqs, 'N', request + 1, 2);
    s_expect_publication (rig->sub, &seqs, 'N', other + 1, 1);
    s_expect_publication (rig->sub, &seqs, 'N', plain, 1);
    s_expect_publication (rig->sub, &seqs, 'N', plain, 1);
    s_expect_silence (rig->sub, 300, "a retry was published");
    s_rig_destroy (&rig);
}

//  An I record whose value is 0 names nothing to remember, but it is
//  still an I record: the numbers after it, and only they, are accepted,
//  dispatched and published, each time it comes.
Test (broker, a_request_id_of_zero_is_not_taken_for_a_number, .timeout = 20)
{
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, true, 0);
    s_seqs_t seqs = { 0 };
    int64_t request [] = { 0, 31, 37 };
    s_expect (rig->source, "INN", request, 'A', 2);
    s_expect_publication (rig->sub, &seqs, 'N', request + 1, 2);
    s_pull_dispatch (rig, request + 1, 2);
    s_expect (rig->source, "INN", request, 'A', 2);
    cr_assert_eq (s_stats (rig).accepted, 4);
    cr_assert_eq (s_stats (rig).retries, 0);
    s_rig_destroy (&rig);
}

//  Malformed source messages get the code of their first problem and do
//  not stop the broker.
Test (broker, malformed_source_messages_get_their_codes, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, false);
    int64_t values [] = { 1, 2 };
    s_expect (rig->source, "P", values, 'E', PZ_ERR_TAG_REFUSED);
    s_expect (rig->source, "NI", values, 'E', PZ_ERR_ID_PLACEMENT);
    s_expect (rig->source, "NS", values, 'E', PZ_ERR_TAG_REFUSED);
    //  A two-frame message, then a bad length: answered, not fatal.
    zmq_send (zsock_resolve (rig->source), "N12345678", 9, ZMQ_SNDMORE);
    zmq_send (zsock_resolve (rig->source), "N12345678", 9, 0);
    uint8_t reply [PZ_RECORD_SIZE];
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), reply, sizeof reply, 0), 9);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_MULTIPART);
    zmq_send (zsock_resolve (rig->source), "N1234", 5, 0);
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), reply, sizeof reply, 0), 9);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_LENGTH);
    s_expect (rig->source, "NN", values, 'A', 2);
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 2);
    cr_assert_eq (stats.errors [PZ_ERR_MULTIPART], 1);
    //  Refused messages took no sequence number: the accepted one is S 1.
    s_seqs_t seqs = { 0 };
    s_expect_publication (rig->sub, &seqs, 'N', values, 2);
    s_rig_destroy (&rig);
}

//  Sends count N records (first, first + 1, ...) as one request; checks
//  the ack.
static void
s_send_run (s_rig_t *self, int64_t first, size_t count)
{
    static uint8_t frame [PZ_MESSAGE_MAX];
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, 'N', first + (int64_t) index);
    cr_assert_eq (zmq_send (zsock_resolve (self->source), frame, count * PZ_RECORD_SIZE, 0),
                  (int) (count * PZ_RECORD_SIZE));
    uint8_t reply [PZ_RECORD_SIZE];
    cr_assert_eq (zmq_recv (zsock_resolve (self->source), reply, sizeof reply, 0), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == 'A' && pz_record_value (reply) == (int64_t) count);
}

//  Messages that wait for a worker merge into one dispatch, while sinks
//  still see each message as it came.
Test (broker, messages_waiting_for_a_worker_merge_into_one_dispatch, .timeout = 20)
{
    //  No worker yet, and a draft may wait a second for more numbers.
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, false, 1000);
    s_seqs_t seqs = { 0 };
    int64_t first [] = { 31, 32 };
    s_expect (rig->source, "NN", first, 'A', 2);
    int64_t second [] = { 33 };
    s_expect (rig->source, "N", second, 'A', 1);
    int64_t third [] = { 777, 34, 35 };
    s_expect (rig->source, "INN", third, 'A', 2);

    //  Three source messages, one dispatch, numbers in the order accepted.
    rig->pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    int64_t numbers [] = { 31, 32, 33, 34, 35 };
    int64_t id = s_pull_dispatch (rig, numbers, 5);
    int64_t report [] = { id, 31, 32, 33, 34, 35 };
    s_expect_report (rig->report, report [0], "PCCCC", 'A', 5);

    //  Sinks still see each source message as it came, then the verdicts.
    s_expect_publication (rig->sub, &seqs, 'N', first, 2);
    s_expect_publication (rig->sub, &seqs, 'N', second, 1);
    s_expect_publication (rig->sub, &seqs, 'N', third + 1, 2);
    int64_t primes [] = { 31 }, composites [] = { 32, 33, 34, 35 };
    s_expect_publication (rig->sub, &seqs, 'P', primes, 1);
    s_expect_publication (rig->sub, &seqs, 'C', composites, 4);

    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.requests, 3);
    cr_assert_eq (stats.dispatches, 1);
    cr_assert_eq (stats.results, 5);
    cr_assert_eq (stats.inflight, 0);
    s_rig_destroy (&rig);
}

//  A message that would take a waiting dispatch past 4096 numbers starts
//  a new one.
Test (broker, a_merged_dispatch_holds_at_most_4096_numbers, .timeout = 20)
{
    s_rig_t *rig = s_rig_new_coalescing (5000, 100000, 1000, false, 300);
    s_send_run (rig, 1000, 2000);
    s_send_run (rig, 3000, 2000);
    s_send_run (rig, 5000, 2000);       //  would make 6000: starts a dispatch
    rig->pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    cr_assert_eq (s_receive (rig->pull, frame, sizeof frame), 4001 * PZ_RECORD_SIZE);
    cr_assert_eq (pz_record_value (frame + 2001 * PZ_RECORD_SIZE), 3000);
    cr_assert_eq (s_receive (rig->pull, frame, sizeof frame), 2001 * PZ_RECORD_SIZE);
    cr_assert_eq (pz_record_value (frame + PZ_RECORD_SIZE), 5000);
    cr_assert_eq (s_stats (rig).dispatches, 2);
    //  Each 2000-number message was published on its own, with its trailer.
    for (int index = 0; index < 3; index++) {
        cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 2002 * PZ_RECORD_SIZE);
        cr_assert_eq (pz_record_tag (frame + 2000 * PZ_RECORD_SIZE), 'S');
        cr_assert_eq (pz_record_value (frame + 2000 * PZ_RECORD_SIZE), index + 1);
    }
    s_rig_destroy (&rig);
}

//  The open draft waits coalesce_ms for more numbers, and 0 pushes at once.
Test (broker, a_draft_waits_coalesce_ms_for_company_and_no_longer, .timeout = 20)
{
    int64_t numbers [] = { 37 };
    //  A worker is there, but the draft waits 400 ms for more numbers.
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, true, 400);
    int64_t start_ms = zclock_mono ();
    s_expect (rig->source, "N", numbers, 'A', 1);
    s_pull_dispatch (rig, numbers, 1);
    int64_t waited_ms = zclock_mono () - start_ms;
    cr_assert_geq (waited_ms, 350, "pushed after %ld ms", (long) waited_ms);
    s_rig_destroy (&rig);

    //  coalesce_ms 0: pushed at once (well within the 400 ms above).
    rig = s_rig_new_coalescing (5000, 1000, 1000, true, 0);
    start_ms = zclock_mono ();
    s_expect (rig->source, "N", numbers, 'A', 1);
    s_pull_dispatch (rig, numbers, 1);
    waited_ms = zclock_mono () - start_ms;
    cr_assert_lt (waited_ms, 300, "held for %ld ms without coalescing", (long) waited_ms);
    s_rig_destroy (&rig);
}


//  --------------------------------------------------------------------------
//  Sequence numbers

//  S numbers every publication of every tag 1, 2, 3, ... in the order they
//  are published; T numbers those of each tag. Refused requests, retries,
//  duplicate reports and empty verdict halves take no number.
Test (broker, publications_carry_sequence_numbers_across_and_per_tag, .timeout = 20)
{
    //  coalesce_ms 0: each message is its own dispatch, pushed before the
    //  next request is read.
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, true, 0);
    s_seqs_t seqs = { 0 };

    int64_t first [] = { 7, 8, 11, 12 };
    s_expect (rig->source, "NNNN", first, 'A', 4);                 //  N: S 1, T 1
    int64_t first_id = s_pull_dispatch (rig, first, 4);
    int64_t second [] = { 4, 9 };
    s_expect (rig->source, "NN", second, 'A', 2);                  //  N: S 2, T 2
    int64_t second_id = s_pull_dispatch (rig, second, 2);
    int64_t refused [] = { 3 };
    s_expect (rig->source, "P", refused, 'E', PZ_ERR_TAG_REFUSED);

    int64_t report [] = { first_id, 7, 8, 11, 12 };
    s_expect_report (rig->report, report [0], "PCPC", 'A', 4);               //  P: S 3; C: S 4
    s_expect_report (rig->report, report [0], "PCPC", 'A', 4);               //  a duplicate
    int64_t all_composite [] = { second_id, 4, 9 };
    s_expect_report (rig->report, all_composite [0], "CC", 'A', 2);          //  C only: S 5

    int64_t third [] = { 5151, 13 };
    s_expect (rig->source, "IN", third, 'A', 1);                   //  N: S 6, T 3
    s_expect (rig->source, "IN", third, 'A', 1);                   //  a retry
    int64_t third_id = s_pull_dispatch (rig, third + 1, 1);
    int64_t prime_only [] = { third_id, 13 };
    s_expect_report (rig->report, prime_only [0], "P", 'A', 1);              //  P only: S 7

    s_expect_publication (rig->sub, &seqs, 'N', first, 4);
    s_expect_publication (rig->sub, &seqs, 'N', second, 2);
    int64_t primes [] = { 7, 11 }, composites [] = { 8, 12 };
    s_expect_publication (rig->sub, &seqs, 'P', primes, 2);
    s_expect_publication (rig->sub, &seqs, 'C', composites, 2);
    s_expect_publication (rig->sub, &seqs, 'C', second, 2);
    s_expect_publication (rig->sub, &seqs, 'N', third + 1, 1);
    s_expect_publication (rig->sub, &seqs, 'P', third + 1, 1);
    s_expect_silence (rig->sub, 300, "more publications than messages");
    //  What the test counted is what it was given: 7, and 3 N, 2 P, 2 C.
    cr_assert_eq (seqs.seq, 7);
    cr_assert (seqs.tag_seq [0] == 3 && seqs.tag_seq [1] == 2 && seqs.tag_seq [2] == 2);
    cr_assert_eq (s_stats (rig).published, 7);
    s_rig_destroy (&rig);
}


//  --------------------------------------------------------------------------
//  The journal

//  A broker that stops without a single report (as if it crashed) leaves
//  its acknowledged numbers in the journal: the next broker on the same
//  directory dispatches them again, numbers its publications after the last
//  one of the first, and remembers the request ids it acknowledged.
Test (broker, a_restarted_broker_takes_up_the_journals_work, .timeout = 30,
      .fini = s_journal_dir_remove)
{
    s_journal_dir_make ();
    s_rig_t *rig = s_rig_new_journal (s_journal_dir);
    s_seqs_t seqs = { 0 };

    //  One request completed before the "crash", two only acknowledged.
    int64_t done [] = { 5000, 100 };
    s_expect (rig->source, "IN", done, 'A', 1);
    int64_t done_id = s_pull_dispatch (rig, done + 1, 1);
    int64_t done_report [] = { done_id, 100 };
    s_expect_report (rig->report, done_report [0], "C", 'A', 1);
    int64_t open_a [] = { 5001, 101, 102, 103 };
    s_expect (rig->source, "INNN", open_a, 'A', 3);
    int64_t open_b [] = { 5002, 104 };
    s_expect (rig->source, "IN", open_b, 'A', 1);
    s_pull_dispatch (rig, open_a + 1, 3);          //  taken by a worker that dies
    s_pull_dispatch (rig, open_b + 1, 1);

    s_expect_publication (rig->sub, &seqs, 'N', done + 1, 1);         //  S 1
    s_expect_publication (rig->sub, &seqs, 'C', done + 1, 1);         //  S 2
    s_expect_publication (rig->sub, &seqs, 'N', open_a + 1, 3);       //  S 3
    s_expect_publication (rig->sub, &seqs, 'N', open_b + 1, 1);       //  S 4
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 5);
    cr_assert_eq (stats.inflight, 4);
    cr_assert_gt (stats.commits, 0, "a journal broker committed nothing");
    //  $TERM stops the broker at once, without draining.
    s_rig_destroy (&rig);

    rig = s_rig_new_journal (s_journal_dir);
    stats = s_stats (rig);
    cr_assert_eq (stats.recovered, 4);
    cr_assert_eq (stats.inflight, 4);
    cr_assert_eq (stats.accepted, 0);

    //  The same numbers come again, in the order they were accepted (one
    //  dispatch or several); each dispatch's report publishes its verdicts
    //  numbered after S 4.
    int64_t expected [] = { 101, 102, 103, 104 };
    size_t seen = 0;
    while (seen < 4) {
        uint8_t frame [PZ_MESSAGE_MAX];
        size_t size = s_receive (rig->pull, frame, sizeof frame);
        cr_assert_gt (size, PZ_RECORD_SIZE, "recovered numbers not dispatched (%zu of 4)", seen);
        size_t count = size / PZ_RECORD_SIZE - 1;
        cr_assert_leq (seen + count, 4, "more numbers dispatched than were pending");
        cr_assert_eq (pz_record_tag (frame), 'I');
        int64_t report [5] = { pz_record_value (frame) };
        char tags [6] = "I";
        int64_t primes [4], composites [4];
        size_t prime_count = 0, composite_count = 0;
        for (size_t index = 0; index < count; index++) {
            const uint8_t *record = frame + (index + 1) * PZ_RECORD_SIZE;
            cr_assert_eq (pz_record_tag (record), 'N');
            cr_assert_eq (pz_record_value (record), expected [seen + index]);
            int64_t value = pz_record_value (record);
            bool prime = value == 101 || value == 103;
            tags [index + 1] = prime ? 'P' : 'C';
            report [index + 1] = value;
            if (prime)
                primes [prime_count++] = value;
            else
                composites [composite_count++] = value;
        }
        tags [count + 1] = 0;
        s_expect_report (rig->report, report [0], tags + 1, 'A', (int64_t) count);
        if (prime_count)
            s_expect_publication (rig->sub, &seqs, 'P', primes, prime_count);
        if (composite_count)
            s_expect_publication (rig->sub, &seqs, 'C', composites, composite_count);
        seen += count;
    }
    //  The request acknowledged before the restart, sent again with its id:
    //  answered from the journal's memory, neither accepted nor published.
    s_expect (rig->source, "INNN", open_a, 'A', 3);
    s_expect (rig->source, "IN", done, 'A', 1);
    //  A new request goes on with the sequence numbers.
    int64_t fresh [] = { 5003, 107 };
    s_expect (rig->source, "IN", fresh, 'A', 1);
    s_expect_publication (rig->sub, &seqs, 'N', fresh + 1, 1);
    s_expect_silence (rig->sub, 300, "a retried request was published again");
    stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 1);
    cr_assert_eq (stats.requests, 1);
    cr_assert_eq (stats.retries, 2);
    cr_assert_eq (stats.results, 4);
    cr_assert_eq (stats.inflight, 1);
    s_rig_destroy (&rig);
}

//  E 9: while the journal cannot be written nothing is acknowledged,
//  published or dispatched, requests and reports alike; once it can, the
//  same requests are taken and numbered as if nothing had happened. The
//  segment is made unwritable with RLIMIT_FSIZE at its current size, which
//  binds root too: the broker's thread is in this process.
Test (broker, a_journal_that_cannot_be_written_refuses_with_e9, .timeout = 30,
      .fini = s_journal_dir_remove)
{
    s_journal_dir_make ();
    s_rig_t *rig = s_rig_new_journal (s_journal_dir);
    s_seqs_t seqs = { 0 };
    int64_t first [] = { 7001, 41, 43 };
    s_expect (rig->source, "INN", first, 'A', 2);
    s_expect_publication (rig->sub, &seqs, 'N', first + 1, 2);
    int64_t first_id = s_pull_dispatch (rig, first + 1, 2);

    struct rlimit saved;
    cr_assert_eq (getrlimit (RLIMIT_FSIZE, &saved), 0);
    off_t size = s_journal_largest_file ();
    cr_assert_gt (size, 0, "no segment file in %s", s_journal_dir);
    if (saved.rlim_cur != RLIM_INFINITY && saved.rlim_cur <= (rlim_t) size)
        cr_skip_test ("RLIMIT_FSIZE is already %lu, below the journal's %ld bytes",
                      (unsigned long) saved.rlim_cur, (long) size);
    void (*old_handler) (int) = signal (SIGXFSZ, SIG_IGN);
    struct rlimit limited = { .rlim_cur = (rlim_t) size, .rlim_max = saved.rlim_max };
    cr_assert_eq (setrlimit (RLIMIT_FSIZE, &limited), 0, "setrlimit: %s", strerror (errno));

    //  Check that the limit bites in this process before blaming the
    //  broker: a write at offset `size` must fail with EFBIG.
    char probe_path [] = "/tmp/pz-test-fsize-XXXXXX";
    int probe = mkstemp (probe_path);
    cr_assert_geq (probe, 0, "mkstemp: %s", strerror (errno));
    errno = 0;
    bool bites = pwrite (probe, "x", 1, size) == -1 && errno == EFBIG;
    close (probe);
    unlink (probe_path);
    if (!bites) {
        setrlimit (RLIMIT_FSIZE, &saved);
        signal (SIGXFSZ, old_handler);
        s_rig_destroy (&rig);
        cr_skip_test ("RLIMIT_FSIZE does not stop writes here: cannot make the journal fail");
    }

    int64_t report [] = { first_id, 3 };    //  41 and 43 prime: bits 0 and 1
    char tag;
    int64_t value;
    s_request (rig->report, "IV", report, &tag, &value);
    int64_t second [] = { 7002, 47 };
    char second_tag;
    int64_t second_value;
    s_request (rig->source, "IN", second, &second_tag, &second_value);
    pz_broker_stats_t stats = s_stats (rig);
    //  The limit off again before any assertion can end the test.
    setrlimit (RLIMIT_FSIZE, &saved);
    signal (SIGXFSZ, old_handler);

    cr_assert (tag == 'E' && value == PZ_ERR_UNAVAILABLE,
               "report while the journal fails: %c %ld", tag, (long) value);
    cr_assert (second_tag == 'E' && second_value == PZ_ERR_UNAVAILABLE,
               "request while the journal fails: %c %ld", second_tag, (long) second_value);
    cr_assert_eq (stats.unavailable, 2);
    cr_assert_eq (stats.errors [PZ_ERR_UNAVAILABLE], 2);
    cr_assert_eq (stats.accepted, 2);
    cr_assert_eq (stats.requests, 1);
    cr_assert_eq (stats.results, 0);
    cr_assert_eq (stats.inflight, 2);
    s_expect_silence (rig->sub, 300, "published while the journal failed");
    s_expect_silence (rig->pull, 100, "dispatched while the journal failed");

    //  Writable again: the same report and request are taken, numbered
    //  right after what was published before (S 2, S 3), and the request
    //  refused with E 9 is not mistaken for a retry.
    s_expect_report (rig->report, report [0], "PP", 'A', 2);
    s_expect (rig->source, "IN", second, 'A', 1);
    s_expect_publication (rig->sub, &seqs, 'P', first + 1, 2);
    s_expect_publication (rig->sub, &seqs, 'N', second + 1, 1);
    s_pull_dispatch (rig, second + 1, 1);
    stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 3);
    cr_assert_eq (stats.retries, 0);
    cr_assert_eq (stats.results, 2);
    cr_assert_eq (stats.unavailable, 2);
    s_rig_destroy (&rig);

    //  And the journal holds exactly that: a broker on it finds 47 pending.
    rig = s_rig_new_journal (s_journal_dir);
    cr_assert_eq (s_stats (rig).recovered, 1);
    s_pull_dispatch (rig, second + 1, 1);
    s_rig_destroy (&rig);
}


//  --------------------------------------------------------------------------
//  History

//  Publishes S 1 N [2 3 4], S 2 P [2 3], S 3 C [4], S 4 N [8 9], S 5 C [8 9]
//  on rig and checks them on its SUB, counting in seqs. Last T: N 2, P 1,
//  C 2 (all different from their neighbours', so a T from the wrong tag
//  shows).
static void
s_publish_five (s_rig_t *rig, s_seqs_t *seqs)
{
    int64_t numbers [] = { 2, 3, 4 };
    s_expect (rig->source, "NNN", numbers, 'A', 3);
    int64_t id = s_pull_dispatch (rig, numbers, 3);
    int64_t report [] = { id, 2, 3, 4 };
    s_expect_report (rig->report, report [0], "PPC", 'A', 3);
    int64_t more [] = { 8, 9 };
    s_expect (rig->source, "NN", more, 'A', 2);
    id = s_pull_dispatch (rig, more, 2);
    int64_t composites [] = { id, 8, 9 };
    s_expect_report (rig->report, composites [0], "CC", 'A', 2);
    s_expect_publication (rig->sub, seqs, 'N', numbers, 3);
    s_expect_publication (rig->sub, seqs, 'P', numbers, 2);
    s_expect_publication (rig->sub, seqs, 'C', numbers + 2, 1);
    s_expect_publication (rig->sub, seqs, 'N', more, 2);
    s_expect_publication (rig->sub, seqs, 'C', more, 2);
}

//  Checks a history reply against the publications the test rebuilds and
//  the status A next, H oldest, T per tag.
static void
s_expect_history (zsock_t *dealer, int64_t from, int64_t until, const char *tags,
                  const s_bytes_t *publications, int64_t next, int64_t oldest,
                  const int64_t *last)
{
    static uint8_t reply [300 * 1024];
    size_t size = s_history (dealer, from, until, tags, reply, sizeof reply);
    s_bytes_t expected = *publications;
    s_bytes_add (&expected, 'A', next);
    s_bytes_add (&expected, 'H', oldest);
    for (size_t index = 0; index < strlen (tags); index++)
        s_bytes_add (&expected, 'T', last [index]);
    char what [80];
    snprintf (what, sizeof what, "history %ld..%ld %s", (long) from, (long) until, tags);
    s_compare (reply, size, &expected, what);
}

//  With a journal, history serves the publications asked for, exactly as
//  published, with the status; malformed requests get E 10 or the usual
//  codes.
Test (broker, history_serves_the_journals_publications, .timeout = 30,
      .fini = s_journal_dir_remove)
{
    s_journal_dir_make ();
    s_rig_t *rig = s_rig_new_journal (s_journal_dir);
    s_seqs_t seqs = { 0 };
    s_publish_five (rig, &seqs);
    zsock_t *dealer = s_connect (ZMQ_DEALER, rig->endpoints [4]);

    //  Rebuild each publication the way the broker numbered them.
    s_seqs_t numbering = { 0 };
    int64_t numbers [] = { 2, 3, 4 }, more [] = { 8, 9 };
    s_bytes_t n1 = { .size = 0 }, p2 = { .size = 0 }, c3 = { .size = 0 };
    s_bytes_t n4 = { .size = 0 }, c5 = { .size = 0 };
    s_bytes_add_publication (&n1, &numbering, 'N', numbers, 3);
    s_bytes_add_publication (&p2, &numbering, 'P', numbers, 2);
    s_bytes_add_publication (&c3, &numbering, 'C', numbers + 2, 1);
    s_bytes_add_publication (&n4, &numbering, 'N', more, 2);
    s_bytes_add_publication (&c5, &numbering, 'C', more, 2);
    cr_assert_eq (numbering.seq, seqs.seq);

    //  P only, from the start: the P message, then next 6, oldest 1, T 1.
    int64_t last_p [] = { 1 };
    s_expect_history (dealer, 1, 0, "P", &p2, 6, 1, last_p);
    //  N and C, in seq order; the Ts in the request's order.
    s_bytes_t n_and_c = { .size = 0 };
    const s_bytes_t *parts [] = { &n1, &c3, &n4, &c5 };
    for (int index = 0; index < 4; index++) {
        memcpy (n_and_c.data + n_and_c.size, parts [index]->data, parts [index]->size);
        n_and_c.size += parts [index]->size;
    }
    int64_t last_n_c [] = { 2, 2 }, last_c_p_n [] = { 2, 1, 2 };
    s_expect_history (dealer, 1, 0, "NC", &n_and_c, 6, 1, last_n_c);
    //  All three tags, asked in another order: every publication.
    s_bytes_t all = n1;
    const s_bytes_t *rest [] = { &p2, &c3, &n4, &c5 };
    for (int index = 0; index < 4; index++) {
        memcpy (all.data + all.size, rest [index]->data, rest [index]->size);
        all.size += rest [index]->size;
    }
    s_expect_history (dealer, 1, 0, "CPN", &all, 6, 1, last_c_p_n);
    //  A range: from 2 until 4 holds S 2 and S 3, and next is until.
    s_bytes_t middle = p2;
    memcpy (middle.data + middle.size, c3.data, c3.size);
    middle.size += c3.size;
    int64_t last_all [] = { 2, 1, 2 };
    s_expect_history (dealer, 2, 4, "NPC", &middle, 4, 1, last_all);
    //  From the end: nothing yet, next is where to ask from.
    s_bytes_t none = { .size = 0 };
    s_expect_history (dealer, 6, 0, "NPC", &none, 6, 1, last_all);
    //  from == until is an empty range, not an error.
    s_expect_history (dealer, 3, 3, "P", &none, 3, 1, last_p);

    //  Malformed requests: E 10 for the history's own rules...
    struct {
        const char *tags;
        int64_t values [8];
        int64_t code;
    } bad [] = {
        { "HHP", { 0, 0, 0 }, PZ_ERR_BAD_HISTORY },          //  from 0
        { "HHP", { 5, 3, 0 }, PZ_ERR_BAD_HISTORY },          //  until < from
        { "HHP", { -1, 0, 0 }, PZ_ERR_BAD_HISTORY },         //  from negative
        { "HHPP", { 1, 0, 0, 0 }, PZ_ERR_BAD_HISTORY },      //  a tag twice
        { "HHNPCXN", { 1, 0, 0, 0, 0, 0, 0 }, PZ_ERR_BAD_HISTORY },  //  too many tags
        { "HHP", { 1, 0, 1 }, PZ_ERR_BAD_HISTORY },          //  tag value not 0
        { "HH", { 1, 0 }, PZ_ERR_BAD_HISTORY },              //  no tag
        { "HPH", { 1, 0, 0 }, PZ_ERR_BAD_HISTORY },          //  H not in front
        { "PHH", { 0, 1, 0 }, PZ_ERR_BAD_HISTORY },
        { "HHH", { 1, 0, 0 }, PZ_ERR_BAD_HISTORY },          //  H as a tag
        //  ... and the usual codes for the rest.
        { "HHZ", { 1, 0, 0 }, PZ_ERR_UNKNOWN_TAG },
        { "HHA", { 1, 0, 0 }, PZ_ERR_TAG_REFUSED },
        { "HHS", { 1, 0, 0 }, PZ_ERR_TAG_REFUSED },
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++)
        s_dealer_expect (dealer, NULL, bad [index].tags, bad [index].values,
                         'E', bad [index].code);
    //  A length that is no multiple of 9, and two frames.
    uint8_t frame [PZ_RECORD_SIZE * 3];
    pz_record_encode (frame, 'H', 1);
    pz_record_encode (frame + 9, 'H', 0);
    pz_record_encode (frame + 18, 'P', 0);
    uint8_t reply [PZ_RECORD_SIZE];
    s_dealer_send (dealer, NULL, frame, sizeof frame - 1, 0);
    cr_assert_eq (s_dealer_recv (dealer, NULL, reply, sizeof reply), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_LENGTH);
    s_dealer_send (dealer, NULL, frame, sizeof frame, 1);
    cr_assert_eq (s_dealer_recv (dealer, NULL, reply, sizeof reply), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_MULTIPART);
    //  Still serving after all that, and with a client tag in the envelope.
    s_dealer_send (dealer, "histtag1", frame, sizeof frame, 0);
    static uint8_t good [1024];
    size_t size = s_dealer_recv (dealer, "histtag1", good, sizeof good);
    cr_assert_eq (size, p2.size + 3 * PZ_RECORD_SIZE);
    cr_assert (memcmp (good, p2.data, p2.size) == 0);
    zsock_destroy (&dealer);
    s_rig_destroy (&rig);
}

//  A sink that has seen a publication finds it in history at once: the
//  history never lags what was published.
Test (broker, history_holds_what_sinks_have_seen, .timeout = 60,
      .fini = s_journal_dir_remove)
{
    s_journal_dir_make ();
    s_rig_t *rig = s_rig_new_journal (s_journal_dir);
    zsock_t *dealer = s_connect (ZMQ_DEALER, rig->endpoints [4]);
    s_seqs_t seqs = { 0 };
    for (int64_t round = 1; round <= 200; round++) {
        int64_t number [] = { 1000 + round };
        //  Sent on the REQ, its reply read only after the sink saw it.
        uint8_t request [PZ_RECORD_SIZE];
        pz_record_encode (request, 'N', number [0]);
        cr_assert_eq (zmq_send (zsock_resolve (rig->source), request, sizeof request, 0),
                      PZ_RECORD_SIZE);
        s_expect_publication (rig->sub, &seqs, 'N', number, 1);
        static uint8_t reply [4096];
        size_t size = s_history (dealer, seqs.seq, 0, "N", reply, sizeof reply);
        //  N x, S, T, then A, H, T: the publication and the status.
        cr_assert_eq (size, 6 * PZ_RECORD_SIZE,
                      "round %ld: history does not hold S %ld yet (%zu bytes)",
                      (long) round, (long) seqs.seq, size);
        cr_assert_eq (pz_record_value (reply), number [0]);
        cr_assert_eq (pz_record_value (reply + 1 * PZ_RECORD_SIZE), seqs.seq);
        cr_assert_eq (pz_record_value (reply + 3 * PZ_RECORD_SIZE), seqs.seq + 1);
        cr_assert_eq (pz_record_value (reply + 2 * PZ_RECORD_SIZE), seqs.tag_seq [0]);
        cr_assert_eq (pz_record_value (reply + 5 * PZ_RECORD_SIZE), seqs.tag_seq [0]);
        uint8_t ack [PZ_RECORD_SIZE];
        cr_assert_eq (zmq_recv (zsock_resolve (rig->source), ack, sizeof ack, 0), PZ_RECORD_SIZE);
        s_pull_dispatch (rig, number, 1);
    }
    zsock_destroy (&dealer);
    s_rig_destroy (&rig);
}

//  Without a journal history holds nothing: the reply is the status only,
//  oldest = the last seq + 1, and the last T of each tag asked for.
Test (broker, history_without_a_journal_answers_the_status_only, .timeout = 20)
{
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, true, 0);
    s_seqs_t seqs = { 0 };
    zsock_t *dealer = s_connect (ZMQ_DEALER, rig->endpoints [4]);
    //  Before anything was published: oldest 1, every T 0.
    s_bytes_t none = { .size = 0 };
    int64_t zeros [] = { 0, 0, 0 };
    s_expect_history (dealer, 1, 0, "NPC", &none, 1, 1, zeros);

    s_publish_five (rig, &seqs);
    int64_t last_all [] = { 2, 1, 2 }, last_p_n [] = { 1, 2 };
    s_expect_history (dealer, 1, 0, "NPC", &none, 6, 6, last_all);
    s_expect_history (dealer, 2, 0, "PN", &none, 6, 6, last_p_n);
    //  Asked from later than the end: next is from; until bounds next.
    s_expect_history (dealer, 9, 0, "PN", &none, 9, 6, last_p_n);
    s_expect_history (dealer, 1, 3, "PN", &none, 3, 6, last_p_n);
    //  The rules are the same as with a journal.
    int64_t from_zero [] = { 0, 0, 0 };
    s_dealer_expect (dealer, NULL, "HHN", from_zero, 'E', PZ_ERR_BAD_HISTORY);
    zsock_destroy (&dealer);
    s_rig_destroy (&rig);
}


//  --------------------------------------------------------------------------
//  ROUTER-as-REP: the source and results endpoints, spoken to by DEALERs

//  A DEALER's request [tag][empty][body] is answered [tag][empty][reply];
//  several may be outstanding at once, each answered behind its own tag.
Test (broker, a_dealer_request_is_answered_behind_its_envelope, .timeout = 20)
{
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, true, 0);
    s_seqs_t seqs = { 0 };
    zsock_t *source = s_connect (ZMQ_DEALER, rig->endpoints [0]);
    zsock_t *worker = s_connect (ZMQ_DEALER, rig->endpoints [3]);

    int64_t two [] = { 8001, 2, 3 };
    s_dealer_expect (source, "tag-0001", "INN", two, 'A', 2);
    s_expect_publication (rig->sub, &seqs, 'N', two + 1, 2);
    int64_t id = s_pull_dispatch (rig, two + 1, 2);

    //  Two outstanding on one socket: each reply finds its tag.
    uint8_t frames [2][PZ_RECORD_SIZE * 4];
    pz_record_encode (frames [0], 'N', 5);
    pz_record_encode (frames [1], 'N', 7);
    pz_record_encode (frames [1] + 9, 'N', 11);
    pz_record_encode (frames [1] + 18, 'N', 13);
    s_dealer_send (source, "tag-0002", frames [0], PZ_RECORD_SIZE, 0);
    s_dealer_send (source, "tag-0003", frames [1], 3 * PZ_RECORD_SIZE, 0);
    int64_t acks [2] = { 0, 0 };
    for (int reply = 0; reply < 2; reply++) {
        char tag [16];
        int size = zmq_recv (zsock_resolve (source), tag, sizeof tag, 0);
        cr_assert_eq (size, 8);
        cr_assert (memcmp (tag, "tag-000", 7) == 0 && (tag [7] == '2' || tag [7] == '3'));
        uint8_t record [PZ_RECORD_SIZE];
        cr_assert_eq (zmq_recv (zsock_resolve (source), record, sizeof record, 0), 0);
        cr_assert_eq (zmq_recv (zsock_resolve (source), record, sizeof record, 0),
                      PZ_RECORD_SIZE);
        cr_assert_eq (pz_record_tag (record), 'A');
        acks [tag [7] - '2'] = pz_record_value (record);
    }
    cr_assert (acks [0] == 1 && acks [1] == 3, "acks %ld and %ld", (long) acks [0],
               (long) acks [1]);

    //  A worker's report on a DEALER, likewise.
    int64_t report [] = { id, 3 };          //  2 and 3 prime: bits 0 and 1
    s_dealer_expect (worker, "worker01", "IV", report, 'A', 2);
    //  And one without a tag frame: [empty][body], as a REQ would send it.
    s_dealer_expect (worker, NULL, "IV", report, 'A', 2);
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 6);
    cr_assert_eq (stats.results, 2);
    cr_assert_eq (stats.duplicates, 2);
    zsock_destroy (&worker);
    zsock_destroy (&source);
    s_rig_destroy (&rig);
}

//  A body of more than one frame gets E 5 behind the envelope; a message
//  without an empty delimiter is no request: it is dropped, unanswered,
//  and the broker goes on serving.
Test (broker, a_dealer_request_without_one_body_frame_is_refused_or_dropped, .timeout = 20)
{
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, false, 0);
    s_seqs_t seqs = { 0 };
    zsock_t *source = s_connect (ZMQ_DEALER, rig->endpoints [0]);
    zsock_t *worker = s_connect (ZMQ_DEALER, rig->endpoints [3]);

    uint8_t body [PZ_RECORD_SIZE];
    pz_record_encode (body, 'N', 17);
    uint8_t reply [PZ_RECORD_SIZE];
    s_dealer_send (source, "tag-0001", body, sizeof body, 1);
    cr_assert_eq (s_dealer_recv (source, "tag-0001", reply, sizeof reply), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_MULTIPART);
    s_dealer_send (worker, "tag-0001", body, sizeof body, 2);
    cr_assert_eq (s_dealer_recv (worker, "tag-0001", reply, sizeof reply), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_MULTIPART);

    //  No delimiter: a bare body, and a tag then a body.
    cr_assert_eq (zmq_send (zsock_resolve (source), body, sizeof body, 0), PZ_RECORD_SIZE);
    cr_assert_eq (zmq_send (zsock_resolve (source), "tag-0002", 8, ZMQ_SNDMORE), 8);
    cr_assert_eq (zmq_send (zsock_resolve (source), body, sizeof body, 0), PZ_RECORD_SIZE);
    cr_assert_eq (zmq_send (zsock_resolve (worker), body, sizeof body, 0), PZ_RECORD_SIZE);
    //  The next good request is the next reply on each socket.
    int64_t good [] = { 19 };
    s_dealer_expect (source, "tag-0003", "N", good, 'A', 1);
    int64_t never_issued [] = { 12345, 1 };
    s_dealer_expect (worker, "tag-0003", "IV", never_issued, 'E', PZ_ERR_UNKNOWN_ID);
    s_expect_silence (source, 200, "a dropped message was answered");

    s_expect_publication (rig->sub, &seqs, 'N', good, 1);
    s_expect_silence (rig->sub, 200, "a refused or dropped message was published");
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 1);
    cr_assert_eq (stats.requests, 1);
    cr_assert_eq (stats.errors [PZ_ERR_MULTIPART], 2);
    //  The rig's REQ sockets are served as before.
    int64_t plain [] = { 23 };
    s_expect (rig->source, "N", plain, 'A', 1);
    zsock_destroy (&worker);
    zsock_destroy (&source);
    s_rig_destroy (&rig);
}


//  Receives a number dispatch on whichever of two PULLs it reaches; returns
//  its id.
static int64_t
s_pull_either (zsock_t *first, zsock_t *second)
{
    zpoller_t *poller = zpoller_new (first, second, NULL);
    zsock_t *which = (zsock_t *) zpoller_wait (poller, 2000);
    zpoller_destroy (&poller);
    cr_assert (which, "no dispatch");
    uint8_t frame [PZ_MESSAGE_MAX];
    cr_assert_gt (s_receive (which, frame, sizeof frame), 0);
    return pz_record_value (frame);
}

//  A broker that cuts ranges in pieces of 10, with its test worker's PULL
//  and a second PULL (returned in *pull) connected to its dispatch.
static s_rig_t *
s_rig_two_pulls (zsock_t **pull)
{
    s_options_t options = {
        .lease_ms = 5000, .max_inflight = 1000, .max_messages = 1000,
        .coalesce_ms = 0, .with_worker = true, .range_lease = 10
    };
    s_rig_t *rig = s_rig_open (&options);
    *pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    return rig;
}

Test (broker, ranges_near_the_top_are_cut_in_lanes_for_connected_threads, .timeout = 20)
{
    //  Two PULLs connected, neither has reported: the broker counts the
    //  dispatch endpoint's connections, so the first two pieces already
    //  come from two lanes, one to each PULL (PUSH deals in turn).
    zsock_t *pull;
    s_rig_t *rig = s_rig_two_pulls (&pull);
    zclock_sleep (300);             //  connected, and counted (every 50 ms)
    const int64_t lo = INT64_C (1000000000000000000);
    int64_t range [] = { lo, lo + 199 };
    s_expect (rig->source, "QQ", range, 'A', 2);
    zsock_t *pulls [2] = { rig->pull, pull };
    int64_t first [2];
    for (int index = 0; index < 2; index++) {
        uint8_t frame [3 * PZ_RECORD_SIZE];
        cr_assert_eq (s_receive (pulls [index], frame, sizeof frame), sizeof frame,
                      "PULL %d: no piece", index);
        first [index] = pz_record_value (frame + PZ_RECORD_SIZE);
    }
    int64_t low = first [0] < first [1] ? first [0] : first [1];
    int64_t high = first [0] < first [1] ? first [1] : first [0];
    cr_assert_eq (low, lo);
    cr_assert_eq (high, lo + 100, "second lane starts at %ld, not in the middle",
                  (long) (high - lo));
    zsock_destroy (&pull);
    s_rig_destroy (&rig);
}

//  Near the top a range is cut into one lane per worker thread; threads
//  that have only tested numbers count: two REQ workers reported, so the
//  first cuts alternate between two lanes and each PULL (PUSH deals round
//  robin) gets pieces that follow each other.
Test (broker, ranges_near_the_top_are_cut_in_lanes_for_known_threads, .timeout = 20)
{
    zsock_t *pull;
    s_rig_t *rig = s_rig_two_pulls (&pull);
    zsock_t *reports [2];
    for (int index = 0; index < 2; index++) {
        reports [index] = zsock_new (ZMQ_REQ);
        zsock_set_rcvtimeo (reports [index], 2000);
        zsock_set_linger (reports [index], 0);
        zsock_set_identity (reports [index], index ? "w/1" : "w/0");
        cr_assert_eq (zsock_connect (reports [index], "%s", rig->endpoints [3]), 0);
    }
    zclock_sleep (100);             //  both PULLs connected
    for (int index = 0; index < 2; index++) {
        int64_t number [] = { 7 };
        s_expect (rig->source, "N", number, 'A', 1);
        s_expect_report (reports [index], s_pull_either (rig->pull, pull), "P", 'A', 1);
    }
    const int64_t lo = INT64_C (1000000000000000000);
    int64_t range [] = { lo, lo + 199 };
    s_expect (rig->source, "QQ", range, 'A', 2);
    //  Twice the two threads: four pieces out, two to each PULL.
    zsock_t *pulls [2] = { rig->pull, pull };
    for (int index = 0; index < 2; index++) {
        int64_t bounds [2][2];
        for (int piece = 0; piece < 2; piece++) {
            uint8_t frame [3 * PZ_RECORD_SIZE];
            cr_assert_eq (s_receive (pulls [index], frame, sizeof frame), sizeof frame,
                          "PULL %d: piece %d missing", index, piece);
            cr_assert_eq (pz_record_tag (frame + PZ_RECORD_SIZE), 'Q');
            bounds [piece][0] = pz_record_value (frame + PZ_RECORD_SIZE);
            bounds [piece][1] = pz_record_value (frame + 2 * PZ_RECORD_SIZE);
        }
        cr_assert_eq (bounds [1][0], bounds [0][1] + 1, "PULL %d: pieces [%ld, %ld] then "
                      "[%ld, %ld]", index, (long) bounds [0][0], (long) bounds [0][1],
                      (long) bounds [1][0], (long) bounds [1][1]);
    }
    for (int index = 0; index < 2; index++)
        zsock_destroy (&reports [index]);
    zsock_destroy (&pull);
    s_rig_destroy (&rig);
}
