/* SPDX-License-Identifier: MIT */
/*
 * demo.c - `make demo`: the order saga of examples/order_saga_sql.c with
 * every part real and started here: ferryd, a PostgreSQL server on a
 * temporary directory (the orders, inventory and payment databases; shipping
 * on SQLite), ferry-relay for every outbox, the three participants and the
 * order service, and a Python service (examples/python/invoice_service.py,
 * on SQLite) that follows the orders' OrderPlaced events. It runs
 * DEMO_ORDERS orders (default 20), prints the outcome table and what each
 * service holds, and stops everything it started.
 */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "relayfx.h"
#include "sqlshop.h"

/* The Python invoice service on @p db, for @p orders orders, its output in
 * @p log; under the sanitizers (FERRY_SAN) with their runtimes preloaded,
 * as tests/integration/test_python.sh does. Waits (asking through @p c)
 * until its subscription exists, so that it sees every order.
 * @return its pid, or -1. */
static int
s_start_invoices(ferry_client_t *c, const char *endpoint, const char *db, const char *log,
                 int orders)
{
    char script[1200];
    snprintf(script, sizeof script,
             "top=\"$FERRY_TOP\"; export PYTHONPATH=\"$top/clients/python\" "
             "FERRY_LIBRARY=\"$top/$FERRY_BUILD/libferry.so.0\" "
             "FERRY_SQL_DIR=\"$top/outbox-relay/sql\" PYTHONDONTWRITEBYTECODE=1; "
             "if [ -n \"$FERRY_SAN\" ]; then export LD_PRELOAD=\"$(cc -print-file-name=libasan.so) "
             "$(cc -print-file-name=libubsan.so)\" ASAN_OPTIONS=detect_leaks=0; fi; "
             "exec /usr/bin/python3 \"$top/examples/python/invoice_service.py\" --db '%s' "
             "--server '%s' --count %d",
             db, endpoint, orders);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    int pid = fy_spawn(log, argv);
    ferry_sub_info_t info;
    bool up = false;
    for (long long by = fy_now_ms() + 20000; pid > 0 && !up && fy_now_ms() < by; fy_sleep_ms(50))
        up = ferry_client_sub_info(c, "order", "invoices", &info) == FERRY_OK;
    return up ? pid : -1;
}

static long
s_sqlite_count(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

int
main(void)
{
    int orders = getenv("DEMO_ORDERS") ? atoi(getenv("DEMO_ORDERS")) : 20;
    if (orders < 1 || orders > 100000) {
        fprintf(stderr, "demo: DEMO_ORDERS wants 1-100000\n");
        return 2;
    }
    /* The reserve step's timeout: under the second inventory makes the
     * orders N % 13 == 6 wait, so they time out (examples/order_saga_sql.c). */
    setenv("ORDER_SAGA_TIMEOUT_MS", "600", 1);
    fy_ferryd_t d = {0};
    static fy_sqlshop_t shop;
    char py_dir[] = "/tmp/ferry-demo-XXXXXX", py_db[64], py_log[64], relay_log[64];
    if (!mkdtemp(py_dir))
        return 1;
    snprintf(py_db, sizeof py_db, "%s/invoices.db", py_dir);
    snprintf(py_log, sizeof py_log, "%s/invoices.log", py_dir);
    snprintf(relay_log, sizeof relay_log, "%s/relay-invoices.log", py_dir);
    printf("starting ferryd, PostgreSQL, five relays, four services in C and one in Python "
           "...\n");
    fflush(stdout);
    int py = -1, py_relay = -1;
    char spec[80];
    snprintf(spec, sizeof spec, "sqlite:%s", py_db);
    ferry_client_t *c = NULL; /* the demo's own questions to the broker */
    if (fy_ferryd_start(&d) != 0 || !(c = fy_connect(d.endpoint, 5000, 16)) ||
        (py = s_start_invoices(c, d.endpoint, py_db, py_log, orders)) < 0 ||
        (py_relay = fy_relay_spawn(spec, d.endpoint, relay_log, NULL)) < 0 ||
        fy_sqlshop_start(&shop, d.endpoint, true, orders) != 0) {
        fprintf(stderr, "demo: could not start everything (see above and %s)\n", py_log);
        if (py > 0)
            fy_kill_wait(py, SIGKILL);
        ferry_client_destroy(&c);
        fy_ferryd_cleanup(&d);
        return 1;
    }
    printf("ferryd at %s; PostgreSQL in %s\n", d.endpoint, shop.pg.dir);
    int status = -1;
    long long until = fy_now_ms() + 300000;
    while (waitpid(shop.pid[FY_SHOP_ORDERS], &status, WNOHANG) == 0 && fy_now_ms() < until)
        fy_sleep_ms(100);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    shop.pid[FY_SHOP_ORDERS] = ok ? 0 : shop.pid[FY_SHOP_ORDERS];
    /* The invoice service ends after its orders' events; its relay has
     * published its events once topic "invoice" holds one per order. */
    int py_status = -1;
    while (waitpid(py, &py_status, WNOHANG) == 0 && fy_now_ms() < until)
        fy_sleep_ms(50);
    bool py_ok = WIFEXITED(py_status) && WEXITSTATUS(py_status) == 0;
    if (!py_ok)
        fy_kill_wait(py, SIGKILL);
    char cmd[600], out[4096];
    long invoices = s_sqlite_count(py_db, "SELECT count(*) FROM invoices"), published = -1;
    ferry_topic_info_t topic;
    while (py_ok && fy_now_ms() < until &&
           (published = ferry_client_info(c, "invoice", &topic) == FERRY_OK ? (long)topic.messages
                                                                            : -1) < invoices)
        fy_sleep_ms(50);
    ferry_client_destroy(&c);
    fy_kill_wait(py_relay, SIGTERM);
    ok = ok && py_ok && published == orders && invoices == orders;
    snprintf(cmd, sizeof cmd, "grep -v '^order_saga_sql: ' '%s'", shop.log[FY_SHOP_ORDERS]);
    fy_run(cmd, out, sizeof out);
    printf("\n%s\n", out);
    printf("what the services hold:\n"
           "  inventory  %ld reservations, %ld released; %ld events in its outbox\n"
           "  payment    %ld payments; %ld events in its outbox\n"
           "  shipping   %ld shipments (SQLite)\n"
           "  orders     %ld sagas; %ld commands, transitions and events in its outbox\n"
           "  invoices   %ld invoices (Python, SQLite); %ld InvoiceIssued on topic invoice\n",
           fy_sqlshop_count(&shop, FY_SHOP_INVENTORY, "SELECT count(*) FROM reservations"),
           fy_sqlshop_count(&shop, FY_SHOP_INVENTORY,
                            "SELECT count(*) FROM reservations WHERE released = 1"),
           fy_sqlshop_count(&shop, FY_SHOP_INVENTORY, "SELECT count(*) FROM outbox"),
           fy_sqlshop_count(&shop, FY_SHOP_PAYMENT, "SELECT count(*) FROM payments"),
           fy_sqlshop_count(&shop, FY_SHOP_PAYMENT, "SELECT count(*) FROM outbox"),
           fy_sqlshop_count(&shop, FY_SHOP_SHIPPING, "SELECT count(*) FROM shipments"),
           fy_sqlshop_count(&shop, FY_SHOP_ORDERS, "SELECT count(*) FROM ferry_saga"),
           fy_sqlshop_count(&shop, FY_SHOP_ORDERS, "SELECT count(*) FROM outbox"), invoices,
           published);
    if (!py_ok)
        printf("\nthe invoice service did not end well: its log is %s\n", py_log);
    /* order-4: inventory failed for now, tried again; order-6: inventory
     * did not answer in time, three attempts, then compensated; order-10:
     * the card declined, and the release failed twice before it passed. */
    const int shown[] = {4, 6, 10};
    for (int i = 0; i < 3 && shown[i] < orders; i++) {
        printf("\nferry saga show order order-%d\n", shown[i]);
        snprintf(cmd, sizeof cmd, "'%s' --server '%s' saga show order order-%d",
                 getenv("FERRY_CLI"), d.endpoint, shown[i]);
        fy_run(cmd, out, sizeof out);
        printf("%s", out);
    }
    printf("\nstopping everything ...\n");
    fy_sqlshop_stop(&shop);
    fy_ferryd_cleanup(&d);
    if (ok) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", py_dir);
        fy_run(cmd, out, sizeof out);
    }
    return ok ? 0 : 1;
}
