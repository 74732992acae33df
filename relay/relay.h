/* SPDX-License-Identifier: MIT */
/*
 * relay.h - the outbox relay loop: read rows in id order from a source,
 * publish them through libferry's async window with a stable message id
 * (source name + row id) and the aggregate id as key, wait for every confirm,
 * then record the position in the source (or delete the rows). A crash
 * anywhere replays rows after the recorded position with the same ids; the
 * broker's dedupe window answers those it had as duplicates, so each row is
 * in the broker once, and rows of one aggregate keep their order.
 */
#ifndef FR_RELAY_H
#define FR_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ferry.h"
#include "source.h"

typedef enum fr_poison { FR_POISON_DLQ, FR_POISON_STOP } fr_poison_t;

/* The defaults of every relay, ferry-relay's and the in-process one's,
 * written once (docs/outbox.md lists them). */
#define FR_DEFAULT_TABLE          "outbox"
#define FR_DEFAULT_TOPIC_TEMPLATE "{aggregate_type}"
#define FR_DEFAULT_DLQ_TOPIC      "ferry-relay.dlq"
#define FR_DEFAULT_POLL_MS        20
#define FR_DEFAULT_BATCH          1000
#define FR_DEFAULT_DEDUPE_MS      86400000ull /* a day */
#define FR_DEFAULT_STATS_MS       10000
#define FR_DEFAULT_STUCK_ERROR_MS 300000 /* rows refused this long: error lines */

/** The broker a relay talks to when told nothing: $FERRY_SERVER, else
 *  the protocol's default endpoint. Borrowed from the environment. */
const char *fr_default_broker(void);

/** Where a relay stands, for a metrics endpoint (fr_config_t.report). */
typedef struct fr_relay_report {
    const char *name;  /* the source's name ("" until it is open) */
    const char *kind;  /* sqlite, lmdb, pg, pg-logical */
    const char *state; /* opening, waiting (another relay of its name), running,
                          stuck (rows cannot reach the broker), stopped, failed */
    uint64_t published, duplicates, dead_lettered, retries;
    uint64_t lag_rows;  /* rows not yet published (0 for pg-logical: see lag_bytes) */
    uint64_t lag_bytes; /* pg-logical: the slot's distance to the end of the log */
    double lag_s;       /* since the oldest row not yet published was written */
    uint64_t reports_failed; /* reports to _ferry.relay refused or unanswered (relay_status.h) */
} fr_relay_report_t;

typedef struct fr_config {
    const char *broker;        /* ferryd endpoint */
    const char *server_key;    /* ferryd's CURVE public key (z85 or @FILE); "": $FERRY_SERVER_KEY */
    const char *client_key;    /* this relay's CURVE secret key file; "": $FERRY_CLIENT_KEY */
    const char *user;          /* a password user of ferryd's users file; "": none */
    const char *password_file; /* the file (mode 600) whose first line is its password */
    const fr_source_ops_t *ops; /* the source kind */
    const char *location;       /* the source's file or connection string */
    const char *table;          /* the outbox table */
    const char *name;           /* source name: position key and message id prefix;
                                 * NULL or "": <kind>-<identity> (identity.h) */
    const char *rename_from;    /* a name whose position moves to name (source.h) */
    const char *slot;           /* pg-logical: replication slot ("" = ferry_relay_<name>) */
    const char *publication;    /* pg-logical: publication ("" = ferry_outbox) */
    const char *topic_template; /* "{aggregate_type}", optionally with a prefix/suffix */
    bool delete_published;      /* --on-publish delete */
    fr_poison_t on_poison;      /* a row the broker refuses for good */
    const char *dlq_topic;      /* where poison rows go */
    int poll_ms;                /* idle wait between reads */
    size_t batch;               /* rows per read (<= 1000) */
    uint64_t dedupe_window_ms;  /* for topics the relay creates */
    int stats_ms;               /* how often to log stats */
    long long stuck_error_ms;   /* rows refused this long are logged as errors */
    void *env;                  /* lmdb: the service's own MDB_env (in-process relay) */
    /* Where log lines go (one logfmt line, no newline); NULL: stderr. */
    ferry_log_fn log;
    void *log_user;
    /* Called about once a second (and when the state changes) from the
     * relay's thread with where it stands; NULL: none. */
    void (*report)(void *user, const fr_relay_report_t *rep);
    void *report_user;
} fr_config_t;

/** @p cfg with every default above (strings point to static text). */
void fr_config_init(fr_config_t *cfg);

/** Applies the security settings of @p cfg (server-key, client-key, user
 *  and password-file) to @p o. @return NULL, or which setting is wrong (a
 *  sentence, never a secret). */
const char *fr_relay_security(const fr_config_t *cfg, ferry_options_t *o);

/** Runs until *stop is set (then finishes the batch in flight) or a fatal
 *  error. @return 0 after a stop, 1 on a fatal error (logged). */
int fr_relay_run(const fr_config_t *cfg, atomic_int *stop);

#endif
