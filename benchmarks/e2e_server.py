"""Loopback WebSocket server for the end-to-end benchmarks (bench_e2e.py).

Run as a separate process (so it never shares the GIL with the client under test)::

    python benchmarks/e2e_server.py [--port 0]

It binds 127.0.0.1, prints the port on the first line of stdout, and exits when its stdin is closed
(the parent went away).  Nothing here imports wsfast or any other WebSocket library: the handshake
(Sec-WebSocket-Accept) and the framing are done by hand.

Per connection, the request path picks the scenario:

* ``/small-json?count=N`` -- N ~150-byte JSON trade TEXT messages;
* ``/binary-64k?count=N``, ``/binary-1m?count=N`` -- N BINARY messages of 64 KiB / 1 MiB;
* ``/text-4m-frag-1k?count=N`` -- N ~4 MiB ASCII JSON TEXT messages, each in 1 KiB fragments;
* ``/echo`` -- every client TEXT/BINARY frame is unmasked and sent back (for round-trip latency).

Stream scenarios send PRE-ENCODED unmasked frames as fast as the socket takes them: one pre-joined
``bytes`` block (a few distinct messages, built once per scenario) handed to ``sendall()`` repeatedly,
then the remaining messages, then a CLOSE 1000.  The server answers the client's CLOSE (or reads the
client's answer to its own) and then closes TCP first (RFC 6455 section 7.1.1).

The module is also imported by the benchmarks (``scenario(name)``), so the client side knows exactly
which messages to expect.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HEAD = 64 * 1024
IO_TIMEOUT = 60.0  # a stuck client must not pin a server thread forever

SCENARIOS = ("small-json", "binary-64k", "binary-1m", "text-4m-frag-1k")


# --------------------------------------------------------------------------- framing
def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One unmasked (server -> client) frame with minimal length encoding."""
    b0 = (0x80 if fin else 0) | opcode
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
    last = len(pieces) - 1
    return b"".join(
        server_frame(opcode if i == 0 else OP_CONT, piece, fin=i == last) for i, piece in enumerate(pieces)
    )


CLOSE_1000 = server_frame(OP_CLOSE, struct.pack("!H", 1000))


def unmask(data: bytes, key: bytes) -> bytes:
    """XOR *data* with the 4-byte *key* (whole-buffer big-int XOR; fine for the small echo frames)."""
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")


# --------------------------------------------------------------------------- scenarios
def trade_messages(n: int, seed: int = 11) -> list[str]:
    """~150-byte trade messages shaped like an exchange's public trade stream."""
    rnd = random.Random(seed)
    t0 = 1_732_000_000_000
    price = 97_000.0
    out = []
    for i in range(n):
        price += rnd.uniform(-5, 5)
        ts = t0 + i * 7
        out.append(
            json.dumps(
                {
                    "e": "trade",
                    "E": ts,
                    "s": "BTCUSDT",
                    "t": 4_100_000_000 + i,
                    "p": f"{price:.8f}",
                    "q": f"{rnd.uniform(0.00001, 2.0):.8f}",
                    "b": 38_000_000_000 + rnd.randint(0, 10**6),
                    "T": ts - rnd.randint(0, 3),
                    "m": rnd.random() < 0.5,
                    "M": True,
                },
                separators=(",", ":"),
            )
        )
    return out


def order_book(update_id: int, target: int = 4 * 2**20, seed: int = 3) -> str:
    """A ~4 MiB depth snapshot: ASCII JSON of [price, quantity] string pairs, as exchanges send."""
    rnd = random.Random(seed)
    parts: list[str] = []
    size = 0
    price = 97_000.0
    while size < target:
        price -= rnd.uniform(0.01, 0.5)
        level = f'["{price:.2f}","{rnd.uniform(0.0001, 5):.8f}"]'
        parts.append(level)
        size += len(level) + 1
    return f'{{"lastUpdateId":{update_id},"bids":[' + ",".join(parts) + "]}"


@dataclass
class Scenario:
    """A stream scenario: message i of a connection is ``messages[i % len(messages)]``."""

    name: str
    messages: list  # str (TEXT) or bytes (BINARY), as the client must deliver them
    frames: list  # the encoded frame bytes of each message (all its fragments)
    payload_sizes: list  # payload bytes of each message
    joined: bytes  # b"".join(frames): the block sent repeatedly

    def expected(self, i: int):
        return self.messages[i % len(self.messages)]

    def chunks(self, count: int):
        full, rem = divmod(count, len(self.frames))
        for _ in range(full):
            yield self.joined
        if rem:
            yield b"".join(self.frames[:rem])

    def _total(self, sizes: list, count: int) -> int:
        full, rem = divmod(count, len(sizes))
        return full * sum(sizes) + sum(sizes[:rem])

    def payload_bytes(self, count: int) -> int:
        """Application payload of *count* messages."""
        return self._total(self.payload_sizes, count)

    def wire_bytes(self, count: int) -> int:
        """Everything the server sends after the 101 response for *count* messages, CLOSE included."""
        return self._total([len(f) for f in self.frames], count) + len(CLOSE_1000)


def _build(name: str) -> Scenario:
    if name == "small-json":
        msgs: list = trade_messages(1000)
        frames = [server_frame(OP_TEXT, m.encode()) for m in msgs]
        sizes = [len(m.encode()) for m in msgs]
    elif name in ("binary-64k", "binary-1m"):
        size, distinct = {"binary-64k": (64 * 1024, 16), "binary-1m": (2**20, 4)}[name]
        rnd = random.Random(size)
        msgs = [rnd.randbytes(size) for _ in range(distinct)]
        frames = [server_frame(OP_BINARY, m) for m in msgs]
        sizes = [size] * distinct
    elif name == "text-4m-frag-1k":
        # Two distinct snapshots (different lastUpdateId), so first/last checks tell them apart.
        base = order_book(0)
        msgs = [base.replace('"lastUpdateId":0', f'"lastUpdateId":{51234567890 + k}', 1) for k in range(2)]
        frames = [fragmented(OP_TEXT, m.encode(), 1024) for m in msgs]
        sizes = [len(m.encode()) for m in msgs]
    else:
        raise KeyError(name)
    return Scenario(name, msgs, frames, sizes, b"".join(frames))


_cache: dict[str, Scenario] = {}
_cache_lock = threading.Lock()


def scenario(name: str) -> Scenario:
    with _cache_lock:
        if name not in _cache:
            _cache[name] = _build(name)
        return _cache[name]


# --------------------------------------------------------------------------- server side
class FrameReader:
    """Reads the client's (masked) frames from a blocking socket."""

    def __init__(self, conn: socket.socket, data: bytes = b"") -> None:
        self.conn = conn
        self.buf = bytearray(data)

    def _parse(self):
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        masked = b1 & 0x80
        end = pos + (4 if masked else 0) + n
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + 4 : end] if masked else buf[pos:end])
        if masked:
            payload = unmask(payload, bytes(buf[pos : pos + 4]))
        del buf[:end]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def next(self):
        """(fin, opcode, payload), or None at EOF."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            chunk = self.conn.recv(256 * 1024)
            if not chunk:
                return None
            self.buf += chunk


def handshake(conn: socket.socket):
    """Read the upgrade request, answer it; return (path, query, leftover bytes) or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > MAX_HEAD:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    target = parts[1] if len(parts) >= 2 else "/"
    key = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    url = urlsplit(target)
    path = url.path.strip("/")
    if key is None or (path != "echo" and path not in SCENARIOS):
        body = b"unknown scenario or not a WebSocket upgrade\r\n"
        conn.sendall(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        return None
    conn.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode("ascii")
    )
    return path, parse_qs(url.query), rest


def serve_echo(conn: socket.socket, leftover: bytes) -> None:
    reader = FrameReader(conn, leftover)
    while True:
        frame = reader.next()
        if frame is None:
            return
        fin, opcode, payload = frame
        if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
            conn.sendall(server_frame(opcode, payload, fin))
        elif opcode == OP_PING:
            conn.sendall(server_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            conn.sendall(server_frame(OP_CLOSE, payload[:2]))
            return


def serve_stream(conn: socket.socket, name: str, count: int, leftover: bytes) -> None:
    scen = scenario(name)
    lock = threading.Lock()
    client_closed = threading.Event()

    def read() -> None:
        reader = FrameReader(conn, leftover)
        try:
            while True:
                frame = reader.next()
                if frame is None or frame[1] == OP_CLOSE:
                    return
                if frame[1] == OP_PING:
                    with lock:
                        conn.sendall(server_frame(OP_PONG, frame[2]))
        except OSError:
            pass
        finally:
            client_closed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for chunk in scen.chunks(count):
        if client_closed.is_set():  # the client left early: stop at a message boundary
            break
        with lock:
            conn.sendall(chunk)
    with lock:
        conn.sendall(CLOSE_1000)
    reader.join(IO_TIMEOUT)  # the client's CLOSE (answer to ours, or its own) or EOF


def serve(conn: socket.socket) -> None:
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(IO_TIMEOUT)
        request = handshake(conn)
        if request is None:
            return
        path, query, leftover = request
        if path == "echo":
            serve_echo(conn, leftover)
        else:
            serve_stream(conn, path, int(query.get("count", ["1000"])[0]), leftover)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()


def _exit_when_stdin_closes() -> None:
    with contextlib.suppress(Exception):
        sys.stdin.buffer.read()
    os._exit(0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prebuild", action="store_true", help="build every scenario before listening")
    args = parser.parse_args(argv)
    if args.prebuild:
        for name in SCENARIOS:
            scenario(name)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=128)
    print(listener.getsockname()[1], flush=True)
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
