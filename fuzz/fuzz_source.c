/*  =========================================================================
    fuzz_source - the source's --input parser (source/source.c)

    playzmq-source --input FILE reads one decimal integer per line. The
    input is the file: written to a temporary file, read through
    pz_source_next_number as pz_source_run reads it (the source's
    connection is an inproc endpoint, never used). Checked:
    numbers handed out plus lines refused never exceed the lines of the
    file, and no line (long, NUL bytes, no newline) reads out of bounds.
    =========================================================================
*/
#include "fuzz.h"
#include "source.h"

#include <unistd.h>

static char s_path [256];           //  the input file
static void *s_broker;              //  binds the endpoint the source connects to

//  Closes the socket before czmq's exit handler ends the context;
//  removes the input file's directory.
static void
s_close (void)
{
    zmq_close (s_broker);
    unlink (s_path);
    char *slash = strrchr (s_path, '/');
    if (slash) {
        *slash = '\0';
        rmdir (s_path);
    }
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    pz_fuzz_quiet ();
    //  Bound, so that each source's connect is made at once: libzmq keeps
    //  a connect to an unbound inproc endpoint pending, and they pile up.
    s_broker = zmq_socket (zsys_init (), ZMQ_ROUTER);
    PZ_FUZZ_CHECK (zmq_bind (s_broker, "inproc://fuzz-source") == 0);
    atexit (s_close);
    char dir [] = "/tmp/pz-fuzz-source-XXXXXX";
    PZ_FUZZ_CHECK (mkdtemp (dir));
    snprintf (s_path, sizeof s_path, "%s/input", dir);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  The bound socket must see its peers' pipes end, or their sockets
    //  are never freed: asking for its events processes its commands.
    int zmq_events;
    size_t events_size = sizeof zmq_events;
    zmq_getsockopt (s_broker, ZMQ_EVENTS, &zmq_events, &events_size);
    FILE *file = fopen (s_path, "w");
    PZ_FUZZ_CHECK (file);
    PZ_FUZZ_CHECK (fwrite (data, 1, size, file) == size);
    fclose (file);
    size_t lines = 0;
    for (size_t index = 0; index < size; index++)
        lines += data [index] == '\n';
    if (size > 0 && data [size - 1] != '\n')
        lines++;                        //  a last line without its newline

    pz_source_config_t config;
    pz_source_config_init (&config);
    config.connect = "inproc://fuzz-source";
    config.input = s_path;
    config.sockopts.heartbeat_ivl_ms = 0;
    pz_source_t *source = pz_source_new (&config);
    PZ_FUZZ_CHECK (source);
    int64_t value;
    size_t numbers = 0;
    while (pz_source_next_number (source, &value))
        numbers++;
    pz_source_stats_t stats;
    pz_source_stats (source, &stats);
    PZ_FUZZ_CHECK (numbers + stats.bad_lines <= lines);
    pz_source_destroy (&source);
    return 0;
}
