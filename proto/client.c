/*  =========================================================================
    client - requests to a REP endpoint, several outstanding, on one DEALER
             socket, with Lazy Pirate retries

    Each send of a request gets a new tag: the slot's index in the low 10
    bits, a count of sends above. A reply is matched by its tag, so a reply
    to an earlier send (one the client has given up on) can never be taken
    for the answer to a later request in the same slot.
    =========================================================================
*/
#include "client.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

#define S_TAG_SIZE      8           //  bytes of the tag frame
#define S_SLOT_BITS     10          //  tag bits holding the slot index
#define S_UNSENT_MS     1           //  a send the socket had no room for
                                    //  is tried again this much later
_Static_assert ((1 << S_SLOT_BITS) >= PZ_CLIENT_SLOTS_MAX,
                "a tag must be able to name every slot");

//  One request: its bytes, whether it is outstanding, and when it is due.
typedef struct {
    uint8_t *data;              //  the request body, request_max bytes
    size_t size;                //  bytes of data in use
    bool busy;                  //  sent, reply not yet received
    uint64_t tag;               //  tag of its latest send
    int64_t attempts;           //  sends of this request so far
    int64_t deadline_ms;        //  zclock_mono time its reply is due
    int64_t parked_ms;          //  if not 0: send again at this time (E 9)
    int64_t unsent_ms;          //  if not 0: the socket had no room for its
                                //  send; try again at this time
} s_slot_t;

struct _pz_client_t {
    char *name;                 //  log prefix ("source", "worker")
    char *endpoint;             //  the REP endpoint we connect to
    pz_sockopts_t opts;         //  options for every socket we open
    int64_t timeout_ms;         //  a reply is due this long after a send
    int64_t retries;            //  resends of one request before giving up
    zsock_t *dealer;            //  the connection; replaced after a timeout
    s_slot_t *slots;            //  slot_count slots
    int slot_count;             //  1 to PZ_CLIENT_SLOTS_MAX
    size_t request_max;         //  bytes of each slot's buffer
    int busy;                   //  slots with a request outstanding
    int next_free;              //  where the search for a free slot starts
    int64_t due_ms;             //  no slot is due before this (a lower bound):
                                //  spares a scan of every slot per turn
    uint64_t sends;             //  sends so far, for tags
    uint64_t resends;           //  sends after a timeout
    uint64_t strays;            //  replies dropped: late, unknown, malformed
    char *routing_id;           //  the DEALER's ZMQ_ROUTING_ID, or NULL
    int64_t wait_ms;            //  before the first reply, keep trying this long
    int64_t created_ms;         //  zclock_mono at creation
    bool answered;              //  a reply has come: the broker is there
};


//  Opens the DEALER socket. Returns 0, or -1 after logging.
static int
s_connect (pz_client_t *self)
{
    char role [64];
    snprintf (role, sizeof role, "%s DEALER", self->name);
    pz_sockopts_t opts = self->opts;
    opts.routing_id = self->routing_id;
    self->dealer = pz_sock_open (ZMQ_DEALER, role, self->endpoint, false, &opts);
    return self->dealer ? 0 : -1;
}

//  Creates a client; NULL if its socket cannot be opened.
pz_client_t *
pz_client_new (const char *name, const char *endpoint, int slots,
               int64_t timeout_ms, int64_t retries, const pz_sockopts_t *opts)
{
    assert (name && endpoint && opts);
    assert (slots >= 1 && slots <= PZ_CLIENT_SLOTS_MAX);
    assert (timeout_ms > 0 && retries >= 0);
    pz_client_t *self = (pz_client_t *) zmalloc (sizeof (pz_client_t));
    assert (self);
    self->name = strdup (name);
    self->endpoint = strdup (endpoint);
    self->opts = *opts;
    self->timeout_ms = timeout_ms;
    self->retries = retries;
    self->slot_count = slots;
    self->due_ms = INT64_MAX;
    self->created_ms = zclock_mono ();
    self->slots = (s_slot_t *) calloc ((size_t) slots, sizeof (s_slot_t));
    assert (self->name && self->endpoint && self->slots);
    self->request_max = PZ_MESSAGE_MAX;
    for (int index = 0; index < slots; index++) {
        self->slots [index].data = (uint8_t *) malloc (self->request_max);
        assert (self->slots [index].data);
    }
    if (s_connect (self) != 0)
        pz_client_destroy (&self);
    return self;
}

//  Destroys the client in reverse order of creation. NULL-safe.
void
pz_client_destroy (pz_client_t **self_p)
{
    assert (self_p);
    pz_client_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->dealer);
    zstr_free (&self->routing_id);
    for (int index = 0; index < self->slot_count; index++)
        free (self->slots [index].data);
    free (self->slots);
    zstr_free (&self->endpoint);
    zstr_free (&self->name);
    free (self);
    *self_p = NULL;
}

//  Returns a free slot's index, or -1.
int
pz_client_free_slot (pz_client_t *self)
{
    assert (self);
    if (self->busy == self->slot_count)
        return -1;
    //  Slots are taken in turn and replies come mostly in order, so the
    //  search from the slot after the last one taken ends at once.
    for (int step = 0; step < self->slot_count; step++) {
        int index = (self->next_free + step) % self->slot_count;
        if (!self->slots [index].busy)
            return index;
    }
    assert (false);             //  busy counts the busy slots
    return -1;
}

//  Makes every slot's buffer request_max bytes; no request outstanding.
void
pz_client_set_request_max (pz_client_t *self, size_t request_max)
{
    assert (self && self->busy == 0);
    assert (request_max >= PZ_RECORD_SIZE && request_max <= PZ_WIRE_MAX);
    for (int index = 0; index < self->slot_count; index++) {
        free (self->slots [index].data);
        self->slots [index].data = (uint8_t *) malloc (request_max);
        assert (self->slots [index].data);
    }
    self->request_max = request_max;
}

//  Returns slot's request buffer, request_max bytes.
uint8_t *
pz_client_request (pz_client_t *self, int slot)
{
    assert (self && slot >= 0 && slot < self->slot_count);
    return self->slots [slot].data;
}

//  Notes when a busy slot next needs pz_client_expire: its parked send,
//  its send again after no room, or else its reply's deadline.
static void
s_due (pz_client_t *self, const s_slot_t *slot)
{
    int64_t due_ms = slot->parked_ms ? slot->parked_ms
                   : slot->unsent_ms ? slot->unsent_ms : slot->deadline_ms;
    if (due_ms < self->due_ms)
        self->due_ms = due_ms;
}

//  Writes a slot's request, [tag][empty][body], to the socket without
//  waiting. Returns false if the socket had no room for it.
static bool
s_write (pz_client_t *self, s_slot_t *slot)
{
    uint8_t tag [S_TAG_SIZE];
    memcpy (tag, &slot->tag, sizeof tag);   //  comes back as it went
    void *handle = zsock_resolve (self->dealer);
    //  Once the first frame is taken, libzmq takes the rest of the message.
    if (zmq_send (handle, tag, sizeof tag, ZMQ_SNDMORE | ZMQ_DONTWAIT) != (int) sizeof tag)
        return false;
    zmq_send (handle, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (handle, slot->data, slot->size, ZMQ_DONTWAIT);
    return true;
}

//  Sends a slot's request under a new tag and sets its deadline. A send
//  the socket has no room for now (its queue full, no connection yet) is
//  tried again S_UNSENT_MS later, until the deadline: a window larger than
//  the socket's queue then waits a moment, not a whole timeout.
static void
s_transmit (pz_client_t *self, int index, int64_t now_ms)
{
    s_slot_t *slot = &self->slots [index];
    slot->tag = (++self->sends << S_SLOT_BITS) | (uint64_t) index;
    slot->attempts++;
    slot->deadline_ms = now_ms + self->timeout_ms;
    slot->unsent_ms = s_write (self, slot) ? 0 : now_ms + S_UNSENT_MS;
    s_due (self, slot);
}

//  Sends a slot's request; the slot is busy until its reply.
void
pz_client_send (pz_client_t *self, int slot, size_t size, int64_t now_ms)
{
    assert (self && slot >= 0 && slot < self->slot_count);
    assert (!self->slots [slot].busy);
    assert (size > 0 && size <= self->request_max);
    self->slots [slot].size = size;
    self->slots [slot].attempts = 0;
    self->slots [slot].busy = true;
    self->busy++;
    self->next_free = (slot + 1) % self->slot_count;
    s_transmit (self, slot, now_ms);
}

//  Returns true if the frame just read has more frames after it.
static bool
s_more (void *handle)
{
    int more = 0;
    size_t more_size = sizeof more;
    zmq_getsockopt (handle, ZMQ_RCVMORE, &more, &more_size);
    return more != 0;
}

//  Reads one reply, if any: returns the slot it answers, or -1.
int
pz_client_receive (pz_client_t *self, uint8_t *reply, int *reply_size,
                   int64_t timeout_ms)
{
    assert (self && reply && reply_size);
    void *handle = zsock_resolve (self->dealer);
    //  A blocking receive with a timeout costs one system call where a
    //  zmq_poll on the socket costs three or four.
    int timeout = timeout_ms > INT32_MAX ? INT32_MAX : (int) timeout_ms;
    zmq_setsockopt (handle, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (true) {
        //  [tag][empty][body]: anything else is not from a REP socket.
        uint8_t tag_bytes [S_TAG_SIZE];
        int size = zmq_recv (handle, tag_bytes, sizeof tag_bytes,
                             timeout > 0 ? 0 : ZMQ_DONTWAIT);
        if (size == -1)
            return -1;
        bool well_formed = size == S_TAG_SIZE && s_more (handle);
        if (well_formed) {
            uint8_t delimiter [1];
            well_formed = zmq_recv (handle, delimiter, sizeof delimiter, 0) == 0
                       && s_more (handle);
        }
        int body_size = -1;
        if (well_formed) {
            body_size = zmq_recv (handle, reply, PZ_RECORD_SIZE, 0);
            well_formed = body_size >= 0 && !s_more (handle);
        }
        if (!well_formed) {
            pz_sock_drain_frames (handle);
            self->strays++;
            zsys_warning ("%s: dropped a reply from %s that is not [tag][empty][body]",
                          self->name, self->endpoint);
            continue;
        }
        uint64_t tag;
        memcpy (&tag, tag_bytes, sizeof tag);
        size_t index = (size_t) (tag & ((1u << S_SLOT_BITS) - 1));
        //  A parked slot (E 9, to be sent again later) has no send
        //  outstanding: a second reply to its last send is a stray too.
        if (index >= (size_t) self->slot_count || !self->slots [index].busy
        ||  self->slots [index].parked_ms || self->slots [index].tag != tag) {
            self->strays++;     //  an answer to a send we gave up on
            continue;
        }
        self->slots [index].busy = false;
        self->busy--;
        self->answered = true;
        *reply_size = body_size > PZ_RECORD_SIZE ? -1 : body_size;
        return (int) index;
    }
}

//  Replaces the socket and resends everything if a reply is overdue.
int
pz_client_expire (pz_client_t *self, int64_t now_ms)
{
    assert (self);
    if (now_ms < self->due_ms)
        return 0;               //  nothing is due yet: no need to look
    //  Requests parked after an E 9 go again when their time comes, on the
    //  same connection: it works, the broker just could not store them.
    //  Sends the socket had no room for are tried again.
    self->due_ms = INT64_MAX;
    s_slot_t *overdue = NULL;
    for (int index = 0; index < self->slot_count; index++) {
        s_slot_t *slot = &self->slots [index];
        if (!slot->busy)
            continue;
        if (slot->parked_ms && slot->parked_ms <= now_ms) {
            slot->parked_ms = 0;
            slot->attempts = 0;
            s_transmit (self, index, now_ms);
        }
        else
        if (slot->unsent_ms && slot->unsent_ms <= now_ms && slot->deadline_ms > now_ms)
            slot->unsent_ms = s_write (self, slot) ? 0 : now_ms + S_UNSENT_MS;
        if (!slot->parked_ms && slot->deadline_ms <= now_ms && !overdue)
            overdue = slot;
        s_due (self, slot);
    }
    if (!overdue)
        return 0;
    //  Until the broker first answers, it may not be up yet (a container
    //  started before it): keep trying for wait_ms, whatever the retries.
    bool waiting = !self->answered && now_ms < self->created_ms + self->wait_ms;
    if (overdue->attempts > self->retries && !waiting)
        return -1;
    if (waiting)
        zsys_info ("%s: waiting for the broker at %s (no answer yet; giving up "
                   "in %" PRId64 " s)", self->name, self->endpoint,
                   (self->created_ms + self->wait_ms - now_ms + 999) / 1000);
    else
        zsys_warning ("%s: no ack from %s within %" PRId64 " ms (attempt %" PRId64
                      " of %" PRId64 "); resending %d request%s on a new connection",
                      self->name, self->endpoint, self->timeout_ms, overdue->attempts,
                      self->retries + 1, self->busy, self->busy == 1 ? "" : "s");
    //  A DEALER is not stuck like a REQ, but the connection may be: half
    //  open, or to a broker that restarted. A new socket is a new one, and
    //  replies still on their way on the old one are dropped with it.
    zsock_destroy (&self->dealer);
    if (s_connect (self) != 0)
        return -1;
    for (int index = 0; index < self->slot_count; index++)
        if (self->slots [index].busy && !self->slots [index].parked_ms) {
            self->resends++;
            if (waiting)
                self->slots [index].attempts = 0;
            s_transmit (self, index, now_ms);
        }
    return 0;
}

//  Names the connection: reconnects with routing_id as ZMQ_ROUTING_ID.
int
pz_client_set_routing_id (pz_client_t *self, const char *routing_id)
{
    assert (self && routing_id && *routing_id && strlen (routing_id) <= 255);
    assert (self->busy == 0);
    zstr_free (&self->routing_id);
    self->routing_id = strdup (routing_id);
    zsock_destroy (&self->dealer);
    return s_connect (self);
}

//  Keeps trying for wait_ms before the first reply.
void
pz_client_set_wait (pz_client_t *self, int64_t wait_ms)
{
    assert (self && wait_ms >= 0);
    self->wait_ms = wait_ms;
}

//  Takes back a slot whose reply said "later" and sends it again at
//  now_ms + delay_ms.
void
pz_client_send_later (pz_client_t *self, int slot, int64_t now_ms, int64_t delay_ms)
{
    assert (self && slot >= 0 && slot < self->slot_count);
    assert (!self->slots [slot].busy && self->slots [slot].size > 0);
    self->slots [slot].busy = true;
    self->slots [slot].parked_ms = now_ms + (delay_ms > 0 ? delay_ms : 1);
    self->busy++;
    s_due (self, &self->slots [slot]);
}

//  Returns when pz_client_expire next has something to do: the earliest
//  deadline, or time to send again, of an outstanding request (or earlier,
//  never later), or INT64_MAX.
int64_t
pz_client_deadline (pz_client_t *self)
{
    assert (self);
    return self->busy ? self->due_ms : INT64_MAX;
}

//  Returns the number of requests outstanding.
int
pz_client_busy (pz_client_t *self)
{
    assert (self);
    return self->busy;
}

//  Returns the DEALER's handle, for zmq_poll.
void *
pz_client_handle (pz_client_t *self)
{
    assert (self);
    return zsock_resolve (self->dealer);
}

//  Returns the number of resends after timeouts.
uint64_t
pz_client_resends (pz_client_t *self)
{
    assert (self);
    return self->resends;
}

//  Returns the number of replies dropped.
uint64_t
pz_client_strays (pz_client_t *self)
{
    assert (self);
    return self->strays;
}
