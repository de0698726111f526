/*  =========================================================================
    keygen - CURVE certificates for PlayØMQ, in czmq's format

    pz_keygen_write makes a new key pair and writes NAME.cert (the public
    key: copy it to the broker's allow directory, or to the clients for the
    broker's own) and NAME.cert_secret (both keys: it stays with its
    owner). The role, if any, goes into the certificate's metadata as
    "role", where the broker's ZAP handler (broker/zap.h) reads it.
    =========================================================================
*/
#ifndef PZ_KEYGEN_H_INCLUDED
#define PZ_KEYGEN_H_INCLUDED

#include <stdbool.h>

//  Returns true if name can name a certificate: 1 to 200 bytes of letters,
//  digits, '-', '_' and '.', not starting with '.'.
bool
    pz_keygen_name_valid (const char *name);

//  Returns true if role is NULL (no role: the broker's own certificate) or
//  one of "source", "worker", "sink".
bool
    pz_keygen_role_valid (const char *role);

//  Writes DIR/NAME.cert and DIR/NAME.cert_secret for a new key pair, with
//  role (if not NULL) in the metadata; the secret file is readable by its
//  owner only. Refuses to replace either file unless force. Returns 0, or
//  -1 after logging one line naming the file.
int
    pz_keygen_write (const char *dir, const char *name, const char *role, bool force);

#endif
