/*  =========================================================================
    bare - the baselines PlayØMQ is measured against: plain ZeroMQ, no
           acknowledgements, no ids, no leases, no validation

    One executable, one role per process, every socket on tcp loopback, so
    that the baselines pay what PlayØMQ pays (separate processes, the kernel's
    TCP stack, one libzmq I/O thread each). bench/pipeline.py starts the
    roles, reads the endpoints they print, and times them beside the real
    programs in the same run.

        playzmq-bench-bare version
        playzmq-bench-bare rep
        playzmq-bench-bare req     --connect EP --count N
        playzmq-bench-bare broker
        playzmq-bench-bare worker  --dispatch EP --results EP [--no-test]
        playzmq-bench-bare source  --connect EP --count N --batch K [--seed S]
        playzmq-bench-bare sink    --connect EP --count N [--text]

    rep and broker bind tcp://127.0.0.1:* and print what they bound on stdout
    (`source EP`, one line per socket), then run until SIGINT or SIGTERM.

    (a) REQ -> REP: `req` sends 9-byte messages and waits for each echo from
        `rep`; it prints round trips per second and the p50/p99 round trip.
    (b) the pipeline, the same shape as PlayØMQ's: `source` PUSHes messages
        of K records (tag N, big-endian int64, random below 2^63) to
        `broker`, which PULLs them, PUBlishes a copy (zmq_msg_copy: shared,
        not copied) and PUSHes the message on to the workers; each `worker`
        PULLs, tests every number with pz_prime_check (proto/prime.h: the
        very test the real worker runs) and PUSHes a P message and a C
        message back; the broker PUBlishes them unchanged; `sink` SUBscribes
        to P and C and counts records until it has N, then prints its time;
        with --text it also prints every record to stdout, `P 97` a line,
        as `playzmq-sink` does by default (formatted into a 64 KiB buffer,
        written whole), so that a text sink has a baseline of its shape.
        With --no-test the worker skips the test and takes the verdict from
        the number's lowest bit, so the shape (two messages back per message
        out) stays and only the computation goes: that is the messaging
        ceiling.
    Deliberately missing, compared with PlayØMQ: the source's REQ/ack round
    trip, request and dispatch ids, leases, the window, retries, record
    validation, the worker's REQ/ack round trip, and the broker's split of
    a report into P and C (the bare worker splits).
    =========================================================================
*/
#include "prime.h"
#include "record.h"
#include "reference.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_SAMPLES_MAX       (1 << 20)

//  Seconds on CLOCK_MONOTONIC, which every process on the machine shares.
static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

//  Returns the value after --name in argv, or fallback.
static const char *
s_arg (int argc, char *argv [], const char *name, const char *fallback)
{
    for (int index = 2; index + 1 < argc; index++)
        if (streq (argv [index], name))
            return argv [index + 1];
    return fallback;
}

static bool
s_flag (int argc, char *argv [], const char *name)
{
    for (int index = 2; index < argc; index++)
        if (streq (argv [index], name))
            return true;
    return false;
}

static int64_t
s_int_arg (int argc, char *argv [], const char *name, int64_t fallback)
{
    const char *text = s_arg (argc, argv, name, NULL);
    return text ? strtoll (text, NULL, 10) : fallback;
}

static int
s_compare_doubles (const void *left, const void *right)
{
    double a = *(const double *) left;
    double b = *(const double *) right;
    return (a > b) - (a < b);
}

//  Binds a socket of type to tcp://127.0.0.1:* and prints "name EP".
static zsock_t *
s_bind (int type, const char *name)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 0);
    //  No flow control reaches back from a SUB: the baseline must not drop
    //  verdicts (the sink counts them all), so PUB queues without limit.
    //  Options must be set before the bind to apply to its connections.
    if (type == ZMQ_XPUB)
        zsock_set_sndhwm (sock, 0);
    if (zsock_bind (sock, "tcp://127.0.0.1:*") == -1) {
        fprintf (stderr, "bare: cannot bind %s: %s\n", name, zmq_strerror (zmq_errno ()));
        exit (1);
    }
    char *endpoint = zsock_last_endpoint (sock);
    printf ("%s %s\n", name, endpoint);
    fflush (stdout);
    zstr_free (&endpoint);
    return sock;
}

static zsock_t *
s_connect (int type, const char *endpoint)
{
    zsock_t *sock = zsock_new (type);
    assert (sock);
    zsock_set_linger (sock, 1000);
    if (!endpoint || zsock_connect (sock, "%s", endpoint) == -1) {
        fprintf (stderr, "bare: cannot connect to %s\n", endpoint ? endpoint : "(none)");
        exit (2);
    }
    return sock;
}


//  --------------------------------------------------------------------------
//  (a) REQ -> REP

static int
s_rep (void)
{
    zsock_t *rep = s_bind (ZMQ_REP, "rep");
    void *handle = zsock_resolve (rep);
    uint8_t buffer [PZ_RECORD_SIZE];
    uint64_t served = 0;
    while (!zsys_interrupted) {
        int size = zmq_recv (handle, buffer, sizeof buffer, 0);
        if (size == -1)
            continue;           //  EINTR: look at zsys_interrupted
        zmq_send (handle, buffer, (size_t) size, 0);
        served++;
    }
    fprintf (stderr, "bare rep: served %" PRIu64 "\n", served);
    zsock_destroy (&rep);
    return 0;
}

static int
s_req (int argc, char *argv [])
{
    int64_t count = s_int_arg (argc, argv, "--count", 10000);
    zsock_t *req = s_connect (ZMQ_REQ, s_arg (argc, argv, "--connect", NULL));
    void *handle = zsock_resolve (req);
    size_t kept = count < S_SAMPLES_MAX ? (size_t) count : S_SAMPLES_MAX;
    double *samples = (double *) calloc (kept ? kept : 1, sizeof (double));
    assert (samples);
    uint8_t request [PZ_RECORD_SIZE], reply [PZ_RECORD_SIZE];
    //  One round trip first, so the connection is up before the clock runs.
    pz_record_encode (request, 'N', 0);
    zmq_send (handle, request, sizeof request, 0);
    zmq_recv (handle, reply, sizeof reply, 0);
    double started = s_now ();
    int64_t done = 0;
    for (; done < count && !zsys_interrupted; done++) {
        double sent = s_now ();
        pz_record_encode (request, 'N', done);
        if (zmq_send (handle, request, sizeof request, 0) == -1
        ||  zmq_recv (handle, reply, sizeof reply, 0) == -1)
            break;
        if ((size_t) done < kept)
            samples [done] = s_now () - sent;
    }
    double seconds = s_now () - started;
    size_t sampled = (size_t) done < kept ? (size_t) done : kept;
    qsort (samples, sampled, sizeof (double), s_compare_doubles);
    double p50 = sampled ? samples [sampled / 2] * 1e3 : 0;
    double p99 = sampled ? samples [sampled * 99 / 100] * 1e3 : 0;
    printf ("bare req: %" PRId64 " round trips in %.3f s (%.0f per s); "
            "p50 %.3f ms p99 %.3f ms\n", done, seconds,
            seconds > 0 ? (double) done / seconds : 0.0, p50, p99);
    fflush (stdout);
    free (samples);
    zsock_destroy (&req);
    return done == count ? 0 : 1;
}


//  --------------------------------------------------------------------------
//  (b) the pipeline

static int
s_broker (void)
{
    zsock_t *source = s_bind (ZMQ_PULL, "source");
    zsock_t *publish = s_bind (ZMQ_XPUB, "publish");
    zsock_t *dispatch = s_bind (ZMQ_PUSH, "dispatch");
    zsock_t *results = s_bind (ZMQ_PULL, "results");
    void *source_h = zsock_resolve (source);
    void *publish_h = zsock_resolve (publish);
    void *dispatch_h = zsock_resolve (dispatch);
    void *results_h = zsock_resolve (results);
    zsock_set_xpub_verbose (publish, 1);

    //  A message PUSH could not take yet waits here, and the source is not
    //  read meanwhile: blocking on PUSH instead could deadlock with workers
    //  blocked on their results.
    zmq_msg_t held;
    bool holding = false;
    uint64_t forwarded = 0, verdicts = 0;
    while (!zsys_interrupted) {
        zmq_pollitem_t items [] = {
            { results_h, 0, ZMQ_POLLIN, 0 },
            { publish_h, 0, ZMQ_POLLIN, 0 },
            { holding ? dispatch_h : source_h, 0, holding ? ZMQ_POLLOUT : ZMQ_POLLIN, 0 }
        };
        if (zmq_poll (items, 3, 100) <= 0)
            continue;
        for (int burst = 0; burst < 64 && (items [0].revents & ZMQ_POLLIN); burst++) {
            zmq_msg_t message;
            zmq_msg_init (&message);
            if (zmq_msg_recv (&message, results_h, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close (&message);
                break;
            }
            verdicts += zmq_msg_size (&message) / PZ_RECORD_SIZE;
            if (zmq_msg_send (&message, publish_h, ZMQ_DONTWAIT) == -1)
                zmq_msg_close (&message);
        }
        if (items [1].revents & ZMQ_POLLIN) {
            zmq_msg_t message;
            zmq_msg_init (&message);
            if (zmq_msg_recv (&message, publish_h, ZMQ_DONTWAIT) != -1
            &&  zmq_msg_size (&message) >= 1 && ((uint8_t *) zmq_msg_data (&message)) [0] == 1)
                fprintf (stderr, "bare broker: subscribed to '%.*s'\n",
                         (int) zmq_msg_size (&message) - 1,
                         (char *) zmq_msg_data (&message) + 1);
            zmq_msg_close (&message);
        }
        if (holding && (items [2].revents & ZMQ_POLLOUT)) {
            if (zmq_msg_send (&held, dispatch_h, ZMQ_DONTWAIT) != -1)
                holding = false;
        }
        else
        if (!holding && (items [2].revents & ZMQ_POLLIN)) {
            for (int burst = 0; burst < 64 && !holding; burst++) {
                zmq_msg_init (&held);
                if (zmq_msg_recv (&held, source_h, ZMQ_DONTWAIT) == -1) {
                    zmq_msg_close (&held);
                    break;
                }
                forwarded += zmq_msg_size (&held) / PZ_RECORD_SIZE;
                zmq_msg_t copy;
                zmq_msg_init (&copy);
                zmq_msg_copy (&copy, &held);
                if (zmq_msg_send (&copy, publish_h, ZMQ_DONTWAIT) == -1)
                    zmq_msg_close (&copy);
                holding = zmq_msg_send (&held, dispatch_h, ZMQ_DONTWAIT) == -1;
            }
        }
    }
    if (holding)
        zmq_msg_close (&held);
    fprintf (stderr, "bare broker: forwarded %" PRIu64 " numbers, published %"
             PRIu64 " verdicts\n", forwarded, verdicts);
    zsock_destroy (&results);
    zsock_destroy (&dispatch);
    zsock_destroy (&publish);
    zsock_destroy (&source);
    return 0;
}

static int
s_worker (int argc, char *argv [])
{
    bool test = !s_flag (argc, argv, "--no-test");
    zsock_t *pull = s_connect (ZMQ_PULL, s_arg (argc, argv, "--dispatch", NULL));
    zsock_t *push = s_connect (ZMQ_PUSH, s_arg (argc, argv, "--results", NULL));
    void *pull_h = zsock_resolve (pull);
    void *push_h = zsock_resolve (push);
    static int64_t values [PZ_RECORDS_MAX];
    static uint8_t verdicts [PZ_RECORDS_MAX];
    static uint8_t primes [PZ_RECORD_SIZE * PZ_RECORDS_MAX];
    static uint8_t composites [PZ_RECORD_SIZE * PZ_RECORDS_MAX];
    zmq_msg_t message;
    zmq_msg_init (&message);
    uint64_t tested = 0;
    while (!zsys_interrupted) {
        if (zmq_msg_recv (&message, pull_h, 0) == -1)
            continue;           //  EINTR: look at zsys_interrupted
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&message);
        size_t count = zmq_msg_size (&message) / PZ_RECORD_SIZE;
        if (count > PZ_RECORDS_MAX)
            count = PZ_RECORDS_MAX;
        for (size_t index = 0; index < count; index++)
            values [index] = pz_record_value (data + index * PZ_RECORD_SIZE);
        if (test)
            pz_prime_check (values, verdicts, count);
        else
            for (size_t index = 0; index < count; index++)
                verdicts [index] = (uint8_t) (values [index] & 1);
        size_t prime_size = 0, composite_size = 0;
        for (size_t index = 0; index < count; index++)
            if (verdicts [index]) {
                pz_record_encode (primes + prime_size, 'P', values [index]);
                prime_size += PZ_RECORD_SIZE;
            }
            else {
                pz_record_encode (composites + composite_size, 'C', values [index]);
                composite_size += PZ_RECORD_SIZE;
            }
        if (prime_size)
            zmq_send (push_h, primes, prime_size, 0);
        if (composite_size)
            zmq_send (push_h, composites, composite_size, 0);
        tested += count;
    }
    zmq_msg_close (&message);
    fprintf (stderr, "bare worker: tested %" PRIu64 " numbers\n", tested);
    zsock_destroy (&push);
    zsock_destroy (&pull);
    return 0;
}

static int
s_source (int argc, char *argv [])
{
    int64_t count = s_int_arg (argc, argv, "--count", 100000);
    int64_t batch = s_int_arg (argc, argv, "--batch", 1024);
    uint64_t state = (uint64_t) s_int_arg (argc, argv, "--seed", 1);
    if (batch < 1 || batch > PZ_RECORDS_MAX) {
        fprintf (stderr, "bare source: --batch must be 1 to %d\n", PZ_RECORDS_MAX);
        return 2;
    }
    zsock_t *push = s_connect (ZMQ_PUSH, s_arg (argc, argv, "--connect", NULL));
    //  Every message queued must reach the broker, however long that takes.
    zsock_set_linger (push, -1);
    void *handle = zsock_resolve (push);
    static uint8_t message [PZ_RECORD_SIZE * PZ_RECORDS_MAX];
    double started = s_now ();
    int64_t sent = 0;
    while (sent < count && !zsys_interrupted) {
        int64_t records = count - sent < batch ? count - sent : batch;
        for (int64_t index = 0; index < records; index++)
            //  Uniform below 2^63: the very values the real source sends
            //  with --min 0 --max 2^63-1 and the same seed (its unbiased
            //  range reduction, (draw * 2^63) >> 64, is draw >> 1 there).
            pz_record_encode (message + index * PZ_RECORD_SIZE, 'N',
                              (int64_t) (ref_splitmix64 (&state) >> 1));
        if (zmq_send (handle, message, (size_t) (records * PZ_RECORD_SIZE), 0) == -1)
            continue;           //  EINTR: look at zsys_interrupted
        sent += records;
    }
    double seconds = s_now () - started;
    fprintf (stderr, "bare source: sent %" PRId64 " in %.3f s (%.0f numbers/s)\n",
             sent, seconds, seconds > 0 ? (double) sent / seconds : 0.0);
    zsock_destroy (&push);      //  waits until the last message is out
    return sent == count ? 0 : 1;
}

//  Appends "T value\n" for each record of a message to out (stdout),
//  through a buffer written whole when it could not take a message more.
static void
s_print_text (const uint8_t *data, int64_t records)
{
    static char buffer [64 * 1024 + 24 * PZ_RECORDS_MAX];
    static size_t used = 0;
    if (used + (size_t) records * 24 > sizeof buffer || records == 0) {
        for (size_t done = 0; done < used; ) {
            ssize_t written = write (STDOUT_FILENO, buffer + done, used - done);
            if (written <= 0)
                exit (1);
            done += (size_t) written;
        }
        used = 0;
    }
    for (int64_t index = 0; index < records; index++) {
        const uint8_t *record = data + index * PZ_RECORD_SIZE;
        int64_t value = pz_record_value (record);
        char digits [24];
        int length = 0;
        uint64_t magnitude = value < 0 ? 0 - (uint64_t) value : (uint64_t) value;
        do {
            digits [length++] = (char) ('0' + magnitude % 10);
            magnitude /= 10;
        } while (magnitude);
        buffer [used++] = (char) record [0];
        buffer [used++] = ' ';
        if (value < 0)
            buffer [used++] = '-';
        while (length)
            buffer [used++] = digits [--length];
        buffer [used++] = '\n';
    }
}

static int
s_sink (int argc, char *argv [])
{
    int64_t count = s_int_arg (argc, argv, "--count", 100000);
    bool text = s_flag (argc, argv, "--text");
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_rcvhwm (sub, 0);  //  see the broker: no verdict may be dropped
    const char *endpoint = s_arg (argc, argv, "--connect", NULL);
    if (!endpoint || zsock_connect (sub, "%s", endpoint) == -1) {
        fprintf (stderr, "bare: cannot connect to %s\n", endpoint ? endpoint : "(none)");
        return 2;
    }
    zsock_set_subscribe (sub, "P");
    zsock_set_subscribe (sub, "C");
    void *handle = zsock_resolve (sub);
    zmq_msg_t message;
    zmq_msg_init (&message);
    int64_t seen = 0, primes = 0;
    double first = 0;
    while (seen < count && !zsys_interrupted) {
        if (zmq_msg_recv (&message, handle, 0) == -1)
            continue;
        if (first == 0)
            first = s_now ();
        int64_t records = (int64_t) (zmq_msg_size (&message) / PZ_RECORD_SIZE);
        seen += records;
        if (records && ((uint8_t *) zmq_msg_data (&message)) [0] == 'P')
            primes += records;
        if (text)
            s_print_text ((const uint8_t *) zmq_msg_data (&message), records);
    }
    if (text)
        s_print_text (NULL, 0);     //  what is still buffered
    double last = s_now ();
    zmq_msg_close (&message);
    fprintf (stderr, "bare sink: %" PRId64 " verdicts (P %" PRId64 ", C %" PRId64
             "), first at %.6f, last at %.6f (CLOCK_MONOTONIC)\n",
             seen, primes, seen - primes, first, last);
    zsock_destroy (&sub);
    return seen >= count ? 0 : 1;
}


//  --------------------------------------------------------------------------

int
main (int argc, char *argv [])
{
    zsys_init ();
    zsys_catch_interrupts ();
    const char *role = argc > 1 ? argv [1] : "";
    if (streq (role, "version")) {
        int major, minor, patch;
        zmq_version (&major, &minor, &patch);
        printf ("libzmq %d.%d.%d czmq %d.%d.%d\n", major, minor, patch,
                CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR, CZMQ_VERSION_PATCH);
        return 0;
    }
    if (streq (role, "rep"))
        return s_rep ();
    if (streq (role, "req"))
        return s_req (argc, argv);
    if (streq (role, "broker"))
        return s_broker ();
    if (streq (role, "worker"))
        return s_worker (argc, argv);
    if (streq (role, "source"))
        return s_source (argc, argv);
    if (streq (role, "sink"))
        return s_sink (argc, argv);
    fprintf (stderr, "usage: playzmq-bench-bare version | rep | req --connect EP --count N"
             " | broker | worker --dispatch EP --results EP [--no-test]"
             " | source --connect EP --count N --batch K [--seed S]"
             " | sink --connect EP --count N [--text]\n");
    return 2;
}
