/* SPDX-License-Identifier: MIT */
/*
 * reccache.c - the per-batch record cache (reccache.h).
 */
#include "reccache.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

void
fy_reccache_init(fy_reccache_t *c, size_t elem, size_t dirty_at, fy_reccache_encode_fn encode,
                 fy_reccache_put_fn put, void *put_ctx)
{
    *c = (fy_reccache_t){
        .elem = elem, .dirty_at = dirty_at, .encode = encode, .put = put, .put_ctx = put_ctx};
}

void
fy_reccache_free(fy_reccache_t *c)
{
    free(c->recs);
    c->recs = NULL;
    c->len = c->cap = c->last = 0;
}

void *
fy_reccache_find(fy_reccache_t *c, bool (*match)(const void *rec, const void *key), const void *key)
{
    if (c->last < c->len && match(fy_reccache_at(c, c->last), key))
        return fy_reccache_at(c, c->last);
    for (size_t i = 0; i < c->len; i++) {
        void *r = fy_reccache_at(c, i);
        if (match(r, key)) {
            c->last = i;
            return r;
        }
    }
    return NULL;
}

void *
fy_reccache_slot(fy_reccache_t *c)
{
    if (!fy_grow(&c->recs, &c->cap, c->len + 1, c->elem, 16))
        return NULL;
    return fy_reccache_at(c, c->len);
}

void
fy_reccache_push(fy_reccache_t *c)
{
    c->last = c->len++;
}

void
fy_reccache_remove(fy_reccache_t *c, const void *rec)
{
    size_t i = (size_t)((const char *)rec - (const char *)c->recs) / c->elem;
    if (i >= c->len)
        return;
    if (i != --c->len)
        memcpy(fy_reccache_at(c, i), fy_reccache_at(c, c->len), c->elem);
    c->last = 0;
}

static bool *
s_dirty(const fy_reccache_t *c, void *rec)
{
    return (bool *)((char *)rec + c->dirty_at);
}

int
fy_reccache_put(const fy_reccache_t *c, MDB_txn *txn, MDB_dbi dbi, void *rec)
{
    uint8_t buf[FY_RECCACHE_VALUE_MAX];
    MDB_val k, v = {0, buf};
    v.mv_size = c->encode(rec, &k, buf);
    int rc = c->put(c->put_ctx, txn, dbi, &k, &v);
    if (rc == 0)
        *s_dirty(c, rec) = false;
    return rc;
}

int
fy_reccache_flush(const fy_reccache_t *c, MDB_txn *txn, MDB_dbi dbi)
{
    for (size_t i = 0; i < c->len; i++) {
        void *rec = fy_reccache_at(c, i);
        int rc = *s_dirty(c, rec) ? fy_reccache_put(c, txn, dbi, rec) : 0;
        if (rc)
            return rc;
    }
    return 0;
}
