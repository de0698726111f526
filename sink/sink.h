/*  =========================================================================
    sink - subscribes to tags on the broker's PUB and prints every message
           of them, with no silent gap

    A sink connects a SUB socket to the broker's publish endpoint and
    subscribes to each tag it wants by its one-byte prefix. It prints every
    record of those tags as text ("P 97"), JSON lines ({"tag":"P","value":97})
    or CSV ("tag,value" header, then "P,97"), or only counts them (none).

    Every publication ends with `S seq` `T tag-seq` (proto/PROTOCOL.md,
    "Sequence numbers"), so the sink knows, per tag, which message should
    come next. PUB drops messages for a sink that falls behind its
    high-water mark; when a message reveals a gap, the sink first reads the
    missing messages from the broker's history endpoint (a DEALER to its
    ROUTER, Lazy Pirate), prints them, and only then the message that
    revealed the gap. What history no longer holds is counted as lost and
    reported on stderr (one line a second at most); with `strict` a loss
    ends the run. When no message came for idle_ms, a status request tells
    it whether it missed the last messages of a run (what history cannot
    serve counts as lost once two such requests in a row showed it: the
    status can overtake a message still on its way). So a slow sink ends
    late, but complete, and never slows the pipeline.

    `from` starts from history (all, or a sequence number) before going on
    live without a gap or a duplicate (the Clone pattern: subscribe, catch
    up, then apply live messages beyond what was printed). `resume` keeps
    the position of the last line printed in a file, rewritten atomically
    after every write of output, so a sink killed and restarted with the
    same file continues exactly after its last line.

    Output is formatted into a buffer of its own and written with write()
    when it holds 64 KiB or no more messages are waiting, in whole messages
    only (but the last one at `count`).
    =========================================================================
*/
#ifndef PZ_SINK_H_INCLUDED
#define PZ_SINK_H_INCLUDED

#include <czmq.h>
#include <stdint.h>
#include <stdio.h>

#include "publication.h"
#include "sock.h"

//  The broker's history endpoint, unless sock.h names it already.
#ifndef PZ_PORT_HISTORY
#define PZ_PORT_HISTORY     5559
#endif

typedef struct _pz_sink_t pz_sink_t;

typedef enum {
    PZ_SINK_TEXT,               //  "P 97"
    PZ_SINK_JSON,               //  {"tag":"P","value":97}
    PZ_SINK_CSV,                //  "tag,value" then "P,97"
    PZ_SINK_NONE                //  nothing: only count (benchmarks)
} pz_sink_format_t;

//  What pz_sink_run returns, and playzmq-sink exits with.
typedef enum {
    PZ_SINK_OK = 0,             //  done: count reached, interrupted, or reader gone
    PZ_SINK_OUTPUT_ERROR = 1,   //  output or resume file cannot be written
    PZ_SINK_BAD_RESUME = 2,     //  the resume file is malformed
    PZ_SINK_LOST = 3            //  strict, and messages were lost
} pz_sink_status_t;

typedef struct {
    const char *connect;        //  the broker's publish endpoint
    const char *history;        //  the broker's history endpoint; NULL: none
    const char *tags;           //  tag letters to subscribe to, from "NPCXR" (P or C
                                //  brings X, the corrections)
    pz_sink_format_t format;    //  how records are printed
    int64_t count;              //  stop after this many records; 0: never
    int64_t hwm;                //  messages queued in the sink, at most; 0: no limit
    int64_t from_seq;           //  0: new messages only; else start at this seq
                                //  (1: all history holds)
    const char *resume;         //  position file; NULL: none
    bool strict;                //  a lost message ends the run (PZ_SINK_LOST)
    int64_t history_timeout_ms; //  one history request waits this long, twice
    int64_t idle_ms;            //  no live message this long: status request
    pz_sockopts_t sockopts;     //  heartbeats, handshake
} pz_sink_config_t;

typedef struct {
    uint64_t by_tag [PZ_TAG_COUNT];     //  records printed: N, P, C, X (corrected
                                //  verdicts); R: announcements printed
    uint64_t malformed;         //  messages dropped as malformed (live or history)
    uint64_t gaps;              //  gaps found (messages of a tag missed)
    uint64_t filled;            //  messages printed from history
    uint64_t lost;              //  messages missed and not in history
    uint64_t restarts;          //  times the sequence went back (broker restart)
    uint64_t writes;            //  write() calls on the output
} pz_sink_stats_t;

//  Fills config with the defaults: tag P, text, tcp://localhost:5556, no
//  history, from new, 2000 ms history timeout, 500 ms idle.
void
    pz_sink_config_init (pz_sink_config_t *config);

//  Returns true if tags is a non-empty string of letters from "NPCXR".
bool
    pz_sink_tags_valid (const char *tags);

//  Parses "text", "json", "csv" or "none" into *format. Returns false
//  otherwise.
bool
    pz_sink_format_parse (const char *name, pz_sink_format_t *format);

//  Parses "new" (0), "all" (1) or a sequence number >= 1 into *from_seq.
//  Returns false otherwise.
bool
    pz_sink_from_parse (const char *text, int64_t *from_seq);

//  Creates a sink writing to the file descriptor out_fd, connects and
//  subscribes. Returns NULL after logging if an endpoint is invalid.
//  Caller owns return value; out_fd stays the caller's.
pz_sink_t *
    pz_sink_new (const pz_sink_config_t *config, int out_fd);

//  Destroys the sink. NULL-safe; nulls *self_p.
void
    pz_sink_destroy (pz_sink_t **self_p);

//  Reads the resume file, catches up from history, then prints live
//  messages until `count` records, SIGINT/SIGTERM, or the output is
//  closed (a pipe reader gone). Returns a pz_sink_status_t.
int
    pz_sink_run (pz_sink_t *self);

//  pz_sink_run's steps without its SUB socket, for tests and fuzz/ (the
//  history endpoint, if any, is used as in a run). pz_sink_start reads the
//  resume file (or applies from) and catches up from history; returns a
//  pz_sink_status_t. pz_sink_feed then takes one live message of size bytes
//  at data as if the SUB socket had read it (validates it, fills a gap from
//  history, prints it), or with data NULL does what an idle_ms without
//  messages does (asks history's status, fills the end of a run); then it
//  writes the output. Does nothing once the sink stopped.
int
    pz_sink_start (pz_sink_t *self);
void
    pz_sink_feed (pz_sink_t *self, const uint8_t *data, size_t size);

//  Copies the sink's counters into stats.
void
    pz_sink_stats (pz_sink_t *self, pz_sink_stats_t *stats);

//  Writes the summary line (without a newline) into buffer, as main prints
//  it on stderr: "printed N 0, P 25, C 0; 0 malformed messages dropped;
//  gaps 1, filled 3 messages from history, lost 0 messages".
void
    pz_sink_summary (pz_sink_t *self, char *buffer, size_t size);

#endif
