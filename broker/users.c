/* SPDX-License-Identifier: MIT */
/*
 * users.c - the users file: users, their keys and their permissions
 * (users.h).
 */
#include "users.h"

#include "curvekey.h"
#include "grow.h"
#include "subject.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    char *text; /* one pattern, NUL-terminated */
    fy_perm_t perm;
} s_rule_t;

struct fy_user {
    char name[FY_USER_NAME_MAX + 1];
    uint32_t max_consumers;    /* 0: no limit of its own */
    uint32_t max_connections;  /* 0: no limit of its own */
    uint64_t max_publish_rate; /* bytes per second; 0: none */
    s_rule_t *rules;
    size_t nrules, rules_cap;
};

typedef struct {
    uint8_t key[32];
    size_t user; /* index into users */
} s_key_t;

struct fy_users {
    fy_user_t *users;
    size_t n, cap;
    s_key_t *keys;
    size_t nkeys, keys_cap;
};

static bool
s_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > FY_USER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

typedef struct {
    fy_users_t *users;
    fy_err_t *err;
    bool failed;
} s_load_t;

static int
s_fail(s_load_t *l, const char *fmt, const char *a, const char *b)
{
    fy_err_set(l->err, FERRY_EINVAL, fmt, a, b);
    l->failed = true;
    return 0;
}

/* The user of section @p section, added if new. */
static fy_user_t *
s_user(fy_users_t *u, const char *section)
{
    if (u->n && strcmp(u->users[u->n - 1].name, section) == 0)
        return &u->users[u->n - 1];
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->users[i].name, section) == 0)
            return &u->users[i];
    if (!fy_grow(&u->users, &u->cap, u->n + 1, sizeof *u->users, 8))
        return NULL;
    fy_user_t *user = &u->users[u->n++];
    memset(user, 0, sizeof *user);
    snprintf(user->name, sizeof user->name, "%s", section);
    return user;
}

static int
s_add_key(s_load_t *l, fy_user_t *user, const char *value)
{
    fy_users_t *u = l->users;
    uint8_t key[32];
    if (!fy_curvekey_valid(value) || !zmq_z85_decode(key, value))
        return s_fail(l,
                      "[%s] %s: not a CURVE public key (40 z85 characters: ferry keygen, "
                      "ferry passwd)",
                      user->name, "key");
    for (size_t i = 0; i < u->nkeys; i++)
        if (memcmp(u->keys[i].key, key, 32) == 0)
            return s_fail(l, "[%s] key: already the key of [%s]", user->name,
                          u->users[u->keys[i].user].name);
    if (!fy_grow(&u->keys, &u->keys_cap, u->nkeys + 1, sizeof *u->keys, 8))
        return s_fail(l, "[%s] %s: out of memory", user->name, "key");
    memcpy(u->keys[u->nkeys].key, key, 32);
    u->keys[u->nkeys++].user = (size_t)(user - u->users);
    return 1;
}

/* "orders.>, billing.*": each pattern becomes a rule. */
static int
s_add_rules(s_load_t *l, fy_user_t *user, fy_perm_t perm, const char *what, const char *value)
{
    const char *p = value;
    bool any = false;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        if (end == p)
            break;
        fy_bytes_t pat = {(const uint8_t *)p, (size_t)(end - p)};
        if (!fy_subject_pattern_valid(pat)) {
            char shown[300];
            snprintf(shown, sizeof shown, "%.*s", (int)pat.len, p);
            fy_err_set(l->err, FERRY_EINVAL,
                       "[%s] %s: '%s' is not a subject pattern (tokens separated by '.', '*' for "
                       "one token, '>' last for the rest)",
                       user->name, what, shown);
            l->failed = true;
            return 0;
        }
        if (!fy_grow(&user->rules, &user->rules_cap, user->nrules + 1, sizeof *user->rules, 4))
            return s_fail(l, "[%s] %s: out of memory", user->name, what);
        s_rule_t *r = &user->rules[user->nrules];
        if (!(r->text = strndup(p, pat.len)))
            return s_fail(l, "[%s] %s: out of memory", user->name, what);
        r->perm = perm;
        user->nrules++;
        any = true;
        p = end;
    }
    if (!any)
        return s_fail(l, "[%s] %s: no pattern given", user->name, what);
    return 1;
}

/* "10", "64K", "5M", "1G": a count or bytes. */
static bool
s_amount(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    if (!v || *v < '0' || *v > '9')
        return false;
    unsigned long long x = strtoull(v, &end, 10);
    unsigned shift = *end == 'K' || *end == 'k'   ? 10
                     : *end == 'M' || *end == 'm' ? 20
                     : *end == 'G' || *end == 'g' ? 30
                                                  : 0;
    if (shift)
        end++;
    if (*end || x > (hi >> shift))
        return false;
    *out = (uint64_t)x << shift;
    return *out >= lo && *out <= hi;
}

static int
s_on_entry(void *arg, const char *section, const char *name, const char *value)
{
    s_load_t *l = arg;
    if (l->failed)
        return 0;
    if (!s_name_valid(section))
        return s_fail(l, "[%s] %s: a user name is 1-64 of A-Z a-z 0-9 _ . -", section, name);
    fy_user_t *user = s_user(l->users, section);
    if (!user)
        return s_fail(l, "[%s] %s: out of memory", section, name);
    if (strcmp(name, "key") == 0)
        return s_add_key(l, user, value);
    if (strcmp(name, "publish") == 0)
        return s_add_rules(l, user, FY_PERM_PUBLISH, name, value);
    if (strcmp(name, "consume") == 0)
        return s_add_rules(l, user, FY_PERM_CONSUME, name, value);
    if (strcmp(name, "admin") == 0)
        return s_add_rules(l, user, FY_PERM_ADMIN, name, value);
    uint64_t x;
    if (strcmp(name, "max-consumers") == 0) {
        if (!s_amount(value, 1, 65536, &x))
            return s_fail(l, "[%s] %s: push consumers at once, 1-65536", section, name);
        user->max_consumers = (uint32_t)x;
        return 1;
    }
    if (strcmp(name, "max-connections") == 0) {
        if (!s_amount(value, 1, 65536, &x))
            return s_fail(l, "[%s] %s: connections served at once, 1-65536", section, name);
        user->max_connections = (uint32_t)x;
        return 1;
    }
    if (strcmp(name, "max-publish-rate") == 0) {
        if (!s_amount(value, 1024, 1ull << 40, &x))
            return s_fail(l, "[%s] %s: bytes per second, 1K-1T (e.g. 512K, 10M)", section, name);
        user->max_publish_rate = x;
        return 1;
    }
    return s_fail(l,
                  "[%s] %s: unknown setting (key, publish, consume, admin, max-consumers, "
                  "max-connections, max-publish-rate)",
                  section, name);
}

fy_status_t
fy_users_load(const char *path, fy_users_t **out, fy_err_t *err)
{
    *out = NULL;
    fy_users_t *u = calloc(1, sizeof *u);
    if (!u)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    s_load_t l = {.users = u, .err = err};
    int rc = ini_parse(path, s_on_entry, &l);
    fy_status_t st = FERRY_OK;
    if (rc == -1) {
        st = fy_err_set(err, FERRY_EIO, "cannot read the users file %s", path);
    } else if (rc != 0 || l.failed) {
        char detail[sizeof err->msg];
        snprintf(detail, sizeof detail, "%s", l.failed ? err->msg : "not an INI line");
        st = fy_err_set(err, FERRY_EINVAL, "%s:%d: %s", path, rc > 0 ? rc : 0, detail);
    }
    for (size_t i = 0; st == FERRY_OK && i < u->n; i++) {
        bool has_key = false;
        for (size_t k = 0; k < u->nkeys && !has_key; k++)
            has_key = u->keys[k].user == i;
        if (!has_key)
            st = fy_err_set(err, FERRY_EINVAL, "%s: [%s] has no key (ferry keygen, ferry passwd)",
                            path, u->users[i].name);
    }
    if (st) {
        fy_users_destroy(&u);
        return st;
    }
    *out = u;
    return FERRY_OK;
}

void
fy_users_destroy(fy_users_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fy_users_t *u = *self_p;
    for (size_t i = 0; i < u->n; i++) {
        for (size_t r = 0; r < u->users[i].nrules; r++)
            free(u->users[i].rules[r].text);
        free(u->users[i].rules);
    }
    free(u->users);
    free(u->keys);
    free(u);
    *self_p = NULL;
}

size_t
fy_users_count(const fy_users_t *self)
{
    return self ? self->n : 0;
}

const fy_user_t *
fy_users_by_key(const fy_users_t *self, const uint8_t *key)
{
    for (size_t i = 0; self && i < self->nkeys; i++)
        if (memcmp(self->keys[i].key, key, 32) == 0)
            return &self->users[self->keys[i].user];
    return NULL;
}

const fy_user_t *
fy_users_by_name(const fy_users_t *self, fy_bytes_t name)
{
    for (size_t i = 0; self && i < self->n; i++)
        if (strlen(self->users[i].name) == name.len &&
            memcmp(self->users[i].name, name.ptr, name.len) == 0)
            return &self->users[i];
    return NULL;
}

const char *
fy_user_name(const fy_user_t *user)
{
    return user->name;
}

bool
fy_user_may(const fy_user_t *user, fy_perm_t perm, fy_bytes_t topic)
{
    /* Request/reply inboxes: every user's. */
    static const fy_bytes_t inbox = {(const uint8_t *)"_inbox.*", 8};
    if (fy_subject_match(inbox, topic))
        return true;
    for (size_t i = 0; i < user->nrules; i++) {
        const s_rule_t *r = &user->rules[i];
        if ((r->perm & perm) &&
            fy_subject_match((fy_bytes_t){(const uint8_t *)r->text, strlen(r->text)}, topic))
            return true;
    }
    return false;
}

uint32_t
fy_user_max_consumers(const fy_user_t *user)
{
    return user->max_consumers;
}

uint32_t
fy_user_max_connections(const fy_user_t *user)
{
    return user->max_connections;
}

uint64_t
fy_user_max_publish_rate(const fy_user_t *user)
{
    return user->max_publish_rate;
}

const char *
fy_perm_name(fy_perm_t perm)
{
    return perm == FY_PERM_PUBLISH ? "publish" : perm == FY_PERM_CONSUME ? "consume" : "admin";
}
