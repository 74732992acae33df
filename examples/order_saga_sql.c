/* SPDX-License-Identifier: MIT */
/*
 * order_saga_sql.c - the order saga with each service on a database of its
 * own, PostgreSQL or SQLite (libferry-sql; docs/sagas.md).
 *
 * The order service starts one saga per order in the same transaction as
 * the order's row and an OrderPlaced event (topic "order"): reserve the items (inventory;
 * compensation: release), charge the card (payment; compensation: refund), ship (shipping). Each
 * participant does its work, writes a domain event to its outbox and
 * records its answer in one transaction of its own database. ferry-relay
 * publishes every outbox: the orchestrator's commands and the services'
 * events.
 *
 * The plan, by order number N (amount = N * 37 % 200 + 1):
 *   - payment declines amounts over 150: the reservation is released;
 *   - inventory fails for now on the first try of every order N % 11 == 4
 *     (a lock held): tried again after a wait, it goes on;
 *   - the release of a declined order N % 7 == 3 fails twice (the stock
 *     service is slow to come back): compensations are tried again;
 *   - inventory cannot serve the first delivery of any reserve command of
 *     an order N % 13 == 6 (its warehouse system is offline): the command
 *     comes back a second later. With the default step timeout (60 s) the
 *     order only waits; with ORDER_SAGA_TIMEOUT_MS under a second (make
 *     demo: 600) every attempt times out and the order is compensated
 *     without stock ever reserved.
 *
 *   order_saga_sql orders DB ORDERS [BROKER]
 *       start order-0 .. order-<ORDERS-1> (after a restart, those started
 *       before go on by themselves), run them to their end, print the
 *       outcome table
 *   order_saga_sql inventory|payment|shipping DB [BROKER]
 *       serve that service's commands until SIGTERM
 *
 * ORDER_SAGA_RATE=N in the environment places at most N orders a second;
 * ORDER_SAGA_TIMEOUT_MS=N sets the reserve step's timeout (default 60000).
 * DB is pg:CONNINFO or sqlite:PATH. Each service's tables: inventory
 * reservations(order_id, released), payment payments(order_id, amount,
 * refunded), shipping shipments(order_id); all of them runs(kind, order_id,
 * n): how often a command's work ran (once, whatever fails).
 */
#define _POSIX_C_SOURCE 200809L /* sigaction: built outside the tree too */
#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry_sql.h"

static atomic_int stop;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, 1);
}

static void
on_log(ferry_log_level_t level, const char *line, void *user)
{
    (void)user;
    if (level <= FERRY_LOG_WARN)
        fprintf(stderr, "order_saga_sql: %s\n", line);
}

/* ---- one statement, on either database --------------------------------------- */

typedef struct {
    PGconn *pg;
    sqlite3 *lite;
} db_t;

/* Runs @p sql with text parameters ($1.. on PostgreSQL, ?1.. on SQLite: the
 * caller writes $N, turned into ?N here); *changed: rows changed. */
static bool
run(db_t *db, const char *sql, int n, const char *const *params, long *changed)
{
    if (db->pg) {
        PGresult *res = PQexecParams(db->pg, sql, n, NULL, params, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
        if (ok && changed)
            *changed = atol(PQcmdTuples(res));
        if (!ok)
            fprintf(stderr, "order_saga_sql: %s: %s", sql, PQerrorMessage(db->pg));
        PQclear(res);
        return ok;
    }
    char lite[600];
    snprintf(lite, sizeof lite, "%s", sql);
    for (char *p = lite; *p; p++)
        if (*p == '$')
            *p = '?';
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->lite, lite, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "order_saga_sql: %s: %s\n", sql, sqlite3_errmsg(db->lite));
        return false;
    }
    for (int i = 0; i < n; i++)
        sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (changed)
        *changed = sqlite3_changes(db->lite);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        fprintf(stderr, "order_saga_sql: %s: %s\n", sql, sqlite3_errmsg(db->lite));
    return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

/* PostgreSQL's notices ("already exists, skipping") are not news here. */
static void
quiet(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static bool
open_db(const char *spec, db_t *db)
{
    memset(db, 0, sizeof *db);
    if (strncmp(spec, "pg:", 3) == 0) {
        db->pg = PQconnectdb(spec + 3);
        PQsetNoticeProcessor(db->pg, quiet, NULL);
        if (PQstatus(db->pg) == CONNECTION_OK)
            return ferry_sql_setup_pg(db->pg, NULL, 0) == FERRY_OK;
        fprintf(stderr, "order_saga_sql: %s", PQerrorMessage(db->pg));
        return false;
    }
    if (strncmp(spec, "sqlite:", 7) == 0 && sqlite3_open(spec + 7, &db->lite) == SQLITE_OK) {
        sqlite3_busy_timeout(db->lite, 10000);
        return ferry_sql_setup_sqlite(db->lite, NULL, 0) == FERRY_OK;
    }
    fprintf(stderr, "order_saga_sql: %s: want pg:CONNINFO or sqlite:PATH\n", spec);
    return false;
}

static void
close_db(db_t *db)
{
    if (db->pg)
        PQfinish(db->pg);
    if (db->lite)
        sqlite3_close(db->lite);
}

/* ---- participants ----------------------------------------------------------- */

typedef struct {
    const char *service;
    db_t db; /* the participant's transaction runs on its own connection: set per call */
} service_t;

static long
order_number(const ferry_saga_command_t *cmd)
{
    const char *dash = strrchr(cmd->saga_id, '-');
    return dash ? strtol(dash + 1, NULL, 10) : -1;
}

/* The work of @p cmd for service s->service on s->db, in the participant's
 * transaction: the business row, the count of runs, an event in the outbox. */
static bool
work(service_t *s, const ferry_saga_command_t *cmd, char *reason, size_t cap)
{
    long n = order_number(cmd), amount = n * 37 % 200 + 1;
    char kind[40], amt[24];
    snprintf(kind, sizeof kind, "%s%s", cmd->step, cmd->undo ? ":undo" : "");
    snprintf(amt, sizeof amt, "%ld", amount);
    const char *id = cmd->saga_id;
    const char *p2[] = {kind, id}, *p1[] = {id}, *pa[] = {id, amt};
    const char *event = NULL;
    if (strcmp(s->service, "payment") == 0 && !cmd->undo && amount > 150) {
        snprintf(reason, cap, "card declined for %ld", amount);
        return false; /* nothing done */
    }
    if (strcmp(s->service, "inventory") == 0 && !cmd->undo && n % 11 == 4) {
        long tries = 0;
        /* The first try fails for now: remembered outside the transaction,
         * which the failure undoes (a lock held somewhere, say). */
        static long tried[4096];
        if (n >= 0 && n < 4096 && tried[n]++ == 0)
            tries = 1;
        if (tries) {
            *cmd->retry = true;
            snprintf(reason, cap, "reservations locked, try again");
            return false;
        }
    }
    if (strcmp(s->service, "inventory") == 0 && !cmd->undo && n % 13 == 6 &&
        cmd->msg->delivery_count == 1) {
        *cmd->later = true; /* not answered: it comes again in a second */
        snprintf(reason, cap, "warehouse system offline");
        return false;
    }
    if (strcmp(s->service, "inventory") == 0 && cmd->undo && n % 7 == 3 && amount > 150) {
        static long undo_tries[4096];
        if (n >= 0 && n < 4096 && undo_tries[n]++ < 2) {
            snprintf(reason, cap, "stock service slow to come back");
            return false;
        }
    }
    if (!run(&s->db,
             "INSERT INTO runs (kind, order_id, n) VALUES ($1, $2, 1) ON CONFLICT (kind, "
             "order_id) DO UPDATE SET n = runs.n + 1",
             2, p2, NULL))
        return false;
    /* Step results: the reservation's and the payment's numbers, given back
     * to the orchestrator, which hands them to the later steps and to the
     * step's own compensation. */
    const char *rsv = ferry_saga_command_result(cmd, "reserve");
    const char *pay = ferry_saga_command_result(cmd, "charge");
    bool ok;
    long changed = 0;
    if (strcmp(s->service, "inventory") == 0) {
        const char *pr[] = {id, rsv ? rsv : ""};
        ok = cmd->undo ? run(&s->db,
                             "UPDATE reservations SET released = 1 WHERE order_id = $1 AND "
                             "number = $2",
                             2, pr, &changed) &&
                             changed == 1
                       : run(&s->db,
                             "INSERT INTO reservations (order_id, number, released) VALUES ($1, "
                             "'RSV-' || $1, 0)",
                             1, p1, NULL);
        if (!cmd->undo)
            snprintf(cmd->result, cmd->result_cap, "RSV-%s", id);
        event = cmd->undo ? "StockReleased" : "StockReserved";
    } else if (strcmp(s->service, "payment") == 0) {
        const char *pp[] = {pay ? pay : ""};
        ok = cmd->undo
                 ? run(&s->db, "UPDATE payments SET refunded = 1 WHERE number = $1", 1, pp,
                       &changed) &&
                       changed == 1
                 : run(&s->db,
                       "INSERT INTO payments (order_id, number, amount, refunded) VALUES ($1, "
                       "'PAY-' || $1, CAST($2 AS INTEGER), 0)",
                       2, pa, NULL);
        if (!cmd->undo)
            snprintf(cmd->result, cmd->result_cap, "PAY-%s", id);
        event = cmd->undo ? "PaymentRefunded" : "PaymentTaken";
    } else {
        if (cmd->undo) { /* not compensable: only sent if it never ran */
            snprintf(reason, cap, "a shipped order cannot be unshipped");
            return false;
        }
        const char *ps[] = {id, rsv ? rsv : "", pay ? pay : ""};
        ok = rsv && pay &&
             run(&s->db,
                 "INSERT INTO shipments (order_id, reservation, payment) VALUES ($1, $2, $3)", 3,
                 ps, NULL);
        event = "OrderShipped";
    }
    if (!ok && !reason[0])
        snprintf(reason, cap, "%s: no such reservation or payment (reservation %s, payment %s)",
                 kind, rsv ? rsv : "none", pay ? pay : "none");
    ferry_outbox_event_t ev = {.aggregate_type = s->service,
                               .aggregate_id = id,
                               .event_type = event,
                               .payload = cmd->data,
                               .len = cmd->len};
    return ok && (s->db.pg ? ferry_outbox_pg_put(s->db.pg, &ev, NULL)
                           : ferry_outbox_sqlite_put(s->db.lite, &ev, NULL)) == FERRY_OK;
}

static bool
pg_work(PGconn *conn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    service_t *s = user;
    s->db = (db_t){.pg = conn};
    return work(s, cmd, reason, cap);
}

static bool
lite_work(sqlite3 *db, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    service_t *s = user;
    s->db = (db_t){.lite = db};
    return work(s, cmd, reason, cap);
}

static int
run_participant(const char *service, const char *spec, const char *broker)
{
    db_t db;
    if (!open_db(spec, &db))
        return 1;
    const char *tables =
        strcmp(service, "inventory") == 0
            ? "CREATE TABLE IF NOT EXISTS reservations (order_id TEXT PRIMARY KEY, number TEXT "
              "NOT NULL, released INTEGER NOT NULL)"
        : strcmp(service, "payment") == 0
            ? "CREATE TABLE IF NOT EXISTS payments (order_id TEXT PRIMARY KEY, number TEXT NOT "
              "NULL, amount INTEGER NOT NULL, refunded INTEGER NOT NULL)"
            : "CREATE TABLE IF NOT EXISTS shipments (order_id TEXT PRIMARY KEY, reservation TEXT "
              "NOT NULL, payment TEXT NOT NULL)";
    bool ok = run(&db, tables, 0, NULL, NULL) &&
              run(&db,
                  "CREATE TABLE IF NOT EXISTS runs (kind TEXT NOT NULL, order_id TEXT NOT NULL, "
                  "n INTEGER NOT NULL, PRIMARY KEY (kind, order_id))",
                  0, NULL, NULL);
    close_db(&db);
    if (!ok)
        return 1;
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    if (broker)
        ferry_options_set_server(o, broker);
    ferry_options_set_heartbeat_ms(o, 1000); /* what a killed one held comes back in 3 s */
    ferry_options_set_log_cb(o, on_log, NULL);
    ferry_status_t st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    char queue[64];
    snprintf(queue, sizeof queue, "%s.commands", service);
    service_t s = {.service = service};
    ferry_saga_participant_t *p = NULL;
    if (st == FERRY_OK)
        st = strncmp(spec, "pg:", 3) == 0
                 ? ferry_saga_pg_participant_new(c, spec + 3, queue, pg_work, &s, &p)
                 : ferry_saga_sqlite_participant_new(c, spec + 7, queue, lite_work, &s, &p);
    if (st != FERRY_OK) {
        fprintf(stderr, "order_saga_sql: %s: %s\n", service, ferry_strerror(st));
        ferry_client_destroy(&c);
        return 1;
    }
    fprintf(stderr, "order_saga_sql: %s serving %s\n", service, queue);
    while (!atomic_load(&stop))
        ferry_client_poll(c, 100);
    ferry_saga_participant_destroy(&p);
    ferry_client_destroy(&c);
    return 0;
}

/* ---- the order service --------------------------------------------------------- */

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
run_orders(const char *spec, long orders, const char *broker)
{
    db_t db;
    if (!open_db(spec, &db) ||
        !run(&db,
             "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, amount INTEGER NOT NULL)", 0,
             NULL, NULL))
        return 1;
    /* Long reply timeouts: a participant killed and restarted answers late,
     * not never; the plan's outcomes must not depend on kills. */
    const char *reserve_ms = getenv("ORDER_SAGA_TIMEOUT_MS");
    const ferry_saga_step_t steps[] = {
        {.name = "reserve",
         .queue = "inventory.commands",
         .compensable = true,
         .timeout_ms = reserve_ms ? atoi(reserve_ms) : 60000,
         .max_attempts = 3,
         .retry_delay_ms = 100},
        {.name = "charge", .queue = "payment.commands", .compensable = true, .timeout_ms = 60000},
        {.name = "ship", .queue = "shipping.commands", .timeout_ms = 60000}};
    const ferry_saga_def_t def = {.name = "order", .steps = steps, .step_count = 3};
    ferry_saga_config_t cfg = {.name = "orders", .broker = broker, .log = on_log};
    ferry_saga_orchestrator_t *o = NULL;
    ferry_status_t st = strncmp(spec, "pg:", 3) == 0
                            ? ferry_saga_pg_orchestrator_new(spec + 3, &def, 1, &cfg, &o)
                            : ferry_saga_sqlite_orchestrator_new(spec + 7, &def, 1, &cfg, &o);
    if (st != FERRY_OK) {
        fprintf(stderr, "order_saga_sql: orchestrator: %s\n", ferry_strerror(st));
        close_db(&db);
        return 1;
    }
    /* Each order's row and its saga in one transaction: an order placed
     * before a restart is left as it is. */
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long long t0 = start.tv_sec * 1000LL + start.tv_nsec / 1000000;
    long rate = getenv("ORDER_SAGA_RATE") ? atol(getenv("ORDER_SAGA_RATE")) : 0, fresh = 0;
    for (long i = 0; i < orders && st == FERRY_OK && !atomic_load(&stop); i++) {
        char id[32], amount[24], data[64];
        snprintf(id, sizeof id, "order-%ld", i);
        snprintf(amount, sizeof amount, "%ld", i * 37 % 200 + 1);
        int len = snprintf(data, sizeof data, "item=book-%ld amount=%s", i % 10, amount);
        const char *params[] = {id, amount};
        long placed = 0;
        if (!run(&db, "BEGIN", 0, NULL, NULL) ||
            !run(&db,
                 "INSERT INTO orders (id, amount) VALUES ($1, CAST($2 AS INTEGER)) ON CONFLICT "
                 "DO NOTHING",
                 2, params, &placed)) {
            st = FERRY_EIO;
            break;
        }
        if (placed)
            st = db.pg ? ferry_saga_pg_start(o, db.pg, "order", id, data, (size_t)len)
                       : ferry_saga_sqlite_start(o, db.lite, "order", id, data, (size_t)len);
        /* ... and the event other services follow (topic "order"; the
         * Python invoice service of make demo), in the same transaction. */
        char event[96];
        int elen = snprintf(event, sizeof event, "{\"order\": \"%s\", \"total\": %s}", id, amount);
        ferry_outbox_event_t placed_ev = {.aggregate_type = "order",
                                          .aggregate_id = id,
                                          .event_type = "OrderPlaced",
                                          .payload = event,
                                          .len = (size_t)elen};
        if (placed && st == FERRY_OK)
            st = db.pg ? ferry_outbox_pg_put(db.pg, &placed_ev, NULL)
                       : ferry_outbox_sqlite_put(db.lite, &placed_ev, NULL);
        if (!run(&db, st == FERRY_OK && placed ? "COMMIT" : "ROLLBACK", 0, NULL, NULL))
            st = FERRY_EIO;
        else if (st == FERRY_OK && placed)
            pace(o, ++fresh, t0, rate);
        if (i % 32 == 0)
            ferry_saga_poll(o, 0);
    }
    long done = 0, compensated = 0, timed_out = 0, failed = 0, ended = 0;
    while (st == FERRY_OK && !atomic_load(&stop)) {
        if ((st = ferry_saga_poll(o, 50)) != FERRY_OK)
            break;
        if (ferry_saga_active(o) > 0)
            continue;
        done = compensated = timed_out = failed = ended = 0;
        for (long i = 0; i < orders; i++) {
            char id[32];
            snprintf(id, sizeof id, "order-%ld", i);
            ferry_saga_status_t s;
            if (ferry_saga_get(o, id, &s) != FERRY_OK)
                continue;
            done += s.state == FERRY_SAGA_DONE;
            compensated += s.state == FERRY_SAGA_COMPENSATED && !strstr(s.reason, "timed out");
            timed_out += s.state == FERRY_SAGA_COMPENSATED && strstr(s.reason, "timed out");
            failed += s.state == FERRY_SAGA_FAILED;
        }
        ended = done + compensated + timed_out + failed;
        if (ended == orders)
            break;
    }
    ferry_saga_orchestrator_destroy(&o);
    close_db(&db);
    if (st != FERRY_OK || ended != orders) {
        fprintf(stderr, "order_saga_sql: %s (%ld of %ld ended)\n", ferry_strerror(st), ended,
                orders);
        return 1;
    }
    printf("orders %ld\n  done         %ld  (reserved, charged, shipped)\n"
           "  compensated  %ld  (card declined: the reservation released)\n"
           "  compensated  %ld  (inventory did not answer in time: nothing reserved)\n"
           "  failed       %ld\n",
           orders, done, compensated, timed_out, failed);
    return 0;
}

int
main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc >= 4 && strcmp(argv[1], "orders") == 0)
        return run_orders(argv[2], strtol(argv[3], NULL, 10), argc > 4 ? argv[4] : NULL);
    if (argc >= 3 && (strcmp(argv[1], "inventory") == 0 || strcmp(argv[1], "payment") == 0 ||
                      strcmp(argv[1], "shipping") == 0))
        return run_participant(argv[1], argv[2], argc > 3 ? argv[3] : NULL);
    fprintf(stderr, "usage: order_saga_sql orders DB ORDERS [BROKER]\n"
                    "       order_saga_sql inventory|payment|shipping DB [BROKER]\n"
                    "DB: pg:CONNINFO or sqlite:PATH\n");
    return 2;
}
