/*  =========================================================================
    bans - who is cut off, and until when

    When the audit finds a wrong verdict in a report, its sender is cut off
    for --ban-s seconds: by its CURVE key when the broker has certificates
    (the ZAP handler then refuses its handshakes too), by its worker name
    otherwise (the name its DEALER gave as routing id: one connection's
    worth, since a plaintext peer can call itself anything). This is the
    table both keep: a name ("key:<Z85>" or "worker:<name>") and the
    zclock_mono time its ban ends. Expired bans are dropped as they are met.
    =========================================================================
*/
#ifndef PZ_BANS_H_INCLUDED
#define PZ_BANS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _pz_bans_t pz_bans_t;

//  Creates an empty table. Caller owns return value.
pz_bans_t *
    pz_bans_new (void);

//  Destroys the table. NULL-safe; nulls *self_p.
void
    pz_bans_destroy (pz_bans_t **self_p);

//  Bans who (any text, copied) until until_ms; a later end extends a ban
//  in force, an earlier one leaves it.
void
    pz_bans_add (pz_bans_t *self, const char *who, int64_t until_ms);

//  Returns true if who is banned at now_ms (forgetting its ban if it ran
//  out). who NULL is never banned.
bool
    pz_bans_active (pz_bans_t *self, const char *who, int64_t now_ms);

//  Returns when who's ban ends, or 0 if it has none in force at now_ms.
int64_t
    pz_bans_until (pz_bans_t *self, const char *who, int64_t now_ms);

//  Drops every ban that ran out by now_ms. Returns how many are left.
size_t
    pz_bans_expire (pz_bans_t *self, int64_t now_ms);

#endif
