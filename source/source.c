/*  =========================================================================
    source - hands numbers to the broker and waits for its acks

    The random generator is splitmix64, written out here so that a seed
    gives the same numbers on every platform and libc. Requests go through
    a pz_client (proto/client.h): up to --pipeline of them outstanding on
    one DEALER socket, each kept in a slot until acknowledged, so that a
    resend is the same request, id included.

    A --count-only source waits for the broker's announcement of each of
    its ranges. A broker without a journal that dies mid-range forgets the
    range, and a restarted one would never announce it: so the source
    watches its SUB connection to the broker (a zmq socket monitor), and
    when it drops and comes back, it sends each range still waiting again,
    under its first request id. A broker that still knows the id (the same
    process, or one restarted from its journal) answers the remembered ack
    and does nothing twice; a new one takes the range as new. Either way
    the source prints each range's count once, the first announced.
    =========================================================================
*/
#include "source.h"
#include "client.h"
#include "publication.h"
#include "record.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  What the source remembers of the request in a client slot (the client
//  holds its bytes).
typedef struct {
    size_t count;               //  N records in the request
    int64_t sent_us;            //  first send, zclock_usecs, for the ack time
} s_slot_t;

//  Ack times are kept in a fixed reservoir: percentiles of a uniform
//  sample, in bounded memory however long the run.
#define S_RESERVOIR     65536

//  How long a request the broker could not store (E 9) waits to go again.
#define S_RETRY_LATER_MS    500

struct _pz_source_t {
    pz_source_config_t config;  //  configuration (strings owned below)
    char *endpoint;             //  owned copy of config.connect
    FILE *input;                //  numbers to send, or NULL for random
    FILE *acked;                //  acknowledged numbers go here, or NULL
    pz_client_t *client;        //  the connection, config.pipeline slots
    s_slot_t *slots;            //  config.pipeline slots, as in client
    uint64_t random_state;      //  splitmix64 state
    uint64_t random_range;      //  max - min + 1, 0 for all 2^64 values
    uint64_t random_threshold;  //  2^64 mod random_range: draws below are redrawn
    int64_t random_left;        //  random numbers still to send
    uint64_t line_number;       //  of the input, for error messages
    bool exhausted;             //  no more numbers to send
    int64_t session;            //  high half of request ids, random per run
    int64_t next_request;       //  low half of the next request id
    int64_t started_ms;         //  first send
    int64_t finished_ms;        //  last ack
    float *ack_times_ms;        //  reservoir of S_RESERVOIR ack times
    uint64_t ack_samples;       //  ack times offered to the reservoir
    bool unavailable_logged;    //  an E 9 was logged (once per run)
    size_t next_range;          //  config.ranges sent so far
    bool range_waiting;         //  a range read and not yet packed: held below
    int64_t held_lo;            //  its bounds
    int64_t held_hi;
    int64_t *sent;              //  ranges acknowledged: lo, hi pairs (count_only)
    int64_t *sent_ids;          //  per sent range: its request's id
    bool *announced;            //  per sent range: its count was printed
    size_t sent_count;          //  ranges in sent
    size_t sent_capacity;       //  allocated
    zsock_t *sub;               //  count_only: announcements (tag R), or NULL
    zsock_t *history;           //  count_only: the history DEALER, or NULL
    int64_t history_from;       //  next seq to ask history from
    zsock_t *monitor;           //  count_only: the SUB's connection events
    char monitor_endpoint [64]; //  inproc endpoint of that monitor
    bool dropped;               //  the SUB's connection dropped, not yet back
    size_t resend_next;         //  sent ranges from here on: to send again
    bool resending;             //  ranges are being sent again
    pz_source_stats_t stats;    //  counters
};

//  Fills config with the defaults.
void
pz_source_config_init (pz_source_config_t *config)
{
    assert (config);
    *config = (pz_source_config_t) {
        .connect = "tcp://localhost:5555",
        .count = 100,
        .min = 1,
        .max = 1000000,
        .batch = 1,
        .timeout_ms = 2500,
        .retries = 3,
        .wait_s = 60,
        .pipeline = 512
    };
    pz_sockopts_init (&config->sockopts);
}

//  Returns the next value of a splitmix64 generator.
static uint64_t
s_splitmix64 (uint64_t *state)
{
    uint64_t bits = (*state += 0x9e3779b97f4a7c15ULL);
    bits = (bits ^ (bits >> 30)) * 0xbf58476d1ce4e5b9ULL;
    bits = (bits ^ (bits >> 27)) * 0x94d049bb133111ebULL;
    return bits ^ (bits >> 31);
}

//  Returns a number uniform in [min, max], without modulo bias: Lemire's
//  multiply-and-shift. The high half of draw * range is the offset; a draw
//  whose low half falls below 2^64 mod range would favour some offsets and
//  is redrawn. The threshold is computed once, in pz_source_new: a division
//  per number cost more than the rest of the generator (for a range of
//  2^63, half of all draws need the comparison).
static int64_t
s_random_number (pz_source_t *self)
{
    __extension__ typedef unsigned __int128 u128;
    uint64_t offset;
    if (self->random_range == 0)
        offset = s_splitmix64 (&self->random_state);    //  all 2^64 values
    else {
        u128 product = (u128) s_splitmix64 (&self->random_state) * self->random_range;
        while ((uint64_t) product < self->random_threshold)
            product = (u128) s_splitmix64 (&self->random_state) * self->random_range;
        offset = (uint64_t) (product >> 64);
    }
    //  Back to signed by modular arithmetic (GCC and Clang define this).
    return (int64_t) ((uint64_t) self->config.min + offset);
}

//  Reads the next number from the input into *value. Returns false at the
//  end. Bad lines are reported on stderr and skipped; blank lines skipped.
//
//  Byte by byte rather than fgets: a line's length is then known whatever
//  it holds, so a NUL byte makes it bad (fgets would end the text there,
//  taking "4<NUL>2" for 4) and an over-long line is one bad line, not two.
static bool
s_read_number (pz_source_t *self, int64_t *value)
{
    char line [128];
    int next;
    while ((next = getc_unlocked (self->input)) != EOF) {
        self->line_number++;
        size_t length = 0;
        bool truncated = false, has_nul = false;
        for (; next != EOF && next != '\n'; next = getc_unlocked (self->input)) {
            has_nul = has_nul || next == '\0';
            if (length < sizeof line - 1)
                line [length++] = (char) next;
            else
                truncated = true;   //  the rest cannot be a number: skipped
        }
        line [length] = '\0';
        while (length > 0 && strchr (" \t\r", line [length - 1]) && line [length - 1])
            line [--length] = '\0';
        char *text = line + strspn (line, " \t");
        if (*text == '\0' && !has_nul)
            continue;
        char *end = NULL;
        errno = 0;
        long long parsed = strtoll (text, &end, 10);
        if (!truncated && !has_nul && end != text && *end == '\0' && errno == 0) {
            *value = parsed;
            return true;
        }
        int64_t lo, hi;
        const char *problem = NULL;
        if (!truncated && !has_nul && strchr (text, ':')) {
            problem = pz_source_range_parse (text, &lo, &hi);
            if (!problem) {
                self->range_waiting = true;
                self->held_lo = lo;
                self->held_hi = hi;
                return false;
            }
        }
        fprintf (stderr, "playzmq-source: line %" PRIu64 ": '%s%s' is not a "
                 "64-bit integer%s%s\n", self->line_number, text,
                 truncated ? "..." : has_nul ? "<NUL>..." : "",
                 problem ? " nor a range: " : "", problem ? problem : "");
        self->stats.bad_lines++;
    }
    if (ferror (self->input))
        zsys_error ("source: cannot read input: %s", strerror (errno));
    return false;
}

//  Reads the next number to send into *value. Returns false at the end, or
//  when the next item is a range (then range_waiting holds it).
static bool
s_next_number (pz_source_t *self, int64_t *value)
{
    if (self->next_range < self->config.range_count) {
        self->held_lo = self->config.ranges [2 * self->next_range];
        self->held_hi = self->config.ranges [2 * self->next_range + 1];
        self->next_range++;
        self->range_waiting = true;
        return false;
    }
    if (self->input)
        return s_read_number (self, value);
    if (self->random_left <= 0)
        return false;
    self->random_left--;
    *value = s_random_number (self);
    return true;
}

//  Fills client slot `index` with up to batch numbers behind a new request
//  id. Returns the request's size in bytes, or 0 if there was nothing left
//  to send.
static size_t
s_fill_slot (pz_source_t *self, int index)
{
    uint8_t *request = pz_client_request (self->client, index);
    size_t count = 0;
    int64_t value;
    char range_tag = self->config.count_only ? PZ_TAG_RANGE_COUNT : PZ_TAG_RANGE;
    while (count < (size_t) self->config.batch && !self->exhausted) {
        if (self->range_waiting) {
            //  A range takes two records; alone it may exceed a batch of 1.
            if (count > 0 && count + 2 > (size_t) self->config.batch)
                break;
            pz_record_encode (request + (++count) * PZ_RECORD_SIZE, range_tag, self->held_lo);
            pz_record_encode (request + (++count) * PZ_RECORD_SIZE, range_tag, self->held_hi);
            self->range_waiting = false;
        }
        else
        if (s_next_number (self, &value))
            pz_record_encode (request + (++count) * PZ_RECORD_SIZE,
                              PZ_TAG_NUMBER, value);
        else
        if (!self->range_waiting)
            self->exhausted = true;
    }
    //  Known without reading further: lets the loop end with this request.
    if (!self->input && self->random_left == 0 && !self->range_waiting
    &&  self->next_range == self->config.range_count)
        self->exhausted = true;
    if (count == 0)
        return 0;
    pz_record_encode (request, PZ_TAG_ID, (self->session << 32) | self->next_request++);
    self->slots [index].count = count;
    return (count + 1) * PZ_RECORD_SIZE;
}

//  Creates a source; NULL after logging what failed.
pz_source_t *
pz_source_new (const pz_source_config_t *config)
{
    assert (config && config->connect);
    assert (config->batch >= 1 && config->batch <= PZ_RECORDS_MAX);
    assert (config->pipeline >= 1 && config->min <= config->max);
    pz_source_t *self = (pz_source_t *) zmalloc (sizeof (pz_source_t));
    assert (self);
    self->config = *config;
    self->endpoint = strdup (config->connect);
    self->slots = (s_slot_t *) calloc ((size_t) config->pipeline, sizeof (s_slot_t));
    self->ack_times_ms = (float *) calloc (S_RESERVOIR, sizeof (float));
    assert (self->slots && self->ack_times_ms);

    //  A seed of 0 asks for a different run each time.
    uint64_t entropy = (uint64_t) zclock_time () ^ ((uint64_t) getpid () << 32)
                     ^ (uint64_t) (uintptr_t) self;
    self->random_state = config->seed ? (uint64_t) config->seed : entropy;
    //  span + 1 wraps to 0 exactly when [min, max] is all 2^64 values.
    self->random_range = (uint64_t) config->max - (uint64_t) config->min + 1;
    if (self->random_range)
        self->random_threshold = (0 - self->random_range) % self->random_range;
    self->random_left = config->count;
    self->exhausted = !config->input && config->count == 0 && config->range_count == 0;
    //  Request ids: a random session in the high half, a counter below.
    self->session = (int64_t) (s_splitmix64 (&entropy) >> 33) | 1;
    self->next_request = 1;

    bool ok = true;
    if (config->input) {
        self->input = streq (config->input, "-") ? stdin : fopen (config->input, "r");
        if (!self->input) {
            zsys_error ("source: cannot open input '%s': %s", config->input, strerror (errno));
            ok = false;
        }
    }
    if (ok && config->acked_path) {
        self->acked = fopen (config->acked_path, "w");
        if (!self->acked) {
            zsys_error ("source: cannot write '%s': %s", config->acked_path, strerror (errno));
            ok = false;
        }
    }
    if (ok && config->count_only) {
        //  Subscribed before anything is sent, so no announcement of ours
        //  can go out before we listen (history covers a slow join).
        pz_sockopts_t opts = config->sockopts;
        opts.heartbeat_ivl_ms = 0;
        opts.rcvhwm = 0;
        self->sub = pz_sock_open (ZMQ_SUB, "publish SUB", config->publish, false, &opts);
        if (self->sub)
            zsock_set_subscribe (self->sub, "R");
        if (self->sub && config->history)
            self->history = pz_sock_open (ZMQ_DEALER, "history DEALER", config->history,
                                          false, &config->sockopts);
        ok = self->sub && (!config->history || self->history);
        self->history_from = 1;
        if (ok) {
            //  The SUB's drops and reconnects, to notice a broker restart.
            snprintf (self->monitor_endpoint, sizeof self->monitor_endpoint,
                      "inproc://pz-source-monitor-%p", (void *) self);
            ok = zmq_socket_monitor (zsock_resolve (self->sub), self->monitor_endpoint,
                                     ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) == 0;
            self->monitor = ok ? zsock_new (ZMQ_PAIR) : NULL;
            ok = self->monitor
              && zsock_connect (self->monitor, "%s", self->monitor_endpoint) == 0;
        }
    }
    if (ok)
        self->client = pz_client_new ("source", self->endpoint, (int) config->pipeline,
                                      config->timeout_ms, config->retries,
                                      &config->sockopts);
    if (self->client)
        pz_client_set_wait (self->client, config->wait_s * 1000);
    else
        pz_source_destroy (&self);
    return self;
}

//  Destroys the source in reverse order of creation. NULL-safe.
void
pz_source_destroy (pz_source_t **self_p)
{
    assert (self_p);
    pz_source_t *self = *self_p;
    if (!self)
        return;
    pz_client_destroy (&self->client);
    zsock_destroy (&self->history);
    if (self->monitor && self->sub)
        zmq_socket_monitor (zsock_resolve (self->sub), NULL, 0);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->sub);
    free (self->sent);
    free (self->sent_ids);
    free (self->announced);
    if (self->acked)
        fclose (self->acked);
    if (self->input && self->input != stdin)
        fclose (self->input);
    free (self->ack_times_ms);
    free (self->slots);
    zstr_free (&self->endpoint);
    free (self);
    *self_p = NULL;
}

static int
s_compare_floats (const void *left, const void *right)
{
    float a = *(const float *) left;
    float b = *(const float *) right;
    return (a > b) - (a < b);
}

//  Remembers one ack time: reservoir sampling (Vitter's algorithm R).
static void
s_sample_ack_time (pz_source_t *self, float ack_ms)
{
    uint64_t seen = self->ack_samples++;
    if (seen < S_RESERVOIR)
        self->ack_times_ms [seen] = ack_ms;
    else {
        uint64_t slot = s_splitmix64 (&self->random_state) % (seen + 1);
        if (slot < S_RESERVOIR)
            self->ack_times_ms [slot] = ack_ms;
    }
}

//  Copies the source's counters into stats, with ack time percentiles.
void
pz_source_stats (pz_source_t *self, pz_source_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
    stats->resends = pz_client_resends (self->client);
    size_t samples = self->ack_samples < S_RESERVOIR ? (size_t) self->ack_samples
                                                     : S_RESERVOIR;
    if (samples > 0) {
        qsort (self->ack_times_ms, samples, sizeof (float), s_compare_floats);
        stats->ack_p50_ms = self->ack_times_ms [samples / 2];
        stats->ack_p99_ms = self->ack_times_ms [samples * 99 / 100];
    }
    int64_t until = self->finished_ms ? self->finished_ms : zclock_mono ();
    stats->seconds = self->started_ms ? (double) (until - self->started_ms) / 1000.0 : 0;
}

//  Notes an acknowledged range of request id; with count_only, it waits
//  for its count.
static void
s_range_acked (pz_source_t *self, int64_t id, int64_t lo, int64_t hi)
{
    self->stats.ranges++;
    if (!self->config.count_only)
        return;
    if (self->sent_count == self->sent_capacity) {
        self->sent_capacity = self->sent_capacity ? 2 * self->sent_capacity : 16;
        self->sent = (int64_t *) realloc (self->sent, 2 * self->sent_capacity * sizeof (int64_t));
        self->announced = (bool *) realloc (self->announced, self->sent_capacity * sizeof (bool));
        self->sent_ids = (int64_t *) realloc (self->sent_ids,
                                              self->sent_capacity * sizeof (int64_t));
        assert (self->sent && self->announced && self->sent_ids);
    }
    self->sent_ids [self->sent_count] = id;
    self->sent [2 * self->sent_count] = lo;
    self->sent [2 * self->sent_count + 1] = hi;
    self->announced [self->sent_count++] = false;
}

//  Takes one announcement (R lo R hi R count + trailer, size bytes): the
//  first range of ours with those bounds still waiting gets its line.
static void
s_take_announcement (pz_source_t *self, const uint8_t *data, size_t size)
{
    pz_publication_t publication;
    if (pz_publication_parse (data, size, &publication) != PZ_OK
    ||  publication.tag != PZ_TAG_RANGE)
        return;
    int64_t lo = pz_record_value (publication.records);
    int64_t hi = pz_record_value (publication.records + PZ_RECORD_SIZE);
    int64_t count = pz_record_value (publication.records + 2 * PZ_RECORD_SIZE);
    if (publication.seq >= self->history_from)
        self->history_from = publication.seq + 1;
    for (size_t index = 0; index < self->sent_count; index++)
        if (!self->announced [index] && self->sent [2 * index] == lo
        &&  self->sent [2 * index + 1] == hi) {
            self->announced [index] = true;
            self->stats.counted++;
            printf ("%" PRId64 ":%" PRId64 " %" PRId64 "\n", lo, hi, count);
            fflush (stdout);
            return;
        }
}

//  Asks history for the R announcements from history_from on and takes
//  those in the reply. Waits up to timeout_ms for it.
static void
s_ask_history (pz_source_t *self, int64_t timeout_ms)
{
    uint8_t request [3 * PZ_RECORD_SIZE];
    pz_record_encode (request, PZ_TAG_HISTORY, self->history_from);
    pz_record_encode (request + PZ_RECORD_SIZE, PZ_TAG_HISTORY, 0);
    pz_record_encode (request + 2 * PZ_RECORD_SIZE, PZ_TAG_RANGE, 0);
    void *handle = zsock_resolve (self->history);
    if (zmq_send (handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1
    ||  zmq_send (handle, request, sizeof request, ZMQ_DONTWAIT) == -1)
        return;
    zmq_pollitem_t item = { handle, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll (&item, 1, (long) timeout_ms) <= 0)
        return;
    //  [empty][reply]: publications, then the status A next H oldest T last.
    zmsg_t *reply = zmsg_recv (self->history);
    zframe_t *body = reply ? zmsg_last (reply) : NULL;
    if (body) {
        const uint8_t *data = zframe_data (body);
        size_t left = zframe_size (body), size;
        while (left > 0 && (size = pz_publication_next (data, left)) > 0) {
            s_take_announcement (self, data, size);
            data += size;
            left -= size;
        }
        if (left >= PZ_RECORD_SIZE && pz_record_tag (data) == PZ_TAG_ACK
        &&  pz_record_value (data) > self->history_from)
            self->history_from = pz_record_value (data);
    }
    zmsg_destroy (&reply);
}

//  Takes the SUB monitor's events: a drop, then a connection again (the
//  broker restarted, or the network came back) starts sending the ranges
//  still waiting again, and asking history from the first seq.
static void
s_take_monitor_events (pz_source_t *self)
{
    zmsg_t *event;
    while ((event = zmsg_recv_nowait (self->monitor))) {
        zframe_t *head = zmsg_first (event);
        uint16_t kind = 0;
        if (head && zframe_size (head) >= 2)
            memcpy (&kind, zframe_data (head), 2);
        zmsg_destroy (&event);
        if (kind == ZMQ_EVENT_DISCONNECTED)
            self->dropped = true;
        else
        if (kind == ZMQ_EVENT_CONNECTED && self->dropped) {
            self->dropped = false;
            self->resending = true;
            self->resend_next = 0;
            self->history_from = 1;     //  a new broker's seqs start again
            zsys_info ("source: the connection to the broker's publish endpoint "
                       "dropped and came back: sending the %zu ranges still waiting "
                       "for their count again (same request ids)",
                       (size_t) (self->sent_count - self->stats.counted));
        }
    }
}

//  Sends the ranges still waiting again, from resend_next on, while client
//  slots are free: those of one first request together, under its id.
static void
s_resend_ranges (pz_source_t *self, int64_t now_ms)
{
    char range_tag = PZ_TAG_RANGE_COUNT;
    int index;
    while (self->resend_next < self->sent_count
    &&    (index = pz_client_free_slot (self->client)) != -1) {
        int64_t id = self->sent_ids [self->resend_next];
        uint8_t *request = pz_client_request (self->client, index);
        size_t count = 0;
        for (; self->resend_next < self->sent_count
             && self->sent_ids [self->resend_next] == id
             && count + 2 <= PZ_RECORDS_MAX; self->resend_next++) {
            size_t at = self->resend_next;
            if (self->announced [at])
                continue;
            pz_record_encode (request + (++count) * PZ_RECORD_SIZE, range_tag, self->sent [2 * at]);
            pz_record_encode (request + (++count) * PZ_RECORD_SIZE, range_tag,
                              self->sent [2 * at + 1]);
        }
        if (count == 0)
            continue;
        pz_record_encode (request, PZ_TAG_ID, id);
        self->slots [index].count = count;
        self->stats.range_resends++;
        pz_client_send (self->client, index, (count + 1) * PZ_RECORD_SIZE, now_ms);
    }
    if (self->resend_next >= self->sent_count)
        self->resending = false;
}

//  Waits for the announcement of every range acknowledged, printing each
//  count as it comes; asks history every second for what the subscription
//  may have missed; sends the ranges again after a broker restart (see the
//  top). Returns 0, or 1 if interrupted first or the broker stopped
//  answering those requests.
static int
s_await_counts (pz_source_t *self)
{
    int64_t next_history_ms = zclock_mono () + 1000;
    while (self->stats.counted < self->sent_count) {
        if (zsys_interrupted)
            return 1;
        zmq_pollitem_t items [] = {
            { zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0 },
            { zsock_resolve (self->monitor), 0, ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 2, 100) > 0) {
            zmq_msg_t message;
            zmq_msg_init (&message);
            while (zmq_msg_recv (&message, zsock_resolve (self->sub), ZMQ_DONTWAIT) != -1)
                s_take_announcement (self, (const uint8_t *) zmq_msg_data (&message),
                                     zmq_msg_size (&message));
            zmq_msg_close (&message);
            s_take_monitor_events (self);
        }
        int64_t now_ms = zclock_mono ();
        if (self->resending)
            s_resend_ranges (self, now_ms);
        //  Acks of ranges sent again: the broker took them (or knew them).
        uint8_t reply [PZ_RECORD_SIZE];
        int size, index;
        while (pz_client_busy (self->client)
        &&    (index = pz_client_receive (self->client, reply, &size, 0)) != -1)
            if (size != PZ_RECORD_SIZE || pz_record_tag (reply) != PZ_TAG_ACK)
                zsys_warning ("source: a range sent again was refused: %s %" PRId64,
                              size == PZ_RECORD_SIZE ? (char []) { (char) pz_record_tag (reply), 0 }
                                                     : "?",
                              size == PZ_RECORD_SIZE ? pz_record_value (reply) : 0);
        if (pz_client_busy (self->client) && pz_client_expire (self->client, now_ms) != 0) {
            zsys_error ("source: no ack from %s for the ranges sent again",
                        self->endpoint);
            return 1;
        }
        if (self->history && now_ms >= next_history_ms) {
            s_ask_history (self, 1000);
            next_history_ms = zclock_mono () + 1000;
        }
    }
    return 0;
}

//  Parses "LO:HI" (0 <= LO <= HI <= 2^63 - 1). Returns NULL, or what is
//  wrong with it.
const char *
pz_source_range_parse (const char *text, int64_t *lo, int64_t *hi)
{
    assert (text && lo && hi);
    const char *colon = strchr (text, ':');
    if (!colon)
        return "not LO:HI";
    char *end = NULL;
    errno = 0;
    long long first = strtoll (text, &end, 10);
    if (end == text || end != colon || errno != 0)
        return "LO is not a 64-bit integer";
    errno = 0;
    long long last = strtoll (colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || errno != 0)
        return "HI is not a 64-bit integer (at most 9223372036854775807)";
    if (first < 0 || last < 0)
        return "a bound is negative";
    if (first > last)
        return "LO is above HI";
    *lo = first;
    *hi = last;
    return NULL;
}

//  Handles the broker's reply to the request in client slot index: an ack,
//  or a rejection that is logged and counted.
static void
s_handle_reply (pz_source_t *self, int index, const uint8_t *reply, int size,
                int64_t now_ms)
{
    s_slot_t *slot = &self->slots [index];
    self->finished_ms = now_ms;
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ACK
    &&  pz_record_value (reply) == (int64_t) slot->count) {
        self->stats.acked += slot->count;
        s_sample_ack_time (self, (float) (zclock_usecs () - slot->sent_us) / 1000.0f);
        const uint8_t *request = pz_client_request (self->client, index);
        for (size_t record = 1; record <= slot->count; record++) {
            const uint8_t *at = request + record * PZ_RECORD_SIZE;
            if (pz_record_tag (at) == PZ_TAG_NUMBER) {
                if (self->acked)
                    fprintf (self->acked, "%" PRId64 "\n", pz_record_value (at));
                continue;
            }
            s_range_acked (self, pz_record_value (request), pz_record_value (at),
                           pz_record_value (at + PZ_RECORD_SIZE));
            record++;
        }
        return;
    }
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR
    &&  pz_record_value (reply) == PZ_ERR_UNAVAILABLE) {
        //  The broker cannot store it now (its disk is full): nothing was
        //  taken. The same request, same id, goes again in a while.
        if (!self->unavailable_logged)
            zsys_warning ("source: %s cannot store numbers now (E 9); sending "
                          "them again every %d ms until it can", self->endpoint,
                          S_RETRY_LATER_MS);
        self->unavailable_logged = true;
        self->stats.deferred++;
        pz_client_send_later (self->client, index, now_ms, S_RETRY_LATER_MS);
        return;
    }
    self->stats.rejected += slot->count;
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ERROR)
        zsys_error ("source: %s rejected a request of %zu numbers: E %" PRId64 " (%s)",
                    self->endpoint, slot->count, pz_record_value (reply),
                    pz_error_str (pz_record_value (reply)));
    else
        zsys_error ("source: unexpected reply of %d bytes from %s", size, self->endpoint);
}

//  Sends every number and waits for every ack.
int
pz_source_run (pz_source_t *self)
{
    assert (self);
    int result = 0;
    while (!zsys_interrupted && result == 0) {
        int64_t now_ms = zclock_mono ();
        if (!self->started_ms)
            self->started_ms = now_ms;
        //  Fill free slots while the rate allows: the n-th number may go
        //  n / rate seconds after the start.
        int64_t next_send_ms = now_ms;
        int index;
        while (!self->exhausted && (index = pz_client_free_slot (self->client)) != -1) {
            if (self->config.rate > 0) {
                next_send_ms = self->started_ms
                             + (int64_t) (self->stats.sent * 1000 / (uint64_t) self->config.rate);
                if (next_send_ms > now_ms)
                    break;
            }
            size_t size = s_fill_slot (self, index);
            if (size > 0) {
                self->stats.sent += self->slots [index].count;
                self->slots [index].sent_us = zclock_usecs ();
                pz_client_send (self->client, index, size, now_ms);
            }
        }
        int busy = pz_client_busy (self->client);
        if (busy == 0 && self->exhausted)
            break;
        //  Sleep until a reply, the first deadline, or the next send.
        int64_t wake_ms = now_ms + 100;
        if (pz_client_deadline (self->client) < wake_ms)
            wake_ms = pz_client_deadline (self->client);
        if (self->config.rate > 0 && !self->exhausted && next_send_ms < wake_ms)
            wake_ms = next_send_ms;
        int64_t timeout_ms = wake_ms > now_ms ? wake_ms - now_ms : 0;
        if (busy == 0) {
            zclock_sleep ((int) timeout_ms);
            continue;
        }
        //  Wait for one reply, then take the others already here; stop
        //  once none is outstanding (a receive that finds nothing costs a
        //  system call).
        uint8_t reply [PZ_RECORD_SIZE];
        int size;
        index = pz_client_receive (self->client, reply, &size, timeout_ms > 0 ? timeout_ms : 1);
        now_ms = zclock_mono ();
        while (index != -1) {
            s_handle_reply (self, index, reply, size, now_ms);
            index = pz_client_busy (self->client) ?
                    pz_client_receive (self->client, reply, &size, 0) : -1;
        }
        if (pz_client_expire (self->client, now_ms) != 0) {
            zsys_error ("source: no ack from %s after %" PRId64 " attempts of "
                        "%" PRId64 " ms; is the broker running?", self->endpoint,
                        self->config.retries + 1, self->config.timeout_ms);
            result = 1;
        }
    }
    if (result == 0 && self->config.count_only)
        result = s_await_counts (self);
    if (self->acked)
        fflush (self->acked);
    if (result == 0 && (self->stats.rejected > 0 || self->stats.bad_lines > 0))
        result = 1;
    return result;
}

//  Reads the next number to send, for tests and fuzz/ (the --input parser
//  without a broker). Returns false at the end.
bool
pz_source_next_number (pz_source_t *self, int64_t *value)
{
    assert (self && value);
    return s_next_number (self, value);
}
