/* SPDX-License-Identifier: MIT */
/*
 * store_open.c - opening the store: the data directory and its lock, the
 * LMDB environment and its databases, the format check and the upgrade of
 * version-1 data; and closing it.
 */
#include "store.h"
#include "store_int.h"

#include "clock.h"

#include <stddef.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Format 1 had no per-key index: build it from the messages, in slices of
 * one transaction each, remembering where it stands so that a crash midway
 * goes on from there. Format 2 is written once the index is whole. */
static fy_status_t
s_upgrade_v1(fy_store_t *self, fy_err_t *err)
{
    uint64_t done = 0;
    for (;;) {
        int rc = mdb_txn_begin(self->env, NULL, 0, &self->txn);
        if (rc)
            return fy_err_set(err, FERRY_EIO, "upgrade: %s", mdb_strerror(rc));
        MDB_cursor *cur = NULL;
        uint64_t pos_topic = 0, pos_seq = 0;
        bool f1, f2, finished = false;
        fy_status_t st = fy_storei_meta_get(self, self->txn, "upgrade_topic", &pos_topic, &f1);
        if (st == FERRY_OK)
            st = fy_storei_meta_get(self, self->txn, "upgrade_seq", &pos_seq, &f2);
        if (st == FERRY_OK && (rc = mdb_cursor_open(self->txn, self->keyidx, &self->key_cur)))
            st = fy_storei_mdb(self, rc, "cursor open");
        if (st == FERRY_OK && (rc = mdb_cursor_open(self->txn, self->messages, &cur)))
            st = fy_storei_mdb(self, rc, "cursor open");
        uint8_t key[16];
        fy_storei_msg_key(key, pos_topic, pos_seq + 1);
        MDB_val k = {16, key}, v;
        rc = st ? 0 : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        for (size_t n = 0; st == FERRY_OK && rc == 0 && n < 50000; n++) {
            fy_stored_t m;
            if (!fy_storei_parse_message(&k, &v, &m)) {
                st = FERRY_EIO;
                break;
            }
            pos_topic = fy_be64_get(k.mv_data);
            pos_seq = m.seq;
            uint8_t kcopy[FY_ID_MAX];
            fy_bytes_t mk = {kcopy, m.key.len};
            memcpy(kcopy, m.key.ptr, m.key.len);
            uint64_t ver;
            if (mk.len && (st = fy_storei_kidx_add(self, pos_topic, mk, m.seq, &ver)))
                break;
            done++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (st == FERRY_OK && rc == MDB_NOTFOUND)
            finished = true;
        else if (st == FERRY_OK && rc)
            st = fy_storei_mdb(self, rc, "upgrade scan");
        if (cur)
            mdb_cursor_close(cur);
        if (self->key_cur)
            mdb_cursor_close(self->key_cur);
        self->key_cur = NULL;
        if (st == FERRY_OK && finished) {
            MDB_val a = {13, "upgrade_topic"}, b = {11, "upgrade_seq"};
            mdb_del(self->txn, self->meta, &a, NULL);
            mdb_del(self->txn, self->meta, &b, NULL);
            st = fy_storei_meta_put(self, self->txn, "format", FY_STORE_FORMAT);
        } else if (st == FERRY_OK) {
            if ((st = fy_storei_meta_put(self, self->txn, "upgrade_topic", pos_topic)) == FERRY_OK)
                st = fy_storei_meta_put(self, self->txn, "upgrade_seq", pos_seq);
        }
        if (st) {
            mdb_txn_abort(self->txn);
            self->txn = NULL;
            return fy_err_set(err, st, "upgrade from format 1 failed: %s", fy_status_text(st));
        }
        rc = mdb_txn_commit(self->txn);
        self->txn = NULL;
        if (rc)
            return fy_err_set(err, FERRY_EIO, "upgrade commit: %s", mdb_strerror(rc));
        if (finished) {
            fy_log(self->log, FY_LOG_INFO, "store", "upgraded storage format",
                   "from=1 to=%d "
                   "messages=%llu",
                   FY_STORE_FORMAT, (unsigned long long)done);
            return FERRY_OK;
        }
    }
}

/* The databases in the order they are opened: their handles are the redo
 * records' (store_wal.c), so this list only grows at its end. */
static const char *const s_db_names[FY_STORE_DBS] = {
    "meta",    "topics", "messages", "dedupe", "dedupe_exp", "subs",  "deleted",
    "sub_ids", "acks",   "pend",     "timers", "due",        "keyidx"};

static void
s_dbs(fy_store_t *self, MDB_dbi **out)
{
    MDB_dbi *dbs[FY_STORE_DBS] = {&self->meta,       &self->topics, &self->messages, &self->dedupe,
                                  &self->dedupe_exp, &self->subs,   &self->deleted,  &self->sub_ids,
                                  &self->acks,       &self->pend,   &self->timers,   &self->due,
                                  &self->keyidx};
    memcpy(out, dbs, sizeof dbs);
}

void
fy_storei_dbs(fy_store_t *self, MDB_dbi *out, const char **names)
{
    MDB_dbi *dbs[FY_STORE_DBS];
    s_dbs(self, dbs);
    for (size_t i = 0; i < FY_STORE_DBS; i++) {
        out[i] = *dbs[i];
        names[i] = s_db_names[i];
    }
}

static fy_status_t
s_open_dbs(fy_store_t *self, fy_err_t *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc)
        return fy_err_set(err, FERRY_EIO, "cannot begin transaction: %s", mdb_strerror(rc));
    MDB_dbi *dbs[FY_STORE_DBS];
    s_dbs(self, dbs);
    for (size_t i = 0; i < FY_STORE_DBS; i++) {
        rc = mdb_dbi_open(txn, s_db_names[i], MDB_CREATE, dbs[i]);
        if (rc) {
            mdb_txn_abort(txn);
            if (rc == MDB_MAP_FULL)
                return fy_err_set(err, FERRY_ESTORAGE_FULL, "map too small to create the store");
            return fy_err_set(err, FERRY_EIO, "cannot open database %s: %s", s_db_names[i],
                              mdb_strerror(rc));
        }
    }
    uint64_t format = 0;
    bool found;
    fy_status_t st = fy_storei_meta_get(self, txn, "format", &format, &found);
    if (st == FERRY_OK && found && format > FY_STORE_FORMAT) {
        mdb_txn_abort(txn);
        return fy_err_set(err, FERRY_EFORMAT,
                          "data directory has storage format %llu; this ferryd reads up to %d "
                          "(upgrade ferryd)",
                          (unsigned long long)format, FY_STORE_FORMAT);
    }
    /* Format 3 only adds content hashes to new dedupe entries, format 4
     * the write-ahead log beside LMDB, format 5 an owner to subscription
     * records: format 2-4 data are format 5 data, marked so that an older
     * ferryd refuses it (it would not apply the log, or misread an owner). */
    if (st == FERRY_OK && (!found || (format >= 2 && format < FY_STORE_FORMAT)))
        st = fy_storei_meta_put(self, txn, "format", FY_STORE_FORMAT);
    if (st) {
        mdb_txn_abort(txn);
        return fy_err_set(err, st, "cannot initialise the store: %s", fy_status_text(st));
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        return fy_err_set(err, rc == MDB_MAP_FULL ? FERRY_ESTORAGE_FULL : FERRY_EIO,
                          "cannot commit store initialisation: %s", mdb_strerror(rc));
    self->spoiled = false;
    if (found && format == 1)
        return s_upgrade_v1(self, err);
    return FERRY_OK;
}

/* Creates `dir` and its missing parents, like mkdir -p: the parents 0755,
 * the data directory itself 0700 (its messages are nobody else's). */
static int
s_mkdir_p(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, i == len ? 0700 : 0755) != 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    return 0;
}

/* The record caches write through the store, so that the log records it. */
static int
s_cache_put(void *ctx, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    return fy_storei_put(ctx, txn, dbi, key, val, 0);
}

fy_status_t
fy_store_open(const fy_store_opts_t *opts, fy_store_t **out, fy_err_t *err)
{
    *out = NULL;
    fy_store_t *self = calloc(1, sizeof *self);
    if (!self)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    self->lock_fd = -1;
    fy_reccache_init(&self->topics_cache, sizeof(fy_topic_rec_t), offsetof(fy_topic_rec_t, dirty),
                     fy_storei_topic_kv, s_cache_put, self);
    fy_reccache_init(&self->subs_cache, sizeof(fy_sub_rec_t), offsetof(fy_sub_rec_t, dirty),
                     fy_storei_sub_kv, s_cache_put, self);
    self->log = opts->log;
    self->on_dead_letter = opts->on_dead_letter;
    self->dead_letter_user = opts->dead_letter_user;
    self->scratch = fy_encoder_new();
    self->hashes = calloc(FY_BATCH_MAX, sizeof *self->hashes);
    if (!self->scratch || !self->hashes) {
        fy_encoder_destroy(&self->scratch);
        free(self->hashes);
        free(self);
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    self->default_dedupe_ms = opts->dedupe_window_ms;
    self->map_size = opts->map_size;
    self->reserve_bytes = opts->reserve_bytes;
    snprintf(self->dir, sizeof self->dir, "%s", opts->dir);
    fy_status_t st;
    int rc;
    if (s_mkdir_p(opts->dir) != 0) {
        st = fy_err_set(err, FERRY_EIO, "cannot create data directory: %s", strerror(errno));
        goto fail;
    }
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/ferryd.lock", opts->dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        st = fy_err_set(err, FERRY_EINVAL, "data directory path too long");
        goto fail;
    }
    struct stat sb;
    if (stat(opts->dir, &sb) == 0 && (sb.st_mode & 0077))
        fy_log(self->log, FY_LOG_WARN, "store", "data directory open to others",
               "dir=%s mode=%04o detail=\"other local users may read its messages: chmod 700 "
               "it\"",
               opts->dir, (unsigned)(sb.st_mode & 07777));
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd < 0) {
        st = fy_err_set(err, FERRY_EIO, "cannot open lock file: %s", strerror(errno));
        goto fail;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        st = fy_err_set(err, FERRY_EIO, "data directory is in use by another ferryd");
        goto fail;
    }
    if ((rc = mdb_env_create(&self->env)) || (rc = mdb_env_set_maxdbs(self->env, 16)) ||
        (rc = mdb_env_set_mapsize(self->env, (size_t)opts->map_size))) {
        st = fy_err_set(err, FERRY_EIO, "cannot create LMDB environment: %s", mdb_strerror(rc));
        goto fail;
    }
    /* Default flags: every commit syncs data pages, then the meta page.
     * FY_DEBUG_NOSYNC exists only in the test binary ferryd-nosync, which
     * never syncs: the power-cut test shows that it catches that
     * (tests/integration/test_powercut.c). */
#ifdef FY_DEBUG_NOSYNC
    bool sync = false;
    rc = mdb_env_open(self->env, opts->dir, MDB_NOTLS | MDB_NOSYNC, 0600);
#else
    bool sync = true;
    /* A cluster's node keeps its state durable in the replicated log (synced
     * by libraft) and its snapshots: LMDB is trusted only after a clean stop
     * (store_raft.c), so its commits need no sync. */
    rc = mdb_env_open(self->env, opts->dir, MDB_NOTLS | (opts->cluster ? MDB_NOSYNC : 0), 0600);
#endif
    if (rc) {
        st = fy_err_set(err, FERRY_EIO, "cannot open LMDB environment: %s", mdb_strerror(rc));
        goto fail;
    }
    if ((st = s_open_dbs(self, err)))
        goto fail;
    st = opts->cluster ? fy_storei_raft_open(self, opts->cluster, err)
                       : fy_storei_wal_open(self, opts->wal_bytes, sync, err);
    if (st)
        goto fail;
    /* A full file system at start: serve reads, acks and deletes. */
    if (self->reserve_bytes && !fy_storei_reserve_take(self)) {
        self->disk_full = true;
        fy_log(self->log, FY_LOG_WARN, "store", "disk full at start",
               "reserve_bytes=%llu detail=\"publishes refused until there is room\"",
               (unsigned long long)self->reserve_bytes);
    }
    *out = self;
    return FERRY_OK;
fail:
    fy_store_destroy(&self);
    return st;
}

void
fy_store_destroy(fy_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fy_store_t *self = *self_p;
    fy_store_abort(self);
    fy_storei_wal_close(self);
    if (self->env)
        mdb_env_close(self->env);
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    fy_reccache_free(&self->topics_cache);
    fy_reccache_free(&self->subs_cache);
    fy_encoder_destroy(&self->scratch);
    free(self->hashes);
    free(self->redo);
    free(self);
    *self_p = NULL;
}

/* ---- the reserve: disk space to give back when the file system is full -- */

static int
s_reserve_path(const fy_store_t *self, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/ferryd.reserve", self->dir);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

bool
fy_storei_reserve_take(fy_store_t *self)
{
    char path[1100];
    if (!self->reserve_bytes || s_reserve_path(self, path, sizeof path) != 0)
        return false;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    /* Blocks really allocated (not a sparse file), then synced. */
    int rc = posix_fallocate(fd, 0, (off_t)self->reserve_bytes);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    close(fd);
    if (rc != 0) {
        unlink(path);
        return false;
    }
    self->reserve_held = true;
    return true;
}

void
fy_storei_reserve_give(fy_store_t *self)
{
    char path[1100];
    if (s_reserve_path(self, path, sizeof path) == 0)
        unlink(path);
    self->reserve_held = false;
}

void
fy_store_disk(const fy_store_t *self, fy_store_disk_t *out)
{
    struct statvfs sv;
    *out = (fy_store_disk_t){.full = self->disk_full};
    if (statvfs(self->dir, &sv) == 0) {
        out->total = (uint64_t)sv.f_blocks * sv.f_frsize;
        out->free = (uint64_t)sv.f_bavail * sv.f_frsize;
    }
}

bool
fy_store_disk_full(const fy_store_t *self)
{
    return self->disk_full;
}

bool
fy_store_disk_recheck(fy_store_t *self)
{
    if (!self->disk_full) {
        /* Room came back without the reserve: take it when it fits, now and
         * then (fallocate is not free). */
        long long now = fy_mono_ms();
        if (self->reserve_bytes && !self->reserve_held && now - self->reserve_tried_ms >= 10000) {
            self->reserve_tried_ms = now;
            fy_storei_reserve_take(self);
        }
        return false;
    }
    if (self->txn)
        return false; /* FREE_DBI is read outside write transactions only */
    /* Room: the file system's free space, and the pages LMDB freed inside
     * its file (deletes and acks do not shrink the file; writes reuse them). */
    fy_store_disk_t d;
    fy_store_disk(self, &d);
    uint64_t inside = fy_storei_freelist_bytes(self);
    uint64_t want = 2 * self->reserve_bytes + (1u << 20);
    if (d.free + inside < want)
        return false;
    bool held = self->reserve_held || !self->reserve_bytes || fy_storei_reserve_take(self);
    self->disk_full = false;
    fy_log(self->log, FY_LOG_INFO, "store", "disk has room again",
           "free_bytes=%llu free_in_file_bytes=%llu reserve_held=%d", (unsigned long long)d.free,
           (unsigned long long)inside, (int)held);
    return true;
}
