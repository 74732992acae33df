/* SPDX-License-Identifier: MIT */
/*
 * pgserver.h - a real PostgreSQL server for tests and benchmarks, from
 * Debian's postgresql package: initdb on a fresh temporary directory, a free
 * loopback port, wal_level=logical, started with pg_ctl and stopped with
 * `pg_ctl stop -m immediate`. As root (CI) every PostgreSQL program runs as
 * the unprivileged `postgres` user through runuser, since initdb refuses root.
 */
#ifndef FY_PGSERVER_H
#define FY_PGSERVER_H

typedef struct fy_pg {
    char dir[256]; /* the temporary directory (data, socket, log) */
    char bin[128]; /* /usr/lib/postgresql/<version>/bin */
    int port;
    char conninfo[300]; /* host=127.0.0.1 port=... user=ferry dbname=app */
    int started;
} fy_pg_t;

/** Creates the cluster and database "app" (owner "ferry", trust auth) and
 *  starts the server. @return 0, or -1 with a message on stderr. */
int fy_pg_start(fy_pg_t *pg);
/** Runs SQL (a string) in database app with psql. @return psql's exit status. */
int fy_pg_sql(const fy_pg_t *pg, const char *sql);
/** Crashes the server (`pg_ctl restart -m immediate`: no shutdown
 *  checkpoint, crash recovery at start) and waits until it is up again.
 *  @return 0, or -1. */
int fy_pg_crash_restart(const fy_pg_t *pg);
/** Stops the server (immediate) and removes the directory. */
void fy_pg_stop(fy_pg_t *pg);

#endif
