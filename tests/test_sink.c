/*  =========================================================================
    test_sink - the sink against a fake broker: formats, gaps filled from
                history or lost, trailing gaps, --from, --resume, restarts,
                malformed messages, output into a pipe

    Each test binds its own XPUB (the publish endpoint) on a free loopback
    port and, when it needs one, a fake history ROUTER in a zactor that
    answers from an in-memory journal as proto/PROTOCOL.md says ("History").
    The sink runs in a thread, writes to a temporary file (or a pipe the
    test reads while it runs) and stops at --count (or on a loss with
    --strict); the test then compares the output with text it builds
    itself.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "publication.h"
#include "sink.h"

#define S_PUBS_MAX      64
#define S_VALUES_MAX    8

//  One publication of the fake broker.
typedef struct {
    char tag;                   //  N, P or C
    int64_t seq;                //  its sequence number
    int64_t tag_seq;            //  its number among its tag's
    size_t count;               //  records
    int64_t values [S_VALUES_MAX];  //  their values
} s_pub_t;

//  What the fake history serves.
typedef struct {
    s_pub_t pubs [S_PUBS_MAX];  //  every publication, in seq order
    size_t pub_count;           //  how many
    _Atomic int64_t newest;     //  seqs up to this are durable (served)
    int64_t oldest;             //  smallest seq held; 0: no journal, nothing held
    size_t chunk;               //  publications per reply, at most
    _Atomic int requests;       //  requests answered
} s_journal_t;

//  Adds a publication with values base, base + 1, ... to the journal.
static s_pub_t *
s_add (s_journal_t *journal, char tag, int64_t seq, int64_t tag_seq, size_t count,
       int64_t base)
{
    cr_assert (journal->pub_count < S_PUBS_MAX && count <= S_VALUES_MAX);
    s_pub_t *pub = &journal->pubs [journal->pub_count++];
    *pub = (s_pub_t) { .tag = tag, .seq = seq, .tag_seq = tag_seq, .count = count };
    for (size_t index = 0; index < count; index++)
        pub->values [index] = base + (int64_t) index;
    return pub;
}

//  Adds a stream: one publication per letter of tags, seqs from 1, tag
//  seqs counted per tag, count records each, values seq * 100 + index.
static void
s_add_stream (s_journal_t *journal, const char *tags, size_t count)
{
    int64_t tag_seqs [128] = { 0 };
    for (size_t index = 0; tags [index]; index++) {
        int64_t seq = (int64_t) index + 1;
        s_add (journal, tags [index], seq, ++tag_seqs [(int) tags [index]], count, seq * 100);
    }
}

//  Encodes a publication into frame. Returns its size.
static size_t
s_encode (const s_pub_t *pub, uint8_t *frame)
{
    size_t size = 0;
    for (size_t index = 0; index < pub->count; index++, size += PZ_RECORD_SIZE)
        pz_record_encode (frame + size, pub->tag, pub->values [index]);
    pz_publication_trailer (frame + size, pub->seq, pub->tag_seq);
    return size + PZ_TRAILER_SIZE;
}

//  Builds the reply to one history request, as PROTOCOL.md says.
static size_t
s_history_reply (s_journal_t *journal, const uint8_t *data, size_t size, uint8_t *reply)
{
    size_t records = size / PZ_RECORD_SIZE;
    if (size % PZ_RECORD_SIZE || records < 3 || records > 5
    ||  pz_record_tag (data) != 'H' || pz_record_tag (data + PZ_RECORD_SIZE) != 'H') {
        pz_record_encode (reply, 'E', 10);
        return PZ_RECORD_SIZE;
    }
    int64_t from = pz_record_value (data);
    int64_t until = pz_record_value (data + PZ_RECORD_SIZE);
    if (from < 1 || (until != 0 && until < from)) {
        pz_record_encode (reply, 'E', 10);
        return PZ_RECORD_SIZE;
    }
    int64_t newest = atomic_load (&journal->newest);
    int64_t oldest = journal->oldest > 0 ? journal->oldest : newest + 1;
    const char *tags [3] = { NULL };
    char letters [4] = { 0 };
    for (size_t index = 2; index < records; index++)
        letters [index - 2] = pz_record_tag (data + index * PZ_RECORD_SIZE);
    (void) tags;
    size_t length = 0;
    size_t served = 0;
    int64_t next = until > 0 ? (until < newest + 1 ? until : newest + 1) : newest + 1;
    for (size_t index = 0; index < journal->pub_count; index++) {
        s_pub_t *pub = &journal->pubs [index];
        if (pub->seq < from || pub->seq > newest || (until > 0 && pub->seq >= until)
        ||  pub->seq < oldest || !strchr (letters, pub->tag))
            continue;
        if (served == journal->chunk) {
            next = pub->seq;
            break;
        }
        length += s_encode (pub, reply + length);
        served++;
    }
    if (next < from)
        next = from;
    pz_record_encode (reply + length, 'A', next);
    length += PZ_RECORD_SIZE;
    pz_record_encode (reply + length, 'H', oldest);
    length += PZ_RECORD_SIZE;
    for (size_t tag = 0; letters [tag]; tag++) {
        int64_t last = 0;
        for (size_t index = 0; index < journal->pub_count; index++)
            if (journal->pubs [index].tag == letters [tag]
            &&  journal->pubs [index].seq <= newest)
                last = journal->pubs [index].tag_seq;
        pz_record_encode (reply + length, 'T', last);
        length += PZ_RECORD_SIZE;
    }
    return length;
}

//  The fake history endpoint: a ROUTER that echoes the envelope up to the
//  empty frame, as a REP would, and answers from the journal.
static void
s_history_actor (zsock_t *pipe, void *args)
{
    s_journal_t *journal = (s_journal_t *) args;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (router, 0);
    cr_assert_eq (zmq_bind (zsock_resolve (router), "tcp://127.0.0.1:*"), 0);
    zsock_signal (pipe, 0);
    char *endpoint = zsock_last_endpoint (router);     //  ours to free
    zstr_send (pipe, endpoint);
    zstr_free (&endpoint);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    uint8_t *reply = (uint8_t *) malloc (PZ_PUBLICATION_MAX * S_PUBS_MAX);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;                  //  $TERM, or interrupted
        zmsg_t *request = zmsg_recv (router);
        if (!request)
            break;
        zframe_t *body = zmsg_last (request);
        size_t length = s_history_reply (journal, zframe_data (body), zframe_size (body), reply);
        zmsg_t *answer = zmsg_new ();
        for (zframe_t *frame = zmsg_first (request); frame != body; frame = zmsg_next (request))
            zmsg_addmem (answer, zframe_data (frame), zframe_size (frame));
        zmsg_addmem (answer, reply, length);
        atomic_fetch_add (&journal->requests, 1);
        zmsg_send (&answer, router);
        zmsg_destroy (&request);
    }
    free (reply);
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

//  A fake broker (XPUB, optional history) and a sink under test.
typedef struct {
    s_journal_t journal;        //  what history serves
    zsock_t *pub;               //  the publish endpoint
    char *pub_endpoint;         //  its address
    zactor_t *history;          //  the fake history, or NULL
    char *history_endpoint;     //  its address
    char out_path [64];         //  the sink's output file
    int out_fd;                 //  open on it
    pz_sink_config_t config;    //  the sink's configuration
    pz_sink_t *sink;            //  the sink
    pthread_t thread;           //  running it
    int status;                 //  what pz_sink_run returned
} s_rig_t;

static s_rig_t *
s_rig_new (void)
{
    s_rig_t *self = (s_rig_t *) zmalloc (sizeof (s_rig_t));
    self->journal.chunk = 1000;
    self->pub = zsock_new (ZMQ_XPUB);
    zsock_set_linger (self->pub, 0);
    zsock_set_sndhwm (self->pub, 0);
    zsock_set_xpub_verbose (self->pub, 1);  //  every subscription, even a repeated one
    zsock_set_rcvtimeo (self->pub, 5000);
    cr_assert_eq (zmq_bind (zsock_resolve (self->pub), "tcp://127.0.0.1:*"), 0);
    self->pub_endpoint = zsock_last_endpoint (self->pub);     //  ours to free
    snprintf (self->out_path, sizeof self->out_path, "/tmp/test_sink_out_XXXXXX");
    self->out_fd = mkstemp (self->out_path);
    cr_assert (self->out_fd >= 0);
    pz_sink_config_init (&self->config);
    self->config.connect = self->pub_endpoint;
    self->config.history_timeout_ms = 300;
    self->config.idle_ms = 5000;
    return self;
}

//  Starts the fake history on the rig's journal.
static void
s_rig_history (s_rig_t *self)
{
    self->history = zactor_new (s_history_actor, &self->journal);
    self->history_endpoint = zstr_recv (self->history);
    self->config.history = self->history_endpoint;
}

static void
s_rig_destroy (s_rig_t **self_p)
{
    s_rig_t *self = *self_p;
    pz_sink_destroy (&self->sink);
    zactor_destroy (&self->history);
    zstr_free (&self->history_endpoint);
    zsock_destroy (&self->pub);
    zstr_free (&self->pub_endpoint);
    close (self->out_fd);
    unlink (self->out_path);
    free (self);
    *self_p = NULL;
}

static void *
s_run (void *args)
{
    s_rig_t *self = (s_rig_t *) args;
    self->status = pz_sink_run (self->sink);
    return NULL;
}

//  Creates the sink, waits until the XPUB has its subscriptions (one per
//  tag), and runs it in a thread.
static void
s_rig_start (s_rig_t *self)
{
    self->sink = pz_sink_new (&self->config, self->out_fd);
    cr_assert (self->sink);
    for (size_t index = 0; index < strlen (self->config.tags); ) {
        uint8_t subscription [8];
        int size = zmq_recv (zsock_resolve (self->pub), subscription, sizeof subscription, 0);
        cr_assert_eq (size, 2, "no subscription reached the fake broker");
        if (subscription [0] == 1)
            index++;                //  not an earlier sink's unsubscription
    }
    pthread_create (&self->thread, NULL, s_run, self);
}

//  Waits for the sink to stop. Returns its status.
static int
s_rig_wait (s_rig_t *self)
{
    pthread_join (self->thread, NULL);
    return self->status;
}

//  Publishes the journal's publication of sequence number seq, live.
static void
s_publish (s_rig_t *self, int64_t seq)
{
    for (size_t index = 0; index < self->journal.pub_count; index++)
        if (self->journal.pubs [index].seq == seq) {
            uint8_t frame [PZ_PUBLICATION_MAX];
            size_t size = s_encode (&self->journal.pubs [index], frame);
            cr_assert_eq (zmq_send (zsock_resolve (self->pub), frame, size, 0), (int) size);
            return;
        }
    cr_assert_fail ("no publication %" PRId64, seq);
}

//  Returns the rig's output file's content. Caller frees.
static char *
s_output (const char *path)
{
    FILE *file = fopen (path, "r");
    cr_assert (file);
    char *text = (char *) zmalloc (1 << 20);
    size_t size = fread (text, 1, (1 << 20) - 1, file);
    text [size] = '\0';
    fclose (file);
    return text;
}

//  Appends the expected text lines of the publications with these seqs
//  (from record first of the first one) to text, as format would print.
static void
s_expect (s_journal_t *journal, pz_sink_format_t format, const int64_t *seqs,
          size_t count, char *text)
{
    for (size_t item = 0; item < count; item++)
        for (size_t index = 0; index < journal->pub_count; index++) {
            s_pub_t *pub = &journal->pubs [index];
            if (pub->seq != seqs [item])
                continue;
            for (size_t record = 0; record < pub->count; record++) {
                char line [80];
                if (format == PZ_SINK_TEXT)
                    snprintf (line, sizeof line, "%c %" PRId64 "\n", pub->tag, pub->values [record]);
                else
                if (format == PZ_SINK_CSV)
                    snprintf (line, sizeof line, "%c,%" PRId64 "\n", pub->tag, pub->values [record]);
                else
                    snprintf (line, sizeof line, "{\"tag\":\"%c\",\"value\":%" PRId64 "}\n",
                              pub->tag, pub->values [record]);
                strcat (text, line);
            }
        }
}

//  Records in the journal's publications of these seqs.
static int64_t
s_records (s_journal_t *journal, const int64_t *seqs, size_t count)
{
    int64_t records = 0;
    for (size_t item = 0; item < count; item++)
        for (size_t index = 0; index < journal->pub_count; index++)
            if (journal->pubs [index].seq == seqs [item])
                records += (int64_t) journal->pubs [index].count;
    return records;
}

//  Waits until the output file ends with text (the sink printed it).
static void
s_wait_output (s_rig_t *self, const char *text)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        char *output = s_output (self->out_path);
        size_t length = strlen (output);
        bool found = length >= strlen (text)
                  && streq (output + length - strlen (text), text);
        free (output);
        if (found)
            return;
        zclock_sleep (10);
    }
    cr_assert_fail ("the sink did not print '%s'", text);
}

static pz_sink_stats_t
s_stats (s_rig_t *self)
{
    pz_sink_stats_t stats;
    pz_sink_stats (self->sink, &stats);
    return stats;
}

//  A continuous stream of P and C, with values at the edges of int64, is
//  printed exactly in one format.
static void
s_check_format (pz_sink_format_t format)
{
    s_rig_t *rig = s_rig_new ();
    s_add (&rig->journal, 'P', 1, 1, 3, 2);
    s_pub_t *edges = s_add (&rig->journal, 'C', 2, 1, 8, 0);
    int64_t values [8] = { INT64_MIN, INT64_MAX, 0, -1, 9, 10, -100, 1000000007 };
    memcpy (edges->values, values, sizeof values);
    s_add (&rig->journal, 'N', 3, 1, 2, 5);        //  not subscribed to
    s_add (&rig->journal, 'P', 4, 2, 1, 97);
    rig->config.tags = "PC";
    rig->config.format = format;
    int64_t seqs [] = { 1, 2, 4 };
    rig->config.count = s_records (&rig->journal, seqs, 3);
    s_rig_start (rig);
    for (int64_t seq = 1; seq <= 4; seq++)
        s_publish (rig, seq);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char expected [4096] = "";
    if (format == PZ_SINK_CSV)
        strcat (expected, "tag,value\n");
    s_expect (&rig->journal, format, seqs, 3, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.by_tag [1], 4);
    cr_assert_eq (stats.by_tag [2], 8);
    cr_assert_eq (stats.gaps + stats.lost + stats.malformed, 0);
    free (output);
    s_rig_destroy (&rig);
}

Test (sink, text_exact, .timeout = 20)
{
    s_check_format (PZ_SINK_TEXT);
}

Test (sink, csv_exact, .timeout = 20)
{
    s_check_format (PZ_SINK_CSV);
}

Test (sink, json_exact, .timeout = 20)
{
    s_check_format (PZ_SINK_JSON);
}

//  No history endpoint: the gap is counted lost and the sink goes on.
Test (sink, gap_without_history_is_lost, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPPP", 2);
    int64_t seqs [] = { 1, 2, 4 };
    rig->config.count = s_records (&rig->journal, seqs, 3);
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 4);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 3, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.gaps, 1);
    cr_assert_eq (stats.lost, 1);
    cr_assert_eq (stats.filled, 0);
    char summary [512];
    pz_sink_summary (rig->sink, summary, sizeof summary);
    cr_assert_str_eq (summary, "printed N 0, P 6, C 0; 0 malformed messages dropped; "
                      "gaps 1, filled 0 messages from history, lost 1 messages; corrections 0");
    free (output);
    s_rig_destroy (&rig);
}

//  A history without a journal holds nothing: with --strict the loss ends
//  the run with status 3, before the message that revealed the gap.
Test (sink, strict_loss_exits_3, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPPP", 2);
    atomic_store (&rig->journal.newest, 4);
    rig->journal.oldest = 0;                    //  no journal
    s_rig_history (rig);
    rig->config.strict = true;
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 4);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_LOST);
    int64_t seqs [] = { 1, 2 };
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 2, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    cr_assert_eq (s_stats (rig).lost, 1);
    cr_assert (atomic_load (&rig->journal.requests) >= 1, "history was not asked");
    free (output);
    s_rig_destroy (&rig);
}

//  A gap of four messages is read from history (two per reply) and printed
//  before the message that revealed it: output complete and in order.
Test (sink, gap_filled_from_history, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPCPPPCPP", 2);
    atomic_store (&rig->journal.newest, 9);
    rig->journal.oldest = 1;
    rig->journal.chunk = 2;
    s_rig_history (rig);
    rig->config.strict = true;
    int64_t seqs [] = { 1, 2, 4, 5, 6, 8, 9 };
    rig->config.count = s_records (&rig->journal, seqs, 7);
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 8);                         //  4, 5, 6 (P) missed
    s_publish (rig, 9);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 7, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.gaps, 1);
    cr_assert_eq (stats.filled, 3);
    cr_assert_eq (stats.lost, 0);
    cr_assert (atomic_load (&rig->journal.requests) >= 2, "not read in chunks");
    free (output);
    s_rig_destroy (&rig);
}

//  The last messages of a run never arrive live: the idle status request
//  finds them (T last) and fills them from history.
Test (sink, trailing_gap_filled, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPPPP", 1);
    atomic_store (&rig->journal.newest, 5);
    rig->journal.oldest = 1;
    s_rig_history (rig);
    rig->config.idle_ms = 200;
    rig->config.count = 5;
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 3);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    int64_t seqs [] = { 1, 2, 3, 4, 5 };
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 5, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.filled, 2);
    cr_assert_eq (stats.gaps, 1);
    cr_assert_eq (stats.lost, 0);
    free (output);
    s_rig_destroy (&rig);
}

//  --from new, nothing received yet, and nothing of the tag published yet
//  (the idle status says T last 0): the tag starts at its first message,
//  so that the first ones, published afterwards and missed live (as when
//  the subscription is not there again yet after a broker restart), are a
//  gap filled from history, not passed over by taking the next live one
//  for the start.
Test (sink, a_tag_never_published_starts_at_its_first_message, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "NNPPP", 1);
    atomic_store (&rig->journal.newest, 2);     //  only the N messages yet
    rig->journal.oldest = 1;
    s_rig_history (rig);
    rig->config.tags = "P";
    rig->config.idle_ms = 100;
    rig->config.count = 3;
    s_rig_start (rig);
    while (atomic_load (&rig->journal.requests) < 2)
        zclock_sleep (10);                      //  idle statuses: P never published
    atomic_store (&rig->journal.newest, 5);
    s_publish (rig, 4);                         //  3 published, missed live
    s_publish (rig, 5);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    int64_t seqs [] = { 3, 4, 5 };
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 3, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.filled, 1);
    cr_assert_eq (stats.lost, 0);
    free (output);
    s_rig_destroy (&rig);
}

//  A trailing gap history no longer holds is lost (and counted).
Test (sink, trailing_gap_without_journal_is_lost, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPPPP", 1);
    atomic_store (&rig->journal.newest, 5);
    rig->journal.oldest = 0;
    s_rig_history (rig);
    rig->config.idle_ms = 200;
    rig->config.strict = true;
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 3);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_LOST);
    cr_assert_eq (s_stats (rig).lost, 2);
    s_rig_destroy (&rig);
}

//  History may count a publication a moment before it arrives live: a
//  trailing gap only one idle check has seen is not lost yet, and the
//  messages that come live after it are printed.
Test (sink, trailing_gap_still_on_its_way, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPPPP", 1);
    atomic_store (&rig->journal.newest, 5);
    rig->journal.oldest = 0;                //  no journal: nothing to fill from
    s_rig_history (rig);
    rig->config.idle_ms = 300;
    rig->config.count = 5;
    rig->config.strict = true;
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 3);
    //  The first idle check sees T last 5; then 4 and 5 arrive.
    int requests = atomic_load (&rig->journal.requests);
    while (atomic_load (&rig->journal.requests) == requests)
        zclock_sleep (10);
    s_publish (rig, 4);
    s_publish (rig, 5);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    int64_t seqs [] = { 1, 2, 3, 4, 5 };
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 5, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    cr_assert_eq (s_stats (rig).lost, 0);
    free (output);
    s_rig_destroy (&rig);
}

//  --from all: everything history holds first, then live messages without
//  a duplicate (5 and 6 come live as well) and without a gap.
Test (sink, from_all_then_live, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PCPPCPPP", 2);
    atomic_store (&rig->journal.newest, 6);
    rig->journal.oldest = 1;
    rig->journal.chunk = 2;
    s_rig_history (rig);
    rig->config.tags = "PC";
    rig->config.from_seq = 1;
    rig->config.strict = true;
    int64_t seqs [] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    rig->config.count = s_records (&rig->journal, seqs, 8);
    s_rig_start (rig);
    s_wait_output (rig, "P 601\n");          //  caught up to 6 from history
    s_publish (rig, 5);                     //  then 5 and 6 come live: skipped
    s_publish (rig, 6);
    atomic_store (&rig->journal.newest, 8);
    s_publish (rig, 7);
    s_publish (rig, 8);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 8, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    cr_assert_eq (s_stats (rig).lost, 0);
    free (output);
    s_rig_destroy (&rig);
}

//  --from SEQ: history from that sequence number on, then live.
Test (sink, from_seq_then_live, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PPPPPPPP", 1);
    atomic_store (&rig->journal.newest, 6);
    rig->journal.oldest = 1;
    s_rig_history (rig);
    rig->config.from_seq = 3;
    rig->config.strict = true;
    rig->config.count = 6;
    s_rig_start (rig);
    s_wait_output (rig, "P 600\n");          //  caught up to 6 from history
    s_publish (rig, 6);                     //  then 6 comes live: skipped
    atomic_store (&rig->journal.newest, 8);
    s_publish (rig, 7);
    s_publish (rig, 8);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    int64_t seqs [] = { 3, 4, 5, 6, 7, 8 };
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 6, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    free (output);
    s_rig_destroy (&rig);
}

//  Runs a sink on rig's output file with resume file path, count records,
//  from from_seq, until it stops. Returns its status.
static int
s_resume_run (s_rig_t *rig, const char *path, int64_t count, int64_t from_seq)
{
    pz_sink_destroy (&rig->sink);
    rig->config.resume = path;
    rig->config.count = count;
    rig->config.from_seq = from_seq;
    s_rig_start (rig);
    return s_rig_wait (rig);
}

//  A rig for the --resume tests: tag P only (one tag line in the position
//  file), six publications of three records in history, served two at a
//  time; path gets the position file's name (none there yet).
static s_rig_t *
s_resume_rig (char *path, size_t path_size)
{
    s_rig_t *rig = s_rig_new ();
    rig->config.tags = "P";
    s_add_stream (&rig->journal, "PPPPPP", 3);
    atomic_store (&rig->journal.newest, 6);
    rig->journal.oldest = 1;
    rig->journal.chunk = 2;
    s_rig_history (rig);
    snprintf (path, path_size, "%s.resume", rig->out_path);
    unlink (path);
    return rig;
}

//  --resume: a run stopped mid-message, lines written after its last
//  recorded position (as a kill -9 leaves them), then a second run: the
//  file holds every line exactly once.
Test (sink, resume_continues_exactly, .timeout = 20)
{
    char path [96];
    s_rig_t *rig = s_resume_rig (path, sizeof path);
    cr_assert_eq (s_resume_run (rig, path, 7, 1), PZ_SINK_OK);
    char *position = s_output (path);
    cr_assert (strstr (position, "playzmq-sink resume 1\ntag P seq 3 tag-seq 3 partial 1\n"
                       "tag X seq 2 tag-seq 0 partial 0\noutput dev "), "%s", position);
    free (position);
    //  What a run killed between its write and its position leaves behind.
    cr_assert_eq (write (rig->out_fd, "P 999\n", 6), 6);
    //  --from 5 is ignored: the file wins.
    cr_assert_eq (s_resume_run (rig, path, 11, 5), PZ_SINK_OK);
    int64_t seqs [] = { 1, 2, 3, 4, 5, 6 };
    char expected [1024] = "";
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 6, expected);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, expected);
    free (output);
    unlink (path);
    s_rig_destroy (&rig);
}

//  --resume into a new output file (sink.1.txt, then sink.2.txt): lines
//  the first run wrote after its last recorded position (a kill -9 between
//  its write and its position) are cut from the first file, as the second
//  run prints them: the files together hold every line exactly once.
Test (sink, resume_into_another_file_cuts_the_earlier_one, .timeout = 20)
{
    char path [96];
    s_rig_t *rig = s_resume_rig (path, sizeof path);
    cr_assert_eq (s_resume_run (rig, path, 7, 1), PZ_SINK_OK);
    char *position = s_output (path);
    char line [160];
    snprintf (line, sizeof line, "output-path %s\n", rig->out_path);
    cr_assert (strstr (position, line), "%s", position);
    free (position);
    char *first_run = s_output (rig->out_path);
    cr_assert_eq (write (rig->out_fd, "P 999\nP 998\n", 12), 12);
    //  The second run writes into a file of its own.
    int first_fd = rig->out_fd;
    char second_path [] = "/tmp/test_sink_out_XXXXXX";
    rig->out_fd = mkstemp (second_path);
    cr_assert (rig->out_fd >= 0);
    cr_assert_eq (s_resume_run (rig, path, 11, 0), PZ_SINK_OK);
    char *first = s_output (rig->out_path);
    cr_assert_str_eq (first, first_run, "the first file was not cut back to its position");
    char *second = s_output (second_path);
    int64_t seqs [] = { 1, 2, 3, 4, 5, 6 };
    char expected [1024] = "", both [2048];
    s_expect (&rig->journal, PZ_SINK_TEXT, seqs, 6, expected);
    snprintf (both, sizeof both, "%s%s", first, second);
    cr_assert_str_eq (both, expected);
    free (first);
    free (second);
    free (first_run);
    close (rig->out_fd);
    unlink (second_path);
    rig->out_fd = first_fd;
    unlink (path);
    s_rig_destroy (&rig);
}

//  A malformed resume file is refused with status 2, whatever is wrong.
Test (sink, resume_file_malformed, .timeout = 20)
{
    const char *cases [] = {
        "",
        "hello\n",
        "playzmq-sink resume 2\n",
        "playzmq-sink resume 1\ntag Z seq 4 tag-seq 2 partial 0\n",
        "playzmq-sink resume 1\ntag P seq 4 tag-seq 5 partial 0\n",
        "playzmq-sink resume 1\ntag P seq -4 tag-seq 2 partial 0\n",
        "playzmq-sink resume 1\ntag P seq 4 tag-seq 2 partial 0\ntag P seq 4 tag-seq 2 partial 0\n",
        "playzmq-sink resume 1\ntag P seq 4 tag-seq 2 partial 0 extra\n",
        "playzmq-sink resume 1\ntag P seq 4 tag-seq 2 partial 9999\n",
        "playzmq-sink resume 1\noutput dev 1 ino 2 size -3\n",
        "playzmq-sink resume 1\ntag P seq 99999999999999999999999 tag-seq 2 partial 0\n",
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        s_rig_t *rig = s_rig_new ();
        char path [96];
        snprintf (path, sizeof path, "%s.resume", rig->out_path);
        FILE *file = fopen (path, "w");
        fputs (cases [index], file);
        fclose (file);
        rig->config.resume = path;
        rig->sink = pz_sink_new (&rig->config, rig->out_fd);
        cr_assert (rig->sink);
        cr_assert_eq (pz_sink_run (rig->sink), PZ_SINK_BAD_RESUME, "accepted: %s", cases [index]);
        unlink (path);
        s_rig_destroy (&rig);
    }
}

//  The sequence goes back (a broker restarted without a journal): reported
//  and counted; the new incarnation's messages are printed.
Test (sink, restart_reported, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add (&rig->journal, 'P', 1, 1, 1, 11);
    s_add (&rig->journal, 'P', 2, 2, 1, 12);
    s_add (&rig->journal, 'P', 3, 3, 1, 13);
    rig->config.count = 5;
    s_rig_start (rig);
    s_publish (rig, 1);
    s_publish (rig, 2);
    s_publish (rig, 3);
    //  The new broker: seq and tag-seq from 1 again.
    uint8_t frame [64];
    s_pub_t again = { .tag = 'P', .seq = 1, .tag_seq = 1, .count = 1, .values = { 21 } };
    zmq_send (zsock_resolve (rig->pub), frame, s_encode (&again, frame), 0);
    again = (s_pub_t) { .tag = 'P', .seq = 2, .tag_seq = 2, .count = 1, .values = { 22 } };
    zmq_send (zsock_resolve (rig->pub), frame, s_encode (&again, frame), 0);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, "P 11\nP 12\nP 13\nP 21\nP 22\n");
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.restarts, 1);
    cr_assert_eq (stats.lost, 0);
    free (output);
    s_rig_destroy (&rig);
}

//  Malformed messages are counted and dropped; the valid ones printed.
Test (sink, malformed_dropped, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    s_add_stream (&rig->journal, "PP", 1);
    rig->config.count = 2;
    s_rig_start (rig);
    void *pub = zsock_resolve (rig->pub);
    uint8_t frame [64];
    s_publish (rig, 1);
    zmq_send (pub, "Pabcd", 5, 0);                          //  length
    pz_record_encode (frame, 'P', 5);
    pz_record_encode (frame + 9, 'Z', 5);
    zmq_send (pub, frame, 18, 0);                           //  unknown tag
    pz_record_encode (frame + 9, 'P', 6);
    zmq_send (pub, frame, 18, 0);                           //  no trailer
    pz_record_encode (frame + 18, 'S', 0);
    pz_record_encode (frame + 27, 'T', 1);
    zmq_send (pub, frame, 36, 0);                           //  seq 0
    zmq_send (pub, "P", 1, ZMQ_SNDMORE);
    zmq_send (pub, frame, 9, 0);                            //  two frames
    s_publish (rig, 2);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char *output = s_output (rig->out_path);
    cr_assert_str_eq (output, "P 100\nP 200\n");
    pz_sink_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.malformed, 5);
    cr_assert_eq (stats.gaps, 0);
    free (output);
    s_rig_destroy (&rig);
}

//  Makes a pipe the rig's output; ends [0] is the test's to read and close.
static void
s_rig_pipe (s_rig_t *self, int ends [2])
{
    cr_assert_eq (pipe (ends), 0);
    close (self->out_fd);
    self->out_fd = ends [1];            //  the rig closes it
}

//  Reads what the pipe holds within timeout_ms into text (size bytes at
//  most, NUL-terminated). Returns the bytes read, 0 if nothing came.
static size_t
s_read_pipe (int fd, char *text, size_t size, int timeout_ms)
{
    struct pollfd ready = { .fd = fd, .events = POLLIN };
    size_t done = 0;
    while (done + 1 < size && poll (&ready, 1, done ? 0 : timeout_ms) == 1) {
        ssize_t bytes = read (fd, text + done, size - 1 - done);
        if (bytes <= 0)
            break;
        done += (size_t) bytes;
    }
    text [done] = '\0';
    return done;
}

//  A pipe as the output is widened (to 1 MiB, or the most the system
//  allows), so that a reader on another core seldom holds the sink up at a
//  flush; every line still comes through it.
Test (sink, pipe_output_widened, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    int ends [2];
    s_rig_pipe (rig, ends);
    int before = fcntl (ends [1], F_GETPIPE_SZ);
    long most = 1024 * 1024;
    FILE *limit = fopen ("/proc/sys/fs/pipe-max-size", "r");
    if (limit) {
        long allowed;
        if (fscanf (limit, "%ld", &allowed) == 1 && allowed < most)
            most = allowed;
        fclose (limit);
    }
    s_add_stream (&rig->journal, "PP", 1);
    rig->config.count = 2;
    s_rig_start (rig);
    int after = fcntl (ends [1], F_GETPIPE_SZ);
    cr_assert_geq (after, most, "pipe of %d bytes (was %d), expected %ld", after, before, most);
    s_publish (rig, 1);
    s_publish (rig, 2);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    char text [64];
    s_read_pipe (ends [0], text, sizeof text, 1000);
    cr_assert_str_eq (text, "P 100\nP 200\n");
    close (ends [0]);
    s_rig_destroy (&rig);
}

//  Output is written in blocks, but at once when nothing more is queued:
//  at a low rate each line reaches the reader while the sink runs on (the
//  demo shows each prime as it is found), not at the next 64 KiB.
Test (sink, low_rate_lines_come_at_once, .timeout = 20)
{
    s_rig_t *rig = s_rig_new ();
    int ends [2];
    s_rig_pipe (rig, ends);
    s_add_stream (&rig->journal, "PPP", 1);
    rig->config.count = 3;
    s_rig_start (rig);
    char text [64];
    s_publish (rig, 1);
    s_read_pipe (ends [0], text, sizeof text, 2000);
    cr_assert_str_eq (text, "P 100\n", "the first line did not come within 2 s");
    s_publish (rig, 2);
    s_read_pipe (ends [0], text, sizeof text, 2000);
    cr_assert_str_eq (text, "P 200\n", "the second line did not come within 2 s");
    s_publish (rig, 3);
    cr_assert_eq (s_rig_wait (rig), PZ_SINK_OK);
    s_read_pipe (ends [0], text, sizeof text, 1000);
    cr_assert_str_eq (text, "P 300\n");
    close (ends [0]);
    s_rig_destroy (&rig);
}
