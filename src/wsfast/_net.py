"""Blocking socket set-up for the threaded client: TCP (with TCP_NODELAY), HTTP CONNECT proxies, TLS.

Not part of the sans-I/O core: this module owns sockets and timeouts.
"""

from __future__ import annotations

import base64
import socket
import ssl as ssl_module
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from .exceptions import HandshakeError, InvalidURL
from .http11 import ResponseParser
from .uri import WebSocketURL, redact

if TYPE_CHECKING:
    from ._monitor import Monitor

__all__ = ["make_ssl_context", "open_connection"]


def make_ssl_context(ssl: ssl_module.SSLContext | bool | None) -> ssl_module.SSLContext:
    """The TLS context for ``wss://``: verification ON unless the caller passes ``ssl=False``."""
    if isinstance(ssl, ssl_module.SSLContext):
        return ssl
    context = ssl_module.create_default_context()
    if ssl is False:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def _connect_tcp(host: str, port: int, connect_timeout: float | None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=connect_timeout)
    # Market data is latency-sensitive: never let Nagle's algorithm hold back a small frame.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _tunnel(
    sock: socket.socket, proxy: str, url: WebSocketURL, timeout: float | None, events: Monitor | None = None
) -> None:
    """Ask an HTTP proxy for a tunnel to the WebSocket server (RFC 9110 §9.3.6, CONNECT)."""
    parts = urlsplit(proxy)
    target = f"[{url.host}]:{url.port}" if ":" in url.host else f"{url.host}:{url.port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode())
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if events is None:
        sock.sendall(request)
    else:
        events.send(sock.sendall, request)
        events.request_sent(request)
    parser = ResponseParser(connect=True)
    # One deadline for the whole answer, as for the handshake: a proxy that drips bytes cannot hold
    # the connection open forever.
    deadline = None if timeout is None else time.monotonic() + timeout
    sock.settimeout(timeout)
    started, received = time.perf_counter(), 0
    while True:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete answer from the proxy within {timeout} s")
            sock.settimeout(remaining)
        data = sock.recv(65536)
        if events is not None and data:
            received += len(data)
            events.data_read(data)
        response = parser.feed(data) if data else parser.feed_eof()
        if response is not None:
            break
    if events is not None:
        duration = time.perf_counter() - started
        events.response_received(
            response.status, response.reason, response.headers, received, duration, "proxy"
        )
    if not 200 <= response.status < 300:
        raise HandshakeError(
            f"proxy refused the tunnel: HTTP {response.status} {response.reason}".rstrip(),
            response.status,
            response.headers,
            response.body,
        )
    if parser.leftover:
        raise HandshakeError("proxy sent data before the tunnel was established")


def open_connection(
    url: WebSocketURL,
    *,
    timeout: float | None,
    connect_timeout: float | None,
    proxy: str | bool | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    events: Monitor | None = None,
) -> socket.socket:
    """A connected (and for ``wss://`` TLS-wrapped) socket to *url*, through *proxy* if given.

    With *events*, the lookup, the TCP connection and the TLS handshake are reported to its subscribers.

    Raises:
        OSError: the TCP connection or the TLS handshake failed (``ssl.SSLCertVerificationError`` for
            a certificate that does not verify).
        HandshakeError: the proxy refused the tunnel.
    """
    connect_tcp = _connect_tcp if events is None else _observed(events)
    if proxy is not None:
        proxy_parts = urlsplit(proxy if isinstance(proxy, str) else "")
        if not isinstance(proxy, str) or proxy_parts.scheme not in ("http", "") or not proxy_parts.hostname:
            raise InvalidURL(
                f"unsupported proxy {redact(str(proxy))!r}: use http://[user:password@]host:port"
            )
        sock = connect_tcp(proxy_parts.hostname, proxy_parts.port or 8080, connect_timeout)
    else:
        sock = connect_tcp(url.host, url.port, connect_timeout)
    try:
        if proxy is not None:
            _tunnel(sock, proxy, url, timeout, events)
        if url.secure:
            sock.settimeout(connect_timeout if connect_timeout is not None else timeout)
            hostname = server_hostname or url.host
            if events is None:
                sock = make_ssl_context(ssl).wrap_socket(sock, server_hostname=hostname)
            else:
                events.tls_start(hostname)
                started = time.perf_counter()
                sock = make_ssl_context(ssl).wrap_socket(sock, server_hostname=hostname)
                events.tls_established(sock.cipher(), time.perf_counter() - started)
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def _observed(events: Monitor) -> Callable[[str, int, float | None], socket.socket]:
    """:func:`_connect_tcp` reporting the lookup and each connection attempt to *events*.

    It does what :func:`socket.create_connection` does (every address in turn, the last error raised)
    with the steps in view.
    """

    def connect_tcp(host: str, port: int, connect_timeout: float | None) -> socket.socket:
        infos = events.lookup(host, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        error: OSError | None = None
        for info in infos:
            family, kind, proto, _, address = info
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(connect_timeout)
                events.connecting(host, info)
                started = time.perf_counter()
                sock.connect(address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            events.connected(info, time.perf_counter() - started)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise error if error is not None else OSError(f"getaddrinfo returned no address for {host!r}")

    return connect_tcp
