/*  =========================================================================
    playzmq-worker - tests numbers for the broker, on every core

    Parses options, connects `--threads` workers (each its own PULL and
    DEALER pair, in its own zactor), waits for SIGINT/SIGTERM or a worker that gives
    up, then prints a summary. Exit 0 on a signal, 1 if a worker gave up or an
    endpoint is invalid, 2 for a bad flag. All the logic is in worker.c.
    =========================================================================
*/
#include "cli.h"
#include "worker.h"

#include <inttypes.h>
#include <unistd.h>

#define S_THREADS_MAX   256

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-worker");
    pz_worker_config_t config;
    pz_worker_config_init (&config);
    config.dispatch = NULL;     //  filled from --broker when not given
    config.results = NULL;
    const char *broker = "localhost";
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    int64_t threads = cores > 0 ? cores : 1;
    int64_t heartbeat_ms = config.sockopts.heartbeat_ivl_ms;
    int verbose = 0;
    const char *curve_cert = NULL;
    const char *curve_server = NULL;
    const char *name = NULL;

    const pz_opt_t options [] = {
        { "broker", 0, PZ_OPT_STRING, &broker, 0, 0, "HOST",
          "broker host: endpoints default to tcp://HOST:5557 and :5558" },
        { "dispatch", 0, PZ_OPT_STRING, &config.dispatch, 0, 0, "EP",
          "broker's dispatch endpoint to PULL from (default: tcp://HOST:5557)" },
        { "results", 0, PZ_OPT_STRING, &config.results, 0, 0, "EP",
          "broker's results endpoint to report to (default: tcp://HOST:5558)" },
        { "threads", 't', PZ_OPT_INT, &threads, 1, S_THREADS_MAX, "N",
          "worker threads, each with its own connections (default: cores)" },
        { "timeout", 0, PZ_OPT_INT, &config.timeout_ms, 1, 3600000, "MS",
          "wait this long for the broker's ack of a report" },
        { "retries", 0, PZ_OPT_INT, &config.retries, 0, 1000000, "N",
          "resend an unacknowledged report this often, then give up" },
        { "pipeline", 'p', PZ_OPT_INT, &config.pipeline, 1, 64, "K",
          "reports waiting for their acks at once, per thread" },
        { "prefetch", 0, PZ_OPT_INT, &config.prefetch, 1, 1000000, "N",
          "dispatches queued per thread, at most" },
        { "name", 0, PZ_OPT_STRING, &name, 0, 0, "NAME",
          "how the broker's stats and logs name this worker (default: "
          "host name + pid); threads add /0, /1, ..." },
        { "wait", 0, PZ_OPT_INT, &config.wait_s, 0, 86400, "S",
          "until the broker first answers, keep trying this long whatever "
          "--retries says (0: don't)" },
        { "heartbeat-ms", 0, PZ_OPT_INT, &heartbeat_ms, 0, 3600000, "MS",
          "ZMTP heartbeat interval on the results connection (0: off)" },
        PZ_OPT_CURVE_CLIENT (&curve_cert, &curve_server, "worker"),
        { "verbose", 'v', PZ_OPT_COUNT, &verbose, 0, 0, NULL,
          "log more (debug lines)" },
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-worker",
        "Pulls numbers from the broker, tests them for primality, reports "
        "verdicts.", argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    pz_log_set_verbose (verbose);
    int curve = pz_sockopts_curve_flags (&config.sockopts, "playzmq-worker",
                                         curve_cert, curve_server);
    if (curve != 0)
        return curve;
    config.sockopts.heartbeat_ivl_ms = (int) heartbeat_ms;
    config.sockopts.heartbeat_timeout_ms = (int) (3 * heartbeat_ms);
    config.sockopts.heartbeat_ttl_ms = (int) (3 * heartbeat_ms);
    char *dispatch = config.dispatch ? strdup (config.dispatch)
                                     : pz_endpoint_for_host (broker, PZ_PORT_DISPATCH);
    char *results = config.results ? strdup (config.results)
                                   : pz_endpoint_for_host (broker, PZ_PORT_RESULTS);
    config.dispatch = dispatch;
    config.results = results;
    //  A broker whose name does not resolve yet (a container starting) is
    //  waited for, not given up on. SIGTERM while waiting: the loop below
    //  does not run and the worker exits 0.
    if (pz_endpoint_wait_resolvable (dispatch, "worker", 5000) == 0)
        pz_endpoint_wait_resolvable (results, "worker", 5000);

    //  Connect every thread's sockets here, so a bad endpoint ends the
    //  program before any thread starts.
    pz_worker_t *workers [S_THREADS_MAX] = { NULL };
    zactor_t *actors [S_THREADS_MAX] = { NULL };
    int status = 0;
    char host [200] = "worker";
    gethostname (host, sizeof host - 1);
    char *base_name = name && *name ? strdup (name) : zsys_sprintf ("%s-%d", host, (int) getpid ());
    if (strlen (base_name) > 240) {
        zsys_error ("worker: --name is longer than 240 bytes");
        status = 1;
    }
    for (int64_t index = 0; index < threads && status == 0; index++) {
        char thread_name [256];
        snprintf (thread_name, sizeof thread_name, "%s/%d", base_name, (int) index);
        config.name = thread_name;      //  copied by the client
        if (!(workers [index] = pz_worker_new (&config)))
            status = 1;
    }
    config.name = NULL;
    zpoller_t *poller = zpoller_new (NULL);
    for (int64_t index = 0; index < threads && status == 0; index++) {
        //  The actor takes ownership of the worker and its sockets.
        actors [index] = zactor_new (pz_worker_actor, workers [index]);
        workers [index] = NULL;
        zpoller_add (poller, actors [index]);
    }
    if (status == 0)
        zsys_info ("worker: %s: %" PRId64 " threads pulling from %s, reporting to %s",
                   base_name, threads, dispatch, results);

    while (status == 0 && !zsys_interrupted) {
        zactor_t *which = (zactor_t *) zpoller_wait (poller, 500);
        if (!which)
            continue;
        char *message = zstr_recv (which);
        if (message && streq (message, "FAILED"))
            status = 1;
        zstr_free (&message);
    }

    pz_worker_stats_t total = { 0 };
    for (int64_t index = 0; index < threads; index++) {
        if (!actors [index])
            continue;
        pz_worker_stats_t stats;
        zstr_send (actors [index], "STATS");
        byte *data = NULL;
        size_t size = 0;
        if (zsock_recv (actors [index], "b", &data, &size) == 0
        &&  size == sizeof stats) {
            memcpy (&stats, data, sizeof stats);
            total.numbers += stats.numbers;
            total.reports += stats.reports;
            total.rejected += stats.rejected;
            total.resends += stats.resends;
            total.malformed += stats.malformed;
        }
        free (data);
    }
    zsys_info ("worker: tested %" PRIu64 " numbers in %" PRIu64 " reports; "
               "%" PRIu64 " reports rejected, %" PRIu64 " resent, %" PRIu64
               " malformed dispatches dropped", total.numbers, total.reports,
               total.rejected, total.resends, total.malformed);

    for (int64_t index = threads - 1; index >= 0; index--) {
        zactor_destroy (&actors [index]);
        pz_worker_destroy (&workers [index]);
    }
    zstr_free (&base_name);
    zpoller_destroy (&poller);
    free (results);
    free (dispatch);
    return status;
}
