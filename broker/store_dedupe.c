/* SPDX-License-Identifier: MIT */
/*
 * store_dedupe.c - the dedupe index: message ids seen within a topic's window
 * (answered with the original sequence), and their expiry in bounded sweeps.
 */
#include "store.h"
#include "store_int.h"

#include "hash.h"

/* A dedupe entry's value: the sequence, when it expires, and (since format
 * 3) the content hash. Entries of format 2 have no hash: not compared. */
#define S_DEDUPE_V2 16
#define S_DEDUPE_V3 24

uint64_t
fy_storei_content_hash(const fy_pubmeta_t *m, fy_bytes_t payload)
{
    const fy_bytes_t parts[] = {m->key, m->hdrs, payload};
    uint64_t h = FY_FNV_OFFSET;
    for (size_t i = 0; i < 3; i++) {
        uint8_t len[8];
        fy_be64_put(len, parts[i].len); /* lengths too: ("ab","") differs from ("a","b") */
        h = fy_fnv1a(fy_fnv1a(h, len, 8), parts[i].ptr, parts[i].len);
    }
    return h ? h : 1;
}

/* Looks the id up in the dedupe window. *seq = 0: not a duplicate. */
fy_status_t
fy_storei_dedupe_find(fy_store_t *self, const fy_topic_rec_t *t, fy_bytes_t id, uint8_t *key,
                      uint64_t *seq, uint64_t *hash)
{
    *seq = 0;
    *hash = 0;
    fy_be64_put(key, t->id);
    memcpy(key + 8, id.ptr, id.len);
    MDB_val k = {8 + id.len, key}, v;
    int rc = mdb_get(self->txn, self->dedupe, &k, &v);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc)
        return fy_storei_mdb(self, rc, "get dedupe");
    if (v.mv_size != S_DEDUPE_V2 && v.mv_size != S_DEDUPE_V3)
        return FERRY_EIO;
    /* An entry past its expiry that the sweep has not reached yet no longer counts. */
    if (fy_be64_get((uint8_t *)v.mv_data + 8) > self->now_ms) {
        *seq = fy_be64_get(v.mv_data);
        if (v.mv_size == S_DEDUPE_V3)
            *hash = fy_be64_get((uint8_t *)v.mv_data + 16);
    }
    return FERRY_OK;
}

fy_status_t
fy_storei_dedupe_put(fy_store_t *self, const fy_topic_rec_t *t, fy_bytes_t id, const uint8_t *key,
                     uint64_t seq, uint64_t hash)
{
    uint64_t expire = self->now_ms + t->dedupe_ms;
    uint8_t val[S_DEDUPE_V3], ekey[24];
    fy_be64_put(val, seq);
    fy_be64_put(val + 8, expire);
    fy_be64_put(val + 16, hash);
    fy_be64_put(ekey, expire);
    fy_be64_put(ekey + 8, t->id);
    fy_be64_put(ekey + 16, seq);
    MDB_val k = {8 + id.len, (void *)key}, v = {S_DEDUPE_V3, val};
    MDB_val ek = {24, ekey}, ev = {id.len, (void *)id.ptr};
    fy_status_t st = fy_storei_set(self, self->dedupe, &k, &v, "put dedupe");
    return st ? st : fy_storei_set(self, self->dedupe_exp, &ek, &ev, "put exp");
}

/* Expires dedupe entries whose window has passed, oldest first. */
fy_status_t
fy_storei_sweep_dedupe(fy_store_t *self, size_t *budget, bool *more)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->dedupe_exp, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    fy_status_t st = FERRY_OK;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size != 24 || v.mv_size > FY_ID_MAX) {
            st = FERRY_EIO;
            break;
        }
        const uint8_t *ek = k.mv_data;
        if (fy_be64_get(ek) > self->now_ms)
            break;
        if (*budget == 0) {
            *more = true;
            break;
        }
        (*budget)--;
        /* Delete the dedupe entry only if it still belongs to this message:
         * after expiry the same id may have been published again. */
        uint8_t dkey[8 + FY_ID_MAX];
        memcpy(dkey, ek + 8, 8);
        memcpy(dkey + 8, v.mv_data, v.mv_size);
        MDB_val dk = {8 + v.mv_size, dkey}, dv;
        rc = mdb_get(self->txn, self->dedupe, &dk, &dv);
        if (rc == 0 && (dv.mv_size == S_DEDUPE_V2 || dv.mv_size == S_DEDUPE_V3) &&
            fy_be64_get(dv.mv_data) == fy_be64_get(ek + 16))
            rc = fy_storei_del(self, self->txn, self->dedupe, &dk);
        else if (rc == MDB_NOTFOUND || rc == 0)
            rc = 0;
        if (rc || (rc = fy_storei_cursor_del(self, cur))) {
            st = fy_storei_mdb(self, rc, "sweep dedupe");
            break;
        }
        self->dirty = true;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (st == FERRY_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = fy_storei_mdb(self, rc, "sweep dedupe next");
    mdb_cursor_close(cur);
    return st;
}
