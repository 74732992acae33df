/*
 * saga_participant.c - serving saga commands exactly once (ferry_saga.h).
 *
 * The inbox (FERRY_SAGA_INBOX_DB of the participant's environment) maps
 *   u8 'd' or 'u', then "<def>\x1f<step>\x1f<saga id>"  ->  u8 result, reason
 * (result 1 ok, 0 failed). A command's work runs in a nested transaction of
 * the one that writes its inbox record: both commit, or (on failure) only
 * the record. The reply is published from that record, before the command is
 * acked (ferry_client_serve), so a crash anywhere repeats the reply, never
 * the work.
 *
 * A compensation whose command has no record (never ran, or the command is
 * still on its way) is answered "ok" and recorded: when the command comes,
 * it finds its compensation and is refused without running. A failed
 * compensation is not recorded, so the orchestrator's retry runs it again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ferry_saga.h"
#include "mdb_util.h"

#define S_KEY_MAX 512

struct ferry_saga_participant {
    ferry_client_t *c;
    MDB_env *env;
    MDB_dbi inbox;
    ferry_saga_handler_fn fn;
    void *user;
    uint64_t consumer;
    /* the reply of the request being served (borrowed by the client) */
    char reason[256];
    ferry_header_t hdr[1];
    long long refused_logged; /* last "cannot record" line (monotonic ms) */
    unsigned refused_held;    /* commands given back since, not logged */
};

static size_t
s_key(uint8_t *key, char dir, const char *def, const char *step, const char *id)
{
    int n = snprintf((char *)key + 1, S_KEY_MAX - 1, "%s\x1f%s\x1f%s", def, step, id);
    key[0] = (uint8_t)dir;
    return n > 0 && n < S_KEY_MAX - 1 ? (size_t)n + 1 : 0;
}

/* The recorded result of (dir, command): 1 ok, 0 failed, -1 none. */
static int
s_recorded(ferry_saga_participant_t *p, MDB_txn *txn, const uint8_t *key, size_t klen, char *reason,
           size_t cap)
{
    MDB_val k = {klen, (void *)key}, v;
    if (mdb_get(txn, p->inbox, &k, &v) != 0 || v.mv_size < 1)
        return -1;
    size_t rl = v.mv_size - 1 < cap - 1 ? v.mv_size - 1 : cap - 1;
    memcpy(reason, (const char *)v.mv_data + 1, rl);
    reason[rl] = '\0';
    return ((const uint8_t *)v.mv_data)[0] == 1;
}

static int
s_record(ferry_saga_participant_t *p, MDB_txn *txn, const uint8_t *key, size_t klen, bool ok,
         const char *reason)
{
    size_t rl = strlen(reason);
    MDB_val k = {klen, (void *)key}, v = {1 + rl, NULL};
    int rc = mdb_put(txn, p->inbox, &k, &v, MDB_RESERVE);
    if (rc == 0) {
        ((uint8_t *)v.mv_data)[0] = ok ? 1 : 0;
        memcpy((uint8_t *)v.mv_data + 1, reason, rl);
    }
    return rc;
}

/* Runs the handler in a transaction nested in @p txn: kept on success. */
static int
s_run(ferry_saga_participant_t *p, MDB_txn *txn, const ferry_saga_command_t *cmd, bool *ok)
{
    MDB_txn *work;
    int rc = mdb_txn_begin(p->env, txn, 0, &work);
    if (rc)
        return rc;
    p->reason[0] = '\0';
    *ok = p->fn(work, cmd, p->reason, sizeof p->reason, p->user);
    p->reason[sizeof p->reason - 1] = '\0';
    if (*ok)
        return mdb_txn_commit(work);
    mdb_txn_abort(work);
    if (!p->reason[0])
        snprintf(p->reason, sizeof p->reason, "failed");
    return 0;
}

static ferry_msg_action_t
s_serve(ferry_client_t *c, const ferry_stored_message_t *req, ferry_message_t *reply, void *user)
{
    ferry_saga_participant_t *p = user;
    ferry_saga_command_t cmd = {.saga_id = ferry_msg_header(req, "ferry-saga-id"),
                                .def = ferry_msg_header(req, "ferry-saga-def"),
                                .step = ferry_msg_header(req, "ferry-saga-step"),
                                .data = req->data,
                                .len = req->len};
    const char *action = ferry_msg_header(req, "ferry-saga-action");
    uint8_t key[S_KEY_MAX], other[S_KEY_MAX];
    size_t klen = 0, olen = 0;
    bool ok = false;
    if (cmd.saga_id && cmd.def && cmd.step && action &&
        (!strcmp(action, "do") || !strcmp(action, "undo"))) {
        cmd.undo = action[0] == 'u';
        klen = s_key(key, cmd.undo ? 'u' : 'd', cmd.def, cmd.step, cmd.saga_id);
        olen = s_key(other, cmd.undo ? 'd' : 'u', cmd.def, cmd.step, cmd.saga_id);
    }
    if (!klen || !olen) {
        snprintf(p->reason, sizeof p->reason, "not a saga command");
    } else {
        MDB_txn *txn;
        int rc = mdb_txn_begin(p->env, NULL, 0, &txn);
        if (rc)
            return FERRY_MSG_NACK_LATER;
        int seen = s_recorded(p, txn, key, klen, p->reason, sizeof p->reason);
        bool write = false;
        if (seen >= 0) { /* answered before: the same answer */
            ok = seen == 1;
        } else if (!cmd.undo) {
            char ignored[8];
            const char *exp = ferry_msg_header(req, "ferry-saga-expires");
            unsigned long long expires = exp ? strtoull(exp, NULL, 10) : 0;
            if (s_recorded(p, txn, other, olen, ignored, sizeof ignored) >= 0) {
                ok = false; /* its compensation came first */
                snprintf(p->reason, sizeof p->reason, "cancelled by its compensation");
            } else if (expires && fy_wall_ms() >= expires) {
                ok = false; /* the orchestrator gave up on it: it must not run now */
                snprintf(p->reason, sizeof p->reason, "expired before it was served");
            } else {
                rc = s_run(p, txn, &cmd, &ok);
            }
            write = true;
        } else {
            char ignored[8];
            if (s_recorded(p, txn, other, olen, ignored, sizeof ignored) == 1) {
                rc = s_run(p, txn, &cmd, &ok);
                write = ok; /* a failed compensation runs again when retried */
            } else {
                ok = true; /* nothing was done: nothing to undo */
                snprintf(p->reason, sizeof p->reason, "nothing to undo");
                write = true;
            }
        }
        if (rc == 0 && write)
            rc = s_record(p, txn, key, klen, ok, p->reason);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        /* No answer yet: it comes again after a second (a full disk, say,
         * would otherwise spend its deliveries at once). */
        if (rc) { /* said at most once a second, with how many more */
            long long now = fy_mono_ms();
            if (p->refused_logged && now - p->refused_logged < 1000) {
                p->refused_held++;
                return FERRY_MSG_NACK_LATER;
            }
            ferry_client_log(c, FERRY_LOG_WARN,
                             "saga participant %s: cannot record %s of saga %s: %s; given back "
                             "for later (%u more since the last line)",
                             req->topic, cmd.step, cmd.saga_id,
                             fy_mdb_write_status(p->env, rc) == FERRY_ESTORAGE_FULL
                                 ? "the disk is full (ESTORAGE_FULL)"
                                 : mdb_strerror(rc),
                             p->refused_held);
            p->refused_logged = now;
            p->refused_held = 0;
            return FERRY_MSG_NACK_LATER;
        }
    }
    p->hdr[0] = (ferry_header_t){"ferry-saga-result", ok ? "ok" : "fail"};
    reply->headers = p->hdr;
    reply->header_count = 1;
    reply->data = p->reason; /* why it failed, or a note ("nothing to undo") */
    reply->len = strlen(p->reason);
    return FERRY_MSG_ACK;
}

ferry_status_t
ferry_saga_participant_new(ferry_client_t *client, MDB_env *env, const char *queue,
                           ferry_saga_handler_fn fn, void *user, ferry_saga_participant_t **out)
{
    if (!client || !env || !queue || !fn || !out)
        return FERRY_EINVAL;
    *out = NULL;
    ferry_saga_participant_t *p = calloc(1, sizeof *p);
    if (!p)
        return FERRY_ENOMEM;
    *p = (ferry_saga_participant_t){.c = client, .env = env, .fn = fn, .user = user};
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, FERRY_SAGA_INBOX_DB, MDB_CREATE, &p->inbox);
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    if (rc) {
        free(p);
        return FERRY_EIO;
    }
    ferry_topic_config_t tc = {.dedupe_window_ms = 86400000};
    ferry_status_t st = ferry_client_declare(client, FERRY_KIND_QUEUE, queue, &tc, NULL, NULL);
    if (st == FERRY_EEXISTS)
        st = FERRY_OK;
    if (st == FERRY_OK)
        st = ferry_client_serve(client, queue, NULL, 64, s_serve, p, &p->consumer);
    if (st != FERRY_OK) {
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
    free(p);
    *p_p = NULL;
}
