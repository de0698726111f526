/*  =========================================================================
    sink - subscribes to tags on the broker's PUB and prints the records

    A sink connects a SUB socket to the broker's publish endpoint and
    subscribes to each tag it wants by its one-byte prefix. It prints every
    record of those tags as text ("P 97"), JSON lines ({"tag":"P","value":97})
    or CSV ("tag,value" header, then "P,97"), flushing after each message so
    pipes see output at once. PUB drops messages for a sink that falls behind
    its high-water mark: a slow sink has gaps, the others do not.
    =========================================================================
*/
#ifndef PZ_SINK_H_INCLUDED
#define PZ_SINK_H_INCLUDED

#include <czmq.h>
#include <stdint.h>
#include <stdio.h>

#include "sock.h"

typedef struct _pz_sink_t pz_sink_t;

typedef enum {
    PZ_SINK_TEXT,               //  "P 97"
    PZ_SINK_JSON,               //  {"tag":"P","value":97}
    PZ_SINK_CSV,                //  "tag,value" then "P,97"
    PZ_SINK_NONE                //  nothing: only count (benchmarks)
} pz_sink_format_t;

typedef struct {
    const char *connect;        //  the broker's publish endpoint
    const char *tags;           //  tag letters to subscribe to, from "NPC"
    pz_sink_format_t format;    //  how records are printed
    int64_t count;              //  stop after this many records; 0: never
    int64_t hwm;                //  messages queued in the sink, at most; 0: no limit
    pz_sockopts_t sockopts;     //  heartbeats, handshake
} pz_sink_config_t;

typedef struct {
    uint64_t by_tag [3];        //  records printed: N, P, C
    uint64_t malformed;         //  messages dropped as malformed
} pz_sink_stats_t;

//  Fills config with the defaults: tag P, text, tcp://localhost:5556.
void
    pz_sink_config_init (pz_sink_config_t *config);

//  Returns true if tags is a non-empty string of letters from "NPC".
bool
    pz_sink_tags_valid (const char *tags);

//  Parses "text", "json", "csv" or "none" into *format. Returns false
//  otherwise.
bool
    pz_sink_format_parse (const char *name, pz_sink_format_t *format);

//  Creates a sink printing to out, connects and subscribes. Returns NULL
//  after logging if the endpoint is invalid. Caller owns return value;
//  out stays the caller's.
pz_sink_t *
    pz_sink_new (const pz_sink_config_t *config, FILE *out);

//  Destroys the sink. NULL-safe; nulls *self_p.
void
    pz_sink_destroy (pz_sink_t **self_p);

//  Prints records until `count` were printed, SIGINT/SIGTERM, or the output
//  is closed (a pipe reader gone). Returns 0.
int
    pz_sink_run (pz_sink_t *self);

//  Copies the sink's counters into stats.
void
    pz_sink_stats (pz_sink_t *self, pz_sink_stats_t *stats);

#endif
