"""Connection health (issue 6): keepalive, the idle watchdog, automatic reconnect and statistics.

The decisions live in the sans-I/O :mod:`wsfast.health` and are unit-tested here with a fake clock. The
clients' behaviour against real servers (that stop answering PINGs, stop sending data, close abruptly,
restart on the same port or refuse connections for a while) is tested once, on every front-end, event
loop and codec twin, in tests/contract/test_contract_health.py; only what the threaded client alone has
stays here.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wsfast
from servers import WebsocketsServer, server_frame
from wsfast import (
    ConnectionClosedError,
    IdleTimeout,
    KeepaliveTimeout,
    ReconnectPolicy,
    WebSocketClient,
)
from wsfast.frames import Close, Opcode, Ping, Pong
from wsfast.health import Beat, Heartbeat, to_reconnect_policy
from wsfast.protocol import ClientProtocol

pytest_plugins = ["conftest_client"]

WAIT = 10.0  # generous: only a broken client takes this long
FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.1, jitter=0.0)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


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
# The threaded client only: headers given to connect() last for its reconnections
# --------------------------------------------------------------------------------------------------
# Keepalive, idle, reconnection, stats() and no data lost across a reconnect are tested once, on every
# front-end, in tests/contract/test_contract_health.py.


@pytest.fixture
def threaded(codec_impl: types.SimpleNamespace) -> Iterator[Callable[..., tuple[WebSocketClient, list[Any]]]]:
    clients: list[WebSocketClient] = []

    def make(url: str, **options: Any) -> tuple[WebSocketClient, list[Any]]:
        connects: list[Any] = []
        options.setdefault("on_connect", connects.append)
        client = WebSocketClient(
            None, url, timeout=5.0, close_timeout=2.0, **options, implementation=codec_impl.name
        )
        clients.append(client)
        return client, connects

    yield make
    for client in clients:
        client.disconnect(timeout=2.0)
        assert client.wait(WAIT), "the event thread did not end"


class TestThreadedReconnect:
    def test_connect_headers_and_credentials_on_every_connection(self, threaded: Any) -> None:
        async def close_after_hello(ws: Any) -> None:
            await ws.send("hello")
            await ws.close(1012, "restart")

        with WebsocketsServer(close_after_hello) as server:
            url = server.url().replace("ws://", "ws://user:secret@")
            client, connects = threaded(url, reconnect=FAST, headers={"X-Feed": "trades"})
            client.connect(headers={"X-Session": "42"})
            wait_until(lambda: len(connects) >= 3, what="two reconnections")
            client.disconnect()
            for headers in server.requests[:3]:
                assert headers["Authorization"].startswith("Basic ")
                assert headers["X-Feed"] == "trades"
                assert headers["X-Session"] == "42"


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
