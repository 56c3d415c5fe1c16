"""The asyncio client.

A thin I/O layer: :class:`_Connection` is an :class:`asyncio.BufferedProtocol` that hands the transport's
reusable receive buffer straight to :class:`~wsfast.protocol.ClientProtocol`, which makes every protocol
decision. Messages go to an inline ``on_message`` callback (no queue, no task per message, as picows
listeners) or to a bounded queue read by :meth:`WebSocket.recv` and ``async for``.

Example::

    async with wsfast.connect("wss://stream.example.com/ws") as ws:
        await ws.send('{"op": "subscribe", "args": ["trades.BTCUSDT"]}')
        async for message in ws:
            handle(message)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import inspect
import logging
import os
import socket
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .. import codec
from ..__version__ import __version__
from .._monitor import Monitor, Observable, Subscriber, next_connection_id
from .._opening_io import Reporter, tls_contexts
from .._typing import BytesLike
from ..deflate import Deflate
from ..exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    IdleTimeout,
    InvalidURL,
    KeepaliveTimeout,
    MessageDecodeError,
    OpeningError,
)
from ..frames import Close, CloseCode, Ping, Pong
from ..handshake import Accepted, to_deflate
from ..health import (
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    PROTOCOL_COUNTERS,
    Beat,
    Disconnected,
    Heartbeat,
    Reconnected,
    ReconnectPolicy,
    Stats,
    to_reconnect_policy,
)
from ..http11 import Response
from ..opening import Opening
from ..options import ASYNCIO, authorization, normalise_headers, validate_arguments
from ..protocol import ClientProtocol, State
from ..uri import WebSocketURL, parse_url
from ._opening import open_transport

__all__ = ["OverflowPolicy", "WebSocket", "connect"]

logger = logging.getLogger("wsfast")

DEFAULT_USER_AGENT = f"wsfast/{__version__}"
RECEIVE_BUFFER_SIZE = 256 * 1024


class OverflowPolicy(str, enum.Enum):
    """What happens when messages arrive faster than the application reads them (``max_queue``)."""

    PAUSE = "pause"  # stop reading from the socket (TCP backpressure) until the queue drains to 1/4
    DROP_OLDEST = "drop_oldest"  # keep the newest max_queue messages, count the dropped ones
    ERROR = "error"  # fail the connection (1008) and raise from recv()


# Queued behind the messages that preceded a protocol error: reaching it fails the connection.
_FAILURE = object()

# uvloop runs due timers before it polls the socket: a keepalive verdict reached by a timer that fired
# late (the loop was busy) waits this long, so that what already arrived is read first.
_LATE_TIMER = 0.05

WebSocketHook = Callable[["WebSocket"], "Awaitable[None] | None"]

_monotonic = time.monotonic


async def _logged(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("exception in %s", name)


class _Phase(enum.Enum):
    HANDSHAKE = 1  # opening: TCP, TLS, the proxy's exchange, the upgrade
    OPEN = 2
    ENDED = 3  # replaced or closed: callbacks from its transport are ignored


_PHASE_OPEN = _Phase.OPEN  # read on every socket read: a global, not an enum attribute (~70 ns on 3.11)


class _Connection(asyncio.BufferedProtocol):
    """The asyncio protocol: moves bytes between the transport and the sans-I/O core."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._buffer = bytearray(RECEIVE_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self.transport: asyncio.Transport | None = None
        self.phase = _Phase.HANDSHAKE
        self.pending = bytearray()  # bytes read before the WebSocket connection is open
        self.waiter: asyncio.Future[None] | None = None  # woken when pending grows or the peer leaves
        self.lost = asyncio.get_running_loop().create_future()
        self.eof = False
        self.events: Monitor | None = ws._events
        self.closed_reported = False

    # Transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.events is not None:
            self.events.data_read(self._view[:nbytes])
        if self.phase is _PHASE_OPEN:
            self._ws._receive(self._view[:nbytes])
        else:
            self.pending += self._view[:nbytes]
            self._wake()

    def eof_received(self) -> bool | None:
        if self.phase is _Phase.OPEN:
            self.report_closed()  # returning None closes the transport
        self.eof = True
        self._wake()
        self.end()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.phase is _Phase.OPEN:
            self.report_closed()  # before, the code opening the connection reports it in order
        self.eof = True
        self._wake()
        self.end()
        if not self.lost.done():
            self.lost.set_result(None)

    def end(self) -> None:
        """The open WebSocket connection on this transport ended (once)."""
        if self.phase is _Phase.OPEN:
            self.phase = _Phase.ENDED
            self._ws._connection_ended(self)

    def pause_writing(self) -> None:
        self._ws._pause_writing()

    def resume_writing(self) -> None:
        self._ws._resume_writing()

    def report_closed(self) -> None:
        """Tell the event subscribers, once, that the socket is closed."""
        if self.events is not None and not self.closed_reported:
            self.closed_reported = True
            self.events.closed()

    # Before the connection is open

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> bytes:
        """The bytes received so far and not read yet, waiting for some; ``b""`` once the peer closed."""
        while not self.pending and not self.eof:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        data, self.pending = bytes(self.pending), bytearray()
        return data


class connect:
    """Open a WebSocket connection: ``ws = await connect(url)`` or ``async with connect(url) as ws``.

    Args:
        url: a ``ws://`` or ``wss://`` URL; ``user:password@`` becomes Basic auth.
        on_message: called inline with each message, from the protocol's data path (no queue, no task):
            the lowest latency. Without it, read messages with :meth:`WebSocket.recv` or ``async for``.
        on_ping: ``on_ping(payload)`` replaces the automatic PONG; answer with :meth:`WebSocket.pong`.
        on_pong: ``on_pong(payload)`` for each PONG received.
        headers, token, token_type, subprotocols, origin, user_agent: the handshake, as for
            :class:`wsfast.WebSocketClient`.
        ssl: an :class:`ssl.SSLContext`, or ``False`` to skip certificate verification (wss only).
        server_hostname: the TLS server name when it differs from the host.
        proxy, proxy_ssl, unix_socket, sock: how to reach the server, as for :class:`wsfast.WebSocketClient`:
            a proxy URL (http, https, socks4, socks4a, socks5, socks5h) or ``True`` (from the environment),
            the TLS context of an ``https://`` proxy, a Unix socket path, a connected socket (wsfast owns it
            from then on; a reconnection cannot use it).
        open_timeout: seconds for TCP, TLS, the proxy, the handshake and redirects together (default 10);
            :class:`~wsfast.OpenTimeout` on expiry.
        close_timeout: seconds :meth:`WebSocket.close` waits for the closing handshake (default 10).
        max_message_size: the largest message accepted (default 64 MiB; ``None``: no limit).
        max_redirects: how many 3xx answers are followed (default 5).
        max_queue: messages held for :meth:`WebSocket.recv` before *overflow* applies (default 1024).
        overflow: an :class:`OverflowPolicy` (``"pause"`` by default: TCP backpressure, nothing lost).
        text_as_bytes: deliver TEXT messages as validated UTF-8 ``bytes`` instead of ``str``.
        loads: a callable applied to each TEXT message's validated bytes (``orjson.loads``, a msgspec
            decoder), so JSON never round-trips through ``str``.
        compression: ``"deflate"`` (or a :class:`wsfast.Deflate`) offers permessage-deflate (RFC 7692);
            off by default, as it costs CPU on every message and pays only on compressible feeds.
        ping_interval, ping_timeout: keepalive, as for :class:`wsfast.WebSocketClient` (20 s each by
            default): a PING every *ping_interval*; no frame at all within *ping_timeout* of it fails the
            connection with 1011, and waiting :meth:`WebSocket.recv` calls raise
            :class:`~wsfast.KeepaliveTimeout`.
        idle_timeout, on_idle: the data-idle watchdog: after *idle_timeout* seconds without a data
            message, ``on_idle(ws)`` runs (it may be a coroutine function), or without it the connection is
            closed (1001, :class:`~wsfast.IdleTimeout`) and *reconnect* applies.
        reconnect: ``True`` or a :class:`~wsfast.ReconnectPolicy` reconnects whenever a connection is
            lost, except after :meth:`WebSocket.close`. The same :class:`WebSocket` object serves every
            connection; :meth:`WebSocket.recv` and ``async for`` wait through the gap and then return a
            :class:`~wsfast.Reconnected` marker before the new connection's messages, so a consumer can
            resynchronise. Off by default.
        on_connect: ``on_connect(ws)`` (or a coroutine function) after every successful connection and
            reconnection, before it is handed over: send subscriptions here. An error in it fails the
            first :func:`connect`; after a reconnection it closes that connection (1011).
        on_disconnect: ``on_disconnect(info)`` with a :class:`~wsfast.Disconnected` each time a
            connection is lost.
        events: a subscriber for socket events (:mod:`wsfast.events`): an :class:`asyncio.Queue`, a
            :class:`queue.Queue` or a callable; see also :meth:`WebSocket.subscribe`.
        warn_slow_operation, warn_low_throughput: thresholds (seconds; bytes per second) above/below
            which :class:`~wsfast.events.SlowOperation` / :class:`~wsfast.events.LowThroughput` events
            are sent to the subscribers.

    Every option is described in :mod:`wsfast.options`, which validates them.
    """

    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[Any], Any] | None = None,
        on_ping: Callable[[bytes], Any] | None = None,
        on_pong: Callable[[bytes], Any] | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        token: str | None = None,
        token_type: str = "Bearer",
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        proxy: str | bool | None = None,
        proxy_ssl: ssl_module.SSLContext | bool | None = None,
        unix_socket: str | None = None,
        sock: socket.socket | None = None,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 10.0,
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
        on_disconnect: Callable[[Disconnected], Any] | None = None,
        events: Subscriber | None = None,
        warn_slow_operation: float | None = None,
        warn_low_throughput: float | None = None,
    ) -> None:
        validate_arguments(ASYNCIO, locals())  # every option against wsfast.options.OPTIONS
        self._url = parse_url(url)
        self._compression = to_deflate(compression)
        Heartbeat(ping_interval, ping_timeout, idle_timeout, now=0.0)  # validates the three
        self._options = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            idle_timeout=idle_timeout,
            on_idle=on_idle,
            reconnect=to_reconnect_policy(reconnect),
            on_connect=on_connect,
            on_disconnect=on_disconnect,
            on_message=on_message,
            on_ping=on_ping,
            on_pong=on_pong,
            close_timeout=close_timeout,
            max_message_size=max_message_size,
            max_queue=max_queue,
            overflow=OverflowPolicy(overflow),
            text_as_bytes=text_as_bytes,
            loads=loads,
        )
        self._headers = normalise_headers(headers)
        self._authorization = authorization(token, token_type)
        self._subprotocols = list(subprotocols)
        self._origin = origin
        self._user_agent = user_agent
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._proxy = proxy
        self._proxy_ssl = proxy_ssl
        self._unix_socket = unix_socket
        self._sock = sock
        self._sock_used = sock is not None
        self._open_timeout = open_timeout
        self._max_redirects = max_redirects
        self._ws: WebSocket | None = None
        self._events = Monitor.create(events, warn_slow_operation, warn_low_throughput)

    def __await__(self) -> Generator[Any, None, WebSocket]:
        return self._open().__await__()

    async def __aenter__(self) -> WebSocket:
        self._ws = await self._open()
        return self._ws

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._ws is not None:
            await self._ws.close(CloseCode.NORMAL_CLOSURE if exc is None else CloseCode.GOING_AWAY)

    async def _open(self) -> WebSocket:
        ws = WebSocket(self._url, connector=self, **self._options)  # type: ignore[arg-type]
        connection, accepted, url = await self._establish(ws)
        ws._open(connection, accepted, url)
        try:
            await ws._run_on_connect()
        except BaseException:
            ws._abort()
            raise
        return ws

    async def _establish(self, ws: WebSocket) -> tuple[_Connection, Accepted, WebSocketURL]:
        """A new open connection for *ws*: every decision is :class:`~wsfast.opening.Opening`'s, executed with
        transports by :func:`~wsfast.asyncio._opening.open_transport` within *open_timeout*."""
        connection_id = next_connection_id()
        events = self._events
        if events is not None:
            events.connection_id = connection_id
        ws.connection_id, ws._events = connection_id, events
        if self._sock is None and self._sock_used:
            raise OpeningError(
                "the socket given with sock= served the first connection and cannot be reconnected; "
                "give a URL (or unix_socket=) that wsfast can connect to again"
            )
        reporter = Reporter(events)
        opening = Opening(
            self._url,
            tls_context=tls_contexts(self._ssl, self._proxy_ssl),
            headers=self._headers,
            subprotocols=self._subprotocols,
            origin=self._origin,
            user_agent=self._user_agent,
            authorization=self._authorization,
            compression=self._compression,
            proxy=self._proxy,
            environ=os.environ,
            unix_socket=self._unix_socket,
            sock_given=self._sock is not None,
            max_redirects=self._max_redirects,
            server_hostname=self._server_hostname,
            report=reporter,
        )
        given, self._sock = self._sock, None  # a socket given with sock= serves one connection
        connection, accepted, url = await open_transport(
            opening, reporter, lambda: _Connection(ws), open_timeout=self._open_timeout, sock=given
        )
        if url != self._url:
            logger.info("redirected from %s to %s", self._url, url)
        return connection, accepted, url


class WebSocket(Observable):
    """An open WebSocket connection (asyncio). Create it with :func:`wsfast.connect`.

    Its methods must be called from the event loop that opened it.
    """

    def __init__(
        self,
        url: WebSocketURL,
        *,
        connector: connect,
        on_message: Callable[[Any], Any] | None,
        on_ping: Callable[[bytes], Any] | None,
        on_pong: Callable[[bytes], Any] | None,
        close_timeout: float | None,
        max_message_size: int | None,
        max_queue: int,
        overflow: OverflowPolicy,
        text_as_bytes: bool,
        loads: Callable[[bytes], Any] | None,
        ping_interval: float | None,
        ping_timeout: float | None,
        idle_timeout: float | None,
        on_idle: WebSocketHook | None,
        reconnect: ReconnectPolicy | None,
        on_connect: WebSocketHook | None,
        on_disconnect: Callable[[Disconnected], Any] | None,
    ) -> None:
        self.url = url
        self._connector = connector
        self._on_message = on_message
        self._on_ping = on_ping
        self._on_pong = on_pong
        self._close_timeout = close_timeout
        self._max_queue = max_queue
        self._low_water = max(max_queue // 4, 1) if max_queue > 1 else 0
        self._overflow = overflow
        self._text_as_bytes = text_as_bytes
        self._loads = loads
        self._max_message_size = max_message_size
        self._core = ClientProtocol(
            max_message_size=max_message_size,
            auto_pong=on_ping is None,
            text_as_bytes=text_as_bytes,
            loads=loads,
        )
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._idle_timeout = idle_timeout
        self._on_idle = on_idle
        self._reconnect = reconnect
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._heartbeat: Heartbeat | None = None
        self._beat_timer: asyncio.TimerHandle | None = None
        self._beat_due = 0.0
        self._last_received_at = 0.0
        self._last_message_at = 0.0
        self._stopping = False  # close() was called: no reconnection
        self._reconnect_requested = False  # reconnect() was called
        self._gave_up: ConnectionClosedError | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._failures = 0  # consecutive reconnections that did not last (ReconnectPolicy.stable_after)
        self._opened_at = 0.0
        self._totals = dict.fromkeys(PROTOCOL_COUNTERS, 0)
        self._connections = 0
        self._reconnects = 0
        self._connected_at: float | None = None
        self._loop = asyncio.get_running_loop()
        self._connection: _Connection | None = None
        self._queue: collections.deque[Any] = collections.deque()
        self._recv_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._replies_paused_reading = False  # reading paused until the server reads our replies
        self._drain_waiter: asyncio.Future[None] | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._closed = self._loop.create_future()  # the end of the last connection: no more to come
        self._connection_closed = self._loop.create_future()  # the end of the current connection
        self._close_timer: asyncio.TimerHandle | None = None
        self._overflow_error: ConnectionClosedError | None = None
        self._failure_queued = False
        self._failure_timer: asyncio.TimerHandle | None = None
        self.dropped = 0
        """Messages dropped by the ``drop_oldest`` overflow policy."""
        self.response: Response | None = None
        """The handshake response (status and headers)."""
        self.subprotocol: str | None = None
        self.latency: float | None = None
        """The round-trip time of the last PING answered, in seconds."""
        self.reconnected: Reconnected | None = None
        """How the last reconnection went, or ``None`` before the first one."""
        self.connection_id = -1
        """This connection's number in the process-wide sequence shared with the threaded client."""
        self._events: Monitor | None = None

    def _monitor_connection_id(self) -> int:
        return self.connection_id

    def _set_events(self, events: Monitor | None) -> None:
        self._events = events
        if self._connection is not None:
            self._connection.events = events

    # Opening

    def _open(self, connection: _Connection, accepted: Accepted, url: WebSocketURL) -> None:
        """Make *connection* (handshake done) the current one: a new protocol core, new timers."""
        self._core = ClientProtocol(
            max_message_size=self._max_message_size,
            auto_pong=self._on_ping is None,
            text_as_bytes=self._text_as_bytes,
            loads=self._loads,
            compression=accepted.compression,
        )
        self._connection = connection
        self._connection_closed = self._loop.create_future()
        self._close_timer = None
        self._failure_queued = False
        self._failure_timer = None
        self._writing_paused = False
        self._reading_paused = False
        self._replies_paused_reading = False
        self.url = url
        self.response = accepted.response
        self.subprotocol = accepted.subprotocol
        self._connections += 1
        self._connected_at = time.time()
        now = self._opened_at = time.monotonic()
        self._last_received_at = now
        self._heartbeat = heartbeat = Heartbeat(
            self._ping_interval, self._ping_timeout, self._idle_timeout, now=now
        )
        if heartbeat.deadline is not None:
            self._schedule_beat(heartbeat.deadline)
        connection.phase = _Phase.OPEN
        leftover = accepted.leftover + bytes(connection.pending)  # in arrival order
        connection.pending.clear()
        if leftover:
            self._receive(memoryview(leftover))
        if connection.eof:
            connection.end()
        if connection.lost.done():  # the server closed TCP before the connection opened
            connection.report_closed()

    async def _run_on_connect(self) -> None:
        """Run *on_connect* for the connection just opened (awaiting it if it is a coroutine)."""
        if self._on_connect is not None:
            result = self._on_connect(self)
            if inspect.isawaitable(result):
                await result

    # Properties

    @property
    def state(self) -> State:
        return self._core.state

    @property
    def open(self) -> bool:
        return self._core.state is State.OPEN

    @property
    def close_code(self) -> int | None:
        """How the connection ended (the server's code, ours if we failed it, 1006), or None if open."""
        return self._core.close_code if self._core.state is State.CLOSED else None

    @property
    def close_reason(self) -> str | None:
        return self._core.close_reason if self._core.state is State.CLOSED else None

    # The receive path (called by _Connection)

    def _receive(self, data: BytesLike) -> None:
        core = self._core
        self._last_received_at = now = _monotonic()
        events = core.receive_data(data, defer_failure=True)
        if not core.last_had_control:
            # Data messages only: no reply to send, no state change, no failure (those come with control
            # frames or protocol errors). The common case, kept short.
            if events:
                self._last_message_at = now
                on_message = self._on_message
                if on_message is not None:
                    # The inline fast path: one call per message, straight from the data path.
                    for message in events:
                        try:
                            on_message(message)
                        except Exception:
                            logger.exception("exception in on_message")
                else:
                    self._queue.extend(events)
                    self._queue_grew()
            return
        reply = core.data_to_send()
        if reply:
            self._write(reply)
            if self._writing_paused and not self._replies_paused_reading:
                # The server does not read our replies (PONGs): stop reading what asks for more of them
                # until it does, as the threaded client's event thread blocks in sendall. Otherwise a
                # PING flood grows the write buffer without bound.
                self._replies_paused_reading = True
                if self._connection is not None and self._connection.transport is not None:
                    self._connection.transport.pause_reading()
        if events:
            self._dispatch(events)
        if core.failure_pending:
            # Frames are processed strictly in order: the messages before the bad frame are handled
            # first, so the application can still answer them. An inline callback already has; with a
            # queue, the failure waits behind the queued messages (bounded by close_timeout).
            if self._on_message is not None or not self._queue:
                self._fail_now()
                return
            if not self._failure_queued:
                self._failure_queued = True
                self._queue.append(_FAILURE)
                if self._connection is not None and self._connection.transport is not None:
                    self._connection.transport.pause_reading()
                if self._close_timeout is not None:
                    self._failure_timer = self._loop.call_later(self._close_timeout, self._fail_now)
                self._wake_receiver()
            return
        if core.state is not State.OPEN:
            self._closing()

    def _fail_now(self) -> None:
        """Fail the connection for the protocol error found earlier (RFC 6455 §7.1.7)."""
        if self._failure_timer is not None:
            self._failure_timer.cancel()
            self._failure_timer = None
        core = self._core
        core.finish_receive()
        reply = core.data_to_send()
        if reply:
            self._write(reply)
        if self._failure_queued and self._connection is not None and self._connection.transport is not None:
            # Reading paused while the failure waited in the queue; the server's TCP close must be seen.
            self._reading_paused = False
            self._connection.transport.resume_reading()
        self._closing()

    def _closing(self) -> None:
        """The connection left OPEN: fail it, or bound the wait for the server to close TCP."""
        core = self._core
        transport = self._connection.transport if self._connection is not None else None
        if core.failed and transport is not None and not transport.is_closing():
            # RFC 6455 §7.1.7: after the failing CLOSE, stop sending at once. A half-close (not a full
            # close, which turns into a RST while the server still streams and can destroy our CLOSE
            # before it is read) lets the server see the close code; then it closes TCP.
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if (core.failed or core.handshake_complete) and self._close_timer is None:
            # RFC 6455 §7.1.1: the server closes TCP first; if it does not in time, we do.
            self._close_timer = self._loop.call_later(self._close_timeout or 0, self._abort)
        self._wake_receiver()

    def _dispatch(self, events: list[Any]) -> None:
        on_message = self._on_message
        queue = self._queue
        # PONGs are accounted before any callback runs, so a slow callback cannot skew the round trip.
        for event in events:
            kind = type(event)
            if kind is Pong:
                self._pong_received(event.payload)
            elif kind is not Ping and kind is not Close:
                self._last_message_at = self._last_received_at
        for event in events:
            kind = type(event)
            if kind is Ping:
                if self._on_ping is not None:
                    self._call(self._on_ping, event.payload)
            elif kind is Pong:
                if self._on_pong is not None:
                    self._call(self._on_pong, event.payload)
            elif kind is Close:
                pass
            elif kind is MessageDecodeError and on_message is not None:
                logger.error("skipping a text message that loads() rejected: %s", event)
            elif on_message is not None:
                self._call(on_message, event)
            else:
                queue.append(event)
        if on_message is None and queue:
            self._queue_grew()

    def _queue_grew(self) -> None:
        queue = self._queue
        if len(queue) >= self._max_queue:
            if self._overflow is OverflowPolicy.PAUSE:
                # Once closing, reading goes on: the server's CLOSE must be seen (close_timeout bounds it).
                if (
                    not self._reading_paused
                    and self._connection is not None
                    and self._core.close_sent is None
                ):
                    transport = self._connection.transport
                    if transport is not None:
                        transport.pause_reading()
                        self._reading_paused = True
            elif self._overflow is OverflowPolicy.DROP_OLDEST:
                while len(queue) > self._max_queue:
                    queue.popleft()
                    self.dropped += 1
            elif len(queue) > self._max_queue:
                queue.clear()
                reason = f"receive queue overflow (max_queue={self._max_queue})"
                self._overflow_error = ConnectionClosedError(
                    CloseCode.POLICY_VIOLATION, reason, self._core.close_received is not None
                )
                if self._core.state is State.OPEN:
                    self._core.fail(CloseCode.POLICY_VIOLATION, reason)
                    reply = self._core.data_to_send()
                    if reply:
                        self._write(reply)
                self._closing()
        self._wake_receiver()

    def _call(self, function: Callable[[Any], Any], argument: Any) -> Any:
        try:
            return function(argument)
        except Exception:
            logger.exception("exception in a callback")
            return None

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _connection_ended(self, connection: _Connection) -> None:
        """The TCP connection of *connection* ended: settle everything waiting on it, then reconnect
        or finish."""
        if connection is not self._connection:
            return
        core = self._core
        for timer in (self._close_timer, self._beat_timer, self._failure_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._beat_timer = self._failure_timer = None
        core.receive_eof()
        for name in PROTOCOL_COUNTERS:
            self._totals[name] += getattr(core, name)
        for future, _ in self._pings.values():
            if not future.done():
                future.set_exception(core.closed_exception())
        self._pings.clear()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if not self._connection_closed.done():
            self._connection_closed.set_result(None)
        forced, self._reconnect_requested = self._reconnect_requested, False
        policy = self._reconnect or (ReconnectPolicy() if forced else None)
        retry = policy is not None and not self._stopping and self._overflow_error is None
        if self._on_disconnect is not None:
            closed = core.closed_exception()
            error = None if isinstance(closed, ConnectionClosedOK) else closed  # nothing for a clean close
            info = Disconnected(
                core.close_code, core.close_reason, time.time(), error, retry, self.connection_id
            )
            self._call(self._on_disconnect, info)
        if retry:
            assert policy is not None
            if forced or time.monotonic() - self._opened_at >= policy.stable_after:
                self._failures = 0
            self._reconnect_task = self._loop.create_task(self._reconnect_with_backoff(policy, forced))
        else:
            self._finish()
        self._wake_receiver()

    def _finish(self) -> None:
        """No connection will follow: wake everyone waiting for the end."""
        if not self._closed.done():
            self._closed.set_result(None)
        self._wake_receiver()

    async def _reconnect_with_backoff(self, policy: ReconnectPolicy, immediately: bool = False) -> None:
        lost = self._core
        lost_at = time.time()
        attempt = 0
        error: BaseException | None = None
        try:
            while True:
                attempt += 1
                delay = 0.0 if immediately and attempt == 1 else policy.delay(self._failures + attempt)
                logger.info("reconnecting to %s in %.3g s (attempt %d)", self.url, delay, attempt)
                await asyncio.sleep(delay)
                try:
                    connection, accepted, url = await self._connector._establish(self)
                except (HandshakeError, OSError, InvalidURL) as exc:  # OSError: TimeoutError too
                    logger.error("reconnection attempt %d failed: %s", attempt, exc)
                    error = exc
                    if isinstance(exc, InvalidURL) or (
                        isinstance(exc, HandshakeError) and not policy.retryable_status(exc.status)
                    ):
                        break
                else:
                    self._failures += 1
                    self._reconnects += 1
                    self.reconnected = marker = Reconnected(
                        lost_at,
                        time.time(),
                        attempt,
                        lost.close_code,
                        lost.close_reason,
                        self.connection_id,  # _establish numbered the new connection
                    )
                    if self._on_message is None:
                        self._queue.append(marker)  # the gap, in the stream, before the new messages
                    self._reconnect_task = None
                    self._open(connection, accepted, url)
                    self._wake_receiver()
                    try:
                        await self._run_on_connect()
                    except Exception:
                        logger.exception("on_connect failed after a reconnection")
                        if self._core.state is State.OPEN:
                            self._core.fail(CloseCode.INTERNAL_ERROR, "on_connect failed")
                            reply = self._core.data_to_send()
                            if reply:
                                self._write(reply)
                            self._closing()
                    return
                if policy.gives_up(attempt):
                    break
            # Giving up is an error whatever the lost connection's close code was.
            logger.error("giving up reconnecting after %d attempts", attempt)
            self._gave_up = ConnectionClosedError(
                lost.close_code,
                f"gave up reconnecting after {attempt} attempts: {error}",
                lost.close_received is not None,
            )
        except asyncio.CancelledError:
            pass  # close() while waiting
        self._reconnect_task = None
        self._finish()

    # Keepalive and the idle watchdog (decisions in wsfast.health.Heartbeat; this layer owns time)

    def _schedule_beat(self, when: float) -> None:
        self._beat_due = when
        self._beat_timer = self._loop.call_later(max(0.0, when - time.monotonic()), self._beat)

    def _beat(self) -> None:
        self._beat_timer = None
        heartbeat = self._heartbeat
        core = self._core
        if heartbeat is None or core.state is not State.OPEN:
            return
        now = time.monotonic()
        if now - self._beat_due > _LATE_TIMER and heartbeat.overdue(now, self._last_received_at):
            # The loop was busy: let it read what arrived meanwhile before any verdict.
            self._schedule_beat(now + _LATE_TIMER)
            return
        while True:
            action = heartbeat.poll(time.monotonic(), self._last_received_at, self._last_message_at)
            if action is Beat.NOTHING:
                break
            if action is Beat.SEND_PING:
                self._write(core.send_ping(heartbeat.ping_payload()))
            elif action is Beat.PING_TIMEOUT:
                reason = f"keepalive timeout: no frame within {heartbeat.ping_timeout:g} s of a PING"
                logger.error("%s: %s", self.url, reason)
                core.fail(CloseCode.INTERNAL_ERROR, reason, closed_as=KeepaliveTimeout)
                reply = core.data_to_send()
                if reply:
                    self._write(reply)
                self._abort()  # the peer is presumed dead: waiting for its TCP close only adds delay
                return
            else:  # Beat.IDLE
                assert heartbeat.idle_timeout is not None
                logger.info("%s: no message for %g s", self.url, heartbeat.idle_timeout)
                if self._on_idle is not None:
                    result = self._call(self._on_idle, self)
                    if inspect.isawaitable(result):
                        self._loop.create_task(_logged(result, "on_idle"))
                    continue
                reason = f"idle timeout: no message for {heartbeat.idle_timeout:g} s"
                self._write(core.send_close(CloseCode.GOING_AWAY, reason, closed_as=IdleTimeout))
                return
        if heartbeat.deadline is not None and core.state is State.OPEN:
            self._schedule_beat(heartbeat.deadline)

    def stats(self) -> Stats:
        """Counters over every connection of this WebSocket (messages, bytes, frames, pings,
        round-trip time, reconnects, drops, queue depth...)."""
        totals = dict(self._totals)
        core = self._core
        if core.state is not State.CLOSED:
            for name in PROTOCOL_COUNTERS:
                totals[name] += getattr(core, name)
        heartbeat = self._heartbeat
        rtt = heartbeat.last_rtt if heartbeat is not None and heartbeat.last_rtt is not None else None
        last_message = None
        if self._last_message_at:
            last_message = time.time() - (time.monotonic() - self._last_message_at)
        return Stats(
            **totals,
            last_rtt=rtt if rtt is not None else self.latency,
            reconnects=self._reconnects,
            dropped=self.dropped,
            queue_depth=len(self._queue),
            last_message_at=last_message,
            connected_at=self._connected_at,
            connections=self._connections,
        )

    def _pong_received(self, payload: bytes) -> None:
        heartbeat = self._heartbeat
        if heartbeat is not None and heartbeat.pong_received(payload, self._last_received_at) is not None:
            return
        entry = self._pings.pop(payload, None)
        if entry is None:
            return
        # RFC 6455 §5.5.3: a PONG may answer the most recent PING only; earlier ones are answered too.
        now = time.perf_counter()
        future, sent_at = entry
        self.latency = now - sent_at
        if not future.done():
            future.set_result(self.latency)
        for key, (earlier, earlier_sent) in list(self._pings.items()):
            if earlier_sent <= sent_at:
                del self._pings[key]
                if not earlier.done():
                    earlier.set_result(now - earlier_sent)

    # Receiving

    async def recv(self, timeout: float | None = None) -> Any:
        """The next message: ``str`` (TEXT), ``bytes`` (BINARY), or what *loads* returned.

        Raises:
            ConnectionClosedOK: the connection closed normally and every message was read.
            ConnectionClosedError: it closed abnormally (the error has code, reason, close_received).
            MessageDecodeError: *loads* failed on this message (its bytes are in ``.payload``); the
                connection stays usable.
            TimeoutError: no message within *timeout* seconds (the connection stays usable).
            RuntimeError: the connection was opened with *on_message*, which receives every message.
        """
        if self._on_message is not None:
            raise RuntimeError("messages go to on_message; recv() is not available")
        queue = self._queue
        if self._overflow_error is not None:
            raise self._overflow_error
        while not queue:
            core = self._core
            if core.state is State.CLOSED or core.failed:
                if not self._may_reconnect():
                    raise self._gave_up or core.closed_exception()
                # Between connections: wait for the reconnection (or for giving up).
            elif core.close_received is not None and core.state is not State.OPEN:
                await self._wait_closed_briefly()
                continue
            waiter = self._loop.create_future()
            self._recv_waiter = waiter
            try:
                if timeout is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"no message within {timeout} s") from None
            finally:
                self._recv_waiter = None
        message = queue.popleft()
        if message is _FAILURE:
            self._fail_now()
            raise self._core.closed_exception()
        if self._reading_paused and len(queue) <= self._low_water:
            self._resume_reading()
        if type(message) is MessageDecodeError:
            raise message
        return message

    def _resume_reading(self) -> None:
        self._reading_paused = False
        if self._replies_paused_reading:
            return  # still waiting for the server to read our replies (_resume_writing resumes)
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.resume_reading()

    def _may_reconnect(self) -> bool:
        """Whether another connection may still follow the current one."""
        return (
            self._reconnect is not None
            and not self._stopping
            and self._overflow_error is None
            and not self._closed.done()
        )

    async def _wait_closed_briefly(self) -> None:
        """The closing handshake is done: wait for the server to close TCP, then give up (§7.1.1)."""
        connection, closed = self._connection, self._connection_closed
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(closed), self._close_timeout)
        if not closed.done() and self._connection is connection:
            self._abort()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        queue = self._queue
        if queue and queue[0] is not _FAILURE:
            # Fast path: a message is ready; one coroutine per message instead of two.
            message = queue.popleft()
            if self._reading_paused and len(queue) <= self._low_water:
                self._resume_reading()
            if type(message) is MessageDecodeError:
                raise message
            return message
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    # Sending

    def _write(self, data: bytes) -> None:
        connection = self._connection
        if connection is not None and connection.transport is not None:
            if self._events is None:
                connection.transport.write(data)
            else:
                self._events.send(connection.transport.write, data)

    def _pause_writing(self) -> None:
        self._writing_paused = True

    def _resume_writing(self) -> None:
        self._writing_paused = False
        if self._replies_paused_reading:
            self._replies_paused_reading = False
            if not self._reading_paused and not self._failure_queued:
                self._resume_reading()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def _drain(self) -> None:
        if self._writing_paused and self._core.state is not State.CLOSED:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    async def send(self, data: str | BytesLike) -> None:
        """Send a message: ``str`` as TEXT, bytes-like as BINARY; waits if the socket buffer is full.

        Raises:
            ConnectionClosed: the connection is not open.
        """
        frame = self._core.send_text(data) if isinstance(data, str) else self._core.send_binary(data)
        self._write(frame)
        if self._writing_paused:
            await self._drain()

    async def send_frame(self, data: str | BytesLike, opcode: int, fin: bool = True) -> None:
        """Send one raw frame (manual fragmentation: TEXT/BINARY with ``fin=False``, then CONT frames)."""
        self._write(self._core.send_frame(data, opcode, fin))
        if self._writing_paused:
            await self._drain()

    def send_nowait(self, data: str | BytesLike) -> None:
        """Send a message at once, without waiting for the socket buffer to drain: for inline
        ``on_message`` callbacks, which cannot await. Raises :class:`~wsfast.ConnectionClosed` unless
        open."""
        self._write(self._core.send_text(data) if isinstance(data, str) else self._core.send_binary(data))

    def send_threadsafe(self, data: str | BytesLike) -> None:
        """Schedule :meth:`send` from another thread (fire and forget)."""
        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(self.send(data)))

    async def ping(self, payload: str | BytesLike | None = None) -> float:
        """Send a PING and wait for its PONG; return the round-trip time in seconds.

        *payload* defaults to 4 random bytes, so concurrent pings are told apart.
        """
        data = (
            os.urandom(4)
            if payload is None
            else (payload.encode() if isinstance(payload, str) else bytes(payload))
        )
        if data in self._pings:
            raise ValueError("a PING with this payload is already waiting for its PONG")
        frame = self._core.send_ping(data)
        future: asyncio.Future[float] = self._loop.create_future()
        self._pings[data] = (future, time.perf_counter())  # uvloop's loop.time() ticks in ms
        self._write(frame)
        return await future

    async def pong(self, payload: str | BytesLike = b"") -> None:
        """Send a PONG: the answer to a PING from *on_ping*, or a unidirectional keep-alive."""
        self._write(self._core.send_pong(payload))

    # Closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with a closing handshake (RFC 6455 §7.1.2), waiting up to *close_timeout* for it.

        With *reconnect*, this also ends reconnecting (a pending reconnection is cancelled).
        """
        self._stopping = True
        task = self._reconnect_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._core.state is not State.CLOSED:
            frame = self._core.send_close(code, reason)
            if frame:
                self._write(frame)
        if self._reading_paused:
            # The queue is full, but the server's CLOSE must be read for the closing handshake to end.
            self._resume_reading()
        closed = self._connection_closed
        if not closed.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(closed), self._close_timeout)
            if not closed.done():
                self._abort()
                await asyncio.shield(closed)
        self._finish()

    def _abort(self) -> None:
        connection = self._connection
        if connection is not None and connection.transport is not None:
            connection.transport.abort()
        elif connection is not None:
            connection.end()
        else:
            self._finish()

    @property
    def is_reconnecting(self) -> bool:
        """Whether the connection was lost and a new one is being waited for or opened."""
        return self._reconnect_task is not None

    async def reconnect(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the current connection (closing handshake with *code*) and open a new one at once,
        whatever *reconnect* says (its policy paces further attempts if the first fails); returns when
        the new connection is open. The queue gets a :class:`~wsfast.Reconnected` marker as for any
        reconnection.

        Raises:
            ConnectionClosed: :meth:`close` was called, or reconnecting gave up.
        """
        if self._stopping or self._closed.done():
            raise self._gave_up or self._core.closed_exception()
        if self._reconnect_task is None:
            self._reconnect_requested = True
            if self._core.state is not State.CLOSED:
                frame = self._core.send_close(code, reason)
                if frame:
                    self._write(frame)
            closed = self._connection_closed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(closed), self._close_timeout)
            if not closed.done():
                self._abort()
                await asyncio.shield(closed)
        task = self._reconnect_task
        if task is not None:
            await asyncio.shield(task)
        if self._core.state is not State.OPEN:
            raise self._gave_up or self._core.closed_exception()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (with *reconnect*: until no connection will follow)."""
        await asyncio.shield(self._closed)

    def __repr__(self) -> str:
        return f"<wsfast.WebSocket {self.url} {self._core.state.name}>"
