/*  =========================================================================
    cli - one option table gives getopt_long flags, environment variables
          and --help text to every PlayØMQ program

    The table is turned into getopt_long's struct option array at parse
    time. Numbers are parsed with strtoll and checked whole: "12abc", "" and
    values out of range are errors, never silently truncated.
    =========================================================================
*/
#include "cli.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  getopt_long values for the options every program has; above any char.
#define S_HELP      1000
#define S_VERSION   1001
#define S_INDEX     2000    //  S_INDEX + i means options [i]

static size_t
s_count (const pz_opt_t *options)
{
    size_t count = 0;
    while (options [count].name)
        count++;
    return count;
}

//  Writes the environment variable name of an option into buffer.
static void
s_env_name (const pz_opt_t *option, char *buffer, size_t size)
{
    int length = snprintf (buffer, size, "PLAYZMQ_%s", option->name);
    assert (length > 0 && (size_t) length < size);
    for (char *cursor = buffer; *cursor; cursor++)
        *cursor = *cursor == '-' ? '_' : (char) toupper ((unsigned char) *cursor);
}

//  Parses text as an integer in [min, max]. Returns 0 and sets *value,
//  or -1 with a reason in *why.
static int
s_parse_int (const char *text, int64_t min, int64_t max, int64_t *value,
             const char **why)
{
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (end == text || *end != '\0' || isspace ((unsigned char) *text)) {
        *why = "is not a whole number";
        return -1;
    }
    if (errno == ERANGE || parsed < min || parsed > max) {
        *why = "is out of range";
        return -1;
    }
    *value = parsed;
    return 0;
}

//  Stores text into an option's target. origin names where the value came
//  from, for the error line. Returns 0, or -1 after printing the error.
static int
s_apply (const pz_opt_t *option, const char *text, const char *origin,
         const char *program)
{
    switch (option->type) {
        case PZ_OPT_STRING:
            *(const char **) option->target = text;
            return 0;
        case PZ_OPT_INT: {
            const char *why = NULL;
            if (s_parse_int (text, option->min, option->max,
                             (int64_t *) option->target, &why) == 0)
                return 0;
            pz_cli_error (program, "%s: '%s' %s (%" PRId64 " to %" PRId64 ")",
                          origin, text, why, option->min, option->max);
            return -1;
        }
        case PZ_OPT_FLAG:
        case PZ_OPT_COUNT: {
            //  Only from the environment: on the command line these take
            //  no argument and are handled by the caller.
            int64_t number;
            const char *why = NULL;
            if (strcmp (text, "true") == 0 || strcmp (text, "yes") == 0)
                number = 1;
            else
            if (strcmp (text, "false") == 0 || strcmp (text, "no") == 0
            ||  *text == '\0')
                number = 0;
            else
            if (s_parse_int (text, 0, 100, &number, &why) != 0) {
                pz_cli_error (program, "%s: '%s' is not a flag value "
                              "(true, false or a count)", origin, text);
                return -1;
            }
            if (option->type == PZ_OPT_FLAG)
                *(bool *) option->target = number != 0;
            else
                *(int *) option->target = (int) number;
            return 0;
        }
    }
    assert (false);
    return -1;
}

//  Prints --help: usage, purpose, and one line per option with its
//  default (the target's value before parsing) and environment variable.
static void
s_print_help (const pz_opt_t *options, const char *program, const char *purpose)
{
    printf ("Usage: %s [OPTIONS]\n%s\n\nOptions (each also read from the "
            "environment variable shown; a flag wins):\n", program, purpose);
    for (const pz_opt_t *option = options; option->name; option++) {
        char left [64];
        char env [64];
        s_env_name (option, env, sizeof env);
        snprintf (left, sizeof left, "%c%c%s --%s%s%s",
                  option->short_name ? '-' : ' ',
                  option->short_name ? option->short_name : ' ',
                  option->short_name ? "," : " ",
                  option->name,
                  option->arg_name ? " " : "",
                  option->arg_name ? option->arg_name : "");
        printf ("  %-28s %s", left, option->help);
        switch (option->type) {
            case PZ_OPT_STRING:
                if (*(const char **) option->target)
                    printf (" (default: %s)", *(const char **) option->target);
                break;
            case PZ_OPT_INT:
                printf (" (default: %" PRId64 ")", *(int64_t *) option->target);
                break;
            default:
                break;
        }
        printf (" [%s]\n", env);
    }
    printf ("  %-28s %s\n  %-28s %s\n",
            "    --help", "print this help and exit",
            "    --version", "print the version and exit");
}

//  Parses the environment, then argv, into the options' targets.
pz_cli_result_t
pz_cli_parse (const pz_opt_t *options, const char *program,
              const char *purpose, int argc, char *argv [])
{
    assert (options && program && purpose);
    size_t count = s_count (options);

    //  Environment first, so that flags can override it.
    for (size_t index = 0; index < count; index++) {
        char env [64];
        s_env_name (&options [index], env, sizeof env);
        const char *text = getenv (env);
        if (text && s_apply (&options [index], text, env, program) != 0)
            return PZ_CLI_ERROR;
    }

    //  Build getopt_long's tables from ours.
    struct option *longopts = calloc (count + 3, sizeof *longopts);
    char *shortopts = calloc (2 * count + 2, 1);
    assert (longopts && shortopts);
    char *short_cursor = shortopts;
    *short_cursor++ = ':';      //  report a missing argument as ':'
    for (size_t index = 0; index < count; index++) {
        const pz_opt_t *option = &options [index];
        bool has_arg = option->type == PZ_OPT_INT || option->type == PZ_OPT_STRING;
        longopts [index] = (struct option) {
            option->name, has_arg ? required_argument : no_argument,
            NULL, (int) (S_INDEX + index)
        };
        if (option->short_name) {
            *short_cursor++ = option->short_name;
            if (has_arg)
                *short_cursor++ = ':';
        }
    }
    longopts [count] = (struct option) { "help", no_argument, NULL, S_HELP };
    longopts [count + 1] = (struct option) { "version", no_argument, NULL, S_VERSION };

    pz_cli_result_t result = PZ_CLI_RUN;
    opterr = 0;                 //  we print our own, clearer, messages
    optind = 1;                 //  so that tests may parse more than once
    while (result == PZ_CLI_RUN) {
        int code = getopt_long (argc, argv, shortopts, longopts, NULL);
        if (code == -1)
            break;
        const pz_opt_t *option = NULL;
        if (code >= S_INDEX)
            option = &options [code - S_INDEX];
        else
        for (size_t index = 0; index < count; index++)
            if (options [index].short_name && options [index].short_name == code)
                option = &options [index];

        if (code == S_HELP) {
            s_print_help (options, program, purpose);
            result = PZ_CLI_DONE;
        }
        else
        if (code == S_VERSION) {
            printf ("%s %s\n", program, PZ_VERSION);
            result = PZ_CLI_DONE;
        }
        else
        if (code == ':')
            result = pz_cli_error (program, "%s needs a value", argv [optind - 1]);
        else
        if (code == '?' || !option)
            result = pz_cli_error (program, "unknown option '%s'", argv [optind - 1]);
        else
        if (option->type == PZ_OPT_FLAG)
            *(bool *) option->target = true;
        else
        if (option->type == PZ_OPT_COUNT)
            (*(int *) option->target)++;
        else {
            char origin [80];
            snprintf (origin, sizeof origin, "--%s", option->name);
            if (s_apply (option, optarg, origin, program) != 0)
                result = PZ_CLI_ERROR;
        }
    }
    if (result == PZ_CLI_RUN && optind < argc)
        result = pz_cli_error (program, "unexpected argument '%s'", argv [optind]);

    free (shortopts);
    free (longopts);
    return result;
}

//  Prints "program: message" and a hint on stderr. Returns PZ_CLI_ERROR.
pz_cli_result_t
pz_cli_error (const char *program, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "%s: ", program);
    vfprintf (stderr, format, args);
    fprintf (stderr, " (try --help)\n");
    va_end (args);
    return PZ_CLI_ERROR;
}
