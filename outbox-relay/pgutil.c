/* SPDX-License-Identifier: MIT */
/*
 * pgutil.c - helpers of the PostgreSQL sources (pgutil.h).
 */
#include "pgutil.h"

#include <stdio.h>

#include "identity.h"
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

/* One query with up to one text parameter; its first value into out (when
 * out), *rows the row count. */
static fy_status_t
s_one(PGconn *db, const char *sql, const char *arg, char *out, size_t cap, int *rows, fy_err_t *err)
{
    const char *params[1] = {arg};
    PGresult *r = PQexecParams(db, sql, arg ? 1 : 0, NULL, params, NULL, NULL, 0);
    ExecStatusType t = PQresultStatus(r);
    if (t != PGRES_TUPLES_OK && t != PGRES_COMMAND_OK) {
        fr_pg_fail_msg(PQresultErrorMessage(r), err, sql);
        PQclear(r);
        return FERRY_EIO;
    }
    *rows = PQntuples(r);
    if (out)
        snprintf(out, cap, "%s", *rows > 0 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return FERRY_OK;
}

fy_status_t
fr_pg_default_name(PGconn *db, const char *kind, const char *legacy_sql, const char *legacy_arg,
                   char *out, size_t cap, fy_err_t *err)
{
    fr_pg_revive(db);
    char ident[FR_IDENTITY_LEN + 1], have[64];
    fr_identity_new(ident);
    int rows = 0;
    /* Made once; a second relay racing to make it keeps the first one's. */
    if (s_one(db,
              "CREATE TABLE IF NOT EXISTS ferry_relay_identity (one BOOLEAN PRIMARY KEY "
              "DEFAULT true CHECK (one), id TEXT NOT NULL)",
              NULL, NULL, 0, &rows, err) != FERRY_OK ||
        s_one(db, "INSERT INTO ferry_relay_identity(id) VALUES ($1) ON CONFLICT DO NOTHING", ident,
              NULL, 0, &rows, err) != FERRY_OK ||
        s_one(db, "SELECT id FROM ferry_relay_identity", NULL, have, sizeof have, &rows, err) !=
            FERRY_OK)
        return FERRY_EIO;
    if (!fr_identity_ok(have)) {
        return fy_err_set(err, FERRY_EIO,
                          "postgresql: table ferry_relay_identity holds no valid identity ('%s')",
                          have);
    }
    if (s_one(db, legacy_sql, legacy_arg, NULL, 0, &rows, err) != FERRY_OK)
        return FERRY_EIO;
    fr_default_name(kind, have, rows > 0, out, cap);
    return FERRY_OK;
}
