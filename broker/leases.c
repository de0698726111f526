/*  =========================================================================
    leases - accepted numbers on their way through the workers

    A dispatch lives in `outstanding` (by id) from its first number to its
    first valid report, and meanwhile in exactly one of two queues: `pending`
    (waiting for a worker, first out first) or `leased` (pushed, in deadline
    order: every lease is equally long, so appending keeps the order).

    Until its first push a dispatch is a draft that can grow; the push seals
    it into `wire`, whose bytes never change after, so a second push after a
    lost lease sends exactly the same message.
    =========================================================================
*/
#include "leases.h"
#include "idtable.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "sock.h"

//  Dispatches whose numbers a duplicate report is still counted exactly
//  by (their counts kept in a ring, by sequence); older ones count 64 per
//  V record.
#define S_DONE_RING         65536

struct _pz_lease_t {
    int64_t id;                 //  dispatch id; also the key in `outstanding`
    size_t count;               //  N records in the dispatch
    int64_t *covers;            //  seqs of the N publications it holds
    size_t cover_count;         //  entries in covers (source messages)
    size_t cover_capacity;      //  entries allocated
    uint8_t *draft;             //  I <id> + N records, until sealed; else NULL
    size_t draft_capacity;      //  bytes allocated for draft
    int64_t created_ms;         //  zclock_mono time the draft was started
    zmq_msg_t wire;             //  I <id> + N records once sealed (shared on send)
    int64_t deadline_ms;        //  lease end, zclock_mono time, while leased
    void *handle;               //  our node in `pending` or `leased`
    bool leased;                //  true in `leased`, false in `pending`
    unsigned pushes;            //  times pushed to workers so far
};

struct _pz_leases_t {
    int64_t id_base;            //  ids are id_base + sequence
    int64_t next_sequence;      //  sequence of the next dispatch, from 1
    int64_t lease_ms;           //  how long a pushed dispatch is leased
    int64_t coalesce_ms;        //  how long the open draft waits for company
    zhashx_t *outstanding;      //  dispatch id -> pz_lease_t, owns them
    zlistx_t *pending;          //  dispatches waiting for a worker
    zlistx_t *leased;           //  pushed dispatches, earliest deadline first
    pz_lease_t *open;           //  the last of `pending` if never pushed, or NULL
    uint16_t *done_counts;      //  numbers of completed dispatches, by
                                //  sequence % S_DONE_RING
    pz_leases_stats_t stats;    //  counters
};


//  --------------------------------------------------------------------------
//  A dispatch

//  Creates a draft of count records copied from records. Caller owns it.
//
//  A copy on purpose: a received message may sit inside a receive buffer
//  that libzmq shares among several messages, and a dispatch can live for
//  seconds; holding the message itself would pin that whole buffer.
static pz_lease_t *
s_lease_new (int64_t id, const uint8_t *records, size_t count)
{
    pz_lease_t *self = (pz_lease_t *) zmalloc (sizeof (pz_lease_t));
    assert (self);
    self->id = id;
    self->count = count;
    self->draft_capacity = PZ_RECORD_SIZE * (count + 1);
    self->draft = (uint8_t *) malloc (self->draft_capacity);
    assert (self->draft);
    pz_record_encode (self->draft, PZ_TAG_ID, id);
    memcpy (self->draft + PZ_RECORD_SIZE, records, PZ_RECORD_SIZE * count);
    return self;
}

//  Notes that the dispatch holds numbers of the publication numbered seq.
static void
s_lease_cover (pz_lease_t *self, int64_t seq)
{
    if (self->cover_count == self->cover_capacity) {
        self->cover_capacity = self->cover_capacity ? 2 * self->cover_capacity : 4;
        self->covers = (int64_t *) realloc (self->covers,
                                            self->cover_capacity * sizeof (int64_t));
        assert (self->covers);
    }
    self->covers [self->cover_count++] = seq;
}

//  Appends count records to a draft, growing it by doubling (so merging
//  k messages copies each byte O(1) times).
static void
s_lease_append (pz_lease_t *self, const uint8_t *records, size_t count)
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
}

//  libzmq calls this when the last message sharing a sealed buffer closes.
static void
s_free_buffer (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Seals a draft: hands its buffer to `wire` without copying; libzmq
//  counts the references of the copies we send and frees it after the last.
static void
s_lease_seal (pz_lease_t *self)
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
s_lease_data (pz_lease_t *self)
{
    return self->draft ? self->draft : (const uint8_t *) zmq_msg_data (&self->wire);
}

static void
s_lease_destroy (void **item_p)
{
    pz_lease_t *self = (pz_lease_t *) *item_p;
    if (self) {
        if (self->draft)
            free (self->draft);
        else
            zmq_msg_close (&self->wire);
        free (self->covers);
        free (self);
        *item_p = NULL;
    }
}

//  Returns the seqs of the publications a dispatch holds numbers of.
const int64_t *
pz_lease_covers (pz_lease_t *lease, size_t *count)
{
    assert (lease && count);
    *count = lease->cover_count;
    return lease->covers;
}

//  Returns the number of N records in a dispatch.
size_t
pz_lease_numbers (pz_lease_t *lease)
{
    assert (lease);
    return lease->count;
}

//  Returns the dispatch's N records.
const uint8_t *
pz_lease_records (pz_lease_t *lease)
{
    assert (lease);
    return s_lease_data (lease) + PZ_RECORD_SIZE;
}


//  --------------------------------------------------------------------------
//  The set

//  Creates an empty set. Caller owns return value.
pz_leases_t *
pz_leases_new (int64_t id_base, int64_t lease_ms, int64_t coalesce_ms)
{
    assert (lease_ms > 0 && coalesce_ms >= 0);
    pz_leases_t *self = (pz_leases_t *) zmalloc (sizeof (pz_leases_t));
    assert (self);
    self->id_base = id_base;
    self->next_sequence = 1;
    self->lease_ms = lease_ms;
    self->coalesce_ms = coalesce_ms;
    self->outstanding = pz_idtable_new (s_lease_destroy);
    self->pending = zlistx_new ();
    self->leased = zlistx_new ();
    self->done_counts = (uint16_t *) calloc (S_DONE_RING, sizeof (uint16_t));
    assert (self->pending && self->leased && self->done_counts);
    return self;
}

//  Destroys the set. NULL-safe.
void
pz_leases_destroy (pz_leases_t **self_p)
{
    assert (self_p);
    pz_leases_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->leased);
        zlistx_destroy (&self->pending);
        zhashx_destroy (&self->outstanding);
        free (self->done_counts);
        free (self);
        *self_p = NULL;
    }
}

//  Adds accepted numbers to the open draft or a new dispatch.
void
pz_leases_add (pz_leases_t *self, const uint8_t *records, size_t count,
               int64_t seq, int64_t now_ms)
{
    assert (self && records && count > 0 && count <= PZ_RECORDS_MAX);
    if (self->open && self->open->count + count <= PZ_RECORDS_MAX)
        s_lease_append (self->open, records, count);
    else {
        pz_lease_t *lease = s_lease_new (self->id_base + self->next_sequence++,
                                         records, count);
        lease->created_ms = now_ms;
        zhashx_insert (self->outstanding, &lease->id, lease);
        lease->handle = zlistx_add_end (self->pending, lease);
        self->open = lease;
    }
    s_lease_cover (self->open, seq);
    self->stats.numbers += count;
    self->stats.messages++;
}

//  Returns true if the first waiting dispatch may go now.
bool
pz_leases_ready (pz_leases_t *self, int64_t now_ms, bool draining)
{
    assert (self);
    pz_lease_t *first = (pz_lease_t *) zlistx_first (self->pending);
    if (!first)
        return false;
    return first != self->open
        || first->count == PZ_RECORDS_MAX
        || now_ms >= first->created_ms + self->coalesce_ms
        || draining;
}

//  Pushes ready dispatches while PUSH takes them. Returns how many went.
size_t
pz_leases_push (pz_leases_t *self, void *handle, int64_t now_ms, bool draining)
{
    assert (self && handle);
    size_t pushed = 0;
    while (pz_leases_ready (self, now_ms, draining)) {
        pz_lease_t *lease = (pz_lease_t *) zlistx_first (self->pending);
        if (lease->draft) {
            s_lease_seal (lease);
            if (lease == self->open)
                self->open = NULL;      //  sealed: numbers can no longer join
        }
        //  Send a copy: libzmq shares the buffer by reference count, and we
        //  keep the original for a second push if the lease runs out.
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, &lease->wire);
        if (zmq_msg_send (&copy, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&copy);
            break;              //  no worker can take it now; POLLOUT tells when
        }
        zlistx_delete (self->pending, lease->handle);
        lease->deadline_ms = now_ms + self->lease_ms;
        lease->handle = zlistx_add_end (self->leased, lease);
        lease->leased = true;
        if (lease->pushes++ == 0) {
            self->stats.dispatched += lease->count;
            self->stats.dispatches++;
        }
        pushed++;
    }
    return pushed;
}

//  Moves dispatches whose lease ran out back to the front of the queue.
size_t
pz_leases_expire (pz_leases_t *self, int64_t now_ms)
{
    assert (self);
    size_t numbers = 0;
    pz_lease_t *lease;
    while ((lease = (pz_lease_t *) zlistx_first (self->leased))
       &&  lease->deadline_ms <= now_ms) {
        zlistx_delete (self->leased, lease->handle);
        lease->leased = false;
        //  The oldest work goes out first, ahead of work never pushed.
        lease->handle = zlistx_add_start (self->pending, lease);
        numbers += lease->count;
        if (pz_log_verbose ())
            zsys_debug ("broker: lease of dispatch %" PRId64 " ran out, pushing again",
                        lease->id);
    }
    self->stats.redispatched += numbers;
    return numbers;
}

//  Ends a dispatch's lease early and puts it first in line.
void
pz_leases_release (pz_leases_t *self, pz_lease_t *lease)
{
    assert (self && lease);
    if (!lease->leased)
        return;                 //  waiting already
    zlistx_delete (self->leased, lease->handle);
    lease->leased = false;
    lease->handle = zlistx_add_start (self->pending, lease);
    self->stats.redispatched += lease->count;
}

//  Returns when something is due next, or INT64_MAX.
int64_t
pz_leases_wake_ms (pz_leases_t *self, int64_t now_ms, bool draining)
{
    assert (self);
    int64_t wake_ms = INT64_MAX;
    pz_lease_t *oldest = (pz_lease_t *) zlistx_first (self->leased);
    if (oldest)
        wake_ms = oldest->deadline_ms;
    //  An open draft first in line, still gathering: wake when it may go.
    if (self->open && zlistx_first (self->pending) == self->open
    && !pz_leases_ready (self, now_ms, draining)
    &&  self->open->created_ms + self->coalesce_ms < wake_ms)
        wake_ms = self->open->created_ms + self->coalesce_ms;
    return wake_ms;
}

//  Checks a report against its dispatch.
//
//  One walk of the report's tags for a valid one (about 1/64 of a record
//  per number): no value is compared, the broker holds the values.
pz_error_t
pz_leases_check (pz_leases_t *self, const uint8_t *data, size_t size,
                 pz_lease_t **lease_p, size_t *count_p)
{
    assert (self && lease_p && count_p);
    *lease_p = NULL;
    *count_p = 0;
    pz_error_t error = pz_record_check (data, size, "IV");
    if (error == PZ_ERR_TAG_REFUSED
    &&  pz_record_check (data, size, "IVPC") == PZ_OK
    &&  size > PZ_RECORD_SIZE && pz_record_tag (data) == PZ_TAG_ID)
        return PZ_ERR_OLD_REPORT;   //  P/C records: a version 2 worker
    if (error != PZ_OK)
        return error;
    if (pz_record_tag (data) != PZ_TAG_ID)
        return PZ_ERR_ID_PLACEMENT;
    size_t records = size / PZ_RECORD_SIZE - 1;
    int64_t id = pz_record_value (data);
    pz_lease_t *lease = (pz_lease_t *) zhashx_lookup (self->outstanding, &id);
    if (!lease) {
        //  Unsigned: the id is anything a worker sent, and an id below
        //  id_base wraps to a sequence never issued instead of overflowing.
        uint64_t sequence = (uint64_t) id - (uint64_t) self->id_base;
        if (sequence < 1 || sequence >= (uint64_t) self->next_sequence)
            return PZ_ERR_UNKNOWN_ID;
        //  Issued and completed: a duplicate, counted by its dispatch's
        //  numbers while the ring holds them.
        if ((uint64_t) self->next_sequence - sequence <= S_DONE_RING)
            *count_p = self->done_counts [sequence % S_DONE_RING];
        else
            *count_p = records * PZ_VERDICTS_PER_RECORD;
        return PZ_OK;
    }
    error = pz_verdicts_check (data + PZ_RECORD_SIZE, records, lease->count);
    if (error != PZ_OK)
        return error;
    *lease_p = lease;
    *count_p = lease->count;
    return PZ_OK;
}

//  Removes a reported dispatch and frees it.
void
pz_leases_complete (pz_leases_t *self, pz_lease_t *lease)
{
    assert (self && lease);
    zlistx_delete (lease->leased ? self->leased : self->pending, lease->handle);
    if (lease == self->open)
        self->open = NULL;      //  reported before its first push: a guessed id
    self->stats.messages -= lease->cover_count;
    self->stats.numbers -= lease->count;
    uint64_t sequence = (uint64_t) lease->id - (uint64_t) self->id_base;
    self->done_counts [sequence % S_DONE_RING] = (uint16_t) lease->count;
    zhashx_delete (self->outstanding, &lease->id);
}

//  Copies the counters into stats.
void
pz_leases_stats (pz_leases_t *self, pz_leases_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}
