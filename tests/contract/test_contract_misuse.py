"""Concurrency and misuse are refused clearly (issue 15, item 6), on the front-ends that have the method.

- a second ``recv()`` while one waits raises ConcurrencyError, and the first still gets its message;
- ``close()`` wakes every waiter with ConnectionClosed;
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
from typing import Any

import pytest
from adapters import WAIT, AsyncioClient

from servers import RawServer, WebsocketsServer, accept_then
from wsfast import ConcurrencyError, ConnectionClosed, ConnectionClosedError, ConnectionClosedOK


def wait_pending(future: concurrent.futures.Future[Any], delay: float = 0.1) -> None:
    """Give a started call time to reach its wait; it must still be waiting."""
    time.sleep(delay)
    assert not future.done(), future


@pytest.mark.frontends("recv")
def test_a_second_concurrent_recv_is_refused(client: AsyncioClient, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    first = client.recv_later()
    wait_pending(first)
    with pytest.raises(ConcurrencyError):
        client.recv()
    client.send("for the first")
    assert first.result(WAIT) == "for the first"
    assert client.stats().queue_depth == 0


@pytest.mark.frontends("recv")
def test_close_wakes_a_waiting_recv(client: AsyncioClient, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    waiting = client.recv_later()
    wait_pending(waiting)
    client.close()
    with pytest.raises(ConnectionClosedOK):
        waiting.result(WAIT)


@pytest.mark.frontends("recv")
def test_close_wakes_a_waiting_ping(client: AsyncioClient) -> None:
    with RawServer(accept_then(then="read")) as server:  # reads frames, answers none: no PONG
        client.open(server.url(), close_timeout=0.5)
        ws = client.ws
        pinging = client.start(lambda: ws.ping())
        wait_pending(pinging)
        client.close()
        with pytest.raises(ConnectionClosed):
            pinging.result(WAIT)


async def send_30_and_stay(ws: Any) -> None:
    """Send 30 messages and keep the connection open: the only close is the client's (no race with a
    server CLOSE parsed in the same read as the message that overflows the queue)."""
    for i in range(30):
        await ws.send(f"message {i}")


@pytest.mark.frontends("recv")
def test_overflow_error_keeps_the_queued_messages(client: AsyncioClient) -> None:
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
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        late = ws.send_threadsafe("after close")
        assert isinstance(late, concurrent.futures.Future)
        assert isinstance(late.exception(WAIT), ConnectionClosed)
        del late
        gc.collect()
        client.call(lambda: None)  # let the loop run its callbacks
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


@pytest.mark.frontends("recv", "inline")
def test_after_the_loop_is_gone(client: AsyncioClient, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    ws = client.ws
    client.stop_loop()
    assert ws.open is False
    late = ws.send_threadsafe("nobody will send this")  # never RuntimeError("Event loop is closed")
    assert isinstance(late, concurrent.futures.Future)
    assert isinstance(late.exception(WAIT), ConnectionClosed)


@pytest.mark.frontends("recv", "inline")
def test_methods_from_another_loop_are_refused(client: AsyncioClient, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    ws = client.ws
    for call in (lambda: ws.send("x"), lambda: ws.ping(), lambda: ws.close()):
        with pytest.raises(ConcurrencyError):
            asyncio.run(asyncio.wait_for(call(), WAIT))  # this thread, a loop of its own
    client.send("still fine")
    assert client.recv() == "still fine"


@pytest.mark.frontends("recv", "inline")
def test_sync_methods_from_another_thread_are_refused(
    client: AsyncioClient, ws_server: WebsocketsServer
) -> None:
    client.open(ws_server.url())
    with pytest.raises(ConcurrencyError):
        client.ws.send_nowait("not from the loop's thread")
