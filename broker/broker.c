/*  =========================================================================
    broker - accepts numbers from sources, leases them to workers, publishes
             numbers and verdicts to sinks

    One thread, one zmq_poll loop. zmq_poll rather than zpoller because the
    broker must also wait for its PUSH socket to become writable (POLLOUT)
    and must stop polling the source socket when its window is full; zpoller
    can do neither.

    The life of a source message:
      1. read on the source REP, validated, acknowledged with A <count>;
      2. published unchanged (minus any leading I record) as an N message;
      3. its N records are appended to the dispatch at the end of `pending`
         if that one was never pushed and has room (4096 numbers at most),
         or start a new dispatch, I <dispatch-id> + N records;
      4. a dispatch is pushed when PUSH can take it without blocking, moved
         to `leased` with a deadline; if the deadline passes first it goes
         back to the front of `pending` with the same id and contents;
      5. the first valid report for the id publishes its P and C records and
         frees the dispatch; later reports for it are counted as duplicates.
    Step 3 is the adaptive batching: when the workers fall behind, the
    messages that wait for them merge, and the workers, the reports and the
    broker's bookkeeping pay per 4096 numbers instead of per message. A
    dispatch that could go at once still waits up to --coalesce-ms for
    company (10 ms by default; 0 pushes at once): at one number per message
    that turns a dispatch, a report, an ack and a publication per number
    into one per hundred, at the price of that much verdict latency.
    Dispatch ids carry the broker incarnation in their high bits, so a report
    meant for an earlier broker process is recognised as never issued here.
    =========================================================================
*/
#include "broker.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

//  Dispatch ids are (incarnation << S_SEQUENCE_BITS) + sequence.
#define S_SEQUENCE_BITS     40
#define S_BURST             64      //  messages read per socket per poll
#define S_SUBSCRIPTIONS_MS  50      //  how often sinks' subscriptions are read

//  Numbers on their way through the workers, from one or more source
//  messages. Until its first push a dispatch is a draft that can grow; the
//  push seals it into `wire`, whose bytes never change after.
typedef struct {
    int64_t id;                 //  dispatch id; also the key in `outstanding`
    size_t count;               //  N records in the dispatch
    size_t messages;            //  source messages its numbers came in
    uint8_t *draft;             //  I <id> + N records, until sealed; else NULL
    size_t draft_capacity;      //  bytes allocated for draft
    int64_t created_ms;         //  zclock_mono time the draft was started
    zmq_msg_t wire;             //  I <id> + N records once sealed (shared on send)
    int64_t deadline_ms;        //  lease end, zclock_mono time, while leased
    void *handle;               //  our node in `pending` or `leased`
    bool leased;                //  true in `leased`, false in `pending`
    unsigned pushes;            //  times pushed to workers so far
} s_dispatch_t;

//  Recent source request ids and the count each was acknowledged with, so
//  that a retried request is answered again instead of accepted twice.
//  A ring gives first-in-first-out eviction; the hash finds an id.
typedef struct {
    int64_t id;                 //  request id; key in `recent_index`
    int64_t acked;              //  count sent in its A record
} s_recent_t;

struct _pz_broker_t {
    pz_broker_config_t config;  //  copy of the configuration (strings owned below)
    char *binds [4];            //  owned copies of the four bind endpoints
    char *endpoints [4];        //  resolved endpoints, same order
    zsock_t *source;            //  REP: sources hand in N records
    zsock_t *publish;           //  XPUB: N, P and C messages to sinks
    zsock_t *dispatch;          //  PUSH: I + N messages to workers
    zsock_t *results;           //  REP: workers report I + P/C records
    zhashx_t *outstanding;      //  dispatch id -> s_dispatch_t, owns them
    zlistx_t *pending;          //  dispatches waiting for a worker, first out first
    zlistx_t *leased;           //  pushed dispatches, earliest deadline first
    s_dispatch_t *open;         //  the last of `pending` if never pushed: new
                                //  numbers join it while it has room; or NULL
    uint64_t inflight_messages; //  source messages accepted and not reported
    s_recent_t *recent;         //  ring of config.recent_requests entries
    size_t recent_next;         //  ring slot the next request id goes into
    zhashx_t *recent_index;     //  request id -> s_recent_t in the ring
    int64_t id_base;            //  this incarnation's ids are id_base + sequence
    int64_t next_sequence;      //  sequence of the next dispatch, from 1
    bool draining;              //  interrupted: no new numbers, finish the rest
    int64_t drain_deadline_ms;  //  when draining gives up
    int64_t started_ms;         //  zclock_mono at start, for numbers/s
    int64_t next_stats_ms;      //  when stats are logged next
    int64_t next_subscriptions_ms;  //  when subscriptions are read next
    uint64_t results_at_stats;  //  stats.results when stats were last logged
    int64_t last_stats_ms;      //  when stats were last logged
    pz_broker_stats_t stats;    //  the counters
};

static const char *s_names [4] = { "source", "publish", "dispatch", "results" };


//  --------------------------------------------------------------------------
//  Keys are pointers to int64_t ids held inside the items themselves, so the
//  hash tables neither copy nor free keys.

static size_t
s_id_hash (const void *key)
{
    uint64_t bits = (uint64_t) *(const int64_t *) key;
    //  splitmix64 finaliser: ids are sequential, spread them over buckets.
    bits = (bits ^ (bits >> 30)) * 0xbf58476d1ce4e5b9ULL;
    bits = (bits ^ (bits >> 27)) * 0x94d049bb133111ebULL;
    return (size_t) (bits ^ (bits >> 31));
}

static int
s_id_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left;
    int64_t b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

static zhashx_t *
s_id_table_new (zhashx_destructor_fn *destructor)
{
    zhashx_t *table = zhashx_new ();
    assert (table);
    zhashx_set_key_hasher (table, s_id_hash);
    zhashx_set_key_comparator (table, s_id_compare);
    zhashx_set_key_duplicator (table, NULL);
    zhashx_set_key_destructor (table, NULL);
    zhashx_set_destructor (table, destructor);
    return table;
}


//  --------------------------------------------------------------------------
//  Creates a draft dispatch of count N records copied from records, id
//  first. Caller owns return value.
//
//  A copy on purpose: a received message may sit inside a receive buffer
//  that libzmq shares among several messages, and a dispatch can live for
//  seconds; holding the message itself would pin that whole buffer for as
//  long, and with a full window of small messages, tens of megabytes.

static s_dispatch_t *
s_dispatch_new (int64_t id, const uint8_t *records, size_t count)
{
    s_dispatch_t *self = (s_dispatch_t *) zmalloc (sizeof (s_dispatch_t));
    assert (self);
    self->id = id;
    self->count = count;
    self->messages = 1;
    self->draft_capacity = PZ_RECORD_SIZE * (count + 1);
    self->draft = (uint8_t *) malloc (self->draft_capacity);
    assert (self->draft);
    pz_record_encode (self->draft, PZ_TAG_ID, id);
    memcpy (self->draft + PZ_RECORD_SIZE, records, PZ_RECORD_SIZE * count);
    return self;
}

//  Appends the count N records at records to a draft, growing it by
//  doubling (so merging k messages copies each byte O(1) times).

static void
s_dispatch_append (s_dispatch_t *self, const uint8_t *records, size_t count)
{
    assert (self->draft && self->count + count <= PZ_RECORDS_MAX);
    size_t size = PZ_RECORD_SIZE * (self->count + 1);
    size_t needed = size + PZ_RECORD_SIZE * count;
    if (needed > self->draft_capacity) {
        size_t capacity = self->draft_capacity * 2;
        capacity = capacity < needed ? needed : capacity;
        capacity = capacity > PZ_MESSAGE_MAX ? PZ_MESSAGE_MAX : capacity;
        self->draft = (uint8_t *) realloc (self->draft, capacity);
        assert (self->draft);
        self->draft_capacity = capacity;
    }
    memcpy (self->draft + size, records, PZ_RECORD_SIZE * count);
    self->count += count;
    self->messages++;
}

//  libzmq calls this when the last message sharing a sealed buffer closes.
static void
s_free_buffer (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Seals a draft: hands its buffer to `wire`, without copying. libzmq
//  counts the references of the copies we send and frees it after the last.

static void
s_dispatch_seal (s_dispatch_t *self)
{
    assert (self->draft);
    size_t size = PZ_RECORD_SIZE * (self->count + 1);
    //  Give back what doubling over-allocated; shrinking stays in place.
    uint8_t *data = (uint8_t *) realloc (self->draft, size);
    data = data ? data : self->draft;
    int rc = zmq_msg_init_data (&self->wire, data, size, s_free_buffer, NULL);
    assert (rc == 0);
    self->draft = NULL;
}

//  Returns the bytes of a dispatch, draft or sealed: I <id> + N records.
static const uint8_t *
s_dispatch_data (s_dispatch_t *self)
{
    return self->draft ? self->draft : (const uint8_t *) zmq_msg_data (&self->wire);
}

static void
s_dispatch_destroy (void **item_p)
{
    s_dispatch_t *self = (s_dispatch_t *) *item_p;
    if (self) {
        if (self->draft)
            free (self->draft);
        else
            zmq_msg_close (&self->wire);
        free (self);
        *item_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Fills config with the defaults.

void
pz_broker_config_init (pz_broker_config_t *config)
{
    assert (config);
    *config = (pz_broker_config_t) {
        .source_bind = "tcp://*:5555",
        .publish_bind = "tcp://*:5556",
        .dispatch_bind = "tcp://*:5557",
        .results_bind = "tcp://*:5558",
        .max_inflight = 1048576,
        .max_dispatches = 16384,
        .lease_ms = 5000,
        .coalesce_ms = 10,
        .drain_ms = 1000,
        .stats_s = 10,
        .recent_requests = 65536,
        .publish_hwm = 1000
    };
    pz_sockopts_init (&config->sockopts);
}


//  --------------------------------------------------------------------------
//  Creates a broker and binds its four endpoints; NULL if any bind fails.

pz_broker_t *
pz_broker_new (const pz_broker_config_t *config)
{
    assert (config);
    assert (config->max_inflight > 0 && config->max_dispatches > 0);
    assert (config->lease_ms > 0);
    assert (config->recent_requests > 0);
    pz_broker_t *self = (pz_broker_t *) zmalloc (sizeof (pz_broker_t));
    assert (self);
    self->config = *config;
    const char *binds [4] = {
        config->source_bind, config->publish_bind,
        config->dispatch_bind, config->results_bind
    };
    for (int index = 0; index < 4; index++)
        self->binds [index] = strdup (binds [index]);

    //  Publishing keeps a small linger so the last verdicts reach sinks on a
    //  clean exit; the REP sockets need none (an unsent ack is retried).
    pz_sockopts_t opts = config->sockopts;
    self->source = pz_sock_open (ZMQ_REP, "source REP", self->binds [0], true, &opts);
    //  Sinks' and workers' receive queues fill, so no ZMTP heartbeats on
    //  those connections (sock.h): TCP keepalive finds dead ones there.
    pz_sockopts_t queued_opts = opts;
    queued_opts.heartbeat_ivl_ms = 0;
    queued_opts.linger_ms = 500;
    queued_opts.sndhwm = (int) config->publish_hwm;
    self->publish = self->source ?
        pz_sock_open (ZMQ_XPUB, "publish PUB", self->binds [1], true, &queued_opts) : NULL;
    queued_opts.linger_ms = 0;
    queued_opts.sndhwm = -1;            //  libzmq's default for the dispatch PUSH
    self->dispatch = self->publish ?
        pz_sock_open (ZMQ_PUSH, "dispatch PUSH", self->binds [2], true, &queued_opts) : NULL;
    self->results = self->dispatch ?
        pz_sock_open (ZMQ_REP, "results REP", self->binds [3], true, &opts) : NULL;
    if (!self->results) {
        pz_broker_destroy (&self);
        return NULL;
    }
    //  Every subscribe request reaches us, not just the first per topic, so
    //  the log shows each sink that joins.
    zsock_set_xpub_verbose (self->publish, 1);
    zsock_t *socks [4] = { self->source, self->publish, self->dispatch, self->results };
    for (int index = 0; index < 4; index++)
        self->endpoints [index] = zsock_last_endpoint (socks [index]);

    self->outstanding = s_id_table_new (s_dispatch_destroy);
    self->pending = zlistx_new ();
    self->leased = zlistx_new ();
    self->recent = (s_recent_t *) calloc ((size_t) config->recent_requests,
                                          sizeof (s_recent_t));
    self->recent_index = s_id_table_new (NULL);
    assert (self->pending && self->leased && self->recent);

    //  An incarnation from the start time and pid, so that ids from an
    //  earlier broker process are not taken for ours.
    uint64_t seed = (uint64_t) zclock_time () ^ ((uint64_t) getpid () << 20);
    int64_t incarnation = 1 + (int64_t) (s_id_hash (&seed)
                              % ((UINT64_C (1) << (62 - S_SEQUENCE_BITS)) - 1));
    self->id_base = incarnation << S_SEQUENCE_BITS;
    self->next_sequence = 1;
    return self;
}


//  --------------------------------------------------------------------------
//  Destroys the broker in reverse order of creation. NULL-safe.

void
pz_broker_destroy (pz_broker_t **self_p)
{
    assert (self_p);
    pz_broker_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->recent_index);
    free (self->recent);
    zlistx_destroy (&self->leased);
    zlistx_destroy (&self->pending);
    zhashx_destroy (&self->outstanding);
    for (int index = 0; index < 4; index++) {
        zstr_free (&self->endpoints [index]);
        zstr_free (&self->binds [index]);
    }
    zsock_destroy (&self->results);
    zsock_destroy (&self->dispatch);
    zsock_destroy (&self->publish);
    zsock_destroy (&self->source);
    free (self);
    *self_p = NULL;
}


//  --------------------------------------------------------------------------
//  Replies one record on a REP socket, without blocking. A REQ peer has one
//  request outstanding, our sources and workers at most 64 (pz_client),
//  far below the 1000 replies a pipe holds; a peer that sends more without
//  reading loses replies, and only it.

static void
s_reply (pz_broker_t *self, zsock_t *rep, char tag, int64_t value)
{
    if (tag == PZ_TAG_ERROR)
        self->stats.errors [value]++;
    if (pz_sock_send_record (rep, tag, value) != 0)
        zsys_warning ("broker: reply lost (%s): peer gone?", zmq_strerror (zmq_errno ()));
}

//  Publishes size bytes at data as one message. PUB never blocks: a sink
//  that cannot keep up loses messages at its high-water mark.
static void
s_publish (pz_broker_t *self, const void *data, size_t size)
{
    if (size > 0)
        zmq_send (zsock_resolve (self->publish), data, size, ZMQ_DONTWAIT);
}


//  --------------------------------------------------------------------------
//  Remembers the ack of a source request id, evicting the oldest.

static void
s_recent_store (pz_broker_t *self, int64_t id, int64_t acked)
{
    s_recent_t *slot = &self->recent [self->recent_next];
    if (slot->id != 0)
        zhashx_delete (self->recent_index, &slot->id);
    slot->id = id;
    slot->acked = acked;
    zhashx_insert (self->recent_index, &slot->id, slot);
    self->recent_next = (self->recent_next + 1) % (size_t) self->config.recent_requests;
}


//  --------------------------------------------------------------------------
//  Handles one message on the source REP, already received into message.

static void
s_handle_source (pz_broker_t *self, zmq_msg_t *message)
{
    if (zmq_msg_more (message)) {
        pz_sock_drain_frames (zsock_resolve (self->source));
        s_reply (self, self->source, PZ_TAG_ERROR, PZ_ERR_MULTIPART);
        return;
    }
    const uint8_t *data = (const uint8_t *) zmq_msg_data (message);
    size_t size = zmq_msg_size (message);
    pz_error_t error = pz_record_check (data, size, "NI");
    if (error != PZ_OK) {
        zsys_warning ("broker: rejected source message of %zu bytes: %s",
                      size, pz_error_str (error));
        s_reply (self, self->source, PZ_TAG_ERROR, error);
        return;
    }
    //  An optional leading I record names the request, for safe retries.
    bool has_id = pz_record_tag (data) == PZ_TAG_ID;
    int64_t request_id = has_id ? pz_record_value (data) : 0;
    if (has_id) {
        s_recent_t *seen = (s_recent_t *) zhashx_lookup (self->recent_index, &request_id);
        if (seen) {
            self->stats.retries++;
            s_reply (self, self->source, PZ_TAG_ACK, seen->acked);
            return;
        }
    }
    //  Accepted: the ack goes first, since the source is waiting for it
    //  and nothing below can fail.
    size_t count = size / PZ_RECORD_SIZE - (has_id ? 1 : 0);
    s_reply (self, self->source, PZ_TAG_ACK, (int64_t) count);

    //  Publish the N records: a message without an id goes out as it came,
    //  sharing its buffer (PUB passes it on at once); one with an id needs
    //  the records without it, which takes a copy.
    const uint8_t *records = data + (has_id ? PZ_RECORD_SIZE : 0);
    if (has_id)
        s_publish (self, records, count * PZ_RECORD_SIZE);
    else {
        zmq_msg_t shared;
        zmq_msg_init (&shared);
        zmq_msg_copy (&shared, message);    //  by reference, not by value
        if (zmq_msg_send (&shared, zsock_resolve (self->publish), ZMQ_DONTWAIT) == -1)
            zmq_msg_close (&shared);
    }
    //  Join the draft waiting for a worker, if there is one with room;
    //  otherwise this message starts the next dispatch.
    if (self->open && self->open->count + count <= PZ_RECORDS_MAX)
        s_dispatch_append (self->open, records, count);
    else {
        s_dispatch_t *dispatch =
            s_dispatch_new (self->id_base + self->next_sequence++, records, count);
        dispatch->created_ms = zclock_mono ();
        zhashx_insert (self->outstanding, &dispatch->id, dispatch);
        dispatch->handle = zlistx_add_end (self->pending, dispatch);
        self->open = dispatch;
    }
    self->inflight_messages++;
    self->stats.inflight += count;
    self->stats.accepted += count;
    self->stats.requests++;
    if (has_id)
        s_recent_store (self, request_id, (int64_t) count);
}


//  --------------------------------------------------------------------------
//  Checks a worker's report against its dispatch. Returns PZ_OK or the
//  error code to answer with; *duplicate is set for a completed dispatch.

static pz_error_t
s_check_report (pz_broker_t *self, const uint8_t *data, size_t size,
                s_dispatch_t **dispatch_p, bool *duplicate)
{
    pz_error_t error = pz_record_check (data, size, "IPC");
    if (error != PZ_OK)
        return error;
    if (pz_record_tag (data) != PZ_TAG_ID)
        return PZ_ERR_ID_PLACEMENT;
    int64_t id = pz_record_value (data);
    s_dispatch_t *dispatch = (s_dispatch_t *) zhashx_lookup (self->outstanding, &id);
    if (!dispatch) {
        int64_t sequence = id - self->id_base;
        if (sequence < 1 || sequence >= self->next_sequence)
            return PZ_ERR_UNKNOWN_ID;
        *duplicate = true;
        return PZ_OK;
    }
    size_t count = size / PZ_RECORD_SIZE - 1;
    if (count != dispatch->count)
        return PZ_ERR_MISMATCH;
    //  Each verdict must be for the number dispatched in its place.
    const uint8_t *sent = s_dispatch_data (dispatch);
    for (size_t index = 1; index <= count; index++)
        if (memcmp (data + index * PZ_RECORD_SIZE + 1,
                    sent + index * PZ_RECORD_SIZE + 1, 8) != 0)
            return PZ_ERR_MISMATCH;
    *dispatch_p = dispatch;
    return PZ_OK;
}

//  Handles one message on the results REP, already received into message.

static void
s_handle_report (pz_broker_t *self, zmq_msg_t *message)
{
    if (zmq_msg_more (message)) {
        pz_sock_drain_frames (zsock_resolve (self->results));
        s_reply (self, self->results, PZ_TAG_ERROR, PZ_ERR_MULTIPART);
        return;
    }
    const uint8_t *data = (const uint8_t *) zmq_msg_data (message);
    size_t size = zmq_msg_size (message);
    s_dispatch_t *dispatch = NULL;
    bool duplicate = false;
    pz_error_t error = s_check_report (self, data, size, &dispatch, &duplicate);
    if (error != PZ_OK) {
        zsys_warning ("broker: rejected report of %zu bytes: %s",
                      size, pz_error_str (error));
        s_reply (self, self->results, PZ_TAG_ERROR, error);
        return;
    }
    size_t count = size / PZ_RECORD_SIZE - 1;
    if (duplicate) {
        //  Already published from an earlier report: acknowledge, so the
        //  worker moves on, but publish nothing.
        self->stats.duplicates += count;
        s_reply (self, self->results, PZ_TAG_ACK, (int64_t) count);
        return;
    }
    //  Split verdicts into one P and one C message, order kept in each,
    //  written straight into the messages' own buffers: count, then fill.
    size_t primes = 0;
    for (size_t index = 1; index <= count; index++)
        primes += pz_record_tag (data + index * PZ_RECORD_SIZE) == PZ_TAG_PRIME;
    zmq_msg_t verdicts [2];
    zmq_msg_init_size (&verdicts [0], primes * PZ_RECORD_SIZE);
    zmq_msg_init_size (&verdicts [1], (count - primes) * PZ_RECORD_SIZE);
    uint8_t *cursor [2] = { (uint8_t *) zmq_msg_data (&verdicts [0]),
                            (uint8_t *) zmq_msg_data (&verdicts [1]) };
    for (size_t index = 1; index <= count; index++) {
        const uint8_t *record = data + index * PZ_RECORD_SIZE;
        int which = pz_record_tag (record) == PZ_TAG_PRIME ? 0 : 1;
        memcpy (cursor [which], record, PZ_RECORD_SIZE);
        cursor [which] += PZ_RECORD_SIZE;
    }
    for (int which = 0; which < 2; which++)
        if (zmq_msg_size (&verdicts [which]) == 0
        ||  zmq_msg_send (&verdicts [which], zsock_resolve (self->publish), ZMQ_DONTWAIT) == -1)
            zmq_msg_close (&verdicts [which]);

    zlistx_delete (dispatch->leased ? self->leased : self->pending, dispatch->handle);
    if (dispatch == self->open)
        self->open = NULL;      //  reported before its first push: a guessed id
    self->inflight_messages -= dispatch->messages;
    self->stats.inflight -= dispatch->count;
    self->stats.results += dispatch->count;
    zhashx_delete (self->outstanding, &dispatch->id);
    s_reply (self, self->results, PZ_TAG_ACK, (int64_t) count);
}


//  --------------------------------------------------------------------------
//  Returns true if the first pending dispatch may go now: anything but the
//  open draft may; the open draft once it is full, has waited coalesce_ms
//  for more numbers, or the broker is draining.

static bool
s_first_ready (pz_broker_t *self, int64_t now_ms)
{
    s_dispatch_t *first = (s_dispatch_t *) zlistx_first (self->pending);
    if (!first)
        return false;
    return first != self->open
        || first->count == PZ_RECORDS_MAX
        || now_ms >= first->created_ms + self->config.coalesce_ms
        || self->draining;
}

//  Pushes pending dispatches that are ready while PUSH takes them without
//  blocking; each pushed one gets a lease.

static void
s_push_pending (pz_broker_t *self, int64_t now_ms)
{
    void *handle = zsock_resolve (self->dispatch);
    s_dispatch_t *dispatch;
    while (s_first_ready (self, now_ms)) {
        dispatch = (s_dispatch_t *) zlistx_first (self->pending);
        if (dispatch->draft) {
            s_dispatch_seal (dispatch);
            if (dispatch == self->open)
                self->open = NULL;      //  sealed: numbers can no longer join
        }
        //  Send a copy: libzmq shares the buffer by reference count, and we
        //  keep the original for a second push if the lease runs out.
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, &dispatch->wire);
        if (zmq_msg_send (&copy, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&copy);
            break;              //  no worker can take it now; POLLOUT tells when
        }
        zlistx_delete (self->pending, dispatch->handle);
        dispatch->deadline_ms = now_ms + self->config.lease_ms;
        dispatch->handle = zlistx_add_end (self->leased, dispatch);
        dispatch->leased = true;
        if (dispatch->pushes++ == 0) {
            self->stats.dispatched += dispatch->count;
            self->stats.dispatches++;
        }
    }
}

//  Moves dispatches whose lease ran out back to the front of pending.
//  `leased` is in deadline order: every lease is equally long.

static void
s_expire_leases (pz_broker_t *self, int64_t now_ms)
{
    s_dispatch_t *dispatch;
    while ((dispatch = (s_dispatch_t *) zlistx_first (self->leased))
       &&  dispatch->deadline_ms <= now_ms) {
        zlistx_delete (self->leased, dispatch->handle);
        dispatch->leased = false;
        //  The oldest work goes out first, ahead of work never pushed.
        dispatch->handle = zlistx_add_start (self->pending, dispatch);
        self->stats.redispatched += dispatch->count;
        if (pz_log_verbose ())
            zsys_debug ("broker: lease of dispatch %" PRId64 " ran out, pushing again",
                    dispatch->id);
    }
}

//  --------------------------------------------------------------------------
//  Reads subscription messages from the XPUB socket and logs them.

static void
s_read_subscriptions (pz_broker_t *self)
{
    for (int burst = 0; burst < S_BURST; burst++) {
        zmq_msg_t message;
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, zsock_resolve (self->publish), ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&message);
            return;
        }
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&message);
        size_t size = zmq_msg_size (&message);
        if (size >= 1 && data [0] == 1) {
            self->stats.subscriptions++;
            zsys_info ("broker: sink subscribed to '%.*s' (subscriptions: %" PRIu64 ")",
                       (int) (size - 1), (const char *) data + 1,
                       self->stats.subscriptions);
        }
        else
        if (size >= 1 && data [0] == 0 && pz_log_verbose ())
            zsys_debug ("broker: sink unsubscribed from '%.*s'",
                        (int) (size - 1), (const char *) data + 1);
        zmq_msg_close (&message);
    }
}


//  --------------------------------------------------------------------------
//  Logs one line of counters; final adds the average and abandoned work.

static void
s_log_stats (pz_broker_t *self, int64_t now_ms, bool final)
{
    pz_broker_stats_t *stats = &self->stats;
    char errors [200] = "";
    size_t used = 0;
    uint64_t error_total = 0;
    for (int code = 1; code <= PZ_ERR_MAX; code++)
        if (stats->errors [code]) {
            error_total += stats->errors [code];
            used += (size_t) snprintf (errors + used, sizeof errors - used,
                                       " E%d:%" PRIu64, code, stats->errors [code]);
        }
    int64_t since_ms = final ? now_ms - self->started_ms : now_ms - self->last_stats_ms;
    uint64_t results = final ? stats->results : stats->results - self->results_at_stats;
    double rate = since_ms > 0 ? 1000.0 * (double) results / (double) since_ms : 0;
    zsys_info ("broker: %saccepted %" PRIu64 " dispatched %" PRIu64
               " redispatched %" PRIu64 " results %" PRIu64 " duplicates %" PRIu64
               " inflight %" PRIu64 " retries %" PRIu64 " errors %" PRIu64 "%s%s%s"
               " requests %" PRIu64 " dispatches %" PRIu64 " %.0f numbers/s",
               final ? "final: " : "", stats->accepted, stats->dispatched,
               stats->redispatched, stats->results, stats->duplicates,
               stats->inflight, stats->retries, error_total,
               used ? " [" : "", errors + (used ? 1 : 0), used ? "]" : "",
               stats->requests, stats->dispatches, rate);
    if (final && stats->inflight > 0)
        zsys_warning ("broker: %" PRIu64 " acknowledged numbers had no verdict "
                      "at exit and are lost", stats->inflight);
    self->results_at_stats = stats->results;
    self->last_stats_ms = now_ms;
}

//  Copies the broker's counters into stats.
void
pz_broker_stats (pz_broker_t *self, pz_broker_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}


//  --------------------------------------------------------------------------
//  Returns true if the broker may read another source message: not
//  draining, and room in the window for numbers and for messages. The
//  second bound keeps memory small when every message holds one number.

static bool
s_window_open (pz_broker_t *self)
{
    return !self->draining
        && self->stats.inflight < (uint64_t) self->config.max_inflight
        && self->inflight_messages < (uint64_t) self->config.max_dispatches;
}

//  Reads up to S_BURST messages from a REP socket and hands each to handler.

static void
s_serve (pz_broker_t *self, zsock_t *rep,
         void (*handler) (pz_broker_t *, zmq_msg_t *), bool window_applies)
{
    for (int burst = 0; burst < S_BURST; burst++) {
        if (window_applies && !s_window_open (self))
            return;
        zmq_msg_t message;
        zmq_msg_init (&message);
        if (zmq_msg_recv (&message, zsock_resolve (rep), ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&message);
            return;
        }
        handler (self, &message);
        zmq_msg_close (&message);
    }
}

//  Handles a command on the actor pipe. Returns false on $TERM.
static bool
s_handle_pipe (pz_broker_t *self, zsock_t *pipe)
{
    char *command = zstr_recv (pipe);
    bool go_on = command && !streq (command, "$TERM");
    if (command && streq (command, "ENDPOINTS"))
        zsock_send (pipe, "ssss", self->endpoints [0], self->endpoints [1],
                    self->endpoints [2], self->endpoints [3]);
    else
    if (command && streq (command, "STATS")) {
        pz_broker_stats_t stats;
        pz_broker_stats (self, &stats);
        zsock_send (pipe, "b", &stats, sizeof stats);
    }
    zstr_free (&command);
    return go_on;
}


//  --------------------------------------------------------------------------
//  The loop: serve until interrupted (then drain) or $TERM on pipe.

int
pz_broker_run (pz_broker_t *self, zsock_t *pipe)
{
    assert (self);
    self->started_ms = self->last_stats_ms = zclock_mono ();
    self->next_stats_ms = self->config.stats_s > 0 ?
        self->started_ms + self->config.stats_s * 1000 : INT64_MAX;
    for (int index = 0; index < 4; index++)
        zsys_info ("broker: %s endpoint bound to %s", s_names [index],
                   self->endpoints [index]);

    //  Subscriptions are only logged, so they are read every
    //  S_SUBSCRIPTIONS_MS rather than polled: one socket fewer in every
    //  zmq_poll, on the path of every source's ack.
    enum { SOURCE, RESULTS, DISPATCH, PIPE };
    zmq_pollitem_t items [] = {
        { zsock_resolve (self->source), 0, 0, 0 },
        { zsock_resolve (self->results), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->dispatch), 0, 0, 0 },
        { pipe ? zsock_resolve (pipe) : NULL, 0, ZMQ_POLLIN, 0 }
    };
    int item_count = pipe ? 4 : 3;
    while (true) {
        int64_t now_ms = zclock_mono ();
        if (zsys_interrupted && !self->draining) {
            self->draining = true;
            self->drain_deadline_ms = now_ms + self->config.drain_ms;
            zsys_info ("broker: interrupted, taking no new numbers; waiting up "
                       "to %" PRId64 " ms for %" PRIu64 " in flight",
                       self->config.drain_ms, self->stats.inflight);
        }
        if (self->draining
        && (self->stats.inflight == 0 || now_ms >= self->drain_deadline_ms))
            break;

        s_expire_leases (self, now_ms);
        s_push_pending (self, now_ms);
        if (now_ms >= self->next_subscriptions_ms) {
            s_read_subscriptions (self);
            self->next_subscriptions_ms = now_ms + S_SUBSCRIPTIONS_MS;
        }
        if (now_ms >= self->next_stats_ms) {
            s_log_stats (self, now_ms, false);
            self->next_stats_ms = now_ms + self->config.stats_s * 1000;
        }

        //  Poll sources only while the window has room, and PUSH only for
        //  writability while work waits: that is the whole flow control.
        items [SOURCE].events = s_window_open (self) ? ZMQ_POLLIN : 0;
        items [DISPATCH].events = s_first_ready (self, now_ms) ? ZMQ_POLLOUT : 0;

        int64_t wake_ms = self->next_stats_ms < self->next_subscriptions_ms ?
                          self->next_stats_ms : self->next_subscriptions_ms;
        s_dispatch_t *oldest = (s_dispatch_t *) zlistx_first (self->leased);
        if (oldest && oldest->deadline_ms < wake_ms)
            wake_ms = oldest->deadline_ms;
        //  An open draft first in line, still gathering: wake when it may go.
        if (self->open && zlistx_first (self->pending) == self->open
        && !s_first_ready (self, now_ms)
        &&  self->open->created_ms + self->config.coalesce_ms < wake_ms)
            wake_ms = self->open->created_ms + self->config.coalesce_ms;
        if (self->draining && self->drain_deadline_ms < wake_ms)
            wake_ms = self->drain_deadline_ms;
        //  Wake at least every 100 ms, to notice a signal that raced the poll.
        long timeout_ms = (long) (wake_ms - now_ms);
        timeout_ms = timeout_ms < 0 ? 0 : timeout_ms > 100 ? 100 : timeout_ms;

        //  Poll only the items that ask for something: zmq_poll pays a
        //  system call or two per socket item, even for one without events.
        zmq_pollitem_t active [4];
        int polled [4], active_count = 0;
        for (int index = 0; index < item_count; index++) {
            items [index].revents = 0;
            if (items [index].events) {
                polled [active_count] = index;
                active [active_count++] = items [index];
            }
        }
        if (zmq_poll (active, active_count, timeout_ms) == -1) {
            if (zmq_errno () == EINTR)
                continue;       //  a signal: the top of the loop looks at it
            zsys_error ("broker: poll failed: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        for (int index = 0; index < active_count; index++)
            items [polled [index]].revents = active [index].revents;
        //  Sources first: each waits for its ack, while a worker's next
        //  dispatch is already in its queue.
        if (items [SOURCE].revents & ZMQ_POLLIN)
            s_serve (self, self->source, s_handle_source, true);
        if (items [RESULTS].revents & ZMQ_POLLIN)
            s_serve (self, self->results, s_handle_report, false);
        if (pipe && (items [PIPE].revents & ZMQ_POLLIN) && !s_handle_pipe (self, pipe))
            break;
    }
    s_log_stats (self, zclock_mono (), true);
    return 0;
}


//  --------------------------------------------------------------------------
//  Returns the resolved endpoint of one of the four sockets, or NULL.

const char *
pz_broker_endpoint (pz_broker_t *self, const char *which)
{
    assert (self && which);
    for (int index = 0; index < 4; index++)
        if (streq (which, s_names [index]))
            return self->endpoints [index];
    return NULL;
}


//  --------------------------------------------------------------------------
//  zactor body: a broker driven over its pipe.

void
pz_broker_actor (zsock_t *pipe, void *args)
{
    pz_broker_t *self = pz_broker_new ((const pz_broker_config_t *) args);
    zsock_signal (pipe, self ? 0 : 1);
    if (!self) {
        //  zactor_destroy still sends $TERM; wait for it before returning.
        char *command = zstr_recv (pipe);
        zstr_free (&command);
        return;
    }
    pz_broker_run (self, pipe);
    pz_broker_destroy (&self);
}
