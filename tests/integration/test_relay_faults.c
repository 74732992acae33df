/* SPDX-License-Identifier: MIT */
/*
 * test_relay_faults.c - the broker fails under a running ferry-relay
 * (issue 15): 8 writers insert events over 500 aggregates into the
 * service's outbox while ferryd is killed with -9 and stopped with SIGTERM
 * in turn, six times or more, each time started again a moment later. The
 * relay is never restarted: it must ride out every fault by itself.
 *
 * The history checker (relayfx.h) then proves what the relay promises:
 * every committed event is in the broker exactly once (what a dead broker
 * left unconfirmed was sent again and answered as a duplicate, never stored
 * twice), each aggregate's events in commit order with no gap. For each
 * source: SQLite, PostgreSQL polling, PostgreSQL log tailing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"
#include "pgserver.h"
#include "relayfx.h"

typedef fy_fx_t fx_t;

/* Waits until @p topic holds @p n messages (or the time is up). */
static uint64_t
s_wait_topic(ferry_client_t *c, const char *topic, uint64_t n, int timeout_ms)
{
    ferry_topic_info_t info = {0};
    long long until = fy_now_ms() + timeout_ms;
    while ((ferry_client_info(c, topic, &info) != FERRY_OK || info.messages < n) &&
           fy_now_ms() < until)
        fy_sleep_ms(20);
    return info.messages;
}

/* Kills (-9) and stops (SIGTERM) ferryd in turn while the writers write,
 * each time starting it again after 50-300 ms; at least @p min faults.
 * The relay @p relay must live through all of them. @return the faults;
 * *during: those that came while events were still being written. */
static int
s_fail_broker(fx_t *fx, int relay, atomic_size_t *written, size_t events, int min, int *during)
{
    unsigned seed = (unsigned)time(NULL) ^ 0x7e57;
    int faults = 0;
    *during = 0;
    while ((atomic_load(written) < events || faults < min) && faults < 40) {
        fy_sleep_ms(150 + (int)(rand_r(&seed) % 350));
        int sig = faults % 2 ? SIGTERM : SIGKILL;
        int status = fy_ferryd_signal(&fx->d, sig);
        if (sig == SIGKILL)
            assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        else /* a stop under load drains and exits 0 */
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        faults++;
        *during += atomic_load(written) < events;
        fy_sleep_ms(50 + (int)(rand_r(&seed) % 250));
        assert_int_equal(fy_ferryd_start(&fx->d), 0);
        int st;
        assert_int_equal(waitpid(relay, &st, WNOHANG), 0); /* the relay rides it out */
    }
    return faults;
}

/* Starts the writers on the outbox (@p sqlite file or @p conninfo). */
static void
s_writers(fy_outbox_writer_t *w, pthread_t *th, const char *sqlite, const char *conninfo,
          size_t events, atomic_size_t *written)
{
    for (int i = 0; i < FY_OUTBOX_WRITERS; i++) {
        w[i] = (fy_outbox_writer_t){.sqlite = sqlite,
                                    .conninfo = conninfo,
                                    .w = i,
                                    .events = events / FY_OUTBOX_WRITERS,
                                    .written = written,
                                    .pause_ms = 25};
        assert_int_equal(pthread_create(&th[i], NULL, fy_outbox_write, &w[i]), 0);
    }
}

static void
s_join(fy_outbox_writer_t *w, pthread_t *th)
{
    for (int i = 0; i < FY_OUTBOX_WRITERS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failed)
            fail_msg("writer %d: %s", i, w[i].error);
    }
}

/* Runs the faults against a relay on @p source and checks the history. */
static void
s_run(fx_t *fx, const char *source, const char *sqlite, const fy_pg_t *pg, const char *kind)
{
    const size_t events = 24000; /* with 25 ms pauses: the writes span the faults */
    char log[400];
    snprintf(log, sizeof log, "%s.relay.log", fx->d.dir);
    int relay = fy_relay_spawn(source, fx->d.endpoint, log, NULL);
    assert_true(relay > 0);
    assert_int_equal(fy_relay_wait_started(log, relay), 0);
    atomic_size_t written = 0;
    fy_outbox_writer_t w[FY_OUTBOX_WRITERS];
    pthread_t th[FY_OUTBOX_WRITERS];
    s_writers(w, th, sqlite, pg ? pg->conninfo : NULL, events, &written);
    int during;
    int faults = s_fail_broker(fx, relay, &written, events, 6, &during);
    s_join(w, th);
    assert_true(during >= 4); /* the relay was streaming through them */
    /* The client reconnects to the restarted broker by itself. */
    uint64_t got = s_wait_topic(fx->c, "order", events, 60000);
    assert_int_equal(got, events);
    int status = fy_kill_wait(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char why[256];
    if (fy_outbox_verify(fx->c, "order", events, kind, why, sizeof why) != 0)
        fail_msg("%s (relay log %s)", why, log);
    printf("%s: broker failed %d times (kill -9 and SIGTERM in turn, %d while rows were "
           "written) under the relay; %zu events, each once, in order\n",
           kind, faults, during, events);
}

static void
test_broker_fails_under_sqlite_relay(void **state)
{
    fx_t *fx = *state;
    char db[400], source[420];
    snprintf(db, sizeof db, "%s.app.db", fx->d.dir);
    assert_int_equal(fy_outbox_sqlite_create(db), 0);
    snprintf(source, sizeof source, "sqlite:%s", db);
    s_run(fx, source, db, NULL, "sqlite-");
    unlink(db);
}

static void
s_pg_run(fx_t *fx, bool logical)
{
    fy_pg_t pg;
    assert_int_equal(fy_pg_start(&pg), 0);
    char ddl[600], source[400];
    snprintf(ddl, sizeof ddl, "\\i %s/outbox-relay/sql/postgres.sql\n",
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    assert_int_equal(fy_pg_sql(&pg, ddl), 0);
    snprintf(source, sizeof source, "%s:%s", logical ? "pg-logical" : "pg", pg.conninfo);
    s_run(fx, source, NULL, &pg, logical ? "pg-logical-" : "pg-");
    fy_pg_stop(&pg);
}

static void
test_broker_fails_under_pg_relay(void **state)
{
    s_pg_run(*state, false);
}

static void
test_broker_fails_under_pglog_relay(void **state)
{
    s_pg_run(*state, true);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broker_fails_under_sqlite_relay, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_broker_fails_under_pg_relay, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_broker_fails_under_pglog_relay, fy_fx_setup,
                                        fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
