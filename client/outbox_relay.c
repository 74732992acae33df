/*
 * outbox_relay.c - ferry-relay's loop as a thread of the service
 * (ferry_outbox.h): outbox-relay/relay.c with the LMDB source
 * (outbox-relay/src_lmdb.c) on the service's own environment handle.
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
s_quiet(void *user, const char *level, const char *line)
{
    (void)user, (void)level, (void)line;
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
    const char *env_server = getenv("FERRY_SERVER");
    if (s_copy(r->broker, sizeof r->broker, cfg->broker,
               env_server ? env_server : "tcp://127.0.0.1:5555") ||
        s_copy(r->name, sizeof r->name, cfg->name, "lmdb") ||
        s_copy(r->tmpl, sizeof r->tmpl, cfg->topic_template, "{aggregate_type}") ||
        s_copy(r->dlq, sizeof r->dlq, cfg->dlq_topic, "ferry-relay.dlq") || cfg->poll_ms < 0 ||
        cfg->stats_ms < 0) {
        free(r);
        return FERRY_EINVAL;
    }
    const char *path = NULL;
    mdb_env_get_path(env, &path);
    snprintf(r->location, sizeof r->location, "%s (in-process)", path ? path : "?");
    r->env = env;
    r->cfg =
        (fr_config_t){.broker = r->broker,
                      .ops = &fr_lmdb_source,
                      .location = r->location,
                      .table = FERRY_OUTBOX_DB,
                      .name = r->name,
                      .slot = "",
                      .publication = "",
                      .topic_template = r->tmpl,
                      .delete_published = cfg->delete_published,
                      .on_poison = cfg->stop_on_poison ? FR_POISON_STOP : FR_POISON_DLQ,
                      .dlq_topic = r->dlq,
                      .poll_ms = cfg->poll_ms ? cfg->poll_ms : 20,
                      .batch = 1000,
                      .dedupe_window_ms = cfg->dedupe_window_ms ? cfg->dedupe_window_ms : 86400000,
                      .stats_ms = cfg->stats_ms ? cfg->stats_ms : 10000,
                      .env = env,
                      .log = cfg->log ? cfg->log : s_quiet,
                      .log_user = cfg->log_user};
    /* Opening the source here reports a misfit environment to the caller. */
    fr_source_args_t args = {.location = r->location, .name = r->name, .env = env};
    fr_source_t *probe = NULL;
    char err[256];
    if (fr_lmdb_source.open(&args, &probe, err, sizeof err) != 0) {
        free(r);
        return FERRY_EIO;
    }
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
