/* SPDX-License-Identifier: MIT */
/*
 * options.c - ferry_options_t: defaults, setters with their ranges, and the
 * status texts of the public API. ferry_client_new copies the options.
 */
#include <stdio.h>

#include "client_int.h"
#include "endpoint.h"
#include "curvekey.h"

/* ---- options ------------------------------------------------------------- */

ferry_options_t *
ferry_options_new(void)
{
    ferry_options_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->servers[0] = fy_cli_strdup(FY_DEFAULT_ENDPOINT);
    o->nservers = 1;
    o->name = fy_cli_strdup("libferry");
    if (!o->servers[0] || !o->name) {
        ferry_options_destroy(&o);
        return NULL;
    }
    o->timeout_ms = 5000;
    o->heartbeat_ms = FY_CLI_HEARTBEAT_MS;
    o->window = 1000;
    o->reconnect_initial_ms = 100;
    o->reconnect_max_ms = 5000;
    o->reconnect_jitter_pct = 20;
    o->block_on_full = true;
    /* The broker's CURVE key from the environment: every program on
     * libferry (ferry, ferry-relay, services) gets it without a flag. */
    const char *key = getenv("FERRY_SERVER_KEY");
    if (key && *key && ferry_options_set_server_key(o, key) != FERRY_OK)
        o->bad_env_key = true;
    const char *ckey = getenv("FERRY_CLIENT_KEY");
    if (ckey && *ckey && ferry_options_set_client_key(o, ckey) != FERRY_OK)
        o->bad_env_key = true;
    const char *user = getenv("FERRY_USER"), *password = getenv("FERRY_PASSWORD");
    if (user && *user && password && *password &&
        ferry_options_set_credentials(o, user, password) != FERRY_OK)
        o->bad_env_key = true;
    return o;
}

ferry_status_t
ferry_curve_keypair(char public_key[41], char secret_key[41])
{
    if (!public_key || !secret_key || !zmq_has("curve"))
        return FERRY_EINVAL;
    return zmq_curve_keypair(public_key, secret_key) == 0 ? FERRY_OK : FERRY_EINVAL;
}

ferry_status_t
ferry_options_set_server_key(ferry_options_t *opts, const char *key)
{
    if (!opts)
        return FERRY_EINVAL;
    fy_err_t err;
    return fy_curvekey_read(key, false, opts->server_key, &err);
}

ferry_status_t
ferry_options_set_client_keys(ferry_options_t *opts, const char *public_key, const char *secret_key)
{
    if (!opts || !fy_curvekey_valid(public_key))
        return FERRY_EINVAL;
    fy_err_t err;
    char secret[FY_CURVE_KEY_LEN + 1];
    ferry_status_t st = fy_curvekey_read(secret_key, true, secret, &err);
    if (st == FERRY_EINVAL && fy_curvekey_valid(secret_key)) { /* the key itself */
        memcpy(secret, secret_key, sizeof secret);
        st = FERRY_OK;
    }
    if (st)
        return st;
    memcpy(opts->public_key, public_key, sizeof opts->public_key);
    memcpy(opts->secret_key, secret, sizeof opts->secret_key);
    memset(secret, 0, sizeof secret);
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_client_key(ferry_options_t *opts, const char *secret_key)
{
    if (!opts || !secret_key)
        return FERRY_EINVAL;
    fy_err_t err;
    char secret[FY_CURVE_KEY_LEN + 1], public_key[FY_CURVE_KEY_LEN + 1];
    ferry_status_t st = fy_curvekey_read(secret_key, true, secret, &err);
    if (st == FERRY_EINVAL && fy_curvekey_valid(secret_key)) {
        memcpy(secret, secret_key, sizeof secret);
        st = FERRY_OK;
    }
    if (st == FERRY_OK && zmq_curve_public(public_key, secret) != 0)
        st = FERRY_EINVAL;
    if (st == FERRY_OK) {
        memcpy(opts->public_key, public_key, sizeof opts->public_key);
        memcpy(opts->secret_key, secret, sizeof opts->secret_key);
    }
    memset(secret, 0, sizeof secret);
    return st;
}

static void
s_free_servers(ferry_options_t *o)
{
    for (size_t i = 0; i < o->nservers; i++)
        free(o->servers[i]);
    o->nservers = 0;
}

void
ferry_options_destroy(ferry_options_t **opts_p)
{
    if (!opts_p || !*opts_p)
        return;
    ferry_options_t *o = *opts_p;
    s_free_servers(o);
    free(o->name);
    free(o->user);
    free(o->password);
    free(o);
    *opts_p = NULL;
}

static ferry_status_t
s_set_str(char **field, const char *value, size_t max)
{
    if (!value || !*value || strlen(value) > max)
        return FERRY_EINVAL;
    char *copy = fy_cli_strdup(value);
    if (!copy)
        return FERRY_ENOMEM;
    free(*field);
    *field = copy;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_server(ferry_options_t *opts, const char *endpoint)
{
    char ep[1100];
    if (!opts || !endpoint || strlen(endpoint) > 1024 ||
        !fy_endpoint_normalize(endpoint, ep, sizeof ep))
        return FERRY_EINVAL;
    char *copy = fy_cli_strdup(ep);
    if (!copy)
        return FERRY_ENOMEM;
    s_free_servers(opts);
    opts->servers[opts->nservers++] = copy;
    return FERRY_OK;
}

ferry_status_t
ferry_options_add_server(ferry_options_t *opts, const char *endpoint)
{
    char ep[1100];
    if (!opts || opts->nservers == FY_CLI_SERVERS_MAX || !endpoint || strlen(endpoint) > 1024 ||
        !fy_endpoint_normalize(endpoint, ep, sizeof ep))
        return FERRY_EINVAL;
    opts->servers[opts->nservers] = NULL;
    ferry_status_t st = s_set_str(&opts->servers[opts->nservers], ep, 1024);
    if (st == FERRY_OK)
        opts->nservers++;
    return st;
}

ferry_status_t
ferry_options_set_name(ferry_options_t *opts, const char *name)
{
    return opts ? s_set_str(&opts->name, name, FERRY_NAME_MAX) : FERRY_EINVAL;
}

ferry_status_t
ferry_options_set_heartbeat_ms(ferry_options_t *opts, int heartbeat_ms)
{
    if (!opts || heartbeat_ms < 100 || heartbeat_ms > FY_CLI_HEARTBEAT_MS)
        return FERRY_EINVAL;
    opts->heartbeat_ms = heartbeat_ms;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_timeout_ms(ferry_options_t *opts, int timeout_ms)
{
    if (!opts || timeout_ms <= 0)
        return FERRY_EINVAL;
    opts->timeout_ms = timeout_ms;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_window(ferry_options_t *opts, size_t window)
{
    if (!opts || window == 0 || window > 65536)
        return FERRY_EINVAL;
    opts->window = window;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_reconnect(ferry_options_t *opts, int initial_ms, int max_ms, int jitter_pct)
{
    if (!opts || initial_ms < 1 || max_ms < initial_ms || max_ms > 600000 || jitter_pct < 0 ||
        jitter_pct > 100)
        return FERRY_EINVAL;
    opts->reconnect_initial_ms = initial_ms;
    opts->reconnect_max_ms = max_ms;
    opts->reconnect_jitter_pct = jitter_pct;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_retry_connect(ferry_options_t *opts, bool retry)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->retry_connect = retry;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_block_on_full(ferry_options_t *opts, bool block)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->block_on_full = block;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_ordered(ferry_options_t *opts, bool ordered)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->ordered = ordered;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_state_cb(ferry_options_t *opts, ferry_state_fn fn, void *user)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->state_cb = fn;
    opts->state_user = user;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_log_cb(ferry_options_t *opts, ferry_log_fn fn, void *user)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->log_cb = fn;
    opts->log_user = user;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_credentials(ferry_options_t *opts, const char *user, const char *password)
{
    if (!opts || !user || !password || !*user || !*password)
        return FERRY_EINVAL;
    ferry_status_t st = s_set_str(&opts->user, user, FERRY_NAME_MAX);
    if (st == FERRY_OK)
        st = s_set_str(&opts->password, password, 1024);
    return st;
}

const char *
ferry_strerror(int status)
{
    return fy_status_text((fy_status_t)status);
}

const char *
ferry_errname(int status)
{
    return fy_status_name((fy_status_t)status);
}
