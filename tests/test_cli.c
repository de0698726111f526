/*  =========================================================================
    test_cli - option tables: flags, environment, ranges, errors

    Each test parses a small table the way a program's main does. Doubles
    as an example of declaring options.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdlib.h>

#include "cli.h"

typedef struct {
    const char *endpoint;
    int64_t count;
    bool quiet;
    int verbose;
} s_options_t;

static pz_cli_result_t
s_parse (s_options_t *values, int argc, char **argv)
{
    const pz_opt_t options [] = {
        { "connect-to", 'c', PZ_OPT_STRING, &values->endpoint, 0, 0, "EP", "endpoint" },
        { "count", 'n', PZ_OPT_INT, &values->count, 0, 1000, "N", "how many" },
        { "quiet", 'q', PZ_OPT_FLAG, &values->quiet, 0, 0, NULL, "say less" },
        { "verbose", 'v', PZ_OPT_COUNT, &values->verbose, 0, 0, NULL, "say more" },
        PZ_OPT_END
    };
    return pz_cli_parse (options, "prog", "A test program.", argc, argv);
}

static void
s_quiet_stderr (void)
{
    cr_redirect_stderr ();
    cr_redirect_stdout ();
}

Test (cli, defaults_stay_without_flags, .timeout = 5)
{
    unsetenv ("PLAYZMQ_COUNT");
    s_options_t values = { "tcp://x:1", 7, false, 0 };
    char *argv [] = { "prog", NULL };
    cr_assert_eq (s_parse (&values, 1, argv), PZ_CLI_RUN);
    cr_assert_str_eq (values.endpoint, "tcp://x:1");
    cr_assert_eq (values.count, 7);
}

Test (cli, long_and_short_flags, .timeout = 5)
{
    s_options_t values = { "a", 0, false, 0 };
    char *argv [] = { "prog", "--connect-to", "tcp://h:9", "-n", "12", "-q", "-vv", NULL };
    cr_assert_eq (s_parse (&values, 7, argv), PZ_CLI_RUN);
    cr_assert_str_eq (values.endpoint, "tcp://h:9");
    cr_assert_eq (values.count, 12);
    cr_assert (values.quiet);
    cr_assert_eq (values.verbose, 2);
}

Test (cli, environment_fills_and_flag_wins, .timeout = 5)
{
    setenv ("PLAYZMQ_CONNECT_TO", "tcp://env:1", 1);
    setenv ("PLAYZMQ_COUNT", "44", 1);
    setenv ("PLAYZMQ_QUIET", "true", 1);
    s_options_t values = { "a", 0, false, 0 };
    char *argv [] = { "prog", "--count", "5", NULL };
    cr_assert_eq (s_parse (&values, 3, argv), PZ_CLI_RUN);
    cr_assert_str_eq (values.endpoint, "tcp://env:1");
    cr_assert_eq (values.count, 5);
    cr_assert (values.quiet);
}

Test (cli, bad_numbers_are_errors, .init = s_quiet_stderr, .timeout = 5)
{
    const char *bad [] = { "abc", "12abc", "", " 5", "1001", "-1", "99999999999999999999" };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        s_options_t values = { "a", 3, false, 0 };
        char *argv [] = { "prog", "--count", (char *) bad [index], NULL };
        cr_assert_eq (s_parse (&values, 3, argv), PZ_CLI_ERROR, "'%s' accepted", bad [index]);
        cr_assert_eq (values.count, 3, "'%s' changed the value", bad [index]);
    }
}

Test (cli, bad_environment_is_an_error, .init = s_quiet_stderr, .timeout = 5)
{
    setenv ("PLAYZMQ_COUNT", "lots", 1);
    s_options_t values = { "a", 3, false, 0 };
    char *argv [] = { "prog", NULL };
    cr_assert_eq (s_parse (&values, 1, argv), PZ_CLI_ERROR);
}

Test (cli, unknown_options_and_arguments_are_errors, .init = s_quiet_stderr, .timeout = 5)
{
    unsetenv ("PLAYZMQ_COUNT");
    s_options_t values = { "a", 3, false, 0 };
    char *unknown [] = { "prog", "--colour", NULL };
    cr_assert_eq (s_parse (&values, 2, unknown), PZ_CLI_ERROR);
    char *missing [] = { "prog", "--count", NULL };
    cr_assert_eq (s_parse (&values, 2, missing), PZ_CLI_ERROR);
    char *stray [] = { "prog", "stray", NULL };
    cr_assert_eq (s_parse (&values, 2, stray), PZ_CLI_ERROR);
}

Test (cli, help_lists_options_defaults_and_environment, .timeout = 5)
{
    cr_redirect_stdout ();
    unsetenv ("PLAYZMQ_COUNT");
    s_options_t values = { "tcp://x:1", 7, false, 0 };
    char *argv [] = { "prog", "--help", NULL };
    cr_assert_eq (s_parse (&values, 2, argv), PZ_CLI_DONE);
    fflush (stdout);
    char text [4096] = "";
    FILE *captured = cr_get_redirected_stdout ();
    size_t length = fread (text, 1, sizeof text - 1, captured);
    text [length] = '\0';
    cr_assert (strstr (text, "--connect-to EP"), "%s", text);
    cr_assert (strstr (text, "(default: tcp://x:1)"), "%s", text);
    cr_assert (strstr (text, "(default: 7)"), "%s", text);
    cr_assert (strstr (text, "[PLAYZMQ_CONNECT_TO]"), "%s", text);
    cr_assert (strstr (text, "--version"), "%s", text);
}
