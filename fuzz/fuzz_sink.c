/*  =========================================================================
    fuzz_sink - the sink's decoding (sink/sink.c): live publications, the
                history replies that fill gaps, and the resume file

    Drives a real pz_sink through pz_sink_start and pz_sink_feed (its run
    loop's steps without the SUB socket). Its history endpoint is an inproc
    ROUTER in a thread of this target (no network) that answers each
    request with the next reply the input scripted (then E 9). The first
    byte picks the configuration (bits 0-2 tags N P C, 3-4 format, 5
    strict, 6 from a seq, 7 a resume file), then the from seq (8 bytes)
    and count (1 byte); then events, one byte each, then arguments:

      'F' len bytes         the resume file's contents (the last one counts)
      'H' shape len bytes   a history reply, queued; shape 1: no empty
                            delimiter, 2: an extra frame after it
      'L' len bytes         a live publication, fed after the start
      'I'                   an idle period (a status request), after the start

    Checked: the sink never prints more records than it was given, nor more
    than its count.
    =========================================================================
*/
#include "fuzz.h"
#include "publication.h"
#include "sink.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#define S_HISTORY       "inproc://fuzz-sink-history"
#define S_REPLIES_MAX   32
#define S_EVENTS_MAX    64

//  A scripted history reply.
typedef struct {
    const uint8_t *data;        //  its body, in the input
    size_t size;                //  bytes
    int shape;                  //  0 well formed, 1 no delimiter, 2 extra frame
} s_reply_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_reply_t s_replies [S_REPLIES_MAX];     //  guarded by s_lock
static size_t s_reply_count, s_reply_next;      //  guarded by s_lock
static zactor_t *s_responder;
static int s_devnull = -1;
static char s_resume [256];         //  the resume file's path
static void *s_publish;             //  binds the endpoint the sinks' SUB connects to

//  Ends the responder and closes the socket before czmq's exit handler
//  ends the context; removes the resume file's directory.
static void
s_close (void)
{
    zactor_destroy (&s_responder);
    zmq_close (s_publish);
    char path [300];
    snprintf (path, sizeof path, "%s.tmp", s_resume);
    unlink (path);
    unlink (s_resume);
    snprintf (path, sizeof path, "%s", s_resume);
    char *slash = strrchr (path, '/');
    if (slash) {
        *slash = '\0';
        rmdir (path);
    }
}

//  The history endpoint: answers every request with the next scripted
//  reply, or E 9 once they ran out.
static void
s_responder_actor (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *router = zsock_new_router (S_HISTORY);
    assert (router);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;                      //  $TERM, or interrupted
        zmsg_t *request = zmsg_recv (router);
        if (!request)
            break;
        zframe_t *peer = zmsg_pop (request);
        zmsg_destroy (&request);
        //  A copy, taken under the lock: the input is gone after its run.
        pthread_mutex_lock (&s_lock);
        s_reply_t reply = { NULL, 0, 0 };
        uint8_t *body = NULL;
        if (s_reply_next < s_reply_count) {
            reply = s_replies [s_reply_next++];
            body = (uint8_t *) malloc (reply.size + 1);
            assert (body);
            memcpy (body, reply.data, reply.size);
        }
        pthread_mutex_unlock (&s_lock);
        uint8_t refused [PZ_RECORD_SIZE];
        pz_record_encode (refused, PZ_TAG_ERROR, PZ_ERR_UNAVAILABLE);
        void *handle = zsock_resolve (router);
        zmq_send (handle, zframe_data (peer), zframe_size (peer), ZMQ_SNDMORE);
        if (reply.shape != 1)
            zmq_send (handle, "", 0, ZMQ_SNDMORE);
        zmq_send (handle, body ? body : refused, body ? reply.size : sizeof refused,
                  reply.shape == 2 ? ZMQ_SNDMORE : 0);
        if (reply.shape == 2)
            zmq_send (handle, "", 0, 0);
        free (body);
        zframe_destroy (&peer);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    pz_fuzz_quiet ();
    s_devnull = open ("/dev/null", O_WRONLY);
    PZ_FUZZ_CHECK (s_devnull >= 0);
    char dir [] = "/tmp/pz-fuzz-sink-XXXXXX";
    PZ_FUZZ_CHECK (mkdtemp (dir));
    snprintf (s_resume, sizeof s_resume, "%s/resume", dir);
    s_responder = zactor_new (s_responder_actor, NULL);
    PZ_FUZZ_CHECK (s_responder);
    //  Bound, so that each sink's connect is made at once: libzmq keeps a
    //  connect to an unbound inproc endpoint pending, and they pile up.
    s_publish = zmq_socket (zsys_init (), ZMQ_PUB);
    PZ_FUZZ_CHECK (zmq_bind (s_publish, "inproc://fuzz-sink-publish") == 0);
    atexit (s_close);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  The bound socket must see its peers' pipes end, or their sockets
    //  are never freed: asking for its events processes its commands.
    int zmq_events;
    size_t events_size = sizeof zmq_events;
    zmq_getsockopt (s_publish, ZMQ_EVENTS, &zmq_events, &events_size);
    pz_fuzz_input_t input = { data, size, 0 };
    uint8_t config_bits = pz_fuzz_byte (&input);
    int64_t from_seq = pz_fuzz_int64 (&input);
    int64_t count = pz_fuzz_byte (&input);

    //  The script: the resume file and history replies first, then the
    //  live events in order.
    const uint8_t *resume = NULL;
    size_t resume_size = 0;
    s_reply_t replies [S_REPLIES_MAX];
    size_t reply_count = 0;
    struct { char kind; const uint8_t *data; size_t size; } events [S_EVENTS_MAX];
    size_t event_count = 0;
    uint64_t records_given = 0;         //  data records anywhere in the input, at most
    while (pz_fuzz_more (&input)) {
        uint8_t event = pz_fuzz_byte (&input);
        int shape = event == 'H' ? pz_fuzz_byte (&input) % 3 : 0;
        size_t got = 0;
        const uint8_t *bytes = NULL;
        if (event == 'F' || event == 'H' || event == 'L')
            bytes = pz_fuzz_bytes (&input, pz_fuzz_length (&input, PZ_PUBLICATION_MAX * 2), &got);
        if (event == 'F') {
            resume = bytes;
            resume_size = got;
        }
        else
        if (event == 'H' && reply_count < S_REPLIES_MAX) {
            replies [reply_count++] = (s_reply_t) { bytes, got, shape };
            records_given += got / PZ_RECORD_SIZE;
        }
        else
        if ((event == 'L' || event == 'I') && event_count < S_EVENTS_MAX) {
            events [event_count].kind = (char) event;
            events [event_count].data = bytes;
            events [event_count++].size = got;
            records_given += got / PZ_RECORD_SIZE;
        }
    }

    char tags [4];
    int tag_count = 0;
    for (int index = 0; index < 3; index++)
        if (config_bits & (1 << index))
            tags [tag_count++] = "NPC" [index];
    if (tag_count == 0)
        tags [tag_count++] = 'P';
    tags [tag_count] = '\0';
    pz_sink_config_t config;
    pz_sink_config_init (&config);
    config.connect = "inproc://fuzz-sink-publish";
    config.history = S_HISTORY;
    config.tags = tags;
    config.format = (pz_sink_format_t) ((config_bits >> 3) & 3);
    config.strict = (config_bits >> 5) & 1;
    config.from_seq = (config_bits >> 6) & 1 ? (from_seq < 1 ? 1 : from_seq) : 0;
    config.count = count;
    config.history_timeout_ms = 5000;
    config.sockopts.heartbeat_ivl_ms = 0;
    unlink (s_resume);
    if (config_bits & 0x80) {
        config.resume = s_resume;
        if (resume) {
            FILE *file = fopen (s_resume, "w");
            PZ_FUZZ_CHECK (file);
            PZ_FUZZ_CHECK (fwrite (resume, 1, resume_size, file) == resume_size);
            fclose (file);
        }
    }
    pthread_mutex_lock (&s_lock);
    memcpy (s_replies, replies, reply_count * sizeof (s_reply_t));
    s_reply_count = reply_count;
    s_reply_next = 0;
    pthread_mutex_unlock (&s_lock);

    pz_sink_t *sink = pz_sink_new (&config, s_devnull);
    PZ_FUZZ_CHECK (sink);
    if (pz_sink_start (sink) == PZ_SINK_OK)
        for (size_t index = 0; index < event_count; index++) {
            //  A copy of the exact size: ASan sees a read past the message.
            uint8_t *message = NULL;
            if (events [index].kind == 'L') {
                message = (uint8_t *) malloc (events [index].size + 1);
                PZ_FUZZ_CHECK (message);
                memcpy (message, events [index].data, events [index].size);
            }
            pz_sink_feed (sink, message, events [index].size);
            free (message);
        }
    pz_sink_stats_t stats;
    pz_sink_stats (sink, &stats);
    uint64_t printed = stats.by_tag [0] + stats.by_tag [1] + stats.by_tag [2];
    PZ_FUZZ_CHECK (printed <= records_given);
    PZ_FUZZ_CHECK (count == 0 || printed <= (uint64_t) count);
    char summary [512];
    pz_sink_summary (sink, summary, sizeof summary);
    pz_sink_destroy (&sink);
    pthread_mutex_lock (&s_lock);
    s_reply_count = s_reply_next = 0;
    pthread_mutex_unlock (&s_lock);
    return 0;
}
