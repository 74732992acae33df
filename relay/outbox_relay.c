/* SPDX-License-Identifier: MIT */
/*
 * outbox_relay.c - the relay loop as a thread of the service
 * (ferry_outbox.h): relay.c with the LMDB source (src_lmdb.c) on the
 * service's own environment handle, and ferry-relay's defaults (relay.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "ferry_outbox.h"
#include "outbox_int.h"
#include "relay.h"

struct ferry_outbox_relay {
    pthread_t thread;
    atomic_int stop;
    atomic_int failed; /* the loop returned on an error */
    atomic_int running;
    fr_config_t cfg;
    MDB_env *env;
    char broker[1025], name[201], tmpl[256], dlq[256], location[512];
};

/* Like the rest of libferry, silent unless given a log callback. */
static void
s_quiet(ferry_log_level_t level, const char *line, void *user)
{
    (void)level, (void)line, (void)user;
}

static void *
s_run(void *arg)
{
    ferry_outbox_relay_t *r = arg;
    int rc = fr_relay_run(&r->cfg, &r->stop);
    atomic_store(&r->failed, rc != 0);
    atomic_store(&r->running, 0);
    return NULL;
}

static int
s_copy(char *dst, size_t cap, const char *v, const char *dflt)
{
    int n = snprintf(dst, cap, "%s", v ? v : dflt);
    return n >= 0 && (size_t)n < cap && dst[0] ? 0 : -1;
}

ferry_status_t
ferry_outbox_relay_start(MDB_env *env, const ferry_outbox_relay_config_t *cfg,
                         ferry_outbox_relay_t **out)
{
    if (!env || !out)
        return FERRY_EINVAL;
    *out = NULL;
    ferry_outbox_relay_config_t none = {0};
    if (!cfg)
        cfg = &none;
    ferry_outbox_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return FERRY_ENOMEM;
    if (s_copy(r->broker, sizeof r->broker, cfg->broker, fr_default_broker()) ||
        (cfg->name && s_copy(r->name, sizeof r->name, cfg->name, "")) ||
        s_copy(r->tmpl, sizeof r->tmpl, cfg->topic_template, FR_DEFAULT_TOPIC_TEMPLATE) ||
        s_copy(r->dlq, sizeof r->dlq, cfg->dlq_topic, FR_DEFAULT_DLQ_TOPIC) || cfg->poll_ms < 0 ||
        cfg->stats_ms < 0) {
        free(r);
        return FERRY_EINVAL;
    }
    const char *path = NULL;
    mdb_env_get_path(env, &path);
    snprintf(r->location, sizeof r->location, "%s (in-process)", path ? path : "?");
    r->env = env;
    fr_config_init(&r->cfg);
    r->cfg.broker = r->broker;
    r->cfg.ops = &fr_lmdb_source;
    r->cfg.location = r->location;
    r->cfg.table = FERRY_OUTBOX_DB;
    r->cfg.name = r->name;
    r->cfg.topic_template = r->tmpl;
    r->cfg.delete_published = cfg->delete_published;
    r->cfg.on_poison = cfg->stop_on_poison ? FR_POISON_STOP : FR_POISON_DLQ;
    r->cfg.dlq_topic = r->dlq;
    if (cfg->poll_ms)
        r->cfg.poll_ms = cfg->poll_ms;
    if (cfg->dedupe_window_ms)
        r->cfg.dedupe_window_ms = cfg->dedupe_window_ms;
    if (cfg->stats_ms)
        r->cfg.stats_ms = cfg->stats_ms;
    r->cfg.env = env;
    r->cfg.log = cfg->log ? cfg->log : s_quiet;
    r->cfg.log_user = cfg->log_user;
    /* Opening the source here reports a misfit environment to the caller. */
    fr_source_args_t args = {.location = r->location, .name = r->name, .env = env};
    fr_source_t *probe = NULL;
    fy_err_t err = {0};
    ferry_status_t st = fr_lmdb_source.open(&args, &probe, &err);
    if (st != FERRY_OK) {
        /* The caller learns why through its log callback, with the code. */
        char line[300];
        snprintf(line, sizeof line,
                 "level=error mod=relay msg=\"cannot open the outbox\" code=%s detail=\"%s\"",
                 ferry_errname(st), err.msg);
        r->cfg.log(FERRY_LOG_ERROR, line, r->cfg.log_user);
        free(r);
        return st;
    }
    /* The thread uses the name the source resolved (identity.h). */
    snprintf(r->name, sizeof r->name, "%s", fr_lmdb_source.name(probe));
    fr_lmdb_source.close(&probe);
    atomic_store(&r->running, 1);
    if (pthread_create(&r->thread, NULL, s_run, r) != 0) {
        free(r);
        return FERRY_ENOMEM;
    }
    *out = r;
    return FERRY_OK;
}

/* The position the relay recorded, and the newest id given. */
static int
s_progress(ferry_outbox_relay_t *r, uint64_t *pos, uint64_t *last)
{
    *pos = *last = 0;
    MDB_txn *txn;
    MDB_dbi events, posdb;
    int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    if ((rc = mdb_dbi_open(txn, FERRY_OUTBOX_DB, 0, &events)) == 0)
        rc = fy_outbox_last_id(txn, events, last);
    if (rc == MDB_NOTFOUND)
        rc = 0; /* nothing written yet */
    MDB_val k = {strlen(r->name), r->name}, v;
    if (rc == 0 && mdb_dbi_open(txn, FERRY_OUTBOX_POS_DB, 0, &posdb) == 0 &&
        mdb_get(txn, posdb, &k, &v) == 0 && v.mv_size == 8)
        *pos = fy_be64_get(v.mv_data);
    mdb_txn_abort(txn);
    return rc;
}

ferry_status_t
ferry_outbox_relay_wait(ferry_outbox_relay_t *r, int timeout_ms)
{
    if (!r)
        return FERRY_EINVAL;
    uint64_t pos, target;
    if (s_progress(r, &pos, &target) != 0)
        return FERRY_EIO;
    long long until = fy_mono_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (;;) {
        uint64_t last;
        if (s_progress(r, &pos, &last) != 0)
            return FERRY_EIO;
        if (pos >= target)
            return FERRY_OK;
        if (!atomic_load(&r->running))
            return FERRY_ECLOSED;
        if (fy_mono_ms() >= until)
            return FERRY_ETIMEOUT;
        fy_sleep_ms(5);
    }
}

ferry_status_t
ferry_outbox_relay_stop(ferry_outbox_relay_t **relay_p)
{
    if (!relay_p || !*relay_p)
        return FERRY_OK;
    ferry_outbox_relay_t *r = *relay_p;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    ferry_status_t st = atomic_load(&r->failed) ? FERRY_ECLOSED : FERRY_OK;
    free(r);
    *relay_p = NULL;
    return st;
}
