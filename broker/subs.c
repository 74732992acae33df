/* SPDX-License-Identifier: MIT */
/*
 * subs.c - durable subscriptions of the store, their deliveries: cursors,
 * ack floors, acks above the floor, redelivery entries and the ack-wait
 * timer index (see store.h; the records themselves are in sub_records.c).
 * Runs inside the store's batch transaction, like store.c.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"
#include "subject.h"

static void
s_key2(uint8_t *key, uint64_t a, uint64_t b)
{
    fy_be64_put(key, a);
    fy_be64_put(key + 8, b);
}

static fy_status_t
s_timer_put(fy_store_t *self, uint64_t deadline, uint64_t sub_id, uint64_t first, uint64_t last)
{
    uint8_t key[32];
    s_key2(key, deadline, sub_id);
    s_key2(key + 16, first, last);
    MDB_val k = {32, key}, v = {0, NULL};
    self->dirty = true;
    return fy_storei_set(self, self->timers, &k, &v, "put timer");
}

static fy_status_t s_pend_put(fy_store_t *self, uint64_t sub_id, uint64_t seq, uint32_t dc,
                              uint64_t deadline);

/* Delivers new messages; the reply already holds @p have messages of
 * @p used budget bytes (a fetch's redeliveries). */
static fy_status_t
s_deliver_new(fy_store_t *self, uint64_t sub_id, uint32_t max, size_t max_bytes, size_t have,
              size_t used, fy_store_deliver_fn fn, void *user, size_t *count)
{
    *count = 0;
    fy_sub_rec_t *sub;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_sub_need(self, sub_id, &sub);
    if (st || (st = fy_storei_sub_topic(self, sub, &t)))
        return st;
    if (!t)
        return FERRY_ENOTFOUND;
    if (sub->cursor > t->last || max == 0)
        return FERRY_OK;
    uint8_t key[16];
    fy_storei_msg_key(key, t->id, sub->cursor);
    MDB_val k = {16, key}, v;
    uint64_t first = 0, last = 0, scanned_to = 0, cut_at = 0;
    /* With a filter, messages whose key does not match are skipped (and acked
     * below); the scan is bounded so that a sparse filter cannot stall a turn. */
    fy_bytes_t filter = {sub->filter, sub->filter_len};
    uint64_t skipped[256];
    size_t nskipped = 0, scan_left = (size_t)max * 4 + 1024;
    int rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *count < max && scan_left-- > 0 && nskipped < 256) {
        fy_stored_t m;
        if (k.mv_size != 16 || fy_be64_get(k.mv_data) != t->id ||
            !fy_storei_parse_message(&k, &v, &m))
            break;
        size_t cost = fy_stored_cost(&m);
        if (have + *count > 0 && used + cost > max_bytes &&
            !(filter.len && !fy_subject_match(filter, m.key)) && m.not_before_ms <= self->now_ms) {
            cut_at = m.seq; /* the reply is full: this one goes in the next */
            break;
        }
        scanned_to = m.seq;
        if (filter.len && !fy_subject_match(filter, m.key)) {
            skipped[nskipped++] = m.seq;
        } else if (m.not_before_ms > self->now_ms) {
            /* Delayed: passed over now, given its own entry (no delivery yet)
             * and a timer for its time; from then on it is due like a nack. */
            uint64_t seq = m.seq, nb = m.not_before_ms;
            if ((st = s_pend_put(self, sub->id, seq, 0, nb)) ||
                (st = s_timer_put(self, nb, sub->id, seq, seq)))
                return st;
            /* The puts may have moved the cursor's page: stand on seq again. */
            fy_storei_msg_key(key, t->id, seq);
            k.mv_size = 16;
            k.mv_data = key;
            rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_SET_KEY);
            if (rc)
                return fy_storei_mdb(self, rc, "deliver reposition");
        } else {
            used += cost;
            if ((st = fn(user, &m, 1)))
                return st;
            if (!first)
                first = m.seq;
            last = m.seq;
            (*count)++;
        }
        rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_NEXT);
    }
    if (rc && rc != MDB_NOTFOUND)
        return fy_storei_mdb(self, rc, "deliver");
    /* Past the last looked at; or past the end when the scan ran out of messages. */
    bool at_end = rc == MDB_NOTFOUND || (rc == 0 && fy_be64_get(k.mv_data) != t->id);
    uint64_t next = scanned_to ? scanned_to + 1 : t->last + 1;
    if (at_end && (!scanned_to || *count < max))
        next = t->last + 1;
    if (cut_at)
        next = cut_at; /* the cursor stays on the message left out */
    if (next != sub->cursor) {
        sub->cursor = next;
        sub->dirty = true;
        self->dirty = true;
    }
    for (size_t i = 0; i < nskipped; i++)
        if ((st = fy_store_ack(self, sub->id, skipped[i])))
            return st;
    if (*count)
        return s_timer_put(self, self->now_ms + sub->ack_wait_ms, sub->id, first, last);
    return FERRY_OK;
}

fy_status_t
fy_store_deliver_new(fy_store_t *self, uint64_t sub_id, uint32_t max, size_t max_bytes,
                     fy_store_deliver_fn fn, void *user, size_t *count)
{
    return s_deliver_new(self, sub_id, max, max_bytes, 0, 0, fn, user, count);
}

/* Is `seq` acked by `sub`? */
static fy_status_t
s_acked(fy_store_t *self, const fy_sub_rec_t *sub, uint64_t seq, bool *acked)
{
    *acked = true;
    if (seq <= sub->floor)
        return FERRY_OK;
    uint8_t key[16];
    s_key2(key, sub->id, seq);
    MDB_val k = {16, key}, v;
    int rc = mdb_get(self->txn, self->acks, &k, &v);
    if (rc == MDB_NOTFOUND) {
        *acked = false;
        return FERRY_OK;
    }
    return fy_storei_mdb(self, rc, "get ack");
}

/* The per-message entry of a message delivered more than once. */
static fy_status_t
s_pend_get(fy_store_t *self, uint64_t sub_id, uint64_t seq, uint32_t *dc, uint64_t *deadline)
{
    uint8_t key[16];
    s_key2(key, sub_id, seq);
    MDB_val k = {16, key}, v;
    int rc = mdb_get(self->txn, self->pend, &k, &v);
    *dc = 1;
    *deadline = 0;
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "get pend");
    if (v.mv_size != 12)
        return FERRY_EIO;
    *dc = fy_be32_get(v.mv_data);
    *deadline = fy_be64_get((const uint8_t *)v.mv_data + 4);
    return FERRY_OK;
}

/* Writes the per-message entry: delivery count and the deadline it is due at. */
static fy_status_t
s_pend_put(fy_store_t *self, uint64_t sub_id, uint64_t seq, uint32_t dc, uint64_t deadline)
{
    uint8_t pk[16], pv[12];
    s_key2(pk, sub_id, seq);
    fy_be32_put(pv, dc);
    fy_be64_put(pv + 4, deadline);
    MDB_val pkv = {16, pk}, pvv = {12, pv};
    self->dirty = true;
    return fy_storei_set(self, self->pend, &pkv, &pvv, "put pend");
}

fy_status_t
fy_store_is_acked(fy_store_t *self, uint64_t sub_id, uint64_t seq, bool *acked)
{
    fy_sub_rec_t *sub;
    fy_status_t st = fy_storei_sub_by_id(self, sub_id, &sub);
    *acked = true;
    if (st || !sub)
        return st;
    return s_acked(self, sub, seq, acked);
}

/* Delivers `seq` again if it is still unacked and its message exists: counts
 * the delivery and arms its own ack-wait timer. When the count would pass
 * max_deliver, nothing is delivered and *exhausted is set; when its *cost
 * is more than @p room (and not @p may_exceed), nothing happens and *full
 * is set. */
static fy_status_t
s_redeliver(fy_store_t *self, uint64_t sub_id, uint64_t seq, size_t room, bool may_exceed,
            fy_store_deliver_fn fn, void *user, bool *delivered, bool *exhausted, bool *full,
            size_t *cost)
{
    *delivered = *exhausted = *full = false;
    *cost = 0;
    fy_sub_rec_t *sub;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_sub_by_id(self, sub_id, &sub);
    if (st || !sub)
        return st;
    if ((st = fy_storei_sub_topic(self, sub, &t)) || !t)
        return st;
    bool acked;
    if (seq >= sub->cursor || (st = s_acked(self, sub, seq, &acked)) || acked)
        return st;
    uint8_t key[16];
    fy_storei_msg_key(key, t->id, seq);
    MDB_val k = {16, key}, v;
    int rc = mdb_get(self->txn, self->messages, &k, &v);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK; /* removed by retention: nothing to deliver */
    if (rc)
        return fy_storei_mdb(self, rc, "get message");
    fy_stored_t m;
    if (!fy_storei_parse_message(&k, &v, &m))
        return FERRY_EIO;
    uint32_t dc;
    uint64_t deadline;
    if ((st = s_pend_get(self, sub->id, seq, &dc, &deadline)))
        return st;
    if (dc >= sub->max_deliver) {
        *exhausted = true;
        return FERRY_OK;
    }
    *cost = fy_stored_cost(&m);
    if (!may_exceed && *cost > room) {
        *full = true; /* no room in this reply: it stays due for the next one */
        return FERRY_OK;
    }
    dc++;
    deadline = self->now_ms + sub->ack_wait_ms;
    if ((st = s_pend_put(self, sub->id, seq, dc, deadline)) ||
        (st = s_timer_put(self, deadline, sub->id, seq, seq)))
        return st;
    /* `m` points into the map; the puts above may have moved pages: read again. */
    rc = mdb_get(self->txn, self->messages, &k, &v);
    if (rc || !fy_storei_parse_message(&k, &v, &m))
        return rc ? fy_storei_mdb(self, rc, "get message") : FERRY_EIO;
    *delivered = true;
    return fn(user, &m, dc);
}

fy_status_t
fy_store_ack(fy_store_t *self, uint64_t sub_id, uint64_t seq)
{
    fy_sub_rec_t *sub;
    fy_status_t st = fy_storei_sub_need(self, sub_id, &sub);
    if (st)
        return st;
    if (seq <= sub->floor)
        return FERRY_OK;
    if (seq >= sub->cursor)
        return FERRY_ESEQ;
    uint8_t key[16];
    s_key2(key, sub->id, seq);
    MDB_val k = {16, key}, v = {0, NULL};
    self->dirty = true;
    if (seq == sub->floor + 1) {
        /* Advance the floor over any acks that were waiting above it. */
        sub->floor = seq;
        MDB_cursor *cur;
        int rc = mdb_cursor_open(self->txn, self->acks, &cur);
        if (rc)
            return fy_storei_mdb(self, rc, "cursor open");
        uint8_t nk[16];
        s_key2(nk, sub->id, sub->floor + 1);
        MDB_val ck = {16, nk}, cv;
        while ((rc = mdb_cursor_get(cur, &ck, &cv, MDB_SET)) == 0) {
            if ((rc = fy_storei_cursor_del(self, cur)))
                break;
            sub->floor++;
            s_key2(nk, sub->id, sub->floor + 1);
            ck.mv_size = 16;
            ck.mv_data = nk;
        }
        mdb_cursor_close(cur);
        if (rc != MDB_NOTFOUND)
            return fy_storei_mdb(self, rc, "advance ack floor");
    } else {
        if ((st = fy_storei_set(self, self->acks, &k, &v, "put ack")))
            return st;
    }
    sub->dirty = true;
    int rc = fy_storei_del(self, self->txn, self->pend, &k);
    if (rc && rc != MDB_NOTFOUND)
        return fy_storei_mdb(self, rc, "delete pend");
    fy_topic_rec_t *t;
    if ((st = fy_storei_sub_topic(self, sub, &t)))
        return st;
    if (t && t->kind == FY_KIND_QUEUE)
        return fy_storei_remove_message(self, t, seq);
    return FERRY_OK;
}

static fy_status_t
s_mark_due(fy_store_t *self, uint64_t sub_id, uint64_t seq)
{
    uint8_t key[16];
    s_key2(key, sub_id, seq);
    MDB_val k = {16, key}, v = {0, NULL};
    self->dirty = true;
    return fy_storei_set(self, self->due, &k, &v, "put due");
}

fy_status_t
fy_store_timers_due(fy_store_t *self, size_t budget, size_t *due, bool *more)
{
    *more = false;
    *due = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->timers, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    fy_status_t st = FERRY_OK;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size != 32) {
            st = FERRY_EIO;
            break;
        }
        const uint8_t *tk = k.mv_data;
        if (fy_be64_get(tk) > self->now_ms)
            break;
        if (budget == 0) {
            *more = true;
            break;
        }
        uint64_t sub_id = fy_be64_get(tk + 8), first = fy_be64_get(tk + 16),
                 last = fy_be64_get(tk + 24);
        fy_sub_rec_t *sub;
        if ((st = fy_storei_sub_by_id(self, sub_id, &sub)))
            break;
        for (uint64_t seq = first; sub && seq >= first && seq <= last; seq++) {
            budget = budget ? budget - 1 : 0;
            bool acked;
            uint32_t dc = 1;
            uint64_t deadline = 0;
            if ((st = s_acked(self, sub, seq, &acked)) ||
                (!acked && (st = s_pend_get(self, sub_id, seq, &dc, &deadline))))
                break;
            /* A message with a later deadline of its own was re-timed (redelivered
             * or nacked since): that timer will speak for it. */
            if (!acked && deadline <= self->now_ms) {
                if ((st = s_mark_due(self, sub_id, seq)))
                    break;
                (*due)++;
            }
        }
        if (st)
            break;
        if ((rc = fy_storei_cursor_del(self, cur))) {
            st = fy_storei_mdb(self, rc, "delete timer");
            break;
        }
        self->dirty = true;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "timers next");
    mdb_cursor_close(cur);
    return st;
}

fy_status_t
fy_store_nack(fy_store_t *self, uint64_t sub_id, uint64_t seq, uint64_t delay_ms)
{
    fy_sub_rec_t *sub;
    fy_status_t st = fy_storei_sub_need(self, sub_id, &sub);
    if (st)
        return st;
    if (seq >= sub->cursor)
        return FERRY_ESEQ;
    bool acked;
    uint32_t dc;
    uint64_t deadline;
    if ((st = s_acked(self, sub, seq, &acked)) || acked ||
        (st = s_pend_get(self, sub->id, seq, &dc, &deadline)))
        return st;
    deadline = self->now_ms + delay_ms;
    if ((st = s_pend_put(self, sub->id, seq, dc, deadline)))
        return st;
    return delay_ms ? s_timer_put(self, deadline, sub->id, seq, seq)
                    : s_mark_due(self, sub->id, seq);
}

/* Moves message `seq` of `sub` to the topic's dead-letter topic with the
 * reason in its headers, then acks it: after max_deliver nothing is left to
 * loop on, and nothing is dropped without a trace. */
static fy_status_t
s_dead_letter(fy_store_t *self, fy_sub_rec_t *sub, uint64_t seq, uint32_t deliveries,
              const char *reason, fy_bytes_t error)
{
    char dlq[FY_NAME_MAX + 8];
    int n = snprintf(dlq, sizeof dlq, "%.*s.dlq", (int)sub->topic_len, (const char *)sub->topic);
    if (n < 0 || n > FY_NAME_MAX) {
        fy_log(self->log, FY_LOG_ERROR, "store", "no dead-letter topic name fits",
               "topic_id=%llu seq=%llu", (unsigned long long)sub->topic_id,
               (unsigned long long)seq);
        return FERRY_OK; /* stays pending, logged */
    }
    uint8_t key[16];
    fy_storei_msg_key(key, sub->topic_id, seq);
    MDB_val k = {16, key}, v;
    int rc = mdb_get(self->txn, self->messages, &k, &v);
    if (rc == MDB_NOTFOUND)
        return fy_store_ack(self, sub->id, seq);
    fy_stored_t m;
    if (rc || !fy_storei_parse_message(&k, &v, &m))
        return rc ? fy_storei_mdb(self, rc, "get message") : FERRY_EIO;
    /* Copy out of the map: the appends below may rewrite the page it is on. */
    size_t total = m.key.len + m.id.len + m.payload.len;
    uint8_t *copy = malloc(total ? total : 1);
    if (!copy)
        return FERRY_ENOMEM;
    memcpy(copy, m.key.ptr, m.key.len);
    memcpy(copy + m.key.len, m.payload.ptr, m.payload.len);
    char seqtext[24], dctext[16], topic[FY_NAME_MAX + 1];
    snprintf(seqtext, sizeof seqtext, "%llu", (unsigned long long)seq);
    snprintf(dctext, sizeof dctext, "%u", deliveries);
    snprintf(topic, sizeof topic, "%.*s", (int)sub->topic_len, (const char *)sub->topic);
    char errtext[FY_ERROR_TEXT_MAX + 1];
    snprintf(errtext, sizeof errtext, "%.*s", (int)error.len, (const char *)error.ptr);
    fy_header_t extra[] = {{"ferry-dlq-topic", topic},
                           {"ferry-dlq-seq", seqtext},
                           {"ferry-dlq-deliveries", dctext},
                           {"ferry-dlq-reason", reason},
                           {"ferry-dlq-error", errtext}};
    fy_encoder_reset(self->scratch);
    fy_status_t st = fy_headers_merge(self->scratch, m.hdrs, extra, error.len ? 5 : 4);
    if (st == FERRY_OK) {
        fy_topic_info_t info;
        bool created;
        fy_pubmeta_t meta = {
            .key = {copy, m.key.len},
            .hdrs = {fy_encoder_data(self->scratch), fy_encoder_len(self->scratch)}};
        fy_bytes_t payload = {copy + m.key.len, m.payload.len};
        uint64_t dseq, kver;
        bool dup;
        fy_conflict_t conflict;
        /* Moving a message aside must work near the limit too. */
        self->use_reserve = true;
        st = fy_store_declare(self, (fy_bytes_t){(const uint8_t *)dlq, (size_t)n}, FY_KIND_TOPIC,
                              NULL, &info, &created);
        if (st == FERRY_EEXISTS)
            st = FERRY_OK; /* a queue of that name: it takes dead letters as well */
        if (st == FERRY_OK)
            st = fy_store_append(self, (fy_bytes_t){(const uint8_t *)dlq, (size_t)n}, &meta,
                                 &payload, 1, &dseq, &dup, &kver, &conflict);
        self->use_reserve = false;
    }
    free(copy);
    if (st == FERRY_OK) {
        fy_log(self->log, FY_LOG_INFO, "store", "dead-lettered", "topic=%s seq=%llu reason=%s",
               topic, (unsigned long long)seq, reason);
        if (self->on_dead_letter)
            self->on_dead_letter(self->dead_letter_user, sub->id);
    }
    return st ? st : fy_store_ack(self, sub->id, seq);
}

fy_status_t
fy_store_fetch(fy_store_t *self, uint64_t sub_id, uint32_t max, size_t max_bytes,
               fy_store_deliver_fn fn, void *user, size_t *count)
{
    *count = 0;
    size_t used = 0;
    fy_sub_rec_t *sub;
    fy_status_t st = fy_storei_sub_need(self, sub_id, &sub);
    if (st)
        return st;
    /* Due redeliveries first, in sequence order. */
    for (;;) {
        if (*count >= max)
            return FERRY_OK;
        uint8_t key[16];
        s_key2(key, sub_id, 0);
        MDB_val k = {16, key}, v;
        MDB_cursor *cur;
        int rc = mdb_cursor_open(self->txn, self->due, &cur);
        if (rc)
            return fy_storei_mdb(self, rc, "cursor open");
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        uint64_t seq = 0;
        if (rc == 0 && k.mv_size == 16 && fy_be64_get(k.mv_data) == sub_id) {
            seq = fy_be64_get((const uint8_t *)k.mv_data + 8);
            rc = fy_storei_cursor_del(self, cur);
        } else if (rc == MDB_NOTFOUND || rc == 0) {
            rc = 0;
        }
        mdb_cursor_close(cur);
        if (rc)
            return fy_storei_mdb(self, rc, "take due");
        if (!seq)
            break;
        self->dirty = true;
        uint32_t dc;
        uint64_t deadline;
        if ((st = s_pend_get(self, sub_id, seq, &dc, &deadline)))
            return st;
        if (deadline > self->now_ms)
            continue; /* nacked with a delay since it was marked: its timer decides */
        bool delivered, exhausted, full;
        size_t cost;
        if ((st = s_redeliver(self, sub_id, seq, used < max_bytes ? max_bytes - used : 0,
                              *count == 0, fn, user, &delivered, &exhausted, &full, &cost)))
            return st;
        if (full) /* the reply is full: it stays due, for the next fetch */
            return s_mark_due(self, sub_id, seq);
        used += delivered ? cost : 0;
        if (exhausted &&
            (st = s_dead_letter(self, sub, seq, dc, "max-deliver", (fy_bytes_t){NULL, 0})))
            return st;
        if (delivered)
            (*count)++;
        /* s_dead_letter may have grown the subscription cache: look it up again. */
        if ((st = fy_storei_sub_by_id(self, sub_id, &sub)) || !sub)
            return st ? st : FERRY_ENOTFOUND;
    }
    size_t fresh = 0;
    st = s_deliver_new(self, sub_id, max - (uint32_t)*count, max_bytes, *count, used, fn, user,
                       &fresh);
    *count += fresh;
    return st;
}

/* The subscription and delivery count of a delivered, unacked `seq`; *sub
 * NULL when there is nothing to do (already acked). */
static fy_status_t
s_pending_of(fy_store_t *self, uint64_t sub_id, uint64_t seq, fy_sub_rec_t **sub, uint32_t *dc,
             uint64_t *deadline)
{
    fy_status_t st = fy_storei_sub_by_id(self, sub_id, sub);
    if (st)
        return st;
    if (!*sub)
        return FERRY_ENOTFOUND;
    if (seq >= (*sub)->cursor)
        return FERRY_ESEQ;
    bool acked;
    if ((st = s_acked(self, *sub, seq, &acked)))
        return st;
    if (acked) {
        *sub = NULL;
        return FERRY_OK;
    }
    return s_pend_get(self, sub_id, seq, dc, deadline);
}

fy_status_t
fy_store_term(fy_store_t *self, uint64_t sub_id, uint64_t seq, fy_bytes_t error)
{
    fy_sub_rec_t *sub;
    uint32_t dc;
    uint64_t deadline;
    fy_status_t st = s_pending_of(self, sub_id, seq, &sub, &dc, &deadline);
    if (st || !sub)
        return st;
    return s_dead_letter(self, sub, seq, dc, "terminated", error);
}

fy_status_t
fy_store_progress(fy_store_t *self, uint64_t sub_id, uint64_t seq)
{
    fy_sub_rec_t *sub;
    uint32_t dc;
    uint64_t deadline;
    fy_status_t st = s_pending_of(self, sub_id, seq, &sub, &dc, &deadline);
    if (st || !sub)
        return st;
    /* Its own entry with a later deadline: the range timer will skip it. */
    deadline = self->now_ms + sub->ack_wait_ms;
    if ((st = s_pend_put(self, sub->id, seq, dc, deadline)))
        return st;
    return s_timer_put(self, deadline, sub->id, seq, seq);
}
