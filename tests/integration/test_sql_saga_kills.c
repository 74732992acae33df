/* SPDX-License-Identifier: MIT */
/*
 * test_sql_saga_kills.c - examples/order_saga_sql under kill -9: the order
 * service (orchestrator) on PostgreSQL or on SQLite, inventory and payment
 * on PostgreSQL databases of their own, shipping on SQLite, a real ferryd,
 * and ferry-relay publishing every outbox. While 300 orders go through, the
 * orchestrator, the payment participant and the orders relay are each
 * killed with kill -9 several times and started again. Then:
 *
 * - every order has its saga, ended exactly as the failure plan says (DONE,
 *   or COMPENSATED when the card is declined); none FAILED;
 * - every participant's work and compensation ran exactly once (counted in
 *   the participants' own tables), and their business rows agree.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"
#include "sqlshop.h"

#define S_ORDERS 300

/* The shop of the running test: stopped by the teardown too, so a failed
 * assertion leaves no process or PostgreSQL server behind. */
static fy_sqlshop_t s_the_shop;

static int
s_teardown(void **state)
{
    fy_sqlshop_stop(&s_the_shop);
    unsetenv("ORDER_SAGA_RATE");
    return fy_ferryd_state_free(state);
}

static void
s_shop(fy_ferryd_t *d, bool orders_on_pg)
{
    assert_int_equal(fy_ferryd_start(d), 0);
    fy_sqlshop_t *shop = &s_the_shop;
    /* Orders placed over 6 s (and again after each restart): the kills come
     * while the service works, however fast the sagas themselves go. */
    setenv("ORDER_SAGA_RATE", "50", 1);
    assert_int_equal(fy_sqlshop_start(shop, d->endpoint, orders_on_pg, S_ORDERS), 0);

    /* kill -9 in turn: the order service (orchestrator), the payment
     * participant, the orders relay; each started again at once. */
    unsigned seed = (unsigned)fy_now_ms();
    int kills = 0, status = -1;
    bool finished = false;
    long long until = fy_now_ms() + 180000;
    while (!finished && fy_now_ms() < until) {
        fy_sleep_ms(300 + (int)(rand_r(&seed) % 500));
        if (waitpid(shop->pid[FY_SHOP_ORDERS], &status, WNOHANG) == shop->pid[FY_SHOP_ORDERS]) {
            finished = true;
            break;
        }
        if (kills >= 9)
            continue;
        if (kills % 3 == 0) {
            status = fy_sqlshop_kill_restart(shop, FY_SHOP_ORDERS);
            finished = !WIFSIGNALED(status); /* it finished first */
        } else if (kills % 3 == 1) {
            fy_sqlshop_kill_restart(shop, FY_SHOP_PAYMENT);
        } else {
            fy_sqlshop_kill_relay(shop, FY_SHOP_ORDERS);
        }
        kills += !finished;
    }
    unsetenv("ORDER_SAGA_RATE");
    assert_true(finished);
    shop->pid[FY_SHOP_ORDERS] = 0;
    char cmd[600], out[2048];
    snprintf(cmd, sizeof cmd, "tail -5 '%s'", shop->log[FY_SHOP_ORDERS]);
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
    const int O = FY_SHOP_ORDERS, I = FY_SHOP_INVENTORY, P = FY_SHOP_PAYMENT, S = FY_SHOP_SHIPPING;
    assert_int_equal(fy_sqlshop_count(shop, O, "SELECT count(*) FROM orders"), S_ORDERS);
    assert_int_equal(fy_sqlshop_count(shop, O, "SELECT count(*) FROM ferry_saga"), S_ORDERS);
    assert_int_equal(fy_sqlshop_count(shop, O, "SELECT count(*) FROM ferry_saga WHERE state = 3"),
                     done);
    assert_int_equal(fy_sqlshop_count(shop, O,
                                      "SELECT count(*) FROM ferry_saga WHERE state = 4 AND reason "
                                      "LIKE 'step charge failed: card declined%'"),
                     declined);
    assert_int_equal(fy_sqlshop_count(shop, O,
                                      "SELECT count(*) FROM ferry_saga f JOIN orders o ON o.id = "
                                      "f.id WHERE (f.state = 3) <> (o.amount <= 150)"),
                     0);
    /* Work once each, and the business rows agree. */
    const int parts[] = {I, P, S};
    for (int i = 0; i < 3; i++)
        assert_int_equal(fy_sqlshop_count(shop, parts[i], "SELECT count(*) FROM runs WHERE n <> 1"),
                         0);
    assert_int_equal(fy_sqlshop_count(shop, I, "SELECT count(*) FROM runs WHERE kind = 'reserve'"),
                     S_ORDERS);
    assert_int_equal(
        fy_sqlshop_count(shop, I, "SELECT count(*) FROM runs WHERE kind = 'reserve:undo'"),
        declined);
    assert_int_equal(
        fy_sqlshop_count(shop, I, "SELECT count(*) FROM reservations WHERE released = 1"),
        declined);
    assert_int_equal(fy_sqlshop_count(shop, P, "SELECT count(*) FROM payments"), done);
    assert_int_equal(fy_sqlshop_count(shop, P, "SELECT count(*) FROM payments WHERE refunded = 1"),
                     0);
    assert_int_equal(fy_sqlshop_count(shop, S, "SELECT count(*) FROM shipments"), done);
    /* Step results: shipping got the reservation's and the payment's
     * numbers; a release found its reservation by the number it gave. */
    assert_int_equal(fy_sqlshop_count(shop, S,
                                      "SELECT count(*) FROM shipments WHERE reservation = 'RSV-' "
                                      "|| order_id AND payment = 'PAY-' || order_id"),
                     done);
    /* Each participant's events are in its outbox: one per work. */
    assert_int_equal(fy_sqlshop_count(shop, P, "SELECT count(*) FROM outbox"), done);
    assert_int_equal(fy_sqlshop_count(shop, I, "SELECT count(*) FROM outbox"), S_ORDERS + declined);
    fy_sqlshop_stop(shop);
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
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_orders_on_sqlite_under_kills, fy_ferryd_state_new,
                                        s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("sql_saga_kills", tests, NULL, NULL);
}
