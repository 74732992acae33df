/* SPDX-License-Identifier: MIT */
/*
 * store.c - LMDB storage of topics, messages and the dedupe index.
 *
 * Topic records are read into a small per-batch cache on first use and
 * written back once at commit, so a batch of N publishes to one topic costs
 * one topic read and one topic write, not N. The cache lives only for one
 * transaction: LMDB stays the single source of truth between batches.
 */
#include "store.h"
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>

/* Translates an LMDB result at the boundary; MDB_MAP_FULL spoils the txn. */
fy_status_t
fy_storei_mdb(fy_store_t *self, int rc, const char *what)
{
    if (rc == MDB_SUCCESS)
        return FERRY_OK;
    if (rc == MDB_MAP_FULL) {
        self->spoiled = true;
        return FERRY_ESTORAGE_FULL;
    }
    self->spoiled = true;
    fy_log(self->log, FY_LOG_ERROR, "store", "lmdb call failed", "op=%s rc=%d detail=\"%s\"", what,
           rc, mdb_strerror(rc));
    return FERRY_EIO;
}

static void
s_topic_encode(const fy_topic_rec_t *t, uint8_t *rec)
{
    memset(rec, 0, S_TOPIC_REC);
    rec[0] = 1;
    rec[1] = (uint8_t)t->kind;
    rec[2] = t->discard_new;
    rec[3] = t->interest;
    fy_be64_put(rec + 8, t->id);
    fy_be64_put(rec + 16, t->created_ms);
    fy_be64_put(rec + 24, t->dedupe_ms);
    fy_be64_put(rec + 32, t->first);
    fy_be64_put(rec + 40, t->last);
    fy_be64_put(rec + 48, t->count);
    fy_be64_put(rec + 56, t->bytes);
    fy_be64_put(rec + 64, t->max_msgs);
    fy_be64_put(rec + 72, t->max_bytes);
    fy_be64_put(rec + 80, t->max_age_ms);
}

bool
fy_storei_topic_decode(const MDB_val *v, fy_topic_rec_t *t)
{
    const uint8_t *rec = v->mv_data;
    if (v->mv_size < S_TOPIC_REC_V1 || rec[0] != 1)
        return false;
    t->kind = rec[1] == FY_KIND_QUEUE ? FY_KIND_QUEUE : FY_KIND_TOPIC;
    t->id = fy_be64_get(rec + 8);
    t->created_ms = fy_be64_get(rec + 16);
    t->dedupe_ms = fy_be64_get(rec + 24);
    t->first = fy_be64_get(rec + 32);
    t->last = fy_be64_get(rec + 40);
    t->count = fy_be64_get(rec + 48);
    t->bytes = fy_be64_get(rec + 56);
    /* A record written before limits existed has none. */
    bool limits = v->mv_size >= S_TOPIC_REC;
    t->discard_new = limits && rec[2];
    t->interest = limits && rec[3];
    t->max_msgs = limits ? fy_be64_get(rec + 64) : 0;
    t->max_bytes = limits ? fy_be64_get(rec + 72) : 0;
    t->max_age_ms = limits ? fy_be64_get(rec + 80) : 0;
    t->dirty = false;
    return true;
}

static void
s_topic_info(const fy_topic_rec_t *t, fy_topic_info_t *info)
{
    memset(info, 0, sizeof *info);
    memcpy(info->name, t->name, t->name_len);
    info->kind = t->kind;
    info->first_seq = t->first;
    info->last_seq = t->last;
    info->messages = t->count;
    info->bytes = t->bytes;
    info->dedupe_window_ms = t->dedupe_ms;
    info->created_ms = t->created_ms;
    info->max_msgs = t->max_msgs;
    info->max_bytes = t->max_bytes;
    info->max_age_ms = t->max_age_ms;
    info->discard_new = t->discard_new;
    info->interest = t->interest;
}

static bool
s_topic_match(const void *rec, const void *key)
{
    const fy_topic_rec_t *t = rec;
    const fy_bytes_t *name = key;
    return t->name_len == name->len && memcmp(t->name, name->ptr, name->len) == 0;
}

/* Finds a topic in the batch cache or loads it. *out NULL: no such topic. */
fy_status_t
fy_storei_topic_get(fy_store_t *self, fy_bytes_t name, fy_topic_rec_t **out)
{
    *out = fy_reccache_find(&self->topics_cache, s_topic_match, &name);
    if (*out)
        return FERRY_OK;
    MDB_val k = {name.len, (void *)name.ptr}, v;
    int rc = mdb_get(self->txn, self->topics, &k, &v);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "get topic");
    fy_topic_rec_t *t = fy_reccache_slot(&self->topics_cache);
    if (!t)
        return FERRY_ENOMEM;
    if (!fy_storei_topic_decode(&v, t)) {
        fy_log(self->log, FY_LOG_ERROR, "store", "corrupt topic record", NULL);
        return FERRY_EIO;
    }
    memcpy(t->name, name.ptr, name.len);
    t->name_len = name.len;
    fy_reccache_push(&self->topics_cache);
    *out = t;
    return FERRY_OK;
}

fy_status_t
fy_storei_topic_need(fy_store_t *self, fy_bytes_t name, fy_topic_rec_t **out)
{
    fy_status_t st = fy_storei_topic_get(self, name, out);
    return st ? st : *out ? FERRY_OK : FERRY_ENOTFOUND;
}

size_t
fy_storei_topic_kv(const void *rec, MDB_val *key, uint8_t *buf)
{
    const fy_topic_rec_t *t = rec;
    s_topic_encode(t, buf);
    *key = (MDB_val){t->name_len, (void *)t->name};
    return S_TOPIC_REC;
}

static fy_status_t
s_topic_put(fy_store_t *self, fy_topic_rec_t *t)
{
    return fy_storei_mdb(self, fy_reccache_put(&self->topics_cache, self->txn, self->topics, t),
                         "put topic");
}

static fy_status_t
s_flush_topics(fy_store_t *self)
{
    return fy_storei_mdb(self, fy_reccache_flush(&self->topics_cache, self->txn, self->topics),
                         "put topic");
}

fy_status_t
fy_storei_meta_get(fy_store_t *self, MDB_txn *txn, const char *key, uint64_t *out, bool *found)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, self->meta, &k, &v);
    *found = rc == 0;
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "get meta");
    if (v.mv_size != 8)
        return FERRY_EIO;
    *out = fy_be64_get(v.mv_data);
    return FERRY_OK;
}

fy_status_t
fy_storei_meta_put(fy_store_t *self, MDB_txn *txn, const char *key, uint64_t val)
{
    uint8_t buf[8];
    fy_be64_put(buf, val);
    MDB_val k = {strlen(key), (void *)key}, v = {8, buf};
    return fy_storei_mdb(self, fy_storei_put(self, txn, self->meta, &k, &v, 0), "put meta");
}

/* Bytes of the map in use: the high-water mark less the pages on LMDB's
 * freelist (FREE_DBI, dbi 0: each entry is a count followed by page numbers).
 * The freelist is read only near the limit, in a read-only transaction of its
 * own before the batch's write transaction starts (touching FREE_DBI inside a
 * write transaction makes LMDB save the freelist at commit). */
uint64_t
fy_storei_freelist_bytes(fy_store_t *self)
{
    MDB_stat ms;
    mdb_env_stat(self->env, &ms);
    MDB_txn *rtxn;
    MDB_cursor *cur;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &rtxn))
        return 0;
    uint64_t free_pages = 0;
    if (mdb_cursor_open(rtxn, 0, &cur) == 0) {
        MDB_val k, v;
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
            if (v.mv_size >= sizeof(size_t))
                free_pages += *(const size_t *)v.mv_data;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(rtxn);
    return free_pages * ms.ms_psize;
}

static uint64_t
s_map_in_use(fy_store_t *self, uint64_t reserve)
{
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(self->env, &info);
    mdb_env_stat(self->env, &ms);
    uint64_t high = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    if (high + reserve < self->map_size)
        return high;
    uint64_t free_bytes = fy_storei_freelist_bytes(self);
    return free_bytes < high ? high - free_bytes : 0;
}

/* Room kept free for acks, deletes and retention once publishes stop:
 * an eighth of the map, at least 128 KiB and at most 64 MiB. */
static uint64_t
s_reserve(const fy_store_t *self)
{
    uint64_t r = self->map_size / 8;
    return r < (128u << 10) ? (128u << 10) : r > (64u << 20) ? (64u << 20) : r;
}

fy_status_t
fy_store_begin(fy_store_t *self, uint64_t now_ms)
{
    if (self->txn)
        fy_store_abort(self);
    self->spoiled = false;
    self->dirty = false;
    fy_reccache_clear(&self->topics_cache);
    fy_reccache_clear(&self->subs_cache);
    self->map_state = 0;
    /* What the batches since the last checkpoint added is not in LMDB's
     * figures yet: the log holds it (counted at 1.5x, as appends are). */
    uint64_t pending = self->root && self->wal ? fy_wal_used(self->wal) * 3 / 2 : 0;
    self->map_in_use = s_map_in_use(self, s_reserve(self) + pending) + pending;
    /* Near the limit, pages that acks and deletes free are reusable only
     * once committed: then each batch is checkpointed (two flushes). */
    self->map_tight = self->map_in_use + 2 * s_reserve(self) >= self->map_size;
    self->now_ms = now_ms;
    fy_status_t st = fy_storei_root(self);
    if (st)
        return st;
    int rc = mdb_txn_begin(self->env, self->root, 0, &self->txn);
    if (rc) {
        self->txn = NULL;
        return fy_storei_mdb(self, rc, "begin");
    }
    self->redo_len = FY_WAL_HDR; /* the record's header goes there (grown by the first op) */
    self->redo_failed = false;
    self->recording = true;
    rc = mdb_cursor_open(self->txn, self->messages, &self->msg_cur);
    if (rc == 0)
        rc = mdb_cursor_open(self->txn, self->keyidx, &self->key_cur);
    if (rc) {
        fy_store_abort(self);
        return fy_storei_mdb(self, rc, "cursor open");
    }
    if (self->raft && (st = fy_storei_raft_begun(self))) {
        fy_store_abort(self);
        return st;
    }
    return FERRY_OK;
}

fy_status_t
fy_store_commit(fy_store_t *self)
{
    if (!self->txn)
        return FERRY_EINTERNAL;
    fy_status_t st = self->spoiled ? FERRY_ESTORAGE_FULL : fy_storei_flush_subs(self);
    if (st == FERRY_OK)
        st = s_flush_topics(self);
    if (st == FERRY_OK && self->redo_failed)
        st = FERRY_ENOMEM;
    if (st) {
        fy_store_abort(self);
        return st;
    }
    mdb_cursor_close(self->msg_cur);
    mdb_cursor_close(self->key_cur);
    self->msg_cur = self->key_cur = NULL;
    self->recording = false;
    /* Into the root (memory only), then durable through the log. */
    int rc = mdb_txn_commit(self->txn);
    self->txn = NULL;
    fy_reccache_clear(&self->topics_cache);
    fy_reccache_clear(&self->subs_cache);
    if (rc)
        return fy_storei_commit_failed(self, rc, "batch");
    return fy_storei_wal_commit(self);
}

void
fy_store_abort(fy_store_t *self)
{
    if (self->msg_cur) {
        mdb_cursor_close(self->msg_cur);
        self->msg_cur = NULL;
    }
    if (self->key_cur) {
        mdb_cursor_close(self->key_cur);
        self->key_cur = NULL;
    }
    if (self->txn) {
        mdb_txn_abort(self->txn);
        self->txn = NULL;
    }
    self->recording = false;
    fy_reccache_clear(&self->topics_cache);
    fy_reccache_clear(&self->subs_cache);
    if (self->raft && self->root) { /* a node holds no write transaction between batches */
        mdb_txn_abort(self->root);
        self->root = NULL;
    }
}

bool
fy_store_in_batch(const fy_store_t *self)
{
    return self->txn != NULL;
}

bool
fy_store_spoiled(const fy_store_t *self)
{
    return self->spoiled;
}

bool
fy_store_dirty(const fy_store_t *self)
{
    return self->dirty;
}

/* New data (publishes, declares) stops short of the map size so that the
 * work that frees space never finds the map full. Checked once per batch,
 * then counting what the batch appended. */
static fy_status_t
s_room_for(fy_store_t *self, uint64_t bytes)
{
    if (self->use_reserve)
        return FERRY_OK;
    uint64_t reserve = s_reserve(self);
    if (self->map_state == 0) {
        self->map_state = self->map_in_use + reserve < self->map_size ? 1 : 2;
        self->batch_added = self->map_in_use;
    }
    /* Pages hold less than their size in payload: count appends at 1.5x. */
    uint64_t want = self->batch_added + bytes + bytes / 2;
    if (self->map_state == 2 || want + reserve >= self->map_size)
        return FERRY_ESTORAGE_FULL;
    self->batch_added = want;
    return FERRY_OK;
}

fy_status_t
fy_store_declare(fy_store_t *self, fy_bytes_t name, fy_kind_t kind, const fy_topic_config_t *cfg,
                 fy_topic_info_t *info, bool *created)
{
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_get(self, name, &t);
    if (st)
        return st;
    *created = false;
    if (t) {
        s_topic_info(t, info);
        return t->kind == kind ? FERRY_OK : FERRY_EEXISTS;
    }
    if ((st = s_room_for(self, 4096)))
        return st;
    uint64_t next_id = 1;
    bool found;
    if ((st = fy_storei_meta_get(self, self->txn, "next_topic_id", &next_id, &found)))
        return st;
    static const fy_topic_config_t none;
    const fy_topic_config_t *c = cfg ? cfg : &none;
    fy_topic_rec_t fresh = {.name_len = name.len,
                            .id = next_id,
                            .created_ms = self->now_ms,
                            .dedupe_ms =
                                c->dedupe_window_ms ? c->dedupe_window_ms : self->default_dedupe_ms,
                            .max_msgs = c->max_msgs,
                            .max_bytes = c->max_bytes,
                            .max_age_ms = c->max_age_ms,
                            .discard_new = c->discard_new,
                            .interest = c->interest,
                            .kind = kind};
    memcpy(fresh.name, name.ptr, name.len);
    self->dirty = true;
    if ((st = fy_storei_meta_put(self, self->txn, "next_topic_id", next_id + 1)) ||
        (st = s_topic_put(self, &fresh)))
        return st;
    if (kind == FY_KIND_QUEUE) {
        /* The queue's implicit subscription, named "", from the first message. */
        fy_sub_opts_t o = {.start = FY_START_FIRST};
        fy_sub_rec_t *sub;
        if ((st = fy_storei_sub_create(self, &fresh, fy_bytes_str(""), &o, &sub)))
            return st;
    }
    *created = true;
    s_topic_info(&fresh, info);
    return FERRY_OK;
}

fy_status_t
fy_store_delete(fy_store_t *self, fy_bytes_t name)
{
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, name, &t);
    if (st)
        return st;
    uint8_t key[8];
    fy_be64_put(key, t->id);
    MDB_val k = {name.len, (void *)name.ptr}, idk = {8, key}, empty = {0, NULL};
    self->dirty = true;
    if ((st = fy_storei_mdb(self, fy_storei_del(self, self->txn, self->topics, &k), "del topic")) ||
        (st = fy_storei_set(self, self->deleted, &idk, &empty, "put deleted")))
        return st;
    /* Forget the cached record so a later declare in this batch starts afresh. */
    fy_reccache_remove(&self->topics_cache, t);
    return FERRY_OK;
}

fy_status_t
fy_store_info(fy_store_t *self, fy_bytes_t name, fy_topic_info_t *info)
{
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, name, &t);
    if (st)
        return st;
    s_topic_info(t, info);
    return FERRY_OK;
}

fy_status_t
fy_store_edit(fy_store_t *self, fy_bytes_t topic, unsigned set, const fy_topic_config_t *cfg,
              uint64_t max, fy_topic_info_t *info, bool *more)
{
    *more = false;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    if (st)
        return st;
    if (set & FY_EDIT_DEDUPE)
        t->dedupe_ms = cfg->dedupe_window_ms ? cfg->dedupe_window_ms : self->default_dedupe_ms;
    if (set & FY_EDIT_MAX_MSGS)
        t->max_msgs = cfg->max_msgs;
    if (set & FY_EDIT_MAX_BYTES)
        t->max_bytes = cfg->max_bytes;
    if (set & FY_EDIT_MAX_AGE)
        t->max_age_ms = cfg->max_age_ms;
    if (set & FY_EDIT_DISCARD)
        t->discard_new = cfg->discard_new;
    t->dirty = true;
    self->dirty = true;
    /* Over the new limits: the oldest go (a slice; discard new keeps them
     * and refuses publishes until the topic is under its limits). */
    for (uint64_t removed = 0;
         !t->discard_new && t->count > 0 &&
         ((t->max_msgs && t->count > t->max_msgs) || (t->max_bytes && t->bytes > t->max_bytes));
         removed++) {
        if (removed == max) {
            *more = true;
            break;
        }
        uint64_t before = t->count;
        if ((st = fy_storei_remove_message(self, t, t->first)))
            return st;
        if (t->count == before)
            return FERRY_EIO;
    }
    s_topic_info(t, info);
    return FERRY_OK;
}

fy_status_t
fy_store_topics(fy_store_t *self, fy_bytes_t after, size_t max, fy_topic_info_t *out, size_t *n,
                bool *more)
{
    *n = 0;
    *more = false;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->topics, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "list topics");
    MDB_val k = {after.len, (void *)after.ptr}, v;
    rc = mdb_cursor_get(cur, &k, &v, after.len ? MDB_SET_RANGE : MDB_FIRST);
    if (rc == 0 && after.len && k.mv_size == after.len &&
        memcmp(k.mv_data, after.ptr, after.len) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT); /* strictly after */
    fy_status_t st = FERRY_OK;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (*n == max) {
            *more = true;
            break;
        }
        /* The batch's cached record is newer than the database's. */
        fy_bytes_t name = {k.mv_data, k.mv_size};
        const fy_topic_rec_t *t = fy_reccache_find(&self->topics_cache, s_topic_match, &name);
        fy_topic_rec_t rec;
        if (!t) {
            if (k.mv_size > sizeof rec.name || !fy_storei_topic_decode(&v, &rec)) {
                fy_log(self->log, FY_LOG_ERROR, "store", "corrupt topic record", NULL);
                st = FERRY_EIO;
                break;
            }
            memcpy(rec.name, k.mv_data, k.mv_size);
            rec.name_len = k.mv_size;
            t = &rec;
        }
        s_topic_info(t, &out[(*n)++]);
    }
    mdb_cursor_close(cur);
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "list topics");
    return st;
}

void
fy_storei_msg_key(uint8_t *key, uint64_t topic_id, uint64_t seq)
{
    fy_be64_put(key, topic_id);
    fy_be64_put(key + 8, seq);
}

/* Writes one message value in place (MDB_RESERVE): one copy of the payload. */
static fy_status_t
s_put_message(fy_store_t *self, const fy_topic_rec_t *t, uint64_t seq, const fy_pubmeta_t *m,
              fy_bytes_t payload, uint64_t kver, uint64_t not_before)
{
    uint8_t key[16];
    fy_storei_msg_key(key, t->id, seq);
    uint8_t flags = (kver ? S_MSG_KVER : 0) | (not_before ? S_MSG_DELAYED : 0);
    size_t ext = (kver ? 8 : 0) + (not_before ? 8 : 0);
    size_t size = S_MSG_HDR + ext + m->key.len + m->id.len + m->hdrs.len + payload.len;
    MDB_val k = {16, key}, v = {size, NULL};
    /* Appending is cheapest and fills pages completely, but LMDB only allows
     * it past the last key of the whole database, i.e. for the newest topic. */
    int rc = fy_storei_cursor_put(self, self->msg_cur, &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc == MDB_KEYEXIST) {
        v.mv_size = size;
        rc = fy_storei_cursor_put(self, self->msg_cur, &k, &v, MDB_NOOVERWRITE | MDB_RESERVE);
    }
    fy_status_t st = fy_storei_mdb(self, rc, "put message");
    if (st)
        return st;
    uint8_t *p = v.mv_data;
    p[0] = 1;
    p[1] = flags;
    fy_be16_put(p + 2, (uint16_t)m->key.len);
    fy_be16_put(p + 4, (uint16_t)m->id.len);
    fy_be32_put(p + 6, (uint32_t)m->hdrs.len);
    fy_be64_put(p + 10, self->now_ms);
    p += S_MSG_HDR;
    if (kver) {
        fy_be64_put(p, kver);
        p += 8;
    }
    if (not_before) {
        fy_be64_put(p, not_before);
        p += 8;
    }
    if (m->key.len)
        memcpy(p, m->key.ptr, m->key.len);
    p += m->key.len;
    if (m->id.len)
        memcpy(p, m->id.ptr, m->id.len);
    p += m->id.len;
    if (m->hdrs.len)
        memcpy(p, m->hdrs.ptr, m->hdrs.len);
    p += m->hdrs.len;
    if (payload.len)
        memcpy(p, payload.ptr, payload.len);
    MDB_val filled = {size, v.mv_data};
    return fy_storei_mdb(self, fy_storei_logged(self, self->messages, &k, &filled),
                         "record message");
}

fy_status_t
fy_storei_remove_message(fy_store_t *self, fy_topic_rec_t *t, uint64_t seq)
{
    uint8_t key[16];
    fy_storei_msg_key(key, t->id, seq);
    MDB_val k = {16, key}, v;
    int rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    fy_stored_t m;
    if (rc)
        return fy_storei_mdb(self, rc, "find message");
    if (!fy_storei_parse_message(&k, &v, &m))
        return FERRY_EIO;
    uint64_t size = m.key.len + m.id.len + m.hdrs.len + m.payload.len;
    if (m.kver) {
        uint8_t kcopy[FY_ID_MAX];
        memcpy(kcopy, m.key.ptr, m.key.len);
        fy_status_t st = fy_storei_kidx_remove(self, t->id, (fy_bytes_t){kcopy, m.key.len}, m.kver);
        if (st)
            return st;
    }
    if ((rc = fy_storei_cursor_del(self, self->msg_cur)))
        return fy_storei_mdb(self, rc, "delete message");
    self->dirty = true;
    t->dirty = true;
    t->count--;
    t->bytes -= size <= t->bytes ? size : t->bytes;
    if (t->count == 0) {
        t->first = 0;
    } else if (seq == t->first) {
        /* The cursor stands on the next message after the delete. */
        rc = mdb_cursor_get(self->msg_cur, &k, &v, MDB_GET_CURRENT);
        if (rc == 0 && k.mv_size == 16 && fy_be64_get(k.mv_data) == t->id)
            t->first = fy_be64_get((const uint8_t *)k.mv_data + 8);
        else
            t->first = t->last + 1;
    }
    return FERRY_OK;
}

/* Is message i of the call a duplicate: of the dedupe window, or of an
 * earlier message of the same call? (Only for the expectation pre-check.) */
static fy_status_t
s_pre_dup(fy_store_t *self, const fy_topic_rec_t *t, const fy_pubmeta_t *metas, const bool *dup,
          size_t i, bool *out)
{
    *out = false;
    const fy_pubmeta_t *m = &metas[i];
    if (!m->id.len)
        return FERRY_OK;
    for (size_t j = 0; j < i; j++)
        if (!dup[j] && fy_bytes_eq(metas[j].id, m->id)) {
            *out = true;
            return FERRY_OK;
        }
    uint8_t dkey[8 + FY_ID_MAX];
    uint64_t seq, hash;
    fy_status_t st = fy_storei_dedupe_find(self, t, m->id, dkey, &seq, &hash);
    *out = seq != 0;
    return st;
}

/* Checks every expectation of the call before anything is written, as if
 * the messages were appended one by one (duplicates store nothing). */
static fy_status_t
s_check_expectations(fy_store_t *self, const fy_topic_rec_t *t, const fy_pubmeta_t *metas, size_t n,
                     bool *dup, fy_conflict_t *conflict)
{
    uint64_t last = t->last;
    for (size_t i = 0; i < n; i++) {
        const fy_pubmeta_t *m = &metas[i];
        fy_status_t st = s_pre_dup(self, t, metas, dup, i, &dup[i]);
        if (st)
            return st;
        if (dup[i])
            continue;
        uint64_t kver = 0;
        if (m->key.len) {
            bool tomb;
            if ((st = fy_storei_key_head(self, t->id, m->key, &kver, &tomb)))
                return st;
            for (size_t j = 0; j < i; j++)
                kver += !dup[j] && fy_bytes_eq(metas[j].key, m->key);
        }
        bool bad_last = m->has_expect_last && m->expect_last != last;
        bool bad_key = m->has_expect_kver && m->expect_kver != kver;
        if (bad_last || bad_key) {
            *conflict = (fy_conflict_t){.index = i,
                                        .last = last,
                                        .kver = kver,
                                        .on_key = bad_key,
                                        .expected = bad_key ? m->expect_kver : m->expect_last};
            return FERRY_ECONFLICT;
        }
        last++;
    }
    return FERRY_OK;
}

/* A call with several messages: is any id in the window, or earlier in the
 * call, with other content? Checked before anything is written, so that the
 * call is refused whole. */
static fy_status_t
s_check_ids(fy_store_t *self, const fy_topic_rec_t *t, const fy_pubmeta_t *metas,
            const uint64_t *hashes, size_t n, fy_conflict_t *conflict)
{
    uint8_t dkey[8 + FY_ID_MAX];
    for (size_t i = 0; i < n; i++) {
        if (!metas[i].id.len)
            continue;
        uint64_t seq, held;
        fy_status_t st = fy_storei_dedupe_find(self, t, metas[i].id, dkey, &seq, &held);
        if (st)
            return st;
        if (seq && held && held != hashes[i]) {
            *conflict = (fy_conflict_t){.index = i, .last = seq};
            return FERRY_EIDREUSED;
        }
        for (size_t j = 0; !seq && j < i; j++)
            if (fy_bytes_eq(metas[j].id, metas[i].id) && hashes[j] != hashes[i]) {
                *conflict = (fy_conflict_t){.index = i};
                return FERRY_EIDREUSED;
            }
    }
    return FERRY_OK;
}

fy_status_t
fy_store_append(fy_store_t *self, fy_bytes_t topic, const fy_pubmeta_t *metas,
                const fy_bytes_t *payloads, size_t n, uint64_t *seqs, bool *dups, uint64_t *kvers,
                fy_conflict_t *conflict)
{
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    if (st)
        return st;
    uint64_t total = 0;
    bool expects = false;
    for (size_t i = 0; i < n; i++) {
        total += S_MSG_HDR + 16 + metas[i].key.len + metas[i].id.len + metas[i].hdrs.len +
                 payloads[i].len + (metas[i].id.len ? 64 : 0) + (metas[i].key.len ? 48 : 0);
        expects = expects || metas[i].has_expect_last || metas[i].has_expect_kver;
    }
    if ((st = s_room_for(self, total)))
        return st;
    if (t->discard_new && (t->max_msgs || t->max_bytes)) {
        /* Refuse the whole request up front if it would not fit (counting
         * every message, duplicates too: a publish is all or nothing). */
        uint64_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += metas[i].key.len + metas[i].id.len + metas[i].hdrs.len + payloads[i].len;
        if ((t->max_msgs && t->count + n > t->max_msgs) ||
            (t->max_bytes && t->bytes + bytes > t->max_bytes))
            return FERRY_ELIMIT;
    }
    if (expects && (st = s_check_expectations(self, t, metas, n, dups, conflict)))
        return st;
    uint64_t *hashes = self->hashes;
    for (size_t i = 0; i < n; i++)
        hashes[i] = metas[i].id.len ? fy_storei_content_hash(&metas[i], payloads[i]) : 0;
    if (n > 1 && (st = s_check_ids(self, t, metas, hashes, n, conflict)))
        return st;
    uint8_t dkey[8 + FY_ID_MAX];
    for (size_t i = 0; i < n; i++) {
        const fy_pubmeta_t *m = &metas[i];
        dups[i] = false;
        kvers[i] = 0;
        if (m->id.len) {
            uint64_t held;
            if ((st = fy_storei_dedupe_find(self, t, m->id, dkey, &seqs[i], &held)))
                return st;
            if (seqs[i] && held && held != hashes[i]) {
                /* Only a single publish gets here (s_check_ids saw the
                 * others): nothing is written yet. */
                *conflict = (fy_conflict_t){.index = i, .last = seqs[i]};
                return FERRY_EIDREUSED;
            }
            if (seqs[i]) {
                dups[i] = true;
                /* The original's key version, if it is still stored. */
                uint8_t key[16];
                fy_storei_msg_key(key, t->id, seqs[i]);
                MDB_val k = {16, key}, v;
                fy_stored_t orig;
                if (mdb_get(self->txn, self->messages, &k, &v) == 0 &&
                    fy_storei_parse_message(&k, &v, &orig))
                    kvers[i] = orig.kver;
                continue;
            }
        }
        uint64_t seq = t->last + 1;
        self->dirty = true;
        if (m->key.len && (st = fy_storei_kidx_add(self, t->id, m->key, seq, &kvers[i])))
            return st;
        uint64_t nb = m->delay_ms ? self->now_ms + m->delay_ms : m->not_before_ms;
        nb = nb > self->now_ms ? nb : 0;
        if ((st = s_put_message(self, t, seq, m, payloads[i], kvers[i], nb)))
            return st;
        if (m->id.len && (st = fy_storei_dedupe_put(self, t, m->id, dkey, seq, hashes[i])))
            return st;
        if (t->count == 0)
            t->first = seq;
        t->last = seq;
        t->count++;
        t->bytes += m->key.len + m->id.len + m->hdrs.len + payloads[i].len;
        t->dirty = true;
        seqs[i] = seq;
    }
    return t->discard_new ? FERRY_OK : fy_storei_trim_to_limits(self, t);
}

bool
fy_storei_parse_message(const MDB_val *k, const MDB_val *v, fy_stored_t *out)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != 16 || v->mv_size < S_MSG_HDR || p[0] != 1 ||
        (p[1] & ~(S_MSG_KVER | S_MSG_DELAYED)))
        return false;
    size_t ext = ((p[1] & S_MSG_KVER) ? 8 : 0) + ((p[1] & S_MSG_DELAYED) ? 8 : 0);
    size_t klen = fy_be16_get(p + 2), ilen = fy_be16_get(p + 4), hlen = fy_be32_get(p + 6);
    if (v->mv_size < S_MSG_HDR + ext)
        return false;
    size_t body = v->mv_size - S_MSG_HDR - ext;
    if (klen > body || ilen > body - klen || hlen > body - klen - ilen)
        return false;
    out->seq = fy_be64_get((const uint8_t *)k->mv_data + 8);
    out->ts_ms = fy_be64_get(p + 10);
    uint8_t flags = p[1];
    p += S_MSG_HDR;
    out->kver = out->not_before_ms = 0;
    if (flags & S_MSG_KVER) {
        out->kver = fy_be64_get(p);
        p += 8;
    }
    if (flags & S_MSG_DELAYED) {
        out->not_before_ms = fy_be64_get(p);
        p += 8;
    }
    out->key = (fy_bytes_t){p, klen};
    out->id = (fy_bytes_t){p + klen, ilen};
    out->hdrs = (fy_bytes_t){p + klen + ilen, hlen};
    out->payload = (fy_bytes_t){p + klen + ilen + hlen, body - klen - ilen - hlen};
    return true;
}

fy_status_t
fy_store_read(fy_store_t *self, fy_bytes_t topic, uint64_t from_seq, uint32_t limit,
              size_t max_bytes, fy_store_read_fn fn, void *user, size_t *count)
{
    *count = 0;
    size_t used = 0;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    if (st)
        return st;
    /* Messages not yet in the topic record's range (never) or deleted are skipped
     * by the key range check below. */
    uint8_t key[16];
    fy_storei_msg_key(key, t->id, from_seq ? from_seq : 1);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->messages, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    MDB_val k = {16, key}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *count < limit) {
        if (k.mv_size != 16 || fy_be64_get(k.mv_data) != t->id)
            break;
        fy_stored_t m;
        if (!fy_storei_parse_message(&k, &v, &m)) {
            fy_log(self->log, FY_LOG_ERROR, "store", "corrupt message record", "topic_id=%llu",
                   (unsigned long long)t->id);
            st = FERRY_EIO;
            break;
        }
        size_t cost = fy_stored_cost(&m);
        if (*count > 0 && used + cost > max_bytes)
            break; /* the rest goes in the next reply */
        used += cost;
        if ((st = fn(user, &m)))
            break;
        (*count)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "cursor next");
    return st;
}

fy_status_t
fy_store_totals(fy_store_t *self, fy_stats_t *st)
{
    /* In a batch, with what it changed; outside one (a cluster's follower),
     * what LMDB holds. */
    MDB_txn *txn = self->txn, *rtxn = NULL;
    fy_status_t s = txn ? s_flush_topics(self) : FERRY_OK;
    if (s)
        return s;
    if (!txn && mdb_txn_begin(self->env, NULL, MDB_RDONLY, &rtxn) != 0)
        return FERRY_EIO;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn ? txn : rtxn, self->topics, &cur);
    if (rc) {
        if (rtxn)
            mdb_txn_abort(rtxn);
        return fy_storei_mdb(self, rc, "cursor open");
    }
    st->topics = st->messages = st->bytes = 0;
    MDB_val k, v;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        fy_topic_rec_t t;
        if (fy_storei_topic_decode(&v, &t)) {
            st->topics++;
            st->messages += t.count;
            st->bytes += t.bytes;
        }
    }
    mdb_cursor_close(cur);
    if (rtxn)
        mdb_txn_abort(rtxn);
    MDB_envinfo info;
    MDB_stat ms;
    mdb_env_info(self->env, &info);
    mdb_env_stat(self->env, &ms);
    st->map_size = info.me_mapsize;
    st->map_used = self->map_in_use;
    return rc == MDB_NOTFOUND ? FERRY_OK : fy_storei_mdb(self, rc, "cursor next");
}
