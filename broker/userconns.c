/* SPDX-License-Identifier: MIT */
/*
 * userconns.c - connections per user, followed by file descriptor
 * (userconns.h).
 */
#include "userconns.h"

#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct {
    char user[65]; /* "" : nothing known of this descriptor */
    bool admitted;
} s_conn_t;

struct fy_userconns {
    void *router;
    void *mon;     /* PAIR reading the router's monitor */
    s_conn_t *fds; /* indexed by descriptor */
    size_t cap;
};

fy_status_t
fy_userconns_new(void *ctx, void *router, fy_userconns_t **out, fy_err_t *err)
{
    *out = NULL;
    fy_userconns_t *self = calloc(1, sizeof *self);
    if (!self)
        return FERRY_ENOMEM;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://ferry.userconns.%p", (void *)self);
    self->router = router;
    if (zmq_socket_monitor(router, ep, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(self->mon = zmq_socket(ctx, ZMQ_PAIR)) || zmq_connect(self->mon, ep) != 0) {
        fy_err_set(err, FERRY_EIO, "cannot follow connections (max-connections): %s",
                   zmq_strerror(errno));
        fy_userconns_destroy(&self);
        return FERRY_EIO;
    }
    int linger = 0;
    zmq_setsockopt(self->mon, ZMQ_LINGER, &linger, sizeof linger);
    *out = self;
    return FERRY_OK;
}

void
fy_userconns_destroy(fy_userconns_t **self_p)
{
    fy_userconns_t *self = *self_p;
    if (!self)
        return;
    if (self->mon) {
        zmq_socket_monitor(self->router, NULL, 0);
        zmq_close(self->mon);
    }
    free(self->fds);
    free(self);
    *self_p = NULL;
}

void
fy_userconns_drain(fy_userconns_t *self)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        /* Two frames: event (u16) and value (u32, the descriptor), then the endpoint. */
        uint16_t event = 0;
        uint32_t fd = UINT32_MAX;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&fd, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, self->mon, 0);
            zmq_msg_close(&addr);
        }
        if ((event == ZMQ_EVENT_ACCEPTED || event == ZMQ_EVENT_DISCONNECTED) && fd < self->cap)
            memset(&self->fds[fd], 0, sizeof self->fds[fd]);
    }
}

bool
fy_userconns_admit(fy_userconns_t *self, int fd, const char *user, uint32_t max, uint32_t *have)
{
    *have = 0;
    if (fd < 0)
        return true;
    size_t i = (size_t)fd;
    if (i >= self->cap) {
        size_t old = self->cap;
        if (!fy_grow(&self->fds, &self->cap, i + 1, sizeof *self->fds, 64))
            return true; /* out of memory: serve rather than refuse everyone */
        memset(&self->fds[old], 0, (self->cap - old) * sizeof *self->fds);
    }
    s_conn_t *c = &self->fds[i];
    if (c->admitted && strcmp(c->user, user) == 0)
        return true; /* the common case: no count needed */
    snprintf(c->user, sizeof c->user, "%s", user);
    c->admitted = false;
    uint32_t n = 0;
    for (size_t k = 0; k < self->cap; k++)
        n += self->fds[k].admitted && strcmp(self->fds[k].user, user) == 0;
    c->admitted = !max || n < max;
    *have = n;
    return c->admitted;
}
