/*  =========================================================================
    recent - the acks of the last source request ids, for safe retries

    A source that gets no ack in time sends the same request again, with the
    same I record (Lazy Pirate). The broker answers a remembered id with the
    ack it gave the first time instead of accepting the numbers twice. A
    ring of fixed size evicts the oldest id first; a hash finds an id.
    =========================================================================
*/
#ifndef PZ_RECENT_H_INCLUDED
#define PZ_RECENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _pz_recent_t pz_recent_t;

//  Creates a memory of the last `size` request ids (size > 0). Caller owns
//  return value.
pz_recent_t *
    pz_recent_new (size_t size);

//  Destroys the memory. NULL-safe; nulls *self_p.
void
    pz_recent_destroy (pz_recent_t **self_p);

//  Returns true and sets *acked if id is remembered.
bool
    pz_recent_lookup (pz_recent_t *self, int64_t id, int64_t *acked);

//  Remembers that request id (non-zero) was acknowledged with acked,
//  forgetting the oldest id if the memory is full.
void
    pz_recent_store (pz_recent_t *self, int64_t id, int64_t acked);

#endif
