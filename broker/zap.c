/*  =========================================================================
    zap - who may connect to the broker: the CURVE allow list and the ZAP
          handler (RFC 27) that enforces it, one endpoint at a time

    The list is a hash table from the Z85 public key to the role bit and the
    certificate's file name. The actor owns one, the ZAP ROUTER and one PAIR
    per broker endpoint reading its handshake monitor: a plaintext peer's
    address is taken (getpeername) when its connection is accepted, and
    logged when the connection ends right after a failed handshake. Every
    ZAP request and monitor event comes from the network: sizes and texts
    are checked, never asserted.
    =========================================================================
*/
#include "zap.h"
#include "bans.h"
#include "sock.h"

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define S_ZAP_ENDPOINT  "inproc://zeromq.zap.01"
#define S_LOG_EVERY_MS  10000       //  the same refusal is logged this often
#define S_MONITORS      5
#define S_SUSPECT_MS    3000        //  two broken handshakes this close: refused
#define S_TABLE_MAX     4096        //  peers remembered for the log, at most

typedef struct {
    int role;                   //  PZ_ROLE_* of the certificate
    char *name;                 //  its file name, for the log
} s_entry_t;

struct _pz_zap_t {
    char *dir;                  //  the allow directory
    zhashx_t *keys;             //  Z85 public key -> s_entry_t, owns them
};

static const char *s_domains [S_MONITORS] = {
    "source", "publish", "dispatch", "results", "history"
};

static void
s_entry_destroy (s_entry_t **entry_p)
{
    if (*entry_p) {
        free ((*entry_p)->name);
        free (*entry_p);
        *entry_p = NULL;
    }
}

//  Returns the role bit of a role name, or 0.
int
pz_zap_role_parse (const char *name)
{
    if (!name)
        return 0;
    if (streq (name, "source"))
        return PZ_ROLE_SOURCE;
    if (streq (name, "worker"))
        return PZ_ROLE_WORKER;
    if (streq (name, "sink"))
        return PZ_ROLE_SINK;
    return 0;
}

//  Returns the name of a role bit.
const char *
pz_zap_role_name (int role)
{
    return role == PZ_ROLE_SOURCE ? "source"
         : role == PZ_ROLE_WORKER ? "worker"
         : role == PZ_ROLE_SINK ? "sink" : "none";
}

//  Returns the roles allowed on a domain, 0 for an unknown one.
int
pz_zap_domain_roles (const char *domain)
{
    if (!domain)
        return 0;
    if (streq (domain, "source"))
        return PZ_ROLE_SOURCE;
    //  A source reads them too: `--count-only` waits there for the count.
    if (streq (domain, "publish") || streq (domain, "history"))
        return PZ_ROLE_SINK | PZ_ROLE_SOURCE;
    if (streq (domain, "dispatch") || streq (domain, "results"))
        return PZ_ROLE_WORKER;
    return 0;
}

//  Creates the list and reads the directory. NULL if it cannot be read.
pz_zap_t *
pz_zap_new (const char *allow_dir)
{
    assert (allow_dir);
    pz_zap_t *self = (pz_zap_t *) zmalloc (sizeof (pz_zap_t));
    assert (self);
    self->dir = strdup (allow_dir);
    self->keys = zhashx_new ();
    assert (self->keys);
    zhashx_set_destructor (self->keys, (zhashx_destructor_fn *) s_entry_destroy);
    if (pz_zap_load (self, NULL) == -1)
        pz_zap_destroy (&self);
    return self;
}

//  Destroys the list. NULL-safe.
void
pz_zap_destroy (pz_zap_t **self_p)
{
    assert (self_p);
    pz_zap_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->keys);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

//  Reads one public certificate into keys. false (logged) if it is not one.
static bool
s_load_cert (zhashx_t *keys, const char *path, const char *name)
{
    zconfig_t *root = zconfig_load (path);
    const char *key = root ? zconfig_get (root, "/curve/public-key", NULL) : NULL;
    const char *role_name = root ? zconfig_get (root, "/metadata/role", NULL) : NULL;
    uint8_t binary [32];
    const char *problem = NULL;
    if (!root)
        problem = "not a certificate";
    else
    if (!key || strlen (key) != 40 || !zmq_z85_decode (binary, key))
        problem = "no valid public-key";
    else
    if (!pz_zap_role_parse (role_name))
        problem = "no role (metadata role = source, worker or sink)";
    else
    if (zhashx_lookup (keys, key))
        problem = "a key already loaded from another file";
    if (problem) {
        zsys_warning ("zap: skipping %s: %s", path, problem);
        zconfig_destroy (&root);
        return false;
    }
    s_entry_t *entry = (s_entry_t *) zmalloc (sizeof (s_entry_t));
    assert (entry);
    entry->role = pz_zap_role_parse (role_name);
    entry->name = strdup (name);
    zhashx_insert (keys, key, entry);
    zconfig_destroy (&root);
    return true;
}

//  Reads the directory again. Keys loaded, or -1 (list unchanged).
int
pz_zap_load (pz_zap_t *self, int *removed_roles)
{
    assert (self);
    if (removed_roles)
        *removed_roles = 0;
    DIR *dir = opendir (self->dir);
    if (!dir) {
        zsys_error ("zap: cannot read the allow directory '%s': %s", self->dir,
                    strerror (errno));
        return -1;
    }
    zhashx_t *keys = zhashx_new ();
    assert (keys);
    zhashx_set_destructor (keys, (zhashx_destructor_fn *) s_entry_destroy);
    struct dirent *found;
    while ((found = readdir (dir))) {
        size_t length = strlen (found->d_name);
        if (length <= 5 || !streq (found->d_name + length - 5, ".cert"))
            continue;
        char *path = zsys_sprintf ("%s/%s", self->dir, found->d_name);
        s_load_cert (keys, path, found->d_name);
        zstr_free (&path);
    }
    closedir (dir);
    if (removed_roles) {
        for (s_entry_t *old = (s_entry_t *) zhashx_first (self->keys); old;
             old = (s_entry_t *) zhashx_next (self->keys)) {
            const char *key = (const char *) zhashx_cursor (self->keys);
            s_entry_t *now = (s_entry_t *) zhashx_lookup (keys, key);
            if (!now || now->role != old->role)
                *removed_roles |= old->role;
        }
    }
    zhashx_destroy (&self->keys);
    self->keys = keys;
    return (int) zhashx_size (keys);
}

//  Returns the number of keys.
size_t
pz_zap_size (pz_zap_t *self)
{
    assert (self);
    return zhashx_size (self->keys);
}

//  Decides one handshake: 200 or 400 with a reason.
int
pz_zap_check (pz_zap_t *self, const char *domain, const char *mechanism,
              const uint8_t *key, size_t key_size, const char **reason)
{
    assert (self && reason);
    int allowed = pz_zap_domain_roles (domain);
    *reason = NULL;
    if (!allowed)
        *reason = "unknown endpoint (ZAP domain)";
    else
    if (!mechanism || !streq (mechanism, "CURVE"))
        *reason = "not CURVE (plaintext)";
    else
    if (!key || key_size != 32)
        *reason = "malformed CURVE key";
    else {
        char text [41];
        zmq_z85_encode (text, key, 32);
        s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->keys, text);
        if (!entry)
            *reason = "unknown key";
        else
        if (!(entry->role & allowed))
            *reason = entry->role == PZ_ROLE_SOURCE ? "a source's key, wrong role"
                    : entry->role == PZ_ROLE_WORKER ? "a worker's key, wrong role"
                    : "a sink's key, wrong role";
    }
    return *reason ? 400 : 200;
}


//  --------------------------------------------------------------------------
//  The actor

typedef struct {
    pz_zap_t *list;             //  the allow list
    zsock_t *handler;           //  ROUTER bound at inproc://zeromq.zap.01
    zsock_t *monitors [S_MONITORS];     //  PAIRs, one per endpoint's monitor
    zhashx_t *accepted [S_MONITORS];    //  fd (as text) -> peer address
    uint32_t failed [S_MONITORS];       //  protocol error of the handshake
                                        //  that just failed, or 0
    zhashx_t *logged;           //  "domain key/address" -> next log time (int64_t *)
    zhashx_t *suspects;         //  "domain address" -> when a handshake of
                                //  it broke off (int64_t *)
    pz_bans_t *bans;            //  keys cut off by the broker's audit ("key:<Z85>")
    int allowed;                //  handshakes allowed
    int refused;                //  handshakes refused (ZAP and monitors)
} s_actor_t;

//  Bounds a table of "domain peer" -> time (logged, suspects): once it
//  holds S_TABLE_MAX entries, those whose time is before cutoff go, and if
//  that leaves more than half, all of them (a peer may then be logged once
//  more), so the scan comes at most once every S_TABLE_MAX / 2 new peers.
//  Every address of an IPv6 /64 would otherwise add its own entry.
static void
s_table_bound (zhashx_t *table, int64_t cutoff)
{
    if (zhashx_size (table) < S_TABLE_MAX)
        return;
    zlistx_t *keys = zhashx_keys (table);
    for (const char *key = (const char *) zlistx_first (keys); key;
         key = (const char *) zlistx_next (keys)) {
        int64_t *time = (int64_t *) zhashx_lookup (table, key);
        if (time && *time < cutoff)
            zhashx_delete (table, key);
    }
    zlistx_destroy (&keys);
    size_t kept = zhashx_size (table);
    if (kept > S_TABLE_MAX / 2) {
        zhashx_purge (table);
        kept = 0;
    }
    if (pz_log_verbose ())
        zsys_debug ("zap: %d peers remembered for the log: kept %zu", S_TABLE_MAX, kept);
}

//  Logs a refusal, at most once every S_LOG_EVERY_MS per domain and peer.
static void
s_log_refusal (s_actor_t *self, const char *domain, const char *address,
               const char *key, const char *reason)
{
    self->refused++;
    char *which = zsys_sprintf ("%s %s", domain, key ? key : address);
    int64_t now = zclock_mono ();
    int64_t *next = (int64_t *) zhashx_lookup (self->logged, which);
    if (!next || now >= *next) {
        zsys_warning ("zap: refused %s on the %s endpoint: %s, key %s", address,
                      domain, reason, key ? key : "none");
        if (!next) {
            s_table_bound (self->logged, now);
            next = (int64_t *) zmalloc (sizeof (int64_t));
            assert (next);
            zhashx_insert (self->logged, which, next);
        }
        *next = now + S_LOG_EVERY_MS;
    }
    zstr_free (&which);
}

//  Returns frame's text as a new string (at most 255 bytes), never NULL.
static char *
s_frame_text (zframe_t *frame)
{
    size_t size = frame ? zframe_size (frame) : 0;
    if (size > 255)
        size = 255;
    char *text = (char *) zmalloc (size + 1);
    assert (text);
    if (size)
        memcpy (text, zframe_data (frame), size);
    //  A NUL inside is a malformed request: the text stops there.
    return text;
}

//  Answers one ZAP request (RFC 27).
static void
s_handle_request (s_actor_t *self)
{
    zmsg_t *request = zmsg_recv (self->handler);
    if (!request)
        return;
    //  Envelope (routing id, empty), then version, request id, domain,
    //  address, identity, mechanism, credentials.
    zframe_t *routing = zmsg_pop (request);
    zframe_t *delimiter = zmsg_pop (request);
    char *version = s_frame_text (zmsg_first (request));
    zframe_t *request_id = zmsg_next (request);
    char *domain = s_frame_text (zmsg_next (request));
    char *address = s_frame_text (zmsg_next (request));
    zmsg_next (request);        //  identity
    char *mechanism = s_frame_text (zmsg_next (request));
    zframe_t *credential = zmsg_next (request);
    if (routing && delimiter && request_id && streq (version, "1.0")) {
        const char *reason;
        const uint8_t *key = credential ? zframe_data (credential) : NULL;
        size_t key_size = credential ? zframe_size (credential) : 0;
        int status = pz_zap_check (self->list, domain, mechanism, key, key_size, &reason);
        char key_text [41] = "";
        if (key && key_size == 32)
            zmq_z85_encode (key_text, key, 32);
        char banned [48];
        snprintf (banned, sizeof banned, "key:%s", key_text);
        if (status == 200 && pz_bans_active (self->bans, banned, zclock_mono ())) {
            status = 400;
            reason = "cut off by the audit (a wrong verdict)";
        }
        if (status == 200)
            self->allowed++;
        else
            s_log_refusal (self, domain, address, key_text [0] ? key_text : NULL, reason);
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &routing);
        zmsg_append (reply, &delimiter);
        zmsg_addstr (reply, "1.0");
        zmsg_addmem (reply, zframe_data (request_id), zframe_size (request_id));
        zmsg_addstr (reply, status == 200 ? "200" : "400");
        zmsg_addstr (reply, status == 200 ? "OK" : reason);
        zmsg_addstr (reply, status == 200 ? key_text : "");    //  user id
        zmsg_addmem (reply, NULL, 0);                           //  metadata
        zmsg_send (&reply, self->handler);
    }
    zframe_destroy (&routing);
    zframe_destroy (&delimiter);
    zstr_free (&version);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
}

//  Reads one monitor event of a broker endpoint: remembers the address of
//  accepted connections, logs the ones that end after a failed handshake.
static void
s_handle_monitor (s_actor_t *self, int index)
{
    zmsg_t *event = zmsg_recv (self->monitors [index]);
    zframe_t *head = event ? zmsg_first (event) : NULL;
    if (!head || zframe_size (head) != 6) {
        zmsg_destroy (&event);
        return;
    }
    uint16_t kind;
    uint32_t value;
    memcpy (&kind, zframe_data (head), 2);
    memcpy (&value, zframe_data (head) + 2, 4);
    char fd_text [16];
    snprintf (fd_text, sizeof fd_text, "%u", value);
    if (pz_log_verbose ())
        zsys_debug ("zap: %s endpoint: event 0x%x value 0x%x", s_domains [index],
                    kind, value);
    if (kind == ZMQ_EVENT_ACCEPTED) {
        struct sockaddr_storage peer;
        socklen_t size = sizeof peer;
        char address [INET6_ADDRSTRLEN + 8] = "unknown address";
        if (getpeername ((int) value, (struct sockaddr *) &peer, &size) == 0) {
            if (peer.ss_family == AF_INET)
                inet_ntop (AF_INET, &((struct sockaddr_in *) &peer)->sin_addr,
                           address, sizeof address);
            else
            if (peer.ss_family == AF_INET6)
                inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &peer)->sin6_addr,
                           address, sizeof address);
        }
        zhashx_update (self->accepted [index], fd_text, strdup (address));
    }
    else
    if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
    ||  kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        //  The same I/O thread reports the disconnection next.
        self->failed [index] = value ? value : 1;
    else
    if (kind == ZMQ_EVENT_DISCONNECTED) {
        uint32_t error = self->failed [index];
        const char *address = (const char *) zhashx_lookup (self->accepted [index], fd_text);
        if (!address)
            address = "an address gone before it was read";
        if (error == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
        ||  error == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            s_log_refusal (self, s_domains [index], address, NULL,
                           error == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ?
                           "not CURVE (plaintext)" :
                           "CURVE handshake failed (wrong broker key?)");
        else
        if (error) {
            //  The connection closed in mid-handshake: a plaintext peer
            //  that saw our CURVE greeting first, or a good peer that
            //  went away. A plaintext peer comes back within 100 ms
            //  (libzmq's reconnect interval) and fails again: logged on
            //  the second failure within S_SUSPECT_MS.
            char *which = zsys_sprintf ("%s %s", s_domains [index], address);
            int64_t now = zclock_mono ();
            int64_t *first = (int64_t *) zhashx_lookup (self->suspects, which);
            if (first && now - *first <= S_SUSPECT_MS)
                s_log_refusal (self, s_domains [index], address, NULL,
                               "closed in mid-handshake, again (not CURVE: plaintext?)");
            else {
                if (!first) {
                    s_table_bound (self->suspects, now - S_SUSPECT_MS);
                    first = (int64_t *) zmalloc (sizeof (int64_t));
                    assert (first);
                    zhashx_insert (self->suspects, which, first);
                }
                *first = now;
                if (pz_log_verbose ())
                    zsys_debug ("zap: %s on the %s endpoint closed in mid-handshake",
                                address, s_domains [index]);
            }
            zstr_free (&which);
        }
        self->failed [index] = 0;
        zhashx_delete (self->accepted [index], fd_text);
    }
    zmsg_destroy (&event);
}

//  Serves ZAP requests and monitor events until $TERM.
void
pz_zap_actor (zsock_t *pipe, void *args)
{
    assert (args);
    s_actor_t self = { .list = pz_zap_new ((const char *) args) };
    self.handler = zsock_new (ZMQ_ROUTER);
    assert (self.handler);
    zsock_set_linger (self.handler, 0);
    bool ready = self.list && zsock_bind (self.handler, S_ZAP_ENDPOINT) == 0;
    if (self.list && !ready)
        zsys_error ("zap: cannot bind %s: %s (another handler in this process?)",
                    S_ZAP_ENDPOINT, zmq_strerror (zmq_errno ()));
    self.logged = zhashx_new ();
    assert (self.logged);
    zhashx_set_destructor (self.logged, (zhashx_destructor_fn *) zstr_free);
    self.suspects = zhashx_new ();
    assert (self.suspects);
    self.bans = pz_bans_new ();
    zhashx_set_destructor (self.suspects, (zhashx_destructor_fn *) zstr_free);
    zpoller_t *poller = zpoller_new (pipe, self.handler, NULL);
    assert (poller);
    zpoller_set_nonstop (poller, true);
    for (int index = 0; index < S_MONITORS && ready; index++) {
        //  inproc connect before bind is fine: the broker's sockets attach
        //  their monitors when they are opened, after this.
        self.monitors [index] = zsock_new (ZMQ_PAIR);
        assert (self.monitors [index]);
        zsock_set_linger (self.monitors [index], 0);
        //  No high-water mark: libzmq sends monitor events with a blocking
        //  send from the broker's I/O thread, which would stop serving
        //  every connection whenever this thread fell 1,000 events behind
        //  (2,000 stalled handshakes timing out together make 4,000).
        //  An inproc pipe has no limit when the connecting side sets none.
        zsock_set_rcvhwm (self.monitors [index], 0);
        zsock_connect (self.monitors [index], "%s%s", PZ_SOCK_MONITOR_PREFIX,
                       s_domains [index]);
        zpoller_add (poller, self.monitors [index]);
        self.accepted [index] = zhashx_new ();
        assert (self.accepted [index]);
        zhashx_set_destructor (self.accepted [index], (zhashx_destructor_fn *) zstr_free);
    }
    if (ready)
        zsys_info ("zap: %zu keys allowed, from %s", pz_zap_size (self.list),
                   (const char *) args);
    zsock_signal (pipe, ready ? 0 : 1);

    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool stop = !command || streq (command, "$TERM");
            if (command && streq (command, "RELOAD")) {
                int removed = 0;
                int keys = ready ? pz_zap_load (self.list, &removed) : -1;
                if (keys >= 0)
                    zsys_info ("zap: reloaded: %d keys allowed%s%s%s%s", keys,
                               removed ? "; keys removed for" : "",
                               removed & PZ_ROLE_SOURCE ? " sources" : "",
                               removed & PZ_ROLE_WORKER ? " workers" : "",
                               removed & PZ_ROLE_SINK ? " sinks" : "");
                else
                    zsys_warning ("zap: reload failed, keeping the %zu keys loaded",
                                  self.list ? pz_zap_size (self.list) : 0);
                zsock_send (pipe, "ii", keys, removed);
            }
            else
            if (command && strncmp (command, "BAN ", 4) == 0) {
                //  "BAN <Z85 key> <ms>": refuse the key for that long.
                char key [41];
                long long ban_ms = 0;
                int ok = sscanf (command + 4, "%40s %lld", key, &ban_ms) == 2;
                if (ok) {
                    char *who = zsys_sprintf ("key:%s", key);
                    pz_bans_add (self.bans, who, zclock_mono () + ban_ms);
                    zstr_free (&who);
                }
                zsock_send (pipe, "i", ok ? 0 : -1);
            }
            else
            if (command && streq (command, "SIZE"))
                zsock_send (pipe, "i", ready ? (int) pz_zap_size (self.list) : -1);
            else
            if (command && streq (command, "STATS"))
                zsock_send (pipe, "ii", self.allowed, self.refused);
            else
            if (command && strncmp (command, "PEERS ", 6) == 0) {
                int peers = -1;
                for (int index = 0; index < S_MONITORS; index++)
                    if (streq (command + 6, s_domains [index]))
                        peers = (int) zhashx_size (self.accepted [index]);
                zsock_send (pipe, "i", peers);
            }
            zstr_free (&command);
            if (stop)
                break;
        }
        else
        if (which == self.handler)
            s_handle_request (&self);
        else
        for (int index = 0; index < S_MONITORS; index++)
            if (which && which == self.monitors [index])
                s_handle_monitor (&self, index);
    }
    zpoller_destroy (&poller);
    for (int index = 0; index < S_MONITORS; index++) {
        zsock_destroy (&self.monitors [index]);
        zhashx_destroy (&self.accepted [index]);
    }
    pz_bans_destroy (&self.bans);
    zhashx_destroy (&self.logged);
    zhashx_destroy (&self.suspects);
    zsock_destroy (&self.handler);
    pz_zap_destroy (&self.list);
}
