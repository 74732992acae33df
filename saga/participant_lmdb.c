/* SPDX-License-Identifier: MIT */
/*
 * participant_lmdb.c - a participant's inbox in its LMDB environment, and
 * ferry_saga_participant_new() on it (ferry_saga.h).
 *
 * FERRY_SAGA_INBOX_DB maps
 *   u8 'd' or 'u', then "<def>\x1f<step>\x1f<saga id>"  ->  u8 result, reason
 * (result 1 ok, 0 failed). The work runs in a transaction nested in the one
 * that writes the record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_saga.h"
#include "mdb_util.h"

#define S_KEY_MAX 512

typedef struct {
    MDB_env *env;
    MDB_dbi inbox;
    ferry_saga_handler_fn fn;
    void *user;
} s_inbox_t;

static size_t
s_key(uint8_t *key, char dir, const char *def, const char *step, const char *id)
{
    int n = snprintf((char *)key + 1, S_KEY_MAX - 1, "%s\x1f%s\x1f%s", def, step, id);
    key[0] = (uint8_t)dir;
    return n > 0 && n < S_KEY_MAX - 1 ? (size_t)n + 1 : 0;
}

static ferry_status_t
s_begin(void *self, void **tx)
{
    s_inbox_t *s = self;
    return fy_mdb_status(mdb_txn_begin(s->env, NULL, 0, (MDB_txn **)tx));
}

static ferry_status_t
s_commit(void *self, void *tx)
{
    s_inbox_t *s = self;
    return fy_mdb_write_status(s->env, mdb_txn_commit(tx));
}

static void
s_rollback(void *self, void *tx)
{
    (void)self;
    mdb_txn_abort(tx);
}

static ferry_status_t
s_recorded(void *self, void *tx, char action, const char *def, const char *step,
           const char *saga_id, int *answer, char *reason, size_t cap)
{
    s_inbox_t *s = self;
    uint8_t key[S_KEY_MAX];
    size_t klen = s_key(key, action, def, step, saga_id);
    *answer = -1;
    reason[0] = '\0';
    if (!klen)
        return FERRY_EINVAL;
    MDB_val k = {klen, key}, v;
    int rc = mdb_get(tx, s->inbox, &k, &v);
    if (rc == MDB_NOTFOUND)
        return FERRY_OK;
    if (rc || v.mv_size < 1)
        return rc ? fy_mdb_status(rc) : FERRY_EIO;
    size_t rl = v.mv_size - 1 < cap - 1 ? v.mv_size - 1 : cap - 1;
    memcpy(reason, (const char *)v.mv_data + 1, rl);
    reason[rl] = '\0';
    *answer = ((const uint8_t *)v.mv_data)[0] == 1;
    return FERRY_OK;
}

static ferry_status_t
s_record(void *self, void *tx, char action, const char *def, const char *step, const char *saga_id,
         bool ok, const char *reason)
{
    s_inbox_t *s = self;
    uint8_t key[S_KEY_MAX];
    size_t klen = s_key(key, action, def, step, saga_id), rl = strlen(reason);
    if (!klen)
        return FERRY_EINVAL;
    MDB_val k = {klen, key}, v = {1 + rl, NULL};
    int rc = mdb_put(tx, s->inbox, &k, &v, MDB_RESERVE);
    if (rc == 0) {
        ((uint8_t *)v.mv_data)[0] = ok ? 1 : 0;
        memcpy((uint8_t *)v.mv_data + 1, reason, rl);
    }
    return fy_mdb_status(rc);
}

/* The handler in a transaction nested in @p tx: kept on success. */
static ferry_status_t
s_run(void *self, void *tx, const ferry_saga_command_t *cmd, char *reason, size_t cap, bool *ok)
{
    s_inbox_t *s = self;
    MDB_txn *work;
    *ok = false;
    int rc = mdb_txn_begin(s->env, tx, 0, &work);
    if (rc)
        return fy_mdb_status(rc);
    *ok = s->fn(work, cmd, reason, cap, s->user);
    if (*ok)
        return fy_mdb_status(mdb_txn_commit(work));
    mdb_txn_abort(work);
    return FERRY_OK;
}

ferry_status_t
ferry_saga_participant_new(ferry_client_t *client, MDB_env *env, const char *queue,
                           ferry_saga_handler_fn fn, void *user, ferry_saga_participant_t **out)
{
    if (!client || !env || !queue || !fn || !out)
        return FERRY_EINVAL;
    *out = NULL;
    s_inbox_t *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    *s = (s_inbox_t){.env = env, .fn = fn, .user = user};
    MDB_txn *txn;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, FERRY_SAGA_INBOX_DB, MDB_CREATE, &s->inbox);
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    if (rc) {
        free(s);
        return FERRY_EIO;
    }
    ferry_saga_inbox_store_t store = {.self = s,
                                      .begin = s_begin,
                                      .commit = s_commit,
                                      .rollback = s_rollback,
                                      .recorded = s_recorded,
                                      .record = s_record,
                                      .run = s_run,
                                      .destroy = free};
    return ferry_saga_participant_new_with_store(client, &store, queue, out);
}
