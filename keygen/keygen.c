/*  =========================================================================
    keygen - CURVE certificates for PlayØMQ, in czmq's format

    zcert does the work: zcert_new makes the key pair, zcert_save writes the
    two files. The files are written under a temporary name and renamed, so
    that a broker reloading its allow directory never reads half of one.
    =========================================================================
*/
#include "keygen.h"

#include <assert.h>
#include <czmq.h>
#include <string.h>
#include <sys/stat.h>

//  Returns true for a usable certificate name.
bool
pz_keygen_name_valid (const char *name)
{
    if (!name || !*name || name [0] == '.' || strlen (name) > 200)
        return false;
    for (const char *scan = name; *scan; scan++)
        if (!((*scan >= 'a' && *scan <= 'z') || (*scan >= 'A' && *scan <= 'Z')
        ||    (*scan >= '0' && *scan <= '9') || *scan == '-' || *scan == '_'
        ||    *scan == '.'))
            return false;
    return true;
}

//  Returns true for no role or a known one.
bool
pz_keygen_role_valid (const char *role)
{
    return !role || streq (role, "source") || streq (role, "worker") || streq (role, "sink");
}

//  Writes the two files. 0, or -1 (logged).
int
pz_keygen_write (const char *dir, const char *name, const char *role, bool force)
{
    assert (dir && pz_keygen_name_valid (name) && pz_keygen_role_valid (role));
    char *public_path = zsys_sprintf ("%s/%s.cert", dir, name);
    char *secret_path = zsys_sprintf ("%s/%s.cert_secret", dir, name);
    char *temp_path = zsys_sprintf ("%s/.%s.cert.tmp", dir, name);
    char *temp_secret = zsys_sprintf ("%s/.%s.cert.tmp_secret", dir, name);
    int rc = -1;
    if (!force && (zsys_file_exists (public_path) || zsys_file_exists (secret_path)))
        zsys_error ("playzmq-keygen: %s exists: not replacing it without --force",
                    zsys_file_exists (public_path) ? public_path : secret_path);
    else {
        zcert_t *cert = zcert_new ();
        assert (cert);
        zcert_set_meta (cert, "name", "%s", name);
        if (role)
            zcert_set_meta (cert, "role", "%s", role);
        //  The secret file is private from its first byte.
        mode_t old_mask = umask (077);
        int saved = zcert_save (cert, temp_path);
        umask (old_mask);
        //  The public one may be read by anyone.
        if (saved == 0)
            chmod (temp_path, 0644);
        if (saved == 0 && rename (temp_secret, secret_path) == 0
        &&  rename (temp_path, public_path) == 0)
            rc = 0;
        else {
            zsys_error ("playzmq-keygen: cannot write %s: %s", secret_path, strerror (errno));
            remove (temp_path);
            remove (temp_secret);
        }
        zcert_destroy (&cert);
    }
    zstr_free (&public_path);
    zstr_free (&secret_path);
    zstr_free (&temp_path);
    zstr_free (&temp_secret);
    return rc;
}
