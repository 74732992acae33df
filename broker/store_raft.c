/* SPDX-License-Identifier: MIT */
/*
 * store_raft.c - the store on a node of a cluster (docs/cluster.md).
 *
 * The leader runs a batch as a single node does, in a write transaction,
 * recording its writes (store_wal.c's redo operations); then it drops that
 * transaction and appends the record to the replicated log (raftlog.h).
 * Once a quorum has it on disk, every node - the leader too - applies it
 * to its LMDB on the log's thread, in log order, with the entry's index in
 * `meta`. The leader's next batch begins only after its entry was applied,
 * so it always works on the whole state, and a batch holds no write
 * transaction while it waits for the log (the log's thread needs one).
 *
 * What is durable is the log and its snapshots (libraft syncs both). LMDB
 * commits without syncing: a stop that was not clean (kill, power cut)
 * leaves no DATA/cluster.clean, and at the next start LMDB is emptied and
 * rebuilt from the last snapshot and the log behind it. A snapshot is a
 * compacted copy of the environment (mdb_env_copyfd2), its own index in
 * its `meta`.
 */
#include "store.h"
#include "store_int.h"

#include "bytes.h"
#include "clock.h"
#include "cluster_id.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CLEAN      "cluster.clean"
#define S_RESTORE    "cluster-restore.mdb"
#define S_LEADER_KEY "cluster_leader"
#define S_INDEX_KEY  "raft_index"
#define S_VOTERS_KEY "cluster_voters"

static int
s_path(const fy_store_t *self, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", self->dir, name);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The log's thread writes with these, never through fy_storei_put: the
 * batch's redo record belongs to the broker's thread. */
static int
s_meta_put(fy_store_t *self, MDB_txn *txn, const char *key, uint64_t val)
{
    uint8_t buf[8];
    fy_be64_put(buf, val);
    MDB_val k = {strlen(key), (void *)key}, v = {8, buf};
    return mdb_put(txn, self->meta, &k, &v, 0);
}

static uint64_t
s_meta_u64(MDB_txn *txn, MDB_dbi meta, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(txn, meta, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return fy_be64_get(v.mv_data);
}

static void
s_fail(fy_store_t *self, const char *what, int rc, uint64_t index)
{
    __atomic_store_n(&self->raft_failed, true, __ATOMIC_SEQ_CST);
    fy_log(self->log, FY_LOG_ERROR, "cluster", "cannot apply",
           "during=%s index=%llu rc=%d detail=\"%s; ferryd stops, and rebuilds its state from "
           "the log when it starts again\"",
           what, (unsigned long long)index, rc, rc > 0 ? mdb_strerror(rc) : "i/o error");
}

/* LMDB is about to change: it is not clean until the next clean stop.
 * @return 0, or -1 if the mark could not be removed. */
static int
s_dirty(fy_store_t *self)
{
    char clean[1100];
    if (!self->clean_mark)
        return 0;
    if (s_path(self, S_CLEAN, clean, sizeof clean) != 0 ||
        (unlink(clean) != 0 && errno != ENOENT) || fy_wal_sync_dir(self->dir) != 0)
        return -1;
    self->clean_mark = false;
    return 0;
}

/* The voters the cluster's first leader was started with (in the store once
 * it wrote them) against this node's: a node first started with a --peers
 * list that disagrees must not go on. Checked until they were seen once. */
static bool
s_voters_disagree(fy_store_t *self, MDB_txn *txn)
{
    if (self->voters_checked || !self->boot_voters[0])
        return false;
    MDB_val k = {sizeof S_VOTERS_KEY - 1, S_VOTERS_KEY}, v;
    if (mdb_get(txn, self->meta, &k, &v) != 0)
        return false;
    size_t n = strlen(self->boot_voters);
    if (v.mv_size == n && memcmp(v.mv_data, self->boot_voters, n) == 0) {
        self->voters_checked = true;
        return false;
    }
    fy_log(self->log, FY_LOG_ERROR, "cluster", "peers disagree",
           "ours=\"%s\" cluster=\"%.*s\" detail=\"this node was first started with another "
           "--peers list than the cluster's first leader: it stops (start it with the cluster's "
           "list on an empty data directory)\"",
           self->boot_voters, (int)(v.mv_size < 512 ? v.mv_size : 512), (const char *)v.mv_data);
    return true;
}

/* ---- the state machine, on the log's thread ------------------------------ */

static int
s_apply(void *user, uint64_t index, const uint8_t *data, size_t len)
{
    fy_store_t *self = user;
    if (index <= self->raft_applied)
        return 0; /* LMDB has it (a clean restart replays the log behind the snapshot) */
    MDB_txn *txn;
    uint64_t ops = 0;
    int rc = s_dirty(self) ? EIO : mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = fy_storei_redo_apply(self, txn, data, len, &ops);
        if (rc == 0 && s_voters_disagree(self, txn))
            rc = EINVAL;
        if (rc == 0)
            rc = s_meta_put(self, txn, S_INDEX_KEY, index);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc) {
        s_fail(self, "apply", rc, index);
        return -1;
    }
    self->raft_applied = index;
    return 0;
}

static int
s_snapshot(void *user, uint8_t **data, size_t *len)
{
    fy_store_t *self = user;
    long long t0 = fy_mono_us();
    char path[1100];
    if (s_path(self, "cluster-snapshot.XXXXXX", path, sizeof path) != 0)
        return -1;
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    int rc = mdb_env_copyfd2(self->env, fd, MDB_CP_COMPACT);
    off_t size = rc == 0 ? lseek(fd, 0, SEEK_END) : -1;
    uint8_t *buf = size > 0 ? malloc((size_t)size) : NULL;
    size_t got = 0;
    while (buf && got < (size_t)size) {
        ssize_t n = pread(fd, buf + got, (size_t)size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf || got != (size_t)size) {
        free(buf);
        fy_log(self->log, FY_LOG_ERROR, "cluster", "snapshot failed",
               "rc=%d detail=\"%s; the log keeps every entry meanwhile\"", rc,
               rc ? mdb_strerror(rc) : "cannot read the copy");
        return -1;
    }
    __atomic_add_fetch(&self->snapshots, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&self->snapshot_us, (uint64_t)(fy_mono_us() - t0), __ATOMIC_RELAXED);
    *data = buf;
    *len = got;
    return 0;
}

/* Copies every database of @p from into this store's, emptied first. */
static int
s_copy_all(fy_store_t *self, MDB_env *from, MDB_txn *dst)
{
    MDB_dbi dbis[FY_STORE_DBS];
    const char *names[FY_STORE_DBS];
    fy_storei_dbs(self, dbis, names);
    MDB_txn *src;
    int rc = mdb_txn_begin(from, NULL, MDB_RDONLY, &src);
    for (size_t i = 0; rc == 0 && i < FY_STORE_DBS; i++) {
        if ((rc = mdb_drop(dst, dbis[i], 0)))
            break;
        MDB_dbi sdbi;
        if ((rc = mdb_dbi_open(src, names[i], 0, &sdbi)) == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        MDB_cursor *cur;
        if (rc || (rc = mdb_cursor_open(src, sdbi, &cur)))
            break;
        MDB_val k, v;
        int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (g == 0 && (rc = mdb_put(dst, dbis[i], &k, &v, MDB_APPEND)) == 0)
            g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        mdb_cursor_close(cur);
        if (rc == 0 && g != MDB_NOTFOUND)
            rc = g;
    }
    if (src)
        mdb_txn_abort(src);
    return rc;
}

static int
s_restore(void *user, const uint8_t *data, size_t len)
{
    fy_store_t *self = user;
    long long t0 = fy_mono_us();
    char path[1100];
    if (s_path(self, S_RESTORE, path, sizeof path) != 0)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t put = 0;
    while (fd >= 0 && put < len) {
        ssize_t n = write(fd, data + put, len - put);
        if (n <= 0)
            break;
        put += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    MDB_env *snap = NULL;
    int rc = put == len ? 0 : EIO;
    if (rc == 0 && (rc = mdb_env_create(&snap)) == 0 && (rc = mdb_env_set_maxdbs(snap, 16)) == 0)
        rc = mdb_env_open(snap, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR, 0600);
    uint64_t index = 0;
    MDB_txn *txn = NULL;
    if (rc == 0 && (rc = mdb_txn_begin(snap, NULL, MDB_RDONLY, &txn)) == 0) {
        MDB_dbi meta;
        if (mdb_dbi_open(txn, "meta", 0, &meta) == 0)
            index = s_meta_u64(txn, meta, S_INDEX_KEY);
        mdb_txn_abort(txn);
        txn = NULL;
    }
    bool kept = rc == 0 && index <= self->raft_applied;
    if (rc == 0 && !kept && s_dirty(self) != 0)
        rc = EIO;
    if (rc == 0 && !kept && (rc = mdb_txn_begin(self->env, NULL, 0, &txn)) == 0) {
        rc = s_copy_all(self, snap, txn);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (snap)
        mdb_env_close(snap);
    unlink(path);
    if (rc) {
        s_fail(self, "restore", rc, index);
        return -1;
    }
    if (kept) {
        fy_log(self->log, FY_LOG_INFO, "cluster", "snapshot behind the store",
               "snapshot_index=%llu applied_index=%llu detail=\"LMDB kept\"",
               (unsigned long long)index, (unsigned long long)self->raft_applied);
        return 0;
    }
    self->raft_applied = index;
    fy_log(self->log, FY_LOG_INFO, "cluster", "restored a snapshot", "index=%llu bytes=%zu ms=%.1f",
           (unsigned long long)index, len, (double)(fy_mono_us() - t0) / 1000.0);
    return 0;
}

/* ---- opening and closing --------------------------------------------------- */

/* LMDB after a stop that was not clean: emptied (the snapshot and the log
 * give it back). */
static fy_status_t
s_empty(fy_store_t *self, bool *had, fy_err_t *err)
{
    MDB_dbi dbis[FY_STORE_DBS];
    const char *names[FY_STORE_DBS];
    fy_storei_dbs(self, dbis, names);
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc)
        return fy_err_set(err, FERRY_EIO, "cluster: cannot begin: %s", mdb_strerror(rc));
    *had = s_meta_u64(txn, self->meta, S_INDEX_KEY) > 0;
    for (size_t i = 0; rc == 0 && i < FY_STORE_DBS; i++)
        rc = mdb_drop(txn, dbis[i], 0);
    if (rc == 0)
        rc = s_meta_put(self, txn, "format", FY_STORE_FORMAT);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc)
        return fy_err_set(err, FERRY_EIO, "cluster: cannot empty the store: %s", mdb_strerror(rc));
    return FERRY_OK;
}

fy_status_t
fy_storei_raft_open(fy_store_t *self, const fy_store_cluster_t *cl, fy_err_t *err)
{
    char clean[1100], rdir[1100];
    if (s_path(self, S_CLEAN, clean, sizeof clean) || s_path(self, "raft", rdir, sizeof rdir))
        return fy_err_set(err, FERRY_EINVAL, "data directory path too long");
    snprintf(self->advertise, sizeof self->advertise, "%s", cl->advertise ? cl->advertise : "");
    self->raft_id = cl->id;
    /* Whose directory this is, before anything in it changes. */
    char boot[sizeof self->boot_voters] = "";
    if (!cl->join)
        fy_cluster_peers_text(cl->peers, cl->npeers, boot, sizeof boot);
    fy_status_t ist = fy_cluster_identity(self->dir, cl->id, boot, self->boot_voters,
                                          sizeof self->boot_voters, err);
    if (ist)
        return ist;
    if (access(clean, F_OK) == 0) {
        /* Stopped cleanly: LMDB holds every entry up to its index. The mark
         * goes right before the first write (s_dirty): a start that fails
         * (a corrupt log) leaves LMDB trusted. */
        self->clean_mark = true;
    } else {
        bool had = false;
        fy_status_t st = s_empty(self, &had, err);
        if (st)
            return st;
        if (had)
            fy_log(self->log, FY_LOG_WARN, "cluster", "not stopped cleanly",
                   "detail=\"LMDB is rebuilt from the last snapshot and the log\"");
    }
    MDB_txn *txn;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) == 0) {
        self->raft_applied = s_meta_u64(txn, self->meta, S_INDEX_KEY);
        mdb_txn_abort(txn);
    }
    fy_raftlog_config_t rc = {.id = cl->id,
                              .dir = rdir,
                              .bind = cl->bind,
                              .join = cl->join,
                              .peers = cl->peers,
                              .npeers = cl->npeers,
                              .election_ms = cl->election_ms,
                              .heartbeat_ms = cl->heartbeat_ms,
                              .snapshot_every = cl->snapshot_every,
                              .snapshot_trailing = cl->snapshot_every,
                              .fsm = {.user = self,
                                      .apply = s_apply,
                                      .snapshot = s_snapshot,
                                      .restore = s_restore,
                                      .snapshot_async = true}};
    return fy_raftlog_start(&rc, self->log, &self->raft, err);
}

void
fy_storei_raft_close(fy_store_t *self)
{
    if (self->root)
        mdb_txn_abort(self->root);
    self->root = NULL;
    fy_raftlog_stop(&self->raft);
    if (__atomic_load_n(&self->raft_failed, __ATOMIC_SEQ_CST))
        return; /* rebuilt at the next start */
    if (self->clean_mark)
        return; /* nothing written since the last clean stop: still clean */
    char clean[1100];
    if (mdb_env_sync(self->env, 1) != 0 || s_path(self, S_CLEAN, clean, sizeof clean) != 0)
        return;
    int fd = open(clean, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fsync(fd) != 0 || fy_wal_sync_dir(self->dir) != 0)
        fy_log(self->log, FY_LOG_WARN, "cluster", "cannot mark the store clean",
               "detail=\"%s; the next start rebuilds it from the log\"", strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* ---- batches on the leader ------------------------------------------------ */

fy_status_t
fy_storei_raft_may_write(fy_store_t *self)
{
    if (__atomic_load_n(&self->raft_failed, __ATOMIC_SEQ_CST))
        return FERRY_EIO;
    fy_raftlog_state_t st;
    fy_raftlog_state(self->raft, &st);
    if (!st.ready)
        return FERRY_ENOTLEADER;
    self->leader_term_seen = st.term;
    return FERRY_OK;
}

fy_status_t
fy_storei_raft_begun(fy_store_t *self)
{
    if (self->leader_term == self->leader_term_seen)
        return FERRY_OK;
    /* Who leads, for the followers to name to clients: term, node, endpoint. */
    uint8_t buf[16 + sizeof self->advertise];
    size_t n = strlen(self->advertise);
    fy_be64_put(buf, self->leader_term_seen);
    fy_be64_put(buf + 8, self->raft_id);
    memcpy(buf + 16, self->advertise, n);
    MDB_val k = {sizeof S_LEADER_KEY - 1, S_LEADER_KEY}, v = {16 + n, buf};
    fy_status_t st = fy_storei_set(self, self->meta, &k, &v, "put leader");
    /* The cluster's first voters, as its first leader was started with. */
    MDB_val vk = {sizeof S_VOTERS_KEY - 1, S_VOTERS_KEY}, vv;
    if (st || !self->boot_voters[0] || mdb_get(self->txn, self->meta, &vk, &vv) != MDB_NOTFOUND)
        return st ? st
               : !s_voters_disagree(self, self->txn)
                   ? FERRY_OK
                   : (__atomic_store_n(&self->raft_failed, true, __ATOMIC_SEQ_CST),
                      FERRY_EIO); /* ferryd stops */
    vv = (MDB_val){strlen(self->boot_voters), self->boot_voters};
    return fy_storei_set(self, self->meta, &vk, &vv, "put voters");
}

fy_status_t
fy_storei_raft_commit(fy_store_t *self)
{
    size_t ops = self->redo_len - FY_WAL_HDR;
    /* The batch's transaction is not kept: the log's thread writes what the
     * log decides, and needs LMDB's write lock for it. */
    if (self->root)
        mdb_txn_abort(self->root);
    self->root = NULL;
    if (ops == 0)
        return FERRY_OK;
    uint64_t index = 0;
    fy_raftlog_result_t r = fy_raftlog_append(self->raft, self->redo + FY_WAL_HDR, ops, &index);
    if (__atomic_load_n(&self->raft_failed, __ATOMIC_SEQ_CST))
        return FERRY_EIO;
    switch (r) {
    case FY_RAFTLOG_COMMITTED:
        self->lsn_last = index;
        self->leader_term = self->leader_term_seen;
        return FERRY_OK;
    case FY_RAFTLOG_NOT_LEADER:
        return FERRY_ENOTLEADER;
    case FY_RAFTLOG_LOST:
        fy_log(self->log, FY_LOG_WARN, "cluster", "lead lost during a batch",
               "bytes=%zu detail=\"the batch may still commit under the next leader; its "
               "clients are told ELEADER_LOST and send again with ids\"",
               ops);
        return FERRY_ELEADER_LOST;
    default:
        fy_log(self->log, FY_LOG_ERROR, "cluster", "append failed", "bytes=%zu", ops);
        return FERRY_EIO;
    }
}

/* ---- what the broker asks ----------------------------------------------------- */

bool
fy_store_leads(fy_store_t *self)
{
    if (!self->raft)
        return true;
    fy_raftlog_state_t st;
    fy_raftlog_state(self->raft, &st);
    return st.ready;
}

void
fy_store_leader(fy_store_t *self, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!self->raft || cap == 0)
        return;
    fy_raftlog_state_t st;
    fy_raftlog_state(self->raft, &st);
    MDB_txn *txn;
    if (st.leader_id == 0 || mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    MDB_val k = {sizeof S_LEADER_KEY - 1, S_LEADER_KEY}, v;
    if (mdb_get(txn, self->meta, &k, &v) == 0 && v.mv_size >= 16 &&
        fy_be64_get((const uint8_t *)v.mv_data + 8) == st.leader_id) {
        size_t n = v.mv_size - 16 < cap - 1 ? v.mv_size - 16 : cap - 1;
        memcpy(out, (const uint8_t *)v.mv_data + 16, n);
        out[n] = '\0';
    }
    mdb_txn_abort(txn);
}

fy_status_t
fy_store_cluster_change(fy_store_t *self, uint64_t id, const char *address, char *why, size_t cap)
{
    if (!self->raft) {
        snprintf(why, cap, "this ferryd is a single node, not a cluster (docs/cluster.md)");
        return FERRY_EINVAL;
    }
    return fy_raftlog_change(self->raft, id, address, why, cap);
}

bool
fy_store_cluster_state(fy_store_t *self, fy_store_cluster_stats_t *out)
{
    if (!self->raft)
        return false;
    fy_raftlog_state(self->raft, &out->raft);
    out->snapshots = __atomic_load_n(&self->snapshots, __ATOMIC_RELAXED);
    out->snapshot_us = __atomic_load_n(&self->snapshot_us, __ATOMIC_RELAXED);
    return true;
}
