/*
 * broker_auth.c - users and permissions in the broker (--users): the users
 * file loaded at start and on SIGHUP, the ZAP handler that lets in only
 * their keys, and the check of every request against its user's
 * permissions (docs/security.md).
 */
#include "broker_int.h"

#include "clock.h"
#include "users.h"
#include "zap.h"

#include <stdio.h>
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
    if ((st = fy_zap_start(self->ctx, self->users, self->log, &self->zap, err)))
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
    fy_zap_stop(&self->zap);
    fy_users_destroy(&self->users);
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
    zmq_msg_t *env = &self->frames[self->reqs[ri].first + 1];
    const char *name = zmq_msg_gets(env, "User-Id");
    const fy_user_t *user =
        name ? fy_users_by_name(self->users, (fy_bytes_t){(const uint8_t *)name, strlen(name)})
             : NULL;
    char msg[400];
    if (user && !need)
        return true;
    if (user) {
        for (unsigned p = FY_PERM_PUBLISH; p <= FY_PERM_ADMIN; p <<= 1)
            if ((need & p) && fy_user_may(user, (fy_perm_t)p, req->name))
                return true;
        snprintf(msg, sizeof msg, "user %s may not %s %.*s (%s)", fy_user_name(user),
                 need == (FY_PERM_PUBLISH | FY_PERM_CONSUME | FY_PERM_ADMIN)
                     ? "see"
                     : fy_perm_name((fy_perm_t)need),
                 (int)req->name.len, (const char *)req->name.ptr, fy_op_name(req->op));
    } else {
        snprintf(msg, sizeof msg, "user %s is not in the users file (any more): %s refused",
                 name ? name : "(none)", fy_op_name(req->op));
    }
    self->forbidden++;
    zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
    uint64_t held;
    if (fy_ratelog_allow(&self->forbid_log, zmq_msg_data(ident), zmq_msg_size(ident), fy_mono_ms(),
                         &held))
        fy_log(self->log, FY_LOG_WARN, "security", "forbidden", "held_back=%llu detail=\"%s\"",
               (unsigned long long)held, msg);
    fy_brk_error(self, ri, req, FERRY_EFORBIDDEN, msg);
    return false;
}
