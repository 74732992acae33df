/* SPDX-License-Identifier: MIT */
/*
 * sqlshop.c - examples/order_saga_sql as a running shop (sqlshop.h).
 */
#include "sqlshop.h"

#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "relayfx.h"

static const char *const s_names[FY_SHOP_PROCS] = {"inventory", "payment", "shipping", "orders"};

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

long
fy_sqlshop_count(const fy_sqlshop_t *s, int which, const char *sql)
{
    const char *db = s->db[which];
    return strncmp(db, "pg:", 3) == 0 ? s_pg_count(db + 3, sql) : s_lite_count(db + 7, sql);
}

static int
s_start(fy_sqlshop_t *s, int which)
{
    const char *argv[] = {s->bin,
                          s_names[which],
                          s->db[which],
                          which == FY_SHOP_ORDERS ? s->orders_n : s->endpoint,
                          which == FY_SHOP_ORDERS ? s->endpoint : NULL,
                          NULL};
    s->pid[which] = fy_spawn(s->log[which], argv);
    return s->pid[which] > 0 ? 0 : -1;
}

static int
s_start_relay(fy_sqlshop_t *s, int which)
{
    char log[420];
    snprintf(log, sizeof log, "%s/relay-%s.log", s->pg.dir, s_names[which]);
    s->relay[which] = fy_relay_spawn(s->db[which], s->endpoint, log, NULL);
    return s->relay[which] > 0 ? 0 : -1;
}

int
fy_sqlshop_start(fy_sqlshop_t *s, const char *endpoint, bool orders_on_pg, int orders)
{
    memset(s, 0, sizeof *s);
    if (fy_pg_start(&s->pg) != 0 || fy_pg_sql(&s->pg, "CREATE DATABASE orders OWNER ferry;\n"
                                                      "CREATE DATABASE inventory OWNER ferry;\n"
                                                      "CREATE DATABASE payment OWNER ferry;\n"))
        return -1;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    snprintf(s->orders_n, sizeof s->orders_n, "%d", orders);
    snprintf(s->bin, sizeof s->bin, "%s/%s/examples/order_saga_sql", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"));
    int base = (int)(strstr(s->pg.conninfo, "dbname=") - s->pg.conninfo);
    for (int i = 0; i < FY_SHOP_PROCS; i++) {
        if (i == FY_SHOP_SHIPPING || (i == FY_SHOP_ORDERS && !orders_on_pg))
            snprintf(s->db[i], sizeof s->db[i], "sqlite:%s/%s.db", s->pg.dir, s_names[i]);
        else
            snprintf(s->db[i], sizeof s->db[i], "pg:%.*sdbname=%s", base, s->pg.conninfo,
                     s_names[i]);
        snprintf(s->log[i], sizeof s->log[i], "%s/%s.log", s->pg.dir, s_names[i]);
        if (s_start(s, i) != 0)
            return -1;
    }
    /* A relay per outbox, once its service made the table. */
    for (int i = 0; i < FY_SHOP_PROCS; i++) {
        long long by = fy_now_ms() + 20000;
        while (fy_sqlshop_count(s, i, "SELECT count(*) FROM outbox") < 0 && fy_now_ms() < by)
            fy_sleep_ms(50);
        if (s_start_relay(s, i) != 0)
            return -1;
    }
    return 0;
}

int
fy_sqlshop_kill_restart(fy_sqlshop_t *s, int which)
{
    int status = fy_kill_wait(s->pid[which], SIGKILL);
    if (WIFSIGNALED(status))
        s_start(s, which);
    else
        s->pid[which] = 0;
    return status;
}

void
fy_sqlshop_kill_relay(fy_sqlshop_t *s, int which)
{
    fy_kill_wait(s->relay[which], SIGKILL);
    s_start_relay(s, which);
}

void
fy_sqlshop_stop(fy_sqlshop_t *s)
{
    for (int i = 0; i < FY_SHOP_PROCS; i++) {
        if (s->pid[i] > 0)
            fy_kill_wait(s->pid[i], SIGTERM);
        if (s->relay[i] > 0)
            fy_kill_wait(s->relay[i], SIGTERM);
        s->pid[i] = s->relay[i] = 0;
    }
    fy_pg_stop(&s->pg);
}
