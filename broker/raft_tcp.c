/* SPDX-License-Identifier: MIT */
/*
 * raft_tcp.c - libraft's TCP transport with TCP_NODELAY (raft_tcp.h).
 */
#include "raft_tcp.h"

#include <stdlib.h>
#include <uv.h>

/* A connect in flight: libraft's request, and ours to the inner transport. */
typedef struct {
    struct raft_uv_connect inner;
    struct raft_uv_connect *outer;
    raft_uv_connect_cb cb;
} s_connect_t;

static void
s_nodelay(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static int
s_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    fy_raft_tcp_t *self = t->impl;
    return self->inner.init(&self->inner, id, address);
}

static void
s_accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
           struct uv_stream_s *stream)
{
    fy_raft_tcp_t *self = inner->data;
    s_nodelay(stream);
    self->accept_cb(&self->outer, id, address, stream);
}

static int
s_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    fy_raft_tcp_t *self = t->impl;
    self->accept_cb = cb;
    return self->inner.listen(&self->inner, s_accepted);
}

static void
s_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    s_connect_t *c = req->data;
    if (status == 0)
        s_nodelay(stream);
    struct raft_uv_connect *outer = c->outer;
    raft_uv_connect_cb cb = c->cb;
    free(c);
    cb(outer, stream, status);
}

static int
s_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id, const char *address,
          raft_uv_connect_cb cb)
{
    fy_raft_tcp_t *self = t->impl;
    s_connect_t *c = calloc(1, sizeof *c);
    if (!c)
        return RAFT_NOMEM;
    *c = (s_connect_t){.outer = req, .cb = cb};
    c->inner.data = c;
    int rv = self->inner.connect(&self->inner, &c->inner, id, address, s_connected);
    if (rv != 0)
        free(c);
    return rv;
}

static void
s_closed(struct raft_uv_transport *inner)
{
    fy_raft_tcp_t *self = inner->data;
    if (self->close_cb)
        self->close_cb(&self->outer);
}

static void
s_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    fy_raft_tcp_t *self = t->impl;
    self->close_cb = cb;
    self->inner.close(&self->inner, s_closed);
}

int
fy_raft_tcp_init(fy_raft_tcp_t *t, struct uv_loop_s *loop)
{
    int rv = raft_uv_tcp_init(&t->inner, loop);
    if (rv != 0)
        return rv;
    t->inner.data = t;
    t->outer = (struct raft_uv_transport){
        .impl = t, .init = s_init, .listen = s_listen, .connect = s_connect, .close = s_close};
    return 0;
}

void
fy_raft_tcp_close(fy_raft_tcp_t *t)
{
    raft_uv_tcp_close(&t->inner);
}
