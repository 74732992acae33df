/* SPDX-License-Identifier: MIT */
/*
 * bench_saga.c - saga throughput and latency against a real ferryd, fsync
 * on everywhere: an orchestrator (ferry_saga.h) in the main thread, three
 * participants in their own threads, clients and LMDB environments.
 *
 *   1. throughput: N sagas of three steps started at once (default 2000),
 *      all succeed: sagas/s from the first start to the last end;
 *   2. latency: sagas one at a time (default 200): start to end, p50/p99.
 *
 * The orchestrator's sagas live in LMDB (its in-process relay publishes the
 * commands), or with --store sqlite|pg in a SQLite file or a PostgreSQL
 * server started here (libferry-sql; a ferry-relay process, polling every
 * 5 ms, publishes the commands). The participants keep LMDB.
 *
 * --start-batch N starts the throughput run's sagas N per transaction (as an
 * application starting a batch of orders in one transaction); 1 by default.
 * --start-async starts each with ferry_saga_start_async() instead: those
 * asked for between two polls (100) commit together.
 *
 *   bench_saga [-n SAGAS] [-l LATENCY_SAGAS] [--store lmdb|sqlite|pg]
 *              [--start-batch N | --start-async]
 *       (needs FERRYD; FERRY_RELAY for sqlite and pg)
 */
#define _GNU_SOURCE
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "ferry_saga.h"
#include "ferry_sql.h"
#include "fixture.h"
#include "harness.h"
#include "pgserver.h"
#include "relayfx.h"

typedef struct {
    const char *endpoint, *queue;
    char dir[400];
    atomic_int *stop;
    MDB_dbi dbi;
} s_part_t;

static MDB_env *
s_env(const char *dir)
{
    MDB_env *env;
    mkdir(dir, 0755);
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_set_mapsize(env, 4ull << 30) || mdb_env_open(env, dir, 0, 0644)) {
        fprintf(stderr, "bench_saga: cannot open %s\n", dir);
        exit(1);
    }
    return env;
}

/* The work: one counter per saga in the participant's own database. */
static bool
s_work(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    (void)reason, (void)cap;
    s_part_t *p = user;
    MDB_val k = {strlen(cmd->saga_id), (void *)cmd->saga_id}, v = {1, "1"};
    return mdb_put(txn, p->dbi, &k, &v, 0) == 0;
}

static void *
s_participant(void *arg)
{
    s_part_t *p = arg;
    MDB_env *env = s_env(p->dir);
    MDB_txn *txn;
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "work", MDB_CREATE, &p->dbi) ||
        mdb_txn_commit(txn))
        exit(1);
    ferry_client_t *c = fy_connect(p->endpoint, 10000, 1000);
    ferry_saga_participant_t *sp;
    if (!c || ferry_saga_participant_new(c, env, p->queue, s_work, p, &sp) != FERRY_OK) {
        fprintf(stderr, "bench_saga: participant %s\n", p->queue);
        exit(1);
    }
    while (!atomic_load(p->stop))
        ferry_client_poll(c, 20);
    ferry_saga_participant_destroy(&sp);
    ferry_client_destroy(&c);
    mdb_env_close(env);
    return NULL;
}

static int
s_cmp(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void
s_on_end(const char *id, const ferry_saga_status_t *st, void *user)
{
    (void)id, (void)st;
    (*(long *)user)++;
}

/* A start of --start-async that did not commit ends the run. */
static void
s_started(const char *id, ferry_status_t st, void *user)
{
    (void)user;
    if (st != FERRY_OK) {
        fprintf(stderr, "bench_saga: start of %s: %s\n", id, ferry_strerror(st));
        exit(1);
    }
}

int
main(int argc, char **argv)
{
    long n = 2000, lat_n = 200;
    const char *store = "lmdb";
    long batch = 1; /* sagas started per transaction */
    bool async = false;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--start-async")) {
            async = true;
            i--;
        } else if (i + 1 >= argc)
            break;
        else if (!strcmp(argv[i], "-n"))
            n = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-l"))
            lat_n = strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--store"))
            store = argv[i + 1];
        else if (!strcmp(argv[i], "--start-batch"))
            batch = strtol(argv[i + 1], NULL, 10);
    }
    if ((strcmp(store, "lmdb") && strcmp(store, "sqlite") && strcmp(store, "pg")) || batch < 1) {
        fprintf(stderr, "bench_saga: --store lmdb, sqlite or pg\n");
        return 2;
    }
    fy_ferryd_t d = {0};
    if (n <= 0 || lat_n <= 0 || fy_ferryd_start(&d) != 0) {
        fprintf(stderr, "usage: FERRYD=... bench_saga [-n SAGAS] [-l LATENCY_SAGAS]\n");
        return 2;
    }
    atomic_int stop = 0;
    const char *queues[3] = {"stock.commands", "payment.commands", "shipping.commands"};
    s_part_t parts[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        parts[i] = (s_part_t){.endpoint = d.endpoint, .queue = queues[i], .stop = &stop};
        snprintf(parts[i].dir, sizeof parts[i].dir, "%s/p%d", d.dir, i);
        pthread_create(&th[i], NULL, s_participant, &parts[i]);
    }
    char dir[400];
    snprintf(dir, sizeof dir, "%s/orch", d.dir);
    MDB_env *env = NULL;
    fy_pg_t pg = {0};
    char source[500] = "";
    if (!strcmp(store, "lmdb")) {
        env = s_env(dir);
    } else if (!strcmp(store, "sqlite")) {
        snprintf(source, sizeof source, "sqlite:%s/orders.db", d.dir);
    } else {
        if (fy_pg_start(&pg) != 0)
            return 1;
        snprintf(source, sizeof source, "pg:%s", pg.conninfo);
    }
    const ferry_saga_step_t steps[] = {{.name = "reserve", .queue = queues[0], .compensable = true},
                                       {.name = "charge", .queue = queues[1], .compensable = true},
                                       {.name = "ship", .queue = queues[2]}};
    const ferry_saga_def_t def = {.name = "order", .steps = steps, .step_count = 3};
    long ended = 0; /* counted by on_end: ferry_saga_active() counts rows on SQL */
    ferry_saga_config_t cfg = {
        .name = "bench", .broker = d.endpoint, .on_end = s_on_end, .user = &ended};
    ferry_saga_orchestrator_t *o;
    ferry_status_t made = env ? ferry_saga_orchestrator_new(env, &def, 1, &cfg, &o)
                          : pg.port
                              ? ferry_saga_pg_orchestrator_new(source + 3, &def, 1, &cfg, &o)
                              : ferry_saga_sqlite_orchestrator_new(source + 7, &def, 1, &cfg, &o);
    if (made != FERRY_OK)
        return 1;
    int relay = 0;
    if (!env) { /* the commands: ferry-relay on the orchestrator's database */
        char log[500];
        snprintf(log, sizeof log, "%s/relay.log", d.dir);
        relay = fy_relay_spawn(source, d.endpoint, log, NULL);
        if (relay <= 0)
            return 1;
    }
    if (async)
        printf("store: %s, starts by ferry_saga_start_async, a poll every 100\n", store);
    else
        printf("store: %s, starts %ld per transaction\n", store, batch);
    char id[32], data[128];
    memset(data, 'd', sizeof data);
    long long t0 = fy_mono_ms();
    const ferry_saga_store_t *ss = ferry_saga_orchestrator_store(o);
    for (long i = 0; async && i < n; i++) {
        snprintf(id, sizeof id, "t-%ld", i);
        if (ferry_saga_start_async(o, "order", id, data, sizeof data, s_started, NULL) != FERRY_OK)
            return 1;
        if (i % 100 == 99)
            ferry_saga_poll(o, 0);
    }
    for (long i = 0; !async && i < n; i += batch) {
        /* Starts in transactions of `batch` (an application starting the
         * sagas of a batch of orders in one transaction of its own). */
        void *tx;
        if (ss->begin(ss->self, &tx) != FERRY_OK)
            return 1;
        for (long j = i; j < i + batch && j < n; j++) {
            snprintf(id, sizeof id, "t-%ld", j);
            if (ferry_saga_start_in(o, tx, "order", id, data, sizeof data) != FERRY_OK)
                return 1;
        }
        if (ss->commit(ss->self, tx) != FERRY_OK)
            return 1;
        if (i % 100 < batch)
            ferry_saga_poll(o, 0);
    }
    while (ended < n && fy_mono_ms() - t0 < 300000)
        ferry_saga_poll(o, 20);
    if (ferry_saga_active(o) != 0) {
        fprintf(stderr, "bench_saga: %zu sagas still active\n", ferry_saga_active(o));
        return 1;
    }
    double secs = (double)(fy_mono_ms() - t0) / 1000.0;
    printf("sagas: %ld of 3 steps in %.2f s: %.0f sagas/s (%.0f transitions/s)\n", n, secs,
           (double)n / secs, 4.0 * (double)n / secs);
    long long *lat = calloc((size_t)lat_n, sizeof *lat);
    for (long i = 0; i < lat_n; i++) {
        snprintf(id, sizeof id, "l-%ld", i);
        long long s0 = fy_mono_ms();
        if (ferry_saga_start(o, "order", id, data, sizeof data) != FERRY_OK)
            return 1;
        while (ended < n + i + 1)
            ferry_saga_poll(o, 1);
        lat[i] = fy_mono_ms() - s0;
    }
    qsort(lat, (size_t)lat_n, sizeof *lat, s_cmp);
    printf("saga latency, one at a time (%ld): p50 %lld ms, p99 %lld ms\n", lat_n, lat[lat_n / 2],
           lat[lat_n * 99 / 100]);
    free(lat);
    ferry_saga_orchestrator_destroy(&o);
    if (env)
        mdb_env_close(env);
    if (relay > 0)
        fy_kill_wait(relay, SIGTERM);
    if (pg.port)
        fy_pg_stop(&pg);
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    fy_ferryd_signal(&d, SIGTERM);
    fy_ferryd_cleanup(&d);
    return 0;
}
