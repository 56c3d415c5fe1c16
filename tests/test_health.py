"""Connection health (issue 6): keepalive, the idle watchdog, automatic reconnect and statistics.

The decisions live in the sans-I/O :mod:`wsfast.health` and are unit-tested with a fake clock; then both
clients (threaded and asyncio, both event loops) are tested in both codec implementations against real
servers on 127.0.0.1 that stop answering PINGs, stop sending data, close abruptly (FIN and RST), restart
on the same port or refuse connections for a while. Bounds on time are generous: no test depends on
the machine's speed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wsfast
from servers import HOST, RawConnection, RawServer, WebsocketsServer, accept_then, server_close, server_frame
from wsfast import (
    ConnectionClosedError,
    Disconnected,
    IdleTimeout,
    KeepaliveTimeout,
    Reconnected,
    ReconnectPolicy,
    WebSocketClient,
)
from wsfast.frames import Close, Opcode, Ping, Pong
from wsfast.health import Beat, Heartbeat, Stats, to_reconnect_policy
from wsfast.protocol import ClientProtocol

pytest_plugins = ["conftest_client"]

WAIT = 10.0  # generous: only a broken client takes this long
FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.1, jitter=0.0)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


# --------------------------------------------------------------------------------------------------
# The sans-I/O decisions, with a fake clock
# --------------------------------------------------------------------------------------------------


class TestHeartbeat:
    def test_pings_every_interval_and_any_frame_proves_life(self) -> None:
        beat = Heartbeat(10.0, 5.0, now=0.0)
        assert beat.deadline == 10.0
        assert beat.poll(9.9, 0.0, 0.0) is Beat.NOTHING
        assert beat.poll(10.0, 0.0, 0.0) is Beat.SEND_PING
        assert beat.ping_payload() == b"wsfast-keepalive-1"
        assert beat.deadline == 15.0  # the PONG deadline comes before the next PING
        assert beat.poll(12.0, 11.0, 0.0) is Beat.NOTHING  # bytes at 11.0: alive, whatever they were
        assert beat.deadline == 20.0
        assert beat.poll(20.0, 11.0, 0.0) is Beat.SEND_PING
        assert beat.ping_payload() == b"wsfast-keepalive-2"

    def test_no_frame_within_ping_timeout_is_a_timeout(self) -> None:
        beat = Heartbeat(10.0, 5.0, now=0.0)
        assert beat.poll(10.0, 0.0, 0.0) is Beat.SEND_PING
        assert not beat.overdue(14.9, 9.0)
        assert beat.poll(14.9, 9.0, 0.0) is Beat.NOTHING
        assert beat.overdue(15.0, 9.0)
        assert beat.poll(15.0, 9.0, 0.0) is Beat.PING_TIMEOUT
        assert beat.deadline is None  # the connection is being failed: nothing more to decide
        assert beat.poll(100.0, 9.0, 0.0) is Beat.NOTHING

    def test_pong_gives_the_round_trip_time(self) -> None:
        beat = Heartbeat(10.0, 5.0, now=0.0)
        beat.poll(10.0, 0.0, 0.0)
        assert beat.pong_received(b"someone else's", 10.5) is None
        assert beat.pong_received(b"wsfast-keepalive-1", 10.25) == pytest.approx(0.25)
        assert beat.last_rtt == pytest.approx(0.25)
        assert beat.poll(16.0, 0.0, 0.0) is Beat.NOTHING  # answered: no timeout

    def test_one_ping_in_flight_when_timeout_exceeds_interval(self) -> None:
        beat = Heartbeat(1.0, 5.0, now=0.0)
        assert beat.poll(1.0, 0.0, 0.0) is Beat.SEND_PING
        assert beat.poll(2.0, 0.0, 0.0) is Beat.NOTHING  # the first is still unanswered
        assert beat.poll(6.0, 0.0, 0.0) is Beat.PING_TIMEOUT

    def test_idle_watchdog_fires_once_per_idle_period(self) -> None:
        beat = Heartbeat(None, None, 3.0, now=0.0)
        assert beat.deadline == 3.0
        assert beat.poll(2.0, 2.0, 2.0) is Beat.NOTHING  # a message at 2.0
        assert beat.deadline == 5.0
        assert beat.poll(5.0, 4.9, 2.0) is Beat.IDLE  # PINGs and PONGs (bytes at 4.9) are not messages
        assert beat.poll(5.1, 5.1, 2.0) is Beat.NOTHING
        assert beat.poll(8.0, 5.1, 2.0) is Beat.IDLE

    def test_nothing_enabled(self) -> None:
        beat = Heartbeat(None, None, None, now=0.0)
        assert not beat.enabled
        assert beat.poll(1e9, 0.0, 0.0) is Beat.NOTHING

    @pytest.mark.parametrize(
        ("name", "value"), [("ping_interval", 0), ("ping_timeout", -1.0), ("idle_timeout", float("nan"))]
    )
    def test_invalid_intervals(self, name: str, value: float) -> None:
        arguments: dict[str, Any] = {"ping_interval": 1.0, "ping_timeout": 1.0, "idle_timeout": 1.0}
        arguments[name] = value
        with pytest.raises(ValueError, match=name):
            Heartbeat(**arguments, now=0.0)
        with pytest.raises(ValueError, match=name):
            WebSocketClient(None, "ws://127.0.0.1:1/", **{name: value})
        with pytest.raises(ValueError, match=name):
            wsfast.connect("ws://127.0.0.1:1/", **{name: value})


class TestReconnectPolicy:
    def test_exponential_backoff_capped(self) -> None:
        policy = ReconnectPolicy(initial_delay=0.5, max_delay=4.0, multiplier=2.0, jitter=0.0)
        assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert policy.delay(10**6) == 4.0  # no overflow however long it has been failing

    def test_jitter_only_shortens(self) -> None:
        policy = ReconnectPolicy(initial_delay=1.0, max_delay=1.0, jitter=0.25)
        assert policy.delay(1, lambda: 0.0) == 1.0
        assert policy.delay(1, lambda: 1.0) == 0.75
        delays = {policy.delay(1) for _ in range(50)}
        assert len(delays) > 1
        assert all(0.75 <= delay <= 1.0 for delay in delays)

    def test_max_attempts(self) -> None:
        assert not ReconnectPolicy().gives_up(10**9)
        policy = ReconnectPolicy(max_attempts=3)
        assert not policy.gives_up(2)
        assert policy.gives_up(3)

    @pytest.mark.parametrize(("status", "retry"), [(None, True), (503, True), (429, True), (403, False)])
    def test_retryable_status(self, status: int | None, retry: bool) -> None:
        assert ReconnectPolicy.retryable_status(status) is retry

    @pytest.mark.parametrize(
        "arguments",
        [
            {"initial_delay": -1},
            {"initial_delay": 2.0, "max_delay": 1.0},
            {"multiplier": 0.5},
            {"jitter": 1.5},
            {"max_attempts": 0},
            {"stable_after": -1},
        ],
    )
    def test_invalid(self, arguments: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match=next(iter(arguments))):
            ReconnectPolicy(**arguments)

    def test_option_values(self) -> None:
        assert to_reconnect_policy(False) is None
        assert to_reconnect_policy(None) is None
        assert to_reconnect_policy(True) == ReconnectPolicy()
        assert to_reconnect_policy(FAST) is FAST
        with pytest.raises(TypeError, match="reconnect"):
            to_reconnect_policy("yes")  # type: ignore[arg-type]


class TestProtocolCounters:
    def test_counters(self, codec_impl: types.SimpleNamespace) -> None:
        protocol = ClientProtocol(codec=codec_impl.module)
        data = (
            server_frame(Opcode.TEXT, "one")
            + server_frame(Opcode.TEXT, "tw", fin=False)
            + server_frame(Opcode.PING, b"p")
            + server_frame(Opcode.CONT, "o")
            + server_frame(Opcode.PONG, b"q")
            + server_frame(Opcode.BINARY, b"three")
        )
        events = protocol.receive_data(data[:7]) + protocol.receive_data(data[7:])
        assert events == ["one", Ping(b"p"), "two", Pong(b"q"), b"three"]
        assert protocol.messages_received == 3
        assert protocol.frames_received == 6
        assert protocol.pings_received == 1
        assert protocol.pongs_received == 1
        assert protocol.bytes_received == len(data)
        pong = protocol.data_to_send()
        frames = [protocol.send_text("hi"), protocol.send_binary(b"yo"), protocol.send_ping(b"")]
        assert protocol.messages_sent == 2
        assert protocol.pings_sent == 1
        assert protocol.bytes_sent == len(pong) + sum(map(len, frames))

    def test_closed_as(self, codec_impl: types.SimpleNamespace) -> None:
        protocol = ClientProtocol(codec=codec_impl.module)
        protocol.fail(1011, "keepalive timeout", closed_as=KeepaliveTimeout)
        protocol.receive_eof()
        error = protocol.closed_exception()
        assert isinstance(error, KeepaliveTimeout)
        assert isinstance(error, TimeoutError)
        assert isinstance(error, ConnectionClosedError)
        assert (error.code, error.reason, error.close_received) == (1011, "keepalive timeout", False)

        protocol = ClientProtocol(codec=codec_impl.module)
        protocol.send_close(1001, "idle", closed_as=IdleTimeout)
        protocol.receive_data(server_frame(Opcode.CLOSE, (1001).to_bytes(2, "big")))
        protocol.receive_eof()
        error = protocol.closed_exception()
        assert isinstance(error, IdleTimeout)
        assert (error.code, error.close_received) == (1001, True)
        assert protocol.close_received == Close(1001, "")


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


def silent_after_handshake(conn: RawConnection) -> None:
    """Accept, then read and never answer anything: a peer that died without closing TCP."""
    accept_then(b"", then="read")(conn)


async def hello_then_quiet(ws: Any) -> None:
    await ws.send("hello")  # then nothing: a stale stream (the server still answers PINGs)


async def hello(ws: Any) -> None:
    await ws.send("hello")
    async for message in ws:
        await ws.send(message)


def numbered_then(ending: str) -> Callable[[RawConnection], None]:
    """Connection n sends ``conn-n``; the first ends with *ending* ("eof" or "reset"), the next ones
    wait for the client's closing handshake."""

    def handler(conn: RawConnection) -> None:
        frame = server_frame(Opcode.TEXT, f"conn-{conn.index}")
        if conn.index == 0:
            conn.accept(frame)
            time.sleep(0.05)
            if ending == "reset":
                conn.reset()
            else:
                conn.close()
        else:
            accept_then(frame)(conn)

    return handler


class RefusingAfterFirst:
    """A raw server whose first connection is accepted then dropped; every later handshake is answered
    503 and its arrival time recorded, so a test can check the delays between attempts."""

    def __init__(self) -> None:
        self.attempts: list[float] = []
        self.server = RawServer(self.handle)

    def handle(self, conn: RawConnection) -> None:
        if conn.index == 0:
            conn.accept(server_frame(Opcode.TEXT, "first"))
            conn.close()
            self.lost_at = time.monotonic()
            return
        conn.read_request()
        self.attempts.append(time.monotonic())
        conn.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

    def check_backoff(self, policy: ReconnectPolicy) -> None:
        """Each attempt came no sooner than the policy's delay (jitter 0) after the previous one."""
        assert policy.max_attempts is not None
        assert len(self.attempts) == policy.max_attempts
        times = [self.lost_at, *self.attempts]
        for number, (before, after) in enumerate(itertools.pairwise(times), start=1):
            assert after - before >= policy.delay(number) * 0.9, (number, after - before)


BACKOFF = ReconnectPolicy(initial_delay=0.05, max_delay=0.3, multiplier=2.0, jitter=0.0, max_attempts=4)


# --------------------------------------------------------------------------------------------------
# The threaded client
# --------------------------------------------------------------------------------------------------


class Events:
    """Thread-safe record of a client's callbacks."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.threads: list[int] = []
        self.cond = threading.Condition()

    def add(self, kind: str, value: Any = None) -> None:
        with self.cond:
            self.items.append((kind, value))
            self.threads.append(threading.get_ident())
            self.cond.notify_all()

    def of(self, kind: str) -> list[Any]:
        with self.cond:
            return [value for k, value in self.items if k == kind]

    def wait(self, kind: str, count: int = 1, timeout: float = WAIT) -> list[Any]:
        with self.cond:
            ok = self.cond.wait_for(lambda: sum(k == kind for k, _ in self.items) >= count, timeout)
            assert ok, f"no {count} x {kind} within {timeout} s: {self.items!r}"[:2000]
        return self.of(kind)


@pytest.fixture
def threaded(codec_impl: types.SimpleNamespace) -> Iterator[Callable[..., tuple[WebSocketClient, Events]]]:
    clients: list[WebSocketClient] = []

    def make(url: str, **options: Any) -> tuple[WebSocketClient, Events]:
        events = Events()
        options.setdefault("on_close", lambda code, reason: events.add("close", (code, reason)))
        options.setdefault("on_connect", lambda client: events.add("connect", client.connection_id))
        options.setdefault("on_disconnect", lambda info: events.add("disconnect", info))
        options.setdefault("timeout", 5.0)
        options.setdefault("close_timeout", 2.0)
        client = WebSocketClient(
            lambda message: events.add("message", message), url, **options, implementation=codec_impl.name
        )
        clients.append(client)
        return client, events

    yield make
    for client in clients:
        client.disconnect(timeout=2.0)
        assert client.wait(WAIT), "the event thread did not end"


class TestThreadedKeepalive:
    def test_dead_server_is_detected(self, threaded: Any) -> None:
        with RawServer(silent_after_handshake) as server:
            client, events = threaded(server.url(), ping_interval=0.1, ping_timeout=0.2)
            started = time.monotonic()
            client.connect()
            (code, reason), *_ = events.wait("close")
            assert time.monotonic() - started < WAIT
            assert code == 1011
            assert reason.startswith("keepalive timeout")
            assert isinstance(client.close_exception, KeepaliveTimeout)
            (info,) = events.of("disconnect")
            assert isinstance(info.error, KeepaliveTimeout)
            assert info.reconnecting is False
            assert client.stats().pings_sent == 1
            assert client.wait(WAIT)
            server.wait_finished()
            frames = server.connections[0].frames
            assert [frame.opcode for frame in frames] == [Opcode.PING, Opcode.CLOSE]
            assert frames[0].payload == b"wsfast-keepalive-1"
            assert frames[1].close_code == 1011

    def test_busy_callback_is_no_false_timeout(self, threaded: Any, codec_impl: Any) -> None:
        with WebsocketsServer() as server:
            events = Events()

            def slow(message: Any) -> None:
                events.add("message", message)
                if message == "slow":
                    time.sleep(1.0)  # five PONG deadlines pass while the PONG waits unread

            client = WebSocketClient(
                slow, server.url(), ping_interval=0.1, ping_timeout=0.2, implementation=codec_impl.name
            )
            try:
                client.connect()
                time.sleep(0.15)  # a PING is in flight
                client.send("slow")
                client.send("after")
                events.wait("message", 2)
                assert client.is_open, client.close_exception
                stats = client.stats()
                assert stats.pings_sent >= 1
                assert stats.pongs_received >= 1
                assert stats.last_rtt is not None
                assert stats.last_rtt > 0
            finally:
                client.disconnect()
            assert client.close_code == 1000

    def test_keepalive_off(self, threaded: Any) -> None:
        with RawServer(silent_after_handshake) as server:
            client, _events = threaded(server.url(), ping_interval=None)
            client.connect()
            time.sleep(0.3)
            assert client.is_open
            assert client.stats().pings_sent == 0


class TestThreadedIdle:
    def test_on_idle_hook(self, threaded: Any) -> None:
        with WebsocketsServer(hello_then_quiet) as server:
            client, events = threaded(
                server.url(), idle_timeout=0.2, on_idle=lambda c: events.add("idle", c.is_open)
            )
            client.connect()
            assert events.wait("idle", 2) == [True, True]  # again every idle_timeout while idle
            assert client.is_open

    def test_idle_closes_without_hook(self, threaded: Any) -> None:
        with WebsocketsServer(hello_then_quiet) as server:
            client, events = threaded(server.url(), idle_timeout=0.2)
            client.connect()
            (code, reason), *_ = events.wait("close")
            assert code == 1001
            assert reason.startswith("idle timeout")
            assert isinstance(client.close_exception, IdleTimeout)
            assert events.of("message") == ["hello"]
            assert server.wait_closes()[0][0] == 1001

    def test_idle_reconnects(self, threaded: Any) -> None:
        with WebsocketsServer(hello_then_quiet) as server:
            client, events = threaded(server.url(), idle_timeout=0.2, reconnect=FAST)
            client.connect()
            assert events.wait("message", 2)[:2] == ["hello", "hello"]
            assert isinstance(events.of("disconnect")[0].error, IdleTimeout)


class TestThreadedReconnect:
    @pytest.mark.parametrize("ending", ["eof", "reset"])
    def test_abrupt_close(self, threaded: Any, ending: str) -> None:
        with RawServer(numbered_then(ending)) as server:
            client, events = threaded(server.url(), reconnect=FAST)
            client.connect()
            assert events.wait("message", 2) == ["conn-0", "conn-1"]
            first_id, second_id = events.wait("connect", 2)
            assert second_id > first_id
            (lost,) = events.of("disconnect")
            assert isinstance(lost, Disconnected)
            assert (lost.code, lost.reconnecting, lost.connection_id) == (1006, True, first_id)
            reconnected = client.reconnected
            assert isinstance(reconnected, Reconnected)
            assert reconnected.attempts == 1
            assert reconnected.code == 1006
            assert 0 <= reconnected.downtime < WAIT
            assert client.is_open
            # One event thread served both connections: every callback ran on it.
            assert len(set(events.threads)) == 1
            client.disconnect()
            assert events.wait("close") == [(1000, "")]  # on_close once, at the very end
            assert client.stats().reconnects == 1
            assert client.stats().connections == 2

    def test_server_restart_on_the_same_port(self, threaded: Any) -> None:
        port = free_port()
        with WebsocketsServer(hello, port=port) as server:
            client, events = threaded(server.url(), reconnect=FAST)
            client.connect()
            events.wait("message")
        # The server is gone (its shutdown closed the connection with 1001); connections are refused
        # until it is back.
        time.sleep(0.3)
        with WebsocketsServer(hello, port=port):
            assert events.wait("message", 2) == ["hello", "hello"]
            assert client.reconnected is not None
            assert client.reconnected.code == 1001
            assert client.reconnected.attempts >= 2  # refused at least once
            client.send("back")
            assert events.wait("message", 3)[-1] == "back"

    def test_gives_up_after_max_attempts(self, threaded: Any) -> None:
        with WebsocketsServer(hello) as server:
            policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
            client, events = threaded(server.url(), reconnect=policy)
            client.connect()
            events.wait("message")
        assert events.wait("close")[0][0] == 1001
        assert client.wait(WAIT)
        assert isinstance(client.close_exception, ConnectionClosedError)
        assert "gave up reconnecting after 3 attempts" in client.close_exception.reason
        (lost,) = events.of("disconnect")
        assert lost.reconnecting is True
        assert len(events.of("connect")) == 1

    def test_reconnect_on_demand(self, threaded: Any) -> None:
        with WebsocketsServer() as server:
            client, events = threaded(server.url())  # no reconnect policy: reconnect() works anyway
            client.connect()
            first = client.connection_id
            assert not client.is_reconnecting
            client.reconnect()
            events.wait("connect", 2)
            (lost,) = events.of("disconnect")
            assert (lost.code, lost.reconnecting, lost.connection_id) == (1000, True, first)
            assert lost.error is None  # a clean closing handshake
            assert client.reconnected is not None
            assert client.reconnected.attempts == 1
            client.send("on the new connection")
            assert events.wait("message") == ["on the new connection"]
            assert client.connection_id > first
            assert server.wait_closes()[0][0] == 1000
            client.disconnect()
            assert events.wait("close") == [(1000, "")]

    def test_backoff_between_attempts(self, threaded: Any) -> None:
        refusing = RefusingAfterFirst()
        with refusing.server as server:
            client, events = threaded(server.url(), reconnect=BACKOFF)
            client.connect()
            events.wait("close")
            assert client.wait(WAIT)
        refusing.check_backoff(BACKOFF)  # 0.05, 0.1, 0.2, then 0.3 (the maximum)
        assert len(events.of("connect")) == 1

    def test_refused_handshake_stops_reconnecting(self, threaded: Any) -> None:
        def handler(conn: RawConnection) -> None:
            if conn.index == 0:
                conn.accept(server_frame(Opcode.TEXT, "first"))
                conn.close()
            else:
                conn.read_request()
                conn.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

        with RawServer(handler) as server:
            client, events = threaded(server.url(), reconnect=FAST)
            client.connect()
            events.wait("close")
            assert client.wait(WAIT)
            time.sleep(0.2)
            assert len(server.connections) == 2  # one refused attempt, then no more

    def test_disconnect_interrupts_the_reconnect_wait(self, threaded: Any) -> None:
        with RawServer(numbered_then("eof")) as server:
            client, events = threaded(server.url(), reconnect=ReconnectPolicy(initial_delay=60, max_delay=60))
            client.connect()
            events.wait("disconnect")
            started = time.monotonic()
            client.disconnect()
            assert client.wait(WAIT)
            assert time.monotonic() - started < WAIT / 2
            assert events.wait("close") == [(1006, "")]
            assert len(server.connections) == 1

    def test_headers_and_credentials_on_every_connection(self, threaded: Any) -> None:
        async def close_after_hello(ws: Any) -> None:
            await ws.send("hello")
            await ws.close(1012, "restart")

        with WebsocketsServer(close_after_hello) as server:
            url = server.url().replace("ws://", "ws://user:secret@")
            client, events = threaded(url, reconnect=FAST, headers={"X-Feed": "trades"})
            client.connect(headers={"X-Session": "42"})
            events.wait("connect", 3)
            client.disconnect()
            for headers in server.requests[:3]:
                assert headers["Authorization"].startswith("Basic ")
                assert headers["X-Feed"] == "trades"
                assert headers["X-Session"] == "42"

    def test_reconnects_and_leaks_nothing(self, threaded: Any) -> None:
        async def close_after_hello(ws: Any) -> None:
            await ws.send("hello")
            await ws.close(1012, "restart")

        with WebsocketsServer(close_after_hello) as server:
            threads, fds = threading.active_count(), open_fds()
            client, events = threaded(server.url(), reconnect=FAST)
            client.connect()
            events.wait("connect", 6)
            assert threading.active_count() == threads + 1  # one event thread for all connections
            client.disconnect()
            assert client.wait(WAIT)
            assert client.stats().reconnects >= 5
            wait_until(lambda: threading.active_count() == threads, what="threads to end")
            wait_until(lambda: open_fds() <= fds, what="sockets to close")


class TestThreadedStats:
    def test_stats(self, threaded: Any) -> None:
        with WebsocketsServer() as server:
            client, events = threaded(server.url(), ping_interval=None)
            assert client.stats() == Stats()
            before = time.time()
            client.connect()
            for text in ("a", "bb", "ccc"):
                client.send(text)
            events.wait("message", 3)
            stats = client.stats()
            assert (stats.messages_sent, stats.messages_received, stats.frames_received) == (3, 3, 3)
            assert stats.bytes_sent == 3 * 6 + 6  # masked frames: 2 + 4 header bytes each
            assert stats.bytes_received == 2 * 3 + 6
            assert stats.connections == 1
            assert stats.last_message_at is not None
            assert before <= stats.last_message_at <= time.time()
            assert stats.connected_at is not None
            assert before <= stats.connected_at
            client.disconnect()
            assert client.stats().messages_received == 3  # kept after the connection ends
            assert set(stats.as_dict()) >= {"messages_received", "reconnects", "queue_depth"}


# --------------------------------------------------------------------------------------------------
# The asyncio client
# --------------------------------------------------------------------------------------------------


class TestAsyncioKeepalive:
    def test_dead_server_is_detected(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with RawServer(silent_after_handshake) as server:

            async def main() -> None:
                lost: list[Disconnected] = []
                ws = await wsfast.connect(
                    server.url(),
                    ping_interval=0.1,
                    ping_timeout=0.2,
                    on_disconnect=lost.append,
                    implementation=codec_impl.name,
                )
                with pytest.raises(KeepaliveTimeout) as caught:
                    await ws.recv()
                assert caught.value.code == 1011
                await asyncio.wait_for(ws.wait_closed(), WAIT)
                assert ws.close_code == 1011
                assert isinstance(lost[0].error, KeepaliveTimeout)
                with pytest.raises(KeepaliveTimeout):
                    await ws.recv()  # and every later call

            run(main)
            server.wait_finished()
            frames = server.connections[0].frames
            assert [frame.opcode for frame in frames] == [Opcode.PING, Opcode.CLOSE]
            assert frames[1].close_code == 1011

    def test_busy_inline_callback_is_no_false_timeout(
        self, run: Any, codec_impl: types.SimpleNamespace
    ) -> None:
        with WebsocketsServer() as server:

            async def main() -> None:
                received: list[Any] = []

                def on_message(message: Any) -> None:
                    received.append(message)
                    if message == "slow":
                        time.sleep(1.0)  # blocks the loop: PONG deadlines pass, the PONG waits unread

                ws = await wsfast.connect(
                    server.url(),
                    on_message=on_message,
                    ping_interval=0.1,
                    ping_timeout=0.2,
                    implementation=codec_impl.name,
                )
                await asyncio.sleep(0.15)
                await ws.send("slow")
                await ws.send("after")
                while len(received) < 2:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)
                assert ws.open, ws.close_code
                stats = ws.stats()
                assert stats.pings_sent >= 1
                assert stats.pongs_received >= 1
                await ws.close()
                assert ws.close_code == 1000

            run(main)


class TestAsyncioIdle:
    def test_on_idle_coroutine(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(hello_then_quiet) as server:

            async def main() -> None:
                idle = asyncio.Event()

                async def on_idle(ws: wsfast.WebSocket) -> None:
                    idle.set()

                async with wsfast.connect(
                    server.url(), idle_timeout=0.2, on_idle=on_idle, implementation=codec_impl.name
                ) as ws:
                    assert await ws.recv() == "hello"
                    await asyncio.wait_for(idle.wait(), WAIT)
                    assert ws.open

            run(main)

    def test_idle_closes_without_hook(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(hello_then_quiet) as server:

            async def main() -> None:
                ws = await wsfast.connect(server.url(), idle_timeout=0.2, implementation=codec_impl.name)
                assert await ws.recv() == "hello"
                with pytest.raises(IdleTimeout) as caught:
                    await ws.recv()
                assert caught.value.code == 1001

            run(main)


class TestAsyncioReconnect:
    @pytest.mark.parametrize("ending", ["eof", "reset"])
    def test_abrupt_close_and_the_gap_marker(
        self, run: Any, ending: str, codec_impl: types.SimpleNamespace
    ) -> None:
        with RawServer(numbered_then(ending)) as server:

            async def main() -> None:
                connects: list[int] = []

                async def on_connect(ws: wsfast.WebSocket) -> None:
                    connects.append(ws.stats().connections)

                lost: list[Disconnected] = []
                async with wsfast.connect(
                    server.url(),
                    reconnect=FAST,
                    on_connect=on_connect,
                    on_disconnect=lost.append,
                    implementation=codec_impl.name,
                ) as ws:
                    first_id = ws.connection_id
                    assert await ws.recv() == "conn-0"
                    marker = await ws.recv()
                    assert isinstance(marker, Reconnected)
                    # Connection ids are the process-wide sequence the threaded client uses too.
                    assert (marker.code, marker.attempts, marker.connection_id) == (1006, 1, ws.connection_id)
                    assert marker.connection_id > first_id
                    assert lost[0].connection_id == first_id
                    assert ws.reconnected is marker
                    assert await ws.recv() == "conn-1"
                    assert connects == [1, 2]
                    assert ws.stats().reconnects == 1
                assert ws.close_code == 1000

            run(main)

    def test_server_restart_on_the_same_port(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        port = free_port()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            servers = [WebsocketsServer(hello, port=port)]
            await loop.run_in_executor(None, servers[0].__enter__)
            ws = await wsfast.connect(servers[0].url(), reconnect=FAST, implementation=codec_impl.name)
            try:
                assert await ws.recv() == "hello"
                await loop.run_in_executor(None, servers[0].__exit__, None, None, None)
                await asyncio.sleep(0.3)  # refused meanwhile
                servers.append(WebsocketsServer(hello, port=port))
                await loop.run_in_executor(None, servers[1].__enter__)
                marker = await ws.recv()
                assert isinstance(marker, Reconnected)
                assert marker.attempts >= 2
                assert await ws.recv() == "hello"
                await ws.send("back")
                assert await ws.recv() == "back"
            finally:
                await ws.close()
                if len(servers) == 2:
                    await loop.run_in_executor(None, servers[1].__exit__, None, None, None)

        run(main)

    def test_gives_up_and_iteration_ends_with_the_error(
        self, run: Any, codec_impl: types.SimpleNamespace
    ) -> None:
        server = WebsocketsServer(hello).__enter__()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
            ws = await wsfast.connect(server.url(), reconnect=policy, implementation=codec_impl.name)
            assert await ws.recv() == "hello"
            await loop.run_in_executor(None, server.__exit__, None, None, None)
            with pytest.raises(ConnectionClosedError) as caught:
                async for _ in ws:
                    pass
            assert caught.value.code == 1001
            assert "gave up reconnecting after 3 attempts" in caught.value.reason
            await asyncio.wait_for(ws.wait_closed(), WAIT)

        run(main)

    def test_reconnect_on_demand(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server:

            async def main() -> None:
                async with wsfast.connect(server.url(), implementation=codec_impl.name) as ws:
                    assert not ws.is_reconnecting
                    await ws.reconnect()
                    assert ws.open
                    marker = await ws.recv()
                    assert isinstance(marker, Reconnected)
                    assert (marker.code, marker.attempts) == (1000, 1)
                    await ws.send("on the new connection")
                    assert await ws.recv() == "on the new connection"
                    assert ws.stats().reconnects == 1
                with pytest.raises(wsfast.ConnectionClosedOK):
                    await ws.reconnect()  # closed for good

            run(main)
            assert server.wait_closes(2)[0][0] == 1000

    def test_backoff_between_attempts(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        refusing = RefusingAfterFirst()
        with refusing.server as server:

            async def main() -> None:
                ws = await wsfast.connect(server.url(), reconnect=BACKOFF, implementation=codec_impl.name)
                assert await ws.recv() == "first"
                with pytest.raises(ConnectionClosedError, match="503"):
                    await ws.recv()

            run(main)
        refusing.check_backoff(BACKOFF)

    def test_close_interrupts_the_reconnect_wait(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with RawServer(numbered_then("eof")) as server:

            async def main() -> None:
                baseline = asyncio.all_tasks()
                lost = asyncio.Event()
                policy = ReconnectPolicy(initial_delay=60, max_delay=60)
                ws = await wsfast.connect(
                    server.url(),
                    reconnect=policy,
                    on_disconnect=lambda _: lost.set(),
                    implementation=codec_impl.name,
                )
                assert await ws.recv() == "conn-0"
                await asyncio.wait_for(lost.wait(), WAIT)
                await asyncio.wait_for(ws.close(), WAIT / 2)
                await asyncio.wait_for(ws.wait_closed(), WAIT / 2)
                assert ws.close_code == 1006
                assert len(server.connections) == 1
                assert asyncio.all_tasks() <= baseline  # no reconnect task left behind

            run(main)

    def test_reconnects_and_leaks_nothing(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        async def close_after_hello(ws: Any) -> None:
            await ws.send("hello")
            await ws.close(1012, "restart")

        with WebsocketsServer(close_after_hello) as server:
            fds = open_fds()

            async def main() -> None:
                baseline = asyncio.all_tasks()
                url = server.url().replace("ws://", "ws://user:secret@")
                async with wsfast.connect(
                    url, reconnect=FAST, headers={"X-Feed": "trades"}, implementation=codec_impl.name
                ) as ws:
                    markers = 0
                    async for message in ws:
                        if isinstance(message, Reconnected):
                            markers += 1
                            if markers == 5:
                                break
                        else:
                            assert message == "hello"
                    assert ws.stats().reconnects == 5
                await asyncio.sleep(0)
                assert asyncio.all_tasks() <= baseline  # no reconnect task left behind

            run(main)
            wait_until(lambda: open_fds() <= fds, what="sockets to close")
            for headers in server.requests[:6]:
                assert headers["Authorization"].startswith("Basic ")
                assert headers["X-Feed"] == "trades"


class TestAsyncioStats:
    def test_stats(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer() as server:

            async def main() -> None:
                async with wsfast.connect(
                    server.url(), ping_interval=None, max_queue=10, implementation=codec_impl.name
                ) as ws:
                    for text in ("a", "bb", "ccc"):
                        await ws.send(text)
                    while ws.stats().queue_depth < 3:
                        await asyncio.sleep(0.01)
                    stats = ws.stats()
                    assert (stats.messages_sent, stats.messages_received, stats.frames_received) == (3, 3, 3)
                    assert stats.bytes_sent == 3 * 6 + 6
                    assert stats.bytes_received == 2 * 3 + 6
                    assert stats.last_message_at is not None
                    rtt = await ws.ping()
                    assert ws.stats().last_rtt == rtt
                    assert ws.stats().pings_sent == 1
                assert ws.stats().messages_received == 3

            run(main)


# --------------------------------------------------------------------------------------------------
# No data lost through bursts, slow consumers and a forced reconnect
# --------------------------------------------------------------------------------------------------

PER_CONNECTION = 5_000
BURST = 500


def numbered_stream(conn: RawConnection) -> None:
    """Connection n streams ``n:0`` ... ``n:4999`` in bursts; the first then closes TCP without a CLOSE
    (a forced reconnect: every byte sent before the FIN still arrives); the second closes normally."""
    if conn.index > 1:  # the client reconnects after the normal close too; that one has nothing
        accept_then()(conn)
        return
    conn.accept()
    for start in range(0, PER_CONNECTION, BURST):
        frames = (server_frame(Opcode.TEXT, f"{conn.index}:{i}") for i in range(start, start + BURST))
        conn.send(b"".join(frames))
        time.sleep(0.01)
    if conn.index == 0:
        conn.close()
    else:
        conn.send(server_close(1000))
        conn.read_until_close()  # the client's answer; then the server closes TCP (RFC 6455 §7.1.1)


def check_exactly_once(stream: list[Any]) -> None:
    """Each connection's messages arrived once each, in order, and one marker reports the gap."""
    gaps = [index for index, item in enumerate(stream) if not isinstance(item, str)]
    assert len(gaps) == 1, gaps
    (gap,) = gaps
    assert stream[:gap] == [f"0:{i}" for i in range(PER_CONNECTION)]
    assert stream[gap + 1 :] == [f"1:{i}" for i in range(PER_CONNECTION)]


class TestNoDataLoss:
    def test_threaded(self, codec_impl: types.SimpleNamespace) -> None:
        stream: list[Any] = []
        done = threading.Event()

        def on_message(message: str) -> None:
            stream.append(message)
            if len(stream) % 1_000 == 0:
                time.sleep(0.05)  # a slow consumer now and then: TCP backpressure, nothing lost

        def on_disconnect(info: Disconnected) -> None:
            stream.append(info)

        def on_message_or_done(message: str) -> None:
            on_message(message)
            if message == f"1:{PER_CONNECTION - 1}":
                done.set()

        with RawServer(numbered_stream) as server:
            client = WebSocketClient(
                on_message_or_done,
                server.url(),
                reconnect=FAST,
                on_disconnect=on_disconnect,
                implementation=codec_impl.name,
            )
            client.connect()
            assert done.wait(WAIT * 3)
            client.disconnect()
            assert client.wait(WAIT)
        check_exactly_once(stream[: 2 * PER_CONNECTION + 1])

    def test_asyncio(self, run: Any, codec_impl: types.SimpleNamespace) -> None:
        with RawServer(numbered_stream) as server:

            async def main() -> list[Any]:
                stream: list[Any] = []
                async with wsfast.connect(
                    server.url(), reconnect=FAST, max_queue=64, implementation=codec_impl.name
                ) as ws:
                    async for message in ws:
                        stream.append(message)
                        if len(stream) % 1_000 == 0:
                            await asyncio.sleep(0.05)
                        if message == f"1:{PER_CONNECTION - 1}":
                            break
                    assert ws.stats().dropped == 0
                return stream

            check_exactly_once(run(main, WAIT * 3))


class TestHealthOptionsInConfigs:
    """The health options go through the option registry like every other (wsfast.options)."""

    def test_from_text_and_back(self) -> None:
        policy = {"initial_delay": 0.25, "max_delay": 8.0, "max_attempts": 5}
        conn = wsfast.Connection(
            "feed",
            "ws://127.0.0.1:1/",
            options={"ping_interval": "15", "idle_timeout": "30", "reconnect": policy},
        )
        again = wsfast.Connection.from_config(conn.config())
        assert again == conn
        client = conn.get(connect=False)
        assert client._config["ping_interval"] == 15.0
        assert client._config["idle_timeout"] == 30.0
        assert client._config.reconnect == ReconnectPolicy(initial_delay=0.25, max_delay=8.0, max_attempts=5)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"reconnect": {"jitter": 2}}, "jitter"),
            ({"reconnect": {"delay": 1}}, "delay"),
            ({"ping_timeout": "0"}, "ping_timeout"),
        ],
    )
    def test_bad_values_are_rejected(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(wsfast.OptionError, match=message):
            wsfast.Connection("feed", "ws://127.0.0.1:1/", options=options)
