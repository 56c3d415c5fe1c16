"""An embedded market-data feed: a small WebSocket server on loopback, for demos, tests and benchmarks.

``wsfast demo`` consumes it, so the first command of the README works offline on a fresh machine. It
speaks just enough RFC 6455 server side: the opening handshake, a stream of pre-encoded trade messages
(unmasked TEXT frames, sent as fast as the socket takes them, or paced evenly at a given rate by a
:class:`Pacer`), answers to PING and CLOSE,
and an acknowledgement for each text message the client sends (a subscription, say).

Example::

    with FeedServer(messages=100_000) as feed:
        client = WebSocketClient(print, feed.url)
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import socket
import struct
import threading
import time
from types import TracebackType

from .codec import apply_mask
from .handshake import accept_key
from .http11 import MAX_HEAD_SIZE

__all__ = ["FeedServer", "Pacer", "server_frame", "trade_messages"]

BATCH = 1000  # messages per pre-encoded batch; the stream cycles through four batches


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """An unmasked frame, as a server sends it (RFC 6455 §5.2)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def trade_messages(count: int, symbol: str = "BTCUSDT", seed: int = 7, start: int = 0) -> list[bytes]:
    """*count* ~150-byte JSON trade messages shaped like an exchange's public trade stream."""
    rng = random.Random(seed + start)
    price = 60_000.0
    messages = []
    for i in range(start, start + count):
        price += rng.uniform(-5, 5)
        messages.append(
            json.dumps(
                {
                    "e": "trade",
                    "E": 1_700_000_000_000 + i,
                    "s": symbol,
                    "t": 4_000_000 + i,
                    "p": f"{price:.2f}",
                    "q": f"{rng.uniform(0.0001, 2):.5f}",
                    "T": 1_700_000_000_000 + i,
                    "m": rng.random() < 0.5,
                },
                separators=(",", ":"),
            ).encode()
        )
    return messages


class Pacer:
    """A deadline schedule for *rate* messages per second: message *i* is due at ``start + i / rate``.

    Each deadline is computed from *start*, never from the previous send, so the schedule does not drift:
    sleeping too long (a loaded machine, a slow reader) makes the next call to :meth:`due` count every
    message that became due meanwhile, and the average rate stays *rate*. The caller passes the time in,
    so the schedule is tested without a clock.

    Example::

        pacer = Pacer(100.0, time.monotonic())
        while True:
            count = pacer.due(time.monotonic())  # send this many now, then
            pacer.advance(count)
            time.sleep(max(0.0, pacer.next_at() - time.monotonic()))
    """

    # Deadlines are sums of floats: a clock reading equal to start + i / rate may compute as a hair
    # below it, and the message would be found due only on the next, later, call.
    _EPSILON = 1e-9

    def __init__(self, rate: float, start: float) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of messages per second, not {rate!r}")
        self.rate = rate
        self.start = start
        self.sent = 0

    def due(self, now: float) -> int:
        """How many messages are due at *now* and not sent yet (0 before the next deadline)."""
        if now < self.start:
            return 0
        return max(0, math.floor((now - self.start) * self.rate + self._EPSILON) + 1 - self.sent)

    def advance(self, count: int) -> None:
        """Count *count* more messages as sent."""
        self.sent += count

    def next_at(self) -> float:
        """When the next message is due (the clock of *start*)."""
        return self.start + self.sent / self.rate


class FeedServer:
    """A threaded WebSocket server on 127.0.0.1 streaming trade messages to every client.

    Args:
        messages: how many messages each connection receives before the server closes it with 1000
            (``None``: stream until the client leaves).
        rate: messages per second, paced evenly by a :class:`Pacer` (one every ``1 / rate`` seconds on
            average, with no drift; several at once only to catch up after a late wake-up) (``None``: as
            fast as the socket accepts them, in batches of 1,000).
        port: the TCP port (0: any free port; read :attr:`url`).
        wait_for_subscribe: start streaming only after the client's first text message, as exchange
            feeds do after a subscription.
    """

    def __init__(
        self,
        messages: int | None = 100_000,
        rate: float | None = None,
        port: int = 0,
        wait_for_subscribe: bool = False,
    ) -> None:
        self.messages = messages
        self.rate = rate
        self.wait_for_subscribe = wait_for_subscribe
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/stream"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._frames: list[list[bytes]] = []
        self._joined: list[bytes] = []
        self._accept_thread = threading.Thread(target=self._accept, name="wsfast-feed", daemon=True)
        self._accept_thread.start()

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, drop every connection and wait for the server threads."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(): close() alone does not on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._accept_thread.join(5)
        for thread in list(self._threads):
            thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(30)
            leftover = self._handshake(conn)
            if leftover is None:
                return
            write_lock = threading.Lock()
            closing = threading.Event()
            subscribed = threading.Event()
            if not self.wait_for_subscribe:
                subscribed.set()
            writer = threading.Thread(
                target=self._stream, args=(conn, write_lock, closing, subscribed), daemon=True
            )
            writer.start()
            self._read(conn, leftover, write_lock, closing, subscribed)
            subscribed.set()
            closing.set()
            writer.join(5)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _handshake(self, conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk or len(data) > MAX_HEAD_SIZE:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        key = ""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        if not key:
            conn.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 27\r\n\r\nnot a WebSocket handshake\r\n"
            )
            return None
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\nServer: wsfast-feed\r\n\r\n"
            ).encode()
        )
        return rest

    def _batches(self) -> tuple[list[list[bytes]], list[bytes]]:
        """Four batches of pre-encoded trade frames, built once: the stream cycles through them."""
        with self._lock:
            if not self._frames:
                self._frames = [
                    [server_frame(0x1, payload) for payload in trade_messages(BATCH, start=i * BATCH)]
                    for i in range(4)
                ]
                self._joined = [b"".join(batch) for batch in self._frames]
            return self._frames, self._joined

    def _stream(
        self,
        conn: socket.socket,
        write_lock: threading.Lock,
        closing: threading.Event,
        subscribed: threading.Event,
    ) -> None:
        batches, joined = self._batches()
        subscribed.wait()
        sent = 0
        pacer = Pacer(self.rate, time.monotonic()) if self.rate is not None else None
        while not closing.is_set() and not self._stop.is_set():
            if self.messages is not None and sent >= self.messages:
                with write_lock, contextlib.suppress(OSError):
                    conn.sendall(server_frame(0x8, struct.pack("!H", 1000) + b"feed complete"))
                    closing.set()
                return
            index, offset = (sent // BATCH) % len(batches), sent % BATCH
            size = BATCH - offset
            if pacer is not None:
                now = time.monotonic()
                due = pacer.due(now)
                if due == 0:
                    closing.wait(pacer.next_at() - now)
                    continue
                size = min(size, due)
            if self.messages is not None:
                size = min(size, self.messages - sent)
            frames = joined[index] if size == BATCH else b"".join(batches[index][offset : offset + size])
            with write_lock:
                try:
                    conn.sendall(frames)
                except OSError:
                    return
            sent += size
            if pacer is not None:
                pacer.advance(size)

    def _read(
        self,
        conn: socket.socket,
        data: bytes,
        write_lock: threading.Lock,
        closing: threading.Event,
        subscribed: threading.Event,
    ) -> None:
        """Parse the client's masked frames: answer PING and CLOSE, acknowledge text messages."""
        buffer = bytearray(data)
        while True:
            while len(buffer) >= 6:
                first, second = buffer[0], buffer[1]
                size, offset = second & 0x7F, 2
                if size == 126:
                    if len(buffer) < 8:
                        break
                    size, offset = struct.unpack_from("!H", buffer, 2)[0], 4
                elif size == 127:
                    if len(buffer) < 14:
                        break
                    size, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
                if len(buffer) < offset + 4 + size:
                    break
                mask = bytes(buffer[offset : offset + 4])
                payload = apply_mask(bytes(buffer[offset + 4 : offset + 4 + size]), mask)
                del buffer[: offset + 4 + size]
                opcode = first & 0x0F
                with write_lock:
                    if opcode == 0x9:
                        conn.sendall(server_frame(0xA, payload))
                    elif opcode == 0x8:
                        if not closing.is_set():  # the client closed first: answer (RFC 6455 §5.5.1)
                            closing.set()
                            conn.sendall(server_frame(0x8, payload[:2]))
                        conn.shutdown(socket.SHUT_WR)  # the server closes TCP first (§7.1.1)
                        return
                    elif opcode == 0x1 and not closing.is_set():
                        ack = json.dumps({"ack": payload.decode("utf-8", "replace")}).encode()
                        conn.sendall(server_frame(0x1, ack))
                        subscribed.set()
            chunk = conn.recv(65536)
            if not chunk:
                return
            buffer += chunk
