"""The blocking front-end: ``recv()`` and ``for message in ws`` in plain threads, no event loop.

Example::

    from wsfast.sync import connect

    with connect("wss://stream.example.com/ws") as ws:
        ws.send('{"op": "subscribe", "args": ["trades.BTCUSDT"]}')
        for message in ws:  # ends after a normal close; ConnectionClosedError after an abnormal one
            handle(message)

An adapter, nothing more: the connection is a threaded :class:`~wsfast.WebSocketClient` (its event thread
reads the socket, answers PINGs, keeps the connection alive and reconnects, as :mod:`wsfast.lifecycle`
decides), and its message callback feeds the receive queue of :mod:`wsfast.delivery` that
:meth:`WebSocket.recv` reads. The options are the registry's (:mod:`wsfast.options`, client ``"sync"``):
the threaded client's, without its callbacks, plus ``max_queue`` and ``overflow`` as the asyncio client
has them.

Two ways to live with reconnections (``reconnect=True`` or a :class:`~wsfast.ReconnectPolicy`):

* ``with connect(url, reconnect=True) as ws``: one :class:`WebSocket` for every connection, as the asyncio
  client's; ``recv()`` and the iteration return a :class:`~wsfast.Reconnected` marker at each gap.
* ``for ws in connect(url, reconnect=True)``: the websockets way, one :class:`WebSocket` per connection,
  yielded when it opens; its iteration ends with its connection (:class:`~wsfast.ConnectionClosedError`
  after an abnormal end, so catch it and ``continue``), and the loop yields the next connection when the
  reconnect policy has opened it.

The backpressure of the ``"pause"`` policy is the event thread's: with ``max_queue`` messages waiting it
stops in the message callback, so the socket is not read (TCP backpressure, nothing lost, memory bounded)
until ``recv()`` has brought the queue down to a quarter of ``max_queue``.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from . import codec
from ._monitor import Subscriber
from ._typing import BytesLike
from .client import WebSocketClient
from .config import Config, checks_options
from .deflate import Deflate
from .delivery import Delivery, OverflowPolicy
from .events import Usage
from .exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .frames import CloseCode
from .health import (
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    Disconnected,
    Reconnected,
    ReconnectPolicy,
    Stats,
)
from .http11 import Response
from .options import SYNC, THREADED, client_options, get_option

__all__ = ["OverflowPolicy", "WebSocket", "connect"]

DEFAULT_USER_AGENT: str = get_option("user_agent").default  # every default is the registry's
DEFAULT_TIMEOUT: float = get_option("timeout").default
DEFAULT_CLOSE_TIMEOUT: float = get_option("close_timeout").default

WebSocketHook = Callable[["WebSocket"], None]

# The hooks this module puts between the threaded client and the user's: the rest of the options are
# handed to WebSocketClient as they are.
_HOOKS = frozenset({"on_connect", "on_disconnect", "on_idle", "max_queue", "overflow"})
_PASSED = tuple(
    option.name for option in client_options(SYNC) if option.name not in _HOOKS and THREADED in option.clients
)


class connect:
    """Open a WebSocket connection and read it with blocking calls.

    ``with connect(url) as ws``: the connection (closed at the end of the block, 1000, or 1001 after an
    exception); ``ws = connect(url).open()``: the same, closed by you; ``for ws in connect(url,
    reconnect=True)``: each connection in turn, as the reconnect policy opens them (see the module
    docstring). The first connection is not retried, whatever *reconnect* says (as
    :meth:`wsfast.WebSocketClient.connect`): its failure raises.

    Args:
        url: a ``ws://`` or ``wss://`` URL; ``user:password@`` becomes Basic auth.
        max_queue, overflow: messages held for :meth:`WebSocket.recv`, and what happens beyond them
            (``"pause"``: stop reading the socket until the queue drains to a quarter; ``"drop_oldest"``;
            ``"error"``: fail the connection with 1008 and raise after the queued messages).
        reconnect: ``True`` or a :class:`~wsfast.ReconnectPolicy`: reconnect whenever a connection is lost,
            except after :meth:`WebSocket.close`.
        on_connect: ``on_connect(ws)`` after every connection and reconnection, before any of its messages
            (on the event thread): send subscriptions here.

    Every option (timeouts, keepalive, limits, compression, *loads*, proxies, events...) is described once,
    with its default, in :mod:`wsfast.options` (``python -m wsfast options --client sync``, docs/options.md).
    An unknown name raises :class:`~wsfast.OptionError` with a "did you mean".
    """

    @checks_options(SYNC)
    def __init__(
        self,
        url: str,
        *,
        on_ping: Callable[[bytes], None] | None = None,
        on_pong: Callable[[bytes], None] | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        token: str | None = None,
        token_type: str = "Bearer",
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        proxy: str | bool | None = None,
        proxy_ssl: ssl_module.SSLContext | bool | None = None,
        unix_socket: str | os.PathLike[str] | None = None,
        sock: socket.socket | None = None,
        max_message_size: int | None = codec.DEFAULT_MAX_MESSAGE_SIZE,
        max_redirects: int = 5,
        max_queue: int = 1024,
        overflow: OverflowPolicy | str = OverflowPolicy.PAUSE,
        text_as_bytes: bool = False,
        loads: Callable[[bytes], Any] | None = None,
        compression: Deflate | str | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        idle_timeout: float | None = None,
        on_idle: WebSocketHook | None = None,
        reconnect: ReconnectPolicy | bool = False,
        on_connect: WebSocketHook | None = None,
        on_disconnect: Callable[[Disconnected], None] | None = None,
        log: Callable[[str], None] | None = None,
        errlog: Callable[[str], None] | None = None,
        debuglog: Callable[[str], None] | None = None,
        events: Subscriber | None = None,
        warn_slow_operation: float | None = None,
        warn_low_throughput: float | None = None,
        implementation: str | None = None,
    ) -> None:
        # Every option checked against wsfast.options.OPTIONS, derived values computed once.
        self._config = Config.build(SYNC, locals())
        self._ws: WebSocket | None = None

    def open(self) -> WebSocket:
        """Open the connection and return it: one :class:`WebSocket` for this connection and every
        reconnection (a :class:`~wsfast.Reconnected` marker in its stream at each gap). Close it with
        :meth:`WebSocket.close`.

        Raises:
            HandshakeError, ProxyError, InvalidURL, OpeningError, OpenTimeout: as
                :meth:`wsfast.WebSocketClient.connect`; and what *on_connect* raised (the connection was
                failed with 1011).
        """
        return _Driver(self._config, spans=True).open()

    def __enter__(self) -> WebSocket:
        self._ws = self.open()
        return self._ws

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._ws is not None:
            self._ws.close(CloseCode.NORMAL_CLOSURE if exc is None else CloseCode.GOING_AWAY)

    def __iter__(self) -> Iterator[WebSocket]:
        """Each connection in turn, as websockets' ``for ws in connect()``: one :class:`WebSocket` per
        connection, yielded when it is open (its *on_connect* done).

        The next one is yielded when the loop's body is done with the current one: at once if the body
        left it open (it is closed with 1000 and a new one opened, as :meth:`WebSocket.reconnect`), else
        when the reconnect policy has opened the next. The loop ends when no connection follows: after
        :meth:`WebSocket.close`, or without *reconnect* (after the first connection, closed with 1000 if
        the body left it open); leaving it (``break``, an exception) closes the connection (1000).

        Raises:
            ConnectionClosedError: the reconnect policy gave up (``max_attempts``), or ``overflow="error"``
                failed the connection.
            HandshakeError, OpeningError...: the first connection failed (it is not retried).
        """
        driver = _Driver(self._config, spans=False)
        ws: WebSocket | None = driver.open()
        try:
            while ws is not None:
                yield ws
                ws = driver.next_connection(ws)
        finally:
            driver.close(CloseCode.NORMAL_CLOSURE, "")


class _Driver:
    """One threaded client and the :class:`WebSocket` objects that read it: its callbacks (on the event
    thread) feed the current WebSocket's queue and say when a connection opens and ends."""

    def __init__(self, config: Config, *, spans: bool) -> None:
        self.config = config
        self.spans = spans  # one WebSocket for every connection (else one per connection)
        self.lock = threading.Lock()  # guards every queue of this driver, and the fields below
        self.changed = threading.Condition(self.lock)  # a new connection, or the end: next_connection()
        self.connections = 0
        self.finished = False  # the event thread ended: no connection follows
        self.stopping = False  # close() was called (or the "error" policy failed the connection)
        self.dropped = 0  # by "drop_oldest", over every connection
        self.event_thread: threading.Thread | None = None
        self._on_connect: WebSocketHook | None = config["on_connect"]
        self._on_disconnect: Callable[[Disconnected], None] | None = config["on_disconnect"]
        self._on_idle: WebSocketHook | None = config["on_idle"]
        options = {name: config[name] for name in _PASSED}
        self.client = WebSocketClient(
            self.receive,
            config.url_text,
            on_connect=self.connected,
            on_disconnect=self.disconnected,
            on_close=self.ended,
            on_idle=self.idle if self._on_idle is not None else None,
            **options,
        )
        self.ws = WebSocket(self)

    def open(self) -> WebSocket:
        """Connect; the first WebSocket (*on_connect* ran already, on the event thread)."""
        try:
            self.client.connect()
        except BaseException:
            self.close(CloseCode.GOING_AWAY, "")
            raise
        return self.ws

    # The threaded client's callbacks, on its event thread

    def receive(self, message: Any) -> None:
        """Queue *message* for the current WebSocket (the threaded client's message callback).

        The hot path takes no lock: ``deque.append`` is atomic, and the lock is needed only to wake a
        reader that announced its wait (:attr:`WebSocket._wake`, set before its last look at the queue,
        so no wake-up is lost) or to apply the overflow policy once ``max_queue`` messages wait."""
        ws = self.ws
        queue = ws._queue
        queue.append(message)
        if ws._wake or len(queue) >= ws._max_queue:
            self._wake_or_overflow(ws)

    def _wake_or_overflow(self, ws: WebSocket) -> None:
        with self.lock:
            if ws._wake:
                ws._wake = False  # one notify per wait: the messages behind this one need none
                ws._readable.notify()
            if len(ws._queue) >= ws._max_queue:
                self._overflow(ws)

    def _overflow(self, ws: WebSocket) -> None:
        """The queue of *ws* holds ``max_queue`` messages or more: what :class:`OverflowPolicy` says.
        The caller holds the lock."""
        delivery, queue = ws._delivery, ws._queue
        policy = delivery.overflow
        if policy is OverflowPolicy.PAUSE:
            if self.stopping:
                # Closing: reading goes on so that the server's CLOSE is seen (close_timeout bounds it);
                # what comes beyond max_queue meanwhile is not kept.
                _trim(queue, delivery.max_queue, queue.pop)
                return
            # Stop here, on the event thread: the socket is not read until the reader has brought the
            # queue down to the low-water mark (TCP backpressure). The condition is checked under the lock
            # the reader notifies under: no lost wake-up.
            delivery.paused = True
            while len(queue) > delivery.low_water and not self.stopping and not ws._ended:
                ws._room.wait()
            delivery.paused = False
        elif policy is OverflowPolicy.DROP_OLDEST:
            dropped = _trim(queue, delivery.max_queue, queue.popleft)
            delivery.dropped += dropped
            self.dropped += dropped
        elif len(queue) > delivery.max_queue:
            # "error": the messages queued before the overflow stay readable, the error comes after them.
            _trim(queue, delivery.max_queue, queue.pop)
            if delivery.error is None:
                reason = f"receive queue overflow (max_queue={delivery.max_queue})"
                delivery.error = ConnectionClosedError(CloseCode.POLICY_VIOLATION, reason)
                self.stopping = True  # fatal: no reconnection
                # RFC 6455 §7.4.1: 1008, "a message that violates its policy". From the event thread,
                # disconnect() sends the CLOSE and returns; the thread finishes the handshake.
                self.client.disconnect(CloseCode.POLICY_VIOLATION, reason)

    def connected(self, client: WebSocketClient) -> None:
        """A connection opened, before any of its messages: a new WebSocket (one per connection), or a
        :class:`~wsfast.Reconnected` marker in the one WebSocket's queue; then the user's *on_connect*."""
        with self.lock:
            self.event_thread = threading.current_thread()
            self.connections += 1
            ws = self.ws
            if self.connections > 1:
                if self.spans:
                    marker = client.reconnected
                    ws._delivery.opened(marker)
                    if marker is not None:
                        ws._readable.notify()
                else:
                    self.ws = ws = WebSocket(self)
            ws._connected(client)
            self.changed.notify_all()
        if self._on_connect is not None:
            self._on_connect(ws)  # if it raises, the threaded client fails the connection (1011)

    def disconnected(self, info: Disconnected) -> None:
        """A connection was lost: with one WebSocket per connection, its stream ends here."""
        if not self.spans:
            with self.lock:
                self.ws._end(self.client.close_exception)
        if self._on_disconnect is not None:
            self._on_disconnect(info)

    def ended(self, code: int, reason: str) -> None:
        """The event thread ends: no connection follows. Wakes every reader and :meth:`next_connection`."""
        with self.lock:
            self.finished = True
            self.ws._end(self.client.close_exception)
            self.changed.notify_all()

    def idle(self, client: WebSocketClient) -> None:
        if self._on_idle is not None:
            self._on_idle(self.ws)

    # Called by the application's threads

    def on_event_thread(self) -> bool:
        return threading.current_thread() is self.event_thread

    def close(self, code: int, reason: str) -> None:
        """Close the connection and end reconnecting; wake the event thread if the "pause" policy holds it,
        so that it reads the server's CLOSE."""
        with self.lock:
            self.stopping = True
            self.ws._room.notify()
        self.client.disconnect(code, reason)

    def next_connection(self, ws: WebSocket) -> WebSocket | None:
        """The connection after *ws* (one WebSocket per connection): reconnect now if *ws* is still open,
        else wait for the reconnect policy; ``None`` when none follows.

        Raises:
            ConnectionClosedError: the policy gave up, or the "error" overflow policy failed the connection.
        """
        with self.lock:
            current = self.ws is ws and not ws._ended and not self.finished
        if current:
            if self.config.reconnect is None:  # one connection only: the loop ends with it
                self.close(CloseCode.NORMAL_CLOSURE, "")
                return None
            self.client.reconnect()  # closes it (1000) and opens the next at once
        with self.lock:
            while self.ws is ws and not self.finished:
                self.changed.wait()
            if self.ws is not ws:
                return self.ws
            error = ws._delivery.error
            if error is not None:
                raise error
            if self.stopping or self.config.reconnect is None:
                return None
            exception = self.client.close_exception
            raise exception if exception is not None else ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE)


class WebSocket:
    """An open WebSocket connection, read with blocking calls. Create it with :class:`connect`.

    Thread-safe: :meth:`send`, :meth:`ping` and :meth:`close` may be called from any thread, while one
    thread reads with :meth:`recv` or ``for message in ws`` (a second reader waiting at the same time
    raises :class:`~wsfast.ConcurrencyError`). :meth:`close` from another thread wakes a waiting
    :meth:`recv`.
    """

    def __init__(self, driver: _Driver) -> None:
        self._driver = driver
        self._client = driver.client
        self._delivery = delivery = Delivery(
            driver.config["max_queue"],
            driver.config["overflow"],
            pause_reading=_nothing,  # the event thread waits in _Driver._overflow
            resume_reading=self._resume_reading,
        )
        self._queue = delivery.queue  # kept for the hot paths
        self._max_queue = delivery.max_queue
        self._reader = delivery.reader  # one reader waits at a time
        self._readable = threading.Condition(driver.lock)  # a message, or the end (the reader waits)
        self._room = threading.Condition(driver.lock)  # the queue drained (the event thread waits)
        self._wake = False  # a reader waits for the next message: the event thread notifies it
        self._ended = False  # no message will come: the connection (or the last one) ended
        self._exception: ConnectionClosed | None = None  # how it ended
        self.response: Response | None = None
        """The handshake response of the connection (the current one, with one WebSocket for all)."""
        self.subprotocol: str | None = None
        """The subprotocol the server chose (RFC 6455 §4.2.2), or ``None``."""
        self.connection_id = -1
        """This connection's number in the process-wide sequence shared with the other clients."""

    def _connected(self, client: WebSocketClient) -> None:
        self.response, self.subprotocol = client.response, client.subprotocol
        self.connection_id = client.connection_id

    def _end(self, exception: ConnectionClosed | None) -> None:
        """No more messages: wake the reader (and the event thread, should it wait for room). Lock held."""
        if not self._ended:
            self._ended = True
            self._exception = exception or ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE)
        self._readable.notify_all()
        self._room.notify_all()

    def _resume_reading(self) -> None:
        self._room.notify()

    # Properties

    @property
    def url(self) -> str:
        """The URL, without its password: safe to log or show."""
        return self._client.url

    @property
    def open(self) -> bool:
        """Whether messages can be sent and received on this connection."""
        return not self._ended and self._driver.ws is self and self._client.is_open

    @property
    def close_code(self) -> int | None:
        """How the connection ended (the server's code, ours if we failed it, 1006 without a CLOSE frame:
        RFC 6455 §7.1.5), or ``None`` while open."""
        if self._exception is not None:
            return self._exception.code
        return self._client.close_code if self._driver.spans else None

    @property
    def close_reason(self) -> str | None:
        """The reason of :attr:`close_code`, or ``None`` while open."""
        if self._exception is not None:
            return self._exception.reason
        return self._client.close_reason if self._driver.spans else None

    @property
    def close_exception(self) -> ConnectionClosed | None:
        """The :class:`~wsfast.ConnectionClosed` describing how the connection ended (a
        :class:`~wsfast.KeepaliveTimeout` after a missed PONG, why reconnecting gave up...), or ``None``."""
        return self._exception

    @property
    def reconnected(self) -> Reconnected | None:
        """How the last reconnection went, or ``None`` before the first one."""
        return self._client.reconnected

    @property
    def is_reconnecting(self) -> bool:
        """Whether the connection was lost and a new one is being waited for or opened."""
        return self._client.is_reconnecting

    @property
    def latency(self) -> float | None:
        """The round-trip time of the last PING answered (keepalive or :meth:`ping`), in seconds."""
        return self._client.stats().last_rtt

    @property
    def dropped(self) -> int:
        """Messages dropped by the ``"drop_oldest"`` overflow policy, over every connection."""
        return self._driver.dropped

    def stats(self) -> Stats:
        """Counters over every connection (messages, bytes, frames, pings, round-trip time, reconnects,
        drops, queue depth...), read without stopping anything."""
        stats = self._client.stats()
        return dataclasses.replace(stats, dropped=self._driver.dropped, queue_depth=len(self._queue))

    def subscribe(self, subscriber: Subscriber, *, data: bool = False) -> None:
        """Deliver the socket events (:mod:`wsfast.events`) to *subscriber*, from now on (see
        :meth:`wsfast.WebSocketClient.subscribe`)."""
        self._client.subscribe(subscriber, data=data)

    def unsubscribe(self, subscriber: Subscriber) -> bool:
        """Stop delivering events to *subscriber*; ``False`` if it was not subscribed."""
        return self._client.unsubscribe(subscriber)

    def usage(self) -> Usage:
        """Bytes and seconds spent sending and receiving while observed (see :mod:`wsfast.events`)."""
        return self._client.usage()

    # Receiving

    def recv(self, timeout: float | None = None) -> Any:
        """The next message: ``str`` (TEXT), ``bytes`` (BINARY), what *loads* returned, or a
        :class:`~wsfast.Reconnected` marker at the gap of a reconnection (one WebSocket for every
        connection). Messages queued before the connection ended are returned first.

        Raises:
            ConnectionClosedOK: the connection closed normally (1000, 1001; RFC 6455 §7.4.1) and every
                message was read.
            ConnectionClosedError: it closed abnormally (code, reason); ``overflow="error"`` failed it
                (1008, after the messages queued before the overflow); reconnecting gave up.
            TimeoutError: no message within *timeout* seconds; read on.
            ConcurrencyError: another thread's ``recv()`` (or iteration) is waiting: one reader at a time.
        """
        queue = self._queue
        # The fast path: a message is ready. No lock, no condition: deque.popleft() is atomic, and only
        # the event thread appends. A queue that the "pause" policy holds full is woken under the lock.
        if queue:
            try:
                message = queue.popleft()
            except IndexError:  # another thread took it
                return self._wait(timeout)
            delivery = self._delivery
            if delivery.paused and len(queue) <= delivery.low_water:
                with self._driver.lock:
                    self._room.notify()
            return message
        return self._wait(timeout)

    def _wait(self, timeout: float | None) -> Any:
        """:meth:`recv` when no message is ready: wait for one, or for the end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delivery = self._delivery
        queue = self._queue
        with self._driver.lock:
            while True:
                if queue:
                    try:
                        message = queue.popleft()
                    except IndexError:  # another thread's recv() took it
                        continue
                    if delivery.paused and len(queue) <= delivery.low_water:
                        self._room.notify()
                    return message
                if delivery.error is not None:
                    raise delivery.error
                if self._ended:
                    assert self._exception is not None
                    raise self._exception
                if self._driver.on_event_thread():
                    raise ConcurrencyError(
                        "recv() called from a callback (on_connect, on_ping...) would wait for the event "
                        "thread, this one, to read the next message: read from another thread"
                    )
                with self._reader:  # ConcurrencyError while another reader waits
                    # Announce the wait, then look at the queue once more: the event thread appends
                    # without the lock, and takes it to notify only when it sees _wake.
                    self._wake = True
                    try:
                        if not queue:
                            if deadline is None:
                                self._readable.wait()
                            else:
                                remaining = deadline - time.monotonic()
                                if remaining <= 0:
                                    raise TimeoutError(f"no message within {timeout} s")
                                self._readable.wait(remaining)
                    finally:
                        self._wake = False

    def __iter__(self) -> Iterator[Any]:
        """``for message in ws``: the messages, as :meth:`recv` returns them (same errors); ends after a
        normal close. A generator: resuming one costs less than a call of :meth:`__next__` per message."""
        queue = self._queue
        popleft = queue.popleft
        delivery = self._delivery
        while True:
            if queue:  # recv()'s fast path, inline
                try:
                    message = popleft()
                except IndexError:  # another thread's recv() took it
                    continue
                if delivery.paused and len(queue) <= delivery.low_water:
                    with self._driver.lock:
                        self._room.notify()
                yield message
                continue
            try:
                message = self._wait(None)
            except ConnectionClosedOK:
                return
            yield message

    def __next__(self) -> Any:
        """The next message, as :meth:`recv` (same errors); the iteration ends after a normal close."""
        queue = self._queue
        if queue:  # recv()'s fast path, inline: a call less per message
            try:
                message = queue.popleft()
            except IndexError:
                pass
            else:
                delivery = self._delivery
                if delivery.paused and len(queue) <= delivery.low_water:
                    with self._driver.lock:
                        self._room.notify()
                return message
        try:
            return self._wait(None)
        except ConnectionClosedOK:
            raise StopIteration from None

    # Sending

    def _check_current(self) -> None:
        """One WebSocket per connection: refuse to send on a connection that ended (its client has a
        newer one)."""
        if self._ended:
            assert self._exception is not None
            raise self._exception

    def send(self, data: str | BytesLike) -> None:
        """Send a message: ``str`` as TEXT, any bytes-like object as BINARY (RFC 6455 §5.6). Thread-safe.

        Raises:
            ConnectionClosed: the connection is not open.
        """
        if self._ended:
            self._check_current()
        self._client.send(data)

    def send_frame(self, data: str | BytesLike, opcode: int, fin: bool = True) -> None:
        """Send one raw frame, e.g. to fragment a message by hand (RFC 6455 §5.4). Thread-safe.

        Raises:
            ValueError: reserved opcode, fragmented or oversized control frame, or CLOSE (use close()).
            ConnectionClosed: the connection is not open.
        """
        self._check_current()
        self._client.send_frame(data, opcode, fin)

    def ping(self, payload: str | BytesLike | None = None, *, timeout: float | None = None) -> float:
        """Send a PING and wait for its PONG; return the round-trip time in seconds. Thread-safe.

        *payload* (at most 125 bytes) defaults to 4 random bytes; a PONG answers its PING and every
        earlier one (RFC 6455 §5.5.3).

        Raises:
            ValueError: a PING with this payload already waits, or it is over 125 bytes.
            ConnectionClosed: the connection is not open, or it ended before the PONG.
            TimeoutError: no PONG within *timeout* seconds (the connection stays open).
            ConcurrencyError: called from a callback (on the event thread, which reads the PONG).
        """
        self._check_current()
        return self._client.ping(payload, timeout=timeout)

    def pong(self, payload: str | BytesLike = b"") -> None:
        """Send a PONG: the answer to a PING from *on_ping*, or a unidirectional keep-alive (RFC 6455
        §5.5.3)."""
        self._check_current()
        self._client.pong(payload)

    # Closing

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with a closing handshake (RFC 6455 §7.1.2), waiting up to *close_timeout* for it; this
        also ends reconnecting. A :meth:`recv` waiting in another thread wakes: it returns the messages
        still queued, then raises :class:`~wsfast.ConnectionClosedOK` (the iteration ends).

        Raises:
            ValueError: *code* may not be sent (RFC 6455 §7.4) or *reason* is over 123 bytes.
        """
        self._driver.close(code, reason)

    def reconnect(
        self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "", timeout: float | None = None
    ) -> None:
        """Close the current connection (closing handshake with *code*) and open a new one at once,
        whatever *reconnect* says; waits up to *timeout* seconds (``None``: no limit) for it to open
        (unless called from a callback). With one WebSocket for every connection, its stream gets a
        :class:`~wsfast.Reconnected` marker as for any reconnection.

        Raises:
            ConnectionClosed: :meth:`close` was called, or reconnecting gave up.
        """
        driver = self._driver
        with driver.lock:
            if driver.stopping or driver.finished:
                raise self._exception or ConnectionClosedOK(CloseCode.NORMAL_CLOSURE, "closed")
            count = driver.connections
        self._client.reconnect(code, reason)
        if driver.on_event_thread():
            return
        with driver.lock:
            if not driver.changed.wait_for(lambda: driver.connections > count or driver.finished, timeout):
                raise TimeoutError(f"no new connection within {timeout} s")
            if driver.connections == count:
                raise driver.ws._exception or ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed for good (with *reconnect*: until no connection follows);
        ``False`` on timeout."""
        with self._driver.lock:
            return self._driver.changed.wait_for(lambda: self._driver.finished, timeout)

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(CloseCode.NORMAL_CLOSURE if exc is None else CloseCode.GOING_AWAY)

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        return f"<wsfast.sync.WebSocket {self.url} {state} id={self.connection_id}>"


def _trim(queue: collections.deque[Any], limit: int, remove: Callable[[], Any]) -> int:
    """Remove messages with *remove* (the newest or the oldest) until *queue* holds *limit*; how many went.
    The reader pops concurrently, without the lock: it may empty the queue between a look and a removal."""
    removed = 0
    while len(queue) > limit:
        try:
            remove()
        except IndexError:
            break
        removed += 1
    return removed


def _nothing() -> None:
    """Delivery's *pause_reading*: the event thread stops by itself, in :meth:`_Driver._overflow`."""
