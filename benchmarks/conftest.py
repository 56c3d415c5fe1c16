"""Fixtures for the codec micro-benchmarks (pre-built server-frame streams and
parser adapters, see peers.py) and for the end-to-end loopback benchmarks
(bench_e2e.py: a server process, see e2e_server.py, and event loops).
bench_*.py files are collected by the hook below, so `python -m pytest benchmarks`
works without extra configuration."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import random
import select
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

import peers

CHUNK = 64 * 1024  # what one socket recv() typically hands over


# --------------------------------------------------------------------------- collection
def pytest_collect_file(file_path, parent):
    """Collect bench_*.py as test modules unless python_files already does."""
    name = file_path.name
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest's python plugin collects it already
    if file_path.suffix == ".py" and name.startswith("bench_"):
        patterns = parent.config.getini("python_files")
        if not any(fnmatch.fnmatch(name, p) for p in patterns):
            return pytest.Module.from_parent(parent, path=file_path)
    return None


# --------------------------------------------------------------------------- frames
OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2


def server_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """One unmasked (server -> client) frame with minimal length encoding (RSV1: compressed message)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", b0, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", b0, 126, n)
    else:
        header = struct.pack("!BBQ", b0, 127, n)
    return header + payload


def fragmented(opcode: int, payload: bytes, size: int) -> bytes:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    frames = []
    for i, piece in enumerate(pieces):
        frames.append(server_frame(opcode if i == 0 else OP_CONT, piece, fin=i == len(pieces) - 1))
    return b"".join(frames)


def chunked(stream: bytes, size: int = CHUNK) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


@dataclass
class Scenario:
    name: str
    chunks: list  # list[bytes], 64 KiB each (last one shorter)
    expected: list  # list[str | bytes], the messages in wire order
    nbytes: int  # stream size
    # permessage-deflate scenarios: each message's compressed payload as sent (tail 00 00 ff ff removed)
    payloads: list | None = None
    takeover: bool = True  # permessage-deflate context takeover (one compressor for the stream)

    def check(self, messages) -> None:
        """Fail loudly if an adapter returned anything but the expected messages."""
        assert len(messages) == len(self.expected), (self.name, len(messages), len(self.expected))
        for got, want in zip(messages, self.expected, strict=True):
            if isinstance(want, str):
                assert type(got) is str, (self.name, type(got))
            else:
                assert isinstance(got, (bytes, bytearray)), (self.name, type(got))
            assert got == want, self.name


# --------------------------------------------------------------------------- scenarios
def _trade_messages(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    t0 = 1_732_000_000_000
    msgs = []
    price = 97_000.0
    for i in range(n):
        price += rnd.uniform(-5, 5)
        ts = t0 + i * 7
        msgs.append(
            json.dumps(
                {
                    "e": "trade",
                    "E": ts,
                    "s": "BTCUSDT",
                    "t": 4_100_000_000 + i,
                    "b": 38_000_000_000 + rnd.randint(0, 10**6),
                    "p": f"{price:.8f}",
                    "q": f"{rnd.uniform(0.00001, 2.0):.8f}",
                    "T": ts - rnd.randint(0, 3),
                    "m": rnd.random() < 0.5,
                    "M": True,
                },
                separators=(",", ":"),
            )
        )
    return msgs


def _order_book_4m() -> str:
    """A ~4 MiB depth snapshot: ASCII JSON of [price, quantity] string pairs, as exchanges send."""
    return _order_book(4 * 2**20, seed=3)


def _order_book(target: int, seed: int) -> str:
    rnd = random.Random(seed)
    parts: list[str] = []
    size = 0
    price = 97_000.0
    while size < target:
        price -= rnd.uniform(0.01, 0.5)
        level = f'["{price:.2f}","{rnd.uniform(0.0001, 5):.8f}"]'
        parts.append(level)
        size += len(level) + 1
    head = '{"lastUpdateId":51234567890,"bids":['
    body = ",".join(parts)
    return head + body + "]}"


def _text_4m() -> str:
    # Mostly ASCII with 2-, 3- and 4-byte sequences sprinkled in, so fragment
    # boundaries regularly split a code point.
    rnd = random.Random(4)
    words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        '{"k":1}',
        "café",
        "naïve",
        "Grüße",
        "日本語",
        "данные",
        "€",
        "😀",
        "ok",
        "42",
        "value",
    ]
    parts, size = [], 0
    target = 4 * 2**20
    while size < target:
        w = rnd.choice(words)
        parts.append(w)
        size += len(w.encode()) + 1
    text = " ".join(parts)
    raw = text.encode()[:target]
    return raw.decode("utf-8", errors="ignore")  # drop a possibly cut last code point


def _build(name: str) -> Scenario:
    if name == "small-json":
        msgs = _trade_messages(10_000)
        stream = b"".join(server_frame(OP_TEXT, m.encode()) for m in msgs)
        return Scenario(name, chunked(stream), msgs, len(stream))
    if name.startswith("binary-"):
        size = {"binary-64k": 64 * 1024, "binary-1m": 2**20}[name]
        count = (4 * 2**20) // size  # 4 MiB of payload in either case
        rnd = random.Random(2)
        msgs = [rnd.randbytes(size) for _ in range(count)]
        stream = b"".join(server_frame(OP_BINARY, m) for m in msgs)
        return Scenario(name, chunked(stream), msgs, len(stream))
    if name.startswith("text-4m-"):
        frag = {"64": 64, "1k": 1024, "64k": 64 * 1024}[name.rsplit("-", 1)[1]]
        text = _text_4m() if "multibyte" in name else _order_book_4m()
        stream = fragmented(OP_TEXT, text.encode(), frag)
        return Scenario(name, chunked(stream), [text], len(stream))
    if name.startswith("deflate-"):
        return _build_deflate(name)
    raise KeyError(name)


# --------------------------------------------------------------------------- permessage-deflate
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.1: removed from each compressed message
DEFLATE_LEVEL = 6  # zlib's default (Z_DEFAULT_COMPRESSION), what websockets/aiohttp servers use
ORDERBOOK_SNAPSHOTS = 4  # 1 MiB each


def deflate_messages(payloads: list[bytes], takeover: bool, level: int = DEFLATE_LEVEL) -> list[bytes]:
    """Compress messages as a permessage-deflate server does (RFC 7692 §7.2.1): raw DEFLATE, 32 KiB
    window, Z_SYNC_FLUSH after each message, trailing 00 00 ff ff removed.  takeover: one compressor
    for the stream; else a fresh one per message (server_no_context_takeover)."""
    out = []
    compressor = None
    for payload in payloads:
        if compressor is None or not takeover:
            compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(DEFLATE_TAIL)
        out.append(data[: -len(DEFLATE_TAIL)])
    return out


def _build_deflate(name: str) -> Scenario:
    if name in ("deflate-small-json-takeover", "deflate-small-json-no-takeover"):
        msgs = _trade_messages(10_000)
        takeover = name.endswith("-takeover") and not name.endswith("-no-takeover")
    elif name == "deflate-orderbook":
        msgs = [_order_book(2**20, seed=10 + i) for i in range(ORDERBOOK_SNAPSHOTS)]
        takeover = True
    else:
        raise KeyError(name)
    compressed = deflate_messages([m.encode() for m in msgs], takeover)
    stream = b"".join(server_frame(OP_TEXT, c, rsv1=True) for c in compressed)
    return Scenario(name, chunked(stream), msgs, len(stream), payloads=compressed, takeover=takeover)


class _Scenarios:
    def __init__(self):
        self._cache: dict[str, Scenario] = {}

    def __getitem__(self, name: str) -> Scenario:
        if name not in self._cache:
            self._cache[name] = _build(name)
        return self._cache[name]


@pytest.fixture(scope="session")
def scenarios() -> _Scenarios:
    return _Scenarios()


# --------------------------------------------------------------------------- adapters
@pytest.fixture
def make_adapter():
    """make_adapter(contender) -> adapter; skips if the library is not installed."""
    created = []

    def make(name: str):
        peers.importorskip(peers.REQUIRES[name])
        adapter = peers.make_adapter(name)
        created.append(adapter)
        return adapter

    yield make
    for adapter in created:
        adapter.close()


# --------------------------------------------------------------------------- end to end
E2E_SERVER = Path(__file__).with_name("e2e_server.py")


@pytest.fixture(scope="session")
def e2e_url():
    """Base URL (ws://127.0.0.1:PORT) of e2e_server.py running in its own process (own GIL).

    The server exits when its stdin closes, so it never outlives the session.
    """
    proc = subprocess.Popen(
        [sys.executable, str(E2E_SERVER), "--prebuild"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                raise RuntimeError(f"e2e_server.py did not start (exit code {proc.poll()})")
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 64)
                if not chunk:
                    raise RuntimeError(f"e2e_server.py exited (code {proc.wait()})")
                line += chunk
        yield f"ws://127.0.0.1:{int(line)}"
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture
def make_loop():
    """make_loop("asyncio" | "uvloop") -> a new event loop, closed after the test.

    Callables registered in loop.e2e_cleanup (coroutine functions) run on the loop before it closes.
    """
    loops = []

    def make(kind: str):
        if kind == "uvloop":
            uvloop = peers.importorskip("uvloop")
            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()  # the default (selector) loop
        loop.e2e_cleanup = []
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        try:
            for cleanup in loop.e2e_cleanup:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.wait_for(cleanup(), 10))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def pytest_terminal_summary(terminalreporter):
    """Print the e2e rates and ratios (bench_e2e.REPORT) and the permessage-deflate ratios
    (bench_deflate.REPORT) after the benchmark tables."""
    for name, title in (
        ("bench_e2e", "e2e rates and ratios (bench_e2e.py)"),
        ("bench_deflate", "permessage-deflate ratios and zlib share (bench_deflate.py)"),
    ):
        module = sys.modules.get(name)
        lines = getattr(module, "summary_lines", lambda: [])()
        if lines:
            terminalreporter.write_sep("=", title)
            for line in lines:
                terminalreporter.write_line(line)
