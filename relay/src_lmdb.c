/* SPDX-License-Identifier: MIT */
/*
 * src_lmdb.c - the LMDB outbox source: the service appends events with
 * ferry_outbox_put() inside its own write transactions (client/outbox.c has
 * the record format); the relay opens the same environment, reads with read
 * transactions, and keeps its position in FERRY_OUTBOX_POS_DB of that
 * environment, written (with the deletes of --on-publish delete) in one
 * durable write transaction.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"
#include "claim.h"
#include "ferry_outbox.h"
#include "identity.h"
#include "outbox_int.h"
#include "mdb_util.h"
#include "source.h"

struct fr_source {
    MDB_env *env;
    bool own_env; /* opened here (ferry-relay), else the service's (in-process) */
    MDB_dbi events, pos;
    bool have_events; /* the outbox database exists (the service wrote once) */
    char name[256];
    fr_row_t *rows;
    ferry_header_t *hdr;
    uint8_t *copy; /* the values of the last read */
    size_t cap_rows, cap_hdr, cap_copy;
    char dir[512]; /* ferry-relay's: the environment's folder, for the name's lock */
    int lock_fd;   /* claim.h; -1 none */
};

/* A full map or file system is ESTORAGE_FULL (the relay waits for space
 * and says so), anything else EIO. */
static fy_status_t
s_fail(int rc, fy_err_t *err, const char *what)
{
    fy_status_t st = fy_mdb_status(rc);
    return fy_err_set(err, st == FERRY_OK ? FERRY_EIO : st, "lmdb: %s: %s%s", what,
                      mdb_strerror(rc), st == FERRY_ESTORAGE_FULL ? " (the disk is full)" : "");
}

/* The same for a failed commit of @p env (a write cut short by a full disk
 * is EIO to LMDB: fy_mdb_write_status). */
static fy_status_t
s_fail_write(MDB_env *env, int rc, fy_err_t *err, const char *what)
{
    if (fy_mdb_write_status(env, rc) == FERRY_ESTORAGE_FULL)
        return fy_err_set(err, FERRY_ESTORAGE_FULL, "lmdb: %s: %s (the disk is full)", what,
                          mdb_strerror(rc));
    return s_fail(rc, err, what);
}

static void
s_close(fr_source_t **sp)
{
    if (!sp || !*sp)
        return;
    fr_source_t *s = *sp;
    if (s->env && s->own_env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->rows);
    free(s->hdr);
    free(s->copy);
    free(s);
    *sp = NULL;
}

/* Begins a transaction; when the service grew its map, adopts the new size. */
static int
s_begin(fr_source_t *s, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED && s->own_env && mdb_env_set_mapsize(s->env, 0) == 0)
        rc = mdb_txn_begin(s->env, NULL, flags, txn);
    return rc;
}

/* The outbox database, once the service created it. */
static int
s_events(fr_source_t *s, MDB_txn *txn)
{
    if (s->have_events)
        return 0;
    int rc = mdb_dbi_open(txn, FERRY_OUTBOX_DB, 0, &s->events);
    if (rc == 0)
        s->have_events = true;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The outbox identity's key in the position database: no name (a C
 * string) can start with a NUL byte. */
static const char S_IDENTITY_KEY[] = "\0identity";

/* Makes the environment's identity once (identity.h) and resolves the name:
 * as given, else "lmdb-<identity>", or "lmdb" where a position is kept under
 * that old default. In the open's write transaction. */
static int
s_identity(fr_source_t *s, MDB_txn *txn, const char *name)
{
    char ident[FR_IDENTITY_LEN + 1];
    MDB_val k = {sizeof S_IDENTITY_KEY - 1, (void *)S_IDENTITY_KEY}, v;
    int rc = mdb_get(txn, s->pos, &k, &v);
    if (rc == MDB_NOTFOUND) {
        fr_identity_new(ident);
        v = (MDB_val){FR_IDENTITY_LEN, ident};
        rc = mdb_put(txn, s->pos, &k, &v, 0);
    } else if (rc == 0) {
        if (v.mv_size != FR_IDENTITY_LEN)
            return MDB_INCOMPATIBLE;
        memcpy(ident, v.mv_data, FR_IDENTITY_LEN);
        ident[FR_IDENTITY_LEN] = '\0';
        if (!fr_identity_ok(ident))
            return MDB_INCOMPATIBLE;
    }
    if (rc)
        return rc;
    if (name && *name) {
        snprintf(s->name, sizeof s->name, "%s", name);
        return 0;
    }
    MDB_val lk = {4, (void *)"lmdb"};
    rc = mdb_get(txn, s->pos, &lk, &v);
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    fr_default_name("lmdb", ident, rc == 0, s->name, sizeof s->name);
    return 0;
}

static fy_status_t
s_open(const fr_source_args_t *a, fr_source_t **out, fy_err_t *err)
{
    const char *location = a->location, *table = a->table, *name = a->name;
    (void)table; /* the database name is fixed: FERRY_OUTBOX_DB */
    *out = NULL;
    fr_source_t *s = calloc(1, sizeof *s);
    if (!s) {
        return fy_err_set(err, FERRY_EIO, "out of memory");
    }
    s->lock_fd = -1;
    if (!a->env)
        snprintf(s->dir, sizeof s->dir, "%s", location);
    int rc = 0;
    if (a->env) { /* a thread of the service: its environment */
        s->env = a->env;
    } else {
        s->own_env = true;
        rc = mdb_env_create(&s->env);
        if (rc == 0)
            rc = mdb_env_set_maxdbs(s->env, 64);
        /* No MDB_CREATE of files: the service owns the environment. */
        if (rc == 0)
            rc = mdb_env_open(s->env, location, MDB_NOTLS, 0644);
    }
    if (rc) {
        s_fail(rc, err, location);
        s_close(&s);
        return FERRY_EIO;
    }
    MDB_txn *txn;
    if ((rc = s_begin(s, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, FERRY_OUTBOX_POS_DB, MDB_CREATE, &s->pos)) ||
        (rc = s_events(s, txn)) || (rc = s_identity(s, txn, name)) || (rc = mdb_txn_commit(txn))) {
        if (rc == MDB_INCOMPATIBLE) {
            fy_err_set(err, FERRY_EIO, "lmdb: the outbox identity in %s is not valid",
                       FERRY_OUTBOX_POS_DB);
        } else {
            s_fail(rc, err, "the outbox databases (maxdbs of the environment too small?)");
        }
        s_close(&s);
        return FERRY_EIO;
    }
    *out = s;
    return FERRY_OK;
}

static fy_status_t
s_position(fr_source_t *s, fr_pos_t *pos, fy_err_t *err)
{
    *pos = (fr_pos_t){0, 0};
    MDB_txn *txn;
    int rc = s_begin(s, MDB_RDONLY, &txn);
    if (rc)
        return s_fail(rc, err, "position");
    MDB_val k = {strlen(s->name), s->name}, v;
    rc = mdb_get(txn, s->pos, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        pos->id = fy_be64_get(v.mv_data);
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : s_fail(rc, err, "position");
}

static const char *
s_name(const fr_source_t *s)
{
    return s->name;
}

static fy_status_t
s_rename(fr_source_t *s, const char *from, bool *moved, fy_err_t *err)
{
    *moved = false;
    MDB_txn *txn;
    int rc = s_begin(s, 0, &txn);
    if (rc)
        return s_fail(rc, err, "begin");
    MDB_val fk = {strlen(from), (void *)from}, tk = {strlen(s->name), s->name}, fv, tv;
    int rf = mdb_get(txn, s->pos, &fk, &fv), rt = mdb_get(txn, s->pos, &tk, &tv);
    if ((rf && rf != MDB_NOTFOUND) || (rt && rt != MDB_NOTFOUND)) {
        mdb_txn_abort(txn);
        return s_fail(rf && rf != MDB_NOTFOUND ? rf : rt, err, "the positions");
    }
    fy_status_t st = fr_rename_check(from, s->name, rf == 0, rt == 0, err);
    if (st != FERRY_OK || rf != 0) {
        mdb_txn_abort(txn);
        return st;
    }
    uint8_t val[8] = {0};
    if (fv.mv_size == 8)
        memcpy(val, fv.mv_data, 8);
    tv = (MDB_val){8, val};
    if ((rc = mdb_put(txn, s->pos, &tk, &tv, 0)) || (rc = mdb_del(txn, s->pos, &fk, NULL))) {
        mdb_txn_abort(txn);
        return s_fail(rc, err, "move the position");
    }
    if ((rc = mdb_txn_commit(txn)))
        return s_fail_write(s->env, rc, err, "commit the move");
    *moved = true;
    return FERRY_OK;
}

/* Copies `src` (a value of `size` bytes) to `dst` with a NUL after each
 * string, so that the row's strings can be used as C strings; returns the
 * copy's size. Layout: the same as the record, strings followed by NUL. */
static size_t
s_terminate(const uint8_t *src, size_t size, uint8_t *dst)
{
    /* header (21 bytes) as is, then each string + NUL, then the payload */
    if (size < 21)
        return 0;
    size_t lt = fy_be16_get(src + 9), li = fy_be16_get(src + 11), le = fy_be16_get(src + 13);
    size_t hc = fy_be16_get(src + 15);
    size_t in = 21, out = 21;
    memcpy(dst, src, 21);
    size_t lens[3] = {lt, li, le};
    for (int i = 0; i < 3; i++) {
        if (in + lens[i] > size)
            return 0;
        memcpy(dst + out, src + in, lens[i]);
        dst[out + lens[i]] = '\0';
        in += lens[i];
        out += lens[i] + 1;
    }
    for (size_t i = 0; i < hc; i++) {
        if (in + 4 > size)
            return 0;
        size_t ln = fy_be16_get(src + in), lv = fy_be16_get(src + in + 2);
        if (in + 4 + ln + lv > size)
            return 0;
        memcpy(dst + out, src + in, 4);
        memcpy(dst + out + 4, src + in + 4, ln);
        dst[out + 4 + ln] = '\0';
        memcpy(dst + out + 5 + ln, src + in + 4 + ln, lv);
        dst[out + 5 + ln + lv] = '\0';
        in += 4 + ln + lv;
        out += 6 + ln + lv;
    }
    memcpy(dst + out, src + in, size - in);
    return out + (size - in);
}

static fy_status_t
s_read(fr_source_t *s, fr_pos_t after_pos, size_t max, const fr_row_t **rows, size_t *n,
       fy_err_t *err)
{
    *n = 0;
    MDB_txn *txn;
    int rc = s_begin(s, MDB_RDONLY, &txn);
    if (rc)
        return s_fail(rc, err, "read");
    if ((rc = s_events(s, txn)) || !s->have_events) {
        mdb_txn_abort(txn);
        return rc ? s_fail(rc, err, "read") : 0;
    }
    if (max > s->cap_rows) {
        fr_row_t *r = realloc(s->rows, max * sizeof *r);
        if (!r) {
            mdb_txn_abort(txn);
            return s_fail(ENOMEM, err, "read");
        }
        s->rows = r;
        s->cap_rows = max;
    }
    /* First pass: copy the values (with NULs) into one buffer. */
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->events, &cur))) {
        mdb_txn_abort(txn);
        return s_fail(rc, err, "read");
    }
    uint8_t key[8];
    fy_be64_put(key, after_pos.id + 1);
    MDB_val k = {8, key}, v;
    size_t used = 0, nh_total = 0;
    size_t offs[1000], sizes[1000];
    uint64_t ids[1000];
    if (max > 1000)
        max = 1000;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *n < max && k.mv_size == 8) {
        size_t need = used + v.mv_size + 3 + 2 * 64 + 1;
        if (need > s->cap_copy) {
            size_t cap = s->cap_copy ? s->cap_copy : 1 << 20;
            while (cap < need)
                cap *= 2;
            uint8_t *c = realloc(s->copy, cap);
            if (!c) {
                rc = ENOMEM;
                break;
            }
            s->copy = c;
            s->cap_copy = cap;
        }
        size_t sz = s_terminate(v.mv_data, v.mv_size, s->copy + used);
        if (!sz) {
            fy_err_set(err, FERRY_EIO, "lmdb: outbox record %llu is malformed",
                       (unsigned long long)fy_be64_get(k.mv_data));
            mdb_cursor_close(cur);
            mdb_txn_abort(txn);
            return FERRY_EIO;
        }
        ids[*n] = fy_be64_get(k.mv_data);
        offs[*n] = used;
        sizes[*n] = sz;
        nh_total += fy_be16_get((const uint8_t *)v.mv_data + 15);
        used += sz;
        (*n)++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc && rc != MDB_NOTFOUND)
        return s_fail(rc, err, "read");
    if (nh_total > s->cap_hdr) {
        ferry_header_t *h = realloc(s->hdr, (nh_total + 1) * sizeof *h);
        if (!h)
            return s_fail(ENOMEM, err, "read");
        s->hdr = h;
        s->cap_hdr = nh_total + 1;
    }
    /* Second pass: rows pointing into the copy (strings now end in NUL). */
    size_t hused = 0;
    for (size_t i = 0; i < *n; i++) {
        const uint8_t *p = s->copy + offs[i];
        fr_row_t *r = &s->rows[i];
        memset(r, 0, sizeof *r);
        r->id = ids[i];
        size_t lt = fy_be16_get(p + 9), li = fy_be16_get(p + 11), le = fy_be16_get(p + 13);
        size_t hc = fy_be16_get(p + 15), lp = fy_be32_get(p + 17), off = 21;
        r->created_ms = fy_be64_get(p + 1);
        r->aggregate_type = (const char *)p + off;
        off += lt + 1;
        r->aggregate_id = (const char *)p + off;
        off += li + 1;
        r->event_type = (const char *)p + off;
        off += le + 1;
        r->headers = s->hdr + hused;
        r->header_count = hc;
        for (size_t j = 0; j < hc; j++) {
            size_t ln = fy_be16_get(p + off), lv = fy_be16_get(p + off + 2);
            s->hdr[hused + j].name = (const char *)p + off + 4;
            s->hdr[hused + j].value = (const char *)p + off + 5 + ln;
            off += 6 + ln + lv;
        }
        hused += hc;
        r->payload = p + off;
        r->payload_len = lp;
        if (off + lp != sizes[i]) {
            return fy_err_set(err, FERRY_EIO, "lmdb: outbox record %llu is malformed",
                              (unsigned long long)r->id);
        }
    }
    *rows = s->rows;
    return FERRY_OK;
}

static fy_status_t
s_advance(fr_source_t *s, fr_pos_t at, bool delete_rows, fy_err_t *err)
{
    MDB_txn *txn;
    int rc = s_begin(s, 0, &txn);
    if (rc)
        return s_fail(rc, err, "begin");
    uint8_t val[8];
    uint64_t pos = at.id;
    fy_be64_put(val, pos);
    MDB_val k = {strlen(s->name), s->name}, v = {8, val};
    rc = mdb_put(txn, s->pos, &k, &v, 0);
    uint64_t last = 0;
    if (rc == 0 && delete_rows && s->have_events &&
        (rc = fy_outbox_last_id(txn, s->events, &last)) == 0 && last <= pos)
        rc = fy_outbox_keep_last_id(txn, s->events, last); /* ids go on from there */
    if (rc == 0 && delete_rows && s->have_events) {
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(txn, s->events, &cur)) == 0) {
            uint8_t first[8];
            fy_be64_put(first, 1); /* key 0 keeps the last id */
            for (;;) {
                MDB_val ek = {8, first}, ev;
                rc = mdb_cursor_get(cur, &ek, &ev, MDB_SET_RANGE);
                if (rc || ek.mv_size != 8 || fy_be64_get(ek.mv_data) > pos ||
                    (rc = mdb_cursor_del(cur, 0)))
                    break;
            }
            if (rc == MDB_NOTFOUND)
                rc = 0; /* all gone */
            mdb_cursor_close(cur);
        }
    }
    if (rc) {
        mdb_txn_abort(txn);
        return s_fail(rc, err, "record the position");
    }
    /* The environment's own sync settings apply: the default syncs here. */
    rc = mdb_txn_commit(txn);
    return rc ? s_fail_write(s->env, rc, err, "commit the position") : 0;
}

static fy_status_t
s_lag(fr_source_t *s, fr_pos_t after_pos, uint64_t *rows, uint64_t *bytes, uint64_t *oldest_ms,
      fy_err_t *err)
{
    *rows = *bytes = *oldest_ms = 0;
    MDB_txn *txn;
    int rc = s_begin(s, MDB_RDONLY, &txn);
    if (rc)
        return s_fail(rc, err, "lag");
    if ((rc = s_events(s, txn)) == 0 && s->have_events) {
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(txn, s->events, &cur)) == 0) {
            uint8_t key[8];
            fy_be64_put(key, after_pos.id + 1);
            MDB_val k = {8, key}, v;
            int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (g == 0 && v.mv_size >= 9)
                *oldest_ms = fy_be64_get((const uint8_t *)v.mv_data + 1);
            for (; g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) /* in id order */
                (*rows)++;
            mdb_cursor_close(cur);
        }
    }
    mdb_txn_abort(txn);
    return rc ? s_fail(rc, err, "lag") : 0;
}

/* ferry-relay's (its own environment) only: a service relaying its own
 * outbox in a thread is the one relay of it by construction. */
static fy_status_t
s_claim(fr_source_t *s, fy_err_t *err)
{
    if (!s->own_env || s->lock_fd >= 0)
        return FERRY_OK;
    char path[900];
    fr_claim_path(s->dir, 1, s->name, path, sizeof path);
    return fr_claim(path, &s->lock_fd, err);
}

const fr_source_ops_t fr_lmdb_source = {.kind = "lmdb",
                                        .open = s_open,
                                        .position = s_position,
                                        .read = s_read,
                                        .name = s_name,
                                        .rename = s_rename,
                                        .advance = s_advance,
                                        .lag = s_lag,
                                        .claim = s_claim,
                                        .close = s_close};
