/* SPDX-License-Identifier: MIT */
/*
 * saga.c - the saga orchestrator's core (ferry_saga.h, docs/sagas.md): the
 * definitions, the transitions, the replies and the deadlines, on a store
 * (ferry_saga_store_t: saga_lmdb.c for LMDB, libferry-sql for SQLite and
 * PostgreSQL) that keeps the sagas and puts their commands into the
 * service's outbox.
 *
 * Every transition (a reply, a deadline, a start) is one store transaction:
 * the record and the command it sends commit together. A command carries
 * reply_to (this orchestrator's reply topic) and correlation_id
 * "<step>/<d|u>/<attempt>/<saga id>"; a reply that does not match what the
 * saga waits for (a late or repeated one) is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ferry_saga.h"
#include "grow.h"
#include "results.h"
#include "saga_int.h"
#include "start_queue.h"
#include "transition.h"

#define S_ID_MAX       FY_SAGA_ID_MAX
#define S_NAME_MAX     FY_SAGA_NAME_MAX
#define S_DATA_MAX     (256 * 1024)
#define S_STEPS_MAX    FERRY_SAGA_STEPS_MAX
#define S_DUE_BATCH    256
#define S_TIMEOUT_DFLT 30000

typedef struct {
    char name[S_NAME_MAX + 1], queue[FERRY_NAME_MAX + 1];
    int timeout_ms, retry_delay_ms;
    fy_saga_policy_t policy;
} s_step_t;

typedef struct {
    char name[S_NAME_MAX + 1];
    char key[S_NAME_MAX + 1]; /* as records keep it: "name", or "name@N" from version 2 */
    uint32_t version;
    s_step_t *steps;
    size_t n;
} s_def_t;

typedef ferry_saga_record_t s_rec_t;

/* A saga that ended in the current poll, for on_end after the commit. */
typedef struct {
    char id[S_ID_MAX + 1];
    ferry_saga_status_t st;
} s_ended_t;

/* A reply taken in the current poll, not yet acked; or a person's control
 * message (`ferry saga cancel|retry`): corr is then the saga id. */
typedef struct {
    uint64_t seq;
    bool ours, control;
    fy_saga_event_t ev; /* OK, FAIL or RETRY; CANCEL or RESUME for a control */
    char corr[S_ID_MAX + 40];
    char reason[200];
    char *result; /* an "ok" reply's payload as text (malloc'ed), or NULL */
} s_reply_t;

struct ferry_saga_orchestrator {
    ferry_saga_store_t store;
    ferry_client_t *c;
    s_def_t *defs;
    size_t ndefs;
    char name[S_NAME_MAX + 1];
    char replies[FERRY_NAME_MAX + 1];
    ferry_saga_end_fn on_end;
    void *user;
    s_reply_t *replies_in; /* taken by the handler, applied after the poll */
    size_t nreplies, cap_replies;
    ferry_saga_stats_t stats, pending; /* pending: of the open transaction */
    fy_saga_startq_t starts;           /* ferry_saga_start_async's, until the next poll */
};

/* The open transaction's counts join the others once it committed. */
static void
s_count(ferry_saga_orchestrator_t *o, ferry_status_t committed)
{
    if (committed == FERRY_OK) {
        o->stats.done += o->pending.done;
        o->stats.compensated += o->pending.compensated;
        o->stats.failed += o->pending.failed;
        o->stats.timeouts += o->pending.timeouts;
        o->stats.resent += o->pending.resent;
    }
    memset(&o->pending, 0, sizeof o->pending);
}

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

/* The definition a record names ("name" or "name@N"). */
static const s_def_t *
s_def(const ferry_saga_orchestrator_t *o, const char *key)
{
    for (size_t i = 0; i < o->ndefs; i++)
        if (strcmp(o->defs[i].key, key) == 0)
            return &o->defs[i];
    return NULL;
}

/* The definition a new saga of @p asked runs on: "name@N" exactly, "name"
 * its highest version. */
static const s_def_t *
s_def_to_start(const ferry_saga_orchestrator_t *o, const char *asked)
{
    size_t at = strcspn(asked, "@");
    if (asked[at]) { /* version 1 is kept as the name alone */
        char key[S_NAME_MAX + 1];
        if (strcmp(asked + at, "@1") != 0 || at >= sizeof key)
            return s_def(o, asked);
        memcpy(key, asked, at);
        key[at] = '\0';
        return s_def(o, key);
    }
    const s_def_t *best = NULL;
    for (size_t i = 0; i < o->ndefs; i++)
        if (strcmp(o->defs[i].name, asked) == 0 && (!best || o->defs[i].version > best->version))
            best = &o->defs[i];
    return best;
}

/* ---- records ----------------------------------------------------------------- */

static void
s_rec_free(s_rec_t *r)
{
    free(r->data);
    free(r->results);
    r->data = NULL;
    r->results = NULL;
}

static void
s_status_of(const s_rec_t *r, ferry_saga_status_t *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->def, sizeof st->def, "%s", r->def);
    st->state = r->state;
    st->step = r->step;
    st->attempt = r->attempt;
    bool ended = r->state == FERRY_SAGA_DONE || r->state == FERRY_SAGA_COMPENSATED ||
                 r->state == FERRY_SAGA_FAILED;
    st->deadline_ms = ended ? 0 : r->deadline_ms;
    st->ended_ms = ended ? r->deadline_ms : 0;
    snprintf(st->reason, sizeof st->reason, "%s", r->reason);
}

/* ---- transitions ------------------------------------------------------------- */

/* Puts the command of step r->step (its compensation with @p undo) into the
 * outbox, in the transaction that changes the saga. */
static ferry_status_t
s_send(ferry_saga_orchestrator_t *o, void *tx, const s_def_t *d, const char *id, const s_rec_t *r,
       bool undo)
{
    const s_step_t *st = &d->steps[r->step];
    char corr[S_ID_MAX + 40], event[S_NAME_MAX + 8], expires[24], version[16];
    snprintf(corr, sizeof corr, "%u/%c/%u/%s", r->step, undo ? 'u' : 'd', r->attempt, id);
    snprintf(version, sizeof version, "%u", d->version);
    /* A command that reaches its participant after the saga gave up on it
     * is refused there; compensations never expire. */
    snprintf(expires, sizeof expires, "%llu", undo ? 0ULL : (unsigned long long)r->deadline_ms);
    snprintf(event, sizeof event, "%s%s", st->name, undo ? ":undo" : "");
    ferry_header_t h[8 + S_STEPS_MAX] = {
        {"reply_to", o->replies},        {"correlation_id", corr},
        {"ferry-saga-def", d->name},     {"ferry-saga-id", id},
        {"ferry-saga-step", st->name},   {"ferry-saga-action", undo ? "undo" : "do"},
        {"ferry-saga-expires", expires}, {"ferry-saga-version", version}};
    /* The results of the steps so far, a header each (at most one per step
     * of the definition: S_STEPS_MAX leaves the room). */
    char names[S_STEPS_MAX][sizeof FY_SAGA_RESULT_HEADER + S_NAME_MAX];
    size_t nh = 8, at = 0;
    const char *rs, *rt;
    while (nh < sizeof h / sizeof h[0] &&
           fy_saga_results_next(r->results, r->results_len, &at, &rs, &rt)) {
        char *name = names[nh - 8];
        snprintf(name, sizeof names[0], FY_SAGA_RESULT_HEADER "%s", rs);
        h[nh++] = (ferry_header_t){name, rt};
    }
    ferry_outbox_event_t ev = {.aggregate_type = st->queue,
                               .aggregate_id = id,
                               .event_type = event,
                               .payload = r->data,
                               .len = r->len,
                               .headers = h,
                               .header_count = nh};
    return o->store.send(o->store.self, tx, &ev);
}

static const char *
s_state_name(ferry_saga_state_t st)
{
    switch (st) {
    case FERRY_SAGA_RUNNING:
        return "running";
    case FERRY_SAGA_COMPENSATING:
        return "compensating";
    case FERRY_SAGA_DONE:
        return "done";
    case FERRY_SAGA_COMPENSATED:
        return "compensated";
    case FERRY_SAGA_FAILED:
        return "failed";
    }
    return "unknown";
}

/* Publishes the transition that brought saga @p id where @p r stands, on
 * what (@p cause: "start", "ok", "fail", "timeout"), through the outbox in
 * the same transaction: topic "_saga.<definition>", key the saga id, so a
 * dashboard or `ferry sub` follows every saga and `ferry read` gives one
 * saga's history in order. */
static ferry_status_t
s_announce(ferry_saga_orchestrator_t *o, void *tx, const s_def_t *d, const char *id,
           const s_rec_t *r, const char *cause, const char *result)
{
    char topic[S_NAME_MAX + 8], attempt[16];
    snprintf(topic, sizeof topic, "_saga.%s", d->name);
    snprintf(attempt, sizeof attempt, "%u", r->attempt);
    bool ended = r->state == FERRY_SAGA_DONE || r->state == FERRY_SAGA_COMPENSATED ||
                 r->state == FERRY_SAGA_FAILED;
    ferry_header_t h[] = {{"ferry-saga-orchestrator", o->name},
                          {"ferry-saga-def", d->key},
                          {"ferry-saga-state", s_state_name(r->state)},
                          {"ferry-saga-step", d->steps[r->step < d->n ? r->step : d->n - 1].name},
                          {"ferry-saga-attempt", attempt},
                          {"ferry-saga-cause", cause},
                          {"ferry-saga-reason", r->reason},
                          {"ferry-saga-result", result ? result : ""}};
    ferry_outbox_event_t ev = {.aggregate_type = topic,
                               .aggregate_id = id,
                               .event_type = ended ? s_state_name(r->state) : cause,
                               .headers = h,
                               .header_count = sizeof h / sizeof h[0] - !result};
    return o->store.send(o->store.self, tx, &ev);
}

/* Applies @p ev to saga @p id in @p tx (transition.c decides where it goes);
 * a step's @p result (an "ok" to its command; NULL: none) is kept in the
 * saga; *ended set when it ended. */
static ferry_status_t
s_apply(ferry_saga_orchestrator_t *o, void *tx, const char *id, s_rec_t *r, fy_saga_event_t ev,
        const char *reason, const char *result, bool *ended)
{
    *ended = false;
    const s_def_t *d = s_def(o, r->def);
    if (!d) { /* a definition this build does not have: it waits, looked at each minute */
        if (ev != FY_SAGA_EV_TIMEOUT)
            return FERRY_OK;
        r->deadline_ms = fy_wall_ms() + 60000;
        return o->store.put(o->store.self, tx, id, r, false);
    }
    fy_saga_policy_t policy[S_STEPS_MAX];
    for (size_t i = 0; i < d->n; i++)
        policy[i] = d->steps[i].policy;
    fy_saga_next_t n = fy_saga_transition(
        policy, d->n, (fy_saga_at_t){r->state, r->step, r->attempt, r->waiting}, ev);
    if (!n.changed)
        return FERRY_OK;
    if (ev != FY_SAGA_EV_OK || r->state != FERRY_SAGA_RUNNING || (result && !*result))
        result = NULL; /* only a step's own "ok" gives one */
    if (result &&
        !fy_saga_results_set(&r->results, &r->results_len, d->steps[r->step].name, result))
        return FERRY_ENOMEM;
    const char *why = reason && *reason ? reason : "(no reason)";
    const char *step = d->steps[r->step].name;
    if (n.at.state == FERRY_SAGA_FAILED)
        snprintf(r->reason, sizeof r->reason,
                 "compensation of step %s gave up after %u attempts: %s", step, r->attempt,
                 ev == FY_SAGA_EV_TIMEOUT ? "timed out" : why);
    else if (r->state == FERRY_SAGA_RUNNING && n.at.state != FERRY_SAGA_RUNNING &&
             ev != FY_SAGA_EV_OK)
        snprintf(r->reason, sizeof r->reason, "step %s %s%s", step,
                 ev == FY_SAGA_EV_TIMEOUT  ? "timed out"
                 : ev == FY_SAGA_EV_CANCEL ? "cancelled: "
                                           : "failed: ",
                 ev == FY_SAGA_EV_TIMEOUT ? "" : why);
    r->state = n.at.state;
    r->step = n.at.step;
    r->attempt = n.at.attempt;
    r->waiting = n.at.waiting;
    ferry_status_t st = FERRY_OK;
    uint64_t now = fy_wall_ms();
    if (n.send != FY_SAGA_SEND_NONE) {
        r->deadline_ms = now + (uint64_t)d->steps[r->step].timeout_ms;
        st = s_send(o, tx, d, id, r, n.send == FY_SAGA_SEND_UNDO);
    } else if (r->waiting) { /* attempt r->attempt goes out after its wait */
        uint64_t seed = 14695981039346656037ULL;
        for (const char *c = id; *c; c++)
            seed = (seed ^ (uint8_t)*c) * 1099511628211ULL;
        r->deadline_ms =
            now + fy_saga_backoff_ms((uint64_t)d->steps[r->step].retry_delay_ms, r->attempt, seed);
    }
    if (n.ended) /* an ended saga keeps when it ended in its deadline's place */
        r->deadline_ms = now;
    if (st == FERRY_OK)
        st = o->store.put(o->store.self, tx, id, r, false);
    static const char *const causes[] = {
        [FY_SAGA_EV_OK] = "ok",           [FY_SAGA_EV_FAIL] = "fail",
        [FY_SAGA_EV_TIMEOUT] = "timeout", [FY_SAGA_EV_RETRY] = "retry",
        [FY_SAGA_EV_DUE] = "resend",      [FY_SAGA_EV_CANCEL] = "cancel",
        [FY_SAGA_EV_RESUME] = "resume"};
    if (st == FERRY_OK)
        st = s_announce(o, tx, d, id, r, causes[ev], result);
    *ended = n.ended && st == FERRY_OK;
    if (st == FERRY_OK) {
        o->pending.timeouts += ev == FY_SAGA_EV_TIMEOUT;
        o->pending.resent += ev == FY_SAGA_EV_DUE;
        o->pending.done += *ended && r->state == FERRY_SAGA_DONE;
        o->pending.compensated += *ended && r->state == FERRY_SAGA_COMPENSATED;
        o->pending.failed += *ended && r->state == FERRY_SAGA_FAILED;
    }
    return st;
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
    const char *control = ferry_msg_header(m, "ferry-saga-control");
    if (!fy_grow(&o->replies_in, &o->cap_replies, o->nreplies + 1, sizeof *o->replies_in, 256))
        return FERRY_MSG_NACK;
    s_reply_t *r = &o->replies_in[o->nreplies++];
    memset(r, 0, sizeof *r);
    r->seq = m->seq;
    if (control) { /* a person's: cancel or resume saga ferry-saga-id */
        const char *id = ferry_msg_header(m, "ferry-saga-id");
        r->control =
            id && s_id_ok(id) && (strcmp(control, "cancel") == 0 || strcmp(control, "resume") == 0);
        r->ev = control[0] == 'c' ? FY_SAGA_EV_CANCEL : FY_SAGA_EV_RESUME;
        snprintf(r->corr, sizeof r->corr, "%s", r->control ? id : "");
        fy_saga_text(m->data, m->len, r->reason, sizeof r->reason);
        o->stats.bad_replies += !r->control;
        if (!r->control)
            ferry_client_log(o->c, FERRY_LOG_WARN,
                             "saga orchestrator %s: control message %llu dropped: wants "
                             "ferry-saga-control cancel or resume and a saga id",
                             o->name, (unsigned long long)m->seq);
        return FERRY_MSG_KEEP;
    }
    bool known = result && (strcmp(result, "ok") == 0 || strcmp(result, "fail") == 0 ||
                            strcmp(result, "retry") == 0);
    r->ours = corr && known && strlen(corr) < sizeof r->corr;
    o->stats.bad_replies += !r->ours;
    if (!r->ours) /* acked with the others: it would come again and again */
        ferry_client_log(o->c, FERRY_LOG_WARN,
                         "saga orchestrator %s: message %llu on %s dropped: not a saga reply (%s)",
                         o->name, (unsigned long long)m->seq, o->replies,
                         !corr     ? "no correlation_id header"
                         : !result ? "no ferry-saga-result header"
                         : !known  ? "ferry-saga-result is not ok, fail or retry"
                                   : "correlation_id too long");
    if (r->ours) {
        snprintf(r->corr, sizeof r->corr, "%s", corr);
        r->ev = strcmp(result, "ok") == 0      ? FY_SAGA_EV_OK
                : strcmp(result, "retry") == 0 ? FY_SAGA_EV_RETRY
                                               : FY_SAGA_EV_FAIL;
        /* Header values are text: what is not is kept escaped (\xNN). */
        fy_saga_text(m->data, m->len, r->reason, sizeof r->reason);
        if (r->ev == FY_SAGA_EV_OK && m->len) { /* the step's result */
            size_t cap = (m->len < FERRY_SAGA_RESULT_MAX ? m->len : FERRY_SAGA_RESULT_MAX) * 4 + 1;
            if (cap > FERRY_SAGA_RESULT_MAX + 1)
                cap = FERRY_SAGA_RESULT_MAX + 1;
            if (!(r->result = malloc(cap))) {
                o->nreplies--;
                return FERRY_MSG_NACK;
            }
            if (!fy_saga_text(m->data, m->len, r->result, cap))
                ferry_client_log(o->c, FERRY_LOG_WARN,
                                 "saga orchestrator %s: reply %llu: the step's result is not "
                                 "text of at most %d bytes; kept escaped and cut",
                                 o->name, (unsigned long long)m->seq, FERRY_SAGA_RESULT_MAX);
        }
    }
    return FERRY_MSG_KEEP;
}

/* A person's cancel or resume, in @p tx: applied if the saga stands where
 * it may (running, FAILED); said in the log either way. */
static ferry_status_t
s_apply_control(ferry_saga_orchestrator_t *o, void *tx, const s_reply_t *rp, bool *ended,
                s_ended_t *st)
{
    const char *id = rp->corr, *what = rp->ev == FY_SAGA_EV_CANCEL ? "cancel" : "resume";
    ferry_saga_state_t want = rp->ev == FY_SAGA_EV_CANCEL ? FERRY_SAGA_RUNNING : FERRY_SAGA_FAILED;
    s_rec_t r = {0};
    ferry_status_t fs = o->store.get(o->store.self, tx, id, &r);
    if (fs && fs != FERRY_ENOTFOUND)
        return fs;
    if (fs == FERRY_OK && r.state == want && s_def(o, r.def)) {
        fs = s_apply(o, tx, id, &r, rp->ev, rp->reason[0] ? rp->reason : "by hand", NULL, ended);
        if (fs == FERRY_OK)
            ferry_client_log(o->c, FERRY_LOG_INFO, "saga orchestrator %s: saga %s: %s done",
                             o->name, id, what);
    } else {
        o->stats.stale_replies++;
        ferry_client_log(o->c, FERRY_LOG_WARN, "saga orchestrator %s: saga %s: %s ignored: %s",
                         o->name, id, what,
                         fs == FERRY_ENOTFOUND         ? "no such saga"
                         : !s_def(o, r.def)            ? "its definition is not in this build"
                         : rp->ev == FY_SAGA_EV_CANCEL ? "it is not running"
                                                       : "it is not FAILED");
        fs = FERRY_OK;
    }
    if (fs == FERRY_OK && *ended) {
        snprintf(st->id, sizeof st->id, "%.*s", (int)(sizeof st->id - 1), id);
        s_status_of(&r, &st->st);
    }
    s_rec_free(&r);
    return fs;
}

/* Applies one reply in @p tx; *ended set (and *st filled) when its saga ended. */
static ferry_status_t
s_apply_reply(ferry_saga_orchestrator_t *o, void *tx, const s_reply_t *rp, bool *ended,
              s_ended_t *st)
{
    *ended = false;
    if (rp->control)
        return s_apply_control(o, tx, rp, ended, st);
    unsigned step, attempt;
    char dir;
    int off = 0;
    if (!rp->ours)
        return FERRY_OK; /* said when it was taken */
    if (sscanf(rp->corr, "%u/%c/%u/%n", &step, &dir, &attempt, &off) != 3 || off <= 0 ||
        !rp->corr[off] || strlen(rp->corr + off) > S_ID_MAX || (dir != 'd' && dir != 'u')) {
        o->stats.bad_replies++;
        ferry_client_log(o->c, FERRY_LOG_WARN,
                         "saga orchestrator %s: reply %llu dropped: correlation_id '%.60s' is not "
                         "STEP/d|u/ATTEMPT/SAGA",
                         o->name, (unsigned long long)rp->seq, rp->corr);
        return FERRY_OK;
    }
    const char *id = rp->corr + off;
    s_rec_t r;
    ferry_status_t fs = o->store.get(o->store.self, tx, id, &r);
    if (fs == FERRY_ENOTFOUND) {
        o->stats.stale_replies++;
        ferry_client_log(o->c, FERRY_LOG_INFO,
                         "saga orchestrator %s: reply %llu dropped: no saga %.200s (purged, or "
                         "never started here)",
                         o->name, (unsigned long long)rp->seq, id);
        return FERRY_OK;
    }
    if (fs)
        return fs;
    bool expected =
        r.step == step && ((r.state == FERRY_SAGA_RUNNING && dir == 'd' && r.attempt == attempt) ||
                           (r.state == FERRY_SAGA_COMPENSATING && dir == 'u'));
    if (expected)
        fs = s_apply(o, tx, id, &r, rp->ev, rp->reason, rp->result, ended);
    else { /* a late or repeated reply (a redelivery, an earlier attempt) */
        o->stats.stale_replies++;
        ferry_client_log(o->c, FERRY_LOG_INFO,
                         "saga orchestrator %s: saga %.200s: reply to step %u %s attempt %u "
                         "dropped: late or repeated (the saga is %s at step %u, attempt %u)",
                         o->name, id, step, dir == 'd' ? "do" : "undo", attempt,
                         s_state_name(r.state), r.step, r.attempt);
    }
    if (fs == FERRY_OK && *ended) {
        snprintf(st->id, sizeof st->id, "%s", id);
        s_status_of(&r, &st->st);
    }
    s_rec_free(&r);
    return fs;
}

/* Commits the transitions of the replies taken, then acks them. */
static ferry_status_t
s_apply_replies(ferry_saga_orchestrator_t *o)
{
    if (o->nreplies == 0)
        return FERRY_OK;
    void *tx = NULL;
    ferry_status_t st = o->store.begin(o->store.self, &tx);
    s_ended_t *ended = st ? NULL : calloc(o->nreplies, sizeof *ended);
    size_t nended = 0;
    if (!st && !ended)
        st = FERRY_ENOMEM;
    for (size_t i = 0; st == FERRY_OK && i < o->nreplies; i++) {
        bool end = false;
        st = s_apply_reply(o, tx, &o->replies_in[i], &end, &ended[nended]);
        nended += end;
    }
    if (st == FERRY_OK)
        st = o->store.commit(o->store.self, tx);
    else if (tx)
        o->store.rollback(o->store.self, tx);
    s_count(o, st);
    /* Acked only once their transitions are on disk; on a failure they stay
     * pending and come again after the subscription's ack wait. The ack
     * call runs the handler for replies arriving meanwhile: they start the
     * next batch, so the batch is emptied first. */
    size_t n = o->nreplies;
    uint64_t *seqs = st == FERRY_OK ? malloc(n * sizeof *seqs) : NULL;
    for (size_t i = 0; seqs && i < n; i++)
        seqs[i] = o->replies_in[i].seq;
    for (size_t i = 0; i < n; i++) {
        free(o->replies_in[i].result);
        o->replies_in[i].result = NULL;
    }
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

/* Fires the deadlines that passed, in one transaction (looked for outside a
 * transaction first: most polls find none, and a write transaction would
 * wait for, and hold up, the relay's). */
static ferry_status_t
s_fire_due(ferry_saga_orchestrator_t *o)
{
    uint64_t now = fy_wall_ms(), next = 0;
    ferry_status_t st = o->store.next_deadline(o->store.self, &next);
    if (st || next == 0 || next > now)
        return st;
    void *tx;
    if ((st = o->store.begin(o->store.self, &tx)))
        return st;
    char(*due)[S_ID_MAX + 1] = malloc(S_DUE_BATCH * sizeof *due);
    size_t n = 0;
    st = due ? o->store.due(o->store.self, tx, now, S_DUE_BATCH, due, &n) : FERRY_ENOMEM;
    s_ended_t *ended = n ? calloc(n, sizeof *ended) : NULL;
    size_t nended = 0;
    for (size_t i = 0; i < n && st == FERRY_OK; i++) {
        s_rec_t r;
        bool end = false;
        if ((st = o->store.get(o->store.self, tx, due[i], &r)))
            break;
        /* Still due once locked: another orchestrator may have moved it. */
        if ((r.state == FERRY_SAGA_RUNNING || r.state == FERRY_SAGA_COMPENSATING) &&
            r.deadline_ms <= now)
            st = s_apply(o, tx, due[i], &r, r.waiting ? FY_SAGA_EV_DUE : FY_SAGA_EV_TIMEOUT, NULL,
                         NULL, &end);
        if (st == FERRY_OK && end && ended) {
            snprintf(ended[nended].id, sizeof ended[nended].id, "%s", due[i]);
            s_status_of(&r, &ended[nended++].st);
        }
        s_rec_free(&r);
    }
    if (st == FERRY_OK)
        st = o->store.commit(o->store.self, tx);
    else
        o->store.rollback(o->store.self, tx);
    s_count(o, st);
    for (size_t i = 0; st == FERRY_OK && o->on_end && i < nended; i++)
        o->on_end(ended[i].id, &ended[i].st, o->user);
    free(ended);
    free(due);
    return st;
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
        s_def_t *c = &o->defs[i];
        snprintf(c->name, sizeof c->name, "%s", d->name);
        c->version = d->version ? d->version : 1;
        if (c->version == 1)
            snprintf(c->key, sizeof c->key, "%s", d->name);
        else if ((size_t)snprintf(c->key, sizeof c->key, "%s@%u", d->name, c->version) >=
                 sizeof c->key)
            return FERRY_EINVAL; /* name@version over 63 bytes */
        for (size_t j = 0; j < i; j++)
            if (strcmp(o->defs[j].key, c->key) == 0)
                return FERRY_EINVAL; /* one name and version twice */
        c->steps = calloc(d->step_count, sizeof *c->steps);
        if (!c->steps)
            return FERRY_ENOMEM;
        c->n = d->step_count;
        for (size_t s = 0; s < d->step_count; s++) {
            const ferry_saga_step_t *st = &d->steps[s];
            if (!s_token_ok(st->name, S_NAME_MAX) || !st->queue || !*st->queue ||
                strlen(st->queue) > FERRY_NAME_MAX || st->timeout_ms < 0 || st->retry_delay_ms < 0)
                return FERRY_EINVAL;
            for (size_t t = 0; t < s; t++)
                if (strcmp(c->steps[t].name, st->name) == 0)
                    return FERRY_EINVAL;
            snprintf(c->steps[s].name, sizeof c->steps[s].name, "%s", st->name);
            snprintf(c->steps[s].queue, sizeof c->steps[s].queue, "%s", st->queue);
            c->steps[s].timeout_ms = st->timeout_ms ? st->timeout_ms : S_TIMEOUT_DFLT;
            c->steps[s].retry_delay_ms = st->retry_delay_ms > 0 ? st->retry_delay_ms : 1000;
            c->steps[s].policy =
                (fy_saga_policy_t){.compensable = st->compensable,
                                   .max_attempts = st->max_attempts ? st->max_attempts : 1,
                                   .max_undo_attempts = st->max_compensations};
        }
    }
    return FERRY_OK;
}

static ferry_status_t
s_declare_queue(ferry_client_t *c, const char *name)
{
    ferry_topic_config_t tc = {.dedupe_window_ms = FY_SAGA_DEDUPE_MS};
    ferry_status_t st = ferry_client_declare(c, FERRY_KIND_QUEUE, name, &tc, NULL, NULL);
    return st == FERRY_EEXISTS ? FERRY_OK : st; /* a topic of that name works too */
}

ferry_status_t
ferry_saga_orchestrator_new_with_store(const ferry_saga_store_t *store,
                                       const ferry_saga_def_t *defs, size_t def_count,
                                       const ferry_saga_config_t *cfg,
                                       ferry_saga_orchestrator_t **out)
{
    if (!store || !out) {
        if (store && store->destroy)
            store->destroy(store->self);
        return FERRY_EINVAL;
    }
    *out = NULL;
    ferry_saga_config_t none = {0};
    if (!cfg)
        cfg = &none;
    ferry_saga_orchestrator_t *o = calloc(1, sizeof *o);
    if (!o) {
        if (store->destroy)
            store->destroy(store->self);
        return FERRY_ENOMEM;
    }
    o->store = *store;
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
    ferry_topic_config_t rt = {.dedupe_window_ms = FY_SAGA_DEDUPE_MS, .interest = true};
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
    if (st != FERRY_OK) {
        ferry_saga_orchestrator_destroy(&o);
        return st;
    }
    *out = o;
    return FERRY_OK;
}

const ferry_saga_store_t *
ferry_saga_orchestrator_store(const ferry_saga_orchestrator_t *o)
{
    return o ? &o->store : NULL;
}

ferry_status_t
ferry_saga_start_in(ferry_saga_orchestrator_t *o, void *tx, const char *def, const char *id,
                    const void *data, size_t len)
{
    if (!o || !tx || !def || !s_id_ok(id) || (len && !data) || len > S_DATA_MAX)
        return FERRY_EINVAL;
    const s_def_t *d = s_def_to_start(o, def);
    if (!d)
        return FERRY_ENOTFOUND;
    s_rec_t r;
    ferry_status_t st = o->store.get(o->store.self, tx, id, &r);
    if (st != FERRY_ENOTFOUND) {
        if (st == FERRY_OK)
            s_rec_free(&r);
        return st == FERRY_OK ? FERRY_EEXISTS : st;
    }
    r = (s_rec_t){.state = FERRY_SAGA_RUNNING,
                  .step = 0,
                  .attempt = 1,
                  .deadline_ms = fy_wall_ms() + (uint64_t)d->steps[0].timeout_ms,
                  .data = (void *)data,
                  .len = len};
    snprintf(r.def, sizeof r.def, "%s", d->key);
    st = s_send(o, tx, d, id, &r, false);
    if (st == FERRY_OK)
        st = o->store.put(o->store.self, tx, id, &r, true);
    return st ? st : s_announce(o, tx, d, id, &r, "start", NULL);
}

ferry_status_t
ferry_saga_start(ferry_saga_orchestrator_t *o, const char *def, const char *id, const void *data,
                 size_t len)
{
    if (!o)
        return FERRY_EINVAL;
    void *tx;
    ferry_status_t st = o->store.begin(o->store.self, &tx);
    if (st)
        return st;
    st = ferry_saga_start_in(o, tx, def, id, data, len);
    if (st == FERRY_OK)
        return o->store.commit(o->store.self, tx);
    o->store.rollback(o->store.self, tx);
    return st;
}

ferry_status_t
ferry_saga_start_async(ferry_saga_orchestrator_t *o, const char *def, const char *id,
                       const void *data, size_t len, ferry_saga_started_fn cb, void *user)
{
    if (!o || !def || !s_id_ok(id) || (len && !data) || len > S_DATA_MAX)
        return FERRY_EINVAL;
    if (!s_def_to_start(o, def))
        return FERRY_ENOTFOUND;
    ferry_status_t st = fy_saga_startq_push(&o->starts, def, id, data, len, cb, user);
    if (st == FERRY_OK && o->starts.n >= FERRY_SAGA_STARTS_MAX)
        st = fy_saga_startq_commit(&o->starts, o);
    return st;
}

ferry_status_t
ferry_saga_poll(ferry_saga_orchestrator_t *o, int timeout_ms)
{
    if (!o)
        return FERRY_EINVAL;
    /* The starts queued since the last poll: told through their callbacks
     * (a failed batch too), so the poll goes on with the replies. */
    fy_saga_startq_commit(&o->starts, o);
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
    s_rec_t r;
    ferry_status_t st = o->store.get(o->store.self, NULL, id, &r);
    if (st == FERRY_OK) {
        s_status_of(&r, out);
        s_rec_free(&r);
    }
    return st;
}

ferry_status_t
ferry_saga_result(ferry_saga_orchestrator_t *o, const char *id, const char *step, char *out,
                  size_t cap)
{
    if (!o || !s_id_ok(id) || !step || !out || cap == 0)
        return FERRY_EINVAL;
    out[0] = '\0';
    s_rec_t r;
    ferry_status_t st = o->store.get(o->store.self, NULL, id, &r);
    if (st == FERRY_OK) {
        const char *t = fy_saga_results_get(r.results, r.results_len, step);
        if (t)
            snprintf(out, cap, "%s", t);
        else
            st = FERRY_ENOTFOUND;
        s_rec_free(&r);
    }
    return st;
}

/* A person's event @p ev on saga @p id (it must stand in @p want), in a
 * transaction of its own; on_end if it ended. */
static ferry_status_t
s_by_hand(ferry_saga_orchestrator_t *o, const char *id, ferry_saga_state_t want, fy_saga_event_t ev,
          const char *reason)
{
    if (!o || !s_id_ok(id))
        return FERRY_EINVAL;
    void *tx;
    ferry_status_t st = o->store.begin(o->store.self, &tx);
    if (st)
        return st;
    s_rec_t r = {0};
    bool ended = false;
    if ((st = o->store.get(o->store.self, tx, id, &r)) == FERRY_OK) {
        st = !s_def(o, r.def)  ? FERRY_ENOTFOUND /* a definition this build does not have */
             : r.state != want ? FERRY_ESEQ
                               : s_apply(o, tx, id, &r, ev, reason, NULL, &ended);
    }
    if (st == FERRY_OK)
        st = o->store.commit(o->store.self, tx);
    else
        o->store.rollback(o->store.self, tx);
    s_count(o, st);
    if (st == FERRY_OK && ended && o->on_end) {
        ferry_saga_status_t status;
        s_status_of(&r, &status);
        o->on_end(id, &status, o->user);
    }
    s_rec_free(&r);
    return st;
}

ferry_status_t
ferry_saga_cancel(ferry_saga_orchestrator_t *o, const char *id, const char *reason)
{
    return s_by_hand(o, id, FERRY_SAGA_RUNNING, FY_SAGA_EV_CANCEL,
                     reason && *reason ? reason : "by hand");
}

ferry_status_t
ferry_saga_resume(ferry_saga_orchestrator_t *o, const char *id)
{
    return s_by_hand(o, id, FERRY_SAGA_FAILED, FY_SAGA_EV_RESUME, NULL);
}

ferry_status_t
ferry_saga_stats(const ferry_saga_orchestrator_t *o, ferry_saga_stats_t *out)
{
    if (!o || !out)
        return FERRY_EINVAL;
    *out = o->stats;
    return FERRY_OK;
}

size_t
ferry_saga_active(ferry_saga_orchestrator_t *o)
{
    size_t n = 0;
    if (o)
        o->store.active(o->store.self, &n);
    return n;
}

ferry_status_t
ferry_saga_purge(ferry_saga_orchestrator_t *o, uint64_t before_ms, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (!o)
        return FERRY_EINVAL;
    return o->store.purge(o->store.self, before_ms, removed);
}

void
ferry_saga_orchestrator_destroy(ferry_saga_orchestrator_t **o_p)
{
    if (!o_p || !*o_p)
        return;
    ferry_saga_orchestrator_t *o = *o_p;
    fy_saga_startq_commit(&o->starts, o); /* what was asked for is kept (and the queue freed) */
    if (o->store.destroy) /* first: an in-process relay confirms what it has in flight */
        o->store.destroy(o->store.self);
    ferry_client_destroy(&o->c);
    s_free_defs(o);
    free(o->replies_in);
    free(o);
    *o_p = NULL;
}
