/*
 * pgutil.c - helpers of the PostgreSQL sources (pgutil.h).
 */
#include "pgutil.h"

#include <stdio.h>
#include <string.h>

fy_status_t
fr_pg_fail(PGconn *db, fy_err_t *err, const char *what)
{
    return fr_pg_fail_msg(db ? PQerrorMessage(db) : "out of memory", err, what);
}

fy_status_t
fr_pg_fail_msg(const char *m, fy_err_t *err, const char *what)
{
    size_t len = strlen(m);
    while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
        len--;
    if (len == 0) {
        m = "the server ended the connection";
        len = strlen(m);
    }
    fy_err_set(err, FERRY_EIO, "postgresql: %s: %.*s", what, (int)len, m);
    /* One logfmt line: libpq's messages span lines and quote host names. */
    for (char *p = err ? err->msg : ""; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
        else if (*p == '"')
            *p = '\'';
    return FERRY_EIO;
}

void
fr_pg_revive(PGconn *db)
{
    if (db && PQstatus(db) == CONNECTION_BAD)
        PQreset(db);
}

bool
fr_pg_ident_ok(const char *t)
{
    if (!t || !*t || strlen(t) > 63)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}
