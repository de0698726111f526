/*  =========================================================================
    fuzz - what the libFuzzer targets in fuzz/ share

    Each target is one LLVMFuzzerTestOneInput over one input surface
    (docs/FUZZING.md). The targets that play a sequence of events read
    their input as a script through pz_fuzz_input_t: a byte for the event,
    then its arguments, so that libFuzzer's mutations of a byte change one
    event. Running out of input reads as zeros, so every input is a script.
    =========================================================================
*/
#ifndef PZ_FUZZ_H_INCLUDED
#define PZ_FUZZ_H_INCLUDED

#include <czmq.h>
#include <sanitizer/common_interface_defs.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

//  The fuzz input, read front to back.
typedef struct {
    const uint8_t *data;        //  the input
    size_t size;                //  its bytes
    size_t offset;              //  bytes read so far
} pz_fuzz_input_t;

//  Returns true while unread bytes are left.
static inline bool
pz_fuzz_more (pz_fuzz_input_t *self)
{
    return self->offset < self->size;
}

//  Returns the next byte, or 0 past the end.
static inline uint8_t
pz_fuzz_byte (pz_fuzz_input_t *self)
{
    return self->offset < self->size ? self->data [self->offset++] : 0;
}

//  Returns the next two bytes as a little-endian length, at most max.
static inline size_t
pz_fuzz_length (pz_fuzz_input_t *self, size_t max)
{
    size_t length = pz_fuzz_byte (self);
    length |= (size_t) pz_fuzz_byte (self) << 8;
    return length > max ? max : length;
}

//  Returns the next eight bytes as a little-endian integer.
static inline int64_t
pz_fuzz_int64 (pz_fuzz_input_t *self)
{
    uint64_t value = 0;
    for (int index = 0; index < 8; index++)
        value |= (uint64_t) pz_fuzz_byte (self) << (8 * index);
    int64_t result;
    memcpy (&result, &value, sizeof result);
    return result;
}

//  Returns a pointer to the next length bytes, fewer if the input ends
//  first (*got: how many).
static inline const uint8_t *
pz_fuzz_bytes (pz_fuzz_input_t *self, size_t length, size_t *got)
{
    size_t left = self->size - self->offset;
    *got = length < left ? length : left;
    const uint8_t *bytes = self->data + self->offset;
    self->offset += *got;
    return bytes;
}

//  Once per process: czmq's logs go to /dev/null (the targets log on every
//  bad input; a crash report still shows), czmq leaves SIGINT and SIGTERM
//  to libFuzzer, and libzmq may hold as many sockets as it can. A closed
//  socket is freed later, by libzmq's reaper thread, and the targets that
//  reconnect (client: up to 128 times an input, thousands of inputs a
//  second) outran it: more than czmq's default of 1,024 sockets waited,
//  zmq_socket failed and czmq 4.2.1's zsock_new asserted (docs/FUZZING.md,
//  finding 9).
static inline void
pz_fuzz_quiet (void)
{
    zsys_handler_set (NULL);
    zsys_set_max_sockets (0);
    static FILE *devnull = NULL;
    if (!devnull && !getenv ("PZ_FUZZ_VERBOSE")) {
        devnull = fopen ("/dev/null", "w");
        if (devnull)
            zsys_set_logstream (devnull);
    }
    zsys_init ();
}

//  Aborts with a message if an invariant the target checks does not hold:
//  a finding, as a crash is. The message goes where sanitizer reports go
//  (libFuzzer's -close_fd_mask closes stderr, not that).
#define PZ_FUZZ_CHECK(condition) \
    do { if (!(condition)) { \
        char pz_fuzz_message [512]; \
        snprintf (pz_fuzz_message, sizeof pz_fuzz_message, \
                  "fuzz: %s:%d: check failed: %s", __FILE__, __LINE__, #condition); \
        __sanitizer_report_error_summary (pz_fuzz_message); \
        abort (); } } while (0)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

#endif
