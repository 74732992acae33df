/* SPDX-License-Identifier: MIT */
/*
 * choreography.c - two services that cooperate through events only (no
 * orchestrator), each on its own LMDB environment (docs/sagas.md):
 *
 *   orders  places orders: the order ("pending") and its OrderPlaced event
 *           commit together (outbox); it reacts to StockReserved (order
 *           "confirmed") and StockRejected ("cancelled") from topic "stock".
 *   stock   reacts to OrderPlaced from topic "orders": reserves the quantity
 *           if there is enough left (1000 units to start with) and writes
 *           StockReserved, else StockRejected - the stock change, the event
 *           and the inbox record in one transaction.
 *
 * Each service publishes its events with the in-process relay and handles
 * every event once through its inbox (ferry_inbox_handle), whatever the
 * broker redelivers after a crash.
 *
 *   choreography orders DIR ORDERS [BROKER]   place ORDERS orders (those
 *       placed before a restart are not placed again), wait until each is
 *       confirmed or cancelled, print the counts
 *   choreography stock DIR [BROKER]           serve until SIGTERM
 *
 * Both keep counters "handled:<order>" (how often an event about the order
 * was handled: once) for the tests; stock keeps "decision:<order>".
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, nanosleep: built outside the tree too */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry_outbox.h"

static atomic_int stop;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, 1);
}

typedef struct {
    MDB_env *env;
    MDB_dbi state, outbox, inbox;
} service_t;

static int
open_service(service_t *s, const char *dir)
{
    MDB_txn *txn;
    mkdir(dir, 0755);
    if (mdb_env_create(&s->env) || mdb_env_set_maxdbs(s->env, 8) ||
        mdb_env_set_mapsize(s->env, 1ull << 30) || mdb_env_open(s->env, dir, 0, 0644) ||
        mdb_txn_begin(s->env, NULL, 0, &txn))
        return -1;
    if (mdb_dbi_open(txn, "state", MDB_CREATE, &s->state) ||
        ferry_outbox_open(txn, &s->outbox) != FERRY_OK ||
        ferry_inbox_open(txn, &s->inbox) != FERRY_OK) {
        mdb_txn_abort(txn);
        return -1;
    }
    return mdb_txn_commit(txn);
}

static long
get_num(MDB_txn *txn, MDB_dbi dbi, const char *key, long dflt)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    char buf[32];
    if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size >= sizeof buf)
        return dflt;
    memcpy(buf, v.mv_data, v.mv_size);
    buf[v.mv_size] = '\0';
    return strtol(buf, NULL, 10);
}

static int
put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *val)
{
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(val), (void *)val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int
put_num(MDB_txn *txn, MDB_dbi dbi, const char *key, long n)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", n);
    return put_str(txn, dbi, key, buf);
}

static int
count_handled(MDB_txn *txn, MDB_dbi dbi, const char *order)
{
    char key[100];
    snprintf(key, sizeof key, "handled:%s", order);
    return put_num(txn, dbi, key, get_num(txn, dbi, key, 0) + 1);
}

static int
emit(MDB_txn *txn, service_t *s, const char *topic, const char *order, const char *type,
     const char *payload)
{
    ferry_outbox_event_t ev = {.aggregate_type = topic,
                               .aggregate_id = order,
                               .event_type = type,
                               .payload = payload,
                               .len = strlen(payload)};
    return ferry_outbox_put(txn, s->outbox, &ev, NULL) == FERRY_OK ? 0 : -1;
}

static ferry_client_t *
connect_to(const char *broker)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    if (broker)
        ferry_options_set_server(o, broker);
    /* Events a crashed service held come back after 3 s, not 15. */
    ferry_options_set_heartbeat_ms(o, 1000);
    ferry_status_t st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    if (st != FERRY_OK)
        fprintf(stderr, "choreography: broker: %s\n", ferry_strerror(st));
    return c;
}

/* A durable subscription to @p topic (declared first, so that events
 * published before this service ever ran are kept for it). An event this
 * service must see is never given up on: max_deliver at its most (each
 * crash of the service with the event in hand counts as a delivery). */
static ferry_status_t
subscribe(ferry_client_t *c, const char *topic, const char *sub, ferry_msg_fn fn, void *user)
{
    ferry_topic_config_t tc = {.dedupe_window_ms = 86400000};
    ferry_sub_config_t sc = {.ack_wait_ms = 10000, .max_deliver = 1000};
    ferry_status_t st = ferry_client_declare(c, FERRY_KIND_TOPIC, topic, &tc, NULL, NULL);
    if (st == FERRY_OK)
        st = ferry_client_sub_declare(c, topic, sub, &sc, NULL);
    if (st == FERRY_OK)
        st = ferry_client_subscribe(c, topic, sub, 256, fn, user, NULL);
    return st;
}

static ferry_msg_action_t
handle_with_inbox(service_t *s, const ferry_stored_message_t *m, ferry_inbox_fn fn)
{
    ferry_status_t st = ferry_inbox_handle(s->env, s->inbox, m, fn, s, NULL);
    if (st == FERRY_OK || st == FERRY_EEXISTS) /* handled now, or before */
        return FERRY_MSG_ACK;
    /* The store is full or failing: again later, not at once. */
    return st == FERRY_ESTORAGE_FULL || st == FERRY_EIO ? FERRY_MSG_NACK_LATER : FERRY_MSG_NACK;
}

/* ---- stock ------------------------------------------------------------------------ */

static int
on_order_placed(MDB_txn *txn, const ferry_stored_message_t *m, void *user)
{
    service_t *s = user;
    char qty_text[16];
    size_t n = m->len < sizeof qty_text - 1 ? m->len : sizeof qty_text - 1;
    memcpy(qty_text, m->data, n);
    qty_text[n] = '\0';
    long qty = strtol(qty_text, NULL, 10), available = get_num(txn, s->state, "available", 1000);
    bool ok = qty > 0 && qty <= available;
    char decision[100];
    snprintf(decision, sizeof decision, "decision:%s", m->key);
    if ((ok && put_num(txn, s->state, "available", available - qty)) ||
        put_str(txn, s->state, decision, ok ? "reserved" : "rejected"))
        return -1;
    return count_handled(txn, s->state, m->key) ||
           emit(txn, s, "stock", m->key, ok ? "StockReserved" : "StockRejected", qty_text);
}

static ferry_msg_action_t
stock_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    return handle_with_inbox(user, m, on_order_placed);
}

static int
run_stock(const char *dir, const char *broker)
{
    service_t s;
    if (open_service(&s, dir) != 0)
        return 1;
    ferry_outbox_relay_config_t rc = {.broker = broker, .name = "stock"};
    ferry_outbox_relay_t *relay;
    ferry_client_t *c = connect_to(broker);
    if (!c || ferry_outbox_relay_start(s.env, &rc, &relay) != FERRY_OK ||
        subscribe(c, "orders", "stock-service", stock_msg, &s) != FERRY_OK)
        return 1;
    while (!atomic_load(&stop))
        ferry_client_poll(c, 100);
    ferry_client_destroy(&c);
    ferry_outbox_relay_stop(&relay);
    mdb_env_close(s.env);
    return 0;
}

/* ---- orders ----------------------------------------------------------------------- */

static int
on_stock_event(MDB_txn *txn, const ferry_stored_message_t *m, void *user)
{
    service_t *s = user;
    const char *type = ferry_msg_header(m, "event_type");
    bool reserved = type && strcmp(type, "StockReserved") == 0;
    return count_handled(txn, s->state, m->key) ||
           put_str(txn, s->state, m->key, reserved ? "confirmed" : "cancelled");
}

static ferry_msg_action_t
orders_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    return handle_with_inbox(user, m, on_stock_event);
}

/* How many orders are still pending, and the counts of the others. */
static long
tally(service_t *s, long orders, long *confirmed, long *cancelled)
{
    MDB_txn *txn;
    long pending = 0;
    *confirmed = *cancelled = 0;
    mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    for (long i = 0; i < orders; i++) {
        char id[32];
        snprintf(id, sizeof id, "order-%ld", i);
        MDB_val k = {strlen(id), id}, v;
        if (mdb_get(txn, s->state, &k, &v) != 0 || v.mv_size == 7) /* "pending" */
            pending++;
        else if (v.mv_size == 9 && !memcmp(v.mv_data, "confirmed", 9))
            (*confirmed)++;
        else
            (*cancelled)++;
    }
    mdb_txn_abort(txn);
    return pending;
}

static int
run_orders(const char *dir, long orders, const char *broker)
{
    service_t s;
    if (open_service(&s, dir) != 0)
        return 1;
    ferry_outbox_relay_config_t rc = {.broker = broker, .name = "orders"};
    ferry_outbox_relay_t *relay;
    ferry_client_t *c = connect_to(broker);
    if (!c || ferry_outbox_relay_start(s.env, &rc, &relay) != FERRY_OK ||
        subscribe(c, "stock", "orders-service", orders_msg, &s) != FERRY_OK)
        return 1;
    /* Place the orders not placed yet: the order and its event together. */
    for (long i = 0; i < orders; i++) {
        char id[32], qty[16];
        snprintf(id, sizeof id, "order-%ld", i);
        snprintf(qty, sizeof qty, "%ld", i % 7 + 1);
        MDB_txn *txn;
        MDB_val k = {strlen(id), id}, v;
        if (mdb_txn_begin(s.env, NULL, 0, &txn))
            return 1;
        if (mdb_get(txn, s.state, &k, &v) == 0) {
            mdb_txn_abort(txn);
            continue;
        }
        if (put_str(txn, s.state, id, "pending") ||
            emit(txn, &s, "orders", id, "OrderPlaced", qty) || mdb_txn_commit(txn))
            return 1;
        ferry_client_poll(c, 0);
    }
    long confirmed, cancelled;
    while (tally(&s, orders, &confirmed, &cancelled) > 0 && !atomic_load(&stop))
        ferry_client_poll(c, 50);
    ferry_client_destroy(&c);
    ferry_outbox_relay_stop(&relay);
    long pending = tally(&s, orders, &confirmed, &cancelled);
    mdb_env_close(s.env);
    printf("confirmed %ld cancelled %ld\n", confirmed, cancelled);
    return pending == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc >= 4 && !strcmp(argv[1], "orders"))
        return run_orders(argv[2], strtol(argv[3], NULL, 10), argc > 4 ? argv[4] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "stock"))
        return run_stock(argv[2], argc > 3 ? argv[3] : NULL);
    fprintf(stderr, "usage: choreography orders DIR ORDERS [BROKER]\n"
                    "       choreography stock DIR [BROKER]\n");
    return 2;
}
