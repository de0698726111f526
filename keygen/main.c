/*  =========================================================================
    playzmq-keygen - makes a CURVE certificate for a PlayØMQ program

    playzmq-keygen NAME [--role source|worker|sink] [--dir DIR] [--force]
    writes NAME.cert and NAME.cert_secret (keygen.h). Exit 0, 1 if a file
    cannot be written or exists already, 2 for a bad flag, name or role.
    =========================================================================
*/
#include "cli.h"
#include "keygen.h"
#include "sock.h"

#include <string.h>

#define S_ARGS_MAX  64

int
main (int argc, char *argv [])
{
    pz_sock_init_process ("playzmq-keygen");
    const char *role = NULL;
    const char *dir = ".";
    bool force = false;
    const pz_opt_t options [] = {
        { "role", 'r', PZ_OPT_STRING, &role, 0, 0, "ROLE",
          "source, worker or sink: the endpoints the key may use on the broker "
          "(default: none, for the broker's own certificate)" },
        { "dir", 'd', PZ_OPT_STRING, &dir, 0, 0, "DIR",
          "write the two files in DIR" },
        { "force", 0, PZ_OPT_FLAG, &force, 0, 0, NULL,
          "replace NAME.cert and NAME.cert_secret if they exist" },
        PZ_OPT_END
    };
    //  NAME is the one argument that is not an option or an option's value;
    //  the option parser takes no operands, so it is taken out first.
    if (argc > S_ARGS_MAX)
        return pz_cli_error ("playzmq-keygen", "too many arguments");
    char *rest [S_ARGS_MAX + 1];
    int rest_count = 0;
    const char *name = NULL;
    for (int index = 0; index < argc; index++) {
        const char *arg = argv [index];
        bool value_of_previous = index > 1
            && (streq (argv [index - 1], "--role") || streq (argv [index - 1], "-r")
            ||  streq (argv [index - 1], "--dir") || streq (argv [index - 1], "-d"));
        if (index > 0 && !name && arg [0] != '-' && !value_of_previous)
            name = arg;
        else
            rest [rest_count++] = argv [index];
    }
    rest [rest_count] = NULL;
    pz_cli_result_t parsed = pz_cli_parse (options, "playzmq-keygen",
        "playzmq-keygen NAME: writes NAME.cert (public) and NAME.cert_secret, "
        "a CURVE certificate for the broker (--curve-cert, --curve-server, "
        "--curve-allow).", rest_count, rest);
    if (parsed != PZ_CLI_RUN)
        return parsed == PZ_CLI_DONE ? 0 : 2;
    if (!name)
        return pz_cli_error ("playzmq-keygen", "give the certificate's NAME");
    if (!pz_keygen_name_valid (name))
        return pz_cli_error ("playzmq-keygen", "NAME '%s': letters, digits, '-', '_' "
                             "and '.' only, not starting with '.'", name);
    if (role && !*role)
        role = NULL;
    if (!pz_keygen_role_valid (role))
        return pz_cli_error ("playzmq-keygen", "--role: '%s' is not source, worker or sink",
                             role);
    if (pz_keygen_write (dir, name, role, force) == -1)
        return 1;
    fprintf (stderr, "playzmq-keygen: wrote %s/%s.cert (public: give it to the %s) "
             "and %s/%s.cert_secret (keep it private)\n", dir, name,
             role ? "broker's --curve-allow directory" : "clients' --curve-server",
             dir, name);
    return 0;
}
