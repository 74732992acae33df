# SPDX-License-Identifier: MIT
"""asyncio for Ferry: `await client.publish(...)`, `async for msg in ...`,
push subscriptions and responders with `async def` handlers.

An AsyncClient drives one Client from the event loop: the client's file
descriptor is watched (loop.add_reader) and its timers kept
(next_timeout), so confirms, replies and pushed messages resolve
awaitables and run handlers without a thread. Calls that wait on the
broker by design (fetch with a wait, declare, acks...) run in the loop's
default executor, so the loop never blocks; their answers and the
publishes' confirms are all libferry's, as with the Client. A call in the
executor has the client to itself while it runs (libferry's client is one
thread's at a time): a fetch waiting for messages delays publishes on the
same AsyncClient until it returns.
"""
import asyncio
import collections
import functools
import inspect
import logging
import threading

from .client import KEEP, Client, ReceivedMessage
from .errors import FerryError

_log = logging.getLogger("ferry")
_ACKS_MAX = 10000  # FERRY_FETCH_MAX: most sequences in one ack


def _settle(answer, f):
    if answer.done():
        return
    if f.exception() is not None:
        answer.set_exception(f.exception())
    else:
        answer.set_result(f.result())


class AsyncMessage(ReceivedMessage):
    """A message pushed to an AsyncSubscription: answer it with
    `await msg.ack()`, `await msg.nack(delay=)` or `await msg.term(reason)`
    (the acks of many messages go to the broker together). On a topic's
    live consumer (no subscription name) there is nothing to answer."""

    def __init__(self, received, aclient, acked):  # pylint: disable=super-init-not-called
        self.__dict__.update(received.__dict__)
        self._aclient, self._acked = aclient, acked

    async def ack(self):
        if self._acked:
            await self._aclient._ack(self.topic, self._sub, self.seq)

    async def nack(self, delay=0):
        if self._acked:
            await self._aclient._call("nack", self.topic, self._sub, self.seq, delay)

    async def term(self, reason=""):
        if self._acked:
            await self._aclient._call("term", self.topic, self._sub, self.seq, reason)


class AsyncSubscription:
    """AsyncClient.subscribe's (and serve's) consumer. Without a handler,
    `async for msg in sub` yields AsyncMessages to answer; with one, each
    message runs handler(msg) in a task of its own (an `async def` is
    awaited): returned, the message is acked; raised, it is nacked and comes
    again (logged on the "ferry" logger, counted in `failed`); returned
    ferry.KEEP, the handler answers it. `handled` and `failed` count the
    handler's ends. `await unsubscribe()` stops it; messages taken and not
    acked come back after their ack wait."""

    def __init__(self, aclient, topic, sub, handler, acked):
        self._aclient, self.topic, self.sub = aclient, topic, sub
        self._handler, self._acked = handler, acked
        self._queue = asyncio.Queue()  # bounded by the prefetch: the broker sends no more
        self._tasks = set()
        self.handled = 0
        self.failed = 0
        self._sync = None  # the Client's Subscription, while it runs

    def _on_push(self, received):
        """Called inside a libferry call: on the loop's thread (the pump) or
        an executor's. The message stays pending; the loop answers it."""
        self._aclient._on_loop(self._arrived, AsyncMessage(received, self._aclient, self._acked))
        return KEEP if self._acked else None

    def _arrived(self, msg):
        if self._handler is None:
            self._queue.put_nowait(msg)
            return
        task = self._aclient._loop.create_task(self._run(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, msg):
        try:
            result = self._handler(msg)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            self.failed += 1
            _log.warning("ferry: a handler of %s raised: the message comes again (nack)",
                         self.topic, exc_info=True)
            try:
                await msg.nack()
            except FerryError:  # it comes again anyway, after its ack wait
                _log.warning("ferry: nack of %s #%d failed: it comes again after its ack "
                             "wait", self.topic, msg.seq, exc_info=True)
            return
        self.handled += 1
        if result is not KEEP and self._acked:  # with this turn's others; a failure is logged
            self._aclient._queue_ack(self.topic, self.sub, msg.seq)

    def __aiter__(self):
        return self

    async def __anext__(self):
        msg = await self._queue.get() if self._sync or not self._queue.empty() else None
        if msg is None:  # unsubscribed
            raise StopAsyncIteration
        return msg

    async def unsubscribe(self):
        """Stops delivery, then waits for the handlers' tasks still running."""
        if self._sync is None:
            return
        sync, self._sync = self._sync, None
        await self._aclient._loop.run_in_executor(None, sync.unsubscribe)
        self._queue.put_nowait(None)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


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
        # Publishes and requests waiting for room in the window, in the order
        # awaited: (send, settle, answer, deadline); the pump sends them.
        self._backlog = collections.deque()
        self._thread = threading.get_ident()  # the loop's
        self._closed = False
        self._acks = {}  # (topic, sub) -> [(seq, future or None)]: this turn's acks, sent together
        self._pump_asked = False
        self._arm()

    def _on_loop(self, fn, *args):
        """Runs fn(*args) on the loop: now if this is the loop's thread."""
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

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
        # The client's next timer (at most 0.1 s away): kept unless it must
        # come sooner, so a busy loop does not make a timer per message.
        when = self._loop.time() + min(self.client.next_timeout(), 0.1)
        if self._timer is None or self._timer.when() > when + 0.001:
            if self._timer:
                self._timer.cancel()
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self._pump()

    def _pump_soon(self):
        """One pump in this turn of the loop, however many asked for it."""
        if not self._pump_asked:
            self._pump_asked = True
            self._loop.call_soon(self._pump)

    def _pump(self):
        self._pump_asked = False
        lock = self.client._lock
        if lock.acquire(blocking=False):  # else a call in the executor does the work
            try:
                self.client.poll(0)
            except FerryError:
                pass  # what failed is in the futures; the connection comes back
            finally:
                lock.release()
        if self._backlog and self._drain():
            # Sending may take the descriptor's edge (ZMQ_FD): look again
            # next turn rather than wait for the timer.
            self._pump_soon()
        self._arm()

    def _drain(self):
        """Sends what waits in the backlog while the window has room; what
        waited past the timeout fails with why it could not go. Returns
        whether it sent anything."""
        sent = False
        while self._backlog:
            send, settle, answer, deadline = self._backlog[0]
            if not answer.done():
                try:
                    send(settle)
                except FerryError as e:
                    if e.name in ("EWOULD_BLOCK", "EDISCONNECTED") and \
                            self._loop.time() < deadline:
                        return sent  # no room yet: the next confirm (or the timer) comes back
                    answer.set_exception(e)
                else:
                    sent = True
            self._backlog.popleft()
        return sent

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
        return await self._windowed(
            lambda settle: self.client.publish_async(topic, data, callback=settle, **options))

    async def request(self, topic, data, *, timeout=5.0, headers=None):
        """Sends a request and returns its reply (a Message), NoReplyError
        if none came within `timeout`. Waits on the loop (no thread, the
        client stays free): many may be awaited at once, as publishes."""
        return await self._windowed(lambda settle: self.client.request_async(
            topic, data, timeout=timeout, headers=headers, callback=settle))

    async def _windowed(self, send):
        """send(settle) starts a publish or request whose future calls
        settle(future) when answered; awaits that answer. Started in the
        order awaited, waiting for room in the window (or a reconnect) up
        to the timeout."""
        answer = self._loop.create_future()

        def settle(f):  # on the loop's thread (the pump), or an executor's
            self._on_loop(_settle, answer, f)

        if not self._backlog:  # nobody waits for room: straight out
            try:
                send(settle)
                self._pump_soon()
                return await answer
            except FerryError as e:
                if answer.done() or e.name not in ("EWOULD_BLOCK", "EDISCONNECTED"):
                    raise
        self._backlog.append((send, settle, answer, self._loop.time() + self._timeout))
        self._pump_soon()
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

    async def _ack(self, topic, sub, seq):
        """Acks one message; the acks asked for in one turn of the loop go
        in one call (one commit at the broker), at most 10,000 each."""
        answer = self._loop.create_future()
        self._queue_ack(topic, sub, seq, answer)
        await answer

    def _queue_ack(self, topic, sub, seq, answer=None):
        """Adds seq to this turn's acks; `answer` (a future, or None: a
        failure is logged for the batch) learns the outcome."""
        batch = self._acks.get((topic, sub))
        if batch is None:
            batch = self._acks[(topic, sub)] = []
            self._loop.create_task(self._send_acks(topic, sub))
        batch.append((seq, answer))

    async def _send_acks(self, topic, sub):
        await asyncio.sleep(0)  # the acks of this turn join the batch
        batch = self._acks.pop((topic, sub))
        for i in range(0, len(batch), _ACKS_MAX):
            part = batch[i:i + _ACKS_MAX]
            try:
                await self._call("ack", topic, sub, [seq for seq, _ in part])
                outcome = None
            except Exception as e:  # every ack waiting learns it, whatever it was
                outcome = e
            unanswered = 0
            for _, answer in part:
                if answer is None:
                    unanswered += 1
                elif not answer.done():
                    if outcome:
                        answer.set_exception(outcome)
                    else:
                        answer.set_result(None)
            if outcome and unanswered:
                _log.warning("ferry: ack of %d messages of %s failed (%s): they come again",
                             unanswered, topic, outcome)

    # -- push consumers ----------------------------------------------------

    async def subscribe(self, topic, handler=None, sub=None, *, prefetch=100):
        """Push delivery to the loop: returns an AsyncSubscription, to read
        with `async for msg in ...` (handler None) or running handler(msg)
        for each message - `async def` handlers are awaited, many at once
        (up to the prefetch). sub: a durable subscription of a topic, None
        for a queue, or on a topic for live messages only (nothing to ack).
        The client makes it again after a reconnect."""
        acked = sub is not None or (await self.info(topic)).kind == "queue"
        s = AsyncSubscription(self, topic, sub, handler, acked)
        s._sync = await self._call("subscribe", topic, s._on_push, sub, prefetch=prefetch)
        return s

    async def serve(self, topic, handler, sub=None, *, prefetch=100):
        """Answers requests (request()) on `topic`: handler(request) - an
        `async def` is awaited - returns the reply's data, or (data,
        headers); the reply is published to the requester and confirmed
        before the request is acked; raised, the request is nacked and
        comes again. Returns the AsyncSubscription."""

        async def answer(req):
            result = handler(req)
            if inspect.isawaitable(result):
                result = await result
            data, headers = result if isinstance(result, tuple) else (result, None)
            to, corr = req.headers.get("reply_to"), req.headers.get("correlation_id")
            if to:
                headers = {k: v for k, v in (headers or {}).items() if k != "correlation_id"}
                if corr:
                    headers["correlation_id"] = corr
                await self.publish(to, data, headers=headers)

        return await self.subscribe(topic, answer, sub, prefetch=prefetch)

    # The Client's other blocking calls, awaited the same way (in the executor).
    _IN_EXECUTOR = frozenset(("ping", "stats", "topics", "subs", "sub_info", "seek", "edit",
                              "purge", "sub_delete", "backup", "publish_batch", "cluster",
                              "cluster_add", "cluster_remove", "nack", "term"))

    def __getattr__(self, name):
        if name in AsyncClient._IN_EXECUTOR:
            return functools.partial(self._call, name)
        raise AttributeError(name)

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
