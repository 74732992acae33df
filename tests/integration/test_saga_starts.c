/* SPDX-License-Identifier: MIT */
/*
 * test_saga_starts.c - ferry_saga_start_async() against a real ferryd, with
 * the participants of examples/order_saga.c in their own process:
 *
 * - 1,500 sagas started without waiting (the 1,000th start commits the
 *   queue itself, the poll the rest): each callback says FERRY_OK once,
 *   every saga ends as its amount says (done, or compensated over 150),
 *   each command's work ran once (shopcheck);
 * - a second start of one id in the same batch is told FERRY_EEXISTS and
 *   changes nothing; an unknown definition or a bad id is refused at once;
 * - starts queued when the orchestrator is destroyed are committed: made
 *   again on the same environment, it has them and runs them to their end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "ferry_saga.h"
#include "harness.h"
#include "shopcheck.h"

#define S_SAGAS 1500

typedef struct {
    long ok, exists, other, ended, done;
} s_counts_t;

static void
s_started(const char *id, ferry_status_t status, void *user)
{
    s_counts_t *c = user;
    (void)id;
    c->ok += status == FERRY_OK;
    c->exists += status == FERRY_EEXISTS;
    c->other += status != FERRY_OK && status != FERRY_EEXISTS;
}

static void
s_ended(const char *id, const ferry_saga_status_t *st, void *user)
{
    s_counts_t *c = user;
    (void)id;
    c->ended++;
    c->done += st->state == FERRY_SAGA_DONE;
}

static const ferry_saga_step_t s_steps[] = {
    {.name = "reserve-stock", .queue = "stock.commands", .compensable = true},
    {.name = "charge-payment", .queue = "payment.commands", .compensable = true},
    {.name = "ship", .queue = "shipping.commands"}};

/* Order i, of examples/order_saga.c's amount for it (over 150: declined,
 * compensated). */
static void
s_start(ferry_saga_orchestrator_t *o, long i, s_counts_t *c)
{
    char id[32], data[64];
    snprintf(id, sizeof id, "order-%ld", i);
    int len = snprintf(data, sizeof data, "item=book amount=%ld", fy_shop_amount(i));
    assert_int_equal(ferry_saga_start_async(o, "order", id, data, (size_t)len, s_started, c),
                     FERRY_OK);
}

static void
test_starts_commit_together(void **state)
{
    fy_fx_t *fx = *state;
    char shop[400], orch[400], log[400], bin[400];
    snprintf(shop, sizeof shop, "%s/shop", fx->d.dir);
    snprintf(orch, sizeof orch, "%s/orch", fx->d.dir);
    snprintf(log, sizeof log, "%s/parts.log", fx->d.dir);
    snprintf(bin, sizeof bin, "%s/%s/examples/order_saga", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"));
    const char *argv[] = {bin, "participants", shop, fx->d.endpoint, NULL};
    pid_t parts = fy_spawn(log, argv);
    assert_true(parts > 0);
    MDB_env *env;
    assert_int_equal(mkdir(orch, 0755), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 30), 0);
    assert_int_equal(mdb_env_open(env, orch, 0, 0644), 0);
    s_counts_t c = {0};
    ferry_saga_def_t def = {.name = "order", .steps = s_steps, .step_count = 3};
    ferry_saga_config_t cfg = {
        .name = "orders", .broker = fx->d.endpoint, .on_end = s_ended, .user = &c};
    ferry_saga_orchestrator_t *o;
    assert_int_equal(ferry_saga_orchestrator_new(env, &def, 1, &cfg, &o), FERRY_OK);
    long want_done = 0;
    for (long i = 0; i < S_SAGAS + 10; i++)
        want_done += fy_shop_amount(i) <= 150;
    for (long i = 0; i < S_SAGAS; i++) {
        s_start(o, i, &c);
        if (i == 1005) /* again, in the same batch as the first */
            s_start(o, 1001, &c);
        if (i == 999) /* the 1,000th commits the queue at once */
            assert_int_equal(c.ok, 1000);
    }
    assert_int_equal(c.ok, 1000); /* the rest waits for the poll */
    assert_int_equal(ferry_saga_start_async(o, "refund", "r-1", "x", 1, s_started, &c),
                     FERRY_ENOTFOUND);
    assert_int_equal(ferry_saga_start_async(o, "order", "", "x", 1, s_started, &c), FERRY_EINVAL);
    assert_int_equal(ferry_saga_poll(o, 0), FERRY_OK);
    assert_int_equal(c.ok, S_SAGAS);
    assert_int_equal(c.exists, 1);
    assert_int_equal(c.other, 0);
    long long until = fy_now_ms() + 60000;
    while (c.ended < S_SAGAS && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 50), FERRY_OK);
    assert_int_equal(c.ended, S_SAGAS);
    /* Queued, then the orchestrator destroyed: they are kept. */
    for (long i = S_SAGAS; i < S_SAGAS + 10; i++)
        s_start(o, i, &c);
    ferry_saga_orchestrator_destroy(&o);
    assert_int_equal(c.ok, S_SAGAS + 10);
    assert_int_equal(ferry_saga_orchestrator_new(env, &def, 1, &cfg, &o), FERRY_OK);
    until = fy_now_ms() + 60000;
    while (ferry_saga_active(o) > 0 && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 50), FERRY_OK);
    assert_int_equal(ferry_saga_active(o), 0);
    assert_int_equal(c.ended, S_SAGAS + 10);
    assert_int_equal(c.done, want_done);
    ferry_saga_orchestrator_destroy(&o);
    mdb_env_close(env);
    assert_true(WIFEXITED(fy_kill_wait(parts, SIGTERM)));
    char why[256];
    long done = fy_shop_check(shop, S_SAGAS + 10, true, why, sizeof why);
    if (done < 0)
        fail_msg("%s", why);
    assert_int_equal(done, want_done);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_starts_commit_together, fy_fx_setup, fy_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
