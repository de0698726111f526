/*  =========================================================================
    playzmq-broker - the broker between sources, workers and sinks

    Parses options into a pz_broker_config_t, reads back its journal, binds,
    serves until SIGINT or SIGTERM, drains, exits 0. Exit 2 for a bad flag,
    1 for an endpoint that cannot be bound or a journal that cannot be used.
    With --curve-cert and --curve-allow every endpoint takes only CURVE
    peers whose key is allowed for it (zap.h); SIGHUP reads the allow
    directory again. All the logic is in broker.c.
    =========================================================================
*/
#include "broker.h"
#include "cli.h"
#include "journal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

//  Set by SIGHUP, read and cleared by the broker's loop: no work in the
//  handler itself.
static volatile sig_atomic_t s_reload = 0;

static void
s_catch_hup (int signal_number)
{
    (void) signal_number;
    s_reload = 1;
}

//  Raises the soft limit on open files to the hard one: every connection,
//  a stalled handshake's too, holds a descriptor, and at the usual soft
//  limit of 1024 a few hundred idle peers would make accept() fail for
//  everyone else. Logs the limit in force.
static void
s_raise_file_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) != 0)
        return;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = { limit.rlim_max, limit.rlim_max };
        if (setrlimit (RLIMIT_NOFILE, &raised) == 0)
            limit = raised;
    }
    if (limit.rlim_cur == RLIM_INFINITY)
        zsys_info ("broker: open files: no limit");
    else
        zsys_info ("broker: open files: at most %llu (connections, stalled "
                   "handshakes included, hold one each)",
                   (unsigned long long) limit.rlim_cur);
}

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-broker");
    pz_broker_config_t config;
    pz_broker_config_init (&config);
    int64_t heartbeat_ms = config.sockopts.heartbeat_ivl_ms;
    int64_t heartbeat_timeout_ms = config.sockopts.heartbeat_timeout_ms;
    int64_t handshake_ms = config.sockopts.handshake_ms;
    int verbose = 0;
    const char *retain = NULL;
    const char *stats_format = "text";
    int64_t old_max_dispatches = 0;
    const char *curve_cert = NULL;
    const char *curve_allow = NULL;
    const char *audit = NULL;

    const pz_opt_t options [] = {
        { "source-bind", 0, PZ_OPT_STRING, &config.source_bind, 0, 0, "EP",
          "endpoint where sources hand in numbers (a ROUTER answering as REP)" },
        { "publish-bind", 0, PZ_OPT_STRING, &config.publish_bind, 0, 0, "EP",
          "XPUB endpoint where sinks subscribe to N, P and C" },
        { "dispatch-bind", 0, PZ_OPT_STRING, &config.dispatch_bind, 0, 0, "EP",
          "PUSH endpoint where workers pull work" },
        { "results-bind", 0, PZ_OPT_STRING, &config.results_bind, 0, 0, "EP",
          "endpoint where workers report verdicts (a ROUTER answering as REP)" },
        { "history-bind", 0, PZ_OPT_STRING, &config.history_bind, 0, 0, "EP",
          "endpoint where sinks read publications they missed (from the journal)" },
        { "journal", 'j', PZ_OPT_STRING, &config.journal_dir, 0, 0, "DIR",
          "keep a journal in DIR: nothing acknowledged is lost when the broker "
          "is killed, and sinks can fill gaps (default: none)" },
        { "retain", 0, PZ_OPT_STRING, &retain, 0, 0, "SPEC",
          "journal retention: SIZE (500M, 2G), AGE (90s, 30m, 12h, 7d) or "
          "SIZE,AGE; only segments whose numbers all have verdicts go "
          "(default: keep everything)" },
        { "max-inflight", 0, PZ_OPT_INT, &config.max_inflight, 1, 100000000, "N",
          "numbers accepted and not yet reported, at most" },
        { "max-messages", 0, PZ_OPT_INT, &config.max_messages, 1, 100000000, "N",
          "source messages accepted and not yet reported, at most" },
        { "max-dispatches", 0, PZ_OPT_INT, &old_max_dispatches, 1, 100000000, "N",
          "old name of --max-messages" },
        { "coalesce-ms", 0, PZ_OPT_INT, &config.coalesce_ms, 0, 1000, "MS",
          "hold a dispatch this long for more numbers to join it "
          "(0: push each source message at once)" },
        { "lease-ms", 0, PZ_OPT_INT, &config.lease_ms, 1, 86400000, "MS",
          "push a dispatch again if no report came within this" },
        { "range-lease", 0, PZ_OPT_INT, &config.range_lease, 1, INT64_MAX, "N",
          "numbers in one piece of a counted (Q) range, at most; pieces of "
          "published (R) ranges also at most 524288" },
        { "range-inflight", 0, PZ_OPT_INT, &config.range_inflight, 1, 100000, "N",
          "pieces of ranges out at once, at most (also at most twice the "
          "worker threads lately active)" },
        { "drain-ms", 0, PZ_OPT_INT, &config.drain_ms, 0, 86400000, "MS",
          "on SIGINT/SIGTERM wait this long for outstanding results" },
        { "stats", 0, PZ_OPT_INT, &config.stats_s, 0, 86400, "S",
          "log counters every S seconds (0: only at exit)" },
        { "stats-format", 0, PZ_OPT_STRING, &stats_format, 0, 0, "FMT",
          "text (a log line) or json (one object per line on stdout, "
          "docs/STATS.md)" },
        { "recent-requests", 0, PZ_OPT_INT, &config.recent_requests, 1, 10000000, "N",
          "source request ids remembered to answer retries" },
        { "publish-hwm", 0, PZ_OPT_INT, &config.publish_hwm, 0, 10000000, "N",
          "messages queued per sink; a sink further behind loses messages "
          "(0: no limit, memory grows with a slow sink)" },
        { "heartbeat-ms", 0, PZ_OPT_INT, &heartbeat_ms, 0, 3600000, "MS",
          "ZMTP heartbeat interval on the REP endpoints (0: off)" },
        { "heartbeat-timeout-ms", 0, PZ_OPT_INT, &heartbeat_timeout_ms, 100, 3600000, "MS",
          "drop a peer silent for this long" },
        { "handshake-ms", 0, PZ_OPT_INT, &handshake_ms, 100, 600000, "MS",
          "drop a connection whose ZMTP (and CURVE) handshake is not done "
          "within this: idle and stalled connections hold a socket only so "
          "long (PROTOCOL.md, \"Security\")" },
        { "curve-cert", 0, PZ_OPT_STRING, &curve_cert, 0, 0, "FILE",
          "the broker's secret certificate (playzmq-keygen): every endpoint "
          "takes CURVE peers only, fail closed (default: none, running open)" },
        { "curve-allow", 0, PZ_OPT_STRING, &curve_allow, 0, 0, "DIR",
          "with --curve-cert: the public certificates (*.cert, with a role) "
          "allowed in; read again on SIGHUP" },
        { "audit", 0, PZ_OPT_STRING, &audit, 0, 0, "F",
          "share of each report's verdicts the broker tests again before "
          "publishing, 0 to 1; at least one per report unless 0; a wrong one "
          "refuses the report (E 11) and cuts its worker off (default 0.01)" },
        { "ban-s", 0, PZ_OPT_INT, &config.ban_s, 0, 31536000, "S",
          "how long a worker caught with a wrong verdict stays cut off" },
        { "verbose", 'v', PZ_OPT_COUNT, &verbose, 0, 0, NULL,
          "log more (debug lines)" },
        PZ_OPT_END
    };
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-broker",
        "Accepts numbers from sources, leases them to workers, publishes "
        "numbers and verdicts.", argc, argv);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (old_max_dispatches > 0)
        config.max_messages = old_max_dispatches;
    if (retain && !pz_journal_retain_parse (retain, &config.retain_bytes, &config.retain_s))
        return pz_cli_error ("playzmq-broker", "--retain: '%s' is not SIZE, AGE or "
                             "SIZE,AGE (e.g. 2G, 7d, 2G,7d)", retain);
    if (retain && !config.journal_dir)
        return pz_cli_error ("playzmq-broker", "--retain needs --journal");
    if (!streq (stats_format, "text") && !streq (stats_format, "json"))
        return pz_cli_error ("playzmq-broker", "--stats-format: '%s' is not text or json",
                             stats_format);
    config.stats_json = streq (stats_format, "json");
    if (audit) {
        char *end = NULL;
        errno = 0;
        double fraction = strtod (audit, &end);
        if (end == audit || *end || errno || !(fraction >= 0 && fraction <= 1))
            return pz_cli_error ("playzmq-broker", "--audit: '%s' is not a share "
                                 "from 0 to 1 (e.g. 0.01)", audit);
        config.audit = fraction;
    }
    if (config.journal_dir && !*config.journal_dir)
        config.journal_dir = NULL;      //  PLAYZMQ_JOURNAL= turns it off
    config.sockopts.heartbeat_ivl_ms = (int) heartbeat_ms;
    config.sockopts.heartbeat_timeout_ms = (int) heartbeat_timeout_ms;
    config.sockopts.heartbeat_ttl_ms = (int) heartbeat_timeout_ms;
    config.sockopts.handshake_ms = (int) handshake_ms;
    pz_log_set_verbose (verbose);
    if (curve_cert && !*curve_cert)
        curve_cert = NULL;              //  PLAYZMQ_CURVE_CERT= turns it off
    if (curve_allow && !*curve_allow)
        curve_allow = NULL;
    if (curve_cert && !curve_allow)
        return pz_cli_error ("playzmq-broker", "--curve-cert needs --curve-allow DIR");
    if (curve_allow && !curve_cert)
        return pz_cli_error ("playzmq-broker", "--curve-allow needs --curve-cert FILE");
    if (curve_cert
    &&  pz_sockopts_set_curve (&config.sockopts, "playzmq-broker", curve_cert, NULL) == -1)
        return 1;
    config.curve_allow = curve_allow;
    if (curve_cert) {
        //  czmq catches SIGINT and SIGTERM only; SIGHUP would end the broker.
        //  Without certificates it still does, as it always has.
        struct sigaction action;
        memset (&action, 0, sizeof action);
        action.sa_handler = s_catch_hup;
        sigemptyset (&action.sa_mask);
        sigaction (SIGHUP, &action, NULL);
        config.reload = &s_reload;
    }

    s_raise_file_limit ();
    pz_broker_t *broker = pz_broker_new (&config);
    if (!broker)
        return 1;
    int status = pz_broker_run (broker, NULL);
    pz_broker_destroy (&broker);
    return status == 0 ? 0 : 1;
}
