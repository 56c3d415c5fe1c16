"""The same behaviour on every front-end (issue 15, "Same names, same behaviour"), against real servers.

Each test runs on every variant of ``client`` (front-end x event loop x codec twin; see adapters.py),
unless ``@pytest.mark.frontends`` narrows it to the front-ends the behaviour exists on.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from adapters import WAIT, Client

import wsfast
from servers import (
    BINARY,
    PING,
    TEXT,
    RawConnection,
    RawServer,
    WebsocketsServer,
    accept_then,
    echo,
    send_then_close,
    server_frame,
)
from wsfast import (
    ConnectionClosed,
    KeepaliveTimeout,
    MessageDecodeError,
    OptionError,
    ReconnectPolicy,
)

FAST_RECONNECT = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=5)


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------


def test_close_timeout_none_is_accepted(client: Client) -> None:
    """No limit on the closing handshake; a server that answers the CLOSE ends the connection as usual."""
    with WebsocketsServer(echo) as server:
        client.open(server.url(), close_timeout=None)
        client.send("x")
        assert client.recv() == "x"
        client.close(1000, "done")
        assert client.close_code == 1000
        assert server.wait_closes(1) == [(1000, "done")]
        (event,) = client.events.wait_for("disconnect")
        assert (event[1].code, event[1].reason) == (1000, "done")


# --------------------------------------------------------------------------------------------------
# ping() and the URL
# --------------------------------------------------------------------------------------------------


def test_ping_returns_the_round_trip_time(client: Client, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url())
    rtt = client.ping()
    assert isinstance(rtt, float)
    assert 0 < rtt < WAIT
    assert client.stats().last_rtt == rtt  # the last measured round trip, on both clients


@pytest.mark.frontends("threaded")
def test_threaded_ping_from_the_event_thread_is_refused(client: Any, ws_server: WebsocketsServer) -> None:
    """It would wait for a PONG that only the event thread itself can read."""
    errors: list[BaseException] = []
    pongs: list[bytes] = []

    def on_message(message: Any) -> None:
        for call in (client.client.ping, client.client.wait):  # wait() would wait for itself too
            try:
                call()
            except BaseException as exc:
                errors.append(exc)
        client.client.send_frame(b"from the callback", wsfast.Opcode.PING)  # the way that works
        client.messages.put(message)

    client.open(ws_server.url(), on_message=on_message, on_pong=pongs.append)
    client.send("go")
    assert client.recv() == "go"
    assert len(errors) == 2
    assert all(isinstance(error, wsfast.ConcurrencyError) for error in errors)
    assert "send_frame(payload, Opcode.PING)" in str(errors[0])
    deadline = time.monotonic() + WAIT
    while b"from the callback" not in pongs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b"from the callback" in pongs


def test_url_has_no_password(client: Client, ws_server: WebsocketsServer) -> None:
    url = f"ws://user:secret@{ws_server.url('/path?q=1')[5:]}"
    if client.variant.frontend == "threaded":  # a WebSocketClient exists before it connects
        client.construct(url)
        assert client.url == f"ws://user@127.0.0.1:{ws_server.port}/path?q=1"
    client.open(url)
    client.send("sync")  # the server has seen the request once the echo is back
    assert client.recv() == "sync"
    shown = client.url
    assert type(shown) is str
    assert shown == f"ws://user@127.0.0.1:{ws_server.port}/path?q=1"
    assert "secret" not in repr(client.raw)
    assert ws_server.requests[-1]["Authorization"] == "Basic dXNlcjpzZWNyZXQ="  # still sent


# --------------------------------------------------------------------------------------------------
# Options the issue found different between the front-ends
# --------------------------------------------------------------------------------------------------


@pytest.mark.frontends("threaded")
def test_threaded_client_takes_on_message(client: Any, ws_server: WebsocketsServer) -> None:
    got: list[Any] = []
    client.open(ws_server.url(), on_message=lambda message: (got.append(message), client.messages.put(0)))
    client.send("via on_message")
    client.recv()
    assert got == ["via on_message"]
    with pytest.raises(OptionError, match="on_message"):
        wsfast.WebSocketClient(print, ws_server.url(), on_message=print)  # type: ignore[attr-defined]


@pytest.mark.parametrize("ssl", [True, False, "context"])
def test_ssl_with_a_ws_url_is_refused(client: Client, certs: Any, ssl: Any) -> None:
    context = certs.client_context if ssl == "context" else ssl
    with pytest.raises(OptionError, match="ssl= applies to wss:// URLs; use a wss:// URL"):
        client.construct("ws://127.0.0.1:1/", ssl=context)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Value", "a\r\nInjected: 1"),
        ("X-Value", "a\nb"),
        ("X-Value", "a\rb"),
        ("X-Value", "nul\x00"),
        ("X Name", "space in the name"),
        ("X:Name", "colon in the name"),
        ("", "empty name"),
        ("X-Ünicode", "not a token"),
    ],
)
def test_bad_headers_are_refused_at_construction(client: Client, name: str, value: str) -> None:
    """Before any connection: a port nothing listens on would fail the opening otherwise."""
    with pytest.raises(OptionError) as info:
        client.construct("ws://127.0.0.1:1/", headers={name: value})
    assert repr(name)[1:-1] in str(info.value) or name in str(info.value)


def test_unknown_option_suggests_the_right_one(client: Client) -> None:
    with pytest.raises(OptionError, match="ping_interval"):
        client.construct("ws://127.0.0.1:1/", ping_intervall=1.0)


# --------------------------------------------------------------------------------------------------
# loads: the rejection rule
# --------------------------------------------------------------------------------------------------

LOADS_MESSAGES = ['{"a": 1}', "not json", b"\x01", "[2]"]


@pytest.mark.frontends("recv", "sync")
@pytest.mark.xfail_on(
    "sync",
    reason="the threaded client logs and skips a message loads() rejected; wsfast.sync needs a hook to have "
    "it delivered, to raise it from recv() at its place",
)
def test_a_message_loads_rejects_raises_from_recv(client: Client) -> None:
    with WebsocketsServer(send_then_close(LOADS_MESSAGES)) as server:
        client.open(server.url(), loads=json.loads)
        assert client.recv() == {"a": 1}
        with pytest.raises(MessageDecodeError) as info:
            client.recv()
        assert info.value.payload == b"not json"
        assert client.recv() == b"\x01"  # binary messages are not given to loads
        assert client.iterate() == [[2]]  # the connection is still usable, to its end
        assert client.stats().decode_errors == 1


@pytest.mark.frontends("recv", "sync")
@pytest.mark.xfail_on(
    "sync",
    reason="the threaded client logs and skips a message loads() rejected; wsfast.sync needs a hook to have "
    "it delivered, to raise it from the iteration at its place",
)
def test_a_message_loads_rejects_raises_from_iteration(client: Any) -> None:
    with WebsocketsServer(send_then_close(["not json", "[1]"])) as server:
        client.open(server.url(), loads=json.loads)
        deadline = time.monotonic() + WAIT
        while client.stats().queue_depth < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # both queued: the iteration's fast path
        with pytest.raises(MessageDecodeError):
            client.next_message()
        assert client.next_message() == [1]


@pytest.mark.frontends("threaded", "inline")
@pytest.mark.parametrize("alone", [True, False], ids=["data-frames-only", "with-a-ping"])
def test_a_message_loads_rejects_is_logged_and_skipped_by_callbacks(
    client: Client, caplog: pytest.LogCaptureFixture, alone: bool
) -> None:
    # One write of data frames only: the protocol's data-only fast path must still not hand the error on.
    frames = b"".join(server_frame(BINARY if isinstance(m, bytes) else TEXT, m) for m in LOADS_MESSAGES)
    if not alone:
        frames = server_frame(PING, b"p") + frames
    with RawServer(accept_then(frames)) as server, caplog.at_level(logging.ERROR, logger="wsfast"):
        client.open(server.url(), loads=json.loads)
        assert client.recv_many(3) == [{"a": 1}, b"\x01", [2]]
        assert client.stats().decode_errors == 1
        assert client.close_code is None  # still open
        client.close()
    assert client.stats().decode_errors == 1  # kept in the totals once the connection ended
    assert "loads() rejected" in caplog.text


# --------------------------------------------------------------------------------------------------
# on_connect raising
# --------------------------------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_on_connect_raising_fails_the_first_connection(client: Client) -> None:
    def on_connect(ws: Any) -> None:
        raise Boom("subscription failed")

    with WebsocketsServer(echo) as server:
        with pytest.raises(Boom):
            client.open(server.url(), on_connect=on_connect)
        assert server.wait_closes(1)[0][0] == 1011


def test_on_connect_raising_after_a_reconnection_closes_it_and_reconnects(client: Client) -> None:
    connections = []

    async def handler(ws: Any) -> None:
        connections.append(ws)
        if len(connections) == 1:
            await ws.close(1012, "restarting")  # the first connection is lost: reconnect applies
        else:
            await echo(ws)

    calls = []

    def on_connect(ws: Any) -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise Boom("resubscription failed")

    with WebsocketsServer(handler) as server:
        client.open(server.url(), on_connect=on_connect, reconnect=FAST_RECONNECT)
        client.events.wait_for("connect", 3)
        closes = server.wait_closes(2)
        assert closes[0][0] == 1012
        assert closes[1][0] == 1011  # the connection whose on_connect raised
        assert [info.reconnecting for info in client.events.disconnects[:2]] == [True, True]
        client.send("after")
        message = client.recv()
        while isinstance(message, wsfast.Reconnected):  # recv() marks each gap (asyncio, reconnect on)
            assert type(message.code) is int
            message = client.recv()
        assert message == "after"


# --------------------------------------------------------------------------------------------------
# Keepalive: proof of life is a complete frame
# --------------------------------------------------------------------------------------------------


def test_a_server_trickling_an_unfinished_frame_fails_after_ping_timeout(client: Client) -> None:
    """A frame that never completes is no proof of life: 1011 and KeepaliveTimeout after ping_timeout."""

    def handler(conn: RawConnection) -> None:
        conn.accept()
        frame = server_frame(TEXT, "x" * 100)
        conn.drip(frame, 0.05)  # 2 header bytes and 100 payload bytes, one every 50 ms: 5 s in all

    with RawServer(handler) as server:
        started = time.monotonic()
        client.open(server.url(), ping_interval=0.2, ping_timeout=0.4)
        (event,) = client.events.wait_for("disconnect", timeout=WAIT)
        elapsed = time.monotonic() - started
        info = event[1]
        assert info.code == 1011
        assert isinstance(info.error, KeepaliveTimeout)
        assert elapsed < 2.0, f"failed after {elapsed:.1f} s, while the frame was still trickling in"
        if client.has_recv:
            with pytest.raises(KeepaliveTimeout):
                client.recv()


def test_send_after_close_raises_connection_closed(client: Client, ws_server: WebsocketsServer) -> None:
    """After close(), sending raises ConnectionClosed on every front-end."""
    client.open(ws_server.url())
    client.close()
    with pytest.raises(ConnectionClosed):
        client.send("too late")
