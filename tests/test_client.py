"""The threaded WebSocketClient's own behaviour against real servers on 127.0.0.1 (see ``servers.py``):
on_close and the event thread, raw_hook, the log hooks, callbacks that send, disconnect or reconnect,
blocking timeouts, redirects and handshake refusals.

Behaviour every front-end shares (messages, PINGs, closing, the handshake, TLS, proxies, misuse) is
tested once, on every front-end, in the contract suite (tests/contract).

Every test runs on both codec twins (``codec_impl``, passed as ``implementation=``). Every wait has a
timeout, so a hang or a deadlock fails the test instead of blocking the suite.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import logging
import re
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wsfast
from servers import (
    BAD_FROM_SERVER,
    BINARY,
    CLOSE,
    ESTABLISHED,
    ESTABLISHED_WITH_LENGTH,
    PING,
    PONG,
    TEXT,
    AiohttpServer,
    ConnectProxy,
    RawConnection,
    RawServer,
    WebsocketsServer,
    accept_then,
    close_with,
    echo,
    headers_json,
    redirect_response,
    reply,
    send_messages,
    send_then_close,
    server_close,
    server_frame,
    tls_certs,
)
from wsfast.client import DEFAULT_USER_AGENT, FrameAction, WebSocketClient
from wsfast.exceptions import (
    ConnectionClosed,
    HandshakeError,
    InvalidHeader,
    InvalidHTTP,
    InvalidStatus,
    InvalidURL,
    TooManyRedirects,
)
from wsfast.frames import Close, Opcode, Ping, Pong

pytest_plugins = ["conftest_client"]
pytestmark = pytest.mark.usefixtures("codec_impl")

WAIT = 10.0  # seconds: the bound on every wait; a correct client needs far less


# --------------------------------------------------------------------------------------------------
# Recording callbacks
# --------------------------------------------------------------------------------------------------


class Recorder:
    """Records every callback in order, with the name of the thread it ran on."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.threads: list[str] = []
        self._cond = threading.Condition()

    def _add(self, *event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self.threads.append(threading.current_thread().name)
            self._cond.notify_all()

    def on_message(self, message: Any) -> None:
        self._add("message", message)

    def on_close(self, code: int, reason: str) -> None:
        self._add("close", code, reason)

    def on_ping(self, payload: bytes) -> None:
        self._add("ping", payload)

    def on_pong(self, payload: bytes) -> None:
        self._add("pong", payload)

    def wait_for(self, predicate: Callable[[list[tuple[Any, ...]]], bool], timeout: float = WAIT) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate(self.events), timeout)
            assert ok, f"timed out after {timeout} s; events so far: {self.events!r}"[:2000]

    @property
    def messages(self) -> list[Any]:
        with self._cond:
            return [event[1] for event in self.events if event[0] == "message"]

    @property
    def closes(self) -> list[tuple[int, str]]:
        with self._cond:
            return [(event[1], event[2]) for event in self.events if event[0] == "close"]

    def wait_messages(self, count: int, timeout: float = WAIT) -> list[Any]:
        self.wait_for(lambda events: sum(e[0] == "message" for e in events) >= count, timeout)
        return self.messages

    def wait_closed(self, count: int = 1, timeout: float = WAIT) -> tuple[int, str]:
        self.wait_for(lambda events: sum(e[0] == "close" for e in events) >= count, timeout)
        return self.closes[-1]

    def assert_closed_once(self, code: int | None = None, timeout: float = WAIT) -> tuple[int, str]:
        """on_close ran exactly once, last, on the event thread (with *code*, if given)."""
        self.wait_closed(timeout=timeout)
        time.sleep(0.05)  # a second notification or a late callback would show up here
        with self._cond:
            closes = [e for e in self.events if e[0] == "close"]
            assert len(closes) == 1, f"on_close ran {len(closes)} times: {self.events!r}"
            assert self.events[-1][0] == "close", f"on_close was not last: {self.events!r}"
            assert self.threads[-1].startswith("wsfast-"), self.threads[-1]
            result = (closes[0][1], closes[0][2])
        if code is not None:
            assert result[0] == code, f"on_close{result!r}, expected code {code}"
        return result


Maker = Callable[..., tuple[WebSocketClient, Recorder]]


@pytest.fixture
def make_client(codec_impl: types.SimpleNamespace) -> Iterator[Maker]:
    """``make_client(url, **options) -> (client, recorder)``; callbacks default to the recorder's."""
    clients: list[WebSocketClient] = []

    def make(url: str, **kwargs: Any) -> tuple[WebSocketClient, Recorder]:
        recorder = Recorder()
        callback = kwargs.pop("callback", recorder.on_message)
        kwargs.setdefault("on_close", recorder.on_close)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("close_timeout", 5.0)
        client = WebSocketClient(callback, url, **kwargs, implementation=codec_impl.name)
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:  # a safety net: tests close their clients themselves
        closer = threading.Thread(target=client.disconnect, kwargs={"timeout": 1.0}, daemon=True)
        closer.start()
        closer.join(3.0)
        if not closer.is_alive():
            client.wait(3.0)


def run_with_timeout(function: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Run *function* in a helper thread; fail (instead of hanging) if it does not return in time."""
    result: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(function())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{function!r} did not return within {timeout} s (deadlock?)"
    if errors:
        raise errors[0]
    return result[0] if result else None


def data_frames(conn: RawConnection) -> list[tuple[int, bytes]]:
    return [(f.opcode, f.payload) for f in conn.frames]


# --------------------------------------------------------------------------------------------------
# Basics against the websockets server
# --------------------------------------------------------------------------------------------------


def test_package_exports_websocketclient() -> None:
    assert wsfast.WebSocketClient is WebSocketClient  # type: ignore[attr-defined]


def test_connection_state_and_the_event_thread(make_client: Maker) -> None:
    """connect() returns the response; callbacks run on the event thread; on_close once, last. (The echo
    itself is a contract test: tests/contract/test_contract_messages.py.)"""
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url("/echo?x=1"))
        assert client.connection_id == -1
        assert not client.is_open
        response = client.connect()
        assert client.response is response
        assert client.is_open
        assert client.connection_id > 0
        client.send("héllo ☃")
        client.send(b"\x00\x01\xff")
        assert rec.wait_messages(2) == ["héllo ☃", b"\x00\x01\xff"]
        assert all(name.startswith("wsfast-") for name in rec.threads)
        assert threading.current_thread().name not in rec.threads
        client.disconnect()
        assert not client.is_open
        rec.assert_closed_once(1000)
        assert server.wait_closes(1) == [(1000, "")]


def test_tcp_nodelay_set(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, _ = make_client(server.url())
        client.connect()
        sock = client._sock
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        client.disconnect()


# --------------------------------------------------------------------------------------------------
# Raw hook
# --------------------------------------------------------------------------------------------------


def test_raw_hook_sees_every_event_before_processing(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept(
            server_frame(TEXT, "a")
            + server_frame(PING, b"p")
            + server_frame(PONG, b"q")
            + server_frame(BINARY, b"b")
            + server_close(1000, "bye")
        )
        conn.read_until_close()

    with RawServer(handler) as server:
        rec = Recorder()

        def hook(event: Any) -> FrameAction:
            rec._add("hook", event)
            return FrameAction.PROCESS

        client, _ = make_client(
            server.url(), callback=rec.on_message, on_close=rec.on_close, on_pong=rec.on_pong, raw_hook=hook
        )
        client.connect()
        rec.assert_closed_once(1000)
        hooked = [e[1] for e in rec.events if e[0] == "hook"]
        assert hooked == ["a", Ping(b"p"), Pong(b"q"), b"b", Close(1000, "bye")]  # every event, in wire order
        assert [e for e in rec.events if e[0] != "hook"] == [
            ("message", "a"),
            ("pong", b"q"),
            ("message", b"b"),
            ("close", 1000, "bye"),
        ]
        # Each event reaches the hook before it is processed.
        events = rec.events
        assert events.index(("hook", "a")) < events.index(("message", "a"))
        assert events.index(("hook", Pong(b"q"))) < events.index(("pong", b"q"))
        assert events.index(("hook", b"b")) < events.index(("message", b"b"))
        assert events.index(("hook", Close(1000, "bye"))) < events.index(("close", 1000, "bye"))
        server.wait_finished(1)
        assert [op for op, _ in data_frames(server.connections[0])] == [PONG, CLOSE]


@pytest.mark.parametrize("result", [None, 0, FrameAction.PROCESS])
def test_raw_hook_process_values(make_client: Maker, result: Any) -> None:
    with WebsocketsServer(send_messages(3)) as server:
        client, rec = make_client(server.url(), raw_hook=lambda event: result)
        client.connect()
        rec.assert_closed_once(1000)
        assert rec.messages == ["message 0", "message 1", "message 2"]


def test_raw_hook_skip(make_client: Maker) -> None:
    with WebsocketsServer(send_then_close(["a", "skip me", b"skip me too", "b"])) as server:

        def hook(event: Any) -> FrameAction:
            return FrameAction.SKIP if event in ("skip me", b"skip me too") else FrameAction.PROCESS

        client, rec = make_client(server.url(), raw_hook=hook)
        client.connect()
        rec.assert_closed_once(1000)
        assert rec.messages == ["a", "b"]


def test_raw_hook_stop(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept(server_frame(TEXT, "a") + server_frame(TEXT, "stop") + server_frame(TEXT, "b"))
        conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client, rec = make_client(
            server.url(), raw_hook=lambda e: FrameAction.STOP if e == "stop" else FrameAction.PROCESS
        )
        client.connect()
        rec.assert_closed_once(1000)
        assert rec.messages == ["a"]
        server.wait_finished(1)
        frames = server.connections[0].frames
        assert [f.opcode for f in frames] == [CLOSE]
        assert frames[0].close_code == 1000


def test_raw_hook_skip_ping_sends_no_pong(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept(server_frame(PING, b"skip") + server_frame(TEXT, "after"))
        conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client, rec = make_client(
            server.url(), raw_hook=lambda e: FrameAction.SKIP if isinstance(e, Ping) else FrameAction.PROCESS
        )
        client.connect()
        assert rec.wait_messages(1) == ["after"]
        client.disconnect()
        rec.assert_closed_once(1000)
        server.wait_finished(1)
        assert [op for op, _ in data_frames(server.connections[0])] == [CLOSE]


# --------------------------------------------------------------------------------------------------
# Handshake options seen by the server
# --------------------------------------------------------------------------------------------------


def request_seen(rec: Recorder) -> dict[str, Any]:
    info = json.loads(rec.wait_messages(1)[0])
    info["lower"] = {}
    for name, value in info["headers"]:
        info["lower"].setdefault(name.lower(), []).append(value)
    return info


def test_default_user_agent_and_none(make_client: Maker) -> None:
    with WebsocketsServer(headers_json) as server:
        client, rec = make_client(server.url())
        client.connect()
        assert request_seen(rec)["lower"]["user-agent"] == [DEFAULT_USER_AGENT]
        assert DEFAULT_USER_AGENT.startswith("wsfast/")
        client.disconnect()
        client, rec = make_client(server.url(), user_agent=None)
        client.connect()
        assert "user-agent" not in request_seen(rec)["lower"]
        client.disconnect()


def test_token_type(make_client: Maker) -> None:
    with WebsocketsServer(headers_json) as server:
        client, rec = make_client(server.url(), token="abc", token_type="Token")
        client.connect()
        assert request_seen(rec)["lower"]["authorization"] == ["Token abc"]
        client.disconnect()


def test_token_does_not_override_caller_authorization(make_client: Maker) -> None:
    with WebsocketsServer(headers_json) as server:
        client, rec = make_client(server.url(), token="abc", headers={"authorization": "Custom mine"})
        client.connect()
        assert request_seen(rec)["lower"]["authorization"] == ["Custom mine"]
        client.disconnect()


def test_basic_auth_from_url(make_client: Maker) -> None:
    with WebsocketsServer(headers_json) as server:
        url = f"ws://al%40ice:p%3Ass@127.0.0.1:{server.port}/"
        client, rec = make_client(url)
        client.connect()
        expected = "Basic " + base64.b64encode(b"al@ice:p:ss").decode()
        assert request_seen(rec)["lower"]["authorization"] == [expected]
        assert "p:ss" not in repr(client)
        client.disconnect()


# --------------------------------------------------------------------------------------------------
# aiohttp server
# --------------------------------------------------------------------------------------------------


def test_aiohttp_redirect_loop(make_client: Maker) -> None:
    with AiohttpServer() as server:
        client, rec = make_client(server.url("/redirect-loop"), max_redirects=3)
        with pytest.raises(TooManyRedirects) as info:
            client.connect()
        assert info.value.status == 302
        assert server.hits == ["/redirect-loop"] * 4
        assert not client.is_open
        assert rec.events == []


# --------------------------------------------------------------------------------------------------
# Proxy (the tests' own CONNECT proxy: its reply variants; real proxies are in tests/contract)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs() -> types.SimpleNamespace:
    return tls_certs("localhost", "127.0.0.1")


PROXY_REPLIES = [
    pytest.param(ESTABLISHED, id="bare-200"),  # the usual answer: no headers at all
    pytest.param(ESTABLISHED_WITH_LENGTH, id="200-content-length-0"),
]


@pytest.mark.parametrize("established", PROXY_REPLIES)
def test_proxy_without_auth(make_client: Maker, established: bytes) -> None:
    with WebsocketsServer(echo) as server, ConnectProxy(established=established) as proxy:
        client, rec = make_client(server.url(), proxy=proxy.url(), timeout=1.0)
        client.connect()
        client.send("through the tunnel")
        assert rec.wait_messages(1) == ["through the tunnel"]
        assert proxy.tunnels == 1
        assert proxy.targets == [f"127.0.0.1:{server.port}"]
        assert b"Proxy-Authorization" not in proxy.requests[0]
        client.disconnect()
        rec.assert_closed_once(1000)


@pytest.mark.parametrize("established", PROXY_REPLIES)
def test_proxy_with_auth(make_client: Maker, established: bytes) -> None:
    with (
        WebsocketsServer(echo) as server,
        ConnectProxy(auth=("pu", "p@ss"), established=established) as proxy,
    ):
        url = f"http://pu:p%40ss@127.0.0.1:{proxy.port}"
        client, rec = make_client(server.url(), proxy=url, timeout=1.0)
        client.connect()
        client.send("authenticated")
        assert rec.wait_messages(1) == ["authenticated"]
        assert (proxy.tunnels, proxy.refused) == (1, 0)
        client.disconnect()
        rec.assert_closed_once(1000)


@pytest.mark.parametrize("credentials", ["", "pu:wrong@"])
def test_proxy_auth_required(make_client: Maker, credentials: str) -> None:
    with WebsocketsServer(echo) as server, ConnectProxy(auth=("pu", "secret")) as proxy:
        client, rec = make_client(server.url(), proxy=f"http://{credentials}127.0.0.1:{proxy.port}")
        with pytest.raises(HandshakeError) as info:
            client.connect()
        assert info.value.status == 407
        assert (proxy.tunnels, proxy.refused) == (0, 1)
        assert not client.is_open
        assert rec.events == []


@pytest.mark.parametrize("established", PROXY_REPLIES)
def test_proxy_with_tls(make_client: Maker, certs: types.SimpleNamespace, established: bytes) -> None:
    with (
        WebsocketsServer(echo, ssl_context=certs.server_context) as server,
        ConnectProxy(established=established) as proxy,
    ):
        client, rec = make_client(
            server.url(host="localhost"), proxy=proxy.url(), ssl=certs.client_context, timeout=1.0
        )
        client.connect()
        client.send("tls in tunnel")
        assert rec.wait_messages(1) == ["tls in tunnel"]
        assert proxy.targets == [f"localhost:{server.port}"]
        client.disconnect()


# --------------------------------------------------------------------------------------------------
# Handshake failures against the raw server
# --------------------------------------------------------------------------------------------------


def test_bad_accept(make_client: Maker) -> None:
    with RawServer(accept_then(accept="s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", then="eof")) as server:
        client, rec = make_client(server.url())
        with pytest.raises(InvalidHeader) as info:
            client.connect()
        assert info.value.status == 101
        assert not client.is_open
        assert rec.events == []


def test_missing_upgrade(make_client: Maker) -> None:
    with RawServer(accept_then(upgrade=None, then="eof")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidHeader):
            client.connect()


def test_missing_connection(make_client: Maker) -> None:
    with RawServer(accept_then(connection=None, then="eof")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidHeader):
            client.connect()


def test_unoffered_subprotocol(make_client: Maker) -> None:
    with RawServer(accept_then(extra_headers=[("Sec-WebSocket-Protocol", "evil")], then="eof")) as server:
        client, _ = make_client(server.url(), subprotocols=["good"])
        with pytest.raises(InvalidHeader):
            client.connect()


def test_unoffered_extension(make_client: Maker) -> None:
    extra = [("Sec-WebSocket-Extensions", "permessage-deflate")]
    with RawServer(accept_then(extra_headers=extra, then="eof")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidHeader):
            client.connect()
        request = server.connections[0].request
        assert b"sec-websocket-extensions" not in request.lower()


def test_status_403_with_body(make_client: Maker) -> None:
    body = b'{"error": "invalid api key"}'
    response = (
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with RawServer(reply(response, then="hang")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidStatus) as info:
            client.connect()
        assert info.value.status == 403
        assert info.value.body == body
        assert info.value.headers["content-type"] == "application/json"


def test_status_500_chunked(make_client: Maker) -> None:
    response = b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nboom\r\n0\r\n\r\n"
    with RawServer(reply(response, then="hang")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidStatus) as info:
            client.connect()
        assert (info.value.status, info.value.body) == (500, b"boom")


def test_status_with_body_until_eof(make_client: Maker) -> None:
    with RawServer(reply(b"HTTP/1.1 429 Too Many Requests\r\n\r\nslow down")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidStatus) as info:
            client.connect()
        assert (info.value.status, info.value.body) == (429, b"slow down")


def test_eof_before_response(make_client: Maker) -> None:
    with RawServer(reply(b"HTTP/1.1 101 Switching")) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidHTTP):
            client.connect()


def test_response_that_never_ends(make_client: Maker) -> None:
    with RawServer(
        reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", then="hang")
    ) as server:
        client, _ = make_client(server.url(), open_timeout=0.5)  # open_timeout bounds the whole opening
        started = time.monotonic()
        with pytest.raises(wsfast.OpenTimeout):
            client.connect()
        assert time.monotonic() - started < 5
        assert not client.is_open


def test_handshake_deadline_against_a_slow_drip(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        response = b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Drip: " + b"a" * 100
        for byte in response:
            try:
                conn.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.05)

    with RawServer(handler) as server:
        client, _ = make_client(server.url(), open_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(wsfast.OpenTimeout):
            client.connect()
        assert time.monotonic() - started < 3  # one deadline for the response, not one per read


def test_connect_timeout_bounds_the_tls_handshake(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:  # accepts TCP, never speaks TLS
        while conn._fill():
            pass

    with RawServer(handler) as server:
        client, _ = make_client(server.url(scheme="wss"), timeout=5.0, connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.connect()
        assert time.monotonic() - started < 2.5


def test_redirect_chain(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        if conn.index == 0:
            conn.send(redirect_response("/second?x=1", "301 Moved Permanently"))
        elif conn.index == 1:
            conn.send(
                redirect_response(f"http://127.0.0.1:{conn.sock.getsockname()[1]}/third", "307 Temporary")
            )
        else:
            conn.accept(server_frame(TEXT, "made it"))
            conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client, rec = make_client(server.url("/first"), token="t")
        client.connect()
        assert rec.wait_messages(1) == ["made it"]
        lines = [c.request_line for c in server.connections]
        assert lines == ["GET /first HTTP/1.1", "GET /second?x=1 HTTP/1.1", "GET /third HTTP/1.1"]
        for conn in server.connections:
            assert conn.header("Authorization") == "Bearer t"
            assert conn.header("Sec-WebSocket-Version") == "13"
        client.disconnect()
        rec.assert_closed_once(1000)


def test_url_credentials_survive_same_origin_redirect(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        if conn.index == 0:
            conn.send(redirect_response("/moved"))
        else:
            conn.accept()
            conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client, rec = make_client(f"ws://user:pw@127.0.0.1:{server.port}/a")
        client.connect()
        client.disconnect()
        rec.assert_closed_once(1000)
        server.wait_finished(2)
        expected = "Basic " + base64.b64encode(b"user:pw").decode()
        assert [c.header("Authorization") for c in server.connections] == [expected, expected]


@pytest.mark.parametrize(
    "url_credentials", [pytest.param(True, id="url-userinfo"), pytest.param(False, id="token-and-headers")]
)
def test_credentials_never_follow_a_redirect_to_another_origin(
    make_client: Maker, url_credentials: bool
) -> None:
    with RawServer(accept_then()) as target:

        def redirector(conn: RawConnection) -> None:
            conn.read_request()
            conn.send(redirect_response(target.url("/elsewhere")))

        with RawServer(redirector) as origin:
            if url_credentials:
                client, rec = make_client(f"ws://user:pw@127.0.0.1:{origin.port}/a")
            else:
                client, rec = make_client(
                    origin.url("/a"), token="t0ken", headers={"Cookie": "session=1", "X-Keep": "yes"}
                )
            client.connect()
            client.disconnect()
            rec.assert_closed_once(1000)
            origin.wait_finished(1)
            target.wait_finished(1)
            assert origin.connections[0].header("Authorization") is not None
            moved = target.connections[0]
            assert moved.header("Authorization") is None
            assert moved.header("Cookie") is None
            if not url_credentials:
                assert moved.header("X-Keep") == "yes"


def test_connect_headers_apply_to_one_connection(make_client: Maker) -> None:
    with RawServer(accept_then()) as server:
        client, _ = make_client(server.url(), headers={"X-Always": "1"})
        client.connect(headers={"X-Once": "2"})
        client.disconnect()
        client.connect()
        client.disconnect()
        server.wait_finished(2)
        first, second = server.connections
        assert (first.header("X-Always"), first.header("X-Once")) == ("1", "2")
        assert (second.header("X-Always"), second.header("X-Once")) == ("1", None)


def test_redirect_loop(make_client: Maker) -> None:
    with RawServer(reply(redirect_response("/again"))) as server:
        client, _ = make_client(server.url(), max_redirects=2)
        with pytest.raises(TooManyRedirects) as info:
            client.connect()
        assert info.value.status == 302
        server.wait_finished(3)
        assert len(server.connections) == 3


def test_no_redirects_allowed(make_client: Maker) -> None:
    with RawServer(reply(redirect_response("/again"))) as server:
        client, _ = make_client(server.url(), max_redirects=0)
        with pytest.raises(TooManyRedirects):
            client.connect()
        assert len(server.connections) == 1


def test_redirect_to_other_scheme_refused(make_client: Maker) -> None:
    with RawServer(reply(redirect_response("ftp://127.0.0.1/x"))) as server:
        client, _ = make_client(server.url())
        with pytest.raises(InvalidURL):
            client.connect()


def test_non_callable_callbacks_rejected(codec_impl: types.SimpleNamespace) -> None:
    with pytest.raises(TypeError):
        WebSocketClient("not callable", "ws://127.0.0.1/", implementation=codec_impl.name)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        WebSocketClient(None, "ws://127.0.0.1/", on_close=42, implementation=codec_impl.name)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Close paths: on_close exactly once and last
# --------------------------------------------------------------------------------------------------


def test_server_empty_close(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept(server_frame(TEXT, "x") + server_close(None))
        conn.read_until_close()

    with RawServer(handler) as server:
        client, rec = make_client(server.url())
        client.connect()
        assert rec.assert_closed_once() == (1005, "")
        server.wait_finished(1)
        ((opcode, payload),) = data_frames(server.connections[0])
        assert (opcode, payload) == (CLOSE, b"")  # an empty CLOSE answers an empty CLOSE


def test_messages_in_the_same_segment_as_close(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept(server_frame(TEXT, "a") + server_frame(TEXT, "b") + server_close(1001, "bye"))
        conn.read_until_close()

    with RawServer(handler) as server:
        client, rec = make_client(server.url())
        client.connect()
        assert rec.assert_closed_once() == (1001, "bye")
        assert rec.messages == ["a", "b"]


def test_disconnect_before_connect_is_harmless(make_client: Maker) -> None:
    client, rec = make_client("ws://127.0.0.1:9/")
    client.disconnect()
    assert client.wait(0)
    assert rec.events == []


def test_disconnect_invalid_code(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url())
        client.connect()
        for code in (1005, 1006, 999, 5000):
            with pytest.raises(ValueError):  # noqa: PT011
                client.disconnect(code)
        with pytest.raises(ValueError):  # noqa: PT011
            client.disconnect(1000, "r" * 124)
        assert client.is_open
        client.send("still open")
        assert rec.wait_messages(1) == ["still open"]
        client.disconnect()
        rec.assert_closed_once(1000)


def test_disconnect_when_server_never_answers(make_client: Maker) -> None:
    with RawServer(accept_then(then="read")) as server:
        client, rec = make_client(server.url())
        client.connect()
        started = time.monotonic()
        client.disconnect(timeout=0.5)
        assert time.monotonic() - started < 3
        assert not client.is_open
        rec.assert_closed_once(1006)
        server.wait_finished(1)
        frames = server.connections[0].frames
        assert [f.opcode for f in frames] == [CLOSE]
        assert frames[0].close_code == 1000


@pytest.mark.parametrize(
    "raw_hook",
    [pytest.param(False, id="no-hook"), pytest.param(True, id="with-hook")],
)
@pytest.mark.parametrize("name", ["invalid utf-8"])
def test_client_closes_tcp_after_failing(make_client: Maker, name: str, raw_hook: bool) -> None:
    bad, code = BAD_FROM_SERVER[name]
    # The server keeps reading until the client ends TCP: it never closes first.
    with RawServer(accept_then(server_frame(TEXT, "good") + bad, then="read")) as server:
        options: dict[str, Any] = {"raw_hook": lambda event: None} if raw_hook else {}
        client, rec = make_client(server.url(), max_message_size=1000, close_timeout=5.0, **options)
        client.connect()
        assert rec.assert_closed_once(timeout=2.0)[0] == code
        server.wait_finished(1, timeout=2.0)
        assert server.connections[0].eof
        assert [(f.opcode, f.close_code) for f in server.connections[0].frames] == [(CLOSE, code)]


def test_state_seen_from_callbacks(make_client: Maker) -> None:
    seen: list[tuple[str, bool, int | None]] = []
    holder: list[WebSocketClient] = []
    rec = Recorder()

    def callback(message: Any) -> None:
        seen.append(("message", holder[0].is_open, holder[0].close_code))
        rec.on_message(message)
        holder[0].send("bye")

    def on_close(code: int, reason: str) -> None:
        seen.append(("close", holder[0].is_open, holder[0].close_code))
        rec.on_close(code, reason)

    async def handler(ws: Any) -> None:
        await ws.send("hi")
        await ws.recv()
        await ws.close(4005)

    with WebsocketsServer(handler) as server:
        client, _ = make_client(server.url(), callback=callback, on_close=on_close)
        holder.append(client)
        client.connect()
        rec.assert_closed_once(4005)
    assert seen == [("message", True, None), ("close", False, 4005)]


@pytest.mark.parametrize("limit", [1000, 70_000])
def test_max_message_size_boundary(make_client: Maker, limit: int) -> None:
    after = server_frame(BINARY, b"x" * limit) + server_frame(TEXT, "y" * (limit + 1))
    with RawServer(accept_then(after)) as server:
        client, rec = make_client(server.url(), max_message_size=limit)
        client.connect()
        rec.assert_closed_once(1009)
        assert rec.messages == [b"x" * limit]


def test_ping_timeout_and_connection_end(make_client: Maker) -> None:
    """ping(timeout=) (threaded only: it blocks): a timeout leaves the connection open; disconnect() ends
    a waiting ping() with ConnectionClosed."""

    def hold_open(conn: RawConnection) -> None:  # reads nothing: no PONG, no closing handshake
        conn.accept()
        conn.stopping.wait(WAIT)

    with RawServer(hold_open) as server:
        client, _ = make_client(server.url(), ping_interval=None, close_timeout=0.3)
        client.connect()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no PONG within 0\.2 s"):
            client.ping(timeout=0.2)
        assert 0.2 <= time.monotonic() - started < WAIT
        assert client.is_open  # a ping timeout does not end the connection
        with concurrent.futures.ThreadPoolExecutor(1) as pinger:
            pending = pinger.submit(client.ping, b"lost")
            time.sleep(0.1)
            client.disconnect()
            with pytest.raises(ConnectionClosed):
                pending.result(WAIT)
        with pytest.raises(ConnectionClosed):
            client.ping()


def test_send_timeout_fails_the_connection(make_client: Maker) -> None:
    release = threading.Event()

    def handler(conn: RawConnection) -> None:
        conn.accept()
        release.wait(WAIT)  # does not read: the client's send buffer fills up
        conn.read_until_eof()

    with RawServer(handler) as server:
        client, rec = make_client(server.url(), timeout=0.5)
        client.connect()
        try:
            with pytest.raises(ConnectionClosed):  # noqa: PT012 - whichever send fills the buffers
                for _ in range(64):
                    client.send(b"x" * (4 << 20))
            assert rec.assert_closed_once(timeout=2.0)[0] == 1006
            assert not client.is_open
            with pytest.raises(ConnectionClosed):
                client.send(b"after the failure")
        finally:
            release.set()


def test_tcp_reset(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept(server_frame(TEXT, "before reset"))
        assert conn.read_frame() is not None  # the client's "go" message
        conn.reset()

    with RawServer(handler) as server:
        client, rec = make_client(server.url())
        client.connect()
        rec.wait_messages(1)
        client.send("go")
        assert rec.assert_closed_once()[0] == 1006


def test_server_stops(make_client: Maker) -> None:
    server = WebsocketsServer(echo)
    with server:
        client, rec = make_client(server.url())
        client.connect()
    # Stopping the server closes its connections with 1001 (going away).
    assert rec.assert_closed_once()[0] == 1001


# --------------------------------------------------------------------------------------------------
# Callbacks: exceptions, sending and disconnecting from the event thread
# --------------------------------------------------------------------------------------------------


def test_callback_exceptions_do_not_kill_the_thread(
    make_client: Maker, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def callback(message: Any) -> None:
        rec.on_message(message)
        raise RuntimeError(f"callback failed on {message!r}")

    def on_pong(payload: bytes) -> None:
        raise RuntimeError("on_pong failed")

    def hook(event: Any) -> FrameAction:
        raise RuntimeError("raw hook failed")  # treated as PROCESS

    def on_close(code: int, reason: str) -> None:
        rec.on_close(code, reason)
        raise RuntimeError("on_close failed")

    errors: list[str] = []
    with caplog.at_level(logging.ERROR, logger="wsfast"), WebsocketsServer(echo) as server:
        client, _ = make_client(
            server.url(),
            callback=callback,
            on_close=on_close,
            on_pong=on_pong,
            raw_hook=hook,
            errlog=errors.append,
        )
        client.connect()
        client.ping(b"p")
        for i in range(3):
            client.send(f"m{i}")
        assert rec.wait_messages(3) == ["m0", "m1", "m2"]
        assert client.is_open
        client.disconnect()
        rec.assert_closed_once(1000)
        assert client.wait(WAIT)
    assert any("callback failed on 'm0'" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    assert any("on_close" in r.getMessage() for r in caplog.records)
    assert errors, "errlog received nothing about the failing callbacks"


def test_send_from_callback(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []

        def callback(message: Any) -> None:
            rec.on_message(message)
            if message == "first":
                holder[0].send("second")
                holder[0].send(b"third")
                holder[0].send_frame(b"from callback", Opcode.PING)  # ping() would wait for itself

        client, _ = make_client(server.url(), callback=callback, on_close=rec.on_close)
        holder.append(client)
        client.connect()
        client.send("first")
        assert rec.wait_messages(3) == ["first", "second", b"third"]
        client.disconnect()
        rec.assert_closed_once(1000)


def test_disconnect_from_callback(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []
        elapsed: list[float] = []

        def callback(message: Any) -> None:
            rec.on_message(message)
            started = time.monotonic()
            holder[0].disconnect(4002, "from callback")
            elapsed.append(time.monotonic() - started)

        client, _ = make_client(server.url(), callback=callback, on_close=rec.on_close)
        holder.append(client)
        client.connect()
        client.send("please leave")
        assert rec.assert_closed_once()[0] == 4002
        assert len(elapsed) == 1
        assert elapsed[0] < 1.0
        assert client.wait(WAIT)
        assert server.wait_closes(1) == [(4002, "from callback")]


def test_disconnect_from_on_close(make_client: Maker) -> None:
    with WebsocketsServer(close_with(1001)) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []

        def on_close(code: int, reason: str) -> None:
            holder[0].disconnect()
            rec.on_close(code, reason)

        client, _ = make_client(server.url(), callback=rec.on_message, on_close=on_close)
        holder.append(client)
        client.connect()
        rec.assert_closed_once(1001)
        assert client.wait(WAIT)


def test_wait_from_callback_raises(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []
        raised: list[BaseException] = []

        def callback(message: Any) -> None:
            try:
                holder[0].wait(1.0)
            except RuntimeError as exc:
                raised.append(exc)
            rec.on_message(message)

        client, _ = make_client(server.url(), callback=callback, on_close=rec.on_close)
        holder.append(client)
        client.connect()
        client.send("x")
        rec.wait_messages(1)
        assert len(raised) == 1
        client.disconnect()


def test_disconnect_from_callback_while_another_thread_disconnects(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept()
        conn.read_until_close()  # the main thread's disconnect()
        conn.send(server_frame(TEXT, "late message"))  # its callback calls disconnect() too
        time.sleep(0.3)
        conn.send(server_close(1000))
        conn.read_until_eof()

    with RawServer(handler) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []

        def callback(message: Any) -> None:
            rec.on_message(message)
            holder[0].disconnect()

        client, _ = make_client(server.url(), callback=callback, on_close=rec.on_close, close_timeout=0.5)
        holder.append(client)
        client.connect()
        run_with_timeout(client.disconnect, timeout=5.0)
        rec.assert_closed_once(1000)


# --------------------------------------------------------------------------------------------------
# Concurrent senders
# --------------------------------------------------------------------------------------------------

SIZES = [0, 1, 125, 126, 1000, 65535, 65536, 100_000]
THREADS = 8
PER_THREAD = 40


def expected_payload(thread: int, index: int) -> tuple[int, bytes]:
    size = SIZES[(thread + index) % len(SIZES)]
    prefix = f"T{thread}:{index}:{size}|".encode()
    if index % 2:
        return BINARY, prefix + bytes([thread]) * size
    return TEXT, prefix + chr(ord("a") + thread).encode() * size


def test_concurrent_senders_never_interleave(make_client: Maker) -> None:
    problems: list[str] = []
    seen: dict[int, int] = {t: 0 for t in range(THREADS)}
    pongs: list[bytes] = []

    def handler(conn: RawConnection) -> None:
        conn.accept()
        stop = threading.Event()

        def pinger() -> None:  # the event thread's automatic PONGs compete with the senders
            for i in range(100):
                if stop.is_set():
                    return
                with contextlib.suppress(OSError):
                    conn.send(server_frame(PING, f"ping {i}".encode()))
                time.sleep(0.002)

        thread = threading.Thread(target=pinger, daemon=True)
        thread.start()
        while (frame := conn.read_frame()) is not None:
            if frame.opcode == CLOSE:
                break
            if frame.opcode == PONG:
                pongs.append(frame.payload)
                continue
            if not (frame.fin and frame.masked and frame.rsv == 0 and frame.opcode in (TEXT, BINARY)):
                problems.append(f"bad frame header {frame!r:.200}")
                break
            match = re.match(rb"T(\d+):(\d+):(\d+)\|", frame.payload)
            if match is None:
                problems.append(f"garbled payload {frame.payload[:80]!r}")
                break
            t, i = int(match[1]), int(match[2])
            if i != seen.get(t):
                problems.append(f"thread {t}: message {i} arrived, expected {seen.get(t)}")
            if (frame.opcode, frame.payload) != expected_payload(t, i):
                problems.append(f"thread {t}: message {i} corrupted")
            seen[t] = i + 1
        stop.set()
        thread.join(WAIT)
        conn.send(server_close(1000))

    with RawServer(handler) as server:
        client, rec = make_client(server.url())
        client.connect()
        barrier = threading.Barrier(THREADS)
        send_errors: list[BaseException] = []

        def sender(t: int) -> None:
            try:
                barrier.wait(WAIT)
                for i in range(PER_THREAD):
                    opcode, payload = expected_payload(t, i)
                    client.send(payload.decode() if opcode == TEXT else payload)
            except BaseException as exc:
                send_errors.append(exc)

        threads = [threading.Thread(target=sender, args=(t,), daemon=True) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive(), "a sender thread is stuck"
        assert send_errors == []
        client.disconnect()
        rec.assert_closed_once(1000)
        server.wait_finished(1)
    assert problems == []
    assert seen == {t: PER_THREAD for t in range(THREADS)}
    assert all(p.startswith(b"ping ") for p in pongs)


# --------------------------------------------------------------------------------------------------
# Reconnecting
# --------------------------------------------------------------------------------------------------


def test_reconnect_after_close(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url())
        client.connect()
        first_id = client.connection_id
        client.disconnect()
        rec.wait_closed(1)
        assert client.close_code == 1000
        client.connect()
        assert client.connection_id > first_id
        assert client.is_open
        assert client.close_code is None
        client.send("again")
        assert rec.wait_messages(1) == ["again"]
        client.disconnect()
        rec.wait_closed(2)
        assert rec.closes == [(1000, ""), (1000, "")]
        assert server.wait_closes(2) == [(1000, ""), (1000, "")]


def test_reconnect_after_protocol_error_has_fresh_state(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        if conn.index == 0:
            conn.accept(server_frame(TEXT, b"\xff"))  # invalid UTF-8: the client fails with 1007
            conn.finish_closing_handshake()
        else:
            conn.accept(server_frame(TEXT, "fresh"))
            conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client, rec = make_client(server.url())
        client.connect()
        assert rec.wait_closed(1)[0] == 1007
        assert client.close_code == 1007
        client.connect()
        assert rec.wait_messages(1) == ["fresh"]
        assert client.is_open
        assert client.close_code is None
        client.send("works")
        client.disconnect()
        assert rec.wait_closed(2) == (1000, "")
        server.wait_finished(2)
        assert data_frames(server.connections[1])[0] == (TEXT, b"works")


def test_connect_while_open_closes_old_connection_with_1001(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url())
        client.connect()
        first_id = client.connection_id
        client.connect()
        assert client.connection_id > first_id
        assert rec.wait_closed(1)[0] == 1001
        assert server.wait_closes(1) == [(1001, "")]
        assert client.is_open
        client.send("second connection")
        assert rec.wait_messages(1) == ["second connection"]
        client.disconnect()
        rec.wait_closed(2)
        assert [code for code, _ in rec.closes] == [1001, 1000]


def test_connection_ids_are_a_process_wide_sequence(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        a, _ = make_client(server.url())
        b, _ = make_client(server.url())
        a.connect()
        b.connect()
        assert b.connection_id > a.connection_id > 0
        a.disconnect()
        b.disconnect()


def test_reconnect_from_on_close(make_client: Maker) -> None:
    with WebsocketsServer(send_then_close(["hello"], 1012, "restart")) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []

        def on_close(code: int, reason: str) -> None:
            rec.on_close(code, reason)
            if len(rec.closes) == 1:
                holder[0].connect()

        client, _ = make_client(server.url(), callback=rec.on_message, on_close=on_close)
        holder.append(client)
        client.connect()
        rec.wait_closed(2)
        assert rec.closes == [(1012, "restart"), (1012, "restart")]
        assert rec.messages == ["hello", "hello"]


def test_connect_from_message_callback(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        rec = Recorder()
        holder: list[WebSocketClient] = []

        def callback(message: Any) -> None:
            rec.on_message(message)
            if message == "switch":
                holder[0].connect()

        client, _ = make_client(server.url(), callback=callback, on_close=rec.on_close)
        holder.append(client)
        client.connect()
        first_id = client.connection_id
        client.send("switch")
        rec.wait_closed(1)  # the old connection, closed with 1001
        assert rec.closes == [(1001, "")]
        assert client.connection_id > first_id
        time.sleep(0.1)
        assert client.is_open
        assert client.close_code is None
        client.send("on the new connection")
        assert rec.wait_messages(2)[-1] == "on the new connection"
        client.disconnect()


# --------------------------------------------------------------------------------------------------
# Context manager, wait, is_open
# --------------------------------------------------------------------------------------------------


def test_context_manager(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url())
        with client as entered:
            assert entered is client
            assert client.is_open
            client.send("inside")
            assert rec.wait_messages(1) == ["inside"]
        assert not client.is_open
        rec.assert_closed_once(1000)
        assert server.wait_closes(1) == [(1000, "")]


def test_context_manager_with_exception_closes_1001(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url())
        with pytest.raises(KeyError), client:
            raise KeyError("boom")
        rec.assert_closed_once(1001)
        assert server.wait_closes(1) == [(1001, "")]


def test_wait_and_is_open(make_client: Maker) -> None:
    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url())
        assert client.wait(0.01)  # never connected: nothing to wait for
        client.connect()
        assert client.is_open
        started = time.monotonic()
        assert client.wait(0.2) is False
        assert 0.15 < time.monotonic() - started < 3
        assert client.is_open
        closer = threading.Timer(0.2, client.disconnect)
        closer.start()
        assert client.wait(WAIT) is True
        closer.join(WAIT)
        assert rec.closes == [(1000, "")]  # on_close ran before wait() returned
        assert not client.is_open
        assert "closed" in repr(client)


def test_idle_connection_outlives_the_io_timeout(make_client: Maker) -> None:
    def handler(conn: RawConnection) -> None:
        conn.accept()
        time.sleep(0.6)  # idle for longer than the client's I/O timeout
        conn.send(server_frame(TEXT, "still here"))
        conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client, rec = make_client(server.url(), timeout=0.2)
        client.connect()
        assert rec.wait_messages(1) == ["still here"]
        assert client.is_open
        client.disconnect()
        rec.assert_closed_once(1000)


# --------------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------------


def test_log_functions_receive_prefixed_lines(make_client: Maker) -> None:
    info: list[str] = []
    errors: list[str] = []
    debug: list[str] = []
    bad = server_frame(TEXT, "x", rsv=0b100)
    with RawServer(accept_then(server_frame(TEXT, "hello") + bad)) as server:
        client, rec = make_client(server.url(), log=info.append, errlog=errors.append, debuglog=debug.append)
        client.connect()
        rec.assert_closed_once(1002)
        prefix = f"[{client.connection_id}] "
        assert info, "log received nothing"
        assert errors, "errlog received nothing about the protocol error"
        for line in info + errors + debug:
            assert isinstance(line, str)
            assert line.startswith(prefix), line
        assert any("connected" in line for line in info)


def test_debuglog_and_logger(make_client: Maker, caplog: pytest.LogCaptureFixture) -> None:
    debug: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="wsfast"), WebsocketsServer(close_with(1000, "bye")) as server:
        client, rec = make_client(server.url(), debuglog=debug.append)
        client.connect()
        rec.assert_closed_once(1000)
        prefix = f"[{client.connection_id}] "
    assert any("bye" in line for line in debug), debug
    assert all(line.startswith(prefix) for line in debug)
    records = [r for r in caplog.records if r.name == "wsfast"]
    assert records
    assert all(r.getMessage().startswith(prefix) for r in records)


def test_log_function_exception_does_not_break_the_connection(make_client: Maker) -> None:
    def broken_log(line: str) -> None:
        raise RuntimeError("broken log")

    with WebsocketsServer(echo) as server:
        client, rec = make_client(server.url(), log=broken_log, debuglog=broken_log)
        client.connect()
        client.send("still works")
        assert rec.wait_messages(1) == ["still works"]
        client.disconnect()
        rec.assert_closed_once(1000)
