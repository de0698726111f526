/*  =========================================================================
    recent - the acks of the last source request ids, for safe retries
    =========================================================================
*/
#include "recent.h"
#include "idtable.h"

#include <assert.h>

typedef struct {
    int64_t id;                 //  request id, 0 for an empty slot; the key
    int64_t acked;              //  count sent in its A record
} s_entry_t;

struct _pz_recent_t {
    s_entry_t *ring;            //  size entries, filled in turn
    size_t size;                //  entries in the ring
    size_t next;                //  ring slot the next id goes into
    zhashx_t *index;            //  request id -> its entry in the ring
};

//  Creates a memory of size ids. Caller owns return value.
pz_recent_t *
pz_recent_new (size_t size)
{
    assert (size > 0);
    pz_recent_t *self = (pz_recent_t *) zmalloc (sizeof (pz_recent_t));
    assert (self);
    self->ring = (s_entry_t *) calloc (size, sizeof (s_entry_t));
    assert (self->ring);
    self->size = size;
    self->index = pz_idtable_new (NULL);
    return self;
}

//  Destroys the memory. NULL-safe.
void
pz_recent_destroy (pz_recent_t **self_p)
{
    assert (self_p);
    pz_recent_t *self = *self_p;
    if (self) {
        zhashx_destroy (&self->index);
        free (self->ring);
        free (self);
        *self_p = NULL;
    }
}

//  Returns true and sets *acked if id is remembered.
bool
pz_recent_lookup (pz_recent_t *self, int64_t id, int64_t *acked)
{
    assert (self && acked);
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->index, &id);
    if (entry)
        *acked = entry->acked;
    return entry != NULL;
}

//  Remembers id with its ack, evicting the oldest.
void
pz_recent_store (pz_recent_t *self, int64_t id, int64_t acked)
{
    assert (self && id != 0);
    s_entry_t *known = (s_entry_t *) zhashx_lookup (self->index, &id);
    if (known) {                //  stored again: one entry per id
        known->acked = acked;
        return;
    }
    s_entry_t *slot = &self->ring [self->next];
    if (slot->id != 0)
        zhashx_delete (self->index, &slot->id);
    slot->id = id;
    slot->acked = acked;
    zhashx_insert (self->index, &slot->id, slot);
    self->next = (self->next + 1) % self->size;
}
