/* SPDX-License-Identifier: MIT */
/*
 * sub_records.c - the store's subscription records: their encoding
 * (docs/storage.md), the batch's cache of them, creating, finding,
 * deleting, and the lowest ack floor of a topic (see store.h). Deliveries
 * and acks are in subs.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"

#define S_ACK_WAIT_DEFAULT_MS 30000
#define S_MAX_DELIVER_DEFAULT 5

static void
s_sub_encode(const fy_sub_rec_t *sub, uint8_t *rec)
{
    memset(rec, 0, S_SUB_REC);
    size_t owner_len = strlen(sub->owner);
    rec[0] = 1;
    rec[1] = (uint8_t)owner_len;
    rec[2] = (uint8_t)sub->filter_len;
    fy_be64_put(rec + 8, sub->id);
    fy_be64_put(rec + 16, sub->cursor);
    fy_be64_put(rec + 24, sub->floor);
    fy_be64_put(rec + 32, sub->ack_wait_ms);
    fy_be64_put(rec + 40, sub->max_deliver);
    fy_be64_put(rec + 48, sub->created_ms);
    fy_be64_put(rec + 56, sub->topic_id);
    memcpy(rec + S_SUB_REC, sub->topic, sub->topic_len);
    memcpy(rec + S_SUB_REC + sub->topic_len, sub->filter, sub->filter_len);
    memcpy(rec + S_SUB_REC + sub->topic_len + sub->filter_len, sub->owner, owner_len);
}

static bool
s_sub_decode(const MDB_val *k, const MDB_val *v, fy_sub_rec_t *sub)
{
    const uint8_t *rec = v->mv_data;
    if (v->mv_size < S_SUB_REC || rec[0] != 1 || k->mv_size < 8 || k->mv_size > sizeof sub->key)
        return false;
    sub->filter_len = rec[2];
    size_t owner_len = rec[1]; /* 0 in records from before format 5 */
    if (owner_len > FY_SUB_OWNER_MAX || v->mv_size < S_SUB_REC + sub->filter_len + owner_len ||
        v->mv_size - S_SUB_REC - sub->filter_len - owner_len > FY_NAME_MAX)
        return false;
    sub->id = fy_be64_get(rec + 8);
    sub->cursor = fy_be64_get(rec + 16);
    sub->floor = fy_be64_get(rec + 24);
    sub->ack_wait_ms = fy_be64_get(rec + 32);
    sub->max_deliver = fy_be64_get(rec + 40);
    sub->created_ms = fy_be64_get(rec + 48);
    sub->topic_id = fy_be64_get(rec + 56);
    sub->topic_len = v->mv_size - S_SUB_REC - sub->filter_len - owner_len;
    memcpy(sub->topic, rec + S_SUB_REC, sub->topic_len);
    memcpy(sub->filter, rec + S_SUB_REC + sub->topic_len, sub->filter_len);
    memcpy(sub->owner, rec + S_SUB_REC + sub->topic_len + sub->filter_len, owner_len);
    sub->owner[owner_len] = '\0';
    sub->key_len = k->mv_size;
    memcpy(sub->key, k->mv_data, k->mv_size);
    sub->dirty = false;
    return true;
}

size_t
fy_storei_sub_kv(const void *rec, MDB_val *key, uint8_t *buf)
{
    const fy_sub_rec_t *sub = rec;
    _Static_assert(S_SUB_REC + 2 * FY_NAME_MAX + FY_SUB_OWNER_MAX <= FY_RECCACHE_VALUE_MAX,
                   "subscription record");
    s_sub_encode(sub, buf);
    *key = (MDB_val){sub->key_len, (void *)sub->key};
    return S_SUB_REC + sub->topic_len + sub->filter_len + strlen(sub->owner);
}

static fy_status_t
s_sub_put(fy_store_t *self, fy_sub_rec_t *sub)
{
    return fy_storei_mdb(self, fy_reccache_put(&self->subs_cache, self->txn, self->subs, sub),
                         "put sub");
}

fy_status_t
fy_storei_flush_subs(fy_store_t *self)
{
    return fy_storei_mdb(self, fy_reccache_flush(&self->subs_cache, self->txn, self->subs),
                         "put sub");
}

static fy_status_t
s_sub_slot(fy_store_t *self, fy_sub_rec_t **out)
{
    *out = fy_reccache_slot(&self->subs_cache);
    return *out ? FERRY_OK : FERRY_ENOMEM;
}

/* Loads the subscription stored under `key` into the batch cache. */
static fy_status_t
s_sub_load(fy_store_t *self, const MDB_val *key, fy_sub_rec_t **out)
{
    *out = NULL;
    MDB_val v;
    int rc = mdb_get(self->txn, self->subs, (MDB_val *)key, &v);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "get sub");
    fy_sub_rec_t *slot;
    fy_status_t st = s_sub_slot(self, &slot);
    if (st)
        return st;
    if (!s_sub_decode(key, &v, slot)) {
        fy_log(self->log, FY_LOG_ERROR, "store", "corrupt subscription record", NULL);
        return FERRY_EIO;
    }
    fy_reccache_push(&self->subs_cache);
    *out = slot;
    return FERRY_OK;
}

static bool
s_sub_match_id(const void *rec, const void *key)
{
    return ((const fy_sub_rec_t *)rec)->id == *(const uint64_t *)key;
}

static bool
s_sub_match_key(const void *rec, const void *key)
{
    const fy_sub_rec_t *sub = rec;
    const MDB_val *k = key;
    return sub->key_len == k->mv_size && memcmp(sub->key, k->mv_data, k->mv_size) == 0;
}

fy_status_t
fy_storei_sub_by_id(fy_store_t *self, uint64_t id, fy_sub_rec_t **out)
{
    *out = fy_reccache_find(&self->subs_cache, s_sub_match_id, &id);
    if (*out)
        return FERRY_OK;
    uint8_t idk[8];
    fy_be64_put(idk, id);
    MDB_val k = {8, idk}, v;
    int rc = mdb_get(self->txn, self->sub_ids, &k, &v);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "get sub id");
    uint8_t key[8 + FY_NAME_MAX];
    if (v.mv_size < 8 || v.mv_size > sizeof key)
        return FERRY_EIO;
    memcpy(key, v.mv_data, v.mv_size);
    MDB_val sk = {v.mv_size, key};
    return s_sub_load(self, &sk, out);
}

/* As fy_storei_sub_by_id, but a subscription that does not exist is FERRY_ENOTFOUND. */
fy_status_t
fy_storei_sub_need(fy_store_t *self, uint64_t sub_id, fy_sub_rec_t **out)
{
    fy_status_t st = fy_storei_sub_by_id(self, sub_id, out);
    return st ? st : *out ? FERRY_OK : FERRY_ENOTFOUND;
}

static fy_status_t
s_sub_by_name(fy_store_t *self, uint64_t topic_id, fy_bytes_t name, fy_sub_rec_t **out)
{
    uint8_t key[8 + FY_NAME_MAX];
    fy_be64_put(key, topic_id);
    if (name.len) /* a queue's subscription has an empty name */
        memcpy(key + 8, name.ptr, name.len);
    MDB_val k = {8 + name.len, key};
    *out = fy_reccache_find(&self->subs_cache, s_sub_match_key, &k);
    if (*out)
        return FERRY_OK;
    return s_sub_load(self, &k, out);
}

/* The first sequence of `t` stored at or after `time_ms`, by binary search
 * over sequences (store times grow with sequences); past the end if none. */
static fy_status_t
s_seq_at_time(fy_store_t *self, const fy_topic_rec_t *t, uint64_t time_ms, uint64_t *seq)
{
    uint64_t lo = t->count ? t->first : t->last + 1, hi = t->last + 1;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->messages, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint8_t key[16];
        fy_storei_msg_key(key, t->id, mid);
        MDB_val k = {16, key}, v;
        fy_stored_t m;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && fy_be64_get(k.mv_data) != t->id)) {
            hi = mid; /* nothing stored from mid on */
            rc = 0;
            continue;
        }
        if (rc || !fy_storei_parse_message(&k, &v, &m))
            break;
        if (m.ts_ms >= time_ms)
            hi = mid;
        else
            lo = m.seq + 1;
    }
    mdb_cursor_close(cur);
    if (rc)
        return fy_storei_mdb(self, rc, "seek time");
    *seq = lo;
    return FERRY_OK;
}

fy_status_t
fy_storei_sub_create(fy_store_t *self, const fy_topic_rec_t *t, fy_bytes_t name,
                     const fy_sub_opts_t *o, fy_sub_rec_t **out)
{
    uint64_t id = 1;
    bool found;
    fy_status_t st = fy_storei_meta_get(self, self->txn, "next_sub_id", &id, &found);
    if (st || (st = fy_storei_meta_put(self, self->txn, "next_sub_id", id + 1)))
        return st;
    fy_sub_rec_t *sub;
    if ((st = s_sub_slot(self, &sub)))
        return st;
    memset(sub, 0, sizeof *sub);
    sub->id = id;
    sub->topic_id = t->id;
    switch (o->start) {
    case FY_START_FIRST:
        sub->cursor = t->count ? t->first : t->last + 1;
        break;
    case FY_START_NEW:
        sub->cursor = t->last + 1;
        break;
    case FY_START_SEQ:
        sub->cursor = o->start_seq ? o->start_seq : 1;
        break;
    case FY_START_TIME:
        if ((st = s_seq_at_time(self, t, o->start_seq, &sub->cursor)))
            return st;
        break;
    }
    sub->floor = sub->cursor - 1;
    sub->ack_wait_ms = o->ack_wait_ms ? o->ack_wait_ms : S_ACK_WAIT_DEFAULT_MS;
    sub->max_deliver = o->max_deliver ? o->max_deliver : S_MAX_DELIVER_DEFAULT;
    sub->created_ms = self->now_ms;
    fy_be64_put(sub->key, t->id);
    if (name.len)
        memcpy(sub->key + 8, name.ptr, name.len);
    sub->key_len = 8 + name.len;
    memcpy(sub->topic, t->name, t->name_len);
    sub->topic_len = t->name_len;
    if (o->filter.len && o->filter.len <= FY_NAME_MAX) {
        memcpy(sub->filter, o->filter.ptr, o->filter.len);
        sub->filter_len = o->filter.len;
    }
    if (o->owner.len && o->owner.len <= FY_SUB_OWNER_MAX)
        memcpy(sub->owner, o->owner.ptr, o->owner.len); /* memset above: terminated */
    fy_reccache_push(&self->subs_cache);
    self->dirty = true;
    uint8_t idk[8];
    fy_be64_put(idk, id);
    MDB_val k = {8, idk}, v = {sub->key_len, sub->key};
    if ((st = fy_storei_set(self, self->sub_ids, &k, &v, "put sub id")) ||
        (st = s_sub_put(self, sub)))
        return st;
    *out = sub;
    return FERRY_OK;
}

/* The topic a subscription reads; NULL if it was deleted (or redeclared). */
fy_status_t
fy_storei_sub_topic(fy_store_t *self, const fy_sub_rec_t *sub, fy_topic_rec_t **out)
{
    fy_bytes_t name = {sub->topic, sub->topic_len};
    fy_status_t st = fy_storei_topic_get(self, name, out);
    if (st == FERRY_OK && *out && (*out)->id != sub->topic_id)
        *out = NULL;
    return st;
}

static void
s_sub_info(const fy_sub_rec_t *sub, const fy_topic_rec_t *t, fy_sub_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->id = sub->id;
    info->cursor = sub->cursor;
    info->ack_floor = sub->floor;
    info->ack_wait_ms = sub->ack_wait_ms;
    info->max_deliver = sub->max_deliver;
    info->created_ms = sub->created_ms;
    info->last_seq = t ? t->last : 0;
    info->kind = t ? t->kind : FY_KIND_TOPIC;
    memcpy(info->owner, sub->owner, sizeof info->owner);
}

fy_status_t
fy_store_sub_open(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name, const fy_sub_opts_t *opts,
                  fy_sub_info_t *info, bool *created)
{
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    if (st)
        return st;
    if ((t->kind == FY_KIND_QUEUE) != (name.len == 0))
        return FERRY_EFIELD;
    fy_sub_rec_t *sub;
    if ((st = s_sub_by_name(self, t->id, name, &sub)))
        return st;
    *created = sub == NULL;
    if (!sub && !opts)
        return FERRY_ENOTFOUND;
    if (!sub) {
        /* fy_storei_sub_create may grow the subscription cache; the topic cache is separate. */
        if ((st = fy_storei_sub_create(self, t, name, opts, &sub)))
            return st;
    }
    s_sub_info(sub, t, info);
    return FERRY_OK;
}

fy_status_t
fy_store_subs(fy_store_t *self, fy_bytes_t topic, fy_bytes_t after, size_t max, fy_sub_entry_t *out,
              size_t *n, bool *more)
{
    *n = 0;
    *more = false;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    if (st == FERRY_OK) /* the batch's changes, where the cursor sees them */
        st = fy_storei_flush_subs(self);
    if (st)
        return st;
    uint8_t from[8 + FY_NAME_MAX];
    fy_be64_put(from, t->id);
    if (after.len)
        memcpy(from + 8, after.ptr, after.len);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->subs, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "list subs");
    MDB_val k = {8 + after.len, from}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && after.len && k.mv_size == 8 + after.len &&
        memcmp(k.mv_data, from, k.mv_size) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* strictly after */
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 8 || fy_be64_get(k.mv_data) != t->id)
            break; /* the next topic's */
        if (*n == max) {
            *more = true;
            break;
        }
        fy_sub_rec_t rec;
        if (!s_sub_decode(&k, &v, &rec)) {
            fy_log(self->log, FY_LOG_ERROR, "store", "corrupt subscription record", NULL);
            st = FERRY_EIO;
            break;
        }
        fy_sub_entry_t *e = &out[(*n)++];
        s_sub_info(&rec, t, &e->info);
        snprintf(e->name, sizeof e->name, "%.*s", (int)(k.mv_size - 8),
                 (const char *)k.mv_data + 8);
        snprintf(e->filter, sizeof e->filter, "%.*s", (int)rec.filter_len,
                 (const char *)rec.filter);
    }
    mdb_cursor_close(cur);
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "list subs");
    return st;
}

fy_status_t
fy_store_sub_info(fy_store_t *self, uint64_t sub_id, fy_sub_info_t *info)
{
    fy_sub_rec_t *sub;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_sub_need(self, sub_id, &sub);
    if (st)
        return st;
    if ((st = fy_storei_sub_topic(self, sub, &t)))
        return st;
    if (!t)
        return FERRY_ENOTFOUND;
    s_sub_info(sub, t, info);
    return FERRY_OK;
}

/* A subscription's acks above its floor and its pending deliveries go;
 * timers that named them fire into nothing. */
static fy_status_t
s_forget_acks(fy_store_t *self, uint64_t sub_id)
{
    fy_status_t st = fy_storei_del_prefix(self, self->acks, sub_id, NULL, NULL);
    if (st == FERRY_OK)
        st = fy_storei_del_prefix(self, self->pend, sub_id, NULL, NULL);
    return st ? st : fy_storei_del_prefix(self, self->due, sub_id, NULL, NULL);
}

/* Removes a subscription's record and ack state (its timers fire into nothing). */
static fy_status_t
s_sub_drop(fy_store_t *self, fy_sub_rec_t *sub)
{
    uint8_t idk[8];
    fy_be64_put(idk, sub->id);
    MDB_val k = {sub->key_len, sub->key}, ik = {8, idk};
    fy_status_t st;
    int rc = fy_storei_del(self, self->txn, self->subs, &k);
    if ((rc && rc != MDB_NOTFOUND) ||
        ((rc = fy_storei_del(self, self->txn, self->sub_ids, &ik)) && rc != MDB_NOTFOUND))
        return fy_storei_mdb(self, rc, "delete sub");
    self->dirty = true;
    if ((st = s_forget_acks(self, sub->id)))
        return st;
    /* Forget it in the batch cache. */
    fy_reccache_remove(&self->subs_cache, sub);
    return FERRY_OK;
}

/* A topic's named subscription (a queue's own is FERRY_EFIELD). */
static fy_status_t
s_named_sub(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name, fy_topic_rec_t **t,
            fy_sub_rec_t **sub)
{
    fy_status_t st = fy_storei_topic_need(self, topic, t);
    if (st)
        return st;
    if ((*t)->kind == FY_KIND_QUEUE || name.len == 0)
        return FERRY_EFIELD;
    if ((st = s_sub_by_name(self, (*t)->id, name, sub)))
        return st;
    return *sub ? FERRY_OK : FERRY_ENOTFOUND;
}

fy_status_t
fy_store_sub_delete(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name)
{
    fy_topic_rec_t *t;
    fy_sub_rec_t *sub;
    fy_status_t st = s_named_sub(self, topic, name, &t, &sub);
    return st ? st : s_sub_drop(self, sub);
}

fy_status_t
fy_store_sub_seek(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name, uint64_t seq,
                  uint64_t time_ms, fy_sub_info_t *info)
{
    fy_topic_rec_t *t;
    fy_sub_rec_t *sub;
    fy_status_t st = s_named_sub(self, topic, name, &t, &sub);
    if (st)
        return st;
    if (time_ms && (st = s_seq_at_time(self, t, time_ms, &seq)))
        return st;
    uint64_t first = t->first ? t->first : 1;
    seq = seq < first ? first : seq > t->last + 1 ? t->last + 1 : seq;
    /* Its acks above the floor and its pending deliveries go; timers that
     * named them fire into nothing. */
    if ((st = s_forget_acks(self, sub->id)))
        return st;
    sub->cursor = seq;
    sub->floor = seq - 1;
    sub->dirty = true;
    self->dirty = true;
    s_sub_info(sub, t, info);
    return FERRY_OK;
}

fy_status_t
fy_storei_drop_subs_of(fy_store_t *self, uint64_t topic_id)
{
    for (;;) {
        uint8_t key[8];
        fy_be64_put(key, topic_id);
        MDB_val k = {8, key}, v;
        MDB_cursor *cur;
        int rc = mdb_cursor_open(self->txn, self->subs, &cur);
        if (rc)
            return fy_storei_mdb(self, rc, "cursor open");
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        uint8_t found[8 + FY_NAME_MAX];
        size_t found_len = 0;
        if (rc == 0 && k.mv_size >= 8 && k.mv_size <= sizeof found &&
            fy_be64_get(k.mv_data) == topic_id) {
            found_len = k.mv_size;
            memcpy(found, k.mv_data, found_len);
        }
        mdb_cursor_close(cur);
        if (rc && rc != MDB_NOTFOUND)
            return fy_storei_mdb(self, rc, "sweep subs");
        if (found_len == 0)
            return FERRY_OK;
        MDB_val fk = {found_len, found};
        fy_sub_rec_t *sub;
        fy_status_t st = s_sub_load(self, &fk, &sub);
        if (st)
            return st;
        if (!sub || (st = s_sub_drop(self, sub)))
            return st ? st : FERRY_EIO;
    }
}

fy_status_t
fy_storei_min_floor(fy_store_t *self, uint64_t topic_id, uint64_t *floor, bool *any)
{
    *any = false;
    *floor = 0;
    /* Subscriptions changed in this batch are in the cache: write them first. */
    fy_status_t st = fy_storei_flush_subs(self);
    if (st)
        return st;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->subs, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    uint8_t key[8];
    fy_be64_put(key, topic_id);
    MDB_val k = {8, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 8 && fy_be64_get(k.mv_data) == topic_id) {
        fy_sub_rec_t sub;
        if (s_sub_decode(&k, &v, &sub) && (!*any || sub.floor < *floor)) {
            *floor = sub.floor;
            *any = true;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? FERRY_OK : fy_storei_mdb(self, rc, "min floor");
}
