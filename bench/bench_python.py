#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench_python - the Python client's rates beside the C client's and
redis-py's, same run, same machine (docs/python.md, bench/README.md).

  Ferry, Python: publish_async 128-byte messages through a window of 1000
                 (confirmed/s), then fetch 1000 + ack them (consumed/s)
  Ferry, asyncio: the same awaited (ferry.aio), then consumed by a push
                 subscription with an async handler
  Ferry, C:      bench_publish -n N -w 1000 on the same kind of broker
  Redis, Python: redis-py XADD pipelined 1000 at a time on redis-server with
                 appendonly yes and appendfsync always (the durable setting),
                 then XREADGROUP 1000 + XACK

Needs FERRYD, FERRY_LIBRARY (the build's libferry.so.0), FERRY_BENCH (the
bench_publish binary) and redis-server with python3-redis. Prints one line
per measurement; nothing is asserted (speed is measured, never tested).
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "clients", "python"))
import ferry  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ferryd(d):
    log = open(os.path.join(d, "ferryd.log"), "wb")
    p = subprocess.Popen([os.environ["FERRYD"], "--data", os.path.join(d, "data"), "--bind",
                          "tcp://127.0.0.1:*"], stderr=log, stdout=subprocess.DEVNULL)
    for _ in range(500):
        m = re.search(r'msg="ready" endpoint=(\S+)', open(log.name).read())
        if m:
            return p, m.group(1)
        time.sleep(0.02)
    raise RuntimeError("ferryd did not start")


def ferry_python(endpoint, n, size):
    data = b"x" * size
    with ferry.Client(endpoint, window=1000, timeout=30) as c:
        c.declare("bench", kind="queue")
        t0 = time.perf_counter()
        for _ in range(n):
            c.publish_async("bench", data)
        c.flush(120)
        pub = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        left = n
        while left:
            batch = c.fetch("bench", max=1000, wait=1)
            c.ack("bench", None, [m.seq for m in batch])
            left -= len(batch)
        cons = n / (time.perf_counter() - t0)
    return pub, cons


def ferry_python_aio(endpoint, n, size):
    """ferry.aio: publishes awaited 10,000 at a time through a window of
    1000, then a push subscription with an async handler (acks batched per
    loop turn) until the queue is empty."""
    import asyncio
    import ferry.aio
    data = b"x" * size

    async def main():
        async with await ferry.aio.connect(endpoint, window=1000, timeout=30) as c:
            await c.declare("bench-aio", kind="queue")
            t0 = time.perf_counter()
            for i in range(0, n, 10000):
                await asyncio.gather(*[c.publish("bench-aio", data)
                                       for _ in range(min(10000, n - i))])
            pub = n / (time.perf_counter() - t0)
            seen = [0]
            done = asyncio.Event()

            async def handle(msg):
                seen[0] += 1
                if seen[0] == n:
                    done.set()

            t0 = time.perf_counter()
            sub = await c.subscribe("bench-aio", handle, prefetch=1000)
            await done.wait()
            while (await c.info("bench-aio")).messages:  # every ack stored
                await asyncio.sleep(0.005)
            cons = n / (time.perf_counter() - t0)
            await sub.unsubscribe()
            return pub, cons
    return asyncio.run(main())


def ferry_c(n):
    """bench_publish's best of its runs (msg/s confirmed)."""
    out = subprocess.run([os.environ["FERRY_BENCH"], "-n", str(n), "-w", "1000"],
                         capture_output=True, text=True, env=os.environ).stdout
    rates = [float(line.split()[1]) for line in out.splitlines()
             if line.strip() and line.split()[0].isdigit()]
    if not rates:
        return "bench_publish printed nothing: " + out.strip()
    return f"{n} x 128 B, window 1000: published {max(rates):,.0f}/s confirmed (best of {len(rates)})"


def redis_python(n, size, d):
    import redis
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                          "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                         stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(500):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        r.xgroup_create("bench", "g", id="0", mkstream=True)
        data = b"x" * size
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            pipe = r.pipeline(transaction=False)
            for _ in range(min(1000, n - start)):
                pipe.xadd("bench", {"d": data})
            pipe.execute()
        pub = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        left = n
        while left:
            got = r.xreadgroup("g", "c", {"bench": ">"}, count=1000)
            ids = [i for _, entries in got for i, _ in entries]
            r.xack("bench", "g", *ids)
            left -= len(ids)
        cons = n / (time.perf_counter() - t0)
        return pub, cons
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200000)
    ap.add_argument("-s", type=int, default=128)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ferry-bench-py-")
    try:
        p, endpoint = start_ferryd(d)
        try:
            pub, cons = ferry_python(endpoint, a.n, a.s)
            apub, acons = ferry_python_aio(endpoint, a.n, a.s)
        finally:
            p.terminate()
            p.wait()
        print(f"ferry python: {a.n} x {a.s} B: published {pub:,.0f}/s confirmed, "
              f"consumed {cons:,.0f}/s (fetch 1000 + ack)")
        print(f"ferry asyncio: {a.n} x {a.s} B: published {apub:,.0f}/s confirmed (awaited), "
              f"consumed {acons:,.0f}/s (push, async handler, acks batched)")
        print(f"ferry C:      {ferry_c(a.n)}")
        rpub, rcons = redis_python(a.n, a.s, d)
        print(f"redis-py:     {a.n} x {a.s} B, appendfsync always: XADD {rpub:,.0f}/s "
              f"(pipelined 1000), XREADGROUP+XACK {rcons:,.0f}/s")
        print(f"ratio:        publish {pub / rpub:.2f}x redis-py, consume {cons / rcons:.2f}x")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
