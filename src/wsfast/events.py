"""Socket events and usage statistics, for both clients.

A subscriber (a :class:`queue.Queue`, an :class:`asyncio.Queue` or a callable) receives one frozen
dataclass per socket event of a client, each with the client's ``connection_id`` and a ``timestamp``
(``time.time()``)::

    events = queue.Queue()
    client = wsfast.WebSocketClient(on_message, url, events=events)   # or client.subscribe(events)
    client.connect()
    events.get()   # HostnameLookup(connection_id=1, timestamp=..., host='stream.example.com')

The events of one connection, in order: :class:`HostnameLookup`, :class:`HostnameResolved`,
:class:`Connecting` and :class:`Connected` (per address tried), for ``wss://`` :class:`TlsStart` and
:class:`TlsEstablished` (cipher and version), :class:`DataSent` and :class:`RequestSent` (the upgrade
request), :class:`DataRead` and :class:`ResponseReceived` (status and headers), for a 3xx
:class:`Redirect` and :class:`Closed` before the next connection's events; then :class:`DataRead` and
:class:`DataSent` for the frames, and :class:`Closed`. Through a proxy, the events of the TCP connection
name the proxy, and the ``CONNECT`` request and the proxy's answer come as :class:`DataSent`,
:class:`RequestSent`, :class:`DataRead` and :class:`ResponseReceived` before TLS starts through the
tunnel. Credentials in request headers are masked. Raw bytes ride on :class:`DataRead` /
:class:`DataSent` only for subscribers that asked (``subscribe(target, data=True)``).

Subscribing and unsubscribing work at any time on a live client (``subscribe()`` / ``unsubscribe()``).
When nobody subscribes and no warning threshold is set, a client keeps no :class:`Monitor` and the data
path pays one ``is not None`` check per read or write, nothing else.

Usage statistics (:meth:`Monitor.usage`, the clients' ``usage()``) count the bytes sent and received and
the time spent in timed transfers while a monitor exists. Timed are: every send, and the wait for the
handshake or proxy response (request written to response parsed). Reads on the data path are counted but not
timed: the wait for the next message is idle time, not transfer time. Warnings, delivered to the
subscribers as events and logged on the ``wsfast`` logger: :class:`SlowOperation` when one operation
(``"lookup"``, ``"connect"``, ``"tls"``, ``"proxy"``, ``"handshake"``, ``"send"``) takes longer than
``warn_slow_operation`` seconds; :class:`LowThroughput` when a timed transfer of at least
:data:`THROUGHPUT_MIN_DURATION` seconds moves fewer than ``warn_low_throughput`` bytes per second.
"""

from __future__ import annotations

import dataclasses

from ._monitor import (
    THROUGHPUT_MIN_DURATION,
    Monitor,
    Observable,
    Subscriber,
    Usage,
    next_connection_id,
)

__all__ = [
    "THROUGHPUT_MIN_DURATION",
    "Closed",
    "Connected",
    "Connecting",
    "DataRead",
    "DataSent",
    "Event",
    "HostnameLookup",
    "HostnameResolved",
    "LowThroughput",
    "Monitor",
    "Observable",
    "Redirect",
    "RequestSent",
    "ResponseReceived",
    "SlowOperation",
    "Subscriber",
    "TlsEstablished",
    "TlsStart",
    "Usage",
    "next_connection_id",
]


# --------------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    """Base class: which connection, and when (``time.time()``)."""

    connection_id: int
    timestamp: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class HostnameLookup(Event):
    """The client starts resolving *host* (the server's, or the proxy's)."""

    host: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class HostnameResolved(Event):
    """*host* resolved to *addresses* (``(family, address)`` pairs, family ``"ipv4"`` or ``"ipv6"``)."""

    host: str
    addresses: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Connecting(Event):
    """A TCP connection to *address*:*port* starts."""

    host: str
    family: str
    address: str
    port: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Connected(Event):
    """The TCP connection to *address*:*port* is established."""

    address: str
    port: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class TlsStart(Event):
    """The TLS handshake starts, for *server_hostname* (SNI and certificate check)."""

    server_hostname: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class TlsEstablished(Event):
    """The TLS handshake is done: *cipher* (OpenSSL's name), *version* (``"TLSv1.3"``), *bits*."""

    cipher: str
    version: str
    bits: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequestSent(Event):
    """The upgrade request was written: *request_line* and *headers* (credentials masked)."""

    request_line: str
    headers: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResponseReceived(Event):
    """The server's response head to the upgrade request."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Redirect(Event):
    """A 3xx answer is followed to *location* (the URL without its password)."""

    status: int
    location: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataRead(Event):
    """*size* bytes were read from the socket (after TLS); *data* only for subscribers that asked."""

    size: int
    data: bytes | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSent(Event):
    """*size* bytes are written to the socket (before TLS); *data* only for subscribers that asked.

    Delivered just before the write, so it precedes the events of the answer it causes."""

    size: int
    data: bytes | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Closed(Event):
    """The socket was closed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlowOperation(Event):
    """*operation* took *duration* seconds, more than the *threshold* (``warn_slow_operation``)."""

    operation: str
    duration: float
    threshold: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class LowThroughput(Event):
    """A transfer (*direction* ``"send"`` or ``"receive"``) of *size* bytes in *duration* seconds ran at
    *bytes_per_second*, below the *threshold* (``warn_low_throughput``)."""

    direction: str
    size: int
    duration: float
    bytes_per_second: float
    threshold: float
