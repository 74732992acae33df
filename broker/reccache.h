/* SPDX-License-Identifier: MIT */
/*
 * reccache.h - the per-batch cache of the records a batch touches (topics,
 * subscriptions). The store finds a record here or loads it into a new
 * slot, changes it in place and marks it dirty; at commit every record is
 * written back once (flush), and the cache is emptied when the batch ends.
 * Records of one cache have one size. Owned by the store; one thread.
 */
#ifndef FY_RECCACHE_H
#define FY_RECCACHE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/** The longest stored value of a cached record. */
#define FY_RECCACHE_VALUE_MAX 1024

/** Writes record @p rec's key into @p key (borrowing from the record) and
 *  its stored value into @p buf (FY_RECCACHE_VALUE_MAX bytes).
 *  @return the value's length. */
typedef size_t (*fy_reccache_encode_fn)(const void *rec, MDB_val *key, uint8_t *buf);

/** Stores one record's key and value (the store's recorded put).
 *  @return 0 or LMDB's error. */
typedef int (*fy_reccache_put_fn)(void *ctx, MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val);

typedef struct fy_reccache {
    void *recs;
    size_t len, cap, elem;
    size_t dirty_at;              /* offset of the record's `bool dirty` */
    fy_reccache_encode_fn encode; /* its key and value in the database */
    fy_reccache_put_fn put;       /* how they are written */
    void *put_ctx;
    size_t last; /* index of the most recent hit: batches touch one record again and again */
} fy_reccache_t;

/** An empty cache of records of @p elem bytes, each with a `bool dirty` at
 *  @p dirty_at, encoded as @p encode says and written with @p put. */
void fy_reccache_init(fy_reccache_t *c, size_t elem, size_t dirty_at, fy_reccache_encode_fn encode,
                      fy_reccache_put_fn put, void *put_ctx);
/** Frees the records. */
void fy_reccache_free(fy_reccache_t *c);

/** Record @p i (< c->len). */
static inline void *
fy_reccache_at(const fy_reccache_t *c, size_t i)
{
    return (char *)c->recs + i * c->elem;
}

/** The first record for which @p match says true (the last hit is tried
 *  first), or NULL. */
void *fy_reccache_find(fy_reccache_t *c, bool (*match)(const void *rec, const void *key),
                       const void *key);
/** A slot past the last record, for the caller to fill; it counts only
 *  after fy_reccache_push. @return NULL if out of memory. */
void *fy_reccache_slot(fy_reccache_t *c);
/** Counts the slot fy_reccache_slot handed out; it becomes the last hit. */
void fy_reccache_push(fy_reccache_t *c);
/** Removes record @p rec (the last record takes its place). */
void fy_reccache_remove(fy_reccache_t *c, const void *rec);
/** Writes record @p rec (in the cache or not) to @p dbi and marks it clean.
 *  @return 0 or LMDB's error (the caller translates it). */
int fy_reccache_put(const fy_reccache_t *c, MDB_txn *txn, MDB_dbi dbi, void *rec);
/** Writes every dirty record to @p dbi, in order, until a put fails.
 *  @return 0 or LMDB's error. */
int fy_reccache_flush(const fy_reccache_t *c, MDB_txn *txn, MDB_dbi dbi);
/** Forgets every record (the batch ended); keeps the memory. */
static inline void
fy_reccache_clear(fy_reccache_t *c)
{
    c->len = 0;
    c->last = 0;
}

#endif /* FY_RECCACHE_H */
