/*  =========================================================================
    playzmq-sink - prints what the broker publishes

    Parses options, prints records to stdout until --count is reached or
    SIGINT/SIGTERM, then a summary of counts per tag on stderr. Exit 0, or 2
    for a bad flag, 1 for an invalid endpoint. All the logic is in sink.c.
    =========================================================================
*/
#include "cli.h"
#include "sink.h"

#include <inttypes.h>
#include <signal.h>

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-sink");
    //  A closed pipe (| head) shows as a write error, handled by the loop.
    signal (SIGPIPE, SIG_IGN);
    pz_sink_config_t config;
    pz_sink_config_init (&config);
    config.connect = NULL;      //  filled from --broker when not given
    const char *broker = "localhost";
    const char *format = "text";
    int verbose = 0;

    const pz_opt_t options [] = {
        { "broker", 0, PZ_OPT_STRING, &broker, 0, 0, "HOST",
          "broker host: the endpoint defaults to tcp://HOST:5556" },
        { "connect", 'c', PZ_OPT_STRING, &config.connect, 0, 0, "EP",
          "broker's publish endpoint (default: tcp://HOST:5556)" },
        { "tags", 't', PZ_OPT_STRING, &config.tags, 0, 0, "TAGS",
          "tags to print, letters from N (numbers), P (primes), C (composites)" },
        { "format", 'f', PZ_OPT_STRING, &format, 0, 0, "FMT",
          "text ('P 97'), json ({\"tag\":\"P\",\"value\":97}), csv, or none (count only)" },
        { "count", 'n', PZ_OPT_INT, &config.count, 0, INT64_MAX, "N",
          "exit after N records (0: never)" },
        { "hwm", 0, PZ_OPT_INT, &config.hwm, 0, 10000000, "N",
          "messages queued here before the broker drops some for this sink "
          "(0: no limit; this sink's memory grows instead)" },
        { "verbose", 'v', PZ_OPT_COUNT, &verbose, 0, 0, NULL,
          "log more (debug lines)" },
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-sink",
        "Subscribes to tags on the broker and prints the records, one per line.",
        argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (!pz_sink_tags_valid (config.tags))
        return pz_cli_error ("playzmq-sink", "--tags: '%s' is not a set of tags "
                             "from N, P, C", config.tags);
    if (!pz_sink_format_parse (format, &config.format))
        return pz_cli_error ("playzmq-sink", "--format: '%s' is not text, json, csv or none",
                             format);
    pz_log_set_verbose (verbose);
    char *endpoint = config.connect ? strdup (config.connect)
                                    : pz_endpoint_for_host (broker, PZ_PORT_PUBLISH);
    config.connect = endpoint;

    int status = 1;
    pz_sink_t *sink = pz_sink_new (&config, stdout);
    if (sink) {
        status = pz_sink_run (sink);
        pz_sink_stats_t stats;
        pz_sink_stats (sink, &stats);
        fprintf (stderr, "playzmq-sink: printed N %" PRIu64 ", P %" PRIu64 ", C %" PRIu64
                 "; %" PRIu64 " malformed messages dropped\n", stats.by_tag [0],
                 stats.by_tag [1], stats.by_tag [2], stats.malformed);
        pz_sink_destroy (&sink);
    }
    free (endpoint);
    return status;
}
