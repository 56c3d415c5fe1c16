"""Misuse and concurrency, refused clearly (issue 15): on both clients, against real loopback servers.

- asyncio: a second ``recv()`` waiting at once raises ConcurrencyError (no lost wake-up); ``close()`` wakes
  every waiter (recv, ping, a send waiting to drain) with ConnectionClosed; ``send_threadsafe()`` returns a
  ``concurrent.futures.Future`` and never raises or logs; calls from another thread or event loop raise
  ConcurrencyError; ``ws.open`` is False once the owning loop is closed; ``overflow="error"`` keeps the
  messages queued before the overflow readable.
- threaded: ``url`` hides the password; ``ping()`` returns the round-trip time.
- both: a message ``loads`` rejects is raised by ``recv()``, never handed to a callback as a message, and
  counted in ``stats().decode_errors``.

Every asyncio test runs on both codec twins and both event loops (the ``run`` fixture); every threaded
test on both twins (``codec_impl``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wsfast
from servers import (
    IO_TIMEOUT,
    RawConnection,
    RawServer,
    WebsocketsServer,
    accept_then,
    echo,
    send_then_close,
    server_frame,
)
from wsfast import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    Opcode,
    WebSocketClient,
)
from wsfast.protocol import State

pytest_plugins = ["conftest_client"]

WAIT = 5.0
TEXT, PING = 0x1, 0x9


def run_in_thread(function: Callable[[], Any], timeout: float = WAIT) -> Any:
    """*function*'s result (or exception), run in a fresh thread; fails instead of hanging."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function).result(timeout)


async def settle() -> None:
    """Let the tasks started just before reach their first wait."""
    for _ in range(5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)


def abort_transport(ws: wsfast.WebSocket) -> None:
    """End the TCP connection of a WebSocket whose event loop ended under it (the loop cannot any more:
    its transport closes sockets in a callback that will never run), so the server sees it go."""
    connection = ws._connection
    assert connection is not None
    assert connection.transport is not None
    fileno = connection.transport.get_extra_info("socket").fileno()
    if fileno == -1:
        return  # uvloop closes the sockets of its transports when the loop closes
    with socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM) as duplicate:  # shuts down both
        duplicate.shutdown(socket.SHUT_RDWR)


def hold_open(conn: RawConnection) -> None:
    """Accept, then read nothing at all until the server stops: no PONG, no closing handshake, and
    (once the socket buffers fill) no room for the client's writes."""
    conn.accept()
    conn.stopping.wait(IO_TIMEOUT)


# --------------------------------------------------------------------------------------------------
# asyncio: one reader, and close() wakes every waiter
# --------------------------------------------------------------------------------------------------


class TestConcurrentRecv:
    def test_second_recv_raises_and_the_first_gets_the_message(self, run: Any) -> None:
        with WebsocketsServer(echo) as server:

            async def main() -> None:
                async with wsfast.connect(server.url()) as ws:
                    first = asyncio.ensure_future(ws.recv())
                    await settle()
                    with pytest.raises(ConcurrencyError, match="another recv"):
                        await ws.recv()
                    with pytest.raises(ConcurrencyError):
                        await ws.__anext__()  # iteration follows the same rule
                    await ws.send("only one")
                    assert await asyncio.wait_for(first, WAIT) == "only one"
                    assert ws.stats().queue_depth == 0  # nothing stranded in the queue
                    await ws.send("next")
                    assert await asyncio.wait_for(ws.recv(), WAIT) == "next"  # one reader again

            run(main)

    def test_a_queued_message_is_served_to_either_reader(self, run: Any) -> None:
        with WebsocketsServer(send_then_close(["a", "b"])) as server:

            async def main() -> None:
                async with wsfast.connect(server.url()) as ws:
                    while ws.stats().queue_depth < 2:
                        await asyncio.sleep(0.01)
                    # Neither waits, so neither is refused.
                    assert sorted(await asyncio.gather(ws.recv(), ws.recv())) == ["a", "b"]

            run(main)

    def test_close_wakes_recv_ping_and_drain(self, run: Any) -> None:
        with RawServer(hold_open) as server:

            async def main() -> None:
                ws = await wsfast.connect(server.url(), close_timeout=0.5, ping_interval=None)
                receiver = asyncio.ensure_future(ws.recv())
                pinger = asyncio.ensure_future(ws.ping(b"unanswered"))
                sender = asyncio.ensure_future(ws.send(b"\x00" * (64 * 2**20)))  # fills the buffers
                await settle()
                assert [task.done() for task in (receiver, pinger, sender)] == [False, False, False]
                await ws.close()
                for waiter in (receiver, pinger, sender):
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(waiter, WAIT)
                assert not ws.open
                with pytest.raises(ConnectionClosed):  # and later calls find it closed
                    await ws.recv()

            run(main)


# --------------------------------------------------------------------------------------------------
# asyncio: send_threadsafe
# --------------------------------------------------------------------------------------------------


class TestSendThreadsafe:
    def test_returns_a_future_settled_by_the_send(self, run: Any) -> None:
        with WebsocketsServer(echo) as server:

            async def main() -> None:
                async with wsfast.connect(server.url()) as ws:
                    future = await asyncio.to_thread(ws.send_threadsafe, "from a thread")
                    assert isinstance(future, concurrent.futures.Future)
                    await asyncio.wrap_future(future)  # the result is None; an error would raise here
                    assert future.exception() is None
                    assert await asyncio.wait_for(ws.recv(), WAIT) == "from a thread"

            run(main)

    def test_after_close_the_future_holds_connection_closed_and_nothing_is_logged(
        self, run: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        unhandled: list[dict[str, Any]] = []
        with WebsocketsServer(echo) as server:

            async def main() -> concurrent.futures.Future[None]:
                asyncio.get_running_loop().set_exception_handler(
                    lambda loop, context: unhandled.append(context)
                )
                async with wsfast.connect(server.url()) as ws:
                    pass
                future = await asyncio.to_thread(ws.send_threadsafe, "too late")
                with pytest.raises(ConnectionClosed):
                    await asyncio.wrap_future(future)
                ignored = await asyncio.to_thread(ws.send_threadsafe, "fire and forget")
                await settle()
                return ignored

            with caplog.at_level(logging.DEBUG):
                ignored = run(main)
        assert isinstance(ignored.exception(0), ConnectionClosed)
        assert unhandled == []
        assert "never retrieved" not in caplog.text

    def test_a_send_waiting_to_drain_fails_its_future_on_close(
        self, run: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        with RawServer(hold_open) as server:

            async def main() -> None:
                ws = await wsfast.connect(server.url(), close_timeout=0.3, ping_interval=None)
                big = b"\x00" * (64 * 2**20)  # more than the socket buffers take: the send waits
                future = await asyncio.to_thread(ws.send_threadsafe, big)
                await settle()
                assert not future.done()
                await ws.close()
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(asyncio.wrap_future(future), WAIT)

            with caplog.at_level(logging.DEBUG):
                run(main)
        assert "never retrieved" not in caplog.text

    def test_after_the_loop_ended_it_returns_a_failed_future(self, run: Any) -> None:
        with WebsocketsServer(echo) as server:

            async def main() -> wsfast.WebSocket:
                ws = await wsfast.connect(server.url())
                await ws.send("still open")
                return ws  # not closed: the loop ends under it

            ws = run(main)
            future = ws.send_threadsafe("loop gone")
            error = future.exception(0)
            assert isinstance(error, ConnectionClosedError)
            assert "event loop" in str(error)
            abort_transport(ws)


# --------------------------------------------------------------------------------------------------
# asyncio: the owning loop and thread
# --------------------------------------------------------------------------------------------------


class TestOwningLoop:
    def test_calls_from_another_thread_or_loop_are_refused(self, run: Any) -> None:
        with WebsocketsServer(echo) as server:

            async def main() -> None:
                async with wsfast.connect(server.url()) as ws:
                    calls: dict[str, Callable[[], Any]] = {
                        "recv": lambda: asyncio.run(ws.recv()),
                        "send": lambda: asyncio.run(ws.send("x")),
                        "send_frame": lambda: asyncio.run(ws.send_frame("x", Opcode.TEXT)),
                        "ping": lambda: asyncio.run(ws.ping()),
                        "pong": lambda: asyncio.run(ws.pong()),
                        "close": lambda: asyncio.run(ws.close()),
                        "send_nowait": lambda: ws.send_nowait("x"),  # a plain thread, no loop
                    }
                    for name, call in calls.items():
                        with pytest.raises(ConcurrencyError, match="send_threadsafe") as info:
                            await asyncio.to_thread(run_in_thread, call)
                        assert f"{name}()" in str(info.value)
                    assert ws.open  # nothing was sent or closed by the refused calls
                    await ws.send("still fine")
                    assert await asyncio.wait_for(ws.recv(), WAIT) == "still fine"

            run(main)
            assert server.wait_closes() == [(1000, "")]

    def test_a_later_loop_in_the_same_thread_is_refused(self, run: Any) -> None:
        with WebsocketsServer(echo) as server:

            async def main() -> wsfast.WebSocket:
                return await wsfast.connect(server.url())

            ws = run(main)
            assert not ws.open
            assert ws.state is State.CLOSED
            assert ws.close_code == 1006
            for call in (ws.send("x"), ws.ping(), ws.close()):
                with pytest.raises(ConcurrencyError, match="event loop that owned the connection was closed"):
                    asyncio.run(call)
            abort_transport(ws)


# --------------------------------------------------------------------------------------------------
# asyncio: overflow="error" keeps what was queued
# --------------------------------------------------------------------------------------------------


def test_overflow_error_comes_after_the_queued_messages(run: Any) -> None:
    messages = [f"m{i}" for i in range(10)]
    with RawServer(accept_then(b"".join(server_frame(TEXT, m) for m in messages))) as server:

        async def main() -> list[Any]:
            received: list[Any] = []
            error: ConnectionClosedError | None = None
            async with wsfast.connect(server.url(), max_queue=4, overflow="error") as ws:
                await asyncio.sleep(0.2)  # the ten messages arrive; the fifth overflows
                while len(received) < 10:
                    try:
                        received.append(await asyncio.wait_for(ws.recv(), WAIT))
                    except ConnectionClosedError as exc:
                        error = exc
                        break
                assert error is not None
                assert error.code == 1008
                assert error.reason == "receive queue overflow (max_queue=4)"
            return received

        assert run(main) == messages[:4]
        assert server.connections[0].frames[-1].close_code == 1008


# --------------------------------------------------------------------------------------------------
# Both clients: messages loads rejects
# --------------------------------------------------------------------------------------------------

FEED = ['{"n": 1}', "not json", '{"n": 2}']


# --------------------------------------------------------------------------------------------------
# Threaded: url and ping
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def client_factory(codec_impl: types.SimpleNamespace) -> Iterator[Callable[..., WebSocketClient]]:
    clients: list[WebSocketClient] = []

    def make(url: str, callback: Any = None, **options: Any) -> WebSocketClient:
        options.setdefault("timeout", WAIT)
        options.setdefault("close_timeout", WAIT)
        client = WebSocketClient(callback, url, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.disconnect(timeout=1.0)
        client.wait(WAIT)


def test_url_hides_the_password_on_both_clients(
    client_factory: Callable[..., WebSocketClient], run: Any
) -> None:
    with WebsocketsServer(echo) as server:
        url = f"ws://user:S3CRET@127.0.0.1:{server.port}/feed?x=1"
        client = client_factory(url)
        assert client.url == f"ws://user@127.0.0.1:{server.port}/feed?x=1"
        client.connect()
        assert "S3CRET" not in client.url + repr(client)

        async def main() -> str:
            async with wsfast.connect(url) as ws:
                return ws.url

        assert run(main) == client.url


def test_threaded_ping_timeout_and_connection_end(client_factory: Callable[..., WebSocketClient]) -> None:
    with RawServer(hold_open) as server:
        client = client_factory(server.url(), ping_interval=None, close_timeout=0.3)
        client.connect()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no PONG within 0\.2 s"):
            client.ping(timeout=0.2)
        assert 0.2 <= time.monotonic() - started < WAIT
        assert client.is_open  # a ping timeout does not end the connection
        pinger = concurrent.futures.ThreadPoolExecutor(1)
        pending = pinger.submit(client.ping, b"lost")
        time.sleep(0.1)
        client.disconnect()
        with pytest.raises(ConnectionClosed):
            pending.result(WAIT)
        pinger.shutdown()
        with pytest.raises(ConnectionClosed):
            client.ping()


def test_threaded_ping_and_wait_from_the_event_thread_raise(
    client_factory: Callable[..., WebSocketClient],
) -> None:
    with WebsocketsServer(echo) as server:
        errors: list[BaseException] = []
        done = threading.Event()
        holder: list[WebSocketClient] = []

        def callback(message: Any) -> None:
            for call in (holder[0].ping, holder[0].wait):
                try:
                    call()
                except ConcurrencyError as exc:
                    errors.append(exc)
            holder[0].send_frame(b"from the callback", Opcode.PING)  # the way that works
            done.set()

        pongs: list[bytes] = []
        client = client_factory(server.url(), callback, on_pong=pongs.append)
        holder.append(client)
        client.connect()
        client.send("go")
        assert done.wait(WAIT)
        assert len(errors) == 2
        assert "send_frame(payload, Opcode.PING)" in str(errors[0])
        deadline = time.monotonic() + WAIT
        while b"from the callback" not in pongs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b"from the callback" in pongs
