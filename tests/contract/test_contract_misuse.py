"""Concurrency and misuse are refused clearly (issue 15, item 6), on the front-ends that have the method.

- a second ``recv()`` while one waits raises ConcurrencyError, and the first still gets its message (two
  that need not wait are both served);
- ``close()`` wakes every waiter (recv, ping, a send waiting to drain) with ConnectionClosed;
- ``overflow="error"`` keeps the queued messages readable, then raises the overflow error (1008);
- ``send_threadsafe()`` returns a ``concurrent.futures.Future``, never raises, never logs "Task exception
  was never retrieved"; methods called from another thread or loop raise ConcurrencyError; ``ws.open``
  is False once the loop that owned the connection is closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from adapters import WAIT, AsyncioClient

from servers import IO_TIMEOUT, RawConnection, RawServer, WebsocketsServer, echo, send_then_close
from wsfast import ConcurrencyError, ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, Opcode
from wsfast.protocol import State


def wait_pending(future: concurrent.futures.Future[Any], delay: float = 0.1) -> None:
    """Give a started call time to reach its wait; it must still be waiting."""
    time.sleep(delay)
    assert not future.done(), future


@pytest.mark.frontends("recv", "sync")
def test_a_second_concurrent_recv_is_refused(client: Any, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    first = client.recv_later()
    wait_pending(first)
    with pytest.raises(ConcurrencyError, match="another recv"):
        client.recv()
    with pytest.raises(ConcurrencyError):
        client.next_message()  # iteration follows the same rule
    client.send("for the first")
    assert first.result(WAIT) == "for the first"
    assert client.stats().queue_depth == 0  # nothing stranded in the queue
    client.send("next")
    assert client.recv() == "next"  # one reader again


@pytest.mark.frontends("recv", "sync")
def test_a_queued_message_is_served_to_either_reader(client: Any) -> None:
    with WebsocketsServer(send_then_close(["a", "b"])) as server:
        client.open(server.url())
        deadline = time.monotonic() + WAIT
        while client.stats().queue_depth < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(client.recv_together(2)) == ["a", "b"]  # neither waits: neither is refused


@pytest.mark.frontends("recv", "sync")
def test_close_wakes_a_waiting_recv(client: Any, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    waiting = client.recv_later()
    wait_pending(waiting)
    client.close()
    with pytest.raises(ConnectionClosedOK):
        waiting.result(WAIT)


def hold_open(conn: RawConnection) -> None:
    """Accept, then read nothing at all until the server stops: no PONG, no closing handshake, and
    (once the socket buffers fill) no room for the client's writes."""
    conn.accept()
    conn.stopping.wait(IO_TIMEOUT)


BIG = b"\x00" * (64 * 2**20)  # more than the socket buffers take: a send of it waits to drain


@pytest.mark.frontends("recv", "sync")
def test_close_wakes_every_waiter(client: Any) -> None:
    """recv(), ping() and a send waiting to drain all end with ConnectionClosed."""
    with RawServer(hold_open) as server:
        client.open(server.url(), close_timeout=0.5, ping_interval=None)
        ws = client.ws
        waiters = [
            client.recv_later(),
            client.start(lambda: ws.ping(b"unanswered")),
            client.start(lambda: ws.send(BIG)),
        ]
        for waiter in waiters:
            wait_pending(waiter, 0.05)
        client.close()
        for waiter in waiters:
            with pytest.raises(ConnectionClosed):
                waiter.result(WAIT)
        assert client.call(lambda: ws.open) is False
        with pytest.raises(ConnectionClosed):  # and later calls find it closed
            client.recv()


async def send_30_and_stay(ws: Any) -> None:
    """Send 30 messages and keep the connection open: the only close is the client's (no race with a
    server CLOSE parsed in the same read as the message that overflows the queue)."""
    for i in range(30):
        await ws.send(f"message {i}")


@pytest.mark.frontends("recv", "sync")
def test_overflow_error_keeps_the_queued_messages(client: Any) -> None:
    with WebsocketsServer(send_30_and_stay) as server:
        client.open(server.url(), max_queue=10, overflow="error")
        assert server.wait_closes(1)[0][0] == 1008  # the queue overflowed: the client failed it
        assert client.recv_many(10) == [f"message {i}" for i in range(10)]
        with pytest.raises(ConnectionClosedError) as info:
            client.recv()
        assert info.value.code == 1008
        assert info.value.reason == "receive queue overflow (max_queue=10)"


@pytest.mark.frontends("recv", "inline")
def test_send_threadsafe_returns_a_future(
    client: AsyncioClient, ws_server: WebsocketsServer, caplog: pytest.LogCaptureFixture
) -> None:
    client.open(ws_server.url())
    ws = client.ws
    sent = ws.send_threadsafe("from another thread")  # this thread is not the loop's
    assert isinstance(sent, concurrent.futures.Future)
    assert sent.result(WAIT) is None
    assert client.recv() == "from another thread"
    client.close()
    unhandled: list[dict[str, Any]] = []
    client.call(lambda: client.loop.set_exception_handler(lambda loop, context: unhandled.append(context)))
    with caplog.at_level(logging.DEBUG):
        late = ws.send_threadsafe("after close")
        assert isinstance(late, concurrent.futures.Future)
        assert isinstance(late.exception(WAIT), ConnectionClosed)
        ws.send_threadsafe("fire and forget")  # its future dropped unread
        del late
        gc.collect()
        client.call(lambda: None)  # let the loop run its callbacks
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unhandled == []


@pytest.mark.frontends("recv", "inline")
def test_a_send_threadsafe_waiting_to_drain_fails_its_future_on_close(
    client: AsyncioClient, caplog: pytest.LogCaptureFixture
) -> None:
    with RawServer(hold_open) as server, caplog.at_level(logging.DEBUG):
        client.open(server.url(), close_timeout=0.3, ping_interval=None)
        future = client.ws.send_threadsafe(BIG)
        wait_pending(future)
        client.close()
        with pytest.raises(ConnectionClosed):
            future.result(WAIT)
    assert "never retrieved" not in caplog.text


@pytest.mark.frontends("recv", "inline")
def test_after_the_loop_is_gone(client: AsyncioClient, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    ws = client.ws
    client.stop_loop()
    assert ws.open is False
    assert ws.state is State.CLOSED
    assert ws.close_code == 1006
    late = ws.send_threadsafe("nobody will send this")  # never RuntimeError("Event loop is closed")
    assert isinstance(late, concurrent.futures.Future)
    error = late.exception(WAIT)
    assert isinstance(error, ConnectionClosedError)
    assert "event loop" in str(error)
    for call in (ws.send("x"), ws.ping(), ws.close()):  # a later loop in this thread
        with pytest.raises(ConcurrencyError, match="event loop that owned the connection was closed"):
            asyncio.run(call)


@pytest.mark.frontends("recv", "inline")
def test_methods_from_another_thread_or_loop_are_refused(client: AsyncioClient) -> None:
    with WebsocketsServer(echo) as server:
        client.open(server.url())
        ws = client.ws
        calls: dict[str, Callable[[], Any]] = {
            "recv": lambda: ws.recv(),
            "send": lambda: ws.send("x"),
            "send_frame": lambda: ws.send_frame("x", Opcode.TEXT),
            "ping": lambda: ws.ping(),
            "pong": lambda: ws.pong(),
            "close": lambda: ws.close(),
        }
        for name, call in calls.items():
            with pytest.raises(ConcurrencyError, match="send_threadsafe") as info:
                asyncio.run(asyncio.wait_for(call(), WAIT))  # this thread, a loop of its own
            assert f"{name}()" in str(info.value)
        with pytest.raises(ConcurrencyError, match="send_threadsafe") as info:
            ws.send_nowait("x")  # a plain thread, no loop
        assert "send_nowait()" in str(info.value)
        with pytest.raises(ConcurrencyError, match="send_threadsafe") as info:
            aiter(ws)  # async for: checked once, when the loop starts
        assert "__aiter__()" in str(info.value)
        if client.has_recv:  # with on_message, recv() and iteration are refused outright
            with pytest.raises(ConcurrencyError, match="send_threadsafe") as info:
                asyncio.run(asyncio.wait_for(anext(ws), WAIT))  # waiting for a message checks the loop
            assert "recv()" in str(info.value)
        assert client.call(lambda: ws.open)  # nothing was sent or closed by the refused calls
        client.send("still fine")
        assert client.recv() == "still fine"
        client.close()
        assert server.wait_closes() == [(1000, "")]
