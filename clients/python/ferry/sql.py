# SPDX-License-Identifier: MIT
"""The transactional outbox and idempotent consumers for Python services on
SQLite (the sqlite3 module) or PostgreSQL (psycopg): the same tables and
rows as libferry-sql (include/ferry_sql.h), which ferry-relay publishes.

Make the tables once with setup(conn): it runs the DDL that `make install`
puts in PREFIX/share/ferry/sql/ (outbox-relay/sql/ in the source tree, the
one definition, which libferry-sql runs too).

    with conn:                                   # one transaction
        conn.execute("UPDATE stock ...")
        ferry.sql.outbox_put(conn, "order", "o-7", "OrderPlaced", b"{...}")

    ferry.sql.inbox_handle(conn, "billing", msg, charge)   # once per message

Each call runs inside the caller's transaction and commits nothing itself,
except inbox_handle, which is the transaction.
"""
import json
import os
import time

NAME_MAX = 255
HEADERS_MAX = 62           # a message carries 64; the relay adds two
HEADER_VALUE_MAX = 4096


def _dialect(conn):
    """'sqlite' or 'pg' by the connection's module."""
    mod = type(conn).__module__
    if mod.startswith("sqlite3"):
        return "sqlite"
    if mod.startswith("psycopg"):
        return "pg"
    raise TypeError(f"ferry.sql: a sqlite3 or psycopg connection, not {mod}")


def _ddl_dir():
    for d in (os.environ.get("FERRY_SQL_DIR"), "/usr/local/share/ferry/sql",
              "/usr/share/ferry/sql"):
        if d and os.path.exists(os.path.join(d, "sqlite.sql")):
            return d
    raise FileNotFoundError("ferry.sql: no outbox DDL: install Ferry (make install) or set "
                            "FERRY_SQL_DIR to its outbox-relay/sql")


def setup(conn, ddl_dir=None):
    """Creates what is missing of the outbox, inbox and saga tables (and
    commits): sqlite.sql or postgres.sql from `ddl_dir`, else
    $FERRY_SQL_DIR, else the installed share/ferry/sql."""
    d = ddl_dir or _ddl_dir()
    if _dialect(conn) == "sqlite":
        with open(os.path.join(d, "sqlite.sql")) as f:
            conn.executescript(f.read())
        conn.commit()
        return
    with open(os.path.join(d, "postgres.sql")) as f:
        conn.execute(f.read())
    conn.commit()


def _text(value, what, max_len):
    if not isinstance(value, str) or not value or len(value.encode()) > max_len:
        raise ValueError(f"ferry.sql: {what} must be text of 1 to {max_len} bytes")
    return value


def outbox_put(conn, aggregate_type, aggregate_id, event_type, payload, headers=None,
               created_ms=None):
    """Adds an event to table `outbox` in the caller's open transaction:
    aggregate_type becomes the topic, aggregate_id the message key (order
    per aggregate), event_type a header; payload bytes (or str, as UTF-8);
    headers a dict of strings. Returns the row's id."""
    _text(aggregate_type, "aggregate_type", NAME_MAX)
    _text(aggregate_id, "aggregate_id", NAME_MAX)
    _text(event_type, "event_type", 65535)
    if isinstance(payload, str):
        payload = payload.encode()
    headers = headers or {}
    if len(headers) > HEADERS_MAX:
        raise ValueError(f"ferry.sql: at most {HEADERS_MAX} headers")
    for k, v in headers.items():
        _text(k, "a header's name", 255)
        if not isinstance(v, str) or len(v.encode()) > HEADER_VALUE_MAX:
            raise ValueError(f"ferry.sql: header {k}: text of at most {HEADER_VALUE_MAX} bytes")
    doc = json.dumps(headers) if headers else None
    when = created_ms if created_ms is not None else int(time.time() * 1000)
    if _dialect(conn) == "sqlite":
        cur = conn.execute(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (aggregate_type, aggregate_id, event_type, bytes(payload), doc, when))
        return cur.lastrowid
    cur = conn.execute(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers, "
        "created_at) VALUES (%s, %s, %s, %s, %s::jsonb, to_timestamp(%s / 1000.0)) RETURNING id",
        (aggregate_type, aggregate_id, event_type, bytes(payload), doc, when))
    return cur.fetchone()[0]


def _inbox_key(msg):
    if not getattr(msg, "topic", None):
        raise ValueError("ferry.sql: the message has no topic")
    if msg.id:
        return msg.id
    return f"#{msg.seq}"


def inbox_record(conn, consumer, msg):
    """Records in the caller's open transaction that `consumer` handled
    `msg` (by its id, or its sequence without one). True: first time; False:
    handled before - do nothing but ack."""
    _text(consumer, "consumer", NAME_MAX)
    key = _inbox_key(msg)
    when = int(time.time() * 1000)
    if _dialect(conn) == "sqlite":
        cur = conn.execute(
            "INSERT INTO ferry_inbox (consumer, topic, message, handled_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING", (consumer, msg.topic, key, when))
    else:
        cur = conn.execute(
            "INSERT INTO ferry_inbox (consumer, topic, message, handled_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (consumer, msg.topic, key, when))
    return cur.rowcount == 1


def inbox_handle(conn, consumer, msg, fn):
    """Handles `msg` once: in one transaction, records it in the inbox and,
    if new, calls fn(conn, msg) (its writes, outbox rows included), then
    commits; fn raising rolls all of it back and the exception goes on (the
    message comes again). Returns True if fn ran, False if handled before.
    Ack the message after it returns either way."""
    if _dialect(conn) == "sqlite":
        if conn.in_transaction:
            raise RuntimeError("ferry.sql: inbox_handle is the transaction: commit first")
        conn.execute("BEGIN IMMEDIATE")  # the write lock first: no upgrade to fail
        try:
            new = inbox_record(conn, consumer, msg)
            if new:
                fn(conn, msg)
            conn.execute("COMMIT")
            return new
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    with conn.transaction():
        new = inbox_record(conn, consumer, msg)
        if new:
            fn(conn, msg)
        return new


def inbox_prune(conn, older_than):
    """Forgets inbox records older than `older_than` seconds (keep them
    longer than the broker may deliver a message again). Returns how many."""
    before = int((time.time() - older_than) * 1000)
    ph = "?" if _dialect(conn) == "sqlite" else "%s"
    cur = conn.execute(f"DELETE FROM ferry_inbox WHERE handled_at < {ph}", (before,))
    return cur.rowcount
