"""The test proxies themselves, without wsfast: each route tunnels a WebSocket connection opened by the
``websockets`` client over a socket negotiated here by hand (HTTP CONNECT, RFC 9110 §9.3.6; SOCKS5,
RFC 1928 and RFC 1929; SOCKS4 and SOCKS4a). When a proxy test of the contract suite fails, this file
tells whether the proxy or the client is at fault.

The checks use ``websockets``' asyncio client, not its ``websockets.sync`` one: the sync client reads an
``ssl.SSLSocket`` on a background thread while the caller writes to it, and OpenSSL forbids using one
``SSL`` object from two threads at once, so over TLS it sometimes loses the handshake response (seen as
a rare "timed out while waiting for handshake response").
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from adapters import WAIT
from routes import Route

from proxies import UnixWebsocketsServer
from servers import WebsocketsServer


def echo_once(url: str, text: str, **options: Any) -> None:
    """Open a connection with ``websockets``' asyncio client, check one echo, close."""
    from websockets.asyncio.client import connect, unix_connect

    async def exchange() -> None:
        opener = unix_connect if "path" in options else connect
        async with opener(uri=url, open_timeout=WAIT, **options) as ws:
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), WAIT) == text

    asyncio.run(exchange())


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"the proxy closed the connection after {data!r}"
        data += chunk
    return data


def _ipv4(host: str) -> bytes:
    return socket.inet_aton(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])


def open_tunnel(route: Route, host: str, port: int) -> socket.socket:
    """A socket connected through *route*'s proxy to *host*:*port* (TLS to an https:// proxy)."""
    proxy = urlsplit(route.proxy)
    assert proxy.hostname is not None
    assert proxy.port is not None
    user = unquote(proxy.username or "")
    password = unquote(proxy.password or "")
    sock: Any = socket.create_connection((proxy.hostname, proxy.port), timeout=WAIT)
    if proxy.scheme in ("http", "https"):
        if proxy.scheme == "https":
            sock = route.options["proxy_ssl"].wrap_socket(sock, server_hostname=proxy.hostname)
        auth = ""
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            auth = f"Proxy-Authorization: Basic {token}\r\n"
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += _read_exact(sock, 1)
        assert head.split(b" ", 2)[1] == b"200", head
    elif proxy.scheme in ("socks5", "socks5h"):
        method = 2 if user else 0
        sock.sendall(bytes([5, 1, method]))
        assert _read_exact(sock, 2) == bytes([5, method])
        if user:
            sock.sendall(bytes([1, len(user)]) + user.encode() + bytes([len(password)]) + password.encode())
            assert _read_exact(sock, 2) == b"\x01\x00"
        if proxy.scheme == "socks5h":
            address = bytes([3, len(host)]) + host.encode()
        else:
            address = b"\x01" + _ipv4(host)
        sock.sendall(b"\x05\x01\x00" + address + struct.pack("!H", port))
        reply = _read_exact(sock, 4)
        assert reply[1] == 0, f"SOCKS5 reply {reply[1]}"
        if reply[3] == 3:  # the bound address: a name (length first), IPv4 or IPv6; then the port
            _read_exact(sock, _read_exact(sock, 1)[0] + 2)
        else:
            _read_exact(sock, (4 if reply[3] == 1 else 16) + 2)
    else:
        assert proxy.scheme in ("socks4", "socks4a"), proxy.scheme
        if proxy.scheme == "socks4a":
            target, name = b"\x00\x00\x00\x01", host.encode() + b"\x00"
        else:
            target, name = _ipv4(host), b""
        sock.sendall(b"\x04\x01" + struct.pack("!H", port) + target + b"wsfast\x00" + name)
        reply = _read_exact(sock, 8)
        assert reply[1] == 0x5A, f"SOCKS4 reply {reply[1]:#x}"
    return sock  # type: ignore[no-any-return]


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_each_proxy_tunnels_a_websocket(route: Route, scheme: str, request: pytest.FixtureRequest) -> None:
    certs = request.getfixturevalue("certs")
    server: WebsocketsServer = request.getfixturevalue("ws_server" if scheme == "ws" else "wss_server")
    peers: list[str] = server.peers  # type: ignore[attr-defined]
    mark = len(peers)
    carried = route.carried() if route.carried else 0
    context = certs.client_context if scheme == "wss" else None
    if route.proxy.startswith("https:"):  # asyncio takes no SSLSocket: websockets' own proxy code
        options: dict[str, Any] = {"proxy": route.proxy, "proxy_ssl": route.options["proxy_ssl"]}
    else:
        options = {"sock": open_tunnel(route, route.host, server.port)}
    if context is not None and "sock" in options:
        options["server_hostname"] = route.host
    echo_once(server.url(host=route.host), "tunnelled", ssl=context, **options)
    assert peers[mark:] == [route.peer]
    if route.carried:
        assert route.carried() > carried


def test_nginx_terminates_tls_for_a_websocket_server(nginx_wss: Any, certs: Any) -> None:
    echo_once(f"wss://localhost:{nginx_wss.front_ports[0]}/", "through nginx", ssl=certs.client_context)


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_unix_socket_server(certs: Any, tls: bool) -> None:
    context = certs.server_context if tls else None
    with UnixWebsocketsServer(ssl_context=context) as server:
        url = f"{'wss' if tls else 'ws'}://localhost/"
        client_context: ssl.SSLContext | None = certs.client_context if tls else None
        echo_once(url, "over unix", path=server.path, ssl=client_context)
        assert server.hosts == ["localhost"]
