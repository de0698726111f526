/*  =========================================================================
    ranges - accepted ranges, cut into pieces and leased to workers

    A range lives in `by_key` from its accept until the piece that finishes
    it is settled, and in `uncut` while it has numbers not yet cut into
    pieces (accept order: the oldest range is cut first). A piece lives in
    `outstanding` (by id) from its cut until its report is settled, and
    meanwhile in `waiting` (to be pushed: first cut, or a lost lease, which
    goes first), in `leased` (deadline order: every lease is equally long,
    so appending keeps the order), or in neither once reported.

    Pieces are cut lo upwards, in lanes from 10^15 up (one per worker
    thread, cut in turn: s_split_lanes). Pieces read back from a journal
    (restored) are kept per range, sorted, and skipped by the cutting, so a
    restarted broker cuts only what was not done, whatever its piece width.
    Widths and counts are uint64_t: a range may be 2^63 numbers wide.
    =========================================================================
*/
#include "ranges.h"
#include "sieve.h"
#include "idtable.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "sock.h"

typedef enum { S_WAITING, S_LEASED, S_REPORTED } s_state_t;

//  A span of numbers done before a restart.
typedef struct {
    int64_t lo;                 //  first number
    int64_t hi;                 //  last number
} s_span_t;

#define S_LANES_MAX         16      //  lanes of a range, at most

//  A lane: a stretch of a range cut piece after piece, lo upwards.
typedef struct {
    uint64_t next;              //  lowest number not yet cut
    uint64_t end;               //  first number past it (hi + 1 of its last)
    size_t skip_next;           //  first restored span not yet passed by next
} s_lane_t;

typedef struct {
    int64_t key;                //  its key; also the key in `by_key`
    char tag;                   //  R (publish) or Q (count)
    int64_t lo;                 //  bounds, inclusive
    int64_t hi;
    s_lane_t lanes [S_LANES_MAX];   //  stretches cut in turn, each in order
    size_t lane_count;          //  lanes in use, from 1
    size_t lane_turn;           //  cuts so far: the next comes from lane
                                //  lane_turn % lane_count, if it has numbers
    uint64_t done_numbers;      //  numbers of pieces reported or restored
    int64_t count;              //  primes in those
    s_span_t *skip;             //  restored pieces, sorted by lo once cutting starts
    size_t skip_count;          //  how many
    size_t skip_capacity;       //  allocated
    bool skip_sorted;           //  skip is sorted
    size_t pieces_out;          //  pieces of it in `outstanding`
    bool finished;              //  every number reported
    void *handle;               //  node in `uncut`, or NULL
} s_range_t;

struct _pz_piece_t {
    int64_t id;                 //  dispatch id; also the key in `outstanding`
    s_range_t *range;           //  the range it is cut from
    int64_t lo;                 //  bounds, inclusive
    int64_t hi;
    uint8_t wire [3 * PZ_RECORD_SIZE];  //  I <id> R lo R hi (or Q), as pushed
    s_state_t state;            //  where it is
    void *handle;               //  node in `waiting` or `leased`
    int64_t deadline_ms;        //  lease end while leased
    unsigned pushes;            //  times pushed so far
    int64_t count;              //  primes, once reported
    bool finishes;              //  its report finished its range
};

struct _pz_ranges_t {
    int64_t id_base;            //  piece ids are id_base + PZ_RANGES_ID_BIT + sequence
    int64_t next_sequence;      //  sequence of the next piece, from 1
    int64_t lease_ms;           //  how long a pushed piece is leased
    int64_t piece_numbers;      //  width of a Q piece, at most
    int64_t inflight_max;       //  pieces out, at most
    int64_t next_key;           //  key of the next range
    zhashx_t *by_key;           //  key -> s_range_t, owns them
    zlistx_t *uncut;            //  ranges with numbers left to cut
    zhashx_t *outstanding;      //  piece id -> pz_piece_t, owns them
    zlistx_t *waiting;          //  pieces to push, first out first
    zlistx_t *leased;           //  pushed pieces, earliest deadline first
    zhashx_t *active;           //  worker thread (hex routing id) -> last report ms
    int64_t bound;              //  pieces out allowed now
    int64_t bound_ms;           //  when bound was computed
    int64_t threads;            //  worker threads active lately, as of bound_ms
    size_t peers;               //  connections of the dispatch socket, lately
    pz_ranges_stats_t stats;    //  counters
};


//  --------------------------------------------------------------------------
//  Destructors for the tables.

static void
s_range_destroy (void **item_p)
{
    s_range_t *range = (s_range_t *) *item_p;
    if (range) {
        free (range->skip);
        free (range);
        *item_p = NULL;
    }
}

static void
s_piece_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static void
s_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}


//  --------------------------------------------------------------------------
//  Creates an empty set.

pz_ranges_t *
pz_ranges_new (int64_t id_base, int64_t lease_ms, int64_t piece_numbers,
               int64_t inflight_max)
{
    assert (lease_ms > 0 && piece_numbers > 0 && inflight_max > 0);
    pz_ranges_t *self = (pz_ranges_t *) zmalloc (sizeof (pz_ranges_t));
    assert (self);
    self->id_base = id_base;
    self->next_sequence = 1;
    self->lease_ms = lease_ms;
    self->piece_numbers = piece_numbers;
    self->inflight_max = inflight_max;
    self->next_key = 1;
    self->by_key = pz_idtable_new (s_range_destroy);
    self->outstanding = pz_idtable_new (s_piece_destroy);
    self->uncut = zlistx_new ();
    self->waiting = zlistx_new ();
    self->leased = zlistx_new ();
    self->active = zhashx_new ();
    assert (self->uncut && self->waiting && self->leased && self->active);
    zhashx_set_destructor (self->active, s_free);
    self->bound = 2;
    return self;
}

//  Destroys the set. NULL-safe.
void
pz_ranges_destroy (pz_ranges_t **self_p)
{
    assert (self_p);
    pz_ranges_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->leased);
        zlistx_destroy (&self->waiting);
        zlistx_destroy (&self->uncut);
        zhashx_destroy (&self->outstanding);
        zhashx_destroy (&self->by_key);
        zhashx_destroy (&self->active);
        free (self);
        *self_p = NULL;
    }
}


//  --------------------------------------------------------------------------
//  Requests and ranges.

//  Checks the range records of a request, pair by pair.
pz_error_t
pz_ranges_check_request (const uint8_t *records, size_t count, size_t *ranges)
{
    assert (records || count == 0);
    assert (ranges);
    *ranges = 0;
    for (size_t index = 0; index < count; index++) {
        const uint8_t *record = records + index * PZ_RECORD_SIZE;
        char tag = pz_record_tag (record);
        if (tag != PZ_TAG_RANGE && tag != PZ_TAG_RANGE_COUNT)
            continue;
        if (index + 1 >= count || pz_record_tag (record + PZ_RECORD_SIZE) != tag)
            return PZ_ERR_HALF_RANGE;
        int64_t lo = pz_record_value (record);
        int64_t hi = pz_record_value (record + PZ_RECORD_SIZE);
        if (lo < 0 || hi < 0)
            return PZ_ERR_RANGE_NEGATIVE;
        if (lo > hi)
            return PZ_ERR_RANGE_ORDER;
        (*ranges)++;
        index++;
    }
    return PZ_OK;
}

//  Reserves count keys.
int64_t
pz_ranges_reserve_keys (pz_ranges_t *self, size_t count)
{
    assert (self);
    int64_t key = self->next_key;
    self->next_key += (int64_t) count;
    return key;
}

//  Makes the next key at least key.
void
pz_ranges_keys_from (pz_ranges_t *self, int64_t key)
{
    assert (self);
    if (key > self->next_key)
        self->next_key = key;
}

//  Adds an accepted range.
void
pz_ranges_add (pz_ranges_t *self, int64_t key, char tag, int64_t lo, int64_t hi)
{
    assert (self && (tag == PZ_TAG_RANGE || tag == PZ_TAG_RANGE_COUNT));
    assert (lo >= 0 && lo <= hi);
    s_range_t *range = (s_range_t *) zmalloc (sizeof (s_range_t));
    assert (range);
    *range = (s_range_t) {
        .key = key, .tag = tag, .lo = lo, .hi = hi, .lane_count = 1,
        .lanes = { { .next = (uint64_t) lo, .end = (uint64_t) hi + 1 } }
    };
    int rc = zhashx_insert (self->by_key, &range->key, range);
    assert (rc == 0);
    range->handle = zlistx_add_end (self->uncut, range);
    self->stats.open++;
    pz_ranges_keys_from (self, key + 1);
}

//  Returns a range's width, hi - lo + 1 (up to 2^63).
static uint64_t
s_width (int64_t lo, int64_t hi)
{
    return (uint64_t) hi - (uint64_t) lo + 1;
}

//  Drops a range that is done.
static void
s_range_drop (pz_ranges_t *self, s_range_t *range)
{
    if (range->handle)
        zlistx_delete (self->uncut, range->handle);
    self->stats.open--;
    self->stats.done++;
    zhashx_delete (self->by_key, &range->key);
}

//  Marks a piece done before a restart.
bool
pz_ranges_restore_piece (pz_ranges_t *self, int64_t key, int64_t lo, int64_t hi,
                         int64_t count)
{
    assert (self);
    s_range_t *range = (s_range_t *) zhashx_lookup (self->by_key, &key);
    assert (range && lo >= range->lo && hi <= range->hi && lo <= hi);
    if (range->skip_count == range->skip_capacity) {
        range->skip_capacity = range->skip_capacity ? 2 * range->skip_capacity : 8;
        range->skip = (s_span_t *) realloc (range->skip,
                                            range->skip_capacity * sizeof (s_span_t));
        assert (range->skip);
    }
    range->skip [range->skip_count++] = (s_span_t) { lo, hi };
    range->skip_sorted = false;
    range->done_numbers += s_width (lo, hi);
    range->count += count;
    assert (range->done_numbers <= s_width (range->lo, range->hi));
    if (range->done_numbers == s_width (range->lo, range->hi)) {
        s_range_drop (self, range);
        return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Cutting and pushing.

//  Orders spans by lo, for qsort.
static int
s_span_compare (const void *left, const void *right)
{
    int64_t a = ((const s_span_t *) left)->lo;
    int64_t b = ((const s_span_t *) right)->lo;
    return (a > b) - (a < b);
}

//  Recomputes the bound of pieces out, at most once a second: twice the
//  worker threads active lately or connected, at least 2, at most
//  inflight_max.
static int64_t
s_bound (pz_ranges_t *self, int64_t now_ms)
{
    if (now_ms - self->bound_ms < 1000 && self->bound_ms)
        return self->bound;
    self->bound_ms = now_ms;
    zlistx_t *gone = zlistx_new ();
    int64_t active = 0;
    for (int64_t *seen = (int64_t *) zhashx_first (self->active); seen;
         seen = (int64_t *) zhashx_next (self->active)) {
        if (now_ms - *seen > PZ_RANGES_ACTIVE_MS)
            zlistx_add_end (gone, (void *) zhashx_cursor (self->active));
        else
            active++;
    }
    for (void *key = zlistx_first (gone); key; key = zlistx_next (gone))
        zhashx_delete (self->active, key);
    zlistx_destroy (&gone);
    self->threads = active;
    //  Connected threads that have not reported yet count too (as many as
    //  a range has lanes: connections alone prove no worker).
    size_t peers = self->peers < S_LANES_MAX ? self->peers : S_LANES_MAX;
    if ((int64_t) peers > active)
        active = (int64_t) peers;
    int64_t bound = 2 * active;
    bound = bound < 2 ? 2 : bound;
    self->bound = bound > self->inflight_max ? self->inflight_max : bound;
    return self->bound;
}

//  Notes a worker thread's report (of a piece or of numbers).
void
pz_ranges_seen (pz_ranges_t *self, const uint8_t *peer, size_t size, int64_t now_ms)
{
    assert (self && (peer || size == 0));
    char name [2 * 256 + 1];
    size = size > 256 ? 256 : size;
    for (size_t index = 0; index < size; index++)
        snprintf (name + 2 * index, 3, "%02x", peer [index]);
    name [2 * size] = '\0';
    int64_t *seen = (int64_t *) zhashx_lookup (self->active, name);
    if (!seen) {
        seen = (int64_t *) malloc (sizeof (int64_t));
        assert (seen);
        zhashx_insert (self->active, name, seen);
        self->bound_ms = 0;     //  a new thread: the bound grows at once
    }
    *seen = now_ms;
}

//  Sets the dispatch socket's connections, for the lanes.
void
pz_ranges_set_peers (pz_ranges_t *self, size_t peers)
{
    assert (self);
    if (peers != self->peers)
        self->bound_ms = 0;     //  the bound follows at once
    self->peers = peers;
}

//  Moves a lane's next past the restored spans that start at or before it.
//  Returns true if the lane still has numbers to cut.
static bool
s_lane_skip (s_range_t *range, s_lane_t *lane)
{
    while (lane->skip_next < range->skip_count
       &&  (uint64_t) range->skip [lane->skip_next].lo <= lane->next) {
        uint64_t after = (uint64_t) range->skip [lane->skip_next].hi + 1;
        if (after > lane->next)
            lane->next = after;
        lane->skip_next++;
    }
    return lane->next < lane->end;
}

//  Near the top of the int64 range (from PZ_SIEVE_CONTINUE_FROM) a worker
//  thread sieves a run of consecutive pieces with one libprimesieve setup
//  (~1 s of CPU near 10^18), so a range is cut into as many lanes as there
//  are worker threads, and successive cuts come from successive lanes: the
//  PUSH socket deals pieces round robin to the threads' PULL sockets, so in
//  the steady state each thread gets the pieces of one lane, consecutive,
//  instead of every other piece of the range (which made two workers no
//  faster than one there). The threads are the dispatch socket's
//  connections (pz_ranges_set_peers), known before any piece is cut, or
//  those reporting lately if more. A lane splits at a piece boundary near
//  the middle of the widest one's remainder; lanes never merge. Below
//  PZ_SIEVE_CONTINUE_FROM a range stays one lane, cut in order.
static void
s_split_lanes (pz_ranges_t *self, s_range_t *range, uint64_t width)
{
    if (range->lo < PZ_SIEVE_CONTINUE_FROM)
        return;
    size_t wanted = self->threads > 0 ? (size_t) self->threads : 1;
    if (self->peers > wanted)
        wanted = self->peers;
    if (wanted > S_LANES_MAX)
        wanted = S_LANES_MAX;
    if (range->lane_count == 1 && wanted > 1) {
        //  The first split: equal lanes, which all end about together
        //  (in turn with PUSH's, a lane that ran out shifts the cuts).
        s_lane_t *lane = &range->lanes [0];
        uint64_t share = (lane->end - lane->next) / wanted / width * width;
        if (share == 0)
            return;                 //  too little left to share
        uint64_t end = lane->end;
        for (size_t index = 1; index < wanted; index++)
            range->lanes [index] = (s_lane_t) {
                .next = lane->next + index * share,
                .end = index + 1 < wanted ? lane->next + (index + 1) * share : end,
                .skip_next = lane->skip_next
            };
        lane->end = lane->next + share;
        range->lane_count = wanted;
    }
    //  Threads that came later: the widest lane's remainder is halved.
    while (range->lane_count < wanted) {
        size_t widest = 0;
        for (size_t index = 1; index < range->lane_count; index++)
            if (range->lanes [index].end - range->lanes [index].next
            >   range->lanes [widest].end - range->lanes [widest].next)
                widest = index;
        s_lane_t *lane = &range->lanes [widest];
        uint64_t left = lane->end - lane->next;
        if (left < 2 * width)
            return;                 //  too little left to share
        uint64_t middle = lane->next + (left / 2 / width) * width;
        range->lanes [range->lane_count++] = (s_lane_t) {
            .next = middle, .end = lane->end, .skip_next = lane->skip_next
        };
        lane->end = middle;
    }
}

//  Cuts the next piece of the oldest range with numbers left, into
//  `waiting`. Returns false if there is none.
static bool
s_cut (pz_ranges_t *self)
{
    s_range_t *range = (s_range_t *) zlistx_first (self->uncut);
    if (!range)
        return false;
    if (!range->skip_sorted) {
        if (range->skip_count > 0)      //  skip is NULL while empty
            qsort (range->skip, range->skip_count, sizeof (s_span_t), s_span_compare);
        range->skip_sorted = true;
        for (size_t index = 0; index < range->lane_count; index++)
            range->lanes [index].skip_next = 0;
    }
    uint64_t width = (uint64_t) self->piece_numbers;
    if (range->tag == PZ_TAG_RANGE && width > (uint64_t) PZ_RANGES_PUBLISH_MAX)
        width = (uint64_t) PZ_RANGES_PUBLISH_MAX;
    if (range->tag == PZ_TAG_RANGE_COUNT && width > (uint64_t) PZ_RANGES_COUNT_MAX)
        width = (uint64_t) PZ_RANGES_COUNT_MAX;
    s_split_lanes (self, range, width);
    //  This turn's lane, or the next one with numbers left (past the pieces
    //  done before a restart).
    s_lane_t *lane = NULL;
    for (size_t tried = 0; tried < range->lane_count && !lane; tried++) {
        s_lane_t *candidate = &range->lanes [range->lane_turn++ % range->lane_count];
        if (s_lane_skip (range, candidate))
            lane = candidate;
    }
    if (!lane) {
        //  All cut (the rest was done before): nothing more from it.
        zlistx_delete (self->uncut, range->handle);
        range->handle = NULL;
        return s_cut (self);
    }
    uint64_t last = lane->end - 1;
    if (last - lane->next >= width)
        last = lane->next + width - 1;
    if (lane->skip_next < range->skip_count
    &&  (uint64_t) range->skip [lane->skip_next].lo <= last)
        last = (uint64_t) range->skip [lane->skip_next].lo - 1;
    pz_piece_t *piece = (pz_piece_t *) zmalloc (sizeof (pz_piece_t));
    assert (piece);
    piece->id = self->id_base + PZ_RANGES_ID_BIT + self->next_sequence++;
    piece->range = range;
    piece->lo = (int64_t) lane->next;
    piece->hi = (int64_t) last;
    pz_record_encode (piece->wire, PZ_TAG_ID, piece->id);
    pz_record_encode (piece->wire + PZ_RECORD_SIZE, range->tag, piece->lo);
    pz_record_encode (piece->wire + 2 * PZ_RECORD_SIZE, range->tag, piece->hi);
    piece->state = S_WAITING;
    piece->handle = zlistx_add_end (self->waiting, piece);
    zhashx_insert (self->outstanding, &piece->id, piece);
    range->pieces_out++;
    self->stats.pieces++;
    lane->next = last + 1;
    bool left = false;
    for (size_t index = 0; index < range->lane_count && !left; index++)
        left = s_lane_skip (range, &range->lanes [index]);
    if (!left) {
        zlistx_delete (self->uncut, range->handle);
        range->handle = NULL;
    }
    return true;
}

//  Returns true if a piece may be pushed now.
bool
pz_ranges_ready (pz_ranges_t *self, bool draining)
{
    assert (self);
    if (draining)
        return false;
    if (zlistx_size (self->waiting) > 0)
        return true;
    return zlistx_size (self->uncut) > 0
        && (int64_t) self->stats.pieces < s_bound (self, zclock_mono ());
}

//  Pushes ready pieces while PUSH takes them.
size_t
pz_ranges_push (pz_ranges_t *self, void *handle, int64_t now_ms, bool draining)
{
    assert (self && handle);
    size_t pushed = 0;
    while (pz_ranges_ready (self, draining)) {
        if (zlistx_size (self->waiting) == 0 && !s_cut (self))
            break;
        pz_piece_t *piece = (pz_piece_t *) zlistx_first (self->waiting);
        if (zmq_send (handle, piece->wire, sizeof piece->wire, ZMQ_DONTWAIT) == -1)
            break;              //  no worker can take it now; POLLOUT tells when
        zlistx_delete (self->waiting, piece->handle);
        piece->state = S_LEASED;
        piece->deadline_ms = now_ms + self->lease_ms;
        piece->handle = zlistx_add_end (self->leased, piece);
        if (piece->pushes++ == 0)
            self->stats.dispatched++;
        pushed++;
    }
    return pushed;
}

//  Puts pieces whose lease ran out back first in line.
size_t
pz_ranges_expire (pz_ranges_t *self, int64_t now_ms)
{
    assert (self);
    size_t pieces = 0;
    pz_piece_t *piece;
    while ((piece = (pz_piece_t *) zlistx_first (self->leased))
       &&  piece->deadline_ms <= now_ms) {
        zlistx_delete (self->leased, piece->handle);
        piece->state = S_WAITING;
        piece->handle = zlistx_add_start (self->waiting, piece);
        pieces++;
        if (pz_log_verbose ())
            zsys_debug ("broker: lease of piece %" PRId64 " (%" PRId64 ":%" PRId64
                        ") ran out, pushing again", piece->id, piece->lo, piece->hi);
    }
    self->stats.redispatched += pieces;
    return pieces;
}

//  Returns the earliest lease end, or INT64_MAX.
int64_t
pz_ranges_wake_ms (pz_ranges_t *self)
{
    assert (self);
    pz_piece_t *oldest = (pz_piece_t *) zlistx_first (self->leased);
    return oldest ? oldest->deadline_ms : INT64_MAX;
}


//  --------------------------------------------------------------------------
//  Reports.

//  Returns true if id is a piece id this set issued.
bool
pz_ranges_issued (pz_ranges_t *self, int64_t id)
{
    assert (self);
    int64_t sequence = id - self->id_base - PZ_RANGES_ID_BIT;
    return sequence >= 1 && sequence < self->next_sequence;
}

//  Checks a piece report.
pz_error_t
pz_ranges_check (pz_ranges_t *self, const uint8_t *data, size_t size,
                 pz_piece_t **piece_p, bool *reported_p)
{
    assert (self && piece_p && reported_p);
    *piece_p = NULL;
    *reported_p = false;
    if (size == 0 || size % PZ_RECORD_SIZE != 0)
        return PZ_ERR_LENGTH;
    size_t records = size / PZ_RECORD_SIZE;
    for (size_t index = 0; index < records; index++)
        if (!pz_record_tag_known (pz_record_tag (data + index * PZ_RECORD_SIZE)))
            return PZ_ERR_UNKNOWN_TAG;
    for (size_t index = 0; index < records; index++)
        if (!strchr ("IRQP", pz_record_tag (data + index * PZ_RECORD_SIZE)))
            return PZ_ERR_TAG_REFUSED;
    if (pz_record_tag (data) != PZ_TAG_ID || records < 3)
        return PZ_ERR_ID_PLACEMENT;
    for (size_t index = 1; index < records; index++)
        if (pz_record_tag (data + index * PZ_RECORD_SIZE) == PZ_TAG_ID)
            return PZ_ERR_ID_PLACEMENT;
    int64_t id = pz_record_value (data);
    pz_piece_t *piece = (pz_piece_t *) zhashx_lookup (self->outstanding, &id);
    if (!piece) {
        if (pz_ranges_issued (self, id)) {
            self->stats.duplicates++;
            return PZ_OK;       //  issued and settled: a duplicate
        }
        //  One of our number dispatches' ids is no piece's: a mismatch.
        int64_t sequence = id - self->id_base;
        return sequence >= 1 && sequence < PZ_RANGES_ID_BIT ? PZ_ERR_MISMATCH
                                                            : PZ_ERR_UNKNOWN_ID;
    }
    //  The dispatch's three records, byte for byte, then the answer.
    if (memcmp (data + PZ_RECORD_SIZE, piece->wire + PZ_RECORD_SIZE, 2 * PZ_RECORD_SIZE) != 0)
        return PZ_ERR_MISMATCH;
    if (piece->range->tag == PZ_TAG_RANGE_COUNT) {
        //  The count, then one per block (a report of the count alone, the
        //  format before the blocks, does not match).
        size_t blocks = pz_ranges_blocks (piece->lo, piece->hi);
        if (records != 4 + blocks)
            return PZ_ERR_MISMATCH;
        for (size_t index = 3; index < records; index++) {
            const uint8_t *record = data + index * PZ_RECORD_SIZE;
            int64_t count = pz_record_value (record);
            int64_t first = index == 3 ? piece->lo
                          : piece->lo + (int64_t) (index - 4) * PZ_SIEVE_BLOCK;
            int64_t last = index == 3 || piece->hi - first < PZ_SIEVE_BLOCK - 1
                         ? piece->hi : first + PZ_SIEVE_BLOCK - 1;
            if (pz_record_tag (record) != PZ_TAG_RANGE_COUNT || count < 0
            ||  (uint64_t) count > s_width (first, last))
                return PZ_ERR_MISMATCH;
        }
    }
    else {
        int64_t previous = piece->lo - 1;   //  lo >= 0: no overflow
        for (size_t index = 3; index < records; index++) {
            const uint8_t *record = data + index * PZ_RECORD_SIZE;
            int64_t prime = pz_record_value (record);
            if (pz_record_tag (record) != PZ_TAG_PRIME || prime <= previous
            ||  prime > piece->hi)
                return PZ_ERR_MISMATCH;
            previous = prime;
        }
    }
    *piece_p = piece;
    *reported_p = piece->state == S_REPORTED;
    return PZ_OK;
}

//  Blocks of a Q report.
size_t
pz_ranges_blocks (int64_t lo, int64_t hi)
{
    assert (lo >= 0 && lo <= hi);
    return (size_t) ((s_width (lo, hi) - 1) / (uint64_t) PZ_SIEVE_BLOCK + 1);
}

//  Ends a leased piece's lease early: first in line again.
void
pz_ranges_release (pz_ranges_t *self, pz_piece_t *piece)
{
    assert (self && piece);
    if (piece->state != S_LEASED)
        return;
    zlistx_delete (self->leased, piece->handle);
    piece->state = S_WAITING;
    piece->handle = zlistx_add_start (self->waiting, piece);
    self->stats.redispatched++;
}

//  Counts a checked piece's report into its range.
bool
pz_ranges_report (pz_ranges_t *self, pz_piece_t *piece, int64_t count,
                  pz_range_done_t *done)
{
    assert (self && piece && done && piece->state != S_REPORTED);
    zlistx_delete (piece->state == S_LEASED ? self->leased : self->waiting, piece->handle);
    piece->handle = NULL;
    piece->state = S_REPORTED;
    piece->count = count;
    s_range_t *range = piece->range;
    range->done_numbers += s_width (piece->lo, piece->hi);
    range->count += count;
    if (range->done_numbers < s_width (range->lo, range->hi))
        return false;
    range->finished = piece->finishes = true;
    *done = (pz_range_done_t) { range->lo, range->hi, range->count };
    return true;
}

//  Takes back a report whose batch could not be written.
void
pz_ranges_undo (pz_ranges_t *self, pz_piece_t *piece, int64_t now_ms)
{
    assert (self && piece && piece->state == S_REPORTED);
    s_range_t *range = piece->range;
    range->done_numbers -= s_width (piece->lo, piece->hi);
    range->count -= piece->count;
    range->finished = piece->finishes = false;
    piece->state = S_LEASED;
    piece->deadline_ms = now_ms;    //  out again at the next expire
    piece->handle = zlistx_add_start (self->leased, piece);
}

//  Removes a reported piece whose batch is durable.
void
pz_ranges_settle (pz_ranges_t *self, pz_piece_t *piece)
{
    assert (self && piece && piece->state == S_REPORTED);
    s_range_t *range = piece->range;
    self->stats.settled++;
    self->stats.numbers += s_width (piece->lo, piece->hi);
    self->stats.pieces--;
    range->pieces_out--;
    bool finishes = piece->finishes;
    zhashx_delete (self->outstanding, &piece->id);
    if (finishes)
        s_range_drop (self, range);
}

//  A piece's range key, tag and bounds.
int64_t
pz_piece_key (pz_piece_t *piece)
{
    assert (piece);
    return piece->range->key;
}

char
pz_piece_tag (pz_piece_t *piece)
{
    assert (piece);
    return piece->range->tag;
}

int64_t
pz_piece_lo (pz_piece_t *piece)
{
    assert (piece);
    return piece->lo;
}

int64_t
pz_piece_hi (pz_piece_t *piece)
{
    assert (piece);
    return piece->hi;
}

//  Copies the counters into stats.
void
pz_ranges_stats (pz_ranges_t *self, pz_ranges_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}
