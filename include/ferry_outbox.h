/* SPDX-License-Identifier: MIT */
/*
 * ferry_outbox.h - the transactional outbox in a service's own LMDB
 * environment (docs/outbox.md). The service appends events inside the same
 * write transaction as its business data; ferry-relay (--source lmdb:DIR)
 * reads them with read transactions and publishes them exactly once, in
 * order per aggregate.
 *
 * The relay can also run as a thread of the service, on the service's own
 * environment handle (LMDB forbids opening one environment twice in a
 * process): ferry_outbox_relay_start().
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

/* ferry_outbox_event_t (one event) is in ferry.h: SQL outboxes use it too (ferry_sql.h). */

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

/* ---- the inbox: idempotent consumers ----------------------------------------
 *
 * Messages are delivered at least once. A service that consumes them (a
 * choreography step, a projection) makes its work happen once by recording
 * each message it handled in its own environment, in the same transaction as
 * the work - and, for a reaction, as the events it writes to the outbox.
 */

#define FERRY_INBOX_DB "ferry_inbox" /**< handled messages: topic + id -> when */

/** The work for @p msg inside @p txn (a write transaction of the service's
 *  environment). Return 0 to commit it together with the inbox record; any
 *  other value aborts both (the message may be handled again later). */
typedef int (*ferry_inbox_fn)(MDB_txn *txn, const ferry_stored_message_t *msg, void *user);

/** @brief Opens (creating) the inbox database inside write transaction @p txn.
 *  @return FERRY_OK, FERRY_EINVAL, FERRY_EIO */
FERRY_EXPORT ferry_status_t ferry_inbox_open(MDB_txn *txn, MDB_dbi *dbi);

/**
 * @brief Handles @p msg once: in one write transaction of @p env, looks the
 * message up in the inbox (by topic and message id; by topic and sequence
 * when it has no id), runs @p fn if it is new, records it, commits (synced
 * as the environment syncs).
 * @param[out] fn_rc may be NULL; fn's result (0 when fn did not run).
 * @return FERRY_OK (handled now: ack it), FERRY_EEXISTS (handled before: ack
 *         it), FERRY_ECANCELLED when fn refused (nothing recorded),
 *         FERRY_EINVAL, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_inbox_handle(MDB_env *env, MDB_dbi dbi,
                                               const ferry_stored_message_t *msg, ferry_inbox_fn fn,
                                               void *user, int *fn_rc);

/**
 * @brief Forgets messages handled before @p before_ms (wall clock, ms since
 * the Unix epoch), in one write transaction. Keep them longer than a
 * message can come again (the broker's dedupe window, the redelivery of
 * pending messages). @param[out] removed may be NULL.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_inbox_prune(MDB_env *env, MDB_dbi dbi, uint64_t before_ms,
                                              size_t *removed);

/** A relay running in a thread of the service. */
typedef struct ferry_outbox_relay ferry_outbox_relay_t;

/** Settings of an in-process relay; NULL / 0 fields take the defaults of
 *  ferry-relay (docs/outbox.md). Strings are copied. */
typedef struct ferry_outbox_relay_config {
    const char *broker;         /**< ferryd endpoint; NULL: $FERRY_SERVER or tcp://127.0.0.1:5555 */
    const char *name;           /**< position key and message id prefix; NULL:
                                     "lmdb-<identity>", 8 hex digits kept in the
                                     environment ("lmdb" where a position was
                                     recorded under that older default) */
    const char *topic_template; /**< NULL: "{aggregate_type}" */
    const char *dlq_topic;      /**< NULL: "ferry-relay.dlq" */
    bool delete_published;      /**< delete events once published (else keep them) */
    bool stop_on_poison;        /**< stop at an event the broker refuses for good
                                     (else dead-letter it and go on) */
    uint64_t dedupe_window_ms;  /**< of topics the relay creates; 0: a day */
    int poll_ms;                /**< idle wait between reads; 0: 20 */
    int stats_ms;               /**< stats log interval; 0: 10000 */
    /** Log lines (logfmt, without newline: relay started, stats, poison
     *  rows, broker unreachable); NULL: none, like the rest of libferry.
     *  Called from the relay's thread with @p log_user. */
    ferry_log_fn log;
    void *log_user;
} ferry_outbox_relay_config_t;

/**
 * @brief Starts relaying the outbox of @p env (the service's environment,
 * opened with room for FERRY_OUTBOX_DB and FERRY_OUTBOX_POS_DB) in a new
 * thread: the same loop as ferry-relay --source lmdb:DIR, with its own broker
 * connection; the broker may be away (it retries). @p env must stay open
 * until ferry_outbox_relay_stop() returned.
 * @return FERRY_OK, FERRY_EINVAL (NULL env or out, bad endpoint), FERRY_EIO
 *         (the outbox databases cannot be opened: maxdbs too small?),
 *         FERRY_ENOMEM
 */
FERRY_EXPORT ferry_status_t ferry_outbox_relay_start(MDB_env *env,
                                                     const ferry_outbox_relay_config_t *cfg,
                                                     ferry_outbox_relay_t **out);

/**
 * @brief Waits until every event committed before the call is in the broker
 * (the relay recorded a position at or past the newest event).
 * @return FERRY_OK, FERRY_ETIMEOUT, FERRY_ECLOSED (the relay stopped on an
 *         error; see its log), FERRY_EINVAL
 */
FERRY_EXPORT ferry_status_t ferry_outbox_relay_wait(ferry_outbox_relay_t *relay, int timeout_ms);

/**
 * @brief Stops the relay: the events in flight are confirmed and the
 * position recorded first. Frees @p *relay_p (NULL accepted), sets it NULL.
 * @return FERRY_OK, or FERRY_ECLOSED if the relay had stopped on an error
 */
FERRY_EXPORT ferry_status_t ferry_outbox_relay_stop(ferry_outbox_relay_t **relay_p);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_OUTBOX_H */
