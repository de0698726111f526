/*  =========================================================================
    leases - accepted numbers on their way through the workers

    Accepted numbers wait in dispatches: I <dispatch-id> + up to 4096 N
    records, from one or more source messages. A new source message joins
    the last dispatch not yet pushed (the open draft) if it has room, and
    starts a new one otherwise; the open draft waits up to coalesce_ms for
    company before it may go. A pushed dispatch is leased for lease_ms; when
    the lease runs out it goes back to the front of the queue, same id, same
    numbers, until the first valid report for it arrives. A report carries
    one verdict bit per number (V records): the values are the dispatch's.

    Each dispatch remembers the sequence numbers of the N publications its
    numbers came in (its covers), so that the journal can record which
    accepted messages a verdict completes.
    =========================================================================
*/
#ifndef PZ_LEASES_H_INCLUDED
#define PZ_LEASES_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "record.h"

typedef struct _pz_leases_t pz_leases_t;
typedef struct _pz_lease_t pz_lease_t;

typedef struct {
    uint64_t dispatched;        //  numbers pushed the first time
    uint64_t dispatches;        //  messages they went in
    uint64_t redispatched;      //  numbers pushed again after their lease ran out
    uint64_t numbers;           //  numbers held (accepted, not reported)
    uint64_t messages;          //  source messages held
} pz_leases_stats_t;

//  Creates an empty set. Dispatch ids are id_base + 1, + 2, ...; a pushed
//  dispatch is pushed again after lease_ms; the open draft waits up to
//  coalesce_ms for more numbers. Caller owns return value.
pz_leases_t *
    pz_leases_new (int64_t id_base, int64_t lease_ms, int64_t coalesce_ms);

//  Destroys the set and every dispatch in it. NULL-safe; nulls *self_p.
void
    pz_leases_destroy (pz_leases_t **self_p);

//  Adds count N records at records (1 to PZ_RECORDS_MAX), accepted as the
//  publication numbered seq, to the open draft or a new dispatch.
void
    pz_leases_add (pz_leases_t *self, const uint8_t *records, size_t count,
                   int64_t seq, int64_t now_ms);

//  Returns true if the first waiting dispatch may be pushed now: anything
//  but the open draft may; the draft once full, once it waited coalesce_ms,
//  or when draining.
bool
    pz_leases_ready (pz_leases_t *self, int64_t now_ms, bool draining);

//  Pushes ready dispatches on the PUSH socket handle while it takes them
//  without blocking; each pushed one is leased. Returns how many went.
size_t
    pz_leases_push (pz_leases_t *self, void *handle, int64_t now_ms, bool draining);

//  Moves dispatches whose lease ran out to the front of the queue.
//  Returns how many numbers they hold.
size_t
    pz_leases_expire (pz_leases_t *self, int64_t now_ms);

//  Ends the lease of a pushed dispatch now (its worker is cut off: the
//  audit found a wrong verdict in its report) and puts the dispatch first
//  in line, same id, to go to another worker. A waiting one stays as is.
void
    pz_leases_release (pz_leases_t *self, pz_lease_t *lease);

//  Returns when something is due next: the earliest lease end, or the
//  time the open draft may go if it waits first in line; INT64_MAX if
//  nothing is.
int64_t
    pz_leases_wake_ms (pz_leases_t *self, int64_t now_ms, bool draining);

//  Checks a report of numbers (I <dispatch-id> + V verdict records) against
//  its dispatch. Returns PZ_OK with *lease_p the dispatch, or NULL if that
//  dispatch was completed before (a duplicate), and *count_p its numbers;
//  or the error code to answer with (E 15 for a report in the old format).
pz_error_t
    pz_leases_check (pz_leases_t *self, const uint8_t *data, size_t size,
                     pz_lease_t **lease_p, size_t *count_p);

//  Removes a reported dispatch and frees it.
void
    pz_leases_complete (pz_leases_t *self, pz_lease_t *lease);

//  Returns the sequence numbers of the N publications a dispatch holds
//  the numbers of, and their count in *count. The dispatch owns them.
const int64_t *
    pz_lease_covers (pz_lease_t *lease, size_t *count);

//  Returns the number of N records in a dispatch.
size_t
    pz_lease_numbers (pz_lease_t *lease);

//  Returns the dispatch's N records (pz_lease_numbers of them, in dispatch
//  order, after its I record). The dispatch owns them.
const uint8_t *
    pz_lease_records (pz_lease_t *lease);

//  Copies the counters into stats.
void
    pz_leases_stats (pz_leases_t *self, pz_leases_stats_t *stats);

#endif
