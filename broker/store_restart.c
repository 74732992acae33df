/* SPDX-License-Identifier: MIT */
/*
 * store_restart.c - what a restart does to deliveries in flight (see
 * fy_store_pull_deadlines in store.h).
 */
#include <string.h>

#include "store_int.h"

#define S_MOVE_BATCH 256 /* timers moved per pass */

/* Moves every timer due after @p latest to @p latest: collects up to
 * S_MOVE_BATCH of them past it, deletes each and puts it back earlier
 * (before where the next pass starts), until none is left past it. */
static fy_status_t
s_pull_timers(fy_store_t *self, uint64_t latest, size_t *moved)
{
    uint8_t keys[S_MOVE_BATCH][32];
    for (;;) {
        MDB_cursor *cur;
        int rc = mdb_cursor_open(self->txn, self->timers, &cur);
        if (rc)
            return fy_storei_mdb(self, rc, "cursor open");
        uint8_t from[8];
        fy_be64_put(from, latest + 1);
        MDB_val k = {sizeof from, from}, v;
        size_t n = 0;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && n < S_MOVE_BATCH) {
            if (k.mv_size != 32) {
                mdb_cursor_close(cur);
                return FERRY_EIO;
            }
            memcpy(keys[n++], k.mv_data, 32);
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return fy_storei_mdb(self, rc, "timers next");
        for (size_t i = 0; i < n; i++) {
            MDB_val old = {32, keys[i]}, none = {0, NULL};
            if ((rc = fy_storei_del(self, self->txn, self->timers, &old)))
                return fy_storei_mdb(self, rc, "delete timer");
            fy_be64_put(keys[i], latest);
            if ((rc = fy_storei_put(self, self->txn, self->timers, &old, &none, 0)))
                return fy_storei_mdb(self, rc, "put timer");
        }
        *moved += n;
        self->dirty = self->dirty || n > 0;
        if (n < S_MOVE_BATCH)
            return FERRY_OK;
    }
}

/* The per-message deadlines of redelivered messages, the same way (their
 * values are rewritten in place; the keys stay). */
static fy_status_t
s_pull_pending(fy_store_t *self, uint64_t latest)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(self->txn, self->pend, &cur);
    if (rc)
        return fy_storei_mdb(self, rc, "cursor open");
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size != 12) {
            mdb_cursor_close(cur);
            return FERRY_EIO;
        }
        if (fy_be64_get((const uint8_t *)v.mv_data + 4) > latest) {
            uint8_t nv[12];
            memcpy(nv, v.mv_data, 4);
            fy_be64_put(nv + 4, latest);
            MDB_val val = {12, nv};
            if ((rc = fy_storei_cursor_put(self, cur, &k, &val, MDB_CURRENT)))
                break;
            self->dirty = true;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? FERRY_OK : fy_storei_mdb(self, rc, "pend next");
}

fy_status_t
fy_store_pull_deadlines(fy_store_t *self, uint64_t latest, size_t *moved)
{
    *moved = 0;
    fy_status_t st = s_pull_timers(self, latest, moved);
    return st ? st : s_pull_pending(self, latest);
}
