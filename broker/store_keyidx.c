/* SPDX-License-Identifier: MIT */
/*
 * store_keyidx.c - the per-key index: each key's versions in order, for
 * expected-version appends and reads of one aggregate (fy_store_read_key).
 */
#include "store.h"
#include "store_int.h"

/* ---- the per-key index --------------------------------------------------
 *
 * keyidx: (topic id, key length, key, key version) -> topic sequence. A key's
 * newest entry holds its version; when that entry's message is removed
 * (retention, a queue's ack) the entry stays as a tombstone (sequence 0) so
 * that the count goes on, and the next append for the key replaces it. Older
 * entries are deleted with their messages. */

static size_t
s_kidx_key(uint8_t *buf, uint64_t topic_id, fy_bytes_t key, uint64_t ver)
{
    fy_be64_put(buf, topic_id);
    buf[8] = (uint8_t)key.len;
    memcpy(buf + 9, key.ptr, key.len);
    fy_be64_put(buf + 9 + key.len, ver);
    return 17 + key.len;
}

/* True if index key `k` belongs to the key whose entries start with `prefix`. */
static bool
s_kidx_same(const MDB_val *k, const uint8_t *prefix, size_t prefix_len)
{
    return k->mv_size == prefix_len + 8 && memcmp(k->mv_data, prefix, prefix_len) == 0;
}

fy_status_t
fy_storei_key_head(fy_store_t *self, uint64_t topic_id, fy_bytes_t key, uint64_t *ver, bool *tomb)
{
    uint8_t kb[S_KIDX_KEY_MAX];
    size_t kl = s_kidx_key(kb, topic_id, key, UINT64_MAX);
    MDB_val k = {kl, kb}, v;
    *ver = 0;
    *tomb = false;
    /* The first entry past the key's last version, then one back. */
    int rc = mdb_cursor_get(self->key_cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0)
        rc = mdb_cursor_get(self->key_cur, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(self->key_cur, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "key head");
    if (!s_kidx_same(&k, kb, kl - 8))
        return FERRY_OK;
    if (v.mv_size != 8)
        return FERRY_EIO;
    *ver = fy_be64_get((const uint8_t *)k.mv_data + kl - 8);
    *tomb = fy_be64_get(v.mv_data) == 0;
    return FERRY_OK;
}

/* Gives `key` of `topic_id` its next version, pointing at `seq`. */
fy_status_t
fy_storei_kidx_add(fy_store_t *self, uint64_t topic_id, fy_bytes_t key, uint64_t seq, uint64_t *ver)
{
    bool tomb;
    fy_status_t st = fy_storei_key_head(self, topic_id, key, ver, &tomb);
    if (st)
        return st;
    int rc;
    if (tomb && (rc = fy_storei_cursor_del(self, self->key_cur)))
        return fy_storei_mdb(self, rc, "delete key tombstone");
    (*ver)++;
    uint8_t kb[S_KIDX_KEY_MAX], vb[8];
    size_t kl = s_kidx_key(kb, topic_id, key, *ver);
    fy_be64_put(vb, seq);
    MDB_val k = {kl, kb}, v = {8, vb};
    return fy_storei_set(self, self->keyidx, &k, &v, "put key index");
}

/* The message of (key, ver) was removed: drop its entry, or make it the
 * key's tombstone if it is the newest. */
fy_status_t
fy_storei_kidx_remove(fy_store_t *self, uint64_t topic_id, fy_bytes_t key, uint64_t ver)
{
    uint8_t kb[S_KIDX_KEY_MAX];
    size_t kl = s_kidx_key(kb, topic_id, key, ver);
    MDB_val k = {kl, kb}, v;
    int rc = mdb_cursor_get(self->key_cur, &k, &v, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "find key entry");
    rc = mdb_cursor_get(self->key_cur, &k, &v, MDB_NEXT);
    bool newest = rc == MDB_NOTFOUND || (rc == 0 && !s_kidx_same(&k, kb, kl - 8));
    if (rc && rc != MDB_NOTFOUND)
        return fy_storei_mdb(self, rc, "next key entry");
    k.mv_size = kl;
    k.mv_data = kb;
    if (newest) {
        uint8_t zero[8] = {0};
        MDB_val z = {8, zero};
        return fy_storei_set(self, self->keyidx, &k, &z, "key tombstone");
    }
    return fy_storei_mdb(self, fy_storei_del(self, self->txn, self->keyidx, &k),
                         "delete key entry");
}

fy_status_t
fy_store_read_key(fy_store_t *self, fy_bytes_t topic, fy_bytes_t key, uint64_t from, uint32_t limit,
                  size_t max_bytes, fy_store_read_fn fn, void *user, size_t *count, uint64_t *next)
{
    *count = 0;
    size_t used = 0;
    *next = 0;
    fy_topic_rec_t *t;
    fy_status_t st = fy_storei_topic_need(self, topic, &t);
    if (st)
        return st;
    if (key.len == 0 || key.len > FY_ID_MAX)
        return FERRY_OK;
    uint8_t kb[S_KIDX_KEY_MAX];
    size_t kl = s_kidx_key(kb, t->id, key, from ? from : 1);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->keyidx, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    MDB_val k = {kl, kb}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && s_kidx_same(&k, kb, kl - 8)) {
        uint64_t ver = fy_be64_get((const uint8_t *)k.mv_data + kl - 8);
        if (*count >= limit) {
            *next = ver;
            break;
        }
        uint64_t seq = v.mv_size == 8 ? fy_be64_get(v.mv_data) : 0;
        uint8_t mkey[16];
        fy_storei_msg_key(mkey, t->id, seq);
        MDB_val mk = {16, mkey}, mv;
        int mrc = seq ? mdb_get(self->txn, self->messages, &mk, &mv) : MDB_NOTFOUND;
        if (mrc == 0) {
            fy_stored_t m;
            if (!fy_storei_parse_message(&mk, &mv, &m)) {
                st = FERRY_EIO;
                break;
            }
            m.kver = ver; /* messages indexed by an upgrade do not carry it */
            size_t cost = fy_stored_cost(&m);
            if (*count > 0 && used + cost > max_bytes) {
                *next = ver; /* the rest in the next page */
                break;
            }
            used += cost;
            if ((st = fn(user, &m)))
                break;
            (*count)++;
        } else if (mrc != MDB_NOTFOUND) {
            rc = mrc;
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "read key");
    return st;
}
