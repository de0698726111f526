/*  =========================================================================
    flood - clients that send the broker malformed messages as fast as it
            takes them: the abuse test's flooders (tests/test_abuse.py)

    Usage: flood --connect EP [--clients N] [--seconds S] [--oversize-every K]
                 [--largest-every K] [--curve-cert FILE --curve-server FILE]
    Opens N DEALER connections to a request endpoint of the broker (source
    or results; with CURVE, a valid key: an authenticated peer gone bad is
    the only way to reach the frame level there), and sends, round robin
    over the connections and without ever waiting, messages of every kind
    the broker must refuse: no delimiter, an envelope too long, a body
    that is empty, of a length that is not a multiple of 9, with unknown
    tags, of the wrong tags, of too many records, in several frames, a
    report of a dispatch that does not exist; every K messages (--largest-
    every) one of exactly ZMQ_MAXMSGSIZE bytes, the largest the broker
    reads (and answers E), and every K (--oversize-every) one larger than
    that (the broker drops that connection; the DEALER connects again). The replies are read as they come and counted.
    Stops after S seconds or at SIGINT/SIGTERM; prints one line on stdout:
    "sent N replies R errors E largest L oversize O" (E: replies that were
    E records).
    Exit 0, or 2 on misuse, 1 if a connection cannot be opened.
    =========================================================================
*/
#include "cli.h"
#include "record.h"
#include "sock.h"

#include <inttypes.h>

#define S_CLIENTS_MAX   64
#define S_KINDS         10

//  Sends the frames of one message of the given kind without waiting.
//  Returns true if the socket took it (false: its queue is full).
static bool
s_send_kind (void *handle, int kind, uint64_t serial, uint8_t *scratch)
{
    static const uint8_t empty [1] = { 0 };
    uint8_t record [PZ_RECORD_SIZE];
    //  Every message but the first kind starts with the empty delimiter a
    //  REQ would send; its first frame decides whether it is taken at all.
    if (kind == 0) {                //  no delimiter: a REP drops it
        pz_record_encode (record, PZ_TAG_NUMBER, (int64_t) serial);
        return zmq_send (handle, record, sizeof record, ZMQ_DONTWAIT) == (int) sizeof record;
    }
    if (kind == 1) {                //  an envelope of 20 frames: dropped too
        if (zmq_send (handle, "x", 1, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
            return false;
        for (int frame = 1; frame < 20; frame++)
            zmq_send (handle, "x", 1, ZMQ_SNDMORE);
        zmq_send (handle, empty, 0, ZMQ_SNDMORE);
        pz_record_encode (record, PZ_TAG_NUMBER, 1);
        zmq_send (handle, record, sizeof record, 0);
        return true;
    }
    if (zmq_send (handle, empty, 0, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
        return false;
    //  Once the first frame is taken, the rest of the message is too.
    switch (kind) {
        case 2:                     //  an empty body
            zmq_send (handle, empty, 0, 0);
            break;
        case 3:                     //  5 bytes: not a multiple of 9
            zmq_send (handle, "NNNNN", 5, 0);
            break;
        case 4:                     //  an unknown tag
            pz_record_encode (record, 'X', (int64_t) serial);
            zmq_send (handle, record, sizeof record, 0);
            break;
        case 5:                     //  known tags, wrong here: A, E, S
            pz_record_encode (scratch, PZ_TAG_ACK, 1);
            pz_record_encode (scratch + PZ_RECORD_SIZE, PZ_TAG_ERROR, 1);
            pz_record_encode (scratch + 2 * PZ_RECORD_SIZE, PZ_TAG_SEQ, 1);
            zmq_send (handle, scratch, 3 * PZ_RECORD_SIZE, 0);
            break;
        case 6:                     //  one record more than a message may hold
            for (size_t at = 0; at <= PZ_RECORDS_MAX; at++)
                pz_record_encode (scratch + at * PZ_RECORD_SIZE, PZ_TAG_NUMBER,
                                  (int64_t) (serial + at));
            zmq_send (handle, scratch, (PZ_RECORDS_MAX + 1) * PZ_RECORD_SIZE, 0);
            break;
        case 7:                     //  a body in two frames
            pz_record_encode (record, PZ_TAG_NUMBER, 7);
            zmq_send (handle, record, sizeof record, ZMQ_SNDMORE);
            zmq_send (handle, record, sizeof record, 0);
            break;
        case 8:                     //  a report of a dispatch that does not exist
            pz_record_encode (scratch, PZ_TAG_ID, (int64_t) (serial | 1));
            pz_record_encode (scratch + PZ_RECORD_SIZE, PZ_TAG_VERDICTS, 1);
            zmq_send (handle, scratch, 2 * PZ_RECORD_SIZE, 0);
            break;
        default:                    //  an id and then nothing
            pz_record_encode (record, PZ_TAG_ID, (int64_t) serial);
            zmq_send (handle, record, sizeof record, 0);
            break;
    }
    return true;
}

//  Sends one message of size bytes (behind the delimiter). Returns true if
//  taken.
static bool
s_send_oversize (void *handle, uint8_t *big, size_t size)
{
    if (zmq_send (handle, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE) == -1)
        return false;
    zmq_send (handle, big, size, 0);
    return true;
}

//  Reads every reply waiting on handle; counts them and their E records.
static void
s_read_replies (void *handle, uint64_t *replies, uint64_t *errors)
{
    while (true) {
        zmq_msg_t frame;
        zmq_msg_init (&frame);
        if (zmq_msg_recv (&frame, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frame);
            return;
        }
        //  The reply is the delimiter, then one record.
        if (zmq_msg_size (&frame) == PZ_RECORD_SIZE) {
            (*replies)++;
            if (pz_record_tag ((const uint8_t *) zmq_msg_data (&frame)) == PZ_TAG_ERROR)
                (*errors)++;
        }
        zmq_msg_close (&frame);
    }
}

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("flood");
    const char *connect = NULL;
    int64_t clients = 4;
    int64_t seconds = 60;
    int64_t oversize_every = 5000;
    int64_t largest_every = 1000;
    const char *curve_cert = NULL;
    const char *curve_server = NULL;
    const pz_opt_t options [] = {
        { "connect", 'c', PZ_OPT_STRING, &connect, 0, 0, "EP",
          "the broker's source or results endpoint" },
        { "clients", 0, PZ_OPT_INT, &clients, 1, S_CLIENTS_MAX, "N",
          "connections, each a client of its own" },
        { "seconds", 0, PZ_OPT_INT, &seconds, 1, 3600, "S", "stop after S seconds" },
        { "oversize-every", 0, PZ_OPT_INT, &oversize_every, 0, INT64_MAX, "K",
          "every K messages one above ZMQ_MAXMSGSIZE (0: never)" },
        { "largest-every", 0, PZ_OPT_INT, &largest_every, 0, INT64_MAX, "K",
          "every K messages one of ZMQ_MAXMSGSIZE bytes (0: never)" },
        PZ_OPT_CURVE_CLIENT (&curve_cert, &curve_server, "source or worker"),
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "flood",
        "Floods a broker endpoint with malformed messages.", argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (!connect)
        return pz_cli_error ("flood", "--connect EP is required");
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    int curve = pz_sockopts_curve_flags (&opts, "flood", curve_cert, curve_server);
    if (curve != 0)
        return curve;

    zsock_t *socks [S_CLIENTS_MAX] = { NULL };
    void *handles [S_CLIENTS_MAX];
    int status = 0;
    for (int64_t index = 0; index < clients && status == 0; index++) {
        char name [32];
        snprintf (name, sizeof name, "flood-%d-%" PRId64, (int) getpid (), index);
        opts.routing_id = name;
        socks [index] = pz_sock_open (ZMQ_DEALER, "flood DEALER", connect, false, &opts);
        if (!socks [index])
            status = 1;
        else
            handles [index] = zsock_resolve (socks [index]);
    }
    size_t big_size = PZ_WIRE_MAX + 1;
    uint8_t *big = (uint8_t *) zmalloc (big_size);
    uint8_t *scratch = (uint8_t *) zmalloc ((PZ_RECORDS_MAX + 2) * PZ_RECORD_SIZE);
    assert (big && scratch);
    memset (big, 'N', big_size);
    uint64_t sent = 0, replies = 0, errors = 0, oversize = 0, largest = 0;
    int64_t deadline = zclock_mono () + seconds * 1000;
    while (status == 0 && !zsys_interrupted && zclock_mono () < deadline) {
        //  A round: one message to every client that takes one, then the
        //  replies; if none took any, wait until one can.
        int took = 0;
        for (int64_t index = 0; index < clients; index++) {
            bool ok;
            if (oversize_every > 0 && sent > 0 && sent % (uint64_t) oversize_every == 0
            &&  (ok = s_send_oversize (handles [index], big, big_size)))
                oversize++;
            else
            if (largest_every > 0 && sent % (uint64_t) largest_every == 1
            &&  (ok = s_send_oversize (handles [index], big, big_size - 1)))
                largest++;
            else
                ok = s_send_kind (handles [index], (int) (sent % S_KINDS), sent, scratch);
            if (ok) {
                sent++;
                took++;
            }
            s_read_replies (handles [index], &replies, &errors);
        }
        if (took == 0) {
            zmq_pollitem_t items [S_CLIENTS_MAX];
            for (int64_t index = 0; index < clients; index++)
                items [index] = (zmq_pollitem_t) { handles [index], 0,
                                                   ZMQ_POLLOUT | ZMQ_POLLIN, 0 };
            zmq_poll (items, (int) clients, 10);
        }
    }
    printf ("sent %" PRIu64 " replies %" PRIu64 " errors %" PRIu64 " largest %" PRIu64
            " oversize %" PRIu64 "\n", sent, replies, errors, largest, oversize);
    fflush (stdout);
    for (int64_t index = 0; index < clients; index++)
        zsock_destroy (&socks [index]);
    free (big);
    free (scratch);
    return status;
}
