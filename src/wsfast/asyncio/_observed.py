"""Opening an asyncio connection with its steps reported to a :class:`~wsfast.events.Monitor`.

``loop.create_connection(host, port)`` resolves, connects and runs the TLS handshake out of sight; when
someone subscribes to a client's events, the client opens its connection here instead, step by step.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .._monitor import Monitor
from ..exceptions import HandshakeError

__all__ = ["create_connection", "exchange", "start_tls"]

P = TypeVar("P", bound=asyncio.BaseProtocol)


async def create_connection(
    factory: Callable[[], P],
    host: str,
    port: int,
    events: Monitor,
    *,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
) -> P:
    """What ``loop.create_connection(factory, host, port, ssl=..., server_hostname=...)`` does, reporting
    the lookup, every connection attempt and the TLS handshake to *events*.

    Raises:
        OSError: no address could be connected to (the last error), or the TLS handshake failed.
    """
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
        if ssl is not None:
            events.tls_start(server_hostname or host)
            started = time.perf_counter()
        try:
            transport, protocol = await loop.create_connection(
                factory, sock=sock, ssl=ssl, server_hostname=server_hostname if ssl is not None else None
            )
        except BaseException:
            sock.close()
            raise
        if ssl is not None:
            _report_tls(events, transport, started)
        return protocol
    raise error if error is not None else OSError(f"getaddrinfo returned no address for {host!r}")


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl_module.SSLContext,
    server_hostname: str,
    events: Monitor,
) -> asyncio.BaseTransport:
    """``loop.start_tls`` (TLS through a proxy's tunnel), reported to *events*."""
    events.tls_start(server_hostname)
    started = time.perf_counter()
    new = await asyncio.get_running_loop().start_tls(
        transport,
        protocol,
        context,
        server_hostname=server_hostname,
    )
    assert new is not None
    _report_tls(events, new, started)
    return new


def _report_tls(events: Monitor, transport: asyncio.BaseTransport, started: float) -> None:
    ssl_object = transport.get_extra_info("ssl_object")
    cipher = ssl_object.cipher() if ssl_object is not None else transport.get_extra_info("cipher")
    events.tls_established(cipher, time.perf_counter() - started)


async def exchange(
    connection: Any,
    request: bytes,
    parse: Callable[[bytes, bool], Any],
    events: Monitor,
    operation: str = "handshake",
) -> Any:
    """Write the upgrade (or a proxy's CONNECT) *request* and read the response
    (``connection.read_until(parse)``), reporting the request, the response and the exchange's duration
    to *events*."""
    events.send(connection.transport.write, request)
    events.request_sent(request)
    started, before = time.perf_counter(), events.bytes_received
    try:
        outcome = await connection.read_until(parse)
    except HandshakeError as exc:
        duration = time.perf_counter() - started
        events.response_received(
            exc.status, "", exc.headers, events.bytes_received - before, duration, operation
        )
        raise
    response = getattr(outcome, "response", outcome)  # an Accepted or Redirect, or the proxy's Response
    events.response_received(
        response.status,
        response.reason,
        response.headers,
        events.bytes_received - before,
        time.perf_counter() - started,
        operation,
    )
    return outcome
