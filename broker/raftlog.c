/* SPDX-License-Identifier: MIT */
/*
 * raftlog.c - the replicated log on libraft (raftlog.h): libraft, its libuv
 * I/O and TCP transport run on a thread of their own; appends from other
 * threads are queued, handed over by a uv_async_t, and waited for on a
 * condition variable until libraft's apply callback says how they ended.
 */
#include "raftlog.h"

#include "bytes.h"
#include "raft_tcp.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#define S_PEERS_MAX 9
/* An entry: u32 magic, u32 length of the data, the data, zeros up to a
 * multiple of 8 bytes - libraft 0.15 reads back a closed segment as if
 * every entry's size were one (an entry of another size is read as
 * corrupt after a restart). */
#define S_ENTRY_MAGIC 0x46524c31u /* "FRL1" */
#define S_ENTRY_HDR   8

/* One append, on the caller's stack while it waits. */
typedef struct s_req {
    struct raft_apply apply; /* apply.data: the log */
    struct raft_buffer buf;  /* raft_malloc'ed copy; libraft's once handed over */
    fy_raftlog_result_t result;
    uint64_t index;
    bool done;
    struct s_req *next;
    /* A membership change instead of an append (fy_raftlog_change). */
    bool change;
    uint64_t id;
    const char *address; /* NULL: remove */
    struct raft_change ch;
    int rv; /* libraft's result */
} s_req_t;

/* Making a spare that caught up a voter: outlives the request that added it. */
typedef struct s_promote {
    struct raft_change ch;
    fy_raftlog_t *self;
    uint64_t id;
} s_promote_t;

struct fy_raftlog {
    fy_raftlog_config_t cfg;
    fy_raftlog_peer_t peers[S_PEERS_MAX];
    char addresses[S_PEERS_MAX][64];
    char dir[512];
    char bind[64];
    const fy_log_t *log;

    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;         /* refreshes the state other threads read */
    fy_raft_tcp_t transport; /* raft_uv_tcp with Nagle off */
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    struct raft_tracer tracer; /* libraft's own account, into our log */
    pthread_t thread;
    bool io_ready, transport_ready, raft_ready;

    pthread_mutex_t mu; /* what follows */
    pthread_cond_t cv;
    s_req_t *queue; /* appends not yet handed to libraft */
    bool stopping, stopped;
    fy_raftlog_state_t state;

    /* Readiness (the log's thread): a barrier of the current term applied. */
    struct raft_barrier barrier;
    bool barrier_out;
    uint64_t barrier_term, ready_term;
    uint64_t elections; /* under mu */
};

/* ---- the state machine, on the log's thread ----------------------------- */

static int
s_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    fy_raftlog_t *self = fsm->data;
    *result = NULL;
    uint64_t index = self->raft.last_applied + 1; /* libraft sets it after this call */
    const uint8_t *p = buf->base;
    uint32_t len = buf->len >= S_ENTRY_HDR ? fy_be32_get(p + 4) : 0;
    if (buf->len < S_ENTRY_HDR || fy_be32_get(p) != S_ENTRY_MAGIC || len > buf->len - S_ENTRY_HDR) {
        fy_log(self->log, FY_LOG_ERROR, "cluster", "entry not ours", "index=%llu bytes=%zu",
               (unsigned long long)index, buf->len);
        return RAFT_MALFORMED;
    }
    return self->cfg.fsm.apply(self->cfg.fsm.user, index, p + S_ENTRY_HDR, len) ? RAFT_IOERR : 0;
}

static int
s_fsm_snapshot_take(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    fy_raftlog_t *self = fsm->data;
    uint8_t *data = NULL;
    size_t len = 0;
    if (!self->cfg.fsm.snapshot || self->cfg.fsm.snapshot(self->cfg.fsm.user, &data, &len))
        return RAFT_IOERR;
    *bufs = raft_malloc(sizeof **bufs);
    if (!*bufs) {
        free(data);
        return RAFT_NOMEM;
    }
    (*bufs)[0] = (struct raft_buffer){data, len};
    *n = 1;
    return 0;
}

/* On the log's thread: taken here, or (snapshot_async) nothing yet. */
static int
s_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    fy_raftlog_t *self = fsm->data;
    if (!self->cfg.fsm.snapshot_async)
        return s_fsm_snapshot_take(fsm, bufs, n);
    *bufs = NULL;
    *n = 0;
    return 0;
}

/* Version 2: libraft wrote (or failed to write) the snapshot; ours to free. */
static int
s_fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    for (unsigned i = 0; *bufs && i < *n; i++)
        free((*bufs)[i].base);
    raft_free(*bufs);
    *bufs = NULL;
    *n = 0;
    return 0;
}

/* The buffer is ours once this returns 0 (libraft's allocation). */
static int
s_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    fy_raftlog_t *self = fsm->data;
    if (!self->cfg.fsm.restore || self->cfg.fsm.restore(self->cfg.fsm.user, buf->base, buf->len))
        return RAFT_IOERR;
    raft_free(buf->base);
    return 0;
}

/* ---- appends ------------------------------------------------------------- */

static void
s_done(fy_raftlog_t *self, s_req_t *req, fy_raftlog_result_t result)
{
    pthread_mutex_lock(&self->mu);
    req->result = result;
    req->done = true;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

static void
s_applied(struct raft_apply *apply, int status, void *result)
{
    (void)result;
    s_req_t *req = (s_req_t *)apply; /* apply is its first member */
    fy_raftlog_t *self = apply->data;
    req->index = apply->index;
    s_done(self, req,
           status == 0                     ? FY_RAFTLOG_COMMITTED
           : status == RAFT_LEADERSHIPLOST ? FY_RAFTLOG_LOST
           : status == RAFT_NOTLEADER      ? FY_RAFTLOG_NOT_LEADER
                                           : FY_RAFTLOG_FAILED);
}

static void s_on_tick(uv_timer_t *tick);

static void
s_promoted(struct raft_change *ch, int status)
{
    s_promote_t *p = ch->data;
    if (status)
        fy_log(p->self->log, FY_LOG_WARN, "cluster", "node not made a voter",
               "id=%llu error=\"%s\"", (unsigned long long)p->id, raft_strerror(status));
    else
        fy_log(p->self->log, FY_LOG_INFO, "cluster", "node is a voter", "id=%llu",
               (unsigned long long)p->id);
    s_on_tick(&p->self->tick);
    free(p);
}

/* The new node's spare entry is committed: it catches up, then votes (the
 * leader keeps trying the promotion in rounds until it has caught up). */
static void
s_added(struct raft_change *ch, int status)
{
    s_req_t *req = ch->data;
    fy_raftlog_t *self = req->apply.data;
    req->rv = status;
    if (status == 0) {
        s_promote_t *p = calloc(1, sizeof *p);
        if (p) {
            *p = (s_promote_t){.self = self, .id = req->id};
            p->ch.data = p;
            int rv = raft_assign(&self->raft, &p->ch, req->id, RAFT_VOTER, s_promoted);
            if (rv) {
                fy_log(self->log, FY_LOG_WARN, "cluster", "node not made a voter",
                       "id=%llu error=\"%s\"", (unsigned long long)req->id, raft_strerror(rv));
                free(p);
            }
        }
    }
    s_on_tick(&self->tick); /* the new configuration is seen at once */
    s_done(self, req, status ? FY_RAFTLOG_FAILED : FY_RAFTLOG_COMMITTED);
}

static void
s_removed(struct raft_change *ch, int status)
{
    s_req_t *req = ch->data;
    req->rv = status;
    s_on_tick(&((fy_raftlog_t *)req->apply.data)->tick);
    s_done(req->apply.data, req, status ? FY_RAFTLOG_FAILED : FY_RAFTLOG_COMMITTED);
}

/* A change handed to libraft: 0, or its refusal (the request is done). */
static int
s_start_change(fy_raftlog_t *self, s_req_t *r)
{
    r->ch.data = r;
    if (r->address)
        return raft_add(&self->raft, &r->ch, r->id, r->address, s_added);
    if (r->id == self->cfg.id)
        return RAFT_BADID; /* the leader itself: stop it, another node leads, then remove it */
    return raft_remove(&self->raft, &r->ch, r->id, s_removed);
}

/* The log's thread: hands the queued appends to libraft. */
static void
s_on_wake(uv_async_t *wake)
{
    fy_raftlog_t *self = wake->data;
    pthread_mutex_lock(&self->mu);
    s_req_t *q = self->queue;
    self->queue = NULL;
    bool stopping = self->stopping;
    pthread_mutex_unlock(&self->mu);
    /* In the order they came (the queue is pushed at its head). */
    s_req_t *ordered = NULL;
    while (q) {
        s_req_t *next = q->next;
        q->next = ordered;
        ordered = q;
        q = next;
    }
    for (s_req_t *r = ordered, *next; r; r = next) {
        next = r->next;
        r->apply.data = self;
        int rv = stopping    ? RAFT_SHUTDOWN
                 : r->change ? s_start_change(self, r)
                             : raft_apply(&self->raft, &r->apply, &r->buf, 1, s_applied);
        if (rv != 0) { /* not handed over: the copy is still ours */
            if (!r->change)
                raft_free(r->buf.base);
            r->rv = rv;
            s_done(self, r, rv == RAFT_NOTLEADER ? FY_RAFTLOG_NOT_LEADER : FY_RAFTLOG_FAILED);
        }
    }
    if (stopping && self->raft_ready) {
        self->raft_ready = false;
        uv_close((uv_handle_t *)&self->tick, NULL);
        uv_close((uv_handle_t *)&self->wake, NULL);
        raft_close(&self->raft, NULL); /* appends in flight get RAFT_CANCELED */
    }
}

/* The barrier of a new leader's term is applied: every entry before it
 * is, so the state it writes on is the whole state. */
static void
s_barrier_done(struct raft_barrier *req, int status)
{
    fy_raftlog_t *self = req->data;
    self->barrier_out = false;
    if (status == 0 && self->barrier_term == self->raft.current_term &&
        raft_state(&self->raft) == RAFT_LEADER) {
        self->ready_term = self->barrier_term;
        fy_log(self->log, FY_LOG_INFO, "cluster", "leading", "id=%llu term=%llu index=%llu",
               (unsigned long long)self->cfg.id, (unsigned long long)self->ready_term,
               (unsigned long long)raft_last_applied(&self->raft));
    }
}

static void
s_on_tick(uv_timer_t *tick)
{
    fy_raftlog_t *self = tick->data;
    fy_raftlog_state_t st = {0};
    int role = raft_state(&self->raft);
    if (role == RAFT_LEADER && self->ready_term != self->raft.current_term && !self->barrier_out) {
        self->barrier.data = self;
        self->barrier_term = self->raft.current_term;
        if (raft_barrier(&self->raft, &self->barrier, s_barrier_done) == 0)
            self->barrier_out = true;
    }
    st.role = role == RAFT_LEADER      ? FY_RAFTLOG_LEADER
              : role == RAFT_CANDIDATE ? FY_RAFTLOG_CANDIDATE
              : role == RAFT_FOLLOWER  ? FY_RAFTLOG_FOLLOWER
                                       : FY_RAFTLOG_UNAVAILABLE;
    st.term = self->raft.current_term;
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&self->raft, &leader, &address);
    st.leader_id = leader;
    snprintf(st.leader_address, sizeof st.leader_address, "%s", address ? address : "");
    st.commit_index = self->raft.commit_index;
    st.applied_index = raft_last_applied(&self->raft);
    st.last_index = raft_last_index(&self->raft);
    st.ready = role == RAFT_LEADER && self->ready_term == st.term;
    const struct raft_configuration *conf = &self->raft.configuration;
    for (unsigned i = 0; i < conf->n && st.nnodes < sizeof st.nodes / sizeof st.nodes[0]; i++) {
        fy_raftlog_node_t *n = &st.nodes[st.nnodes++];
        n->id = conf->servers[i].id;
        snprintf(n->address, sizeof n->address, "%s", conf->servers[i].address);
        n->voter = conf->servers[i].role == RAFT_VOTER;
        if (role == RAFT_LEADER && self->raft.leader_state.progress) {
            n->match_index = n->id == self->cfg.id
                                 ? st.last_index
                                 : self->raft.leader_state.progress[i].match_index;
            n->recent = n->id == self->cfg.id || self->raft.leader_state.progress[i].recent_recv;
        }
    }
    pthread_mutex_lock(&self->mu);
    if (st.term > self->state.term && self->state.term)
        self->elections += st.term - self->state.term;
    st.elections = self->elections;
    self->state = st;
    pthread_mutex_unlock(&self->mu);
}

static void *
s_thread(void *arg)
{
    fy_raftlog_t *self = arg;
    /* libuv writes to a peer's socket without MSG_NOSIGNAL: a peer that died
     * would kill the process with SIGPIPE. Blocked on this thread, the write
     * fails with EPIPE instead (and libraft connects again). */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uv_run(&self->loop, UV_RUN_DEFAULT);
    /* libraft closed: its I/O and transport go, then the loop. */
    raft_uv_close(&self->io);
    fy_raft_tcp_close(&self->transport);
    uv_run(&self->loop, UV_RUN_DEFAULT);
    uv_loop_close(&self->loop);
    pthread_mutex_lock(&self->mu);
    self->stopped = true;
    for (s_req_t *r = self->queue; r; r = r->next) {
        raft_free(r->buf.base);
        r->result = FY_RAFTLOG_FAILED;
        r->done = true;
    }
    self->queue = NULL;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

/* ---- the API --------------------------------------------------------------- */

static fy_status_t
s_copy_config(fy_raftlog_t *self, const fy_raftlog_config_t *cfg, fy_err_t *err)
{
    if (!cfg->dir || !cfg->fsm.apply || cfg->npeers == 0 || cfg->npeers > S_PEERS_MAX ||
        strlen(cfg->dir) >= sizeof self->dir)
        return fy_err_set(err, FERRY_EINVAL, "cluster: a directory, 1-%d peers and an apply",
                          S_PEERS_MAX);
    self->cfg = *cfg;
    snprintf(self->dir, sizeof self->dir, "%s", cfg->dir);
    if (cfg->bind && strlen(cfg->bind) >= sizeof self->bind)
        return fy_err_set(err, FERRY_EINVAL, "cluster: bind address too long");
    snprintf(self->bind, sizeof self->bind, "%s", cfg->bind ? cfg->bind : "");
    self->cfg.bind = self->bind;
    self->cfg.dir = self->dir;
    bool me = false;
    for (size_t i = 0; i < cfg->npeers; i++) {
        const fy_raftlog_peer_t *p = &cfg->peers[i];
        if (p->id == 0 || !p->address || strlen(p->address) >= sizeof self->addresses[i])
            return fy_err_set(err, FERRY_EINVAL, "cluster: peer %zu: an id above 0 and an address",
                              i + 1);
        for (size_t j = 0; j < i; j++)
            if (cfg->peers[j].id == p->id)
                return fy_err_set(err, FERRY_EINVAL, "cluster: node id %llu twice",
                                  (unsigned long long)p->id);
        snprintf(self->addresses[i], sizeof self->addresses[i], "%s", p->address);
        self->peers[i] = (fy_raftlog_peer_t){p->id, self->addresses[i]};
        me = me || p->id == cfg->id;
    }
    self->cfg.peers = self->peers;
    if (!me)
        return fy_err_set(err, FERRY_EINVAL, "cluster: node %llu is not among the peers",
                          (unsigned long long)cfg->id);
    return FERRY_OK;
}

static const char *
s_address(const fy_raftlog_t *self, uint64_t id)
{
    for (size_t i = 0; i < self->cfg.npeers; i++)
        if (self->peers[i].id == id)
            return self->peers[i].address;
    return NULL;
}

/* libraft's trace lines: what it repaired or could not do at warn (a
 * corrupt or torn log segment it truncated at start, among others), the
 * rest at debug. */
static void
s_trace(struct raft_tracer *t, const char *file, int line, const char *message)
{
    fy_raftlog_t *self = t->impl;
    static const char *const notable[] = {"corrupt", "truncat", "checksum", "recover"};
    bool warn = false;
    for (size_t i = 0; i < sizeof notable / sizeof notable[0] && !warn; i++)
        warn = strstr(message, notable[i]) != NULL;
    if (warn || fy_log_enabled(self->log, FY_LOG_DEBUG))
        fy_log(self->log, warn ? FY_LOG_WARN : FY_LOG_DEBUG, "cluster", "libraft",
               "at=%s:%d detail=\"%.300s\"", file, line, message);
}

/* io->async_work, which Debian's raft_uv (io version 1) lacks and async
 * snapshots need: the work on libuv's thread pool, its callback back on
 * the log's loop. */
typedef struct {
    uv_work_t w;
    struct raft_io_async_work *req;
    raft_io_async_work_cb cb;
    int status;
} s_work_t;

static void
s_work_run(uv_work_t *w)
{
    s_work_t *x = w->data;
    x->status = x->req->work(x->req);
}

static void
s_work_done(uv_work_t *w, int status)
{
    s_work_t *x = w->data;
    x->cb(x->req, status == UV_ECANCELED ? RAFT_CANCELED : x->status);
    free(x);
}

static int
s_async_work(struct raft_io *io, struct raft_io_async_work *req, raft_io_async_work_cb cb)
{
    fy_raftlog_t *self = (fy_raftlog_t *)(void *)((char *)io - offsetof(fy_raftlog_t, io));
    s_work_t *x = calloc(1, sizeof *x);
    if (!x)
        return RAFT_NOMEM;
    *x = (s_work_t){.req = req, .cb = cb};
    x->w.data = x;
    if (uv_queue_work(&self->loop, &x->w, s_work_run, s_work_done) != 0) {
        free(x);
        return RAFT_IOERR;
    }
    return 0;
}

/* Segments libraft set aside as corrupt ("corrupt-*" in the log's
 * directory, by its auto-recovery at start): how many; @p say: name each. */
static size_t
s_corrupt_segments(const fy_raftlog_t *self, bool say)
{
    DIR *d = opendir(self->dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, "corrupt-", 8) != 0)
            continue;
        n++;
        if (say)
            fy_log(self->log, FY_LOG_WARN, "cluster", "corrupt log segment set aside",
                   "file=%s/%s detail=\"its entries and those after it are taken from the "
                   "leader again; delete the file once the node caught up\"",
                   self->dir, e->d_name);
    }
    if (d)
        closedir(d);
    return n;
}

/* libraft up on the loop (not yet running): I/O, transport, bootstrap, start. */
static fy_status_t
s_raft_init(fy_raftlog_t *self, fy_err_t *err)
{
    const char *me = s_address(self, self->cfg.id);
    int rv = fy_raft_tcp_init(&self->transport, &self->loop);
    if (rv == 0)
        self->transport_ready = true;
    if (rv == 0 && self->bind[0])
        rv = raft_uv_tcp_set_bind_address(&self->transport.inner, self->bind);
    if (rv == 0 &&
        (rv = raft_uv_init(&self->io, &self->loop, self->dir, &self->transport.outer)) == 0)
        self->io_ready = true;
    self->tracer = (struct raft_tracer){.impl = self, .enabled = true, .emit = s_trace};
    if (rv == 0 && self->io.version < 2) { /* async snapshots (version 3 of the FSM) need it */
        self->io.version = 2;
        self->io.async_work = s_async_work;
    }
    if (rv == 0)
        raft_uv_set_tracer(&self->io, &self->tracer);
    if (rv == 0)
        rv = raft_init(&self->raft, &self->io, &self->fsm, self->cfg.id, me);
    if (rv == 0)
        self->raft.tracer = &self->tracer;
    if (rv != 0)
        return fy_err_set(err, FERRY_EIO, "cluster: cannot set up libraft: %s", raft_strerror(rv));
    self->raft_ready = true;
    raft_set_election_timeout(&self->raft, self->cfg.election_ms ? self->cfg.election_ms : 1000);
    raft_set_heartbeat_timeout(&self->raft, self->cfg.heartbeat_ms ? self->cfg.heartbeat_ms : 100);
    raft_set_snapshot_threshold(&self->raft,
                                self->cfg.snapshot_every ? self->cfg.snapshot_every : 1024);
    if (self->cfg.snapshot_trailing)
        raft_set_snapshot_trailing(&self->raft, self->cfg.snapshot_trailing);
    raft_set_pre_vote(&self->raft, true);
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (size_t i = 0; i < self->cfg.npeers && rv == 0; i++)
        rv = raft_configuration_add(&conf, self->peers[i].id, self->peers[i].address, RAFT_VOTER);
    if (rv == 0 && !self->cfg.join) { /* a joining node gets its configuration from the leader */
        rv = raft_bootstrap(&self->raft, &conf);
        if (rv == RAFT_CANTBOOTSTRAP) /* started before: its log has the configuration */
            rv = 0;
    }
    raft_configuration_close(&conf);
    size_t corrupt = s_corrupt_segments(self, false);
    if (rv == 0)
        rv = raft_start(&self->raft);
    if (rv == 0 && s_corrupt_segments(self, false) > corrupt) /* this start found one */
        s_corrupt_segments(self, true);
    if (rv != 0) {
        fy_log(self->log, FY_LOG_ERROR, "cluster", "cannot start",
               "id=%llu error=\"%s\" detail=\"%s\"", (unsigned long long)self->cfg.id,
               raft_strerror(rv), raft_errmsg(&self->raft));
        return fy_err_set(err, FERRY_EIO, "cluster: cannot start node %llu: %s (%.80s)",
                          (unsigned long long)self->cfg.id, raft_strerror(rv),
                          raft_errmsg(&self->raft));
    }
    return FERRY_OK;
}

static void
s_free(fy_raftlog_t *self)
{
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    free(self);
}

fy_status_t
fy_raftlog_start(const fy_raftlog_config_t *cfg, const fy_log_t *log, fy_raftlog_t **out,
                 fy_err_t *err)
{
    *out = NULL;
    if (!cfg)
        return fy_err_set(err, FERRY_EINVAL, "cluster: no configuration");
    fy_raftlog_t *self = calloc(1, sizeof *self);
    if (!self)
        return fy_err_set(err, FERRY_ENOMEM, "cluster: out of memory");
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    self->log = log;
    fy_status_t st = s_copy_config(self, cfg, err);
    if (st) {
        s_free(self);
        return st;
    }
    if (mkdir(self->dir, 0700) != 0 && errno != EEXIST) {
        st = fy_err_set(err, FERRY_EIO, "cluster: cannot make %s: %s", self->dir, strerror(errno));
        s_free(self);
        return st;
    }
    self->fsm =
        (struct raft_fsm){.version = 3,
                          .data = self,
                          .apply = s_fsm_apply,
                          .snapshot = s_fsm_snapshot,
                          .restore = s_fsm_restore,
                          .snapshot_finalize = s_fsm_snapshot_finalize,
                          .snapshot_async = cfg->fsm.snapshot_async ? s_fsm_snapshot_take : NULL};
    if (uv_loop_init(&self->loop) != 0) {
        s_free(self);
        return fy_err_set(err, FERRY_EIO, "cluster: cannot make an event loop");
    }
    uv_async_init(&self->loop, &self->wake, s_on_wake);
    self->wake.data = self;
    uv_timer_init(&self->loop, &self->tick);
    self->tick.data = self;
    st = s_raft_init(self, err);
    if (st == FERRY_OK) {
        uv_timer_start(&self->tick, s_on_tick, 0, 20);
        if (pthread_create(&self->thread, NULL, s_thread, self) != 0)
            st = fy_err_set(err, FERRY_EIO, "cluster: cannot start its thread");
    }
    if (st) { /* nothing runs yet: close what was made, on this thread */
        uv_close((uv_handle_t *)&self->tick, NULL);
        uv_close((uv_handle_t *)&self->wake, NULL);
        if (self->raft_ready)
            raft_close(&self->raft, NULL);
        uv_run(&self->loop, UV_RUN_DEFAULT);
        if (self->io_ready)
            raft_uv_close(&self->io);
        if (self->transport_ready)
            fy_raft_tcp_close(&self->transport);
        uv_run(&self->loop, UV_RUN_DEFAULT);
        uv_loop_close(&self->loop);
        s_free(self);
        return st;
    }
    fy_log(log, FY_LOG_INFO, "cluster", "node started", "id=%llu address=%s peers=%zu dir=%s",
           (unsigned long long)cfg->id, s_address(self, cfg->id), cfg->npeers, self->dir);
    *out = self;
    return FERRY_OK;
}

/* Queues @p req for the log's thread and waits until it is done. */
static fy_raftlog_result_t
s_submit(fy_raftlog_t *self, s_req_t *req)
{
    pthread_mutex_lock(&self->mu);
    if (self->stopping || self->stopped) {
        pthread_mutex_unlock(&self->mu);
        return FY_RAFTLOG_FAILED;
    }
    req->next = self->queue;
    self->queue = req;
    pthread_mutex_unlock(&self->mu);
    uv_async_send(&self->wake);
    pthread_mutex_lock(&self->mu);
    while (!req->done)
        pthread_cond_wait(&self->cv, &self->mu);
    pthread_mutex_unlock(&self->mu);
    return req->result;
}

fy_raftlog_result_t
fy_raftlog_append(fy_raftlog_t *self, const void *data, size_t len, uint64_t *index)
{
    if (len > UINT32_MAX - 16)
        return FY_RAFTLOG_FAILED;
    size_t whole = (S_ENTRY_HDR + len + 7) & ~(size_t)7;
    s_req_t req = {.buf = {raft_calloc(1, whole), whole}};
    if (!req.buf.base)
        return FY_RAFTLOG_FAILED;
    fy_be32_put(req.buf.base, S_ENTRY_MAGIC);
    fy_be32_put((uint8_t *)req.buf.base + 4, (uint32_t)len);
    if (len)
        memcpy((uint8_t *)req.buf.base + S_ENTRY_HDR, data, len);
    fy_raftlog_result_t r = s_submit(self, &req);
    if (!req.done) /* the log was stopping: never handed over */
        raft_free(req.buf.base);
    if (index)
        *index = req.index;
    return r;
}

fy_status_t
fy_raftlog_change(fy_raftlog_t *self, uint64_t id, const char *address, char *why, size_t cap)
{
    if (id == 0 || (address && (!*address || strlen(address) >= 64 || !strchr(address, ':')))) {
        snprintf(why, cap, "a node id above 0%s", address ? " and its HOST:PORT" : "");
        return FERRY_EINVAL;
    }
    s_req_t req = {.change = true, .id = id, .address = address};
    fy_raftlog_result_t r = s_submit(self, &req);
    if (r == FY_RAFTLOG_COMMITTED) {
        fy_log(self->log, FY_LOG_INFO, "cluster", address ? "node added" : "node removed",
               "id=%llu address=%s", (unsigned long long)id, address ? address : "-");
        return FERRY_OK;
    }
    if (r == FY_RAFTLOG_NOT_LEADER || req.rv == RAFT_NOTLEADER || req.rv == RAFT_LEADERSHIPLOST) {
        snprintf(why, cap, "this node does not lead (any more)");
        return FERRY_ENOTLEADER;
    }
    snprintf(why, cap, "%s",
             req.rv == RAFT_BADID && !address && id == self->cfg.id
                 ? "the leader cannot remove itself: stop it, and remove it from the next leader"
             : req.rv == RAFT_BADID       ? "no such node in the cluster"
             : req.rv == RAFT_DUPLICATEID ? "a node with this id is in the cluster already"
             : req.rv == RAFT_DUPLICATEADDRESS
                 ? "a node with this address is in the cluster already"
             : req.rv == RAFT_CANTCHANGE ? "another membership change is under way: try again"
                                         : raft_strerror(req.rv ? req.rv : RAFT_IOERR));
    return FERRY_EINVAL;
}

void
fy_raftlog_state(fy_raftlog_t *self, fy_raftlog_state_t *out)
{
    pthread_mutex_lock(&self->mu);
    *out = self->state;
    pthread_mutex_unlock(&self->mu);
}

void
fy_raftlog_stop(fy_raftlog_t **self_p)
{
    fy_raftlog_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->mu);
    self->stopping = true;
    pthread_mutex_unlock(&self->mu);
    uv_async_send(&self->wake);
    pthread_join(self->thread, NULL);
    fy_log(self->log, FY_LOG_INFO, "cluster", "node stopped", "id=%llu",
           (unsigned long long)self->cfg.id);
    s_free(self);
    *self_p = NULL;
}
