"""The asyncio client.

A thin I/O layer over the sans-I/O core: :class:`~wsfast.asyncio._connection._Connection` (a
:class:`asyncio.BufferedProtocol`) hands the transport's reusable receive buffer straight to
:class:`~wsfast.protocol.ClientProtocol`, which makes every protocol decision; :mod:`wsfast.opening`
decides the opening (executed by :mod:`wsfast.asyncio._opening`), :mod:`wsfast.lifecycle` keepalive and
reconnecting, :mod:`wsfast.delivery` the receive queue; what both clients do with those decisions
(callbacks, event dispatch, verdicts, reconnect steps, ``stats()``) is :class:`~wsfast._frontend._Frontend`'s,
written once. Messages go to an inline ``on_message`` callback
(no queue, no task per message, as picows listeners) or to the queue read by :meth:`WebSocket.recv` and
``async for``.

Example::

    async with wsfast.connect("wss://stream.example.com/ws") as ws:
        await ws.send('{"op": "subscribe", "args": ["trades.BTCUSDT"]}')
        async for message in ws:
            handle(message)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .. import codec
from .._frontend import _Frontend, logger
from .._monitor import Monitor, Subscriber
from .._opening_io import Reporter, new_opening
from .._typing import BytesLike
from ..config import Config, checks_options
from ..deflate import Deflate
from ..delivery import AWAIT_CLOSE, FAILED, Delivery, OverflowPolicy
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    MessageDecodeError,
)
from ..frames import CloseCode
from ..handshake import Accepted
from ..health import (
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    Disconnected,
    ReconnectPolicy,
)
from ..lifecycle import ATTEMPT_ERRORS, GiveUp, Retry, closing
from ..options import ASYNCIO, get_option
from ..protocol import State
from ..uri import WebSocketURL
from ._connection import _Connection
from ._opening import open_transport

__all__ = ["OverflowPolicy", "WebSocket", "connect"]

DEFAULT_USER_AGENT: str = get_option("user_agent").default  # defined once, in wsfast.options

_LOOP_CLOSED = "the event loop that owned the connection is closed"

WebSocketHook = Callable[["WebSocket"], "Awaitable[None] | None"]

_monotonic = time.monotonic
# The owner check of the hot paths (send_nowait, recv and iteration with a message ready): one C call,
# ~30 ns, where asyncio.get_running_loop() costs ~100 ns on 3.11 (it calls getpid()). A call from another
# loop *in the same thread* can only come while the owning loop is not running: there is no race then.
# send() adds loop.is_running() for it; the paths that wait check the running loop (WebSocket._check_loop).
_get_ident = threading.get_ident


async def _logged(awaitable: Awaitable[Any], name: str) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("exception in %s", name)


class connect:
    """Open a WebSocket connection: ``ws = await connect(url)`` or ``async with connect(url) as ws``.

    Example::

        async with wsfast.connect("wss://stream.example.com/ws", reconnect=True) as ws:
            await ws.send('{"op": "subscribe", "args": ["trades.BTCUSDT"]}')
            async for message in ws:  # a wsfast.Reconnected marker at each reconnection
                handle(message)

    Args:
        url: a ``ws://`` or ``wss://`` URL; ``user:password@`` becomes Basic auth.
        on_message: called inline with each message, from the protocol's data path (no queue, no task):
            the lowest latency. Without it, read messages with :meth:`WebSocket.recv` or ``async for``.
        headers: extra handshake headers, checked here (not after TCP is open).
        ssl: for ``wss://`` only: an :class:`ssl.SSLContext`, or ``False`` to skip certificate verification.
        proxy: a proxy URL (``http``, ``https``, ``socks4``, ``socks4a``, ``socks5``, ``socks5h``), or
            ``True``: from the environment (``HTTPS_PROXY``, ``NO_PROXY``...). Off by default.
        max_queue, overflow: messages held for :meth:`WebSocket.recv`, and what happens beyond them (an
            :class:`OverflowPolicy`; ``"pause"`` by default: TCP backpressure, nothing lost).
        reconnect: ``True`` or a :class:`~wsfast.ReconnectPolicy`: reconnect whenever a connection is lost,
            except after :meth:`WebSocket.close`. Off by default.
        on_connect: ``on_connect(ws)`` (or a coroutine function) after every connection and reconnection,
            before it is handed over: send subscriptions here.

    Every option (timeouts, keepalive, limits, compression, *loads*, events...) is described once, with
    its default, in :mod:`wsfast.options` (``python -m wsfast options``, docs/options.md). An unknown
    name raises :class:`~wsfast.OptionError` with a "did you mean".
    """

    @checks_options(ASYNCIO)
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
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 10.0,
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
        on_disconnect: Callable[[Disconnected], Any] | None = None,
        events: Subscriber | None = None,
        warn_slow_operation: float | None = None,
        warn_low_throughput: float | None = None,
        implementation: str | None = None,
    ) -> None:
        # Every option checked against wsfast.options.OPTIONS, derived values computed once.
        self._config = Config.build(ASYNCIO, locals())
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
        ws = WebSocket(self)
        ws._open(*await self._establish(ws))
        try:
            await ws._run_on_connect()
        except Exception:
            await ws.wait_closed()  # failed with 1011: it ends within close_timeout, and none follows
            raise
        except BaseException:
            ws._abort()
            raise
        return ws

    async def _establish(self, ws: WebSocket) -> tuple[_Connection, Accepted, WebSocketURL]:
        """A new open connection for *ws*: every decision is :class:`~wsfast.opening.Opening`'s, executed with
        transports by :func:`~wsfast.asyncio._opening.open_transport` within *open_timeout*."""
        ws._events = events = self._events
        ws._number()
        given = self._config.take_sock()  # OpeningError once the sock= socket served a connection
        reporter = Reporter(events)
        opening = new_opening(self._config, reporter)
        connection, accepted, url = await open_transport(
            opening, reporter, lambda: _Connection(ws), open_timeout=self._config["open_timeout"], sock=given
        )
        if url != self._config.url:
            logger.info("redirected from %s to %s", self._config.url, url)
        return connection, accepted, url


class WebSocket(_Frontend):
    """An open WebSocket connection (asyncio). Create it with :func:`wsfast.connect`.

    It belongs to the event loop that opened it: its methods called from another thread or event loop
    raise :class:`~wsfast.ConcurrencyError`, except :meth:`send_threadsafe`, made for other threads
    (``async for`` is checked once, when the loop starts, and again whenever it waits). Once that loop is
    closed (``asyncio.run()`` returned), :attr:`open` is ``False`` and :attr:`state` is ``CLOSED``. One
    reader at a time: a second :meth:`recv` while one waits raises :class:`~wsfast.ConcurrencyError`.
    """

    def __init__(self, connector: connect) -> None:
        super().__init__(connector._config, connector._events)
        self._connector = connector
        self._protocol = (config := self._config).new_protocol()
        self.url = config.url
        # The receive queue's policy (wsfast.delivery); its deque and bound methods are kept for the hot
        # paths (an attribute lookup less per message).
        self._delivery = Delivery(
            config["max_queue"],
            config["overflow"],
            pause_reading=self._pause_reading,
            resume_reading=self._resume_reading,
        )
        self._queue, self._put, self._get = self._delivery.queue, self._delivery.put, self._delivery.get
        self._beat_due = 0.0  # when the keepalive timer is due
        self._stopping = False  # close() was called: no reconnection
        self._reconnect_task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()  # the owning loop's thread (see _get_ident)
        self._connection: _Connection | None = None  # the current one, with its timers and its end
        self._recv_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed = self._loop.create_future()  # the end of the last connection: no more to come

    def _set_events(self, events: Monitor | None) -> None:
        self._events = events
        if self._connection is not None:
            self._connection.events = events

    # Opening

    def _open(self, connection: _Connection, accepted: Accepted, url: WebSocketURL) -> None:
        """Make *connection* (handshake done) the current one, with a new protocol core."""
        self._protocol = protocol = self._config.new_protocol(accepted.compression)
        self._connection = connection
        self._writing_paused = False
        self.url = url
        marker = self._opened(protocol, accepted)
        # The Reconnected marker goes in the stream, before the new messages (not to on_message).
        self._delivery.opened(marker if self._on_message is None else None)
        deadline = self._lifecycle.deadline
        if deadline is not None:
            self._schedule_beat(deadline)
        connection.opened(accepted.leftover)

    async def _run_on_connect(self) -> None:
        """Run *on_connect* for the connection just opened (awaiting it if it is a coroutine). If it
        raises, the connection is failed (1011) and the error raised again; after the first connection
        no reconnection follows (:func:`connect` raises it), after a reconnection *reconnect* applies."""
        on_connect = self._config["on_connect"]
        if on_connect is None:
            return
        try:
            result = on_connect(self)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            self._write(self._lifecycle.on_connect_failed(exc))  # the CLOSE (1011)
            self._closing()
            raise

    # Properties

    @property
    def url(self) -> str:
        """The URL of the current connection (after redirects), without its password (as the threaded
        client's :attr:`wsfast.WebSocketClient.url`)."""
        return self._current_url.safe_url()

    @url.setter
    def url(self, url: WebSocketURL) -> None:
        self._current_url = url

    @property
    def state(self) -> State:
        """The protocol state; ``CLOSED`` once the event loop that owned the connection is closed."""
        if self._loop.is_closed():
            return State.CLOSED
        return self._protocol.state

    @property
    def open(self) -> bool:
        """Whether messages can be sent and received: ``False`` once the connection is closing or
        closed, and once the event loop that owned it is closed (after ``asyncio.run()`` returned)."""
        return self._protocol.state is State.OPEN and not self._loop.is_closed()

    @property
    def close_code(self) -> int | None:
        """How the connection ended (the server's code, ours if we failed it, 1006), or None if open.
        1006 once the event loop that owned the connection is closed."""
        if self._protocol.state is State.CLOSED:
            return self._protocol.close_code
        return CloseCode.ABNORMAL_CLOSURE if self._loop.is_closed() else None

    @property
    def close_reason(self) -> str | None:
        if self._protocol.state is State.CLOSED:
            return self._protocol.close_reason
        return _LOOP_CLOSED if self._loop.is_closed() else None

    @property
    def latency(self) -> float | None:
        """The round-trip time of the last :meth:`ping` answered, in seconds (``None`` before)."""
        return self._latency

    @property
    def dropped(self) -> int:
        """Messages dropped by the ``drop_oldest`` overflow policy."""
        return self._delivery.dropped

    @property
    def _transport(self) -> asyncio.Transport | None:
        return self._connection.transport if self._connection is not None else None

    # Ownership: the event loop (and its thread) that opened the connection

    def _misuse(self, method: str) -> ConcurrencyError:
        """The error for a call to *method* from outside the owning event loop."""
        if self._loop.is_closed():
            return ConcurrencyError(
                f"WebSocket.{method}() called after the event loop that owned the connection was closed "
                "(the connection ended with it): open a new connection in the running loop"
            )
        return ConcurrencyError(
            f"WebSocket.{method}() called from another thread or event loop than the one that owns the "
            "connection: from another thread use send_threadsafe(), or run the call in the owning loop "
            "with asyncio.run_coroutine_threadsafe()"
        )

    def _check_loop(self, method: str) -> None:
        """Refuse a call from another thread, or from another event loop in the owning thread."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            raise self._misuse(method)

    def _loop_closed_error(self) -> ConnectionClosed:
        """How the connection ended, for a caller that finds its event loop closed."""
        if self._protocol.state is State.CLOSED:
            return self._protocol.closed_exception()
        return ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE, _LOOP_CLOSED)

    # The receive path (called by _Connection)

    def _receive(self, data: BytesLike) -> None:
        core = self._protocol
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
                    if self._put(events, core):
                        self._closing()  # the "error" overflow policy failed the connection (1008)
                    self._wake_receiver()
            return
        reply = core.data_to_send()
        if reply:
            self._write(reply)
            if self._writing_paused:
                self._delivery.replies_blocked()  # until _resume_writing (wsfast.delivery)
        if events:
            self._dispatch(events)
        if core.failure_pending:
            # Frames are processed in order: the messages before the bad frame are handled first. An
            # inline callback already has; with a queue, the failure waits behind the queued messages
            # (bounded by close_timeout).
            if not self._delivery.queue_failure():  # nothing queued (always so with on_message)
                self._fail_now()
            else:
                connection = self._connection
                assert connection is not None
                if connection.failure_timer is None and self._close_timeout is not None:
                    connection.failure_timer = self._loop.call_later(self._close_timeout, self._fail_now)
                self._wake_receiver()
        elif core.state is not State.OPEN:
            self._closing()

    def _dispatch(self, events: list[Any]) -> None:
        """The events of a read with a control frame: each to its callback (:meth:`_Frontend._deliver`), the
        messages to the queue if there is no *on_message*."""
        self._received(events)  # PONGs are accounted before any callback: a slow one cannot skew them
        messages: list[Any] | None = [] if self._on_message is None else None
        for event in events:
            self._deliver(event, messages)
        if messages is not None and (messages or self._queue):
            if self._delivery.put(messages, self._protocol):
                self._closing()  # the "error" overflow policy failed the connection (1008)
            self._wake_receiver()

    def _fail_now(self) -> None:
        """Fail the connection for the protocol error found earlier (RFC 6455 §7.1.7)."""
        connection = self._connection
        assert connection is not None
        if connection.failure_timer is not None:
            connection.failure_timer.cancel()
            connection.failure_timer = None
        self._protocol.finish_receive()
        if self._delivery.release_failure():
            # Reading paused while the failure waited in the queue; the server's TCP close must be seen.
            self._resume_reading()
        self._closing()

    def _closing(self) -> None:
        """The connection left OPEN: do what :func:`wsfast.lifecycle.closing` says (write the CLOSE,
        half-close after a failure, bound the wait for the server's TCP close)."""
        action = closing(self._protocol)
        if action.data:
            self._write(action.data)
        connection = self._connection
        assert connection is not None
        transport = connection.transport
        if action.half_close and transport is not None and not transport.is_closing():
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        if action.await_close and connection.close_timer is None:
            connection.close_timer = self._loop.call_later(self._close_timeout or 0, self._abort)
        self._wake_receiver()

    def _pause_reading(self) -> None:
        if (transport := self._transport) is not None:
            transport.pause_reading()

    def _resume_reading(self) -> None:
        if (transport := self._transport) is not None:
            transport.resume_reading()

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The end of a connection, reconnecting

    def _connection_ended(self, connection: _Connection) -> None:
        """The TCP connection of *connection* ended: settle everything waiting on it, then reconnect
        or finish."""
        if connection is not self._connection:
            return
        self._protocol.receive_eof()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        fatal = self._delivery.error is not None  # the "error" overflow policy: no reconnection
        decision = self._lost(self._protocol, stopped=self._stopping, fatal=fatal)
        if isinstance(decision, Retry):
            self._reconnect_task = self._loop.create_task(self._reconnect_with_backoff(decision))
        else:
            self._finish()
        self._wake_receiver()

    def _finish(self) -> None:
        """No connection will follow: wake everyone waiting for the end."""
        if not self._closed.done():
            self._closed.set_result(None)
        self._wake_receiver()

    async def _reconnect_with_backoff(self, decision: Retry) -> None:
        """Reconnect as the lifecycle decides, until a connection opens or it gives up."""
        try:
            while True:
                self._retrying(decision)
                await asyncio.sleep(decision.delay)
                try:
                    connection, accepted, url = await self._connector._establish(self)
                except ATTEMPT_ERRORS as exc:  # OSError: TimeoutError and the opening errors too
                    outcome = self._attempt_failed(decision, exc)
                    if isinstance(outcome, GiveUp):
                        break
                    decision = outcome
                else:
                    self._reconnect_task = None
                    self._open(connection, accepted, url)  # queues the Reconnected marker
                    self._wake_receiver()
                    try:
                        await self._run_on_connect()
                    except Exception:
                        logger.exception("on_connect failed after a reconnection: failed it (1011)")
                    return
        except asyncio.CancelledError:
            self._lifecycle.cancel()  # close() while waiting
        self._reconnect_task = None
        self._finish()

    async def _await_end(self) -> None:
        """Wait for the server to close TCP (RFC 6455 §7.1.1) up to *close_timeout*, then abort it."""
        connection = self._connection
        assert connection is not None
        ended = connection.ended
        if not ended.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), self._close_timeout)
            if not ended.done():
                self._abort()
                await asyncio.shield(ended)

    async def _close_and_wait(self, code: int, reason: str) -> None:
        """Start the closing handshake (RFC 6455 §7.1.2) and wait for the end of the connection."""
        if self._protocol.state is not State.CLOSED:
            frame = self._protocol.send_close(code, reason)
            if frame:
                self._write(frame)
        await self._await_end()

    def _abort(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort()

    # Keepalive and the idle watchdog (decisions in wsfast.lifecycle.Lifecycle; this layer owns time)

    def _schedule_beat(self, when: float) -> None:
        connection = self._connection
        assert connection is not None
        self._beat_due = when
        connection.beat_timer = self._loop.call_later(max(0.0, when - _monotonic()), self._beat)

    def _beat(self) -> None:
        lifecycle = self._lifecycle
        now = _monotonic()
        verdict = lifecycle.beat(now, self._last_message_at, late=now - self._beat_due)
        if verdict.again:  # the loop was busy: it reads what arrived meanwhile first
            self._schedule_beat(now + verdict.again)
            return
        if verdict.data:
            self._write(verdict.data)
        result = self._carry_out(verdict)  # log, abort, or on_idle
        if verdict.abort:
            return
        if inspect.isawaitable(result):
            self._loop.create_task(_logged(result, "on_idle"))
        deadline = lifecycle.deadline
        if deadline is not None:
            self._schedule_beat(deadline)

    def _queue_stats(self) -> dict[str, int]:
        return {"dropped": self._delivery.dropped, "queue_depth": len(self._queue)}

    # Receiving

    async def recv(self, timeout: float | None = None) -> Any:
        """The next message: ``str`` (TEXT), ``bytes`` (BINARY), or what *loads* returned.

        Raises:
            ConnectionClosedOK: the connection closed normally and every message was read.
            ConnectionClosedError: it closed abnormally (code, reason, close_received), or
                ``overflow="error"`` failed it (1008: after the messages queued before the overflow).
            MessageDecodeError: *loads* rejected this message (bytes in ``.payload``); read on.
            TimeoutError: no message within *timeout* seconds; read on.
            ConcurrencyError: another ``recv()`` (or ``async for``) is waiting: one reader at a time;
                or the call comes from another thread or event loop.
            RuntimeError: the connection was opened with *on_message*, which receives every message.
        """
        if _get_ident() != self._thread_id:
            raise self._misuse("recv")
        queue = self._queue
        if not queue or queue[0] is FAILED:
            return await self._next(timeout)
        # The fast path, as in __anext__: Delivery.get inlined (a call less, ~40 ns a message). Under a
        # flood the queue is full and reading paused most of the time: that is every message's path then.
        message = queue.popleft()
        delivery = self._delivery
        if delivery.paused and len(queue) <= delivery.low_water:
            delivery.drained()
        if type(message) is MessageDecodeError:
            raise message
        return message

    async def _next(self, timeout: float | None) -> Any:
        """:meth:`recv` when no message is ready, or a failure is next."""
        if self._on_message is not None:
            raise RuntimeError("messages go to on_message; recv() is not available")
        queue = self._queue
        while not queue:
            lifecycle = self._lifecycle  # may another connection follow? (reconnecting)
            reconnecting = lifecycle.may_follow(stopped=self._stopping)
            if (
                self._delivery.empty(self._protocol, reconnecting=reconnecting, gave_up=lifecycle.gave_up)
                is AWAIT_CLOSE
            ):
                await self._await_end()
                continue
            with self._delivery.reader:  # ConcurrencyError: one reader at a time
                self._check_loop("recv")  # waiting: the owning loop must be the running one
                self._recv_waiter = waiter = self._loop.create_future()
                try:
                    if timeout is None:
                        await waiter
                    else:
                        await asyncio.wait_for(waiter, timeout)
                except asyncio.TimeoutError:
                    raise TimeoutError(f"no message within {timeout} s") from None
                finally:
                    self._recv_waiter = None
        message = self._get()
        if message is FAILED:
            self._fail_now()
            raise self._protocol.closed_exception()
        return message

    def __aiter__(self) -> AsyncIterator[Any]:
        """``async for`` starts here, once per loop: the owning thread is checked here rather than on
        each message (``threading.get_ident()`` costs ~45 ns, 13% of a small message's iteration)."""
        if _get_ident() != self._thread_id:
            raise self._misuse("__aiter__")
        return self

    async def __anext__(self) -> Any:
        """The next message, as :meth:`recv` (same errors); ends after a normal close. A message ready
        is returned at once; waiting for one checks the owning loop, as :meth:`recv` does."""
        queue = self._queue
        if queue and queue[0] is not FAILED:  # recv()'s fast path: one coroutine per message
            message = queue.popleft()
            delivery = self._delivery
            if delivery.paused and len(queue) <= delivery.low_water:
                delivery.drained()
            if type(message) is MessageDecodeError:
                raise message
            return message
        try:
            return await self._next(None)
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
        self._delivery.replies_drained()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def _drain(self) -> None:
        """Wait until the transport's buffer drained; ConnectionClosed if the connection ends first."""
        if self._writing_paused and self._protocol.state is not State.CLOSED:
            self._check_loop("send")
            core = self._protocol
            waiter = self._drain_waiter
            if waiter is None or waiter.done():
                # One future for every sender waiting (a second one must not orphan the first).
                waiter = self._drain_waiter = self._loop.create_future()
            await asyncio.shield(waiter)
            if core.state is State.CLOSED or core is not self._protocol:
                # close() (or the end of the connection) woke us: the bytes may never leave.
                raise core.closed_exception()

    async def send(self, data: str | BytesLike) -> None:
        """Send a message: ``str`` as TEXT, bytes-like as BINARY; waits if the socket buffer is full.

        Raises:
            ConnectionClosed: the connection is not open, or it ended while the send waited.
            ConcurrencyError: called from another thread or event loop (use :meth:`send_threadsafe`).
        """
        if _get_ident() != self._thread_id or not self._loop.is_running():
            # Another thread; or, in this thread, another loop (a later asyncio.run(), say): the
            # owning loop cannot be running then. Cheaper than _check_loop() (~50 ns against ~200).
            raise self._misuse("send")
        frame = self._protocol.send_text(data) if isinstance(data, str) else self._protocol.send_binary(data)
        self._write(frame)
        if self._writing_paused:
            await self._drain()

    async def send_frame(self, data: str | BytesLike, opcode: int, fin: bool = True) -> None:
        """Send one raw frame (manual fragmentation: TEXT/BINARY with ``fin=False``, then CONT frames).

        Raises:
            ValueError: an invalid opcode or control frame, or CLOSE (use :meth:`close`).
            ConnectionClosed: the connection is not open, or it ended while the send waited.
            ConcurrencyError: called from another thread or event loop.
        """
        self._check_loop("send_frame")
        self._write(self._protocol.send_frame(data, opcode, fin))
        if self._writing_paused:
            await self._drain()

    def send_nowait(self, data: str | BytesLike) -> None:
        """Send a message at once, without waiting for the socket buffer to drain: for inline
        ``on_message`` callbacks, which cannot await.

        Raises:
            ConnectionClosed: the connection is not open.
            ConcurrencyError: called from another thread (use :meth:`send_threadsafe`).
        """
        if _get_ident() != self._thread_id:
            raise self._misuse("send_nowait")
        self._write(
            self._protocol.send_text(data) if isinstance(data, str) else self._protocol.send_binary(data)
        )

    def send_threadsafe(self, data: str | BytesLike) -> concurrent.futures.Future[None]:
        """Send a message from any thread (the only method that may be called outside the owning loop).

        Returns a :class:`concurrent.futures.Future`: ``None`` once the frame is written (the socket
        buffer drained, if it was full), or :class:`~wsfast.ConnectionClosed` (closed, ended while
        waiting, or its event loop closed). Wait with ``future.result(timeout)`` or ignore it: nothing
        is logged either way.
        """
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self._loop.call_soon_threadsafe(self._send_for, data, future)
        except RuntimeError:  # the loop is closed: the connection ended with it
            future.set_exception(self._loop_closed_error())
        return future

    def _send_for(self, data: str | BytesLike, future: concurrent.futures.Future[None]) -> None:
        """:meth:`send_threadsafe`, in the owning loop: send, then settle *future*."""
        if not future.set_running_or_notify_cancel():
            return  # cancelled before the loop got to it
        try:
            self.send_nowait(data)
        except Exception as exc:
            future.set_exception(exc)
            return
        if not self._writing_paused:
            future.set_result(None)
            return

        def settle(task: asyncio.Task[None]) -> None:
            # Retrieved here: never "Task exception was never retrieved".
            error = self._loop_closed_error() if task.cancelled() else task.exception()
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self._loop.create_task(self._drain()).add_done_callback(settle)

    async def ping(self, payload: str | BytesLike | None = None) -> float:
        """Send a PING and wait for its PONG; return the round-trip time in seconds.

        *payload* defaults to 4 random bytes (concurrent pings are told apart); a PONG answers the PING
        with its payload and every earlier one (RFC 6455 §5.5.3).

        Raises:
            ValueError: a PING with this payload already waits for its PONG, or it is over 125 bytes.
            ConnectionClosed: the connection is not open, or it ended before the PONG.
            ConcurrencyError: called from another thread or event loop.
        """
        self._check_loop("ping")
        future: asyncio.Future[float] = self._loop.create_future()
        self._write(self._ping_frame(self._protocol, payload, future))
        return await future

    async def pong(self, payload: str | BytesLike = b"") -> None:
        """Send a PONG: the answer to a PING from *on_ping*, or a unidirectional keep-alive.

        Raises:
            ConnectionClosed: the connection is closed.
            ConcurrencyError: called from another thread or event loop.
        """
        self._check_loop("pong")
        self._write(self._protocol.send_pong(payload))

    # Closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close with a closing handshake (RFC 6455 §7.1.2), waiting up to *close_timeout* for it.

        This also ends reconnecting. Every call waiting on the connection (:meth:`recv`, :meth:`ping`,
        sends waiting to drain) raises :class:`~wsfast.ConnectionClosed`; ``async for`` ends.

        Raises:
            ConcurrencyError: called from another thread or event loop.
        """
        self._check_loop("close")
        self._stopping = True
        task = self._reconnect_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # If the queue is full, reading resumes: the server's CLOSE must be read for the handshake to end.
        self._delivery.unpause()
        await self._close_and_wait(code, reason)
        self._finish()

    async def reconnect(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the current connection (closing handshake with *code*) and open a new one at once,
        whatever *reconnect* says (its policy paces further attempts if the first fails); returns when
        the new connection is open. The queue gets a :class:`~wsfast.Reconnected` marker as for any
        reconnection.

        Raises:
            ConnectionClosed: :meth:`close` was called, or reconnecting gave up.
        """
        if self._stopping or self._closed.done():
            raise self._lifecycle.closed_exception() or self._protocol.closed_exception()
        if self._lifecycle.request_reconnect():  # else a reconnection is already under way
            await self._close_and_wait(code, reason)
        task = self._reconnect_task
        if task is not None:
            await asyncio.shield(task)
        if self._protocol.state is not State.OPEN:
            raise self._lifecycle.closed_exception() or self._protocol.closed_exception()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (with *reconnect*: until no connection will follow).

        Raises:
            ConcurrencyError: called from another thread or event loop.
        """
        self._check_loop("wait_closed")
        await asyncio.shield(self._closed)

    def __repr__(self) -> str:
        return f"<wsfast.WebSocket {self.url} {self._protocol.state.name}>"
