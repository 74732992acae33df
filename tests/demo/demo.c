/* SPDX-License-Identifier: MIT */
/*
 * demo.c - `make demo`: the order saga of examples/order_saga_sql.c with
 * every part real and started here: ferryd, a PostgreSQL server on a
 * temporary directory (the orders, inventory and payment databases; shipping
 * on SQLite), ferry-relay for every outbox, the three participants and the
 * order service. It runs DEMO_ORDERS orders (default 20), prints the
 * outcome table and what each service holds, and stops everything it
 * started.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "sqlshop.h"

int
main(void)
{
    int orders = getenv("DEMO_ORDERS") ? atoi(getenv("DEMO_ORDERS")) : 20;
    if (orders < 1 || orders > 100000) {
        fprintf(stderr, "demo: DEMO_ORDERS wants 1-100000\n");
        return 2;
    }
    fy_ferryd_t d = {0};
    static fy_sqlshop_t shop;
    printf("starting ferryd, PostgreSQL, four relays and four services ...\n");
    fflush(stdout);
    if (fy_ferryd_start(&d) != 0 || fy_sqlshop_start(&shop, d.endpoint, true, orders) != 0) {
        fprintf(stderr, "demo: could not start everything (see above)\n");
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
    char cmd[600], out[4096];
    snprintf(cmd, sizeof cmd, "grep -v '^order_saga_sql: ' '%s'", shop.log[FY_SHOP_ORDERS]);
    fy_run(cmd, out, sizeof out);
    printf("\n%s\n", out);
    printf("what the services hold:\n"
           "  inventory  %ld reservations, %ld released; %ld events in its outbox\n"
           "  payment    %ld payments; %ld events in its outbox\n"
           "  shipping   %ld shipments (SQLite)\n"
           "  orders     %ld sagas; %ld commands and transitions in its outbox\n",
           fy_sqlshop_count(&shop, FY_SHOP_INVENTORY, "SELECT count(*) FROM reservations"),
           fy_sqlshop_count(&shop, FY_SHOP_INVENTORY,
                            "SELECT count(*) FROM reservations WHERE released = 1"),
           fy_sqlshop_count(&shop, FY_SHOP_INVENTORY, "SELECT count(*) FROM outbox"),
           fy_sqlshop_count(&shop, FY_SHOP_PAYMENT, "SELECT count(*) FROM payments"),
           fy_sqlshop_count(&shop, FY_SHOP_PAYMENT, "SELECT count(*) FROM outbox"),
           fy_sqlshop_count(&shop, FY_SHOP_SHIPPING, "SELECT count(*) FROM shipments"),
           fy_sqlshop_count(&shop, FY_SHOP_ORDERS, "SELECT count(*) FROM ferry_saga"),
           fy_sqlshop_count(&shop, FY_SHOP_ORDERS, "SELECT count(*) FROM outbox"));
    /* order-4: inventory failed for now, tried again; order-10: the card
     * declined, and the release failed twice before it passed. */
    const char *const shown[] = {"order-4", "order-10"};
    for (int i = 0; i < 2 && i * 6 + 4 < orders; i++) {
        printf("\nferry saga show order %s\n", shown[i]);
        snprintf(cmd, sizeof cmd, "'%s' --server '%s' saga show order %s", getenv("FERRY_CLI"),
                 d.endpoint, shown[i]);
        fy_run(cmd, out, sizeof out);
        printf("%s", out);
    }
    printf("\nstopping everything ...\n");
    fy_sqlshop_stop(&shop);
    fy_ferryd_cleanup(&d);
    return ok ? 0 : 1;
}
