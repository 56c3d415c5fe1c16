"""Leaks and stability (slow): a million messages with a stable resident set, a thousand connect/close
cycles with stable thread and file-descriptor counts and no growth in what wsfast allocates (tracemalloc
snapshots), and concurrent senders while the threaded client closes.

The bounds are generous (a few MiB, a few descriptors): they catch a leak per message or per connection,
not allocator noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import sys
import threading
import time
import tracemalloc
from typing import Any

import pytest

import wsfast
from servers import CLOSE, TEXT, RawConnection, RawServer, server_close, server_frame
from wsfast import ConnectionClosed
from wsfast.client import WebSocketClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform != "linux" or sys.implementation.name != "cpython",
        reason="reads /proc/self (Linux) and uses tracemalloc and the compiled twin (CPython)",
    ),
]

WAIT = 60.0
MILLION = 1_000_000


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def small_frames(count: int, start: int = 0) -> bytes:
    return b"".join(server_frame(TEXT, f'{{"seq":{start + i}}}') for i in range(count))


# --------------------------------------------------------------------------------------------------
# A million messages
# --------------------------------------------------------------------------------------------------


def test_a_million_messages_through_the_compiled_decoder() -> None:
    from conftest_client import load_codec  # (a bare "conftest" may resolve to benchmarks/conftest.py)

    impl = load_codec("cython")
    chunk = small_frames(1000) + server_frame(0x9, b"keepalive") + server_frame(0xA, b"")
    decoder = impl.Decoder()
    decoded = 0
    baseline = 0
    for round_ in range(MILLION // 1000):
        decoded += sum(1 for m in decoder.feed(chunk) if type(m) is str)
        if round_ == 100:  # after warm-up: buffers and caches at their steady size
            gc.collect()
            baseline = rss()
    gc.collect()
    growth = rss() - baseline
    assert decoded == MILLION
    assert growth < 2 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 900,000 messages"


def feed_server(total: int) -> Any:
    chunk = small_frames(10_000)

    def handler(conn: RawConnection) -> None:
        conn.accept()
        for _ in range(total // 10_000):
            conn.send(chunk)
        conn.send(server_close(1000))
        conn.read_until_close()

    return handler


def test_a_million_messages_through_the_threaded_client() -> None:
    count = 0
    samples: list[int] = []
    closed = threading.Event()

    def on_message(message: Any) -> None:
        nonlocal count
        count += 1
        if count % 100_000 == 0:
            samples.append(rss())

    with RawServer(feed_server(MILLION)) as server:
        client = WebSocketClient(on_message, server.url(), on_close=lambda code, reason: closed.set())
        client.connect()
        assert closed.wait(WAIT)
        assert client.wait(WAIT)
    assert count == MILLION
    assert client.close_code == 1000
    growth = max(samples[1:]) - samples[1]  # from 200,000 messages on
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB: {samples}"


def test_a_million_messages_through_the_asyncio_client() -> None:
    samples: list[int] = []

    async def main(url: str) -> int:
        count = 0

        def on_message(message: Any) -> None:
            nonlocal count
            count += 1
            if count % 100_000 == 0:
                samples.append(rss())

        ws = await wsfast.connect(url, on_message=on_message)
        await asyncio.wait_for(ws.wait_closed(), WAIT)
        assert ws.close_code == 1000
        return count

    with RawServer(feed_server(MILLION)) as server:
        count = asyncio.run(main(server.url()))
    assert count == MILLION
    growth = max(samples[1:]) - samples[1]
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB: {samples}"


# --------------------------------------------------------------------------------------------------
# A thousand connections
# --------------------------------------------------------------------------------------------------


def echo_once(conn: RawConnection) -> None:
    conn.accept()
    while (frame := conn.read_frame()) is not None:
        if frame.opcode == CLOSE:
            with contextlib.suppress(OSError):
                conn.send(server_close(frame.close_code))
            return
        conn.send(server_frame(frame.opcode, frame.payload))


def threaded_cycle(url: str) -> None:
    received: list[Any] = []
    got = threading.Event()

    def on_message(message: Any) -> None:
        received.append(message)
        got.set()

    client = WebSocketClient(on_message, url, timeout=10.0)
    client.connect()
    client.send("x")
    assert got.wait(10)
    client.disconnect()
    assert client.wait(10)
    assert client.close_code == 1000


async def asyncio_cycles(url: str, count: int) -> None:
    for _ in range(count):
        async with wsfast.connect(url) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
        assert ws.close_code == 1000


def wsfast_memory(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still allocated by lines of wsfast itself."""
    # The package's own directory: a checkout that is itself called "wsfast" must not count the tests.
    pattern = os.path.join(os.path.dirname(os.path.abspath(wsfast.__file__)), "*")
    return sum(
        stat.size
        for stat in snapshot.filter_traces([tracemalloc.Filter(True, pattern)]).statistics("filename")
    )


def test_a_thousand_connect_close_cycles() -> None:
    rounds, per_round = 10, 50  # each round: 50 threaded and 50 asyncio connections
    with RawServer(echo_once) as server:
        url = server.url()

        def round_() -> None:
            for _ in range(per_round):
                threaded_cycle(url)
            asyncio.run(asyncio_cycles(url, per_round))

        round_()  # warm-up: lazy imports, caches, the first event loop
        server.wait_finished(2 * per_round)
        gc.collect()
        tracemalloc.start()
        try:
            threads, fds = threading.active_count(), open_fds()
            before = tracemalloc.take_snapshot()
            for _ in range(rounds - 1):
                round_()
            server.wait_finished(2 * per_round * rounds)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        assert len(server.connections) == 2 * per_round * rounds
        time.sleep(0.2)  # event threads that have signalled their end finish exiting
        assert threading.active_count() <= threads, threading.enumerate()
        assert open_fds() <= fds + 2, sorted(os.listdir("/proc/self/fd"))
        growth = wsfast_memory(after) - wsfast_memory(before)
        top = [str(stat) for stat in after.compare_to(before, "lineno")[:5]]
        assert growth < 64 * 1024, f"wsfast holds {growth} more bytes after 900 connections: {top}"


# --------------------------------------------------------------------------------------------------
# Concurrent senders during a close
# --------------------------------------------------------------------------------------------------


def test_concurrent_senders_while_the_threaded_client_closes() -> None:
    senders, stop = 16, threading.Event()
    received: list[bytes] = []
    server_done = threading.Event()

    def server_handler(conn: RawConnection) -> None:
        conn.accept()
        while (frame := conn.read_frame()) is not None:
            assert frame.masked
            assert frame.fin
            assert frame.rsv == 0
            if frame.opcode == CLOSE:
                conn.send(server_close(frame.close_code))
                break
            assert frame.opcode == TEXT, frame
            received.append(frame.payload)
        server_done.set()

    with RawServer(server_handler) as server:
        client = WebSocketClient(None, server.url(), timeout=10.0)
        client.connect()
        sent: dict[int, list[str]] = {i: [] for i in range(senders)}
        errors: list[BaseException] = []
        started = threading.Barrier(senders + 1)

        def sender(index: int) -> None:
            started.wait()
            number = 0
            while not stop.is_set():
                text = f"sender {index} message {number} " + "x" * (number % 300)
                try:
                    client.send(text)
                except ConnectionClosed:
                    return
                except BaseException as exc:  # anything else is a bug
                    errors.append(exc)
                    return
                sent[index].append(text)
                number += 1

        threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(senders)]
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.3)
        client.disconnect()  # while all of them are sending
        stop.set()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()
        assert server_done.wait(WAIT)
        assert client.wait(WAIT)
    assert errors == []
    assert client.close_code == 1000
    # Every send that returned is on the wire, whole and in order, before the CLOSE; nothing else is.
    texts = [payload.decode() for payload in received]
    assert sorted(texts) == sorted(text for texts_ in sent.values() for text in texts_)
    for index in range(senders):
        mine = [t for t in texts if re.match(rf"sender {index} message ", t)]
        assert mine == sent[index]
    assert sum(len(v) for v in sent.values()) > senders  # they really sent concurrently
