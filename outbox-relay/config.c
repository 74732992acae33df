/* SPDX-License-Identifier: MIT */
/*
 * config.c - ferry-relay settings from flags and INI files (config.h).
 */
#include "config.h"

#include "endpoint.h"
#include "redact.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
fr_config_defaults(fr_source_cfg_t *c)
{
    memset(c, 0, sizeof *c);
    fr_config_init(&c->cfg);
    snprintf(c->broker, sizeof c->broker, "%s", c->cfg.broker);
    snprintf(c->table, sizeof c->table, "%s", c->cfg.table);
    snprintf(c->tmpl, sizeof c->tmpl, "%s", c->cfg.topic_template);
    snprintf(c->dlq, sizeof c->dlq, "%s", c->cfg.dlq_topic);
}

static bool
s_num(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    long long x = v && *v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static fy_status_t
s_copy(char *dst, size_t cap, const char *v, const char *key, fy_err_t *err)
{
    if (strlen(v) >= cap) {
        return fy_err_set(err, FERRY_EINVAL, "%s is too long (at most %zu bytes)", key, cap - 1);
    }
    memcpy(dst, v, strlen(v) + 1);
    return FERRY_OK;
}

fy_status_t
fr_config_set(fr_source_cfg_t *c, const char *key, const char *v, fy_err_t *err)
{
    long long x;
    fr_config_t *g = &c->cfg;
    if (!strcmp(key, "source"))
        return s_copy(c->source, sizeof c->source, v, key, err);
    if (!strcmp(key, "table"))
        return s_copy(c->table, sizeof c->table, v, key, err);
    if (!strcmp(key, "name"))
        return s_copy(c->name, sizeof c->name, v, key, err);
    if (!strcmp(key, "rename-from"))
        return s_copy(c->rename_from, sizeof c->rename_from, v, key, err);
    if (!strcmp(key, "server") || !strcmp(key, "broker")) { /* broker: the old name */
        char ep[sizeof c->broker];
        if (!fy_endpoint_normalize(v, ep, sizeof ep))
            return fy_err_set(err, FERRY_EINVAL, "%s %s: wants " FY_ENDPOINT_FORMS, key, v);
        return s_copy(c->broker, sizeof c->broker, ep, key, err);
    }
    if (!strcmp(key, "server-key"))
        return s_copy(c->server_key, sizeof c->server_key, v, key, err);
    if (!strcmp(key, "client-key"))
        return s_copy(c->client_key, sizeof c->client_key, v, key, err);
    if (!strcmp(key, "user"))
        return s_copy(c->user, sizeof c->user, v, key, err);
    if (!strcmp(key, "password-file"))
        return s_copy(c->password_file, sizeof c->password_file, v, key, err);
    if (!strcmp(key, "topic-template"))
        return s_copy(c->tmpl, sizeof c->tmpl, v, key, err);
    if (!strcmp(key, "slot"))
        return s_copy(c->slot, sizeof c->slot, v, key, err);
    if (!strcmp(key, "publication"))
        return s_copy(c->publication, sizeof c->publication, v, key, err);
    if (!strcmp(key, "dlq-topic"))
        return s_copy(c->dlq, sizeof c->dlq, v, key, err);
    if (!strcmp(key, "metrics"))
        return s_copy(c->metrics, sizeof c->metrics, v, key, err);
    if (!strcmp(key, "on-publish") && (!strcmp(v, "keep") || !strcmp(v, "delete")))
        g->delete_published = v[0] == 'd';
    else if (!strcmp(key, "on-poison") && (!strcmp(v, "dlq") || !strcmp(v, "stop")))
        g->on_poison = v[0] == 's' ? FR_POISON_STOP : FR_POISON_DLQ;
    else if (!strcmp(key, "poll-ms") && s_num(v, 1, 60000, &x))
        g->poll_ms = (int)x;
    else if (!strcmp(key, "batch") && s_num(v, 1, 1000, &x))
        g->batch = (size_t)x;
    else if (!strcmp(key, "dedupe-window-ms") && s_num(v, 1000, 365LL * 86400000, &x))
        g->dedupe_window_ms = (uint64_t)x;
    else if (!strcmp(key, "stats-ms") && s_num(v, 100, 3600000, &x))
        g->stats_ms = (int)x;
    else if (!strcmp(key, "stuck-error-ms") && s_num(v, 0, 7LL * 86400000, &x))
        g->stuck_error_ms = x;
    else {
        return fy_err_set(err, FERRY_EINVAL, "bad setting %s = %s (see ferry-relay --help)", key,
                          v);
    }
    return FERRY_OK;
}

fy_status_t
fr_config_finish(fr_source_cfg_t *c, fy_err_t *err)
{
    fr_config_t *g = &c->cfg;
    const char *colon = strchr(c->source, ':');
    size_t kind = colon ? (size_t)(colon - c->source) : 0;
    if (!c->source[0]) {
        return fy_err_set(err, FERRY_EINVAL,
                          "a source is required (source = sqlite:PATH, lmdb:DIR, pg:CONNINFO "
                          "or pg-logical:CONNINFO)");
    }
    if (kind == 6 && !strncmp(c->source, "sqlite", 6))
        g->ops = &fr_sqlite_source;
    else if (kind == 4 && !strncmp(c->source, "lmdb", 4))
        g->ops = &fr_lmdb_source;
    else if (kind == 2 && !strncmp(c->source, "pg", 2))
        g->ops = &fr_pg_source;
    else if (kind == 10 && !strncmp(c->source, "pg-logical", 10))
        g->ops = &fr_pglog_source;
    else {
        char shown[sizeof c->source];
        return fy_err_set(err, FERRY_EINVAL,
                          "unknown source '%s' (sqlite:PATH, lmdb:DIR, pg:CONNINFO or "
                          "pg-logical:CONNINFO)",
                          fr_redact(c->source, shown, sizeof shown));
    }
    g->location = colon + 1;
    if (!*g->location) {
        return fy_err_set(err, FERRY_EINVAL, "source '%s' has no location", c->source);
    }
    /* No name: the source makes its default at open (identity.h). */
    g->broker = c->broker;
    g->server_key = c->server_key;
    g->client_key = c->client_key;
    g->user = c->user;
    g->password_file = c->password_file;
    if (c->user[0] && !c->password_file[0])
        return fy_err_set(err, FERRY_EINVAL,
                          "user %s needs password-file (a file, mode 600, whose first line is "
                          "the password; never the command line)",
                          c->user);
    g->table = c->table;
    g->name = c->name;
    g->rename_from = c->rename_from;
    g->topic_template = c->tmpl;
    g->dlq_topic = c->dlq;
    g->slot = c->slot;
    g->publication = c->publication;
    return FERRY_OK;
}

typedef struct {
    fr_source_cfg_t shared; /* [relay] */
    fr_source_cfg_t **out;
    size_t n, max;
    fy_err_t *err;
    bool failed;
} s_load_t;

static int
s_on_entry(void *user, const char *section, const char *name, const char *value)
{
    s_load_t *l = user;
    if (l->failed)
        return 0;
    if (!strcmp(section, "relay")) {
        if (fr_config_set(&l->shared, name, value, l->err) != 0)
            l->failed = true;
        return !l->failed;
    }
    if (strncmp(section, "source ", 7) != 0 || !section[7]) {
        fy_err_set(l->err, FERRY_EINVAL, "unknown section [%s] ([relay] or [source NAME])",
                   section);
        l->failed = true;
        return 0;
    }
    /* A new [source NAME] starts from the [relay] settings read so far. */
    const char *sname = section + 7;
    fr_source_cfg_t *c = l->n ? l->out[l->n - 1] : NULL;
    for (size_t i = 0; c && strcmp(c->name, sname) != 0 && i + 1 < l->n; i++)
        if (!strcmp(l->out[i]->name, sname)) {
            /* Two sources of one name would publish under the same ids. */
            fy_err_set(l->err, FERRY_EINVAL, "[source %s] appears twice", sname);
            l->failed = true;
            return 0;
        }
    if (!c || strcmp(c->name, sname) != 0) {
        if (l->n == l->max) {
            fy_err_set(l->err, FERRY_EINVAL, "at most %zu sources", l->max);
            l->failed = true;
            return 0;
        }
        c = malloc(sizeof *c);
        if (!c) {
            l->failed = true;
            return 0;
        }
        *c = l->shared;
        snprintf(c->name, sizeof c->name, "%s", sname);
        l->out[l->n++] = c;
    }
    if (!strcmp(name, "name")) {
        fy_err_set(l->err, FERRY_EINVAL, "[source %s]: the section names the source", sname);
        l->failed = true;
        return 0;
    }
    if (fr_config_set(c, name, value, l->err) != 0)
        l->failed = true;
    return !l->failed;
}

fy_status_t
fr_config_load(const char *path, const fr_source_cfg_t *defaults, fr_source_cfg_t **out, size_t max,
               size_t *n, fy_err_t *err)
{
    *n = 0;
    s_load_t l = {.shared = *defaults, .out = out, .max = max, .err = err};
    int rc = ini_parse(path, s_on_entry, &l);
    fy_status_t st = FERRY_EINVAL;
    if (rc == -1) {
        st = fy_err_set(err, FERRY_EIO, "cannot read %s", path);
    } else if (rc != 0 || l.failed) {
        char detail[sizeof err->msg];
        snprintf(detail, sizeof detail, "%s", l.failed ? err->msg : "not an INI line");
        fy_err_set(err, FERRY_EINVAL, "%s:%d: %s", path, rc > 0 ? rc : 0, detail);
        rc = -1;
    } else if (l.n == 0) {
        fy_err_set(err, FERRY_EINVAL, "%s has no [source NAME] section", path);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        if (fr_config_finish(out[i], err) != 0)
            rc = -1;
    if (rc != 0) {
        for (size_t i = 0; i < l.n; i++)
            free(out[i]);
        return st;
    }
    *n = l.n;
    return FERRY_OK;
}
