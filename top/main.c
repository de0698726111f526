/*  =========================================================================
    playzmq-top - the broker's stats for people, refreshed once a second

    Parses options, then either repaints the terminal with the broker's
    throughput, totals and workers until SIGINT/SIGTERM (exit 0), or with
    --once prints one snapshot (--json: the raw JSON object) and exits 0 if
    the broker answered with its stats, 1 if not within --timeout (the
    container health check). 1 also for an invalid endpoint, 2 for a bad
    flag. All the logic is in top.c.
    =========================================================================
*/
#include "cli.h"
#include "top.h"

#include <signal.h>
#include <unistd.h>

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-top");
    //  A closed pipe (| head) shows as a write error, handled by the loop.
    signal (SIGPIPE, SIG_IGN);
    const char *broker = "localhost";
    const char *history = NULL;
    const char *curve_cert = NULL;
    const char *curve_server = NULL;
    int64_t interval_ms = 1000;
    int64_t timeout_ms = 2000;
    bool once = false;
    bool json = false;
    int verbose = 0;

    const pz_opt_t options [] = {
        { "broker", 0, PZ_OPT_STRING, &broker, 0, 0, "HOST",
          "broker host: the history endpoint defaults to tcp://HOST:5559" },
        { "history", 0, PZ_OPT_STRING, &history, 0, 0, "EP",
          "broker's history endpoint, asked for stats (default: tcp://HOST:5559)" },
        { "interval", 'i', PZ_OPT_INT, &interval_ms, 100, 3600000, "MS",
          "refresh the screen this often" },
        { "timeout", 0, PZ_OPT_INT, &timeout_ms, 10, 600000, "MS",
          "a request without a reply this long means the broker is not answering" },
        { "once", 0, PZ_OPT_FLAG, &once, 0, 0, NULL,
          "print one plain snapshot and exit: 0 if the broker answered, "
          "1 if not within --timeout (a health check)" },
        { "json", 0, PZ_OPT_FLAG, &json, 0, 0, NULL,
          "with --once: print the broker's JSON object (docs/STATS.md) instead" },
        PZ_OPT_CURVE_CLIENT (&curve_cert, &curve_server, "sink"),
        { "verbose", 'v', PZ_OPT_COUNT, &verbose, 0, 0, NULL,
          "log more (debug lines)" },
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-top",
        "Shows the broker's throughput, totals and workers, refreshed every "
        "--interval; Ctrl-C quits.",
        argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (json && !once)
        return pz_cli_error ("playzmq-top", "--json goes with --once");
    if (history && !*history)
        return pz_cli_error ("playzmq-top", "--history: the endpoint is empty");
    pz_log_set_verbose (verbose);
    pz_sockopts_t sockopts;
    pz_sockopts_init (&sockopts);
    int curve = pz_sockopts_curve_flags (&sockopts, "playzmq-top", curve_cert, curve_server);
    if (curve != 0)
        return curve;
    char *endpoint = history ? strdup (history)
                             : pz_endpoint_for_host (broker, PZ_PORT_HISTORY);

    int status = 1;
    pz_top_t *top = pz_top_new (endpoint);
    if (top && curve_cert && *curve_cert && pz_top_set_sockopts (top, &sockopts) != 0)
        pz_top_destroy (&top);
    if (top) {
        status = once ? pz_top_once (top, STDOUT_FILENO, json, timeout_ms)
                      : pz_top_run (top, STDOUT_FILENO, interval_ms, timeout_ms);
        pz_top_destroy (&top);
    }
    free (endpoint);
    return status;
}
