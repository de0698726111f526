/*  =========================================================================
    sink - subscribes to tags on the broker's PUB and prints the records

    Every message is validated before it is printed, as anything read from
    the network is: a malformed one is counted, logged and dropped.
    =========================================================================
*/
#include "sink.h"
#include "record.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

struct _pz_sink_t {
    pz_sink_config_t config;    //  configuration (strings owned below)
    char *endpoint;             //  owned copy of config.connect
    char *tags;                 //  owned copy of config.tags
    FILE *out;                  //  where records go; not ours
    zsock_t *sub;               //  the subscription
    bool wanted [3];            //  N, P, C: print records of this tag?
    uint64_t printed;           //  records printed so far
    pz_sink_stats_t stats;      //  counters
};

static const char s_tag_order [] = "NPC";   //  index into stats.by_tag

//  Fills config with the defaults.
void
pz_sink_config_init (pz_sink_config_t *config)
{
    assert (config);
    *config = (pz_sink_config_t) {
        .connect = "tcp://localhost:5556",
        .tags = "P",
        .format = PZ_SINK_TEXT,
        .hwm = 1000
    };
    pz_sockopts_init (&config->sockopts);
}

//  Returns true if tags is a non-empty string of letters from "NPC".
bool
pz_sink_tags_valid (const char *tags)
{
    return tags && *tags && strspn (tags, s_tag_order) == strlen (tags);
}

//  Parses a format name. Returns false for an unknown one.
bool
pz_sink_format_parse (const char *name, pz_sink_format_t *format)
{
    assert (name && format);
    const char *names [] = { "text", "json", "csv", "none" };
    for (int index = 0; index < 4; index++)
        if (streq (name, names [index])) {
            *format = (pz_sink_format_t) index;
            return true;
        }
    return false;
}

//  Creates a sink, connects and subscribes; NULL on a bad endpoint.
pz_sink_t *
pz_sink_new (const pz_sink_config_t *config, FILE *out)
{
    assert (config && config->connect && out);
    assert (pz_sink_tags_valid (config->tags));
    pz_sink_t *self = (pz_sink_t *) zmalloc (sizeof (pz_sink_t));
    assert (self);
    self->config = *config;
    self->endpoint = strdup (config->connect);
    self->tags = strdup (config->tags);
    self->out = out;
    pz_sockopts_t opts = config->sockopts;
    opts.heartbeat_ivl_ms = 0;          //  its queue fills: see sock.h
    opts.rcvhwm = (int) config->hwm;
    self->sub = pz_sock_open (ZMQ_SUB, "publish SUB", self->endpoint, false, &opts);
    if (!self->sub) {
        pz_sink_destroy (&self);
        return NULL;
    }
    for (const char *tag = self->tags; *tag; tag++) {
        char prefix [2] = { *tag, '\0' };
        zsock_set_subscribe (self->sub, prefix);
        self->wanted [strchr (s_tag_order, *tag) - s_tag_order] = true;
    }
    if (config->format == PZ_SINK_CSV)
        fprintf (out, "tag,value\n");
    return self;
}

//  Destroys the sink. NULL-safe.
void
pz_sink_destroy (pz_sink_t **self_p)
{
    assert (self_p);
    pz_sink_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sub);
    zstr_free (&self->tags);
    zstr_free (&self->endpoint);
    free (self);
    *self_p = NULL;
}

//  Copies the sink's counters into stats.
void
pz_sink_stats (pz_sink_t *self, pz_sink_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
}

//  Prints one record in the configured format.
static void
s_print (pz_sink_t *self, char tag, int64_t value)
{
    switch (self->config.format) {
        case PZ_SINK_TEXT:
            fprintf (self->out, "%c %" PRId64 "\n", tag, value);
            break;
        case PZ_SINK_JSON:
            fprintf (self->out, "{\"tag\":\"%c\",\"value\":%" PRId64 "}\n", tag, value);
            break;
        case PZ_SINK_CSV:
            fprintf (self->out, "%c,%" PRId64 "\n", tag, value);
            break;
        case PZ_SINK_NONE:
            break;
    }
}

//  Prints the wanted records of one message. Returns false once `count`
//  records are printed.
static bool
s_print_message (pz_sink_t *self, const uint8_t *data, size_t size)
{
    pz_error_t error = pz_record_check (data, size, "NPC");
    if (error != PZ_OK) {
        self->stats.malformed++;
        zsys_warning ("sink: dropped a message of %zu bytes: %s", size, pz_error_str (error));
        return true;
    }
    //  Counting only (--format none), and the message is of one tag, as
    //  everything the broker publishes is: count it whole.
    uint8_t differ = 0;
    for (size_t offset = PZ_RECORD_SIZE; offset < size; offset += PZ_RECORD_SIZE)
        differ |= data [offset] ^ data [0];
    if (self->config.format == PZ_SINK_NONE && differ == 0) {
        int slot = data [0] == 'N' ? 0 : data [0] == 'P' ? 1 : 2;
        if (!self->wanted [slot])
            return true;
        uint64_t records = size / PZ_RECORD_SIZE;
        uint64_t left = self->config.count > 0 ?
                        (uint64_t) self->config.count - self->printed : UINT64_MAX;
        uint64_t taken = records < left ? records : left;
        self->stats.by_tag [slot] += taken;
        self->printed += taken;
        return taken < left;
    }
    for (size_t offset = 0; offset < size; offset += PZ_RECORD_SIZE) {
        char tag = pz_record_tag (data + offset);
        int slot = tag == 'N' ? 0 : tag == 'P' ? 1 : 2;     //  checked above
        if (!self->wanted [slot])
            continue;
        s_print (self, tag, pz_record_value (data + offset));
        self->stats.by_tag [slot]++;
        if (self->config.count > 0 && ++self->printed >= (uint64_t) self->config.count)
            return false;
    }
    return true;
}

//  Prints records until done, interrupted, or the output is closed.
int
pz_sink_run (pz_sink_t *self)
{
    assert (self);
    zmq_pollitem_t items [] = { { zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0 } };
    zmq_msg_t message;
    zmq_msg_init (&message);
    bool go_on = !(self->config.count > 0 && self->printed >= (uint64_t) self->config.count);
    while (go_on && !zsys_interrupted) {
        if (zmq_poll (items, 1, 100) <= 0)
            continue;           //  timeout or EINTR: look at zsys_interrupted
        //  Drain what is queued, then flush once: per message, not per
        //  record, so a batch of 1024 costs one write.
        while (go_on && zmq_msg_recv (&message, items [0].socket, ZMQ_DONTWAIT) != -1) {
            if (zmq_msg_more (&message)) {
                self->stats.malformed++;
                zsys_warning ("sink: dropped a message of more than one frame");
                pz_sock_drain_frames (items [0].socket);
                continue;
            }
            go_on = s_print_message (self, (const uint8_t *) zmq_msg_data (&message),
                                     zmq_msg_size (&message));
            if (fflush (self->out) != 0 || ferror (self->out))
                go_on = false;  //  the reader went away: nothing more to do
        }
    }
    zmq_msg_close (&message);
    return 0;
}
