"""What socket events (wsfast.events) cost on the receive path: nothing measurable when nobody subscribes.

Both clients' receive paths are driven in memory (no socket, no event loop turn) with a stream of small
JSON text frames cut into 64 KiB reads:

* asyncio: ``_Connection.buffer_updated`` as shipped, unsubscribed (``baseline`` is the same protocol
  without the ``is not None`` check, as before events existed) and with a no-op subscriber;
* threaded: the event thread's loop (``WebSocketClient._run``) over a socket stand-in, unsubscribed and
  with a no-op subscriber.

Compare the medians within a group (``make bench`` or ``pytest benchmarks/bench_events.py
--benchmark-only``): ``unsubscribed`` should match ``baseline`` within noise. Each run checks that every
message arrived.
"""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import pytest

import peers
from wsfast.asyncio._connection import _Connection, _Phase
from wsfast.client import WebSocketClient
from wsfast.protocol import ClientProtocol

MESSAGES = 5_000
CHUNK = 64 * 1024


def _stream() -> list[bytes]:
    frames = bytearray()
    for i in range(MESSAGES):
        payload = json.dumps(
            {
                "e": "trade",
                "s": "BTCUSDT",
                "t": i,
                "p": f"{60000 + i % 97}.12",
                "q": "0.00150",
                "m": i % 2 == 0,
            }
        ).encode()
        frames += struct.pack("!BB", 0x81, len(payload)) + payload  # unmasked TEXT frames, < 126 bytes
    return [bytes(frames[i : i + CHUNK]) for i in range(0, len(frames), CHUNK)]


CHUNKS = _stream()


def _ignore(event: Any) -> None:
    pass


class _BaselineConnection(_Connection):
    """``buffer_updated`` as it was before events: no subscriber check."""

    def buffer_updated(self, nbytes: int) -> None:
        if self.phase is _Phase.OPEN:
            self._ws._receive(self._view[:nbytes])
        else:
            self.pending += self._view[:nbytes]
            self._wake()


@pytest.mark.parametrize("mode", ["baseline", "unsubscribed", "subscribed"])
def test_asyncio_receive_path(benchmark: Any, mode: str) -> None:
    benchmark.group = "events-asyncio-receive"
    count = [0]

    def on_message(message: Any) -> None:
        count[0] += 1

    _, connection = peers.offline_connection(
        on_message,
        _BaselineConnection if mode == "baseline" else _Connection,
        subscriber=_ignore if mode == "subscribed" else None,
    )
    assert (connection.events is None) == (mode != "subscribed")

    def feed() -> int:
        count[0] = 0
        for chunk in CHUNKS:
            view = connection.get_buffer(-1)
            view[: len(chunk)] = chunk
            connection.buffer_updated(len(chunk))
        return count[0]

    assert benchmark(feed) == MESSAGES


class _Socket:
    """A socket stand-in that hands out the stream, then EOF."""

    def __init__(self) -> None:
        self._chunks = iter(CHUNKS)

    def recv_into(self, view: memoryview) -> int:
        chunk = next(self._chunks, b"")
        view[: len(chunk)] = chunk
        return len(chunk)

    def sendall(self, data: bytes) -> None:
        pass

    def settimeout(self, timeout: float | None) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["unsubscribed", "subscribed"])
def test_threaded_receive_path(benchmark: Any, mode: str) -> None:
    benchmark.group = "events-threaded-receive"
    count = [0]

    def on_message(message: Any) -> None:
        count[0] += 1

    # No keepalive: the event loop would wait on the stand-in's file descriptor between reads.
    client = WebSocketClient(on_message, "ws://127.0.0.1/", ping_interval=None)
    if mode == "subscribed":
        client.subscribe(_ignore)
    assert (client._events is None) == (mode == "unsubscribed")

    def run() -> int:
        count[0] = 0
        protocol = ClientProtocol(max_message_size=None)
        client._protocol = protocol
        # What connect() does once the handshake is done: the lifecycle opens the connection.
        client._lifecycle.opened(protocol, now=time.monotonic(), wall=time.time(), connection_id=0)
        client._serve(_Socket(), protocol, b"")  # type: ignore[arg-type]
        return count[0]

    assert benchmark(run) == MESSAGES
