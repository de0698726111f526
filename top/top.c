/*  =========================================================================
    top - the broker's stats for people: a terminal view that refreshes
          once a second

    The parser reads exactly docs/STATS.md's object with a cursor over the
    reply's bytes, never past its end, and never trusts it: every field it
    knows must have the type the schema gives it (counts: integers from 0
    to INT64_MAX; rates: finite numbers from 0 to 1e18), fields it does not
    know are skipped whatever they hold (fields are added within a major
    version), nesting is limited to S_DEPTH_MAX, and the first error ends
    the parse with what and where. The broker writes worker names without
    escaping them, so raw control characters in strings are let through
    (the screen shows them as '?'); a NUL byte is not.

    The screen is plain ASCII, built line by line into a caller's buffer,
    each line cut at the view's width, and the worker table cut to the
    lines left, with a line saying how many more there are.
    =========================================================================
*/
#include "top.h"
#include "record.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define S_DEPTH_MAX         16              //  nesting, at most, in skipped values
#define S_NUMBER_MAX        40              //  characters of a number, at most
#define S_RATE_MAX          1e18            //  a larger rate is garbage
#define S_KEY_MAX           32              //  bytes of a key compared (longer: unknown)
#define S_PROBLEM_MAX       512             //  bytes of the problem line
#define S_LINE_MAX          1024            //  bytes of one rendered line, at most
#define S_SCREEN_MAX        (1024 * 1024)   //  bytes of one rendered screen, at most
#define S_CHART_ROWS        5               //  lines of the chart's bars
#define S_CHART_MIN_ROWS    18              //  a shorter terminal gets no chart
#define S_LABEL_WIDTH       11              //  the chart's value labels
#define S_NAME_WIDTH_MAX    24              //  a longer worker name is cut
#define S_ACTIVE_MS         5000            //  a worker seen this recently is active
#define S_SHARE_BAR         10              //  characters of a share bar
#define S_NAP_MS            50              //  sleeps are cut into naps this long

struct _pz_top_t {
    char *endpoint;             //  the broker's history endpoint
    pz_sockopts_t sockopts;     //  for the REQ socket: the defaults
    zsock_t *req;               //  REQ to history; NULL after a silence
    pz_top_state_t state;       //  what the latest request came to
    char problem [S_PROBLEM_MAX];   //  why it failed, naming the endpoint; "" if not
    int64_t problem_since_ms;   //  when failures began (zclock_mono)
    pz_top_stats_t stats;       //  the current snapshot
    pz_top_stats_t scratch;     //  parsed into, then swapped with stats
    bool have_stats;            //  stats holds a snapshot
    int64_t stats_ms;           //  when it arrived (zclock_mono)
    char *raw;                  //  its JSON text as received
    size_t raw_size;            //  bytes in raw
    double rates [PZ_TOP_SAMPLES];      //  verdicts/s of the latest snapshots, a ring
    int64_t uptimes [PZ_TOP_SAMPLES];   //  the broker's uptime_ms of each
    int samples;                //  entries used in the ring
    int newest;                 //  index of the newest entry
    char *screen;               //  S_SCREEN_MAX bytes for pz_top_run, or NULL
    char *frame;                //  the screen with escapes, twice as large
};


//  --------------------------------------------------------------------------
//  The parser

typedef struct {
    const char *start;          //  the reply's first byte
    const char *cursor;         //  the next byte to read
    const char *end;            //  one past the last byte
    const char *error;          //  the first error, or NULL
    size_t error_at;            //  its offset from start
} s_json_t;

//  How the value of a field is read and where it goes.
typedef enum {
    S_COUNT,                    //  int64_t, an integer 0 or more
    S_FLAG,                     //  bool
    S_RATE,                     //  double, a number 0 or more
    S_TYPE,                     //  the string "stats"
    S_NAME,                     //  char [PZ_TOP_NAME_MAX + 1]
    S_ERRORS,                   //  the errors object
    S_WORKERS                   //  the workers array
} s_kind_t;

typedef struct {
    const char *key;            //  its name in the object
    s_kind_t kind;              //  what its value is
    size_t offset;              //  where it goes in the struct
} s_field_t;

#define S_STATS(field, kind)    { #field, kind, offsetof (pz_top_stats_t, field) }
#define S_WORKER(field, kind)   { #field, kind, offsetof (pz_top_worker_t, field) }

static const s_field_t s_stats_fields [] = {
    { "type", S_TYPE, 0 },
    S_STATS (final, S_FLAG),
    S_STATS (uptime_ms, S_COUNT),
    S_STATS (accepted, S_COUNT),
    S_STATS (requests, S_COUNT),
    S_STATS (retries, S_COUNT),
    S_STATS (dispatched, S_COUNT),
    S_STATS (dispatches, S_COUNT),
    S_STATS (redispatched, S_COUNT),
    S_STATS (results, S_COUNT),
    S_STATS (duplicates, S_COUNT),
    S_STATS (inflight, S_COUNT),
    S_STATS (recovered, S_COUNT),
    S_STATS (published, S_COUNT),
    S_STATS (seq, S_COUNT),
    S_STATS (journal, S_FLAG),
    S_STATS (commits, S_COUNT),
    S_STATS (unavailable, S_COUNT),
    S_STATS (subscriptions, S_COUNT),
    { "errors", S_ERRORS, 0 },
    S_STATS (rate, S_RATE),
    { "workers", S_WORKERS, 0 },
    { NULL, S_COUNT, 0 }
};

static const s_field_t s_worker_fields [] = {
    S_WORKER (name, S_NAME),
    S_WORKER (numbers, S_COUNT),
    S_WORKER (reports, S_COUNT),
    S_WORKER (duplicates, S_COUNT),
    S_WORKER (rejected, S_COUNT),
    S_WORKER (rate, S_RATE),
    S_WORKER (last_seen_ms, S_COUNT),
    S_WORKER (wrong, S_COUNT),
    S_WORKER (cut_off, S_FLAG),
    { NULL, S_COUNT, 0 }
};

//  Records the first error at the cursor. Returns false, for the caller
//  to return.
static bool
s_fail (s_json_t *json, const char *what)
{
    if (!json->error) {
        json->error = what;
        json->error_at = (size_t) (json->cursor - json->start);
    }
    return false;
}

//  Moves the cursor past white space.
static void
s_skip_space (s_json_t *json)
{
    while (json->cursor < json->end
    &&    (*json->cursor == ' ' || *json->cursor == '\t'
    ||     *json->cursor == '\n' || *json->cursor == '\r'))
        json->cursor++;
}

//  Skips white space; if the next byte is c, moves past it and returns
//  true, else returns false.
static bool
s_take (s_json_t *json, char c)
{
    s_skip_space (json);
    if (json->cursor < json->end && *json->cursor == c) {
        json->cursor++;
        return true;
    }
    return false;
}

//  Like s_take, but a missing c is the error what.
static bool
s_expect (s_json_t *json, char c, const char *what)
{
    return s_take (json, c) || s_fail (json, what);
}

//  Returns the value of a hex digit, or -1.
static int
s_hex (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Appends byte to out (out_size bytes with the NUL) if there is room;
//  counts it in *length either way.
static void
s_put (char *out, size_t out_size, size_t *length, unsigned char byte)
{
    if (out && *length + 1 < out_size)
        out [*length] = (char) byte;
    (*length)++;
}

//  Reads a string at the cursor into out, NUL-terminated and cut short to
//  out_size bytes (out NULL: skipped); *length (if not NULL) gets its full
//  decoded length. Returns false on an error.
static bool
s_string (s_json_t *json, char *out, size_t out_size, size_t *length_p)
{
    if (!s_take (json, '"'))
        return s_fail (json, "expected a string");
    size_t length = 0;
    while (true) {
        if (json->cursor >= json->end)
            return s_fail (json, "a string without its closing quote");
        unsigned char byte = (unsigned char) *json->cursor++;
        if (byte == '"')
            break;
        if (byte == '\0')
            return s_fail (json, "a NUL byte in a string");
        if (byte != '\\') {
            s_put (out, out_size, &length, byte);
            continue;
        }
        if (json->cursor >= json->end)
            return s_fail (json, "a string without its closing quote");
        char escape = *json->cursor++;
        const char *simple = strchr ("\"\\/bfnrt", escape);
        if (escape && simple) {
            static const char s_meaning [] = "\"\\/\b\f\n\r\t";
            s_put (out, out_size, &length, (unsigned char) s_meaning [simple - "\"\\/bfnrt"]);
            continue;
        }
        if (escape != 'u')
            return s_fail (json, "an unknown escape in a string");
        if (json->end - json->cursor < 4)
            return s_fail (json, "a \\u escape cut short");
        int code = 0;
        for (int index = 0; index < 4; index++) {
            int digit = s_hex (json->cursor [index]);
            if (digit < 0)
                return s_fail (json, "a \\u escape that is not hex");
            code = code * 16 + digit;
        }
        json->cursor += 4;
        if (code == 0)
            return s_fail (json, "a NUL character in a string");
        //  UTF-8 for the basic plane; a surrogate (half a pair) shows as '?'.
        if (code < 0x80)
            s_put (out, out_size, &length, (unsigned char) code);
        else
        if (code < 0x800) {
            s_put (out, out_size, &length, (unsigned char) (0xC0 | (code >> 6)));
            s_put (out, out_size, &length, (unsigned char) (0x80 | (code & 0x3F)));
        }
        else
        if (code >= 0xD800 && code <= 0xDFFF)
            s_put (out, out_size, &length, '?');
        else {
            s_put (out, out_size, &length, (unsigned char) (0xE0 | (code >> 12)));
            s_put (out, out_size, &length, (unsigned char) (0x80 | ((code >> 6) & 0x3F)));
            s_put (out, out_size, &length, (unsigned char) (0x80 | (code & 0x3F)));
        }
    }
    if (out && out_size > 0)
        out [length < out_size ? length : out_size - 1] = '\0';
    if (length_p)
        *length_p = length;
    return true;
}

//  Reads a count at the cursor: an integer from 0 to INT64_MAX, no
//  fraction, no exponent. Returns false on an error.
static bool
s_count (s_json_t *json, int64_t *value)
{
    s_skip_space (json);
    const char *cursor = json->cursor;
    if (cursor >= json->end || *cursor < '0' || *cursor > '9')
        return s_fail (json, "expected a count (an integer 0 or more)");
    if (*cursor == '0' && cursor + 1 < json->end && cursor [1] >= '0' && cursor [1] <= '9')
        return s_fail (json, "a number with a leading zero");
    uint64_t magnitude = 0;
    while (cursor < json->end && *cursor >= '0' && *cursor <= '9') {
        uint64_t digit = (uint64_t) (*cursor - '0');
        if (magnitude > ((uint64_t) INT64_MAX - digit) / 10)
            return s_fail (json, "a count out of range");
        magnitude = magnitude * 10 + digit;
        cursor++;
    }
    if (cursor < json->end && (*cursor == '.' || *cursor == 'e' || *cursor == 'E'))
        return s_fail (json, "expected a count (an integer 0 or more)");
    json->cursor = cursor;
    *value = (int64_t) magnitude;
    return true;
}

//  Reads a JSON number at the cursor. A rate (rate true) is finite, from 0
//  to S_RATE_MAX; any other number (a field skipped) may be negative and
//  of any size. Returns false on an error (not a number, too long, range).
static bool
s_number (s_json_t *json, double *value, bool rate)
{
    s_skip_space (json);
    char text [S_NUMBER_MAX + 1];
    size_t length = 0;
    const char *cursor = json->cursor;
    while (cursor < json->end && strchr ("0123456789+-.eE", *cursor) && *cursor) {
        if (length == S_NUMBER_MAX)
            return s_fail (json, "a number too long");
        text [length++] = *cursor++;
    }
    text [length] = '\0';
    bool first_ok = length > 0 && ((text [0] >= '0' && text [0] <= '9')
                                || (text [0] == '-' && !rate));
    if (!first_ok)
        return s_fail (json, rate ? "expected a number 0 or more" : "expected a number");
    char *stop = NULL;
    double number = strtod (text, &stop);
    if (stop != text + length)
        return s_fail (json, "a malformed number");
    if (rate && (!isfinite (number) || number > S_RATE_MAX))
        return s_fail (json, "a number out of range");
    json->cursor = cursor;
    *value = number;
    return true;
}

//  Reads the literal word (true, false, null) at the cursor.
static bool
s_literal (s_json_t *json, const char *word)
{
    s_skip_space (json);
    size_t length = strlen (word);
    if ((size_t) (json->end - json->cursor) < length
    ||  memcmp (json->cursor, word, length) != 0)
        return s_fail (json, "expected a value");
    json->cursor += length;
    return true;
}

//  Reads a bool at the cursor.
static bool
s_flag (s_json_t *json, bool *value)
{
    s_skip_space (json);
    if (json->cursor < json->end && *json->cursor == 't') {
        *value = true;
        return s_literal (json, "true");
    }
    if (json->cursor < json->end && *json->cursor == 'f') {
        *value = false;
        return s_literal (json, "false");
    }
    return s_fail (json, "expected true or false");
}

//  Skips any value at the cursor, nested at most S_DEPTH_MAX deep below
//  depth. Returns false on an error.
static bool
s_skip_value (s_json_t *json, int depth)
{
    if (depth > S_DEPTH_MAX)
        return s_fail (json, "values nested too deep");
    s_skip_space (json);
    if (json->cursor >= json->end)
        return s_fail (json, "expected a value");
    char first = *json->cursor;
    if (first == '"')
        return s_string (json, NULL, 0, NULL);
    if (first == '{') {
        json->cursor++;
        if (s_take (json, '}'))
            return true;
        do {
            if (!s_string (json, NULL, 0, NULL)
            ||  !s_expect (json, ':', "expected ':' after a key")
            ||  !s_skip_value (json, depth + 1))
                return false;
        } while (s_take (json, ','));
        return s_expect (json, '}', "expected ',' or '}' in an object");
    }
    if (first == '[') {
        json->cursor++;
        if (s_take (json, ']'))
            return true;
        do {
            if (!s_skip_value (json, depth + 1))
                return false;
        } while (s_take (json, ','));
        return s_expect (json, ']', "expected ',' or ']' in an array");
    }
    if (first == 't')
        return s_literal (json, "true");
    if (first == 'f')
        return s_literal (json, "false");
    if (first == 'n')
        return s_literal (json, "null");
    double ignored;
    return s_number (json, &ignored, false);
}

//  Reads the errors object: {"code": count, ...}, codes 1 to 999999.
static bool
s_errors (s_json_t *json, pz_top_stats_t *stats)
{
    stats->error_count = 0;
    if (!s_expect (json, '{', "errors: expected an object"))
        return false;
    if (s_take (json, '}'))
        return true;
    do {
        char key [S_KEY_MAX];
        size_t length;
        if (!s_string (json, key, sizeof key, &length))
            return false;
        int64_t code = 0;
        bool numeric = length >= 1 && length <= 6 && key [0] != '0';
        for (size_t index = 0; numeric && index < length; index++) {
            numeric = key [index] >= '0' && key [index] <= '9';
            code = code * 10 + (key [index] - '0');
        }
        if (!numeric)
            return s_fail (json, "errors: a key that is not an error code");
        if (stats->error_count == PZ_TOP_ERRORS_MAX)
            return s_fail (json, "errors: too many codes");
        pz_top_error_t *error = &stats->errors [stats->error_count];
        error->code = code;
        if (!s_expect (json, ':', "expected ':' after a key")
        ||  !s_count (json, &error->count))
            return false;
        stats->error_count++;
    } while (s_take (json, ','));
    return s_expect (json, '}', "errors: expected ',' or '}'");
}

static bool
    s_members (s_json_t *json, const s_field_t *fields, void *base,
               pz_top_stats_t *stats, bool *named);

//  Reads the workers array into stats->workers, growing it as needed.
static bool
s_workers (s_json_t *json, pz_top_stats_t *stats)
{
    stats->worker_count = 0;
    if (!s_expect (json, '[', "workers: expected an array"))
        return false;
    if (s_take (json, ']'))
        return true;
    do {
        if (stats->worker_count == PZ_TOP_WORKERS_MAX)
            return s_fail (json, "workers: more than 4096");
        if (stats->worker_count == stats->worker_slots) {
            int slots = stats->worker_slots ? stats->worker_slots * 2 : 8;
            pz_top_worker_t *grown = (pz_top_worker_t *) realloc (
                stats->workers, (size_t) slots * sizeof (pz_top_worker_t));
            if (!grown)
                return s_fail (json, "workers: out of memory");
            stats->workers = grown;
            stats->worker_slots = slots;
        }
        pz_top_worker_t *worker = &stats->workers [stats->worker_count];
        memset (worker, 0, sizeof *worker);
        bool named = false;
        if (!s_expect (json, '{', "workers: expected an object")
        ||  !s_members (json, s_worker_fields, worker, stats, &named))
            return false;
        if (!named)
            return s_fail (json, "workers: a worker without a name");
        stats->worker_count++;
    } while (s_take (json, ','));
    return s_expect (json, ']', "workers: expected ',' or ']'");
}

//  Reads an object's members after its '{', up to and including its '}',
//  into base (a pz_top_stats_t or pz_top_worker_t) by fields; stats for the
//  errors and workers, *named set when a name or a type was read.
static bool
s_members (s_json_t *json, const s_field_t *fields, void *base,
           pz_top_stats_t *stats, bool *named)
{
    if (s_take (json, '}'))
        return true;
    do {
        char key [S_KEY_MAX];
        size_t length;
        if (!s_string (json, key, sizeof key, &length)
        ||  !s_expect (json, ':', "expected ':' after a key"))
            return false;
        const s_field_t *field = fields;
        while (field->key && (length >= S_KEY_MAX || !streq (field->key, key)))
            field++;
        char *target = (char *) base + field->offset;
        bool ok = true;
        if (!field->key)
            ok = s_skip_value (json, 1);
        else
        if (field->kind == S_COUNT)
            ok = s_count (json, (int64_t *) target);
        else
        if (field->kind == S_FLAG)
            ok = s_flag (json, (bool *) target);
        else
        if (field->kind == S_RATE)
            ok = s_number (json, (double *) target, true);
        else
        if (field->kind == S_NAME) {
            ok = s_string (json, target, PZ_TOP_NAME_MAX + 1, NULL);
            *named = true;
        }
        else
        if (field->kind == S_TYPE) {
            char type [8];
            size_t type_length;
            ok = s_string (json, type, sizeof type, &type_length);
            if (ok && (type_length != 5 || !streq (type, "stats")))
                return s_fail (json, "type is not \"stats\"");
            *named = true;
        }
        else
        if (field->kind == S_ERRORS)
            ok = s_errors (json, stats);
        else
            ok = s_workers (json, stats);
        if (!ok)
            return s_fail (json, "a field of the wrong type");
    } while (s_take (json, ','));
    return s_expect (json, '}', "expected ',' or '}' in an object");
}

//  Fills stats with an empty snapshot.
void
pz_top_stats_init (pz_top_stats_t *stats)
{
    assert (stats);
    memset (stats, 0, sizeof *stats);
}

//  Frees stats' workers and empties it. NULL-safe.
void
pz_top_stats_reset (pz_top_stats_t *stats)
{
    if (!stats)
        return;
    free (stats->workers);
    memset (stats, 0, sizeof *stats);
}

//  Parses one stats object; on an error, empties stats and says why.
int
pz_top_stats_parse (pz_top_stats_t *stats, const char *data, size_t size,
                    char *why, size_t why_size)
{
    assert (stats);
    //  Keep the workers' memory for the next parse; everything else goes.
    pz_top_worker_t *workers = stats->workers;
    int slots = stats->worker_slots;
    memset (stats, 0, sizeof *stats);
    stats->workers = workers;
    stats->worker_slots = slots;
    bool ok = data != NULL || size == 0;
    if (!data)
        data = "";
    s_json_t json = { data, data, data + (ok ? size : 0), NULL, 0 };
    bool named = false;
    if (!ok || size > PZ_WIRE_MAX)
        ok = s_fail (&json, "a reply larger than 1 MiB");
    else
        ok = s_expect (&json, '{', "expected an object")
          && s_members (&json, s_stats_fields, stats, stats, &named);
    if (ok && !named)
        ok = s_fail (&json, "no \"type\":\"stats\": not a stats object");
    if (ok) {
        s_skip_space (&json);
        if (json.cursor != json.end)
            ok = s_fail (&json, "bytes after the object");
    }
    if (ok)
        return 0;
    pz_top_stats_reset (stats);
    if (why && why_size)
        snprintf (why, why_size, "%s at byte %zu of %zu", json.error, json.error_at, size);
    return -1;
}


//  --------------------------------------------------------------------------
//  The class

//  Creates a view of the broker at endpoint; NULL on a bad endpoint.
pz_top_t *
pz_top_new (const char *endpoint)
{
    assert (endpoint);
    pz_top_t *self = (pz_top_t *) zmalloc (sizeof (pz_top_t));
    assert (self);
    self->endpoint = strdup (endpoint);
    pz_sockopts_init (&self->sockopts);
    //  Opened now so that a bad endpoint is an error at start; a host that
    //  does not resolve yet is not (libzmq connects when it does).
    self->req = pz_sock_open (ZMQ_REQ, "history REQ", self->endpoint, false,
                              &self->sockopts);
    if (!self->req) {
        pz_top_destroy (&self);
        return NULL;
    }
    return self;
}

//  Opens the REQ socket again with other options.
int
pz_top_set_sockopts (pz_top_t *self, const pz_sockopts_t *opts)
{
    assert (self && opts);
    self->sockopts = *opts;
    zsock_destroy (&self->req);
    self->req = pz_sock_open (ZMQ_REQ, "history REQ", self->endpoint, false,
                              &self->sockopts);
    return self->req ? 0 : -1;
}

//  Destroys the view. NULL-safe.
void
pz_top_destroy (pz_top_t **self_p)
{
    assert (self_p);
    pz_top_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->req);
    pz_top_stats_reset (&self->stats);
    pz_top_stats_reset (&self->scratch);
    free (self->raw);
    free (self->screen);
    free (self->frame);
    zstr_free (&self->endpoint);
    free (self);
    *self_p = NULL;
}

//  Enters a failed state at now_ms with the problem line.
static pz_top_state_t
s_problem (pz_top_t *self, pz_top_state_t state, int64_t now_ms, const char *format, ...)
{
    if (self->state == PZ_TOP_OK || self->state == PZ_TOP_NONE)
        self->problem_since_ms = now_ms;
    self->state = state;
    va_list args;
    va_start (args, format);
    vsnprintf (self->problem, sizeof self->problem, format, args);
    va_end (args);
    return state;
}

//  Adds the current snapshot's rate to the chart if it is a new one.
static void
s_add_sample (pz_top_t *self)
{
    int64_t uptime = self->stats.uptime_ms;
    if (self->samples > 0) {
        int64_t newest = self->uptimes [self->newest];
        if (uptime == newest)
            return;                 //  the same snapshot again
        if (uptime < newest)
            self->samples = 0;      //  a restarted broker: a new chart
    }
    self->newest = self->samples == 0 ? 0 : (self->newest + 1) % PZ_TOP_SAMPLES;
    self->rates [self->newest] = self->stats.rate;
    self->uptimes [self->newest] = uptime;
    if (self->samples < PZ_TOP_SAMPLES)
        self->samples++;
}

//  Takes one reply body: an E record or a stats object.
pz_top_state_t
pz_top_feed (pz_top_t *self, const char *data, size_t size, int64_t now_ms)
{
    assert (self);
    if (size == PZ_RECORD_SIZE && data [0] == PZ_TAG_ERROR) {
        int64_t code = pz_record_value ((const uint8_t *) data);
        if (code == PZ_ERR_UNAVAILABLE)
            return s_problem (self, PZ_TOP_UNAVAILABLE, now_ms,
                              "broker not serving (%s): its loop has stalled (E 9)",
                              self->endpoint);
        return s_problem (self, PZ_TOP_REFUSED, now_ms,
                          "broker refused the stats request (%s): E %" PRId64 ", %s "
                          "(a broker without stats?)", self->endpoint, code,
                          pz_error_str (code));
    }
    char why [200];
    if (pz_top_stats_parse (&self->scratch, data, size, why, sizeof why) != 0)
        return s_problem (self, PZ_TOP_BAD_REPLY, now_ms, "bad reply from %s: %s",
                          self->endpoint, why);
    pz_top_stats_t swap = self->stats;
    self->stats = self->scratch;
    self->scratch = swap;
    //  The snapshot's age counts from its first arrival: the broker makes
    //  one a second, and may be asked for it more often.
    if (!self->have_stats || self->stats.uptime_ms != self->scratch.uptime_ms)
        self->stats_ms = now_ms;
    self->have_stats = true;
    char *raw = (char *) realloc (self->raw, size + 1);
    assert (raw);
    memcpy (raw, data, size);
    raw [size] = '\0';
    self->raw = raw;
    self->raw_size = size;
    s_add_sample (self);
    self->state = PZ_TOP_OK;
    self->problem [0] = '\0';
    return PZ_TOP_OK;
}

//  Records a request without an answer.
pz_top_state_t
pz_top_feed_silence (pz_top_t *self, const char *why, int64_t sent_ms)
{
    assert (self && why);
    return s_problem (self, PZ_TOP_SILENT, sent_ms, "broker not answering (%s): %s",
                      self->endpoint, why);
}

//  Sends one stats request and takes its reply or its silence.
pz_top_state_t
pz_top_fetch (pz_top_t *self, int64_t timeout_ms)
{
    assert (self);
    if (!self->req)
        self->req = pz_sock_open (ZMQ_REQ, "history REQ", self->endpoint, false,
                                  &self->sockopts);
    int64_t sent_ms = zclock_mono ();
    if (!self->req)
        return pz_top_feed_silence (self, "cannot connect", sent_ms);
    void *handle = zsock_resolve (self->req);
    uint8_t request [PZ_RECORD_SIZE];
    pz_record_encode (request, PZ_TAG_HISTORY, 0);
    int64_t deadline = sent_ms + timeout_ms;
    if (zmq_send (handle, request, sizeof request, ZMQ_DONTWAIT) == (int) sizeof request) {
        while (!zsys_interrupted) {
            int64_t left = deadline - zclock_mono ();
            if (left <= 0)
                break;
            zmq_pollitem_t item = { handle, 0, ZMQ_POLLIN, 0 };
            if (zmq_poll (&item, 1, left < 100 ? (long) left : 100) <= 0)
                continue;
            zmq_msg_t reply;
            zmq_msg_init (&reply);
            if (zmq_msg_recv (&reply, handle, ZMQ_DONTWAIT) == -1) {
                zmq_msg_close (&reply);
                continue;
            }
            pz_top_state_t state;
            if (zmq_msg_more (&reply)) {
                pz_sock_drain_frames (handle);
                state = s_problem (self, PZ_TOP_BAD_REPLY, zclock_mono (),
                                   "bad reply from %s: more than one frame",
                                   self->endpoint);
            }
            else
                state = pz_top_feed (self, (const char *) zmq_msg_data (&reply),
                                     zmq_msg_size (&reply), zclock_mono ());
            zmq_msg_close (&reply);
            return state;
        }
    }
    //  Lazy Pirate: a fresh socket, so a late reply cannot be mistaken.
    zsock_destroy (&self->req);
    char why [64];
    if (zsys_interrupted)
        snprintf (why, sizeof why, "interrupted");
    else
        snprintf (why, sizeof why, "no reply within %" PRId64 " ms", timeout_ms);
    return pz_top_feed_silence (self, why, sent_ms);
}

//  Returns the latest request's state.
pz_top_state_t
pz_top_state (pz_top_t *self)
{
    assert (self);
    return self->state;
}

//  Returns why the latest request failed, or "".
const char *
pz_top_problem (pz_top_t *self)
{
    assert (self);
    return self->problem;
}

//  Returns the current snapshot, or NULL.
const pz_top_stats_t *
pz_top_stats (pz_top_t *self)
{
    assert (self);
    return self->have_stats ? &self->stats : NULL;
}

//  Returns the current snapshot's JSON text, or NULL.
const char *
pz_top_raw (pz_top_t *self, size_t *size)
{
    assert (self);
    if (size)
        *size = self->raw_size;
    return self->raw;
}


//  --------------------------------------------------------------------------
//  The screen

typedef struct {
    char *buffer;               //  where lines go
    size_t size;                //  its bytes, with the NUL
    size_t used;                //  bytes written
    int cols;                   //  characters per line; 0: no limit
    int rows;                   //  lines; 0: no limit
    int lines;                  //  lines written
} s_screen_t;

//  Returns the lines still free on the screen (1 << 30 when unlimited).
static int
s_lines_left (s_screen_t *screen)
{
    return screen->rows ? screen->rows - screen->lines : 1 << 30;
}

//  Appends one line, cut at the screen's width; nothing once the screen's
//  lines are used up or its buffer is full.
static void
s_line (s_screen_t *screen, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_line (s_screen_t *screen, const char *format, ...)
{
    if (s_lines_left (screen) <= 0)
        return;
    char line [S_LINE_MAX];
    va_list args;
    va_start (args, format);
    int length = vsnprintf (line, sizeof line, format, args);
    va_end (args);
    if (length < 0)
        length = 0;
    size_t kept = (size_t) length < sizeof line ? (size_t) length : sizeof line - 1;
    if (screen->cols > 0 && kept > (size_t) screen->cols)
        kept = (size_t) screen->cols;
    while (kept > 0 && line [kept - 1] == ' ')
        kept--;
    if (screen->used + kept + 2 > screen->size)
        return;
    memcpy (screen->buffer + screen->used, line, kept);
    screen->used += kept;
    screen->buffer [screen->used++] = '\n';
    screen->buffer [screen->used] = '\0';
    screen->lines++;
}

//  Writes value with thousands separators ("1,234,567") into out.
static char *
s_count_text (char *out, size_t size, int64_t value)
{
    char digits [24];
    uint64_t magnitude = value < 0 ? 0 - (uint64_t) value : (uint64_t) value;
    snprintf (digits, sizeof digits, "%" PRIu64, magnitude);
    size_t length = strlen (digits);
    size_t used = 0;
    if (value < 0 && used + 1 < size)
        out [used++] = '-';
    for (size_t index = 0; index < length && used + 1 < size; index++) {
        if (index > 0 && (length - index) % 3 == 0 && used + 2 < size)
            out [used++] = ',';
        out [used++] = digits [index];
    }
    out [used] = '\0';
    return out;
}

//  Writes a rate, rounded to a whole number, with separators.
static char *
s_rate_text (char *out, size_t size, double rate)
{
    if (!(rate >= 0))
        rate = 0;
    if (rate > 9e18)
        rate = 9e18;
    return s_count_text (out, size, (int64_t) llround (rate));
}

//  Writes how long ago ms was, for people: "0.3 s", "42 s", "5 min", "3 h".
static char *
s_age_text (char *out, size_t size, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 10000)
        snprintf (out, size, "%d.%d s", (int) (ms / 1000), (int) (ms % 1000 / 100));
    else
    if (ms < 120000)
        snprintf (out, size, "%d s", (int) (ms / 1000));
    else
    if (ms < 7200000)
        snprintf (out, size, "%d min", (int) (ms / 60000));
    else
    if (ms < INT64_C (172800000))
        snprintf (out, size, "%d h", (int) (ms / 3600000));
    else
        snprintf (out, size, "%" PRId64 " d", ms / 86400000);
    return out;
}

//  Writes an uptime: "0:01:23", or "3d 04:05:06".
static char *
s_uptime_text (char *out, size_t size, int64_t ms)
{
    int64_t seconds = ms < 0 ? 0 : ms / 1000;
    int64_t days = seconds / 86400;
    seconds %= 86400;
    if (days > 0)
        snprintf (out, size, "%" PRId64 "d %02d:%02d:%02d", days, (int) (seconds / 3600),
                  (int) (seconds / 60 % 60), (int) (seconds % 60));
    else
        snprintf (out, size, "%d:%02d:%02d", (int) (seconds / 3600),
                  (int) (seconds / 60 % 60), (int) (seconds % 60));
    return out;
}

//  Copies a name for the screen: printable ASCII only (other bytes show as
//  '?'), cut to width with a final '~' when longer.
static char *
s_name_text (char *out, size_t size, const char *name, int width)
{
    size_t length = strlen (name);
    size_t kept = length;
    if (width > 0 && kept > (size_t) width)
        kept = (size_t) width;
    if (kept + 1 > size)
        kept = size - 1;
    for (size_t index = 0; index < kept; index++) {
        unsigned char byte = (unsigned char) name [index];
        out [index] = byte >= 0x20 && byte < 0x7F ? (char) byte : '?';
    }
    if (kept < length && kept > 0)
        out [kept - 1] = '~';
    out [kept] = '\0';
    if (kept == 0 && size > 1)
        snprintf (out, size, "-");
    return out;
}

//  Returns the sample `back` snapshots before the newest (0: newest).
static double
s_sample (pz_top_t *self, int back)
{
    return self->rates [(self->newest - back + PZ_TOP_SAMPLES) % PZ_TOP_SAMPLES];
}

//  Draws the verdicts/s chart of the latest samples, width columns, the
//  newest on the right.
static void
s_render_chart (pz_top_t *self, s_screen_t *screen, int width)
{
    int shown = self->samples < width ? self->samples : width;
    double peak = 0;
    for (int back = 0; back < shown; back++)
        if (s_sample (self, back) > peak)
            peak = s_sample (self, back);
    char label [32];
    char bars [PZ_TOP_SAMPLES + 1];
    for (int row = 0; row < S_CHART_ROWS; row++) {
        int level = S_CHART_ROWS - 1 - row;        //  0 at the bottom
        for (int column = 0; column < width; column++) {
            int back = width - 1 - column;
            char cell = ' ';
            if (back < shown && peak > 0) {
                double fill = s_sample (self, back) / peak * S_CHART_ROWS - level;
                cell = fill >= 1 ? '#' : fill >= 0.5 ? ':' : fill > 0 ? '.' : ' ';
            }
            bars [column] = cell;
        }
        bars [width] = '\0';
        if (row == 0)
            s_rate_text (label, sizeof label, peak);
        else
            label [0] = '\0';
        s_line (screen, "%*s |%s|", S_LABEL_WIDTH - 1, label, bars);
    }
    char axis [PZ_TOP_SAMPLES + 1];
    memset (axis, '-', (size_t) width);
    axis [width] = '\0';
    s_line (screen, "%*s +%s+", S_LABEL_WIDTH - 1, "0", axis);
    //  Under the oldest sample shown, how long ago it was; "now" at the end.
    char span [32] = "";
    if (shown > 1) {
        int64_t oldest = self->uptimes [(self->newest - (shown - 1) + PZ_TOP_SAMPLES)
                                        % PZ_TOP_SAMPLES];
        int64_t seconds = (self->uptimes [self->newest] - oldest + 500) / 1000;
        snprintf (span, sizeof span, "-%" PRId64 " s", seconds);
    }
    //  (or further left, when the chart has only begun, to fit).
    int length = (int) strlen (span);
    int offset = width - shown;
    if (offset > width - length - 4)
        offset = width - length - 4;
    if (offset < 0 || length == 0)
        s_line (screen, "%*s%*s", S_LABEL_WIDTH + 1, "", width + 1, "now");
    else
        s_line (screen, "%*s%s%*s", S_LABEL_WIDTH + 1 + offset, "", span,
                width + 1 - offset - length, "now");
}

//  Draws the worker table within the lines left.
static void
s_render_workers (pz_top_t *self, s_screen_t *screen, int64_t age_ms)
{
    const pz_top_stats_t *stats = &self->stats;
    int active = 0;
    double total = 0;
    int name_width = 6;
    for (int index = 0; index < stats->worker_count; index++) {
        const pz_top_worker_t *worker = &stats->workers [index];
        if (worker->last_seen_ms + age_ms < S_ACTIVE_MS)
            active++;
        total += worker->rate;
        int length = (int) strlen (worker->name);
        if (length > name_width)
            name_width = length < S_NAME_WIDTH_MAX ? length : S_NAME_WIDTH_MAX;
    }
    s_line (screen, "%d worker%s, %d reporting in the last %d s",
            stats->worker_count, stats->worker_count == 1 ? "" : "s", active,
            S_ACTIVE_MS / 1000);
    if (stats->worker_count == 0)
        return;
    s_line (screen, "%-*s %9s %11s %9s %9s %10s  %s", name_width, "WORKER",
            "RATE/s", "NUMBERS", "REPORTS", "REJECTED", "LAST SEEN", "SHARE");
    int room = s_lines_left (screen);
    int shown = stats->worker_count;
    if (shown > room)
        shown = room > 1 ? room - 1 : 0;
    for (int index = 0; index < shown; index++) {
        const pz_top_worker_t *worker = &stats->workers [index];
        char name [S_NAME_WIDTH_MAX + 1], rate [32], numbers [32], reports [32],
             rejected [32], seen [32], share [32];
        s_name_text (name, sizeof name, worker->name, name_width);
        if (worker->cut_off)
            snprintf (share, sizeof share, "CUT OFF: %" PRId64 " wrong report%s",
                      worker->wrong, worker->wrong == 1 ? "" : "s");
        else
        if (total > 0) {
            double part = worker->rate / total;
            int filled = (int) lround (part * S_SHARE_BAR);
            char bar [S_SHARE_BAR + 1];
            for (int cell = 0; cell < S_SHARE_BAR; cell++)
                bar [cell] = cell < filled ? '#' : '.';
            bar [S_SHARE_BAR] = '\0';
            snprintf (share, sizeof share, "%3d%% %s", (int) lround (part * 100), bar);
        }
        else
            snprintf (share, sizeof share, "  -");
        s_line (screen, "%-*s %9s %11s %9s %9s %10s  %s", name_width, name,
                s_rate_text (rate, sizeof rate, worker->rate),
                s_count_text (numbers, sizeof numbers, worker->numbers),
                s_count_text (reports, sizeof reports, worker->reports),
                s_count_text (rejected, sizeof rejected, worker->rejected),
                s_age_text (seen, sizeof seen, worker->last_seen_ms + age_ms),
                share);
    }
    if (shown < stats->worker_count)
        s_line (screen, "... and %d more worker%s (a taller terminal shows them)",
                stats->worker_count - shown,
                stats->worker_count - shown == 1 ? "" : "s");
}

//  Renders the screen into buffer.
size_t
pz_top_render (pz_top_t *self, char *buffer, size_t size,
               const pz_top_view_t *view, int64_t now_ms)
{
    assert (self && buffer && view);
    if (size == 0)
        return 0;
    buffer [0] = '\0';
    s_screen_t screen = { buffer, size, 0, view->cols, view->rows, 0 };
    const pz_top_stats_t *stats = &self->stats;
    char text [7][40];
    if (!self->have_stats)
        s_line (&screen, "playzmq-top  %s", self->endpoint);
    else
        s_line (&screen, "playzmq-top  %s  broker up %s%s", self->endpoint,
                s_uptime_text (text [0], sizeof text [0], stats->uptime_ms),
                stats->final ? "  (stopping: final counters)" : "");
    int64_t age_ms = self->have_stats ? now_ms - self->stats_ms : 0;
    if (age_ms < 0)
        age_ms = 0;
    if (self->state == PZ_TOP_NONE)
        s_line (&screen, "asking the broker for its stats ...");
    else
    if (self->state != PZ_TOP_OK) {
        char old [64] = "";
        if (self->have_stats)
            snprintf (old, sizeof old, "; the numbers below are %s old",
                      s_age_text (text [1], sizeof text [1], age_ms));
        s_line (&screen, "%s", self->problem);
        s_line (&screen, "  failing for %s%s; trying again",
                s_age_text (text [0], sizeof text [0], now_ms - self->problem_since_ms),
                old);
    }
    if (!self->have_stats)
        return screen.used;

    //  Throughput, and its chart when the view has room for it.
    s_rate_text (text [0], sizeof text [0], stats->rate);
    bool chart = view->chart && (view->rows == 0 || view->rows >= S_CHART_MIN_ROWS);
    if (chart && self->samples > 1) {
        double sum = 0, peak = 0;
        for (int back = 0; back < self->samples; back++) {
            sum += s_sample (self, back);
            if (s_sample (self, back) > peak)
                peak = s_sample (self, back);
        }
        int64_t span = self->uptimes [self->newest] - self->uptimes [
            (self->newest - (self->samples - 1) + PZ_TOP_SAMPLES) % PZ_TOP_SAMPLES];
        s_line (&screen, "throughput %s verdicts/s now, %s average, %s peak over %s",
                text [0], s_rate_text (text [1], sizeof text [1], sum / self->samples),
                s_rate_text (text [2], sizeof text [2], peak),
                s_age_text (text [3], sizeof text [3], span));
    }
    else
        s_line (&screen, "throughput %s verdicts/s", text [0]);
    if (chart) {
        int width = PZ_TOP_SAMPLES;
        if (view->cols > 0 && view->cols - S_LABEL_WIDTH - 3 < width)
            width = view->cols - S_LABEL_WIDTH - 3;
        if (width >= 10)
            s_render_chart (self, &screen, width);
    }

    //  Totals.
    s_line (&screen, "in flight %s   accepted %s   results %s   redispatched %s   "
            "duplicates %s",
            s_count_text (text [0], sizeof text [0], stats->inflight),
            s_count_text (text [1], sizeof text [1], stats->accepted),
            s_count_text (text [2], sizeof text [2], stats->results),
            s_count_text (text [3], sizeof text [3], stats->redispatched),
            s_count_text (text [4], sizeof text [4], stats->duplicates));
    char journal [96];
    if (stats->journal)
        snprintf (journal, sizeof journal, "journal on (%s commits, %s unavailable)",
                  s_count_text (text [0], sizeof text [0], stats->commits),
                  s_count_text (text [1], sizeof text [1], stats->unavailable));
    else
        snprintf (journal, sizeof journal, "journal off");
    char errors [S_LINE_MAX / 2] = "none";
    size_t used = 0;
    for (int index = 0; index < stats->error_count && used + 40 < sizeof errors; index++)
        used += (size_t) snprintf (errors + used, sizeof errors - used, "%sE %" PRId64
                                   " x%s", index ? ", " : "", stats->errors [index].code,
                                   s_count_text (text [6], sizeof text [6],
                                                 stats->errors [index].count));
    s_line (&screen, "%s   seq %s   requests %s   retries %s   errors %s", journal,
            s_count_text (text [2], sizeof text [2], stats->seq),
            s_count_text (text [3], sizeof text [3], stats->requests),
            s_count_text (text [4], sizeof text [4], stats->retries), errors);
    s_line (&screen, "%s", "");
    s_render_workers (self, &screen, age_ms);
    return screen.used;
}


//  --------------------------------------------------------------------------
//  The terminal

//  Writes size bytes of data to fd, whole. Returns 0, or -1.
static int
s_write_all (int fd, const char *data, size_t size)
{
    while (size > 0) {
        ssize_t written = write (fd, data, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        data += written;
        size -= (size_t) written;
    }
    return 0;
}

//  Sleeps until the deadline (zclock_mono) or a signal.
static void
s_sleep_until (int64_t deadline_ms)
{
    while (!zsys_interrupted) {
        int64_t left = deadline_ms - zclock_mono ();
        if (left <= 0)
            break;
        zclock_sleep ((int) (left < S_NAP_MS ? left : S_NAP_MS));
    }
}

//  Paints the screen on out_fd: home, each line then clear to its end,
//  then clear below. Returns 0, or -1 if out_fd cannot be written.
static int
s_paint (pz_top_t *self, int out_fd)
{
    struct winsize size;
    int rows = 24, cols = 80;
    if (ioctl (out_fd, TIOCGWINSZ, &size) == 0 && size.ws_row > 0 && size.ws_col > 0) {
        rows = size.ws_row;
        cols = size.ws_col < S_LINE_MAX - 1 ? size.ws_col : S_LINE_MAX - 1;
    }
    pz_top_view_t view = { cols, rows, true };
    size_t length = pz_top_render (self, self->screen, S_SCREEN_MAX, &view, zclock_mono ());
    size_t used = 0;
    memcpy (self->frame, "\033[H", 3);
    used += 3;
    for (size_t index = 0; index < length; index++) {
        if (self->screen [index] != '\n') {
            self->frame [used++] = self->screen [index];
            continue;
        }
        memcpy (self->frame + used, "\033[K", 3);
        used += 3;
        //  No newline after the last line: it would scroll a full screen.
        if (index + 1 < length)
            self->frame [used++] = '\n';
    }
    memcpy (self->frame + used, "\033[J", 3);
    used += 3;
    return s_write_all (out_fd, self->frame, used);
}

//  Repaints out_fd every interval_ms until interrupted.
int
pz_top_run (pz_top_t *self, int out_fd, int64_t interval_ms, int64_t timeout_ms)
{
    assert (self);
    if (!self->screen) {
        self->screen = (char *) malloc (S_SCREEN_MAX);
        //  Each '\n' becomes 4 bytes at most, with 6 bytes of escapes around.
        self->frame = (char *) malloc (4 * S_SCREEN_MAX + 16);
        assert (self->screen && self->frame);
    }
    //  The alternate screen, cursor hidden; both restored at the end.
    static const char s_enter [] = "\033[?1049h\033[?25l\033[H\033[2J";
    static const char s_leave [] = "\033[?25h\033[?1049l";
    int status = s_write_all (out_fd, s_enter, strlen (s_enter));
    if (status == 0)
        status = s_paint (self, out_fd);
    while (status == 0 && !zsys_interrupted) {
        int64_t started_ms = zclock_mono ();
        pz_top_fetch (self, timeout_ms);
        if (zsys_interrupted)
            break;
        status = s_paint (self, out_fd);
        s_sleep_until (started_ms + interval_ms);
    }
    if (s_write_all (out_fd, s_leave, strlen (s_leave)) != 0)
        status = -1;
    return status == 0 ? 0 : 1;
}

//  Asks once and prints the snapshot, plain or raw JSON.
int
pz_top_once (pz_top_t *self, int out_fd, bool json, int64_t timeout_ms)
{
    assert (self);
    if (pz_top_fetch (self, timeout_ms) != PZ_TOP_OK) {
        fprintf (stderr, "playzmq-top: %s\n", pz_top_problem (self));
        return 1;
    }
    int written;
    if (json) {
        written = s_write_all (out_fd, self->raw, self->raw_size);
        if (written == 0)
            written = s_write_all (out_fd, "\n", 1);
    }
    else {
        char *screen = (char *) malloc (S_SCREEN_MAX);
        assert (screen);
        pz_top_view_t view = { 0, 0, false };
        size_t length = pz_top_render (self, screen, S_SCREEN_MAX, &view, zclock_mono ());
        written = s_write_all (out_fd, screen, length);
        free (screen);
    }
    if (written != 0) {
        fprintf (stderr, "playzmq-top: cannot write the output: %s\n", strerror (errno));
        return 1;
    }
    return 0;
}
