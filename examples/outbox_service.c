/* SPDX-License-Identifier: MIT */
/*
 * outbox_service.c - a service that keeps its state in LMDB and publishes
 * its domain events through the transactional outbox, with the relay
 * running as one of its threads (ferry_outbox_relay_start).
 *
 * Each transaction changes orders in the service's own database ("orders":
 * order id -> how many events it had) and appends one event per change with
 * ferry_outbox_put(): both commit, or neither. Killed at any moment and
 * started again, it goes on from what committed; every committed event is
 * published once, each order's events in order. Event i (from 0) belongs to
 * order "agg-<i % 500>" and carries "agg-<order>:<its count>".
 *
 *   build/examples/outbox_service DIR EVENTS [ENDPOINT [PAUSE_MS]]
 *
 * PAUSE_MS: a pause between transactions, for a service that writes at a
 * steadier pace (the crash test uses it to be sure to kill it mid-way).
 */
#define _POSIX_C_SOURCE 200809L /* rand_r, nanosleep, sigaction: built outside the tree too */
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ferry_outbox.h"

#define ORDERS 500

/* The relay's log lines (libferry is silent without a callback). */
static void
log_line(ferry_log_level_t level, const char *line, void *user)
{
    (void)level, (void)user;
    fprintf(stderr, "%s\n", line);
}

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "outbox_service: %s: %s\n", what, mdb_strerror(rc));
    return 1;
}

/* The counter under @p key in @p dbi (0 when absent). */
static uint64_t
get_count(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    uint64_t n = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof n)
        memcpy(&n, v.mv_data, sizeof n);
    return n;
}

static int
put_count(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t n)
{
    MDB_val k = {strlen(key), (void *)key}, v = {sizeof n, &n};
    return mdb_put(txn, dbi, &k, &v, 0);
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: outbox_service DIR EVENTS [BROKER [PAUSE_MS]]\n");
        return 2;
    }
    const char *dir = argv[1];
    uint64_t events = strtoull(argv[2], NULL, 10);
    long pause_ms = argc > 4 ? strtol(argv[4], NULL, 10) : 0;
    mkdir(dir, 0755);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi orders, outbox;
    int rc;
    /* Room for the service's database and the outbox's two. */
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 4)) ||
        (rc = mdb_env_set_mapsize(env, 1ull << 30)) || (rc = mdb_env_open(env, dir, 0, 0644)))
        return fail("open", rc);
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) ||
        (rc = mdb_dbi_open(txn, "orders", MDB_CREATE, &orders)) ||
        (rc = ferry_outbox_open(txn, &outbox) != FERRY_OK) || (rc = mdb_txn_commit(txn)))
        return fail("databases", rc);

    ferry_outbox_relay_config_t cfg = {
        .broker = argc > 3 ? argv[3] : NULL, .name = "svc", .log = log_line};
    ferry_outbox_relay_t *relay;
    ferry_status_t st = ferry_outbox_relay_start(env, &cfg, &relay);
    if (st != FERRY_OK) {
        fprintf(stderr, "outbox_service: relay: %s\n", ferry_strerror(st));
        return 1;
    }

    /* Go on from what committed before (a restart after a crash). */
    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    uint64_t done = get_count(txn, orders, "_events");
    mdb_txn_abort(txn);
    unsigned seed = (unsigned)done;
    while (done < events) {
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
            return fail("begin", rc);
        uint64_t n = 1 + (uint64_t)rand_r(&seed) % 20;
        for (uint64_t k = 0; k < n && done < events; k++, done++) {
            char order[32], body[64];
            snprintf(order, sizeof order, "agg-%" PRIu64, done % ORDERS);
            uint64_t count = get_count(txn, orders, order) + 1;
            int len = snprintf(body, sizeof body, "%s:%" PRIu64, order, count);
            ferry_header_t h = {"traceparent", "00-outbox-service"};
            ferry_outbox_event_t ev = {.aggregate_type = "order",
                                       .aggregate_id = order,
                                       .event_type = "OrderChanged",
                                       .payload = body,
                                       .len = (size_t)len,
                                       .headers = &h,
                                       .header_count = 1};
            if ((rc = put_count(txn, orders, order, count)) ||
                (rc = ferry_outbox_put(txn, outbox, &ev, NULL) != FERRY_OK))
                return fail("write", rc);
        }
        if ((rc = put_count(txn, orders, "_events", done)) || (rc = mdb_txn_commit(txn)))
            return fail("commit", rc);
        if (pause_ms > 0)
            nanosleep(&(struct timespec){pause_ms / 1000, pause_ms % 1000 * 1000000L}, NULL);
    }

    /* Everything written: wait until it is in the broker, then stop. */
    st = ferry_outbox_relay_wait(relay, 60000);
    ferry_status_t stop = ferry_outbox_relay_stop(&relay);
    mdb_env_close(env);
    if (st != FERRY_OK || stop != FERRY_OK) {
        fprintf(stderr, "outbox_service: relay: %s\n", ferry_strerror(st != FERRY_OK ? st : stop));
        return 1;
    }
    printf("%" PRIu64 " events written and published\n", done);
    return 0;
}
