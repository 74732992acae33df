/* SPDX-License-Identifier: MIT */
/*
 * saga_lmdb.c - the saga store in the service's LMDB environment, and
 * ferry_saga_orchestrator_new() that runs an orchestrator on it with an
 * in-process relay for its outbox (ferry_saga.h).
 *
 *   FERRY_SAGA_DB        id -> record: u8 version (1), u8 state (bit 0x80:
 *                        the attempt waits to be sent), u16 step,
 *                        u32 attempt, u64 deadline_ms (when ended: the end
 *                        time), u16 def length,
 *                        u16 reason length, u32 data length, then the three
 *                        (all integers big-endian), then the steps' results
 *                        to the end (ferry_saga_record_t.results; none in
 *                        records written before they were kept)
 *   FERRY_SAGA_TIMER_DB  u64 deadline_ms + id -> empty: one entry per active
 *                        saga, for the reply it waits for
 *   the outbox           the commands, published by the in-process relay
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "ferry_saga.h"
#include "mdb_util.h"
#include "results.h"
#include "saga_int.h"

#define S_HDR 24

typedef struct {
    MDB_env *env;
    MDB_dbi sagas, timers, outbox;
    ferry_outbox_relay_t *relay;
} s_store_t;

static bool
s_active(ferry_saga_state_t st)
{
    return st == FERRY_SAGA_RUNNING || st == FERRY_SAGA_COMPENSATING;
}

/* The environment's epoch: random, made once, kept under a key no saga id
 * can have. It goes into the relay's name, so the commands of a re-created
 * environment never reuse the message ids of an earlier one (the broker
 * would drop them as duplicates). */
static int
s_epoch(MDB_txn *txn, MDB_dbi sagas, char *out, size_t cap)
{
    static const char key[] = "\x01epoch";
    MDB_val k = {sizeof key - 1, (void *)key}, v;
    int rc = mdb_get(txn, sagas, &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint8_t r[6];
        FILE *f = fopen("/dev/urandom", "rb");
        size_t got = f ? fread(r, 1, sizeof r, f) : 0;
        if (f)
            fclose(f);
        if (got != sizeof r) { /* no /dev/urandom: the clock is unique enough here */
            uint64_t t = fy_wall_ms() ^ (uint64_t)fy_mono_ms() << 20;
            memcpy(r, &t, sizeof r);
        }
        char hex[13];
        for (int i = 0; i < 6; i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        v = (MDB_val){12, hex};
        if ((rc = mdb_put(txn, sagas, &k, &v, 0)))
            return rc;
        rc = mdb_get(txn, sagas, &k, &v);
    }
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
    return rc;
}

static ferry_status_t
s_begin(void *self, void **tx)
{
    s_store_t *s = self;
    return fy_mdb_status(mdb_txn_begin(s->env, NULL, 0, (MDB_txn **)tx));
}

static ferry_status_t
s_commit(void *self, void *tx)
{
    s_store_t *s = self;
    return fy_mdb_write_status(s->env, mdb_txn_commit(tx));
}

static void
s_rollback(void *self, void *tx)
{
    (void)self;
    mdb_txn_abort(tx);
}

/* Decodes the record @p v; data malloc'ed. */
static int
s_decode(const MDB_val *v, ferry_saga_record_t *r)
{
    memset(r, 0, sizeof *r);
    const uint8_t *p = v->mv_data;
    if (v->mv_size < S_HDR || p[0] != 1)
        return MDB_CORRUPTED;
    size_t ld = fy_be16_get(p + 16), lr = fy_be16_get(p + 18), ln = fy_be32_get(p + 20);
    if (S_HDR + ld + lr + ln > v->mv_size || ld >= sizeof r->def || lr >= sizeof r->reason)
        return MDB_CORRUPTED;
    size_t at = S_HDR + ld + lr + ln, lres = v->mv_size - at;
    if (!fy_saga_results_valid(lres ? (const char *)p + at : NULL, lres))
        return MDB_CORRUPTED;
    r->state = (ferry_saga_state_t)(p[1] & 0x7f);
    r->waiting = (p[1] & 0x80) != 0;
    r->step = fy_be16_get(p + 2);
    r->attempt = fy_be32_get(p + 4);
    r->deadline_ms = fy_be64_get(p + 8);
    memcpy(r->def, p + S_HDR, ld);
    memcpy(r->reason, p + S_HDR + ld, lr);
    r->len = ln;
    r->data = malloc(ln ? ln : 1);
    if (!r->data)
        return ENOMEM;
    memcpy(r->data, p + S_HDR + ld + lr, ln);
    if (lres) {
        if (!(r->results = malloc(lres))) {
            free(r->data);
            r->data = NULL;
            return ENOMEM;
        }
        memcpy(r->results, p + at, lres);
        r->results_len = lres;
    }
    return 0;
}

static ferry_status_t
s_get(void *self, void *tx, const char *id, ferry_saga_record_t *rec)
{
    s_store_t *s = self;
    MDB_txn *txn = tx;
    int rc = 0;
    if (!txn && (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)))
        return fy_mdb_status(rc);
    MDB_val k = {strlen(id), (void *)id}, v;
    rc = mdb_get(txn, s->sagas, &k, &v);
    if (rc == 0)
        rc = s_decode(&v, rec);
    if (!tx)
        mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? FERRY_ENOTFOUND : rc == ENOMEM ? FERRY_ENOMEM : fy_mdb_status(rc);
}

/* The timer entry of @p id at @p deadline: removed or added. */
static int
s_timer(s_store_t *s, MDB_txn *txn, const char *id, uint64_t deadline, bool add)
{
    uint8_t key[8 + FY_SAGA_ID_MAX];
    size_t len = strlen(id);
    fy_be64_put(key, deadline);
    memcpy(key + 8, id, len);
    MDB_val k = {8 + len, key}, v = {0, ""};
    int rc = add ? mdb_put(txn, s->timers, &k, &v, 0) : mdb_del(txn, s->timers, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static ferry_status_t
s_put(void *self, void *tx, const char *id, const ferry_saga_record_t *r, bool created)
{
    s_store_t *s = self;
    MDB_txn *txn = tx;
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = 0;
    /* The old record's timer entry goes: the record says where it is. */
    if (!created && (rc = mdb_get(txn, s->sagas, &k, &v)) == 0 && v.mv_size >= S_HDR &&
        s_active((ferry_saga_state_t)(((const uint8_t *)v.mv_data)[1] & 0x7f)))
        rc = s_timer(s, txn, id, fy_be64_get((const uint8_t *)v.mv_data + 8), false);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    size_t ld = strlen(r->def), lr = strlen(r->reason);
    v = (MDB_val){S_HDR + ld + lr + r->len + r->results_len, NULL};
    if (rc == 0 && (rc = mdb_put(txn, s->sagas, &k, &v, MDB_RESERVE)) == 0) {
        uint8_t *p = v.mv_data;
        p[0] = 1;
        p[1] = (uint8_t)((uint8_t)r->state | (r->waiting ? 0x80 : 0));
        fy_be16_put(p + 2, (uint16_t)r->step);
        fy_be32_put(p + 4, r->attempt);
        fy_be64_put(p + 8, r->deadline_ms);
        fy_be16_put(p + 16, (uint16_t)ld);
        fy_be16_put(p + 18, (uint16_t)lr);
        fy_be32_put(p + 20, (uint32_t)r->len);
        memcpy(p + S_HDR, r->def, ld);
        memcpy(p + S_HDR + ld, r->reason, lr);
        if (r->len)
            memcpy(p + S_HDR + ld + lr, r->data, r->len);
        if (r->results_len)
            memcpy(p + S_HDR + ld + lr + r->len, r->results, r->results_len);
    }
    if (rc == 0 && s_active(r->state))
        rc = s_timer(s, txn, id, r->deadline_ms, true);
    return fy_mdb_status(rc);
}

static ferry_status_t
s_send(void *self, void *tx, const ferry_outbox_event_t *ev)
{
    s_store_t *s = self;
    return ferry_outbox_put(tx, s->outbox, ev, NULL);
}

static ferry_status_t
s_due(void *self, void *tx, uint64_t now, size_t max, char (*ids)[FY_SAGA_ID_MAX + 1], size_t *n)
{
    s_store_t *s = self;
    *n = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(tx, s->timers, &cur);
    if (rc)
        return fy_mdb_status(rc);
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && *n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= 8 || k.mv_size > 8 + FY_SAGA_ID_MAX)
            continue;
        uint64_t at = fy_be64_get(k.mv_data);
        if (at > now)
            break;
        /* An entry whose record is gone, ended or moved on (left by an
         * older version) goes, not returned again and again. */
        MDB_val rk = {k.mv_size - 8, (char *)k.mv_data + 8}, rv;
        int got = mdb_get(tx, s->sagas, &rk, &rv);
        const uint8_t *p = rv.mv_data;
        if (got == MDB_NOTFOUND ||
            (got == 0 && (rv.mv_size < S_HDR || !s_active((ferry_saga_state_t)(p[1] & 0x7f)) ||
                          fy_be64_get(p + 8) != at))) {
            if ((rc = mdb_cursor_del(cur, 0)))
                break;
            continue;
        }
        if ((rc = got))
            break;
        memcpy(ids[*n], (const char *)k.mv_data + 8, k.mv_size - 8);
        ids[(*n)++][k.mv_size - 8] = '\0';
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? FERRY_OK : fy_mdb_status(rc);
}

static ferry_status_t
s_next_deadline(void *self, uint64_t *at)
{
    s_store_t *s = self;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    *at = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fy_mdb_status(rc);
    if ((rc = mdb_cursor_open(txn, s->timers, &cur)) == 0) {
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size > 8)
            *at = fy_be64_get(k.mv_data);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? FERRY_OK : fy_mdb_status(rc);
}

static ferry_status_t
s_active_count(void *self, size_t *n)
{
    s_store_t *s = self;
    MDB_txn *txn;
    MDB_stat st = {0};
    *n = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fy_mdb_status(rc);
    rc = mdb_stat(txn, s->timers, &st);
    mdb_txn_abort(txn);
    *n = st.ms_entries;
    return fy_mdb_status(rc);
}

/* A record of a saga that ended before *ctx (ms); not the epoch. */
static bool
s_ended_before(const MDB_val *k, const MDB_val *v, void *ctx)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size == 0 || ((const uint8_t *)k->mv_data)[0] < 0x20 || v->mv_size < S_HDR ||
        p[0] != 1)
        return false;
    /* FAILED ones stay: a person looks at them. */
    ferry_saga_state_t st = (ferry_saga_state_t)(p[1] & 0x7f);
    return (st == FERRY_SAGA_DONE || st == FERRY_SAGA_COMPENSATED) &&
           fy_be64_get(p + 8) < *(const uint64_t *)ctx;
}

static ferry_status_t
s_purge(void *self, uint64_t before_ms, size_t *removed)
{
    s_store_t *s = self;
    return fy_mdb_delete_if(s->env, s->sagas, s_ended_before, &before_ms, removed);
}

static void
s_destroy(void *self)
{
    s_store_t *s = self;
    ferry_outbox_relay_stop(&s->relay);
    free(s);
}

ferry_status_t
ferry_saga_orchestrator_new(MDB_env *env, const ferry_saga_def_t *defs, size_t def_count,
                            const ferry_saga_config_t *cfg, ferry_saga_orchestrator_t **out)
{
    if (!env || !out)
        return FERRY_EINVAL;
    *out = NULL;
    s_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    s->env = env;
    MDB_txn *txn;
    char epoch[16] = "";
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        if ((rc = mdb_dbi_open(txn, FERRY_SAGA_DB, MDB_CREATE, &s->sagas)) == 0 &&
            (rc = s_epoch(txn, s->sagas, epoch, sizeof epoch)) == 0 &&
            (rc = mdb_dbi_open(txn, FERRY_SAGA_TIMER_DB, MDB_CREATE, &s->timers)) == 0 &&
            (rc = ferry_outbox_open(txn, &s->outbox) == FERRY_OK ? 0 : EIO) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc) {
        free(s);
        return FERRY_EIO;
    }
    ferry_saga_store_t store = {.self = s,
                                .begin = s_begin,
                                .commit = s_commit,
                                .rollback = s_rollback,
                                .get = s_get,
                                .put = s_put,
                                .send = s_send,
                                .due = s_due,
                                .next_deadline = s_next_deadline,
                                .active = s_active_count,
                                .purge = s_purge,
                                .destroy = s_destroy};
    ferry_saga_orchestrator_t *o;
    ferry_status_t st = ferry_saga_orchestrator_new_with_store(&store, defs, def_count, cfg, &o);
    if (st)
        return st;
    /* The commands in the outbox: an in-process relay, named after the
     * orchestrator and the environment's epoch. */
    ferry_saga_config_t none = {0};
    if (!cfg)
        cfg = &none;
    char rname[FY_SAGA_NAME_MAX + 32];
    snprintf(rname, sizeof rname, "saga-%s-%s", cfg->name ? cfg->name : "saga", epoch);
    ferry_outbox_relay_config_t rc_cfg = {.broker =
                                              cfg->broker ? cfg->broker : getenv("FERRY_SERVER"),
                                          .name = rname,
                                          .dedupe_window_ms = FY_SAGA_DEDUPE_MS,
                                          .poll_ms = 5,
                                          .log = cfg->log,
                                          .log_user = cfg->log_user};
    if ((st = ferry_outbox_relay_start(env, &rc_cfg, &s->relay))) {
        ferry_saga_orchestrator_destroy(&o);
        return st;
    }
    *out = o;
    return FERRY_OK;
}
