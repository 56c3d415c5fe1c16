"""What both clients share above the sans-I/O core: :class:`_Frontend`, the base of the threaded
:class:`~wsfast.WebSocketClient` and of the asyncio :class:`~wsfast.asyncio.WebSocket`.

Written once here: the options a client keeps, its :class:`~wsfast.lifecycle.Lifecycle` and
:class:`~wsfast.pings.Pings`, the log, calling the user's callbacks, the dispatch of what a read with a
control frame completed (PING, PONG, CLOSE, messages), carrying out the lifecycle's keepalive verdicts and
reconnect decisions, the end of a connection, and ``stats()``. A driver subclass owns the I/O: it writes
bytes, aborts TCP (:meth:`_Frontend._abort`), waits and sleeps; its data-only receive path stays inline
for speed. Not in the core: this module reads the clock and takes locks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ._monitor import Monitor, Observable, next_connection_id
from ._typing import BytesLike
from .config import Config
from .exceptions import MessageDecodeError
from .frames import Close, Ping, Pong
from .handshake import Accepted
from .health import Reconnected, Stats
from .http11 import Response
from .lifecycle import GiveUp, Retry, Verdict
from .pings import Pings
from .protocol import ClientProtocol

__all__ = ["LogFunction", "logger"]

logger = logging.getLogger("wsfast")

LogFunction = Callable[[str], None]


class _Frontend(Observable):
    """A client's state and behaviour common to every front-end (see the module docstring).

    Args:
        config: the validated options (:class:`~wsfast.config.Config`).
        events: the client's :class:`~wsfast._monitor.Monitor`, or ``None`` while nothing observes it.
        log_functions: the threaded client's *log*, *errlog* and *debuglog* by level (each may be ``None``).
    """

    def __init__(
        self,
        config: Config,
        events: Monitor | None,
        log_functions: dict[int, LogFunction | None] | None = None,
    ) -> None:
        self._config = config
        self._events = events
        self._log_functions: dict[int, LogFunction | None] = log_functions or {}
        self._on_message: Callable[[Any], Any] | None = config["on_message"]
        self._on_ping: Callable[[bytes], Any] | None = config["on_ping"]
        self._on_pong: Callable[[bytes], Any] | None = config["on_pong"]
        self._on_idle: Callable[[Any], Any] | None = config["on_idle"]
        self._on_connect: Callable[[Any], Any] | None = config["on_connect"]
        self._on_disconnect: Callable[[Any], Any] | None = config["on_disconnect"]
        self._close_timeout: float | None = config["close_timeout"]
        # Keepalive, reconnect decisions and statistics over every connection (wsfast.lifecycle).
        self._lifecycle = config.new_lifecycle()
        self._pings: Pings[Any] = Pings()  # ping() calls waiting for their PONG (a future each)
        self._ping_lock = threading.Lock()  # the threaded client's ping() runs on other threads
        self._stats_lock = threading.Lock()
        self._last_received_at = 0.0  # when the driver last read bytes (monotonic)
        self._last_message_at = 0.0  # when the last data message arrived (monotonic; 0: none)
        self._latency: float | None = None  # the round trip of the last ping() answered
        self._connection_id = -1
        self.response: Response | None = None
        """The handshake response of the current (or last) connection: status and headers."""
        self.subprotocol: str | None = None
        """The subprotocol the server chose, or ``None``."""
        self.reconnected: Reconnected | None = None
        """How the last reconnection went (when the connection was lost and re-established), or
        ``None`` before the first reconnection."""

    # Properties shared by every front-end

    @property
    def connection_id(self) -> int:
        """This connection's number in a process-wide sequence shared by both clients; -1 before the
        first connection."""
        return self._connection_id

    def _monitor_connection_id(self) -> int:
        return self._connection_id

    @property
    def is_reconnecting(self) -> bool:
        """Whether the connection was lost and the client is waiting to reconnect, or reconnecting."""
        return self._lifecycle.reconnecting

    def stats(self) -> Stats:
        """Counters over every connection of this client (messages, bytes, frames, pings, round-trip
        time, reconnects; with the asyncio client's queue, drops and queue depth too), read without
        stopping anything."""
        with self._stats_lock:
            return self._lifecycle.stats(
                now=time.monotonic(),
                wall=time.time(),
                last_message_at=self._last_message_at,
                **self._queue_stats(),
            )

    def _queue_stats(self) -> dict[str, int]:
        """``dropped`` and ``queue_depth`` for :meth:`stats`, when the front-end has a receive queue."""
        return {}

    # Opening, pinging

    def _number(self) -> None:
        """Give the connection about to open the next number of the process-wide sequence."""
        self._connection_id = next_connection_id()
        if (events := self._events) is not None:
            events.connection_id = self._connection_id

    def _opened(self, protocol: ClientProtocol, accepted: Accepted) -> Reconnected | None:
        """Account the connection just opened, whose handshake *accepted* (the driver made *protocol*
        the current one): returns the :class:`~wsfast.Reconnected` marker when it ends a reconnection
        (:attr:`reconnected` then describes the gap), ``None`` for a connection opened by ``connect()``."""
        self._last_received_at = now = time.monotonic()
        with self._stats_lock, self._ping_lock:
            marker = self._lifecycle.opened(
                protocol, now=now, wall=time.time(), connection_id=self._monitor_connection_id()
            )
        if marker is not None:
            self.reconnected = marker
        self.response, self.subprotocol = accepted.response, accepted.subprotocol
        return marker

    def _ping_frame(self, protocol: ClientProtocol, payload: str | BytesLike | None, waiter: Any) -> bytes:
        """The PING frame of a :meth:`ping` call whose PONG *waiter* (a future) waits for, noted as sent
        now (:mod:`wsfast.pings`: ``ValueError`` if a PING with the payload waits already, or it is too long).
        """
        with self._ping_lock:
            data = self._pings.payload(payload)
            frame = protocol.send_ping(data)
            self._pings.sent(data, waiter, time.monotonic())  # the clock of _last_received_at
        return frame

    # Logging and callbacks

    def _log(self, level: int, message: str, *args: object) -> None:
        """Log *message* on the ``wsfast`` logger, prefixed with the connection's number, and give it to
        the log function of its level if the user gave one."""
        function = self._log_functions.get(level)
        if function is None and not logger.isEnabledFor(level):
            return
        text = f"[{self._monitor_connection_id()}] " + (message % args if args else message)
        logger.log(level, "%s", text)
        if function is not None:
            try:
                function(text)
            except Exception:  # a broken log hook must not break the connection
                logger.exception("[%s] log function raised", self._monitor_connection_id())

    def _call(self, function: Callable[[Any], Any], argument: object) -> Any:
        """Call a user's callback; an exception is logged (:meth:`_callback_failed`), never raised."""
        try:
            return function(argument)
        except Exception:
            self._callback_failed(function)
            return None

    def _callback_failed(self, function: Callable[..., Any]) -> None:
        """Log the exception a callback raised (call it from the ``except`` block)."""
        logger.exception("[%s] exception in a callback", self._monitor_connection_id())
        if self._log_functions.get(logging.ERROR) is not None:
            self._log(logging.ERROR, "exception in callback %r", function)

    # What a read with a control frame completed (the data-only path stays in each driver, inline)

    def _received(self, events: list[Any]) -> None:
        """Account the events of one read before any callback runs (a slow callback must not delay a
        PONG: :meth:`wsfast.lifecycle.Lifecycle.received`), noting a data message for the idle watchdog."""
        if self._lifecycle.received(events, self._last_received_at):
            self._last_message_at = self._last_received_at

    def _deliver(self, event: Any, queue: list[Any] | None = None) -> None:
        """Hand one event on: a PING's payload to *on_ping*; a PONG's to the :meth:`ping` calls it answers
        (:mod:`wsfast.pings`: its PING and every earlier one), then to *on_pong*; after the server's CLOSE,
        fail the :meth:`ping` calls still waiting (nothing follows it, RFC 6455 §5.5.1); a message to
        *queue* if given, else to the message callback, where a :class:`~wsfast.MessageDecodeError` (a
        message *loads* rejected, counted in ``stats().decode_errors``) is logged and skipped."""
        kind = type(event)
        if kind is Ping:
            if self._on_ping is not None:
                self._call(self._on_ping, event.payload)
        elif kind is Pong:
            if self._pings:
                with self._ping_lock:  # the time it was read, whatever callbacks ran since
                    answered = self._pings.answered(event.payload, self._last_received_at)
                for waiter, rtt in self._lifecycle.pings_answered(answered):  # the last: stats().last_rtt
                    self._latency = rtt
                    if not waiter.done():
                        waiter.set_result(rtt)
            if self._on_pong is not None:
                self._call(self._on_pong, event.payload)
        elif kind is Close:
            self._log(logging.DEBUG, "server closed: %s %s", event.code, event.reason)
            self._fail_pings(self._lifecycle.protocol)
        elif queue is not None:
            queue.append(event)
        elif kind is MessageDecodeError:
            self._log(logging.ERROR, "skipping a text message that loads() rejected: %s", event)
        elif self._on_message is not None:
            self._call(self._on_message, event)

    def _fail_pings(self, protocol: ClientProtocol | None) -> None:
        """No PONG will come on *protocol*'s connection: the :meth:`ping` calls waiting raise how it ended
        (if it is the current one: a new connection fails those of the one it replaces itself)."""
        if protocol is None:
            return
        with self._ping_lock:
            waiters = self._pings.closed() if self._lifecycle.protocol is protocol else []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(protocol.closed_exception())

    # Carrying out the lifecycle's decisions

    def _abort(self) -> None:
        """Close the TCP connection at once, without waiting for the server (the driver's I/O)."""
        raise NotImplementedError

    def _carry_out(self, verdict: Verdict) -> Any:
        """Act on a keepalive verdict whose bytes were written: log why the core ended the connection,
        abort TCP (the peer is presumed dead: waiting for it would only add delay), or run *on_idle*;
        returns what *on_idle* returned (an awaitable the asyncio driver schedules)."""
        if verdict.ended:
            self._log(logging.ERROR if verdict.abort else logging.INFO, "%s", verdict.ended)
        if verdict.abort:
            self._abort()
            return None
        if verdict.on_idle and self._on_idle is not None:
            self._log(logging.INFO, "no message for %g s", self._lifecycle.idle_timeout)
            return self._call(self._on_idle, self)
        return None

    def _lost(self, protocol: ClientProtocol, **why: Any) -> Retry | GiveUp:
        """The TCP connection of *protocol* ended: fail the :meth:`ping` calls still waiting, tell
        *on_disconnect*, and return the lifecycle's decision (*why*: :meth:`Lifecycle.lost`'s keywords)."""
        self._fail_pings(protocol)
        with self._stats_lock:
            info, decision = self._lifecycle.lost(protocol, now=time.monotonic(), wall=time.time(), **why)
        if self._on_disconnect is not None:
            self._call(self._on_disconnect, info)
        return decision

    def _retrying(self, decision: Retry) -> None:
        self._log(logging.INFO, "reconnecting in %.3g s (attempt %d)", decision.delay, decision.attempt)

    def _attempt_failed(self, decision: Retry, error: BaseException) -> Retry | GiveUp:
        """The connection attempt of *decision* failed with *error*: the lifecycle's next decision."""
        self._log(logging.ERROR, "reconnection attempt %d failed: %s", decision.attempt, error)
        outcome = self._lifecycle.attempt_failed(error)
        if isinstance(outcome, GiveUp):  # close_exception says why: lifecycle.gave_up
            self._log(logging.ERROR, "giving up reconnecting after %d attempts", decision.attempt)
        return outcome
