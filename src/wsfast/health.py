"""Connection health, sans-I/O: keepalive, the data-idle watchdog, reconnect backoff, statistics.

Both clients share these decisions; they differ only in how they wait. The I/O layer owns the clock and
passes the time in (``now``, seconds on a monotonic clock), so nothing here sleeps, reads a clock or
touches a socket:

* :class:`Heartbeat` says when to send a keepalive PING, when the connection is presumed dead (no
  complete frame within ``ping_timeout`` of a PING: RFC 6455 §5.5.2 makes the PONG mandatory, and any
  frame proves the peer alive; a byte of an unfinished frame does not), and when the stream has been
  idle (no data message within ``idle_timeout``: exchanges keep answering PINGs while a feed is stale).
* :class:`ReconnectPolicy` is exponential backoff with jitter, a maximum delay and a maximum number of
  attempts.
* :class:`Stats` is a snapshot of the counters the protocol core keeps, plus what the I/O layer knows.

:mod:`wsfast.lifecycle` turns these decisions into what the drivers do (bytes to write, a TCP abort, a
retry after a delay) across a client's connections.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Callable
from typing import Any

__all__ = [
    "Beat",
    "Disconnected",
    "Heartbeat",
    "ReconnectPolicy",
    "Reconnected",
    "Stats",
    "to_reconnect_policy",
]

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0


class Beat(enum.Enum):
    """What :meth:`Heartbeat.poll` asks the I/O layer to do."""

    NOTHING = 0
    SEND_PING = 1  # send heartbeat.ping_payload() now
    PING_TIMEOUT = 2  # nothing was received within ping_timeout of a PING: fail the connection (1011)
    IDLE = 3  # no data message within idle_timeout: run on_idle, or reconnect, or close


def _check_interval(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not value > 0:  # also rejects NaN
        raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")
    return value


class Heartbeat:
    """Keepalive and idle decisions for one connection.

    The I/O layer calls :meth:`poll` at :attr:`deadline` (or later) with what it has received (the
    protocol's counters ``frames_received``, frames begun, and ``events_received``, messages and control
    frames completed) and when the last data message arrived. PINGs go out every *ping_interval*
    whatever the traffic (they also keep the client-to-server direction of NATs and proxies alive, and
    measure the round-trip time); the connection is dead only if *no frame* completes within
    *ping_timeout* of a PING, so a PONG queued behind a large message never causes a false timeout,
    while a server that trickles an unfinished frame byte by byte is found out (RFC 6455 §5.5.2: the
    PONG is due "as soon as practical"). A frame completed since the PING shows as a message or control
    frame completed, or as two frames begun (the first of them then ended).

    Without the counters (the older form), *last_received_at*, the time bytes last arrived, stands in:
    any byte since the PING counts as proof of life.

    Args:
        ping_interval: seconds between keepalive PINGs (``None``: no keepalive).
        ping_timeout: seconds to wait for any frame after a PING (``None``: PINGs but no timeout).
        idle_timeout: seconds without a data message before :attr:`Beat.IDLE` (``None``: no watchdog).
        now: the time the connection opened.
    """

    __slots__ = (
        "_events_at_ping",
        "_frames_at_ping",
        "_idle_since",
        "_next_ping",
        "_ping_count",
        "_ping_payload",
        "_ping_sent_at",
        "deadline",
        "idle_timeout",
        "last_rtt",
        "ping_interval",
        "ping_timeout",
    )

    def __init__(
        self,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        idle_timeout: float | None = None,
        *,
        now: float,
    ) -> None:
        self.ping_interval = _check_interval("ping_interval", ping_interval)
        self.ping_timeout = _check_interval("ping_timeout", ping_timeout)
        self.idle_timeout = _check_interval("idle_timeout", idle_timeout)
        self._next_ping = None if self.ping_interval is None else now + self.ping_interval
        self._ping_sent_at: float | None = None  # the keepalive PING waiting for proof of life
        self._frames_at_ping = 0  # frames begun when the keepalive PING was sent
        self._events_at_ping = 0  # messages and control frames completed then
        self._ping_payload = b""
        self._ping_count = 0
        self._idle_since = now
        self.last_rtt: float | None = None
        """The round-trip time of the last keepalive PING answered, in seconds."""
        self.deadline: float | None = None
        """When :meth:`poll` must next run (``None``: never, nothing is enabled)."""
        self._update_deadline()

    @property
    def enabled(self) -> bool:
        return self.deadline is not None

    def _update_deadline(self) -> None:
        candidates = [self._next_ping]
        if self._ping_sent_at is not None and self.ping_timeout is not None:
            candidates.append(self._ping_sent_at + self.ping_timeout)
        if self.idle_timeout is not None:
            candidates.append(self._idle_since + self.idle_timeout)
        times = [t for t in candidates if t is not None]
        self.deadline = min(times) if times else None

    def _alive(
        self, last_received_at: float | None, frames_received: int | None, events_received: int
    ) -> bool:
        """Whether something proves the peer alive since the keepalive PING (one is in flight)."""
        if frames_received is not None:
            # A frame is counted when its header is read: one more may still be unfinished (a trickle);
            # two more, or a completed message or control frame, prove that a frame ended.
            return events_received > self._events_at_ping or frames_received >= self._frames_at_ping + 2
        assert self._ping_sent_at is not None
        return last_received_at is not None and last_received_at >= self._ping_sent_at

    def poll(
        self,
        now: float,
        last_received_at: float | None,
        last_message_at: float,
        *,
        frames_received: int | None = None,
        events_received: int = 0,
    ) -> Beat:
        """Decide what to do at *now*, given when a data message was last received and either the
        protocol's counters (*frames_received*: frames begun; *events_received*: messages and control
        frames completed) or when bytes last arrived (*last_received_at*).

        Call it again while it returns something other than :attr:`Beat.NOTHING`: one decision per call.
        The caller must have read whatever the socket already holds before calling, or a PONG waiting
        unread behind a slow callback would look like a dead connection.
        """
        try:
            if self._ping_sent_at is not None:
                if self._alive(last_received_at, frames_received, events_received):
                    self._ping_sent_at = None  # a frame since the PING proves the peer alive
                elif self.ping_timeout is not None and now >= self._ping_sent_at + self.ping_timeout:
                    self._ping_sent_at = None
                    self._next_ping = None  # the connection is being failed: no more PINGs
                    return Beat.PING_TIMEOUT
            if self.idle_timeout is not None:
                self._idle_since = max(self._idle_since, last_message_at)
                if now >= self._idle_since + self.idle_timeout:
                    self._idle_since = now  # once per idle period; again after another idle_timeout
                    return Beat.IDLE
            if self._next_ping is not None and now >= self._next_ping:
                assert self.ping_interval is not None
                self._next_ping = now + self.ping_interval
                if self._ping_sent_at is None:  # one keepalive PING in flight at a time
                    self._ping_sent_at = now
                    self._frames_at_ping = frames_received or 0
                    self._events_at_ping = events_received
                    self._ping_count += 1
                    self._ping_payload = b"wsfast-keepalive-%d" % self._ping_count
                    return Beat.SEND_PING
            return Beat.NOTHING
        finally:
            self._update_deadline()

    def overdue(
        self,
        now: float,
        last_received_at: float | None,
        *,
        frames_received: int | None = None,
        events_received: int = 0,
    ) -> bool:
        """Whether :meth:`poll` would now report :attr:`Beat.PING_TIMEOUT` (it changes nothing)."""
        return (
            self._ping_sent_at is not None
            and self.ping_timeout is not None
            and not self._alive(last_received_at, frames_received, events_received)
            and now >= self._ping_sent_at + self.ping_timeout
        )

    def ping_payload(self) -> bytes:
        """The payload of the keepalive PING :meth:`poll` asked for (unique per connection)."""
        return self._ping_payload

    def pong_received(self, payload: bytes, now: float) -> float | None:
        """Account a PONG; returns the round-trip time if it answers the keepalive PING."""
        if self._ping_sent_at is not None and payload == self._ping_payload:
            self.last_rtt = now - self._ping_sent_at
            self._ping_sent_at = None
            self._update_deadline()
            return self.last_rtt
        return None


@dataclasses.dataclass(frozen=True)
class ReconnectPolicy:
    """When and how often to reconnect after a connection is lost.

    The delay before attempt *n* (1, 2, ...) is ``initial_delay * multiplier ** (n - 1)``, capped at
    *max_delay*, then reduced by a random fraction of up to *jitter* so that many clients cut off at once
    do not all come back in the same instant. Attempts count consecutive failures; they start again from
    1 after a connection that stayed open for *stable_after* seconds (a server that accepts and drops
    every connection at once therefore still meets a growing delay).

    Args:
        initial_delay: seconds before the first attempt.
        max_delay: the longest delay between attempts.
        multiplier: growth of the delay per failed attempt (>= 1).
        jitter: the largest fraction (0 to 1) taken off each delay at random.
        max_attempts: give up after this many consecutive failed attempts (``None``: never).
        stable_after: seconds a connection must last for the attempt count to reset.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None
    stable_after: float = 10.0

    def __post_init__(self) -> None:
        if not self.initial_delay >= 0:
            raise ValueError(f"initial_delay must be >= 0, not {self.initial_delay!r}")
        if not self.max_delay >= self.initial_delay:
            raise ValueError(f"max_delay must be >= initial_delay, not {self.max_delay!r}")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1, not {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {self.jitter!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, not {self.max_attempts!r}")
        if not self.stable_after >= 0:
            raise ValueError(f"stable_after must be >= 0, not {self.stable_after!r}")

    def delay(self, attempt: int, rand: Callable[[], float] | None = None) -> float:
        """Seconds to wait before attempt number *attempt* (1-based); *rand* (default
        :func:`random.random`) draws the jitter."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, not {attempt}")
        exponent = min(attempt - 1, 1024)  # the cap applies long before; avoids float overflow
        try:
            base = self.initial_delay * self.multiplier**exponent
        except OverflowError:
            base = self.max_delay
        base = min(base, self.max_delay)
        return base * (1.0 - self.jitter * (rand or random.random)())

    def gives_up(self, failed_attempts: int) -> bool:
        """Whether to stop after *failed_attempts* consecutive failures."""
        return self.max_attempts is not None and failed_attempts >= self.max_attempts

    @staticmethod
    def retryable_status(status: int | None) -> bool:
        """Whether a refused handshake is worth retrying: the server may recover from 408, 429 and 5xx;
        a 4xx such as 401, 403 or 404 will not change by itself, so reconnecting stops."""
        return status is None or status in (408, 425, 429) or status >= 500


def to_reconnect_policy(value: ReconnectPolicy | bool | None) -> ReconnectPolicy | None:
    """The ``reconnect=`` option: ``True`` for the default policy, ``False``/``None`` for none."""
    if value is None or value is False:
        return None
    if value is True:
        return ReconnectPolicy()
    if isinstance(value, ReconnectPolicy):
        return value
    raise TypeError(f"reconnect must be a bool or a ReconnectPolicy, not {type(value).__name__}")


@dataclasses.dataclass(frozen=True)
class Disconnected:
    """A connection was lost (given to ``on_disconnect``).

    Attributes:
        code, reason: how it ended (the close code received, ours if wsfast failed it, 1006 without a
            CLOSE frame).
        at: when it was noticed (seconds since the epoch).
        error: what ended it (e.g. :class:`~wsfast.KeepaliveTimeout`, an ``OSError``), ``None`` after a
            clean closing handshake (1000/1001).
        reconnecting: whether a reconnect follows.
        connection_id: the lost connection's number.
    """

    code: int
    reason: str
    at: float
    error: BaseException | None
    reconnecting: bool
    connection_id: int


@dataclasses.dataclass(frozen=True)
class Reconnected:
    """A lost connection was replaced by a new one: messages in between are missing.

    The asyncio client's iterator and :meth:`~wsfast.WebSocket.recv` return this marker at the gap when
    ``reconnect`` is on, so a consumer can resynchronise (fetch an order-book snapshot, say).

    Attributes:
        lost_at, connected_at: seconds since the epoch.
        attempts: how many attempts the reconnection took.
        code, reason: how the lost connection ended.
        connection_id: the new connection's number (the process-wide sequence of ``connection_id``).
    """

    lost_at: float
    connected_at: float
    attempts: int
    code: int
    reason: str
    connection_id: int

    @property
    def downtime(self) -> float:
        """Seconds without a connection."""
        return self.connected_at - self.lost_at


@dataclasses.dataclass(frozen=True)
class Stats:
    """Counters for a client, over all its connections (``client.stats()`` / ``ws.stats()``).

    Bytes are the WebSocket frames' wire bytes (headers included, after compression), counted always;
    ``client.usage()`` (:mod:`wsfast.events`, the reference's usage statistics) counts socket bytes,
    the handshake included, and the time spent sending and receiving, while the client is observed.
    ``last_message_at`` and ``connected_at`` are seconds since the epoch (``None`` if never).
    """

    messages_received: int = 0
    bytes_received: int = 0
    frames_received: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    pings_received: int = 0
    pongs_received: int = 0
    pings_sent: int = 0
    decode_errors: int = 0
    """TEXT messages the ``loads`` option rejected (raised by ``recv()``, skipped by callbacks)."""
    last_rtt: float | None = None
    reconnects: int = 0
    dropped: int = 0
    queue_depth: int = 0
    last_message_at: float | None = None
    connected_at: float | None = None
    connections: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The counters ClientProtocol keeps, summed over connections by the I/O layers.
PROTOCOL_COUNTERS = (
    "messages_received",
    "bytes_received",
    "frames_received",
    "messages_sent",
    "bytes_sent",
    "pings_received",
    "pongs_received",
    "pings_sent",
    "decode_errors",
)
