-- The transactional outbox for SQLite (docs/outbox.md). Write your business
-- rows and the events in one transaction; ferry-relay publishes the events.
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
