/*  =========================================================================
    source - hands numbers to the broker and waits for its acks

    The random generator is splitmix64, written out here so that a seed
    gives the same numbers on every platform and libc. Requests live in
    slots, one per REQ socket, and keep their bytes until acknowledged, so a
    resend is the same request, id included.
    =========================================================================
*/
#include "source.h"
#include "record.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  One request on its way: its bytes, its socket, its deadline.
typedef struct {
    zsock_t *req;               //  this slot's REQ socket; replaced on timeout
    bool busy;                  //  a request is outstanding
    uint8_t request [PZ_MESSAGE_MAX];   //  I + N records
    size_t size;                //  bytes of request in use
    size_t count;               //  N records in request
    int64_t deadline_ms;        //  resend if no ack by then
    int64_t attempts;           //  sends of this request so far
    int64_t sent_us;            //  first send, zclock_usecs, for the ack time
} s_slot_t;

//  Ack times are kept in a fixed reservoir: percentiles of a uniform
//  sample, in bounded memory however long the run.
#define S_RESERVOIR     65536

struct _pz_source_t {
    pz_source_config_t config;  //  configuration (strings owned below)
    char *endpoint;             //  owned copy of config.connect
    FILE *input;                //  numbers to send, or NULL for random
    FILE *acked;                //  acknowledged numbers go here, or NULL
    s_slot_t *slots;            //  config.pipeline slots
    uint64_t random_state;      //  splitmix64 state
    int64_t random_left;        //  random numbers still to send
    uint64_t line_number;       //  of the input, for error messages
    bool exhausted;             //  no more numbers to send
    int64_t session;            //  high half of request ids, random per run
    int64_t next_request;       //  low half of the next request id
    int64_t started_ms;         //  first send
    int64_t finished_ms;        //  last ack
    float *ack_times_ms;        //  reservoir of S_RESERVOIR ack times
    uint64_t ack_samples;       //  ack times offered to the reservoir
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
        .pipeline = 1
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
//  multiply-and-shift, which needs a division only in the rare case where
//  a draw falls in the biased sliver and may have to be redrawn.
static int64_t
s_random_between (uint64_t *state, int64_t min, int64_t max)
{
    __extension__ typedef unsigned __int128 u128;
    uint64_t span = (uint64_t) max - (uint64_t) min;   //  modular: no overflow
    uint64_t offset;
    if (span == UINT64_MAX)
        offset = s_splitmix64 (state);
    else {
        uint64_t range = span + 1;
        u128 product = (u128) s_splitmix64 (state) * range;
        if ((uint64_t) product < range) {
            uint64_t threshold = (0 - range) % range;   //  2^64 mod range
            while ((uint64_t) product < threshold)
                product = (u128) s_splitmix64 (state) * range;
        }
        offset = (uint64_t) (product >> 64);
    }
    //  Back to signed by modular arithmetic (GCC and Clang define this).
    return (int64_t) ((uint64_t) min + offset);
}

//  Reads the next number from the input into *value. Returns false at the
//  end. Bad lines are reported on stderr and skipped; blank lines skipped.
static bool
s_read_number (pz_source_t *self, int64_t *value)
{
    char line [128];
    while (fgets (line, sizeof line, self->input)) {
        self->line_number++;
        size_t length = strlen (line);
        bool truncated = length == sizeof line - 1 && line [length - 1] != '\n';
        if (truncated) {
            //  Skip the rest of an over-long line; it cannot be a number.
            int next;
            while ((next = fgetc (self->input)) != EOF && next != '\n')
                ;
        }
        while (length > 0 && strchr (" \t\r\n", line [length - 1]))
            line [--length] = '\0';
        char *text = line + strspn (line, " \t");
        if (*text == '\0')
            continue;
        char *end = NULL;
        errno = 0;
        long long parsed = strtoll (text, &end, 10);
        if (!truncated && *end == '\0' && errno == 0) {
            *value = parsed;
            return true;
        }
        fprintf (stderr, "playzmq-source: line %" PRIu64 ": '%s%s' is not a "
                 "64-bit integer\n", self->line_number, text, truncated ? "..." : "");
        self->stats.bad_lines++;
    }
    if (ferror (self->input))
        zsys_error ("source: cannot read input: %s", strerror (errno));
    return false;
}

//  Reads the next number to send into *value. Returns false at the end.
static bool
s_next_number (pz_source_t *self, int64_t *value)
{
    if (self->input)
        return s_read_number (self, value);
    if (self->random_left <= 0)
        return false;
    self->random_left--;
    *value = s_random_between (&self->random_state, self->config.min, self->config.max);
    return true;
}

//  Fills slot with up to batch numbers behind a new request id. Returns
//  false if there was nothing left to send.
static bool
s_fill_slot (pz_source_t *self, s_slot_t *slot)
{
    size_t count = 0;
    int64_t value;
    while (count < (size_t) self->config.batch && !self->exhausted) {
        if (s_next_number (self, &value))
            pz_record_encode (slot->request + (++count) * PZ_RECORD_SIZE,
                              PZ_TAG_NUMBER, value);
        else
            self->exhausted = true;
    }
    //  Known without reading further: lets the loop end with this request.
    if (!self->input && self->random_left == 0)
        self->exhausted = true;
    if (count == 0)
        return false;
    pz_record_encode (slot->request, PZ_TAG_ID,
                      (self->session << 32) | self->next_request++);
    slot->count = count;
    slot->size = (count + 1) * PZ_RECORD_SIZE;
    slot->attempts = 0;
    return true;
}

//  Opens a slot's REQ socket. Returns 0 or -1.
static int
s_open_req (pz_source_t *self, s_slot_t *slot)
{
    slot->req = pz_sock_open (ZMQ_REQ, "source REQ", self->endpoint, false,
                              &self->config.sockopts);
    return slot->req ? 0 : -1;
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
    self->random_left = config->count;
    self->exhausted = !config->input && config->count == 0;
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
    for (int64_t index = 0; ok && index < config->pipeline; index++)
        ok = s_open_req (self, &self->slots [index]) == 0;
    if (!ok)
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
    for (int64_t index = self->config.pipeline - 1; index >= 0; index--)
        zsock_destroy (&self->slots [index].req);
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

//  Sends a slot's request (again). Returns 0, or -1 if a new socket could
//  not be made for a resend.
static int
s_send_slot (pz_source_t *self, s_slot_t *slot, int64_t now_ms)
{
    if (slot->attempts > 0) {
        //  A REQ socket that lost its reply is stuck; only a new one can
        //  send again. The request keeps its id, so it cannot count twice.
        self->stats.resends++;
        zsock_destroy (&slot->req);
        if (s_open_req (self, slot) != 0)
            return -1;
    }
    else {
        self->stats.sent += slot->count;
        slot->sent_us = zclock_usecs ();
    }
    slot->attempts++;
    slot->busy = true;
    slot->deadline_ms = now_ms + self->config.timeout_ms;
    //  REQ queues the message even before the connection is up; a send
    //  that fails now is retried at the deadline like a lost reply.
    zmq_send (zsock_resolve (slot->req), slot->request, slot->size, ZMQ_DONTWAIT);
    return 0;
}

//  Handles the broker's reply on a slot: an ack, or a rejection that is
//  logged and counted.
static void
s_handle_reply (pz_source_t *self, s_slot_t *slot, int64_t now_ms)
{
    uint8_t reply [PZ_RECORD_SIZE];
    int size = zmq_recv (zsock_resolve (slot->req), reply, sizeof reply, 0);
    slot->busy = false;
    self->finished_ms = now_ms;
    if (size == PZ_RECORD_SIZE && pz_record_tag (reply) == PZ_TAG_ACK
    &&  pz_record_value (reply) == (int64_t) slot->count) {
        self->stats.acked += slot->count;
        s_sample_ack_time (self, (float) (zclock_usecs () - slot->sent_us) / 1000.0f);
        for (size_t index = 1; self->acked && index <= slot->count; index++)
            fprintf (self->acked, "%" PRId64 "\n",
                     pz_record_value (slot->request + index * PZ_RECORD_SIZE));
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
    size_t slots = (size_t) self->config.pipeline;
    zmq_pollitem_t *items = (zmq_pollitem_t *) calloc (slots, sizeof (zmq_pollitem_t));
    s_slot_t **polled = (s_slot_t **) calloc (slots, sizeof (s_slot_t *));
    assert (items && polled);
    int result = 0;

    while (!zsys_interrupted && result == 0) {
        int64_t now_ms = zclock_mono ();
        if (!self->started_ms)
            self->started_ms = now_ms;
        //  Fill idle slots while the rate allows: the n-th number may go
        //  n / rate seconds after the start.
        int64_t next_send_ms = now_ms;
        for (size_t index = 0; index < slots && !self->exhausted; index++) {
            s_slot_t *slot = &self->slots [index];
            if (slot->busy)
                continue;
            if (self->config.rate > 0) {
                next_send_ms = self->started_ms
                             + (int64_t) (self->stats.sent * 1000 / (uint64_t) self->config.rate);
                if (next_send_ms > now_ms)
                    break;
            }
            if (s_fill_slot (self, slot) && s_send_slot (self, slot, now_ms) != 0)
                result = 1;
        }
        //  Poll the busy slots until the first deadline or the next send.
        size_t busy = 0;
        int64_t wake_ms = now_ms + 100;
        for (size_t index = 0; index < slots; index++) {
            s_slot_t *slot = &self->slots [index];
            if (!slot->busy)
                continue;
            items [busy] = (zmq_pollitem_t) { zsock_resolve (slot->req), 0, ZMQ_POLLIN, 0 };
            polled [busy++] = slot;
            if (slot->deadline_ms < wake_ms)
                wake_ms = slot->deadline_ms;
        }
        if (busy == 0 && self->exhausted)
            break;
        if (self->config.rate > 0 && !self->exhausted && next_send_ms < wake_ms)
            wake_ms = next_send_ms;
        long timeout_ms = wake_ms > now_ms ? (long) (wake_ms - now_ms) : 0;
        if (busy == 0) {
            zclock_sleep ((int) timeout_ms);
            continue;
        }
        if (zmq_poll (items, (int) busy, timeout_ms) == -1)
            continue;           //  EINTR: zsys_interrupted is looked at above
        now_ms = zclock_mono ();
        for (size_t index = 0; index < busy && result == 0; index++) {
            s_slot_t *slot = polled [index];
            if (items [index].revents & ZMQ_POLLIN)
                s_handle_reply (self, slot, now_ms);
            else
            if (slot->deadline_ms <= now_ms) {
                if (slot->attempts > self->config.retries) {
                    zsys_error ("source: no ack from %s after %" PRId64 " attempts of "
                                "%" PRId64 " ms; is the broker running?", self->endpoint,
                                slot->attempts, self->config.timeout_ms);
                    result = 1;
                }
                else {
                    zsys_warning ("source: no ack from %s within %" PRId64 " ms, "
                                  "resending (attempt %" PRId64 " of %" PRId64 ")",
                                  self->endpoint, self->config.timeout_ms,
                                  slot->attempts + 1, self->config.retries + 1);
                    if (s_send_slot (self, slot, now_ms) != 0)
                        result = 1;
                }
            }
        }
    }
    free (polled);
    free (items);
    if (self->acked)
        fflush (self->acked);
    if (result == 0 && (self->stats.rejected > 0 || self->stats.bad_lines > 0))
        result = 1;
    return result;
}
