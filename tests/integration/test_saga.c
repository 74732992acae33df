/* SPDX-License-Identifier: MIT */
/*
 * test_saga.c - sagas against a real ferryd, with the participants of
 * examples/order_saga.c (stock, payment, shipping) in their own process and
 * LMDB environment:
 *
 * - 300 orders: those over 150 fail at payment and are compensated (stock
 *   released), the others are done; every command's work ran once;
 * - a step that times out (no shipping participant) compensates the steps
 *   before it; its command, served late, is refused and never runs;
 * - the orchestrator killed with -9 at random moments (at least 5 times),
 *   and the participants' process 3 times, while 300 sagas run: restarted,
 *   they finish all of them, each command's work ran once, none is half
 *   done;
 * - the broker killed with -9 and stopped in turn while 1,000 sagas run
 *   (nothing else restarted): every saga ends as without faults, each
 *   command's work ran once;
 * - participants: a repeated command is answered again without running, a
 *   compensation that overtakes its command cancels it;
 * - bad input: definitions, ids, unknown definition, duplicate start;
 * - step results: kept with the saga, carried by the later commands and
 *   the step's compensation, escaped when they are not text;
 * - a command its participant cannot serve yet comes again later; held past
 *   its deadline it times out and is compensated without running;
 * - choreography (examples/choreography.c): an order service and a stock
 *   service that only exchange events, each killed with -9 five times while
 *   1000 orders go through: every order ends confirmed exactly when stock
 *   reserved it, the stock left is 1000 minus what was reserved, each event
 *   handled once by each service (ferry_inbox_handle).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "ferry_saga.h"
#include "fixture.h"
#include "harness.h"
#include "shopcheck.h"

typedef fy_fx_t fx_t;

#define S_ORDERS 300

static const char *
s_example(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/examples/order_saga", getenv("FERRY_TOP"), getenv("FERRY_BUILD"));
    return buf;
}

/* Runs order_saga with @p args (NULL-terminated) in the background, its
 * output appended to @p log. */
static pid_t
s_spawn(const char *log, const char *const *args)
{
    char bin[400];
    s_example(bin, sizeof bin);
    const char *argv[12] = {bin};
    for (int i = 0; args[i] && i < 10; i++)
        argv[i + 1] = args[i];
    pid_t pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    return pid;
}

static int
s_stop(pid_t pid, int sig)
{
    return fy_kill_wait(pid, sig);
}

/* Waits until @p queue exists (the participants declare theirs; commands
 * wait in a queue until somebody serves it). */
static void
s_wait_queue(ferry_client_t *c, const char *queue)
{
    long long until = fy_now_ms() + 20000;
    ferry_topic_info_t info;
    while (fy_now_ms() < until) {
        if (ferry_client_info(c, queue, &info) == FERRY_OK)
            return;
        fy_sleep_ms(20);
    }
    fail_msg("%s was not declared", queue);
}

/* The participants' store holds what the sagas promise (shopcheck.h).
 * @return how many orders are done. */
static long
s_check_shop(const char *dir, long orders, bool shipping)
{
    char why[256];
    long done = fy_shop_check(dir, orders, shipping, why, sizeof why);
    if (done < 0)
        fail_msg("%s", why);
    return done;
}

static MDB_env *
s_env(const char *dir)
{
    MDB_env *env;
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    return env;
}

typedef struct {
    long ended, done, compensated;
    bool reasons_ok;
} s_ends_t;

static void
s_on_end(const char *id, const ferry_saga_status_t *st, void *user)
{
    s_ends_t *e = user;
    long i = strtol(id + strlen("order-"), NULL, 10);
    e->ended++;
    e->done += st->state == FERRY_SAGA_DONE;
    e->compensated += st->state == FERRY_SAGA_COMPENSATED;
    bool want_done = fy_shop_amount(i) <= 150;
    if (want_done != (st->state == FERRY_SAGA_DONE) ||
        (!want_done && !strstr(st->reason, "step charge-payment failed: insufficient funds")))
        e->reasons_ok = false;
}

static const ferry_saga_step_t s_steps[] = {
    {.name = "reserve-stock", .queue = "stock.commands", .compensable = true},
    {.name = "charge-payment", .queue = "payment.commands", .compensable = true},
    {.name = "ship", .queue = "shipping.commands"}};

static void
test_orders_done_or_compensated(void **state)
{
    fx_t *fx = *state;
    char shop[400], orch[400], log[400];
    snprintf(shop, sizeof shop, "%s/shop", fx->d.dir);
    snprintf(orch, sizeof orch, "%s/orch", fx->d.dir);
    snprintf(log, sizeof log, "%s/saga.log", fx->d.dir);
    const char *pargs[] = {"participants", shop, fx->d.endpoint, NULL};
    pid_t parts = s_spawn(log, pargs);
    MDB_env *env = s_env(orch);
    ferry_saga_def_t def = {.name = "order", .steps = s_steps, .step_count = 3};
    s_ends_t ends = {.reasons_ok = true};
    ferry_saga_config_t cfg = {
        .name = "orders", .broker = fx->d.endpoint, .on_end = s_on_end, .user = &ends};
    ferry_saga_orchestrator_t *o;
    assert_int_equal(ferry_saga_orchestrator_new(env, &def, 1, &cfg, &o), FERRY_OK);
    s_wait_queue(fx->c, "shipping.commands");
    for (long i = 0; i < S_ORDERS; i++) {
        char id[32], data[64];
        snprintf(id, sizeof id, "order-%ld", i);
        int len =
            snprintf(data, sizeof data, "item=book amount=%lld", (long long)fy_shop_amount(i));
        assert_int_equal(ferry_saga_start(o, "order", id, data, (size_t)len), FERRY_OK);
    }
    /* Bad input changes nothing. */
    assert_int_equal(ferry_saga_start(o, "order", "order-0", "x", 1), FERRY_EEXISTS);
    assert_int_equal(ferry_saga_start(o, "refund", "r-1", "x", 1), FERRY_ENOTFOUND);
    assert_int_equal(ferry_saga_start(o, "order", "", "x", 1), FERRY_EINVAL);
    assert_int_equal(ferry_saga_start(o, "order", "bad\nid", "x", 1), FERRY_EINVAL);
    assert_int_equal(ferry_saga_start(o, "order", "big", "x", 300 * 1024), FERRY_EINVAL);
    ferry_saga_status_t st;
    assert_int_equal(ferry_saga_get(o, "order-999", &st), FERRY_ENOTFOUND);
    long long until = fy_now_ms() + 60000;
    while (ferry_saga_active(o) > 0 && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 50), FERRY_OK);
    assert_int_equal(ferry_saga_active(o), 0);
    assert_int_equal(ends.ended, S_ORDERS);
    assert_true(ends.reasons_ok);
    assert_int_equal(ends.done, 225); /* amounts 1..150 of i * 37 % 200 + 1 */
    assert_int_equal(ends.compensated, 75);
    assert_int_equal(ferry_saga_get(o, "order-7", &st), FERRY_OK); /* amount 60 */
    assert_int_equal(st.state, FERRY_SAGA_DONE);
    assert_int_equal(st.step, 3);
    assert_string_equal(st.def, "order");
    assert_int_equal(ferry_saga_get(o, "order-5", &st), FERRY_OK); /* amount 186 */
    assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
    assert_non_null(strstr(st.reason, "insufficient funds for 186"));
    assert_int_equal(st.deadline_ms, 0);
    assert_true(st.ended_ms > 0 && st.ended_ms <= fy_wall_ms());
    /* Purging forgets ended sagas only; a purged id may start again. */
    size_t removed;
    assert_int_equal(ferry_saga_purge(o, st.ended_ms - 600000, &removed), FERRY_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(ferry_saga_start(o, "order", "live", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_purge(o, fy_wall_ms() + 1, &removed), FERRY_OK);
    assert_int_equal(removed, S_ORDERS);
    assert_int_equal(ferry_saga_get(o, "order-5", &st), FERRY_ENOTFOUND);
    assert_int_equal(ferry_saga_get(o, "live", &st), FERRY_OK); /* still running */
    assert_int_equal(ferry_saga_active(o), 1);
    ferry_saga_orchestrator_destroy(&o);
    mdb_env_close(env);
    assert_true(WIFEXITED(s_stop(parts, SIGTERM)));
    assert_int_equal(s_check_shop(shop, S_ORDERS, true), 225);
}

static void
test_step_timeout_compensates_and_late_command_is_refused(void **state)
{
    fx_t *fx = *state;
    char shop[400], orch[400], log[400];
    snprintf(shop, sizeof shop, "%s/shop", fx->d.dir);
    snprintf(orch, sizeof orch, "%s/orch", fx->d.dir);
    snprintf(log, sizeof log, "%s/saga.log", fx->d.dir);
    const char *pargs[] = {"participants", shop, fx->d.endpoint, "--no-shipping", NULL};
    pid_t parts = s_spawn(log, pargs);
    MDB_env *env = s_env(orch);
    ferry_saga_step_t steps[3];
    memcpy(steps, s_steps, sizeof steps);
    steps[2].timeout_ms = 300; /* nobody ships */
    ferry_saga_def_t def = {.name = "order", .steps = steps, .step_count = 3};
    ferry_saga_config_t cfg = {.name = "orders", .broker = fx->d.endpoint};
    ferry_saga_orchestrator_t *o;
    assert_int_equal(ferry_saga_orchestrator_new(env, &def, 1, &cfg, &o), FERRY_OK);
    s_wait_queue(fx->c, "payment.commands");
    const long n = 20;
    for (long i = 0; i < n; i++) {
        char id[32], data[64];
        snprintf(id, sizeof id, "order-%ld", i);
        int len = snprintf(data, sizeof data, "amount=%lld", (long long)fy_shop_amount(i));
        assert_int_equal(ferry_saga_start(o, "order", id, data, (size_t)len), FERRY_OK);
    }
    long long until = fy_now_ms() + 30000;
    while (ferry_saga_active(o) > 0 && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 50), FERRY_OK);
    assert_int_equal(ferry_saga_active(o), 0);
    long timed_out = 0;
    for (long i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "order-%ld", i);
        ferry_saga_status_t st;
        assert_int_equal(ferry_saga_get(o, id, &st), FERRY_OK);
        assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
        timed_out += strstr(st.reason, "step ship timed out") != NULL;
    }
    assert_int_equal(timed_out, 16); /* orders 5, 10, 15, 16 (over 150) failed at payment */
    ferry_saga_orchestrator_destroy(&o);
    mdb_env_close(env);
    assert_true(WIFEXITED(s_stop(parts, SIGTERM)));
    /* Shipping comes up late: the waiting ship commands are refused. */
    const char *all[] = {"participants", shop, fx->d.endpoint, NULL};
    parts = s_spawn(log, all);
    ferry_topic_info_t info = {0};
    until = fy_now_ms() + 20000;
    while (
        (ferry_client_info(fx->c, "shipping.commands", &info) != FERRY_OK || info.messages > 0) &&
        fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(info.messages, 0);
    assert_true(WIFEXITED(s_stop(parts, SIGTERM)));
    assert_int_equal(s_check_shop(shop, n, false), 0);
}

/* Kills the participants' process with -9 three times while the
 * orchestrator runs, starting it again at once (its LMDB inbox keeps what
 * it answered; a batch it held unanswered comes again). The thread lives
 * until told (done): what it spawned dies with it (PR_SET_PDEATHSIG is the
 * spawning thread's). */
typedef struct {
    const char *log;
    const char *const *argv;
    atomic_int pid, kills, failed, done;
} s_killer_t;

static void *
s_kill_participants(void *arg)
{
    s_killer_t *k = arg;
    for (int i = 0; i < 3; i++) {
        fy_sleep_ms(300 + rand() % 500);
        if (fy_kill_wait(atomic_load(&k->pid), SIGKILL) < 0)
            atomic_store(&k->failed, 1);
        int pid = fy_spawn(k->log, k->argv);
        if (pid <= 0)
            atomic_store(&k->failed, 1);
        atomic_store(&k->pid, pid);
        atomic_fetch_add(&k->kills, 1);
    }
    while (!atomic_load(&k->done))
        fy_sleep_ms(20);
    return NULL;
}

static void
test_orchestrator_killed(void **state)
{
    fx_t *fx = *state;
    char shop[400], orch[400], log[400], out[400], count[16];
    snprintf(shop, sizeof shop, "%s/shop", fx->d.dir);
    snprintf(orch, sizeof orch, "%s/orch", fx->d.dir);
    snprintf(log, sizeof log, "%s/saga.log", fx->d.dir);
    snprintf(out, sizeof out, "%s/orchestrator.out", fx->d.dir);
    snprintf(count, sizeof count, "%d", S_ORDERS);
    const char *pargs[] = {"participants", shop, fx->d.endpoint, NULL};
    pid_t parts = s_spawn(log, pargs);
    s_wait_queue(fx->c, "shipping.commands");
    char bin[400];
    const char *oargs[] = {
        s_example(bin, sizeof bin), "orchestrate", orch, count, fx->d.endpoint, NULL};
    const char *pargv[] = {bin, "participants", shop, fx->d.endpoint, NULL};
    s_killer_t killer = {.log = log, .argv = pargv, .pid = parts};
    pthread_t kt;
    assert_int_equal(pthread_create(&kt, NULL, s_kill_participants, &killer), 0);
    int kills = 0;
    /* Orders placed over 2 s: the kills come while it works, however fast
     * the sagas themselves go. */
    setenv("ORDER_SAGA_RATE", "150", 1);
    int status = fy_run_killing(out, oargs, 5, 40, 160, &kills);
    unsetenv("ORDER_SAGA_RATE");
    while (atomic_load(&killer.kills) < 3 && !atomic_load(&killer.failed))
        fy_sleep_ms(20);
    parts = atomic_load(&killer.pid);
    assert_int_equal(atomic_load(&killer.failed), 0);
    assert_int_equal(atomic_load(&killer.kills), 3);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(kills >= 5);
    char cmd[1200], summary[128];
    snprintf(cmd, sizeof cmd, "grep '^done' '%s' | tail -1", out);
    fy_run(cmd, summary, sizeof summary);
    printf("orchestrator killed %d times, participants 3 times; last run: %s", kills, summary);
    /* Exactly as without kills: no reply lost (none timed out), none twice. */
    assert_non_null(strstr(summary, "done 225 compensated 75"));
    assert_true(WIFEXITED(s_stop(parts, SIGTERM)));
    atomic_store(&killer.done, 1);
    pthread_join(kt, NULL);
    assert_int_equal(s_check_shop(shop, S_ORDERS, true), 225);
}

/* The broker fails under running sagas (issue 15): ferryd is killed with
 * -9 and stopped with SIGTERM in turn while 1,000 sagas run, each time
 * started again a moment later; the orchestrator and the participants are
 * never restarted. Every saga ends as it would have without the faults (no
 * reply lost, none applied twice), and each command's work ran once. */
static void
test_broker_fails_under_sagas(void **state)
{
    fx_t *fx = *state;
    enum { ORDERS = 1000 };
    char shop[400], orch[400], log[400], out[400], count[16], bin[400];
    snprintf(shop, sizeof shop, "%s/shop", fx->d.dir);
    snprintf(orch, sizeof orch, "%s/orch", fx->d.dir);
    snprintf(log, sizeof log, "%s/saga.log", fx->d.dir);
    snprintf(out, sizeof out, "%s/orchestrator.out", fx->d.dir);
    snprintf(count, sizeof count, "%d", ORDERS);
    const char *pargs[] = {"participants", shop, fx->d.endpoint, NULL};
    pid_t parts = s_spawn(log, pargs);
    s_wait_queue(fx->c, "shipping.commands");
    const char *oargs[] = {
        s_example(bin, sizeof bin), "orchestrate", orch, count, fx->d.endpoint, NULL};
    setenv("ORDER_SAGA_RATE", "400", 1); /* 2.5 s of orders: faults come while they run */
    pid_t o = fy_spawn(out, oargs);
    unsetenv("ORDER_SAGA_RATE");
    assert_true(o > 0);
    unsigned seed = (unsigned)time(NULL) ^ 0x5a6a;
    int faults = 0, status = 0;
    while (waitpid(o, &status, WNOHANG) == 0 && faults < 30) {
        fy_sleep_ms(100 + (int)(rand_r(&seed) % 300));
        int sig = faults % 2 ? SIGTERM : SIGKILL;
        int st = fy_ferryd_signal(&fx->d, sig);
        assert_true(sig == SIGKILL ? WIFSIGNALED(st) : WIFEXITED(st) && WEXITSTATUS(st) == 0);
        faults++;
        fy_sleep_ms(50 + (int)(rand_r(&seed) % 200));
        assert_int_equal(fy_ferryd_start(&fx->d), 0);
    }
    if (faults >= 30)
        waitpid(o, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(faults >= 2); /* they came while the sagas ran */
    int pst;
    assert_int_equal(waitpid(parts, &pst, WNOHANG), 0); /* the participants rode it out */
    char cmd[1200], summary[128], want[64];
    snprintf(cmd, sizeof cmd, "grep '^done' '%s' | tail -1", out);
    fy_run(cmd, summary, sizeof summary);
    printf("broker failed %d times under %d sagas; %s", faults, ORDERS, summary);
    snprintf(want, sizeof want, "done %d compensated %d", ORDERS * 3 / 4, ORDERS / 4);
    if (!strstr(summary, want)) {
        snprintf(cmd, sizeof cmd, "grep -v 'connection to' '%s' | tail -20 >&2", out);
        fy_run(cmd, summary, sizeof summary);
        fail_msg("want %s", want);
    }
    assert_true(WIFEXITED(s_stop(parts, SIGTERM)));
    assert_int_equal(s_check_shop(shop, ORDERS, true), ORDERS * 3 / 4);
}

/* A participant's inbox, driven by hand with requests. */
static int s_runs; /* how often the handler ran (one thread) */

static bool
s_count(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    (void)txn, (void)user;
    s_runs++;
    if (cmd->len == 4 && memcmp(cmd->data, "fail", 4) == 0) {
        snprintf(reason, cap, "as asked");
        return false;
    }
    return true;
}

static const char *
s_command(ferry_client_t *c, const char *id, const char *action, const char *data)
{
    ferry_header_t h[] = {{"ferry-saga-id", id},
                          {"ferry-saga-def", "t"},
                          {"ferry-saga-step", "s"},
                          {"ferry-saga-action", action}};
    ferry_message_t m = {.data = data, .len = strlen(data), .headers = h, .header_count = 4};
    const ferry_stored_message_t *reply;
    assert_int_equal(ferry_client_request(c, "svc.commands", &m, 10000, &reply), FERRY_OK);
    static char result[300];
    snprintf(result, sizeof result, "%s %.*s", ferry_msg_header(reply, "ferry-saga-result"),
             (int)reply->len, (const char *)reply->data);
    return result;
}

typedef struct {
    const char *endpoint;
    MDB_env *env;
    ferry_saga_handler_fn fn;
    const char *queues[2]; /* served with fn; the second may be NULL */
    atomic_int stop, ready;
    ferry_status_t bad, st; /* what participant_new said to bad and good input */
    pthread_t th;
} s_server_t;

/* A participant in its own thread with its own client (cmocka's asserts
 * belong to the main thread: results go back in the struct). */
static void *
s_serve_thread(void *arg)
{
    s_server_t *s = arg;
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    ferry_options_set_server(o, s->endpoint);
    s->st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    ferry_saga_participant_t *p[2] = {0};
    s->bad = ferry_saga_participant_new(NULL, s->env, "q", s->fn, NULL, &p[0]);
    for (int i = 0; i < 2 && s->st == FERRY_OK && s->queues[i]; i++)
        s->st = ferry_saga_participant_new(c, s->env, s->queues[i], s->fn, NULL, &p[i]);
    atomic_store(&s->ready, 1);
    while (s->st == FERRY_OK && !atomic_load(&s->stop))
        ferry_client_poll(c, 20);
    for (int i = 0; i < 2; i++)
        ferry_saga_participant_destroy(&p[i]);
    ferry_saga_participant_destroy(&p[0]); /* NULL accepted */
    ferry_client_destroy(&c);
    return NULL;
}

/* Starts @p srv (endpoint, fn and queues set) on a new LMDB environment
 * @p name in the test's directory, and waits until it serves. */
static void
s_server_start(fx_t *fx, s_server_t *srv, const char *name)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/%s", fx->d.dir, name);
    srv->endpoint = fx->d.endpoint;
    srv->env = s_env(dir);
    assert_int_equal(pthread_create(&srv->th, NULL, s_serve_thread, srv), 0);
    while (!atomic_load(&srv->ready))
        fy_sleep_ms(10);
    assert_int_equal(srv->st, FERRY_OK);
}

static void
s_server_stop(s_server_t *srv)
{
    atomic_store(&srv->stop, 1);
    pthread_join(srv->th, NULL);
    mdb_env_close(srv->env);
}

static void
test_participant_answers_once(void **state)
{
    fx_t *fx = *state;
    s_server_t srv = {.fn = s_count, .queues = {"svc.commands"}};
    s_server_start(fx, &srv, "svc");
    s_wait_queue(fx->c, "svc.commands");
    assert_string_equal(s_command(fx->c, "a", "do", "x"), "ok ");
    assert_string_equal(s_command(fx->c, "a", "do", "x"), "ok "); /* answered, not run */
    assert_int_equal(s_runs, 1);
    assert_string_equal(s_command(fx->c, "a", "undo", "x"), "ok ");
    assert_string_equal(s_command(fx->c, "a", "undo", "x"), "ok ");
    assert_int_equal(s_runs, 2);
    /* A failed command: its work rolled back, the answer kept. */
    assert_string_equal(s_command(fx->c, "b", "do", "fail"), "fail as asked");
    assert_string_equal(s_command(fx->c, "b", "do", "fail"), "fail as asked");
    assert_int_equal(s_runs, 3);
    assert_string_equal(s_command(fx->c, "b", "undo", "x"), "ok nothing to undo");
    assert_int_equal(s_runs, 3);
    /* The compensation overtakes its command: the command never runs. */
    assert_string_equal(s_command(fx->c, "c", "undo", "x"), "ok nothing to undo");
    assert_string_equal(s_command(fx->c, "c", "do", "x"), "fail cancelled by its compensation");
    assert_int_equal(s_runs, 3);
    /* Not a saga command; a command past its deadline. */
    assert_string_equal(s_command(fx->c, "d", "maybe", "x"), "fail not a saga command");
    ferry_header_t h[] = {{"ferry-saga-id", "e"},
                          {"ferry-saga-def", "t"},
                          {"ferry-saga-step", "s"},
                          {"ferry-saga-action", "do"},
                          {"ferry-saga-expires", "1000"}};
    ferry_message_t m = {.data = "x", .len = 1, .headers = h, .header_count = 5};
    const ferry_stored_message_t *reply;
    assert_int_equal(ferry_client_request(fx->c, "svc.commands", &m, 10000, &reply), FERRY_OK);
    assert_string_equal(ferry_msg_header(reply, "ferry-saga-result"), "fail");
    assert_int_equal(s_runs, 3);
    s_server_stop(&srv);
    assert_int_equal(srv.bad, FERRY_EINVAL);
    assert_int_equal(srv.st, FERRY_OK);
}

static void
test_bad_definitions(void **state)
{
    fx_t *fx = *state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/bad", fx->d.dir);
    MDB_env *env = s_env(dir);
    ferry_saga_orchestrator_t *o = NULL;
    ferry_saga_config_t cfg = {.broker = fx->d.endpoint};
    ferry_saga_step_t dup[] = {{.name = "a", .queue = "q"}, {.name = "a", .queue = "q"}};
    ferry_saga_step_t noq[] = {{.name = "a", .queue = NULL}};
    ferry_saga_step_t bad[] = {{.name = "a b", .queue = "q"}};
    ferry_saga_def_t defs[] = {{.name = "x", .steps = dup, .step_count = 2},
                               {.name = "x", .steps = noq, .step_count = 1},
                               {.name = "x", .steps = bad, .step_count = 1},
                               {.name = "x y", .steps = s_steps, .step_count = 3},
                               {.name = "x", .steps = s_steps, .step_count = 0}};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        assert_int_equal(ferry_saga_orchestrator_new(env, &defs[i], 1, &cfg, &o), FERRY_EINVAL);
    ferry_saga_def_t twice[] = {{.name = "x", .steps = s_steps, .step_count = 3},
                                {.name = "x", .steps = s_steps, .step_count = 3}};
    assert_int_equal(ferry_saga_orchestrator_new(env, twice, 2, &cfg, &o), FERRY_EINVAL);
    assert_int_equal(ferry_saga_orchestrator_new(NULL, twice, 1, &cfg, &o), FERRY_EINVAL);
    assert_null(o);
    ferry_saga_orchestrator_destroy(&o); /* NULL accepted */
    /* A saga whose definition a later build dropped stays where it was,
     * active, looked at again each minute (should the definition return). */
    ferry_saga_step_t slow[] = {{.name = "a", .queue = "nobody.commands", .timeout_ms = 200}};
    ferry_saga_def_t old = {.name = "old", .steps = slow, .step_count = 1};
    ferry_saga_def_t new = {.name = "new", .steps = slow, .step_count = 1};
    assert_int_equal(ferry_saga_orchestrator_new(env, &old, 1, &cfg, &o), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "old", "s-1", "x", 1), FERRY_OK);
    ferry_saga_orchestrator_destroy(&o);
    assert_int_equal(ferry_saga_orchestrator_new(env, &new, 1, &cfg, &o), FERRY_OK);
    assert_int_equal(ferry_saga_active(o), 1);
    for (int i = 0; i < 10; i++) /* its deadline passes: nothing to do with it */
        assert_int_equal(ferry_saga_poll(o, 50), FERRY_OK);
    ferry_saga_status_t st;
    assert_int_equal(ferry_saga_get(o, "s-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_RUNNING);
    assert_string_equal(st.def, "old");
    assert_int_equal(ferry_saga_active(o), 1);
    assert_true(st.deadline_ms > fy_wall_ms() + 50000);
    /* ferry_saga_start_in: inside the caller's write transaction, rolled
     * back with it or committed with it. */
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(ferry_saga_start_in(o, txn, "new", "s-2", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start_in(o, txn, "new", "s-2", "x", 1), FERRY_EEXISTS);
    mdb_txn_abort(txn);
    assert_int_equal(ferry_saga_get(o, "s-2", &st), FERRY_ENOTFOUND);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(ferry_saga_start_in(o, txn, "new", "s-2", "x", 1), FERRY_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(ferry_saga_get(o, "s-2", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_RUNNING);
    assert_int_equal(ferry_saga_active(o), 2);
    assert_int_equal(ferry_saga_start_in(o, NULL, "new", "s-3", "x", 1), FERRY_EINVAL);
    ferry_saga_orchestrator_destroy(&o);
    mdb_env_close(env);
}

/* Definitions with versions: a saga finishes on the version it started
 * with; new ones start on the highest, or the one named; an unknown
 * version is ENOTFOUND, the same version twice EINVAL. Nobody serves the
 * queue: each saga times out at its first step, whose name says the
 * version it ran on. */
static void
test_definition_versions(void **state)
{
    fx_t *fx = *state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/versions", fx->d.dir);
    MDB_env *env = s_env(dir);
    ferry_saga_config_t cfg = {.name = "versions", .broker = fx->d.endpoint};
    ferry_saga_step_t v1[] = {{.name = "first", .queue = "nobody.commands", .timeout_ms = 200}};
    ferry_saga_step_t v2[] = {{.name = "second", .queue = "nobody.commands", .timeout_ms = 200}};
    ferry_saga_def_t old[] = {{.name = "order", .steps = v1, .step_count = 1}};
    ferry_saga_def_t both[] = {{.name = "order", .steps = v1, .step_count = 1},
                               {.name = "order", .steps = v2, .step_count = 1, .version = 2}};
    ferry_saga_def_t twice[] = {{.name = "order", .steps = v1, .step_count = 1, .version = 2},
                                {.name = "order", .steps = v2, .step_count = 1, .version = 2}};
    ferry_saga_orchestrator_t *o = NULL;
    assert_int_equal(ferry_saga_orchestrator_new(env, twice, 2, &cfg, &o), FERRY_EINVAL);
    /* Started on version 1, before version 2 was deployed ... */
    assert_int_equal(ferry_saga_orchestrator_new(env, old, 1, &cfg, &o), FERRY_OK);
    for (int i = 0; i < 2; i++) {
        char id[16];
        snprintf(id, sizeof id, "old-%d", i);
        assert_int_equal(ferry_saga_start(o, "order", id, "x", 1), FERRY_OK);
    }
    ferry_saga_orchestrator_destroy(&o);
    /* ... they finish on it; new ones start on version 2, or 1 if named. */
    assert_int_equal(ferry_saga_orchestrator_new(env, both, 2, &cfg, &o), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "order", "new", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "order@1", "pinned", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "order@2", "named", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "order@3", "nope", "x", 1), FERRY_ENOTFOUND);
    assert_int_equal(ferry_saga_start(o, "invoice", "nope", "x", 1), FERRY_ENOTFOUND);
    long long until = fy_now_ms() + 10000;
    while (ferry_saga_active(o) > 0 && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 50), FERRY_OK);
    static const struct {
        const char *id, *def, *reason;
    } want[] = {{"old-0", "order", "step first timed out"},
                {"old-1", "order", "step first timed out"},
                {"new", "order@2", "step second timed out"},
                {"pinned", "order", "step first timed out"},
                {"named", "order@2", "step second timed out"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ferry_saga_status_t st;
        assert_int_equal(ferry_saga_get(o, want[i].id, &st), FERRY_OK);
        assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
        assert_string_equal(st.def, want[i].def);
        assert_string_equal(st.reason, want[i].reason);
    }
    ferry_saga_orchestrator_destroy(&o);
    mdb_env_close(env);
}

/* ---- step results -------------------------------------------------------------- */

static atomic_int s_results_bad; /* a command without the results it should carry */

/* Step a gives "A-<saga>" (saga "bin-*": bytes that are not text; saga
 * "late-*" answers after its deadline), step b gives "B" or fails for saga
 * "fail-*"; every later command and a's compensation must carry a's
 * result (a late one's compensation: from the participant's record). */
static bool
s_resulting(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    (void)txn, (void)user;
    bool bin = strncmp(cmd->saga_id, "bin", 3) == 0;
    char want[64];
    snprintf(want, sizeof want, bin ? "\\xff\\x01ok" : "A-%s", cmd->saga_id);
    const char *a = ferry_saga_command_result(cmd, "a");
    if (strcmp(cmd->step, "a") == 0 && !cmd->undo) {
        if (a || cmd->result_cap != FERRY_SAGA_RESULT_MAX + 1 || cmd->result[0])
            atomic_fetch_add(&s_results_bad, 1);
        if (strncmp(cmd->saga_id, "late", 4) == 0)
            fy_sleep_ms(1500); /* past the step's deadline: the saga compensates */
        snprintf(cmd->result, cmd->result_cap, bin ? "\xff\x01ok" : "A-%s", cmd->saga_id);
        return true;
    }
    if (!a || strcmp(a, want) != 0 || ferry_saga_command_result(cmd, "b"))
        atomic_fetch_add(&s_results_bad, 1);
    if (strcmp(cmd->step, "b") == 0 && strncmp(cmd->saga_id, "fail", 4) == 0) {
        snprintf(reason, cap, "no");
        return false;
    }
    if (!cmd->undo)
        snprintf(cmd->result, cmd->result_cap, "B");
    return true;
}

/* Step results on LMDB: what a step gives is kept with the saga (also
 * across a restart of the orchestrator), carried by the later commands and
 * by the step's compensation; bytes that are not text arrive escaped. */
static void
test_step_results(void **state)
{
    fx_t *fx = *state;
    char dir[400];
    s_server_t srv = {.fn = s_resulting, .queues = {"res.a", "res.b"}};
    s_server_start(fx, &srv, "resulter");
    snprintf(dir, sizeof dir, "%s/results", fx->d.dir);
    MDB_env *env = s_env(dir);
    ferry_saga_step_t steps[] = {{.name = "a", .queue = "res.a", .compensable = true},
                                 {.name = "b", .queue = "res.b"}};
    ferry_saga_step_t quick[] = {
        {.name = "a", .queue = "res.a", .compensable = true, .timeout_ms = 500},
        {.name = "b", .queue = "res.b"}};
    ferry_saga_def_t def[] = {{.name = "res", .steps = steps, .step_count = 2},
                              {.name = "quick", .steps = quick, .step_count = 2}};
    ferry_saga_config_t cfg = {.name = "results", .broker = fx->d.endpoint};
    ferry_saga_orchestrator_t *o = NULL;
    assert_int_equal(ferry_saga_orchestrator_new(env, def, 2, &cfg, &o), FERRY_OK);
    static const char *const ids[] = {"ok-1", "fail-1", "bin-1"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ferry_saga_start(o, "res", ids[i], "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "quick", "late-1", "x", 1), FERRY_OK);
    long long until = fy_now_ms() + 20000;
    while (ferry_saga_active(o) > 0 && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 20), FERRY_OK);
    assert_int_equal(ferry_saga_active(o), 0);
    ferry_saga_orchestrator_destroy(&o); /* kept in the environment */
    assert_int_equal(ferry_saga_orchestrator_new(env, def, 2, &cfg, &o), FERRY_OK);
    char got[64];
    ferry_saga_status_t st;
    assert_int_equal(ferry_saga_get(o, "ok-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_DONE);
    assert_int_equal(ferry_saga_result(o, "ok-1", "a", got, sizeof got), FERRY_OK);
    assert_string_equal(got, "A-ok-1");
    assert_int_equal(ferry_saga_result(o, "ok-1", "b", got, sizeof got), FERRY_OK);
    assert_string_equal(got, "B");
    assert_int_equal(ferry_saga_get(o, "fail-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
    assert_int_equal(ferry_saga_result(o, "fail-1", "a", got, sizeof got), FERRY_OK);
    assert_string_equal(got, "A-fail-1");
    assert_int_equal(ferry_saga_result(o, "fail-1", "b", got, sizeof got), FERRY_ENOTFOUND);
    assert_string_equal(got, "");
    assert_int_equal(ferry_saga_result(o, "bin-1", "a", got, sizeof got), FERRY_OK);
    assert_string_equal(got, "\\xff\\x01ok");
    assert_int_equal(ferry_saga_result(o, "bin-1", "a", got, 3), FERRY_OK); /* cut */
    assert_string_equal(got, "\\x");
    assert_int_equal(ferry_saga_result(o, "none", "a", got, sizeof got), FERRY_ENOTFOUND);
    /* Its answer came too late: the saga never kept a's result, yet the
     * compensation had it (s_results_bad stays 0). */
    assert_int_equal(ferry_saga_get(o, "late-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
    assert_string_equal(st.reason, "step a timed out");
    assert_int_equal(ferry_saga_result(o, "late-1", "a", got, sizeof got), FERRY_ENOTFOUND);
    assert_int_equal(ferry_saga_result(o, "ok-1", "a", got, 0), FERRY_EINVAL);
    assert_int_equal(atomic_load(&s_results_bad), 0);
    ferry_saga_orchestrator_destroy(&o);
    s_server_stop(&srv);
    mdb_env_close(env);
}

/* A command its participant cannot serve yet (cmd->later): saga "wait-*"
 * has step a's first delivery given back, then served; saga "gone-*" has
 * every delivery given back, so each attempt times out and the saga
 * compensates without a's work ever running. */
static atomic_int s_later_runs, s_later_given_back;

static bool
s_later(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    (void)txn, (void)user;
    if (!cmd->undo && (cmd->msg->delivery_count == 1 || cmd->saga_id[0] == 'g')) {
        atomic_fetch_add(&s_later_given_back, 1);
        snprintf(reason, cap, "warehouse offline");
        return !(*cmd->later = true);
    }
    atomic_fetch_add(&s_later_runs, 1);
    return true;
}

static void
test_command_served_later(void **state)
{
    fx_t *fx = *state;
    char dir[400];
    s_server_t srv = {.fn = s_later, .queues = {"later.a"}};
    s_server_start(fx, &srv, "later");
    snprintf(dir, sizeof dir, "%s/later-orch", fx->d.dir);
    MDB_env *env = s_env(dir);
    ferry_saga_step_t slow[] = {{.name = "a", .queue = "later.a", .compensable = true}};
    ferry_saga_step_t quick[] = {{.name = "a",
                                  .queue = "later.a",
                                  .compensable = true,
                                  .timeout_ms = 400,
                                  .max_attempts = 2,
                                  .retry_delay_ms = 50}};
    ferry_saga_def_t def[] = {{.name = "slow", .steps = slow, .step_count = 1},
                              {.name = "quick", .steps = quick, .step_count = 1}};
    ferry_saga_config_t cfg = {.name = "later", .broker = fx->d.endpoint};
    ferry_saga_orchestrator_t *o = NULL;
    assert_int_equal(ferry_saga_orchestrator_new(env, def, 2, &cfg, &o), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "slow", "wait-1", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "quick", "gone-1", "x", 1), FERRY_OK);
    long long until = fy_now_ms() + 20000;
    while (ferry_saga_active(o) > 0 && fy_now_ms() < until)
        assert_int_equal(ferry_saga_poll(o, 20), FERRY_OK);
    ferry_saga_status_t st;
    assert_int_equal(ferry_saga_get(o, "wait-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_DONE);
    assert_int_equal(ferry_saga_get(o, "gone-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
    assert_string_equal(st.reason, "step a timed out");
    assert_int_equal(st.attempt, 1); /* its compensation: "nothing to undo" at once */
    /* wait-1 ran once; gone-1 never; every attempt of gone-1 delivered
     * before its deadline was given back (at least its first delivery of
     * each of the 2 attempts), those after it refused without a call. */
    assert_int_equal(atomic_load(&s_later_runs), 1);
    assert_true(atomic_load(&s_later_given_back) >= 3);
    ferry_saga_orchestrator_destroy(&o);
    s_server_stop(&srv);
    mdb_env_close(env);
}

/* ---- choreography ------------------------------------------------------------ */

/* The value of @p key in database "state" of @p dir, or "" */
static void
s_state(MDB_txn *txn, MDB_dbi dbi, const char *key, char *out, size_t cap)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    out[0] = '\0';
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size < cap) {
        memcpy(out, v.mv_data, v.mv_size);
        out[v.mv_size] = '\0';
    }
}

static MDB_env *
s_open_state(const char *dir, MDB_txn **txn, MDB_dbi *dbi)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, "state", 0, dbi), 0);
    return env;
}

static void
test_choreography_services_killed(void **state)
{
    fx_t *fx = *state;
    char orders[400], stock[400], log[400], bin[400], out[400];
    snprintf(orders, sizeof orders, "%s/orders", fx->d.dir);
    snprintf(stock, sizeof stock, "%s/stock", fx->d.dir);
    snprintf(log, sizeof log, "%s/chor.log", fx->d.dir);
    snprintf(out, sizeof out, "%s/orders.out", fx->d.dir);
    snprintf(bin, sizeof bin, "%s/%s/examples/choreography", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"));
    const char *sargs[] = {bin, "stock", stock, fx->d.endpoint, NULL};
    const char *o300[] = {bin, "orders", orders, "300", fx->d.endpoint, NULL};
    const char *o1000[] = {bin, "orders", orders, "1000", fx->d.endpoint, NULL};
    /* 1. The stock service killed five times while 300 orders go through. */
    pid_t st = fy_spawn(log, sargs);
    pid_t ord = fy_spawn(out, o300);
    unsigned seed = (unsigned)time(NULL) ^ 0x1234;
    for (int k = 0; k < 5; k++) {
        fy_sleep_ms(30 + (int)(rand_r(&seed) % 120));
        assert_true(WIFSIGNALED(fy_kill_wait(st, SIGKILL)));
        st = fy_spawn(log, sargs);
    }
    int status;
    waitpid(ord, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* 2. The order service killed five times while 700 more are placed. */
    int kills = 0;
    status = fy_run_killing(out, o1000, 5, 20, 60, &kills);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(kills, 5);
    assert_true(WIFEXITED(fy_kill_wait(st, SIGTERM)));
    /* Consistent: an order is confirmed exactly when stock reserved it, the
     * stock left is what was not reserved, each event handled once on each
     * side. (Which orders get stock depends on the order stock saw them in,
     * and a crash lets later events overtake the ones it held.) */
    MDB_txn *ot, *stt;
    MDB_dbi od, sd;
    MDB_env *oe = s_open_state(orders, &ot, &od), *se = s_open_state(stock, &stt, &sd);
    char val[32], decision[32];
    long confirmed = 0, reserved_qty = 0;
    for (long i = 0; i < 1000; i++) {
        char id[32], key[64];
        snprintf(id, sizeof id, "order-%ld", i);
        snprintf(key, sizeof key, "decision:%s", id);
        s_state(stt, sd, key, decision, sizeof decision);
        s_state(ot, od, id, val, sizeof val);
        bool reserved = strcmp(decision, "reserved") == 0;
        assert_true(reserved || strcmp(decision, "rejected") == 0);
        assert_string_equal(val, reserved ? "confirmed" : "cancelled");
        confirmed += reserved;
        reserved_qty += reserved ? i % 7 + 1 : 0;
        snprintf(key, sizeof key, "handled:%s", id);
        s_state(ot, od, key, val, sizeof val);
        assert_string_equal(val, "1");
        s_state(stt, sd, key, val, sizeof val);
        assert_string_equal(val, "1");
    }
    s_state(stt, sd, "available", val, sizeof val);
    assert_int_equal(strtol(val, NULL, 10), 1000 - reserved_qty);
    assert_true(confirmed > 0 && confirmed < 1000); /* stock ran out on the way */
    mdb_txn_abort(ot);
    mdb_txn_abort(stt);
    mdb_env_close(oe);
    mdb_env_close(se);
    char cmd[600], summary[64], want_line[64];
    snprintf(cmd, sizeof cmd, "tail -1 '%s'", out);
    fy_run(cmd, summary, sizeof summary);
    snprintf(want_line, sizeof want_line, "confirmed %ld cancelled %ld\n", confirmed,
             1000 - confirmed);
    assert_string_equal(summary, want_line);
}

/* The inbox API on its own: once per message id (or sequence), refusals
 * roll back, pruning forgets. */
static int s_inbox_runs;

static int
s_inbox_work(MDB_txn *txn, const ferry_stored_message_t *m, void *user)
{
    (void)txn, (void)user;
    s_inbox_runs++;
    return m->len == 2 && memcmp(m->data, "no", 2) == 0 ? 7 : 0;
}

static void
test_inbox_handles_once(void **state)
{
    fx_t *fx = *state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/inbox", fx->d.dir);
    MDB_env *env = s_env(dir);
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(ferry_inbox_open(txn, &dbi), FERRY_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    ferry_stored_message_t a = {.topic = "t", .seq = 1, .id = "svc:1", .data = "ok", .len = 2};
    ferry_stored_message_t again = a;
    again.seq = 9; /* the same message republished: a new sequence, the same id */
    ferry_stored_message_t noid = {.topic = "t", .seq = 2, .data = "ok", .len = 2};
    ferry_stored_message_t other = {.topic = "u", .seq = 2, .data = "ok", .len = 2};
    ferry_stored_message_t refuse = {.topic = "t", .seq = 3, .data = "no", .len = 2};
    int rc;
    assert_int_equal(ferry_inbox_handle(env, dbi, &a, s_inbox_work, NULL, &rc), FERRY_OK);
    assert_int_equal(ferry_inbox_handle(env, dbi, &again, s_inbox_work, NULL, &rc), FERRY_EEXISTS);
    assert_int_equal(ferry_inbox_handle(env, dbi, &noid, s_inbox_work, NULL, &rc), FERRY_OK);
    assert_int_equal(ferry_inbox_handle(env, dbi, &noid, s_inbox_work, NULL, &rc), FERRY_EEXISTS);
    assert_int_equal(ferry_inbox_handle(env, dbi, &other, s_inbox_work, NULL, &rc), FERRY_OK);
    assert_int_equal(s_inbox_runs, 3);
    assert_int_equal(ferry_inbox_handle(env, dbi, &refuse, s_inbox_work, NULL, &rc),
                     FERRY_ECANCELLED);
    assert_int_equal(rc, 7);
    assert_int_equal(ferry_inbox_handle(env, dbi, &refuse, s_inbox_work, NULL, &rc),
                     FERRY_ECANCELLED); /* not recorded: it runs again */
    assert_int_equal(s_inbox_runs, 5);
    assert_int_equal(ferry_inbox_handle(env, dbi, NULL, s_inbox_work, NULL, &rc), FERRY_EINVAL);
    size_t removed;
    assert_int_equal(ferry_inbox_prune(env, dbi, fy_wall_ms() - 60000, &removed), FERRY_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(ferry_inbox_prune(env, dbi, fy_wall_ms() + 1, &removed), FERRY_OK);
    assert_int_equal(removed, 3);
    assert_int_equal(ferry_inbox_handle(env, dbi, &a, s_inbox_work, NULL, &rc), FERRY_OK);
    mdb_env_close(env);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_orders_done_or_compensated, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_step_timeout_compensates_and_late_command_is_refused,
                                        fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_orchestrator_killed, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_broker_fails_under_sagas, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_participant_answers_once, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_definition_versions, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_step_results, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_command_served_later, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_definitions, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_choreography_services_killed, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_inbox_handles_once, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
