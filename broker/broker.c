/*
 * broker.c - the event loop and the request handlers.
 *
 * A turn: zmq_poll, drain up to batch_max requests (frames kept as zmq_msg_t
 * so payloads go from the socket into LMDB with one copy), handle them all in
 * one write transaction, commit (LMDB syncs), then send every reply. If LMDB
 * runs out of map space mid-batch the transaction is unusable, so the batch
 * is replayed from the start with the request that hit the limit, and the
 * writes after it, refused with ESTORAGE_FULL; reads are still answered.
 */
#include "broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "consumers.h"
#include "metrics.h"
#include "store.h"

#define S_MAX_FRAMES    (FY_BATCH_MAX + 2) /* identity + envelope + payloads */
#define S_BATCH_BYTES   (64u << 20)        /* stop draining past this many bytes... */
#define S_FRAME_COST    64                 /* ...counting each frame as at least this */
#define S_SWEEP_BUDGET  1024               /* dedupe/delete work items per turn */
#define S_IDLE_MS       100                /* sweeps and ack-wait timers, when idle */
#define S_METRICS_MS    500                /* snapshots for the metrics endpoint */
#define S_WAITERS_MAX   4096               /* fetches waiting for messages at once */
#define S_WAITERS_TURN  256                /* waiting fetches tried per loop turn */
#define S_SLOW_BATCH_MS 50                 /* a turn slower than this is logged */

typedef struct s_req {
    size_t first;   /* index of the identity frame in frames[] */
    size_t nframes; /* frames kept (identity, envelope, payloads) */
    bool overflow;  /* more frames arrived than S_MAX_FRAMES: refused */
} s_req_t;

typedef struct s_reply {
    size_t req;       /* index into reqs[] (for the identity) */
    size_t off, len;  /* envelope bytes in the encoder */
    size_t out_first; /* payload frames in outs[] */
    size_t out_count;
    fy_status_t code; /* for counters and logs */
    size_t stored;    /* messages stored by this request */
    size_t dups;      /* duplicates answered */
    bool confirm;     /* a single publish confirm, encoded at send time (cid, seq, dup, kver) */
    uint64_t cid, seq, kver;
    const uint8_t *peer; /* set: the reply goes there instead of to request `req`'s peer */
    size_t peer_len;
} s_reply_t;

/* A fetch that found nothing and waits (until `deadline_ms`, monotonic) for
 * messages. Kept in memory only: a client whose broker restarted asks again. */
typedef struct s_waiter {
    uint8_t peer[256];
    size_t peer_len;
    uint64_t cid;
    uint8_t topic[FY_NAME_MAX], sub[FY_NAME_MAX];
    size_t topic_len, sub_len;
    uint32_t max;
    long long deadline_ms;
    bool served; /* answered in the batch being applied */
} s_waiter_t;

/* A reply's place when replies are grouped by peer for sending. */
typedef struct s_order {
    const uint8_t *peer;
    size_t peer_len;
    size_t index;
} s_order_t;

struct fy_broker {
    fy_config_t cfg;
    fy_metrics_t *metrics; /* the HTTP endpoint, or NULL */
    long long metrics_at;  /* when it was last given a snapshot */
    const fy_log_t *log;
    void *ctx, *sock;
    char endpoint[256];
    fy_store_t *store;
    fy_decoder_t *dec;
    fy_encoder_t *enc;
    fy_encoder_t *items;       /* message entries of a get/fetch reply before its count is known */
    uint64_t last_item_seq;    /* sequence of the last entry encoded into items */
    fy_consumer_t *delivering; /* the consumer s_item records sent sequences for, or NULL */
    zmq_msg_t *frames;
    size_t nframes, frames_cap;
    s_req_t *reqs;
    size_t nreqs;
    s_reply_t *replies;
    size_t nreplies;
    s_order_t *order; /* batch_max + S_WAITERS_TURN */
    /* Waiting fetches: `waiters` is what the last committed batch left; a
     * batch adds to `new_waiters` and marks served ones, and only after its
     * commit are those changes made (a replayed batch starts again clean). */
    s_waiter_t *waiters, *new_waiters;
    size_t nwaiters, nnew_waiters, waiter_rr;
    /* Push consumers, journaled the same way: a batch records credit added,
     * messages sent and removals per consumer, and new consumers apart; the
     * commit applies them, a replay forgets them. */
    fy_consumers_t cons;
    bool deliver_soon; /* consumers or credit were added: run a turn at once */
    bool full_logged;  /* "storage full" already logged for this batch */
    zmq_msg_t *outs;
    size_t nouts, outs_cap;
    fy_bytes_t *payloads; /* FY_BATCH_MAX */
    uint64_t *seqs;       /* FY_BATCH_MAX */
    bool *dups;           /* FY_BATCH_MAX */
    uint64_t *kvers;      /* FY_BATCH_MAX */
    size_t nitems;        /* entries encoded into items */
    bool sweep_more;
    long long next_sweep_ms;
    long long started_ms;
    uint64_t now_wall_ms; /* the batch's time, as the store has it */
    fy_stats_t stats;  /* counters since start */
};

fy_status_t
fy_broker_new(const fy_config_t *cfg, const fy_log_t *log, fy_broker_t **out, fy_err_t *err)
{
    *out = NULL;
    fy_broker_t *self = calloc(1, sizeof *self);
    if (!self)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    self->cfg = *cfg;
    self->log = log;
    self->started_ms = fy_mono_ms();
    fy_status_t st;
    self->dec = fy_decoder_new();
    self->enc = fy_encoder_new();
    self->items = fy_encoder_new();
    self->reqs = calloc(cfg->batch_max, sizeof *self->reqs);
    /* One reply per request, per waiter served and per consumer delivered to. */
    size_t max_replies = cfg->batch_max + S_WAITERS_TURN + FY_CONSUMERS_MAX;
    self->replies = calloc(max_replies, sizeof *self->replies);
    self->order = calloc(max_replies, sizeof *self->order);
    self->waiters = calloc(S_WAITERS_MAX, sizeof *self->waiters);
    self->new_waiters = calloc(S_WAITERS_MAX, sizeof *self->new_waiters);
    int cons_rc = fy_consumers_init(&self->cons);
    self->payloads = calloc(FY_BATCH_MAX, sizeof *self->payloads);
    self->seqs = calloc(FY_BATCH_MAX, sizeof *self->seqs);
    self->dups = calloc(FY_BATCH_MAX, sizeof *self->dups);
    self->kvers = calloc(FY_BATCH_MAX, sizeof *self->kvers);
    if (!self->dec || !self->enc || !self->items || !self->reqs || !self->replies || !self->order ||
        !self->waiters || !self->new_waiters || cons_rc != 0 || !self->payloads || !self->seqs ||
        !self->dups || !self->kvers) {
        st = fy_err_set(err, FERRY_ENOMEM, "out of memory");
        goto fail;
    }
    fy_store_opts_t so = {.dir = cfg->data_dir,
                          .map_size = cfg->map_size,
                          .dedupe_window_ms = cfg->dedupe_window_ms,
                          .log = log};
    if ((st = fy_store_open(&so, &self->store, err)))
        goto fail;

    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    if (!self->sock) {
        st = fy_err_set(err, FERRY_ENOMEM, "cannot create socket: %s", zmq_strerror(errno));
        goto fail;
    }
    /* Queued messages per peer; above the largest client window, and the
     * point where libzmq stops reading a peer that floods us. */
    int one = 1, hwm = 10000, linger = 2000;
    /* A frame far beyond the message limit is dropped by libzmq with the
     * connection; one slightly too big still reaches us and gets ETOO_LARGE. */
    int64_t maxmsg = (int64_t)cfg->max_msg_bytes + FY_ENVELOPE_MAX;
    zmq_setsockopt(self->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(self->sock, cfg->bind) != 0) {
        st = fy_err_set(err, FERRY_ECONNECT, "cannot bind %s: %s", cfg->bind, zmq_strerror(errno));
        goto fail;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", cfg->bind);
    if (cfg->metrics[0] && (st = fy_metrics_start(cfg->metrics, &self->metrics, err)))
        goto fail;
    *out = self;
    return FERRY_OK;
fail:
    fy_broker_destroy(&self);
    return st;
}

const char *
fy_broker_endpoint(const fy_broker_t *self)
{
    return self->endpoint;
}

/* The counters since start and the stored totals. */
static fy_status_t
s_stats(fy_broker_t *self, fy_stats_t *s)
{
    *s = self->stats;
    s->uptime_ms = (uint64_t)(fy_mono_ms() - self->started_ms);
    return fy_store_totals(self->store, s);
}

static void
s_close_frames(fy_broker_t *self)
{
    for (size_t i = 0; i < self->nframes; i++)
        zmq_msg_close(&self->frames[i]);
    self->nframes = 0;
    for (size_t i = 0; i < self->nouts; i++)
        zmq_msg_close(&self->outs[i]);
    self->nouts = 0;
}

void
fy_broker_destroy(fy_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fy_broker_t *self = *self_p;
    fy_metrics_stop(&self->metrics);
    s_close_frames(self);
    if (self->sock)
        zmq_close(self->sock);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    fy_store_destroy(&self->store);
    fy_decoder_destroy(&self->dec);
    fy_encoder_destroy(&self->enc);
    fy_encoder_destroy(&self->items);
    free(self->frames);
    free(self->outs);
    free(self->reqs);
    free(self->replies);
    free(self->order);
    free(self->waiters);
    free(self->new_waiters);
    fy_consumers_free(&self->cons);
    free(self->payloads);
    free(self->seqs);
    free(self->dups);
    free(self->kvers);
    free(self);
    *self_p = NULL;
}

static bool
s_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 1024;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

/* Receives one whole multipart request without blocking. Returns 1 if one
 * was received, 0 if none waits, -1 on a socket error. Frames past
 * S_MAX_FRAMES are received and dropped; the request is marked overflow. */
static int
s_recv_request(fy_broker_t *self, size_t *bytes)
{
    if (!s_grow((void **)&self->frames, &self->frames_cap, self->nframes + 1, sizeof(zmq_msg_t)))
        return -1;
    s_req_t *req = &self->reqs[self->nreqs];
    req->first = self->nframes;
    req->nframes = 0;
    req->overflow = false;
    int flags = ZMQ_DONTWAIT;
    for (;;) {
        if (!s_grow((void **)&self->frames, &self->frames_cap, self->nframes + 1,
                    sizeof(zmq_msg_t)))
            return -1;
        zmq_msg_t *m = &self->frames[self->nframes];
        zmq_msg_init(m);
        if (zmq_msg_recv(m, self->sock, flags) < 0) {
            int e = errno;
            zmq_msg_close(m);
            if (req->nframes == 0 && (e == EAGAIN || e == EINTR))
                return 0;
            if (e == EINTR)
                continue; /* mid-message: the rest is already queued */
            return -1;
        }
        flags = 0; /* the remaining parts of a message are already there */
        bool more = zmq_msg_more(m);
        *bytes += zmq_msg_size(m) + S_FRAME_COST;
        if (req->nframes < S_MAX_FRAMES) {
            self->nframes++;
            req->nframes++;
        } else {
            req->overflow = true;
            zmq_msg_close(m);
        }
        if (!more)
            break;
    }
    self->nreqs++;
    return 1;
}

static fy_status_t
s_reply_begin(fy_broker_t *self, size_t req_index, s_reply_t **out)
{
    s_reply_t *r = &self->replies[self->nreplies++];
    memset(r, 0, sizeof *r);
    r->req = req_index;
    r->off = fy_encoder_len(self->enc);
    r->out_first = self->nouts;
    *out = r;
    return FERRY_OK;
}

static void
s_reply_end(fy_broker_t *self, s_reply_t *r)
{
    r->len = fy_encoder_len(self->enc) - r->off;
    r->out_count = self->nouts - r->out_first;
}

/* Ends reply @p r, the last one begun, if encoding it went well (@p st);
 * otherwise takes it back so that no half-encoded reply is sent. */
static fy_status_t
s_reply_finish(fy_broker_t *self, s_reply_t *r, fy_status_t st)
{
    if (st == FERRY_OK)
        s_reply_end(self, r);
    else
        self->nreplies--;
    return st;
}

static void
s_peer_hex(const zmq_msg_t *ident, char *out, size_t cap)
{
    const uint8_t *p = zmq_msg_data((zmq_msg_t *)ident);
    size_t n = zmq_msg_size((zmq_msg_t *)ident);
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
    out[o] = '\0';
}

static void
s_error(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_status_t code, const char *msg)
{
    s_reply_t *r;
    s_reply_begin(self, ri, &r);
    /* If even the error does not fit in memory, the reply is left out and the
     * client times out; the broker goes on. */
    fy_encode_error(self->enc, req->cid, code, msg);
    r->code = code;
    s_reply_end(self, r);
}

/* Replies with an error for bad input, logged once as a warning with the peer. */
static void
s_refuse(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_status_t code, const char *msg)
{
    if (fy_status_bad_input(code) && fy_log_enabled(self->log, FY_LOG_WARN)) {
        char peer[64];
        s_peer_hex(&self->frames[self->reqs[ri].first], peer, sizeof peer);
        fy_log(self->log, FY_LOG_WARN, "broker", "bad request",
               "code=%s op=%s cid=%llu peer=%s detail=\"%s\"", fy_status_name(code),
               fy_op_name(req->op), (unsigned long long)req->cid, peer, msg);
    }
    s_error(self, ri, req, code, msg);
}

/* An expectation failed: ECONFLICT with what the writer should know now. Not
 * bad input (logged at debug only): it is how optimistic concurrency works. */
static void
s_conflict(fy_broker_t *self, size_t ri, const fy_request_t *req, const fy_conflict_t *cf)
{
    char msg[160];
    if (cf->on_key)
        snprintf(msg, sizeof msg, "message %zu expected key version %llu; the key is at %llu",
                 cf->index, (unsigned long long)cf->expected, (unsigned long long)cf->kver);
    else
        snprintf(msg, sizeof msg, "message %zu expected last sequence %llu; the topic is at %llu",
                 cf->index, (unsigned long long)cf->expected, (unsigned long long)cf->last);
    s_reply_t *r;
    s_reply_begin(self, ri, &r);
    r->code = FERRY_ECONFLICT;
    if (s_reply_finish(self, r, fy_encode_conflict(self->enc, req->cid, msg, cf->last, cf->kver)))
        s_error(self, ri, req, FERRY_ECONFLICT, msg);
    fy_log(self->log, FY_LOG_DEBUG, "broker", "conflict", "cid=%llu detail=\"%s\"",
           (unsigned long long)req->cid, msg);
}

/* Payload frames of request ri as byte strings, and the total message sizes. */
static fy_status_t
s_collect_payloads(fy_broker_t *self, const s_req_t *rq, const fy_request_t *req, fy_err_t *err)
{
    for (size_t i = 0; i < req->msg_count; i++) {
        const fy_pubmeta_t *m = &req->msgs[i];
        if (m->has_data) {
            self->payloads[i] = m->data; /* points into the envelope frame */
        } else {
            zmq_msg_t *f = &self->frames[rq->first + 2 + i];
            self->payloads[i].ptr = zmq_msg_data(f);
            self->payloads[i].len = zmq_msg_size(f);
        }
        uint64_t total = self->payloads[i].len + m->key.len + m->id.len + m->hdrs.len;
        if (total > self->cfg.max_msg_bytes)
            return fy_err_set(err, FERRY_ETOO_LARGE, "message %zu is %llu bytes; the limit is %llu",
                              i, (unsigned long long)total,
                              (unsigned long long)self->cfg.max_msg_bytes);
    }
    return FERRY_OK;
}

/* Encodes one message entry into self->items and copies its payload into
 * an outgoing frame. Bytes in the map are valid only inside the transaction:
 * they are copied once, never referenced. */
static fy_status_t
s_item(fy_broker_t *self, const fy_stored_t *m, uint32_t dc)
{
    if (!s_grow((void **)&self->outs, &self->outs_cap, self->nouts + 1, sizeof(zmq_msg_t)))
        return FERRY_ENOMEM;
    /* Small payloads ride in the entry: fewer frames for both I/O threads. */
    bool inl = m->payload.len <= FY_INLINE_MAX;
    fy_entry_t e = {.seq = m->seq,
                    .ts_ms = m->ts_ms,
                    .kver = m->kver,
                    .dc = dc,
                    .key = m->key,
                    .id = m->id,
                    .hdrs = m->hdrs,
                    .inline_data = inl ? &m->payload : NULL};
    fy_status_t st = fy_encode_entry(self->items, &e);
    if (st)
        return st;
    self->nitems++;
    if (!inl) {
        zmq_msg_t *f = &self->outs[self->nouts];
        if (zmq_msg_init_size(f, m->payload.len) != 0)
            return FERRY_ENOMEM;
        if (m->payload.len)
            memcpy(zmq_msg_data(f), m->payload.ptr, m->payload.len);
        self->nouts++;
    }
    self->last_item_seq = m->seq;
    if (self->delivering)
        fy_consumer_sent(self->delivering, m->seq);
    return FERRY_OK;
}

static fy_status_t
s_get_item(void *user, const fy_stored_t *m)
{
    return s_item(user, m, 0);
}

static fy_status_t
s_fetch_item(void *user, const fy_stored_t *m, uint32_t dc)
{
    return s_item(user, m, dc);
}

/* A live (ephemeral) consumer gets what is released: a delayed message whose
 * time has not come is passed over (it is for subscriptions). */
static fy_status_t
s_live_item(void *user, const fy_stored_t *m)
{
    fy_broker_t *self = user;
    if (m->not_before_ms > self->now_wall_ms) {
        self->last_item_seq = m->seq;
        return FERRY_OK;
    }
    return s_item(user, m, 0);
}

/* Reads (get) or fetches into a reply for `cid`. With `skip_empty`, nothing
 * is queued when no message came (*count == 0). */
static fy_status_t
s_messages_reply(fy_broker_t *self, size_t ri, const uint8_t *peer, size_t peer_len, fy_op_t op,
                 uint64_t cid, fy_bytes_t topic, fy_bytes_t sub, uint64_t seq, uint32_t max,
                 bool skip_empty, size_t *count)
{
    size_t outs_mark = self->nouts;
    *count = 0;
    fy_encoder_reset(self->items);
    fy_status_t st;
    uint64_t next = 0;
    if (op == FY_OP_GET) {
        st = fy_store_read(self->store, topic, seq ? seq : 1, max, s_get_item, self, count);
    } else if (op == FY_OP_READ) {
        st = fy_store_read_key(self->store, topic, sub, seq, max, s_get_item, self, count, &next);
    } else {
        fy_sub_info_t info;
        bool created;
        st = fy_store_sub_open(self->store, topic, sub, NULL, &info, &created);
        if (st == FERRY_OK)
            st = fy_store_fetch(self->store, info.id, max, s_fetch_item, self, count);
    }
    if (st == FERRY_OK && skip_empty && *count == 0)
        return FERRY_OK;
    s_reply_t *r = NULL;
    if (st == FERRY_OK) {
        s_reply_begin(self, ri, &r);
        r->out_first = outs_mark;
        r->peer = peer;
        r->peer_len = peer_len;
        st = op == FY_OP_READ ? fy_encode_read_begin(self->enc, cid, *count, next)
                              : fy_encode_get_begin(self->enc, cid, *count);
        if (st == FERRY_OK)
            st = fy_encoder_append(self->enc, self->items);
    }
    if (st) {
        /* Drop the partial reply (its bytes stay unreferenced in the encoder);
         * the caller sends an error instead. */
        if (r)
            self->nreplies--;
        while (self->nouts > outs_mark)
            zmq_msg_close(&self->outs[--self->nouts]);
        return st;
    }
    s_reply_end(self, r);
    return FERRY_OK;
}

/* get, and fetch: a fetch with a wait that finds nothing becomes a waiter. */
static fy_status_t
s_handle_messages(fy_broker_t *self, size_t ri, const fy_request_t *req)
{
    bool may_wait = req->op == FY_OP_FETCH && req->wait_ms > 0 &&
                    self->nwaiters + self->nnew_waiters < S_WAITERS_MAX;
    size_t count;
    /* read: the key travels where fetch has its subscription. */
    fy_bytes_t sub = req->op == FY_OP_READ ? req->key : req->sub;
    fy_status_t st = s_messages_reply(self, ri, NULL, 0, req->op, req->cid, req->name, sub,
                                      req->seq, req->limit, may_wait, &count);
    if (st || !may_wait || count > 0)
        return st;
    zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
    s_waiter_t *w = &self->new_waiters[self->nnew_waiters++];
    memset(w, 0, sizeof *w);
    w->peer_len = zmq_msg_size(ident) < sizeof w->peer ? zmq_msg_size(ident) : sizeof w->peer;
    memcpy(w->peer, zmq_msg_data(ident), w->peer_len);
    w->cid = req->cid;
    memcpy(w->topic, req->name.ptr, req->name.len);
    w->topic_len = req->name.len;
    if (req->sub.len)
        memcpy(w->sub, req->sub.ptr, req->sub.len);
    w->sub_len = req->sub.len;
    w->max = req->limit;
    w->deadline_ms = fy_mono_ms() + (long long)req->wait_ms;
    return FERRY_OK;
}

/* Tries waiting fetches (a bounded number per turn, round robin): those that
 * now find messages, or whose wait is over, get their reply in this batch. */
static void
s_serve_waiters(fy_broker_t *self)
{
    long long now = fy_mono_ms();
    size_t n = self->nwaiters < S_WAITERS_TURN ? self->nwaiters : S_WAITERS_TURN;
    for (size_t k = 0; k < n && !fy_store_spoiled(self->store); k++) {
        s_waiter_t *w = &self->waiters[(self->waiter_rr + k) % self->nwaiters];
        fy_bytes_t topic = {w->topic, w->topic_len}, sub = {w->sub, w->sub_len};
        bool expired = now >= w->deadline_ms;
        size_t count;
        fy_status_t st = s_messages_reply(self, SIZE_MAX, w->peer, w->peer_len, FY_OP_FETCH, w->cid,
                                          topic, sub, 0, w->max, !expired, &count);
        if (st && !fy_store_spoiled(self->store)) {
            /* The subscription went away meanwhile: say so. */
            s_reply_t *r;
            s_reply_begin(self, SIZE_MAX, &r);
            r->peer = w->peer;
            r->peer_len = w->peer_len;
            r->code = st;
            fy_encode_error(self->enc, w->cid, st, NULL);
            s_reply_end(self, r);
        }
        w->served = st || expired || count > 0;
    }
}

/* After a commit: drop the waiters served, keep the rest, add the new ones. */
static void
s_commit_waiters(fy_broker_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nwaiters; i++)
        if (!self->waiters[i].served)
            self->waiters[kept++] = self->waiters[i];
    self->nwaiters = kept;
    memcpy(self->waiters + kept, self->new_waiters, self->nnew_waiters * sizeof *self->waiters);
    self->nwaiters += self->nnew_waiters;
    self->nnew_waiters = 0;
    self->waiter_rr = self->nwaiters ? (self->waiter_rr + S_WAITERS_TURN) % self->nwaiters : 0;
}

/* A consumer goes away: what it was sent and did not ack is due again now
 * (acked ones are left alone by the nack), in this batch's transaction. */
static void
s_consumer_release(fy_broker_t *self, fy_consumer_t *c)
{
    c->removed = true;
    if (c->ephemeral)
        return;
    for (size_t k = 0; k < c->sent_count && !fy_store_spoiled(self->store); k++) {
        fy_status_t st = fy_store_nack(self->store, c->sub_id, fy_consumer_sent_at(c, k), 0);
        if (st && st != FERRY_ESEQ && st != FERRY_ENOTFOUND)
            break; /* storage trouble: the ack wait brings them back instead */
    }
}

/* subscribe, credit, unsubscribe. */
static fy_status_t
s_handle_consumer(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    s_reply_t *r;
    fy_status_t st = FERRY_OK;
    if (req->op == FY_OP_SUBSCRIBE) {
        fy_sub_info_t info = {0};
        fy_topic_info_t ti;
        bool created;
        /* No subscription name on a topic: an ephemeral consumer of what is
         * published from now on. A queue's "" is its own subscription. */
        if ((st = fy_store_info(self->store, req->name, &ti)))
            return st;
        bool ephemeral = req->sub.len == 0 && ti.kind == FY_KIND_TOPIC;
        if (!ephemeral &&
            (st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created)))
            return st;
        fy_consumer_t *c = fy_consumers_add(&self->cons);
        if (!c)
            return fy_err_set(err, FERRY_ETOO_MANY, "at most %d consumers", FY_CONSUMERS_MAX);
        zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
        c->sub_id = info.id;
        c->peer_len = zmq_msg_size(ident) < sizeof c->peer ? zmq_msg_size(ident) : sizeof c->peer;
        memcpy(c->peer, zmq_msg_data(ident), c->peer_len);
        memcpy(c->topic, req->name.ptr, req->name.len);
        c->topic_len = req->name.len;
        if (req->sub.len)
            memcpy(c->sub, req->sub.ptr, req->sub.len);
        c->sub_len = req->sub.len;
        c->credit = req->credit;
        c->timeout_ms = fy_consumer_timeout_ms(req->heartbeat_ms);
        c->last_seen_ms = fy_mono_ms();
        c->ephemeral = ephemeral;
        c->next_seq = c->next_batch = ti.last_seq + 1;
        s_reply_begin(self, ri, &r);
        st = fy_encode_subscribed(self->enc, req->cid, c->id, ephemeral);
    } else {
        fy_consumer_t *c = fy_consumers_find(&self->cons, req->consumer);
        if (!c)
            return fy_err_set(err, FERRY_ENOTFOUND, "no such consumer");
        if (req->op == FY_OP_CREDIT) {
            /* The total is capped: a client cannot make the broker owe it more. */
            uint64_t now_credit = (uint64_t)c->credit + c->added - c->used;
            uint64_t room = now_credit < FY_CREDIT_MAX ? FY_CREDIT_MAX - now_credit : 0;
            c->added += (uint32_t)(req->credit < room ? req->credit : room);
        } else {
            s_consumer_release(self, c);
        }
        if (req->noreply)
            return FERRY_OK;
        s_reply_begin(self, ri, &r);
        st = fy_encode_ok(self->enc, req->cid);
    }
    return s_reply_finish(self, r, st);
}

/* Sends each consumer with credit what its subscription has (due redeliveries
 * first), one delivery per consumer per batch; consumers whose peer went
 * silent, or whose subscription is gone, are removed. Starts at a rotating
 * consumer so that competing consumers take turns. */
static void
s_deliver(fy_broker_t *self)
{
    long long now = fy_mono_ms();
    size_t n = self->cons.nlive;
    for (size_t k = 0; k < n && !fy_store_spoiled(self->store); k++) {
        fy_consumer_t *c = &self->cons.live[(self->cons.rr + k) % n];
        if (c->removed)
            continue;
        if (now - c->last_seen_ms > c->timeout_ms) {
            s_consumer_release(self, c);
            fy_log(self->log, FY_LOG_INFO, "broker", "consumer expired", "consumer=%llu",
                   (unsigned long long)c->id);
            continue;
        }
        uint64_t avail = (uint64_t)c->credit + c->added - c->used;
        if (avail == 0)
            continue;
        size_t outs_mark = self->nouts, count = 0;
        fy_encoder_reset(self->items);
        uint32_t max = avail < FY_BATCH_MAX ? (uint32_t)avail : FY_BATCH_MAX;
        fy_status_t st;
        if (c->ephemeral) {
            /* Reads only: the position lives in memory; nothing to ack. */
            fy_bytes_t topic = {c->topic, c->topic_len};
            self->nitems = 0;
            self->last_item_seq = 0;
            st = fy_store_read(self->store, topic, c->next_batch, max, s_live_item, self, &count);
            if (st == FERRY_OK && self->last_item_seq)
                c->next_batch = self->last_item_seq + 1;
            count = self->nitems;
        } else {
            self->delivering = c;
            st = fy_store_fetch(self->store, c->sub_id, max, s_fetch_item, self, &count);
            self->delivering = NULL;
        }
        if (st == FERRY_ENOTFOUND) {
            c->removed = true; /* its topic or subscription was deleted */
            continue;
        }
        if (st || count == 0) {
            while (self->nouts > outs_mark)
                zmq_msg_close(&self->outs[--self->nouts]);
            continue;
        }
        s_reply_t *r;
        s_reply_begin(self, SIZE_MAX, &r);
        r->out_first = outs_mark;
        r->peer = c->peer;
        r->peer_len = c->peer_len;
        if (fy_encode_delivery_begin(self->enc, c->id, count) != FERRY_OK ||
            fy_encoder_append(self->enc, self->items) != FERRY_OK) {
            /* Out of memory: the messages stay delivered-unacked and come
             * back after their ack wait. */
            self->nreplies--;
            while (self->nouts > outs_mark)
                zmq_msg_close(&self->outs[--self->nouts]);
            continue;
        }
        s_reply_end(self, r);
        c->used += (uint32_t)count;
    }
}

static fy_status_t
s_handle_sub(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    fy_sub_opts_t o = {.start = req->start,
                       .start_seq = req->seq,
                       .ack_wait_ms = req->ack_wait_ms,
                       .max_deliver = req->max_deliver,
                       .filter = req->filter};
    fy_sub_info_t info;
    bool created;
    /* sub_info finds only; sub_declare creates when missing. */
    fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub,
                                       req->op == FY_OP_SUB_INFO ? NULL : &o, &info, &created);
    if (st == FERRY_EFIELD)
        return fy_err_set(err, st,
                          "a queue has one subscription, named \"\"; a topic's "
                          "subscriptions need a name");
    if (st)
        return st;
    if (created)
        fy_log(self->log, FY_LOG_INFO, "broker", "subscription declared", "topic=%.*s sub=%.*s",
               (int)req->name.len, (const char *)req->name.ptr, (int)req->sub.len,
               (const char *)req->sub.ptr);
    s_reply_t *r;
    s_reply_begin(self, ri, &r);
    st = fy_encode_sub_reply(self->enc, req->cid, info.cursor, info.ack_floor, info.ack_wait_ms,
                             info.max_deliver, info.last_seq, created);
    return s_reply_finish(self, r, st);
}

/* ack, nack, term, progress: applied in this batch's transaction, so an "ok"
 * means durable. */
static fy_status_t
s_handle_ack(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    fy_sub_info_t info;
    bool created;
    fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created);
    for (size_t i = 0; st == FERRY_OK && i < req->seq_count; i++) {
        uint64_t seq = req->seqs[i];
        switch (req->op) {
        case FY_OP_ACK:
            st = fy_store_ack(self->store, info.id, seq);
            break;
        case FY_OP_NACK:
            st = fy_store_nack(self->store, info.id, seq, req->delay_ms);
            break;
        case FY_OP_TERM:
            st = fy_store_term(self->store, info.id, seq, req->error);
            break;
        default:
            st = fy_store_progress(self->store, info.id, seq);
            break;
        }
        if (st == FERRY_ESEQ)
            fy_err_set(err, st, "sequence %llu was never delivered to this subscription",
                       (unsigned long long)req->seqs[i]);
    }
    if (st || req->noreply)
        return st;
    s_reply_t *r;
    s_reply_begin(self, ri, &r);
    st = fy_encode_ok(self->enc, req->cid);
    return s_reply_finish(self, r, st);
}

/* Handles one request inside the batch transaction. `refuse_writes`: the map
 * is full (replay after MDB_MAP_FULL), so writes are refused. */
static void
s_handle(fy_broker_t *self, size_t ri, bool refuse_writes)
{
    const s_req_t *rq = &self->reqs[ri];
    fy_request_t req;
    fy_err_t err = {0};
    fy_status_t st;
    if (rq->overflow) {
        memset(&req, 0, sizeof req);
        st = fy_err_set(&err, FERRY_EFRAMES, "more than %d frames in one request", S_MAX_FRAMES);
    } else if (rq->nframes < 2) {
        memset(&req, 0, sizeof req);
        st = fy_err_set(&err, FERRY_EFRAMES, "a request needs an envelope frame");
    } else {
        zmq_msg_t *env = &self->frames[rq->first + 1];
        st = fy_request_decode(self->dec, zmq_msg_data(env), zmq_msg_size(env), rq->nframes - 2,
                               &req, &err);
    }
    if (st) {
        s_refuse(self, ri, &req, st, err.msg);
        return;
    }
    if (self->cons.nlive) {
        zmq_msg_t *ident = &self->frames[rq->first];
        fy_consumers_touch(&self->cons, zmq_msg_data(ident), zmq_msg_size(ident), fy_mono_ms());
    }
    if (refuse_writes && fy_op_is(req.op, FY_OPF_WRITE)) {
        s_error(self, ri, &req, FERRY_ESTORAGE_FULL,
                "storage is full; reads go on, publishes resume when space is freed");
        return;
    }
    s_reply_t *r = NULL;
    switch (req.op) {
    case FY_OP_HELLO:
        s_reply_begin(self, ri, &r);
        st = fy_encode_hello_ok(self->enc, req.cid, "ferryd " FY_VERSION_STRING,
                                self->cfg.max_msg_bytes);
        break;
    case FY_OP_PING:
        s_reply_begin(self, ri, &r);
        st = fy_encode_ok(self->enc, req.cid);
        break;
    case FY_OP_DECLARE: {
        fy_topic_info_t info;
        bool created = false;
        st = fy_store_declare(self->store, req.name, req.kind, &req.topic_cfg, &info, &created);
        if (st == FERRY_EEXISTS) {
            s_error(self, ri, &req, st, "a destination of that name exists with another kind");
            return;
        }
        if (st)
            break;
        if (created)
            fy_log(self->log, FY_LOG_INFO, "broker", "declared", "name=%s kind=%s", info.name,
                   info.kind == FY_KIND_QUEUE ? "queue" : "topic");
        s_reply_begin(self, ri, &r);
        st = fy_encode_info_reply(self->enc, req.cid, &info, created);
        break;
    }
    case FY_OP_DELETE:
        st = fy_store_delete(self->store, req.name);
        if (st)
            break;
        fy_log(self->log, FY_LOG_INFO, "broker", "deleted", "name=%.*s", (int)req.name.len,
               (const char *)req.name.ptr);
        s_reply_begin(self, ri, &r);
        st = fy_encode_ok(self->enc, req.cid);
        break;
    case FY_OP_INFO: {
        fy_topic_info_t info;
        st = fy_store_info(self->store, req.name, &info);
        if (st)
            break;
        s_reply_begin(self, ri, &r);
        st = fy_encode_info_reply(self->enc, req.cid, &info, -1);
        break;
    }
    case FY_OP_STATS: {
        fy_stats_t s;
        if ((st = s_stats(self, &s)))
            break;
        s_reply_begin(self, ri, &r);
        st = fy_encode_stats_reply(self->enc, req.cid, &s);
        break;
    }
    case FY_OP_PUBLISH:
    case FY_OP_PUBLISH_BATCH:
        st = s_collect_payloads(self, rq, &req, &err);
        if (st) {
            s_refuse(self, ri, &req, st, err.msg);
            return;
        }
        fy_conflict_t cf;
        st = fy_store_append(self->store, req.name, req.msgs, self->payloads, req.msg_count,
                             self->seqs, self->dups, self->kvers, &cf);
        if (st == FERRY_ECONFLICT) {
            s_conflict(self, ri, &req, &cf);
            return;
        }
        if (st)
            break;
        s_reply_begin(self, ri, &r);
        for (size_t i = 0; i < req.msg_count; i++) {
            if (self->dups[i])
                r->dups++;
            else
                r->stored++;
        }
        if (req.op == FY_OP_PUBLISH) {
            /* Encoded when sending, merged with its neighbours (s_send_replies). */
            r->confirm = true;
            r->cid = req.cid;
            r->seq = self->seqs[0];
            r->kver = self->kvers[0];
            st = FERRY_OK;
        } else {
            st = fy_encode_confirm_batch(self->enc, req.cid, self->seqs, self->dups, self->kvers,
                                         req.msg_count);
        }
        break;
    case FY_OP_GET:
    case FY_OP_FETCH:
    case FY_OP_READ:
        st = s_handle_messages(self, ri, &req);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_SUB_DECLARE:
    case FY_OP_SUB_INFO:
        st = s_handle_sub(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_SUBSCRIBE:
    case FY_OP_CREDIT:
    case FY_OP_UNSUBSCRIBE:
        st = s_handle_consumer(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_ACK:
    case FY_OP_NACK:
    case FY_OP_TERM:
    case FY_OP_PROGRESS:
        st = s_handle_ack(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_COUNT_:
        st = FERRY_EINTERNAL;
        break;
    }
    if (r && s_reply_finish(self, r, st) == FERRY_OK)
        return;
    if (fy_store_spoiled(self->store))
        return; /* the caller replays the batch */
    if (st == FERRY_ESTORAGE_FULL && !self->full_logged) {
        self->full_logged = true;
        fy_log(self->log, FY_LOG_WARN, "broker", "storage full",
               "map_size=%llu op=%s detail=\"publishes refused; acks and deletes go on\"",
               (unsigned long long)self->cfg.map_size, fy_op_name(req.op));
    }
    const char *msg = err.code == st && err.msg[0] ? err.msg
                      : st == FERRY_ESTORAGE_FULL
                          ? "storage is full; reads, acks and deletes go on, publishes resume "
                            "when space is freed"
                          : NULL;
    if (st == FERRY_ENOTFOUND)
        msg = fy_op_is(req.op, FY_OPF_SUB) ? "no such topic, queue or subscription" : "no such topic or queue";
    else if (st == FERRY_EIO || st == FERRY_EINTERNAL) {
        fy_log(self->log, FY_LOG_ERROR, "broker", "request failed", "op=%s cid=%llu code=%s",
               fy_op_name(req.op), (unsigned long long)req.cid, fy_status_name(st));
        st = FERRY_EINTERNAL;
        msg = "internal error; see the broker log";
    }
    s_error(self, ri, &req, st, msg);
}

static int
s_order_cmp(const void *a, const void *b)
{
    const s_order_t *x = a, *y = b;
    if (x->peer_len != y->peer_len)
        return x->peer_len < y->peer_len ? -1 : 1;
    int c = memcmp(x->peer, y->peer, x->peer_len);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int
s_send_one(fy_broker_t *self, const s_order_t *o, size_t off, size_t len, const s_reply_t *r)
{
    const uint8_t *env = fy_encoder_data(self->enc) + off;
    size_t outs = r ? r->out_count : 0;
    int rc = zmq_send(self->sock, o->peer, o->peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(self->sock, env, len, ZMQ_DONTWAIT | (outs ? ZMQ_SNDMORE : 0));
    for (size_t j = 0; rc >= 0 && j < outs; j++)
        rc = zmq_msg_send(&self->outs[r->out_first + j], self->sock,
                          ZMQ_DONTWAIT | (j + 1 < outs ? ZMQ_SNDMORE : 0));
    if (rc < 0)
        fy_log(self->log, errno == EHOSTUNREACH ? FY_LOG_DEBUG : FY_LOG_WARN, "broker",
               "reply dropped", "reason=\"%s\"", zmq_strerror(errno));
    return rc;
}

/* Sends every reply of the batch, grouped by peer and in request order within
 * a peer. Confirms of single publishes with consecutive cids from one peer go
 * out as one cumulative confirm: one send and one decode instead of hundreds.
 * Never blocks: a peer that went away or stopped reading loses its replies
 * (logged), the others get theirs. */
static void
s_send_replies(fy_broker_t *self)
{
    size_t n = self->nreplies;
    for (size_t i = 0; i < n; i++) {
        s_reply_t *r = &self->replies[i];
        if (r->peer) {
            self->order[i] = (s_order_t){r->peer, r->peer_len, i};
        } else {
            zmq_msg_t *ident = &self->frames[self->reqs[r->req].first];
            self->order[i] = (s_order_t){zmq_msg_data(ident), zmq_msg_size(ident), i};
        }
        self->stats.requests++;
        if (r->code)
            self->stats.errors++;
        self->stats.publishes += r->stored;
        self->stats.duplicates += r->dups;
    }
    qsort(self->order, n, sizeof *self->order, s_order_cmp);
    for (size_t i = 0; i < n;) {
        const s_order_t *o = &self->order[i];
        s_reply_t *r = &self->replies[o->index];
        if (!r->confirm) {
            s_send_one(self, o, r->off, r->len, r);
            i++;
            continue;
        }
        /* The longest run of confirms with consecutive cids to this peer. */
        size_t run = 0;
        uint64_t first_cid = r->cid;
        while (i + run < n && run < FY_BATCH_MAX) {
            const s_order_t *p = &self->order[i + run];
            const s_reply_t *q = &self->replies[p->index];
            if (!q->confirm || q->cid != first_cid + run || p->peer_len != o->peer_len ||
                memcmp(p->peer, o->peer, o->peer_len) != 0)
                break;
            self->seqs[run] = q->seq;
            self->dups[run] = q->dups > 0;
            self->kvers[run] = q->kver;
            run++;
        }
        size_t off = fy_encoder_len(self->enc);
        fy_status_t st = run == 1
                             ? fy_encode_confirm(self->enc, first_cid, r->seq, r->dups > 0, r->kver)
                             : fy_encode_confirm_run(self->enc, first_cid, self->seqs, self->dups,
                                                     self->kvers, run);
        if (st == FERRY_OK)
            s_send_one(self, o, off, fy_encoder_len(self->enc) - off, NULL);
        else
            fy_log(self->log, FY_LOG_WARN, "broker", "reply dropped", "reason=\"out of memory\"");
        i += run;
    }
}

static void
s_reset_replies(fy_broker_t *self)
{
    self->full_logged = false;
    self->nnew_waiters = 0;
    for (size_t i = 0; i < self->nwaiters; i++)
        self->waiters[i].served = false;
    fy_consumers_rollback(&self->cons);
    fy_encoder_reset(self->enc);
    for (size_t i = 0; i < self->nouts; i++)
        zmq_msg_close(&self->outs[i]);
    self->nouts = 0;
    self->nreplies = 0;
}

/* Twice a second, inside a batch (the totals are read in its transaction;
 * an idle broker runs one for its sweeps every S_IDLE_MS): a snapshot for
 * the metrics endpoint, whose thread never reads the broker's state. */
static void
s_metrics_tick(fy_broker_t *self, long long now)
{
    if (!self->metrics || now - self->metrics_at < S_METRICS_MS)
        return;
    self->metrics_at = now;
    fy_metrics_snapshot_t snap = {.storage_ok = !fy_store_spoiled(self->store)};
    if (!snap.storage_ok || s_stats(self, &snap.stats) != FERRY_OK)
        snap.storage_ok = false;
    for (size_t i = 0; i < self->cons.nlive; i++)
        snap.consumers += !self->cons.live[i].removed;
    fy_metrics_update(self->metrics, &snap);
}

/* Applies the drained batch in one transaction and commits it durably. */
static fy_status_t
s_process_batch(fy_broker_t *self, bool sweep)
{
    size_t full_from = SIZE_MAX;
    fy_status_t st = FERRY_ESTORAGE_FULL;
    /* At most: a request hits the limit, the topic write-back at commit
     * hits it, then a batch with every write refused commits. */
    long long t_start = fy_mono_ms();
    for (int attempt = 0; attempt < 4; attempt++) {
        s_reset_replies(self);
        uint64_t now = fy_wall_ms();
        self->now_wall_ms = now;
        if ((st = fy_store_begin(self->store, now)))
            break;
        size_t i;
        for (i = 0; i < self->nreqs; i++) {
            s_handle(self, i, i >= full_from);
            if (fy_store_spoiled(self->store))
                break;
        }
        /* Background work after the requests; if it fills the map, the
         * replay below runs without it (full_from == nreqs). */
        if (i == self->nreqs && full_from == SIZE_MAX) {
            if (sweep) {
                size_t due = 0;
                bool timers_more = false;
                st = fy_store_sweep(self->store, S_SWEEP_BUDGET, &self->sweep_more);
                if (st == FERRY_OK)
                    st = fy_store_timers_due(self->store, S_SWEEP_BUDGET, &due, &timers_more);
                self->sweep_more = self->sweep_more || timers_more;
            }
            if (!fy_store_spoiled(self->store))
                s_serve_waiters(self);
            if (!fy_store_spoiled(self->store))
                s_deliver(self);
            s_metrics_tick(self, fy_mono_ms());
        }
        if (fy_store_spoiled(self->store)) {
            fy_store_abort(self->store);
            full_from = i;
            st = FERRY_ESTORAGE_FULL;
            continue;
        }
        bool dirty = fy_store_dirty(self->store);
        long long t_commit = fy_mono_ms();
        st = fy_store_commit(self->store);
        if (st == FERRY_OK) {
            if (dirty)
                self->stats.commits++;
            if (full_from < self->nreqs)
                fy_log(self->log, FY_LOG_WARN, "broker", "storage full",
                       "map_size=%llu refused_from=%zu batch=%zu",
                       (unsigned long long)self->cfg.map_size, full_from, self->nreqs);
            long long t_done = fy_mono_ms();
            /* Every confirm of the batch waited this long: say where it went. */
            if (t_done - t_start >= S_SLOW_BATCH_MS)
                fy_log(self->log, FY_LOG_WARN, "broker", "slow batch",
                       "requests=%zu total_ms=%lld apply_ms=%lld commit_ms=%lld sweep=%d",
                       self->nreqs, t_done - t_start, t_commit - t_start, t_done - t_commit,
                       (int)sweep);
            s_send_replies(self);
            s_commit_waiters(self);
            self->deliver_soon = fy_consumers_commit(&self->cons) || self->deliver_soon;
            return FERRY_OK;
        }
        if (st == FERRY_ESTORAGE_FULL) {
            full_from = 0;
            continue;
        }
        break;
    }
    /* The commit failed: nothing of the batch is stored, so nobody may get a
     * confirm, and reads answered from the lost transaction are void too. */
    fy_log(self->log, FY_LOG_ERROR, "broker", "batch failed", "code=%s requests=%zu",
           fy_status_name(st), self->nreqs);
    s_reset_replies(self);
    for (size_t i = 0; i < self->nreqs; i++) {
        fy_request_t none = {0};
        const s_req_t *rq = &self->reqs[i];
        if (rq->nframes >= 2 && !rq->overflow) {
            zmq_msg_t *env = &self->frames[rq->first + 1];
            fy_err_t err;
            fy_request_decode(self->dec, zmq_msg_data(env), zmq_msg_size(env), rq->nframes - 2,
                              &none, &err);
        }
        s_error(self, i, &none, st == FERRY_ESTORAGE_FULL ? st : FERRY_EINTERNAL,
                st == FERRY_ESTORAGE_FULL ? "storage is full" : "storage write failed; retry");
    }
    s_send_replies(self);
    return FERRY_OK;
}

fy_status_t
fy_broker_run(fy_broker_t *self, volatile sig_atomic_t *stop)
{
    fy_log(self->log, FY_LOG_INFO, "broker", "ready", "endpoint=%s data=%s pid=%d ", self->endpoint,
           self->cfg.data_dir, (int)getpid());
    if (self->metrics)
        fy_log(self->log, FY_LOG_INFO, "broker", "metrics", "url=http://%.*s:%u/metrics",
               (int)(strrchr(self->cfg.metrics, ':') - self->cfg.metrics), self->cfg.metrics,
               fy_metrics_port(self->metrics));
    self->next_sweep_ms = fy_mono_ms();
    while (!*stop) {
        long long now = fy_mono_ms();
        long timeout =
            self->sweep_more || self->deliver_soon ? 0 : (long)(self->next_sweep_ms - now);
        if (timeout < 0)
            timeout = 0;
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, timeout > S_IDLE_MS ? S_IDLE_MS : timeout);
        if (rc < 0 && errno != EINTR) {
            fy_log(self->log, FY_LOG_ERROR, "broker", "poll failed", "detail=\"%s\"",
                   zmq_strerror(errno));
            return FERRY_EIO;
        }
        size_t bytes = 0;
        self->nreqs = 0;
        while (self->nreqs < self->cfg.batch_max && bytes < S_BATCH_BYTES) {
            int got = s_recv_request(self, &bytes);
            if (got < 0) {
                fy_log(self->log, FY_LOG_ERROR, "broker", "receive failed", "detail=\"%s\"",
                       zmq_strerror(errno));
                break;
            }
            if (got == 0)
                break;
        }
        now = fy_mono_ms();
        bool sweep = self->sweep_more || now >= self->next_sweep_ms;
        bool deliver = self->deliver_soon;
        self->deliver_soon = false;
        if (self->nreqs > 0 || sweep || deliver) {
            /* Waiting fetches are tried on every batch, and at least every S_IDLE_MS. */
            if (sweep)
                self->next_sweep_ms = now + S_IDLE_MS;
            s_process_batch(self, sweep);
        }
        s_close_frames(self);
    }
    fy_log(self->log, FY_LOG_INFO, "broker", "stopping", "requests=%llu commits=%llu",
           (unsigned long long)self->stats.requests, (unsigned long long)self->stats.commits);
    return FERRY_OK;
}
