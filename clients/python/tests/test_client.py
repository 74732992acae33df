# SPDX-License-Identifier: MIT
"""The Python client against a real ferryd: every call, its errors mapped
to exceptions, and what a user relies on (counts, contents, order)."""
import os
import threading
import time

import pytest

import ferry


def test_publish_and_get(client):
    info = client.declare("orders")
    assert info.created and info.kind == "topic" and info.name == "orders"
    assert not client.declare("orders").created
    c1 = client.publish("orders", b"\x00bin\xff", key="o-1", id="m-1",
                        headers={"type": "Placed", "trace": "t"})
    assert (c1.seq, c1.duplicate, c1.key_version) == (1, False, 1)
    c2 = client.publish("orders", "text é", key="o-1")  # str goes as UTF-8
    assert (c2.seq, c2.key_version) == (2, 2)
    again = client.publish("orders", b"\x00bin\xff", key="o-1", id="m-1",
                           headers={"type": "Placed", "trace": "t"})
    assert again.duplicate and again.seq == 1
    with pytest.raises(ferry.IdReusedError):  # the same id, another message
        client.publish("orders", b"other", key="o-1", id="m-1")
    msgs = client.get("orders")
    assert [m.seq for m in msgs] == [1, 2]
    assert msgs[0].data == b"\x00bin\xff"
    assert msgs[0].headers == {"type": "Placed", "trace": "t"}
    assert (msgs[0].key, msgs[0].id, msgs[0].key_version) == ("o-1", "m-1", 1)
    assert msgs[1].text == "text é"
    assert msgs[0].timestamp_ms > 1_700_000_000_000
    assert client.info("orders").messages == 2
    assert client.stats()["publishes"] == 2


def test_errors_are_exceptions(client):
    with pytest.raises(ferry.NotFoundError) as e:
        client.publish("nope", b"x")
    assert e.value.name == "ENOTFOUND" and e.value.code == 6
    client.declare("q", kind="queue")
    with pytest.raises(ferry.ExistsError):
        client.declare("q", kind="topic")
    with pytest.raises(ferry.InvalidNameError):
        client.declare("bad name with spaces")
    client.declare("big")
    with pytest.raises(ferry.TooLargeError):
        client.publish("big", b"x" * (17 << 20))
    # An expectation that failed says what the broker has now.
    client.declare("acct")
    client.publish("acct", b"opened", key="a-1", expect_version=0)
    with pytest.raises(ferry.ConflictError) as e:
        client.publish("acct", b"again", key="a-1", expect_version=0)
    assert e.value.current_version == 1 and e.value.current_seq == 1
    with pytest.raises(ferry.NoReplyError):
        client.declare("nobody.home")
        client.request("nobody.home", b"?", timeout=0.3)
    with pytest.raises(ValueError):
        client.declare("x", kind="stream")
    # The client goes on after every refusal.
    client.ping()


def test_publish_async_futures_in_order(client):
    client.declare("stream")
    n = 20000
    done = []
    futures = [client.publish_async("stream", b"m%d" % i, id=f"id-{i}",
                                    callback=lambda f: done.append(f.result().seq))
               for i in range(n)]
    client.flush(30)
    assert client.in_flight == 0
    assert [f.result().seq for f in futures] == list(range(1, n + 1))
    assert done == list(range(1, n + 1))
    got = []
    while len(got) < n:
        got += client.get("stream", len(got) + 1, 1000)
    assert [m.data for m in got] == [b"m%d" % i for i in range(n)]
    # result() waits by itself: no flush, no other thread.
    assert client.publish_async("stream", b"one more").result(timeout=5).seq == n + 1
    with pytest.raises(ferry.NotFoundError):
        client.publish_async("nope", b"x").result(timeout=5)


def test_fetch_ack_nack_term(client):
    client.declare("jobs", kind="queue")
    for i in range(3):
        client.publish("jobs", f"job-{i}")
    first = client.fetch("jobs", max=3, wait=1)
    assert [m.text for m in first] == ["job-0", "job-1", "job-2"]
    assert all(m.delivery_count == 1 for m in first)
    first[0].ack()
    first[1].nack()
    first[2].term("cannot parse")
    again = client.fetch("jobs", max=10, wait=1)
    assert [(m.text, m.delivery_count) for m in again] == [("job-1", 2)]
    again[0].ack()
    assert client.fetch("jobs", wait=0.1) == []
    dead = client.get("jobs.dlq")
    assert [m.text for m in dead] == ["job-2"]
    assert dead[0].headers["ferry-dlq-error"] == "cannot parse"
    with pytest.raises(ferry.SeqError):
        client.ack("jobs", None, [99])


def test_consumer_that_raises_loses_nothing(client):
    client.declare("events")
    assert client.subscribe_durable("events", "billing")
    assert not client.subscribe_durable("events", "billing")
    for i in range(5):
        client.publish("events", f"e{i}")
    seen = []

    def handler(m):
        seen.append((m.text, m.delivery_count))
        if m.text == "e2" and m.delivery_count == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        client.consume("events", "billing", handler, wait=0.5)
    assert client.consume("events", "billing", handler, wait=0.5) == 3
    assert seen[:3] == [("e0", 1), ("e1", 1), ("e2", 1)]
    assert ("e2", 2) in seen and [t for t, _ in seen if t != "e2"] == ["e0", "e1", "e3", "e4"]
    assert client.fetch("events", "billing", wait=0.1) == []


def test_read_an_aggregate(client):
    client.declare("accounts")
    for i in range(250):
        client.publish("accounts", f"a{i}", key="acc-1" if i % 2 == 0 else "acc-2")
    events = list(client.read("accounts", "acc-1", page=50))
    assert [m.text for m in events] == [f"a{i}" for i in range(0, 250, 2)]
    assert [m.key_version for m in events] == list(range(1, 126))
    assert [m.text for m in client.read("accounts", "acc-2", from_version=124)] == ["a247", "a249"]


def test_broker_killed_under_an_async_publisher(ferryd):
    """Every confirmed publish is stored exactly once, in order, after the
    broker is killed (SIGKILL) and started again mid-stream."""
    n = 30000
    confirmed = {}
    with ferry.Client(ferryd.endpoint, timeout=10.0, retry_connect=True) as c:
        c.declare("crash", dedupe_window=3600)
        restart = None
        for i in range(n):
            if i == n // 4:
                # SIGKILL with up to a window of publishes unconfirmed; it
                # comes back while the rest are sent.
                assert c.in_flight > 0
                ferryd.kill()
                restart = threading.Thread(target=ferryd.start)
                restart.start()
            f = c.publish_async("crash", b"p%d" % i, id=f"id-{i}")
            f.add_done_callback(lambda f, i=i: confirmed.__setitem__(i, f))
        restart.join()
        c.flush(60)
        ok = {i: f.result().seq for i, f in confirmed.items() if f.exception() is None}
        assert len(ok) == n
        got = []
        while True:
            page = c.get("crash", len(got) + 1, 1000)
            if not page:
                break
            got += page
        ids = [m.id for m in got]
        assert len(ids) == len(set(ids)) == n
        assert [m.data for m in got] == [b"p%d" % i for i in range(n)]
        assert all(ok[i] == got[i].seq for i in range(n))


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_no_memory_growth_over_100k_messages(client):
    """Publishing (async, with futures) and consuming 100,000 messages does
    not grow the process: nothing kept per message once answered."""
    client.declare("mem", kind="queue", max_msgs=20000)

    rounds = [0]

    def round_trip(n):
        rounds[0] += 1
        for i in range(n):
            client.publish_async("mem", b"x" * 64, id=f"r{rounds[0]}-m{i}")
        client.flush(60)
        left = n
        while left:
            batch = client.fetch("mem", max=1000, wait=1)
            assert batch, "messages went missing"
            client.ack("mem", None, [m.seq for m in batch])
            left -= len(batch)

    import tracemalloc
    round_trip(10000)  # warm: the allocator and libferry's buffers
    tracemalloc.start()
    py_before = tracemalloc.get_traced_memory()[0]
    before = _rss_kib()
    for _ in range(10):
        round_trip(10000)
    grown = _rss_kib() - before
    py_grown = tracemalloc.get_traced_memory()[0] - py_before
    tracemalloc.stop()
    assert client.in_flight == 0 and not client._pending
    # Python's own objects: nothing kept per message.
    assert py_grown < 512 * 1024, f"Python objects grew {py_grown} bytes"
    # The process: flat. Under ASan (test_python.sh with FERRY_SAN) freed
    # memory waits in its quarantine, which test_python.sh bounds to 32 MiB.
    allowed = 8 * 1024 + (48 * 1024 if "libasan" in os.environ.get("LD_PRELOAD", "") else 0)
    assert grown < allowed, f"RSS grew {grown} KiB over 100,000 messages"


def test_push_subscribe(client):
    """Pushed messages: a handler's return acks, a raise nacks (the message
    comes again, counted), KEEP leaves it for msg.ack(); live messages on a
    topic without a subscription."""
    client.declare("work", kind="queue")
    for i in range(300):
        client.publish("work", f"w{i}")
    seen, kept = [], []

    def handler(m):
        seen.append((m.text, m.delivery_count))
        if m.text == "w7" and m.delivery_count == 1:
            raise ValueError("not yet")
        if m.text == "w9":
            kept.append(m)
            return ferry.KEEP
        return None

    s = client.subscribe("work", handler, prefetch=50)
    deadline = time.monotonic() + 10
    while len(seen) < 301 and time.monotonic() < deadline:
        client.run(0.05)
    assert len(seen) == 301 and s.failed == 1 and s.handled == 300
    assert ("w7", 2) in seen
    assert sorted(t for t, _ in seen if t != "w7") == sorted(f"w{i}" for i in range(300) if i != 7)
    assert len(kept) == 1
    kept[0].ack()
    s.unsubscribe()
    assert client.info("work").messages == 0  # every one acked

    client.declare("ticks")
    live = []
    client.subscribe("ticks", lambda m: live.append(m.text))
    client.run(0.2)
    for i in range(5):
        client.publish("ticks", f"t{i}")
    deadline = time.monotonic() + 5
    while len(live) < 5 and time.monotonic() < deadline:
        client.run(0.05)
    assert live == [f"t{i}" for i in range(5)]


def test_request_and_serve(ferryd, client):
    """A Python responder answers Python requests: the reply's data and
    headers come back to the one who asked; a responder that raises gets
    the request again and answers it then."""
    client.declare("prices", kind="queue")
    stop = threading.Event()
    calls = []

    def price(req):
        calls.append(req.text)
        if req.text == "flaky" and calls.count("flaky") == 1:
            raise RuntimeError("try again")
        return f"price of {req.text}: 42", {"currency": "EUR"}

    served = []

    def responder():
        with ferry.Client(ferryd.endpoint) as srv:
            served.append(srv.serve("prices", price))
            while not stop.is_set():
                srv.run(0.05)

    t = threading.Thread(target=responder)
    t.start()
    try:
        reply = client.request("prices", "book", timeout=5)
        assert reply.text == "price of book: 42" and reply.headers["currency"] == "EUR"
        assert client.request("prices", "flaky", timeout=5).text == "price of flaky: 42"
    finally:
        stop.set()
        t.join()
    assert calls == ["book", "flaky", "flaky"]
    assert (served[0].handled, served[0].failed) == (2, 1)


def test_admin_calls(ferryd, client, tmp_path):
    """topics, subs, sub_info, seek, edit, purge, sub_delete, backup."""
    for name in ("b", "a", "c"):
        client.declare(name)
    client.declare("q", kind="queue")
    assert [t.name for t in client.topics()] == ["a", "b", "c", "q"]
    for i in range(10):
        client.publish("a", f"m{i}")
    client.subscribe_durable("a", "x")
    client.subscribe_durable("a", "w", max_deliver=3)
    subs = client.subs("a")
    assert [s["name"] for s in subs] == ["w", "x"]
    assert subs[0]["max_deliver"] == 3 and subs[1]["waiting"] == 10
    assert client.seek("a", "x", seq=8)["cursor"] == 8
    assert [m.text for m in client.fetch("a", "x", max=10, wait=0.5)] == ["m7", "m8", "m9"]
    assert client.sub_info("a", "x")["waiting"] == 0
    info = client.edit("a", max_msgs=4)
    assert info.max_msgs == 4 and client.info("a").messages == 4
    assert client.purge("a", keep=1) == 3
    assert [m.text for m in client.get("a")] == ["m9"]
    client.sub_delete("a", "w")
    assert [s["name"] for s in client.subs("a")] == ["x"]
    with pytest.raises(ferry.NotFoundError):
        client.subs("nope")
    copy = str(tmp_path / "copy")
    client.backup(copy)
    with pytest.raises(ferry.ExistsError):
        client.backup(copy)
    import os
    assert os.path.exists(os.path.join(copy, "data.mdb"))


def test_server_from_the_environment(ferryd, monkeypatch):
    """Client() with no server takes $FERRY_SERVER, as the ferry command does."""
    monkeypatch.setenv("FERRY_SERVER", ferryd.endpoint)
    with ferry.Client() as c:
        c.ping()
        assert c.declare("env").created


def test_publish_batch(client):
    """One request, all or nothing: confirms in order, ids answered as
    duplicates when sent again, a refused batch stores none."""
    client.declare("batch", dedupe_window=60)
    cfs = client.publish_batch("batch", ["a", b"b", {"data": "c", "key": "k", "id": "c-1",
                                                     "headers": {"h": "v"}}])
    assert [(cf.seq, cf.duplicate) for cf in cfs] == [(1, False), (2, False), (3, False)]
    c1 = {"data": "c", "key": "k", "id": "c-1", "headers": {"h": "v"}}
    again = client.publish_batch("batch", [c1, "d"])
    assert [(cf.seq, cf.duplicate) for cf in again] == [(3, True), (4, False)]
    with pytest.raises(ferry.IdReusedError):  # the id of another message: none stored
        client.publish_batch("batch", ["x", dict(c1, data="other")])
    got = client.get("batch", 1, 10)
    assert [m.data for m in got] == [b"a", b"b", b"c", b"d"]
    assert got[2].headers == {"h": "v"} and got[2].key == "k"
    with pytest.raises(ferry.ConflictError):  # the key moved on: none of it stored
        client.publish_batch("batch", ["e", {"data": "f", "key": "k", "expect_version": 0}])
    assert client.info("batch").last_seq == 4
    with pytest.raises(ferry.NotFoundError):
        client.publish_batch("nope", ["x"])
    for bad in ([], ["x"] * 1001):
        with pytest.raises(ValueError):
            client.publish_batch("batch", bad)
