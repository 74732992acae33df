/*
 * pgutil.c - helpers of the PostgreSQL sources (pgutil.h).
 */
#include "pgutil.h"

#include <stdio.h>
#include <string.h>

int
fr_pg_fail(PGconn *db, char *err, size_t errlen, const char *what)
{
    const char *m = db ? PQerrorMessage(db) : "out of memory";
    size_t len = strlen(m);
    while (len && (m[len - 1] == '\n' || m[len - 1] == ' '))
        len--;
    snprintf(err, errlen, "postgresql: %s: %.*s", what, (int)len, m);
    return -1;
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
