/*  =========================================================================
    test_top - playzmq-top's stats parser and screen

    The parser on real objects (docs/STATS.md's example, 0, 1 and 3
    workers, fields it does not know) and on garbage (every truncation,
    wrong types, numbers out of range, deep nesting, random damage): a
    garbage reply is an error with a reason, never a crash. The screen:
    snapshots fed one after another render the rates, totals, the chart
    and one row per worker, within the view's width and height.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "top.h"

//  docs/STATS.md's example, on one line as on the wire.
static const char s_example [] =
    "{\"type\":\"stats\",\"final\":false,\"uptime_ms\":2002,\"accepted\":2000000,\"requests\":1954,"
    "\"retries\":0,\"dispatched\":2000000,\"dispatches\":496,\"redispatched\":0,\"results\":2000000,"
    "\"duplicates\":0,\"inflight\":0,\"recovered\":0,\"published\":2946,\"seq\":2946,\"journal\":true,"
    "\"commits\":552,\"unavailable\":0,\"subscriptions\":2,\"audit\":0.01,\"audited\":20012,"
    "\"audit_failures\":0,\"cut_off\":0,\"corrections\":0,\"errors\":{},\"rate\":1110144,"
    "\"workers\":[{\"name\":\"alpha\",\"numbers\":1016960,\"reports\":251,\"duplicates\":0,\"rejected\":0,"
    "\"rate\":557184,\"last_seen_ms\":147,\"wrong\":0,\"cut_off\":false}]}";

#define S_ENDPOINT  "tcp://127.0.0.1:1"

//  Parses text (a C string); returns what pz_top_stats_parse returns.
static int
s_parse (pz_top_stats_t *stats, const char *text)
{
    char why [200] = "";
    int rc = pz_top_stats_parse (stats, text, strlen (text), why, sizeof why);
    if (rc == 0)
        cr_assert_str_eq (why, "", "a parse that succeeds says nothing");
    else
        cr_assert (strlen (why) > 0, "a parse that fails says why: %s", text);
    return rc;
}

//  Builds a stats object with uptime, rate, results, and the workers given
//  as "name:rate:numbers:last_seen_ms" strings (NULL-terminated).
static char *
s_object (int64_t uptime_ms, int64_t rate, int64_t results, const char **workers)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    cr_assert (out);
    fprintf (out, "{\"type\":\"stats\",\"final\":false,\"uptime_ms\":%ld,\"accepted\":%ld,"
             "\"requests\":10,\"retries\":1,\"dispatched\":%ld,\"dispatches\":7,"
             "\"redispatched\":3,\"results\":%ld,\"duplicates\":4,\"inflight\":1234,"
             "\"recovered\":0,\"published\":20,\"seq\":4800,\"journal\":false,\"commits\":0,"
             "\"unavailable\":0,\"subscriptions\":1,\"errors\":{\"7\":2},\"rate\":%ld,"
             "\"workers\":[", (long) uptime_ms, (long) (results + 1234), (long) results,
             (long) results, (long) rate);
    for (int index = 0; workers && workers [index]; index++) {
        char name [64];
        long worker_rate, numbers, seen;
        cr_assert (sscanf (workers [index], "%63[^:]:%ld:%ld:%ld", name, &worker_rate,
                           &numbers, &seen) == 4);
        fprintf (out, "%s{\"name\":\"%s\",\"numbers\":%ld,\"reports\":%ld,\"duplicates\":0,"
                 "\"rejected\":%d,\"rate\":%ld,\"last_seen_ms\":%ld}", index ? "," : "",
                 name, numbers, numbers / 100, index, worker_rate, seen);
    }
    fprintf (out, "]}");
    fclose (out);
    return text;
}

//  Returns the line of screen holding word, copied into line, or NULL.
static char *
s_find_line (const char *screen, const char *word, char *line, size_t size)
{
    const char *found = strstr (screen, word);
    if (!found)
        return NULL;
    const char *start = found;
    while (start > screen && start [-1] != '\n')
        start--;
    const char *end = strchr (found, '\n');
    size_t length = end ? (size_t) (end - start) : strlen (start);
    if (length >= size)
        length = size - 1;
    memcpy (line, start, length);
    line [length] = '\0';
    return line;
}

//  Counts the lines of screen and checks none is wider than cols (0: any).
static int
s_count_lines (const char *screen, int cols)
{
    int lines = 0;
    const char *start = screen;
    for (const char *end = strchr (start, '\n'); end; end = strchr (start, '\n')) {
        if (cols > 0)
            cr_assert_leq ((int) (end - start), cols, "line %d too wide:\n%s", lines, screen);
        lines++;
        start = end + 1;
    }
    cr_assert_eq (*start, '\0', "the screen ends with a newline");
    return lines;
}

Test (top, parses_the_documented_example, .timeout = 10)
{
    pz_top_stats_t stats;
    pz_top_stats_init (&stats);
    cr_assert_eq (s_parse (&stats, s_example), 0);
    cr_assert_not (stats.final);
    cr_assert_eq (stats.uptime_ms, 2002);
    cr_assert_eq (stats.accepted, 2000000);
    cr_assert_eq (stats.requests, 1954);
    cr_assert_eq (stats.dispatches, 496);
    cr_assert_eq (stats.results, 2000000);
    cr_assert_eq (stats.published, 2946);
    cr_assert_eq (stats.seq, 2946);
    cr_assert (stats.journal);
    cr_assert_eq (stats.commits, 552);
    cr_assert_eq (stats.subscriptions, 2);
    cr_assert_eq (stats.error_count, 0);
    cr_assert_float_eq (stats.rate, 1110144.0, 0.5);
    cr_assert_eq (stats.worker_count, 1);
    cr_assert_str_eq (stats.workers [0].name, "alpha");
    cr_assert_eq (stats.workers [0].numbers, 1016960);
    cr_assert_eq (stats.workers [0].reports, 251);
    cr_assert_float_eq (stats.workers [0].rate, 557184.0, 0.5);
    cr_assert_eq (stats.workers [0].last_seen_ms, 147);
    pz_top_stats_reset (&stats);
    pz_top_stats_reset (NULL);
}

Test (top, parses_zero_one_and_three_workers, .timeout = 10)
{
    pz_top_stats_t stats;
    pz_top_stats_init (&stats);
    char *none = s_object (5000, 0, 0, NULL);
    cr_assert_eq (s_parse (&stats, none), 0);
    cr_assert_eq (stats.worker_count, 0);
    cr_assert_eq (stats.error_count, 1);
    cr_assert_eq (stats.errors [0].code, 7);
    cr_assert_eq (stats.errors [0].count, 2);
    cr_assert_eq (stats.inflight, 1234);

    const char *one [] = { "w-1:250:1000:12", NULL };
    char *single = s_object (6000, 250, 1000, one);
    cr_assert_eq (s_parse (&stats, single), 0);
    cr_assert_eq (stats.worker_count, 1);
    cr_assert_str_eq (stats.workers [0].name, "w-1");
    cr_assert_eq (stats.workers [0].last_seen_ms, 12);

    const char *three [] = { "alpha:100:500:1", "beta:200:600:2", "gamma:0:700:30000", NULL };
    char *triple = s_object (7000, 300, 1800, three);
    cr_assert_eq (s_parse (&stats, triple), 0);
    cr_assert_eq (stats.worker_count, 3);
    cr_assert_str_eq (stats.workers [2].name, "gamma");
    cr_assert_eq (stats.workers [2].numbers, 700);
    cr_assert_eq (stats.workers [2].rejected, 2);
    cr_assert_eq (stats.workers [2].last_seen_ms, 30000);
    cr_assert_float_eq (stats.workers [1].rate, 200.0, 0.01);

    //  The same struct again, with fewer workers: nothing left over.
    cr_assert_eq (s_parse (&stats, none), 0);
    cr_assert_eq (stats.worker_count, 0);
    free (none);
    free (single);
    free (triple);
    pz_top_stats_reset (&stats);
}

Test (top, skips_unknown_fields_and_takes_white_space_and_escapes, .timeout = 10)
{
    pz_top_stats_t stats;
    pz_top_stats_init (&stats);
    const char *text =
        " \n{ \"new_field\" : [1, -2.5e3, {\"a\": [true, false, null, \"x\\\"y\"]}],\r\n"
        "  \"type\": \"stats\", \"uptime_ms\": 0, \"rate\": 12.75e2,\t\"errors\": {\"9\": 3, \"10\": 1},"
        "  \"workers\": [ {\"zone\": {\"deep\": [[[]]]}, \"name\": \"caf\\u00e9\\n\\u0041\","
        "  \"rate\": 0, \"numbers\": 9223372036854775807} ] } \n";
    cr_assert_eq (s_parse (&stats, text), 0);
    cr_assert_float_eq (stats.rate, 1275.0, 0.01);
    cr_assert_eq (stats.error_count, 2);
    cr_assert_eq (stats.errors [1].code, 10);
    cr_assert_eq (stats.worker_count, 1);
    cr_assert_str_eq (stats.workers [0].name, "caf\xc3\xa9\nA");
    cr_assert_eq (stats.workers [0].numbers, INT64_MAX);
    //  A field repeated: the last one counts.
    cr_assert_eq (s_parse (&stats, "{\"type\":\"stats\",\"seq\":1,\"seq\":2}"), 0);
    cr_assert_eq (stats.seq, 2);
    //  The broker's very first snapshot may lack everything but its type.
    cr_assert_eq (s_parse (&stats, "{\"type\":\"stats\"}"), 0);
    //  A field it skips may hold any number (a future counter past 1e18).
    cr_assert_eq (s_parse (&stats, "{\"type\":\"stats\",\"x\":[-1e999,18446744073709551615]}"),
                  0);
    pz_top_stats_reset (&stats);
}

Test (top, every_truncation_is_an_error, .timeout = 20)
{
    pz_top_stats_t stats;
    pz_top_stats_init (&stats);
    size_t size = strlen (s_example);
    for (size_t length = 0; length < size; length++) {
        char why [200] = "";
        cr_assert_eq (pz_top_stats_parse (&stats, s_example, length, why, sizeof why), -1,
                      "a prefix of %zu bytes parsed", length);
        cr_assert (strlen (why) > 0);
        cr_assert_eq (stats.worker_count, 0);
    }
    cr_assert_eq (pz_top_stats_parse (&stats, NULL, 0, NULL, 0), -1);
    pz_top_stats_reset (&stats);
}

Test (top, garbage_is_an_error_never_a_crash, .timeout = 20)
{
    const char *garbage [] = {
        "", "   ", "null", "[]", "\"stats\"", "42", "{", "}", "{}",
        "{\"type\":\"other\"}",
        "{\"type\":\"statsx\"}",
        "{\"type\":5}",
        "{type:\"stats\"}",
        "{\"type\":\"stats\",}",
        "{\"type\":\"stats\"} x",
        "{\"type\":\"stats\"}{}",
        "{\"type\":\"stats\" \"seq\":1}",
        //  Wrong types.
        "{\"type\":\"stats\",\"uptime_ms\":\"12\"}",
        "{\"type\":\"stats\",\"journal\":1}",
        "{\"type\":\"stats\",\"final\":\"no\"}",
        "{\"type\":\"stats\",\"rate\":\"fast\"}",
        "{\"type\":\"stats\",\"rate\":null}",
        "{\"type\":\"stats\",\"workers\":{}}",
        "{\"type\":\"stats\",\"workers\":[1]}",
        "{\"type\":\"stats\",\"workers\":[{\"rate\":1}]}",
        "{\"type\":\"stats\",\"workers\":[{\"name\":7}]}",
        "{\"type\":\"stats\",\"workers\":[{\"name\":\"a\",\"numbers\":-1}]}",
        "{\"type\":\"stats\",\"workers\":[{\"name\":\"a\"},]}",
        "{\"type\":\"stats\",\"errors\":[]}",
        "{\"type\":\"stats\",\"errors\":{\"x\":1}}",
        "{\"type\":\"stats\",\"errors\":{\"07\":1}}",
        "{\"type\":\"stats\",\"errors\":{\"7\":\"1\"}}",
        "{\"type\":\"stats\",\"seq\":-1}",
        "{\"type\":\"stats\",\"seq\":1.5}",
        "{\"type\":\"stats\",\"seq\":1e3}",
        "{\"type\":\"stats\",\"seq\":01}",
        "{\"type\":\"stats\",\"seq\":tru}",
        "{\"type\":\"stats\",\"rate\":-1}",
        "{\"type\":\"stats\",\"rate\":1.2.3}",
        "{\"type\":\"stats\",\"rate\":.5}",
        //  Numbers out of range.
        "{\"type\":\"stats\",\"accepted\":9223372036854775808}",
        "{\"type\":\"stats\",\"accepted\":99999999999999999999999999999}",
        "{\"type\":\"stats\",\"rate\":1e400}",
        "{\"type\":\"stats\",\"rate\":1e19}",
        "{\"type\":\"stats\",\"rate\":1234567890123456789012345678901234567890123456789}",
        //  Strings.
        "{\"type\":\"stats\",\"x\":\"\\q\"}",
        "{\"type\":\"stats\",\"x\":\"\\u00\"}",
        "{\"type\":\"stats\",\"x\":\"\\u00zz\"}",
        "{\"type\":\"stats\",\"x\":\"\\u0000\"}",
        "{\"type\":\"stats\",\"x\":\"open}",
        "{\"type\":\"stats\",\"x\":\"\\",
    };
    pz_top_stats_t stats;
    pz_top_stats_init (&stats);
    for (size_t index = 0; index < sizeof garbage / sizeof garbage [0]; index++)
        cr_assert_eq (s_parse (&stats, garbage [index]), -1, "parsed: %s", garbage [index]);

    //  A NUL byte, inside a string and outside.
    const char nul_in_string [] = "{\"type\":\"stats\",\"x\":\"a\0b\"}";
    cr_assert_eq (pz_top_stats_parse (&stats, nul_in_string, sizeof nul_in_string - 1,
                                      NULL, 0), -1);
    const char nul_after [] = "{\"type\":\"stats\"}\0";
    cr_assert_eq (pz_top_stats_parse (&stats, nul_after, sizeof nul_after - 1, NULL, 0), -1);

    //  Deep nesting in a field it skips: fine to 16, an error beyond.
    char deep [4096];
    for (int depth = 1; depth <= 2000; depth = depth < 20 ? depth + 1 : depth * 10) {
        int used = snprintf (deep, sizeof deep, "{\"type\":\"stats\",\"x\":");
        for (int level = 0; level < depth; level++)
            deep [used++] = '[';
        for (int level = 0; level < depth; level++)
            deep [used++] = ']';
        snprintf (deep + used, sizeof deep - (size_t) used, "}");
        cr_assert_eq (s_parse (&stats, deep), depth <= 16 ? 0 : -1, "depth %d", depth);
    }
    char nested [4096];
    int used = snprintf (nested, sizeof nested, "{\"type\":\"stats\",\"x\":");
    for (int level = 0; level < 500; level++)
        used += snprintf (nested + used, sizeof nested - (size_t) used, "{\"a\":");
    snprintf (nested + used, sizeof nested - (size_t) used, "1");
    cr_assert_eq (s_parse (&stats, nested), -1);

    //  Random damage to the example: parsed or not, never a crash.
    srand (42);
    char damaged [sizeof s_example];
    for (int round = 0; round < 20000; round++) {
        memcpy (damaged, s_example, sizeof s_example);
        int changes = 1 + rand () % 4;
        for (int change = 0; change < changes; change++)
            damaged [rand () % (int) (sizeof s_example - 1)] = (char) (rand () % 256);
        char why [200];
        if (pz_top_stats_parse (&stats, damaged, sizeof s_example - 1, why, sizeof why) == 0)
            cr_assert_leq (stats.worker_count, 1);
        else
            cr_assert_eq (stats.worker_count, 0);
    }
    //  Random bytes.
    for (int round = 0; round < 5000; round++) {
        size_t size = (size_t) (rand () % 200);
        for (size_t index = 0; index < size; index++)
            damaged [index] = (char) (rand () % 256);
        pz_top_stats_parse (&stats, damaged, size, NULL, 0);
    }
    pz_top_stats_reset (&stats);
}

Test (top, too_many_workers_is_an_error, .timeout = 20)
{
    size_t size = 64 + (PZ_TOP_WORKERS_MAX + 1) * 24;
    char *text = (char *) malloc (size);
    cr_assert (text);
    int used = snprintf (text, size, "{\"type\":\"stats\",\"workers\":[");
    for (int index = 0; index <= PZ_TOP_WORKERS_MAX; index++)
        used += snprintf (text + used, size - (size_t) used, "%s{\"name\":\"w%d\"}",
                          index ? "," : "", index);
    snprintf (text + used, size - (size_t) used, "]}");
    pz_top_stats_t stats;
    pz_top_stats_init (&stats);
    cr_assert_eq (s_parse (&stats, text), -1);
    //  One fewer is fine.
    char *last = strrchr (text, ',');
    snprintf (last, size - (size_t) (last - text), "]}");
    cr_assert_eq (s_parse (&stats, text), 0);
    cr_assert_eq (stats.worker_count, PZ_TOP_WORKERS_MAX);
    cr_assert_str_eq (stats.workers [PZ_TOP_WORKERS_MAX - 1].name, "w4095");
    pz_top_stats_reset (&stats);
    free (text);
}

Test (top, renders_rates_totals_chart_and_workers, .timeout = 10)
{
    pz_top_t *top = pz_top_new (S_ENDPOINT);
    cr_assert (top);
    cr_assert_null (pz_top_stats (top));
    const char *first [] = { "alpha:1000:1000:100", "beta:0:0:900", NULL };
    const char *second [] = { "alpha:1000:2000:100", "beta:1000:1000:50", NULL };
    const char *third [] = { "alpha:500:2500:200", "beta:1500:2500:10", NULL };
    const char **rounds [] = { first, second, third };
    for (int round = 0; round < 3; round++) {
        char *text = s_object (1000 * (round + 1), 1000 * (round + 1), 1000 * (round + 1) * 2,
                               rounds [round]);
        cr_assert_eq (pz_top_feed (top, text, strlen (text), 10000 + round * 1000), PZ_TOP_OK);
        //  The same snapshot again (asked twice within a second) adds no sample.
        cr_assert_eq (pz_top_feed (top, text, strlen (text), 10000 + round * 1000 + 500),
                      PZ_TOP_OK);
        size_t raw_size;
        cr_assert_str_eq (pz_top_raw (top, &raw_size), text);
        free (text);
    }
    cr_assert_eq (pz_top_state (top), PZ_TOP_OK);
    cr_assert_str_eq (pz_top_problem (top), "");
    cr_assert_eq (pz_top_stats (top)->worker_count, 2);

    char screen [16384];
    pz_top_view_t view = { 120, 40, true };
    size_t length = pz_top_render (top, screen, sizeof screen, &view, 12500);
    cr_assert_eq (length, strlen (screen));
    int lines = s_count_lines (screen, 120);
    cr_assert_leq (lines, 40);
    char line [256];
    cr_assert (s_find_line (screen, "playzmq-top", line, sizeof line));
    cr_assert (strstr (line, S_ENDPOINT) && strstr (line, "up 0:00:03"), "%s", line);
    cr_assert (s_find_line (screen, "throughput", line, sizeof line), "%s", screen);
    cr_assert (strstr (line, "throughput 3,000 verdicts/s now, 2,000 average, 3,000 peak"),
               "%s", line);
    //  The chart: the peak on top, three columns, the tallest full.
    cr_assert (s_find_line (screen, "3,000 |", line, sizeof line), "%s", screen);
    cr_assert (strstr (line, "#|"), "%s", line);
    cr_assert (s_find_line (screen, "      0 +---", line, sizeof line), "%s", screen);
    cr_assert (s_find_line (screen, "-2 s", line, sizeof line), "%s", screen);
    cr_assert (strstr (line, "now"), "%s", line);
    //  Totals.
    cr_assert (s_find_line (screen, "in flight", line, sizeof line));
    cr_assert (strstr (line, "in flight 1,234") && strstr (line, "accepted 7,234")
               && strstr (line, "results 6,000") && strstr (line, "redispatched 3")
               && strstr (line, "duplicates 4"), "%s", line);
    cr_assert (s_find_line (screen, "journal", line, sizeof line));
    cr_assert (strstr (line, "journal off") && strstr (line, "seq 4,800")
               && strstr (line, "errors E 7 x2"), "%s", line);
    //  Workers: header, then one row each, in the broker's order.
    cr_assert (s_find_line (screen, "2 workers, 2 reporting", line, sizeof line), "%s", screen);
    cr_assert (s_find_line (screen, "WORKER", line, sizeof line));
    cr_assert (strstr (line, "RATE/s") && strstr (line, "LAST SEEN"), "%s", line);
    cr_assert (s_find_line (screen, "alpha ", line, sizeof line), "%s", screen);
    char name [32], rate [32], numbers [32], reports [32], rejected [32], seen [32];
    cr_assert_eq (sscanf (line, "%31s %31s %31s %31s %31s %31s", name, rate, numbers,
                          reports, rejected, seen), 6, "%s", line);
    cr_assert_str_eq (rate, "500");
    cr_assert_str_eq (numbers, "2,500");
    cr_assert_str_eq (reports, "25");
    cr_assert_str_eq (rejected, "0");
    cr_assert_str_eq (seen, "0.7");     //  200 ms, and the snapshot is 500 ms old
    cr_assert (strstr (line, " 25% ###......."), "%s", line);
    cr_assert (s_find_line (screen, "beta ", line, sizeof line), "%s", screen);
    cr_assert (strstr (line, "1,500") && strstr (line, " 75% ########.."), "%s", line);
    cr_assert (strstr (screen, "alpha ") < strstr (screen, "beta "));
    pz_top_destroy (&top);
    cr_assert_null (top);
    pz_top_destroy (&top);
}

//  A worker the audit caught is marked in its row, with its wrong reports,
//  and parsed as such.
Test (top, marks_a_worker_cut_off_by_the_audit, .timeout = 10)
{
    pz_top_t *top = pz_top_new (S_ENDPOINT);
    const char *text =
        "{\"type\":\"stats\",\"final\":false,\"uptime_ms\":1000,\"results\":10,"
        "\"audit\":0.01,\"audited\":5,\"audit_failures\":2,\"cut_off\":3,"
        "\"corrections\":1,\"rate\":10,\"workers\":["
        "{\"name\":\"honest\",\"numbers\":10,\"rate\":10,\"last_seen_ms\":5,"
        "\"wrong\":0,\"cut_off\":false},"
        "{\"name\":\"liar\",\"numbers\":0,\"rejected\":5,\"rate\":0,"
        "\"last_seen_ms\":5,\"wrong\":2,\"cut_off\":true}]}";
    cr_assert_eq (pz_top_feed (top, text, strlen (text), 1000), PZ_TOP_OK);
    const pz_top_stats_t *stats = pz_top_stats (top);
    cr_assert (stats->workers [1].cut_off && stats->workers [1].wrong == 2);
    cr_assert (!stats->workers [0].cut_off);
    char screen [16384], line [256];
    pz_top_view_t view = { 120, 40, true };
    pz_top_render (top, screen, sizeof screen, &view, 1000);
    cr_assert (s_find_line (screen, "liar ", line, sizeof line), "%s", screen);
    cr_assert (strstr (line, "CUT OFF: 2 wrong reports"), "%s", line);
    cr_assert (s_find_line (screen, "honest ", line, sizeof line), "%s", screen);
    cr_assert (!strstr (line, "CUT OFF"), "%s", line);
    pz_top_destroy (&top);
}

Test (top, shows_when_the_broker_does_not_answer, .timeout = 10)
{
    pz_top_t *top = pz_top_new (S_ENDPOINT);
    cr_assert (top);
    char screen [8192];
    pz_top_view_t view = { 100, 30, true };
    pz_top_render (top, screen, sizeof screen, &view, 0);
    cr_assert (strstr (screen, "asking the broker"), "%s", screen);

    //  Never answered: the line and nothing else.
    cr_assert_eq (pz_top_feed_silence (top, "no reply within 2000 ms", 1000), PZ_TOP_SILENT);
    pz_top_render (top, screen, sizeof screen, &view, 4000);
    cr_assert (strstr (screen, "broker not answering (" S_ENDPOINT "): no reply within 2000 ms"),
               "%s", screen);
    cr_assert (strstr (screen, "failing for 3.0 s; trying again"), "%s", screen);
    cr_assert_null (strstr (screen, "WORKER"));

    //  Answered, then silent: the last answer stays, with its age.
    const char *one [] = { "alpha:10:10:5", NULL };
    char *text = s_object (1000, 10, 10, one);
    cr_assert_eq (pz_top_feed (top, text, strlen (text), 5000), PZ_TOP_OK);
    pz_top_feed_silence (top, "no reply within 2000 ms", 8000);
    pz_top_render (top, screen, sizeof screen, &view, 9000);
    cr_assert (strstr (screen, "broker not answering (" S_ENDPOINT ")"), "%s", screen);
    cr_assert (strstr (screen, "the numbers below are 4.0 s old"), "%s", screen);
    cr_assert (strstr (screen, "alpha"), "%s", screen);

    //  E 9, another E, garbage.
    char record [9] = { 'E', 0, 0, 0, 0, 0, 0, 0, 9 };
    cr_assert_eq (pz_top_feed (top, record, sizeof record, 9000), PZ_TOP_UNAVAILABLE);
    pz_top_render (top, screen, sizeof screen, &view, 9000);
    cr_assert (strstr (screen, "broker not serving (" S_ENDPOINT "): its loop has stalled (E 9)"),
               "%s", screen);
    record [8] = 10;
    cr_assert_eq (pz_top_feed (top, record, sizeof record, 9000), PZ_TOP_REFUSED);
    cr_assert (strstr (pz_top_problem (top), "E 10"), "%s", pz_top_problem (top));
    cr_assert_eq (pz_top_feed (top, "{\"type\":", 8, 9000), PZ_TOP_BAD_REPLY);
    pz_top_render (top, screen, sizeof screen, &view, 9000);
    cr_assert (strstr (screen, "bad reply from " S_ENDPOINT ": "), "%s", screen);
    //  The failures began at the first silence and go on.
    cr_assert (strstr (screen, "failing for 1.0 s"), "%s", screen);
    //  The last good snapshot is still the one shown.
    cr_assert_str_eq (pz_top_stats (top)->workers [0].name, "alpha");

    //  Back to normal.
    cr_assert_eq (pz_top_feed (top, text, strlen (text), 9500), PZ_TOP_OK);
    pz_top_render (top, screen, sizeof screen, &view, 9500);
    cr_assert_null (strstr (screen, "broker not"));
    cr_assert_null (strstr (screen, "failing"));
    free (text);
    pz_top_destroy (&top);
}

Test (top, a_request_to_nothing_is_silence, .timeout = 10)
{
    pz_top_t *top = pz_top_new (S_ENDPOINT);
    cr_assert (top);
    cr_assert_eq (pz_top_fetch (top, 200), PZ_TOP_SILENT);
    cr_assert (strstr (pz_top_problem (top), "no reply within 200 ms"), "%s",
               pz_top_problem (top));
    //  Again, on a fresh socket.
    cr_assert_eq (pz_top_fetch (top, 100), PZ_TOP_SILENT);
    pz_top_destroy (&top);
    cr_assert_null (pz_top_new ("not an endpoint"));
}

Test (top, fits_the_view_and_the_buffer, .timeout = 10)
{
    pz_top_t *top = pz_top_new (S_ENDPOINT);
    cr_assert (top);
    const char *many [] = { "w00:1:1:1", "w01:1:1:1", "w02:1:1:1", "w03:1:1:1",
                            "w04:1:1:1", "w05:1:1:1", "w06:1:1:1", "w07:1:1:1",
                            "w08:1:1:1", "w09:1:1:1", "w10:1:1:1", "w11:1:1:1",
                            "a-very-long-worker-name-that-goes-on-and-on:1:1:1", NULL };
    char *text = s_object (3000, 13, 13, many);
    cr_assert_eq (pz_top_feed (top, text, strlen (text), 0), PZ_TOP_OK);
    free (text);
    char screen [16384];
    //  Short: no chart, and the rows that do not fit are counted.
    pz_top_view_t view = { 60, 12, true };
    pz_top_render (top, screen, sizeof screen, &view, 0);
    int lines = s_count_lines (screen, 60);
    cr_assert_eq (lines, 12, "%s", screen);
    cr_assert_null (strstr (screen, "+---"));
    cr_assert (strstr (screen, "... and 9 more workers"), "%s", screen);
    //  Unlimited: every worker, the long name cut with a '~'.
    pz_top_view_t plain = { 0, 0, false };
    pz_top_render (top, screen, sizeof screen, &plain, 0);
    cr_assert (strstr (screen, "w11 "), "%s", screen);
    cr_assert (strstr (screen, "a-very-long-worker-name~ "), "%s", screen);
    cr_assert_null (strstr (screen, "more worker"));
    cr_assert_null (strstr (screen, "+---"));
    cr_assert (strstr (screen, "throughput 13 verdicts/s\n"), "%s", screen);
    //  Tiny buffers: cut short, terminated, never overrun.
    for (size_t size = 1; size < 200; size++) {
        char small [256];
        memset (small, 'Z', sizeof small);
        size_t length = pz_top_render (top, small, size, &view, 0);
        cr_assert_lt (length, size);
        cr_assert_eq (small [length], '\0');
        cr_assert_eq (small [size], 'Z');
    }
    pz_top_destroy (&top);
}

Test (top, a_restarted_broker_starts_a_new_chart_and_names_are_ascii, .timeout = 10)
{
    pz_top_t *top = pz_top_new (S_ENDPOINT);
    cr_assert (top);
    const char *odd [] = { "tab\\there\\u0007\\u00e9:1:1:1", NULL };
    for (int round = 0; round < 70; round++) {
        char *text = s_object (1000 * (round + 1), 100 + round, 0, odd);
        pz_top_feed (top, text, strlen (text), round * 1000);
        free (text);
    }
    char screen [16384];
    pz_top_view_t view = { 120, 40, true };
    pz_top_render (top, screen, sizeof screen, &view, 70000);
    //  60 samples kept: the average of 110 to 169.
    cr_assert (strstr (screen, "throughput 169 verdicts/s now, 140 average, 169 peak over 59 s"),
               "%s", screen);
    cr_assert (strstr (screen, "tab?here???"), "%s", screen);
    for (const char *cursor = screen; *cursor; cursor++)
        cr_assert (*cursor == '\n' || (*cursor >= 0x20 && *cursor < 0x7F));
    //  Uptime going back: a restarted broker, one sample again.
    char *text = s_object (500, 7, 0, odd);
    pz_top_feed (top, text, strlen (text), 71000);
    free (text);
    pz_top_render (top, screen, sizeof screen, &view, 71000);
    cr_assert (strstr (screen, "throughput 7 verdicts/s\n"), "%s", screen);
    pz_top_destroy (&top);
}
