"""The threaded client, :class:`WebSocketClient`: callbacks run on one event thread per client.

A driver, nothing more: the opening is :mod:`wsfast.opening`'s (executed by :mod:`wsfast._opening_sync`),
every protocol decision :class:`~wsfast.protocol.ClientProtocol`'s, keepalive, reconnecting and statistics
:class:`~wsfast.lifecycle.Lifecycle`'s, ``ping()`` bookkeeping :class:`~wsfast.pings.Pings`', the options
:class:`~wsfast.config.Config`'s; what both clients do with them (callbacks, event dispatch, carrying out
verdicts and reconnect decisions, ``stats()``) is written once in :class:`~wsfast._frontend._Frontend`.
This module owns the socket, the event thread, the write lock and the waits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import codec
from ._frontend import LogFunction, _Frontend, logger
from ._monitor import Monitor, Subscriber
from ._opening_sync import open_connection, readable_waiter
from ._typing import BytesLike
from .config import Config, checks_options
from .deflate import Deflate
from .exceptions import ConcurrencyError, ConnectionClosed
from .frames import CloseCode
from .handshake import Accepted
from .health import (
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    Disconnected,
    ReconnectPolicy,
)
from .http11 import Response
from .lifecycle import ATTEMPT_ERRORS, GiveUp, Retry
from .options import THREADED, get_option
from .protocol import ClientProtocol, FrameAction, State

__all__ = ["DEFAULT_USER_AGENT", "FrameAction", "WebSocketClient"]

# The registry (wsfast.options.OPTIONS) defines every default once; these names read it.
DEFAULT_USER_AGENT: str = get_option("user_agent").default
DEFAULT_TIMEOUT: float = get_option("timeout").default  # each blocking socket operation (the reference's)
DEFAULT_CLOSE_TIMEOUT: float = get_option("close_timeout").default
RECEIVE_BUFFER_SIZE = 256 * 1024

MessageCallback = Callable[[Any], None]
CloseCallback = Callable[[int, str], None]
PayloadCallback = Callable[[bytes], None]
RawHook = Callable[[Any], "FrameAction | int | None"]
ClientHook = Callable[["WebSocketClient"], None]
DisconnectCallback = Callable[[Disconnected], None]


def _shut(sock: socket.socket, how: int) -> None:
    """Shut *sock* down (``SHUT_WR``: nothing more is sent; ``SHUT_RDWR``: abort, waking a reader)."""
    with contextlib.suppress(OSError):  # already shut, or the peer is gone: either way it is done
        sock.shutdown(how)


class WebSocketClient(_Frontend):
    """A WebSocket client whose callbacks run on its own event thread.

    Example::

        def on_message(message):          # str for TEXT, bytes for BINARY, on the event thread
            print(message)

        def on_connect(client):           # after every (re)connection, before any message of it
            client.send('{"op": "subscribe", "args": ["trades.BTCUSDT"]}')

        client = WebSocketClient(
            on_message, "wss://stream.example.com/ws", on_connect=on_connect, reconnect=True
        )
        client.connect()
        client.wait()

    Args:
        callback: called with each message, on the event thread: ``str`` for TEXT, ``bytes`` for BINARY,
            or what *loads* returned (``None``: give it as *on_message*).
        url: a ``ws://`` or ``wss://`` URL; ``user:password@`` becomes Basic auth.
        on_close: ``on_close(code, reason)``, exactly once and last, however the connection ended.
        on_connect: ``on_connect(client)`` after every connection and reconnection, before any of its
            messages: send subscriptions here.
        reconnect: ``True`` or a :class:`~wsfast.ReconnectPolicy`: reconnect whenever a connection is lost.

    Every option, its default and what it does is described once, in :mod:`wsfast.options` (rendered in
    docs/options.md). :class:`wsfast.config.Config` validates them all here, at construction: unknown
    names get a "did you mean", headers are checked before TCP is open.
    """

    @checks_options(THREADED)
    def __init__(
        self,
        callback: MessageCallback | None,
        url: str,
        *,
        on_message: MessageCallback | None = None,
        on_close: CloseCallback | None = None,
        on_ping: PayloadCallback | None = None,
        on_pong: PayloadCallback | None = None,
        raw_hook: RawHook | None = None,
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
        text_as_bytes: bool = False,
        loads: Callable[[bytes], Any] | None = None,
        compression: Deflate | str | None = None,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        idle_timeout: float | None = None,
        on_idle: ClientHook | None = None,
        reconnect: ReconnectPolicy | bool = False,
        on_connect: ClientHook | None = None,
        on_disconnect: DisconnectCallback | None = None,
        log: LogFunction | None = None,
        errlog: LogFunction | None = None,
        debuglog: LogFunction | None = None,
        events: Subscriber | None = None,
        warn_slow_operation: float | None = None,
        warn_low_throughput: float | None = None,
        implementation: str | None = None,
    ) -> None:
        # Every option checked against wsfast.options.OPTIONS, derived values computed once. The message
        # callback is the positional one or on_message (config["on_message"]: _Frontend's _on_message).
        config = Config.build(THREADED, locals())
        monitor = Monitor.create(events, warn_slow_operation, warn_low_throughput)
        super().__init__(config, monitor, {logging.INFO: log, logging.ERROR: errlog, logging.DEBUG: debuglog})
        self._connect_config = config  # connect()'s, with its headers
        self._url = config.url
        self._on_close, self._raw_hook = on_close, raw_hook
        self._connect_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._protocol: ClientProtocol | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._closed.set()
        self._stop = threading.Event()  # set by disconnect(): no reconnect after it

    # Properties

    @property
    def url(self) -> str:
        """The URL given to the constructor, without its password (as the asyncio client's
        :attr:`wsfast.asyncio.WebSocket.url`): safe to log or show."""
        return self._url.safe_url()

    @property
    def is_open(self) -> bool:
        """Whether the connection is open: messages can be sent and received."""
        protocol = self._protocol
        return protocol is not None and protocol.state is State.OPEN and not self._closed.is_set()

    @property
    def close_code(self) -> int | None:
        """How the last connection ended (see *on_close*), or ``None`` while open or never connected."""
        protocol = self._protocol
        return protocol.close_code if protocol is not None and self._closed.is_set() else None

    @property
    def close_reason(self) -> str | None:
        """The reason of :attr:`close_code`, or ``None`` while open or never connected."""
        protocol = self._protocol
        return protocol.close_reason if protocol is not None and self._closed.is_set() else None

    @property
    def close_exception(self) -> ConnectionClosed | None:
        """The :class:`~wsfast.ConnectionClosed` describing how the last connection ended (a
        :class:`~wsfast.KeepaliveTimeout` after a missed PONG, say; why reconnecting gave up, once it
        did), or ``None`` while open."""
        if not self._closed.is_set():
            return None
        return self._lifecycle.closed_exception()

    def _on_event_thread(self) -> bool:
        """Whether the caller is the event thread: a callback."""
        thread = self._thread
        return thread is not None and threading.current_thread() is thread

    # Connecting

    def connect(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> Response:
        """Open the connection and start the event thread; return the handshake response.

        An open connection is closed first (1001, Going Away). *headers* are added to the constructor's
        for this connection and its reconnections. This first connection is not retried, whatever
        *reconnect* says. *on_connect* runs on the event thread before this returns; if it raises, the
        connection is failed (1011) and this raises what it raised.

        Raises:
            HandshakeError: the server refused the upgrade (the error has its status, headers and body),
                or redirected too often.
            ProxyError: the proxy refused the tunnel (HTTP status or SOCKS reply code; also a HandshakeError).
            InvalidURL: a redirect points somewhere wsfast cannot follow.
            OpeningError: TCP, TLS (:class:`~wsfast.TLSError`) or the proxy failed; ``hop`` says where
                (an ``OSError``); :class:`~wsfast.OpenTimeout` after *open_timeout* (a ``TimeoutError``);
                the socket given with *sock* served a connection already.
        """
        with self._connect_lock:
            if self._thread is not None and self._thread.is_alive():
                self._disconnect(CloseCode.GOING_AWAY, "", self._close_timeout)
            config = self._config.with_headers(headers)  # for this connection and its reconnections
            sock, accepted = self._open(config)
            self._connect_config = config
            self._stop = stop = threading.Event()
            self.reconnected = None
            protocol = self._install(sock, accepted)
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = thread = threading.Thread(
                target=self._run, args=(sock, protocol, accepted.leftover, stop, ready), daemon=True
            )
            thread.start()
        # on_connect runs on the event thread; wait for its outcome outside the lock, so that an
        # on_connect calling connect() or disconnect() does not wait for itself.
        failure = ready.exception()
        if failure is not None:  # the event thread failed the connection (1011); none follows
            thread.join(self._close_timeout)
            raise failure
        return accepted.response

    def _open(self, config: Config) -> tuple[socket.socket, Accepted]:
        """Number and open a new connection as *config* says: :func:`~wsfast._opening_sync.open_connection`
        executes what its :class:`~wsfast.opening.Opening` decides, within *open_timeout*."""
        self._number()
        sock, accepted, url = open_connection(config, self._events)
        if url != self._url:
            self._log(logging.INFO, "redirected from %s to %s", self._url, url)
        sock.settimeout(self._config["timeout"])
        return sock, accepted

    def _install(self, sock: socket.socket, accepted: Accepted) -> ClientProtocol:
        """Make a new connection the current one (:attr:`reconnected` describes the gap it ends)."""
        protocol = self._config.new_protocol(accepted.compression)
        if self._protocol is not None:  # connect() again: the old event thread may still be ending
            self._fail_pings(self._protocol)
        with self._write_lock:
            self._sock, self._protocol = sock, protocol
            self._closed = threading.Event()  # one per connection: an old thread can't clear it
            self._opened(protocol, accepted)
        self._log(logging.INFO, "connected to %s (HTTP %s)", self._url, accepted.response.status)
        return protocol

    # The event thread

    def _run(
        self,
        sock: socket.socket,
        protocol: ClientProtocol,
        leftover: bytes,
        stop: threading.Event,
        ready: concurrent.futures.Future[None],
    ) -> None:
        """The event thread: serve the connection, then each reconnection the lifecycle decides. *ready*
        gets the outcome of the first connection's *on_connect*, which :meth:`connect` waits for."""
        try:
            while True:
                threading.current_thread().name = f"wsfast-{self._connection_id}"
                failed = self._connected(sock, protocol, ready)  # before any message of the connection
                error = self._serve(sock, protocol, leftover) or failed
                # reconnect() asked for a new one: Lifecycle.request_reconnect()
                decision = self._lost(protocol, error=error, stopped=stop.is_set())
                opened = self._reconnect_with_backoff(decision, stop)
                if opened is None:
                    return
                sock, accepted = opened
                protocol, leftover = self._install(sock, accepted), accepted.leftover
                if stop.is_set():  # disconnect() came while the new connection was being installed
                    self._send_close(CloseCode.NORMAL_CLOSURE, "")
        except BaseException as exc:  # a bug: report it; on_close still runs
            logger.exception("[%s] event thread failed", self._connection_id)
            if not ready.done():
                ready.set_exception(exc)
        finally:
            if self._on_close is not None:
                try:
                    self._on_close(protocol.close_code, protocol.close_reason)
                except Exception:
                    logger.exception("[%s] exception in on_close", self._connection_id)

    def _connected(
        self, sock: socket.socket, protocol: ClientProtocol, ready: concurrent.futures.Future[None]
    ) -> BaseException | None:
        """Run *on_connect* before any message of the connection; if it raises, fail the connection
        (1011) and return the error (given to :meth:`connect` through *ready* the first time)."""
        error: BaseException | None = None
        if self._on_connect is not None:
            try:
                self._on_connect(self)
            except Exception as exc:
                self._callback_failed(self._on_connect)
                error = exc
                with self._write_lock, contextlib.suppress(OSError):
                    sock.sendall(self._lifecycle.on_connect_failed(exc))  # the CLOSE (1011)
                    sock.shutdown(socket.SHUT_WR)  # RFC 6455 §7.1.7: nothing more is sent
        if not ready.done():
            if error is None:
                ready.set_result(None)
            else:
                ready.set_exception(error)
        return error

    def _reconnect_with_backoff(
        self, decision: Retry | GiveUp, stop: threading.Event
    ) -> tuple[socket.socket, Accepted] | None:
        """Reconnect as the lifecycle decides; ``None`` if it gives up or :meth:`disconnect` stops it."""
        while isinstance(decision, Retry):
            self._retrying(decision)
            if stop.wait(decision.delay):
                break
            try:
                sock, accepted = self._open(self._connect_config)
            except ATTEMPT_ERRORS as exc:  # OSError: TimeoutError and the opening errors too
                decision = self._attempt_failed(decision, exc)
                continue
            if not stop.is_set():
                return sock, accepted
            self._shutdown(sock)
            break
        else:
            return None  # no reconnection wanted, or the lifecycle gave up
        self._lifecycle.cancel()  # disconnect() stopped it
        return None

    def _serve(self, sock: socket.socket, protocol: ClientProtocol, leftover: bytes) -> OSError | None:
        """Read and process one connection until it is closed; return the error that ended it, if any.
        Keepalive and the idle watchdog bound the silence; once a CLOSE was sent (or the connection
        failed), the server has *close_timeout* to close TCP (RFC 6455 §7.1.1)."""
        error: OSError | None = None
        closed = self._closed
        heartbeat = self._lifecycle.heartbeat  # its deadline: when to ask the lifecycle for a verdict
        assert heartbeat is not None
        try:
            if leftover:
                self._last_received_at = time.monotonic()
                self._process(sock, protocol, leftover)
            buffer = bytearray(RECEIVE_BUFFER_SIZE)
            view = memoryview(buffer)
            wait_readable = readable_waiter(sock) if heartbeat.enabled else None
            deadline: float | None = None
            closed_state = State.CLOSED  # a local: an enum attribute costs ~70 ns on 3.11
            while protocol.state is not closed_state:
                if deadline is None and protocol.close_sent is not None and self._close_timeout is not None:
                    deadline = time.monotonic() + self._close_timeout
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    sock.settimeout(remaining)
                elif (
                    wait_readable is not None
                    and heartbeat.deadline is not None
                    and not wait_readable(heartbeat.deadline - time.monotonic())
                ):
                    # Nothing arrived before the next keepalive or idle decision. The socket is always
                    # read before a verdict, so a PONG waiting behind a slow callback still counts.
                    self._beat(sock)
                    continue
                try:
                    size = sock.recv_into(view)
                except TimeoutError:
                    if deadline is not None:
                        break  # the server did not finish the closing handshake in time
                    continue
                if not size:
                    break
                self._last_received_at = now = time.monotonic()
                if (events := self._events) is not None:  # a local: unsubscribe() may run concurrently
                    events.data_read(view[:size])
                self._process(sock, protocol, view[:size])
                if heartbeat.deadline is not None and now >= heartbeat.deadline and deadline is None:
                    self._beat(sock)  # a busy stream (or a trickle) never waits for a quiet moment
        except OSError as exc:
            if protocol.state is State.OPEN:
                error = exc
        finally:
            protocol.receive_eof()
            self._shutdown(sock)
            if protocol.error is not None:
                self._log(logging.ERROR, "failed the connection: %s", protocol.error)
            elif error is not None:
                self._log(logging.ERROR, "connection lost: %s", error)
            self._log(logging.INFO, "closed: %s %s", protocol.close_code, protocol.close_reason)
            closed.set()
            self._fail_pings(protocol)
        return error

    def _beat(self, sock: socket.socket) -> None:
        """Carry out the keepalive and idle verdicts due now (:meth:`wsfast.lifecycle.Lifecycle.beat`)."""
        with self._write_lock:
            verdict = self._lifecycle.beat(time.monotonic(), self._last_message_at)
            if verdict.data:
                with contextlib.suppress(OSError):  # a dead peer shows up as the PONG's absence
                    sock.sendall(verdict.data)
        self._carry_out(verdict)

    def _abort(self) -> None:
        if (sock := self._sock) is not None:
            _shut(sock, socket.SHUT_RDWR)  # wakes the event thread's recv

    def _process(self, sock: socket.socket, protocol: ClientProtocol, data: BytesLike) -> None:
        """Hand what *data* completes to the protocol, then to the callbacks. A raw hook sees each event
        first, and the protocol acts as it says (:meth:`~wsfast.protocol.ClientProtocol.process_as`)."""
        hook = self._raw_hook
        # The protocol's state and its encoder are shared with sending threads: every change to them,
        # and every write, happens under the write lock. Callbacks run outside it (they may send).
        with self._write_lock:
            if hook is None:
                events = protocol.receive_data(data, defer_failure=True)
                self._flush(sock, protocol)
            else:
                events = protocol.receive_events(data)
        if hook is None and not protocol.last_had_control:
            # Data messages only: hand them on without looking at their types.
            if events:
                self._last_message_at = self._last_received_at
            if (callback := self._on_message) is not None:
                for message in events:
                    try:
                        callback(message)
                    except Exception:
                        self._callback_failed(callback)
            return
        self._received(events)  # PONGs first, for keepalive
        for event in events:
            if hook is not None:
                action = None if protocol.hook_stopped else self._call(hook, event)
                with self._write_lock:
                    deliver = protocol.process_as(event, action)
                    self._flush(sock, protocol)
                if not deliver:
                    continue
            self._deliver(event)
        if protocol.failure_pending:
            # The messages before the bad frame were handled first (frames are processed in order);
            # now fail the connection.
            with self._write_lock:
                protocol.finish_receive()
                self._flush(sock, protocol)

    def _flush(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        """Write the protocol's replies; after failing the connection, half-close it. Holds the lock."""
        reply = protocol.data_to_send()
        if reply:
            self._write(sock, reply)
        if protocol.failed:
            # RFC 6455 §7.1.7: after the CLOSE that fails the connection, stop sending at once. A
            # half-close (not a full close, which turns into a RST while the server still streams and
            # can destroy our CLOSE before it is read) lets the server see the close code.
            _shut(sock, socket.SHUT_WR)

    def _shutdown(self, sock: socket.socket) -> None:
        _shut(sock, socket.SHUT_RDWR)
        sock.close()
        if (events := self._events) is not None:
            events.closed()

    # Sending

    def _write(self, sock: socket.socket, data: bytes) -> None:
        """Write *data* whole, reporting it to the subscribers. The caller holds the write lock."""
        if (events := self._events) is None:  # a local: unsubscribe() may run concurrently
            sock.sendall(data)
        else:
            events.send(sock.sendall, data)

    def _send_frame(self, build: Callable[[ClientProtocol], bytes]) -> None:
        """Build a frame with the current connection's protocol and write it, under the write lock (which the
        event thread holds while the protocol reacts to data): frames never interleave."""
        sock, protocol = self._sock, self._protocol
        if sock is None or protocol is None:
            raise ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, "not connected")
        with self._write_lock:
            frame = build(protocol)
            try:
                if (events := self._events) is None:  # _write(), inline: every send comes here
                    sock.sendall(frame)
                else:
                    events.send(sock.sendall, frame)
            except OSError as exc:
                # Part of the frame may be on the wire (a send timeout): nothing more can be sent, so the
                # connection is finished. The shutdown wakes the event thread, which reports 1006.
                _shut(sock, socket.SHUT_RDWR)
                raise ConnectionClosed(CloseCode.ABNORMAL_CLOSURE, f"send failed: {exc}") from exc

    def send(self, data: str | BytesLike) -> None:
        """Send a message: ``str`` as TEXT, any bytes-like object as BINARY. Thread-safe.

        Raises:
            ConnectionClosed: the connection is not open.
        """
        if isinstance(data, str):
            self._send_frame(lambda protocol: protocol.send_text(data))
        else:
            self._send_frame(lambda protocol: protocol.send_binary(data))

    def send_frame(self, data: str | BytesLike, opcode: int, fin: bool = True) -> None:
        """Send one raw frame, e.g. to fragment a message by hand: ``send_frame(part, Opcode.TEXT,
        fin=False)``, then ``send_frame(part, Opcode.CONT, fin=False)``... and a last CONT with ``fin=True``.

        Raises:
            ValueError: reserved opcode, fragmented or oversized control frame, or CLOSE (use disconnect).
            ConnectionClosed: the connection is not open.
        """
        self._send_frame(lambda protocol: protocol.send_frame(data, opcode, fin))

    def ping(self, payload: str | BytesLike | None = None, *, timeout: float | None = None) -> float:
        """Send a PING and wait for its PONG; return the round-trip time in seconds, which
        ``stats().last_rtt`` then reports. Thread-safe.

        *payload* (at most 125 bytes) defaults to 4 random bytes, so concurrent pings are told apart; a
        PONG answers its PING and every earlier one (RFC 6455 §5.5.3). The time is taken when the PONG
        is read from the socket, before any callback runs.

        Raises:
            ValueError: a PING with this payload already waits for its PONG, or it is over 125 bytes.
            ConnectionClosed: the connection is not open, or it ended before the PONG.
            TimeoutError: no PONG within *timeout* seconds (the connection stays open).
            ConcurrencyError: called from a callback (the event thread), which alone reads the PONG: send
                the PING with ``send_frame(payload, Opcode.PING)`` and see the PONG in *on_pong*.
        """
        if self._on_event_thread():
            raise ConcurrencyError(
                "ping() called from a callback: it would wait for a PONG that only this event thread "
                "reads; send the PING with send_frame(payload, Opcode.PING) and see the PONG in on_pong"
            )
        waiter: concurrent.futures.Future[float] = concurrent.futures.Future()  # settled by the event thread
        try:
            self._send_frame(lambda protocol: self._ping_frame(protocol, payload, waiter))
            return waiter.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no PONG within {timeout} s") from None
        finally:
            with self._ping_lock:
                self._pings.forget(waiter)

    def pong(self, payload: str | BytesLike = b"") -> None:
        """Send a PONG: the answer to a PING from an *on_ping* hook, or a unidirectional keep-alive."""
        self._send_frame(lambda protocol: protocol.send_pong(payload))

    def _send_close(self, code: int, reason: str) -> None:
        """Start the closing handshake of the current connection, if there is one and it is open."""
        with self._write_lock:
            sock, protocol = self._sock, self._protocol
            frame = protocol.send_close(code, reason) if protocol is not None else b""
            if sock is not None and frame:
                with contextlib.suppress(OSError):  # if the server is gone, the event thread reports 1006
                    self._write(sock, frame)

    # Closing

    def disconnect(
        self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "", timeout: float | None = None
    ) -> None:
        """Close the connection with a closing handshake (RFC 6455 §7.1.2).

        Waits up to *timeout* (default: *close_timeout*) for the server's CLOSE and the end of the event
        thread, then closes the socket regardless. From a callback it starts the handshake and returns at
        once (the event thread finishes it), so it never deadlocks.

        Raises:
            ValueError: *code* may not be sent (RFC 6455 §7.4) or *reason* is over 123 bytes.
        """
        with self._write_lock:
            self._stop.set()  # no reconnection after this
        if self._on_event_thread():
            # From a callback: start the closing handshake; the event thread (this one) finishes it.
            # No lock is taken, so a connect() waiting for this thread cannot deadlock with it.
            self._send_close(code, reason)
            return
        with self._connect_lock:
            self._disconnect(code, reason, self._close_timeout if timeout is None else timeout)

    def _disconnect(self, code: int, reason: str, timeout: float | None) -> None:
        with self._write_lock:
            self._stop.set()
            sock, thread = self._sock, self._thread
        if sock is None or thread is None:
            return
        self._send_close(code, reason)
        if threading.current_thread() is thread:
            return
        thread.join(timeout)
        if thread.is_alive():
            _shut(sock, socket.SHUT_RDWR)  # wakes the event thread's recv
            thread.join(timeout)
            if thread.is_alive():
                self._log(logging.ERROR, "event thread still busy in a callback after disconnect()")

    def reconnect(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the current connection (closing handshake with *code*) and open a new one at once, on
        the same event thread, whatever *reconnect* says (its policy paces further attempts if the first
        fails). ``on_disconnect`` and ``on_connect`` run as for any reconnection. Not connected: the
        same as :meth:`connect`.
        """
        thread = self._thread
        if thread is None or not thread.is_alive():
            self.connect()
            return
        if self._lifecycle.request_reconnect():  # else a reconnection is already under way
            self._send_close(code, reason)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the connection is closed (and *on_close* has run); ``False`` on timeout.

        With *reconnect*, that is when no connection will follow: after :meth:`disconnect`, a refused
        reconnection, or the policy's last attempt. :attr:`close_exception` then says why (a
        :class:`~wsfast.KeepaliveTimeout`, say, or a :class:`~wsfast.ConnectionClosedError` that gave up).

        Raises:
            ConcurrencyError: called from a callback, which would wait for its own event thread.
        """
        thread = self._thread
        if thread is None:
            return True
        if self._on_event_thread():
            raise ConcurrencyError(
                "wait() called from a callback would wait for the event thread, this one, to end: "
                "call disconnect() there, and wait() from another thread"
            )
        thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> WebSocketClient:
        if not self.is_open:
            self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.disconnect(CloseCode.NORMAL_CLOSURE if exc_type is None else CloseCode.GOING_AWAY)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<WebSocketClient {self._url} {state} id={self._connection_id}>"
