/*  =========================================================================
    idtable - a zhashx keyed by 64-bit ids held inside its items

    The broker looks up dispatches and source requests by int64 ids. The
    keys are pointers to ids stored in the items themselves, so the table
    neither copies nor frees keys, and a splitmix64 finaliser spreads the
    sequential ids over the buckets.
    =========================================================================
*/
#ifndef PZ_IDTABLE_H_INCLUDED
#define PZ_IDTABLE_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

//  Creates a table whose keys are const int64_t * into the items; items are
//  destroyed with destructor when deleted (NULL: not at all). Caller owns
//  return value (zhashx_destroy).
zhashx_t *
    pz_idtable_new (zhashx_destructor_fn *destructor);

//  Returns a well-mixed hash of a 64-bit value (splitmix64's finaliser).
uint64_t
    pz_idtable_mix (uint64_t bits);

#endif
