"""wsfast.opening: the sans-I/O opening, driven action by action with exact bytes.

Each test plays the driver and the network: it checks the action the machine asks for, answers it, and
checks the next one, so every route (direct, Unix socket, sock=, HTTP and HTTPS proxies, SOCKS4/4a/5 with
local and remote DNS), the upgrade, redirects and every refusal are covered without a socket.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from wsfast.exceptions import (
    InvalidHTTP,
    InvalidStatus,
    InvalidURL,
    OptionError,
    ProxyError,
    TooManyRedirects,
)
from wsfast.handshake import accept_key
from wsfast.opening import (
    Connect,
    ConnectUnix,
    Disconnect,
    Note,
    Open,
    Opening,
    Receive,
    Redirected,
    RequestSent,
    Resolve,
    ResponseReceived,
    Send,
    StartTLS,
    UseSocket,
)
from wsfast.uri import parse_url

SECRET = "S3CRET-PROXY"
SERVER_CONTEXT = object()  # stands for the ssl.SSLContext the driver would pass
PROXY_CONTEXT = object()


def contexts(hop: str) -> object:
    return PROXY_CONTEXT if hop == "proxy" else SERVER_CONTEXT


def make(url: str = "ws://example.com/feed", **options: Any) -> tuple[Opening, list[Note]]:
    notes: list[Note] = []
    opening = Opening(parse_url(url), tls_context=contexts, report=notes.append, **options)
    return opening, notes


def switching(request: bytes, extra: bytes = b"") -> bytes:
    key = re.search(rb"Sec-WebSocket-Key: (\S+)", request)
    assert key is not None
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key.group(1).decode()).encode() + b"\r\n\r\n" + extra
    )


def upgrade(opening: Opening, action: Any, host_header: str = "example.com", extra: bytes = b"") -> Open:
    """Answer the upgrade request *action* with a 101; return the Open action."""
    assert isinstance(action, Send)
    assert action.hop == "server"
    assert action.data.startswith(b"GET ")
    assert f"\r\nHost: {host_header}\r\n".encode() in action.data
    request = action.data
    action = opening.sent()
    assert action == Receive("server")
    response = switching(request, extra)
    action = opening.receive_data(response[:10])  # any split works
    assert action == Receive("server")
    action = opening.receive_data(response[10:])
    assert isinstance(action, Open)
    return action


class TestDirect:
    def test_ws(self) -> None:
        opening, notes = make()
        assert opening.start() == Connect("example.com", 80, "server")
        action = opening.connected()
        request = action.data  # type: ignore[union-attr]
        assert request.startswith(b"GET /feed HTTP/1.1\r\n")
        done = upgrade(opening, action, extra=b"\x81\x02hi")
        assert done.url == parse_url("ws://example.com/feed")
        assert done.accepted.leftover == b"\x81\x02hi"
        assert opening.proxy is None
        assert [type(note) for note in notes] == [RequestSent, ResponseReceived]
        assert notes[0] == RequestSent(request, "handshake")
        assert isinstance(notes[1], ResponseReceived)
        assert notes[1].status == 101
        with pytest.raises(RuntimeError, match="waits for"):
            opening.sent()

    def test_wss_starts_tls_with_the_host(self) -> None:
        opening, _ = make("wss://example.com:8443/")
        assert opening.start() == Connect("example.com", 8443, "server")
        assert opening.connected() == StartTLS(SERVER_CONTEXT, "example.com", "server")
        upgrade(opening, opening.tls_started(), "example.com:8443")

    def test_server_hostname_override(self) -> None:
        opening, _ = make("wss://10.0.0.1/", server_hostname="stream.example")
        opening.start()
        assert opening.connected() == StartTLS(SERVER_CONTEXT, "stream.example", "server")

    def test_unix_socket_keeps_host_and_tls(self) -> None:
        opening, _ = make("wss://example.com/", unix_socket="/run/ws.sock")
        assert opening.start() == ConnectUnix("/run/ws.sock", "server")
        assert opening.connected() == StartTLS(SERVER_CONTEXT, "example.com", "server")
        upgrade(opening, opening.tls_started())

    def test_sock_given(self) -> None:
        opening, _ = make(sock_given=True)
        assert opening.start() == UseSocket("server")
        upgrade(opening, opening.connected())

    def test_unix_socket_and_sock_together(self) -> None:
        with pytest.raises(OptionError, match="not both"):
            make(unix_socket="/x", sock_given=True)

    def test_refused_upgrade_is_reported_then_raised(self) -> None:
        opening, notes = make()
        opening.start()
        opening.connected()
        opening.sent()
        with pytest.raises(InvalidStatus) as refused:
            opening.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        assert refused.value.status == 403
        assert isinstance(notes[-1], ResponseReceived)
        assert notes[-1].status == 403
        with pytest.raises(RuntimeError):  # the opening is over
            opening.receive_data(b"more")

    def test_eof_during_the_upgrade(self) -> None:
        opening, _ = make()
        opening.start()
        opening.connected()
        opening.sent()
        with pytest.raises(InvalidHTTP):
            opening.receive_eof()

    def test_answers_need_a_question(self) -> None:
        opening, _ = make()
        with pytest.raises(RuntimeError, match="start"):
            opening.connected()

    def test_start_once(self) -> None:
        opening, _ = make()
        opening.start()
        with pytest.raises(RuntimeError, match="already"):
            opening.start()


def connect_request(target: str, credentials: str | None = None) -> bytes:
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if credentials is not None:
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials.encode()).decode())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class TestHttpProxy:
    def test_tunnel_with_basic_auth(self) -> None:
        opening, notes = make(proxy=f"http://user:{SECRET}@proxy.local:3128")
        assert opening.start() == Connect("proxy.local", 3128, "proxy")
        assert opening.connected() == Send(connect_request("example.com:80", f"user:{SECRET}"), "proxy")
        assert opening.sent() == Receive("proxy")
        assert opening.receive_data(b"HTTP/1.1 200 Connection established\r") == Receive("proxy")
        action = opening.receive_data(b"\n\r\n")
        upgrade(opening, action)
        assert [type(n) for n in notes] == [RequestSent, ResponseReceived, RequestSent, ResponseReceived]
        assert notes[0] == RequestSent(connect_request("example.com:80", f"user:{SECRET}"), "proxy")
        assert isinstance(notes[1], ResponseReceived)
        assert (notes[1].status, notes[1].operation) == (
            200,
            "proxy",
        )

    def test_ipv6_target(self) -> None:
        opening, _ = make("ws://[2001:db8::1]:9000/", proxy="http://proxy:3128")
        opening.start()
        assert opening.connected() == Send(connect_request("[2001:db8::1]:9000"), "proxy")

    def test_https_proxy_then_wss_is_tls_inside_tls(self) -> None:
        opening, _ = make("wss://example.com/", proxy="https://proxy.local")
        assert opening.start() == Connect("proxy.local", 443, "proxy")
        assert opening.connected() == StartTLS(PROXY_CONTEXT, "proxy.local", "proxy")
        assert opening.tls_started() == Send(connect_request("example.com:443"), "proxy")
        opening.sent()
        action = opening.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
        assert action == StartTLS(SERVER_CONTEXT, "example.com", "server")
        upgrade(opening, opening.tls_started())

    @pytest.mark.parametrize(
        ("credentials", "hint"), [("", "needs credentials"), (f"user:{SECRET}@", "refused the credentials")]
    )
    def test_407(self, credentials: str, hint: str) -> None:
        opening, notes = make(proxy=f"http://{credentials}proxy:3128")
        opening.start()
        opening.connected()
        opening.sent()
        with pytest.raises(ProxyError, match=hint) as refused:
            opening.receive_data(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nno!"
            )
        error = refused.value
        assert (error.status, error.hop, error.stage, error.body) == (407, "proxy", "proxy", b"no!")
        assert SECRET not in str(error)
        assert isinstance(notes[-1], ResponseReceived)
        assert notes[-1].status == 407

    @pytest.mark.parametrize(
        ("answer", "message"),
        [
            (b"SSH-2.0-OpenSSH\r\n\r\n", "did not answer CONNECT properly"),
            (b"HTTP/1.1 200 OK\r\n\r\nearly", "sent data before the tunnel"),
            (b"", "did not answer CONNECT properly"),  # EOF
        ],
    )
    def test_broken_proxy(self, answer: bytes, message: str) -> None:
        opening, _ = make(proxy=f"http://u:{SECRET}@proxy:3128")
        opening.start()
        opening.connected()
        opening.sent()
        with pytest.raises(ProxyError, match=message) as broken:
            opening.receive_data(answer)
        assert broken.value.hop == "proxy"
        assert SECRET not in str(broken.value)

    def test_bad_proxy_url(self) -> None:
        with pytest.raises(InvalidURL) as refused:
            make(proxy=f"ftp://u:{SECRET}@proxy")
        assert SECRET not in str(refused.value)


def socks5_greeting_and_success(opening: Opening, first: Any, request: bytes) -> Any:
    assert first == Send(b"\x05\x01\x00", "proxy")
    assert opening.sent() == Receive("proxy")
    assert opening.receive_data(b"\x05\x00") == Send(request, "proxy")
    assert opening.sent() == Receive("proxy")
    return opening.receive_data(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")


class TestSocks:
    def test_socks5h_sends_the_name(self) -> None:
        opening, _ = make("wss://example.com/", proxy="socks5h://proxy:1080")
        assert opening.start() == Connect("proxy", 1080, "proxy")
        action = socks5_greeting_and_success(
            opening, opening.connected(), b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
        )
        assert action == StartTLS(SERVER_CONTEXT, "example.com", "server")
        upgrade(opening, opening.tls_started())

    def test_socks5_resolves_locally(self) -> None:
        opening, _ = make(proxy="socks5://proxy")
        opening.start()
        assert opening.connected() == Resolve("example.com", 80, ipv4_only=False)
        action = socks5_greeting_and_success(
            opening,
            opening.resolved("2001:db8::5"),
            b"\x05\x01\x00\x04" + bytes.fromhex("20010db8" + "0" * 23 + "5") + b"\x00\x50",
        )
        upgrade(opening, action)

    def test_socks5_with_an_address_needs_no_lookup(self) -> None:
        opening, _ = make("ws://10.0.0.9/", proxy="socks5://proxy")
        opening.start()
        assert opening.connected() == Send(b"\x05\x01\x00", "proxy")

    def test_socks5_with_credentials(self) -> None:
        opening, _ = make(proxy=f"socks5h://user:{SECRET}@proxy")
        opening.start()
        assert opening.connected() == Send(b"\x05\x02\x00\x02", "proxy")
        opening.sent()
        assert opening.receive_data(b"\x05\x02") == Send(b"\x01\x04user\x0c" + SECRET.encode(), "proxy")
        opening.sent()
        with pytest.raises(ProxyError) as refused:
            opening.receive_data(b"\x01\x01")
        assert (refused.value.status, refused.value.hop) == (1, "proxy")
        assert SECRET not in str(refused.value)

    def test_socks4_resolves_ipv4(self) -> None:
        opening, _ = make(proxy="socks4://alice@proxy")
        opening.start()
        assert opening.connected() == Resolve("example.com", 80, ipv4_only=True)
        assert opening.resolved("192.0.2.1") == Send(b"\x04\x01\x00\x50\xc0\x00\x02\x01alice\x00", "proxy")
        opening.sent()
        upgrade(opening, opening.receive_data(b"\x00\x5a" + b"\x00" * 6))

    def test_socks4_refused(self) -> None:
        opening, _ = make(proxy="socks4://proxy")
        opening.start()
        opening.connected()
        opening.resolved("192.0.2.1")
        opening.sent()
        with pytest.raises(ProxyError) as refused:
            opening.receive_data(b"\x00\x5b" + b"\x00" * 6)
        assert refused.value.status == 91

    def test_socks4_cannot_take_an_ipv6_lookup(self) -> None:
        opening, _ = make(proxy="socks4://proxy")
        opening.start()
        opening.connected()
        with pytest.raises(ProxyError, match="IPv4"):
            opening.resolved("2001:db8::1")

    def test_socks4a_sends_the_name(self) -> None:
        opening, _ = make(proxy="socks4a://proxy")
        opening.start()
        assert opening.connected() == Send(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.com\x00", "proxy")

    def test_eof_during_socks(self) -> None:
        opening, _ = make(proxy="socks5h://proxy")
        opening.start()
        opening.connected()
        opening.sent()
        with pytest.raises(ProxyError, match="closed the connection"):
            opening.receive_eof()

    def test_data_after_the_reply(self) -> None:
        opening, _ = make(proxy="socks5h://proxy")
        opening.start()
        opening.connected()
        opening.sent()
        opening.receive_data(b"\x05\x00")
        opening.sent()
        with pytest.raises(ProxyError, match="before the tunnel"):
            opening.receive_data(b"\x05\x00\x00\x01" + b"\x00" * 6 + b"extra")


def redirect_to(opening: Opening, location: str, status: bytes = b"302 Found") -> Any:
    opening.sent()
    return opening.receive_data(b"HTTP/1.1 " + status + b"\r\nLocation: " + location.encode() + b"\r\n\r\n")


class TestRedirects:
    def test_same_origin_keeps_credentials(self) -> None:
        opening, notes = make("ws://u:pw@example.com/old", headers=[("Cookie", "c=1")], authorization=None)
        opening.start()
        first = opening.connected()
        assert b"Authorization: Basic" in first.data
        assert b"Cookie: c=1" in first.data
        assert redirect_to(opening, "/new") == Disconnect("server")
        assert notes[-1] == Redirected(302, "ws://u@example.com/new")
        assert opening.disconnected() == Connect("example.com", 80, "server")
        second = opening.connected()
        assert b"GET /new " in second.data
        assert b"Authorization: Basic" in second.data
        assert b"Cookie: c=1" in second.data  # type: ignore[union-attr]
        assert upgrade(opening, second).url.resource == "/new"
        assert opening.redirects == 1

    def test_another_origin_drops_credentials(self) -> None:
        opening, _ = make(
            "ws://example.com/", headers=[("Cookie", "c=1"), ("X-Keep", "1")], authorization="Bearer T0KEN"
        )
        opening.start()
        assert b"Authorization: Bearer T0KEN" in opening.connected().data  # type: ignore[union-attr]
        redirect_to(opening, "wss://other.example:444/x")
        assert opening.disconnected() == Connect("other.example", 444, "server")
        assert opening.connected() == StartTLS(SERVER_CONTEXT, "other.example", "server")
        request = opening.tls_started().data  # type: ignore[union-attr]
        assert b"T0KEN" not in request
        assert b"Cookie" not in request
        assert b"X-Keep: 1" in request

    def test_too_many(self) -> None:
        opening, _ = make(max_redirects=1)
        opening.start()
        opening.connected()
        redirect_to(opening, "/a")
        opening.disconnected()
        opening.connected()
        with pytest.raises(TooManyRedirects, match="max_redirects") as refused:
            redirect_to(opening, "/b", b"301 Moved Permanently")
        assert refused.value.status == 301

    def test_refused_with_sock(self) -> None:
        opening, _ = make(sock_given=True)
        opening.start()
        opening.connected()
        with pytest.raises(InvalidURL, match="sock="):
            redirect_to(opening, "/same-origin")

    def test_unix_socket_stays_within_its_origin(self) -> None:
        opening, _ = make(unix_socket="/run/ws.sock")
        opening.start()
        opening.connected()
        redirect_to(opening, "/elsewhere")
        assert opening.disconnected() == ConnectUnix("/run/ws.sock", "server")
        opening.connected()
        with pytest.raises(InvalidURL, match="unix_socket"):
            redirect_to(opening, "ws://other.example/")

    def test_downgrade_refused(self) -> None:
        opening, _ = make("wss://example.com/")
        opening.start()
        opening.connected()
        opening.tls_started()
        with pytest.raises(InvalidURL, match="insecure"):
            redirect_to(opening, "ws://example.com/")

    def test_environment_proxy_is_chosen_for_each_url(self) -> None:
        environ = {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": "example.com"}
        opening, _ = make(proxy=True, environ=environ)
        assert opening.start() == Connect("example.com", 80, "server")  # NO_PROXY
        opening.connected()
        redirect_to(opening, "ws://other.example/")
        assert opening.disconnected() == Connect("proxy", 3128, "proxy")
        assert opening.proxy is not None
        assert opening.proxy.host == "proxy"
        assert opening.connected() == Send(connect_request("other.example:80"), "proxy")

    def test_proxy_true_without_variables_is_direct(self) -> None:
        opening, _ = make(proxy=True)
        assert opening.start() == Connect("example.com", 80, "server")
