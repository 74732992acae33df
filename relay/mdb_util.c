/* SPDX-License-Identifier: MIT */
/*
 * mdb_util.c - see mdb_util.h.
 */
#include "mdb_util.h"

#include <sys/statvfs.h>

ferry_status_t
fy_mdb_write_status(MDB_env *env, int rc)
{
    ferry_status_t st = fy_mdb_status(rc);
    const char *path = NULL;
    struct statvfs vfs;
    if (st == FERRY_EIO && rc == EIO && env && mdb_env_get_path(env, &path) == 0 && path &&
        statvfs(path, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < (1u << 20))
        st = FERRY_ESTORAGE_FULL;
    return st;
}

ferry_status_t
fy_mdb_delete_if(MDB_env *env, MDB_dbi dbi,
                 bool (*pred)(const MDB_val *k, const MDB_val *v, void *ctx), void *ctx,
                 size_t *removed)
{
    if (removed)
        *removed = 0;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc)
        return fy_mdb_status(rc);
    if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
        mdb_txn_abort(txn);
        return fy_mdb_status(rc);
    }
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!pred(&k, &v, ctx))
            continue;
        if ((rc = mdb_cursor_del(cur, 0)))
            break;
        if (removed)
            (*removed)++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return fy_mdb_write_status(env, rc);
}
