/*
 * ferry_outbox.h - the transactional outbox in a service's own LMDB
 * environment (docs/outbox.md). The service appends events inside the same
 * write transaction as its business data; ferry-relay (--source lmdb:DIR)
 * reads them with read transactions and publishes them exactly once, in
 * order per aggregate.
 *
 * Installed beside ferry.h; needs lmdb.h (Debian liblmdb-dev). The service's
 * environment needs room for two more named databases (mdb_env_set_maxdbs):
 * FERRY_OUTBOX_DB and the relay's position, FERRY_OUTBOX_POS_DB.
 */
#ifndef FERRY_OUTBOX_H
#define FERRY_OUTBOX_H

#include <lmdb.h>

#include "ferry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_OUTBOX_DB     "ferry_outbox"     /**< the events, keyed by id */
#define FERRY_OUTBOX_POS_DB "ferry_outbox_pos" /**< ferry-relay's positions */

/** One event. Every pointer is borrowed for the call. */
typedef struct ferry_outbox_event {
    const char *aggregate_type; /**< becomes the topic (required) */
    const char *aggregate_id;   /**< becomes the message key (required, 1-255 bytes) */
    const char *event_type;     /**< header event_type (required) */
    const void *payload;
    size_t len;
    const ferry_header_t *headers; /**< more headers, e.g. traceparent */
    size_t header_count;
    uint64_t created_ms; /**< 0: now */
} ferry_outbox_event_t;

/**
 * @brief Opens the outbox database inside @p txn (a write transaction of the
 * service's environment), creating it the first time.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EIO (LMDB's error; see mdb_strerror)
 */
FERRY_EXPORT ferry_status_t ferry_outbox_open(MDB_txn *txn, MDB_dbi *dbi);

/**
 * @brief Appends @p ev to the outbox inside the caller's write transaction
 * @p txn: it is published only if that transaction commits. Ids grow by one
 * per event in commit order (LMDB has one writer at a time).
 * @param[out] id may be NULL; the event's id.
 * @return FERRY_OK, FERRY_EINVAL (missing or oversized field),
 *         FERRY_ESTORAGE_FULL (MDB_MAP_FULL: the transaction is spoiled), FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_outbox_put(MDB_txn *txn, MDB_dbi dbi,
                                             const ferry_outbox_event_t *ev, uint64_t *id);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_OUTBOX_H */
