"""No data lost: a server streams numbered messages through bursts and quiet periods while the application
is sometimes slow; every message arrives in order exactly once.

The asyncio client reads with ``async for`` under the default overflow policy (``"pause"``, TCP
backpressure) and a small queue, so reading pauses and resumes many times; the threaded client's callback
sleeps now and then, which stalls its event thread the same way. The stream mixes small text, large binary
(several reads each), fragmented messages and PINGs between fragments, so reassembly is exercised across
every pause. Both clients, both codec twins.

Across a forced reconnect (every message of each connection in order, exactly once, and the gap reported
at the reconnect: a ``Disconnected`` to the threaded client, a ``Reconnected`` marker in the asyncio
stream), see ``test_no_message_is_lost_across_a_reconnect`` in ``tests/contract/test_contract_health.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
from typing import Any

import pytest

import wsfast
from servers import BINARY, CONT, PING, TEXT, RawConnection, RawServer, server_close, server_frame
from wsfast.client import WebSocketClient

pytest_plugins = ["conftest_client"]
pytestmark = pytest.mark.usefixtures("codec_impl")

BURSTS = 12
PER_BURST = 400
TOTAL = BURSTS * PER_BURST
WAIT = 30.0


def message(number: int) -> str | bytes:
    """Message *number*: mostly small JSON-like text; every 50th a 100 KiB binary, every 7th fragmented."""
    if number % 50 == 49:
        return number.to_bytes(4, "big") + bytes(100 * 1024)
    return f'{{"seq": {number}, "price": "{number * 0.25:.2f}"}}'


def frames_for(number: int) -> bytes:
    payload = message(number)
    opcode = BINARY if isinstance(payload, bytes) else TEXT
    data = payload if isinstance(payload, bytes) else payload.encode()
    if number % 7 != 3:
        return server_frame(opcode, data)
    half = len(data) // 2
    return (
        server_frame(opcode, data[:half], fin=False)
        + server_frame(PING, b"between")
        + server_frame(CONT, data[half:])
    )


def seq(received: Any) -> int:
    if isinstance(received, bytes):
        return int.from_bytes(received[:4], "big")
    return int(received.split(",")[0].split(":")[1])


def streaming_server(conn: RawConnection) -> None:
    conn.accept()
    number = 0
    for burst in range(BURSTS):
        conn.send(b"".join(frames_for(number + i) for i in range(PER_BURST)))  # a burst
        number += PER_BURST
        time.sleep(0.02 if burst % 3 else 0.15)  # and a quiet period
    conn.send(server_close(1000, "end of feed"))
    conn.read_until_close()


def check(received: list[Any]) -> None:
    numbers = [seq(m) for m in received]
    assert numbers == list(range(TOTAL)), "lost, duplicated or reordered messages"
    for number, got in zip(range(TOTAL), received, strict=True):
        assert got == message(number)


def test_asyncio_iterator_with_pause_overflow(codec_impl: types.SimpleNamespace) -> None:
    with RawServer(streaming_server) as server:

        async def main() -> list[Any]:
            received = []
            paused = 0
            async with wsfast.connect(server.url(), max_queue=32, implementation=codec_impl.name) as ws:
                async for item in ws:
                    received.append(item)
                    if len(received) % 500 == 0:
                        paused += ws._delivery.paused
                        await asyncio.sleep(0.1)  # a slow consumer: the queue fills, reading pauses
                assert ws.dropped == 0
            assert ws.close_code == 1000
            assert paused, "the slow periods never paused reading: backpressure was not exercised"
            return received

        loop = asyncio.new_event_loop()
        try:
            received = loop.run_until_complete(asyncio.wait_for(main(), WAIT))
        finally:
            loop.close()
    check(received)


def test_threaded_callback_with_slow_periods(codec_impl: types.SimpleNamespace) -> None:
    received: list[Any] = []
    closed = threading.Event()
    codes: list[int] = []

    def on_message(item: Any) -> None:
        received.append(item)
        if len(received) % 500 == 0:
            time.sleep(0.1)  # a slow callback stalls the event thread: TCP backpressure on the server

    def on_close(code: int, reason: str) -> None:
        codes.append(code)
        closed.set()

    with RawServer(streaming_server) as server:
        client = WebSocketClient(
            on_message, server.url(), on_close=on_close, timeout=10.0, implementation=codec_impl.name
        )
        client.connect()
        assert closed.wait(WAIT)
        assert client.wait(WAIT)
    assert codes == [1000]
    check(received)
