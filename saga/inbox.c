/* SPDX-License-Identifier: MIT */
/*
 * inbox.c - idempotent consumers (ferry_outbox.h): which messages a service
 * has handled, recorded in the transaction of the work itself.
 *
 * FERRY_INBOX_DB: key "<topic>\x1f<message id>" (or "<topic>\x1f#<seq>"
 * for a message without id), value u64 big-endian: when it was handled.
 */
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "ferry_outbox.h"
#include "mdb_util.h"

ferry_status_t
ferry_inbox_open(MDB_txn *txn, MDB_dbi *dbi)
{
    if (!txn || !dbi)
        return FERRY_EINVAL;
    return fy_mdb_status(mdb_dbi_open(txn, FERRY_INBOX_DB, MDB_CREATE, dbi));
}

ferry_status_t
ferry_inbox_handle(MDB_env *env, MDB_dbi dbi, const ferry_stored_message_t *msg, ferry_inbox_fn fn,
                   void *user, int *fn_rc)
{
    if (fn_rc)
        *fn_rc = 0;
    if (!env || !msg || !msg->topic || !fn)
        return FERRY_EINVAL;
    /* Keys are at most 511 bytes (LMDB's default limit). */
    char key[511];
    int n = msg->id && *msg->id ? snprintf(key, sizeof key, "%s\x1f%s", msg->topic, msg->id)
                                : snprintf(key, sizeof key, "%s\x1f#%llu", msg->topic,
                                           (unsigned long long)msg->seq);
    if (n <= 0 || (size_t)n >= sizeof key)
        return FERRY_EINVAL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc)
        return fy_mdb_status(rc);
    MDB_val k = {(size_t)n, key}, v;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0) { /* handled before */
        mdb_txn_abort(txn);
        return FERRY_EEXISTS;
    }
    if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return fy_mdb_status(rc);
    }
    int r = fn(txn, msg, user);
    if (fn_rc)
        *fn_rc = r;
    if (r != 0) {
        mdb_txn_abort(txn);
        return FERRY_ECANCELLED;
    }
    uint8_t when[8];
    fy_be64_put(when, fy_wall_ms());
    v = (MDB_val){sizeof when, when};
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return fy_mdb_write_status(env, rc);
}

/* Handled before *ctx (ms). */
static bool
s_older(const MDB_val *k, const MDB_val *v, void *ctx)
{
    (void)k;
    return v->mv_size == 8 && fy_be64_get(v->mv_data) < *(const uint64_t *)ctx;
}

ferry_status_t
ferry_inbox_prune(MDB_env *env, MDB_dbi dbi, uint64_t before_ms, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (!env)
        return FERRY_EINVAL;
    return fy_mdb_delete_if(env, dbi, s_older, &before_ms, removed);
}
