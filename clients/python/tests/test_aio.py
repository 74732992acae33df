# SPDX-License-Identifier: MIT
"""asyncio: awaited publishes resolve from the loop (no thread), many at
once share the window, and a broker killed under them loses nothing."""
import asyncio

import ferry
import ferry.aio


def test_awaited_publishes_and_async_for(ferryd):
    async def main():
        async with await ferry.aio.connect(ferryd.endpoint, window=100) as c:
            await c.declare("orders")
            await c.subscribe_durable("orders", "billing")
            first = await c.publish("orders", b"one", key="o-1")
            assert (first.seq, first.key_version) == (1, 1)
            # More at once than the window holds: they wait for room.
            confirms = await asyncio.gather(
                *[c.publish("orders", f"m{i}", id=f"id-{i}") for i in range(5000)])
            assert [x.seq for x in confirms] == list(range(2, 5002))
            got = []
            async for m in c.messages("orders", "billing", max=1000, wait=0.5):
                got.append(m)
                if len(got) == 5001:
                    break
            await c.ack("orders", "billing", [m.seq for m in got])
            assert [m.text for m in got[1:]] == [f"m{i}" for i in range(5000)]
            assert [m.text for m in await c.read("orders", "o-1")] == ["one"]
            try:
                await c.publish("nope", b"x")
                raise AssertionError("published to a missing topic")
            except ferry.NotFoundError:
                pass
    asyncio.run(main())


def test_broker_killed_under_an_asyncio_publisher(ferryd):
    """Every confirmed publish stored once, in order, with ferryd SIGKILLed
    and started again while awaited publishes are in flight."""
    n = 20000

    async def main():
        async with await ferry.aio.connect(ferryd.endpoint, timeout=10.0, window=500) as c:
            await c.declare("crash", dedupe_window=3600)
            loop = asyncio.get_running_loop()

            done = [0]
            restart = []

            async def one(i):
                cf = await c.publish("crash", b"p%d" % i, id=f"id-{i}")
                done[0] += 1
                if done[0] == n // 4:
                    # SIGKILL now, on the loop: three quarters are not confirmed.
                    ferryd.kill()
                    restart.append(loop.run_in_executor(None, ferryd.start))
                return cf

            confirms = await asyncio.gather(*[one(i) for i in range(n)])
            assert len(restart) == 1
            await restart[0]
            assert len(confirms) == n
            got = []
            while True:
                page = await c.get("crash", len(got) + 1, 1000)
                if not page:
                    break
                got += page
            assert [m.data for m in got] == [b"p%d" % i for i in range(n)]
            assert [x.seq for x in confirms] == [m.seq for m in got]
    asyncio.run(main())


def test_push_handlers_responders_and_requests_on_the_loop(ferryd):
    """Push subscriptions deliver to the loop: an async handler's return
    acks (the acks of a turn together), its raise nacks and the message
    comes again; `async for` over a subscription; an async responder
    answers requests awaited many at once; no responder: NoReplyError."""
    import pytest

    async def main():
        async with await ferry.aio.connect(ferryd.endpoint) as svc, \
                await ferry.aio.connect(ferryd.endpoint) as cli:
            await svc.declare("jobs", kind="queue")
            done, failed_once = [], set()

            async def work(msg):
                await asyncio.sleep(0)  # a handler that awaits
                i = int(msg.text)
                if i % 10 == 3 and i not in failed_once:
                    failed_once.add(i)
                    raise ValueError("the first try fails")
                done.append(i)

            jobs = await svc.subscribe("jobs", work, prefetch=50)
            await asyncio.gather(*[cli.publish("jobs", str(i)) for i in range(500)])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (len(done) < 500 or (await svc.info("jobs")).messages) and \
                    loop.time() < deadline:
                await asyncio.sleep(0.02)
            assert sorted(done) == list(range(500))  # each once: acked after it ran
            assert (jobs.handled, jobs.failed) == (500, 50)
            assert (await svc.info("jobs")).messages == 0  # every ack stored
            await jobs.unsubscribe()

            await svc.declare("events")
            await svc.subscribe_durable("events", "audit")
            events = await svc.subscribe("events", sub="audit", prefetch=20)
            await asyncio.gather(*[cli.publish("events", f"e{i}", key="k") for i in range(100)])
            got = []
            async for m in events:
                got.append(m.text)
                await m.ack()
                if len(got) == 100:
                    break
            assert got == [f"e{i}" for i in range(100)]
            await events.unsubscribe()
            assert (await svc.sub_info("events", "audit"))["ack_floor"] == 100

            async def upper(req):
                await asyncio.sleep(0.001)
                return req.data.upper(), {"by": "svc"}

            await svc.declare("rpc", kind="queue")
            rpc = await svc.serve("rpc", upper)
            replies = await asyncio.gather(*[cli.request("rpc", f"r{i}") for i in range(200)])
            assert [r.data for r in replies] == [f"R{i}".encode() for i in range(200)]
            assert all(r.headers["by"] == "svc" for r in replies)
            await rpc.unsubscribe()  # waits for its handlers still confirming their replies
            assert (rpc.handled, rpc.failed) == (200, 0)
            await svc.declare("nobody", kind="queue")
            with pytest.raises(ferry.NoReplyError):
                await cli.request("nobody", "x", timeout=0.3)
    asyncio.run(main())


def test_publishes_waiting_for_room_fail_at_their_timeout(ferryd):
    """A broker that stops answering: the publishes waiting for room in the
    window fail at the client's timeout, in order, none hangs; those in the
    window are kept (libferry never drops one) and confirmed once the
    broker answers again."""
    import signal
    import time

    async def main():
        async with await ferry.aio.connect(ferryd.endpoint, window=10, timeout=0.5) as c:
            await c.declare("stall")
            ferryd.proc.send_signal(signal.SIGSTOP)
            try:
                tasks = [asyncio.ensure_future(c.publish("stall", b"m%d" % i))
                         for i in range(30)]
                deadline = time.monotonic() + 10
                while sum(t.done() for t in tasks) < 20 and time.monotonic() < deadline:
                    await asyncio.wait(tasks, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
                assert [t.done() for t in tasks] == [False] * 10 + [True] * 20
                assert all(isinstance(t.exception(), ferry.FerryError) for t in tasks[10:])
            finally:
                ferryd.proc.send_signal(signal.SIGCONT)
            confirms = await asyncio.gather(*tasks[:10])
            assert [cf.seq for cf in confirms] == list(range(1, 11))
            assert (await c.publish("stall", b"after")).seq == 11
    asyncio.run(main())
