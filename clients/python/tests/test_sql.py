# SPDX-License-Identifier: MIT
"""The outbox and the inbox from Python, on a real SQLite file and a real
PostgreSQL server, published by the real ferry-relay to a real ferryd:
events written in the service's transaction reach the broker (and those
rolled back never do), in order per aggregate; a consumer's inbox handles
each message once under redelivery, and a handler that raises leaves no
trace and gets the message again."""
import os
import sqlite3
import subprocess
import time

import pytest

import ferry
import ferry.sql


def _relay(source, ferryd, tmp_path):
    log = open(tmp_path / "relay.log", "ab")
    return subprocess.Popen([os.environ["FERRY_RELAY"], "--source", source, "--server",
                             ferryd.endpoint], stdout=subprocess.DEVNULL, stderr=log)


def _wait_messages(client, topic, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.info(topic).messages >= n:
                break
        except ferry.NotFoundError:
            pass
        time.sleep(0.05)
    got = []
    while True:
        page = client.get(topic, len(got) + 1, 1000)
        if not page:
            return got
        got += page


def _service_writes(conn, begin, commit, rollback, n):
    """n orders over two aggregates, each with its event, in one
    transaction per order; then one order rolled back."""
    for i in range(n):
        begin()
        conn.execute("INSERT INTO orders (id, total) VALUES (%d, %d)" % (i, 10 * i))
        ferry.sql.outbox_put(conn, "order", f"o-{i % 2}", "OrderPlaced",
                             f'{{"order": {i}}}', headers={"trace": f"t{i}"})
        commit()
    begin()
    conn.execute("INSERT INTO orders (id, total) VALUES (999, 0)")
    ferry.sql.outbox_put(conn, "order", "o-9", "OrderPlaced", b"never")
    rollback()


def _check_published(got, n):
    assert len(got) == n  # the rolled-back one never came
    for agg in ("o-0", "o-1"):
        mine = [m for m in got if m.key == agg]
        assert [m.text for m in mine] == [f'{{"order": {i}}}' for i in range(n) if f"o-{i % 2}" == agg]
    assert all(m.headers["event_type"] == "OrderPlaced" for m in got)
    assert sorted(m.headers["trace"] for m in got) == sorted(f"t{i}" for i in range(n))


def _consume_with_inbox(client, conn, n, charges_count):
    """Handles every order once: half are handled and not acked (a crash
    before the ack), so they come again and the inbox says 'done before';
    one handler raises first (rolled back, nacked, handled on its retry)."""
    client.subscribe_durable("order", "billing", ack_wait=0.5)
    ran = []
    failed_once = []

    def charge(c, m):
        if m.seq == 3 and not failed_once:
            failed_once.append(m.seq)
            raise RuntimeError("card service down")
        c.execute("INSERT INTO charges (order_seq) VALUES (%d)" % m.seq)
        ran.append(m.seq)

    for m in client.fetch("order", "billing", max=n, wait=2):
        try:
            ferry.sql.inbox_handle(conn, "billing", m, charge)
        except RuntimeError:
            m.nack()
            continue
        if m.seq % 2 == 0:
            m.ack()  # odd ones: "crashed" before the ack
    done_before = 0
    unacked = len([s for s in range(1, n + 1) if s % 2 and s != 3])  # 3 raised: not recorded
    deadline = time.monotonic() + 15
    while charges_count() < n or done_before < unacked:
        assert time.monotonic() < deadline, "redeliveries did not come"
        for m in client.fetch("order", "billing", max=n, wait=1):
            if not ferry.sql.inbox_handle(conn, "billing", m, charge):
                done_before += 1
            m.ack()
    assert done_before == unacked  # each redelivery found in the inbox, not run again
    assert sorted(ran) == list(range(1, n + 1))  # each order charged once
    assert charges_count() == n
    assert failed_once == [3]
    assert client.fetch("order", "billing", wait=0.7) == []


def test_sqlite_outbox_and_inbox(ferryd, tmp_path):
    db = str(tmp_path / "shop.db")
    conn = sqlite3.connect(db)  # the service's database: the relay adds its tables
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
    conn.commit()
    ferry.sql.setup(conn)
    conn.execute("CREATE TABLE charges (order_seq INTEGER PRIMARY KEY)")
    conn.commit()
    n = 40
    _service_writes(conn, lambda: conn.execute("BEGIN"), conn.commit, conn.rollback, n)
    with pytest.raises(ValueError):
        ferry.sql.outbox_put(conn, "order", "", "OrderPlaced", b"x")  # no aggregate id
    conn.rollback()
    relay = _relay(f"sqlite:{db}", ferryd, tmp_path)
    try:
        with ferry.Client(ferryd.endpoint) as c:
            _check_published(_wait_messages(c, "order", n), n)
            _consume_with_inbox(
                c, conn, n, lambda: conn.execute("SELECT count(*) FROM charges").fetchone()[0])
            assert conn.execute("SELECT count(*) FROM ferry_inbox").fetchone()[0] == n
            assert ferry.sql.inbox_prune(conn, -1) == n  # everything is older than the future
            conn.commit()
    finally:
        relay.terminate()
        assert relay.wait(10) == 0


def test_postgres_outbox_and_inbox(ferryd, postgres, tmp_path):
    import psycopg
    conn = psycopg.connect(postgres.conninfo)
    ferry.sql.setup(conn)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
    conn.execute("CREATE TABLE charges (order_seq BIGINT PRIMARY KEY)")
    conn.commit()
    n = 40
    _service_writes(conn, lambda: None, conn.commit, conn.rollback, n)
    relay = _relay(f"pg:{postgres.conninfo}", ferryd, tmp_path)
    try:
        with ferry.Client(ferryd.endpoint) as c:
            _check_published(_wait_messages(c, "order", n), n)

            def count():
                v = conn.execute("SELECT count(*) FROM charges").fetchone()[0]
                conn.commit()
                return v

            _consume_with_inbox(c, conn, n, count)
            assert conn.execute("SELECT count(*) FROM ferry_inbox").fetchone()[0] == n
            conn.commit()
    finally:
        relay.terminate()
        assert relay.wait(10) == 0
        conn.close()
