/*  =========================================================================
    playzmq-source - sends numbers to the broker

    Parses options, sends, prints a one-line summary on stderr. Exit 0 when
    every number was acknowledged (or on SIGINT/SIGTERM), 1 if the broker
    stopped answering, rejected a request, or an input line was bad, 2 for
    a bad flag. All the logic is in source.c.
    =========================================================================
*/
#include "cli.h"
#include "client.h"
#include "record.h"
#include "source.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

//  Takes every --range LO:HI (or --range=LO:HI) out of argv, into *ranges
//  (lo, hi pairs; caller frees) and *count: the option parser takes each
//  flag once. Returns 0, or 2 after saying which range is bad.
static int
s_take_ranges (int *argc, char *argv [], int64_t **ranges, size_t *count)
{
    *ranges = (int64_t *) calloc (2 * (size_t) *argc + 2, sizeof (int64_t));
    *count = 0;
    int kept = 1;
    for (int index = 1; index < *argc; index++) {
        const char *text = NULL;
        if (streq (argv [index], "--"))
            while (index < *argc)
                argv [kept++] = argv [index++];
        else
        if (streq (argv [index], "--range")) {
            if (index + 1 >= *argc) {
                pz_cli_error ("playzmq-source", "--range needs LO:HI");
                return 2;
            }
            text = argv [++index];
        }
        else
        if (strncmp (argv [index], "--range=", 8) == 0)
            text = argv [index] + 8;
        else {
            argv [kept++] = argv [index];
            continue;
        }
        int64_t lo, hi;
        const char *problem = pz_source_range_parse (text, &lo, &hi);
        if (problem) {
            pz_cli_error ("playzmq-source", "--range '%s': %s (a range is LO:HI with "
                          "0 <= LO <= HI <= 9223372036854775807)", text, problem);
            return 2;
        }
        (*ranges) [2 * *count] = lo;
        (*ranges) [2 * *count + 1] = hi;
        (*count)++;
    }
    *argc = kept;
    argv [kept] = NULL;
    return 0;
}

//  Parses the other flags and runs the source with the ranges taken out
//  of argv (room for one more, PLAYZMQ_RANGE). Returns the exit status;
//  the caller owns ranges.
static int
s_main (int argc, char *argv [], int64_t *ranges, size_t range_count)
{
    pz_source_config_t config;
    pz_source_config_init (&config);
    config.count = -1;          //  not given: 100 random numbers, none with ranges
    const char *publish = NULL;
    const char *history = NULL;
    const char *one_range = NULL;  //  only from PLAYZMQ_RANGE: argv's are taken above
    config.connect = NULL;      //  filled from --broker when not given
    const char *broker = "localhost";
    int64_t heartbeat_ms = config.sockopts.heartbeat_ivl_ms;
    int verbose = 0;
    const char *curve_cert = NULL;
    const char *curve_server = NULL;

    const pz_opt_t options [] = {
        { "broker", 0, PZ_OPT_STRING, &broker, 0, 0, "HOST",
          "broker host: the endpoint defaults to tcp://HOST:5555" },
        { "connect", 'c', PZ_OPT_STRING, &config.connect, 0, 0, "EP",
          "broker's source endpoint (default: tcp://HOST:5555)" },
        { "count", 'n', PZ_OPT_INT, &config.count, 0, INT64_MAX, "N",
          "random numbers to send" },
        { "min", 0, PZ_OPT_INT, &config.min, INT64_MIN, INT64_MAX, "V",
          "smallest random number" },
        { "max", 0, PZ_OPT_INT, &config.max, INT64_MIN, INT64_MAX, "V",
          "largest random number" },
        { "seed", 's', PZ_OPT_INT, &config.seed, 0, INT64_MAX, "S",
          "seed for a reproducible run (0: a new sequence each run)" },
        { "input", 'i', PZ_OPT_STRING, &config.input, 0, 0, "FILE",
          "send the numbers in FILE, one per line ('-': stdin), not random ones" },
        { "batch", 'b', PZ_OPT_INT, &config.batch, 1, PZ_RECORDS_MAX, "K",
          "numbers per request (1 as in the exercise; 1024 is fast)" },
        { "rate", 'r', PZ_OPT_INT, &config.rate, 0, INT64_MAX / 1000, "R",
          "numbers per second, at most (0: as fast as acks come)" },
        { "pipeline", 'p', PZ_OPT_INT, &config.pipeline, 1, PZ_CLIENT_SLOTS_MAX, "K",
          "requests outstanding at once (several hide the round trip)" },
        { "timeout", 0, PZ_OPT_INT, &config.timeout_ms, 1, 3600000, "MS",
          "wait this long for an ack before resending" },
        { "retries", 0, PZ_OPT_INT, &config.retries, 0, 1000000, "N",
          "resend an unacknowledged request this often, then give up" },
        { "wait", 0, PZ_OPT_INT, &config.wait_s, 0, 86400, "S",
          "until the broker first answers, keep trying this long whatever "
          "--retries says: a broker still starting is waited for (0: don't)" },
        { "range", 0, PZ_OPT_STRING, &one_range, 0, 0, "LO:HI",
          "ask for every prime of [LO, HI], 0 <= LO <= HI <= 2^63 - 1; repeat "
          "it for more (lines LO:HI in --input are ranges too)" },
        { "count-only", 0, PZ_OPT_FLAG, &config.count_only, 0, 0, NULL,
          "with --range (or LO:HI lines): have the broker count the primes "
          "of each range rather than publish them, and print 'LO:HI count' "
          "for each" },
        { "publish", 0, PZ_OPT_STRING, &publish, 0, 0, "EP",
          "with --count-only: the broker's publish endpoint, where the counts "
          "are announced (default: tcp://HOST:5556)" },
        { "history", 0, PZ_OPT_STRING, &history, 0, 0, "EP",
          "with --count-only: its history endpoint, for a count the "
          "subscription missed (default: tcp://HOST:5559; 'none': don't ask)" },
        { "acked", 0, PZ_OPT_STRING, &config.acked_path, 0, 0, "FILE",
          "write every acknowledged number to FILE, one per line" },
        { "heartbeat-ms", 0, PZ_OPT_INT, &heartbeat_ms, 0, 3600000, "MS",
          "ZMTP heartbeat interval (0: off)" },
        PZ_OPT_CURVE_CLIENT (&curve_cert, &curve_server, "source"),
        { "verbose", 'v', PZ_OPT_COUNT, &verbose, 0, 0, NULL,
          "log more (debug lines)" },
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-source",
        "Sends random numbers, or numbers from a file, to the broker and "
        "waits for its acks.", argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (one_range) {
        int64_t lo, hi;
        const char *problem = pz_source_range_parse (one_range, &lo, &hi);
        if (problem)
            return pz_cli_error ("playzmq-source", "PLAYZMQ_RANGE '%s': %s", one_range,
                                 problem);
        ranges [2 * range_count] = lo;
        ranges [2 * range_count + 1] = hi;
        range_count++;
    }
    if (config.count < 0)
        config.count = range_count > 0 ? 0 : 100;
    config.ranges = ranges;
    config.range_count = range_count;
    if (config.min > config.max)
        return pz_cli_error ("playzmq-source", "--min %" PRId64 " is above --max %" PRId64,
                             config.min, config.max);
    pz_log_set_verbose (verbose);
    int curve = pz_sockopts_curve_flags (&config.sockopts, "playzmq-source",
                                         curve_cert, curve_server);
    if (curve != 0)
        return curve;
    config.sockopts.heartbeat_ivl_ms = (int) heartbeat_ms;
    config.sockopts.heartbeat_timeout_ms = (int) (3 * heartbeat_ms);
    config.sockopts.heartbeat_ttl_ms = (int) (3 * heartbeat_ms);
    char *endpoint = config.connect ? strdup (config.connect)
                                    : pz_endpoint_for_host (broker, PZ_PORT_SOURCE);
    config.connect = endpoint;
    char *publish_endpoint = publish ? strdup (publish)
                                     : pz_endpoint_for_host (broker, PZ_PORT_PUBLISH);
    char *history_endpoint = history ? strdup (history)
                                     : pz_endpoint_for_host (broker, 5559);
    config.publish = publish_endpoint;
    config.history = streq (history_endpoint, "none") ? NULL : history_endpoint;
    //  A broker whose name does not resolve yet (a container starting) is
    //  waited for, not given up on. SIGTERM while waiting: exit 0 below.
    pz_endpoint_wait_resolvable (endpoint, "source", 5000);

    int status = 1;
    pz_source_t *source = pz_source_new (&config);
    if (source) {
        status = pz_source_run (source);
        pz_source_stats_t stats;
        pz_source_stats (source, &stats);
        fprintf (stderr, "playzmq-source: sent %" PRIu64 ", acked %" PRIu64 " in %.3f s "
                 "(%.0f numbers/s); ack p50 %.3f ms p99 %.3f ms; %" PRIu64 " rejected, "
                 "%" PRIu64 " resent requests, %" PRIu64 " bad lines; %" PRIu64
                 " ranges, %" PRIu64 " counted%s\n", stats.sent,
                 stats.acked, stats.seconds,
                 stats.seconds > 0 ? (double) stats.acked / stats.seconds : 0.0,
                 stats.ack_p50_ms, stats.ack_p99_ms,
                 stats.rejected, stats.resends, stats.bad_lines, stats.ranges,
                 stats.counted, stats.range_resends ? " (ranges sent again after "
                                                       "a broker restart)" : "");
        pz_source_destroy (&source);
    }
    free (endpoint);
    free (publish_endpoint);
    free (history_endpoint);
    return status;
}

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-source");
    int64_t *ranges = NULL;
    size_t range_count = 0;
    int status = s_take_ranges (&argc, argv, &ranges, &range_count);
    if (status == 0)
        status = s_main (argc, argv, ranges, range_count);
    free (ranges);
    return status;
}
