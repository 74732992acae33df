/* SPDX-License-Identifier: MIT */
/*
 * test_sql_sagas.c - sagas kept in the service's PostgreSQL or SQLite
 * database (ferry_sql.h), with a real ferryd, a real ferry-relay publishing
 * the commands from the outbox table, and participants whose answers and
 * work are in their own database of the same kind (two participant
 * processes on PostgreSQL):
 *
 * - sagas start inside the application's own transaction: those rolled
 *   back leave no saga, no command and no business row; those committed
 *   run to DONE, or to COMPENSATED when a step fails or times out (a step
 *   nobody serves: the deadline, found through the table's index, fires);
 * - every participant's work and compensation happens once;
 * - step results: what reserve and charge give is kept with the saga
 *   (ferry_saga_result, the table's `results` JSON), carried by every later
 *   command and by the step's own compensation, and published with the
 *   transition;
 * - PostgreSQL: two orchestrators share the database (and the reply
 *   subscription): no command is written twice;
 * - failing well: retries, FAILED, a person's cancel and resume, by the
 *   API and by `ferry saga`, each counted in ferry_saga_stats;
 * - a saga started twice is FERRY_EEXISTS; a start on an orchestrator of the
 *   other kind is FERRY_EINVAL.
 */
#include <libpq-fe.h>
#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry_saga.h"
#include "ferry_sql.h"
#include "harness.h"
#include "pgserver.h"
#include "relayfx.h"

#define S_SAGAS 60 /* every 5th rolled back, every 4th "poor", every 7th "lost" */

static const ferry_saga_step_t s_shop[] = {
    {.name = "reserve", .queue = "shop.reserve", .compensable = true, .timeout_ms = 20000},
    {.name = "charge", .queue = "shop.charge", .compensable = true, .timeout_ms = 20000},
    {.name = "ship", .queue = "shop.ship", .timeout_ms = 20000}};
/* A step nobody serves: it times out after 400 ms, and reserve is undone. */
static const ferry_saga_step_t s_lost[] = {
    {.name = "reserve", .queue = "shop.reserve", .compensable = true, .timeout_ms = 20000},
    {.name = "wait", .queue = "shop.nobody", .timeout_ms = 400}};
static const ferry_saga_def_t s_defs[] = {{.name = "shop", .steps = s_shop, .step_count = 3},
                                          {.name = "lost", .steps = s_lost, .step_count = 2}};

/* The participants: one thread, one client, and where their answers and
 * work go: an LMDB environment (dir), a PostgreSQL database (conninfo) or
 * a SQLite file (sqlite). Work is a row of table work (key: step, action,
 * saga), inserted ON CONFLICT DO NOTHING: a second run of the same work is
 * counted, not an error. */
typedef struct {
    const char *endpoint;
    char dir[300];
    const char *conninfo, *sqlite;
    atomic_int stop, ready;
    atomic_long *works, *twice;
    atomic_long *bad_results; /* a command without the results it should carry */
    atomic_int fixed;         /* the stock service is back (resume test) */
    atomic_int tries[16];     /* charge attempts of saga "flaky-N" */
    ferry_status_t st;
} s_parts_t;

/* Whether @p cmd fails, with its reason: a poor customer's charge; the
 * charge of "flaky-N" fails for now twice (gateway busy); the charge of
 * "stuck" fails and so does its reserve's undo until the stock service is
 * fixed. */
static bool
s_declined(s_parts_t *p, const ferry_saga_command_t *cmd, char *reason, size_t cap)
{
    bool charge = strcmp(cmd->step, "charge") == 0, reserve = strcmp(cmd->step, "reserve") == 0;
    char data[32] = "";
    snprintf(data, sizeof data, "%.*s", (int)(cmd->len < 31 ? cmd->len : 31),
             (const char *)cmd->data);
    if (!cmd->undo && charge && strcmp(data, "poor") == 0) {
        snprintf(reason, cap, "insufficient funds");
        return true;
    }
    if (!cmd->undo && charge && strncmp(data, "flaky-", 6) == 0 &&
        ++p->tries[atoi(data + 6) % 16] <= 2) {
        *cmd->retry = true;
        snprintf(reason, cap, "gateway busy");
        return true;
    }
    if (!cmd->undo && charge && strcmp(data, "stuck") == 0) {
        snprintf(reason, cap, "card declined");
        return true;
    }
    if (cmd->undo && reserve && strcmp(data, "stuck") == 0 && !p->fixed) {
        snprintf(reason, cap, "stock service down");
        return true;
    }
    return false;
}

/* Step results: reserve gives "res-<saga>", charge "pay-<saga>"; a command
 * carries the results of the steps before it, a compensation its own
 * step's; anything else is counted as bad. */
static void
s_results(s_parts_t *p, const ferry_saga_command_t *cmd)
{
    char want[300];
    const char *res = ferry_saga_command_result(cmd, "reserve");
    const char *pay = ferry_saga_command_result(cmd, "charge");
    bool reserve = strcmp(cmd->step, "reserve") == 0, charge = strcmp(cmd->step, "charge") == 0;
    snprintf(want, sizeof want, "res-%s", cmd->saga_id);
    bool ok = reserve && !cmd->undo ? !res : res && strcmp(res, want) == 0;
    snprintf(want, sizeof want, "pay-%s", cmd->saga_id);
    if (strcmp(cmd->step, "ship") == 0 || (charge && cmd->undo))
        ok = ok && pay && strcmp(pay, want) == 0;
    else
        ok = ok && !pay;
    if (!ok && p->bad_results)
        (*p->bad_results)++;
    if (!cmd->undo && (reserve || charge))
        snprintf(cmd->result, cmd->result_cap, "%s-%s", reserve ? "res" : "pay", cmd->saga_id);
}

static void
s_work_key(const ferry_saga_command_t *cmd, char *key, size_t cap)
{
    snprintf(key, cap, "%s/%s/%s", cmd->step, cmd->undo ? "undo" : "do", cmd->saga_id);
}

static bool
s_work(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    s_parts_t *p = user;
    if (s_declined(p, cmd, reason, cap))
        return false;
    s_results(p, cmd);
    MDB_dbi dbi;
    char key[300];
    s_work_key(cmd, key, sizeof key);
    MDB_val k = {strlen(key), key}, v = {1, "1"};
    if (mdb_dbi_open(txn, "work", MDB_CREATE, &dbi) != 0)
        return false;
    int rc = mdb_put(txn, dbi, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        (*p->twice)++;
    (*p->works) += rc == 0;
    return rc == 0 || rc == MDB_KEYEXIST;
}

static bool
s_pg_work(PGconn *conn, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    s_parts_t *p = user;
    if (s_declined(p, cmd, reason, cap))
        return false;
    s_results(p, cmd);
    char key[300];
    s_work_key(cmd, key, sizeof key);
    const char *params[] = {key};
    PGresult *res = PQexecParams(conn, "INSERT INTO work (k) VALUES ($1) ON CONFLICT DO NOTHING", 1,
                                 NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (ok && strcmp(PQcmdTuples(res), "0") == 0)
        (*p->twice)++;
    else if (ok)
        (*p->works)++;
    PQclear(res);
    return ok;
}

static bool
s_lite_work(sqlite3 *db, const ferry_saga_command_t *cmd, char *reason, size_t cap, void *user)
{
    s_parts_t *p = user;
    if (s_declined(p, cmd, reason, cap))
        return false;
    s_results(p, cmd);
    char key[300];
    s_work_key(cmd, key, sizeof key);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "INSERT INTO work (k) VALUES (?1) ON CONFLICT DO NOTHING", -1, &st,
                           NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (ok && sqlite3_changes(db) == 0)
        (*p->twice)++;
    else if (ok)
        (*p->works)++;
    return ok;
}

static void *
s_participants(void *arg)
{
    s_parts_t *p = arg;
    MDB_env *env = NULL;
    ferry_client_t *c = NULL;
    ferry_saga_participant_t *parts[3] = {0};
    static const char *queues[] = {"shop.reserve", "shop.charge", "shop.ship"};
    ferry_options_t *o = ferry_options_new();
    ferry_options_set_server(o, p->endpoint);
    p->st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    if (p->st == FERRY_OK && !p->conninfo && !p->sqlite &&
        (mkdir(p->dir, 0700) != 0 || mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) ||
         mdb_env_set_mapsize(env, 1ull << 28) || mdb_env_open(env, p->dir, 0, 0600)))
        p->st = FERRY_EIO;
    for (int i = 0; i < 3 && p->st == FERRY_OK; i++)
        p->st = p->conninfo ? ferry_saga_pg_participant_new(c, p->conninfo, queues[i], s_pg_work, p,
                                                            &parts[i])
                : p->sqlite ? ferry_saga_sqlite_participant_new(c, p->sqlite, queues[i],
                                                                s_lite_work, p, &parts[i])
                            : ferry_saga_participant_new(c, env, queues[i], s_work, p, &parts[i]);
    p->ready = 1;
    while (p->st == FERRY_OK && !p->stop)
        ferry_client_poll(c, 20);
    for (int i = 0; i < 3; i++)
        ferry_saga_participant_destroy(&parts[i]);
    ferry_client_destroy(&c);
    if (env)
        mdb_env_close(env);
    return NULL;
}

/* The participants' table of work in the SQLite file @p path. */
static void
s_lite_work_table(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE work (k TEXT PRIMARY KEY)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

/* The application's side: a connection of its own, where it writes its
 * order and starts the saga in one transaction. */
typedef struct {
    PGconn *pg;
    sqlite3 *lite;
} s_app_t;

static void
s_app_sql(s_app_t *a, const char *sql)
{
    if (a->lite) {
        char *msg = NULL;
        if (sqlite3_exec(a->lite, sql, NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("%s: %s", sql, msg);
        return;
    }
    PGresult *res = PQexec(a->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(a->pg));
    PQclear(res);
}

static long
s_app_count(s_app_t *a, const char *sql)
{
    long n = -1;
    if (a->lite) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(a->lite, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return n;
    }
    PGresult *res = PQexec(a->pg, sql);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static ferry_status_t
s_start(s_app_t *a, ferry_saga_orchestrator_t *o, const char *def, const char *id, const char *data)
{
    return a->lite ? ferry_saga_sqlite_start(o, a->lite, def, id, data, strlen(data))
                   : ferry_saga_pg_start(o, a->pg, def, id, data, strlen(data));
}

/* Runs S_SAGAS sagas through orchestrators @p o[0..n-1] (already made on
 * the application's database) and checks every promise. */
static void
s_run(fy_ferryd_t *d, s_app_t *a, ferry_saga_orchestrator_t **o, int n, const char *source,
      const char *dir, s_parts_t *parts, int nparts)
{
    char log[400];
    snprintf(log, sizeof log, "%s/relay.log", dir);
    int relay = fy_relay_spawn(source, d->endpoint, log, NULL);
    assert_true(relay > 0);
    atomic_long works = 0, twice = 0, bad_results = 0;
    pthread_t t[2];
    for (int k = 0; k < nparts; k++) {
        parts[k].endpoint = d->endpoint;
        parts[k].works = &works;
        parts[k].twice = &twice;
        parts[k].bad_results = &bad_results;
        assert_int_equal(pthread_create(&t[k], NULL, s_participants, &parts[k]), 0);
        while (!parts[k].ready)
            fy_sleep_ms(10);
        assert_int_equal(parts[k].st, FERRY_OK);
    }
    s_app_sql(a, "CREATE TABLE orders (id TEXT PRIMARY KEY)");

    long committed = 0, poor = 0, lost = 0;
    for (int i = 0; i < S_SAGAS; i++) {
        char id[32], sql[128];
        snprintf(id, sizeof id, "order-%d", i);
        bool is_lost = i % 7 == 3, is_poor = !is_lost && i % 4 == 1, rollback = i % 5 == 0;
        s_app_sql(a, "BEGIN");
        snprintf(sql, sizeof sql, "INSERT INTO orders (id) VALUES ('%s')", id);
        s_app_sql(a, sql);
        assert_int_equal(
            s_start(a, o[i % n], is_lost ? "lost" : "shop", id, is_poor ? "poor" : "rich"),
            FERRY_OK);
        s_app_sql(a, rollback ? "ROLLBACK" : "COMMIT");
        committed += !rollback;
        poor += !rollback && is_poor;
        lost += !rollback && is_lost;
    }
    /* Started again: it exists; nothing changes (the caller rolls back). */
    s_app_sql(a, "BEGIN");
    assert_int_equal(s_start(a, o[0], "shop", "order-1", "rich"), FERRY_EEXISTS);
    assert_int_equal(s_start(a, o[0], "none", "order-x", "rich"), FERRY_ENOTFOUND);
    s_app_sql(a, "ROLLBACK");
    assert_int_equal(s_app_count(a, "SELECT count(*) FROM orders"), committed);

    long long until = fy_now_ms() + 60000;
    size_t active = 1;
    while (active > 0 && fy_now_ms() < until) {
        active = 0;
        for (int k = 0; k < n; k++) {
            assert_int_equal(ferry_saga_poll(o[k], 20), FERRY_OK);
            active = ferry_saga_active(o[k]); /* one table: each sees all */
        }
    }
    assert_int_equal(active, 0);
    long done = 0, compensated = 0;
    for (int i = 0; i < S_SAGAS; i++) {
        char id[32];
        snprintf(id, sizeof id, "order-%d", i);
        ferry_saga_status_t st;
        ferry_status_t got = ferry_saga_get(o[0], id, &st);
        if (i % 5 == 0) { /* rolled back with the order */
            assert_int_equal(got, FERRY_ENOTFOUND);
            continue;
        }
        assert_int_equal(got, FERRY_OK);
        bool is_lost = i % 7 == 3, is_poor = !is_lost && i % 4 == 1;
        if (is_lost || is_poor) {
            assert_int_equal(st.state, FERRY_SAGA_COMPENSATED);
            assert_non_null(strstr(st.reason, is_lost ? "step wait timed out"
                                                      : "step charge failed: insufficient funds"));
        } else {
            assert_int_equal(st.state, FERRY_SAGA_DONE);
        }
        done += st.state == FERRY_SAGA_DONE;
        compensated += st.state == FERRY_SAGA_COMPENSATED;
        /* What the steps gave, kept with the saga. */
        char kept[64], want[64];
        snprintf(want, sizeof want, "res-%s", id);
        assert_int_equal(ferry_saga_result(o[0], id, "reserve", kept, sizeof kept), FERRY_OK);
        assert_string_equal(kept, want);
        snprintf(want, sizeof want, "pay-%s", id);
        ferry_status_t paid = ferry_saga_result(o[0], id, "charge", kept, sizeof kept);
        assert_int_equal(paid, st.state == FERRY_SAGA_DONE ? FERRY_OK : FERRY_ENOTFOUND);
        if (paid == FERRY_OK)
            assert_string_equal(kept, want);
    }
    assert_int_equal(ferry_saga_result(o[0], "order-1", "ship", (char[8]){0}, 8), FERRY_ENOTFOUND);
    assert_int_equal(ferry_saga_result(o[0], "nope", "reserve", (char[8]){0}, 8), FERRY_ENOTFOUND);
    /* In the table, as JSON a query can read. */
    assert_int_equal(s_app_count(a, a->lite ? "SELECT count(*) FROM ferry_saga WHERE "
                                              "json_extract(results, '$.reserve') = 'res-' || id"
                                            : "SELECT count(*) FROM ferry_saga WHERE "
                                              "results->>'reserve' = 'res-' || id"),
                     committed);
    assert_int_equal(done, committed - poor - lost);
    assert_int_equal(compensated, poor + lost);
    /* Work once each: reserve for every saga, its undo for the failed ones,
     * charge and ship for the done ones. */
    long want = committed + (poor + lost) + 2 * done;
    until = fy_now_ms() + 10000;
    while (works < want && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(works, want);
    assert_int_equal(twice, 0);
    assert_int_equal(bad_results, 0);
    /* One command row per (saga, step, attempt): none written twice. */
    assert_int_equal(s_app_count(a, a->lite ? "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE "
                                              "aggregate_type LIKE 'shop.%' GROUP "
                                              "BY aggregate_id, event_type, "
                                              "json_extract(headers, '$.correlation_id') "
                                              "HAVING count(*) > 1)"
                                            : "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE "
                                              "aggregate_type LIKE 'shop.%' GROUP "
                                              "BY aggregate_id, event_type, "
                                              "headers->>'correlation_id' HAVING count(*) > 1) x"),
                     0);
    assert_int_equal(s_app_count(a, "SELECT count(*) FROM outbox WHERE aggregate_id LIKE "
                                    "'order-%0' OR aggregate_id LIKE 'order-%5'"),
                     0); /* the rolled-back sagas sent nothing */
    /* Every transition was published to _saga.<definition>, keyed by the
     * saga: one saga's history reads back in order. */
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    static const struct {
        const char *id, *want;
    } hist[] = {{"order-2", "start:running:reserve ok:running:charge[res-order-2] "
                            "ok:running:ship[pay-order-2] done:done:ship "},
                {"order-1", "start:running:reserve ok:running:charge[res-order-1] "
                            "fail:compensating:reserve compensated:compensated:reserve "},
                {"order-3", "start:running:reserve ok:running:wait[res-order-3] "
                            "timeout:compensating:reserve compensated:compensated:reserve "}};
    for (size_t h = 0; h < sizeof hist / sizeof hist[0]; h++) {
        char got[400] = "";
        until = fy_now_ms() + 10000;
        while (strcmp(got, hist[h].want) != 0 && fy_now_ms() < until) {
            got[0] = '\0';
            ferry_key_iter_t *it = NULL;
            const char *topic = strcmp(hist[h].id, "order-3") == 0 ? "_saga.lost" : "_saga.shop";
            if (ferry_client_read_key(c, topic, hist[h].id, 0, 0, &it) == FERRY_OK) {
                const ferry_stored_message_t *m;
                while (ferry_key_iter_next(it, &m) == FERRY_OK && m) {
                    const char *result = ferry_msg_header(m, "ferry-saga-result");
                    snprintf(got + strlen(got), sizeof got - strlen(got), "%s:%s:%s%s%s%s ",
                             ferry_msg_header(m, "event_type"),
                             ferry_msg_header(m, "ferry-saga-state"),
                             ferry_msg_header(m, "ferry-saga-step"), result ? "[" : "",
                             result ? result : "", result ? "]" : "");
                }
            }
            ferry_key_iter_destroy(&it);
            if (strcmp(got, hist[h].want) != 0)
                fy_sleep_ms(50); /* the relay publishes what the last commits wrote */
        }
        assert_string_equal(got, hist[h].want);
    }
    ferry_client_destroy(&c);
    /* Purge: the ended sagas go. */
    size_t removed = 0;
    assert_int_equal(ferry_saga_purge(o[0], fy_wall_ms() + 1000, &removed), FERRY_OK);
    assert_int_equal(removed, (size_t)committed);
    for (int k = 0; k < nparts; k++) {
        parts[k].stop = 1;
        pthread_join(t[k], NULL);
    }
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
}

static void
test_sagas_on_postgres(void **state)
{
    fy_ferryd_t *d = *state;
    fy_pg_t pg = {0};
    assert_int_equal(fy_pg_start(&pg), 0);
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_saga_config_t cfg = {.name = "shop", .broker = d->endpoint};
    ferry_saga_orchestrator_t *o[2] = {0};
    for (int k = 0; k < 2; k++)
        assert_int_equal(ferry_saga_pg_orchestrator_new(pg.conninfo, s_defs, 2, &cfg, &o[k]),
                         FERRY_OK);
    s_app_t a = {.pg = PQconnectdb(pg.conninfo)};
    assert_int_equal(PQstatus(a.pg), CONNECTION_OK);
    /* A start on an orchestrator of the other kind, and bad input. */
    assert_int_equal(ferry_saga_sqlite_start(o[0], (sqlite3 *)a.pg, "shop", "x", "d", 1),
                     FERRY_EINVAL);
    assert_int_equal(ferry_saga_pg_start(o[0], NULL, "shop", "x", "d", 1), FERRY_EINVAL);
    ferry_saga_orchestrator_t *bad = NULL;
    assert_int_equal(ferry_saga_pg_orchestrator_new("host=127.0.0.1 port=1 connect_timeout=2",
                                                    s_defs, 2, &cfg, &bad),
                     FERRY_EIO);
    assert_null(bad);
    /* The participants' service has a database of its own, and runs twice. */
    assert_int_equal(fy_pg_sql(&pg, "CREATE DATABASE parts OWNER ferry;\n"), 0);
    char parts_db[400], source[400];
    snprintf(parts_db, sizeof parts_db, "%.*sdbname=parts",
             (int)(strstr(pg.conninfo, "dbname=") - pg.conninfo), pg.conninfo);
    PGconn *pc = PQconnectdb(parts_db);
    assert_int_equal(PQstatus(pc), CONNECTION_OK);
    PQclear(PQexec(pc, "CREATE TABLE work (k TEXT PRIMARY KEY)"));
    PQfinish(pc);
    s_parts_t parts[2] = {{.conninfo = parts_db}, {.conninfo = parts_db}};
    snprintf(source, sizeof source, "pg:%s", pg.conninfo);
    s_run(d, &a, o, 2, source, pg.dir, parts, 2);
    for (int k = 0; k < 2; k++)
        ferry_saga_orchestrator_destroy(&o[k]);
    PQfinish(a.pg);
    fy_pg_stop(&pg);
}

static void
test_sagas_on_sqlite(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], path[300], source[320];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/app.db", dir);
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_saga_config_t cfg = {.name = "shop", .broker = d->endpoint};
    ferry_saga_orchestrator_t *o = NULL;
    assert_int_equal(ferry_saga_sqlite_orchestrator_new(path, s_defs, 2, &cfg, &o), FERRY_OK);
    s_app_t a = {0};
    assert_int_equal(sqlite3_open(path, &a.lite), SQLITE_OK);
    sqlite3_busy_timeout(a.lite, 10000);
    assert_int_equal(ferry_saga_pg_start(o, (PGconn *)a.lite, "shop", "x", "d", 1), FERRY_EINVAL);
    /* The participants' service: a SQLite file of its own. */
    char parts_db[320];
    snprintf(parts_db, sizeof parts_db, "%s/parts.db", dir);
    s_lite_work_table(parts_db);
    s_parts_t parts = {.sqlite = parts_db};
    snprintf(source, sizeof source, "sqlite:%s", path);
    s_run(d, &a, &o, 1, source, dir, &parts, 1);
    /* Their answers are in their database: one per command. */
    sqlite3 *pdb;
    assert_int_equal(sqlite3_open(parts_db, &pdb), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(pdb, "SELECT count(*) FROM ferry_saga_inbox", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) > 0);
    sqlite3_finalize(st);
    sqlite3_close(pdb);
    ferry_saga_orchestrator_destroy(&o);
    sqlite3_close(a.lite);
    fy_rmtree(dir);
}

/* Failing well, on the store the orchestrator @p o is on: a step that
 * fails for now is tried again after a wait and goes on; a compensation
 * that keeps failing leaves its saga FAILED (on_end says so, purge keeps
 * it) until a person resumes it; a running saga cancelled by hand
 * compensates. */
typedef struct {
    atomic_int failed, ended;
} s_seen_t;

/* The orchestrator's log lines, kept (its client logs from the thread
 * that polls it: this one). */
static char s_logged[16384];

static void
s_keep_log(ferry_log_level_t level, const char *line, void *user)
{
    (void)level, (void)user;
    size_t have = strlen(s_logged);
    snprintf(s_logged + have, sizeof s_logged - have, "%s\n", line);
}

static void
s_seen_end(const char *id, const ferry_saga_status_t *st, void *user)
{
    (void)id;
    s_seen_t *s = user;
    s->ended++;
    s->failed += st->state == FERRY_SAGA_FAILED;
}

static const ferry_saga_step_t s_careful[] = {{.name = "reserve",
                                               .queue = "shop.reserve",
                                               .compensable = true,
                                               .timeout_ms = 20000,
                                               .retry_delay_ms = 50,
                                               .max_compensations = 2},
                                              {.name = "charge",
                                               .queue = "shop.charge",
                                               .compensable = true,
                                               .timeout_ms = 20000,
                                               .max_attempts = 3,
                                               .retry_delay_ms = 50}};
static const ferry_saga_step_t s_held[] = {
    {.name = "reserve", .queue = "shop.reserve", .compensable = true, .timeout_ms = 20000},
    {.name = "wait", .queue = "shop.nobody", .timeout_ms = 20000}};
static const ferry_saga_def_t s_careful_defs[] = {
    {.name = "careful", .steps = s_careful, .step_count = 2},
    {.name = "held", .steps = s_held, .step_count = 2}};

/* Polls @p o until saga @p id stands in @p want (10 s at most). */
static void
s_until(ferry_saga_orchestrator_t *o, const char *id, ferry_saga_state_t want,
        ferry_saga_status_t *st)
{
    long long until = fy_now_ms() + 10000;
    do {
        assert_int_equal(ferry_saga_poll(o, 20), FERRY_OK);
        assert_int_equal(ferry_saga_get(o, id, st), FERRY_OK);
    } while (st->state != want && fy_now_ms() < until);
    assert_int_equal(st->state, want);
}

/* `ferry saga ...` (@p args) against @p d: its exit code, its output in @p out. */
static int
s_cli(const fy_ferryd_t *d, const char *args, char *out, size_t cap)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' saga %s 2>&1", getenv("FERRY_CLI"), d->endpoint,
             args);
    return fy_run(cmd, out, cap);
}

/* With @p by_cli, a person uses `ferry saga cancel|retry|show`; else the
 * calls of ferry_saga.h. */
static void
s_failing_well(fy_ferryd_t *d, ferry_saga_orchestrator_t *o, s_seen_t *seen, s_parts_t *parts,
               const char *source, const char *dir, bool by_cli)
{
    char log[400];
    snprintf(log, sizeof log, "%s/relay-careful.log", dir);
    int relay = fy_relay_spawn(source, d->endpoint, log, NULL);
    assert_true(relay > 0);
    atomic_long works = 0, twice = 0;
    parts->endpoint = d->endpoint;
    parts->works = &works;
    parts->twice = &twice;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_participants, parts), 0);
    while (!parts->ready)
        fy_sleep_ms(10);
    assert_int_equal(parts->st, FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "careful", "flaky-3", "flaky-3", 7), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "careful", "stuck", "stuck", 5), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "held", "held-1", "x", 1), FERRY_OK);
    ferry_saga_status_t st;
    /* Failed for now twice, waited, went on. */
    s_until(o, "flaky-3", FERRY_SAGA_DONE, &st);
    assert_int_equal(parts->tries[3], 3);
    /* Its compensation gave up after 2 attempts: FAILED, said once. */
    s_until(o, "stuck", FERRY_SAGA_FAILED, &st);
    assert_non_null(
        strstr(st.reason, "compensation of step reserve gave up after 2 attempts: stock service"));
    assert_int_equal(seen->failed, 1);
    assert_int_equal(ferry_saga_active(o), 1); /* held-1; a FAILED saga is not active */
    size_t removed = 9;
    assert_int_equal(ferry_saga_purge(o, fy_wall_ms() + 1000, &removed), FERRY_OK);
    assert_int_equal(removed, 1); /* flaky-3; stuck stays for a person */
    assert_int_equal(ferry_saga_get(o, "stuck", &st), FERRY_OK);
    /* A person: cancel the held saga, resume the stuck one once fixed. */
    assert_int_equal(ferry_saga_resume(o, "held-1"), FERRY_ESEQ);
    assert_int_equal(ferry_saga_cancel(o, "stuck", NULL), FERRY_ESEQ);
    assert_int_equal(ferry_saga_cancel(o, "nobody", NULL), FERRY_ENOTFOUND);
    long long until = fy_now_ms() + 10000;
    do { /* until reserve answered: then it waits for nobody */
        assert_int_equal(ferry_saga_poll(o, 20), FERRY_OK);
        assert_int_equal(ferry_saga_get(o, "held-1", &st), FERRY_OK);
    } while (st.step != 1 && fy_now_ms() < until);
    assert_int_equal(st.state, FERRY_SAGA_RUNNING);
    assert_int_equal(st.step, 1);
    char out[4096];
    if (by_cli) {
        /* Bad input on the reply topic: each dropped and said, nothing else
         * happens (the steps below go on as if they had not come). */
        static const char *const junk[] = {
            "junk", "x --header correlation_id=0/d/1/nosuch --header ferry-saga-result=ok",
            "x --header correlation_id=garbage --header ferry-saga-result=ok",
            "x --header correlation_id=0/d/1/held-1 --header ferry-saga-result=maybe"};
        for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
            char cmd[600];
            snprintf(cmd, sizeof cmd, "'%s' --server '%s' pub saga.careful.replies %s 2>&1",
                     getenv("FERRY_CLI"), d->endpoint, junk[i]);
            assert_int_equal(fy_run(cmd, out, sizeof out), 0);
        }
        assert_int_equal(s_cli(d, "cancel careful held-1 'the customer called'", out, sizeof out),
                         0);
        assert_non_null(strstr(out, "asked orchestrator careful to cancel saga held-1"));
        /* One the orchestrator cannot apply is said in its log, nothing changes. */
        assert_int_equal(s_cli(d, "retry careful flaky-3", out, sizeof out), 0);
        assert_int_equal(s_cli(d, "retry", out, sizeof out), 2);
        assert_int_equal(s_cli(d, "retry nosuch-orchestrator x", out, sizeof out), 1);
    } else {
        assert_int_equal(ferry_saga_cancel(o, "held-1", "the customer called"), FERRY_OK);
    }
    s_until(o, "held-1", FERRY_SAGA_COMPENSATED, &st);
    assert_string_equal(st.reason, "step wait cancelled: the customer called");
    if (by_cli) {
        assert_non_null(strstr(s_logged, "dropped: not a saga reply (no correlation_id header)"));
        assert_non_null(strstr(s_logged, "dropped: no saga nosuch"));
        assert_non_null(strstr(s_logged, "correlation_id 'garbage' is not STEP/d|u/ATTEMPT/SAGA"));
        assert_non_null(strstr(s_logged, "ferry-saga-result is not ok, fail or retry"));
    }
    parts->fixed = 1;
    if (by_cli)
        assert_int_equal(s_cli(d, "retry careful stuck", out, sizeof out), 0);
    else
        assert_int_equal(ferry_saga_resume(o, "stuck"), FERRY_OK);
    s_until(o, "stuck", FERRY_SAGA_COMPENSATED, &st);
    assert_int_equal(ferry_saga_get(o, "flaky-3", &st), FERRY_ENOTFOUND); /* purged, not resumed */
    /* The counts an application exports to its metrics: flaky-3 done after
     * two resends; held-1 cancelled and stuck resumed, both compensated;
     * stuck FAILED once, after one resend of its compensation. Bad input:
     * three messages that are no replies (no correlation_id, a malformed
     * one, an unknown result); stale: a reply for no saga, a retry of a
     * purged saga (and any late copy). */
    ferry_saga_stats_t stats;
    assert_int_equal(ferry_saga_stats(o, &stats), FERRY_OK);
    assert_int_equal(ferry_saga_stats(NULL, &stats), FERRY_EINVAL);
    assert_int_equal(stats.done, 1);
    assert_int_equal(stats.compensated, 2);
    assert_int_equal(stats.failed, 1);
    assert_int_equal(stats.resent, 3);
    assert_int_equal(stats.timeouts, 0);
    assert_int_equal(stats.bad_replies, by_cli ? 3 : 0);
    assert_true(stats.stale_replies >= (by_cli ? 2u : 0u));
    /* The history of the flaky one: each wait and resend is in it. */
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    char got[300] = "";
    const char *want = "start ok retry resend retry resend done ";
    until = fy_now_ms() + 10000;
    while (strcmp(got, want) != 0 && fy_now_ms() < until) {
        got[0] = '\0';
        ferry_key_iter_t *it = NULL;
        if (ferry_client_read_key(c, "_saga.careful", "flaky-3", 0, 0, &it) == FERRY_OK) {
            const ferry_stored_message_t *m;
            while (ferry_key_iter_next(it, &m) == FERRY_OK && m)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s ",
                         ferry_msg_header(m, "event_type"));
        }
        ferry_key_iter_destroy(&it);
        if (strcmp(got, want) != 0)
            fy_sleep_ms(50);
    }
    assert_string_equal(got, want);
    ferry_client_destroy(&c);
    if (by_cli) { /* the same history, for people */
        assert_int_equal(s_cli(d, "show careful flaky-3", out, sizeof out), 0);
        assert_non_null(strstr(out, "TIME"));
        assert_non_null(strstr(out, "resend       running       charge            3"));
        assert_non_null(strstr(out, "done         done          charge"));
        assert_int_equal(s_cli(d, "show careful nobody", out, sizeof out), 1);
        assert_int_equal(s_cli(d, "show careful stuck", out, sizeof out), 0);
        assert_non_null(strstr(out, "failed       failed        reserve           2        "
                                    "compensation of step reserve gave up"));
        assert_non_null(strstr(out, "resume       compensating  reserve           1"));
        /* Where each stands: its newest transition, newest first. */
        until = fy_now_ms() + 10000;
        do {
            assert_int_equal(s_cli(d, "list careful", out, sizeof out), 0);
        } while (!strstr(out, "stuck                     compensated") && fy_now_ms() < until &&
                 (fy_sleep_ms(50), true));
        assert_non_null(strstr(out, "stuck                     compensated"));
        assert_non_null(strstr(out, "flaky-3                   done          charge"));
        assert_non_null(strstr(out, "\n2 sagas\n"));
        assert_int_equal(s_cli(d, "list careful done", out, sizeof out), 0);
        assert_non_null(strstr(out, "flaky-3"));
        assert_null(strstr(out, "stuck"));
        assert_non_null(strstr(out, "1 saga done"));
        assert_int_equal(s_cli(d, "list held", out, sizeof out), 0);
        assert_non_null(strstr(out, "held-1                    compensated"));
        assert_int_equal(s_cli(d, "list nothing-here", out, sizeof out), 1);
        /* By age: nothing moved an hour ago; everything moved 0 ms ago. */
        assert_int_equal(s_cli(d, "list careful any 1h", out, sizeof out), 0);
        assert_non_null(strstr(out, "0 sagas"));
        assert_int_equal(s_cli(d, "list careful any 0s", out, sizeof out), 0);
        assert_non_null(strstr(out, "\n2 sagas\n"));
        assert_int_equal(s_cli(d, "list careful compensated 1h", out, sizeof out), 0);
        assert_non_null(strstr(out, "0 sagas compensated"));
        assert_int_equal(s_cli(d, "list careful any soon", out, sizeof out), 2);
    }
    parts->stop = 1;
    pthread_join(t, NULL);
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
}

static void
test_failing_well_on_sqlite(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], path[300], parts_db[300], source[320];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/app.db", dir);
    snprintf(parts_db, sizeof parts_db, "%s/parts.db", dir);
    s_lite_work_table(parts_db);
    assert_int_equal(fy_ferryd_start(d), 0);
    s_seen_t seen = {0};
    ferry_saga_config_t cfg = {.name = "careful",
                               .broker = d->endpoint,
                               .on_end = s_seen_end,
                               .user = &seen,
                               .log = s_keep_log};
    s_logged[0] = '\0';
    ferry_saga_orchestrator_t *o = NULL;
    assert_int_equal(ferry_saga_sqlite_orchestrator_new(path, s_careful_defs, 2, &cfg, &o),
                     FERRY_OK);
    static s_parts_t parts;
    memset(&parts, 0, sizeof parts);
    parts.sqlite = parts_db;
    snprintf(source, sizeof source, "sqlite:%s", path);
    s_failing_well(d, o, &seen, &parts, source, dir, true);
    ferry_saga_orchestrator_destroy(&o);
    fy_rmtree(dir);
}

static void
test_failing_well_on_postgres(void **state)
{
    fy_ferryd_t *d = *state;
    fy_pg_t pg = {0};
    assert_int_equal(fy_pg_start(&pg), 0);
    PGconn *pc = PQconnectdb(pg.conninfo);
    assert_int_equal(PQstatus(pc), CONNECTION_OK);
    PQclear(PQexec(pc, "CREATE TABLE work (k TEXT PRIMARY KEY)"));
    PQfinish(pc);
    assert_int_equal(fy_ferryd_start(d), 0);
    s_seen_t seen = {0};
    ferry_saga_config_t cfg = {
        .name = "careful", .broker = d->endpoint, .on_end = s_seen_end, .user = &seen};
    ferry_saga_orchestrator_t *o = NULL;
    assert_int_equal(ferry_saga_pg_orchestrator_new(pg.conninfo, s_careful_defs, 2, &cfg, &o),
                     FERRY_OK);
    static s_parts_t parts;
    memset(&parts, 0, sizeof parts);
    parts.conninfo = pg.conninfo;
    char source[400];
    snprintf(source, sizeof source, "pg:%s", pg.conninfo);
    s_failing_well(d, o, &seen, &parts, source, pg.dir, false);
    ferry_saga_orchestrator_destroy(&o);
    fy_pg_stop(&pg);
}

/* The orchestrator's pipelined transactions on PostgreSQL: a write the
 * database refuses (a trigger on outbox) fails the start or the transition
 * as a whole - nothing of it stays - and the connection goes on serving
 * once the refusal is gone. */
static void
test_refused_writes_on_postgres(void **state)
{
    fy_ferryd_t *d = *state;
    fy_pg_t pg = {0};
    assert_int_equal(fy_pg_start(&pg), 0);
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_saga_config_t cfg = {.name = "refused", .broker = d->endpoint};
    ferry_saga_orchestrator_t *o = NULL;
    static const ferry_saga_step_t brief[] = {
        {.name = "wait", .queue = "shop.nobody", .compensable = true, .timeout_ms = 300}};
    const ferry_saga_def_t defs[] = {s_defs[0], {.name = "brief", .steps = brief, .step_count = 1}};
    assert_int_equal(ferry_saga_pg_orchestrator_new(pg.conninfo, defs, 2, &cfg, &o), FERRY_OK);
    s_app_t a = {.pg = PQconnectdb(pg.conninfo)};
    assert_int_equal(PQstatus(a.pg), CONNECTION_OK);
    /* Started before the refusal: its step (nobody serves it) times out. */
    assert_int_equal(ferry_saga_start(o, "brief", "late-1", "x", 1), FERRY_OK);
    s_app_sql(&a, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF "
                  "NEW.aggregate_id IN ('bad-1', 'late-1') THEN RAISE EXCEPTION 'refused'; END "
                  "IF; RETURN NEW; END $$");
    s_app_sql(&a, "CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE "
                  "FUNCTION refuse()");
    /* A start: the saga's row and its command together, or neither. */
    assert_int_equal(ferry_saga_start(o, "shop", "bad-1", "x", 1), FERRY_EIO);
    ferry_saga_status_t st;
    assert_int_equal(ferry_saga_get(o, "bad-1", &st), FERRY_ENOTFOUND);
    assert_int_equal(s_app_count(&a, "SELECT count(*) FROM ferry_saga WHERE id = 'bad-1'"), 0);
    assert_int_equal(ferry_saga_start(o, "shop", "good-1", "x", 1), FERRY_OK);
    assert_int_equal(ferry_saga_start(o, "shop", "bad-1", "x", 1), FERRY_EIO); /* again */
    assert_int_equal(ferry_saga_get(o, "good-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_RUNNING);
    /* A deadline's transition: refused while the trigger stands, the saga
     * where it was; then it goes on. */
    fy_sleep_ms(500);
    assert_int_equal(ferry_saga_poll(o, 10), FERRY_EIO);
    assert_int_equal(ferry_saga_get(o, "late-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_RUNNING);
    assert_int_equal(s_app_count(&a, "SELECT count(*) FROM outbox WHERE aggregate_id = 'late-1'"),
                     2);
    s_app_sql(&a, "DROP TRIGGER refuse ON outbox");
    assert_int_equal(ferry_saga_poll(o, 10), FERRY_OK);
    assert_int_equal(ferry_saga_get(o, "late-1", &st), FERRY_OK);
    assert_int_equal(st.state, FERRY_SAGA_COMPENSATING);
    assert_string_equal(st.reason, "step wait timed out");
    assert_int_equal(ferry_saga_start(o, "shop", "bad-1", "x", 1), FERRY_OK);
    PQfinish(a.pg);
    ferry_saga_orchestrator_destroy(&o);
    fy_pg_stop(&pg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sagas_on_postgres, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_sagas_on_sqlite, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_failing_well_on_sqlite, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_refused_writes_on_postgres, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_failing_well_on_postgres, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("sql_sagas", tests, NULL, NULL);
}
