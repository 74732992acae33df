/* SPDX-License-Identifier: MIT */
/*
 * ferry_saga.h - sagas orchestrated by a service, kept in its own LMDB
 * environment (docs/sagas.md); libferry-sql (ferry_sql.h) keeps them in
 * PostgreSQL or SQLite through the store interfaces below.
 *
 * A saga definition is a list of steps; each step sends a command to a
 * participant's queue and waits for its reply. A failure reply or a step
 * timeout runs the compensations of the steps that may have taken effect,
 * newest first. Every state change and the command it causes commit in one
 * LMDB transaction of the service (the command through the outbox,
 * ferry_outbox.h, published by an in-process relay), so a crash never loses
 * a command nor sends one the saga's state does not know about; after a
 * restart the orchestrator simply goes on: the outbox still holds the
 * unpublished commands, the reply topic the unread replies, the timer index
 * the deadlines.
 *
 * Participants serve their queue with ferry_saga_participant_new(): an inbox
 * in their own LMDB environment records each command's result in the same
 * transaction as the participant's work, so a command delivered twice is
 * answered again, never executed twice, a compensation that overtakes its
 * command cancels it, and a command that arrives after its step's deadline
 * (the orchestrator has moved on) is refused without running - keep the
 * machines' clocks in step (NTP).
 *
 * Installed beside ferry.h; needs lmdb.h. The environments need room for
 * more named databases (mdb_env_set_maxdbs): the orchestrator's
 * "ferry_saga", "ferry_saga_timer" and the outbox's two; a participant's
 * "ferry_saga_inbox".
 */
#ifndef FERRY_SAGA_H
#define FERRY_SAGA_H

#include <lmdb.h>

#include "ferry.h"
#include "ferry_outbox.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_SAGA_DB       "ferry_saga"       /**< saga instances, by id */
#define FERRY_SAGA_TIMER_DB "ferry_saga_timer" /**< deadline + id of awaited replies */
#define FERRY_SAGA_INBOX_DB "ferry_saga_inbox" /**< a participant's answered commands */

/** Most steps in a definition: a command carries the results of the steps
 *  before it, a header each, beside its own 8 and the relay's 2. */
#define FERRY_SAGA_STEPS_MAX 54

/** Longest step result, in bytes (ferry_saga_command_t.result). */
#define FERRY_SAGA_RESULT_MAX 4095

/** One step. */
typedef struct ferry_saga_step {
    const char *name;  /**< unique in its saga: "reserve-stock" */
    const char *queue; /**< the participant's command queue */
    bool compensable;  /**< has a compensation (the same queue, undo = true) */
    int timeout_ms;    /**< for each reply; 0: 30000 */
    /** Attempts at the step's command, the first included, before the saga
     *  compensates: a timeout, or a failure the participant says may pass
     *  (ferry_saga_command_t.retry), sends it again after a wait. 0: 1. */
    uint32_t max_attempts;
    /** The first wait before an attempt is sent again (then doubled per
     *  attempt, at most 60 s, +-20 % jitter); also between compensation
     *  attempts. 0: 1000. */
    int retry_delay_ms;
    /** Attempts at the compensation before the saga is FAILED; 0: no limit
     *  (a compensation must happen). */
    uint32_t max_compensations;
} ferry_saga_step_t;

/** A saga definition; copied by ferry_saga_orchestrator_new(). */
typedef struct ferry_saga_def {
    const char *name; /**< "order" (a valid topic token) */
    const ferry_saga_step_t *steps;
    size_t step_count; /**< 1..FERRY_SAGA_STEPS_MAX */
    /** 0 or 1: the first. An orchestrator may be given several versions of
     *  one name: a saga started as "order" runs on the highest, "order@2"
     *  on that one, and a running saga finishes on the version it started
     *  with (its record says "order" for version 1, "order@N" after), so
     *  keep the old versions in the list until their sagas ended. */
    uint32_t version;
} ferry_saga_def_t;

typedef enum ferry_saga_state {
    FERRY_SAGA_RUNNING = 1,      /**< waiting for step `step` */
    FERRY_SAGA_COMPENSATING = 2, /**< waiting for the compensation of step `step` */
    FERRY_SAGA_DONE = 3,         /**< every step succeeded */
    FERRY_SAGA_COMPENSATED = 4,  /**< a step failed or timed out; compensated */
    FERRY_SAGA_FAILED = 5        /**< a compensation failed max_compensations times: a
                                      person looks, then ferry_saga_resume() */
} ferry_saga_state_t;

/** Where a saga stands. */
typedef struct ferry_saga_status {
    char def[64]; /**< the definition: "order" (version 1) or "order@N" */
    ferry_saga_state_t state;
    size_t step;          /**< the step run or compensated (DONE: the step count) */
    uint32_t attempt;     /**< of the awaited command (compensations are retried) */
    uint64_t deadline_ms; /**< wall clock; 0 when ended */
    uint64_t ended_ms;    /**< when it ended (wall clock); 0 while active */
    char reason[256];     /**< why it compensates ("" when it does not) */
} ferry_saga_status_t;

typedef struct ferry_saga_orchestrator ferry_saga_orchestrator_t;

/** Called from ferry_saga_poll() after a saga ended (its end committed).
 *  A notification: a crash right after the commit loses it, the status
 *  stays (ferry_saga_get). */
typedef void (*ferry_saga_end_fn)(const char *id, const ferry_saga_status_t *status, void *user);

typedef struct ferry_saga_config {
    const char *name;   /**< this orchestrator: replies come to topic "saga.<name>.replies"
                             (durable subscription "orchestrator"), and
                             its outbox relay's name "saga-<name>-<epoch>" (the epoch is
                             random, made with the environment); NULL: "saga" */
    const char *broker; /**< NULL: $FERRY_SERVER or tcp://127.0.0.1:5555 */
    ferry_saga_end_fn on_end;
    void *user; /**< for on_end */
    /** Log lines of the orchestrator's connection and of its relay (NULL:
     *  none), with @p log_user; see ferry_outbox_relay_config_t. */
    ferry_log_fn log;
    void *log_user;
} ferry_saga_config_t;

/**
 * @brief Starts an orchestrator on @p env (opened by the service, with
 * maxdbs room): declares the reply topic and every step's queue, consumes
 * the replies, and relays the commands from the outbox in a thread. Sagas
 * left unfinished by an earlier run go on.
 * @return FERRY_OK, FERRY_EINVAL (bad definition: names, steps),
 *         FERRY_EIO (the databases cannot be opened), FERRY_ECONNECT, ...
 */
FERRY_EXPORT ferry_status_t ferry_saga_orchestrator_new(MDB_env *env, const ferry_saga_def_t *defs,
                                                        size_t def_count,
                                                        const ferry_saga_config_t *cfg,
                                                        ferry_saga_orchestrator_t **out);

/**
 * @brief Starts saga @p id (1-200 printable bytes) of definition @p def ("order":
 * its highest version; "order@2": that one) with @p data
 * (given to every command, up to 256 KiB): the record and the first command
 * commit in one transaction.
 * @return FERRY_OK, FERRY_EEXISTS (that id was started before: nothing
 *         changes, so a restarted service may start its sagas again),
 *         FERRY_ENOTFOUND (no such definition), FERRY_EINVAL,
 *         FERRY_ESTORAGE_FULL (the service's disk or map is full: nothing was
 *         recorded; start it again later), FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_saga_start(ferry_saga_orchestrator_t *o, const char *def,
                                             const char *id, const void *data, size_t len);

/** Told from ferry_saga_poll() how a start of ferry_saga_start_async()
 *  ended: FERRY_OK once committed; FERRY_EEXISTS (that id was started
 *  before), FERRY_ENOTFOUND (no such definition now); or the store's
 *  failure of the whole batch (FERRY_ESTORAGE_FULL, FERRY_EIO: nothing of
 *  it was recorded; start it again later). */
typedef void (*ferry_saga_started_fn)(const char *id, ferry_status_t status, void *user);

/** Most starts ferry_saga_start_async() queues before it commits them itself. */
#define FERRY_SAGA_STARTS_MAX 1000

/**
 * @brief ferry_saga_start() without waiting for its commit: the start is
 * copied and queued, and the next ferry_saga_poll() commits every queued
 * start in one transaction of the store - one fsync for many, as the
 * broker's group commit - then calls @p cb (may be NULL) for each. The
 * FERRY_SAGA_STARTS_MAX-th queued start commits the queue at once;
 * ferry_saga_orchestrator_destroy() commits what is queued. Nothing of a
 * start is durable, and its first command not sent, before its callback
 * says FERRY_OK.
 * @return FERRY_OK (queued), FERRY_EINVAL, FERRY_ENOTFOUND (no such
 *         definition), FERRY_ENOMEM; or the status of the commit it made
 *         at FERRY_SAGA_STARTS_MAX (the callbacks told each start's outcome)
 */
FERRY_EXPORT ferry_status_t ferry_saga_start_async(ferry_saga_orchestrator_t *o, const char *def,
                                                   const char *id, const void *data, size_t len,
                                                   ferry_saga_started_fn cb, void *user);

/**
 * @brief Takes replies and fires deadlines for up to @p timeout_ms (0: what
 * is there). Commits the starts of ferry_saga_start_async() queued since
 * the last poll first. Call it in the service's loop, from the thread that made @p o.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_ESTORAGE_FULL (the service's disk is
 *         full: the replies taken were not applied and come again after the
 *         replies' ack wait, 10 s; keep polling), FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_saga_poll(ferry_saga_orchestrator_t *o, int timeout_ms);

/** @brief Where saga @p id stands. @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_saga_get(ferry_saga_orchestrator_t *o, const char *id,
                                           ferry_saga_status_t *out);

/**
 * @brief The result step @p step of saga @p id gave (its participant's
 * ferry_saga_command_t.result), into @p out (NUL-terminated, cut to @p cap).
 * @return FERRY_OK, FERRY_ENOTFOUND (no such saga, or that step gave no
 *         result: not run yet, failed, or it said nothing), FERRY_EINVAL,
 *         storage errors
 */
FERRY_EXPORT ferry_status_t ferry_saga_result(ferry_saga_orchestrator_t *o, const char *id,
                                              const char *step, char *out, size_t cap);

/**
 * @brief A person stops saga @p id: a running saga compensates now what may
 * have been done (its current step too), with @p reason.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESEQ (it is not running: it
 *         compensates or ended already), FERRY_EINVAL, storage errors
 */
FERRY_EXPORT ferry_status_t ferry_saga_cancel(ferry_saga_orchestrator_t *o, const char *id,
                                              const char *reason);

/**
 * @brief A person resumes FAILED saga @p id (its participant fixed): the
 * compensation that gave up is sent again, from attempt 1.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESEQ (it is not FAILED),
 *         FERRY_EINVAL, storage errors
 */
FERRY_EXPORT ferry_status_t ferry_saga_resume(ferry_saga_orchestrator_t *o, const char *id);

/**
 * @brief Forgets the sagas that ended DONE or COMPENSATED before @p before_ms
 * (wall clock, ms since the Unix epoch; FAILED ones stay for a person);
 * their ids may be started again. Ended sagas are
 * kept until then, so that ferry_saga_get and ferry_saga_start's EEXISTS
 * know them. @param[out] removed may be NULL.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EIO
 */
FERRY_EXPORT ferry_status_t ferry_saga_purge(ferry_saga_orchestrator_t *o, uint64_t before_ms,
                                             size_t *removed);

/** What an orchestrator did since it was made: export it to your metrics
 *  (libferry serves none). Transitions count once committed. */
typedef struct ferry_saga_stats {
    uint64_t done;          /**< sagas that ended DONE here */
    uint64_t compensated;   /**< ... COMPENSATED */
    uint64_t failed;        /**< ... FAILED: each needs a person (ferry saga list DEF failed) */
    uint64_t timeouts;      /**< awaited replies that did not come in time */
    uint64_t resent;        /**< commands sent again after a wait (retries) */
    uint64_t bad_replies;   /**< messages on the reply topic that are not replies or
                                 control messages (logged, acked) */
    uint64_t stale_replies; /**< replies for no saga, late or repeated ones, and
                                 control messages the saga's state refused (logged) */
} ferry_saga_stats_t;

/** @brief @p o's counts into @p out. @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_saga_stats(const ferry_saga_orchestrator_t *o,
                                             ferry_saga_stats_t *out);

/** @brief Sagas not yet ended (RUNNING or COMPENSATING). */
FERRY_EXPORT size_t ferry_saga_active(ferry_saga_orchestrator_t *o);

/** @brief Stops the relay (commands in flight are confirmed first) and frees
 *  @p *o_p (NULL accepted); the environment stays open. */
FERRY_EXPORT void ferry_saga_orchestrator_destroy(ferry_saga_orchestrator_t **o_p);

/* ---- where sagas are kept: stores ---------------------------------------------
 *
 * The orchestrator keeps its sagas in a store: the service's LMDB
 * environment (ferry_saga_orchestrator_new), its SQLite or PostgreSQL
 * database (libferry-sql, ferry_sql.h), or any store that implements the
 * calls below. A store has write transactions; every transition (a start,
 * a reply, a deadline) is one of them: the saga's record and the command
 * it sends (into the service's outbox, which a relay publishes) commit
 * together. `tx` is the store's handle of a transaction: an MDB_txn *, a
 * PGconn * inside BEGIN, a sqlite3 * inside BEGIN, ... so a saga can start
 * inside a transaction the application opened (ferry_saga_start_in).
 */

/** A saga as a store keeps it. */
typedef struct ferry_saga_record {
    ferry_saga_state_t state;
    uint32_t step, attempt;
    uint64_t deadline_ms; /**< active: the awaited reply's deadline (wall clock);
                               ended: when it ended */
    char def[64];         /**< the definition's name */
    char reason[256];     /**< why it compensates; "" */
    void *data;           /**< the saga's data; get: malloc'ed, the caller frees it */
    size_t len;
    bool waiting; /**< attempt `attempt` waits until deadline_ms to be sent */
    /** The steps' results (ferry_saga_command_t.result): for each step that
     *  gave one, its name and its text, each NUL-terminated, in the order
     *  they came; NULL when none. get: malloc'ed, the caller frees it. */
    char *results;
    size_t results_len;
} ferry_saga_record_t;

/** The calls of a store; @p self is ferry_saga_store_t.self. Each returns
 *  FERRY_OK or a status (FERRY_ESTORAGE_FULL, FERRY_EIO, ...). */
typedef struct ferry_saga_store {
    void *self;
    /** Opens a write transaction of the orchestrator's own. */
    ferry_status_t (*begin)(void *self, void **tx);
    ferry_status_t (*commit)(void *self, void *tx);
    void (*rollback)(void *self, void *tx);
    /** Saga @p id, locked for the transaction where the store can lock
     *  rows. @return FERRY_OK, FERRY_ENOTFOUND, ... */
    ferry_status_t (*get)(void *self, void *tx, const char *id, ferry_saga_record_t *rec);
    /** Writes saga @p id (a new one when @p created), indexed by its
     *  deadline while active. */
    ferry_status_t (*put)(void *self, void *tx, const char *id, const ferry_saga_record_t *rec,
                          bool created);
    /** Writes a command into the outbox (published once the transaction commits). */
    ferry_status_t (*send)(void *self, void *tx, const ferry_outbox_event_t *ev);
    /** Up to @p max active sagas whose deadline is at or before @p now,
     *  earliest first, locked (skipping those another transaction holds);
     *  ids[i] holds 201 bytes. */
    ferry_status_t (*due)(void *self, void *tx, uint64_t now, size_t max, char (*ids)[201],
                          size_t *n);
    /** The earliest deadline of an active saga, 0 if none (no transaction needed). */
    ferry_status_t (*next_deadline)(void *self, uint64_t *at);
    /** How many sagas are active. */
    ferry_status_t (*active)(void *self, size_t *n);
    /** Removes sagas that ended before @p before_ms. */
    ferry_status_t (*purge)(void *self, uint64_t before_ms, size_t *removed);
    /** Frees the store (the orchestrator's destroy calls it); may be NULL. */
    void (*destroy)(void *self);
} ferry_saga_store_t;

/**
 * @brief Starts an orchestrator on @p store (copied; the orchestrator
 * destroys it with itself, also when this fails). Declares the reply topic
 * and every step's queue and consumes the replies; publishing the outbox is
 * the store's business (a relay beside it).
 * @return as ferry_saga_orchestrator_new()
 */
FERRY_EXPORT ferry_status_t ferry_saga_orchestrator_new_with_store(const ferry_saga_store_t *store,
                                                                   const ferry_saga_def_t *defs,
                                                                   size_t def_count,
                                                                   const ferry_saga_config_t *cfg,
                                                                   ferry_saga_orchestrator_t **out);

/** @brief The store @p o runs on (NULL for NULL): a store's own calls use
 *  it to know their orchestrators. */
FERRY_EXPORT const ferry_saga_store_t *
ferry_saga_orchestrator_store(const ferry_saga_orchestrator_t *o);

/**
 * @brief ferry_saga_start() inside the caller's open write transaction
 * @p tx of the orchestrator's store (an MDB_txn * of its environment for
 * LMDB; libferry-sql's typed calls for SQL): the saga and its first command
 * commit or roll back with the caller's own writes.
 * @return as ferry_saga_start(); on an error the caller rolls back
 */
FERRY_EXPORT ferry_status_t ferry_saga_start_in(ferry_saga_orchestrator_t *o, void *tx,
                                                const char *def, const char *id, const void *data,
                                                size_t len);

/* ---- participants ---------------------------------------------------------- */

/** A command as a participant sees it. */
typedef struct ferry_saga_command {
    const char *saga_id;
    const char *def;  /**< the saga definition's name */
    const char *step; /**< the step's name */
    bool undo;        /**< the compensation of that step */
    const void *data; /**< the saga's data */
    size_t len;
    /** A handler that fails for now (a service it calls is down, a lock is
     *  held) sets *retry = true and returns false: nothing is recorded, and
     *  the orchestrator sends the command again after a wait while the step
     *  has attempts left (ferry_saga_step_t.max_attempts), then compensates.
     *  For a compensation it changes nothing: a failed compensation is
     *  always sent again (up to max_compensations). Never NULL. */
    bool *retry;
    /** The command as it was delivered (its headers: the results of the
     *  steps before, see ferry_saga_command_result). */
    const ferry_stored_message_t *msg;
    /** A step that succeeds may say what it did for the steps after it
     *  and for its own compensation (a payment's id, a reservation's
     *  number): text written here (NUL-terminated, at most result_cap - 1 =
     *  FERRY_SAGA_RESULT_MAX bytes), recorded with the answer, kept in the
     *  saga (ferry_saga_result) and given to every later command
     *  (ferry_saga_command_result). Bytes that are not UTF-8 text, or
     *  control characters, are kept escaped as \xNN. Ignored for a
     *  failure and for a compensation. Starts as "". */
    char *result;
    size_t result_cap;
    /** A compensation: the result its step's command gave, as this
     *  participant recorded it (known also when the saga never heard the
     *  answer, a reply that came after the step's deadline); NULL: none.
     *  ferry_saga_command_result(cmd, cmd->step) prefers it. */
    const char *done_result;
    /** A handler that cannot answer yet at all (the system it needs is
     *  down, the work waits for something) sets *later = true and returns
     *  false: nothing is recorded and no answer goes; the command is given
     *  back to the broker and delivered again after FERRY_NACK_LATER_MS,
     *  doubling each time. The step's deadline still runs at the
     *  orchestrator: a command held past it times out (retried while the
     *  step has attempts, then compensated), and an attempt delivered after
     *  its deadline is refused without running. Each give-back counts
     *  toward the queue's max_deliver, as FERRY_MSG_NACK_LATER does: past
     *  it the command goes to the dead letters. Never NULL. */
    bool *later;
} ferry_saga_command_t;

/** @brief The result of step @p step (an earlier one, or the step this
 *  compensation undoes) as the saga kept it - for a compensation's own step,
 *  as this participant recorded it (done_result) - or NULL if it gave none.
 *  Valid while the command is. */
FERRY_EXPORT const char *ferry_saga_command_result(const ferry_saga_command_t *cmd,
                                                   const char *step);

/** Does the participant's work for @p cmd inside @p txn (a write
 *  transaction of its environment; the inbox record commits with it).
 *  Return true for success, false for a failure with a @p reason (a
 *  failure's work is rolled back). A compensation should succeed; a failed
 *  one is retried by the orchestrator. Runs inside calls on the client. */
typedef bool (*ferry_saga_handler_fn)(MDB_txn *txn, const ferry_saga_command_t *cmd, char *reason,
                                      size_t reason_cap, void *user);

typedef struct ferry_saga_participant ferry_saga_participant_t;

/**
 * @brief Serves the commands of @p queue with @p fn on @p client (a push
 * subscription; ferry_client_poll drives it), answering each command once
 * per command id: a redelivered command gets its recorded answer, a
 * compensation for a command never executed is answered at once and cancels
 * that command should it still come.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EIO (inbox database), or the
 *         declare's / subscribe's error
 */
FERRY_EXPORT ferry_status_t ferry_saga_participant_new(ferry_client_t *client, MDB_env *env,
                                                       const char *queue, ferry_saga_handler_fn fn,
                                                       void *user, ferry_saga_participant_t **out);

/* ---- where participants keep their answers: inbox stores ---------------------
 *
 * A participant records each command's answer in the transaction of its
 * work: in its LMDB environment (ferry_saga_participant_new), its SQLite or
 * PostgreSQL database (libferry-sql), or any store implementing these
 * calls. A command is known by (action 'd' or 'u', definition, step, saga
 * id).
 */
typedef struct ferry_saga_inbox_store {
    void *self;
    ferry_status_t (*begin)(void *self, void **tx);
    ferry_status_t (*commit)(void *self, void *tx);
    void (*rollback)(void *self, void *tx);
    /** The answer recorded for the command: *answer 1 ok, 0 failed, -1 none
     *  (then @p reason is ""). */
    ferry_status_t (*recorded)(void *self, void *tx, char action, const char *def, const char *step,
                               const char *saga_id, int *answer, char *reason, size_t reason_cap);
    /** Records the answer (replacing one). */
    ferry_status_t (*record)(void *self, void *tx, char action, const char *def, const char *step,
                             const char *saga_id, bool ok, const char *reason);
    /** Runs the participant's work for @p cmd in a scope nested in @p tx (a
     *  nested transaction, a savepoint): kept when *ok, undone when not. */
    ferry_status_t (*run)(void *self, void *tx, const ferry_saga_command_t *cmd, char *reason,
                          size_t reason_cap, bool *ok);
    /** Frees the store (the participant's destroy calls it); may be NULL. */
    void (*destroy)(void *self);
} ferry_saga_inbox_store_t;

/**
 * @brief ferry_saga_participant_new() on @p store (copied; destroyed with the
 * participant, also when this fails): the answers in the store, the work
 * run by store->run.
 */
FERRY_EXPORT ferry_status_t
ferry_saga_participant_new_with_store(ferry_client_t *client, const ferry_saga_inbox_store_t *store,
                                      const char *queue, ferry_saga_participant_t **out);

/** @brief Stops serving and frees @p *p_p (NULL accepted). */
FERRY_EXPORT void ferry_saga_participant_destroy(ferry_saga_participant_t **p_p);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_SAGA_H */
