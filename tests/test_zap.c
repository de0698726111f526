/*  =========================================================================
    test_zap - the broker's allow list and ZAP handler: loading a directory
               of certificates (malformed ones included), roles per
               endpoint, reloads that add and remove keys, and real CURVE
               handshakes on tcp://127.0.0.1 through the handler

    Certificates are made with zcert in a fresh directory per test; criterion
    runs each test in a process of its own, so each has its own ZeroMQ
    context and may bind inproc://zeromq.zap.01.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"
#include "zap.h"

//  A scratch directory, removed (one level) at the end.
static char s_dir [64];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/test_zap-%d", (int) getpid ());
    zsys_dir_create ("%s", s_dir);
    zsys_dir_create ("%s/allow", s_dir);
}

static void
s_teardown (void)
{
    char *command = zsys_sprintf ("rm -rf '%s'", s_dir);
    cr_assert_eq (system (command), 0);
    zstr_free (&command);
}

//  Makes NAME.cert and NAME.cert_secret in s_dir, with role (or none),
//  and copies the public one into allow/ if allowed. Returns the cert.
static zcert_t *
s_cert (const char *name, const char *role, bool allowed)
{
    zcert_t *cert = zcert_new ();
    cr_assert (cert);
    if (role)
        zcert_set_meta (cert, "role", "%s", role);
    char *path = zsys_sprintf ("%s/%s.cert", s_dir, name);
    cr_assert_eq (zcert_save (cert, path), 0);
    zstr_free (&path);
    if (allowed) {
        path = zsys_sprintf ("%s/allow/%s.cert", s_dir, name);
        cr_assert_eq (zcert_save_public (cert, path), 0);
        zstr_free (&path);
    }
    return cert;
}

static void
s_write (const char *name, const char *text)
{
    char *path = zsys_sprintf ("%s/allow/%s", s_dir, name);
    FILE *file = fopen (path, "w");
    cr_assert (file);
    fputs (text, file);
    fclose (file);
    zstr_free (&path);
}

static char *
s_allow_dir (void)
{
    return zsys_sprintf ("%s/allow", s_dir);
}

TestSuite (zap, .init = s_setup, .fini = s_teardown);

Test (zap, roles_per_endpoint)
{
    cr_assert_eq (pz_zap_role_parse ("source"), PZ_ROLE_SOURCE);
    cr_assert_eq (pz_zap_role_parse ("worker"), PZ_ROLE_WORKER);
    cr_assert_eq (pz_zap_role_parse ("sink"), PZ_ROLE_SINK);
    cr_assert_eq (pz_zap_role_parse ("admin"), 0);
    cr_assert_eq (pz_zap_role_parse (""), 0);
    cr_assert_eq (pz_zap_role_parse (NULL), 0);
    cr_assert_eq (pz_zap_domain_roles ("source"), PZ_ROLE_SOURCE);
    cr_assert_eq (pz_zap_domain_roles ("publish"), PZ_ROLE_SINK | PZ_ROLE_SOURCE);
    cr_assert_eq (pz_zap_domain_roles ("history"), PZ_ROLE_SINK | PZ_ROLE_SOURCE);
    cr_assert_eq (pz_zap_domain_roles ("dispatch"), PZ_ROLE_WORKER);
    cr_assert_eq (pz_zap_domain_roles ("results"), PZ_ROLE_WORKER);
    cr_assert_eq (pz_zap_domain_roles ("global"), 0);
    cr_assert_eq (pz_zap_domain_roles (NULL), 0);
    cr_assert_str_eq (pz_zap_role_name (PZ_ROLE_WORKER), "worker");
}

Test (zap, loads_good_certificates_and_skips_the_rest)
{
    zcert_t *worker = s_cert ("worker", "worker", true);
    zcert_t *sink = s_cert ("sink", "sink", true);
    zcert_t *noroler = s_cert ("norole", NULL, true);
    zcert_t *admin = s_cert ("admin", "admin", true);
    s_write ("garbage.cert", "\x01\x02 not a certificate {{{\n");
    s_write ("empty.cert", "");
    s_write ("shortkey.cert", "curve\n    public-key = \"abc\"\nmetadata\n    role = \"worker\"\n");
    s_write ("badz85.cert", "curve\n    public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n"
                            "metadata\n    role = \"worker\"\n");
    s_write ("README", "not a .cert file: ignored\n");
    //  A secret file in the allow directory is not read as a key.
    zcert_t *secret = s_cert ("secret", "worker", false);
    char *path = zsys_sprintf ("%s/allow/secret.cert_secret", s_dir);
    cr_assert_eq (zcert_save_secret (secret, path), 0);
    zstr_free (&path);

    char *allow = s_allow_dir ();
    pz_zap_t *zap = pz_zap_new (allow);
    cr_assert (zap);
    cr_assert_eq (pz_zap_size (zap), 2);
    const char *reason;
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (worker), 32,
                                &reason), 200);
    cr_assert_eq (pz_zap_check (zap, "dispatch", "CURVE", zcert_public_key (worker), 32,
                                &reason), 200);
    cr_assert_eq (pz_zap_check (zap, "publish", "CURVE", zcert_public_key (sink), 32,
                                &reason), 200);
    cr_assert_eq (pz_zap_check (zap, "history", "CURVE", zcert_public_key (sink), 32,
                                &reason), 200);
    //  Wrong roles, both ways.
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (sink), 32,
                                &reason), 400);
    cr_assert (strstr (reason, "wrong role"));
    cr_assert_eq (pz_zap_check (zap, "source", "CURVE", zcert_public_key (worker), 32,
                                &reason), 400);
    //  Skipped certificates, unknown keys, odd requests.
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (noroler), 32,
                                &reason), 400);
    cr_assert_str_eq (reason, "unknown key");
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (admin), 32,
                                &reason), 400);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (secret), 32,
                                &reason), 400);
    cr_assert_eq (pz_zap_check (zap, "results", "NULL", NULL, 0, &reason), 400);
    cr_assert (strstr (reason, "plaintext"));
    cr_assert_eq (pz_zap_check (zap, "results", "PLAIN", NULL, 0, &reason), 400);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (worker), 31,
                                &reason), 400);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", NULL, 32, &reason), 400);
    cr_assert_eq (pz_zap_check (zap, "", "CURVE", zcert_public_key (worker), 32,
                                &reason), 400);
    cr_assert_eq (pz_zap_check (zap, NULL, NULL, NULL, 0, &reason), 400);
    pz_zap_destroy (&zap);
    pz_zap_destroy (&zap);      //  NULL-safe
    zcert_destroy (&worker);
    zcert_destroy (&sink);
    zcert_destroy (&noroler);
    zcert_destroy (&admin);
    zcert_destroy (&secret);
    zstr_free (&allow);
}

Test (zap, missing_directory_fails)
{
    pz_zap_t *zap = pz_zap_new ("/nonexistent/playzmq/allow");
    cr_assert_null (zap);
}

Test (zap, reload_adds_and_removes_keys)
{
    zcert_t *one = s_cert ("one", "worker", true);
    zcert_t *sink = s_cert ("sink", "sink", true);
    char *allow = s_allow_dir ();
    pz_zap_t *zap = pz_zap_new (allow);
    cr_assert_eq (pz_zap_size (zap), 2);
    const char *reason;
    int removed = -1;
    //  Nothing changed: nothing removed.
    cr_assert_eq (pz_zap_load (zap, &removed), 2);
    cr_assert_eq (removed, 0);
    //  Add one.
    zcert_t *two = s_cert ("two", "worker", true);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (two), 32,
                                &reason), 400);
    cr_assert_eq (pz_zap_load (zap, &removed), 3);
    cr_assert_eq (removed, 0);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (two), 32,
                                &reason), 200);
    //  Revoke one: its role is reported removed, the others stay.
    char *path = zsys_sprintf ("%s/one.cert", allow);
    cr_assert_eq (remove (path), 0);
    zstr_free (&path);
    cr_assert_eq (pz_zap_load (zap, &removed), 2);
    cr_assert_eq (removed, PZ_ROLE_WORKER);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (one), 32,
                                &reason), 400);
    cr_assert_eq (pz_zap_check (zap, "results", "CURVE", zcert_public_key (two), 32,
                                &reason), 200);
    //  A role changed counts as removed for the old role.
    char *text = zsys_sprintf ("metadata\n    role = \"source\"\ncurve\n"
                               "    public-key = \"%s\"\n", zcert_public_txt (sink));
    s_write ("sink.cert", text);
    zstr_free (&text);
    cr_assert_eq (pz_zap_load (zap, &removed), 2);
    cr_assert_eq (removed, PZ_ROLE_SINK);
    cr_assert_eq (pz_zap_check (zap, "source", "CURVE", zcert_public_key (sink), 32,
                                &reason), 200);
    //  A directory that went away: the list is kept.
    char *command = zsys_sprintf ("rm -rf '%s'", allow);
    cr_assert_eq (system (command), 0);
    zstr_free (&command);
    cr_assert_eq (pz_zap_load (zap, &removed), -1);
    cr_assert_eq (pz_zap_size (zap), 2);
    pz_zap_destroy (&zap);
    zcert_destroy (&one);
    zcert_destroy (&two);
    zcert_destroy (&sink);
    zstr_free (&allow);
}

//  Fills opts for a CURVE socket: a server (the broker) as cert with its
//  ZAP domain when server_cert is NULL, else a client as cert of the
//  server server_cert. cert NULL: plaintext.
static void
s_curve_opts (pz_sockopts_t *opts, zcert_t *cert, zcert_t *server_cert, const char *domain)
{
    pz_sockopts_init (opts);
    if (!cert)
        return;
    snprintf (opts->curve_public, sizeof opts->curve_public, "%s", zcert_public_txt (cert));
    snprintf (opts->curve_secret, sizeof opts->curve_secret, "%s", zcert_secret_txt (cert));
    if (server_cert)
        snprintf (opts->curve_server, sizeof opts->curve_server, "%s",
                  zcert_public_txt (server_cert));
    else
        opts->zap_domain = domain;
}

//  Opens a CURVE server socket of type as the broker (cert) on a free
//  loopback port with its ZAP domain; sets *endpoint (caller frees it).
static zsock_t *
s_curve_server (int type, zcert_t *cert, const char *domain, char **endpoint)
{
    pz_sockopts_t opts;
    s_curve_opts (&opts, cert, NULL, domain);
    zsock_t *server = pz_sock_open (type, "test server", "tcp://127.0.0.1:*", true, &opts);
    cr_assert (server);
    *endpoint = zsock_last_endpoint (server);
    return server;
}

//  Opens a CURVE client DEALER to endpoint as cert (NULL: plaintext),
//  sends one frame, and returns true if the server read it within 1 s.
static bool
s_gets_through (zsock_t *server, const char *endpoint, zcert_t *cert, zcert_t *server_cert)
{
    pz_sockopts_t opts;
    s_curve_opts (&opts, cert, server_cert, NULL);
    zsock_t *client = pz_sock_open (ZMQ_DEALER, "test DEALER", endpoint, false, &opts);
    cr_assert (client);
    zstr_send (client, "hello");
    zpoller_t *poller = zpoller_new (server, NULL);
    bool got = zpoller_wait (poller, 1000) == server;
    if (got) {
        zmsg_t *message = zmsg_recv (server);
        zmsg_destroy (&message);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&client);
    return got;
}

Test (zap, handshakes_through_the_handler)
{
    zcert_t *server_cert = s_cert ("broker", NULL, false);
    zcert_t *worker = s_cert ("worker", "worker", true);
    zcert_t *sink = s_cert ("sink", "sink", true);
    zcert_t *stranger = s_cert ("stranger", "worker", false);
    char *allow = s_allow_dir ();
    zactor_t *zap = zactor_new (pz_zap_actor, allow);
    cr_assert (zap);
    zstr_send (zap, "SIZE");
    int keys = -1;
    cr_assert_eq (zsock_recv (zap, "i", &keys), 0);
    cr_assert_eq (keys, 2);

    char *endpoint;
    zsock_t *server = s_curve_server (ZMQ_ROUTER, server_cert, "results", &endpoint);

    cr_assert (s_gets_through (server, endpoint, worker, server_cert));
    cr_assert_not (s_gets_through (server, endpoint, stranger, server_cert));
    cr_assert_not (s_gets_through (server, endpoint, sink, server_cert));
    cr_assert_not (s_gets_through (server, endpoint, NULL, NULL));

    int allowed = 0, refused = 0;
    zstr_send (zap, "STATS");
    cr_assert_eq (zsock_recv (zap, "ii", &allowed, &refused), 0);
    cr_assert_geq (allowed, 1);
    cr_assert_geq (refused, 2);

    //  Revoked: the next handshake is refused.
    char *path = zsys_sprintf ("%s/worker.cert", allow);
    cr_assert_eq (remove (path), 0);
    zstr_free (&path);
    int removed = 0;
    zstr_send (zap, "RELOAD");
    cr_assert_eq (zsock_recv (zap, "ii", &keys, &removed), 0);
    cr_assert_eq (keys, 1);
    cr_assert_eq (removed, PZ_ROLE_WORKER);
    cr_assert_not (s_gets_through (server, endpoint, worker, server_cert));

    zstr_free (&endpoint);
    zsock_destroy (&server);
    zactor_destroy (&zap);
    zcert_destroy (&server_cert);
    zcert_destroy (&worker);
    zcert_destroy (&sink);
    zcert_destroy (&stranger);
    zstr_free (&allow);
}

//  Asks the actor how many connections a domain's endpoint has.
static int
s_peers (zactor_t *zap, const char *domain)
{
    int peers = -2;
    zstr_sendf (zap, "PEERS %s", domain);
    cr_assert_eq (zsock_recv (zap, "i", &peers), 0);
    return peers;
}

Test (zap, counts_the_connections_of_an_endpoint, .timeout = 10)
{
    //  The broker cuts ranges near the top into one lane per connection of
    //  its dispatch endpoint; with CURVE the actor's monitor counts them.
    zcert_t *server_cert = s_cert ("broker", NULL, false);
    zcert_t *worker = s_cert ("worker", "worker", true);
    char *allow = s_allow_dir ();
    zactor_t *zap = zactor_new (pz_zap_actor, allow);
    cr_assert (zap);
    char *endpoint;
    zsock_t *server = s_curve_server (ZMQ_PUSH, server_cert, "dispatch", &endpoint);
    cr_assert_eq (s_peers (zap, "dispatch"), 0);
    cr_assert_eq (s_peers (zap, "nowhere"), -1);

    pz_sockopts_t client_opts;
    s_curve_opts (&client_opts, worker, server_cert, NULL);
    zsock_t *pulls [2];
    for (int index = 0; index < 2; index++) {
        pulls [index] = pz_sock_open (ZMQ_PULL, "test PULL", endpoint, false, &client_opts);
        cr_assert (pulls [index]);
    }
    int peers = 0;
    for (int attempt = 0; attempt < 100 && (peers = s_peers (zap, "dispatch")) != 2; attempt++)
        zclock_sleep (20);
    cr_assert_eq (peers, 2);
    zsock_destroy (&pulls [0]);
    for (int attempt = 0; attempt < 100 && (peers = s_peers (zap, "dispatch")) != 1; attempt++)
        zclock_sleep (20);
    cr_assert_eq (peers, 1);
    zsock_destroy (&pulls [1]);
    zstr_free (&endpoint);
    zsock_destroy (&server);
    zactor_destroy (&zap);
    zcert_destroy (&server_cert);
    zcert_destroy (&worker);
    zstr_free (&allow);
}

Test (zap, without_a_handler_curve_is_refused)
{
    //  ZMQ_ZAP_ENFORCE_DOMAIN: no handler bound means no connection.
    zcert_t *server_cert = s_cert ("broker", NULL, false);
    zcert_t *worker = s_cert ("worker", "worker", true);
    char *endpoint;
    zsock_t *server = s_curve_server (ZMQ_ROUTER, server_cert, "results", &endpoint);
    cr_assert_not (s_gets_through (server, endpoint, worker, server_cert));
    zstr_free (&endpoint);
    zsock_destroy (&server);
    zcert_destroy (&server_cert);
    zcert_destroy (&worker);
}

Test (zap, loads_curve_keys_from_certificate_files)
{
    zcert_t *cert = s_cert ("me", "worker", false);
    zcert_t *server_cert = s_cert ("broker", NULL, false);
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    cr_assert_not (pz_sockopts_curve (&opts));
    char *secret = zsys_sprintf ("%s/me.cert_secret", s_dir);
    char *public = zsys_sprintf ("%s/me.cert", s_dir);
    char *server = zsys_sprintf ("%s/broker.cert", s_dir);
    cr_assert_eq (pz_sockopts_set_curve (&opts, "test", secret, server), 0);
    cr_assert (pz_sockopts_curve (&opts));
    cr_assert_str_eq (opts.curve_secret, zcert_secret_txt (cert));
    cr_assert_str_eq (opts.curve_public, zcert_public_txt (cert));
    cr_assert_str_eq (opts.curve_server, zcert_public_txt (server_cert));
    //  NAME.cert works too when NAME.cert_secret is next to it.
    pz_sockopts_init (&opts);
    cr_assert_eq (pz_sockopts_set_curve (&opts, "test", public, NULL), 0);
    cr_assert_str_eq (opts.curve_secret, zcert_secret_txt (cert));
    //  A public certificate alone is no secret key; missing files fail.
    char *lone = zsys_sprintf ("%s/allow/lone.cert", s_dir);
    cr_assert_eq (zcert_save_public (cert, lone), 0);
    pz_sockopts_init (&opts);
    cr_assert_eq (pz_sockopts_set_curve (&opts, "test", lone, NULL), -1);
    cr_assert_not (pz_sockopts_curve (&opts));
    cr_assert_eq (pz_sockopts_set_curve (&opts, "test", "/nonexistent.cert", NULL), -1);
    cr_assert_eq (pz_sockopts_set_curve (&opts, "test", secret, "/nonexistent.cert"), -1);
    cr_assert_not (pz_sockopts_curve (&opts));
    zstr_free (&lone);
    zstr_free (&secret);
    zstr_free (&public);
    zstr_free (&server);
    zcert_destroy (&cert);
    zcert_destroy (&server_cert);
}
