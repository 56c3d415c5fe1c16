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
    TEXT,
    RawConnection,
    RawServer,
    WebsocketsServer,
    close_with,
    echo,
    send_then_close,
    server_frame,
)
from wsfast import (
    ConnectionClosed,
    ConnectionClosedError,
    KeepaliveTimeout,
    MessageDecodeError,
    OptionError,
    ReconnectPolicy,
)

FAST_RECONNECT = ReconnectPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=5)


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------


def test_echo_text_and_binary(client: Client, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url("/echo"))
    assert client.events.connects == 1
    client.send("héllo ☃")
    client.send(b"\x00\x01\xff")
    client.send("")
    assert client.recv_many(3) == ["héllo ☃", b"\x00\x01\xff", ""]
    stats = client.stats()
    assert stats.messages_sent == 3
    assert stats.messages_received == 3
    assert stats.connections == 1
    client.close()
    assert client.close_code == 1000


@pytest.mark.frontends("recv")
def test_async_for_ends_on_a_normal_close(client: Any) -> None:
    with WebsocketsServer(send_then_close(["a", "b", "c"])) as server:
        client.open(server.url())
        assert client.iterate() == ["a", "b", "c"]


def test_server_close_code_reaches_disconnected_as_int(client: Client) -> None:
    """``Disconnected.code`` is a plain ``int`` on every front-end, never a ``CloseCode``."""
    with WebsocketsServer(close_with(4001, "bye")) as server:
        client.open(server.url())
        (event,) = client.events.wait_for("disconnect")
        info = event[1]
        assert type(info.code) is int
        assert (info.code, info.reason, info.reconnecting) == (4001, "bye", False)
        assert isinstance(info.error, ConnectionClosedError)


def test_close_timeout_none_is_accepted(client: Client, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url(), close_timeout=None)
    client.send("x")
    assert client.recv() == "x"
    client.close()
    assert client.close_code == 1000


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

    def on_message(message: Any) -> None:
        try:
            client.client.ping()
        except BaseException as exc:
            errors.append(exc)
        client.messages.put(message)

    client.open(ws_server.url(), on_message=on_message)
    client.send("go")
    assert client.recv() == "go"
    assert len(errors) == 1
    assert isinstance(errors[0], wsfast.ConcurrencyError)


def test_url_has_no_password(client: Client, ws_server: WebsocketsServer) -> None:
    url = f"ws://user:secret@{ws_server.url('/path?q=1')[5:]}"
    client.open(url)
    client.send("sync")  # the server has seen the request once the echo is back
    assert client.recv() == "sync"
    shown = client.url
    assert type(shown) is str
    assert "secret" not in shown
    assert shown.startswith("ws://user")
    assert shown.endswith(f"127.0.0.1:{ws_server.port}/path?q=1")
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
    with pytest.raises(OptionError, match="wss://"):
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

LOADS_MESSAGES = ['{"a": 1}', "not json", "[2]"]


@pytest.mark.frontends("recv")
def test_a_message_loads_rejects_raises_from_recv(client: Client) -> None:
    with WebsocketsServer(send_then_close(LOADS_MESSAGES)) as server:
        client.open(server.url(), loads=json.loads)
        assert client.recv() == {"a": 1}
        with pytest.raises(MessageDecodeError) as info:
            client.recv()
        assert info.value.payload == b"not json"
        assert client.recv() == [2]  # the connection is still usable
        assert client.stats().decode_errors == 1


@pytest.mark.frontends("threaded", "inline")
def test_a_message_loads_rejects_is_logged_and_skipped_by_callbacks(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with WebsocketsServer(send_then_close(LOADS_MESSAGES)) as server, caplog.at_level(logging.ERROR):
        client.open(server.url(), loads=json.loads)
        assert client.recv_many(2) == [{"a": 1}, [2]]
        assert client.stats().decode_errors == 1
    logged = [r for r in caplog.records if r.name == "wsfast" and r.levelno >= logging.ERROR]
    assert any("loads" in r.getMessage() for r in logged), logged


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
