/*  =========================================================================
    rawreq - sends raw bytes to a REP endpoint and prints the reply; a test
             tool for sending the malformed messages no PlayØMQ program sends

    Usage: rawreq ENDPOINT HEX [HEX ...]
    Each HEX argument is one frame (several make a multi-frame message; "-"
    is an empty frame; "HEX*N" is HEX repeated N times, for large frames). Prints each 9-byte record of the reply as "TAG VALUE"
    on one line. Exit 0 on a reply, 1 on no reply within 5 s, 2 on misuse.
    =========================================================================
*/
#include "record.h"

#include <czmq.h>
#include <inttypes.h>

int
main (int argc, char *argv [])
{
    if (argc < 3) {
        fprintf (stderr, "usage: rawreq ENDPOINT HEX [HEX ...]\n");
        return 2;
    }
    zsock_t *req = zsock_new (ZMQ_REQ);
    zsock_set_linger (req, 0);
    zsock_set_rcvtimeo (req, 5000);
    if (zsock_connect (req, "%s", argv [1]) == -1) {
        fprintf (stderr, "rawreq: cannot connect '%s'\n", argv [1]);
        zsock_destroy (&req);
        return 2;
    }
    zmsg_t *message = zmsg_new ();
    for (int index = 2; index < argc; index++) {
        const char *hex = argv [index];
        const char *star = strchr (hex, '*');
        size_t repeat = star ? strtoul (star + 1, NULL, 10) : 1;
        size_t unit = streq (hex, "-") ? 0 : (star ? (size_t) (star - hex) : strlen (hex)) / 2;
        byte *data = (byte *) malloc (unit * repeat + 1);
        for (size_t at = 0; at < unit; at++) {
            unsigned value;
            sscanf (hex + 2 * at, "%2x", &value);
            data [at] = (byte) value;
        }
        for (size_t copy = 1; copy < repeat; copy++)
            memcpy (data + copy * unit, data, unit);
        zmsg_addmem (message, data, unit * repeat);
        free (data);
    }
    zmsg_send (&message, req);
    zframe_t *reply = zframe_recv (req);
    int status = 1;
    if (reply) {
        const byte *data = zframe_data (reply);
        for (size_t at = 0; at + PZ_RECORD_SIZE <= zframe_size (reply); at += PZ_RECORD_SIZE)
            printf ("%c %" PRId64 "\n", pz_record_tag (data + at), pz_record_value (data + at));
        zframe_destroy (&reply);
        status = 0;
    }
    else
        fprintf (stderr, "rawreq: no reply from '%s' within 5 s\n", argv [1]);
    zsock_destroy (&req);
    return status;
}
