/* SPDX-License-Identifier: MIT */
/*
 * test_saga_disk_full.c - sagas on a full disk (issue 15): the
 * orchestrator's and the participants' LMDB environments
 * (examples/order_saga.c) on one real 16 MiB tmpfs, filled to the last
 * block while 1,000 sagas run, and freed again a second after the
 * participants said they met it. While it is full the participants give
 * commands back for later (FERRY_MSG_NACK_LATER, logged at warn with
 * ESTORAGE_FULL) rather than answer without a record, the orchestrator
 * says so (ESTORAGE_FULL) when it has something to record and keeps
 * polling; nobody exits. Once space is back every saga
 * ends as it would have without the full disk (750 done, 250 compensated),
 * and each command's work and each compensation ran once.
 *
 * And the inbox: ferry_inbox_handle on the full disk returns ESTORAGE_FULL
 * and records nothing; with space the message is handled once.
 *
 * It mounts the tmpfs, so it runs as root (CI does).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <lmdb.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry_outbox.h"
#include "harness.h"
#include "shopcheck.h"

typedef fy_fx_tmpfs_t s_fx_t;

static int
s_setup(void **state)
{
    return fy_fx_tmpfs_setup(state, "16m");
}

static int
s_teardown(void **state)
{
    return fy_fx_tmpfs_teardown(state);
}

static int
s_saga(const char *log, const char *const *args)
{
    char bin[400];
    snprintf(bin, sizeof bin, "%s/%s/examples/order_saga", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"));
    const char *argv[8] = {bin};
    for (int i = 0; args[i] && i < 6; i++)
        argv[i + 1] = args[i];
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    return pid;
}

static uint64_t
s_last_seq(ferry_client_t *c, const char *topic)
{
    ferry_topic_info_t info = {0};
    return ferry_client_info(c, topic, &info) == FERRY_OK ? info.last_seq : 0;
}

static void
test_sagas_on_a_full_disk(void **state)
{
    s_fx_t *fx = *state;
    char shop[300], orch[300], filler[300], plog[300], out[300], cmd[1200], text[256];
    snprintf(shop, sizeof shop, "%s/shop", fx->mnt);
    snprintf(orch, sizeof orch, "%s/orch", fx->mnt);
    snprintf(filler, sizeof filler, "%s/filler", fx->mnt);
    snprintf(plog, sizeof plog, "%s.participants.log", fx->mnt); /* beside the tmpfs */
    snprintf(out, sizeof out, "%s.orchestrator.out", fx->mnt);
    const char *pargs[] = {"participants", shop, fx->fx->d.endpoint, NULL};
    const char *oargs[] = {"orchestrate", orch, "1000", fx->fx->d.endpoint, NULL};
    int parts = s_saga(plog, pargs);
    int orc = s_saga(out, oargs);
    /* The first sagas are under way while the orchestrator still starts
     * the others (each start is a commit of its own). */
    long long until = fy_now_ms() + 30000;
    while (s_last_seq(fx->fx->c, "stock.commands") < 20 && fy_now_ms() < until)
        fy_sleep_ms(1);
    assert_true(s_last_seq(fx->fx->c, "stock.commands") >= 20);
    snprintf(cmd, sizeof cmd,
             "(dd if=/dev/zero of='%s' bs=4k 2>/dev/null; true) && df --output=avail -B1 '%s' | "
             "tail -1",
             filler, fx->mnt);
    assert_int_equal(fy_run(cmd, text, sizeof text), 0);
    assert_true(atol(text) < 8192);
    /* Full until the participants met it and said so (each command they
     * serve is a commit), and 1 s more. */
    snprintf(cmd, sizeof cmd, "grep -c 'cannot record.*the disk is full (ESTORAGE_FULL)' '%s'",
             plog);
    until = fy_now_ms() + 10000;
    while (fy_now_ms() < until && (fy_run(cmd, text, sizeof text), atoi(text) == 0))
        fy_sleep_ms(20);
    assert_true(atoi(text) >= 1);
    fy_sleep_ms(1000);
    int st;
    assert_int_equal(waitpid(parts, &st, WNOHANG), 0); /* nobody gave up */
    bool orc_done = waitpid(orc, &st, WNOHANG) == orc;
    assert_int_equal(unlink(filler), 0);
    if (!orc_done) {
        st = -1;
        until = fy_now_ms() + 90000;
        while (fy_now_ms() < until && waitpid(orc, &st, WNOHANG) == 0)
            fy_sleep_ms(20);
    }
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(cmd, sizeof cmd, "grep -v 'connection to' '%s' | tail -5 >&2", out);
        fy_run(cmd, text, sizeof text);
        fail_msg("orchestrator: status 0x%x (%s)", st, out);
    }
    assert_true(WIFEXITED(fy_kill_wait(parts, SIGTERM)));
    /* Who met the full disk said so (the orchestrator meets it only if it
     * had replies to apply meanwhile). */
    snprintf(cmd, sizeof cmd, "grep -c 'cannot record' '%s'", plog);
    fy_run(cmd, text, sizeof text);
    int given_back = atoi(text);
    snprintf(cmd, sizeof cmd, "grep -c 'the disk is full (ESTORAGE_FULL)' '%s'", out);
    fy_run(cmd, text, sizeof text);
    int said = atoi(text);
    snprintf(cmd, sizeof cmd, "grep '^done' '%s' | tail -1", out);
    fy_run(cmd, text, sizeof text);
    printf("sagas on a full disk: %d 'given back for later' lines from the participants, the "
           "orchestrator said so %d times; %s",
           given_back, said, text);
    assert_non_null(strstr(text, "done 750 compensated 250"));
    char why[256];
    long done = fy_shop_check(shop, 1000, true, why, sizeof why);
    if (done < 0)
        fail_msg("%s", why);
    assert_int_equal(done, 750);
}

/* The inbox on the full disk: ferry_inbox_handle says ESTORAGE_FULL and
 * records nothing (the reaction's writes roll back with it); with space
 * the same message is handled once. */
static int s_reactions;

static int
s_react(MDB_txn *txn, const ferry_stored_message_t *m, void *user)
{
    (void)user;
    s_reactions++;
    MDB_dbi dbi;
    static char big[64 * 1024]; /* a write that needs fresh pages */
    MDB_val k = {strlen(m->id), (void *)m->id}, v = {sizeof big, big};
    if (mdb_dbi_open(txn, "state", MDB_CREATE, &dbi) || mdb_put(txn, dbi, &k, &v, 0))
        return 1;
    return 0;
}

static void
test_inbox_on_a_full_disk(void **state)
{
    s_fx_t *fx = *state;
    char dir[300], filler[300], cmd[800], text[64];
    snprintf(dir, sizeof dir, "%s/svc", fx->mnt);
    snprintf(filler, sizeof filler, "%s/filler", fx->mnt);
    assert_int_equal(mkdir(dir, 0755), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi inbox;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 30), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(ferry_inbox_open(txn, &inbox), FERRY_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    snprintf(cmd, sizeof cmd, "dd if=/dev/zero of='%s' bs=4k 2>/dev/null; true", filler);
    assert_int_equal(fy_run(cmd, text, sizeof text), 0);
    ferry_stored_message_t m = {.topic = "orders", .seq = 1, .id = "svc:1", .data = "x", .len = 1};
    int rc = 0;
    assert_int_equal(ferry_inbox_handle(env, inbox, &m, s_react, NULL, &rc), FERRY_ESTORAGE_FULL);
    assert_int_equal(s_reactions, 1);
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(ferry_inbox_handle(env, inbox, &m, s_react, NULL, &rc), FERRY_OK);
    assert_int_equal(ferry_inbox_handle(env, inbox, &m, s_react, NULL, &rc), FERRY_EEXISTS);
    assert_int_equal(s_reactions, 2); /* the first run was rolled back, the second kept */
    mdb_env_close(env);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sagas_on_a_full_disk, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_inbox_on_a_full_disk, s_setup, s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("saga_disk_full", tests, NULL, NULL);
}
