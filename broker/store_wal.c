/* SPDX-License-Identifier: MIT */
/*
 * store_wal.c - the store behind its write-ahead log: batches nest in one
 * long LMDB write transaction (the root), each batch's writes are recorded
 * as redo operations, and a batch is durable once its record is in the log
 * (one fdatasync). Checkpoints commit the root (LMDB syncs its pages, then
 * its meta page) with the log's last LSN in `meta`, and the log starts over.
 * At open, records past LMDB's LSN are applied again; when a checkpoint or
 * an append fails, the root is rebuilt from the log, so that LMDB's view and
 * the log never disagree about what was confirmed.
 *
 * A redo operation: kind (1 put, 2 delete), the database handle, key length
 * (2 bytes), value length (4 bytes), key, value. Handles are the order in
 * which store_open.c opens the databases: that list only grows at its end.
 */
#include "store.h"
#include "store_int.h"

#include "bytes.h"
#include "clock.h"
#include "grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#define S_OP_PUT 1
#define S_OP_DEL 2
#define S_OP_HDR 8

/* ---- recording a batch's writes ---------------------------------------- */

static int
s_redo(fy_store_t *self, int op, MDB_dbi dbi, const MDB_val *k, const MDB_val *v)
{
    if (!self->recording)
        return 0;
    size_t vlen = v ? v->mv_size : 0;
    if (k->mv_size > UINT16_MAX || vlen > UINT32_MAX)
        return EINVAL;
    size_t need = self->redo_len + S_OP_HDR + k->mv_size + vlen;
    if (!fy_grow(&self->redo, &self->redo_cap, need, 1, 64u << 10)) {
        self->redo_failed = true;
        return ENOMEM;
    }
    uint8_t *p = self->redo + self->redo_len;
    p[0] = (uint8_t)op;
    p[1] = (uint8_t)dbi;
    fy_be16_put(p + 2, (uint16_t)k->mv_size);
    fy_be32_put(p + 4, (uint32_t)vlen);
    memcpy(p + S_OP_HDR, k->mv_data, k->mv_size);
    if (vlen)
        memcpy(p + S_OP_HDR + k->mv_size, v->mv_data, vlen);
    self->redo_len = need;
    return 0;
}

int
fy_storei_put(fy_store_t *self, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags)
{
    size_t mark = self->redo_len;
    int rc = (flags & MDB_RESERVE) ? 0 : s_redo(self, S_OP_PUT, dbi, k, v);
    if (rc == 0 && (rc = mdb_put(txn, dbi, k, v, flags)) != 0)
        self->redo_len = mark;
    return rc;
}

int
fy_storei_del(fy_store_t *self, MDB_txn *txn, MDB_dbi dbi, MDB_val *k)
{
    size_t mark = self->redo_len;
    int rc = s_redo(self, S_OP_DEL, dbi, k, NULL);
    if (rc == 0 && (rc = mdb_del(txn, dbi, k, NULL)) != 0)
        self->redo_len = mark;
    return rc;
}

int
fy_storei_cursor_put(fy_store_t *self, MDB_cursor *cur, MDB_val *k, MDB_val *v, unsigned flags)
{
    size_t mark = self->redo_len;
    MDB_dbi dbi = mdb_cursor_dbi(cur);
    int rc = (flags & MDB_RESERVE) ? 0 : s_redo(self, S_OP_PUT, dbi, k, v);
    if (rc == 0 && (rc = mdb_cursor_put(cur, k, v, flags)) != 0)
        self->redo_len = mark;
    return rc;
}

int
fy_storei_cursor_del(fy_store_t *self, MDB_cursor *cur)
{
    size_t mark = self->redo_len;
    MDB_val k, v;
    int rc = 0;
    if (self->recording && (rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT)) == 0)
        rc = s_redo(self, S_OP_DEL, mdb_cursor_dbi(cur), &k, NULL);
    if (rc == 0 && (rc = mdb_cursor_del(cur, 0)) != 0)
        self->redo_len = mark;
    return rc;
}

fy_status_t
fy_storei_set(fy_store_t *self, MDB_dbi dbi, MDB_val *k, MDB_val *v, const char *what)
{
    return fy_storei_mdb(self, fy_storei_put(self, self->txn, dbi, k, v, 0), what);
}

int
fy_storei_logged(fy_store_t *self, MDB_dbi dbi, const MDB_val *k, const MDB_val *v)
{
    return s_redo(self, S_OP_PUT, dbi, k, v);
}

/* ---- applying records again ---------------------------------------------- */

typedef struct s_replay {
    fy_store_t *store;
    MDB_txn *txn;
    uint64_t records, ops;
    int rc;
} s_replay_t;

int
fy_storei_redo_apply(fy_store_t *self, MDB_txn *txn, const uint8_t *p, size_t len, uint64_t *ops)
{
    (void)self;
    size_t off = 0;
    while (off < len) {
        if (len - off < S_OP_HDR)
            return EINVAL;
        int op = p[off];
        MDB_dbi dbi = p[off + 1];
        size_t klen = fy_be16_get(p + off + 2), vlen = fy_be32_get(p + off + 4);
        if (len - off - S_OP_HDR < klen + vlen || (op != S_OP_PUT && op != S_OP_DEL) || dbi < 2 ||
            dbi >= 2 + FY_STORE_DBS) /* LMDB's own are 0 and 1 */
            return EINVAL;
        MDB_val k = {klen, (void *)(p + off + S_OP_HDR)};
        MDB_val v = {vlen, (void *)(p + off + S_OP_HDR + klen)};
        int rc = op == S_OP_PUT ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL);
        if (rc && !(op == S_OP_DEL && rc == MDB_NOTFOUND))
            return rc;
        (*ops)++;
        off += S_OP_HDR + klen + vlen;
    }
    return 0;
}

static int
s_apply(void *ctx, uint64_t lsn, const uint8_t *p, size_t len)
{
    (void)lsn;
    s_replay_t *r = ctx;
    int rc = fy_storei_redo_apply(r->store, r->txn, p, len, &r->ops);
    if (rc)
        return r->rc = rc;
    r->records++;
    return 0;
}

/* Applies the log's records past the checkpoint to @p txn.
 * @return 0 or an LMDB/errno code (-1: the log could not be read). */
static int
s_replay(fy_store_t *self, MDB_txn *txn, uint64_t *last, s_replay_t *r)
{
    *r = (s_replay_t){.store = self, .txn = txn};
    int rc = fy_wal_scan(self->wal, self->lsn_cp, s_apply, r, last);
    return rc > 0 ? r->rc : rc;
}

/* The root is lost (a failed checkpoint or append): a new one holds again
 * exactly what the log holds. If even that fails the store cannot go on. */
static fy_status_t
s_rebuild(fy_store_t *self)
{
    if (self->root)
        mdb_txn_abort(self->root);
    self->root = NULL;
    uint64_t last = self->lsn_cp;
    s_replay_t r;
    int rc = mdb_txn_begin(self->env, NULL, 0, &self->root);
    if (rc == 0 && (rc = s_replay(self, self->root, &last, &r)) != 0) {
        mdb_txn_abort(self->root);
        self->root = NULL;
    }
    if (rc) {
        self->root = NULL;
        self->broken = true;
        fy_log(self->log, FY_LOG_ERROR, "store", "cannot rebuild from the write-ahead log",
               "rc=%d detail=\"%s; ferryd must restart (it recovers from the log at start)\"", rc,
               rc > 0 ? mdb_strerror(rc) : "cannot read the log");
        return FERRY_EIO;
    }
    self->lsn_last = last;
    fy_log(self->log, FY_LOG_WARN, "store", "rebuilt from the write-ahead log",
           "records=%llu ops=%llu lsn=%llu", (unsigned long long)r.records,
           (unsigned long long)r.ops, (unsigned long long)last);
    return FERRY_OK;
}

/* ---- the root and its checkpoints ------------------------------------- */

fy_status_t
fy_storei_root(fy_store_t *self)
{
    if (self->broken)
        return FERRY_EIO;
    fy_status_t st = self->raft ? fy_storei_raft_may_write(self) : FERRY_OK;
    if (st)
        return st;
    if (self->root)
        return FERRY_OK;
    int rc = mdb_txn_begin(self->env, NULL, 0, &self->root);
    if (rc) {
        self->root = NULL;
        return fy_storei_mdb(self, rc, "begin root");
    }
    return FERRY_OK;
}

/* A commit failed with @p rc: a full file system, a full map or an I/O
 * error, said once. */
fy_status_t
fy_storei_commit_failed(fy_store_t *self, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL)
        return FERRY_ESTORAGE_FULL;
    /* LMDB reports a short write as EIO: on a file system with (almost)
     * nothing left that is a full disk too. */
    fy_store_disk_t now;
    if (rc == EIO)
        fy_store_disk(self, &now);
    if (rc == ENOSPC || rc == EDQUOT || (rc == EIO && now.total && now.free < (1u << 20))) {
        /* Give the reserve back so that acks, deletes and cleanup can write. */
        bool had = self->reserve_held;
        fy_storei_reserve_give(self);
        fy_store_disk_t d;
        fy_store_disk(self, &d);
        if (!self->disk_full)
            fy_log(self->log, FY_LOG_WARN, "store", "disk full",
                   "during=%s free_bytes=%llu total_bytes=%llu reserve_released=%d "
                   "detail=\"%s; publishes refused until there is room\"",
                   what, (unsigned long long)d.free, (unsigned long long)d.total, (int)had,
                   mdb_strerror(rc));
        self->disk_full = true;
        return FERRY_ESTORAGE_FULL;
    }
    fy_log(self->log, FY_LOG_ERROR, "store", "commit failed", "during=%s rc=%d detail=\"%s\"", what,
           rc, mdb_strerror(rc));
    return FERRY_EIO;
}

fy_status_t
fy_store_checkpoint(fy_store_t *self)
{
    if (self->txn)
        return FERRY_EINTERNAL;
    if (self->raft) /* each entry is committed to LMDB as it is applied */
        return self->broken ? FERRY_EIO : FERRY_OK;
    if (!self->root || self->lsn_last == self->lsn_cp) {
        if (self->root)
            mdb_txn_abort(self->root); /* nothing written: nothing to keep */
        self->root = NULL;
        self->cp_first_ms = 0;
        return self->broken ? FERRY_EIO : FERRY_OK;
    }
    long long t0 = fy_mono_us();
    uint64_t lsn = self->lsn_last;
    fy_status_t st = fy_storei_meta_put(self, self->root, "wal_lsn", lsn);
    int rc = st ? MDB_MAP_FULL : mdb_txn_commit(self->root);
    if (st)
        mdb_txn_abort(self->root);
    self->root = NULL;
    self->spoiled = false;
    if (rc) {
        self->cp_failed_ms = fy_mono_ms();
        st = fy_storei_commit_failed(self, rc, "checkpoint");
        fy_status_t rb = s_rebuild(self);
        return rb ? rb : st;
    }
    self->lsn_cp = lsn;
    fy_wal_rewind(self->wal);
    self->cp_first_ms = 0;
    self->checkpoints++;
    self->checkpoint_us = (uint64_t)(fy_mono_us() - t0);
    return FERRY_OK;
}

long long
fy_store_checkpoint_in(const fy_store_t *self, long long now_ms)
{
    if (self->raft || !self->root || self->lsn_last == self->lsn_cp || !self->cp_first_ms)
        return -1;
    if (self->cp_failed_ms && now_ms - self->cp_failed_ms < FY_STORE_CP_RETRY_MS)
        return self->cp_failed_ms + FY_STORE_CP_RETRY_MS - now_ms;
    if (fy_wal_used(self->wal) >= fy_wal_size(self->wal) / 2)
        return 0;
    long long quiet = self->last_write_ms + FY_STORE_CP_QUIET_MS - now_ms;
    long long oldest = self->cp_first_ms + FY_STORE_CP_MAX_MS - now_ms;
    long long in = quiet < oldest ? quiet : oldest;
    return in < 0 ? 0 : in;
}

/* Makes the batch just merged into the root durable: its record goes to
 * the log, or, if it does not fit (or the map is nearly full), the root is
 * checkpointed with it. */
fy_status_t
fy_storei_wal_commit(fy_store_t *self)
{
    if (self->raft)
        return fy_storei_raft_commit(self);
    size_t ops = self->redo_len - FY_WAL_HDR;
    if (ops == 0)
        return FERRY_OK;
    uint64_t lsn = self->lsn_last + 1;
    long long now = fy_mono_ms();
    if (self->map_tight || !fy_wal_fits(self->wal, ops)) {
        self->lsn_last = lsn;
        fy_status_t st = fy_store_checkpoint(self);
        if (st == FERRY_OK)
            self->cp_full++;
        return st;
    }
    fy_status_t st = fy_wal_append(self->wal, self->redo, ops, lsn);
    if (st) {
        /* Not durable, and maybe half on disk: the root drops the batch. */
        fy_status_t rb = s_rebuild(self);
        return rb ? rb : st;
    }
    self->lsn_last = lsn;
    if (!self->cp_first_ms)
        self->cp_first_ms = now;
    self->last_write_ms = now;
    return FERRY_OK;
}

/* ---- opening: the log's size, and recovery ----------------------------- */

static uint64_t
s_wal_size(const fy_store_t *self, uint64_t want)
{
    if (want)
        return want < FY_WAL_MIN_BYTES ? FY_WAL_MIN_BYTES : want;
    /* Default: 64 MiB, but at most an eighth of the file system. */
    uint64_t size = FY_STORE_WAL_DEFAULT;
    struct statvfs sv;
    if (statvfs(self->dir, &sv) == 0) {
        uint64_t eighth = (uint64_t)sv.f_blocks * sv.f_frsize / 8;
        if (eighth < size)
            size = eighth & ~(uint64_t)4095;
    }
    return size < FY_WAL_MIN_BYTES ? FY_WAL_MIN_BYTES : size;
}

fy_status_t
fy_storei_wal_open(fy_store_t *self, uint64_t want_bytes, bool sync, fy_err_t *err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/ferry.wal", self->dir);
    uint64_t size = s_wal_size(self, want_bytes);
    fy_status_t st = fy_wal_open(path, size, sync, self->log, &self->wal, err);
    if (st)
        return st;
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc)
        return fy_err_set(err, FERRY_EIO, "cannot begin recovery: %s", mdb_strerror(rc));
    bool found;
    uint64_t cp = 0, last = 0;
    if ((st = fy_storei_meta_get(self, txn, "wal_lsn", &cp, &found))) {
        mdb_txn_abort(txn);
        return fy_err_set(err, st, "cannot read the checkpoint's LSN");
    }
    self->lsn_cp = cp;
    long long t0 = fy_mono_us();
    s_replay_t r;
    rc = s_replay(self, txn, &last, &r);
    if (rc == 0 && last > cp && (st = fy_storei_meta_put(self, txn, "wal_lsn", last)))
        rc = MDB_MAP_FULL;
    if (rc) {
        mdb_txn_abort(txn);
        return fy_err_set(err, rc == MDB_MAP_FULL ? FERRY_ESTORAGE_FULL : FERRY_EIO,
                          "cannot apply the write-ahead log (record %llu): %s",
                          (unsigned long long)last + 1, rc > 0 ? mdb_strerror(rc) : "read error");
    }
    if (last == cp) {
        mdb_txn_abort(txn);
    } else if ((rc = mdb_txn_commit(txn))) {
        return fy_err_set(err, rc == ENOSPC || rc == MDB_MAP_FULL ? FERRY_ESTORAGE_FULL : FERRY_EIO,
                          "cannot commit what the write-ahead log held: %s", mdb_strerror(rc));
    } else {
        fy_log(self->log, FY_LOG_INFO, "store", "recovered from the write-ahead log",
               "records=%llu ops=%llu from_lsn=%llu to_lsn=%llu ms=%.1f",
               (unsigned long long)r.records, (unsigned long long)r.ops, (unsigned long long)cp + 1,
               (unsigned long long)last, (double)(fy_mono_us() - t0) / 1000.0);
    }
    self->lsn_cp = self->lsn_last = last;
    fy_wal_rewind(self->wal);
    if (fy_wal_size(self->wal) != size && (st = fy_wal_recreate(self->wal, size, err)))
        return st;
    return FERRY_OK;
}

void
fy_storei_wal_close(fy_store_t *self)
{
    if (self->raft) {
        fy_storei_raft_close(self);
        return;
    }
    if (self->wal && !self->broken) {
        fy_status_t st = fy_store_checkpoint(self);
        if (st)
            fy_log(self->log, FY_LOG_WARN, "store", "last checkpoint failed",
                   "code=%s detail=\"the write-ahead log keeps the batches; they are applied "
                   "at the next start\"",
                   fy_status_name(st));
    }
    if (self->root)
        mdb_txn_abort(self->root);
    self->root = NULL;
    fy_wal_destroy(&self->wal);
}

void
fy_store_wal_stats(const fy_store_t *self, fy_store_wal_stats_t *out)
{
    *out = (fy_store_wal_stats_t){
        .checkpoints = self->checkpoints,
        .checkpoints_full = self->cp_full,
        .last_checkpoint_us = self->checkpoint_us,
        .wal_used = self->wal ? fy_wal_used(self->wal) : 0,
        .wal_size = self->wal ? fy_wal_size(self->wal) : 0,
        .lsn = self->lsn_last,
    };
}

bool
fy_store_broken(const fy_store_t *self)
{
    return self->broken || __atomic_load_n(&self->raft_failed, __ATOMIC_SEQ_CST);
}

fy_status_t
fy_store_backup(fy_store_t *self, const char *dir, fy_err_t *err)
{
    if (self->raft) /* its LMDB is not a single broker's store */
        return fy_err_set(err, FERRY_EINVAL,
                          "a cluster's node makes no backup yet: its peers keep copies "
                          "(docs/operations.md, Backups)");
    if (mkdir(dir, 0700) != 0)
        return fy_err_set(err, errno == EEXIST ? FERRY_EEXISTS : FERRY_EIO,
                          "cannot make the backup's directory: %s", strerror(errno));
    /* LMDB's committed state (the last checkpoint), then the log's records
     * since: a ferryd opening the copy applies them, as after a crash. */
    int rc = mdb_env_copy2(self->env, dir, MDB_CP_COMPACT);
    if (rc)
        return fy_err_set(err, FERRY_EIO, "cannot copy LMDB into the backup: %s", mdb_strerror(rc));
    char path[1100];
    snprintf(path, sizeof path, "%s/ferry.wal", dir);
    fy_status_t st = self->wal ? fy_wal_copy(self->wal, path, err) : FERRY_OK;
    /* The files' names, then the directory's own. */
    char parent[1100];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash)
        *(slash == parent ? slash + 1 : slash) = '\0';
    if (st == FERRY_OK && (fy_wal_sync_dir(dir) != 0 || fy_wal_sync_dir(parent) != 0))
        st = fy_err_set(err, FERRY_EIO, "cannot sync the backup's directory: %s", strerror(errno));
    return st;
}
