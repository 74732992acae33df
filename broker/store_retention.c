/* SPDX-License-Identifier: MIT */
/*
 * store_retention.c - cleanup in bounded slices: removing deleted topics,
 * keeping topics within their limits (count, bytes, age), and the sweep
 * entry point the broker calls between batches.
 */
#include "store.h"
#include "store_int.h"

/* Drops the oldest messages while `t` is over max_msgs or max_bytes
 * (discard old). Each append trims what it pushed over, so the work per
 * message stays constant. */
fy_status_t
fy_storei_trim_to_limits(fy_store_t *self, fy_topic_rec_t *t)
{
    while (t->count > 0 &&
           ((t->max_msgs && t->count > t->max_msgs) || (t->max_bytes && t->bytes > t->max_bytes))) {
        uint64_t before = t->count;
        fy_status_t st = fy_storei_remove_message(self, t, t->first);
        if (st)
            return st;
        if (t->count == before)
            return FERRY_EIO; /* the record says there is a first message; there is none */
    }
    return FERRY_OK;
}

fy_status_t
fy_store_purge(fy_store_t *self, fy_bytes_t topic, uint64_t keep, uint64_t below, uint64_t max,
               uint64_t *removed, bool *more)
{
    *removed = 0;
    *more = false;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    while (st == FERRY_OK && t->count > keep && (below == 0 || t->first < below)) {
        if (*removed == max) {
            *more = true;
            break;
        }
        uint64_t before = t->count;
        if ((st = fy_storei_remove_message(self, t, t->first)) == FERRY_OK && t->count == before)
            st = FERRY_EIO; /* the record says there is a first message; there is none */
        *removed += st == FERRY_OK;
    }
    return st;
}

fy_status_t
fy_storei_del_prefix(fy_store_t *self, MDB_dbi dbi, uint64_t prefix, size_t *budget, bool *done)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, dbi, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    uint8_t key[8];
    fy_be64_put(key, prefix);
    MDB_val k = {8, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool mine = rc == 0 && k.mv_size >= 8 && fy_be64_get(k.mv_data) == prefix;
    while (mine && (!budget || *budget > 0)) {
        if (budget)
            (*budget)--;
        if ((rc = fy_storei_cursor_del(self, cur)))
            break;
        self->dirty = true;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* after a delete: the next item */
        mine = rc == 0 && k.mv_size >= 8 && fy_be64_get(k.mv_data) == prefix;
    }
    if (done)
        *done = !mine && (rc == 0 || rc == MDB_NOTFOUND);
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? FERRY_OK : fy_storei_mdb(self, rc, "delete prefix");
}

/* Removes messages and subscriptions of deleted topics. */
static fy_status_t
s_sweep_deleted(fy_store_t *self, size_t *budget, bool *more)
{
    MDB_val dk, dv;
    MDB_cursor *del;
    int rc = mdb_cursor_open(self->txn, self->deleted, &del);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    fy_status_t st = FERRY_OK;
    while ((rc = mdb_cursor_get(del, &dk, &dv, MDB_FIRST)) == 0 && dk.mv_size == 8) {
        uint64_t id = fy_be64_get(dk.mv_data);
        uint8_t key[16];
        fy_storei_msg_key(key, id, 0);
        MDB_val k = {16, key}, v;
        bool done = false;
        rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_SET_RANGE);
        while (true) {
            if (rc == MDB_NOTFOUND || (rc == 0 && fy_be64_get(k.mv_data) != id)) {
                done = true;
                break;
            }
            if (rc)
                break;
            if (*budget == 0)
                break;
            (*budget)--;
            if ((rc = fy_storei_cursor_del(self, self->msg_cur)))
                break;
            /* After a delete LMDB leaves the cursor on the next item: MDB_NEXT returns it. */
            rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_NEXT);
        }
        if (rc && rc != MDB_NOTFOUND) {
            st = fy_storei_mdb(self, rc, "sweep messages");
            break;
        }
        self->dirty = true;
        if (done && (st = fy_storei_del_prefix(self, self->keyidx, id, budget, &done)))
            break;
        if (!done) {
            *more = true;
            break;
        }
        if ((st = fy_storei_drop_subs_of(self, id)))
            break;
        if ((rc = fy_storei_cursor_del(self, del))) {
            st = fy_storei_mdb(self, rc, "sweep deleted");
            break;
        }
        rc = 0;
    }
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "sweep deleted next");
    mdb_cursor_close(del);
    return st;
}

/* Trims the front of one topic: what every subscription acked (interest
 * retention) and what is older than max_age_ms. */
static fy_status_t
s_trim_front(fy_store_t *self, fy_topic_rec_t *t, size_t *budget, bool *more)
{
    fy_status_t st;
    uint64_t floor = 0;
    bool any = false;
    if (t->interest && (st = fy_storei_min_floor(self, t->id, &floor, &any)))
        return st;
    while (t->count > 0) {
        bool drop = t->interest && any && t->first <= floor;
        if (!drop && t->max_age_ms) {
            uint8_t key[16];
            fy_storei_msg_key(key, t->id, t->first);
            MDB_val mk = {16, key}, mv;
            fy_stored_t m;
            int rc = mdb_get(self->txn, self->messages, &mk, &mv);
            if (rc || !fy_storei_parse_message(&mk, &mv, &m))
                return rc ? fy_storei_mdb(self, rc, "get message") : FERRY_EIO;
            drop = m.ts_ms + t->max_age_ms <= self->now_ms;
        }
        if (!drop)
            return FERRY_OK;
        if (*budget == 0) {
            *more = true;
            return FERRY_OK;
        }
        (*budget)--;
        if ((st = fy_storei_remove_message(self, t, t->first)))
            return st;
    }
    return FERRY_OK;
}

/* Applies max age and interest retention to every topic that has them,
 * walking the topic records (one small record each) 64 names at a time. */
static fy_status_t
s_sweep_retention(fy_store_t *self, size_t *budget, bool *more)
{
    uint8_t names[64][FY_NAME_MAX];
    size_t lens[64];
    uint8_t last[FY_NAME_MAX];
    size_t last_len = 0;
    for (;;) {
        MDB_cursor *cur;
        int rc = mdb_cursor_open(self->txn, self->topics, &cur);
        if (rc)
            return fy_storei_mdb(self, rc, "cursor open");
        MDB_val k = {last_len, last}, v;
        rc = mdb_cursor_get(cur, &k, &v, last_len ? MDB_SET_RANGE : MDB_FIRST);
        if (rc == 0 && last_len && k.mv_size == last_len && !memcmp(k.mv_data, last, last_len))
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        /* Collect names first: trimming writes topic records. */
        size_t n = 0;
        for (; rc == 0 && n < 64; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            fy_topic_rec_t t;
            if (k.mv_size > FY_NAME_MAX || !fy_storei_topic_decode(&v, &t))
                continue;
            memcpy(last, k.mv_data, k.mv_size);
            last_len = k.mv_size;
            if ((t.max_age_ms || t.interest) && t.count > 0) {
                memcpy(names[n], k.mv_data, k.mv_size);
                lens[n++] = k.mv_size;
            }
        }
        bool end = rc == MDB_NOTFOUND;
        mdb_cursor_close(cur);
        if (rc && rc != MDB_NOTFOUND)
            return fy_storei_mdb(self, rc, "sweep retention");
        for (size_t i = 0; i < n; i++) {
            fy_topic_rec_t *t;
            fy_status_t st = fy_storei_topic_get(self, (fy_bytes_t){names[i], lens[i]}, &t);
            if (st || (t && (st = s_trim_front(self, t, budget, more))))
                return st;
            if (*more)
                return FERRY_OK;
        }
        if (end)
            return FERRY_OK;
    }
}

fy_status_t
fy_store_sweep(fy_store_t *self, size_t budget, bool *more)
{
    *more = false;
    fy_status_t st = fy_storei_sweep_dedupe(self, &budget, more);
    if (st == FERRY_OK)
        st = s_sweep_deleted(self, &budget, more);
    return st ? st : s_sweep_retention(self, &budget, more);
}
