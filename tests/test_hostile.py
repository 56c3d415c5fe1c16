"""Hostile servers: each attack ends in the documented error and close code within the configured limits and
timeouts, with memory bounded, and the same client then connects to a good server.

Every scenario runs against both clients (threaded ``WebSocketClient``, asyncio ``wsfast.connect``) and both
codec twins (``codec_impl``). The server is a :class:`~servers.RawServer` whose first connection is the
attack and whose later connections are a well-behaved echo server. Memory is watched while the attack runs:
the process's resident set (sampled every few milliseconds: the compiled codec allocates with ``malloc``,
which tracemalloc does not see) and tracemalloc's peak (Python objects), both against a bound that is a
small multiple of the message limit and far below what the attack would take if it were not stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import ssl
import struct
import sys
import threading
import time
import tracemalloc
import types
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import wsfast
from servers import (
    CLOSE,
    CONT,
    PING,
    TEXT,
    RawConnection,
    RawServer,
    server_close,
    server_frame,
    tls_certs,
)
from wsfast import ConnectionClosed, InvalidHTTP, InvalidStatus
from wsfast.client import WebSocketClient

pytest_plugins = ["conftest_client"]
pytestmark = pytest.mark.usefixtures("codec_impl")

LIMIT = 2**20  # max_message_size of the clients under attack
TIMEOUT = 1.5  # the handshake deadline (open_timeout), and each send (threaded: timeout)
CLOSE_TIMEOUT = 1.0
MEMORY_BOUND = 48 * LIMIT  # growth allowed while an attack runs (RSS and tracemalloc peak)
WAIT = 15.0  # the bound on every wait in these tests; the clients need far less
CLIENTS = ("threaded", "asyncio")


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def _rss() -> int:
    """The resident set in bytes; 0 where /proc is not available (then only tracemalloc is checked)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


TRACEMALLOC = sys.implementation.name == "cpython"


class MemoryWatch:
    """Peak growth of the resident set (sampled) and tracemalloc's peak while the block runs."""

    def __init__(self) -> None:
        self.rss_growth = 0
        self.traced_peak = 0
        self._stop = threading.Event()

    def _sample(self, baseline: int) -> None:
        while not self._stop.wait(0.003):
            self.rss_growth = max(self.rss_growth, _rss() - baseline)

    def __enter__(self) -> MemoryWatch:
        self._tracing = TRACEMALLOC and not tracemalloc.is_tracing()
        if self._tracing:
            tracemalloc.start()
        if TRACEMALLOC:
            tracemalloc.reset_peak()
            self._traced_start = tracemalloc.get_traced_memory()[0]
        self._thread = threading.Thread(target=self._sample, args=(_rss(),), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if TRACEMALLOC:
            self.traced_peak = tracemalloc.get_traced_memory()[1] - self._traced_start
        if self._tracing:
            tracemalloc.stop()
        self._stop.set()
        self._thread.join(5)

    def check(self, bound: int = MEMORY_BOUND) -> None:
        assert self.rss_growth < bound, f"RSS grew by {self.rss_growth / 2**20:.1f} MiB"
        assert self.traced_peak < bound, f"tracemalloc peak {self.traced_peak / 2**20:.1f} MiB"


# --------------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """How one connection attempt ended: the exception connect raised, or the close code."""

    raised: BaseException | None = None
    code: int | None = None
    messages: list[Any] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def _threaded_options(options: dict[str, Any]) -> dict[str, Any]:
    options = dict(options)
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("open_timeout", TIMEOUT)  # the handshake deadline is open_timeout on both (issue 15)
    options.setdefault("close_timeout", CLOSE_TIMEOUT)
    options.setdefault("max_message_size", LIMIT)
    return options


def _asyncio_options(options: dict[str, Any]) -> dict[str, Any]:
    options = dict(options)
    options.setdefault("open_timeout", options.pop("timeout", TIMEOUT))
    options.setdefault("close_timeout", CLOSE_TIMEOUT)
    options.setdefault("max_message_size", LIMIT)
    return options


def run_loop(coroutine: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coroutine, WAIT))
    finally:
        loop.close()


class ThreadedClient:
    """One ``WebSocketClient``, used for the attack and then again for the good connection."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.messages: list[Any] = []
        self.closes: list[int] = []
        self.closed = threading.Event()
        self.client = WebSocketClient(
            self.messages.append, url, on_close=self._on_close, **_threaded_options(options)
        )

    def _on_close(self, code: int, reason: str) -> None:
        self.closes.append(code)
        self.closed.set()

    def attack(self, during: Callable[[Any], None] | None = None) -> Outcome:
        started = time.monotonic()
        self.closed.clear()
        try:
            self.client.connect()
        except Exception as exc:
            return Outcome(raised=exc, seconds=time.monotonic() - started)
        if during is not None:
            during(self.client)
        assert self.closed.wait(WAIT), "the client did not give up on the hostile server"
        assert self.client.wait(WAIT)
        return Outcome(code=self.closes[-1], messages=list(self.messages), seconds=time.monotonic() - started)

    def connect_good(self) -> None:
        self.closed.clear()
        del self.messages[:]
        self.client.connect()
        self.client.send("hello again")
        deadline = time.monotonic() + WAIT
        while not self.messages and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.messages == ["hello again"]
        self.client.disconnect()
        assert self.closed.wait(WAIT)
        assert self.closes[-1] == 1000


class AsyncioClient:
    """``wsfast.connect`` with the same options for the attack and for the good connection."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url = url
        self.options = _asyncio_options(options)

    def attack(self, during: Callable[[Any], Any] | None = None) -> Outcome:
        async def main() -> Outcome:
            started = time.monotonic()
            try:
                ws = await wsfast.connect(self.url, **self.options)
            except Exception as exc:
                return Outcome(raised=exc, seconds=time.monotonic() - started)
            if during is not None:
                await during(ws)
            messages = []
            try:
                while True:
                    messages.append(await ws.recv())
            except ConnectionClosed as exc:
                await ws.wait_closed()
                return Outcome(code=exc.code, messages=messages, seconds=time.monotonic() - started)

        return run_loop(main())

    def connect_good(self) -> None:
        async def main() -> None:
            async with wsfast.connect(self.url, **self.options) as ws:
                await ws.send("hello again")
                assert await ws.recv() == "hello again"
            assert ws.close_code == 1000

        run_loop(main())


def make_client(kind: str, url: str, **options: Any) -> ThreadedClient | AsyncioClient:
    return ThreadedClient(url, options) if kind == "threaded" else AsyncioClient(url, options)


@pytest.fixture(params=CLIENTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --------------------------------------------------------------------------------------------------
# The servers: the first connection attacks, later ones echo
# --------------------------------------------------------------------------------------------------


def good_echo(conn: RawConnection) -> None:
    """A well-behaved server: accept, echo text messages, answer the client's CLOSE."""
    conn.accept()
    while (frame := conn.read_frame()) is not None:
        if frame.opcode == CLOSE:
            code = frame.close_code
            with contextlib.suppress(OSError):
                conn.send(server_close(code))
            return
        if frame.opcode == TEXT:
            conn.send(server_frame(TEXT, frame.payload))


def attack_then_good(attack: Callable[[RawConnection], None]) -> Callable[[RawConnection], None]:
    def handler(conn: RawConnection) -> None:
        if conn.index == 0:
            attack(conn)
        else:
            good_echo(conn)

    return handler


def client_close_codes(conn: RawConnection) -> list[int | None]:
    return [frame.close_code for frame in conn.frames if frame.opcode == CLOSE]


def accept_then_read(after: bytes, **kwargs: Any) -> Callable[[RawConnection], None]:
    """Accept (+ *after* in the same write), then read the client's frames until it closes TCP."""

    def attack(conn: RawConnection) -> None:
        conn.accept(after, **kwargs)
        conn.read_until_eof()

    return attack


def length_claim() -> Callable[[RawConnection], None]:
    # RFC 6455 §5.2 allows 63 bits of length: a claim of 2**63 - 1 bytes must not allocate anything.
    return accept_then_read(bytes([0x82, 0x7F]) + struct.pack("!Q", 2**63 - 1) + b"tiny")


def endless_fragments() -> Callable[[RawConnection], None]:
    def attack(conn: RawConnection) -> None:
        conn.accept(server_frame(TEXT, b"a", fin=False))
        conn.send_forever(server_frame(CONT, b"a", fin=False) * 20_000)
        conn.read_until_eof()

    return attack


def compression_bomb() -> Callable[[RawConnection], None]:
    # 256 MiB of zeros deflate to about 256 KiB: a client without a bound on the inflated size would
    # allocate all of it; wsfast stops at max_message_size + 1 (1009).
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\x00" * 2**20
    body = b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = server_frame(0x2, body[:-4], rsv=0b100)
    return accept_then_read(bomb, extra_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])


def closes_mid_frame(reset: bool) -> Callable[[RawConnection], None]:
    def attack(conn: RawConnection) -> None:
        conn.accept(server_frame(TEXT, b"whole") + bytes([0x82, 100]) + b"only ten b")
        time.sleep(0.05)
        if reset:
            conn.reset()  # SO_LINGER 0: a TCP RST
        else:
            conn.close()

    return attack


FRAME_ATTACKS: dict[str, tuple[Callable[[], Callable[[RawConnection], None]], int, dict[str, Any]]] = {
    # id: (attack factory, expected close code, client options)
    "length-claim-2**63-1": (length_claim, 1009, {}),
    # (a smaller limit: a 1 MiB message of 1-byte fragments is a million frames for the pure twin)
    "endless-message-of-tiny-fragments": (endless_fragments, 1009, {"max_message_size": 2**16}),
    "invalid-utf8-text": (lambda: accept_then_read(server_frame(TEXT, b"ok \xff")), 1007, {}),
    "invalid-utf8-close-reason": (lambda: accept_then_read(server_close(1000, b"\xc3\x28")), 1007, {}),
    "masked-frame": (
        lambda: accept_then_read(bytes([0x81, 0x82]) + b"\x01\x02\x03\x04" + b"\x60\x6b"),
        1002,
        {},
    ),
    "compression-bomb": (compression_bomb, 1009, {"compression": "deflate"}),
    "close-mid-frame": (lambda: closes_mid_frame(reset=False), 1006, {}),
    "reset-mid-frame": (lambda: closes_mid_frame(reset=True), 1006, {}),
}


@pytest.mark.parametrize("attack", list(FRAME_ATTACKS), ids=list(FRAME_ATTACKS))
def test_frame_attacks(kind: str, attack: str, codec_impl: types.SimpleNamespace) -> None:
    factory, expected, options = FRAME_ATTACKS[attack]
    with RawServer(attack_then_good(factory())) as server:
        client = make_client(kind, server.url(), **options, implementation=codec_impl.name)
        with MemoryWatch() as memory:
            outcome = client.attack()
        assert outcome.raised is None, outcome.raised
        assert outcome.code == expected, outcome
        assert outcome.seconds < TIMEOUT + CLOSE_TIMEOUT + 3
        memory.check()
        if expected != 1006:
            server.wait_finished(1)
            # The client failed the connection with the code, in a CLOSE frame the server received.
            assert client_close_codes(server.connections[0]) == [expected]
        if attack.endswith("mid-frame"):
            assert outcome.messages == ["whole"]  # what came before the cut is delivered
        client.connect_good()


# --------------------------------------------------------------------------------------------------
# The opening handshake
# --------------------------------------------------------------------------------------------------

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\n"


def endless_headers(conn: RawConnection) -> None:
    conn.read_request()
    conn.send(SWITCHING)
    conn.send_forever(b"X-Endless: header line\r\n" * 1000)


def gigantic_header(conn: RawConnection) -> None:
    conn.read_request()
    conn.send(SWITCHING + b"X-Huge: ")
    conn.send_forever(b"a" * 65536)


def endless_refusal_body(conn: RawConnection) -> None:
    # A refusal whose chunked body never ends (a chunk-size line without its CRLF).
    conn.read_request()
    conn.send(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.send_forever(b"f" * 65536)


def slowloris(conn: RawConnection) -> None:
    conn.read_request()
    conn.drip(SWITCHING + b"Upgrade: websocket\r\nConnection: Upgrade\r\n", interval=1.0)


HANDSHAKE_ATTACKS: dict[str, tuple[Callable[[RawConnection], None], type[BaseException], str]] = {
    "response-that-never-ends": (endless_headers, InvalidHTTP, "larger than"),
    "gigantic-header": (gigantic_header, InvalidHTTP, "larger than"),
    "refusal-body-that-never-ends": (endless_refusal_body, InvalidStatus, "403"),
    "slowloris-one-byte-per-second": (slowloris, TimeoutError, ""),
}


@pytest.mark.parametrize("attack", list(HANDSHAKE_ATTACKS), ids=list(HANDSHAKE_ATTACKS))
def test_handshake_attacks(kind: str, attack: str, codec_impl: types.SimpleNamespace) -> None:
    handler, error, text = HANDSHAKE_ATTACKS[attack]
    with RawServer(attack_then_good(handler)) as server:
        client = make_client(kind, server.url(), implementation=codec_impl.name)
        with MemoryWatch() as memory:
            outcome = client.attack()
        assert isinstance(outcome.raised, error), outcome
        assert text in str(outcome.raised)
        assert outcome.seconds < TIMEOUT + 2  # within the handshake deadline
        memory.check()
        client.connect_good()


def test_slowloris_proxy(kind: str, codec_impl: types.SimpleNamespace) -> None:
    # An HTTP proxy that answers CONNECT one byte per second: the same deadline bounds its answer.
    def proxy(conn: RawConnection) -> None:
        conn.read_request()
        conn.drip(b"HTTP/1.1 200 Connection established\r\n\r\n", interval=1.0)

    with RawServer(proxy) as slow, RawServer(good_echo) as target:
        client = make_client(
            kind, target.url(), proxy=f"http://127.0.0.1:{slow.port}", implementation=codec_impl.name
        )
        outcome = client.attack()
        assert isinstance(outcome.raised, TimeoutError), outcome
        assert outcome.seconds < TIMEOUT + 2
        make_client(kind, target.url(), implementation=codec_impl.name).connect_good()


# --------------------------------------------------------------------------------------------------
# Floods
# --------------------------------------------------------------------------------------------------


def test_endless_pings_from_a_server_that_never_reads(kind: str, codec_impl: types.SimpleNamespace) -> None:
    # Every PING asks for a PONG, and this server reads none of them. The threaded client's send times
    # out (timeout=); the asyncio client stops reading while its write buffer is full, so memory stays
    # bounded, and close() gives up after close_timeout. Either way: 1006, the server never closed.
    def attack(conn: RawConnection) -> None:
        conn.accept()
        conn.send_forever(server_frame(PING, b"p" * 125) * 500, limit=WAIT)

    async def close_soon(ws: Any) -> None:
        await asyncio.sleep(2.0)  # the flood goes on meanwhile; the write buffer must not grow with it
        await ws.close()

    with RawServer(attack_then_good(attack)) as server:
        client = make_client(kind, server.url(), implementation=codec_impl.name)
        with MemoryWatch() as memory:
            outcome = client.attack(during=close_soon if kind == "asyncio" else None)
        assert outcome.raised is None, outcome.raised
        assert outcome.code == 1006, outcome
        assert outcome.seconds < TIMEOUT + CLOSE_TIMEOUT + 3
        memory.check(bound=8 * 2**20)  # (the asyncio client once buffered ~25 MiB of PONGs a second)
        client.connect_good()


# --------------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------------


def _tls_server(certs: types.SimpleNamespace) -> RawServer:
    return RawServer(good_echo, ssl_context=certs.server_context)


@pytest.mark.parametrize("problem", ["wrong-hostname", "expired"])
def test_tls_certificate_problems(kind: str, problem: str, codec_impl: types.SimpleNamespace) -> None:
    good = tls_certs("localhost", "127.0.0.1")
    if problem == "wrong-hostname":
        bad = tls_certs("stream.example.test")
    else:
        bad = tls_certs()
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        expired = bad.ca.issue_cert("localhost", "127.0.0.1", not_after=past)
        bad.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        expired.configure_cert(bad.server_context)
    with _tls_server(bad) as server:
        client = make_client(
            kind, server.url(scheme="wss"), ssl=bad.client_context, implementation=codec_impl.name
        )
        outcome = client.attack()
        # A TLSError naming the hop, the certificate error as its cause (issue 15).
        assert isinstance(outcome.raised, wsfast.TLSError), outcome
        assert isinstance(outcome.raised.__cause__, ssl.SSLCertVerificationError), outcome
        expected = "expired" if problem == "expired" else "match"
        assert expected in str(outcome.raised).lower()
        assert outcome.seconds < TIMEOUT + 2
        assert server.connections[0].frames == []  # nothing was sent over the refused connection
    with _tls_server(good) as server:
        make_client(
            kind, server.url(scheme="wss"), ssl=good.client_context, implementation=codec_impl.name
        ).connect_good()
