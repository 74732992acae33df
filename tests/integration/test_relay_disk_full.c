/* SPDX-License-Identifier: MIT */
/*
 * test_relay_disk_full.c - ferry-relay on a full file system (issue 15): a
 * service's SQLite outbox on a real 8 MiB tmpfs, filled to the last block.
 * Under a running relay, the rows committed before it filled are published
 * (reading needs no space) but the position cannot be recorded: the relay
 * says so at warn (ESTORAGE_FULL, the free space), keeps going, publishes
 * nothing twice and loses nothing, and records the position once space is
 * freed, without a restart. Started on a full disk, the relay cannot open
 * the database (SQLite needs room for its shared memory): it says so and
 * waits, and with space it opens and publishes every row once.
 *
 * The same for the LMDB source: the service's environment on the full
 * disk, the position refused with ESTORAGE_FULL (said at warn) until space
 * comes back, then recorded; every row published once.
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
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lmdb.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry_outbox.h"
#include "harness.h"
#include "relayfx.h"

typedef fy_fx_tmpfs_t s_fx_t;

static int
s_setup(void **state)
{
    return fy_fx_tmpfs_setup(state, "8m");
}

static int
s_teardown(void **state)
{
    return fy_fx_tmpfs_teardown(state);
}

static int
s_position(const char *db)
{
    char cmd[600], out[64] = "";
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"SELECT COALESCE(MAX(last_id), 0) FROM ferry_relay_position\"", db);
    return fy_run(cmd, out, sizeof out) == 0 ? atoi(out) : -1;
}

/* The service inserts rows @p from .. @p to into its outbox. */
static void
s_insert(const char *db, int from, int to)
{
    char cmd[1200], out[64];
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
             "WHERE i < %d) INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
             "SELECT 'orders', 'o-' || (i %% 10), 'placed', CAST('row-' || i AS BLOB) FROM n\"",
             db, from, to);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
}

/* Fills the file system with @p filler, to the last block. */
static void
s_fill(const char *filler, const char *mnt)
{
    char cmd[800], out[64];
    snprintf(cmd, sizeof cmd,
             "(dd if=/dev/zero of='%s' bs=64k 2>/dev/null; true) && df --output=avail -B1 '%s' | "
             "tail -1",
             filler, mnt);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_true(atol(out) < 65536);
}

/* Waits (up to 20 s) for a line of @p log with @p needle; returns it. */
static void
s_wait_line(const char *log, const char *needle, char *out, size_t cap)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "for i in $(seq 400); do grep -q '%s' '%s' && break; sleep 0.05; done; grep '%s' "
             "'%s' | head -1",
             needle, log, needle, log);
    assert_int_equal(fy_run(cmd, out, cap), 0);
    if (!strstr(out, "level="))
        fail_msg("no line '%s' in %s", needle, log);
}

static uint64_t
s_count(s_fx_t *fx)
{
    ferry_topic_info_t info = {0};
    return ferry_client_info(fx->fx->c, "orders", &info) == FERRY_OK ? info.messages : 0;
}

static int
s_relay(s_fx_t *fx, const char *db, const char *log)
{
    char source[400];
    snprintf(source, sizeof source, "sqlite:%s", db);
    /* Idle reads 2 s apart: rows written just before the disk fills are
     * read after it is full. */
    const char *argv[] = {
        getenv("FERRY_RELAY"), "--source", source, "--broker", fx->fx->d.endpoint, "--name", "full",
        "--poll-ms",           "2000",     NULL};
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    return pid;
}

static void
test_relay_on_a_full_disk(void **state)
{
    s_fx_t *fx = *state;
    enum { ROWS = 2000 };
    char db[300], filler[300], log[300], cmd[1200], out[512];
    snprintf(db, sizeof db, "%s/app.db", fx->mnt);
    snprintf(filler, sizeof filler, "%s/filler", fx->mnt);
    snprintf(log, sizeof log, "%s.relay.log", fx->mnt); /* beside the tmpfs, not on it */
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null && '%s' --setup "
             "--source 'sqlite:%s' --name full >/dev/null",
             db, getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".", getenv("FERRY_RELAY"), db);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);

    /* 1. The disk fills under a running relay: rows committed just before
     * are published, the position cannot be recorded, and it says why. */
    int pid = s_relay(fx, db, log);
    s_wait_line(log, "msg=\"relay started\"", out, sizeof out);
    s_insert(db, 1, ROWS);
    s_fill(filler, fx->mnt);
    long long until = fy_now_ms() + 20000;
    while (s_count(fx) < ROWS && fy_now_ms() < until)
        fy_sleep_ms(10);
    assert_int_equal(s_count(fx), ROWS);
    s_wait_line(log, "msg=\"cannot record the position\"", out, sizeof out);
    assert_non_null(strstr(out, "level=warn"));
    assert_non_null(strstr(out, "code=ESTORAGE_FULL"));
    assert_non_null(strstr(out, "the disk is full"));
    assert_int_equal(s_position(db), 0);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
    /* Space again: the position is recorded, without a restart. */
    assert_int_equal(unlink(filler), 0);
    until = fy_now_ms() + 20000;
    while (s_position(db) != ROWS && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(s_position(db), ROWS);
    assert_int_equal(s_count(fx), ROWS); /* nothing twice */
    fy_kill_wait(pid, SIGTERM);

    /* 2. The relay starts on a full disk: it cannot open the database
     * (SQLite needs room for its shared memory), says so and waits; with
     * space it opens and publishes every row once. */
    s_insert(db, ROWS + 1, 2 * ROWS);
    s_fill(filler, fx->mnt);
    pid = s_relay(fx, db, log);
    s_wait_line(log, "msg=\"cannot open the source, waiting\"", out, sizeof out);
    assert_non_null(strstr(out, "code=ESTORAGE_FULL"));
    fy_sleep_ms(200);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* waiting, not gone */
    assert_int_equal(s_count(fx), ROWS);
    assert_int_equal(unlink(filler), 0);
    until = fy_now_ms() + 40000;
    while (s_position(db) != 2 * ROWS && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(s_position(db), 2 * ROWS);
    assert_int_equal(s_count(fx), 2 * ROWS);
    fy_kill_wait(pid, SIGTERM);
    snprintf(cmd, sizeof cmd, "grep -c 'cannot record the position' '%s'", log);
    fy_run(cmd, out, sizeof out);
    printf("relay on a full disk: %d rows, each published once; %d warn lines while full\n",
           2 * ROWS, atoi(out));
}

/* The LMDB source on a full disk: the service's environment on the tmpfs,
 * rows committed, then the disk filled to the last block. The relay
 * (started on the full disk) publishes every row once - a position record
 * that needs a page the disk does not have is refused with ESTORAGE_FULL,
 * said at warn, and tried again - and once space is freed the position
 * reaches the last row, without a restart and without publishing twice. */
static void
s_lmdb_rows(const char *dir, int from, int to)
{
    assert_int_equal(fy_outbox_lmdb_rows(dir, from, to, 64u << 20), 0);
}

static uint64_t
s_lmdb_position(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t at = 0;
    if (mdb_env_create(&env) != 0)
        return 0;
    mdb_env_set_maxdbs(env, 8);
    if (mdb_env_open(env, dir, MDB_RDONLY, 0644) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        MDB_val k = {4, "full"}, v;
        if (mdb_dbi_open(txn, FERRY_OUTBOX_POS_DB, 0, &dbi) == 0 &&
            mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size >= 8)
            for (int i = 0; i < 8; i++)
                at = at << 8 | ((const uint8_t *)v.mv_data)[i];
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return at;
}

static void
test_lmdb_relay_on_a_full_disk(void **state)
{
    s_fx_t *fx = *state;
    enum { ROWS = 2000 };
    char dir[300], filler[300], log[300], cmd[1200], out[512], source[320];
    snprintf(dir, sizeof dir, "%s/env", fx->mnt);
    snprintf(filler, sizeof filler, "%s/filler", fx->mnt);
    snprintf(log, sizeof log, "%s.lmdb-relay.log", fx->mnt);
    snprintf(source, sizeof source, "lmdb:%s", dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    s_lmdb_rows(dir, 1, ROWS);
    snprintf(cmd, sizeof cmd, "'%s' --setup --source '%s' --name full >/dev/null",
             getenv("FERRY_RELAY"), source);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    s_fill(filler, fx->mnt);
    const char *argv[] = {
        getenv("FERRY_RELAY"), "--source", source, "--broker", fx->fx->d.endpoint, "--name", "full",
        "--poll-ms",           "200",      NULL};
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    long long until = fy_now_ms() + 20000;
    while (s_count(fx) < ROWS && fy_now_ms() < until)
        fy_sleep_ms(10);
    assert_int_equal(s_count(fx), ROWS);
    fy_sleep_ms(500); /* a few position records tried on the full disk */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
    uint64_t while_full = s_lmdb_position(dir);
    snprintf(cmd, sizeof cmd, "grep 'cannot record the position' '%s' | head -1", log);
    fy_run(cmd, out, sizeof out);
    /* A fresh environment has no free pages to reuse: the record is refused
     * for want of a page, and said clearly. */
    assert_non_null(strstr(out, "level=warn"));
    assert_non_null(strstr(out, "code=ESTORAGE_FULL"));
    assert_non_null(strstr(out, "the disk is full"));
    assert_int_equal(while_full, 0);
    assert_int_equal(unlink(filler), 0);
    until = fy_now_ms() + 20000;
    while (s_lmdb_position(dir) != ROWS && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(s_lmdb_position(dir), ROWS);
    assert_int_equal(s_count(fx), ROWS); /* nothing twice */
    assert_true(WIFEXITED(fy_kill_wait(pid, SIGTERM)));
    printf("lmdb relay on a full disk: %d rows once; the position refused with ESTORAGE_FULL "
           "while full, recorded once space came back\n",
           ROWS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_on_a_full_disk, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lmdb_relay_on_a_full_disk, s_setup, s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay_disk_full", tests, NULL, NULL);
}
