/*  =========================================================================
    liar - a worker that reports wrong verdicts on purpose: a test tool for
           the broker's audit (tests/test_trust.py)

    Usage: liar --dispatch EP --results EP [--lie-every N | --lie-rate P]
                [--name NAME] [--curve-cert FILE --curve-server FILE]
                [--reports N] [--seed S] [--count-lie block|sum]

    Pulls dispatches like playzmq-worker, tests every number with the same
    exact test (prime.h), then flips the verdict of every Nth number it
    reports (--lie-every, counted over all numbers; 1 = every number) or of
    each number with probability P (--lie-rate), and sends the report (one
    verdict bit per number, protocol 3) on a
    REQ socket, one at a time. Unlike playzmq-worker it does not stop when
    the broker refuses it (E 11): it goes on, as a malicious peer would,
    until --reports reports were sent, SIGTERM, or 10 s without a dispatch.

    A piece of a range (I id R lo R hi) gets every odd number of it
    reported as prime. A counted piece (I id Q lo Q hi) gets a count one
    off: with --count-lie block (the default) in its last block and in the
    total alike, so that the sum holds and only a recount of that block
    shows the lie; with --count-lie sum in the total only. Prints one line per report on stdout, for the test
    to read:
        report <n> records <count> lies <k> reply <A|E|none> <value>
    and at the end:
        done reports <n> lies <total lies> refused <E replies> first-refused <n or 0>
    =========================================================================
*/
#include "cli.h"
#include "prime.h"
#include "record.h"
#include "sieve.h"
#include "sock.h"

#include <czmq.h>
#include <inttypes.h>

int
main (int argc, char *argv [])
{
    const char *dispatch = NULL, *results = NULL, *name = NULL;
    const char *curve_cert = NULL, *curve_server = NULL;
    int64_t lie_every = 0, reports_max = 0, seed = 1;
    const char *lie_rate_text = NULL;
    const char *count_lie = "block";
    const pz_opt_t options [] = {
        { "dispatch", 0, PZ_OPT_STRING, &dispatch, 0, 0, "EP", "PUSH endpoint to pull from" },
        { "results", 0, PZ_OPT_STRING, &results, 0, 0, "EP", "results endpoint" },
        { "lie-every", 0, PZ_OPT_INT, &lie_every, 0, INT64_MAX, "N",
          "flip every Nth verdict (1: all)" },
        { "lie-rate", 0, PZ_OPT_STRING, &lie_rate_text, 0, 0, "P",
          "flip each verdict with probability P" },
        { "name", 0, PZ_OPT_STRING, &name, 0, 0, "NAME", "routing id of the REQ socket" },
        { "reports", 0, PZ_OPT_INT, &reports_max, 0, INT64_MAX, "N",
          "stop after N reports (0: no limit)" },
        { "count-lie", 0, PZ_OPT_STRING, &count_lie, 0, 0, "HOW",
          "a Q piece's lie: block (a block and the total) or sum (the total)" },
        { "seed", 0, PZ_OPT_INT, &seed, 1, INT64_MAX, "S", "random seed for --lie-rate" },
        PZ_OPT_CURVE_CLIENT (&curve_cert, &curve_server, "worker"),
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "liar",
        "A worker that lies, to test the broker's audit.", argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (!dispatch || !results)
        return pz_cli_error ("liar", "--dispatch and --results are required");
    double lie_rate = lie_rate_text ? atof (lie_rate_text) : 0;
    pz_sockopts_t opts;
    pz_sockopts_init (&opts);
    int curve = pz_sockopts_curve_flags (&opts, "liar", curve_cert, curve_server);
    if (curve != 0)
        return curve;
    opts.heartbeat_ivl_ms = 0;
    opts.rcvhwm = 4;
    zsock_t *pull = pz_sock_open (ZMQ_PULL, "dispatch PULL", dispatch, false, &opts);
    zsock_t *req = zsock_new (ZMQ_REQ);
    if (!pull || !req)
        return 1;
    if (pz_sockopts_curve (&opts)) {
        zsock_set_curve_serverkey (req, opts.curve_server);
        zsock_set_curve_publickey (req, opts.curve_public);
        zsock_set_curve_secretkey (req, opts.curve_secret);
    }
    if (name)
        zsock_set_identity (req, name);
    zsock_set_linger (req, 0);
    zsock_set_req_relaxed (req, 1);
    zsock_set_req_correlate (req, 1);
    zsock_set_rcvtimeo (req, 3000);
    if (zsock_connect (req, "%s", results) == -1)
        return pz_cli_error ("liar", "cannot connect '%s'", results);
    zsock_set_rcvtimeo (pull, 10000);

    uint64_t state = (uint64_t) seed;
    int64_t counter = 0, reports = 0, lies_total = 0, refused = 0, first_refused = 0;
    static int64_t values [PZ_RECORDS_MAX];
    static uint8_t verdicts [PZ_RECORDS_MAX];
    static uint8_t report [PZ_WIRE_MAX];
    static int64_t blocks [PZ_WIRE_MAX / PZ_RECORD_SIZE];
    pz_sieve_t *sieve = pz_sieve_new ();
    bool lie_in_sum = strcmp (count_lie, "sum") == 0;
    while (!zsys_interrupted && (reports_max == 0 || reports < reports_max)) {
        zframe_t *frame = zframe_recv (pull);
        if (!frame)
            break;              //  10 s without work, or a signal
        size_t size = zframe_size (frame);
        const uint8_t *data = zframe_data (frame);
        int64_t lies = 0;
        size_t count = 0;
        if (size == 3 * PZ_RECORD_SIZE && pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE) {
            //  A piece of a range, I id R lo R hi: every odd number of it
            //  (from 3) reported as prime, composites and all.
            memcpy (report, data, size);
            int64_t lo = pz_record_value (data + PZ_RECORD_SIZE);
            int64_t hi = pz_record_value (data + 2 * PZ_RECORD_SIZE);
            for (int64_t value = lo < 3 ? 3 : lo | 1; value <= hi && count < PZ_RECORDS_MAX - 2;
                 value += 2) {
                pz_record_encode (report + (3 + count++) * PZ_RECORD_SIZE, PZ_TAG_PRIME, value);
                lies += !pz_prime_is_prime (value);
            }
            zframe_destroy (&frame);
            zsock_send (req, "b", report, (count + 3) * PZ_RECORD_SIZE);
            goto answered;
        }
        if (size == 3 * PZ_RECORD_SIZE
        &&  pz_record_tag (data + PZ_RECORD_SIZE) == PZ_TAG_RANGE_COUNT) {
            //  A counted piece, I id Q lo Q hi: the right counts, one lie.
            memcpy (report, data, size);
            int64_t lo = pz_record_value (data + PZ_RECORD_SIZE);
            int64_t hi = pz_record_value (data + 2 * PZ_RECORD_SIZE);
            size_t count_blocks = (size_t) (((uint64_t) hi - (uint64_t) lo)
                                            / PZ_SIEVE_BLOCK + 1);
            int64_t total = pz_sieve_next_counts (sieve, lo, hi, PZ_SIEVE_BLOCK, blocks);
            int64_t last_lo = lo + (int64_t) (count_blocks - 1) * PZ_SIEVE_BLOCK;
            //  One more, or one less where one more cannot be.
            int64_t step = blocks [count_blocks - 1] < hi - last_lo + 1 ? 1 : -1;
            total += step;
            if (!lie_in_sum)
                blocks [count_blocks - 1] += step;
            pz_record_encode (report + size, PZ_TAG_RANGE_COUNT, total);
            for (size_t block = 0; block < count_blocks; block++)
                pz_record_encode (report + size + (block + 1) * PZ_RECORD_SIZE,
                                  PZ_TAG_RANGE_COUNT, blocks [block]);
            count = count_blocks + 1;
            lies = 1;
            zframe_destroy (&frame);
            zsock_send (req, "b", report, size + count * PZ_RECORD_SIZE);
            goto answered;
        }
        if (size < 2 * PZ_RECORD_SIZE || size % PZ_RECORD_SIZE
        ||  pz_record_check (data, size, "IN") != PZ_OK) {
            zframe_destroy (&frame);
            continue;
        }
        count = size / PZ_RECORD_SIZE - 1;
        for (size_t index = 0; index < count; index++)
            values [index] = pz_record_value (data + (index + 1) * PZ_RECORD_SIZE);
        pz_prime_check (values, verdicts, count);
        //  The report (protocol 3): the I record, then the verdict bits.
        memcpy (report, data, PZ_RECORD_SIZE);
        for (size_t index = 0; index < count; index++) {
            bool lie = false;
            counter++;
            if (lie_every > 0 && counter % lie_every == 0)
                lie = true;
            if (lie_rate > 0) {
                state = state * 6364136223846793005ULL + 1442695040888963407ULL;
                lie = lie || (double) (state >> 11) / 9007199254740992.0 < lie_rate;
            }
            verdicts [index] = (verdicts [index] != 0) != lie;
            lies += lie;
        }
        zframe_destroy (&frame);
        size_t bytes = pz_verdicts_encode (report + PZ_RECORD_SIZE, verdicts, count);
        zsock_send (req, "b", report, PZ_RECORD_SIZE + bytes);
    answered:;
        zframe_t *reply = zframe_recv (req);
        reports++;
        lies_total += lies;
        char tag = 'n';
        int64_t value = 0;
        if (reply && zframe_size (reply) == PZ_RECORD_SIZE) {
            tag = pz_record_tag (zframe_data (reply));
            value = pz_record_value (zframe_data (reply));
        }
        zframe_destroy (&reply);
        if (tag == PZ_TAG_ERROR) {
            refused++;
            if (!first_refused)
                first_refused = reports;
        }
        printf ("report %" PRId64 " records %zu lies %" PRId64 " reply %s %" PRId64 "\n",
                reports, count, lies, tag == 'n' ? "none" : (char []) { tag, 0 }, value);
        fflush (stdout);
    }
    printf ("done reports %" PRId64 " lies %" PRId64 " refused %" PRId64
            " first-refused %" PRId64 "\n", reports, lies_total, refused, first_refused);
    pz_sieve_destroy (&sieve);
    zsock_destroy (&req);
    zsock_destroy (&pull);
    return 0;
}
