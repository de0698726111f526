/*  =========================================================================
    sock - sockets the PlayØMQ way: options set before bind or connect,
           errors that name the endpoint

    Options must be set before bind/connect to affect the connection (libzmq
    reads them when the pipe is created), hence one function that does both
    in the right order.
    =========================================================================
*/
#include "sock.h"
#include "record.h"

#include <assert.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

//  Fills opts with the defaults.
void
pz_sockopts_init (pz_sockopts_t *opts)
{
    assert (opts);
    *opts = (pz_sockopts_t) {
        .linger_ms = 0,
        .heartbeat_ivl_ms = 1000,
        .heartbeat_timeout_ms = 3000,
        .heartbeat_ttl_ms = 3000,
        //  ZMQ_HANDSHAKE_IVL, chosen: a CURVE handshake (greeting, HELLO,
        //  WELCOME, INITIATE, READY and a ZAP answer: about 3 round trips)
        //  takes under 2 s even over a 500 ms satellite link, and a peer
        //  that connects and stalls holds a descriptor only this long.
        .handshake_ms = 5000,
        .sndhwm = -1,
        .rcvhwm = -1
    };
}

//  ZMQ_ZAP_ENFORCE_DOMAIN is DRAFT in libzmq 4.3's zmq.h, and Debian's
//  header hides it; the option number is stable (libzmq's src/zmq_draft.h).
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#   define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

//  Z85 of 32 zero bytes: what zcert gives for a certificate without a
//  secret key.
#define S_Z85_ZERO  "0000000000000000000000000000000000000000"

//  Copies a 40-character Z85 key into a 41-byte field, or fails.
static bool
s_key_copy (char *field, const char *text)
{
    if (!text || strlen (text) != 40)
        return false;
    uint8_t binary [32];
    if (!zmq_z85_decode (binary, text))
        return false;
    memcpy (field, text, 41);
    return true;
}

//  Loads our secret certificate and, if given, the server's public one.
int
pz_sockopts_set_curve (pz_sockopts_t *opts, const char *program,
                       const char *cert_file, const char *server_file)
{
    assert (opts && program && cert_file);
    //  zcert_load reads FILE_secret when there is one, else FILE itself, so
    //  both NAME.cert (next to NAME.cert_secret) and NAME.cert_secret work.
    zcert_t *cert = zfile_exists (cert_file) ? zcert_load (cert_file) : NULL;
    if (!cert) {
        zsys_error ("%s: --curve-cert '%s': cannot read a certificate there", program, cert_file);
        return -1;
    }
    bool good = s_key_copy (opts->curve_public, zcert_public_txt (cert))
             && s_key_copy (opts->curve_secret, zcert_secret_txt (cert))
             && !streq (opts->curve_secret, S_Z85_ZERO);
    zcert_destroy (&cert);
    if (!good) {
        zsys_error ("%s: --curve-cert '%s' holds no secret key (give NAME.cert_secret, "
                    "not the public NAME.cert)", program, cert_file);
        opts->curve_public [0] = opts->curve_secret [0] = 0;
        return -1;
    }
    if (!server_file)
        return 0;
    //  The server's public certificate only: never read a _secret next to it.
    zconfig_t *root = zfile_exists (server_file) ? zconfig_load (server_file) : NULL;
    const char *text = root ? zconfig_get (root, "/curve/public-key", NULL) : NULL;
    good = s_key_copy (opts->curve_server, text);
    zconfig_destroy (&root);
    if (!good) {
        zsys_error ("%s: --curve-server '%s': no certificate with a public key there",
                    program, server_file);
        opts->curve_public [0] = opts->curve_secret [0] = 0;
        return -1;
    }
    return 0;
}

//  Returns true if opts make a CURVE socket.
bool
pz_sockopts_curve (const pz_sockopts_t *opts)
{
    assert (opts);
    return opts->curve_secret [0] != 0;
}

//  Applies CURVE and ZAP options, before bind or connect. 0 or -1 (logged).
static int
s_apply_curve (zsock_t *sock, const char *role, const pz_sockopts_t *opts)
{
    void *handle = zsock_resolve (sock);
    if (!pz_sockopts_curve (opts)) {
        //  A plaintext server that has a ZAP domain still asks the handler
        //  (which refuses NULL when it has keys): fail closed.
        if (opts->zap_domain)
            zsock_set_zap_domain (sock, opts->zap_domain);
        return 0;
    }
    zsock_set_curve_secretkey (sock, opts->curve_secret);
    zsock_set_curve_publickey (sock, opts->curve_public);
    if (opts->curve_server [0]) {
        zsock_set_curve_serverkey (sock, opts->curve_server);
        return 0;
    }
    zsock_set_curve_server (sock, 1);
    if (!opts->zap_domain)
        return 0;
    zsock_set_zap_domain (sock, opts->zap_domain);
    //  Without it libzmq 4.3 lets a CURVE peer in when no ZAP handler
    //  answers; with it, no handler means no connection.
    int enforce = 1;
    if (zmq_setsockopt (handle, ZMQ_ZAP_ENFORCE_DOMAIN, &enforce, sizeof enforce) == -1) {
        zsys_error ("%s: cannot set ZMQ_ZAP_ENFORCE_DOMAIN: %s", role,
                    zmq_strerror (zmq_errno ()));
        return -1;
    }
    //  Plaintext peers fail the greeting before ZAP is asked: the handler
    //  learns of them from these events.
    char monitor [128];
    snprintf (monitor, sizeof monitor, "%s%s", PZ_SOCK_MONITOR_PREFIX, opts->zap_domain);
    if (zmq_socket_monitor (handle, monitor, PZ_SOCK_MONITOR_EVENTS) == -1)
        zsys_warning ("%s: cannot monitor handshakes on %s: %s", role, monitor,
                      zmq_strerror (zmq_errno ()));
    return 0;
}

//  Creates, configures and binds or connects a socket; NULL on failure.
zsock_t *
pz_sock_open (int type, const char *role, const char *endpoint, bool bind,
              const pz_sockopts_t *opts)
{
    assert (role && endpoint && opts);
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        zsys_error ("%s: cannot create socket: %s", role, zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zsock_set_linger (sock, opts->linger_ms);
    //  Above the largest valid message, so that a malformed message of up
    //  to PZ_WIRE_MAX bytes can still be read and answered with an E record.
    zsock_set_maxmsgsize (sock, PZ_WIRE_MAX);
    zsock_set_handshake_ivl (sock, opts->handshake_ms);
    if (opts->heartbeat_ivl_ms > 0) {
        zsock_set_heartbeat_ivl (sock, opts->heartbeat_ivl_ms);
        zsock_set_heartbeat_timeout (sock, opts->heartbeat_timeout_ms);
        //  TTL (sent in our PINGs) tells the peer how long to wait for us.
        zsock_set_heartbeat_ttl (sock, opts->heartbeat_ttl_ms);
    }
    //  Kernel keepalive: no engine timers (see sock.h), works on any socket.
    zsock_set_tcp_keepalive (sock, 1);
    zsock_set_tcp_keepalive_idle (sock, 10);
    zsock_set_tcp_keepalive_intvl (sock, 2);
    zsock_set_tcp_keepalive_cnt (sock, 3);
    if (opts->sndhwm >= 0)
        zsock_set_sndhwm (sock, opts->sndhwm);
    if (opts->rcvhwm >= 0)
        zsock_set_rcvhwm (sock, opts->rcvhwm);
    if (opts->routing_id)
        zsock_set_identity (sock, opts->routing_id);
    if (s_apply_curve (sock, role, opts) == -1) {
        zsock_destroy (&sock);
        return NULL;
    }

    //  zmq_bind rather than zsock_bind: for a ':*' port czmq scans upward
    //  from 49152, so processes started one after another reuse each other's
    //  ports and a peer still reconnecting to an old one finds a stranger;
    //  libzmq lets the kernel pick a random free port instead.
    int rc = bind ? zmq_bind (zsock_resolve (sock), endpoint)
                  : zsock_connect (sock, "%s", endpoint);
    if (rc == -1) {
        zsys_error ("%s: cannot %s '%s': %s", role, bind ? "bind" : "connect",
                    endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

//  Returns "tcp://HOST:PORT". Caller owns return value.
char *
pz_endpoint_for_host (const char *host, int port)
{
    assert (host);
    bool ipv6 = strchr (host, ':') != NULL && host [0] != '[';
    return zsys_sprintf (ipv6 ? "tcp://[%s]:%d" : "tcp://%s:%d", host, port);
}

//  Copies the host part of a tcp:// endpoint into host (brackets removed,
//  a "source-address;" prefix skipped). Returns false if there is none.
static bool
s_endpoint_host (const char *endpoint, char *host, size_t size)
{
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return false;
    const char *start = endpoint + 6;
    const char *semicolon = strchr (start, ';');
    if (semicolon)
        start = semicolon + 1;
    const char *colon = strrchr (start, ':');
    if (!colon || colon == start)
        return false;
    size_t length = (size_t) (colon - start);
    if (start [0] == '[' && length >= 2 && start [length - 1] == ']') {
        start++;
        length -= 2;
    }
    if (length == 0 || length >= size)
        return false;
    memcpy (host, start, length);
    host [length] = 0;
    return true;
}

//  Waits until the endpoint's host resolves. 0, or -1 if interrupted.
int
pz_endpoint_wait_resolvable (const char *endpoint, const char *role, int log_every_ms)
{
    assert (endpoint && role);
    char host [256];
    if (!s_endpoint_host (endpoint, host, sizeof host) || streq (host, "*"))
        return 0;
    int64_t started = zclock_mono ();
    int64_t next_log = started;
    bool waited = false;
    while (!zsys_interrupted) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
        struct addrinfo *found = NULL;
        int rc = getaddrinfo (host, NULL, &hints, &found);
        if (found)
            freeaddrinfo (found);
        if (rc == 0) {
            if (waited)
                zsys_info ("%s: '%s' resolves now, after %.1f s; connecting to %s",
                           role, host, (zclock_mono () - started) / 1000.0, endpoint);
            return 0;
        }
        int64_t now = zclock_mono ();
        if (now >= next_log) {
            zsys_info ("%s: waiting for the broker: '%s' does not resolve (%s) for %s%s",
                       role, host, gai_strerror (rc), endpoint,
                       waited ? "; still waiting" : "");
            next_log = now + (log_every_ms > 0 ? log_every_ms : 5000);
            waited = true;
        }
        //  Short naps, so SIGTERM (docker stop) is answered at once.
        for (int nap = 0; nap < 5 && !zsys_interrupted; nap++)
            zclock_sleep (100);
    }
    return -1;
}

//  Returns endpoint with another port, or NULL if it is not tcp://HOST:PORT.
char *
pz_endpoint_with_port (const char *endpoint, int port)
{
    assert (endpoint);
    if (strncmp (endpoint, "tcp://", 6) != 0)
        return NULL;
    const char *host = endpoint + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host)
        return NULL;
    return zsys_sprintf ("tcp://%.*s:%d", (int) (colon - host), host, port);
}

//  Sends one record as a message without blocking. Returns 0 or -1.
int
pz_sock_send_record (zsock_t *sock, char tag, int64_t value)
{
    uint8_t record [PZ_RECORD_SIZE];
    pz_record_encode (record, tag, value);
    int rc = zmq_send (zsock_resolve (sock), record, sizeof record, ZMQ_DONTWAIT);
    return rc == (int) sizeof record ? 0 : -1;
}

//  Discards the remaining frames of the message being read.
int
pz_sock_drain_frames (void *handle)
{
    int discarded = 0;
    int more = 1;
    size_t more_size = sizeof more;
    while (zmq_getsockopt (handle, ZMQ_RCVMORE, &more, &more_size) == 0 && more) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, handle, 0) == -1) {
            zmq_msg_close (&frame);
            break;
        }
        zmq_msg_close (&frame);
        discarded++;
    }
    return discarded;
}

//  czmq has no log levels: debug lines are guarded by this, set by -v.
static int s_verbose = 0;

//  Sets how much the program logs.
void
pz_log_set_verbose (int level)
{
    s_verbose = level;
}

//  Returns true if debug lines should be logged.
bool
pz_log_verbose (void)
{
    return s_verbose > 0;
}

//  Sets up czmq logging to stderr and its SIGINT/SIGTERM handling.
void
pz_sock_init_process (const char *ident)
{
    //  stdout belongs to the data (sinks print records there).
    zsys_set_logstream (stderr);
    zsys_set_logident (ident);
    zsys_set_logsystem (false);
    //  Installs czmq's handler: SIGINT and SIGTERM set zsys_interrupted and
    //  interrupt blocking calls, so every loop can end cleanly.
    zsys_init ();
    zsys_catch_interrupts ();
}


//  Loads a client's --curve-cert and --curve-server flags into opts.
int
pz_sockopts_curve_flags (pz_sockopts_t *opts, const char *program,
                         const char *cert_file, const char *server_file)
{
    assert (opts && program);
    //  PLAYZMQ_CURVE_CERT= (empty) turns CURVE off, as if not given.
    bool cert = cert_file && *cert_file;
    bool server = server_file && *server_file;
    if (cert != server) {
        fprintf (stderr, "%s: --curve-cert and --curve-server go together "
                 "(try --help)\n", program);
        return 2;
    }
    if (cert && pz_sockopts_set_curve (opts, program, cert_file, server_file) == -1)
        return 1;
    return 0;
}
