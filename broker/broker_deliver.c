/* SPDX-License-Identifier: MIT */
/*
 * broker_deliver.c - messages going out: get, fetch and read replies,
 * fetches that wait for messages, push consumers and their credit, and the
 * subscription and ack requests. Runs inside the batch transaction; what a
 * batch sends is journaled and applied only after its commit.
 */
#include "broker_int.h"

/* Encodes one message entry into self->items and copies its payload into
 * an outgoing frame. Bytes in the map are valid only inside the transaction:
 * they are copied once, never referenced. */
static fy_status_t
s_item(fy_broker_t *self, const fy_stored_t *m, uint32_t dc)
{
    if (!fy_grow(&self->outs, &self->outs_cap, self->nouts + 1, sizeof(zmq_msg_t), 1024))
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
    self->item_bytes += fy_stored_cost(m);
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
    fy_broker_t *self = user;
    self->item_redeliveries += dc > 1;
    return s_item(user, m, dc);
}

/* Counts a fetch's @p count deliveries to @p sub_id (/metrics). */
static void
s_count_deliveries(fy_broker_t *self, uint64_t sub_id, size_t count)
{
    fy_sub_counts_t *sc = fy_substats_row(&self->substats, sub_id);
    sc->deliveries += count;
    sc->redeliveries += self->item_redeliveries;
    self->item_redeliveries = 0;
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
                 uint32_t max_bytes, bool skip_empty, size_t *count)
{
    size_t outs_mark = self->nouts;
    *count = 0;
    fy_encoder_reset(self->items);
    fy_status_t st;
    uint64_t next = 0;
    if (op == FY_OP_GET) {
        st = fy_store_read(self->store, topic, seq ? seq : 1, max, FY_REPLY_BYTES_MAX, s_get_item,
                           self, count);
    } else if (op == FY_OP_READ) {
        st = fy_store_read_key(self->store, topic, sub, seq, max, FY_REPLY_BYTES_MAX, s_get_item,
                               self, count, &next);
    } else {
        fy_sub_info_t info;
        bool created;
        st = fy_store_sub_open(self->store, topic, sub, NULL, &info, &created);
        self->item_redeliveries = 0;
        if (st == FERRY_OK)
            st = fy_store_fetch(self->store, info.id, max,
                                max_bytes && max_bytes < FY_REPLY_BYTES_MAX ? max_bytes
                                                                            : FY_REPLY_BYTES_MAX,
                                s_fetch_item, self, count);
        if (st == FERRY_OK)
            s_count_deliveries(self, info.id, *count);
    }
    if (st == FERRY_OK && skip_empty && *count == 0)
        return FERRY_OK;
    fy_brk_reply_t *r = NULL;
    if (st == FERRY_OK) {
        fy_brk_reply_begin(self, ri, &r);
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
    fy_brk_reply_end(self, r);
    return FERRY_OK;
}

/* get, and fetch: a fetch with a wait that finds nothing becomes a waiter. */
fy_status_t
fy_brk_handle_messages(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    if (req->op == FY_OP_FETCH && fy_brk_auth_user(self, ri)) {
        fy_sub_info_t info;
        bool created;
        fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created);
        if (st == FERRY_OK)
            st = fy_brk_auth_sub(self, ri, req, info.owner, err);
        if (st)
            return st;
    }
    bool may_wait = req->op == FY_OP_FETCH && req->wait_ms > 0 &&
                    self->nwaiters + self->nnew_waiters < FY_BRK_WAITERS_MAX;
    size_t count;
    /* read: the key travels where fetch has its subscription. */
    fy_bytes_t sub = req->op == FY_OP_READ ? req->key : req->sub;
    fy_status_t st = s_messages_reply(self, ri, NULL, 0, req->op, req->cid, req->name, sub,
                                      req->seq, req->limit, req->max_bytes, may_wait, &count);
    if (st || !may_wait || count > 0)
        return st;
    zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
    fy_brk_waiter_t *w = &self->new_waiters[self->nnew_waiters++];
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
    w->max_bytes = req->max_bytes;
    w->deadline_ms = fy_mono_ms() + (long long)req->wait_ms;
    return FERRY_OK;
}

/* Tries waiting fetches (a bounded number per turn, round robin): those that
 * now find messages, or whose wait is over, get their reply in this batch. */
void
fy_brk_serve_waiters(fy_broker_t *self)
{
    long long now = fy_mono_ms();
    size_t n = self->nwaiters < FY_BRK_WAITERS_TURN ? self->nwaiters : FY_BRK_WAITERS_TURN;
    for (size_t k = 0; k < n && !fy_store_spoiled(self->store); k++) {
        fy_brk_waiter_t *w = &self->waiters[(self->waiter_rr + k) % self->nwaiters];
        fy_bytes_t topic = {w->topic, w->topic_len}, sub = {w->sub, w->sub_len};
        bool expired = now >= w->deadline_ms;
        size_t count;
        fy_status_t st = s_messages_reply(self, SIZE_MAX, w->peer, w->peer_len, FY_OP_FETCH, w->cid,
                                          topic, sub, 0, w->max, w->max_bytes, !expired, &count);
        if (st && !fy_store_spoiled(self->store)) {
            /* The subscription went away meanwhile: say so. */
            fy_brk_reply_t *r;
            fy_brk_reply_begin(self, SIZE_MAX, &r);
            r->peer = w->peer;
            r->peer_len = w->peer_len;
            r->code = st;
            fy_encode_error(self->enc, w->cid, st, NULL);
            fy_brk_reply_end(self, r);
        }
        w->served = st || expired || count > 0;
    }
}

/* After a commit: drop the waiters served, keep the rest, add the new ones. */
void
fy_brk_commit_waiters(fy_broker_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nwaiters; i++)
        if (!self->waiters[i].served)
            self->waiters[kept++] = self->waiters[i];
    self->nwaiters = kept;
    memcpy(self->waiters + kept, self->new_waiters, self->nnew_waiters * sizeof *self->waiters);
    self->nwaiters += self->nnew_waiters;
    self->nnew_waiters = 0;
    self->waiter_rr = self->nwaiters ? (self->waiter_rr + FY_BRK_WAITERS_TURN) % self->nwaiters : 0;
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
fy_status_t
fy_brk_handle_consumer(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    fy_brk_reply_t *r;
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
            ((st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created)) ||
             (st = fy_brk_auth_sub(self, ri, req, info.owner, err))))
            return st;
        char user[65];
        if ((st = fy_brk_auth_consumer(self, ri, user, err)))
            return st;
        fy_consumer_t *c = fy_consumers_add(&self->cons);
        if (!c)
            return fy_err_set(err, FERRY_ETOO_MANY,
                              "the broker serves at most %zu push consumers at once "
                              "(--max-consumers)",
                              self->cons.max);
        zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
        c->sub_id = info.id;
        memcpy(c->user, user, sizeof c->user);
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
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_subscribed(self->enc, req->cid, c->id, ephemeral);
    } else {
        /* Only the connection that made a consumer may credit or release it. */
        fy_consumer_t *c = fy_consumers_find(&self->cons, req->consumer);
        zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
        if (!c || c->peer_len != zmq_msg_size(ident) ||
            memcmp(c->peer, zmq_msg_data(ident), c->peer_len) != 0)
            return fy_err_set(err, FERRY_ENOTFOUND, "no such consumer on this connection");
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
        fy_brk_reply_begin(self, ri, &r);
        st = fy_encode_ok(self->enc, req->cid);
    }
    return fy_brk_reply_finish(self, r, st);
}

/* Sends each consumer with credit what its subscription has (due redeliveries
 * first), one delivery per consumer per batch; consumers whose peer went
 * silent, or whose subscription is gone, are removed. Starts at a rotating
 * consumer so that competing consumers take turns. */
void
fy_brk_deliver(fy_broker_t *self)
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
        uint64_t held = c->held_bytes + c->used_bytes;
        if (avail == 0 || held >= FY_CONSUMER_BYTES_MAX)
            continue; /* no credit, or it holds enough bytes: memory stays bounded */
        size_t budget = FY_CONSUMER_BYTES_MAX - held < FY_REPLY_BYTES_MAX
                            ? (size_t)(FY_CONSUMER_BYTES_MAX - held)
                            : FY_REPLY_BYTES_MAX;
        size_t outs_mark = self->nouts, count = 0;
        self->item_bytes = 0;
        fy_encoder_reset(self->items);
        uint32_t max = avail < FY_BATCH_MAX ? (uint32_t)avail : FY_BATCH_MAX;
        fy_status_t st;
        if (c->ephemeral) {
            /* Reads only: the position lives in memory; nothing to ack. */
            fy_bytes_t topic = {c->topic, c->topic_len};
            self->nitems = 0;
            self->last_item_seq = 0;
            st = fy_store_read(self->store, topic, c->next_batch, max, budget, s_live_item, self,
                               &count);
            if (st == FERRY_OK && self->last_item_seq)
                c->next_batch = self->last_item_seq + 1;
            count = self->nitems;
        } else {
            self->delivering = c;
            self->item_redeliveries = 0;
            st = fy_store_fetch(self->store, c->sub_id, max, budget, s_fetch_item, self, &count);
            self->delivering = NULL;
            if (st == FERRY_OK)
                s_count_deliveries(self, c->sub_id, count);
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
        fy_brk_reply_t *r;
        fy_brk_reply_begin(self, SIZE_MAX, &r);
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
        fy_brk_reply_end(self, r);
        c->used += (uint32_t)count;
        c->used_bytes += self->item_bytes;
    }
}

fy_status_t
fy_brk_handle_sub(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    fy_sub_opts_t o = {.start = req->start,
                       .start_seq = req->seq,
                       .ack_wait_ms = req->ack_wait_ms,
                       .max_deliver = req->max_deliver,
                       .filter = req->filter};
    /* A topic's named subscription belongs to the user declaring it; a
     * queue's is the queue's (its permissions say who consumes). */
    const char *user = fy_brk_auth_user(self, ri);
    if (user && req->sub.len)
        o.owner = (fy_bytes_t){(const uint8_t *)user, strlen(user)};
    fy_sub_info_t info;
    bool created;
    /* sub_info finds only; sub_declare creates when missing. */
    fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub,
                                       req->op == FY_OP_SUB_INFO ? NULL : &o, &info, &created);
    if (st == FERRY_OK && !created)
        st = fy_brk_auth_sub(self, ri, req, info.owner, err);
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
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    st = fy_encode_sub_reply(self->enc, req->cid, info.cursor, info.ack_floor, info.ack_wait_ms,
                             info.max_deliver, info.last_seq, created);
    return fy_brk_reply_finish(self, r, st);
}

/* ack, nack, term, progress: applied in this batch's transaction, so an "ok"
 * means durable. */
fy_status_t
fy_brk_handle_ack(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    fy_sub_info_t info;
    bool created;
    fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created);
    if (st == FERRY_OK)
        st = fy_brk_auth_sub(self, ri, req, info.owner, err);
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
    if (st == FERRY_OK) {
        fy_sub_counts_t *sc = fy_substats_row(&self->substats, info.id);
        uint64_t *n = req->op == FY_OP_ACK    ? &sc->acks
                      : req->op == FY_OP_NACK ? &sc->nacks
                      : req->op == FY_OP_TERM ? &sc->terms
                                              : NULL;
        if (n)
            *n += req->seq_count;
    }
    if (st || req->noreply)
        return st;
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    st = fy_encode_ok(self->enc, req->cid);
    return fy_brk_reply_finish(self, r, st);
}
