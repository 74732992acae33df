/*
 * test_sql_saga_kills.c - examples/order_saga_sql under kill -9: the order
 * service (orchestrator) on PostgreSQL or on SQLite, inventory and payment
 * on PostgreSQL databases of their own, shipping on SQLite, a real ferryd,
 * and ferry-relay publishing every outbox. While 200 orders go through, the
 * orchestrator, the payment participant and the orders relay are each
 * killed with kill -9 several times and started again. Then:
 *
 * - every order has its saga, ended exactly as the failure plan says (DONE,
 *   or COMPENSATED when the card is declined); none FAILED;
 * - every participant's work and compensation ran exactly once (counted in
 *   the participants' own tables), and their business rows agree.
 */
#include <libpq-fe.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"
#include "pgserver.h"
#include "relayfx.h"

#define S_ORDERS 200

static long
s_pg_count(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *res = PQexec(c, sql);
    long n = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                 ? atol(PQgetvalue(res, 0, 0))
                 : -1;
    if (n < 0 && !strstr(PQerrorMessage(c), "does not exist")) /* not yet made: asked again */
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
    return n;
}

static long
s_lite_count(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    long n = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

/* A count in database @p spec ("pg:..." or "sqlite:..."). */
static long
s_count(const char *spec, const char *sql)
{
    return strncmp(spec, "pg:", 3) == 0 ? s_pg_count(spec + 3, sql) : s_lite_count(spec + 7, sql);
}

typedef struct {
    const char *what;
    const char *argv[8];
    char log[400];
    int pid;
} s_proc_t;

static void
s_start(s_proc_t *p)
{
    p->pid = fy_spawn(p->log, p->argv);
    assert_true(p->pid > 0);
}

static void
s_shop(fy_ferryd_t *d, bool orders_on_pg)
{
    fy_pg_t pg = {0};
    assert_int_equal(fy_pg_start(&pg), 0);
    assert_int_equal(fy_pg_sql(&pg, "CREATE DATABASE orders OWNER ferry;\n"
                                    "CREATE DATABASE inventory OWNER ferry;\n"
                                    "CREATE DATABASE payment OWNER ferry;\n"),
                     0);
    int base = (int)(strstr(pg.conninfo, "dbname=") - pg.conninfo);
    char orders[400], inventory[400], payment[400], shipping[400];
    if (orders_on_pg)
        snprintf(orders, sizeof orders, "pg:%.*sdbname=orders", base, pg.conninfo);
    else
        snprintf(orders, sizeof orders, "sqlite:%s/orders.db", pg.dir);
    snprintf(inventory, sizeof inventory, "pg:%.*sdbname=inventory", base, pg.conninfo);
    snprintf(payment, sizeof payment, "pg:%.*sdbname=payment", base, pg.conninfo);
    snprintf(shipping, sizeof shipping, "sqlite:%s/shipping.db", pg.dir);
    assert_int_equal(fy_ferryd_start(d), 0);

    char bin[400], n[16];
    snprintf(bin, sizeof bin, "%s/%s/examples/order_saga_sql", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"));
    snprintf(n, sizeof n, "%d", S_ORDERS);
    s_proc_t ps[] = {
        {"inventory", {bin, "inventory", inventory, d->endpoint, NULL}, "", 0},
        {"payment", {bin, "payment", payment, d->endpoint, NULL}, "", 0},
        {"shipping", {bin, "shipping", shipping, d->endpoint, NULL}, "", 0},
        {"orders", {bin, "orders", orders, n, d->endpoint, NULL}, "", 0},
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        snprintf(ps[i].log, sizeof ps[i].log, "%s/%s.log", pg.dir, ps[i].what);
        s_start(&ps[i]);
    }
    /* A relay per outbox: the orders' one carries the commands. */
    const char *sources[] = {orders, inventory, payment, shipping};
    int relays[4];
    char relay_log[400];
    for (int i = 0; i < 4; i++) {
        snprintf(relay_log, sizeof relay_log, "%s/relay-%d.log", pg.dir, i);
        long long by = fy_now_ms() + 20000; /* each service made its outbox table */
        while (s_count(sources[i], "SELECT count(*) FROM outbox") < 0 && fy_now_ms() < by)
            fy_sleep_ms(50);
        relays[i] = fy_relay_spawn(sources[i], d->endpoint, relay_log, NULL);
        assert_true(relays[i] > 0);
    }

    /* kill -9 in turn: the orchestrator, the payment participant, the
     * orders relay; each started again at once. */
    unsigned seed = (unsigned)fy_now_ms();
    int kills = 0, status = -1;
    bool finished = false;
    long long until = fy_now_ms() + 180000;
    while (!finished && fy_now_ms() < until) {
        fy_sleep_ms(300 + (int)(rand_r(&seed) % 500));
        if (waitpid(ps[3].pid, &status, WNOHANG) == ps[3].pid) {
            finished = true;
            break;
        }
        if (kills >= 9)
            continue;
        int victim = kills % 3;
        if (victim == 0) {
            status = fy_kill_wait(ps[3].pid, SIGKILL);
            if (!WIFSIGNALED(status)) { /* it finished first */
                finished = true;
                break;
            }
            s_start(&ps[3]);
        } else if (victim == 1) {
            fy_kill_wait(ps[1].pid, SIGKILL);
            s_start(&ps[1]);
        } else {
            fy_kill_wait(relays[0], SIGKILL);
            snprintf(relay_log, sizeof relay_log, "%s/relay-0.log", pg.dir);
            relays[0] = fy_relay_spawn(orders, d->endpoint, relay_log, NULL);
            assert_true(relays[0] > 0);
        }
        kills++;
    }
    assert_true(finished);
    char cmd[600], out[2048];
    snprintf(cmd, sizeof cmd, "tail -5 '%s'", ps[3].log);
    fy_run(cmd, out, sizeof out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the order service ended with status %d: %s", status, out);
    printf("%d kills; the last run of the order service printed:\n%s", kills, out);
    assert_true(kills >= 6);

    /* The plan: amount = N * 37 % 200 + 1; over 150 the card is declined. */
    long declined = 0;
    for (long i = 0; i < S_ORDERS; i++)
        declined += i * 37 % 200 + 1 > 150;
    long done = S_ORDERS - declined;
    assert_int_equal(s_count(orders, "SELECT count(*) FROM orders"), S_ORDERS);
    assert_int_equal(s_count(orders, "SELECT count(*) FROM ferry_saga"), S_ORDERS);
    assert_int_equal(s_count(orders, "SELECT count(*) FROM ferry_saga WHERE state = 3"), done);
    assert_int_equal(s_count(orders, "SELECT count(*) FROM ferry_saga WHERE state = 4 AND reason "
                                     "LIKE 'step charge failed: card declined%'"),
                     declined);
    assert_int_equal(s_count(orders, "SELECT count(*) FROM ferry_saga f JOIN orders o ON o.id = "
                                     "f.id WHERE (f.state = 3) <> (o.amount <= 150)"),
                     0);
    /* Work once each, and the business rows agree. */
    const char *all[] = {inventory, payment, shipping};
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_count(all[i], "SELECT count(*) FROM runs WHERE n <> 1"), 0);
    assert_int_equal(s_count(inventory, "SELECT count(*) FROM runs WHERE kind = 'reserve'"),
                     S_ORDERS);
    assert_int_equal(s_count(inventory, "SELECT count(*) FROM runs WHERE kind = 'reserve:undo'"),
                     declined);
    assert_int_equal(s_count(inventory, "SELECT count(*) FROM reservations WHERE released = 1"),
                     declined);
    assert_int_equal(s_count(payment, "SELECT count(*) FROM payments"), done);
    assert_int_equal(s_count(payment, "SELECT count(*) FROM payments WHERE refunded = 1"), 0);
    assert_int_equal(s_count(shipping, "SELECT count(*) FROM shipments"), done);
    /* Each participant's events are in its outbox: one per work. */
    assert_int_equal(s_count(payment, "SELECT count(*) FROM outbox"), done);
    assert_int_equal(s_count(inventory, "SELECT count(*) FROM outbox"), S_ORDERS + declined);

    for (int i = 0; i < 3; i++)
        fy_kill_wait(ps[i].pid, SIGTERM);
    for (int i = 0; i < 4; i++)
        fy_kill_wait(relays[i], SIGTERM);
    fy_pg_stop(&pg);
}

static void
test_orders_on_postgres_under_kills(void **state)
{
    s_shop(*state, true);
}

static void
test_orders_on_sqlite_under_kills(void **state)
{
    s_shop(*state, false);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_orders_on_postgres_under_kills, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_orders_on_sqlite_under_kills, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("sql_saga_kills", tests, NULL, NULL);
}
