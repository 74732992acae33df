/* SPDX-License-Identifier: MIT */
/*
 * start_queue.c - ferry_saga_start_async()'s queue (start_queue.h): the
 * starts asked for between two polls commit in one transaction.
 */
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "start_queue.h"

struct fy_saga_start {
    char *def, *id; /* with the data, one allocation */
    void *data;
    size_t len;
    ferry_saga_started_fn cb;
    void *user;
    ferry_status_t st;
};

ferry_status_t
fy_saga_startq_push(fy_saga_startq_t *q, const char *def, const char *id, const void *data,
                    size_t len, ferry_saga_started_fn cb, void *user)
{
    if (!fy_grow(&q->items, &q->cap, q->n + 1, sizeof *q->items, 64))
        return FERRY_ENOMEM;
    size_t ld = strlen(def) + 1, li = strlen(id) + 1;
    char *mem = malloc(ld + li + len);
    if (!mem)
        return FERRY_ENOMEM;
    fy_saga_start_t *s = &q->items[q->n++];
    *s = (fy_saga_start_t){
        .def = mem, .id = mem + ld, .data = mem + ld + li, .len = len, .cb = cb, .user = user};
    memcpy(s->def, def, ld);
    memcpy(s->id, id, li);
    if (len)
        memcpy(s->data, data, len);
    return FERRY_OK;
}

/* A start refused before it wrote anything: the others go on. */
static int
s_alone(ferry_status_t st)
{
    return st == FERRY_EEXISTS || st == FERRY_ENOTFOUND || st == FERRY_EINVAL;
}

ferry_status_t
fy_saga_startq_commit(fy_saga_startq_t *q, ferry_saga_orchestrator_t *o)
{
    if (q->n == 0) { /* what a push that ran out of memory may have grown */
        free(q->items);
        *q = (fy_saga_startq_t){0};
        return FERRY_OK;
    }
    const ferry_saga_store_t *store = ferry_saga_orchestrator_store(o);
    void *tx = NULL;
    ferry_status_t st = store->begin(store->self, &tx);
    for (size_t i = 0; i < q->n && st == FERRY_OK; i++) {
        fy_saga_start_t *s = &q->items[i];
        s->st = ferry_saga_start_in(o, tx, s->def, s->id, s->data, s->len);
        if (s->st != FERRY_OK && !s_alone(s->st))
            st = s->st; /* the transaction is spoiled: none of it */
    }
    if (tx && st == FERRY_OK)
        st = store->commit(store->self, tx);
    else if (tx)
        store->rollback(store->self, tx);
    /* The queue is emptied before the callbacks, which may start more. */
    size_t n = q->n;
    fy_saga_start_t *items = q->items;
    *q = (fy_saga_startq_t){0};
    for (size_t i = 0; i < n; i++) {
        if (items[i].cb)
            items[i].cb(items[i].id, st == FERRY_OK ? items[i].st : st, items[i].user);
        free(items[i].def);
    }
    free(items);
    return st;
}
