"""The asyncio client's own behaviour (``wsfast.connect``) against real servers on 127.0.0.1: recv()
timeouts and cancellation, and the receive queue's backpressure policies.

Behaviour every front-end shares (messages, PINGs, closing, the handshake, health, misuse, the codec
twin it uses) is tested once, on every front-end, in the contract suite (tests/contract). Every test here
runs in both codec implementations (``codec_impl``) and on both event loops: asyncio's default loop and
uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from typing import Any

import pytest

import wsfast
from servers import (
    WebsocketsServer,
    send_messages,
)

pytest_plugins = ["conftest_client"]

TIMEOUT = 10.0


class TestTimeoutsAndCancellation:
    def test_recv_timeout_leaves_the_connection_usable(
        self, run: Any, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer() as server:

            async def main() -> None:
                async with wsfast.connect(server.url(), implementation=codec_impl.name) as ws:
                    with pytest.raises(TimeoutError):
                        await ws.recv(timeout=0.05)
                    await ws.send("still here")
                    assert await ws.recv(timeout=TIMEOUT) == "still here"

            run(main)

    def test_cancelled_recv_loses_nothing(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server:

            async def main() -> None:
                async with wsfast.connect(server.url(), implementation=codec_impl.name) as ws:
                    task = asyncio.ensure_future(ws.recv())
                    await asyncio.sleep(0.02)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                    await ws.send("next")
                    assert await ws.recv() == "next"

            run(main)


class TestBackpressure:
    COUNT = 3000

    def test_pause_bounds_the_queue_and_loses_nothing(
        self, run: Any, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer(send_messages(self.COUNT)) as server:

            async def main() -> None:
                async with wsfast.connect(server.url(), max_queue=16, implementation=codec_impl.name) as ws:
                    await asyncio.sleep(0.3)  # a slow consumer: the server keeps sending meanwhile
                    # Reading paused at 16 messages; one read buffer (256 KiB) is the most in flight.
                    assert ws._delivery.paused
                    assert len(ws._queue) <= 16 + 256 * 1024 // len("message 0")
                    received = [message async for message in ws]
                    assert received == [f"message {i}" for i in range(self.COUNT)]
                    assert ws.dropped == 0

            run(main)

    def test_close_while_paused_completes_the_closing_handshake(
        self, run: Any, codec_impl: types.SimpleNamespace
    ) -> None:
        async def stream_until_closed(ws: Any) -> None:
            with contextlib.suppress(Exception):
                for i in range(self.COUNT):
                    await ws.send(f"message {i}")
            await ws.wait_closed()

        with WebsocketsServer(stream_until_closed) as server:

            async def main() -> None:
                ws = await wsfast.connect(
                    server.url(), max_queue=4, close_timeout=5.0, implementation=codec_impl.name
                )
                await asyncio.sleep(0.2)
                assert ws._delivery.paused  # the queue is full and nobody reads it
                await ws.close()
                # Reading resumed for the server's CLOSE: a clean handshake, not an abort (1006).
                assert ws.close_code == 1000

            run(main)
            assert server.wait_closes()[0][0] == 1000

    def test_drop_oldest_keeps_the_newest_and_counts_the_rest(
        self, run: Any, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer(send_messages(self.COUNT)) as server:

            async def main() -> None:
                async with wsfast.connect(
                    server.url(), max_queue=10, overflow="drop_oldest", implementation=codec_impl.name
                ) as ws:
                    await ws.wait_closed()
                    received = [message async for message in ws]
                    assert received == [f"message {i}" for i in range(self.COUNT - 10, self.COUNT)]
                    assert ws.dropped == self.COUNT - 10

            run(main)
