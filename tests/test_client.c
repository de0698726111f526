/*  =========================================================================
    test_client - pz_client: several requests on one DEALER, matched to
                  their slots; Lazy Pirate resends; stray replies dropped

    The peer is a plain REP socket where the client must look like a REQ
    peer to it, and a ROUTER where a test needs to hold back, repeat or
    forge replies. Doubles as an example of the DEALER-to-REP envelope.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

//  Opens a socket of type bound to a free loopback port, 2 s receive
//  timeout; *endpoint gets the address (caller frees).
static zsock_t *
s_bind (int type, char **endpoint)
{
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    zsock_t *sock = pz_sock_open (type, "test peer", "tcp://127.0.0.1:*", true, &opts);
    cr_assert (sock);
    zsock_set_rcvtimeo (sock, 2000);
    *endpoint = zsock_last_endpoint (sock);
    return sock;
}

static pz_client_t *
s_client (const char *endpoint, int slots, int64_t timeout_ms, int64_t retries)
{
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    pz_client_t *client = pz_client_new ("test", endpoint, slots, timeout_ms, retries, &opts);
    cr_assert (client);
    return client;
}

//  Puts one record (tag, value) in slot and sends it.
static void
s_send (pz_client_t *client, int slot, char tag, int64_t value)
{
    pz_record_encode (pz_client_request (client, slot), tag, value);
    pz_client_send (client, slot, PZ_RECORD_SIZE, zclock_mono ());
}

//  Receives one reply within 2 s; returns its slot, and its value in *value.
static int
s_receive (pz_client_t *client, int64_t *value)
{
    uint8_t reply [PZ_RECORD_SIZE];
    int size = 0;
    int slot = pz_client_receive (client, reply, &size, 2000);
    if (slot != -1) {
        cr_assert_eq (size, PZ_RECORD_SIZE);
        *value = pz_record_value (reply);
    }
    return slot;
}

//  A ROUTER peer's view of one request: who sent it, its tag, its body.
typedef struct {
    zframe_t *identity;
    zframe_t *tag;
    int64_t value;
} s_request_t;

static s_request_t
s_router_recv (zsock_t *router)
{
    zmsg_t *msg = zmsg_recv (router);
    cr_assert (msg, "no request reached the ROUTER");
    cr_assert_eq (zmsg_size (msg), 4, "not [identity][tag][empty][body]");
    s_request_t request;
    request.identity = zmsg_pop (msg);
    request.tag = zmsg_pop (msg);
    zframe_t *empty = zmsg_pop (msg);
    cr_assert_eq (zframe_size (empty), 0);
    zframe_destroy (&empty);
    zframe_t *body = zmsg_pop (msg);
    cr_assert_eq (zframe_size (body), PZ_RECORD_SIZE);
    request.value = pz_record_value (zframe_data (body));
    zframe_destroy (&body);
    zmsg_destroy (&msg);
    return request;
}

//  Replies A value to request as a REP socket would: identity, tag, empty.
static void
s_router_reply (zsock_t *router, s_request_t *request, int64_t value)
{
    uint8_t reply [PZ_RECORD_SIZE];
    pz_record_encode (reply, PZ_TAG_ACK, value);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (request->identity) });
    zmsg_append (msg, &(zframe_t *) { zframe_dup (request->tag) });
    zmsg_addmem (msg, "", 0);
    zmsg_addmem (msg, reply, sizeof reply);
    cr_assert_eq (zmsg_send (&msg, router), 0);
}

static void
s_request_free (s_request_t *request)
{
    zframe_destroy (&request->identity);
    zframe_destroy (&request->tag);
}


Test (client, several_requests_are_outstanding_and_each_reply_finds_its_slot, .timeout = 20)
{
    char *endpoint;
    zsock_t *rep = s_bind (ZMQ_REP, &endpoint);
    pz_client_t *client = s_client (endpoint, 4, 2000, 1);
    for (int slot = 0; slot < 4; slot++) {
        cr_assert_eq (pz_client_free_slot (client), slot);
        s_send (client, slot, PZ_TAG_NUMBER, 100 + slot);
    }
    cr_assert_eq (pz_client_free_slot (client), -1, "a fifth slot was offered");
    cr_assert_eq (pz_client_busy (client), 4);
    //  The REP socket sees four ordinary requests and answers each with
    //  its own value doubled.
    for (int request = 0; request < 4; request++) {
        uint8_t body [PZ_RECORD_SIZE];
        cr_assert_eq (zmq_recv (zsock_resolve (rep), body, sizeof body, 0), PZ_RECORD_SIZE);
        pz_sock_send_record (rep, PZ_TAG_ACK, 2 * pz_record_value (body));
    }
    for (int reply = 0; reply < 4; reply++) {
        int64_t value = 0;
        int slot = s_receive (client, &value);
        cr_assert_neq (slot, -1, "reply %d did not come", reply);
        cr_assert_eq (value, 2 * (100 + slot), "slot %d got the answer for %ld",
                      slot, (long) value / 2);
    }
    cr_assert_eq (pz_client_busy (client), 0);
    cr_assert_eq (pz_client_deadline (client), INT64_MAX);
    cr_assert_eq (pz_client_strays (client), 0);
    pz_client_destroy (&client);
    cr_assert_null (client);
    pz_client_destroy (&client);        //  NULL-safe
    zsock_destroy (&rep);
    zstr_free (&endpoint);
}

Test (client, an_overdue_reply_brings_the_same_request_on_a_new_connection, .timeout = 20)
{
    char *endpoint;
    zsock_t *router = s_bind (ZMQ_ROUTER, &endpoint);
    //  A timeout long enough that the first check below comes before it
    //  even under valgrind, which slows everything tenfold.
    pz_client_t *client = s_client (endpoint, 2, 1000, 1);
    s_send (client, 0, PZ_TAG_NUMBER, 7);
    s_request_t first = s_router_recv (router);
    cr_assert_eq (first.value, 7);
    cr_assert_eq (pz_client_expire (client, zclock_mono ()), 0, "expired too early");
    cr_assert_eq (pz_client_resends (client), 0);

    //  No reply: past the timeout the request goes again, on a new
    //  connection (another identity at the ROUTER) and under a new tag.
    zclock_sleep (1100);
    cr_assert_eq (pz_client_expire (client, zclock_mono ()), 0);
    cr_assert_eq (pz_client_resends (client), 1);
    s_request_t second = s_router_recv (router);
    cr_assert_eq (second.value, 7);
    cr_assert_not (zframe_eq (first.identity, second.identity), "same connection");
    cr_assert_not (zframe_eq (first.tag, second.tag), "same tag");

    //  The answer on the new connection is taken.
    s_router_reply (router, &second, 1);
    int64_t value = 0;
    cr_assert_eq (s_receive (client, &value), 0);
    cr_assert_eq (value, 1);

    //  A request never answered is given up after 1 + retries sends.
    s_send (client, 1, PZ_TAG_NUMBER, 8);
    zclock_sleep (1100);
    cr_assert_eq (pz_client_expire (client, zclock_mono ()), 0);
    zclock_sleep (1100);
    cr_assert_eq (pz_client_expire (client, zclock_mono ()), -1);

    s_request_free (&first);
    s_request_free (&second);
    pz_client_destroy (&client);
    zsock_destroy (&router);
    zstr_free (&endpoint);
}

Test (client, replies_that_fit_no_outstanding_request_are_dropped, .timeout = 20)
{
    char *endpoint;
    zsock_t *router = s_bind (ZMQ_ROUTER, &endpoint);
    pz_client_t *client = s_client (endpoint, 2, 2000, 1);
    s_send (client, 0, PZ_TAG_NUMBER, 9);
    s_request_t request = s_router_recv (router);

    //  A forged tag, then the real reply twice, then a reply without the
    //  empty delimiter: only the first real one answers the request.
    zframe_t *real_tag = request.tag;
    uint64_t forged = 0xdeadbeef00ULL;
    request.tag = zframe_new (&forged, sizeof forged);
    s_router_reply (router, &request, 99);
    zframe_destroy (&request.tag);
    request.tag = real_tag;
    s_router_reply (router, &request, 1);
    s_router_reply (router, &request, 2);
    zmsg_t *malformed = zmsg_new ();
    zmsg_append (malformed, &(zframe_t *) { zframe_dup (request.identity) });
    zmsg_addmem (malformed, "A", 1);
    zmsg_send (&malformed, router);

    int64_t value = 0;
    cr_assert_eq (s_receive (client, &value), 0);
    cr_assert_eq (value, 1, "took a reply that was not the first real one");
    //  The rest is read and dropped; nothing else is answered.
    cr_assert_eq (s_receive (client, &value), -1);
    cr_assert_eq (pz_client_strays (client), 3);
    cr_assert_eq (pz_client_busy (client), 0);
    s_request_free (&request);
    pz_client_destroy (&client);
    zsock_destroy (&router);
    zstr_free (&endpoint);
}

//  Found by fuzz/fuzz_client.c: a request parked after E 9 has no send
//  outstanding, so a second reply to its last send (a peer that answers
//  twice) must be dropped, not taken as the parked request's answer.
Test (client, a_second_reply_to_a_parked_request_is_a_stray, .timeout = 20)
{
    char *endpoint;
    zsock_t *router = s_bind (ZMQ_ROUTER, &endpoint);
    pz_client_t *client = s_client (endpoint, 2, 5000, 1);
    s_send (client, 0, PZ_TAG_NUMBER, 7);
    s_request_t request = s_router_recv (router);
    //  E 9, then the same answer again.
    for (int copy = 0; copy < 2; copy++) {
        uint8_t reply [PZ_RECORD_SIZE];
        pz_record_encode (reply, PZ_TAG_ERROR, PZ_ERR_UNAVAILABLE);
        zmsg_t *msg = zmsg_new ();
        zmsg_append (msg, &(zframe_t *) { zframe_dup (request.identity) });
        zmsg_append (msg, &(zframe_t *) { zframe_dup (request.tag) });
        zmsg_addmem (msg, "", 0);
        zmsg_addmem (msg, reply, sizeof reply);
        cr_assert_eq (zmsg_send (&msg, router), 0);
    }
    int64_t value = 0;
    cr_assert_eq (s_receive (client, &value), 0);
    cr_assert_eq (value, PZ_ERR_UNAVAILABLE);
    int64_t now_ms = zclock_mono ();
    pz_client_send_later (client, 0, now_ms, 60000);
    cr_assert_eq (pz_client_busy (client), 1);
    //  The copy arrives while the request is parked: dropped.
    uint8_t reply [PZ_RECORD_SIZE];
    int size = 0;
    cr_assert_eq (pz_client_receive (client, reply, &size, 500), -1,
                  "the parked request took a second reply to its last send");
    cr_assert_eq (pz_client_strays (client), 1);
    cr_assert_eq (pz_client_busy (client), 1);
    //  Its next send is its only business: the deadline of the send
    //  answered is forgotten by the first look after it.
    cr_assert_leq (pz_client_deadline (client), now_ms + 60000);
    cr_assert_eq (pz_client_expire (client, now_ms + 59999), 0);
    cr_assert_eq (pz_client_deadline (client), now_ms + 60000);
    s_request_free (&request);
    pz_client_destroy (&client);
    zsock_destroy (&router);
    zstr_free (&endpoint);
}

Test (client, a_request_the_socket_has_no_room_for_goes_out_a_moment_later, .timeout = 20)
{
    //  Nobody listens yet, and the socket queues two messages at most:
    //  eight requests do not all fit. (ipc: an address no test can take.)
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "ipc:///tmp/pz-test-client-%d", (int) getpid ());
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    opts.sndhwm = 2;
    pz_client_t *client = pz_client_new ("test", endpoint, 8, 10000, 0, &opts);
    cr_assert (client);
    for (int slot = 0; slot < 8; slot++)
        s_send (client, slot, PZ_TAG_NUMBER, 100 + slot);
    cr_assert_eq (pz_client_busy (client), 8);
    int64_t sent_ms = zclock_mono ();
    cr_assert_lt (pz_client_deadline (client), sent_ms + 1000,
                  "no request waits to be sent again soon: all fitted");

    //  Once the peer is there, every request reaches it long before the
    //  10 s timeout: those that did not fit are tried again every few ms.
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    cr_assert (router);
    cr_assert_eq (zsock_bind (router, "%s", endpoint), 0);
    zsock_set_rcvtimeo (router, 10);
    int arrived = 0;
    while (arrived < 8 && zclock_mono () < sent_ms + 3000) {
        cr_assert_eq (pz_client_expire (client, zclock_mono ()), 0);
        zmsg_t *msg = zmsg_recv (router);
        if (msg) {
            zmsg_destroy (&msg);
            arrived++;
        }
    }
    cr_assert_eq (arrived, 8, "%d of 8 requests reached the peer within 3 s", arrived);
    cr_assert_eq (pz_client_resends (client), 0, "a request was resent as if lost");
    pz_client_destroy (&client);
    zsock_destroy (&router);
    unlink (endpoint + strlen ("ipc://"));
}
