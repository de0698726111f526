/*  =========================================================================
    test_broker - the broker in-process: dispatch, leases, reports, window,
                  retries, errors

    Each test runs a broker in a zactor on free loopback ports and plays
    source, worker and sink itself with plain sockets, so every record on
    the wire is visible. Doubles as an example of talking to the broker.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>

#include "broker.h"
#include "record.h"

//  A broker and the sockets a test talks to it with.
typedef struct _s_rig_t s_rig_t;
struct _s_rig_t {
    zactor_t *broker;           //  the broker under test
    zsock_t *source;            //  REQ to the source endpoint
    zsock_t *pull;              //  PULL from the dispatch endpoint (a worker)
    zsock_t *report;            //  REQ to the results endpoint (a worker)
    zsock_t *sub;               //  SUB to the publish endpoint, all tags (a sink)
    char *endpoints [4];        //  source, publish, dispatch, results
};

static pz_broker_stats_t
s_stats (s_rig_t *self)
{
    pz_broker_stats_t stats;
    memset (&stats, 0, sizeof stats);
    zstr_send (self->broker, "STATS");
    byte *data = NULL;
    size_t size = 0;
    zsock_recv (self->broker, "b", &data, &size);
    cr_assert_eq (size, sizeof stats);
    memcpy (&stats, data, sizeof stats);
    free (data);
    return stats;
}

//  Returns a socket of type connected to endpoint, with a 2 s receive
//  timeout so a missing message fails the test instead of hanging it.
static zsock_t *
s_connect (int type, const char *endpoint)
{
    zsock_t *sock = zsock_new (type);
    zsock_set_rcvtimeo (sock, 2000);
    zsock_set_linger (sock, 0);
    if (type == ZMQ_SUB)
        zsock_set_subscribe (sock, "");
    cr_assert_eq (zsock_connect (sock, "%s", endpoint), 0);
    return sock;
}

static s_rig_t *
s_rig_new_coalescing (int64_t lease_ms, int64_t max_inflight, int64_t max_dispatches,
                      bool with_worker, int64_t coalesce_ms)
{
    s_rig_t *self = (s_rig_t *) zmalloc (sizeof (s_rig_t));
    pz_broker_config_t config;
    pz_broker_config_init (&config);
    config.source_bind = config.publish_bind = "tcp://127.0.0.1:*";
    config.dispatch_bind = config.results_bind = "tcp://127.0.0.1:*";
    config.lease_ms = lease_ms;
    config.max_inflight = max_inflight;
    config.max_dispatches = max_dispatches;
    config.stats_s = 0;
    config.coalesce_ms = coalesce_ms;
    self->broker = zactor_new (pz_broker_actor, &config);
    zstr_send (self->broker, "ENDPOINTS");
    zsock_recv (self->broker, "ssss", &self->endpoints [0], &self->endpoints [1],
                &self->endpoints [2], &self->endpoints [3]);
    cr_assert (self->endpoints [3], "broker did not report its endpoints");

    self->source = s_connect (ZMQ_REQ, self->endpoints [0]);
    self->sub = s_connect (ZMQ_SUB, self->endpoints [1]);
    self->report = s_connect (ZMQ_REQ, self->endpoints [3]);
    if (with_worker)
        self->pull = s_connect (ZMQ_PULL, self->endpoints [2]);
    //  Wait until the SUB's subscription has reached the broker: anything
    //  published before that is not delivered to it.
    while (s_stats (self).subscriptions < 1)
        zclock_sleep (10);
    return self;
}

//  A rig whose broker coalesces as by default (1 ms).
static s_rig_t *
s_rig_new (int64_t lease_ms, int64_t max_inflight, int64_t max_dispatches,
           bool with_worker)
{
    return s_rig_new_coalescing (lease_ms, max_inflight, max_dispatches, with_worker, 1);
}

static void
s_rig_destroy (s_rig_t **self_p)
{
    s_rig_t *self = *self_p;
    zsock_destroy (&self->pull);
    zsock_destroy (&self->report);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->source);
    zactor_destroy (&self->broker);
    for (int index = 0; index < 4; index++)
        zstr_free (&self->endpoints [index]);
    free (self);
    *self_p = NULL;
}

//  Sends records (tags[i], values[i]) as one message on a REQ socket and
//  returns the one-record reply as tag and value.
static void
s_request (zsock_t *req, const char *tags, const int64_t *values,
           char *reply_tag, int64_t *reply_value)
{
    uint8_t frame [PZ_RECORD_SIZE * 16];
    size_t count = strlen (tags);
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, tags [index], values [index]);
    cr_assert_eq (zmq_send (zsock_resolve (req), frame, count * PZ_RECORD_SIZE, 0),
                  (int) (count * PZ_RECORD_SIZE));
    uint8_t reply [PZ_RECORD_SIZE];
    int size = zmq_recv (zsock_resolve (req), reply, sizeof reply, 0);
    cr_assert_eq (size, PZ_RECORD_SIZE, "no reply (%d)", size);
    *reply_tag = pz_record_tag (reply);
    *reply_value = pz_record_value (reply);
}

static void
s_expect (zsock_t *req, const char *tags, const int64_t *values, char tag, int64_t value)
{
    char got_tag;
    int64_t got_value;
    s_request (req, tags, values, &got_tag, &got_value);
    cr_assert (got_tag == tag && got_value == value, "expected %c %ld, got %c %ld",
               tag, (long) value, got_tag, (long) got_value);
}

//  Receives one message; returns its size (0 on timeout) and copies it.
static size_t
s_receive (zsock_t *sock, uint8_t *buffer, size_t capacity)
{
    int size = zmq_recv (zsock_resolve (sock), buffer, capacity, 0);
    return size > 0 ? (size_t) size : 0;
}

//  Receives a dispatch; checks it holds the values; returns its id.
static int64_t
s_pull_dispatch (s_rig_t *self, const int64_t *values, size_t count)
{
    uint8_t frame [PZ_MESSAGE_MAX];
    size_t size = s_receive (self->pull, frame, sizeof frame);
    cr_assert_eq (size, (count + 1) * PZ_RECORD_SIZE, "dispatch of %zu bytes", size);
    cr_assert_eq (pz_record_tag (frame), 'I');
    for (size_t index = 0; index < count; index++) {
        cr_assert_eq (pz_record_tag (frame + (index + 1) * PZ_RECORD_SIZE), 'N');
        cr_assert_eq (pz_record_value (frame + (index + 1) * PZ_RECORD_SIZE), values [index]);
    }
    return pz_record_value (frame);
}

Test (broker, accepted_numbers_are_published_dispatched_and_verdicts_split, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    int64_t numbers [] = { 7, 8, 11, 12 };
    s_expect (rig->source, "NNNN", numbers, 'A', 4);

    //  Sinks see the N message unchanged.
    uint8_t frame [PZ_MESSAGE_MAX];
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 4 * PZ_RECORD_SIZE);
    for (int index = 0; index < 4; index++)
        cr_assert_eq (pz_record_value (frame + index * PZ_RECORD_SIZE), numbers [index]);

    int64_t id = s_pull_dispatch (rig, numbers, 4);
    int64_t report [] = { id, 7, 8, 11, 12 };
    s_expect (rig->report, "IPCPC", report, 'A', 4);

    //  One P message and one C message, each in dispatch order, no I.
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 2 * PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'P' && pz_record_value (frame) == 7);
    cr_assert (pz_record_tag (frame + 9) == 'P' && pz_record_value (frame + 9) == 11);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 2 * PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'C' && pz_record_value (frame) == 8);
    cr_assert (pz_record_tag (frame + 9) == 'C' && pz_record_value (frame + 9) == 12);

    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 4);
    cr_assert_eq (stats.dispatched, 4);
    cr_assert_eq (stats.results, 4);
    cr_assert_eq (stats.inflight, 0);
    s_rig_destroy (&rig);
}

Test (broker, only_the_first_report_is_published, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    int64_t numbers [] = { 13 };
    s_expect (rig->source, "N", numbers, 'A', 1);
    uint8_t frame [PZ_MESSAGE_MAX];
    s_receive (rig->sub, frame, sizeof frame);          //  the N message
    int64_t id = s_pull_dispatch (rig, numbers, 1);
    int64_t report [] = { id, 13 };
    s_expect (rig->report, "IP", report, 'A', 1);
    s_expect (rig->report, "IP", report, 'A', 1);       //  a late duplicate
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), PZ_RECORD_SIZE);
    zsock_set_rcvtimeo (rig->sub, 300);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 0, "duplicate was published");
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.results, 1);
    cr_assert_eq (stats.duplicates, 1);
    s_rig_destroy (&rig);
}

Test (broker, bad_reports_get_errors_and_change_nothing, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    int64_t numbers [] = { 17, 18 };
    s_expect (rig->source, "NN", numbers, 'A', 2);
    int64_t id = s_pull_dispatch (rig, numbers, 2);

    int64_t short_report [] = { id, 17 };
    s_expect (rig->report, "IP", short_report, 'E', PZ_ERR_MISMATCH);
    int64_t long_report [] = { id, 17, 18, 19 };
    s_expect (rig->report, "IPCC", long_report, 'E', PZ_ERR_MISMATCH);
    int64_t wrong_values [] = { id, 17, 20 };
    s_expect (rig->report, "IPC", wrong_values, 'E', PZ_ERR_MISMATCH);
    int64_t swapped [] = { id, 18, 17 };
    s_expect (rig->report, "ICP", swapped, 'E', PZ_ERR_MISMATCH);
    int64_t never_issued [] = { id + 1000, 17, 18 };
    s_expect (rig->report, "IPC", never_issued, 'E', PZ_ERR_UNKNOWN_ID);
    int64_t zero_id [] = { 0, 17, 18 };
    s_expect (rig->report, "IPC", zero_id, 'E', PZ_ERR_UNKNOWN_ID);
    int64_t no_id [] = { 17, 18 };
    s_expect (rig->report, "PC", no_id, 'E', PZ_ERR_ID_PLACEMENT);
    int64_t wrong_tag [] = { id, 17, 18 };
    s_expect (rig->report, "INC", wrong_tag, 'E', PZ_ERR_TAG_REFUSED);

    //  Nothing was published and the dispatch is still outstanding...
    uint8_t frame [PZ_MESSAGE_MAX];
    s_receive (rig->sub, frame, sizeof frame);          //  the N message
    zsock_set_rcvtimeo (rig->sub, 300);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 0);
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.inflight, 2);
    cr_assert_eq (stats.errors [PZ_ERR_MISMATCH], 4);
    cr_assert_eq (stats.errors [PZ_ERR_UNKNOWN_ID], 2);
    //  ... so the right report is still taken.
    int64_t right [] = { id, 17, 18 };
    s_expect (rig->report, "IPC", right, 'A', 2);
    cr_assert_eq (s_stats (rig).results, 2);
    s_rig_destroy (&rig);
}

Test (broker, an_expired_lease_pushes_the_same_dispatch_again, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (300, 1000, 1000, true);
    int64_t numbers [] = { 19, 21 };
    s_expect (rig->source, "NN", numbers, 'A', 2);
    int64_t start_ms = zclock_mono ();
    int64_t first = s_pull_dispatch (rig, numbers, 2);
    //  No report: after the lease the same id comes again.
    int64_t second = s_pull_dispatch (rig, numbers, 2);
    cr_assert_eq (first, second);
    cr_assert_geq (zclock_mono () - start_ms, 250, "pushed again before the lease ran out");
    cr_assert_eq (s_stats (rig).redispatched, 2);
    int64_t report [] = { first, 19, 21 };
    s_expect (rig->report, "IPC", report, 'A', 2);
    //  Completed: no third push.
    zsock_set_rcvtimeo (rig->pull, 600);
    uint8_t frame [PZ_MESSAGE_MAX];
    cr_assert_eq (s_receive (rig->pull, frame, sizeof frame), 0);
    s_rig_destroy (&rig);
}

Test (broker, a_full_window_stops_reading_sources_until_results_come, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 3, 1000, false);
    int64_t numbers [] = { 2, 3, 5 };
    s_expect (rig->source, "NNN", numbers, 'A', 3);
    //  The window is full and no worker is connected: the next request
    //  waits, unanswered, and nothing of it is accepted.
    int64_t more [] = { 7 };
    uint8_t frame [PZ_RECORD_SIZE];
    pz_record_encode (frame, 'N', more [0]);
    zmq_send (zsock_resolve (rig->source), frame, sizeof frame, 0);
    zsock_set_rcvtimeo (rig->source, 500);
    int answered = zmq_recv (zsock_resolve (rig->source), frame, sizeof frame, 0);
    cr_assert_eq (answered, -1, "a request was answered past the window: %c %ld",
                  pz_record_tag (frame), (long) pz_record_value (frame));
    cr_assert_eq (s_stats (rig).accepted, 3);

    //  A worker arrives and reports: the window opens, the request is taken.
    rig->pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    int64_t id = s_pull_dispatch (rig, numbers, 3);
    int64_t report [] = { id, 2, 3, 5 };
    s_expect (rig->report, "IPPP", report, 'A', 3);
    zsock_set_rcvtimeo (rig->source, 2000);
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), frame, sizeof frame, 0),
                  PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'A' && pz_record_value (frame) == 1);
    cr_assert_eq (s_stats (rig).accepted, 4);
    s_rig_destroy (&rig);
}

Test (broker, a_full_message_window_stops_reading_sources_too, .timeout = 20)
{
    //  Room for many numbers, but for two messages only.
    s_rig_t *rig = s_rig_new (5000, 1000, 2, false);
    int64_t one [] = { 2 };
    s_expect (rig->source, "N", one, 'A', 1);
    s_expect (rig->source, "N", one, 'A', 1);
    uint8_t frame [PZ_RECORD_SIZE];
    pz_record_encode (frame, 'N', 3);
    zmq_send (zsock_resolve (rig->source), frame, sizeof frame, 0);
    zsock_set_rcvtimeo (rig->source, 500);
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), frame, sizeof frame, 0), -1,
                  "a third message was taken past --max-dispatches 2");
    cr_assert_eq (s_stats (rig).accepted, 2);
    s_rig_destroy (&rig);
}

Test (broker, a_repeated_request_id_is_acknowledged_not_accepted_twice, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, true);
    int64_t request [] = { 4242, 23, 25 };
    s_expect (rig->source, "INN", request, 'A', 2);
    s_expect (rig->source, "INN", request, 'A', 2);
    int64_t other [] = { 4243, 27 };
    s_expect (rig->source, "IN", other, 'A', 1);
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 3);
    cr_assert_eq (stats.requests, 2);
    cr_assert_eq (stats.retries, 1);
    //  Requests without an id still work, and each counts.
    int64_t plain [] = { 29 };
    s_expect (rig->source, "N", plain, 'A', 1);
    s_expect (rig->source, "N", plain, 'A', 1);
    cr_assert_eq (s_stats (rig).accepted, 5);
    //  The I record is not published: sinks see N records only.
    uint8_t frame [PZ_MESSAGE_MAX];
    size_t size = s_receive (rig->sub, frame, sizeof frame);
    cr_assert_eq (size, 2 * PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'N' && pz_record_value (frame) == 23);
    s_rig_destroy (&rig);
}

Test (broker, malformed_source_messages_get_their_codes, .timeout = 20)
{
    s_rig_t *rig = s_rig_new (5000, 1000, 1000, false);
    int64_t values [] = { 1, 2 };
    s_expect (rig->source, "P", values, 'E', PZ_ERR_TAG_REFUSED);
    s_expect (rig->source, "NI", values, 'E', PZ_ERR_ID_PLACEMENT);
    //  A two-frame message, then a bad length: answered, not fatal.
    zmq_send (zsock_resolve (rig->source), "N12345678", 9, ZMQ_SNDMORE);
    zmq_send (zsock_resolve (rig->source), "N12345678", 9, 0);
    uint8_t reply [PZ_RECORD_SIZE];
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), reply, sizeof reply, 0), 9);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_MULTIPART);
    zmq_send (zsock_resolve (rig->source), "N1234", 5, 0);
    cr_assert_eq (zmq_recv (zsock_resolve (rig->source), reply, sizeof reply, 0), 9);
    cr_assert (pz_record_tag (reply) == 'E' && pz_record_value (reply) == PZ_ERR_LENGTH);
    s_expect (rig->source, "NN", values, 'A', 2);
    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.accepted, 2);
    cr_assert_eq (stats.errors [PZ_ERR_MULTIPART], 1);
    s_rig_destroy (&rig);
}

//  Sends count N records (first, first + 1, ...) as one request; checks
//  the ack.
static void
s_send_run (s_rig_t *self, int64_t first, size_t count)
{
    static uint8_t frame [PZ_MESSAGE_MAX];
    for (size_t index = 0; index < count; index++)
        pz_record_encode (frame + index * PZ_RECORD_SIZE, 'N', first + (int64_t) index);
    cr_assert_eq (zmq_send (zsock_resolve (self->source), frame, count * PZ_RECORD_SIZE, 0),
                  (int) (count * PZ_RECORD_SIZE));
    uint8_t reply [PZ_RECORD_SIZE];
    cr_assert_eq (zmq_recv (zsock_resolve (self->source), reply, sizeof reply, 0), PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (reply) == 'A' && pz_record_value (reply) == (int64_t) count);
}

Test (broker, messages_waiting_for_a_worker_merge_into_one_dispatch, .timeout = 20)
{
    //  No worker yet, and a draft may wait a second for more numbers.
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, false, 1000);
    int64_t first [] = { 31, 32 };
    s_expect (rig->source, "NN", first, 'A', 2);
    int64_t second [] = { 33 };
    s_expect (rig->source, "N", second, 'A', 1);
    int64_t third [] = { 777, 34, 35 };
    s_expect (rig->source, "INN", third, 'A', 2);

    //  Three source messages, one dispatch, numbers in the order accepted.
    rig->pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    int64_t numbers [] = { 31, 32, 33, 34, 35 };
    int64_t id = s_pull_dispatch (rig, numbers, 5);
    int64_t report [] = { id, 31, 32, 33, 34, 35 };
    s_expect (rig->report, "IPCCCC", report, 'A', 5);

    //  Sinks still see each source message as it came, then the verdicts.
    uint8_t frame [PZ_MESSAGE_MAX];
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 2 * PZ_RECORD_SIZE);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 1 * PZ_RECORD_SIZE);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 2 * PZ_RECORD_SIZE);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 1 * PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'P' && pz_record_value (frame) == 31);
    cr_assert_eq (s_receive (rig->sub, frame, sizeof frame), 4 * PZ_RECORD_SIZE);
    cr_assert (pz_record_tag (frame) == 'C' && pz_record_value (frame) == 32);

    pz_broker_stats_t stats = s_stats (rig);
    cr_assert_eq (stats.requests, 3);
    cr_assert_eq (stats.dispatches, 1);
    cr_assert_eq (stats.results, 5);
    cr_assert_eq (stats.inflight, 0);
    s_rig_destroy (&rig);
}

Test (broker, a_merged_dispatch_holds_at_most_4096_numbers, .timeout = 20)
{
    s_rig_t *rig = s_rig_new_coalescing (5000, 100000, 1000, false, 300);
    s_send_run (rig, 1000, 2000);
    s_send_run (rig, 3000, 2000);
    s_send_run (rig, 5000, 2000);       //  would make 6000: starts a dispatch
    rig->pull = s_connect (ZMQ_PULL, rig->endpoints [2]);
    static uint8_t frame [PZ_MESSAGE_MAX + PZ_RECORD_SIZE];
    cr_assert_eq (s_receive (rig->pull, frame, sizeof frame), 4001 * PZ_RECORD_SIZE);
    cr_assert_eq (pz_record_value (frame + 2001 * PZ_RECORD_SIZE), 3000);
    cr_assert_eq (s_receive (rig->pull, frame, sizeof frame), 2001 * PZ_RECORD_SIZE);
    cr_assert_eq (pz_record_value (frame + PZ_RECORD_SIZE), 5000);
    cr_assert_eq (s_stats (rig).dispatches, 2);
    s_rig_destroy (&rig);
}

Test (broker, a_draft_waits_coalesce_ms_for_company_and_no_longer, .timeout = 20)
{
    int64_t numbers [] = { 37 };
    //  A worker is there, but the draft waits 400 ms for more numbers.
    s_rig_t *rig = s_rig_new_coalescing (5000, 1000, 1000, true, 400);
    int64_t start_ms = zclock_mono ();
    s_expect (rig->source, "N", numbers, 'A', 1);
    s_pull_dispatch (rig, numbers, 1);
    int64_t waited_ms = zclock_mono () - start_ms;
    cr_assert_geq (waited_ms, 350, "pushed after %ld ms", (long) waited_ms);
    s_rig_destroy (&rig);

    //  --coalesce-ms 0: pushed at once (well within the 400 ms above).
    rig = s_rig_new_coalescing (5000, 1000, 1000, true, 0);
    start_ms = zclock_mono ();
    s_expect (rig->source, "N", numbers, 'A', 1);
    s_pull_dispatch (rig, numbers, 1);
    waited_ms = zclock_mono () - start_ms;
    cr_assert_lt (waited_ms, 300, "held for %ld ms without coalescing", (long) waited_ms);
    s_rig_destroy (&rig);
}
