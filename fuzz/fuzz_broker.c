/*  =========================================================================
    fuzz_broker - the broker's handling of source requests and worker
                  reports, without the broker's sockets

    Plays a script of events through the functions broker.c's loop calls
    (s_take_request, s_take_report, s_settle): pz_record_check on a source
    request, pz_recent for its id, pz_leases_add; pz_leases_check on a
    report, pz_leases_complete; pz_leases_push, pz_leases_expire. Pushes go
    to an inproc PUSH socket whose PULL end this target reads, so that
    reports can be built from real dispatches (the broker's network
    endpoints are not involved). Events, one byte each, then arguments:

      'N' len bytes         a source request body (any bytes)
      'R' len bytes         a worker report body (any bytes)
      'V' k bits flip       a report of the k-th dispatch pushed: its id and
                            a verdict bit per number (V records), from bits;
                            flip != 0 sets a bit past its count or adds a V
                            record
      'P' ms                time goes on ms, then push what is ready
      'X' ms                time goes on ms, then expire leases

    Checked: the leases hold exactly the numbers accepted and not yet
    reported; every dispatch pushed is I + 1..4096 N records that
    pz_record_check accepts; a report built from a dispatch is accepted
    once (then a duplicate, counted by its numbers); an altered one is
    refused with code 7; one in the old format (P/C records) with code 15.
    =========================================================================
*/
#include "fuzz.h"
#include "leases.h"
#include "recent.h"

#define S_DISPATCHES    8           //  dispatches pushed, remembered for 'V'

static void *s_push;                //  the PUSH pz_leases_push sends on
static void *s_pull;                //  where the dispatches come out

//  Closes the sockets before czmq's exit handler ends the context.
static void
s_close (void)
{
    zmq_close (s_push);
    zmq_close (s_pull);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    pz_fuzz_quiet ();
    s_push = zmq_socket (zsys_init (), ZMQ_PUSH);
    s_pull = zmq_socket (zsys_init (), ZMQ_PULL);
    int linger = 0;
    zmq_setsockopt (s_push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (s_pull, ZMQ_LINGER, &linger, sizeof linger);
    int rc = zmq_bind (s_pull, "inproc://fuzz-broker-dispatch");
    PZ_FUZZ_CHECK (rc == 0);
    rc = zmq_connect (s_push, "inproc://fuzz-broker-dispatch");
    PZ_FUZZ_CHECK (rc == 0);
    atexit (s_close);
    return 0;
}

typedef struct {
    uint8_t data [PZ_MESSAGE_MAX];  //  I <id> + N records, as pushed
    size_t size;                    //  bytes
} s_dispatch_t;

static s_dispatch_t s_dispatches [S_DISPATCHES];

//  Takes a source request as s_take_request and s_settle do, without a
//  journal: validate, answer a known id from memory, else accept.
static void
s_request (pz_leases_t *leases, pz_recent_t *recent, const uint8_t *data, size_t size,
           int64_t *next_seq, int64_t now_ms, uint64_t *held)
{
    pz_error_t error = pz_record_check (data, size, "NI");
    PZ_FUZZ_CHECK (error >= PZ_OK && error <= PZ_ERR_MAX);
    if (error != PZ_OK)
        return;
    bool has_id = pz_record_tag (data) == PZ_TAG_ID;
    int64_t request_id = has_id ? pz_record_value (data) : 0;
    size_t count = size / PZ_RECORD_SIZE - (has_id ? 1 : 0);
    PZ_FUZZ_CHECK (count >= 1 && count <= PZ_RECORDS_MAX);
    int64_t acked;
    if (has_id && pz_recent_lookup (recent, request_id, &acked)) {
        PZ_FUZZ_CHECK (acked >= 1 && acked <= PZ_RECORDS_MAX);
        return;
    }
    for (size_t index = has_id ? 1 : 0; index < size / PZ_RECORD_SIZE; index++)
        PZ_FUZZ_CHECK (pz_record_tag (data + index * PZ_RECORD_SIZE) == PZ_TAG_NUMBER);
    pz_leases_add (leases, data + (has_id ? PZ_RECORD_SIZE : 0), count, (*next_seq)++, now_ms);
    if (request_id)
        pz_recent_store (recent, request_id, (int64_t) count);
    *held += count;
}

//  Takes a report as s_take_report and s_settle do. Returns the error code
//  (PZ_OK also for a duplicate: *duplicate set).
static pz_error_t
s_report (pz_leases_t *leases, const uint8_t *data, size_t size, uint64_t *held,
          bool *duplicate)
{
    pz_lease_t *lease = NULL;
    size_t count = 0;
    pz_error_t error = pz_leases_check (leases, data, size, &lease, &count);
    PZ_FUZZ_CHECK (error >= PZ_OK && error <= PZ_ERR_MAX);
    *duplicate = error == PZ_OK && !lease;
    if (error != PZ_OK || !lease)
        return error;
    PZ_FUZZ_CHECK (pz_lease_numbers (lease) == count);
    PZ_FUZZ_CHECK (size / PZ_RECORD_SIZE - 1 == pz_verdicts_records (count));
    const uint8_t *numbers = pz_lease_records (lease);
    for (size_t index = 0; index < count; index++)
        PZ_FUZZ_CHECK (pz_record_tag (numbers + index * PZ_RECORD_SIZE) == PZ_TAG_NUMBER);
    size_t covers_count;
    const int64_t *covers = pz_lease_covers (lease, &covers_count);
    PZ_FUZZ_CHECK (covers_count >= 1 && covers && covers_count <= count);
    pz_leases_complete (leases, lease);
    PZ_FUZZ_CHECK (*held >= count);
    *held -= count;
    return PZ_OK;
}

//  Reads every dispatch the PUSH socket let through, checks it, keeps the
//  latest S_DISPATCHES. Returns how many came.
static size_t
s_collect (size_t *pushed)
{
    size_t came = 0;
    while (true) {
        s_dispatch_t *slot = &s_dispatches [*pushed % S_DISPATCHES];
        int size = zmq_recv (s_pull, slot->data, sizeof slot->data, ZMQ_DONTWAIT);
        if (size < 0)
            break;
        PZ_FUZZ_CHECK ((size_t) size <= sizeof slot->data);
        slot->size = (size_t) size;
        PZ_FUZZ_CHECK (pz_record_check (slot->data, slot->size, "IN") == PZ_OK);
        PZ_FUZZ_CHECK (pz_record_tag (slot->data) == PZ_TAG_ID && slot->size > PZ_RECORD_SIZE);
        (*pushed)++;
        came++;
    }
    return came;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    pz_fuzz_input_t input = { data, size, 0 };
    //  The first byte: the coalescing wait (low 4 bits), and the id base
    //  (high 4 bits: 0 gives ids from 1, small enough to guess; else an
    //  incarnation in bits 40 and up, as broker.c makes it).
    uint8_t setup = pz_fuzz_byte (&input);
    int64_t coalesce_ms = setup & 0x0F;
    int64_t id_base = (int64_t) (setup >> 4) << 40;
    pz_leases_t *leases = pz_leases_new (id_base, 100, coalesce_ms);
    pz_recent_t *recent = pz_recent_new (4);
    int64_t now_ms = 1000;
    int64_t next_seq = 1;
    uint64_t held = 0;              //  numbers accepted and not reported
    size_t pushed = 0;              //  dispatches collected so far
    uint8_t *body = (uint8_t *) malloc (PZ_MESSAGE_MAX + PZ_RECORD_SIZE);
    PZ_FUZZ_CHECK (body);

    for (int events = 0; events < 256 && pz_fuzz_more (&input); events++) {
        uint8_t event = pz_fuzz_byte (&input);
        if (event == 'N' || event == 'R') {
            size_t length = pz_fuzz_length (&input, PZ_MESSAGE_MAX + PZ_RECORD_SIZE);
            size_t got;
            const uint8_t *bytes = pz_fuzz_bytes (&input, length, &got);
            //  A copy of the exact size: ASan sees a read past the body.
            uint8_t *exact = (uint8_t *) malloc (got ? got : 1);
            PZ_FUZZ_CHECK (exact);
            memcpy (exact, bytes, got);
            bool duplicate;
            if (event == 'N')
                s_request (leases, recent, got ? exact : NULL, got, &next_seq, now_ms, &held);
            else
                s_report (leases, got ? exact : NULL, got, &held, &duplicate);
            free (exact);
        }
        else
        if (event == 'V' && pushed > 0) {
            size_t which = pz_fuzz_byte (&input) % (pushed < S_DISPATCHES ? pushed : S_DISPATCHES);
            uint8_t bits = pz_fuzz_byte (&input);
            uint8_t flip = pz_fuzz_byte (&input);
            s_dispatch_t *dispatch = &s_dispatches [(pushed - 1 - which) % S_DISPATCHES];
            size_t count = dispatch->size / PZ_RECORD_SIZE - 1;
            uint8_t verdicts [PZ_RECORDS_MAX];
            for (size_t index = 0; index < count; index++)
                verdicts [index] = (bits >> (index % 8)) & 1;
            memcpy (body, dispatch->data, PZ_RECORD_SIZE);
            size_t size = PZ_RECORD_SIZE + pz_verdicts_encode (body + PZ_RECORD_SIZE,
                                                               verdicts, count);
            if (flip && count % PZ_VERDICTS_PER_RECORD) {
                //  A verdict past the last number.
                size_t bit = count % PZ_VERDICTS_PER_RECORD
                           + flip % (PZ_VERDICTS_PER_RECORD - count % PZ_VERDICTS_PER_RECORD);
                body [size - 1 - bit / 8] |= (uint8_t) (1u << (bit % 8));
            }
            else
            if (flip) {
                pz_record_encode (body + size, PZ_TAG_VERDICTS, flip);
                size += PZ_RECORD_SIZE;
            }
            bool duplicate;
            pz_error_t error = s_report (leases, body, size, &held, &duplicate);
            if (flip)
                PZ_FUZZ_CHECK (error == PZ_ERR_MISMATCH || duplicate);
            else {
                PZ_FUZZ_CHECK (error == PZ_OK);
                //  Completed now, or by an earlier report: again is a duplicate.
                PZ_FUZZ_CHECK (s_report (leases, body, size, &held, &duplicate)
                               == PZ_OK && duplicate);
            }
            //  The same dispatch echoed in the old format: always E 15.
            memcpy (body, dispatch->data, dispatch->size);
            for (size_t index = 1; index <= count; index++)
                body [index * PZ_RECORD_SIZE] = verdicts [index - 1]
                                              ? PZ_TAG_PRIME : PZ_TAG_COMPOSITE;
            PZ_FUZZ_CHECK (s_report (leases, body, dispatch->size, &held, &duplicate)
                           == PZ_ERR_OLD_REPORT);
        }
        else
        if (event == 'P' || event == 'X') {
            now_ms += pz_fuzz_byte (&input);
            if (event == 'P') {
                pz_leases_push (leases, s_push, now_ms, false);
                s_collect (&pushed);
            }
            else
                pz_leases_expire (leases, now_ms);
            int64_t wake_ms = pz_leases_wake_ms (leases, now_ms, false);
            PZ_FUZZ_CHECK (wake_ms > 0);
        }
        pz_leases_stats_t stats;
        pz_leases_stats (leases, &stats);
        PZ_FUZZ_CHECK (stats.numbers == held);
    }
    //  Drain: everything still held goes out, and nothing is lost.
    pz_leases_push (leases, s_push, now_ms + 1000000, true);
    s_collect (&pushed);
    free (body);
    pz_recent_destroy (&recent);
    pz_leases_destroy (&leases);
    return 0;
}
