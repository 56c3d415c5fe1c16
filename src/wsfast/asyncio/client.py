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
import logging
import os
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .. import codec
from ..__version__ import __version__
from .._net import make_ssl_context
from .._typing import BytesLike
from ..deflate import Deflate
from ..exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidURL,
    MessageDecodeError,
    TooManyRedirects,
)
from ..frames import Close, CloseCode, Ping, Pong
from ..handshake import Accepted, ClientHandshake, Redirect, to_deflate, without_credentials
from ..http11 import Response, ResponseParser
from ..protocol import ClientProtocol, State
from ..uri import WebSocketURL, parse_url, redact

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


class _Phase(enum.Enum):
    PROXY = 0
    HANDSHAKE = 1
    OPEN = 2


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

    # Transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.phase is _Phase.OPEN:
            self._ws._receive(self._view[:nbytes])
        else:
            self.pending += self._view[:nbytes]
            self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake()
        if self.phase is _Phase.OPEN:
            self._ws._receive_eof()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()
        if self.phase is _Phase.OPEN:
            self._ws._receive_eof()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._ws._pause_writing()

    def resume_writing(self) -> None:
        self._ws._resume_writing()

    # Before the connection is open

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read_until(self, parse: Callable[[bytes, bool], Any]) -> Any:
        """Feed pending bytes to *parse(data, eof)* until it returns a result."""
        while True:
            data, self.pending = bytes(self.pending), bytearray()
            result = parse(data, self.eof and not data)
            if result is not None:
                return result
            if self.eof and not data:
                raise ConnectionResetError("connection closed during the handshake")
            self.waiter = asyncio.get_running_loop().create_future()
            if not self.pending and not self.eof:
                await self.waiter
            self.waiter = None


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
        proxy: an HTTP proxy URL to tunnel through with CONNECT.
        open_timeout: seconds for TCP, TLS, the handshake and redirects together (default 10).
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
        proxy: str | None = None,
        open_timeout: float | None = 10.0,
        close_timeout: float | None = 10.0,
        max_message_size: int | None = codec.DEFAULT_MAX_MESSAGE_SIZE,
        max_redirects: int = 5,
        max_queue: int = 1024,
        overflow: OverflowPolicy | str = OverflowPolicy.PAUSE,
        text_as_bytes: bool = False,
        loads: Callable[[bytes], Any] | None = None,
        compression: Deflate | str | None = None,
    ) -> None:
        self._url = parse_url(url)
        self._compression = to_deflate(compression)
        self._options = dict(
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
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        self._headers = list(
            (headers.items() if isinstance(headers, Mapping) else headers) if headers else ()
        )
        self._authorization = f"{token_type} {token}" if token is not None else None
        self._subprotocols = list(subprotocols)
        self._origin = origin
        self._user_agent = user_agent
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._proxy = proxy
        self._open_timeout = open_timeout
        self._max_redirects = max_redirects
        self._ws: WebSocket | None = None

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
        if self._open_timeout is None:
            return await self._open_following_redirects()
        try:
            return await asyncio.wait_for(self._open_following_redirects(), self._open_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"could not open {self._url} within {self._open_timeout} s") from None

    async def _open_following_redirects(self) -> WebSocket:
        url = self._url
        for _ in range(self._max_redirects + 1):
            ws = WebSocket(url, **self._options)  # type: ignore[arg-type]
            # Credentials go to the URL's own origin only, never to another host a redirect names.
            same_origin = url.same_origin(self._url)
            handshake = ClientHandshake(
                url,
                headers=self._headers if same_origin else without_credentials(self._headers),
                subprotocols=self._subprotocols,
                origin=self._origin,
                user_agent=self._user_agent,
                authorization=self._authorization if same_origin else None,
                compression=self._compression,
            )
            connection = await self._connect_transport(ws, url)

            def parse(data: bytes, eof: bool, handshake: ClientHandshake = handshake) -> Any:
                return handshake.receive_eof() if eof else handshake.receive(data)

            try:
                assert connection.transport is not None
                connection.transport.write(handshake.request())
                outcome = await connection.read_until(parse)
            except BaseException:
                if connection.transport is not None:
                    connection.transport.abort()
                raise
            if isinstance(outcome, Accepted):
                ws._open(connection, outcome)
                return ws
            assert isinstance(outcome, Redirect)
            connection.transport.close()
            logger.info("redirected from %s to %s", url, outcome.url)
            url = outcome.url
        raise TooManyRedirects(
            f"more than {self._max_redirects} redirects", outcome.response.status, outcome.response.headers
        )

    async def _connect_transport(self, ws: WebSocket, url: WebSocketURL) -> _Connection:
        loop = asyncio.get_running_loop()
        context = make_ssl_context(self._ssl) if url.secure else None
        server_hostname = (self._server_hostname or url.host) if url.secure else None
        if self._proxy is None:
            _, connection = await loop.create_connection(
                lambda: _Connection(ws), url.host, url.port, ssl=context, server_hostname=server_hostname
            )
            _set_nodelay(connection.transport)
            return connection
        from urllib.parse import unquote, urlsplit

        proxy = urlsplit(self._proxy)
        if proxy.scheme not in ("http", "") or not proxy.hostname:
            raise InvalidURL(
                f"unsupported proxy {redact(self._proxy)!r}: use http://[user:password@]host:port"
            )
        _, connection = await loop.create_connection(
            lambda: _Connection(ws), proxy.hostname, proxy.port or 8080
        )
        _set_nodelay(connection.transport)
        connection.phase = _Phase.PROXY
        target = f"[{url.host}]:{url.port}" if ":" in url.host else f"{url.host}:{url.port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if proxy.username is not None:
            import base64

            credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
            lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode())
        assert connection.transport is not None
        connection.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        parser = ResponseParser(connect=True)
        try:
            response: Response = await connection.read_until(
                lambda data, eof: parser.feed_eof() if eof else parser.feed(data)
            )
            if not 200 <= response.status < 300:
                raise HandshakeError(
                    f"proxy refused the tunnel: HTTP {response.status} {response.reason}".rstrip(),
                    response.status,
                    response.headers,
                    response.body,
                )
            if context is not None:
                transport = await loop.start_tls(
                    connection.transport, connection, context, server_hostname=server_hostname
                )
                connection.transport = transport
        except BaseException:
            if connection.transport is not None:
                connection.transport.abort()
            raise
        connection.phase = _Phase.HANDSHAKE
        return connection


def _set_nodelay(transport: asyncio.BaseTransport | None) -> None:
    import socket

    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class WebSocket:
    """An open WebSocket connection (asyncio). Create it with :func:`wsfast.connect`.

    Its methods must be called from the event loop that opened it.
    """

    def __init__(
        self,
        url: WebSocketURL,
        *,
        on_message: Callable[[Any], Any] | None,
        on_ping: Callable[[bytes], Any] | None,
        on_pong: Callable[[bytes], Any] | None,
        close_timeout: float | None,
        max_message_size: int | None,
        max_queue: int,
        overflow: OverflowPolicy,
        text_as_bytes: bool,
        loads: Callable[[bytes], Any] | None,
    ) -> None:
        self.url = url
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
        self._loop = asyncio.get_running_loop()
        self._connection: _Connection | None = None
        self._queue: collections.deque[Any] = collections.deque()
        self._recv_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._replies_paused_reading = False  # reading paused until the server reads our replies
        self._drain_waiter: asyncio.Future[None] | None = None
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._closed = self._loop.create_future()
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

    # Opening

    def _open(self, connection: _Connection, accepted: Accepted) -> None:
        if accepted.compression is not None:
            # permessage-deflate is in force: the protocol core is made again with its parameters.
            self._core = ClientProtocol(
                max_message_size=self._max_message_size,
                auto_pong=self._on_ping is None,
                text_as_bytes=self._text_as_bytes,
                loads=self._loads,
                compression=accepted.compression,
            )
        self._connection = connection
        self.response = accepted.response
        self.subprotocol = accepted.subprotocol
        connection.phase = _Phase.OPEN
        leftover = accepted.leftover + bytes(connection.pending)  # in arrival order
        connection.pending.clear()
        if leftover:
            self._receive(memoryview(leftover))
        if connection.eof:
            self._receive_eof()

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
        events = core.receive_data(data, defer_failure=True)
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
            on_message = self._on_message
            if core.last_had_control:
                self._dispatch(events)
            elif on_message is not None:
                # The inline fast path: one call per message, straight from the data path.
                for message in events:
                    try:
                        on_message(message)
                    except Exception:
                        logger.exception("exception in on_message")
            else:
                self._queue.extend(events)
                self._queue_grew()
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
        for event in events:
            kind = type(event)
            if kind is Ping:
                if self._on_ping is not None:
                    self._call(self._on_ping, event.payload)
            elif kind is Pong:
                self._pong_received(event.payload)
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
                if not self._reading_paused and self._connection is not None:
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

    def _call(self, function: Callable[[Any], Any], argument: Any) -> None:
        try:
            function(argument)
        except Exception:
            logger.exception("exception in a callback")

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _receive_eof(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._core.receive_eof()
        self._wake_receiver()
        for future, _ in self._pings.values():
            if not future.done():
                future.set_exception(self._core.closed_exception())
        self._pings.clear()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    def _pong_received(self, payload: bytes) -> None:
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
            if self._core.state is State.CLOSED or self._core.failed:
                raise self._core.closed_exception()
            if self._core.close_received is not None and self._core.state is not State.OPEN:
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

    async def _wait_closed_briefly(self) -> None:
        """The closing handshake is done: wait for the server to close TCP, then give up (§7.1.1)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), self._close_timeout)
        if not self._closed.done():
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
            connection.transport.write(data)

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
        """Close with a closing handshake (RFC 6455 §7.1.2), waiting up to *close_timeout* for it."""
        if self._core.state is not State.CLOSED:
            frame = self._core.send_close(code, reason)
            if frame:
                self._write(frame)
        if self._closed.done():
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), self._close_timeout)
        if not self._closed.done():
            self._abort()
            await asyncio.shield(self._closed)

    def _abort(self) -> None:
        connection = self._connection
        if connection is not None and connection.transport is not None:
            connection.transport.abort()
        else:
            self._receive_eof()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await asyncio.shield(self._closed)

    def __repr__(self) -> str:
        return f"<wsfast.WebSocket {self.url} {self._core.state.name}>"
