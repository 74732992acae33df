-- SPDX-License-Identifier: MIT
-- The transactional outbox and inbox for PostgreSQL (docs/outbox.md).
-- ferry_sql_setup_pg() (libferry-sql) runs this file.
CREATE TABLE IF NOT EXISTS outbox (
    id             BIGSERIAL PRIMARY KEY,
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    payload        BYTEA       NOT NULL,
    headers        JSONB,                 -- object of strings (trace context, ...)
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- For the polling source: the writing transaction, so that a row whose
    -- transaction commits after a higher id is not skipped (docs/outbox.md).
    xid            XID8        NOT NULL DEFAULT pg_current_xact_id()
);

-- The polling source reads in (xid, id) order.
CREATE INDEX IF NOT EXISTS outbox_xid_id ON outbox (xid, id);

-- Kept by ferry-relay: per source name, the last row published.
CREATE TABLE IF NOT EXISTS ferry_relay_position (
    source   TEXT PRIMARY KEY,
    last_id  BIGINT NOT NULL,
    last_xid XID8   NOT NULL DEFAULT '0'
);

-- Idempotent consumers (ferry_inbox_pg_record): the messages each consumer
-- handled, recorded in the transaction of its work.
CREATE TABLE IF NOT EXISTS ferry_inbox (
    consumer   TEXT   NOT NULL,  -- the subscription or service
    topic      TEXT   NOT NULL,
    message    TEXT   NOT NULL,  -- the message id, or '#<seq>' for one without
    handled_at BIGINT NOT NULL,  -- ms since the Unix epoch (ferry_inbox_pg_prune)
    PRIMARY KEY (consumer, topic, message)
);
CREATE INDEX IF NOT EXISTS ferry_inbox_handled ON ferry_inbox (handled_at);

-- Sagas of an orchestrator on this database (ferry_saga_pg_orchestrator_new,
-- libferry-sql): one row per saga, changed in one transaction with the
-- command it sends (a row of outbox). Several orchestrator processes may
-- share it: a saga's row is locked while a transition applies, and due
-- deadlines are taken FOR UPDATE SKIP LOCKED.
CREATE TABLE IF NOT EXISTS ferry_saga (
    id          TEXT     PRIMARY KEY,
    def         TEXT     NOT NULL,             -- the definition's name
    state       SMALLINT NOT NULL,             -- 1 running, 2 compensating, 3 done,
                                               -- 4 compensated, 5 failed (a person looks)
    step        INTEGER  NOT NULL,
    attempt     INTEGER  NOT NULL,
    deadline_ms BIGINT   NOT NULL,             -- active: the awaited reply's deadline, or when
                                               -- a waiting attempt is sent; ended: when
    waiting     BOOLEAN  NOT NULL DEFAULT false, -- the attempt waits to be sent (a retry)
    reason      TEXT     NOT NULL DEFAULT '',  -- why it compensates
    data        BYTEA    NOT NULL,
    results     JSONB    NOT NULL DEFAULT '{}'  -- what steps gave: step -> text (version 2)
);
-- Tables made by version 1 get the column of version 2.
ALTER TABLE ferry_saga ADD COLUMN IF NOT EXISTS results JSONB NOT NULL DEFAULT '{}';
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
    ok         BOOLEAN NOT NULL,             -- the answer
    reason     TEXT    NOT NULL DEFAULT '',  -- why it failed, or a note
    handled_at BIGINT  NOT NULL,             -- ms since the Unix epoch
    PRIMARY KEY (saga_id, def, step, action)
);

-- The version of these tables (FERRY_SQL_SCHEMA_VERSION in ferry_sql.h).
CREATE TABLE IF NOT EXISTS ferry_schema (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
);
INSERT INTO ferry_schema (component, version) VALUES ('ferry', 2)
    ON CONFLICT (component) DO UPDATE SET version = greatest(ferry_schema.version, excluded.version);

-- For the log-tailing source (pg-logical: logical replication with pgoutput)
-- the server needs wal_level = logical (ALTER SYSTEM SET wal_level = logical;
-- then restart) and the relay's user the REPLICATION attribute. ferry-relay
-- creates what is missing at start: this publication (when it may) and its
-- replication slot (ferry_relay_<name>). Rows written before the slot exists
-- are not in it: run `ferry-relay --setup --source pg-logical:...` (or the
-- relay) before the service writes events.
-- CREATE PUBLICATION ferry_outbox FOR TABLE outbox WITH (publish = 'insert');
