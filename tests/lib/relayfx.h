/* SPDX-License-Identifier: MIT */
/*
 * relayfx.h - ferry-relay and the outboxes it reads, for integration tests:
 * a fresh SQLite outbox, writer threads that insert events into a SQLite or
 * PostgreSQL outbox while other things happen, the relay process, and the
 * checker of what reached the broker.
 *
 * The writers' history is what the checker needs: writer w owns aggregates
 * agg-w, agg-(w+8), ...; each event's payload is "agg-A:N", N counting that
 * aggregate's events from 1 in commit order. So the broker must hold every
 * event once, each aggregate's events in order with no gap.
 */
#ifndef FY_RELAYFX_H
#define FY_RELAYFX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "ferry.h"

#define FY_OUTBOX_WRITERS    8
#define FY_OUTBOX_AGGREGATES 500

/** Creates a SQLite outbox at @p path with the DDL of
 *  outbox-relay/sql/sqlite.sql ($FERRY_TOP). @return 0, or -1. */
int fy_outbox_sqlite_create(const char *path);

/** One writer thread's task and result. */
typedef struct fy_outbox_writer {
    const char *sqlite;     /* the SQLite outbox file, or NULL and: */
    const char *conninfo;   /* a PostgreSQL database with the outbox table */
    int w;                  /* 0 .. FY_OUTBOX_WRITERS-1 */
    size_t events;          /* how many to write */
    atomic_size_t *written; /* shared count of committed events */
    int pause_ms;           /* between transactions (0: 1 ms for SQLite, none for PG) */
    int failed;             /* set when a statement failed */
    char error[160];        /* and why */
} fy_outbox_writer_t;

/** Writes rows @p from .. @p to into the LMDB outbox in @p dir (made if
 *  new; map @p map_size) in one transaction, each "row-N" on aggregate
 *  type "orders", key "o-(N % 10)", and closes it. The ids must come out
 *  as N. @return 0, or -1. */
int fy_outbox_lmdb_rows(const char *dir, int from, int to, size_t map_size);

/** @p topic holds exactly @p rows messages, in order, the Nth with id
 *  "<name>:N" and payload "row-N" (as fy_outbox_lmdb_rows and the power-cut
 *  tests write them). @return 0, or -1 with the first difference in @p why. */
int fy_relay_rows_once(ferry_client_t *c, const char *topic, const char *name, size_t rows,
                       char *why, size_t cap);

/** pthread entry point: writes w->events events in transactions of 1-20,
 *  pause_ms apart. */
void *fy_outbox_write(void *writer);

/** Starts ferry-relay on @p source ("sqlite:PATH", "lmdb:DIR", "pg:CONNINFO",
 *  "pg-logical:CONNINFO") publishing to @p endpoint, polling every 5 ms,
 *  stats every second, output appended to @p log; @p on_publish NULL or
 *  "delete". It dies with the calling thread. @return its pid, or -1. */
int fy_relay_spawn(const char *source, const char *endpoint, const char *log,
                   const char *on_publish);
/** The same with further flags @p extra (NULL-terminated, at most 8). */
int fy_relay_spawn_with(const char *source, const char *endpoint, const char *log,
                        const char *const *extra);

/** Waits up to 20 s until relay @p pid logged "relay started" (its signal
 *  handlers are set). @return 0, or -1. */
int fy_relay_wait_started(const char *log, int pid);

/** True when @p id is "<kind>-<8 hex digits>:<row>": the message id of a
 *  source relayed under its default name (relay/identity.h). */
bool fy_relay_default_id(const char *id, const char *kind, unsigned long row);

/**
 * The checker: @p topic holds exactly @p events messages, ids 1..events
 * each once, each id "<source>:<row>" under one source name (@p source
 * ending in '-', e.g. "sqlite-": the default name "<kind>-<identity>"), each
 * aggregate's events in order with no gap, keyed by their aggregate.
 * @return 0, or -1 with the first broken promise in @p why.
 */
int fy_outbox_verify(ferry_client_t *c, const char *topic, size_t events, const char *source,
                     char *why, size_t cap);

/** Metric @p name{source=...} of a ferry-relay's /metrics on @p port (the
 *  first source's), or -1 if it is not there. */
double fy_relay_metric(int port, const char *name);
/** Waits up to 20 s for it to read @p want (said on stderr if it does not). */
bool fy_relay_metric_is(int port, const char *name, double want);

#endif
