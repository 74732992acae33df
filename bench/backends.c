/* SPDX-License-Identifier: MIT */
/*
 * backends.c - the Ferry and Redis Streams backends of bench_compare
 * (backends.h). Each uses its system the way its users would for a
 * durable work queue:
 *
 *   Ferry: publish_async through a window; push consumers with prefetch,
 *          the handler acks (acks and credit go out in batches).
 *   Redis: pipelined XADD through a window; XREADGROUP COUNT/BLOCK, and the
 *          XACK of a batch pipelined with the next XREADGROUP.
 */
#define _GNU_SOURCE
#include "backends.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"

#define S_ACKS_MAX 1000

struct bk_conn {
    size_t window, confirmed;
    /* Ferry */
    ferry_client_t *fc;
    bool subscribed;
    bk_msg_fn fn;
    void *user;
    long got;
    /* Redis */
    redisContext *rc;
    size_t outstanding;
    char consumer[48];
    char *acks[S_ACKS_MAX]; /* ids received and not yet acked */
    size_t nacks;
    char ack_group[16];
    char ack_stream[64];
};

/* ---- Ferry -------------------------------------------------------------- */

static bk_conn_t *
s_ferry_connect(const char *endpoint, size_t window)
{
    bk_conn_t *c = calloc(1, sizeof *c);
    ferry_options_t *o = ferry_options_new();
    if (!c || !o || ferry_options_set_server(o, endpoint) || ferry_options_set_window(o, window) ||
        ferry_options_set_timeout_ms(o, 60000) || ferry_client_new(o, &c->fc) != FERRY_OK) {
        fprintf(stderr, "bench: cannot connect to ferryd at %s\n", endpoint);
        ferry_options_destroy(&o);
        free(c);
        return NULL;
    }
    ferry_options_destroy(&o);
    c->window = window;
    return c;
}

static int
s_ferry_setup(bk_conn_t *c, const char *stream, int nsubs)
{
    ferry_client_delete(c->fc, stream); /* ENOTFOUND the first time */
    if (ferry_client_declare(c->fc, nsubs ? FERRY_KIND_TOPIC : FERRY_KIND_QUEUE, stream, NULL, NULL,
                             NULL) != FERRY_OK)
        return -1;
    for (int i = 0; i < nsubs; i++) {
        char name[16];
        snprintf(name, sizeof name, "g%d", i);
        if (ferry_client_sub_declare(c->fc, stream, name, NULL, NULL) != FERRY_OK)
            return -1;
    }
    return 0;
}

static void
s_ferry_confirm(ferry_client_t *fc, const ferry_confirm_t *cf, void *user)
{
    (void)fc;
    if (cf->status == FERRY_OK)
        ((bk_conn_t *)user)->confirmed++;
}

static int
s_ferry_send(bk_conn_t *c, const char *stream, const void *data, size_t len)
{
    ferry_message_t m = {.data = data, .len = len};
    return ferry_client_publish_async(c->fc, stream, &m, s_ferry_confirm, c) == FERRY_OK ? 0 : -1;
}

static int
s_ferry_pump(bk_conn_t *c)
{
    return ferry_client_poll(c->fc, 0) == FERRY_OK ? 0 : -1;
}

static int
s_ferry_flush(bk_conn_t *c)
{
    return ferry_client_flush(c->fc, 120000) == FERRY_OK ? 0 : -1;
}

static size_t
s_confirmed(bk_conn_t *c)
{
    return c->confirmed;
}

static ferry_msg_action_t
s_ferry_msg(ferry_client_t *fc, const ferry_stored_message_t *m, void *user)
{
    (void)fc;
    bk_conn_t *c = user;
    c->fn(c->user, m->data, m->len);
    c->got++;
    return FERRY_MSG_ACK;
}

static long
s_ferry_consume(bk_conn_t *c, const char *stream, int sub, size_t max, int wait_ms, bk_msg_fn fn,
                void *user)
{
    c->fn = fn;
    c->user = user;
    c->got = 0;
    if (!c->subscribed) {
        char name[16];
        snprintf(name, sizeof name, "g%d", sub);
        if (ferry_client_subscribe(c->fc, stream, sub < 0 ? NULL : name, (uint32_t)max, s_ferry_msg,
                                   c, NULL) != FERRY_OK)
            return -1;
        c->subscribed = true;
    }
    return ferry_client_poll(c->fc, wait_ms) == FERRY_OK ? c->got : -1;
}

static int
s_ferry_settle(bk_conn_t *c)
{
    return ferry_client_ping(c->fc) == FERRY_OK ? 0 : -1;
}

static void
s_ferry_close(bk_conn_t *c)
{
    if (c) {
        ferry_client_destroy(&c->fc);
        free(c);
    }
}

const bk_ops_t bk_ferry = {"ferry",        s_ferry_connect, s_ferry_setup, s_ferry_send,
                           s_ferry_pump,   s_ferry_flush,   s_confirmed,   s_ferry_consume,
                           s_ferry_settle, s_ferry_close};

/* ---- Redis Streams ------------------------------------------------------------ */

static bk_conn_t *
s_redis_connect(const char *endpoint, size_t window)
{
    char host[64];
    const char *colon = strrchr(endpoint, ':');
    if (!colon || (size_t)(colon - endpoint) >= sizeof host)
        return NULL;
    memcpy(host, endpoint, (size_t)(colon - endpoint));
    host[colon - endpoint] = '\0';
    bk_conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->rc = redisConnect(host, atoi(colon + 1));
    if (!c->rc || c->rc->err) {
        fprintf(stderr, "bench: cannot connect to redis at %s: %s\n", endpoint,
                c->rc ? c->rc->errstr : "out of memory");
        if (c->rc)
            redisFree(c->rc);
        free(c);
        return NULL;
    }
    c->window = window;
    snprintf(c->consumer, sizeof c->consumer, "c%d-%p", (int)getpid(), (void *)c);
    return c;
}

/* Runs one command and checks its reply is not an error. */
static int
s_redis_ok(bk_conn_t *c, redisReply *r)
{
    int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -1;
    if (rc)
        fprintf(stderr, "bench: redis: %s\n", r ? r->str : c->rc->errstr);
    freeReplyObject(r);
    return rc;
}

static int
s_redis_setup(bk_conn_t *c, const char *stream, int nsubs)
{
    if (s_redis_ok(c, redisCommand(c->rc, "DEL %s", stream)))
        return -1;
    for (int i = 0; i < (nsubs ? nsubs : 1); i++)
        if (s_redis_ok(c, redisCommand(c->rc, "XGROUP CREATE %s g%d $ MKSTREAM", stream, i)))
            return -1;
    return 0;
}

/* Takes one reply to an XADD. */
static int
s_redis_take(bk_conn_t *c, redisReply *r)
{
    c->outstanding--;
    if (!r || r->type != REDIS_REPLY_STRING) {
        s_redis_ok(c, r);
        return -1;
    }
    freeReplyObject(r);
    c->confirmed++;
    return 0;
}

static int
s_redis_send(bk_conn_t *c, const char *stream, const void *data, size_t len)
{
    if (redisAppendCommand(c->rc, "XADD %s * d %b", stream, data, len) != REDIS_OK)
        return -1;
    c->outstanding++;
    /* Window full: wait for the oldest reply (this also writes the pipeline). */
    if (c->outstanding >= c->window) {
        void *r;
        if (redisGetReply(c->rc, &r) != REDIS_OK)
            return -1;
        return s_redis_take(c, r);
    }
    return 0;
}

static int
s_redis_pump(bk_conn_t *c)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(c->rc, &done) != REDIS_OK)
            return -1;
    struct pollfd p = {c->rc->fd, POLLIN, 0};
    while (c->outstanding > 0 && poll(&p, 1, 0) == 1) {
        if (redisBufferRead(c->rc) != REDIS_OK)
            return -1;
        void *r = NULL;
        while (c->outstanding > 0 && redisGetReplyFromReader(c->rc, &r) == REDIS_OK && r)
            if (s_redis_take(c, r) != 0)
                return -1;
    }
    return 0;
}

static int
s_redis_flush(bk_conn_t *c)
{
    while (c->outstanding > 0) {
        void *r;
        if (redisGetReply(c->rc, &r) != REDIS_OK || s_redis_take(c, r) != 0)
            return -1;
    }
    return 0;
}

/* Appends an XACK of the ids received last time (they are then forgotten). */
static int
s_redis_append_acks(bk_conn_t *c, const char *stream)
{
    if (c->nacks == 0)
        return 0;
    const char *argv[3 + S_ACKS_MAX];
    argv[0] = "XACK";
    argv[1] = stream;
    argv[2] = c->ack_group;
    for (size_t i = 0; i < c->nacks; i++)
        argv[3 + i] = c->acks[i];
    int rc = redisAppendCommandArgv(c->rc, (int)(3 + c->nacks), argv, NULL);
    for (size_t i = 0; i < c->nacks; i++)
        free(c->acks[i]);
    c->nacks = 0;
    return rc == REDIS_OK ? 1 : -1;
}

static long
s_redis_consume(bk_conn_t *c, const char *stream, int sub, size_t max, int wait_ms, bk_msg_fn fn,
                void *user)
{
    if (max > S_ACKS_MAX)
        max = S_ACKS_MAX;
    int acking = s_redis_append_acks(c, stream);
    if (acking < 0)
        return -1;
    snprintf(c->ack_group, sizeof c->ack_group, "g%d", sub < 0 ? 0 : sub);
    snprintf(c->ack_stream, sizeof c->ack_stream, "%s", stream);
    /* hiredis formats %d but not %zu. */
    if (redisAppendCommand(c->rc, "XREADGROUP GROUP %s %s COUNT %d BLOCK %d STREAMS %s >",
                           c->ack_group, c->consumer, (int)max, wait_ms > 0 ? wait_ms : 1,
                           stream) != REDIS_OK)
        return -1;
    void *r;
    if (acking && (redisGetReply(c->rc, &r) != REDIS_OK || s_redis_ok(c, r) != 0))
        return -1;
    if (redisGetReply(c->rc, &r) != REDIS_OK)
        return -1;
    redisReply *rep = r;
    long got = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2) {
        redisReply *entries = rep->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            redisReply *e = entries->element[i];
            if (e->elements != 2 || e->element[1]->elements != 2)
                continue;
            redisReply *val = e->element[1]->element[1];
            fn(user, val->str, val->len);
            c->acks[c->nacks++] = strdup(e->element[0]->str);
            got++;
        }
    } else if (rep->type == REDIS_REPLY_ERROR) {
        s_redis_ok(c, rep);
        return -1;
    }
    freeReplyObject(rep);
    return got;
}

static int
s_redis_settle(bk_conn_t *c)
{
    int acking = s_redis_append_acks(c, c->ack_stream);
    void *r;
    if (acking < 0 || (acking && (redisGetReply(c->rc, &r) != REDIS_OK || s_redis_ok(c, r))))
        return -1;
    return 0;
}

static void
s_redis_close(bk_conn_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nacks; i++)
        free(c->acks[i]);
    redisFree(c->rc);
    free(c);
}

const bk_ops_t bk_redis = {"redis",        s_redis_connect, s_redis_setup, s_redis_send,
                           s_redis_pump,   s_redis_flush,   s_confirmed,   s_redis_consume,
                           s_redis_settle, s_redis_close};

/* ---- redis-server ------------------------------------------------------------- */

int
bk_redis_start(bk_redis_server_t *s, const char *appendfsync)
{
    memset(s, 0, sizeof *s);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(s->dir, sizeof s->dir, "%s/ferry-redis-XXXXXX", tmp);
    int port = fy_free_port();
    if (!mkdtemp(s->dir) || port < 0)
        return -1;
    snprintf(s->endpoint, sizeof s->endpoint, "127.0.0.1:%d", port);
    char portstr[16], log[300];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--dir",
               s->dir, "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
               "--protected-mode", "no", "--logfile", log, "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "bench: redis-server exited (is it installed? scripts/install-deps)\n");
            s->pid = 0;
            return -1;
        }
        redisContext *rc = redisConnect("127.0.0.1", port);
        if (rc && !rc->err) {
            redisReply *r = redisCommand(rc, "PING");
            bool up = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(rc);
            if (up)
                return 0;
        } else if (rc) {
            redisFree(rc);
        }
        fy_sleep_ms(50);
    }
    bk_redis_stop(s);
    return -1;
}

void
bk_redis_stop(bk_redis_server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
    if (s->dir[0]) {
        char cmd[320];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench: could not remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}
