/* SPDX-License-Identifier: MIT */
/*
 * pgserver.c - see pgserver.h.
 */
#define _GNU_SOURCE
#include "pgserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

/* "runuser -u postgres -- " as root, "" otherwise. */
static const char *
s_as(void)
{
    return geteuid() == 0 ? "runuser -u postgres -- " : "";
}

static int
s_sh(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

int
fy_pg_start(fy_pg_t *pg)
{
    memset(pg, 0, sizeof *pg);
    FILE *f = popen("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1", "r");
    if (!f || !fgets(pg->bin, sizeof pg->bin, f)) {
        if (f)
            pclose(f);
        fprintf(stderr, "pgserver: PostgreSQL is not installed (scripts/install-deps)\n");
        return -1;
    }
    pclose(f);
    pg->bin[strcspn(pg->bin, "\n")] = '\0';
    if (fy_tmpdir(pg->dir, sizeof pg->dir) != 0)
        return -1;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pgserver: no postgres user to run the server as\n");
            return -1;
        }
    }
    pg->port = fy_free_port();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s'%s/initdb' -D '%s/data' -A trust -U ferry -E UTF8 --no-sync "
             ">'%s/initdb.log' 2>&1",
             s_as(), pg->bin, pg->dir, pg->dir);
    if (s_sh(cmd) != 0) {
        fprintf(stderr, "pgserver: initdb failed, see %s/initdb.log\n", pg->dir);
        return -1;
    }
    snprintf(cmd, sizeof cmd,
             "%s'%s/pg_ctl' -D '%s/data' -l '%s/pg.log' -w -t 60 "
             "-o \"-p %d -k '%s' -c listen_addresses=127.0.0.1 -c wal_level=logical "
             "-c max_connections=50\" start >/dev/null 2>&1",
             s_as(), pg->bin, pg->dir, pg->dir, pg->port, pg->dir);
    if (s_sh(cmd) != 0) {
        fprintf(stderr, "pgserver: the server did not start, see %s/pg.log\n", pg->dir);
        return -1;
    }
    pg->started = 1;
    snprintf(cmd, sizeof cmd,
             "psql -q -v ON_ERROR_STOP=1 'host=127.0.0.1 port=%d user=ferry dbname=postgres' "
             "-c 'CREATE DATABASE app' >/dev/null 2>&1",
             pg->port);
    if (s_sh(cmd) != 0) {
        fprintf(stderr, "pgserver: cannot create the database\n");
        return -1;
    }
    snprintf(pg->conninfo, sizeof pg->conninfo, "host=127.0.0.1 port=%d user=ferry dbname=app",
             pg->port);
    return 0;
}

int
fy_pg_sql(const fy_pg_t *pg, const char *sql)
{
    char path[300];
    snprintf(path, sizeof path, "%s/q.sql", pg->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(sql, f);
    fclose(f);
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "psql -q -v ON_ERROR_STOP=1 '%s' -f '%s' >/dev/null 2>&1",
             pg->conninfo, path);
    return s_sh(cmd);
}

int
fy_pg_crash_restart(const fy_pg_t *pg)
{
    char cmd[1000];
    /* restart reuses the options of the last start (postmaster.opts). */
    snprintf(cmd, sizeof cmd,
             "%s'%s/pg_ctl' -D '%s/data' -l '%s/pg.log' -m immediate -w -t 60 restart "
             ">/dev/null 2>&1",
             s_as(), pg->bin, pg->dir, pg->dir);
    return s_sh(cmd) == 0 ? 0 : -1;
}

void
fy_pg_stop(fy_pg_t *pg)
{
    char cmd[1000];
    if (pg->started) {
        snprintf(cmd, sizeof cmd, "%s'%s/pg_ctl' -D '%s/data' -m immediate stop >/dev/null 2>&1",
                 s_as(), pg->bin, pg->dir);
        s_sh(cmd);
        pg->started = 0;
    }
    if (pg->dir[0])
        fy_rmtree(pg->dir);
    pg->dir[0] = '\0';
}
