"""Connection health on every front-end: keepalive (a dead server is detected; a busy callback is no false
timeout), the idle watchdog, reconnection (abrupt ends, a restarted server, giving up, on demand,
backoff, nothing leaked, no message lost across a reconnect) and ``stats()``.

The recv front-end sees each reconnection as a ``Reconnected`` marker in its stream; every front-end sees
a ``Disconnected`` (``on_disconnect``) and a new ``on_connect``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from typing import Any

import pytest
from adapters import ASYNC_FRONTENDS, THREAD_FRONTENDS, WAIT, Client

from proxies import free_port
from servers import (
    RawConnection,
    RawServer,
    WebsocketsServer,
    accept_then,
    echo,
    server_close,
    server_frame,
)
from wsfast import (
    ConnectionClosedError,
    ConnectionClosedOK,
    Disconnected,
    IdleTimeout,
    KeepaliveTimeout,
    Opcode,
    Reconnected,
    ReconnectPolicy,
)
from wsfast.health import Stats

FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.1, jitter=0.0)
BACKOFF = ReconnectPolicy(initial_delay=0.05, max_delay=0.3, multiplier=2.0, jitter=0.0, max_attempts=4)


def wait_until(predicate: Any, timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def open_sockets() -> int:
    """Sockets open in this process (uvloop opens /dev/null once per loop: not a leak, not counted)."""
    if not os.path.isdir("/proc/self/fd"):
        return 0
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own fd)
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def recv_data(client: Client) -> Any:
    """The next message that is not a ``Reconnected`` marker (the recv front-end's gaps)."""
    message = client.recv()
    while isinstance(message, Reconnected):
        message = client.recv()
    return message


def leftover_reconnect_tasks(client: Any) -> list[Any]:
    """Reconnect tasks still on an asyncio client's loop (none must outlive close())."""
    return client.call(lambda: [task for task in asyncio.all_tasks() if "reconnect" in repr(task)])  # type: ignore[no-any-return]


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
    await echo(ws)


async def close_after_hello(ws: Any) -> None:
    await ws.send("hello")
    await ws.close(1012, "restart")


def numbered_then(ending: str) -> Any:
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


# --------------------------------------------------------------------------------------------------
# Keepalive
# --------------------------------------------------------------------------------------------------


def test_a_dead_server_is_detected(client: Client) -> None:
    with RawServer(silent_after_handshake) as server:
        started = time.monotonic()
        client.open(server.url(), ping_interval=0.1, ping_timeout=0.2)
        (event,) = client.events.wait_for("disconnect")
        assert time.monotonic() - started < WAIT
        info = event[1]
        assert info.code == 1011
        assert info.reason.startswith("keepalive timeout")
        assert isinstance(info.error, KeepaliveTimeout)
        assert info.reconnecting is False
        if client.has_recv:
            for _ in range(2):  # and every later call
                with pytest.raises(KeepaliveTimeout) as caught:
                    client.recv()
                assert caught.value.code == 1011
        if client.variant.frontend == "threaded":
            assert isinstance(client.raw.close_exception, KeepaliveTimeout)
            assert client.events.of("close")[0][1:] == (1011, info.reason)
        client.wait_closed()
        assert client.close_code == 1011
        assert client.stats().pings_sent == 1
        server.wait_finished()
        frames = server.connections[0].frames
        assert [frame.opcode for frame in frames] == [Opcode.PING, Opcode.CLOSE]
        assert frames[0].payload == b"wsfast-keepalive-1"
        assert frames[1].close_code == 1011


@pytest.mark.frontends("threaded", "inline")
def test_a_busy_callback_is_no_false_timeout(client: Client, ws_server: WebsocketsServer) -> None:
    """A callback that blocks for five PONG deadlines: the PONG waits unread meanwhile, and counts."""

    def on_message(message: Any) -> None:
        client.messages.put(message)
        if message == "slow":
            time.sleep(1.0)

    client.open(ws_server.url(), on_message=on_message, ping_interval=0.1, ping_timeout=0.2)
    time.sleep(0.15)  # a PING is in flight
    client.send("slow")
    client.send("after")
    assert client.recv_many(2) == ["slow", "after"]
    time.sleep(0.2)
    assert client.close_code is None, client.events.seen
    stats = client.stats()
    assert stats.pings_sent >= 1
    assert stats.pongs_received >= 1
    assert stats.last_rtt is not None
    assert stats.last_rtt > 0
    client.close()
    assert client.close_code == 1000


def test_keepalive_off_sends_no_ping(client: Client) -> None:
    with RawServer(silent_after_handshake) as server:
        client.open(server.url(), ping_interval=None)
        time.sleep(0.3)
        assert client.close_code is None
        assert client.stats().pings_sent == 0


# --------------------------------------------------------------------------------------------------
# Idle
# --------------------------------------------------------------------------------------------------


def test_on_idle_runs_every_idle_timeout(client: Client) -> None:
    idle: list[bool] = []

    def on_idle_sync(ws: Any) -> None:
        idle.append(client.close_code is None if client.variant.frontend != "threaded" else ws.is_open)

    async def on_idle_async(ws: Any) -> None:
        idle.append(ws.open)

    with WebsocketsServer(hello_then_quiet) as server:
        on_idle = on_idle_async if client.variant.frontend in ASYNC_FRONTENDS else on_idle_sync
        client.open(server.url(), idle_timeout=0.2, on_idle=on_idle)
        assert client.recv() == "hello"
        wait_until(lambda: len(idle) >= 2, what="two on_idle calls")  # again every idle_timeout
        assert idle[:2] == [True, True]
        assert client.close_code is None


def test_idle_closes_without_a_hook(client: Client) -> None:
    with WebsocketsServer(hello_then_quiet) as server:
        client.open(server.url(), idle_timeout=0.2)
        assert client.recv() == "hello"
        if client.has_recv:
            with pytest.raises(IdleTimeout) as caught:
                client.recv()
            assert caught.value.code == 1001
        (event,) = client.events.wait_for("disconnect")
        assert event[1].code == 1001
        assert event[1].reason.startswith("idle timeout")
        assert isinstance(event[1].error, IdleTimeout)
        if client.variant.frontend == "threaded":
            assert isinstance(client.raw.close_exception, IdleTimeout)
        assert server.wait_closes()[0][0] == 1001
        assert client.messages.empty()  # "hello" only


def test_idle_reconnects_with_a_policy(client: Client) -> None:
    with WebsocketsServer(hello_then_quiet) as server:
        client.open(server.url(), idle_timeout=0.2, reconnect=FAST)
        assert [recv_data(client), recv_data(client)] == ["hello", "hello"]
        assert isinstance(client.events.disconnects[0].error, IdleTimeout)


# --------------------------------------------------------------------------------------------------
# Reconnection
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["eof", "reset"])
def test_an_abrupt_end_reconnects(client: Client, ending: str) -> None:
    with RawServer(numbered_then(ending)) as server:
        client.open(server.url(), reconnect=FAST)
        first_id = client.raw.connection_id
        assert client.recv() == "conn-0"
        if client.has_recv:
            marker = client.recv()
            assert isinstance(marker, Reconnected)
            assert (marker.code, marker.attempts) == (1006, 1)
            assert client.raw.reconnected is marker
        assert recv_data(client) == "conn-1"
        client.events.wait_for("connect", 2)
        # Connection ids are one process-wide sequence, on every front-end.
        assert client.raw.connection_id > first_id
        (lost,) = client.events.disconnects
        assert isinstance(lost, Disconnected)
        assert (lost.code, lost.reconnecting, lost.connection_id) == (1006, True, first_id)
        reconnected = client.raw.reconnected
        assert isinstance(reconnected, Reconnected)
        assert (reconnected.code, reconnected.attempts) == (1006, 1)
        assert reconnected.connection_id == client.raw.connection_id
        assert 0 <= reconnected.downtime < WAIT
        assert (client.stats().reconnects, client.stats().connections) == (1, 2)
        if client.variant.frontend == "threaded":  # one event thread served both connections
            assert len(set(client.events.threads)) == 1
        client.close()
        if client.variant.frontend == "threaded":
            assert client.events.wait_for("close") == [("close", 1000, "")]  # on_close once, at the end
        assert client.close_code == 1000


def test_a_server_restarted_on_the_same_port_is_reconnected(client: Client) -> None:
    port = free_port()
    with WebsocketsServer(hello, port=port) as server:
        client.open(server.url(), reconnect=FAST)
        assert client.recv() == "hello"
    # The server is gone (its shutdown closed the connection with 1001); connections are refused until
    # it is back.
    time.sleep(0.3)
    with WebsocketsServer(hello, port=port):
        assert recv_data(client) == "hello"
        reconnected = client.raw.reconnected
        assert reconnected is not None
        assert reconnected.code == 1001
        assert reconnected.attempts >= 2  # refused at least once
        client.send("back")
        assert client.recv() == "back"
        client.close()


def test_giving_up_after_max_attempts(client: Client) -> None:
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
    with WebsocketsServer(hello) as server:
        client.open(server.url(), reconnect=policy)
        assert client.recv() == "hello"
    if client.has_recv:  # the iteration ends with the error
        with pytest.raises(ConnectionClosedError) as caught:
            client.iterate()
        assert caught.value.code == 1001
        assert "gave up reconnecting after 3 attempts" in caught.value.reason
    client.wait_closed()
    assert client.close_code == 1001
    if client.variant.frontend == "threaded":
        assert client.events.wait_for("close")[0][1] == 1001
        assert isinstance(client.raw.close_exception, ConnectionClosedError)
        assert "gave up reconnecting after 3 attempts" in client.raw.close_exception.reason
    assert client.events.disconnects[0].reconnecting is True
    assert client.events.connects == 1


def test_reconnect_on_demand(client: Client) -> None:
    """reconnect() works without a reconnect policy: a clean close (1000), then a new connection."""
    with WebsocketsServer(echo) as server:
        client.open(server.url())
        first = client.raw.connection_id
        assert not client.raw.is_reconnecting
        client.reconnect()
        client.events.wait_for("connect", 2)
        (lost,) = client.events.disconnects
        assert (lost.code, lost.reconnecting, lost.connection_id) == (1000, True, first)
        assert lost.error is None  # a clean closing handshake
        assert client.raw.reconnected is not None
        assert (client.raw.reconnected.code, client.raw.reconnected.attempts) == (1000, 1)
        if client.has_recv:
            marker = client.recv()
            assert isinstance(marker, Reconnected)
            assert (marker.code, marker.attempts) == (1000, 1)
        client.send("on the new connection")
        assert client.recv() == "on the new connection"
        assert client.raw.connection_id > first
        assert client.stats().reconnects == 1
        assert server.wait_closes()[0][0] == 1000
        client.close()
        if client.variant.frontend == "threaded":
            assert client.events.wait_for("close") == [("close", 1000, "")]
        else:
            with pytest.raises(ConnectionClosedOK):  # closed for good
                client.reconnect()
    assert server.wait_closes(2)[0][0] == 1000


def test_backoff_between_attempts(client: Client) -> None:
    refusing = RefusingAfterFirst()
    with refusing.server as server:
        client.open(server.url(), reconnect=BACKOFF)
        assert client.recv() == "first"
        if client.has_recv:
            with pytest.raises(ConnectionClosedError, match="503"):
                recv_data(client)
        client.wait_closed(WAIT)
    refusing.check_backoff(BACKOFF)  # 0.05, 0.1, 0.2, then 0.3 (the maximum)
    assert client.events.connects == 1


def test_a_refused_handshake_stops_reconnecting(client: Client) -> None:
    """A 4xx answer (other than 408, 425, 429) to a reconnection gives up at once."""

    def handler(conn: RawConnection) -> None:
        if conn.index == 0:
            conn.accept(server_frame(Opcode.TEXT, "first"))
            conn.close()
        else:
            conn.read_request()
            conn.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    with RawServer(handler) as server:
        client.open(server.url(), reconnect=FAST)
        assert client.recv() == "first"
        client.wait_closed()
        time.sleep(0.2)
        assert len(server.connections) == 2  # one refused attempt, then no more


def test_close_interrupts_the_reconnect_wait(client: Client) -> None:
    with RawServer(numbered_then("eof")) as server:
        client.open(server.url(), reconnect=ReconnectPolicy(initial_delay=60, max_delay=60))
        assert client.recv() == "conn-0"
        client.events.wait_for("disconnect")
        started = time.monotonic()
        client.close()
        client.wait_closed(WAIT / 2)
        assert time.monotonic() - started < WAIT / 2
        assert client.close_code == 1006
        if client.variant.frontend == "threaded":
            assert client.events.wait_for("close") == [("close", 1006, "")]
        elif client.variant.frontend in ASYNC_FRONTENDS:
            assert leftover_reconnect_tasks(client) == []
        else:  # sync: the event thread is gone, and no reconnection waits
            assert not client.raw.is_reconnecting
            assert isinstance(client.raw.close_exception, ConnectionClosedError)
        assert len(server.connections) == 1


def test_reconnections_leak_nothing_and_keep_headers_and_credentials(client: Client) -> None:
    with WebsocketsServer(close_after_hello) as server:
        threads, sockets = threading.active_count(), open_sockets()
        url = server.url().replace("ws://", "ws://user:secret@")
        client.open(url, reconnect=FAST, headers={"X-Feed": "trades"})
        client.events.wait_for("connect", 6)
        # One event thread for all connections (threaded, sync); none at all (asyncio).
        assert threading.active_count() == threads + (client.variant.frontend in THREAD_FRONTENDS)
        client.close()
        client.wait_closed()
        assert client.stats().reconnects >= 5
        if client.variant.frontend in ASYNC_FRONTENDS:
            assert leftover_reconnect_tasks(client) == []
        wait_until(lambda: threading.active_count() == threads, what="threads to end")
        wait_until(lambda: open_sockets() <= sockets, what="sockets to close")
        for headers in server.requests[:6]:
            assert headers["Authorization"].startswith("Basic ")
            assert headers["X-Feed"] == "trades"


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


def test_no_message_is_lost_across_a_reconnect(client: Client) -> None:
    """Each connection's messages arrive once each, in order, through bursts and a slow consumer, and one
    item reports the gap: a ``Reconnected`` marker (recv), a ``Disconnected`` (callbacks)."""
    last = f"1:{PER_CONNECTION - 1}"
    stream: list[Any] = []
    done = threading.Event()
    with RawServer(numbered_stream) as server:
        if client.has_recv:
            client.open(server.url(), reconnect=FAST, max_queue=64)

            def collect(message: Any) -> bool | float | None:
                stream.append(message)
                if message == last:
                    return True
                if len(stream) % 1_000 == 0:
                    return 0.05  # a slow consumer now and then: nothing lost
                return None

            client.consume(collect, WAIT * 3)
            assert client.stats().dropped == 0
        else:

            def on_message(message: Any) -> None:
                if isinstance(message, Reconnected):
                    return  # callbacks learn of the gap from on_disconnect
                stream.append(message)
                if len(stream) % 1_000 == 0:
                    time.sleep(0.05)  # a slow callback stalls the connection: TCP backpressure
                if message == last:
                    done.set()

            client.open(server.url(), reconnect=FAST, on_message=on_message, on_disconnect=stream.append)
            assert done.wait(WAIT * 3)
        client.close()
    stream = stream[: 2 * PER_CONNECTION + 1]
    gaps = [index for index, item in enumerate(stream) if not isinstance(item, str)]
    assert len(gaps) == 1, gaps
    (gap,) = gaps
    assert isinstance(stream[gap], Reconnected if client.has_recv else Disconnected)
    assert stream[:gap] == [f"0:{i}" for i in range(PER_CONNECTION)]
    assert stream[gap + 1 :] == [f"1:{i}" for i in range(PER_CONNECTION)]


# --------------------------------------------------------------------------------------------------
# stats()
# --------------------------------------------------------------------------------------------------


def test_stats(client: Client, ws_server: WebsocketsServer) -> None:
    if client.variant.frontend == "threaded":  # a WebSocketClient exists before it connects
        client.construct(ws_server.url(), ping_interval=None)
        assert client.stats() == Stats()
    before = time.time()
    client.open(ws_server.url(), ping_interval=None)
    for text in ("a", "bb", "ccc"):
        client.send(text)
    assert client.recv_many(3) == ["a", "bb", "ccc"]
    stats = client.stats()
    assert (stats.messages_sent, stats.messages_received, stats.frames_received) == (3, 3, 3)
    assert stats.bytes_sent == 3 * 6 + 6  # masked frames: 2 + 4 header bytes each
    assert stats.bytes_received == 2 * 3 + 6
    assert stats.connections == 1
    assert stats.last_message_at is not None
    assert before <= stats.last_message_at <= time.time()
    assert stats.connected_at is not None
    assert before <= stats.connected_at
    assert set(stats.as_dict()) >= {"messages_received", "reconnects", "queue_depth"}
    rtt = client.ping()
    assert client.stats().pings_sent == 1
    if client.variant.frontend != "threaded":
        assert client.stats().last_rtt == rtt
    client.close()
    assert client.stats().messages_received == 3  # kept after the connection ends
