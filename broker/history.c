/*  =========================================================================
    history - the broker's fifth endpoint: old publications, for sinks that
              missed some

    Each request is answered at once from the journal's files (the page
    cache, usually): the reply holds as many whole publications as fit in
    S_REPLY_MAX bytes, and the sink asks again from where it stopped. That
    is the credit-based flow control of zguide's file transfer example: a
    sink never has more than its own requests' worth of replies queued.
    =========================================================================
*/
#include "history.h"
#include "journal.h"
#include "publication.h"
#include "request.h"

#include <assert.h>
#include <inttypes.h>

#define S_REPLY_MAX     (256 * 1024)    //  publications per reply, in bytes

typedef struct {
    pz_history_config_t config;     //  copy of the configuration
    zsock_t *router;                //  the history endpoint
    pz_journal_reader_t *reader;    //  the journal's files, or NULL
    uint8_t *reply;                 //  S_REPLY_MAX + status, reused
} s_history_t;


//  Checks a request body: H from, H until, then 1 to PZ_TAG_COUNT distinct
//  published tags (N, P, C, X, R) with value 0. Returns PZ_OK and fills the
//  outputs, or an error code.
pz_error_t
pz_history_parse (const uint8_t *data, size_t size, int64_t *from, int64_t *until,
                  char *tags, int *tag_count)
{
    assert (from && until && tags && tag_count);
    pz_error_t error = pz_record_check (data, size, "H" PZ_TAGS_PUBLISHED);
    if (error != PZ_OK)
        return error;
    size_t records = size / PZ_RECORD_SIZE;
    if (records < 3 || records > 2 + PZ_TAG_COUNT
    ||  pz_record_tag (data) != PZ_TAG_HISTORY
    ||  pz_record_tag (data + PZ_RECORD_SIZE) != PZ_TAG_HISTORY)
        return PZ_ERR_BAD_HISTORY;
    *from = pz_record_value (data);
    *until = pz_record_value (data + PZ_RECORD_SIZE);
    if (*from < 1 || (*until != 0 && *until < *from))
        return PZ_ERR_BAD_HISTORY;
    *tag_count = 0;
    for (size_t index = 2; index < records; index++) {
        const uint8_t *record = data + index * PZ_RECORD_SIZE;
        char tag = pz_record_tag (record);
        if (pz_publication_tag_index (tag) < 0 || pz_record_value (record) != 0
        ||  memchr (tags, tag, (size_t) *tag_count))
            return PZ_ERR_BAD_HISTORY;
        tags [(*tag_count)++] = tag;
    }
    return PZ_OK;
}

//  Answers a stats request (the one record H 0) with the loop's latest
//  stats snapshot, a JSON object, or E 9 if the loop stopped turning.
static void
s_answer_stats (s_history_t *self, pz_request_t *request)
{
    void *handle = zsock_resolve (self->router);
    pz_history_shared_t *shared = self->config.shared;
    if (zclock_mono () - atomic_load (&shared->tick_ms) > PZ_HISTORY_STALE_MS) {
        pz_request_reply_record (request, handle, PZ_TAG_ERROR, PZ_ERR_UNAVAILABLE);
        return;
    }
    pthread_mutex_lock (&shared->stats_lock);
    char *json = strdup (shared->stats_json);
    pthread_mutex_unlock (&shared->stats_lock);
    pz_request_reply (request, handle, json, strlen (json));
    free (json);
}

//  Answers one request: publications from the journal, then the status.
static void
s_answer (s_history_t *self, pz_request_t *request)
{
    void *handle = zsock_resolve (self->router);
    pz_history_shared_t *shared = self->config.shared;
    if (request->error == PZ_OK && pz_request_size (request) == PZ_RECORD_SIZE
    &&  pz_record_tag (pz_request_data (request)) == PZ_TAG_HISTORY
    &&  pz_record_value (pz_request_data (request)) == 0) {
        s_answer_stats (self, request);
        return;
    }
    int64_t from, until;
    char tags [PZ_TAG_COUNT];
    int tag_count = 0;
    pz_error_t error = request->error != PZ_OK ? request->error
                     : pz_history_parse (pz_request_data (request),
                                         pz_request_size (request),
                                         &from, &until, tags, &tag_count);
    //  A loop that stopped turning is a broker that no longer serves.
    if (error == PZ_OK
    &&  zclock_mono () - atomic_load (&shared->tick_ms) > PZ_HISTORY_STALE_MS)
        error = PZ_ERR_UNAVAILABLE;
    if (error != PZ_OK) {
        pz_request_reply_record (request, handle, PZ_TAG_ERROR, error);
        return;
    }
    //  Tag seqs first, the durable end second: whatever is durable by then
    //  is at least as new as the tag seqs we report, never older.
    int64_t last [PZ_TAG_COUNT];
    for (int index = 0; index < tag_count; index++)
        last [index] = atomic_load (&shared->tag_seq [pz_publication_tag_index (tags [index])]);
    int64_t durable = atomic_load (&shared->durable_seq);
    size_t used = 0;
    int64_t next, oldest;
    if (self->reader) {
        uint32_t mask = 0;
        for (int index = 0; index < tag_count; index++)
            mask |= UINT32_C (1) << (tags [index] - 'A');
        used = pz_journal_reader_read (self->reader, from, until, durable, mask,
                                       self->reply, S_REPLY_MAX, &next, &oldest);
    }
    else {
        //  Nothing is held: everything up to the durable end is gone.
        oldest = durable + 1;
        next = from > oldest ? from : oldest;
        if (until != 0 && next > until)
            next = until;
    }
    pz_record_encode (self->reply + used, PZ_TAG_ACK, next);
    used += PZ_RECORD_SIZE;
    pz_record_encode (self->reply + used, PZ_TAG_HISTORY, oldest);
    used += PZ_RECORD_SIZE;
    for (int index = 0; index < tag_count; index++) {
        pz_record_encode (self->reply + used, PZ_TAG_TAG_SEQ, last [index]);
        used += PZ_RECORD_SIZE;
    }
    pz_request_reply (request, handle, self->reply, used);
}

//  Serves requests until $TERM.
void
pz_history_actor (zsock_t *pipe, void *args)
{
    assert (args);
    s_history_t self = { .config = *(pz_history_config_t *) args };
    pz_sockopts_t opts = self.config.sockopts;
    self.router = pz_sock_open (ZMQ_ROUTER, "history ROUTER", self.config.bind, true, &opts);
    if (self.config.journal_dir && self.router) {
        self.reader = pz_journal_reader_new (self.config.journal_dir);
        assert (self.reader);
    }
    self.reply = (uint8_t *) malloc (S_REPLY_MAX + 8 * PZ_RECORD_SIZE);
    assert (self.reply);
    zsock_signal (pipe, self.router ? 0 : 1);
    char *endpoint = self.router ? zsock_last_endpoint (self.router) : NULL;

    zpoller_t *poller = zpoller_new (pipe, self.router, NULL);
    assert (poller);
    //  SIGINT starts the broker's drain, during which sinks may still need
    //  history: only $TERM ends this thread.
    zpoller_set_nonstop (poller, true);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool stop = !command || streq (command, "$TERM");
            if (command && streq (command, "ENDPOINT"))
                zstr_send (pipe, endpoint ? endpoint : "");
            zstr_free (&command);
            if (stop)
                break;
        }
        else
        if (which && which == self.router) {
            //  A burst, then look at the pipe again.
            for (int burst = 0; burst < 64; burst++) {
                pz_request_t request;
                int got = pz_request_recv (&request, zsock_resolve (self.router));
                if (got == 0)
                    break;
                if (got == 1)
                    s_answer (&self, &request);
            }
        }
    }
    zpoller_destroy (&poller);
    zstr_free (&endpoint);
    free (self.reply);
    pz_journal_reader_destroy (&self.reader);
    zsock_destroy (&self.router);
}
