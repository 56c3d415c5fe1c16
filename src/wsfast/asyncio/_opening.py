"""The asyncio client's opening executor: it does what a :class:`~wsfast.opening.Opening` asks with
transports (``loop.create_connection``, ``create_unix_connection``, ``create_connection(sock=)``,
``loop.start_tls``), all within one ``open_timeout``.

It decides nothing: the proxy's protocol, TLS, the upgrade and redirects are :mod:`wsfast.opening`'s. TLS
inside TLS (``wss://`` through an ``https://`` proxy) is ``loop.start_tls`` over the proxy's TLS transport,
which asyncio's own loop supports from Python 3.11, and uvloop too; a loop that refuses gets a clear
:class:`~wsfast.exceptions.OpeningError`.

With socket events (``events=``), a TCP connection is made step by step (lookup, each attempt) so each step
is reported; without, ``loop.create_connection`` does it out of sight.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._opening_io import Reporter, answer, open_timeout_error, opening_error
from ..exceptions import OpeningError, WebSocketError
from ..handshake import Accepted
from ..opening import (
    Action,
    Connect,
    ConnectUnix,
    Disconnect,
    Open,
    Opening,
    Receive,
    Resolve,
    Send,
    StartTLS,
    UseSocket,
)
from ..uri import WebSocketURL

if TYPE_CHECKING:
    from .._monitor import Monitor

__all__ = ["open_transport", "set_nodelay"]


P = TypeVar("P", bound=asyncio.BaseProtocol)
"""The client's protocol: it has ``transport``, ``async read() -> bytes`` (``b""`` once the peer closed) and
``report_closed()`` (tell the event subscribers, once, that the socket is closed)."""


def set_nodelay(transport: asyncio.BaseTransport | None) -> None:
    """TCP_NODELAY on the transport's socket: never let Nagle's algorithm hold back a small frame."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _connect_observed(factory: Callable[[], P], host: str, port: int, events: Monitor) -> P:
    """What ``loop.create_connection(factory, host, port)`` does, reporting the lookup and every attempt."""
    loop = asyncio.get_running_loop()
    events.lookup_started(host)
    started = time.perf_counter()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    events.resolved(host, infos, time.perf_counter() - started)
    error: OSError | None = None
    for info in infos:
        family, kind, proto, _, address = info
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            events.connecting(host, info)
            started = time.perf_counter()
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        events.connected(info, time.perf_counter() - started)
        try:
            _, protocol = await loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise
        return protocol
    raise error if error is not None else OSError(f"getaddrinfo returned no address for {host!r}")


class _Executor:
    def __init__(
        self, factory: Callable[[], asyncio.BaseProtocol], reporter: Reporter, sock: socket.socket | None
    ) -> None:
        self.factory = factory
        self.reporter = reporter
        self.events: Monitor | None = reporter.events
        self.given = sock
        self.connection: Any = None
        self.tls_depth = 0

    async def perform(self, action: Action) -> Any:
        loop = asyncio.get_running_loop()
        if isinstance(action, Receive):
            assert self.connection is not None
            return await self.connection.read()
        if isinstance(action, Send):
            assert self.connection is not None
            self.reporter.sending()
            if self.events is None:
                self.connection.transport.write(action.data)
            else:
                self.events.send(self.connection.transport.write, action.data)
            return None
        if isinstance(action, Connect):
            if self.events is None:
                _, self.connection = await loop.create_connection(self.factory, action.host, action.port)
            else:
                self.connection = await _connect_observed(self.factory, action.host, action.port, self.events)
            set_nodelay(self.connection.transport)
        elif isinstance(action, ConnectUnix):
            _, self.connection = await loop.create_unix_connection(self.factory, action.path)
        elif isinstance(action, UseSocket):
            given, self.given = self.given, None
            assert given is not None
            try:
                given.setblocking(False)
                _, self.connection = await loop.create_connection(self.factory, sock=given)
            except BaseException:
                given.close()
                raise
            set_nodelay(self.connection.transport)
        elif isinstance(action, Resolve):
            family = socket.AF_INET if action.ipv4_only else socket.AF_UNSPEC
            if self.events is not None:
                self.events.lookup_started(action.host)
            started = time.perf_counter()
            infos = await loop.getaddrinfo(action.host, action.port, family=family, type=socket.SOCK_STREAM)
            if self.events is not None:
                self.events.resolved(action.host, infos, time.perf_counter() - started)
            if not infos:
                raise OSError(f"getaddrinfo returned no address for {action.host!r}")
            return str(infos[0][4][0])
        elif isinstance(action, StartTLS):
            await self.start_tls(action)
        elif isinstance(action, Disconnect):
            self.close(abort=False)
        return None

    async def start_tls(self, action: StartTLS) -> None:
        connection = self.connection
        assert connection is not None
        events = self.events
        if events is not None:
            events.tls_start(action.server_hostname)
        started = time.perf_counter()
        try:
            transport = await asyncio.get_running_loop().start_tls(
                connection.transport, connection, action.context, server_hostname=action.server_hostname
            )
        except TypeError as exc:  # the loop cannot start TLS on this transport (TLS inside TLS)
            raise OpeningError(
                f"this event loop cannot start TLS on a {type(connection.transport).__name__} "
                f"({exc}): TLS to the server inside TLS to an https:// proxy needs Python 3.11+ or uvloop",
                hop=action.hop,
                stage="tls",
            ) from exc
        assert transport is not None
        connection.transport = transport
        self.tls_depth += 1
        if events is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            cipher = ssl_object.cipher() if ssl_object is not None else transport.get_extra_info("cipher")
            events.tls_established(cipher, time.perf_counter() - started)

    def close(self, abort: bool = True) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            if connection.transport is not None:
                if abort:
                    connection.transport.abort()
                else:
                    connection.transport.close()
            connection.report_closed()
        if self.given is not None:
            with contextlib.suppress(OSError):
                self.given.close()
            self.given = None


async def open_transport(
    opening: Opening,
    reporter: Reporter,
    factory: Callable[[], P],
    *,
    open_timeout: float | None,
    sock: socket.socket | None = None,
) -> tuple[P, Accepted, WebSocketURL]:
    """Execute *opening*'s actions with transports until the upgrade is accepted.

    *factory* makes the client's protocol (see :data:`P`); *reporter* must be the ``report`` of
    *opening*; *sock* is the user's connected socket (``sock=``).

    Raises:
        OpenTimeout: *open_timeout* expired (``hop`` and ``stage`` say during what).
        TLSError, OpeningError, ProxyError, HandshakeError, InvalidURL: as
            :func:`wsfast._opening_sync.open_connection`.
    """
    executor = _Executor(factory, reporter, sock)
    state: dict[str, Action | None] = {"action": None}

    async def run() -> tuple[Any, Accepted, WebSocketURL]:
        action = state["action"] = opening.start()
        while not isinstance(action, Open):
            try:
                result = await executor.perform(action)
            except WebSocketError:
                raise
            except OSError as exc:
                raise opening_error(action, exc) from exc
            action = state["action"] = answer(opening, action, result)
        return executor.connection, action.accepted, action.url

    try:
        if open_timeout is None:
            return await run()
        try:
            return await asyncio.wait_for(run(), open_timeout)
        except asyncio.TimeoutError as exc:
            if isinstance(exc, OpeningError):
                raise
            raise open_timeout_error(state["action"], open_timeout) from None
    except BaseException:
        executor.close()
        raise
