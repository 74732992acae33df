# SPDX-License-Identifier: MIT
"""asyncio for Ferry: `await client.publish(...)`, `async for msg in ...`.

An AsyncClient drives one Client from the event loop: the client's file
descriptor is watched (loop.add_reader) and its timers kept
(next_timeout), so confirms resolve awaitables without a thread. Calls that
wait on the broker by design (fetch with a wait, request, declare...) run
in the loop's default executor, so the loop never blocks; their answers and
the publishes' confirms are all libferry's, as with the Client.
"""
import asyncio
import functools
import threading

from .client import Client
from .errors import FerryError


def _settle(answer, f):
    if answer.done():
        return
    if f.exception() is not None:
        answer.set_exception(f.exception())
    else:
        answer.set_result(f.result())


async def connect(server=None, **options):
    """An AsyncClient connected to `server` (the Client's options)."""
    loop = asyncio.get_running_loop()
    options["block_on_full"] = False
    sync = await loop.run_in_executor(None, functools.partial(Client, server, **options))
    return AsyncClient(sync, loop, options.get("window", 1000), options.get("timeout", 5.0))


class AsyncClient:
    """Made by `await ferry.aio.connect(...)`; `async with` closes it."""

    def __init__(self, client, loop, window, timeout):
        self.client = client
        self._loop = loop
        self._window = window
        self._timeout = timeout
        self._fd = None
        self._timer = None
        self._room = None  # a future resolved when the window has room again
        self._sending = asyncio.Lock()  # FIFO: publishes leave in the order awaited
        self._thread = threading.get_ident()  # the loop's
        self._closed = False
        self._arm()

    # -- the pump: libferry's work, from the loop ---------------------------

    def _arm(self):
        if self._closed:
            return
        try:
            fd = self.client.fileno()
        except FerryError:
            fd = None  # no connection right now: the timer polls
        if fd != self._fd:
            if self._fd is not None:
                self._loop.remove_reader(self._fd)
            if fd is not None:
                self._loop.add_reader(fd, self._pump)
            self._fd = fd
        if self._timer:
            self._timer.cancel()
        self._timer = self._loop.call_later(min(self.client.next_timeout(), 0.1), self._pump)

    def _pump(self):
        lock = self.client._lock
        if lock.acquire(blocking=False):  # else a call in the executor does the work
            try:
                self.client.poll(0)
            except FerryError:
                pass  # what failed is in the futures; the connection comes back
            finally:
                lock.release()
        if self._room and not self._room.done() and self.client.in_flight < self._window:
            self._room.set_result(None)
        self._arm()

    async def _call(self, name, *args, **kwargs):
        return await self._loop.run_in_executor(
            None, functools.partial(getattr(self.client, name), *args, **kwargs))

    # -- publishing -------------------------------------------------------

    async def publish(self, topic, data, **options):
        """Publishes and returns the Confirm once the broker has it on disk.
        Many may be awaited at once (asyncio.gather): they travel in one
        window, as publish_async's, in the order they were awaited. A full
        window (or a connection being made again with it full) waits, up to
        the client's timeout."""
        deadline = self._loop.time() + self._timeout
        answer = self._loop.create_future()

        def settle(f):  # on the loop's thread (the pump), or an executor's
            if threading.get_ident() == self._thread:
                _settle(answer, f)
            else:
                self._loop.call_soon_threadsafe(_settle, answer, f)

        async with self._sending:  # those waiting for room go first, in order
            while True:
                try:
                    self.client.publish_async(topic, data, callback=settle, **options)
                    break
                except FerryError as e:
                    if e.name not in ("EWOULD_BLOCK", "EDISCONNECTED") or \
                            self._loop.time() >= deadline:
                        raise
                    if not self._room or self._room.done():
                        self._room = self._loop.create_future()
                    try:  # a confirm makes room; else look again soon
                        await asyncio.wait_for(asyncio.shield(self._room), 0.05)
                    except asyncio.TimeoutError:
                        pass
        self._pump()
        return await answer

    # -- everything else, in the executor -----------------------------------

    async def declare(self, name, kind="topic", **options):
        return await self._call("declare", name, kind, **options)

    async def info(self, name):
        return await self._call("info", name)

    async def delete(self, name):
        return await self._call("delete", name)

    async def get(self, topic, from_seq=1, limit=100):
        return await self._call("get", topic, from_seq, limit)

    async def read(self, topic, key, from_version=1):
        """A key's messages, oldest first (a list)."""
        return await self._loop.run_in_executor(
            None, lambda: list(self.client.read(topic, key, from_version)))

    async def subscribe_durable(self, topic, sub, **options):
        return await self._call("subscribe_durable", topic, sub, **options)

    async def fetch(self, topic, sub=None, max=10, wait=1.0):
        return await self._call("fetch", topic, sub, max, wait)

    async def ack(self, topic, sub, seqs):
        return await self._call("ack", topic, sub, seqs)

    async def request(self, topic, data, **options):
        return await self._call("request", topic, data, **options)

    async def messages(self, topic, sub=None, *, max=100, wait=1.0):
        """Messages as they come (`async for`), fetched `max` at a time;
        answer each with await ack(...) or its own .ack() in the executor."""
        while not self._closed:
            for m in await self.fetch(topic, sub, max, wait):
                yield m

    async def flush(self, timeout=30.0):
        return await self._call("flush", timeout)

    async def close(self):
        """Waits for publishes in flight, then closes."""
        if self._closed:
            return
        await self.flush()
        self._closed = True
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
        if self._timer:
            self._timer.cancel()
        await self._loop.run_in_executor(None, self.client.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False
