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
        .handshake_ms = 5000,
        .sndhwm = -1,
        .rcvhwm = -1
    };
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
