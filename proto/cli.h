/*  =========================================================================
    cli - one option table gives getopt_long flags, environment variables
          and --help text to every PlayØMQ program

    Each program describes its options once, as an array of pz_opt_t ending
    in PZ_OPT_END. The targets' initial values are the defaults (and are
    printed by --help). Values come first from the environment, as
    PLAYZMQ_<NAME> with the long name upper-cased and '-' turned into '_'
    (--results-bind is PLAYZMQ_RESULTS_BIND), then from the command line,
    so a flag wins over the environment. --help and --version are added.
    String targets point into argv or the environment, which live as long
    as the program: nothing is allocated for the caller to free.
    =========================================================================
*/
#ifndef PZ_CLI_H_INCLUDED
#define PZ_CLI_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    PZ_OPT_FLAG,        //  no argument; target is bool *
    PZ_OPT_COUNT,       //  no argument, may repeat (-vv); target is int *
    PZ_OPT_INT,         //  integer argument in [min, max]; target is int64_t *
    PZ_OPT_STRING       //  any argument; target is const char **
} pz_opt_type_t;

typedef struct {
    const char *name;       //  long name without dashes, "source-bind"
    char short_name;        //  one-letter alias, or 0 for none
    pz_opt_type_t type;     //  what the argument is
    void *target;           //  where the value goes; its initial value is the default
    int64_t min;            //  smallest value accepted (PZ_OPT_INT only)
    int64_t max;            //  largest value accepted (PZ_OPT_INT only)
    const char *arg_name;   //  the argument in --help, "EP"
    const char *help;       //  one line of help
} pz_opt_t;

#define PZ_OPT_END  { NULL, 0, PZ_OPT_FLAG, NULL, 0, 0, NULL, NULL }

//  The two options of a program that talks CURVE to the broker: its own
//  secret certificate (made with playzmq-keygen NAME --role ROLE) and the
//  broker's public one; both or neither (pz_sockopts_curve_flags checks).
//  cert and server are const char ** targets; role a string literal.
#define PZ_OPT_CURVE_CLIENT(cert, server, role) \
    { "curve-cert", 0, PZ_OPT_STRING, cert, 0, 0, "FILE", \
      "this program's secret certificate (playzmq-keygen NAME --role " role \
      "): talk CURVE to a broker that has one (default: plaintext)" }, \
    { "curve-server", 0, PZ_OPT_STRING, server, 0, 0, "FILE", \
      "with --curve-cert: the broker's public certificate" }

typedef enum {
    PZ_CLI_RUN = 0,         //  options parsed: run the program
    PZ_CLI_DONE = 1,        //  --help or --version printed: exit 0
    PZ_CLI_ERROR = 2        //  a bad flag or value, reported on stderr: exit 2
} pz_cli_result_t;

//  Parses the environment, then argv, into the options' targets. program is
//  the name used in messages, purpose one line for --help. Returns one of
//  pz_cli_result_t; on PZ_CLI_ERROR one clear line has been printed.
pz_cli_result_t
    pz_cli_parse (const pz_opt_t *options, const char *program,
                  const char *purpose, int argc, char *argv []);

//  Prints "program: message" and a hint to try --help on stderr, for
//  value errors a program finds after parsing. Returns PZ_CLI_ERROR.
pz_cli_result_t
    pz_cli_error (const char *program, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
