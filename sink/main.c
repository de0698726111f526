/*  =========================================================================
    playzmq-sink - prints what the broker publishes, with no silent gap

    Parses options, prints records to stdout until --count is reached or
    SIGINT/SIGTERM, then a summary on stderr: records per tag, malformed
    messages, gaps, messages filled from history and messages lost. Gaps
    are filled from the broker's history endpoint (--history); --from starts
    from history, --resume continues exactly where an earlier run stopped.
    Exit 0, 1 for an invalid endpoint or an output that cannot be written,
    2 for a bad flag or a malformed resume file, 3 with --strict when
    messages were lost. All the logic is in sink.c.
    =========================================================================
*/
#include "cli.h"
#include "sink.h"

#include <inttypes.h>
#include <signal.h>
#include <unistd.h>

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-sink");
    //  A closed pipe (| head) shows as a write error, handled by the loop.
    signal (SIGPIPE, SIG_IGN);
    pz_sink_config_t config;
    pz_sink_config_init (&config);
    config.connect = NULL;      //  filled from --broker when not given
    const char *broker_default = "localhost";
    const char *broker = broker_default;
    const char *format = "text";
    const char *from = "new";
    int verbose = 0;
    const char *curve_cert = NULL;
    const char *curve_server = NULL;

    const pz_opt_t options [] = {
        { "broker", 0, PZ_OPT_STRING, &broker, 0, 0, "HOST",
          "broker host: the endpoints default to tcp://HOST:5556 and :5559" },
        { "connect", 'c', PZ_OPT_STRING, &config.connect, 0, 0, "EP",
          "broker's publish endpoint (default: tcp://HOST:5556)" },
        { "history", 0, PZ_OPT_STRING, &config.history, 0, 0, "EP",
          "broker's history endpoint, to fill gaps from; 'none' for none "
          "(default: tcp://HOST:5559, or --connect's host at port 5559)" },
        { "tags", 't', PZ_OPT_STRING, &config.tags, 0, 0, "TAGS",
          "tags to print, letters from N (numbers), P (primes), C (composites), X "
          "(corrections: verdicts the audit found wrong; come with P or C), R "
          "(ranges done: 'R lo:hi count')" },
        { "format", 'f', PZ_OPT_STRING, &format, 0, 0, "FMT",
          "text ('P 97'), json ({\"tag\":\"P\",\"value\":97}), csv, or none (count only)" },
        { "count", 'n', PZ_OPT_INT, &config.count, 0, INT64_MAX, "N",
          "exit after N records (0: never)" },
        { "from", 0, PZ_OPT_STRING, &from, 0, 0, "WHERE",
          "new (live messages only), all (everything history holds first), "
          "or a sequence number to start at" },
        { "resume", 0, PZ_OPT_STRING, &config.resume, 0, 0, "FILE",
          "keep the position of the last line printed in FILE and, if it "
          "exists at start, continue right after it (it wins over --from)" },
        { "strict", 0, PZ_OPT_FLAG, &config.strict, 0, 0, NULL,
          "exit with status 3 as soon as a message is lost (not in history)" },
        { "hwm", 0, PZ_OPT_INT, &config.hwm, 0, 10000000, "N",
          "messages queued here before the broker drops some for this sink "
          "(0: no limit; this sink's memory grows instead)" },
        PZ_OPT_CURVE_CLIENT (&curve_cert, &curve_server, "sink"),
        { "verbose", 'v', PZ_OPT_COUNT, &verbose, 0, 0, NULL,
          "log more (debug lines)" },
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-sink",
        "Subscribes to tags on the broker and prints the records, one per line; "
        "fills gaps from the broker's history.",
        argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (!pz_sink_tags_valid (config.tags))
        return pz_cli_error ("playzmq-sink", "--tags: '%s' is not a set of tags "
                             "from N, P, C, X, R", config.tags);
    if (!pz_sink_format_parse (format, &config.format))
        return pz_cli_error ("playzmq-sink", "--format: '%s' is not text, json, csv or none",
                             format);
    if (!pz_sink_from_parse (from, &config.from_seq))
        return pz_cli_error ("playzmq-sink", "--from: '%s' is not new, all or a "
                             "sequence number (1 or more)", from);
    if (config.resume && !*config.resume)
        return pz_cli_error ("playzmq-sink", "--resume: the file name is empty");
    pz_log_set_verbose (verbose);
    int curve = pz_sockopts_curve_flags (&config.sockopts, "playzmq-sink",
                                         curve_cert, curve_server);
    if (curve != 0)
        return curve;
    bool broker_given = broker != broker_default;
    bool connect_given = config.connect != NULL;
    char *endpoint = config.connect ? strdup (config.connect)
                                    : pz_endpoint_for_host (broker, PZ_PORT_PUBLISH);
    config.connect = endpoint;
    char *history = NULL;
    if (!config.history && connect_given && !broker_given)
        //  --connect without --broker: the history endpoint is on the same
        //  host as the publish endpoint, at its default port.
        history = pz_endpoint_with_port (config.connect, PZ_PORT_HISTORY);
    else
    if (!config.history)
        history = pz_endpoint_for_host (broker, PZ_PORT_HISTORY);
    else
    if (!streq (config.history, "none") && *config.history)
        history = strdup (config.history);
    config.history = history;

    int status = PZ_SINK_OUTPUT_ERROR;
    pz_sink_t *sink = pz_sink_new (&config, STDOUT_FILENO);
    if (sink) {
        status = pz_sink_run (sink);
        char summary [512];
        pz_sink_summary (sink, summary, sizeof summary);
        fprintf (stderr, "playzmq-sink: %s\n", summary);
        pz_sink_destroy (&sink);
    }
    free (history);
    free (endpoint);
    return status;
}
