/*  =========================================================================
    zap - who may connect to the broker: the CURVE allow list and the ZAP
          handler (RFC 27) that enforces it, one endpoint at a time

    With certificates, every broker socket is a CURVE server with a ZAP
    domain of its own ("source", "publish", "dispatch", "results",
    "history"). libzmq asks the handler bound at inproc://zeromq.zap.01
    about every handshake; this class answers: 200 if the client's public
    key is in the allow list and its role fits the endpoint, 400 otherwise,
    and logs every refusal with the peer's address and key (Z85). The allow
    list is the *.cert files (czmq's certificate format, public keys) of a
    directory, each with its role in the metadata ("role = worker"); it is
    read at start and again on "RELOAD" (the broker's SIGHUP). Plaintext
    peers fail the greeting before ZAP is asked: the handler learns of them
    from the monitors pz_sock_open attaches to CURVE server sockets
    (PZ_SOCK_MONITOR_PREFIX) and logs them too.

    One handler per ZeroMQ context, hence one CURVE broker per process.
    =========================================================================
*/
#ifndef PZ_ZAP_H_INCLUDED
#define PZ_ZAP_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

//  Roles a certificate can hold, as bits so an endpoint can allow several.
#define PZ_ROLE_SOURCE      1
#define PZ_ROLE_WORKER      2
#define PZ_ROLE_SINK        4

typedef struct _pz_zap_t pz_zap_t;

//  Returns the role bit of "source", "worker" or "sink", or 0 for anything
//  else (NULL included).
int
    pz_zap_role_parse (const char *name);

//  Returns the name of one role bit, or "none".
const char *
    pz_zap_role_name (int role);

//  Returns the roles allowed on a ZAP domain: source: sources; publish and
//  history: sinks and sources (playzmq-top reads the history endpoint with
//  a sink's key; `playzmq-source --count-only` reads both for the counts
//  of its ranges); dispatch and results: workers. 0 for an unknown domain.
int
    pz_zap_domain_roles (const char *domain);

//  Creates an allow list and reads allow_dir into it (pz_zap_load). Returns
//  NULL, after logging why, if the directory cannot be read. Caller owns
//  return value.
pz_zap_t *
    pz_zap_new (const char *allow_dir);

//  Destroys the allow list. NULL-safe; nulls *self_p.
void
    pz_zap_destroy (pz_zap_t **self_p);

//  Reads the directory again, replacing the list: every NAME.cert with a
//  valid public key and a known role; any other file ending in .cert is
//  logged and skipped (files not ending in .cert, such as NAME.cert_secret,
//  are ignored). If removed_roles is not NULL, sets it to the roles of the
//  keys that were in the list and are no more (or whose role changed).
//  Returns the number of keys loaded, or -1 (list unchanged, logged) if
//  the directory cannot be read.
int
    pz_zap_load (pz_zap_t *self, int *removed_roles);

//  Returns the number of keys in the list.
size_t
    pz_zap_size (pz_zap_t *self);

//  Decides one handshake: domain and mechanism as in the ZAP request, key
//  the client's 32-byte public key (CURVE) or NULL. Returns 200 or 400;
//  *reason (static text) says why a peer is refused. Never trusts its
//  inputs: any size, any text.
int
    pz_zap_check (pz_zap_t *self, const char *domain, const char *mechanism,
                  const uint8_t *key, size_t key_size, const char **reason);

//  zactor body: the ZAP handler. args is the allow directory (const char *,
//  copied). Signals 0 once the list is read and inproc://zeromq.zap.01 is
//  bound, 1 if either failed (then answers commands as a handler with no
//  list until $TERM). Commands: "SIZE" (reply "i": keys in the list, -1
//  if the actor failed), "RELOAD" (reply "ii": keys loaded or -1, roles
//  removed), "STATS" (reply "ii": handshakes allowed, refused), "BAN <Z85
//  key> <ms>" (refuse that key for ms, whatever the list says; reply "i":
//  0, or -1 if malformed), "PEERS <domain>" (reply "i": connections open
//  on that endpoint, handshake done or not, as its monitor counts them; -1
//  for an unknown domain), "$TERM".
void
    pz_zap_actor (zsock_t *pipe, void *args);

#endif
