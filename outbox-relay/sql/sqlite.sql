-- SPDX-License-Identifier: MIT
-- The transactional outbox and inbox for SQLite (docs/outbox.md). Write your
-- business rows and the events in one transaction; ferry-relay publishes the
-- events. ferry_sql_setup_sqlite() (libferry-sql) runs this file.
-- WAL mode lets the relay read while the service writes:
PRAGMA journal_mode = WAL;

CREATE TABLE IF NOT EXISTS outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT, -- monotonic; SQLite commits writers in order
    aggregate_type TEXT    NOT NULL,                  -- becomes the topic (--topic-template)
    aggregate_id   TEXT    NOT NULL,                  -- becomes the message key: order per aggregate
    event_type     TEXT    NOT NULL,                  -- header event_type
    payload        BLOB    NOT NULL,
    headers        TEXT,                              -- JSON object of strings, or NULL
    created_at     INTEGER NOT NULL                   -- ms since the Unix epoch
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);

-- Kept by ferry-relay: the last id published per source name.
CREATE TABLE IF NOT EXISTS ferry_relay_position (
    source  TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);

-- Idempotent consumers (ferry_inbox_sqlite_record): the messages each
-- consumer handled, recorded in the transaction of its work.
CREATE TABLE IF NOT EXISTS ferry_inbox (
    consumer   TEXT    NOT NULL,  -- the subscription or service
    topic      TEXT    NOT NULL,
    message    TEXT    NOT NULL,  -- the message id, or '#<seq>' for one without
    handled_at INTEGER NOT NULL,  -- ms since the Unix epoch (ferry_inbox_sqlite_prune)
    PRIMARY KEY (consumer, topic, message)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ferry_inbox_handled ON ferry_inbox (handled_at);

-- Sagas of an orchestrator on this database (ferry_saga_sqlite_orchestrator_new,
-- libferry-sql): one row per saga, changed in one transaction with the
-- command it sends (a row of outbox).
CREATE TABLE IF NOT EXISTS ferry_saga (
    id          TEXT    PRIMARY KEY,
    def         TEXT    NOT NULL,              -- the definition's name
    state       INTEGER NOT NULL,              -- 1 running, 2 compensating, 3 done,
                                               -- 4 compensated, 5 failed (a person looks)
    step        INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,              -- active: the awaited reply's deadline, or when
                                               -- a waiting attempt is sent; ended: when
    waiting     INTEGER NOT NULL DEFAULT 0,    -- 1: the attempt waits to be sent (a retry)
    reason      TEXT    NOT NULL DEFAULT '',   -- why it compensates
    data        BLOB    NOT NULL,
    results     TEXT    NOT NULL DEFAULT '{}'  -- what steps gave: JSON, step -> text (version 2)
);
-- Tables made by version 1 lack `results`: ferry_sql_setup_sqlite() adds it
-- (ALTER TABLE ferry_saga ADD COLUMN results TEXT NOT NULL DEFAULT '{}').
-- Due deadlines are found through this index.
CREATE INDEX IF NOT EXISTS ferry_saga_due ON ferry_saga (deadline_ms) WHERE state IN (1, 2);

-- Saga participants on this database (ferry_saga_*_participant_new,
-- libferry-sql): each command's answer, recorded in the transaction of the
-- participant's work, so a command delivered again is answered again,
-- never run twice.
CREATE TABLE IF NOT EXISTS ferry_saga_inbox (
    saga_id    TEXT    NOT NULL,
    def        TEXT    NOT NULL,
    step       TEXT    NOT NULL,
    action     TEXT    NOT NULL,             -- 'd' the step, 'u' its compensation
    ok         INTEGER NOT NULL,             -- the answer
    reason     TEXT    NOT NULL DEFAULT '',  -- why it failed, or a note
    handled_at INTEGER NOT NULL,             -- ms since the Unix epoch
    PRIMARY KEY (saga_id, def, step, action)
);

-- The version of these tables (FERRY_SQL_SCHEMA_VERSION in ferry_sql.h).
CREATE TABLE IF NOT EXISTS ferry_schema (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
);
INSERT INTO ferry_schema (component, version) VALUES ('ferry', 2)
    ON CONFLICT (component) DO UPDATE SET version = max(version, excluded.version);
