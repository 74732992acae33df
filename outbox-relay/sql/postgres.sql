-- The transactional outbox for PostgreSQL (docs/outbox.md).
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

-- For the log-tailing source (pg-logical: logical replication with pgoutput)
-- the server needs wal_level = logical (ALTER SYSTEM SET wal_level = logical;
-- then restart) and the relay's user the REPLICATION attribute. ferry-relay
-- creates what is missing at start: this publication (when it may) and its
-- replication slot (ferry_relay_<name>). Rows written before the slot exists
-- are not in it: run `ferry-relay --setup --source pg-logical:...` (or the
-- relay) before the service writes events.
-- CREATE PUBLICATION ferry_outbox FOR TABLE outbox WITH (publish = 'insert');
