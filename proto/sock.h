/*  =========================================================================
    sock - sockets the PlayØMQ way: options set before bind or connect,
           errors that name the endpoint

    Every socket that faces the network gets the same treatment: an explicit
    linger, ZMQ_MAXMSGSIZE so a peer cannot make us buffer an unbounded
    frame, ZMTP heartbeats so a dead peer is noticed even on a silent TCP
    connection, and a bounded handshake. pz_sock_open applies them, then binds
    or connects, and on failure logs one line naming the role and endpoint.
    =========================================================================
*/
#ifndef PZ_SOCK_H_INCLUDED
#define PZ_SOCK_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

//  Default ports of the broker's four endpoints.
#define PZ_PORT_SOURCE      5555
#define PZ_PORT_PUBLISH     5556
#define PZ_PORT_DISPATCH    5557
#define PZ_PORT_RESULTS     5558

typedef struct {
    int linger_ms;              //  how long close waits to send what is queued
    int heartbeat_ivl_ms;       //  ZMTP PING every this often; 0 disables heartbeats
    int heartbeat_timeout_ms;   //  a peer silent this long is disconnected
    int heartbeat_ttl_ms;       //  asks the peer to drop us if we are silent this long
    int handshake_ms;           //  a ZMTP handshake must finish within this
    int sndhwm;                 //  messages queued per peer for sending; 0 = no
                                //  limit, -1 = libzmq's default (1000)
    int rcvhwm;                 //  messages queued per peer on receipt; same values
    const char *routing_id;     //  ZMQ_ROUTING_ID to present, or NULL for none
    //  CURVE (proto/PROTOCOL.md, "Security"). All empty: plaintext, as
    //  without certificates. A secret key and no server key make a CURVE
    //  server (the broker), a secret key and a server key a CURVE client.
    char curve_public [41];     //  our public key, Z85, or "" for plaintext
    char curve_secret [41];     //  our secret key, Z85, or ""
    char curve_server [41];     //  client: the broker's public key, Z85, or ""
    const char *zap_domain;     //  server: ZAP domain of the endpoint ("dispatch");
                                //  ZMQ_ZAP_ENFORCE_DOMAIN is set with it, and
                                //  handshake failures are reported on the
                                //  monitor PZ_SOCK_MONITOR_PREFIX + zap_domain
} pz_sockopts_t;

//  Where pz_sock_open publishes the handshake events of a CURVE server
//  socket (zmq_socket_monitor): accepted connections, failed handshakes,
//  disconnections. The broker's ZAP handler (broker/zap.h) reads them to
//  log plaintext peers, which fail before ZAP is asked.
#define PZ_SOCK_MONITOR_PREFIX  "inproc://playzmq-monitor."
#define PZ_SOCK_MONITOR_EVENTS  (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED \
                                 | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL \
                                 | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)

//  Fills opts with the defaults: linger 0, heartbeats every 1000 ms with a
//  3000 ms timeout and TTL, 5000 ms handshake, libzmq's high-water marks.
//
//  Every socket also gets TCP keepalive (idle 10 s, then 3 probes 2 s
//  apart), which finds a vanished peer without any ZMTP traffic.
//
//  Connections where a receive queue can fill (dispatch PUSH -> PULL,
//  publish PUB -> SUB) must carry no ZMTP heartbeats at all, on either end:
//  with libzmq 4.3.4, a PING still buffered when the peer drops the
//  connection is answered after input resumes and the process aborts in
//  stream_engine_base.cpp (zeromq/libzmq issues 3937, 4364, 4767). Those
//  sockets set heartbeat_ivl_ms to 0 and rely on keepalive. A request/reply
//  connection queues at most the client's outstanding requests (one for a
//  REQ, at most 256 for a pz_client's DEALER), far below its high-water
//  mark, so heartbeats stay on there.
void
    pz_sockopts_init (pz_sockopts_t *opts);

//  Loads CURVE keys into opts: cert_file is our own secret certificate
//  (NAME.cert_secret; NAME.cert is also accepted when NAME.cert_secret is
//  next to it), server_file, if not NULL, the broker's public certificate
//  (which makes opts a client's). program names the messages. Returns 0, or
//  -1 after logging one line naming the file that is missing or malformed.
int
    pz_sockopts_set_curve (pz_sockopts_t *opts, const char *program,
                           const char *cert_file, const char *server_file);

//  The --curve-cert and --curve-server flags of a client program, as the
//  option table left them (NULL or "" when not given): both or neither.
//  Loads them into opts when given. Returns 0, 2 after printing a usage
//  error (only one of the two given), or 1 after logging a file that cannot
//  be used: the program's exit status when not 0.
int
    pz_sockopts_curve_flags (pz_sockopts_t *opts, const char *program,
                             const char *cert_file, const char *server_file);

//  Returns true if opts make a CURVE socket (server or client).
bool
    pz_sockopts_curve (const pz_sockopts_t *opts);

//  Creates a socket of type (ZMQ_REQ, ...), applies opts and PZ_WIRE_MAX as
//  ZMQ_MAXMSGSIZE, then binds (bind true) or connects to endpoint. role names
//  the socket in the error line ("source REP"). Returns the socket, or NULL
//  after logging why. Caller owns return value.
zsock_t *
    pz_sock_open (int type, const char *role, const char *endpoint, bool bind,
                  const pz_sockopts_t *opts);

//  Returns "tcp://HOST:PORT" (brackets around an IPv6 HOST).
//  Caller owns return value (free with zstr_free or free).
char *
    pz_endpoint_for_host (const char *host, int port);

//  Waits until the host of a tcp:// endpoint resolves (getaddrinfo), so that
//  a program started before its broker, or before the broker's name exists
//  (a container's service name), waits for it instead of failing its first
//  requests. Logs one line naming role and endpoint when it starts waiting,
//  one every log_every_ms while it goes on, and one when the name resolves.
//  Returns 0 at once for an endpoint that is not tcp:// or whose host is an
//  address or '*'; 0 when the name resolves; -1 if SIGINT/SIGTERM came first
//  (zsys_interrupted).
int
    pz_endpoint_wait_resolvable (const char *endpoint, const char *role,
                                 int log_every_ms);

//  Returns endpoint ("tcp://HOST:PORT") with its port replaced by port,
//  or NULL if it is not a tcp:// endpoint with a host. Caller owns return
//  value.
char *
    pz_endpoint_with_port (const char *endpoint, int port);

//  Sends one record (tag, value) as a message, without blocking. Returns 0,
//  or -1 if the socket could not take it now.
int
    pz_sock_send_record (zsock_t *sock, char tag, int64_t value);

//  Reads and discards the remaining frames of a multi-frame message, so that
//  a REP socket can answer it. Returns the number of frames discarded.
int
    pz_sock_drain_frames (void *handle);

//  Sets how much the program logs: 0 normal, 1 or more adds debug lines.
void
    pz_log_set_verbose (int level);

//  Returns true if debug lines should be logged (-v).
bool
    pz_log_verbose (void);

//  Sets up czmq for a PlayØMQ program: logs to stderr under ident, with
//  SIGINT and SIGTERM setting zsys_interrupted. Call first thing in main.
void
    pz_sock_init_process (const char *ident);

#endif
