# SPDX-License-Identifier: MIT
"""The Client: libferry's calls in Python's shape (docs/python.md).

Times are in seconds (floats); payloads are bytes (a str is sent as UTF-8).
A Client belongs to one thread at a time: calls are serialized by a lock,
and callbacks (publish_async's) run inside calls on the same client, so
they must not call the client themselves.
"""
import logging
import os
import threading
from ctypes import POINTER, byref, c_bool, c_int, c_size_t, c_uint64, c_void_p, cast

from . import _native as N
from .errors import FerryError, InvalidError, error_for


_log = logging.getLogger("ferry")

#: A push handler returns KEEP to answer the message later itself (msg.ack()).
KEEP = object()


def _b(s):
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if isinstance(s, str):
        return s.encode()
    raise TypeError(f"expected str or bytes, not {type(s).__name__}")


def _ms(seconds):
    return 0 if seconds is None else int(round(seconds * 1000))


class Confirm:
    """A stored publish: its sequence, whether it was a duplicate (its id
    seen within the dedupe window), and its version within its key."""
    __slots__ = ("seq", "duplicate", "key_version")

    def __init__(self, seq, duplicate, key_version):
        self.seq, self.duplicate, self.key_version = seq, duplicate, key_version

    def __repr__(self):
        return (f"Confirm(seq={self.seq}, duplicate={self.duplicate}, "
                f"key_version={self.key_version})")


class PublishFuture:
    """The outcome of publish_async (its Confirm) or request_async (the
    reply, a Message): result() returns it or raises why it failed. Waiting
    in result() or exception() takes the client's answers itself (no flush
    needed, no other thread); done() and add_done_callback(fn) do not
    wait."""
    __slots__ = ("_client", "_done", "_result", "_exc", "_callbacks")

    def __init__(self, client):
        self._client = client
        self._done = False
        self._result = self._exc = None
        self._callbacks = None

    def done(self):
        return self._done

    def _wait(self, timeout):
        if self._done:
            return
        import time
        end = None if timeout is None else time.monotonic() + timeout
        while not self._done:
            left = 1.0 if end is None else end - time.monotonic()
            if left <= 0:
                raise TimeoutError("ferry: not answered yet")
            self._client.poll(min(left, 0.1))

    def result(self, timeout=None):
        self._wait(timeout)
        if self._exc is not None:
            raise self._exc
        return self._result

    def exception(self, timeout=None):
        self._wait(timeout)
        return self._exc

    def add_done_callback(self, fn):
        """fn(future) once it is answered (at once if it is)."""
        if self._done:
            fn(self)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def _set(self, result, exc):
        self._result, self._exc, self._done = result, exc, True
        for fn in self._callbacks or ():
            fn(self)
        self._callbacks = None


class TopicInfo:
    """What the broker knows about a topic or queue (`created`: declare made it)."""

    def __init__(self, info, created=False):
        self.name = info.name.decode()
        self.kind = "queue" if info.kind == N.KIND_QUEUE else "topic"
        for f in ("first_seq", "last_seq", "messages", "bytes", "max_msgs", "max_bytes",
                  "discard_new", "interest"):
            setattr(self, f, getattr(info, f))
        self.dedupe_window = info.dedupe_window_ms / 1000.0
        self.max_age = info.max_age_ms / 1000.0
        self.created_ms = info.created_ms
        self.created = created

    def __repr__(self):
        return f"TopicInfo(name={self.name!r}, kind={self.kind!r}, messages={self.messages})"


class ClusterStatus:
    """Where a cluster stands, from its leader (Client.cluster): leader_id
    (0: a single ferryd), term, commit_index, applied_index, last_index,
    elections, snapshots, and nodes: the voters (and nodes being added),
    each a ClusterNode with id, address, match_index, lag, up, voter."""

    def __init__(self, c):
        for f in ("leader_id", "term", "commit_index", "applied_index", "last_index",
                  "elections", "snapshots"):
            setattr(self, f, getattr(c, f))
        self.nodes = [ClusterNode(c.nodes[i]) for i in range(min(c.nnodes, len(c.nodes)))]

    def __repr__(self):
        return (f"ClusterStatus(leader_id={self.leader_id}, term={self.term}, "
                f"nodes={self.nodes!r})")


class ClusterNode:
    """A node of ClusterStatus.nodes, as the leader sees it."""

    def __init__(self, n):
        self.id, self.address = n.id, n.address.decode()
        self.match_index, self.lag, self.up, self.voter = n.match_index, n.lag, n.up, n.voter

    def __repr__(self):
        return f"ClusterNode(id={self.id}, address={self.address!r}, up={self.up})"


class Message:
    """A stored message, copied out of libferry: `data` (bytes), `text` (str),
    `seq`, `timestamp_ms`, `key`, `id`, `key_version`, `headers` (dict),
    `delivery_count` (fetched messages: 1 on the first delivery)."""

    def __init__(self, m):
        self.topic = m.topic.decode() if m.topic else None
        self.seq = m.seq
        self.timestamp_ms = m.timestamp_ms
        self.delivery_count = m.delivery_count
        self.key_version = m.key_version
        self.key = m.key.decode() if m.key else None
        self.id = m.id.decode() if m.id else None
        self.headers = {m.headers[i].name.decode(): m.headers[i].value.decode()
                        for i in range(m.header_count)}
        self.data = bytes(cast(m.data, POINTER(N.c_char * m.len)).contents) if m.len else b""

    @property
    def text(self):
        return self.data.decode()

    def __repr__(self):
        return f"Message(topic={self.topic!r}, seq={self.seq}, key={self.key!r}, data={self.data!r})"


class ReceivedMessage(Message):
    """A fetched message: `ack()`, `nack(delay=)`, `term(reason)` answer it."""

    def __init__(self, m, client, sub):
        super().__init__(m)
        self._client, self._sub = client, sub

    def ack(self):
        self._client.ack(self.topic, self._sub, [self.seq])

    def nack(self, delay=0):
        self._client.nack(self.topic, self._sub, self.seq, delay=delay)

    def term(self, reason=""):
        self._client.term(self.topic, self._sub, self.seq, reason)


class Subscription:
    """A push consumer (Client.subscribe): `handled` and `failed` count the
    handler's calls; unsubscribe() stops it."""

    def __init__(self, client, topic, sub, handler):
        self._client, self.topic, self.sub, self._handler = client, topic, sub, handler
        self.consumer = 0
        self.handled = 0
        self.failed = 0
        self._c_fn = N.MSG_FN(self._on_message)

    def _on_message(self, _client, m_p, _user):
        # A ctypes callback: nothing may escape it.
        try:
            msg = ReceivedMessage(m_p.contents, self._client, self.sub)
            result = self._handler(msg)
            self.handled += 1
            return N.MSG_KEEP if result is KEEP else N.MSG_ACK
        except Exception:
            self.failed += 1
            _log.warning("ferry: a handler of %s raised: the message comes again (nack)",
                         self.topic, exc_info=True)
            return N.MSG_NACK

    def unsubscribe(self):
        """Stops delivery; messages kept unacked come back after their ack wait."""
        c = self._client
        with c._lock:
            st = N.client_unsubscribe(c._handle(), self.consumer)
            if st:
                c._raise(st)
        c._subs.pop(self.consumer, None)


class Responder(Subscription):
    """Client.serve's consumer: handler(request) returns the reply."""

    def __init__(self, client, topic, sub, handler):
        super().__init__(client, topic, sub, handler)
        self._keep = None  # the last reply's buffers: libferry reads them after we return
        self._c_fn = N.SERVE_FN(self._on_request)

    def _on_request(self, _client, req_p, reply_p, _user):
        try:
            req = ReceivedMessage(req_p.contents, self._client, self.sub)
            result = self._handler(req)
            data, headers = result if isinstance(result, tuple) else (result, None)
            keep = []
            m = Client._message(data, None, None, headers, None, None, None, keep)
            reply = reply_p.contents
            reply.data, reply.len = m.data, m.len
            reply.headers, reply.header_count = m.headers, m.header_count
            self._keep = keep
            self.handled += 1
            return N.MSG_ACK
        except Exception:
            self.failed += 1
            _log.warning("ferry: a responder of %s raised: the request comes again (nack)",
                         self.topic, exc_info=True)
            return N.MSG_NACK


class Client:
    """A connection to ferryd (or a cluster: several servers).

    server: "host:port", a ZeroMQ endpoint, or a list of them; None: the
    library's default ($FERRY_SERVER, else 127.0.0.1:5555). timeout: each
    call's limit in seconds; window: async publishes in flight. CURVE and
    users: server_key (z85 or "@FILE"), client_key (a secret key file) or
    user and password; libferry also reads $FERRY_SERVER_KEY,
    $FERRY_CLIENT_KEY, $FERRY_USER and $FERRY_PASSWORD.
    """

    def __init__(self, server=None, *, timeout=5.0, window=1000, name=None, server_key=None,
                 client_key=None, user=None, password=None, retry_connect=False,
                 block_on_full=True):
        self._lock = threading.RLock()
        self._pending = {}
        self._subs = {}  # consumer id -> Subscription (its C callback must live)
        self._next_token = 1
        self._on_confirm_c = N.CONFIRM_FN(self._on_confirm)
        self._on_reply_c = N.REPLY_FN(self._on_reply)
        self._c = c_void_p()
        o = c_void_p(N.options_new())
        if not o:
            raise MemoryError("ferry: out of memory")
        try:
            if server is None:
                server = os.environ.get("FERRY_SERVER") or None  # else libferry's default
            servers = [server] if isinstance(server, (str, bytes)) else list(server or [])
            for i, s in enumerate(servers):
                setter = N.options_set_server if i == 0 else N.options_add_server
                self._check_opt(setter(o, _b(s)), f"server {s!r}")
            self._check_opt(N.options_set_timeout_ms(o, _ms(timeout)), "timeout")
            self._check_opt(N.options_set_window(o, window), "window")
            if name:
                self._check_opt(N.options_set_name(o, _b(name)), "name")
            if server_key:
                self._check_opt(N.options_set_server_key(o, _b(server_key)), "server_key")
            if client_key:
                self._check_opt(N.options_set_client_key(o, _b(client_key)), "client_key")
            if user or password:
                self._check_opt(N.options_set_credentials(o, _b(user), _b(password)),
                                "user/password")
            if retry_connect:
                self._check_opt(N.options_set_retry_connect(o, True), "retry_connect")
            if not block_on_full:
                self._check_opt(N.options_set_block_on_full(o, False), "block_on_full")
            st = N.client_new(o, byref(self._c))
            if st:
                raise error_for(st, "cannot connect to the broker")
        finally:
            N.options_destroy(byref(o))

    @staticmethod
    def _check_opt(st, what):
        if st:
            raise InvalidError(st, f"invalid {what}")

    # -- plumbing ---------------------------------------------------------

    def _handle(self):
        if not self._c:
            raise FerryError(18, "the client is closed")
        return self._c

    def _raise(self, st, **extra):
        detail = N.client_last_error(self._c) if self._c else None
        raise error_for(st, detail.decode() if detail else "", **extra)

    def close(self):
        """Waits (up to the timeout) for async publishes in flight, then closes."""
        with self._lock:
            if self._c:
                N.client_flush(self._c, 5000)
                N.client_destroy(byref(self._c))
                self._c = c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if self._c:
                N.client_destroy(byref(self._c))
        except Exception:
            pass

    def fileno(self):
        """A file descriptor that becomes readable when the client may have
        work (edge-triggered): wait on it (select, asyncio), then call
        poll(0); it changes after a reconnect, so ask again after each poll.
        ConnectError while there is no connection (wait next_timeout())."""
        fd = c_int(-1)
        with self._lock:
            st = N.client_fd(self._handle(), byref(fd))
        if st:
            self._raise(st)
        return fd.value

    def next_timeout(self):
        """Seconds an event loop may wait before calling poll(0) again."""
        with self._lock:
            return max(N.client_next_timeout_ms(self._handle()), 0) / 1000.0

    # -- admin ------------------------------------------------------------

    def ping(self):
        with self._lock:
            st = N.client_ping(self._handle())
        if st:
            self._raise(st)

    def declare(self, name, kind="topic", *, dedupe_window=None, max_msgs=0, max_bytes=0,
                max_age=None, discard_new=False, interest=False):
        """Makes a topic or queue if it does not exist. Returns its TopicInfo
        (`created` says whether this call made it)."""
        if kind not in ("topic", "queue"):
            raise ValueError("kind is 'topic' or 'queue'")
        cfg = N.TopicConfig(_ms(dedupe_window), max_msgs, max_bytes, _ms(max_age), discard_new,
                            interest)
        info, created = N.TopicInfo(), c_bool(False)
        with self._lock:
            st = N.client_declare(self._handle(), N.KIND_QUEUE if kind == "queue" else N.KIND_TOPIC,
                                  _b(name), byref(cfg), byref(info), byref(created))
            if st:
                self._raise(st)
        return TopicInfo(info, created.value)

    def delete(self, name):
        with self._lock:
            st = N.client_delete(self._handle(), _b(name))
            if st:
                self._raise(st)

    def info(self, name):
        info = N.TopicInfo()
        with self._lock:
            st = N.client_info(self._handle(), _b(name), byref(info))
            if st:
                self._raise(st)
        return TopicInfo(info)

    def stats(self):
        """The broker's counters, as a dict."""
        s = N.Stats()
        with self._lock:
            st = N.client_stats(self._handle(), byref(s))
            if st:
                self._raise(st)
        return {f: getattr(s, f) for f, _ in N.Stats._fields_}

    def _paged(self, struct, call, convert):
        """Every item of a listing the broker gives 1000 at a time after a
        name: call(after, page, n, more) fills a page; convert maps one."""
        out, page = [], (struct * 1000)()
        after, more = b"", True
        while more:
            n, m = c_size_t(0), c_bool(False)
            with self._lock:
                st = call(after, page, byref(n), byref(m))
                if st:
                    self._raise(st)
            out += [convert(page[i]) for i in range(n.value)]
            more = m.value and n.value > 0
            if n.value:
                after = page[n.value - 1].name
        return out

    def topics(self):
        """Every topic and queue (TopicInfo), in name order."""
        return self._paged(
            N.TopicInfo, lambda after, page, n, m: N.client_topics(self._handle(), after, page,
                                                                  1000, n, m), TopicInfo)

    def subs(self, topic):
        """The subscriptions of `topic`, as dicts (name, filter, owner,
        cursor, ack_floor, last_seq, waiting, ack_wait, max_deliver,
        consumers), in name order."""
        def convert(s):
            return {"name": s.name.decode(), "filter": s.filter.decode(),
                    "owner": s.owner.decode(), "cursor": s.cursor, "ack_floor": s.ack_floor,
                    "last_seq": s.last_seq, "waiting": max(s.last_seq + 1 - s.cursor, 0),
                    "ack_wait": s.ack_wait_ms / 1000.0, "max_deliver": s.max_deliver,
                    "consumers": s.consumers}
        return self._paged(
            N.SubListing, lambda after, page, n, m: N.client_subs(self._handle(), _b(topic),
                                                                 after, page, 1000, n, m),
            convert)

    def edit(self, name, *, dedupe_window=None, max_msgs=None, max_bytes=None, max_age=None,
             discard_new=None):
        """Changes the settings given (the rest stay); returns the TopicInfo.
        Lower limits drop the oldest messages over them (discard old)."""
        e = N.TopicEdit()
        for value, bit, field, conv in (
                (dedupe_window, N.EDIT_DEDUPE_WINDOW, "dedupe_window_ms", _ms),
                (max_msgs, N.EDIT_MAX_MSGS, "max_msgs", int),
                (max_bytes, N.EDIT_MAX_BYTES, "max_bytes", int),
                (max_age, N.EDIT_MAX_AGE, "max_age_ms", _ms),
                (discard_new, N.EDIT_DISCARD, "discard_new", bool)):
            if value is not None:
                e.set |= bit
                setattr(e, field, conv(value))
        info = N.TopicInfo()
        with self._lock:
            st = N.client_edit(self._handle(), _b(name), byref(e), byref(info))
            if st:
                self._raise(st)
        return TopicInfo(info)

    def purge(self, name, *, keep=0, below_seq=0):
        """Removes messages: all, all but the newest `keep`, or those below
        `below_seq`. Returns how many went."""
        removed = c_uint64(0)
        with self._lock:
            st = N.client_purge(self._handle(), _b(name), keep, below_seq, byref(removed))
            if st:
                self._raise(st)
        return removed.value

    @staticmethod
    def _sub_info(i):
        return {"cursor": i.cursor, "ack_floor": i.ack_floor, "last_seq": i.last_seq,
                "waiting": max(i.last_seq + 1 - i.cursor, 0), "ack_wait": i.ack_wait_ms / 1000.0,
                "max_deliver": i.max_deliver}

    def sub_info(self, topic, sub=None):
        """Where a subscription stands (a dict, as subs())."""
        i = N.SubInfo()
        with self._lock:
            st = N.client_sub_info(self._handle(), _b(topic), _b(sub), byref(i))
            if st:
                self._raise(st)
        return self._sub_info(i)

    def seek(self, topic, sub, *, seq=0, time_ms=0):
        """Moves a subscription: the next message it gets is `seq` (or the
        first stored at or after `time_ms`); before it counts as acked."""
        i = N.SubInfo()
        with self._lock:
            st = N.client_sub_seek(self._handle(), _b(topic), _b(sub), seq, time_ms, byref(i))
            if st:
                self._raise(st)
        return self._sub_info(i)

    def sub_delete(self, topic, sub):
        with self._lock:
            st = N.client_sub_delete(self._handle(), _b(topic), _b(sub))
            if st:
                self._raise(st)

    def cluster(self):
        """Where the cluster stands, from its leader (a ClusterStatus);
        against a single ferryd leader_id is 0 and nodes is empty."""
        out = N.Cluster()
        with self._lock:
            st = N.client_cluster(self._handle(), byref(out))
            if st:
                self._raise(st)
        return ClusterStatus(out)

    def cluster_add(self, node_id, address):
        """Adds node `node_id`, started with `ferryd --cluster-id ID --join
        HOST:PORT`, listening for its peers at `address` (HOST:PORT); returns
        once the leader committed the change. InvalidError: an id or address
        in use, another change under way, a single ferryd."""
        with self._lock:
            st = N.client_cluster_add(self._handle(), node_id, _b(address))
            if st:
                self._raise(st)

    def cluster_remove(self, node_id):
        """Removes node `node_id` (not the leader: stop it first); stop the
        node afterwards."""
        with self._lock:
            st = N.client_cluster_remove(self._handle(), node_id)
            if st:
                self._raise(st)

    def backup(self, directory):
        """The broker copies its store into the new directory (an absolute
        path on its host): docs/operations.md, Backups."""
        with self._lock:
            st = N.client_backup(self._handle(), _b(directory))
            if st:
                self._raise(st)

    # -- publishing -------------------------------------------------------

    @staticmethod
    def _message(data, key, id, headers, expect_version, expect_last_seq, delay, keep):
        data = _b(data) if data is not None else b""
        if not isinstance(data, bytes):
            data = bytes(data)
        m = N.Message()
        keep.append(data)
        m.data = cast(N.c_char_p(data), c_void_p) if data else None
        m.len = len(data)
        m.key, m.id = _b(key), _b(id)
        if headers:
            arr = (N.Header * len(headers))(*[N.Header(_b(k), _b(v)) for k, v in headers.items()])
            keep.append(arr)
            m.headers, m.header_count = arr, len(headers)
        if expect_version is not None:
            m.expect |= N.EXPECT_KEY_VERSION
            m.expect_key_version = expect_version
        if expect_last_seq is not None:
            m.expect |= N.EXPECT_LAST_SEQ
            m.expect_last_seq = expect_last_seq
        m.delay_ms = _ms(delay)
        return m

    def publish(self, topic, data, *, key=None, id=None, headers=None, expect_version=None,
                expect_last_seq=None, delay=None):
        """Publishes one message and waits until the broker has it on disk.

        id: the broker's dedupe window answers a resend as a duplicate.
        expect_version / expect_last_seq: store only if the key's version /
        the topic's last sequence is still this (else ConflictError with the
        current ones). delay: deliver to subscriptions this many seconds later.
        """
        keep = []
        m = self._message(data, key, id, headers, expect_version, expect_last_seq, delay, keep)
        cf = N.Confirm()
        with self._lock:
            st = N.client_publish(self._handle(), _b(topic), byref(m), byref(cf))
            if st:
                self._raise(st, **self._conflict(st, cf))
        return Confirm(cf.seq, cf.duplicate, cf.key_version)

    def publish_batch(self, topic, messages):
        """Publishes up to 1,000 messages to `topic` in one request and waits
        until the broker has them on disk: all stored in order (or answered
        as duplicates of their ids), or none. Each item is the data (bytes
        or str), or a dict of publish()'s options with "data". Returns a
        Confirm per message."""
        items = [m if isinstance(m, dict) else {"data": m} for m in messages]
        if not 1 <= len(items) <= N.BATCH_MAX:
            raise ValueError(f"ferry: a batch holds 1 to {N.BATCH_MAX} messages, not {len(items)}")
        keep = []
        arr = (N.Message * len(items))()
        for i, it in enumerate(items):
            arr[i] = self._message(it["data"], it.get("key"), it.get("id"), it.get("headers"),
                                   it.get("expect_version"), it.get("expect_last_seq"),
                                   it.get("delay"), keep)
        cfs = (N.Confirm * len(items))()
        with self._lock:
            st = N.client_publish_batch(self._handle(), _b(topic), arr, len(items), cfs)
            if st:
                self._raise(st)
        return [Confirm(cf.seq, cf.duplicate, cf.key_version) for cf in cfs]

    @staticmethod
    def _conflict(st, cf):
        if N.errname(st) == b"ECONFLICT":
            return {"current_seq": cf.seq, "current_version": cf.key_version}
        return {}

    def _on_confirm(self, _client, cf_p, user):
        # A ctypes callback: nothing may escape it.
        try:
            fut, cb = self._pending.pop(user or 0, (None, None))
            cf = cf_p.contents
            if cf.status:
                detail = N.client_last_error(self._c) or b""
                exc = error_for(cf.status, detail.decode(), **self._conflict(cf.status, cf))
                fut._set(None, exc)
            else:
                fut._set(Confirm(cf.seq, cf.duplicate, cf.key_version), None)
            if cb:
                cb(fut)
        except Exception as e:  # pragma: no cover - reported, never lost silently
            import sys
            print(f"ferry: a publish_async callback raised {e!r}", file=sys.stderr)

    def _track(self, callback, send):
        """A PublishFuture for what send(token) starts, answered by its
        callback through self._pending."""
        fut = PublishFuture(self)
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._pending[token] = (fut, callback)
            st = send(c_void_p(token))
            if st:
                self._pending.pop(token, None)
                self._raise(st)
        return fut

    def _on_reply(self, _client, status, reply_p, user):
        # A ctypes callback: nothing may escape it.
        try:
            fut, cb = self._pending.pop(user or 0, (None, None))
            if status:
                detail = N.client_last_error(self._c) or b""
                fut._set(None, error_for(status, detail.decode()))
            else:
                fut._set(Message(reply_p.contents), None)
            if cb:
                cb(fut)
        except Exception as e:  # pragma: no cover - reported, never lost silently
            import sys
            print(f"ferry: a request_async callback raised {e!r}", file=sys.stderr)

    def request_async(self, topic, data, *, timeout=5.0, headers=None, callback=None):
        """Sends a request without waiting; returns a PublishFuture resolved
        with the reply (a Message) or NoReplyError inside a later call on
        this client, as publish_async's (callback(future) too)."""
        keep = []
        m = self._message(data, None, None, headers, None, None, None, keep)
        return self._track(callback, lambda token: N.client_request_async(
            self._handle(), _b(topic), byref(m), _ms(timeout), self._on_reply_c, token))

    def publish_async(self, topic, data, *, callback=None, **options):
        """Sends a publish without waiting; returns a PublishFuture resolved
        (with its Confirm, or the exception) inside a later call on this
        client: poll(), flush(), another publish, or its own result().
        callback(future) is called then too (it must not call the client).
        When the window is full, first waits for a slot (up to the timeout)."""
        keep = []
        m = self._message(data, options.get("key"), options.get("id"), options.get("headers"),
                          options.get("expect_version"), options.get("expect_last_seq"),
                          options.get("delay"), keep)
        return self._track(callback, lambda token: N.client_publish_async(
            self._handle(), _b(topic), byref(m), self._on_confirm_c, token))

    def poll(self, timeout=0):
        """Takes what the broker answered (up to `timeout` seconds of waiting)."""
        with self._lock:
            st = N.client_poll(self._handle(), _ms(timeout))
            if st:
                self._raise(st)

    def flush(self, timeout=None):
        """Waits until every async publish is answered (default: the client's timeout x 6)."""
        with self._lock:
            st = N.client_flush(self._handle(), _ms(timeout) if timeout is not None else 30000)
            if st:
                self._raise(st)

    @property
    def in_flight(self):
        """Async publishes sent and not answered yet."""
        with self._lock:
            return N.client_in_flight(self._handle())

    # -- reading and consuming ---------------------------------------------

    def get(self, topic, from_seq=1, limit=100):
        """Stored messages of `topic` from sequence `from_seq` on (a list)."""
        msgs, n = POINTER(N.StoredMessage)(), c_size_t(0)
        with self._lock:
            st = N.client_get(self._handle(), _b(topic), from_seq, limit, byref(msgs), byref(n))
            if st:
                self._raise(st)
            return [Message(msgs[i]) for i in range(n.value)]

    def read(self, topic, key, from_version=1, page=100):
        """Iterates the messages of `key` in `topic`, oldest first: an
        aggregate's events."""
        it = c_void_p()
        with self._lock:
            st = N.client_read_key(self._handle(), _b(topic), _b(key), from_version, page,
                                   byref(it))
            if st:
                self._raise(st)
        try:
            while True:
                m = POINTER(N.StoredMessage)()
                with self._lock:
                    st = N.key_iter_next(it, byref(m))
                    if st:
                        self._raise(st)
                    if not m:
                        return
                    msg = Message(m.contents)
                yield msg
        finally:
            N.key_iter_destroy(byref(it))

    def subscribe_durable(self, topic, sub, *, start="first", start_seq=0, ack_wait=None,
                          max_deliver=0, filter=None):
        """Makes (or finds) the durable subscription `sub` of `topic`;
        returns True if this call made it."""
        cfg = N.SubConfig(_b(start), start_seq, 0, _ms(ack_wait), max_deliver, _b(filter))
        created = c_bool(False)
        with self._lock:
            st = N.client_sub_declare(self._handle(), _b(topic), _b(sub), byref(cfg),
                                      byref(created))
            if st:
                self._raise(st)
        return created.value

    def fetch(self, topic, sub=None, max=10, wait=1.0):
        """Up to `max` messages for subscription `sub` of `topic` (a queue:
        sub None), waiting up to `wait` seconds for the first. Answer each with
        .ack(), .nack(delay=) or .term(reason)."""
        msgs, n = POINTER(N.StoredMessage)(), c_size_t(0)
        with self._lock:
            st = N.client_fetch(self._handle(), _b(topic), _b(sub), max, _ms(wait), byref(msgs),
                                byref(n))
            if st:
                self._raise(st)
            return [ReceivedMessage(msgs[i], self, sub) for i in range(n.value)]

    def ack(self, topic, sub, seqs):
        seqs = list(seqs)
        arr = (c_uint64 * len(seqs))(*seqs)
        with self._lock:
            st = N.client_ack(self._handle(), _b(topic), _b(sub), arr, len(seqs))
            if st:
                self._raise(st)

    def nack(self, topic, sub, seq, delay=0):
        with self._lock:
            st = N.client_nack(self._handle(), _b(topic), _b(sub), seq, _ms(delay))
            if st:
                self._raise(st)

    def term(self, topic, sub, seq, reason=""):
        with self._lock:
            st = N.client_term(self._handle(), _b(topic), _b(sub), seq, _b(reason))
            if st:
                self._raise(st)

    def consume(self, topic, sub=None, handler=None, *, max=100, wait=1.0, count=None):
        """Fetches and calls handler(message) for each: returned normally, the
        message is acked; raised, it is nacked (it comes again) and the
        exception goes on to the caller. Stops after `count` messages, or when
        a fetch waited `wait` seconds for nothing. Returns how many were acked."""
        done = 0
        while count is None or done < count:
            batch = self.fetch(topic, sub, min(max, count - done) if count else max, wait)
            if not batch:
                return done
            for i, m in enumerate(batch):
                try:
                    handler(m)
                except BaseException:
                    for rest in batch[i:]:
                        rest.nack()
                    raise
                m.ack()
                done += 1
        return done

    def subscribe(self, topic, handler, sub=None, *, prefetch=100):
        """Push delivery: handler(msg) is called for each message inside
        calls on this client (poll(), run(), any other); returned, the message
        is acked; raised, it is nacked and comes again (logged on the
        "ferry" logger, counted in Subscription.failed); returned ferry.KEEP,
        it stays pending until msg.ack(). sub: a durable subscription of a
        topic, None for a queue, or on a topic for live messages only (no
        acks). The handler must not call this client. Returns the
        Subscription; the client makes it again after a reconnect."""
        return self._consumer(Subscription(self, topic, sub, handler), N.client_subscribe,
                              prefetch)

    def _consumer(self, s, start, prefetch):
        """Starts push consumer `s` through `start` (client_subscribe or
        client_serve) and keeps it, with its C callback, until it ends."""
        consumer = c_uint64(0)
        with self._lock:
            st = start(self._handle(), _b(s.topic), _b(s.sub), prefetch, s._c_fn, None,
                       byref(consumer))
            if st:
                self._raise(st)
            s.consumer = consumer.value
            self._subs[s.consumer] = s
        return s

    def serve(self, topic, handler, sub=None, *, prefetch=100):
        """Answers requests (Client.request) on `topic`: handler(request)
        returns the reply's data (bytes or str), or (data, headers); it is
        published to the requester before the request is acked. Raised: the
        request is nacked and comes again. Runs inside calls on this client,
        like subscribe(). Returns the Responder."""
        return self._consumer(Responder(self, topic, sub, handler), N.client_serve, prefetch)

    def run(self, seconds):
        """Delivers pushed messages and confirms for `seconds`."""
        import time
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.poll(min(left, 0.1))

    def request(self, topic, data, *, timeout=5.0, headers=None):
        """Sends a request and waits for its reply (a Message); NoReplyError if none."""
        keep = []
        m = self._message(data, None, None, headers, None, None, None, keep)
        reply = POINTER(N.StoredMessage)()
        with self._lock:
            st = N.client_request(self._handle(), _b(topic), byref(m), _ms(timeout), byref(reply))
            if st:
                self._raise(st)
            return Message(reply.contents)
