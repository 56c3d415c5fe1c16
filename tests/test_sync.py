"""The blocking front-end's own behaviour (``wsfast.sync``) against real servers on 127.0.0.1: iteration,
``recv()`` timeouts, one reader at a time, ``close()`` waking a reader, both ways of reconnecting, the
overflow policies and their backpressure, a large message.

Behaviour every front-end shares is tested once, on every front-end (``sync`` included), in the contract
suite (tests/contract). Every test here runs with both codec twins (``codec_impl``), chosen with the
``implementation=`` option.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

import pytest

import wsfast
from servers import AiohttpServer, RawConnection, RawServer, WebsocketsServer, send_messages, send_then_close
from wsfast import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    OptionError,
    Reconnected,
    ReconnectPolicy,
)
from wsfast.sync import WebSocket, connect

pytest_plugins = ["conftest_client"]

WAIT = 5.0
FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.1, jitter=0.0)


def in_thread(function: Any) -> tuple[threading.Thread, list[Any]]:
    """Run *function()* in a thread; the list gets its result or its exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(function())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def numbered_then_close(code: int = 1012) -> Any:
    """Each connection sends ``"hello <n>"`` (n counts connections), then closes with *code*."""
    count = [0]

    async def handler(ws: Any) -> None:
        number = count[0]
        count[0] += 1
        await ws.send(f"hello {number}")
        await ws.close(code, "restarting")

    return handler


class TestReceiving:
    def test_iteration_ends_after_a_normal_close(self, codec_impl: types.SimpleNamespace) -> None:
        with (
            WebsocketsServer(send_messages(500)) as server,
            connect(server.url(), implementation=codec_impl.name) as ws,
        ):
            assert list(ws) == [f"message {i}" for i in range(500)]
            assert ws.close_code == 1000
            with pytest.raises(ConnectionClosedOK):
                ws.recv()
            assert not ws.open

    def test_text_binary_and_ping_against_aiohttp(self, codec_impl: types.SimpleNamespace) -> None:
        with AiohttpServer() as server, connect(server.url(), implementation=codec_impl.name) as ws:
            ws.send("héllo")
            ws.send(b"\x00\xff")
            ws.send(bytearray(b"view"))
            assert [ws.recv(WAIT), ws.recv(WAIT), ws.recv(WAIT)] == ["héllo", b"\x00\xff", b"view"]
            rtt = ws.ping(timeout=WAIT)
            assert 0 < rtt < WAIT
            assert ws.latency == rtt == ws.stats().last_rtt
            assert ws.open
            assert ws.close_code is None
        assert ws.close_code == 1000

    def test_recv_timeout_leaves_the_connection_usable(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server, connect(server.url(), implementation=codec_impl.name) as ws:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=r"no message within 0\.05 s"):
                ws.recv(timeout=0.05)
            assert 0.04 < time.monotonic() - started < 1.0
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0)
            ws.send("still here")
            assert ws.recv(timeout=WAIT) == "still here"

    def test_a_large_message(self, codec_impl: types.SimpleNamespace) -> None:
        big = bytes(range(256)) * (32 * 2**12)  # 32 MiB
        with (
            WebsocketsServer(send_then_close([big, "after"])) as server,
            connect(server.url(), implementation=codec_impl.name) as ws,
        ):
            assert ws.recv(WAIT) == big
            assert ws.recv(WAIT) == "after"

    def test_sends_from_many_threads_never_interleave(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server, connect(server.url(), implementation=codec_impl.name) as ws:
            payloads = {f"{thread}:{'x' * (1000 + thread)}" for thread in range(8)}
            threads = [threading.Thread(target=ws.send, args=(payload,)) for payload in payloads]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            assert {ws.recv(WAIT) for _ in payloads} == payloads

    def test_the_options_are_the_registrys(self) -> None:
        with pytest.raises(OptionError, match="did you mean 'ping_interval'"):
            connect("ws://127.0.0.1:1/", ping_intervall=1.0)
        with pytest.raises(OptionError, match="raw_hook"):
            connect("ws://127.0.0.1:1/", raw_hook=print)
        with pytest.raises(OptionError, match="max_queue must be at least 1"):
            connect("ws://127.0.0.1:1/", max_queue=0)


class TestOneReader:
    def test_a_second_waiting_recv_is_refused(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server, connect(server.url(), implementation=codec_impl.name) as ws:
            thread, outcome = in_thread(lambda: ws.recv(WAIT))
            time.sleep(0.1)
            with pytest.raises(ConcurrencyError, match="another recv"):
                ws.recv(WAIT)
            with pytest.raises(ConcurrencyError):
                next(ws)
            ws.send("for the first")
            thread.join(WAIT)
            assert outcome == ["for the first"]
            ws.send("next")
            assert ws.recv(WAIT) == "next"  # one reader again

    def test_close_wakes_a_blocked_recv_and_ends_an_iteration(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer() as server:
            ws = connect(server.url(), implementation=codec_impl.name).open()
            reader, received = in_thread(lambda: ws.recv())
            time.sleep(0.1)
            assert reader.is_alive()
            ws.close()
            reader.join(WAIT)
            assert not reader.is_alive()
            assert len(received) == 1
            assert isinstance(received[0], ConnectionClosedOK)
            assert server.wait_closes() == [(1000, "")]

        with WebsocketsServer() as server:
            ws = connect(server.url(), implementation=codec_impl.name).open()
            ws.send("one")
            iterator, collected = in_thread(lambda: list(ws))
            time.sleep(0.1)
            ws.close(1001, "bye")
            iterator.join(WAIT)
            assert collected == [["one"]]
            assert (ws.close_code, ws.close_reason) == (1001, "bye")
            with pytest.raises(ConnectionClosed):
                ws.send("too late")

    def test_recv_from_on_connect_is_refused(self, codec_impl: types.SimpleNamespace) -> None:
        errors: list[BaseException] = []

        def on_connect(ws: WebSocket) -> None:
            try:
                ws.recv()
            except ConcurrencyError as exc:
                errors.append(exc)
            ws.send("subscribed")  # sending from the event thread is fine

        with (
            WebsocketsServer() as server,
            connect(server.url(), on_connect=on_connect, implementation=codec_impl.name) as ws,
        ):
            assert ws.recv(WAIT) == "subscribed"
        assert len(errors) == 1
        assert "event thread" in str(errors[0])


class TestReconnecting:
    def test_one_websocket_marks_each_gap(self, codec_impl: types.SimpleNamespace) -> None:
        with (
            WebsocketsServer(numbered_then_close()) as server,
            connect(server.url(), reconnect=FAST, implementation=codec_impl.name) as ws,
        ):
            first_id = ws.connection_id
            stream = [ws.recv(WAIT) for _ in range(5)]
            assert stream[0::2] == ["hello 0", "hello 1", "hello 2"]
            for marker in stream[1::2]:
                assert isinstance(marker, Reconnected)
                assert (marker.code, marker.reason) == (1012, "restarting")
            assert ws.connection_id > first_id
            assert ws.stats().reconnects >= 2

    def test_for_ws_in_connect_yields_each_connection(self, codec_impl: types.SimpleNamespace) -> None:
        seen: list[tuple[int, list[Any], int | None]] = []
        with WebsocketsServer(numbered_then_close()) as server:
            for ws in connect(server.url(), reconnect=FAST, implementation=codec_impl.name):
                try:
                    messages = list(ws)
                except ConnectionClosedError:  # 1012 is not a normal close: the websockets idiom
                    messages = ["(error)"]
                seen.append((ws.connection_id, messages, ws.close_code))
                with pytest.raises(ConnectionClosed):
                    ws.send("to a connection that ended")
                if len(seen) == 3:
                    break
        assert [messages for _, messages, _ in seen] == [["(error)"]] * 3
        assert [code for _, _, code in seen] == [1012] * 3
        ids = [connection_id for connection_id, _, _ in seen]
        assert ids == sorted(set(ids))  # three distinct connections, in order

    def test_a_body_that_leaves_the_connection_open_gets_the_next_one(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer() as server:
            ids = []
            for ws in connect(server.url(), reconnect=FAST, implementation=codec_impl.name):
                ws.send(f"connection {len(ids)}")
                assert ws.recv(WAIT) == f"connection {len(ids)}"
                ids.append(ws.connection_id)
                if len(ids) == 3:
                    break  # leaving the loop closes the connection (1000)
            assert server.wait_closes(3) == [(1000, "")] * 3
        assert ids == sorted(set(ids))

    def test_without_reconnect_the_loop_ends_with_the_connection(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer(send_messages(3)) as server:
            got = [list(ws) for ws in connect(server.url(), implementation=codec_impl.name)]
        assert got == [["message 0", "message 1", "message 2"]]
        with WebsocketsServer() as server:  # the body leaves it open: closed, and no other follows
            ids = [ws.connection_id for ws in connect(server.url(), implementation=codec_impl.name)]
            assert len(ids) == 1
            assert server.wait_closes() == [(1000, "")]

    def test_the_loop_raises_when_the_policy_gives_up(self, codec_impl: types.SimpleNamespace) -> None:
        def handler(conn: RawConnection) -> None:
            if conn.index == 0:
                conn.accept()
                conn.close()  # lost without a CLOSE: 1006
            else:
                conn.read_request()
                conn.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                conn.close()

        policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, jitter=0.0, max_attempts=2)
        yielded = 0
        with RawServer(handler) as server, pytest.raises(ConnectionClosedError, match="gave up reconnecting"):  # noqa: PT012
            for ws in connect(server.url(), reconnect=policy, implementation=codec_impl.name):
                yielded += 1
                with pytest.raises(ConnectionClosedError):
                    ws.recv(WAIT)
        assert yielded == 1

    def test_close_in_the_body_ends_the_loop(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server:
            count = 0
            for ws in connect(server.url(), reconnect=FAST, implementation=codec_impl.name):
                count += 1
                ws.close()
            assert count == 1
            assert server.wait_closes() == [(1000, "")]


class TestOverflow:
    MESSAGE = "x" * 10_000

    def stream(self, count: int) -> Any:
        async def handler(ws: Any) -> None:
            for i in range(count):
                await ws.send(f"{i}:{self.MESSAGE}")
            await ws.close()

        return handler

    def test_pause_stops_reading_the_socket_and_loses_nothing(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        count = 2000  # 20 MB, far more than the read buffer and the socket buffers hold
        with (
            WebsocketsServer(self.stream(count)) as server,
            connect(server.url(), max_queue=16, implementation=codec_impl.name) as ws,
        ):
            time.sleep(0.3)  # a slow consumer: the server keeps sending meanwhile
            stats = ws.stats()
            assert stats.queue_depth == 16  # the event thread waits at max_queue
            assert ws._delivery.paused
            # The socket is not read meanwhile: what the event thread read is one read buffer (256
            # KiB) beyond the queue at most, not the 20 MB the server wants to send.
            assert stats.bytes_received < 2 * 2**20
            received = list(ws)
            assert received == [f"{i}:{self.MESSAGE}" for i in range(count)]
            assert ws.dropped == 0

    def test_close_while_paused_completes_the_closing_handshake(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        async def stream_until_closed(ws: Any) -> None:
            try:
                for i in range(100_000):
                    await ws.send(f"message {i}")
            except Exception:
                return

        with WebsocketsServer(stream_until_closed) as server:
            ws = connect(server.url(), max_queue=4, close_timeout=5.0, implementation=codec_impl.name).open()
            time.sleep(0.2)
            assert ws._delivery.paused  # the queue is full and nobody reads it
            ws.close()
            # The event thread read on for the server's CLOSE: a clean handshake, not an abort (1006).
            assert ws.close_code == 1000
            assert server.wait_closes()[0][0] == 1000
            assert len(ws._queue) <= 4  # what came while closing was not kept beyond max_queue

    def test_drop_oldest_keeps_the_newest_and_counts_the_rest(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        with (
            WebsocketsServer(send_messages(3000)) as server,
            connect(server.url(), max_queue=10, overflow="drop_oldest", implementation=codec_impl.name) as ws,
        ):
            assert ws.wait_closed(WAIT)
            assert list(ws) == [f"message {i}" for i in range(2990, 3000)]
            assert ws.dropped == 2990 == ws.stats().dropped

    def test_error_fails_the_connection_after_the_queued_messages(
        self, codec_impl: types.SimpleNamespace
    ) -> None:
        async def send_30_and_stay(ws: Any) -> None:
            for i in range(30):
                await ws.send(f"message {i}")
            await ws.wait_closed()

        with WebsocketsServer(send_30_and_stay) as server:
            ws = connect(server.url(), max_queue=10, overflow="error", implementation=codec_impl.name).open()
            assert server.wait_closes(1)[0][0] == 1008
            assert [ws.recv(WAIT) for _ in range(10)] == [f"message {i}" for i in range(10)]
            with pytest.raises(ConnectionClosedError, match="receive queue overflow") as info:
                ws.recv(WAIT)
            assert info.value.code == 1008
            with pytest.raises(ConnectionClosedError):  # and the iteration raises it too
                list(ws)


def test_exported_as_wsfast_sync() -> None:
    assert wsfast.sync.connect is connect
    assert "sync" in wsfast.__all__
