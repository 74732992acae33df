/* SPDX-License-Identifier: MIT */
/*
 * zap.c - the ZAP handler thread (zap.h).
 */
#include "zap.h"

#include "clock.h"
#include "ratelog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_ENDPOINT "inproc://zeromq.zap.01"
#define S_FRAMES   8 /* a request: version, id, domain, address, identity, mechanism, creds */

struct fy_zap {
    void *sock;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    pthread_mutex_t mu;
    const fy_users_t *users; /* under mu */
    const fy_log_t *log;
    fy_ratelog_t ratelog; /* the thread's own */
    atomic_ullong accepted, refused;
};

/* Receives one request: up to S_FRAMES frames (the rest dropped).
 * @return the frame count, 0 if nothing came, -1 on error. */
static int
s_recv(void *sock, zmq_msg_t *f, int *nf)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (n < S_FRAMES)
            f[n++] = m;
        else
            zmq_msg_close(&m);
    }
    *nf = n;
    return n;
}

static void
s_send(void *sock, const zmq_msg_t *request_id, const char *code, const char *text,
       const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data((zmq_msg_t *)request_id), zmq_msg_size((zmq_msg_t *)request_id),
             ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

static void
s_frame_text(zmq_msg_t *f, char *out, size_t cap)
{
    size_t len = zmq_msg_size(f) < cap - 1 ? zmq_msg_size(f) : cap - 1;
    memcpy(out, zmq_msg_data(f), len);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == '"' || out[i] == '\\')
            out[i] = '?';
}

static void
s_answer(fy_zap_t *self, zmq_msg_t *f, int nf)
{
    char address[64] = "", mechanism[16] = "", reason[96] = "";
    char user[FY_USER_NAME_MAX + 1] = "";
    if (nf >= 6) {
        s_frame_text(&f[3], address, sizeof address);
        s_frame_text(&f[5], mechanism, sizeof mechanism);
    }
    if (nf < 6 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3) != 0) {
        snprintf(reason, sizeof reason, "malformed ZAP request");
    } else if (strcmp(mechanism, "CURVE") != 0) {
        snprintf(reason, sizeof reason, "mechanism %s: only CURVE clients are let in", mechanism);
    } else if (nf < 7 || zmq_msg_size(&f[6]) != 32) {
        snprintf(reason, sizeof reason, "no CURVE public key");
    } else {
        pthread_mutex_lock(&self->mu);
        const fy_user_t *u = fy_users_by_key(self->users, zmq_msg_data(&f[6]));
        if (u)
            snprintf(user, sizeof user, "%s", fy_user_name(u));
        pthread_mutex_unlock(&self->mu);
        if (!u)
            snprintf(reason, sizeof reason,
                     "unknown key: no user of the users file has it (a wrong password, or "
                     "a key not added)");
    }
    if (!reason[0]) {
        atomic_fetch_add(&self->accepted, 1);
        s_send(self->sock, &f[1], "200", "OK", user);
        return;
    }
    atomic_fetch_add(&self->refused, 1);
    s_send(self->sock, nf >= 2 ? &f[1] : &f[0], "400", reason, "");
    uint64_t held;
    if (fy_ratelog_allow(&self->ratelog, address, strlen(address), fy_mono_ms(), &held))
        fy_log(self->log, FY_LOG_WARN, "security", "login refused",
               "peer=%s mechanism=%s held_back=%llu reason=\"%s\"", address[0] ? address : "?",
               mechanism[0] ? mechanism : "?", (unsigned long long)held, reason);
}

static void *
s_run(void *arg)
{
    fy_zap_t *self = arg;
    while (!atomic_load(&self->stop)) {
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 200) <= 0)
            continue;
        zmq_msg_t f[S_FRAMES];
        int nf = 0;
        if (s_recv(self->sock, f, &nf) <= 0)
            continue;
        s_answer(self, f, nf);
        for (int i = 0; i < nf; i++)
            zmq_msg_close(&f[i]);
    }
    return NULL;
}

fy_status_t
fy_zap_start(void *zmq_ctx, const fy_users_t *users, const fy_log_t *log, fy_zap_t **out,
             fy_err_t *err)
{
    *out = NULL;
    fy_zap_t *self = calloc(1, sizeof *self);
    if (!self)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    pthread_mutex_init(&self->mu, NULL);
    self->users = users;
    self->log = log;
    fy_ratelog_init(&self->ratelog, 60000);
    self->sock = zmq_socket(zmq_ctx, ZMQ_REP);
    int linger = 0;
    if (!self->sock || zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(self->sock, S_ENDPOINT) != 0) {
        fy_status_t st = fy_err_set(err, FERRY_EIO, "cannot start the ZAP handler: %s",
                                    zmq_strerror(zmq_errno()));
        fy_zap_stop(&self);
        return st;
    }
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        fy_zap_stop(&self);
        return fy_err_set(err, FERRY_EIO, "cannot start the ZAP handler's thread");
    }
    self->started = true;
    *out = self;
    return FERRY_OK;
}

void
fy_zap_set_users(fy_zap_t *self, const fy_users_t *users)
{
    pthread_mutex_lock(&self->mu);
    self->users = users;
    pthread_mutex_unlock(&self->mu);
}

void
fy_zap_stats(fy_zap_t *self, fy_zap_stats_t *out)
{
    out->accepted = atomic_load(&self->accepted);
    out->refused = atomic_load(&self->refused);
}

void
fy_zap_stop(fy_zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fy_zap_t *self = *self_p;
    atomic_store(&self->stop, true);
    if (self->started)
        pthread_join(self->thread, NULL);
    if (self->sock)
        zmq_close(self->sock);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}
