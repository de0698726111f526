/*  =========================================================================
    bans - who is cut off, and until when

    A hash table of names to end times; small (one entry per worker caught)
    and looked up once per report, so zhashx is plenty.
    =========================================================================
*/
#include "bans.h"

#include <assert.h>
#include <czmq.h>

struct _pz_bans_t {
    zhashx_t *until;            //  name -> int64_t * end time (zclock_mono ms), owned
};

//  Frees one end time; zhashx destructor.
static void
s_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  Creates an empty table.
pz_bans_t *
pz_bans_new (void)
{
    pz_bans_t *self = (pz_bans_t *) zmalloc (sizeof (pz_bans_t));
    assert (self);
    self->until = zhashx_new ();
    assert (self->until);
    zhashx_set_destructor (self->until, s_free);
    return self;
}

//  Destroys the table.
void
pz_bans_destroy (pz_bans_t **self_p)
{
    assert (self_p);
    pz_bans_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->until);
    free (self);
    *self_p = NULL;
}

//  Bans who until until_ms.
void
pz_bans_add (pz_bans_t *self, const char *who, int64_t until_ms)
{
    assert (self && who);
    int64_t *until = (int64_t *) zhashx_lookup (self->until, who);
    if (until) {
        if (until_ms > *until)
            *until = until_ms;
        return;
    }
    until = (int64_t *) malloc (sizeof (int64_t));
    assert (until);
    *until = until_ms;
    zhashx_insert (self->until, who, until);
}

//  Returns when who's ban ends, or 0.
int64_t
pz_bans_until (pz_bans_t *self, const char *who, int64_t now_ms)
{
    assert (self);
    if (!who)
        return 0;
    int64_t *until = (int64_t *) zhashx_lookup (self->until, who);
    if (!until)
        return 0;
    if (*until <= now_ms) {
        zhashx_delete (self->until, who);
        return 0;
    }
    return *until;
}

//  Returns true if who is banned now.
bool
pz_bans_active (pz_bans_t *self, const char *who, int64_t now_ms)
{
    return pz_bans_until (self, who, now_ms) != 0;
}

//  Drops expired bans.
size_t
pz_bans_expire (pz_bans_t *self, int64_t now_ms)
{
    assert (self);
    zlistx_t *names = zhashx_keys (self->until);
    for (const char *name = (const char *) zlistx_first (names); name;
         name = (const char *) zlistx_next (names))
        pz_bans_until (self, name, now_ms);
    zlistx_destroy (&names);
    return zhashx_size (self->until);
}
