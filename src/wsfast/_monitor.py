"""The machinery behind :mod:`wsfast.events`: the per-client :class:`Monitor` (subscribers, thresholds,
usage counters) and :class:`Observable` (``subscribe()``/``unsubscribe()``/``usage()`` on the clients).

Kept apart from the event classes so that importing the clients does not build them: they are imported
when the first monitor is made, that is when someone first observes a client.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue as queue_module
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from ._typing import BytesLike

if TYPE_CHECKING:
    from .events import DataRead, DataSent, Event

__all__ = ["THROUGHPUT_MIN_DURATION", "Monitor", "Observable", "Subscriber", "Usage", "next_connection_id"]

logger = logging.getLogger("wsfast")

THROUGHPUT_MIN_DURATION = 0.1
"""Seconds: shorter transfers are never judged for throughput (a small write's syscall is not a rate)."""

CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
MASK = "********"

Subscriber = Union["queue_module.Queue[Any]", Any, Callable[[Any], Any]]
"""A :class:`queue.Queue`, an :class:`asyncio.Queue` (unbounded) or a callable taking one event."""

_connection_ids = itertools.count(1)
_connection_ids_lock = threading.Lock()


def next_connection_id() -> int:
    """The next number in the process-wide sequence of connection ids (shared by both clients)."""
    with _connection_ids_lock:
        return next(_connection_ids)


@dataclasses.dataclass(frozen=True)
class Usage:
    """Usage statistics: bytes and seconds spent sending and receiving (see the module's notes)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    send_time: float = 0.0
    receive_time: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.bytes_sent + other.bytes_sent,
            self.bytes_received + other.bytes_received,
            self.send_time + other.send_time,
            self.receive_time + other.receive_time,
        )


# --------------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------------


class _Target:
    """One subscriber and how to hand it an event."""

    __slots__ = ("data", "deliver", "subscriber")

    def __init__(self, subscriber: Subscriber, data: bool) -> None:
        self.subscriber = subscriber
        self.data = data
        self.deliver = self._delivery(subscriber)

    @staticmethod
    def _delivery(subscriber: Subscriber) -> Callable[[Event], None]:
        if isinstance(subscriber, queue_module.Queue):
            if subscriber.maxsize > 0:
                # The data path never blocks on, nor drops for, a full queue: it must be unbounded.
                raise ValueError("an event queue must be unbounded (maxsize=0)")
            return subscriber.put_nowait
        put_nowait = getattr(subscriber, "put_nowait", None)
        if put_nowait is not None:  # an asyncio.Queue (not thread-safe: deliver on its loop)
            if getattr(subscriber, "maxsize", 0) > 0:
                raise ValueError("an event queue must be unbounded (maxsize=0)")
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise ValueError("subscribe an asyncio.Queue from the event loop that reads it") from None

            def deliver(event: Event) -> None:
                try:
                    running = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                if running is loop:
                    put_nowait(event)
                elif not loop.is_closed():
                    loop.call_soon_threadsafe(put_nowait, event)

            return deliver
        if callable(subscriber):
            return subscriber
        kind = type(subscriber).__name__
        raise TypeError(f"a subscriber must be a queue.Queue, an asyncio.Queue or a callable, not {kind}")


def _family_name(family: int) -> str:
    import socket

    return "ipv6" if family == socket.AF_INET6 else "ipv4" if family == socket.AF_INET else str(family)


def _head_lines(head: bytes) -> tuple[str, tuple[tuple[str, str], ...]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            name, value = name.strip(), value.strip()
            headers.append((name, MASK if name.lower() in CREDENTIAL_HEADERS else value))
    return lines[0], tuple(headers)


class Monitor:
    """A client's subscribers, warning thresholds and usage counters.

    The clients create one only when something needs it (a subscriber, a threshold), so an unobserved
    connection pays nothing but an ``is not None`` check. Its methods are called by the I/O layers.
    """

    def __init__(
        self, *, warn_slow_operation: float | None = None, warn_low_throughput: float | None = None
    ) -> None:
        from . import events  # the event classes are built when a client is first observed

        self.kinds = events
        self.connection_id = -1
        self.warn_slow_operation = warn_slow_operation
        self.warn_low_throughput = warn_low_throughput
        self._targets: tuple[_Target, ...] = ()  # replaced, never mutated: safe to iterate from any thread
        self._lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.send_time = 0.0
        self.receive_time = 0.0

    @classmethod
    def create(
        cls,
        subscriber: Subscriber | None,
        warn_slow_operation: float | None = None,
        warn_low_throughput: float | None = None,
    ) -> Monitor | None:
        """A monitor for the ``events=`` and ``warn_*=`` options, or ``None`` if none is set."""
        if subscriber is None and warn_slow_operation is None and warn_low_throughput is None:
            return None
        monitor = cls(warn_slow_operation=warn_slow_operation, warn_low_throughput=warn_low_throughput)
        if subscriber is not None:
            monitor.subscribe(subscriber)
        return monitor

    # Subscriptions

    def subscribe(self, subscriber: Subscriber, *, data: bool = False) -> None:
        """Deliver events to *subscriber*; with *data*, :class:`DataRead`/:class:`DataSent` carry the bytes.

        Raises:
            ValueError: a bounded queue, or an asyncio.Queue subscribed outside its event loop.
            TypeError: not a queue or a callable.
        """
        target = _Target(subscriber, data)
        with self._lock:
            self._targets = (*(t for t in self._targets if t.subscriber is not subscriber), target)

    def unsubscribe(self, subscriber: Subscriber) -> bool:
        """Stop delivering to *subscriber*; ``False`` if it was not subscribed."""
        with self._lock:
            targets = tuple(t for t in self._targets if t.subscriber is not subscriber)
            found = len(targets) != len(self._targets)
            self._targets = targets
        return found

    @property
    def needed(self) -> bool:
        """Whether anything still needs this monitor (a subscriber or a threshold)."""
        return (
            bool(self._targets)
            or self.warn_slow_operation is not None
            or self.warn_low_throughput is not None
        )

    def usage(self) -> Usage:
        return Usage(self.bytes_sent, self.bytes_received, self.send_time, self.receive_time)

    # Delivery

    def emit(self, kind: type[Event], **fields: Any) -> None:
        """Build one *kind* event and deliver it to every subscriber."""
        targets = self._targets
        if not targets:
            return
        event = kind(connection_id=self.connection_id, timestamp=time.time(), **fields)
        self._deliver(targets, event, event)

    def _deliver(self, targets: tuple[_Target, ...], event: Event, with_data: Event) -> None:
        for target in targets:
            try:
                target.deliver(with_data if target.data else event)
            except Exception:  # a broken subscriber must not break the connection
                logger.exception("[%s] event subscriber %r failed", self.connection_id, target.subscriber)

    def _data_event(self, kind: type[DataRead | DataSent], data: BytesLike, size: int) -> None:
        targets = self._targets
        if not targets:
            return
        now = time.time()
        event = kind(connection_id=self.connection_id, timestamp=now, size=size)
        with_data = (
            kind(connection_id=self.connection_id, timestamp=now, size=size, data=bytes(data))
            if any(target.data for target in targets)
            else event
        )
        self._deliver(targets, event, with_data)

    # Called by the I/O layers

    def data_read(self, data: BytesLike) -> None:
        """Bytes came in (after TLS)."""
        size = len(data)
        self.bytes_received += size
        self._data_event(self.kinds.DataRead, data, size)

    def send(self, write: Callable[[Any], Any], data: BytesLike) -> None:
        """Write *data* with *write* (``sock.sendall``, ``transport.write``), timed and reported.

        :class:`DataSent` is delivered just before the write, so it always comes before the events of
        the answer it causes, which another thread may read before this one returns from the write.
        """
        size = len(data)
        self._data_event(self.kinds.DataSent, data, size)
        started = time.perf_counter()
        write(data)
        duration = time.perf_counter() - started
        self.bytes_sent += size
        self.send_time += duration
        self.check("send", duration)
        self.check_throughput("send", size, duration)

    def check(self, operation: str, duration: float) -> None:
        """Report *operation* if it took longer than ``warn_slow_operation``."""
        threshold = self.warn_slow_operation
        if threshold is not None and duration > threshold:
            logger.warning("[%s] slow %s: %.3f s", self.connection_id, operation, duration)
            self.emit(self.kinds.SlowOperation, operation=operation, duration=duration, threshold=threshold)

    def check_throughput(self, direction: str, size: int, duration: float) -> None:
        """Report a transfer slower than ``warn_low_throughput`` bytes per second."""
        threshold = self.warn_low_throughput
        if threshold is None or duration < THROUGHPUT_MIN_DURATION:
            return
        rate = size / duration
        if rate < threshold:
            logger.warning("[%s] low %s throughput: %.0f B/s", self.connection_id, direction, rate)
            self.emit(
                self.kinds.LowThroughput,
                direction=direction,
                size=size,
                duration=duration,
                bytes_per_second=rate,
                threshold=threshold,
            )

    def lookup(self, host: str, resolve: Callable[[], list[Any]]) -> list[Any]:
        """Resolve *host* with *resolve* (returning ``getaddrinfo`` entries), timed and reported."""
        self.lookup_started(host)
        started = time.perf_counter()
        infos = resolve()
        self.resolved(host, infos, time.perf_counter() - started)
        return infos

    def lookup_started(self, host: str) -> None:
        self.emit(self.kinds.HostnameLookup, host=host)

    def resolved(self, host: str, infos: list[Any], duration: float) -> None:
        addresses = tuple((_family_name(info[0]), str(info[4][0])) for info in infos)
        self.emit(self.kinds.HostnameResolved, host=host, addresses=addresses)
        self.check("lookup", duration)

    def connecting(self, host: str, info: Any) -> None:
        self.emit(
            self.kinds.Connecting,
            host=host,
            family=_family_name(info[0]),
            address=str(info[4][0]),
            port=info[4][1],
        )

    def connected(self, info: Any, duration: float) -> None:
        self.emit(self.kinds.Connected, address=str(info[4][0]), port=info[4][1])
        self.check("connect", duration)

    def tls_start(self, server_hostname: str) -> None:
        self.emit(self.kinds.TlsStart, server_hostname=server_hostname)

    def tls_established(self, cipher: tuple[str, str, int] | None, duration: float) -> None:
        name, version, bits = cipher if cipher is not None else ("", "", 0)
        self.emit(self.kinds.TlsEstablished, cipher=name, version=version, bits=bits)
        self.check("tls", duration)

    def request_sent(self, request: bytes) -> None:
        """The upgrade request (its head is parsed back for the event; credentials are masked)."""
        if self._targets:
            line, headers = _head_lines(request.split(b"\r\n\r\n", 1)[0])
            self.emit(self.kinds.RequestSent, request_line=line, headers=headers)

    def response_received(
        self,
        status: int | None,
        reason: str,
        headers: Any,
        size: int,
        duration: float,
        operation: str = "handshake",
    ) -> None:
        """The response to the upgrade request (*operation* ``"handshake"``) or to a proxy's CONNECT
        (``"proxy"``), or ``status=None`` if none came; *duration* after the request."""
        self.receive_time += duration
        if status is not None:
            pairs = (
                tuple(headers.raw_items()) if hasattr(headers, "raw_items") else tuple(dict(headers).items())
            )
            self.emit(self.kinds.ResponseReceived, status=status, reason=reason, headers=pairs)
        self.check(operation, duration)
        self.check_throughput("receive", size, duration)

    def redirect(self, status: int, location: str) -> None:
        self.emit(self.kinds.Redirect, status=status, location=location)

    def closed(self) -> None:
        self.emit(self.kinds.Closed)


class Observable:
    """``subscribe()``, ``unsubscribe()`` and ``usage()`` for a client that keeps a :class:`Monitor`
    in ``_events`` (``None`` while nothing observes it)."""

    _events: Monitor | None = None
    _usage_before: Usage = Usage()

    def _monitor_connection_id(self) -> int:
        return -1

    def _set_events(self, events: Monitor | None) -> None:
        self._events = events

    def subscribe(self, subscriber: Subscriber, *, data: bool = False) -> None:
        """Deliver this client's socket events (:mod:`wsfast.events`) to *subscriber*, from now on.

        *subscriber* is a :class:`queue.Queue` or :class:`asyncio.Queue` (unbounded) or a callable; with
        *data*, :class:`DataRead` and :class:`DataSent` events carry the raw bytes.

        Raises:
            ValueError: a bounded queue, or an asyncio.Queue subscribed outside its event loop.
            TypeError: not a queue or a callable.
        """
        events = self._events
        if events is None:
            events = Monitor()
            events.connection_id = self._monitor_connection_id()
        events.subscribe(subscriber, data=data)
        self._set_events(events)

    def unsubscribe(self, subscriber: Subscriber) -> bool:
        """Stop delivering events to *subscriber*; ``False`` if it was not subscribed."""
        events = self._events
        if events is None:
            return False
        found = events.unsubscribe(subscriber)
        if not events.needed:
            # Nothing observes the client any more: back to zero cost. The counters are kept.
            self._usage_before = self._usage_before + events.usage()
            self._set_events(None)
        return found

    def usage(self) -> Usage:
        """Bytes and seconds spent sending and receiving while the client was observed (a subscriber or
        a ``warn_*`` threshold): see :mod:`wsfast.events`."""
        events = self._events
        return self._usage_before + events.usage() if events is not None else self._usage_before
