/* SPDX-License-Identifier: MIT */
/*
 * saga_participant.c - serving saga commands exactly once (ferry_saga.h), on
 * an inbox store (ferry_saga_inbox_store_t: participant_lmdb.c for LMDB,
 * libferry-sql for SQLite and PostgreSQL).
 *
 * The store records each command's answer (ok, or failed with a reason) in
 * the transaction of the command's work, which runs in a scope nested in
 * it: both commit, or (on failure) only the record. The commands of one
 * delivery (up to 64) share one store transaction, committed before any of
 * their replies is published and their commands acked
 * (ferry_client_serve_batched): one commit, one fsync, for the batch, and a
 * crash anywhere repeats the replies, never the work.
 *
 * A compensation whose command has no record (never ran, or the command is
 * still on its way) is answered "ok" and recorded: when the command comes,
 * it finds its compensation and is refused without running. A failed
 * compensation is not recorded, so the orchestrator's retry runs it again.
 * A command the handler cannot serve yet (cmd->later) is given back to the
 * broker unanswered and comes again after a wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ferry_saga.h"
#include "results.h"

struct ferry_saga_participant {
    ferry_client_t *c;
    ferry_saga_inbox_store_t store;
    uint64_t consumer;
    char queue[FERRY_NAME_MAX + 1];
    /* The batch: the commands of one delivery run in one store transaction,
     * committed at its end (s_end) before their replies go. */
    void *tx;                /* open while a batch runs; NULL between */
    ferry_status_t batch_st; /* its first store error: it rolls back */
    char failed[300];        /* the command that met it, for the log */
    /* the reply of the request being served (copied by the client): why
     * it failed, or the step's result */
    char reason[FERRY_SAGA_RESULT_MAX + 1];
    char result[FERRY_SAGA_RESULT_MAX + 1]; /* the handler's */
    char done[FERRY_SAGA_RESULT_MAX + 1];   /* a compensation: its command's answer */
    ferry_header_t hdr[1];
    long long refused_logged; /* last "cannot record" line (monotonic ms) */
    unsigned refused_held;    /* commands given back since, not logged */
};

/* The answer to @p cmd (action @p dir) in the batch's transaction: what was
 * recorded, or the work run now and recorded. *ok, *retry: the answer;
 * p->reason its text. */
static ferry_status_t
s_answer(ferry_saga_participant_t *p, ferry_client_t *c, const ferry_stored_message_t *req,
         ferry_saga_command_t *cmd, bool *ok)
{
    void *self = p->store.self, *tx = p->tx;
    char dir = cmd->undo ? 'u' : 'd', other = cmd->undo ? 'd' : 'u';
    int seen = -1, theirs = -1;
    bool write = false;
    ferry_status_t st = p->store.recorded(self, tx, dir, cmd->def, cmd->step, cmd->saga_id, &seen,
                                          p->reason, sizeof p->reason);
    if (st == FERRY_OK && seen < 0)
        st = p->store.recorded(self, tx, other, cmd->def, cmd->step, cmd->saga_id, &theirs, p->done,
                               sizeof p->done);
    /* A compensation knows what its command gave from this record, also
     * when the saga never heard it (the reply came too late). */
    if (st == FERRY_OK && cmd->undo && theirs == 1 && p->done[0])
        cmd->done_result = p->done;
    if (st)
        return st;
    if (seen >= 0) { /* answered before: the same answer */
        *ok = seen == 1;
        return FERRY_OK;
    }
    if (!cmd->undo) {
        const char *exp = ferry_msg_header(req, "ferry-saga-expires");
        unsigned long long expires = exp ? strtoull(exp, NULL, 10) : 0;
        if (theirs >= 0) {
            *ok = false; /* its compensation came first */
            snprintf(p->reason, sizeof p->reason, "cancelled by its compensation");
            return FERRY_OK;
        }
        if (expires && fy_wall_ms() >= expires) {
            /* The orchestrator gave up on this attempt: it must not run
             * now. Not recorded: a later attempt carries a later expiry
             * and runs (its compensation, recorded, would cancel it). */
            *ok = false;
            snprintf(p->reason, sizeof p->reason, "expired before it was served");
            return FERRY_OK;
        }
    } else if (theirs != 1) {
        *ok = true; /* nothing was done: nothing to undo */
        snprintf(p->reason, sizeof p->reason, "nothing to undo");
        return p->store.record(self, tx, dir, cmd->def, cmd->step, cmd->saga_id, true, p->reason);
    }
    p->reason[0] = '\0';
    st = p->store.run(self, tx, cmd, p->reason, sizeof p->reason, ok);
    p->reason[sizeof p->reason - 1] = '\0';
    if (!*ok && !p->reason[0])
        snprintf(p->reason, sizeof p->reason, "failed");
    p->result[sizeof p->result - 1] = '\0';
    if (*ok && !cmd->undo &&
        !fy_saga_text(p->result, strlen(p->result), p->reason, sizeof p->reason))
        ferry_client_log(c, FERRY_LOG_WARN,
                         "saga participant %s: the result of %s of saga %s is not "
                         "UTF-8 text: kept escaped (\\xNN)",
                         req->topic, cmd->step, cmd->saga_id);
    /* A step that failed for now is not recorded (it comes again); nor is a
     * failed compensation (it runs again when retried), nor a command the
     * handler could not serve yet (it comes again by itself). */
    write = (*ok || !*cmd->later) && (cmd->undo ? *ok : *ok || !*cmd->retry);
    if (st == FERRY_OK && write)
        st = p->store.record(self, tx, dir, cmd->def, cmd->step, cmd->saga_id, *ok, p->reason);
    return st;
}

static ferry_msg_action_t
s_serve(ferry_client_t *c, const ferry_stored_message_t *req, ferry_message_t *reply, void *user)
{
    ferry_saga_participant_t *p = user;
    ferry_saga_command_t cmd = {.saga_id = ferry_msg_header(req, "ferry-saga-id"),
                                .def = ferry_msg_header(req, "ferry-saga-def"),
                                .step = ferry_msg_header(req, "ferry-saga-step"),
                                .data = req->data,
                                .len = req->len,
                                .msg = req,
                                .result = p->result,
                                .result_cap = sizeof p->result};
    p->result[0] = '\0';
    const char *action = ferry_msg_header(req, "ferry-saga-action");
    bool ok = false, retry = false, later = false;
    cmd.retry = &retry;
    cmd.later = &later;
    if (!cmd.saga_id || !cmd.def || !cmd.step || !action ||
        (strcmp(action, "do") != 0 && strcmp(action, "undo") != 0) || strlen(cmd.saga_id) > 200 ||
        strlen(cmd.def) > 63 || strlen(cmd.step) > 63) {
        snprintf(p->reason, sizeof p->reason, "not a saga command");
    } else {
        cmd.undo = action[0] == 'u';
        if (p->batch_st) /* the batch rolls back: the rest comes again with it */
            return FERRY_MSG_NACK_LATER;
        ferry_status_t st = p->tx ? FERRY_OK : p->store.begin(p->store.self, &p->tx);
        if (st)
            p->tx = NULL;
        else
            st = s_answer(p, c, req, &cmd, &ok);
        if (st) { /* said at the batch's end */
            p->batch_st = st;
            snprintf(p->failed, sizeof p->failed, "%s of saga %s", cmd.step, cmd.saga_id);
            return FERRY_MSG_NACK_LATER;
        }
        if (!ok && later) { /* no answer now: the command comes again */
            ferry_client_log(c, FERRY_LOG_INFO,
                             "saga participant %s: %s%s of saga %s not served now (%s): "
                             "delivered again later (delivery %u)",
                             p->queue, cmd.undo ? "compensation of " : "", cmd.step, cmd.saga_id,
                             p->reason, (unsigned)req->delivery_count);
            return FERRY_MSG_NACK_LATER;
        }
    }
    p->hdr[0] = (ferry_header_t){"ferry-saga-result", ok                   ? "ok"
                                                      : retry && !cmd.undo ? "retry"
                                                                           : "fail"};
    reply->headers = p->hdr;
    reply->header_count = 1;
    reply->data = p->reason; /* why it failed, the step's result, or a note */
    reply->len = strlen(p->reason);
    return FERRY_MSG_ACK;
}

/* The batch's end: its answers and work commit together, before any of
 * their replies goes (ferry_client_serve_batched publishes them next). A
 * store that cannot commit gives the whole batch back for later: nothing of
 * it happened. */
static ferry_msg_action_t
s_end(ferry_client_t *c, void *user)
{
    ferry_saga_participant_t *p = user;
    ferry_status_t st = p->batch_st;
    if (p->tx && st == FERRY_OK) {
        st = p->store.commit(p->store.self, p->tx);
        if (st)
            snprintf(p->failed, sizeof p->failed, "a batch of commands");
    } else if (p->tx) {
        p->store.rollback(p->store.self, p->tx);
    }
    p->tx = NULL;
    p->batch_st = FERRY_OK;
    if (st == FERRY_OK)
        return FERRY_MSG_ACK;
    /* No answer yet: they come again after a second (a full disk, say,
     * would otherwise spend their deliveries at once); said at most once a
     * second, with how many more. */
    long long now = fy_mono_ms();
    if (p->refused_logged && now - p->refused_logged < 1000) {
        p->refused_held++;
        return FERRY_MSG_NACK_LATER;
    }
    ferry_client_log(c, FERRY_LOG_WARN,
                     "saga participant %s: cannot record %s: %s; given back for later (%u more "
                     "since the last line)",
                     p->queue, p->failed,
                     st == FERRY_ESTORAGE_FULL ? "the disk is full (ESTORAGE_FULL)"
                                               : ferry_strerror(st),
                     p->refused_held);
    p->refused_logged = now;
    p->refused_held = 0;
    return FERRY_MSG_NACK_LATER;
}

const char *
ferry_saga_command_result(const ferry_saga_command_t *cmd, const char *step)
{
    char name[sizeof FY_SAGA_RESULT_HEADER + 64];
    if (cmd && step && cmd->undo && cmd->done_result && cmd->step && strcmp(step, cmd->step) == 0)
        return cmd->done_result;
    if (!cmd || !cmd->msg || !step ||
        (size_t)snprintf(name, sizeof name, FY_SAGA_RESULT_HEADER "%s", step) >= sizeof name)
        return NULL;
    return ferry_msg_header(cmd->msg, name);
}

ferry_status_t
ferry_saga_participant_new_with_store(ferry_client_t *client, const ferry_saga_inbox_store_t *store,
                                      const char *queue, ferry_saga_participant_t **out)
{
    ferry_saga_participant_t *p = NULL;
    ferry_status_t st = !client || !store || !queue || !out ? FERRY_EINVAL : FERRY_OK;
    if (st == FERRY_OK && !(p = calloc(1, sizeof *p)))
        st = FERRY_ENOMEM;
    if (st) {
        if (store && store->destroy)
            store->destroy(store->self);
        return st;
    }
    *out = NULL;
    p->c = client;
    p->store = *store;
    snprintf(p->queue, sizeof p->queue, "%s", queue);
    ferry_topic_config_t tc = {.dedupe_window_ms = 86400000};
    st = ferry_client_declare(client, FERRY_KIND_QUEUE, queue, &tc, NULL, NULL);
    if (st == FERRY_EEXISTS)
        st = FERRY_OK;
    if (st == FERRY_OK)
        st = ferry_client_serve_batched(client, queue, NULL, 64, s_serve, s_end, p, &p->consumer);
    if (st != FERRY_OK) {
        if (p->store.destroy)
            p->store.destroy(p->store.self);
        free(p);
        return st;
    }
    *out = p;
    return FERRY_OK;
}

void
ferry_saga_participant_destroy(ferry_saga_participant_t **p_p)
{
    if (!p_p || !*p_p)
        return;
    ferry_saga_participant_t *p = *p_p;
    ferry_client_unsubscribe(p->c, p->consumer);
    if (p->store.destroy)
        p->store.destroy(p->store.self);
    free(p);
    *p_p = NULL;
}
