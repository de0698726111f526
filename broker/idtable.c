/*  =========================================================================
    idtable - a zhashx keyed by 64-bit ids held inside its items
    =========================================================================
*/
#include "idtable.h"

#include <assert.h>

//  Returns a well-mixed hash of bits.
uint64_t
pz_idtable_mix (uint64_t bits)
{
    bits = (bits ^ (bits >> 30)) * 0xbf58476d1ce4e5b9ULL;
    bits = (bits ^ (bits >> 27)) * 0x94d049bb133111ebULL;
    return bits ^ (bits >> 31);
}

static size_t
s_id_hash (const void *key)
{
    return (size_t) pz_idtable_mix ((uint64_t) *(const int64_t *) key);
}

static int
s_id_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left;
    int64_t b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

//  Creates a table keyed by ids inside its items. Caller owns return value.
zhashx_t *
pz_idtable_new (zhashx_destructor_fn *destructor)
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
