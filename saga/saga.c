/*
 * saga.c - the saga orchestrator (ferry_saga.h, docs/sagas.md).
 *
 * Storage, in the service's environment:
 *   FERRY_SAGA_DB        id -> record: u8 version (1), u8 state, u16 step,
 *                        u32 attempt, u64 deadline_ms (when ended: the end
 *                        time), u16 def length,
 *                        u16 reason length, u32 data length, then the three
 *                        (all integers big-endian)
 *   FERRY_SAGA_TIMER_DB  u64 deadline_ms + id -> empty: one entry per active
 *                        saga, for the reply it waits for
 *   the outbox           the commands, published by the in-process relay
 *
 * Every transition (a reply, a deadline, a start) is one write transaction:
 * the record, its timer entry and the command it sends commit together.
 * A command carries reply_to (this orchestrator's reply topic) and
 * correlation_id "<step>/<d|u>/<attempt>/<saga id>"; a reply that does not
 * match what the saga waits for (a late or repeated one) is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "grow.h"
#include "ferry_saga.h"
#include "mdb_util.h"
#include "transition.h"

#define S_HDR          24
#define S_ID_MAX       200
#define S_DATA_MAX     (256 * 1024)
#define S_STEPS_MAX    64
#define S_NAME_MAX     63
#define S_DUE_BATCH    256
#define S_DEDUPE_MS    86400000ULL /* command queues, reply topic: a day of restarts */
#define S_TIMEOUT_DFLT 30000

typedef struct {
    char name[S_NAME_MAX + 1], queue[FERRY_NAME_MAX + 1];
    bool compensable;
    int timeout_ms;
} s_step_t;

typedef struct {
    char name[S_NAME_MAX + 1];
    s_step_t *steps;
    size_t n;
} s_def_t;

/* A saga record, decoded; data is a copy. */
typedef struct {
    ferry_saga_state_t state;
    uint32_t step, attempt;
    uint64_t deadline;
    char def[S_NAME_MAX + 1];
    char reason[256];
    void *data;
    size_t len;
} s_rec_t;

/* A saga that ended in the current poll, for on_end after the commit. */
typedef struct {
    char id[S_ID_MAX + 1];
    ferry_saga_status_t st;
} s_ended_t;

/* A reply taken in the current poll, not yet acked. */
typedef struct {
    uint64_t seq;
    bool ours, ok;
    char corr[S_ID_MAX + 40];
    char reason[200];
} s_reply_t;

struct ferry_saga_orchestrator {
    MDB_env *env;
    MDB_dbi sagas, timers, outbox;
    ferry_client_t *c;
    ferry_outbox_relay_t *relay;
    s_def_t *defs;
    size_t ndefs;
    char name[S_NAME_MAX + 1];
    char replies[FERRY_NAME_MAX + 1];
    ferry_saga_end_fn on_end;
    void *user;
    s_reply_t *replies_in; /* taken by the handler, applied after the poll */
    size_t nreplies, cap_replies;
};

static bool
s_token_ok(const char *s, size_t max)
{
    if (!s || !*s || strlen(s) > max)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return false;
    return true;
}

/* Saga ids: 1-200 printable bytes (no control characters). */
static bool
s_id_ok(const char *id)
{
    if (!id || !*id || strlen(id) > S_ID_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* The environment's epoch: random, made once, kept under a key no saga id
 * can have. It goes into the relay's name, so the commands of a re-created
 * environment never reuse the message ids of an earlier one (the broker
 * would drop them as duplicates). */
static int
s_epoch(MDB_txn *txn, MDB_dbi sagas, char *out, size_t cap)
{
    static const char key[] = "\x01epoch";
    MDB_val k = {sizeof key - 1, (void *)key}, v;
    int rc = mdb_get(txn, sagas, &k, &v);
    if (rc == MDB_NOTFOUND) {
        uint8_t r[6];
        FILE *f = fopen("/dev/urandom", "rb");
        size_t got = f ? fread(r, 1, sizeof r, f) : 0;
        if (f)
            fclose(f);
        if (got != sizeof r) { /* no /dev/urandom: the clock is unique enough here */
            uint64_t t = fy_wall_ms() ^ (uint64_t)fy_mono_ms() << 20;
            memcpy(r, &t, sizeof r);
        }
        char hex[13];
        for (int i = 0; i < 6; i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        v = (MDB_val){12, hex};
        if ((rc = mdb_put(txn, sagas, &k, &v, 0)))
            return rc;
        rc = mdb_get(txn, sagas, &k, &v);
    }
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
    return rc;
}

static const s_def_t *
s_def(const ferry_saga_orchestrator_t *o, const char *name)
{
    for (size_t i = 0; i < o->ndefs; i++)
        if (strcmp(o->defs[i].name, name) == 0)
            return &o->defs[i];
    return NULL;
}

/* ---- records ----------------------------------------------------------------- */

static void
s_rec_free(s_rec_t *r)
{
    free(r->data);
    r->data = NULL;
}

static int
s_rec_get(ferry_saga_orchestrator_t *o, MDB_txn *txn, const char *id, s_rec_t *r)
{
    memset(r, 0, sizeof *r);
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = mdb_get(txn, o->sagas, &k, &v);
    if (rc)
        return rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < S_HDR || p[0] != 1)
        return MDB_CORRUPTED;
    size_t ld = fy_be16_get(p + 16), lr = fy_be16_get(p + 18), ln = fy_be32_get(p + 20);
    if (S_HDR + ld + lr + ln != v.mv_size || ld > S_NAME_MAX || lr >= sizeof r->reason)
        return MDB_CORRUPTED;
    r->state = (ferry_saga_state_t)p[1];
    r->step = fy_be16_get(p + 2);
    r->attempt = fy_be32_get(p + 4);
    r->deadline = fy_be64_get(p + 8);
    memcpy(r->def, p + S_HDR, ld);
    memcpy(r->reason, p + S_HDR + ld, lr);
    r->len = ln;
    r->data = malloc(ln ? ln : 1);
    if (!r->data)
        return ENOMEM;
    memcpy(r->data, p + S_HDR + ld + lr, ln);
    return 0;
}

static int
s_rec_put(ferry_saga_orchestrator_t *o, MDB_txn *txn, const char *id, const s_rec_t *r)
{
    size_t ld = strlen(r->def), lr = strlen(r->reason);
    MDB_val k = {strlen(id), (void *)id}, v = {S_HDR + ld + lr + r->len, NULL};
    int rc = mdb_put(txn, o->sagas, &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    uint8_t *p = v.mv_data;
    p[0] = 1;
    p[1] = (uint8_t)r->state;
    fy_be16_put(p + 2, (uint16_t)r->step);
    fy_be32_put(p + 4, r->attempt);
    fy_be64_put(p + 8, r->deadline);
    fy_be16_put(p + 16, (uint16_t)ld);
    fy_be16_put(p + 18, (uint16_t)lr);
    fy_be32_put(p + 20, (uint32_t)r->len);
    memcpy(p + S_HDR, r->def, ld);
    memcpy(p + S_HDR + ld, r->reason, lr);
    if (r->len)
        memcpy(p + S_HDR + ld + lr, r->data, r->len);
    return 0;
}

/* The timer entry of @p id: removes the one at @p old (0: none), adds one
 * at @p deadline (0: none). */
static int
s_timer(ferry_saga_orchestrator_t *o, MDB_txn *txn, const char *id, uint64_t old, uint64_t deadline)
{
    uint8_t key[8 + S_ID_MAX];
    size_t len = strlen(id);
    memcpy(key + 8, id, len);
    MDB_val k = {8 + len, key}, v = {0, ""};
    int rc = 0;
    if (old) {
        fy_be64_put(key, old);
        rc = mdb_del(txn, o->timers, &k, NULL);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc == 0 && deadline) {
        fy_be64_put(key, deadline);
        rc = mdb_put(txn, o->timers, &k, &v, 0);
    }
    return rc;
}

static void
s_status_of(const s_rec_t *r, ferry_saga_status_t *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->def, sizeof st->def, "%s", r->def);
    st->state = r->state;
    st->step = r->step;
    st->attempt = r->attempt;
    bool ended = r->state == FERRY_SAGA_DONE || r->state == FERRY_SAGA_COMPENSATED;
    st->deadline_ms = ended ? 0 : r->deadline;
    st->ended_ms = ended ? r->deadline : 0;
    snprintf(st->reason, sizeof st->reason, "%s", r->reason);
}

/* ---- transitions ------------------------------------------------------------- */

/* Puts the command of step @p step (its compensation with @p undo) into the
 * outbox, in the transaction that changes the saga. */
static int
s_send(ferry_saga_orchestrator_t *o, MDB_txn *txn, const s_def_t *d, const char *id,
       const s_rec_t *r, bool undo)
{
    const s_step_t *st = &d->steps[r->step];
    char corr[S_ID_MAX + 40], event[S_NAME_MAX + 8], expires[24];
    snprintf(corr, sizeof corr, "%u/%c/%u/%s", r->step, undo ? 'u' : 'd', r->attempt, id);
    /* A command that reaches its participant after the saga gave up on it
     * is refused there; compensations never expire. */
    snprintf(expires, sizeof expires, "%llu", undo ? 0ULL : (unsigned long long)r->deadline);
    snprintf(event, sizeof event, "%s%s", st->name, undo ? ":undo" : "");
    ferry_header_t h[] = {
        {"reply_to", o->replies},       {"correlation_id", corr},
        {"ferry-saga-def", d->name},    {"ferry-saga-id", id},
        {"ferry-saga-step", st->name},  {"ferry-saga-action", undo ? "undo" : "do"},
        {"ferry-saga-expires", expires}};
    ferry_outbox_event_t ev = {.aggregate_type = st->queue,
                               .aggregate_id = id,
                               .event_type = event,
                               .payload = r->data,
                               .len = r->len,
                               .headers = h,
                               .header_count = sizeof h / sizeof h[0]};
    ferry_status_t fs = ferry_outbox_put(txn, o->outbox, &ev, NULL);
    return fs == FERRY_OK ? 0 : fs == FERRY_ESTORAGE_FULL ? MDB_MAP_FULL : EIO;
}

/* Applies @p ev to saga @p id in @p txn (transition.c decides where it goes);
 * *ended set when it ended. */
static int
s_apply(ferry_saga_orchestrator_t *o, MDB_txn *txn, const char *id, s_rec_t *r, fy_saga_event_t ev,
        const char *reason, bool *ended)
{
    *ended = false;
    const s_def_t *d = s_def(o, r->def);
    if (!d) /* a definition this build no longer has: leave it be, but stop its timer */
        return s_timer(o, txn, id, r->deadline, 0);
    bool compensable[S_STEPS_MAX];
    for (size_t i = 0; i < d->n; i++)
        compensable[i] = d->steps[i].compensable;
    fy_saga_next_t n =
        fy_saga_transition(compensable, d->n, (fy_saga_at_t){r->state, r->step, r->attempt}, ev);
    if (!n.changed)
        return 0;
    if (r->state == FERRY_SAGA_RUNNING && ev != FY_SAGA_EV_OK) {
        if (ev == FY_SAGA_EV_FAIL)
            snprintf(r->reason, sizeof r->reason, "step %s failed: %s", d->steps[r->step].name,
                     reason && *reason ? reason : "(no reason)");
        else
            snprintf(r->reason, sizeof r->reason, "step %s timed out", d->steps[r->step].name);
    }
    uint64_t old = r->deadline;
    r->state = n.at.state;
    r->step = n.at.step;
    r->attempt = n.at.attempt;
    int rc = 0;
    if (n.send != FY_SAGA_SEND_NONE) {
        r->deadline = fy_wall_ms() + (uint64_t)d->steps[r->step].timeout_ms;
        rc = s_send(o, txn, d, id, r, n.send == FY_SAGA_SEND_UNDO);
    }
    *ended = n.ended;
    if (*ended) /* an ended saga keeps when it ended in its deadline's place */
        r->deadline = fy_wall_ms();
    if (rc == 0)
        rc = s_timer(o, txn, id, old, *ended ? 0 : r->deadline);
    if (rc == 0)
        rc = s_rec_put(o, txn, id, r);
    *ended = *ended && rc == 0;
    return rc;
}

/* ---- replies and deadlines ---------------------------------------------------- */

/* The handler only takes a reply down (KEEP: it stays pending); the
 * transitions of all replies taken in one poll commit in one transaction,
 * and only then are the replies acked (ferry_saga_poll). */
static ferry_msg_action_t
s_on_reply(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    ferry_saga_orchestrator_t *o = user;
    const char *corr = ferry_msg_header(m, "correlation_id");
    const char *result = ferry_msg_header(m, "ferry-saga-result");
    if (!fy_grow(&o->replies_in, &o->cap_replies, o->nreplies + 1, sizeof *o->replies_in, 256))
        return FERRY_MSG_NACK;
    s_reply_t *r = &o->replies_in[o->nreplies++];
    memset(r, 0, sizeof *r);
    r->seq = m->seq;
    r->ours = corr && result && strlen(corr) < sizeof r->corr;
    if (r->ours) {
        snprintf(r->corr, sizeof r->corr, "%s", corr);
        r->ok = strcmp(result, "ok") == 0;
        size_t rl = m->len < sizeof r->reason - 1 ? m->len : sizeof r->reason - 1;
        memcpy(r->reason, m->data, rl);
    }
    return FERRY_MSG_KEEP;
}

/* Applies one reply in @p txn; *ended set (and *st filled) when its saga ended. */
static int
s_apply_reply(ferry_saga_orchestrator_t *o, MDB_txn *txn, const s_reply_t *rp, bool *ended,
              s_ended_t *st)
{
    *ended = false;
    unsigned step, attempt;
    char dir;
    int off = 0;
    if (!rp->ours || sscanf(rp->corr, "%u/%c/%u/%n", &step, &dir, &attempt, &off) != 3 ||
        off <= 0 || !rp->corr[off] || strlen(rp->corr + off) > S_ID_MAX)
        return 0; /* not a reply of ours: nothing to do with it */
    const char *id = rp->corr + off;
    s_rec_t r;
    int rc = s_rec_get(o, txn, id, &r);
    bool expected = rc == 0 && r.step == step &&
                    ((r.state == FERRY_SAGA_RUNNING && dir == 'd' && r.attempt == attempt) ||
                     (r.state == FERRY_SAGA_COMPENSATING && dir == 'u'));
    if (rc == MDB_NOTFOUND)
        rc = 0; /* a late or repeated reply: dropped */
    if (rc == 0 && expected)
        rc = s_apply(o, txn, id, &r, rp->ok ? FY_SAGA_EV_OK : FY_SAGA_EV_FAIL, rp->reason, ended);
    if (rc == 0 && *ended) {
        snprintf(st->id, sizeof st->id, "%s", id);
        s_status_of(&r, &st->st);
    }
    s_rec_free(&r);
    return rc;
}

/* Commits the transitions of the replies taken, then acks them. */
static ferry_status_t
s_apply_replies(ferry_saga_orchestrator_t *o)
{
    if (o->nreplies == 0)
        return FERRY_OK;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    s_ended_t *ended = rc ? NULL : calloc(o->nreplies, sizeof *ended);
    size_t nended = 0;
    if (!rc && !ended)
        rc = ENOMEM;
    for (size_t i = 0; rc == 0 && i < o->nreplies; i++) {
        bool end = false;
        rc = s_apply_reply(o, txn, &o->replies_in[i], &end, &ended[nended]);
        nended += end;
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    ferry_status_t st = fy_mdb_write_status(o->env, rc);
    /* Acked only once their transitions are on disk; on a failure they stay
     * pending and come again after the subscription's ack wait. The ack
     * call runs the handler for replies arriving meanwhile: they start the
     * next batch, so the batch is emptied first. */
    size_t n = o->nreplies;
    uint64_t *seqs = st == FERRY_OK ? malloc(n * sizeof *seqs) : NULL;
    for (size_t i = 0; seqs && i < n; i++)
        seqs[i] = o->replies_in[i].seq;
    o->nreplies = 0;
    for (size_t i = 0; seqs && i < n; i += 1000) {
        size_t k = n - i < 1000 ? n - i : 1000;
        ferry_status_t ack = ferry_client_ack(o->c, o->replies, "orchestrator", seqs + i, k);
        if (ack != FERRY_OK && ack != FERRY_ESEQ)
            break; /* not acked: they come again, and are dropped as stale */
    }
    free(seqs);
    for (size_t i = 0; st == FERRY_OK && o->on_end && i < nended; i++)
        o->on_end(ended[i].id, &ended[i].st, o->user);
    free(ended);
    return st;
}

/* The earliest deadline of an active saga (0: none), from a read transaction. */
static uint64_t
s_next_deadline(ferry_saga_orchestrator_t *o)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t next = 0;
    if (mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, o->timers, &cur) == 0) {
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size > 8)
            next = fy_be64_get(k.mv_data);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return next;
}

/* Fires the deadlines that passed, in one transaction (looked for with a
 * read transaction first: most polls find none, and a write transaction
 * would wait for, and hold up, the relay's). */
static ferry_status_t
s_fire_due(ferry_saga_orchestrator_t *o)
{
    uint64_t now = fy_wall_ms(), next = s_next_deadline(o);
    if (next == 0 || next > now)
        return FERRY_OK;
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc)
        return fy_mdb_status(rc);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, o->timers, &cur))) {
        mdb_txn_abort(txn);
        return fy_mdb_status(rc);
    }
    /* Collect first: the transitions change the timer index. */
    char(*due)[S_ID_MAX + 1] = malloc(S_DUE_BATCH * sizeof *due);
    uint64_t at[S_DUE_BATCH];
    size_t n = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); due && rc == 0 && n < S_DUE_BATCH;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= 8 || k.mv_size > 8 + S_ID_MAX)
            continue;
        uint64_t deadline = fy_be64_get(k.mv_data);
        if (deadline > now)
            break;
        at[n] = deadline;
        memcpy(due[n], (const char *)k.mv_data + 8, k.mv_size - 8);
        due[n][k.mv_size - 8] = '\0';
        n++;
    }
    mdb_cursor_close(cur);
    if (!due) {
        mdb_txn_abort(txn);
        return FERRY_ENOMEM;
    }
    s_ended_t *ended = n ? calloc(n, sizeof *ended) : NULL;
    size_t nended = 0;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        s_rec_t r;
        bool end = false;
        rc = s_rec_get(o, txn, due[i], &r);
        if (rc == MDB_NOTFOUND || (rc == 0 && r.deadline != at[i])) /* a stale entry */
            rc = s_timer(o, txn, due[i], at[i], 0);
        else if (rc == 0)
            rc = s_apply(o, txn, due[i], &r, FY_SAGA_EV_TIMEOUT, NULL, &end);
        if (rc == 0 && end && ended) {
            snprintf(ended[nended].id, sizeof ended[nended].id, "%s", due[i]);
            s_status_of(&r, &ended[nended++].st);
        }
        s_rec_free(&r);
    }
    if (rc == 0 && n > 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    for (size_t i = 0; rc == 0 && o->on_end && i < nended; i++)
        o->on_end(ended[i].id, &ended[i].st, o->user);
    free(ended);
    free(due);
    return fy_mdb_write_status(o->env, rc);
}

/* ---- the API ------------------------------------------------------------------ */

static void
s_free_defs(ferry_saga_orchestrator_t *o)
{
    for (size_t i = 0; o->defs && i < o->ndefs; i++)
        free(o->defs[i].steps);
    free(o->defs);
    o->defs = NULL;
}

static ferry_status_t
s_copy_defs(ferry_saga_orchestrator_t *o, const ferry_saga_def_t *defs, size_t n)
{
    if (!defs || n == 0)
        return FERRY_EINVAL;
    o->defs = calloc(n, sizeof *o->defs);
    if (!o->defs)
        return FERRY_ENOMEM;
    o->ndefs = n;
    for (size_t i = 0; i < n; i++) {
        const ferry_saga_def_t *d = &defs[i];
        if (!s_token_ok(d->name, S_NAME_MAX) || !d->steps || d->step_count == 0 ||
            d->step_count > S_STEPS_MAX)
            return FERRY_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->defs[j].name, d->name) == 0)
                return FERRY_EINVAL;
        s_def_t *c = &o->defs[i];
        snprintf(c->name, sizeof c->name, "%s", d->name);
        c->steps = calloc(d->step_count, sizeof *c->steps);
        if (!c->steps)
            return FERRY_ENOMEM;
        c->n = d->step_count;
        for (size_t s = 0; s < d->step_count; s++) {
            const ferry_saga_step_t *st = &d->steps[s];
            if (!s_token_ok(st->name, S_NAME_MAX) || !st->queue || !*st->queue ||
                strlen(st->queue) > FERRY_NAME_MAX || st->timeout_ms < 0)
                return FERRY_EINVAL;
            for (size_t t = 0; t < s; t++)
                if (strcmp(c->steps[t].name, st->name) == 0)
                    return FERRY_EINVAL;
            snprintf(c->steps[s].name, sizeof c->steps[s].name, "%s", st->name);
            snprintf(c->steps[s].queue, sizeof c->steps[s].queue, "%s", st->queue);
            c->steps[s].compensable = st->compensable;
            c->steps[s].timeout_ms = st->timeout_ms ? st->timeout_ms : S_TIMEOUT_DFLT;
        }
    }
    return FERRY_OK;
}

static ferry_status_t
s_declare_queue(ferry_client_t *c, const char *name)
{
    ferry_topic_config_t tc = {.dedupe_window_ms = S_DEDUPE_MS};
    ferry_status_t st = ferry_client_declare(c, FERRY_KIND_QUEUE, name, &tc, NULL, NULL);
    return st == FERRY_EEXISTS ? FERRY_OK : st; /* a topic of that name works too */
}

ferry_status_t
ferry_saga_orchestrator_new(MDB_env *env, const ferry_saga_def_t *defs, size_t def_count,
                            const ferry_saga_config_t *cfg, ferry_saga_orchestrator_t **out)
{
    if (!env || !out)
        return FERRY_EINVAL;
    *out = NULL;
    ferry_saga_config_t none = {0};
    if (!cfg)
        cfg = &none;
    ferry_saga_orchestrator_t *o = calloc(1, sizeof *o);
    if (!o)
        return FERRY_ENOMEM;
    o->env = env;
    o->on_end = cfg->on_end;
    o->user = cfg->user;
    ferry_status_t st = s_copy_defs(o, defs, def_count);
    if (st == FERRY_OK && !s_token_ok(cfg->name ? cfg->name : "saga", S_NAME_MAX))
        st = FERRY_EINVAL;
    if (st != FERRY_OK) {
        ferry_saga_orchestrator_destroy(&o);
        return st;
    }
    snprintf(o->name, sizeof o->name, "%s", cfg->name ? cfg->name : "saga");
    snprintf(o->replies, sizeof o->replies, "saga.%s.replies", o->name);
    MDB_txn *txn;
    char epoch[16] = "";
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        if ((rc = mdb_dbi_open(txn, FERRY_SAGA_DB, MDB_CREATE, &o->sagas)) == 0 &&
            (rc = s_epoch(txn, o->sagas, epoch, sizeof epoch)) == 0 &&
            (rc = mdb_dbi_open(txn, FERRY_SAGA_TIMER_DB, MDB_CREATE, &o->timers)) == 0 &&
            (rc = ferry_outbox_open(txn, &o->outbox) == FERRY_OK ? 0 : EIO) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc) {
        ferry_saga_orchestrator_destroy(&o);
        return FERRY_EIO;
    }
    ferry_options_t *opts = ferry_options_new();
    char cname[100];
    snprintf(cname, sizeof cname, "saga:%s", o->name);
    const char *server = cfg->broker ? cfg->broker : getenv("FERRY_SERVER");
    st = !opts                                                          ? FERRY_ENOMEM
         : server && ferry_options_set_server(opts, server) != FERRY_OK ? FERRY_EINVAL
                                                                        : FERRY_OK;
    if (st == FERRY_OK) {
        ferry_options_set_name(opts, cname);
        /* A 1 s heartbeat: replies a crashed orchestrator held come back
         * to its successor after 3 s instead of 15. */
        ferry_options_set_heartbeat_ms(opts, 1000);
        if (cfg->log) /* the connection's news too: lost, back, a subscription refused */
            ferry_options_set_log_cb(opts, cfg->log, cfg->log_user);
        st = ferry_client_new(opts, &o->c);
    }
    ferry_options_destroy(&opts);
    /* Replies: a topic with one durable subscription that never gives up on
     * a reply in practice (a queue's would dead-letter one after 5 deliveries; an
     * orchestrator killed repeatedly strands a reply that often) and takes
     * back what a dead orchestrator held within 10 s; interest retention
     * drops each reply once acked. */
    ferry_topic_config_t rt = {.dedupe_window_ms = S_DEDUPE_MS, .interest = true};
    ferry_sub_config_t rs = {.ack_wait_ms = 10000, .max_deliver = 1000}; /* the most there is */
    if (st == FERRY_OK)
        st = ferry_client_declare(o->c, FERRY_KIND_TOPIC, o->replies, &rt, NULL, NULL);
    if (st == FERRY_OK)
        st = ferry_client_sub_declare(o->c, o->replies, "orchestrator", &rs, NULL);
    for (size_t i = 0; st == FERRY_OK && i < o->ndefs; i++)
        for (size_t s = 0; st == FERRY_OK && s < o->defs[i].n; s++)
            st = s_declare_queue(o->c, o->defs[i].steps[s].queue);
    if (st == FERRY_OK)
        st = ferry_client_subscribe(o->c, o->replies, "orchestrator", 1000, s_on_reply, o, NULL);
    char rname[S_NAME_MAX + 32];
    snprintf(rname, sizeof rname, "saga-%s-%s", o->name, epoch);
    ferry_outbox_relay_config_t rc_cfg = {.broker = server,
                                          .name = rname,
                                          .dedupe_window_ms = S_DEDUPE_MS,
                                          .poll_ms = 5,
                                          .log = cfg->log,
                                          .log_user = cfg->log_user};
    if (st == FERRY_OK)
        st = ferry_outbox_relay_start(env, &rc_cfg, &o->relay);
    if (st != FERRY_OK) {
        ferry_saga_orchestrator_destroy(&o);
        return st;
    }
    *out = o;
    return FERRY_OK;
}

ferry_status_t
ferry_saga_start(ferry_saga_orchestrator_t *o, const char *def, const char *id, const void *data,
                 size_t len)
{
    if (!o || !def || !s_id_ok(id) || (len && !data) || len > S_DATA_MAX)
        return FERRY_EINVAL;
    const s_def_t *d = s_def(o, def);
    if (!d)
        return FERRY_ENOTFOUND;
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, 0, &txn);
    if (rc)
        return fy_mdb_status(rc);
    s_rec_t r;
    rc = s_rec_get(o, txn, id, &r);
    s_rec_free(&r);
    if (rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return rc == 0 ? FERRY_EEXISTS : fy_mdb_status(rc);
    }
    r = (s_rec_t){.state = FERRY_SAGA_RUNNING,
                  .step = 0,
                  .attempt = 1,
                  .deadline = fy_wall_ms() + (uint64_t)d->steps[0].timeout_ms,
                  .data = (void *)data,
                  .len = len};
    snprintf(r.def, sizeof r.def, "%s", d->name);
    rc = s_send(o, txn, d, id, &r, false);
    if (rc == 0)
        rc = s_timer(o, txn, id, 0, r.deadline);
    if (rc == 0)
        rc = s_rec_put(o, txn, id, &r);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    return fy_mdb_write_status(o->env, rc);
}

ferry_status_t
ferry_saga_poll(ferry_saga_orchestrator_t *o, int timeout_ms)
{
    if (!o)
        return FERRY_EINVAL;
    ferry_client_poll(o->c, timeout_ms);
    ferry_status_t st = s_apply_replies(o);
    ferry_status_t due = s_fire_due(o);
    return st != FERRY_OK ? st : due;
}

ferry_status_t
ferry_saga_get(ferry_saga_orchestrator_t *o, const char *id, ferry_saga_status_t *out)
{
    if (!o || !s_id_ok(id) || !out)
        return FERRY_EINVAL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return fy_mdb_status(rc);
    s_rec_t r;
    rc = s_rec_get(o, txn, id, &r);
    mdb_txn_abort(txn);
    if (rc == 0)
        s_status_of(&r, out);
    s_rec_free(&r);
    return rc == MDB_NOTFOUND ? FERRY_ENOTFOUND : fy_mdb_status(rc);
}

size_t
ferry_saga_active(ferry_saga_orchestrator_t *o)
{
    MDB_txn *txn;
    MDB_stat st = {0};
    if (!o || mdb_txn_begin(o->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    mdb_stat(txn, o->timers, &st);
    mdb_txn_abort(txn);
    return st.ms_entries;
}

/* A record of a saga that ended before *ctx (ms); not the epoch. */
static bool
s_ended_before(const MDB_val *k, const MDB_val *v, void *ctx)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size == 0 || ((const uint8_t *)k->mv_data)[0] < 0x20 || v->mv_size < S_HDR ||
        p[0] != 1)
        return false;
    bool ended = p[1] == FERRY_SAGA_DONE || p[1] == FERRY_SAGA_COMPENSATED;
    return ended && fy_be64_get(p + 8) < *(const uint64_t *)ctx;
}

ferry_status_t
ferry_saga_purge(ferry_saga_orchestrator_t *o, uint64_t before_ms, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (!o)
        return FERRY_EINVAL;
    return fy_mdb_delete_if(o->env, o->sagas, s_ended_before, &before_ms, removed);
}

void
ferry_saga_orchestrator_destroy(ferry_saga_orchestrator_t **o_p)
{
    if (!o_p || !*o_p)
        return;
    ferry_saga_orchestrator_t *o = *o_p;
    ferry_outbox_relay_stop(&o->relay);
    ferry_client_destroy(&o->c);
    s_free_defs(o);
    free(o->replies_in);
    free(o);
    *o_p = NULL;
}
