"""A client's life across connections, sans-I/O: keepalive actions, reconnect decisions, events, totals.

Every front-end (the threaded :class:`~wsfast.WebSocketClient`, the asyncio :class:`~wsfast.WebSocket`)
keeps one :class:`Lifecycle` and asks it what to do; the front-end only waits, owns sockets or
transports, threads or tasks, and runs the user's callbacks. The driver gives the clock (``now``: seconds
on a monotonic clock; ``wall``: seconds since the epoch), so nothing here sleeps or reads a clock.

A driver's loop::

    lifecycle.opened(protocol, now=..., wall=..., connection_id=...)   # after each handshake
    ...
    at lifecycle.deadline:  verdict = lifecycle.beat(now, last_message_at, late=now - deadline)
                            write verdict.data; abort TCP if verdict.abort; run on_idle if verdict.on_idle
                            (verdict.again: the timer fired late; beat again that much later)
    the connection left OPEN:
                            action = closing(protocol): write action.data; half-close if
                            action.half_close; abort after close_timeout if action.await_close
    for each PONG:          lifecycle.pong_received(payload, now)
                            (or, for every event read: received(events, now), before any callback)
                            settle lifecycle.pings_answered(pings.answered(payload, now))   (ping())
    when TCP ended:         info, decision = lifecycle.lost(protocol, now=..., wall=..., ...)
                            on_disconnect(info)
    while decision is a Retry:
                            wait decision.delay, then open a connection:
                            ok: reconnected = lifecycle.opened(...)          (a Reconnected marker)
                            failed: decision = lifecycle.attempt_failed(error)
    GiveUp(error):          no connection follows; error says why reconnecting gave up (None when no
                            reconnection was wanted: no policy, close()/disconnect(), a failed first
                            on_connect)
    a reader waits:         lifecycle.may_follow(stopped=...): wait across a reconnection, or end

The decisions:

* Keepalive (RFC 6455 §5.5.2, :class:`~wsfast.health.Heartbeat`): a PING every *ping_interval*; proof of
  life after it is a *complete frame* received since (a message or control frame completed, or two frame
  headers read: ``ClientProtocol.frames_received`` counts a frame when its header is read), not any
  byte, so a server that trickles an unfinished frame is failed with 1011 (:class:`~wsfast.KeepaliveTimeout`)
  after *ping_timeout*, and the TCP connection is aborted at once (the peer is presumed dead).
* The idle watchdog: no data message within *idle_timeout*: run ``on_idle`` if there is one, else close
  with 1001 (:class:`~wsfast.IdleTimeout`).
* Reconnecting (:class:`~wsfast.ReconnectPolicy`): exponential backoff with jitter; ``reconnect()``
  (:meth:`Lifecycle.request_reconnect`) forces one (its first attempt at once, the default policy if none
  was given), unless one is under way; close()/disconnect()
  stops; the attempt count starts again after a connection that lasted *stable_after* seconds; a refusal
  that will not change by itself gives up at once: :class:`~wsfast.InvalidURL`, a handshake refused with
  4xx (but 408, 425, 429: RFC 9110 §15.5.9, RFC 8470 §5.2, RFC 6585 §4) and a proxy refusing with 4xx
  (407: credentials, 403: forbidden).
* An exception in ``on_connect`` fails that connection (1011); after the first connection no reconnection
  follows (``connect()`` raises it), after a reconnection the policy applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    IdleTimeout,
    InvalidURL,
    KeepaliveTimeout,
    ProxyError,
)
from .frames import Close, CloseCode, Ping, Pong
from .health import (
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
from .protocol import ClientProtocol, State

__all__ = ["ATTEMPT_ERRORS", "LATE_TIMER", "Closing", "GiveUp", "Lifecycle", "Retry", "Verdict", "closing"]

# What a failed connection attempt may raise and reconnecting judges (OpeningError, OpenTimeout,
# TLSError are OSErrors; ProxyError and InvalidStatus are HandshakeErrors). Anything else is a bug.
ATTEMPT_ERRORS: tuple[type[BaseException], ...] = (HandshakeError, OSError, InvalidURL)

LATE_TIMER = 0.05
"""Seconds a keepalive timer may fire late before :meth:`Lifecycle.beat` defers a verdict of death: an
event loop that was busy (uvloop runs due timers before it polls the socket) reads what arrived first."""

# Refusals that may go away by themselves: 408 Request Timeout, 425 Too Early, 429 Too Many Requests.
_TRANSIENT_4XX = (408, 425, 429)

W = TypeVar("W")


@dataclasses.dataclass(frozen=True)
class Retry:
    """Open a new connection after *delay* seconds; it is attempt number *attempt* (1-based) of this
    reconnection."""

    delay: float
    attempt: int


@dataclasses.dataclass(frozen=True)
class GiveUp:
    """No connection follows.

    Attributes:
        error: why reconnecting gave up (a :class:`~wsfast.ConnectionClosedError` whose reason says after
            how many attempts, and the last attempt's error), or ``None`` when no reconnection was wanted.
    """

    error: ConnectionClosedError | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the driver does after :meth:`Lifecycle.beat`.

    Attributes:
        data: bytes to write now (keepalive PING, the CLOSE that fails or closes the connection).
        abort: close the TCP connection now, without waiting for the server (after a keepalive timeout).
        on_idle: run the ``on_idle`` hook.
        ended: why the core ended the connection (for the log), ``""`` if it did not.
        again: the timer fired late and a verdict of death was due: decide nothing yet, read what
            arrived meanwhile and call :meth:`Lifecycle.beat` again this many seconds from now.
    """

    data: bytes = b""
    abort: bool = False
    on_idle: bool = False
    ended: str = ""
    again: float = 0.0


@dataclasses.dataclass(frozen=True)
class Closing:
    """What the driver does once a connection left OPEN (see :func:`closing`).

    Attributes:
        data: bytes to write now (the CLOSE that fails the connection, the reply to the server's CLOSE).
        half_close: stop sending at once (RFC 6455 §7.1.7, after the CLOSE that fails the connection):
            shut the write side down, not the whole socket, which turns into a RST while the server still
            streams and can destroy our CLOSE before it is read; then the server closes TCP.
        await_close: the server is to close TCP now (RFC 6455 §7.1.1): bound the wait with
            *close_timeout*, then abort. ``False`` while our CLOSE waits for its answer (``close()``
            bounds that wait itself).
    """

    data: bytes
    half_close: bool
    await_close: bool


def closing(protocol: ClientProtocol) -> Closing:
    """What to do now that *protocol*'s connection is no longer OPEN (failed, closed by the server, or
    closing): the bytes to send, whether to half-close, whether the server's TCP close is due."""
    failed = protocol.failed
    return Closing(protocol.data_to_send(), failed, failed or protocol.handshake_complete)


_NOTHING = Verdict()


class Lifecycle:
    """The life of one client across its connections (see the module docstring for the driver's loop).

    Not thread-safe: a threaded driver serialises the calls that change the counters (:meth:`opened`,
    :meth:`lost`, :meth:`stats`) and those that change the protocol (:meth:`beat`,
    :meth:`on_connect_failed`) with the locks it already holds for them.

    Args:
        ping_interval, ping_timeout, idle_timeout: as for :class:`~wsfast.health.Heartbeat` (validated).
        on_idle: whether the client has an ``on_idle`` hook (else an idle connection is closed).
        reconnect: ``True``, a :class:`~wsfast.ReconnectPolicy`, or ``False``/``None`` (no reconnection).
        rand: draws the backoff's jitter (default :func:`random.random`); tests pass a constant.
    """

    def __init__(
        self,
        *,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        idle_timeout: float | None = None,
        on_idle: bool = False,
        reconnect: ReconnectPolicy | bool | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        Heartbeat(ping_interval, ping_timeout, idle_timeout, now=0.0)  # validates the three
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.idle_timeout = idle_timeout
        self.on_idle = on_idle
        self.policy = to_reconnect_policy(reconnect)
        self._rand = rand
        # The current (or last) connection.
        self.protocol: ClientProtocol | None = None
        self.heartbeat: Heartbeat | None = None
        self.connection_id = -1
        self._opened_at = 0.0
        self._fresh = True  # the current connection was opened by connect(), not by reconnecting
        self._connect_error: BaseException | None = None  # what on_connect raised on this connection
        # Totals.
        self.connections = 0
        self.reconnects = 0
        self.connected_at: float | None = None
        self.last_rtt: float | None = None
        self._totals = dict.fromkeys(PROTOCOL_COUNTERS, 0)
        self._counted: ClientProtocol | None = None  # the last protocol whose counters are in _totals
        # The reconnection under way (None: none).
        self._retrying: ReconnectPolicy | None = None
        self._failures = 0  # consecutive reconnections that did not last stable_after seconds
        self._attempt = 0
        self._immediately = False
        self._requested = False  # reconnect() was called: the next lost() reconnects at once
        self._lost_at = 0.0
        self._lost_code = int(CloseCode.ABNORMAL_CLOSURE)
        self._lost_reason = ""
        self._lost_received = False
        self._over = False  # no connection follows the last one (lost() or attempt_failed() gave up)
        self.gave_up: ConnectionClosedError | None = None
        """Why reconnecting gave up, once it did (until the next :meth:`opened` by ``connect()``)."""

    # Connections

    @property
    def reconnecting(self) -> bool:
        """Whether a connection was lost and a reconnection is being waited for or attempted."""
        return self._retrying is not None

    def may_follow(self, *, stopped: bool) -> bool:
        """Whether another connection may still follow the current one: there is a reconnect policy,
        ``close()``/``disconnect()`` was not called (*stopped*), and reconnecting has not given up. A
        reader waiting for a message waits across the gap then, rather than ending."""
        return self.policy is not None and not stopped and not self._over

    def opened(
        self, protocol: ClientProtocol, *, now: float, wall: float, connection_id: int
    ) -> Reconnected | None:
        """A connection is open (handshake done) with *protocol*; returns the :class:`~wsfast.Reconnected`
        marker when it ends a reconnection, ``None`` for a connection opened by ``connect()``."""
        self.protocol = protocol
        self.heartbeat = Heartbeat(self.ping_interval, self.ping_timeout, self.idle_timeout, now=now)
        self.connection_id = connection_id
        self.connections += 1
        self.connected_at = wall
        self._opened_at = now
        self._connect_error = None
        self._over = False
        policy, self._retrying = self._retrying, None
        if policy is None:
            self._fresh = True
            self._failures = 0
            self.gave_up = None
            return None
        self._fresh = False
        self._failures += 1  # until this one lasts stable_after seconds
        self.reconnects += 1
        return Reconnected(
            self._lost_at, wall, self._attempt, self._lost_code, self._lost_reason, connection_id
        )

    def request_reconnect(self) -> bool:
        """``reconnect()`` was called: when the connection's end comes, :meth:`lost` reconnects at once (the
        default policy if none was given). ``False`` while a reconnection is under way: nothing to do.
        The driver then starts the closing handshake."""
        if self._retrying is not None:
            return False
        self._requested = True
        return True

    def on_connect_failed(self, error: BaseException) -> bytes:
        """``on_connect`` raised: fail the connection (1011) and return the CLOSE to write. After the
        first connection no reconnection follows (``connect()`` raises *error*); after a reconnection
        the policy applies."""
        protocol = self.protocol
        if protocol is None:
            return b""
        self._connect_error = error
        protocol.fail(CloseCode.INTERNAL_ERROR, f"on_connect failed: {type(error).__name__}: {error}")
        return protocol.data_to_send()

    def lost(
        self,
        protocol: ClientProtocol,
        *,
        now: float,
        wall: float,
        error: BaseException | None = None,
        forced: bool = False,
        stopped: bool = False,
        fatal: bool = False,
    ) -> tuple[Disconnected, Retry | GiveUp]:
        """The TCP connection of *protocol* ended: what to tell ``on_disconnect``, and whether to reconnect.

        Args:
            error: what ended it, when the driver knows better than the protocol (an ``OSError``);
                otherwise what ``on_connect`` raised, or the protocol's :class:`~wsfast.ConnectionClosed`
                (``None`` after a clean closing handshake).
            forced: ``reconnect()`` asked for a new connection (at once; the default policy if none), as
                :meth:`request_reconnect` says too.
            stopped: ``close()``/``disconnect()`` was called: no reconnection.
            fatal: the driver found the client unusable (e.g. a receive queue overflow): no reconnection.
        """
        self._count(protocol)
        forced, self._requested = forced or self._requested, False
        policy = self.policy or (ReconnectPolicy() if forced else None)
        first_failed = self._fresh and self._connect_error is not None  # connect() raised it
        retry = policy is not None and not stopped and not fatal and not first_failed
        if error is None:
            error = self._connect_error
        closed = protocol.closed_exception()
        info = Disconnected(
            int(protocol.close_code),
            protocol.close_reason,
            wall,
            error if error is not None else (None if isinstance(closed, ConnectionClosedOK) else closed),
            retry,
            self.connection_id,
        )
        if not retry:
            self._over = True
            return info, GiveUp()
        assert policy is not None
        if forced or now - self._opened_at >= policy.stable_after:
            self._failures = 0
        self._retrying = policy
        self._attempt = 0
        self._immediately = forced
        self._lost_at = wall
        self._lost_code, self._lost_reason = int(protocol.close_code), protocol.close_reason
        self._lost_received = protocol.close_received is not None
        return info, self._next()

    def _next(self) -> Retry:
        policy = self._retrying
        assert policy is not None
        self._attempt += 1
        if self._immediately and self._attempt == 1:
            return Retry(0.0, 1)
        return Retry(policy.delay(self._failures + self._attempt, self._rand), self._attempt)

    def attempt_failed(self, error: BaseException) -> Retry | GiveUp:
        """The connection attempt of the last :class:`Retry` failed with *error* (one of
        :data:`ATTEMPT_ERRORS`): try again later, or give up."""
        policy = self._retrying
        if policy is None:
            return GiveUp(self.gave_up)
        if not _worth_retrying(error) or policy.gives_up(self._attempt):
            self._retrying = None
            self._over = True
            # Giving up is an error whatever the lost connection's close code was.
            self.gave_up = ConnectionClosedError(
                self._lost_code,
                f"gave up reconnecting after {self._attempt} attempts: {error}",
                self._lost_received,
            )
            return GiveUp(self.gave_up)
        return self._next()

    def closed_exception(self) -> ConnectionClosed | None:
        """How the client's last connection ended, for ``close_exception`` and the calls refused after
        it: why reconnecting gave up, once it did, else that connection's :class:`~wsfast.ConnectionClosed`
        (``None`` before the first connection)."""
        if self.gave_up is not None:
            return self.gave_up
        return self.protocol.closed_exception() if self.protocol is not None else None

    def cancel(self) -> None:
        """``close()``/``disconnect()`` interrupted the reconnection: none follows."""
        self._retrying = None
        self._over = True

    # Keepalive and the idle watchdog

    @property
    def deadline(self) -> float | None:
        """When :meth:`beat` must next run (monotonic seconds), ``None`` if never (nothing enabled, or
        the connection is no longer open)."""
        heartbeat, protocol = self.heartbeat, self.protocol
        if heartbeat is None or protocol is None or protocol.state is not State.OPEN:
            return None
        return heartbeat.deadline

    def beat(self, now: float, last_message_at: float, *, late: float = 0.0) -> Verdict:
        """Act on the keepalive and idle decisions due at *now* (the socket read first: see
        :meth:`wsfast.health.Heartbeat.poll`); *last_message_at* is when the last data message arrived;
        *late*: how late the driver's timer fired (over :data:`LATE_TIMER`, a verdict of death waits)."""
        heartbeat, protocol = self.heartbeat, self.protocol
        if heartbeat is None or protocol is None or protocol.state is not State.OPEN:
            return _NOTHING
        if late > LATE_TIMER and self.overdue(now):
            return Verdict(again=LATE_TIMER)
        data = b""
        on_idle = False
        while True:
            action = heartbeat.poll(
                now,
                None,
                last_message_at,
                frames_received=protocol.frames_received,
                events_received=_events_received(protocol),
            )
            if action is Beat.NOTHING:
                return Verdict(data, False, on_idle) if data or on_idle else _NOTHING
            if action is Beat.SEND_PING:
                data += protocol.send_ping(heartbeat.ping_payload())
            elif action is Beat.PING_TIMEOUT:
                reason = f"keepalive timeout: no frame within {heartbeat.ping_timeout:g} s of a PING"
                protocol.fail(CloseCode.INTERNAL_ERROR, reason, closed_as=KeepaliveTimeout)
                return Verdict(data + protocol.data_to_send(), True, on_idle, reason)
            elif self.on_idle:  # Beat.IDLE, with a hook
                on_idle = True
            else:  # Beat.IDLE
                reason = f"idle timeout: no message for {heartbeat.idle_timeout:g} s"
                data += protocol.send_close(CloseCode.GOING_AWAY, reason, closed_as=IdleTimeout)
                return Verdict(data, False, False, reason)

    def overdue(self, now: float) -> bool:
        """Whether :meth:`beat` would now fail the connection for a missing PONG (changes nothing): an
        event loop whose timer fired late reads what arrived meanwhile first."""
        heartbeat, protocol = self.heartbeat, self.protocol
        if heartbeat is None or protocol is None:
            return False
        return heartbeat.overdue(
            now, None, frames_received=protocol.frames_received, events_received=_events_received(protocol)
        )

    def pong_received(self, payload: bytes, now: float) -> float | None:
        """Account a PONG received at *now*; returns the round-trip time if it answers the keepalive
        PING (``None``: it answers something else, e.g. a user's ``ping()``)."""
        heartbeat = self.heartbeat
        if heartbeat is None:
            return None
        rtt = heartbeat.pong_received(payload, now)
        if rtt is not None:
            self.last_rtt = rtt
        return rtt

    def pings_answered(self, answered: list[tuple[W, float]]) -> list[tuple[W, float]]:
        """Note the ``ping()`` calls a PONG answered (:meth:`wsfast.pings.Pings.answered`: waiters and
        round-trip times, in sending order) and return them: the last, the PING whose payload the PONG
        carries, is the round trip ``stats().last_rtt`` reports, as for a keepalive PING."""
        if answered:
            self.last_rtt = answered[-1][1]
        return answered

    def received(self, events: list[Any], now: float) -> bool:
        """Account the events of one read at *now*, before any callback runs (a slow callback must not
        delay a PONG): each PONG for keepalive. Returns whether a data message is among them (a message
        *loads* rejected counts: it arrived), which the driver notes for the idle watchdog."""
        message = False
        for event in events:
            kind = type(event)
            if kind is Pong:
                self.pong_received(event.payload, now)
            elif kind is not Ping and kind is not Close:
                message = True
        return message

    # Statistics

    def _count(self, protocol: ClientProtocol) -> None:
        if protocol is not self._counted:
            totals = self._totals
            for name in PROTOCOL_COUNTERS:
                totals[name] += getattr(protocol, name)
            self._counted = protocol

    def stats(
        self, *, now: float, wall: float, last_message_at: float, dropped: int = 0, queue_depth: int = 0
    ) -> Stats:
        """The :class:`~wsfast.Stats` over every connection: the finished ones' totals plus the current
        one's counters. *last_message_at* is the monotonic time of the last data message (0: none)."""
        totals = dict(self._totals)
        protocol = self.protocol
        if protocol is not None and protocol is not self._counted:
            for name in PROTOCOL_COUNTERS:
                totals[name] += getattr(protocol, name)
        last_message = wall - (now - last_message_at) if self.connections and last_message_at else None
        return Stats(
            **totals,
            last_rtt=self.last_rtt,
            reconnects=self.reconnects,
            dropped=dropped,
            queue_depth=queue_depth,
            last_message_at=last_message,
            connected_at=self.connected_at,
            connections=self.connections,
        )


def _events_received(protocol: ClientProtocol) -> int:
    """Messages and PING/PONG frames *protocol* completed (a CLOSE ends the keepalive anyway)."""
    return protocol.messages_received + protocol.pings_received + protocol.pongs_received


def _worth_retrying(error: BaseException) -> bool:
    """Whether a failed attempt may succeed later: a refusal that will not change by itself stops."""
    if isinstance(error, InvalidURL):
        return False
    if isinstance(error, ProxyError):
        # HTTP proxies answer with an HTTP status; SOCKS reply codes (1-8, 91-93) are below 100.
        status = error.status
        return status is None or not 400 <= status < 500 or status in _TRANSIENT_4XX
    if isinstance(error, HandshakeError):
        return ReconnectPolicy.retryable_status(error.status)
    return True
