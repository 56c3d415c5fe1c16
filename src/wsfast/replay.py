"""Replay a capture (:mod:`wsfast.capture`) as a local WebSocket feed, at its pace, scaled, or at full speed.

Point the program under test at :attr:`ReplayServer.url` instead of the exchange::

    with ReplayServer("feed.wscap", speed=1.0) as replay:
        client = WebSocketClient(on_message, replay.url)
        ...
    replay.pacing()   # how late each message went out against its schedule

Every connection gets the capture's messages from the start, in order and byte for byte (TEXT as TEXT,
BINARY as BINARY; notes are not sent), then a CLOSE 1000. With *speed* ``1.0`` message *i* is sent
``(monotonic_ns[i] - monotonic_ns[0]) / speed`` after the first, on a schedule that does not drift (each
time is computed from the start, never from the previous send); ``None`` sends as fast as the socket
takes them. The server side of the protocol (handshake, PING, CLOSE) is :class:`wsfast.feed.FeedServer`'s.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import threading
import time
from dataclasses import dataclass

from .capture import NOTE, TEXT, CaptureReader
from .feed import FeedServer, server_frame

__all__ = ["Pacing", "ReplayServer"]

_BATCH_BYTES = 256 * 1024  # at full speed, frames are written in blocks of about this size


@dataclass(frozen=True, slots=True)
class Pacing:
    """How late messages were sent against their schedule (microseconds), over *messages* messages."""

    messages: int
    median_us: float
    p99_us: float
    max_us: float


class ReplayServer(FeedServer):
    """A threaded WebSocket server on 127.0.0.1 that plays a capture to every client.

    Args:
        path: the capture file (read once per connection: a large capture is never held in memory).
        speed: ``1.0`` the original pace, ``2.0`` twice as fast, ``None`` as fast as possible.
        port: the TCP port (0: any free port; read :attr:`url`).
        wait_for_subscribe: start only after the client's first text message.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        speed: float | None = 1.0,
        port: int = 0,
        wait_for_subscribe: bool = False,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be positive (or None: as fast as possible), got {speed}")
        self.path = os.fspath(path)
        self.speed = speed
        list(CaptureReader(self.path))  # a file that is not a capture fails here, not in a server thread
        self._lateness_ns: list[int] = []
        self._lateness_lock = threading.Lock()
        super().__init__(messages=None, port=port, wait_for_subscribe=wait_for_subscribe)
        self.url = f"ws://127.0.0.1:{self.port}/replay"

    def pacing(self) -> Pacing | None:
        """The lateness of every message sent on a schedule so far (``None`` at full speed or before)."""
        with self._lateness_lock:
            late = sorted(self._lateness_ns)
        if not late:
            return None
        return Pacing(
            messages=len(late),
            median_us=statistics.median(late) / 1000,
            p99_us=late[min(len(late) - 1, len(late) * 99 // 100)] / 1000,
            max_us=late[-1] / 1000,
        )

    def _stream(
        self,
        conn: socket.socket,
        write_lock: threading.Lock,
        closing: threading.Event,
        subscribed: threading.Event,
    ) -> None:
        subscribed.wait()
        pending: list[bytes] = []
        pending_bytes = 0
        first: int | None = None
        started = 0
        lateness: list[int] = []
        try:
            for record in CaptureReader(self.path):
                if record.kind == NOTE:
                    continue
                if closing.is_set() or self._stop.is_set():
                    return
                frame = server_frame(0x1 if record.kind == TEXT else 0x2, record.payload)
                if self.speed is None:
                    pending.append(frame)
                    pending_bytes += len(frame)
                    if pending_bytes >= _BATCH_BYTES:
                        self._send(conn, write_lock, b"".join(pending))
                        pending, pending_bytes = [], 0
                    continue
                if first is None:
                    first, started = record.monotonic_ns, time.monotonic_ns()
                due = started + int(max(0, record.monotonic_ns - first) / self.speed)
                delay = due - time.monotonic_ns()
                if delay > 0 and closing.wait(delay / 1e9):
                    return
                self._send(conn, write_lock, frame)
                lateness.append(time.monotonic_ns() - due)
            if pending:
                self._send(conn, write_lock, b"".join(pending))
            with write_lock:  # the CLOSE and the state change together: _read answers the client's
                conn.sendall(server_frame(0x8, struct.pack("!H", 1000) + b"replay complete"))
                closing.set()
        except OSError:
            return
        finally:
            with self._lateness_lock:
                self._lateness_ns.extend(lateness)

    @staticmethod
    def _send(conn: socket.socket, write_lock: threading.Lock, data: bytes) -> None:
        with write_lock:
            conn.sendall(data)
