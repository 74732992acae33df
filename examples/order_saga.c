/* SPDX-License-Identifier: MIT */
/*
 * order_saga.c - an order saga, orchestrated (docs/sagas.md).
 *
 * Three participants - stock, payment, shipping - and an orchestrator that
 * runs one saga per order: reserve-stock (compensation: release), then
 * charge-payment (compensation: refund; it fails for amounts over 150),
 * then ship (no compensation). Each side keeps its state in LMDB.
 *
 *   order_saga participants DIR [BROKER] [--no-shipping]
 *       serve the three command queues until SIGTERM; DIR holds the shop's
 *       state: reserved:<id>, charged:<id>, shipped:<id>, and runs:<d|u>:<step>:<id>
 *       (how often each command's work ran)
 *   order_saga orchestrate DIR ORDERS [BROKER] [SHIP_TIMEOUT_MS]
 *       start orders order-0 .. order-<ORDERS-1> (again after a restart:
 *       those started before are left as they are), run them to their end,
 *       print how many were done and compensated (ORDER_SAGA_RATE=N in the
 *       environment: at most N new orders a second)
 */
#define _POSIX_C_SOURCE 200809L /* rand_r, nanosleep, sigaction: built outside the tree too */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ferry_saga.h"

static atomic_int stop;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, 1);
}

/* libferry's warnings (a connection lost, a subscription refused) on stderr. */
static void
on_log(ferry_log_level_t level, const char *line, void *user)
{
    (void)user;
    if (level <= FERRY_LOG_WARN)
        fprintf(stderr, "order_saga: %s\n", line);
}

static MDB_env *
open_env(const char *dir)
{
    MDB_env *env;
    mkdir(dir, 0755);
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_set_mapsize(env, 1ull << 30) || mdb_env_open(env, dir, 0, 0644)) {
        fprintf(stderr, "order_saga: cannot open %s\n", dir);
        exit(1);
    }
    return env;
}

/* ---- participants ---------------------------------------------------------- */

typedef struct {
    MDB_env *env;
    MDB_dbi shop;
    const char *queue;
    const char *broker;
    ferry_saga_handler_fn fn;
} participant_t;

static int
add(MDB_txn *txn, MDB_dbi dbi, const char *what, const char *id, int64_t delta)
{
    char key[300];
    snprintf(key, sizeof key, "%s:%s", what, id);
    MDB_val k = {strlen(key), key}, v;
    int64_t n = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof n)
        memcpy(&n, v.mv_data, sizeof n);
    n += delta;
    v = (MDB_val){sizeof n, &n};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Counts how often a command's work ran (the test wants once). */
static int
count_run(MDB_txn *txn, MDB_dbi dbi, const ferry_saga_command_t *cmd)
{
    char what[100];
    snprintf(what, sizeof what, "runs:%c:%s", cmd->undo ? 'u' : 'd', cmd->step);
    return add(txn, dbi, what, cmd->saga_id, 1);
}

static int64_t
amount_of(const ferry_saga_command_t *cmd)
{
    char buf[64];
    size_t n = cmd->len < sizeof buf - 1 ? cmd->len : sizeof buf - 1;
    memcpy(buf, cmd->data, n);
    buf[n] = '\0';
    const char *a = strstr(buf, "amount=");
    return a ? strtoll(a + 7, NULL, 10) : 0;
}

static bool
stock(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    (void)reason, (void)cap;
    MDB_dbi shop = *(MDB_dbi *)user;
    return count_run(txn, shop, cmd) == 0 &&
           add(txn, shop, "reserved", cmd->saga_id, cmd->undo ? -1 : 1) == 0;
}

static bool
payment(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    MDB_dbi shop = *(MDB_dbi *)user;
    int64_t amount = amount_of(cmd);
    if (!cmd->undo && amount > 150) {
        snprintf(reason, cap, "insufficient funds for %" PRId64, amount);
        return false;
    }
    return count_run(txn, shop, cmd) == 0 &&
           add(txn, shop, "charged", cmd->saga_id, cmd->undo ? -amount : amount) == 0;
}

static bool
shipping(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    MDB_dbi shop = *(MDB_dbi *)user;
    if (cmd->undo) { /* not compensable: only sent if the step never ran */
        snprintf(reason, cap, "a shipped order cannot be unshipped");
        return false;
    }
    return count_run(txn, shop, cmd) == 0 && add(txn, shop, "shipped", cmd->saga_id, 1) == 0;
}

static void *
serve(void *arg)
{
    participant_t *p = arg;
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    ferry_saga_participant_t *sp = NULL;
    if (p->broker)
        ferry_options_set_server(o, p->broker);
    /* Commands a crashed participant held come back after 3 s, not 15. */
    ferry_options_set_heartbeat_ms(o, 1000);
    ferry_options_set_log_cb(o, on_log, NULL);
    ferry_status_t st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    if (st == FERRY_OK)
        st = ferry_saga_participant_new(c, p->env, p->queue, p->fn, &p->shop, &sp);
    if (st != FERRY_OK) {
        fprintf(stderr, "order_saga: %s: %s\n", p->queue, ferry_strerror(st));
        exit(1);
    }
    while (!atomic_load(&stop))
        ferry_client_poll(c, 100);
    ferry_saga_participant_destroy(&sp);
    ferry_client_destroy(&c);
    return NULL;
}

static int
run_participants(const char *dir, const char *broker, bool shipping_too)
{
    MDB_env *env = open_env(dir);
    MDB_txn *txn;
    MDB_dbi shop;
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "shop", MDB_CREATE, &shop) ||
        mdb_txn_commit(txn))
        return 1;
    participant_t ps[] = {{env, shop, "stock.commands", broker, stock},
                          {env, shop, "payment.commands", broker, payment},
                          {env, shop, "shipping.commands", broker, shipping}};
    size_t n = shipping_too ? 3 : 2;
    pthread_t th[3];
    for (size_t i = 0; i < n; i++)
        pthread_create(&th[i], NULL, serve, &ps[i]);
    for (size_t i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    mdb_env_close(env);
    return 0;
}

/* ---- the orchestrator ---------------------------------------------------------- */

/* The disk is full: say so, wait a moment (polling, so that the client
 * keeps its connection) and go on. */
static ferry_status_t
disk_full(ferry_saga_orchestrator_t *o, long long *said)
{
    long long now = (long long)time(NULL);
    if (now != *said) /* once a second at most */
        fprintf(stderr, "order_saga: the disk is full (ESTORAGE_FULL); trying again\n");
    *said = now;
    for (int k = 0; k < 4 && !atomic_load(&stop); k++)
        (void)ferry_saga_poll(o, 50);
    return atomic_load(&stop) ? FERRY_ECANCELLED : FERRY_OK;
}

/* ORDER_SAGA_RATE=N: at most N new orders a second (a test that kills the
 * service wants it still placing orders while it kills). */
static void
pace(ferry_saga_orchestrator_t *o, long fresh, long long t0, long rate)
{
    struct timespec ts;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if (rate <= 0 || ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 >= t0 + fresh * 1000 / rate)
            return;
        ferry_saga_poll(o, 5);
    }
}

static int
run_orchestrator(const char *dir, long orders, const char *broker, int ship_timeout_ms)
{
    MDB_env *env = open_env(dir);
    const ferry_saga_step_t steps[] = {
        {.name = "reserve-stock", .queue = "stock.commands", .compensable = true},
        {.name = "charge-payment", .queue = "payment.commands", .compensable = true},
        {.name = "ship", .queue = "shipping.commands", .timeout_ms = ship_timeout_ms}};
    const ferry_saga_def_t def = {.name = "order", .steps = steps, .step_count = 3};
    ferry_saga_config_t cfg = {.name = "orders", .broker = broker, .log = on_log};
    ferry_saga_orchestrator_t *o;
    ferry_status_t st = ferry_saga_orchestrator_new(env, &def, 1, &cfg, &o);
    if (st != FERRY_OK) {
        fprintf(stderr, "order_saga: orchestrator: %s\n", ferry_strerror(st));
        return 1;
    }
    long long said = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long long t0 = start.tv_sec * 1000LL + start.tv_nsec / 1000000;
    long rate = getenv("ORDER_SAGA_RATE") ? atol(getenv("ORDER_SAGA_RATE")) : 0, fresh = 0;
    for (long i = 0; i < orders && st == FERRY_OK; i++) {
        char id[32], data[64];
        snprintf(id, sizeof id, "order-%ld", i);
        int len = snprintf(data, sizeof data, "item=book-%ld amount=%ld", i % 10, i * 37 % 200 + 1);
        st = ferry_saga_start(o, "order", id, data, (size_t)len);
        if (st == FERRY_OK)
            pace(o, ++fresh, t0, rate);
        if (st == FERRY_EEXISTS) /* started before a restart: it goes on by itself */
            st = FERRY_OK;
        if (st == FERRY_ESTORAGE_FULL) { /* nothing recorded: the same order again soon */
            st = disk_full(o, &said);
            i--;
        }
        if (i % 64 == 0)
            ferry_saga_poll(o, 0);
    }
    while (st == FERRY_OK && ferry_saga_active(o) > 0 && !atomic_load(&stop))
        if ((st = ferry_saga_poll(o, 50)) == FERRY_ESTORAGE_FULL)
            st = disk_full(o, &said);
    long done = 0, compensated = 0;
    for (long i = 0; i < orders; i++) {
        char id[32];
        snprintf(id, sizeof id, "order-%ld", i);
        ferry_saga_status_t s;
        if (ferry_saga_get(o, id, &s) == FERRY_OK) {
            done += s.state == FERRY_SAGA_DONE;
            compensated += s.state == FERRY_SAGA_COMPENSATED;
            if (s.state == FERRY_SAGA_COMPENSATED &&
                (compensated <= 3 || !strstr(s.reason, "insufficient funds")))
                fprintf(stderr, "order_saga: %s compensated: %s\n", id, s.reason);
        }
    }
    ferry_saga_orchestrator_destroy(&o);
    mdb_env_close(env);
    if (st != FERRY_OK)
        fprintf(stderr, "order_saga: %s\n", ferry_strerror(st));
    printf("done %ld compensated %ld\n", done, compensated);
    return st == FERRY_OK && done + compensated == orders ? 0 : 1;
}

int
main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc >= 3 && !strcmp(argv[1], "participants")) {
        const char *broker = argc > 3 && strncmp(argv[3], "--", 2) ? argv[3] : NULL;
        bool shipping_too = !(argc > 3 && !strcmp(argv[argc - 1], "--no-shipping"));
        return run_participants(argv[2], broker, shipping_too);
    }
    if (argc >= 4 && !strcmp(argv[1], "orchestrate"))
        return run_orchestrator(argv[2], strtol(argv[3], NULL, 10), argc > 4 ? argv[4] : NULL,
                                argc > 5 ? atoi(argv[5]) : 0);
    fprintf(stderr, "usage: order_saga participants DIR [BROKER] [--no-shipping]\n"
                    "       order_saga orchestrate DIR ORDERS [BROKER] [SHIP_TIMEOUT_MS]\n");
    return 2;
}
