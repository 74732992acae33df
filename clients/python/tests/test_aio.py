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
