/* SPDX-License-Identifier: MIT */
/*
 * ferry_sql.h - the transactional outbox and idempotent consumers for
 * services whose data is in SQLite or PostgreSQL (libferry-sql;
 * docs/outbox.md, "Services on SQLite and PostgreSQL").
 *
 * Everything here runs inside the caller's own transaction on the caller's
 * own connection: a service writes its business rows, the events they cause
 * (ferry_outbox_*_put) and the record that a consumed message was handled
 * (ferry_inbox_*_record) in one transaction, so they commit together or not
 * at all. ferry-relay publishes the outbox table (sources `sqlite:`, `pg:`,
 * `pg-logical:`) exactly once, in order per aggregate.
 *
 *     BEGIN
 *       -- the service's own INSERT/UPDATE
 *       ferry_inbox_pg_record(conn, "billing", msg)   // FERRY_EEXISTS: done before
 *       ferry_outbox_pg_put(conn, &event, NULL)
 *     COMMIT                                          // then ack msg
 *
 * The tables: `ferry_sql_setup_*` creates them (the DDL of
 * outbox-relay/sql/sqlite.sql and postgres.sql, versioned in `ferry_schema`).
 * Call it once at start, outside a transaction.
 *
 * Durability is the database's: a commit is on disk when the database says
 * so. Keep SQLite's `synchronous` at FULL (its default; NORMAL in WAL mode
 * may lose the last commits on a power cut) and PostgreSQL's
 * `synchronous_commit` on.
 *
 * Errors: FERRY_EINVAL for a bad argument (nothing sent to the database);
 * FERRY_ESTORAGE_FULL when the database's disk is full; FERRY_EIO for any
 * other refusal of the database, whose own message says why
 * (sqlite3_errmsg(db), PQerrorMessage(conn)). After a PostgreSQL error the
 * transaction is aborted: roll it back. Functions take a connection from
 * one thread at a time, as the database libraries do.
 *
 * Sagas: an orchestrator may keep its sagas in the service's SQLite or
 * PostgreSQL database too (ferry_saga_*_orchestrator_new), and a saga may
 * start inside the caller's transaction (ferry_saga_*_start): the business
 * rows, the saga and its first command commit together.
 *
 * Link with libferry-sql (pkg-config ferry-sql): it needs libsqlite3,
 * libpq and jansson; this header needs neither sqlite3.h nor libpq-fe.h
 * (ferry_saga.h needs lmdb.h).
 */
#ifndef FERRY_SQL_H
#define FERRY_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "ferry_saga.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqlite3 sqlite3; /* sqlite3.h */
typedef struct pg_conn PGconn;  /* libpq-fe.h */

/** The version of the tables this library writes (ferry_schema). */
#define FERRY_SQL_SCHEMA_VERSION 2

/**
 * @brief Creates what is missing of the outbox and inbox tables in @p db
 * (outside a transaction; switches the database to WAL mode, which lets
 * ferry-relay read while the service writes) and records the schema
 * version; tables of an older version get what they lack.
 * @param err may be NULL; why it failed.
 * @return FERRY_OK, FERRY_EFORMAT (the tables are of a newer version than
 *         this library), FERRY_EINVAL, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_sql_setup_sqlite(sqlite3 *db, char *err, size_t err_cap);
/** @brief The same on PostgreSQL connection @p conn (outside a transaction). */
FERRY_EXPORT ferry_status_t ferry_sql_setup_pg(PGconn *conn, char *err, size_t err_cap);

/* ---- the outbox ------------------------------------------------------------ */

/**
 * @brief Inserts @p ev into table `outbox` inside the caller's open
 * transaction on @p db: it is published only if that transaction commits.
 * Headers are stored as a JSON object of strings (names 1-255 bytes,
 * values up to 4096, UTF-8).
 * @param[out] id may be NULL; the row's id.
 * @return FERRY_OK, FERRY_EINVAL (missing or oversized field, headers not
 *         UTF-8), FERRY_ENOMEM, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_outbox_sqlite_put(sqlite3 *db, const ferry_outbox_event_t *ev,
                                                    int64_t *id);
/** @brief The same on PostgreSQL (the row's xid is the caller's transaction's). */
FERRY_EXPORT ferry_status_t ferry_outbox_pg_put(PGconn *conn, const ferry_outbox_event_t *ev,
                                                int64_t *id);

/* ---- the inbox: idempotent consumers ----------------------------------------
 *
 * Messages are delivered at least once. A consumer makes its work happen
 * once by recording each message in table `ferry_inbox` in the same
 * transaction as the work: (consumer, topic, message id), or the sequence
 * ("#<seq>") for a message published without an id. Two processes handling
 * the same message at once: the second waits on the first's row and then
 * finds it (PostgreSQL), or waits for the write lock (SQLite).
 */

/**
 * @brief Records that @p consumer (1-255 bytes: the subscription, or the
 * service's name) handled @p msg, inside the caller's open transaction.
 * @return FERRY_OK (new: do the work, commit, then ack), FERRY_EEXISTS
 *         (handled before: roll back and ack), FERRY_EINVAL,
 *         FERRY_ESTORAGE_FULL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_inbox_sqlite_record(sqlite3 *db, const char *consumer,
                                                      const ferry_stored_message_t *msg);
/** @brief The same on PostgreSQL. */
FERRY_EXPORT ferry_status_t ferry_inbox_pg_record(PGconn *conn, const char *consumer,
                                                  const ferry_stored_message_t *msg);

/** The work for @p msg on the connection, inside the transaction
 *  ferry_inbox_*_handle opened. Return 0 to commit it with the inbox record;
 *  any other value rolls both back. */
typedef int (*ferry_inbox_sqlite_fn)(sqlite3 *db, const ferry_stored_message_t *msg, void *user);
typedef int (*ferry_inbox_pg_fn)(PGconn *conn, const ferry_stored_message_t *msg, void *user);

/**
 * @brief Handles @p msg once: BEGIN (IMMEDIATE on SQLite), record it, run
 * @p fn if it is new, COMMIT.
 * @param[out] fn_rc may be NULL; fn's result (0 when fn did not run).
 * @return FERRY_OK (handled now: ack it), FERRY_EEXISTS (handled before: ack
 *         it), FERRY_ECANCELLED (fn refused; nothing recorded),
 *         FERRY_EINVAL, FERRY_ESTORAGE_FULL, FERRY_EIO (rolled back)
 */
FERRY_EXPORT ferry_status_t ferry_inbox_sqlite_handle(sqlite3 *db, const char *consumer,
                                                      const ferry_stored_message_t *msg,
                                                      ferry_inbox_sqlite_fn fn, void *user,
                                                      int *fn_rc);
/** @brief The same on PostgreSQL. */
FERRY_EXPORT ferry_status_t ferry_inbox_pg_handle(PGconn *conn, const char *consumer,
                                                  const ferry_stored_message_t *msg,
                                                  ferry_inbox_pg_fn fn, void *user, int *fn_rc);

/**
 * @brief Forgets messages handled before @p before_ms (wall clock, ms since
 * the Unix epoch), in a transaction of its own. Keep them longer than a
 * message can come again (the broker's dedupe window, redeliveries).
 * @param[out] removed may be NULL.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_inbox_sqlite_prune(sqlite3 *db, uint64_t before_ms,
                                                     size_t *removed);
/** @brief The same on PostgreSQL. */
FERRY_EXPORT ferry_status_t ferry_inbox_pg_prune(PGconn *conn, uint64_t before_ms, size_t *removed);

/* ---- sagas on SQL --------------------------------------------------------------
 *
 * The orchestrator of ferry_saga.h with its sagas in table ferry_saga of the
 * service's database, their commands in its outbox table. The orchestrator
 * opens a connection of its own (do not share it); the outbox is published
 * by ferry-relay on the same database (`--source pg:...`, `pg-logical:...`
 * or `sqlite:...`), which the service runs beside it. On PostgreSQL several
 * orchestrator processes of one service may run: a saga's row is locked
 * while a transition applies, due deadlines are taken FOR UPDATE SKIP
 * LOCKED, so no step is sent twice.
 */

/**
 * @brief An orchestrator whose sagas live in the PostgreSQL database
 * @p conninfo (it sets up the tables, ferry_sql_setup_pg).
 * @return as ferry_saga_orchestrator_new(); FERRY_EIO when the database
 *         cannot be reached, FERRY_EFORMAT for newer tables
 */
FERRY_EXPORT ferry_status_t ferry_saga_pg_orchestrator_new(const char *conninfo,
                                                           const ferry_saga_def_t *defs,
                                                           size_t def_count,
                                                           const ferry_saga_config_t *cfg,
                                                           ferry_saga_orchestrator_t **out);
/**
 * @brief Starts saga @p id inside the caller's transaction on @p conn (after
 * its BEGIN): the record and the first command are rows of that
 * transaction, committed or rolled back with the caller's own.
 * @return as ferry_saga_start() (FERRY_EEXISTS: that id was started before;
 *         roll back or go on without it); FERRY_EINVAL if @p o is not on
 *         PostgreSQL
 */
FERRY_EXPORT ferry_status_t ferry_saga_pg_start(ferry_saga_orchestrator_t *o, PGconn *conn,
                                                const char *def, const char *id, const void *data,
                                                size_t len);
/** @brief An orchestrator on the SQLite database file @p path (WAL mode,
 *  synchronous FULL, a 10 s busy timeout on its own connection). */
FERRY_EXPORT ferry_status_t ferry_saga_sqlite_orchestrator_new(const char *path,
                                                               const ferry_saga_def_t *defs,
                                                               size_t def_count,
                                                               const ferry_saga_config_t *cfg,
                                                               ferry_saga_orchestrator_t **out);
/** @brief ferry_saga_pg_start() on SQLite: inside the caller's BEGIN on @p db. */
FERRY_EXPORT ferry_status_t ferry_saga_sqlite_start(ferry_saga_orchestrator_t *o, sqlite3 *db,
                                                    const char *def, const char *id,
                                                    const void *data, size_t len);

/* ---- saga participants on SQL --------------------------------------------------
 *
 * A participant whose answers are in table ferry_saga_inbox of its own
 * database, recorded in the transaction of its work: a command delivered
 * again gets the recorded answer, never runs twice; a compensation that
 * overtakes its command cancels it (as ferry_saga_participant_new). The
 * participant opens a connection of its own and runs @p fn on it inside
 * that transaction, in a savepoint undone when @p fn fails: the work, the
 * events it writes to the outbox (ferry_outbox_*_put on the same
 * connection) and the answer commit together. On PostgreSQL several
 * processes may serve one queue (an advisory lock per command).
 */

/** The work of @p cmd on @p conn inside the participant's transaction.
 *  Return true for success, false for a failure with a @p reason (its
 *  writes are undone). */
typedef bool (*ferry_saga_pg_handler_fn)(PGconn *conn, const ferry_saga_command_t *cmd,
                                         char *reason, size_t reason_cap, void *user);
typedef bool (*ferry_saga_sqlite_handler_fn)(sqlite3 *db, const ferry_saga_command_t *cmd,
                                             char *reason, size_t reason_cap, void *user);

/**
 * @brief Serves the saga commands of @p queue on @p client (ferry_client_poll
 * drives it) with @p fn, on the PostgreSQL database @p conninfo.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EIO (the database), FERRY_EFORMAT,
 *         or the declare's / subscribe's error
 */
FERRY_EXPORT ferry_status_t ferry_saga_pg_participant_new(ferry_client_t *client,
                                                          const char *conninfo, const char *queue,
                                                          ferry_saga_pg_handler_fn fn, void *user,
                                                          ferry_saga_participant_t **out);
/** @brief The same on the SQLite database file @p path. */
FERRY_EXPORT ferry_status_t ferry_saga_sqlite_participant_new(ferry_client_t *client,
                                                              const char *path, const char *queue,
                                                              ferry_saga_sqlite_handler_fn fn,
                                                              void *user,
                                                              ferry_saga_participant_t **out);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_SQL_H */
