/* SPDX-License-Identifier: MIT */
/*
 * source.h - where ferry-relay reads outbox rows from. Every source gives
 * rows in id order after a position, and records the position (or deletes
 * published rows) durably in the same store as the rows, so that position
 * and rows can never disagree after a crash.
 */
#ifndef FR_SOURCE_H
#define FR_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "status.h"

/** Where a row stands in the source's reading order: (hi, id), compared in
 *  that order. hi is 0 for sources that read in id order; the PostgreSQL
 *  polling source puts the writing transaction's xid8 there. */
typedef struct fr_pos {
    uint64_t hi, id;
} fr_pos_t;

static inline int
fr_pos_cmp(fr_pos_t a, fr_pos_t b)
{
    return a.hi != b.hi ? (a.hi < b.hi ? -1 : 1) : a.id != b.id ? (a.id < b.id ? -1 : 1) : 0;
}

/** One outbox row; every pointer is owned by the source until its next read. */
typedef struct fr_row {
    uint64_t id;
    uint64_t hi; /* its fr_pos_t.hi */
    const char *aggregate_type;
    const char *aggregate_id;
    const char *event_type;
    const void *payload;
    size_t payload_len;
    const ferry_header_t *headers; /* the row's own headers */
    size_t header_count;
    uint64_t created_ms;
} fr_row_t;

typedef struct fr_source fr_source_t;

/** What a source is opened with. */
typedef struct fr_source_args {
    const char *location;    /* file, directory or connection string */
    const char *table;       /* the outbox table (or LMDB database) */
    const char *name;        /* source name: the position's key; NULL or "": the
                              * default (identity.h), resolved at open */
    const char *slot;        /* pg-logical: replication slot ("" = from name) */
    const char *publication; /* pg-logical: publication ("" = ferry_outbox) */
    bool delete_rows;        /* --on-publish delete */
    void *env;               /* lmdb: an MDB_env the caller opened (NULL: open location) */
} fr_source_args_t;

typedef struct fr_source_ops {
    const char *kind; /* "sqlite", "lmdb", ... */
    /* Every call returns FERRY_OK, or a status with a sentence in @p err
     * (FERRY_EINVAL: the settings cannot work; FERRY_EIO: the store failed,
     * a later call may succeed; FERRY_ESTORAGE_FULL: the store's disk is
     * full - the relay waits for space, at open too). */
    /** Opens the source. */
    fy_status_t (*open)(const fr_source_args_t *a, fr_source_t **out, fy_err_t *err);
    /** The last position recorded as published ({0, 0}: none). */
    fy_status_t (*position)(fr_source_t *s, fr_pos_t *pos, fy_err_t *err);
    /** Up to @p max rows after @p after, in reading order. */
    fy_status_t (*read)(fr_source_t *s, fr_pos_t after, size_t max, const fr_row_t **rows,
                        size_t *n, fy_err_t *err);
    /** The source's name: as given, or the default resolved at open. */
    const char *(*name)(const fr_source_t *s);
    /** Moves the position recorded under @p from to this source's name, in
     *  one durable transaction, so that a renamed source goes on where it
     *  stopped. Done already (a position under the name, none under @p
     *  from): *moved false, FERRY_OK. FERRY_EINVAL when neither has one (a
     *  misspelt old name would otherwise publish every row again), when both
     *  have one, or when the source's position is not kept by name
     *  (pg-logical: its slot, see --slot). */
    fy_status_t (*rename)(fr_source_t *s, const char *from, bool *moved, fy_err_t *err);
    /** Records @p pos durably; with @p delete, removes the rows up to it too. */
    fy_status_t (*advance)(fr_source_t *s, fr_pos_t pos, bool delete_rows, fy_err_t *err);
    /** How far the relay is behind @p after: the rows after it in reading
     *  order (0 where a source cannot count them: pg-logical, see bytes),
     *  the bytes of the database's log not yet confirmed (pg-logical: its
     *  slot; 0 elsewhere), and the creation (commit) time of the oldest row
     *  not yet published (0: none). */
    fy_status_t (*lag)(fr_source_t *s, fr_pos_t after, uint64_t *rows, uint64_t *bytes,
                       uint64_t *oldest_ms, fy_err_t *err);
    /** Takes this source name's lock on the outbox (claim.h), held until
     *  close: FERRY_EWOULD_BLOCK (err names the holder) while another relay
     *  of that name runs. NULL: the source has none. */
    fy_status_t (*claim)(fr_source_t *s, fy_err_t *err);
    void (*close)(fr_source_t **s);
} fr_source_ops_t;

extern const fr_source_ops_t fr_sqlite_source;
extern const fr_source_ops_t fr_lmdb_source;
extern const fr_source_ops_t fr_pg_source;
extern const fr_source_ops_t fr_pglog_source;

#endif
