/* SPDX-License-Identifier: MIT */
/*
 * broker.c - the event loop and the dispatch of requests to their handlers
 * (broker_deliver.c; replies in broker_reply.c).
 *
 * A turn: zmq_poll, drain up to batch_max requests (frames kept as zmq_msg_t
 * so payloads go from the socket into LMDB with one copy), handle them all in
 * one write transaction, commit (LMDB syncs), then send every reply. If LMDB
 * runs out of map space mid-batch the transaction is unusable, so the batch
 * is replayed from the start with the request that hit the limit, and the
 * writes after it, refused with ESTORAGE_FULL; reads are still answered.
 */
#include "broker_int.h"
#include "userconns.h"

#include <malloc.h> /* malloc_trim (glibc) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* The store moved a subscription's message to the dead letters. */
static void
s_dead_lettered(void *user, uint64_t sub_id)
{
    fy_broker_t *self = user;
    fy_substats_row(&self->substats, sub_id)->dead_letters++;
}

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
    fy_ratelog_init(&self->bad_log, 10000);
    fy_ratelog_init(&self->drop_log, 10000);
    fy_ratelog_init(&self->park_log, 10000);
    fy_fence_init(&self->fences);
    fy_status_t st;
    self->dec = fy_decoder_new();
    self->enc = fy_encoder_new();
    self->items = fy_encoder_new();
    self->reqs = calloc(cfg->batch_max, sizeof *self->reqs);
    /* One reply per request, per waiter served and per consumer delivered to. */
    size_t max_replies = cfg->batch_max + FY_BRK_WAITERS_TURN + cfg->max_consumers;
    self->replies = calloc(max_replies, sizeof *self->replies);
    self->order = calloc(max_replies, sizeof *self->order);
    self->waiters = calloc(FY_BRK_WAITERS_MAX, sizeof *self->waiters);
    self->new_waiters = calloc(FY_BRK_WAITERS_MAX, sizeof *self->new_waiters);
    /* Bounds of the commit-time (microseconds) and batch-size histograms. */
    static const uint64_t commit_bounds[] = {100,   250,   500,    1000,   2500,   5000,   10000,
                                             25000, 50000, 100000, 250000, 500000, 1000000};
    static const uint64_t batch_bounds[] = {1,   2,   4,    8,    16,   32,   64,   128,
                                            256, 512, 1024, 2048, 4096, 8192, 16384};
    fy_histo_init(&self->commit_us, commit_bounds, sizeof commit_bounds / sizeof commit_bounds[0]);
    fy_histo_init(&self->checkpoint_us, commit_bounds,
                  sizeof commit_bounds / sizeof commit_bounds[0]);
    fy_histo_init(&self->batch_reqs, batch_bounds, sizeof batch_bounds / sizeof batch_bounds[0]);
    int cons_rc = fy_consumers_init(&self->cons, cfg->max_consumers);
    /* Consumer ids never repeat across restarts: a client that comes back
     * releases its old consumer by id, which must not be somebody's new one. */
    self->cons.next_id = ((uint64_t)fy_wall_ms() << 16) + 1;
    self->payloads = calloc(FY_BATCH_MAX, sizeof *self->payloads);
    self->seqs = calloc(FY_BATCH_MAX, sizeof *self->seqs);
    self->dups = calloc(FY_BATCH_MAX, sizeof *self->dups);
    self->kvers = calloc(FY_BATCH_MAX, sizeof *self->kvers);
    self->peerq = fy_peerq_new(cfg->peer_queue_bytes);
    /* Subscriptions: room for several per topic with a row. */
    int ts_rc = fy_topicstats_init(&self->topicstats, cfg->metrics_topics) |
                fy_substats_init(&self->substats, cfg->metrics_topics * 8);
    if (!self->peerq || !self->dec || !self->enc || !self->items || !self->reqs || !self->replies ||
        !self->order || !self->waiters || !self->new_waiters || cons_rc != 0 || ts_rc != 0 ||
        !self->payloads || !self->seqs || !self->dups || !self->kvers) {
        st = fy_err_set(err, FERRY_ENOMEM, "out of memory");
        goto fail;
    }
    fy_store_opts_t so = {.dir = cfg->data_dir,
                          .map_size = cfg->map_size,
                          .dedupe_window_ms = cfg->dedupe_window_ms,
                          .reserve_bytes = cfg->disk_reserve,
                          .log = log,
                          .on_dead_letter = s_dead_lettered,
                          .dead_letter_user = self};
    fy_store_cluster_t cl;
    fy_raftlog_peer_t peers[FY_CLUSTER_MAX];
    if (cfg->cluster_id &&
        (st = fy_brk_cluster_opts(cfg, &cl, peers, self->advertise, sizeof self->advertise, err)))
        goto fail;
    so.cluster = cfg->cluster_id ? &cl : NULL;
    if ((st = fy_store_open(&so, &self->store, err)))
        goto fail;
    /* A node of a cluster does so when it starts to lead (broker_cluster.c). */
    self->leading = !cfg->cluster_id;
    if (!cfg->cluster_id && (st = fy_brk_after_restart(self, err)))
        goto fail;

    self->ctx = zmq_ctx_new();
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    if (!self->sock) {
        st = fy_err_set(err, FERRY_ENOMEM, "cannot create socket: %s", zmq_strerror(errno));
        goto fail;
    }
    /* Received: queued messages per peer, above the largest client window,
     * where libzmq stops reading a peer that floods us. Sent: 1,000 replies
     * per peer in libzmq's queue; past that a peer that does not read has
     * its replies held in bytes and its requests parked (peerq.h). */
    int one = 1, sndhwm = 1000, hwm = 10000, linger = 2000;
    /* A frame far beyond the message limit is dropped by libzmq with the
     * connection; one slightly too big still reaches us and gets ETOO_LARGE. */
    int64_t maxmsg = (int64_t)cfg->max_msg_bytes + FY_ENVELOPE_MAX;
    zmq_setsockopt(self->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (cfg->curve_secret[0] && (st = fy_brk_curve(self, cfg->curve_secret, err)))
        goto fail;
    if ((st = fy_brk_auth_start(self, err)))
        goto fail;
    if (zmq_bind(self->sock, cfg->bind) != 0) {
        st = fy_err_set(err, FERRY_ECONNECT, "cannot bind %s: %s", cfg->bind, zmq_strerror(errno));
        goto fail;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", cfg->bind);
    if (cfg->metrics[0] && (st = fy_brk_metrics(self, err)))
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
    fy_peerq_destroy(&self->peerq); /* before the socket: its frames are zmq messages */
    if (self->sock)
        zmq_close(self->sock);
    fy_brk_auth_stop(self);
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
    fy_topicstats_free(&self->topicstats);
    fy_substats_free(&self->substats);
    fy_peernames_free(&self->peernames);
    free(self->topic_metrics);
    free(self->kvers);
    free(self);
    *self_p = NULL;
}

/* Receives one whole multipart request without blocking. Returns 1 if one
 * was received, 0 if none waits, -1 on a socket error. Frames past
 * FY_BRK_MAX_FRAMES are received and dropped; the request is marked overflow. */
static int
s_recv_request(fy_broker_t *self, size_t *bytes)
{
    if (!fy_grow(&self->frames, &self->frames_cap, self->nframes + 1, sizeof(zmq_msg_t), 1024))
        return -1;
    fy_brk_req_t *req = &self->reqs[self->nreqs];
    req->first = self->nframes;
    req->nframes = 0;
    req->overflow = false;
    int flags = ZMQ_DONTWAIT;
    for (;;) {
        if (!fy_grow(&self->frames, &self->frames_cap, self->nframes + 1, sizeof(zmq_msg_t), 1024))
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
        *bytes += zmq_msg_size(m) + FY_BRK_FRAME_COST;
        if (req->nframes < FY_BRK_MAX_FRAMES) {
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

/* Payload frames of request ri as byte strings, and the total message sizes. */
static fy_status_t
s_collect_payloads(fy_broker_t *self, const fy_brk_req_t *rq, const fy_request_t *req,
                   fy_err_t *err)
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

/* A publish whose id holds a different message: refused, logged, counted.
 * Never answered "duplicate": that would drop the new message in silence. */
static void
s_id_reused(fy_broker_t *self, size_t ri, const fy_request_t *req, const fy_conflict_t *cf)
{
    const fy_pubmeta_t *m = &req->msgs[cf->index];
    char msg[FY_ID_MAX + 200];
    if (cf->last)
        snprintf(msg, sizeof msg,
                 "message %zu: id '%.*s' is held by a different message (seq %llu) within the "
                 "dedupe window; nothing stored",
                 cf->index, (int)m->id.len, (const char *)m->id.ptr, (unsigned long long)cf->last);
    else
        snprintf(msg, sizeof msg,
                 "message %zu: id '%.*s' is used by a different message earlier in the batch; "
                 "nothing stored",
                 cf->index, (int)m->id.len, (const char *)m->id.ptr);
    self->ids_reused++;
    fy_log(self->log, FY_LOG_WARN, "broker", "message id reused",
           "topic=%.*s id=\"%.*s\" seq=%llu cid=%llu", (int)req->name.len,
           (const char *)req->name.ptr, (int)m->id.len, (const char *)m->id.ptr,
           (unsigned long long)cf->last, (unsigned long long)req->cid);
    fy_brk_error(self, ri, req, FERRY_EIDREUSED, msg);
}

/* Handles one request inside the batch transaction. `refuse_writes`: the map
 * is full (replay after MDB_MAP_FULL), so writes are refused. */
static void
s_handle(fy_broker_t *self, size_t ri, bool refuse_writes)
{
    const fy_brk_req_t *rq = &self->reqs[ri];
    fy_request_t req;
    fy_err_t err = {0};
    fy_status_t st;
    if (rq->overflow) {
        memset(&req, 0, sizeof req);
        st = fy_err_set(&err, FERRY_EFRAMES, "more than %d frames in one request",
                        FY_BRK_MAX_FRAMES);
    } else if (rq->nframes < 2) {
        memset(&req, 0, sizeof req);
        st = fy_err_set(&err, FERRY_EFRAMES, "a request needs an envelope frame");
    } else {
        zmq_msg_t *env = &self->frames[rq->first + 1];
        st = fy_request_decode(self->dec, zmq_msg_data(env), zmq_msg_size(env), rq->nframes - 2,
                               &req, &err);
    }
    if (st) {
        fy_brk_refuse(self, ri, &req, st, err.msg);
        return;
    }
    if (!fy_brk_auth_allows(self, ri, &req))
        return;
    if (self->cons.nlive) {
        zmq_msg_t *ident = &self->frames[rq->first];
        fy_consumers_touch(&self->cons, zmq_msg_data(ident), zmq_msg_size(ident), fy_mono_ms());
    }
    bool disk_full = fy_store_disk_full(self->store);
    if ((refuse_writes && fy_op_is(req.op, FY_OPF_WRITE)) ||
        (disk_full && fy_op_is(req.op, FY_OPF_GROWS))) {
        char msg[160];
        fy_store_disk_t d;
        fy_store_disk(self->store, &d);
        if (disk_full)
            snprintf(msg, sizeof msg,
                     "the disk is full (%llu bytes free): %s refused; reads, acks and deletes go "
                     "on",
                     (unsigned long long)d.free, fy_op_name(req.op));
        else
            snprintf(msg, sizeof msg,
                     "storage is full (the map size of %llu bytes is reached): %s refused; reads "
                     "go on, publishes resume when space is freed",
                     (unsigned long long)self->cfg.map_size, fy_op_name(req.op));
        fy_brk_error(self, ri, &req, FERRY_ESTORAGE_FULL, msg);
        return;
    }
    fy_brk_reply_t *r = NULL;
    switch (req.op) {
    case FY_OP_HELLO:
        fy_peernames_set(&self->peernames, zmq_msg_data(&self->frames[rq->first]),
                         zmq_msg_size(&self->frames[rq->first]), req.client);
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_hello_ok(self->enc, req.cid, "ferryd " FY_VERSION_STRING,
                                self->cfg.max_msg_bytes);
        break;
    case FY_OP_PING:
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_ok(self->enc, req.cid);
        break;
    case FY_OP_DECLARE: {
        fy_topic_info_t info;
        bool created = false;
        st = fy_store_declare(self->store, req.name, req.kind, &req.topic_cfg, &info, &created);
        if (st == FERRY_EEXISTS) {
            fy_brk_error(self, ri, &req, st, "a destination of that name exists with another kind");
            return;
        }
        if (st)
            break;
        if (created)
            fy_log(self->log, FY_LOG_INFO, "broker", "declared", "name=%s kind=%s", info.name,
                   info.kind == FY_KIND_QUEUE ? "queue" : "topic");
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_info_reply(self->enc, req.cid, &info, created);
        break;
    }
    case FY_OP_DELETE:
        st = fy_store_delete(self->store, req.name);
        if (st)
            break;
        fy_log(self->log, FY_LOG_INFO, "broker", "deleted", "name=%.*s", (int)req.name.len,
               (const char *)req.name.ptr);
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_ok(self->enc, req.cid);
        break;
    case FY_OP_INFO: {
        fy_topic_info_t info;
        st = fy_store_info(self->store, req.name, &info);
        if (st)
            break;
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_info_reply(self->enc, req.cid, &info, -1);
        break;
    }
    case FY_OP_STATS: {
        fy_stats_t s;
        if ((st = s_stats(self, &s)))
            break;
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_stats_reply(self->enc, req.cid, &s);
        break;
    }
    case FY_OP_PUBLISH:
    case FY_OP_PUBLISH_BATCH:
        if (req.fence && fy_fence_blocks(&self->fences, zmq_msg_data(&self->frames[rq->first]),
                                         zmq_msg_size(&self->frames[rq->first]), req.fence)) {
            fy_brk_error(self, ri, &req, FERRY_EFENCED,
                         "an earlier publish of this connection was refused: nothing stored; "
                         "send this one again after it");
            return;
        }
        st = s_collect_payloads(self, rq, &req, &err);
        if (st) {
            fy_brk_refuse(self, ri, &req, st, err.msg);
            return;
        }
        fy_conflict_t cf;
        st = fy_store_append(self->store, req.name, req.msgs, self->payloads, req.msg_count,
                             self->seqs, self->dups, self->kvers, &cf);
        if (st == FERRY_ECONFLICT) {
            fy_brk_conflict(self, ri, &req, &cf);
            return;
        }
        if (st == FERRY_EIDREUSED) {
            s_id_reused(self, ri, &req, &cf);
            return;
        }
        if (st)
            break;
        fy_brk_reply_begin(self, ri, &r);
        r->topic = req.name;
        for (size_t i = 0; i < req.msg_count; i++) {
            if (self->dups[i])
                r->dups++;
            else
                r->stored++;
        }
        if (req.op == FY_OP_PUBLISH) {
            /* Encoded when sending, merged with its neighbours (fy_brk_send_replies). */
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
        st = fy_brk_handle_messages(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_CLUSTER:
    case FY_OP_NODE_ADD:
    case FY_OP_NODE_REMOVE:
        if ((st = fy_brk_handle_cluster(self, ri, &req, &err)) == FERRY_OK)
            return;
        break;
    case FY_OP_TOPICS:
    case FY_OP_SUBS:
    case FY_OP_SUB_DELETE:
    case FY_OP_SEEK:
    case FY_OP_PURGE:
    case FY_OP_EDIT:
    case FY_OP_BACKUP:
        st = fy_brk_handle_admin(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_SUB_DECLARE:
    case FY_OP_SUB_INFO:
        st = fy_brk_handle_sub(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_SUBSCRIBE:
    case FY_OP_CREDIT:
    case FY_OP_UNSUBSCRIBE:
        st = fy_brk_handle_consumer(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_ACK:
    case FY_OP_NACK:
    case FY_OP_TERM:
    case FY_OP_PROGRESS:
        st = fy_brk_handle_ack(self, ri, &req, &err);
        if (st == FERRY_OK)
            return;
        break;
    case FY_OP_COUNT_:
        st = FERRY_EINTERNAL;
        break;
    }
    if (r && fy_brk_reply_finish(self, r, st) == FERRY_OK)
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
        msg = fy_op_is(req.op, FY_OPF_SUB) ? "no such topic, queue or subscription"
                                           : "no such topic or queue";
    else if (st == FERRY_EIO || st == FERRY_EINTERNAL) {
        fy_log(self->log, FY_LOG_ERROR, "broker", "request failed", "op=%s cid=%llu code=%s",
               fy_op_name(req.op), (unsigned long long)req.cid, fy_status_name(st));
        st = FERRY_EINTERNAL;
        msg = "internal error; see the broker log";
    }
    fy_brk_refuse(self, ri, &req, st, msg); /* bad input is logged, the rest only answered */
}

/* Twice a second, inside a batch (the totals are read in its transaction;
 * an idle broker runs one for its sweeps every FY_BRK_IDLE_MS): a snapshot for
 * the metrics endpoint, whose thread never reads the broker's state. */
static void
s_metrics_tick(fy_broker_t *self, long long now)
{
    if (!self->metrics || now - self->metrics_at < FY_BRK_METRICS_MS)
        return;
    self->metrics_at = now;
    fy_store_disk_t disk;
    fy_store_disk(self->store, &disk);
    fy_metrics_snapshot_t snap = {.storage_ok = !fy_store_spoiled(self->store),
                                  .ids_reused = self->ids_reused,
                                  .replies_dropped = self->replies_dropped,
                                  .replies_held = self->replies_held,
                                  .requests_parked = self->requests_parked,
                                  .requests_refused = self->requests_refused,
                                  .disk_total = disk.total,
                                  .disk_free = disk.free,
                                  .disk_full = disk.full,
                                  .commit_us = self->commit_us,
                                  .checkpoint_us = self->checkpoint_us,
                                  .batch_reqs = self->batch_reqs,
                                  .slow_batches = self->slow_batches};
    fy_store_wal_stats(self->store, &snap.wal);
    snap.cluster = fy_store_cluster_state(self->store, &snap.cl);
    /* Per topic: inside a batch only (a cluster's follower has none). */
    if (fy_store_in_batch(self->store) &&
        (self->topic_metrics || (self->topic_metrics = malloc(1u << 20))))
        snap.topic_len = fy_brk_topic_metrics(self, self->topic_metrics, 1u << 20);
    snap.topic_text = self->topic_metrics;
    snap.not_leader = self->not_leader_refused;
    snap.users = self->users != NULL;
    snap.forbidden = self->forbidden;
    snap.rate_limited = self->rate_limited;
    snap.over_connections = self->over_connections;
    fy_brk_auth_stats(self, &snap.logins_ok, &snap.logins_refused);
    if (!snap.storage_ok || s_stats(self, &snap.stats) != FERRY_OK)
        snap.storage_ok = false;
    for (size_t i = 0; i < self->cons.nlive; i++)
        snap.consumers += !self->cons.live[i].removed;
    fy_peerq_stats(self->peerq, &snap.peers);
    fy_metrics_update(self->metrics, &snap);
}

/* Applies the drained batch in one transaction and commits it durably. */
/* One background transaction (see s_background); @p now is its start. */
static void
s_background_txn(fy_broker_t *self, long long now)
{
    fy_store_disk_recheck(self->store);
    size_t due = 0;
    bool more = false, timers_more = false;
    fy_status_t st = fy_store_begin(self->store, fy_wall_ms());
    if (st == FERRY_OK)
        st = fy_store_sweep(self->store, FY_BRK_SWEEP_BUDGET, &more);
    if (st == FERRY_OK)
        st = fy_store_timers_due(self->store, FY_BRK_SWEEP_BUDGET, &due, &timers_more);
    if (st == FERRY_OK && fy_store_spoiled(self->store))
        st = FERRY_ESTORAGE_FULL;
    if (st == FERRY_OK) {
        bool dirty = fy_store_dirty(self->store);
        st = fy_store_commit(self->store);
        if (st == FERRY_OK && dirty)
            self->stats.commits++;
    } else {
        fy_store_abort(self->store);
    }
    if (st == FERRY_OK) {
        self->sweep_more = more || timers_more;
        if (self->background_failing)
            fy_log(self->log, FY_LOG_INFO, "broker", "background cleanup works again", NULL);
        self->background_failing = false;
        return;
    }
    self->sweep_more = false;
    self->background_retry_ms = now + 1000;
    if (!self->background_failing || now - self->background_logged_ms >= 60000) {
        fy_log(self->log, FY_LOG_WARN, "broker", "background cleanup failed",
               "code=%s detail=\"expired entries, deleted topics and timers wait; retried every "
               "second\"",
               fy_status_name(st));
        self->background_logged_ms = now;
    }
    self->background_failing = true;
}

/* Gives memory back to the system once consumers or slow clients that held
 * much of it are gone: freed, it would otherwise stay in the allocator's
 * arenas (32 KiB deliveries fragment them), and the broker's resident size
 * would keep the high-water mark of its worst moment. At most once a second. */
static void
s_trim(fy_broker_t *self, long long now)
{
    size_t live = self->cons.nlive;
    fy_peerq_stats_t ps;
    fy_peerq_stats(self->peerq, &ps);
    bool fewer = live < self->trim_live || ps.peers < self->trim_peers;
    self->trim_live = live;
    self->trim_peers = ps.peers;
    if (fewer)
        self->trim_due = true;
    if (self->trim_due && now - self->trim_at >= 1000) {
        malloc_trim(0);
        self->trim_at = now;
        self->trim_due = false;
    }
}

/* Cleanup (expired dedupe entries, deleted topics, retention) and timers
 * (ack waits, delays), in a transaction of their own before the turn's
 * requests: when they cannot write (a full disk), no client's batch fails
 * for it; they are tried again every second and say so once a minute.
 * @return the milliseconds it took (the turn's requests waited as long). */
static long long
s_background(fy_broker_t *self)
{
    long long now = fy_mono_ms();
    s_trim(self, now);
    if (now < self->background_retry_ms) {
        self->sweep_more = false;
        return 0;
    }
    s_background_txn(self, now);
    return fy_mono_ms() - now;
}

/* A batch committed: its time and size go to the histograms, and a slow
 * one is said at warn with where the time went - at most once a second,
 * with how many more there were since. Times in microseconds. */
static void
s_batch_done(fy_broker_t *self, long long t_start, long long t_commit, long long background_ms,
             bool dirty)
{
    long long t_done = fy_mono_us();
    if (dirty)
        fy_histo_add(&self->commit_us, (uint64_t)(t_done - t_start));
    if (self->nreqs)
        fy_histo_add(&self->batch_reqs, self->nreqs);
    double total_ms = (double)(t_done - t_start) / 1000.0 + (double)background_ms;
    if (total_ms < (double)self->cfg.slow_batch_ms)
        return;
    self->slow_batches++;
    long long now = t_done / 1000;
    if (self->slow_logged_ms && now - self->slow_logged_ms < 1000) {
        self->slow_held++;
        return;
    }
    fy_log(self->log, FY_LOG_WARN, "broker", "slow batch",
           "requests=%zu total_ms=%.1f background_ms=%lld apply_ms=%.1f commit_ms=%.1f "
           "threshold_ms=%llu more_since_last=%llu",
           self->nreqs, total_ms, background_ms, (double)(t_commit - t_start) / 1000.0,
           (double)(t_done - t_commit) / 1000.0, (unsigned long long)self->cfg.slow_batch_ms,
           (unsigned long long)self->slow_held);
    self->slow_logged_ms = now;
    self->slow_held = 0;
}

static fy_status_t
s_process_batch(fy_broker_t *self, long long background_ms)
{
    size_t full_from = SIZE_MAX;
    fy_status_t st = FERRY_ESTORAGE_FULL;
    /* At most: a request hits the limit, the topic write-back at commit
     * hits it, then a batch with every write refused commits. */
    long long t_start = fy_mono_us();
    for (int attempt = 0; attempt < 4; attempt++) {
        fy_brk_reset_replies(self);
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
        /* Waiting fetches and push consumers after the requests; if they
         * fill the map, the replay below runs without them. */
        if (i == self->nreqs && full_from == SIZE_MAX) {
            if (!fy_store_spoiled(self->store))
                fy_brk_serve_waiters(self);
            if (!fy_store_spoiled(self->store))
                fy_brk_deliver(self);
            s_metrics_tick(self, fy_mono_ms());
        }
        if (fy_store_spoiled(self->store)) {
            fy_store_abort(self->store);
            full_from = i;
            st = FERRY_ESTORAGE_FULL;
            continue;
        }
        bool dirty = fy_store_dirty(self->store);
        long long t_commit = fy_mono_us();
        st = fy_store_commit(self->store);
        if (st == FERRY_OK) {
            if (dirty)
                self->stats.commits++;
            if (full_from < self->nreqs)
                fy_log(self->log, FY_LOG_WARN, "broker", "storage full",
                       "map_size=%llu refused_from=%zu batch=%zu",
                       (unsigned long long)self->cfg.map_size, full_from, self->nreqs);
            s_batch_done(self, t_start, t_commit, background_ms, dirty);
            fy_brk_send_replies(self);
            fy_brk_commit_waiters(self);
            self->deliver_soon = fy_consumers_commit(&self->cons) || self->deliver_soon;
            return FERRY_OK;
        }
        if (st == FERRY_ESTORAGE_FULL) {
            full_from = 0;
            continue;
        }
        break;
    }
    if (st == FERRY_ENOTLEADER || st == FERRY_ELEADER_LOST) { /* the lead went meanwhile */
        fy_brk_refuse_not_leader(self, st);
        return FERRY_OK;
    }
    /* The commit failed: nothing of the batch is stored, so nobody may get a
     * confirm, and reads answered from the lost transaction are void too. */
    fy_log(self->log, FY_LOG_ERROR, "broker", "batch failed", "code=%s requests=%zu",
           fy_status_name(st), self->nreqs);
    fy_brk_refuse_batch(self, st == FERRY_ESTORAGE_FULL ? st : FERRY_EINTERNAL,
                        st == FERRY_ESTORAGE_FULL ? "storage is full"
                                                  : "storage write failed; retry");
    return FERRY_OK;
}

/* Takes an unparked request into the batch (fy_peerq_unpark's take). */
static int
s_take_parked(void *user, zmq_msg_t *frames, size_t n)
{
    fy_broker_t *self = user;
    if (self->nreqs >= self->cfg.batch_max ||
        !fy_grow(&self->frames, &self->frames_cap, self->nframes + n, sizeof(zmq_msg_t), 1024))
        return -1;
    fy_brk_req_t *req = &self->reqs[self->nreqs++];
    req->first = self->nframes;
    req->nframes = n;
    req->overflow = n > FY_BRK_MAX_FRAMES;
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init(&self->frames[self->nframes]);
        zmq_msg_move(&self->frames[self->nframes++], &frames[i]);
    }
    return 0;
}

/* The request just received comes from a peer that does not read its
 * replies: parked until it does (peerq.h), or refused past the limit.
 * @return true when it was taken out of the batch. */
static bool
s_park_last(fy_broker_t *self)
{
    fy_brk_req_t *req = &self->reqs[self->nreqs - 1];
    zmq_msg_t *first = &self->frames[req->first];
    const void *id = zmq_msg_data(first);
    size_t id_len = zmq_msg_size(first);
    if (!fy_peerq_blocked(self->peerq, id, id_len))
        return false;
    uint64_t held;
    int rc = fy_peerq_park(self->peerq, id, id_len, first, req->nframes);
    if (rc == 0) {
        self->requests_parked++;
        if (fy_ratelog_allow(&self->park_log, id, id_len, fy_mono_ms(), &held)) {
            fy_peerq_stats_t ps;
            fy_peerq_stats(self->peerq, &ps);
            fy_log(self->log, FY_LOG_WARN, "broker", "peer not reading",
                   "detail=\"its replies are held and its requests wait until it reads\" "
                   "held_bytes=%llu parked_requests=%llu",
                   (unsigned long long)ps.held_bytes, (unsigned long long)ps.parked_requests);
        }
    } else {
        /* Past FY_PEERQ_PARK_MAX (or out of memory): no reply can reach a
         * peer whose pipe is full, so the request is refused here. */
        self->requests_refused++;
        if (fy_ratelog_allow(&self->park_log, id, id_len, fy_mono_ms(), &held))
            fy_log(self->log, FY_LOG_WARN, "broker", "request refused",
                   "reason=\"%s\" held_back=%llu",
                   rc > 0 ? "the peer does not read and has too many requests waiting"
                          : "out of memory",
                   (unsigned long long)held);
        for (size_t i = 0; i < req->nframes; i++)
            zmq_msg_close(&first[i]);
    }
    self->nframes = req->first;
    self->nreqs--;
    return true;
}

/* Sends replies held for slow peers and takes back the requests of those
 * that read again; sets how long the loop may sleep meanwhile. */
static void
s_peers_turn(fy_broker_t *self)
{
    size_t sent = fy_peerq_flush(self->peerq, self->sock, fy_brk_peer_gone, self);
    size_t taken = fy_peerq_unpark(self->peerq, self->cfg.batch_max, s_take_parked, self);
    /* Requests taken back: straight on with the next turn (more may wait).
     * Replies sent: their peer reads, look again soon. Neither: back off. */
    if (taken)
        self->flush_wait_ms = 0;
    else if (sent)
        self->flush_wait_ms = 1;
    else
        self->flush_wait_ms = self->flush_wait_ms < 1    ? 1
                              : self->flush_wait_ms < 50 ? self->flush_wait_ms * 2
                                                         : 50;
}

/* Stopping: the batch in hand is done; requests queued or still arriving
 * are answered ESHUTDOWN (not applied: send again) rather than left without
 * a reply, until none came for FY_BRK_DRAIN_QUIET_MS or FY_BRK_DRAIN_MS
 * passed. Replies held for clients that do not read go out if they can. */
static void
s_drain(fy_broker_t *self)
{
    long long start = fy_mono_ms(), last = start, now = start;
    uint64_t refused = 0;
    while (now - start < FY_BRK_DRAIN_MS && now - last < FY_BRK_DRAIN_QUIET_MS) {
        if (fy_peerq_active(self->peerq))
            fy_peerq_flush(self->peerq, self->sock, fy_brk_peer_gone, self);
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        zmq_poll(&item, 1, 10);
        size_t bytes = 0;
        self->nreqs = 0;
        while (self->nreqs < self->cfg.batch_max && s_recv_request(self, &bytes) > 0)
            ;
        now = fy_mono_ms();
        if (self->nreqs) {
            last = now;
            refused += self->nreqs;
            fy_brk_refuse_batch(self, FERRY_ESHUTDOWN,
                                "the broker is shutting down: nothing of this request was applied; "
                                "send it again");
        }
        s_close_frames(self);
    }
    fy_peerq_stats_t ps;
    fy_peerq_stats(self->peerq, &ps);
    fy_log(self->log, refused || ps.peers ? FY_LOG_WARN : FY_LOG_INFO, "broker", "drained",
           "refused=%llu detail=\"requests that came while stopping were answered ESHUTDOWN\" "
           "held_replies_dropped=%llu parked_requests_dropped=%llu",
           (unsigned long long)refused, (unsigned long long)ps.held_replies,
           (unsigned long long)ps.parked_requests);
}

fy_status_t
fy_broker_run(fy_broker_t *self, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload)
{
    fy_log(self->log, FY_LOG_INFO, "broker", "ready", "endpoint=%s data=%s pid=%d ", self->endpoint,
           self->cfg.data_dir, (int)getpid());
    if (self->users)
        fy_log(self->log, FY_LOG_INFO, "broker", "users only",
               "detail=\"only clients with a key of the users file connect, each limited to "
               "its permissions\"");
    else if (fy_options_local_endpoint(self->cfg.bind))
        fy_log(self->log, FY_LOG_INFO, "broker", "no authentication",
               "detail=\"any process on this host may connect (docs/security.md)\"");
    else
        fy_log(self->log, FY_LOG_WARN, "broker", "open to other hosts",
               "endpoint=%s detail=\"--insecure: anyone who reaches it may read, publish and "
               "delete anything (no --users)\"",
               self->endpoint);
    fy_brk_cluster_say(self);
    if (self->metrics)
        fy_log(self->log, FY_LOG_INFO, "broker", "metrics", "url=http://%.*s:%u/metrics",
               (int)(strrchr(self->cfg.metrics, ':') - self->cfg.metrics), self->cfg.metrics,
               fy_metrics_port(self->metrics));
    self->next_sweep_ms = fy_mono_ms();
    while (!*stop) {
        if (reload && *reload) {
            *reload = 0;
            fy_brk_auth_reload(self);
        }
        long long now = fy_mono_ms();
        long timeout =
            self->sweep_more || self->deliver_soon ? 0 : (long)(self->next_sweep_ms - now);
        if (timeout < 0)
            timeout = 0;
        /* Replies held for slow peers: no event says their pipes drained. */
        if (fy_peerq_active(self->peerq) && timeout > self->flush_wait_ms)
            timeout = self->flush_wait_ms;
        long long cp_in = fy_store_checkpoint_in(self->store, now);
        if (cp_in >= 0 && cp_in < timeout)
            timeout = (long)cp_in;
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, timeout > FY_BRK_IDLE_MS ? FY_BRK_IDLE_MS : timeout);
        if (rc < 0 && errno != EINTR) {
            fy_log(self->log, FY_LOG_ERROR, "broker", "poll failed", "detail=\"%s\"",
                   zmq_strerror(errno));
            return FERRY_EIO;
        }
        size_t bytes = 0;
        self->nreqs = 0;
        if (fy_peerq_active(self->peerq))
            s_peers_turn(self);
        while (self->nreqs < self->cfg.batch_max && bytes < FY_BRK_BATCH_BYTES) {
            int got = s_recv_request(self, &bytes);
            if (got < 0) {
                fy_log(self->log, FY_LOG_ERROR, "broker", "receive failed", "detail=\"%s\"",
                       zmq_strerror(errno));
                break;
            }
            if (got == 0)
                break;
            if (fy_peerq_active(self->peerq))
                s_park_last(self);
        }
        if (self->userconns) /* connections opened or closed before these requests */
            fy_userconns_drain(self->userconns);
        now = fy_mono_ms();
        bool sweep = self->sweep_more || now >= self->next_sweep_ms;
        bool deliver = self->deliver_soon;
        self->deliver_soon = false;
        if (!fy_brk_cluster_turn(self)) {
            /* A follower: no timers of its own (the leader's come through
             * the log); it looks again at each request, or every idle turn. */
            if (self->nreqs > 0)
                fy_brk_refuse_not_leader(self, FERRY_ENOTLEADER);
            self->next_sweep_ms = now + FY_BRK_IDLE_MS;
            self->sweep_more = self->deliver_soon = false;
            s_metrics_tick(self, now);
        } else if (self->nreqs > 0 || sweep || deliver) {
            /* Waiting fetches are tried on every batch, and at least every FY_BRK_IDLE_MS. */
            long long background_ms = 0;
            if (sweep) {
                self->next_sweep_ms = now + FY_BRK_IDLE_MS;
                background_ms = s_background(self);
            }
            s_process_batch(self, background_ms);
        }
        s_close_frames(self);
        if (fy_store_checkpoint_in(self->store, fy_mono_ms()) == 0) {
            /* Failures are logged by the store; the log keeps every batch. */
            long long t0 = fy_mono_us();
            fy_store_checkpoint(self->store);
            fy_histo_add(&self->checkpoint_us, (uint64_t)(fy_mono_us() - t0));
        }
        if (fy_store_broken(self->store))
            return FERRY_EIO;
    }
    s_drain(self);
    fy_log(self->log, FY_LOG_INFO, "broker", "stopping", "requests=%llu commits=%llu",
           (unsigned long long)self->stats.requests, (unsigned long long)self->stats.commits);
    return FERRY_OK;
}
