"""Real servers on 127.0.0.1 for the client tests, each a context manager that runs in a background thread.

- :class:`WebsocketsServer`: a ``websockets`` (new asyncio API) server with a configurable handler (see the
  handler factories below) and optional TLS (:func:`tls_certs`, from ``trustme``).
- :class:`AiohttpServer`: an ``aiohttp`` web server with a WebSocket echo route, redirects and a 403.
- :class:`RawServer`: a scriptable TCP (or TLS) server: the test's handler reads the request and writes exact
  bytes. It computes valid accept keys itself and records the raw request and every (unmasked) client frame;
  ``send_forever`` and ``drip`` script floods and slowloris servers (see tests/test_hostile.py).
- :class:`ConnectProxy`: a tiny HTTP CONNECT proxy with optional Basic proxy auth, counting tunnels.

Every server binds port 0, exposes ``.port`` / ``.url(...)``, and stops cleanly on exit. All blocking
operations have timeouts, so a bug fails a test instead of hanging it. Nothing here imports wsfast.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from helpers import xor_mask

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HOST = "127.0.0.1"
IO_TIMEOUT = 10.0  # seconds, for every blocking server-side operation
START_TIMEOUT = 10.0


def accept_key(key: str) -> str:
    """RFC 6455 §4.2.2: base64(SHA-1(key + GUID)), computed independently of wsfast."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")


# --------------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------------


def tls_certs(*hostnames: str) -> SimpleNamespace:
    """A throw-away CA and a server certificate for *hostnames* (default: localhost and 127.0.0.1).

    Returns ``ca``, ``server_context`` (records SNI names in ``sni``) and ``client_context`` (trusts
    only this CA).
    """
    import trustme

    names = hostnames or ("localhost", "127.0.0.1")
    ca = trustme.CA()
    cert = ca.issue_cert(*names)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    sni: list[str | None] = []

    def record_sni(sslobj: Any, server_name: str | None, context: Any) -> None:
        sni.append(server_name)

    server_context.sni_callback = record_sni
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    return SimpleNamespace(
        ca=ca, server_context=server_context, client_context=client_context, sni=sni, names=names
    )


# --------------------------------------------------------------------------------------------------
# An asyncio loop in a thread
# --------------------------------------------------------------------------------------------------


class _LoopThread:
    """Runs an asyncio event loop in a daemon thread; ``run(coro)`` executes a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[Any], timeout: float = START_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(IO_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


# --------------------------------------------------------------------------------------------------
# (a) websockets server
# --------------------------------------------------------------------------------------------------

Handler = Callable[[Any], Awaitable[None]]


async def echo(ws: Any) -> None:
    """Echo every message (text as text, binary as binary) until the client closes."""
    async for message in ws:
        await ws.send(message)


def close_with(code: int, reason: str = "") -> Handler:
    """Close at once with *code* and *reason*."""

    async def handler(ws: Any) -> None:
        await ws.close(code, reason)

    return handler


def send_then_close(messages: Sequence[str | bytes], code: int = 1000, reason: str = "") -> Handler:
    """Send *messages* (an int N means ``"message 0"`` ... ``"message N-1"``), then close."""

    async def handler(ws: Any) -> None:
        for message in messages:
            await ws.send(message)
        await ws.close(code, reason)

    return handler


def send_messages(count: int, code: int = 1000, reason: str = "") -> Handler:
    return send_then_close([f"message {i}" for i in range(count)], code, reason)


def ping_then_echo(payload: bytes = b"ping!", wait: float = 2.0) -> Handler:
    """Send a PING; report ``"pong: ok"`` or ``"pong: timeout"`` as a text message; then echo."""

    async def handler(ws: Any) -> None:
        waiter = await ws.ping(payload)
        try:
            await asyncio.wait_for(waiter, wait)
        except asyncio.TimeoutError:
            await ws.send("pong: timeout")
        else:
            await ws.send("pong: ok")
        await echo(ws)

    return handler


async def headers_json(ws: Any) -> None:
    """Send the request (path, header pairs, chosen subprotocol) as one JSON text message, then echo."""
    request = ws.request
    await ws.send(
        json.dumps(
            {
                "path": request.path,
                "headers": [[name, value] for name, value in request.headers.raw_items()],
                "subprotocol": ws.subprotocol,
            }
        )
    )
    await echo(ws)


class WebsocketsServer:
    """A ``websockets.asyncio.server.serve`` server on 127.0.0.1.

    Attributes after use: ``closes`` (one ``(code, reason)`` per finished connection, as the server saw
    the client's CLOSE; 1006 if none), ``requests`` (the request headers of each connection), ``errors``
    (exceptions from handlers).
    """

    def __init__(
        self,
        handler: Handler = echo,
        *,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
        **serve_kwargs: Any,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        serve_kwargs.setdefault("compression", None)
        serve_kwargs.setdefault("ping_interval", None)
        self.serve_kwargs = serve_kwargs
        self.closes: list[tuple[int | None, str | None]] = []
        self.requests: list[Any] = []
        self.errors: list[BaseException] = []
        self.port = port  # 0: any free port; a fixed one lets a test restart a server where it was
        self._loop: _LoopThread | None = None
        self._server: Any = None
        self._done = threading.Condition()

    def url(self, path: str = "/", host: str = HOST, scheme: str | None = None) -> str:
        scheme = scheme or ("wss" if self.ssl_context is not None else "ws")
        return f"{scheme}://{host}:{self.port}{path}"

    async def _wrapped(self, ws: Any) -> None:
        self.requests.append(ws.request.headers)
        try:
            await self.handler(ws)
            await asyncio.wait_for(ws.wait_closed(), IO_TIMEOUT)
        except Exception as exc:
            if not type(exc).__module__.startswith("websockets"):
                self.errors.append(exc)
        finally:
            with self._done:
                self.closes.append((ws.close_code, ws.close_reason))
                self._done.notify_all()

    def wait_closes(self, count: int = 1, timeout: float = IO_TIMEOUT) -> list[tuple[int | None, str | None]]:
        """Wait until *count* connections have finished on the server side; return ``closes``."""
        with self._done:
            assert self._done.wait_for(lambda: len(self.closes) >= count, timeout), (
                f"server saw {len(self.closes)} finished connections, expected {count}"
            )
            return list(self.closes)

    async def _start(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(
            self._wrapped, HOST, self.port, ssl=self.ssl_context, reuse_address=True, **self.serve_kwargs
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        self._server.close(close_connections=True)
        await asyncio.wait_for(self._server.wait_closed(), IO_TIMEOUT)

    def __enter__(self) -> WebsocketsServer:
        self._loop = _LoopThread("websockets-server")
        try:
            self._loop.run(self._start())
        except BaseException:
            self._loop.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        try:
            self._loop.run(self._stop(), IO_TIMEOUT + 1)
        finally:
            self._loop.stop()
        if self.errors and exc_info[0] is None:
            raise AssertionError(f"websockets handler failed: {self.errors!r}")


# --------------------------------------------------------------------------------------------------
# (b) aiohttp server
# --------------------------------------------------------------------------------------------------


class AiohttpServer:
    """An ``aiohttp`` web server on 127.0.0.1.

    Routes: ``/ws`` WebSocket echo; ``/redirect302`` and ``/redirect307`` redirect (relative Location) to
    ``/ws``; ``/redirect-absolute`` redirects to the absolute ``ws://`` URL of ``/ws``; ``/forbidden``
    answers 403 with :attr:`FORBIDDEN_BODY`; ``/redirect-loop`` redirects to itself.
    """

    FORBIDDEN_BODY = b"no entry for you"

    def __init__(self) -> None:
        self.port = 0
        self.hits: list[str] = []
        self._loop: _LoopThread | None = None
        self._runner: Any = None

    def url(self, path: str = "/ws", scheme: str = "ws") -> str:
        return f"{scheme}://{HOST}:{self.port}{path}"

    async def _start(self) -> None:
        from aiohttp import WSMsgType, web

        async def ws_echo(request: web.Request) -> web.WebSocketResponse:
            self.hits.append(request.path)
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws

        async def redirect302(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            raise web.HTTPFound("/ws")

        async def redirect307(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            raise web.HTTPTemporaryRedirect("/ws")

        async def redirect_absolute(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            raise web.HTTPFound(self.url("/ws"))

        async def redirect_loop(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            raise web.HTTPFound("/redirect-loop")

        async def forbidden(request: web.Request) -> web.Response:
            self.hits.append(request.path)
            return web.Response(status=403, body=self.FORBIDDEN_BODY, headers={"X-Reason": "test"})

        app = web.Application()
        app.router.add_get("/ws", ws_echo)
        app.router.add_get("/redirect302", redirect302)
        app.router.add_get("/redirect307", redirect307)
        app.router.add_get("/redirect-absolute", redirect_absolute)
        app.router.add_get("/redirect-loop", redirect_loop)
        app.router.add_get("/forbidden", forbidden)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> AiohttpServer:
        self._loop = _LoopThread("aiohttp-server")
        try:
            self._loop.run(self._start())
        except BaseException:
            self._loop.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        try:
            self._loop.run(self._runner.cleanup(), IO_TIMEOUT)
        finally:
            self._loop.stop()


# --------------------------------------------------------------------------------------------------
# (c) raw scriptable TCP server
# --------------------------------------------------------------------------------------------------

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@dataclasses.dataclass(frozen=True)
class RawFrame:
    """One frame the client sent, unmasked by the server."""

    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """For a CLOSE frame: its code (``None`` for an empty payload)."""
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        assert self.opcode == CLOSE
        return self.payload[2:].decode("utf-8")


def server_frame(opcode: int, payload: bytes | str = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked server frame (RFC 6455 §5.2), minimal length encoding."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


def server_close(code: int | None = 1000, reason: str | bytes = b"") -> bytes:
    if code is None:
        return server_frame(CLOSE)
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return server_frame(CLOSE, struct.pack("!H", code) + reason)


# Frames that break RFC 6455, with the close code a client must fail the connection with (1009: over a
# max_message_size of 1000 bytes).
BAD_FROM_SERVER = {
    "rsv bits": (server_frame(TEXT, "x", rsv=0b010), 1002),
    "reserved opcode": (server_frame(0x5, b""), 1002),
    "continuation without start": (server_frame(CONT, b"x"), 1002),
    "invalid close code": (server_close(1004), 1002),
    "invalid utf-8": (server_frame(TEXT, b"abc\xff"), 1007),
    "invalid utf-8 close reason": (server_close(1000, b"\xc3"), 1007),
    "oversize": (server_frame(BINARY, b"x" * 2000), 1009),
}


class RawConnection:
    """One accepted connection of a :class:`RawServer`, driven by the test's handler."""

    def __init__(self, sock: socket.socket, index: int, stopping: threading.Event | None = None) -> None:
        self.sock = sock
        self.index = index
        self.stopping = stopping if stopping is not None else threading.Event()  # set when the server stops
        sock.settimeout(IO_TIMEOUT)
        self._buffer = bytearray()
        self.request: bytes = b""  # the raw request head, including the final CRLFCRLF
        self.request_line = ""
        self.headers: list[tuple[str, str]] = []
        self.frames: list[RawFrame] = []
        self.eof = False

    # Reading

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    def read_request(self) -> bytes:
        """Read the request head; parse the request line and headers. Returns the raw head."""
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if not self._fill():
                raise AssertionError(f"EOF before the end of the request head: {bytes(self._buffer)!r}")
        self.request = bytes(self._buffer[: end + 4])
        del self._buffer[: end + 4]
        lines = self.request[:end].decode("iso-8859-1").split("\r\n")
        self.request_line = lines[0]
        self.headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name, value.strip()))
        return self.request

    def header(self, name: str) -> str | None:
        """The value of request header *name* (case-insensitive; repeated fields joined with ', ')."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def _read_exact(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read_frame(self) -> RawFrame | None:
        """Read and unmask one client frame; ``None`` at EOF (or a truncated frame)."""
        head = self._read_exact(2)
        if head is None:
            return None
        b0, b1 = head
        length = b1 & 0x7F
        if length == 126:
            raw = self._read_exact(2)
            if raw is None:
                return None
            (length,) = struct.unpack("!H", raw)
        elif length == 127:
            raw = self._read_exact(8)
            if raw is None:
                return None
            (length,) = struct.unpack("!Q", raw)
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            raw = self._read_exact(4)
            if raw is None:
                return None
            key = raw
        payload = self._read_exact(length)
        if payload is None:
            return None
        if masked:
            payload = xor_mask(payload, key)
        frame = RawFrame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)
        self.frames.append(frame)
        return frame

    def read_until_close(self) -> RawFrame | None:
        """Read frames until a CLOSE (returned) or EOF (``None``)."""
        while (frame := self.read_frame()) is not None:
            if frame.opcode == CLOSE:
                return frame
        return None

    def read_until_eof(self) -> None:
        while self.read_frame() is not None:
            pass

    # Writing

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_forever(self, chunk: bytes, limit: float = IO_TIMEOUT) -> int:
        """Send *chunk* again and again until the client goes away (or *limit* seconds pass, or the
        server stops); returns how many were sent. For hostile servers: floods, endless messages."""
        deadline = time.monotonic() + limit
        count = 0
        while time.monotonic() < deadline and not self.stopping.is_set():
            try:
                self.sock.sendall(chunk)
            except OSError:  # the client closed (or the send timed out because it stopped reading)
                break
            count += 1
        return count

    def drip(self, data: bytes, interval: float) -> None:
        """Send *data* one byte every *interval* seconds (slowloris), until done or the client leaves."""
        for byte in data:
            if self.stopping.wait(interval):
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                return

    def accept_response(
        self,
        *,
        accept: str | None = None,
        status: str = "101 Switching Protocols",
        upgrade: str | None = "websocket",
        connection: str | None = "Upgrade",
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        """A 101 response with the right ``Sec-WebSocket-Accept`` for the request read (or *accept*)."""
        key = self.header("Sec-WebSocket-Key")
        assert key is not None, "the request has no Sec-WebSocket-Key"
        lines = [f"HTTP/1.1 {status}"]
        if upgrade is not None:
            lines.append(f"Upgrade: {upgrade}")
        if connection is not None:
            lines.append(f"Connection: {connection}")
        lines.append(f"Sec-WebSocket-Accept: {accept if accept is not None else accept_key(key)}")
        lines.extend(f"{name}: {value}" for name, value in extra_headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def accept(self, after: bytes = b"", **kwargs: Any) -> None:
        """Read the request, then send a valid 101 (plus *after*, e.g. frames, in the same write)."""
        if not self.request:
            self.read_request()
        self.send(self.accept_response(**kwargs) + after)

    def finish_closing_handshake(self) -> RawFrame | None:
        """Read until the client's CLOSE; answer it with a CLOSE carrying the same code; close TCP."""
        frame = self.read_until_close()
        if frame is not None:
            code = frame.close_code
            with contextlib.suppress(OSError):
                self.send(server_close(code) if code is not None else server_close(None))
        self.close()
        return frame

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class RawServer:
    """A TCP server that hands each accepted connection to ``handler(conn)`` in its own thread.

    ``connections`` lists every :class:`RawConnection` (with its ``request`` and ``frames``); an
    exception in a handler is recorded in ``errors`` and fails the test on exit.
    """

    def __init__(
        self, handler: Callable[[RawConnection], None], *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context  # wss://: each accepted socket is wrapped (server side)
        self.tls_errors: list[BaseException] = []  # TLS handshakes the client refused (expected in tests)
        self.connections: list[RawConnection] = []
        self.errors: list[BaseException] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._done = threading.Condition()
        self._finished = 0
        self._accept_thread = threading.Thread(target=self._accept_loop, name="raw-server", daemon=True)

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://{HOST}:{self.port}{path}"

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn = RawConnection(sock, len(self.connections), self._stopping)
            self.connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="raw-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: RawConnection) -> None:
        try:
            if self.ssl_context is not None:
                try:
                    conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True)
                except (ssl.SSLError, OSError) as exc:  # e.g. the client rejected the certificate
                    self.tls_errors.append(exc)
                    return
            self.handler(conn)
        except BaseException as exc:
            if not self._stopping.is_set():
                self.errors.append(exc)
        finally:
            conn.close()
            with self._done:
                self._finished += 1
                self._done.notify_all()

    def wait_finished(self, count: int = 1, timeout: float = IO_TIMEOUT) -> None:
        """Wait until *count* handlers have returned."""
        with self._done:
            assert self._done.wait_for(lambda: self._finished >= count, timeout), (
                f"{self._finished} raw-server handlers finished, expected {count}"
            )

    def __enter__(self) -> RawServer:
        self._accept_thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._accept_thread.join(IO_TIMEOUT)
        self._listener.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(IO_TIMEOUT)
        if self.errors and exc_info[0] is None:
            raise AssertionError(f"raw server handler failed: {self.errors!r}") from self.errors[0]


# Handler factories for RawServer


def reply(data: bytes, *, then: str = "close") -> Callable[[RawConnection], None]:
    """Read the request, send *data* exactly; then ``"close"`` TCP or ``"hang"`` until the client leaves."""

    def handler(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(data)
        if then == "hang":
            while conn._fill():
                pass

    return handler


def accept_then(
    after: bytes = b"", *, then: str = "handshake", **kwargs: Any
) -> Callable[[RawConnection], None]:
    """Valid handshake (+ *after* in the same write); then:

    ``"handshake"``: read until the client's CLOSE, answer it, close TCP; ``"eof"``: close TCP at once;
    ``"reset"``: TCP RST at once; ``"read"``: read frames until EOF (never answer a CLOSE).
    """

    def handler(conn: RawConnection) -> None:
        conn.accept(after, **kwargs)
        if then == "handshake":
            conn.finish_closing_handshake()
        elif then == "eof":
            conn.close()
        elif then == "reset":
            conn.reset()
        elif then == "read":
            conn.read_until_eof()
        else:  # pragma: no cover
            raise AssertionError(then)

    return handler


def redirect_response(location: str, status: str = "302 Found") -> bytes:
    return f"HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode("latin-1")


# --------------------------------------------------------------------------------------------------
# (d) HTTP CONNECT proxy
# --------------------------------------------------------------------------------------------------


ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
ESTABLISHED_WITH_LENGTH = b"HTTP/1.1 200 Connection established\r\nContent-Length: 0\r\n\r\n"


class ConnectProxy:
    """A minimal HTTP CONNECT proxy (RFC 9110 §9.3.6) on 127.0.0.1.

    With ``auth=(user, password)`` a missing or wrong ``Proxy-Authorization: Basic`` gets 407.
    *established* is the exact 2xx answer that opens the tunnel: by default the usual bare
    ``HTTP/1.1 200 Connection established`` with no headers (RFC 9110 §9.3.6: a 2xx answer to CONNECT has
    no body and no Content-Length); :data:`ESTABLISHED_WITH_LENGTH` adds ``Content-Length: 0``.
    Attributes: ``tunnels`` (tunnels opened), ``refused`` (407s sent), ``requests`` (raw CONNECT heads),
    ``targets`` (``host:port`` of each CONNECT).
    """

    def __init__(self, auth: tuple[str, str] | None = None, established: bytes = ESTABLISHED) -> None:
        self.auth = auth
        self.established = established
        self.tunnels = 0
        self.refused = 0
        self.requests: list[bytes] = []
        self.targets: list[str] = []
        self.inner = RawServer(self._handle)
        self.port = self.inner.port
        self._sockets: list[socket.socket] = []

    def url(self, with_auth: bool = True) -> str:
        if self.auth and with_auth:
            return f"http://{self.auth[0]}:{self.auth[1]}@{HOST}:{self.port}"
        return f"http://{HOST}:{self.port}"

    def _handle(self, conn: RawConnection) -> None:
        conn.read_request()
        self.requests.append(conn.request)
        method, target, _ = conn.request_line.split(" ", 2)
        self.targets.append(target)
        if method != "CONNECT":
            conn.send(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            if conn.header("Proxy-Authorization") != expected:
                self.refused += 1
                conn.send(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=IO_TIMEOUT)
        self._sockets.append(upstream)
        self.tunnels += 1
        conn.send(self.established)
        client = conn.sock
        if conn._buffer:
            upstream.sendall(bytes(conn._buffer))
            conn._buffer.clear()
        client.settimeout(None)
        upstream.settimeout(None)
        pump = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        pump.start()
        _pipe(client, upstream)
        pump.join(IO_TIMEOUT)
        upstream.close()

    def __enter__(self) -> ConnectProxy:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.inner.__exit__(*exc_info)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes until EOF, then half-close the target."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
