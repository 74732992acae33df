/* SPDX-License-Identifier: MIT */
/*
 * broker_auth.c - users and permissions in the broker (--users): the users
 * file loaded at start and on SIGHUP, the ZAP handler that lets in only
 * their keys, and the check of every request against its user's
 * permissions (docs/security.md).
 */
#include "broker_int.h"

#include "clock.h"
#include "userconns.h"
#include "users.h"
#include "zap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

fy_status_t
fy_brk_auth_start(fy_broker_t *self, fy_err_t *err)
{
    if (!self->cfg.users[0])
        return FERRY_OK;
    fy_status_t st = fy_users_load(self->cfg.users, &self->users, err);
    if (st)
        return st;
    if ((st = fy_zap_start(self->ctx, self->users, self->log, &self->zap, err)) ||
        (st = fy_userconns_new(self->ctx, self->sock, &self->userconns, err)))
        return st;
    fy_ratelog_init(&self->forbid_log, 10000);
    fy_log(self->log, FY_LOG_INFO, "security", "users", "file=%s users=%zu", self->cfg.users,
           fy_users_count(self->users));
    return FERRY_OK;
}

void
fy_brk_auth_reload(fy_broker_t *self)
{
    if (!self->users) {
        fy_log(self->log, FY_LOG_INFO, "security", "nothing to reload",
               "detail=\"SIGHUP: ferryd runs without --users\"");
        return;
    }
    fy_users_t *fresh;
    fy_err_t err = {0};
    if (fy_users_load(self->cfg.users, &fresh, &err) != FERRY_OK) {
        fy_log(self->log, FY_LOG_ERROR, "security", "users file not reloaded",
               "file=%s detail=\"%s; the users loaded before stay\"", self->cfg.users, err.msg);
        return;
    }
    fy_zap_set_users(self->zap, fresh);
    fy_users_destroy(&self->users);
    self->users = fresh;
    fy_log(self->log, FY_LOG_INFO, "security", "users reloaded", "file=%s users=%zu",
           self->cfg.users, fy_users_count(fresh));
}

void
fy_brk_auth_stop(fy_broker_t *self)
{
    fy_userconns_destroy(&self->userconns);
    fy_zap_stop(&self->zap);
    fy_users_destroy(&self->users);
    free(self->rates);
    self->rates = NULL;
}

/* The user of request @p ri's connection in the current table, or NULL;
 * *name gets what the connection says (may be NULL). */
static const fy_user_t *
s_user_of(fy_broker_t *self, size_t ri, const char **name)
{
    zmq_msg_t *env = &self->frames[self->reqs[ri].first + 1];
    *name = zmq_msg_gets(env, "User-Id");
    return *name
               ? fy_users_by_name(self->users, (fy_bytes_t){(const uint8_t *)*name, strlen(*name)})
               : NULL;
}

/* Counts a refused request in @p counter and says why (@p what, @p msg) in
 * the log at most once per client per 10 s. */
static void
s_said(fy_broker_t *self, size_t ri, uint64_t *counter, const char *what, const char *msg)
{
    (*counter)++;
    zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
    uint64_t held;
    if (fy_ratelog_allow(&self->forbid_log, zmq_msg_data(ident), zmq_msg_size(ident), fy_mono_ms(),
                         &held))
        fy_log(self->log, FY_LOG_WARN, "security", what, "held_back=%llu detail=\"%s\"",
               (unsigned long long)held, msg);
}

/* Takes @p bytes from @p user's publish budget. @return false if it does
 * not hold them (a request larger than a second's worth passes when the
 * bucket is full: it could never pass otherwise). */
static bool
s_rate_take(fy_broker_t *self, const fy_user_t *user, uint64_t bytes)
{
    uint64_t rate = fy_user_max_publish_rate(user);
    if (!rate)
        return true;
    const char *name = fy_user_name(user);
    fy_brk_rate_t *b = NULL;
    for (size_t i = 0; i < self->nrates && !b; i++)
        if (strcmp(self->rates[i].user, name) == 0)
            b = &self->rates[i];
    long long now = fy_mono_us();
    if (!b) {
        if (!fy_grow(&self->rates, &self->rates_cap, self->nrates + 1, sizeof *self->rates, 8))
            return true; /* out of memory: no limit rather than no service */
        b = &self->rates[self->nrates++];
        snprintf(b->user, sizeof b->user, "%s", name);
        b->tokens = (double)rate;
        b->at_us = now;
    }
    b->tokens += (double)rate * (double)(now - b->at_us) / 1e6;
    if (b->tokens > (double)rate)
        b->tokens = (double)rate;
    b->at_us = now;
    if ((double)bytes > b->tokens && b->tokens < (double)rate)
        return false;
    b->tokens -= (double)bytes;
    return true;
}

fy_status_t
fy_brk_auth_consumer(fy_broker_t *self, size_t ri, char *user, fy_err_t *err)
{
    user[0] = '\0';
    if (!self->users)
        return FERRY_OK;
    const char *name;
    const fy_user_t *u = s_user_of(self, ri, &name);
    if (!u)
        return FERRY_OK; /* fy_brk_auth_allows refused it already */
    snprintf(user, 65, "%s", fy_user_name(u));
    uint32_t max = fy_user_max_consumers(u), have = 0;
    for (size_t i = 0; max && i < self->cons.nlive; i++)
        have += !self->cons.live[i].removed && strcmp(self->cons.live[i].user, user) == 0;
    if (max && have >= max)
        return fy_err_set(err, FERRY_ETOO_MANY,
                          "user %s has %u push consumers, its max-consumers (users file)", user,
                          have);
    return FERRY_OK;
}

void
fy_brk_auth_stats(fy_broker_t *self, uint64_t *accepted, uint64_t *refused)
{
    fy_zap_stats_t zs = {0};
    if (self->zap)
        fy_zap_stats(self->zap, &zs);
    *accepted = zs.accepted;
    *refused = zs.refused;
}

/* A publish within its user's rate, or answered ERATE (logged at most once
 * per client per 10 s, counted). */
static bool
s_rate_allows(fy_broker_t *self, size_t ri, const fy_request_t *req, const fy_user_t *user)
{
    const fy_brk_req_t *rq = &self->reqs[ri];
    uint64_t bytes = 0;
    for (size_t f = 1; f < rq->nframes; f++)
        bytes += zmq_msg_size(&self->frames[rq->first + f]);
    if (s_rate_take(self, user, bytes))
        return true;
    char msg[300];
    snprintf(msg, sizeof msg,
             "user %s is over its max-publish-rate of %llu bytes/s: %s to %.*s refused, "
             "nothing stored",
             fy_user_name(user), (unsigned long long)fy_user_max_publish_rate(user),
             fy_op_name(req->op), (int)req->name.len, (const char *)req->name.ptr);
    s_said(self, ri, &self->rate_limited, "over its rate", msg);
    fy_brk_error(self, ri, req, FERRY_ERATE, msg);
    return false;
}

/* A request on a connection its user's max-connections serves, or answered
 * ETOO_MANY (logged at most once per client per 10 s, counted). */
static bool
s_connection_allows(fy_broker_t *self, size_t ri, const fy_request_t *req, const fy_user_t *user)
{
    zmq_msg_t *env = &self->frames[self->reqs[ri].first + 1];
    uint32_t have, max = fy_user_max_connections(user);
    if (!self->userconns || fy_userconns_admit(self->userconns, zmq_msg_get(env, ZMQ_SRCFD),
                                               fy_user_name(user), max, &have))
        return true;
    char msg[300];
    snprintf(msg, sizeof msg,
             "user %s has %u connections served, its max-connections (users file): %s refused "
             "on this one until another closes",
             fy_user_name(user), have, fy_op_name(req->op));
    s_said(self, ri, &self->over_connections, "over its connections", msg);
    fy_brk_error(self, ri, req, FERRY_ETOO_MANY, msg);
    return false;
}

/* The permission request @p req needs, and on which topic; 0: none. */
static unsigned
s_needs(const fy_request_t *req)
{
    switch (req->op) {
    case FY_OP_PUBLISH:
    case FY_OP_PUBLISH_BATCH:
        return FY_PERM_PUBLISH;
    case FY_OP_DECLARE:
    case FY_OP_DELETE:
        return FY_PERM_ADMIN;
    case FY_OP_SUB_DECLARE:
    case FY_OP_FETCH:
    case FY_OP_ACK:
    case FY_OP_NACK:
    case FY_OP_TERM:
    case FY_OP_PROGRESS:
    case FY_OP_SUB_INFO:
    case FY_OP_SUBSCRIBE:
    case FY_OP_GET:
    case FY_OP_READ:
        return FY_PERM_CONSUME;
    case FY_OP_INFO:
        return FY_PERM_PUBLISH | FY_PERM_CONSUME | FY_PERM_ADMIN;
    case FY_OP_PURGE:
    case FY_OP_EDIT:
    case FY_OP_NODE_ADD:
    case FY_OP_NODE_REMOVE:
    case FY_OP_BACKUP:
        return FY_PERM_ADMIN;
    case FY_OP_SUBS:
    case FY_OP_SUB_DELETE: /* and then its owner, or admin (fy_brk_auth_sub) */
    case FY_OP_SEEK:
        return FY_PERM_CONSUME | FY_PERM_ADMIN;
    default: /* hello, ping, stats; credit and unsubscribe act on the connection's own */
        return 0;
    }
}

bool
fy_brk_auth_allows(fy_broker_t *self, size_t ri, const fy_request_t *req)
{
    if (!self->users)
        return true;
    unsigned need = s_needs(req);
    const char *name;
    const fy_user_t *user = s_user_of(self, ri, &name);
    char msg[400];
    if (user && fy_user_max_connections(user) && !s_connection_allows(self, ri, req, user))
        return false;
    if (user && !need)
        return true;
    if (user) {
        for (unsigned p = FY_PERM_PUBLISH; p <= FY_PERM_ADMIN; p <<= 1)
            if ((need & p) && fy_user_may(user, (fy_perm_t)p, req->name))
                return need != FY_PERM_PUBLISH || s_rate_allows(self, ri, req, user);
        snprintf(msg, sizeof msg, "user %s may not %s %.*s (%s)", fy_user_name(user),
                 need == (FY_PERM_PUBLISH | FY_PERM_CONSUME | FY_PERM_ADMIN)
                     ? "see"
                     : fy_perm_name((fy_perm_t)need),
                 (int)req->name.len, (const char *)req->name.ptr, fy_op_name(req->op));
    } else {
        snprintf(msg, sizeof msg, "user %s is not in the users file (any more): %s refused",
                 name ? name : "(none)", fy_op_name(req->op));
    }
    s_said(self, ri, &self->forbidden, "forbidden", msg);
    fy_brk_error(self, ri, req, FERRY_EFORBIDDEN, msg);
    return false;
}

bool
fy_brk_auth_sees(fy_broker_t *self, size_t ri, fy_bytes_t topic)
{
    if (!self->users)
        return true;
    const char *name;
    const fy_user_t *u = s_user_of(self, ri, &name);
    for (unsigned p = FY_PERM_PUBLISH; u && p <= FY_PERM_ADMIN; p <<= 1)
        if (fy_user_may(u, (fy_perm_t)p, topic))
            return true;
    return false;
}

const char *
fy_brk_auth_user(fy_broker_t *self, size_t ri)
{
    if (!self->users)
        return NULL;
    const char *name;
    const fy_user_t *u = s_user_of(self, ri, &name);
    return u ? fy_user_name(u) : NULL;
}

fy_status_t
fy_brk_auth_sub(fy_broker_t *self, size_t ri, const fy_request_t *req, const char *owner,
                fy_err_t *err)
{
    if (!self->users || !owner[0])
        return FERRY_OK;
    const char *name;
    const fy_user_t *u = s_user_of(self, ri, &name);
    if (!u || strcmp(fy_user_name(u), owner) == 0 || fy_user_may(u, FY_PERM_ADMIN, req->name))
        return FERRY_OK; /* no user: fy_brk_auth_allows refused it already */
    fy_err_set(err, FERRY_EFORBIDDEN,
               "user %s may not %s subscription %.*s of %.*s: it belongs to user %s (admin on "
               "the topic may use any)",
               fy_user_name(u), fy_op_name(req->op), (int)req->sub.len, (const char *)req->sub.ptr,
               (int)req->name.len, (const char *)req->name.ptr, owner);
    s_said(self, ri, &self->forbidden, "forbidden", err->msg);
    return FERRY_EFORBIDDEN;
}
