"""Opening a connection, on every front-end: through real proxies (HTTP CONNECT, HTTPS, SOCKS4, SOCKS4a,
SOCKS5 with and without auth), proxies from the environment, Unix sockets, ``sock=``, and the typed errors
that name the hop that failed.

A proxy is proven to have carried a connection by the address the server sees it come from (each proxy
binds its outgoing connections to its own loopback address; see conftest.py), or, for OpenSSH's SOCKS4a,
by its log.
"""

from __future__ import annotations

import contextlib
import socket
import ssl as ssl_module
import time
from collections.abc import Iterator
from typing import Any

import pytest
from adapters import WAIT, Client
from routes import PROXY_AUTH, SOCKS_AUTH, Route

from proxies import Microsocks, Tinyproxy, UnixWebsocketsServer, free_port
from servers import HOST, RawConnection, RawServer, WebsocketsServer, redirect_response, tls_certs
from wsfast import HandshakeError, InvalidURL, OpeningError, OpenTimeout, OptionError, ProxyError, TLSError

SCHEMES = ("ws", "wss")


@pytest.fixture(params=SCHEMES)
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def echo_server(scheme: str, request: pytest.FixtureRequest) -> WebsocketsServer:
    return request.getfixturevalue("ws_server" if scheme == "ws" else "wss_server")  # type: ignore[no-any-return]


def tls_options(scheme: str, certs: Any) -> dict[str, Any]:
    return {"ssl": certs.client_context} if scheme == "wss" else {}


def assert_echo(client: Client) -> None:
    client.send("through")
    client.send(b"\x00binary")
    assert client.recv_many(2) == ["through", b"\x00binary"]


@contextlib.contextmanager
def new_peers(server: WebsocketsServer) -> Iterator[list[str]]:
    """The peer addresses of the connections *server* accepts inside the block."""
    peers: list[str] = server.peers  # type: ignore[attr-defined]
    seen: list[str] = []
    mark = len(peers)
    yield seen
    seen.extend(peers[mark:])


# --------------------------------------------------------------------------------------------------
# Direct
# --------------------------------------------------------------------------------------------------


def test_direct(client: Client, scheme: str, echo_server: WebsocketsServer, certs: Any) -> None:
    with new_peers(echo_server) as peers:
        client.open(echo_server.url(), **tls_options(scheme, certs))
        assert_echo(client)
    assert peers == [HOST]


def test_tls_terminated_by_nginx(
    client: Client, nginx_wss: Any, ws_server: WebsocketsServer, certs: Any
) -> None:
    client.open(f"wss://localhost:{nginx_wss.front_ports[0]}/via-nginx", ssl=certs.client_context)
    assert_echo(client)
    assert ws_server.requests[-1]["Host"] == f"localhost:{nginx_wss.front_ports[0]}"


# --------------------------------------------------------------------------------------------------
# Through every kind of proxy
# --------------------------------------------------------------------------------------------------


def test_through_proxy(
    client: Client, route: Route, scheme: str, echo_server: WebsocketsServer, certs: Any
) -> None:
    carried = route.carried() if route.carried else 0
    with new_peers(echo_server) as peers:
        client.open(
            echo_server.url(host=route.host), proxy=route.proxy, **route.options, **tls_options(scheme, certs)
        )
        assert_echo(client)
    assert peers == [route.peer], f"the server saw {peers}; through {route.name} it must see {route.peer}"
    if route.carried:
        deadline = time.monotonic() + WAIT
        while route.carried() == carried and time.monotonic() < deadline:
            time.sleep(0.02)
        assert route.carried() == carried + 1, f"{route.name} did not log the request"
    client.close()


@pytest.mark.parametrize("scheme_name", ["socks4", "socks4a"])
def test_socks4_sends_the_user_id(
    client: Client, openssh_socks: Any, ws_server: WebsocketsServer, scheme_name: str
) -> None:
    """``socks4://user@host:port``: the URL's user is the SOCKS4 user id (OpenSSH logs what it got)."""
    line = f"decode socks4: user wsfast-{client.variant.id}/"
    proxy = f"{scheme_name}://wsfast-{client.variant.id}@{HOST}:{openssh_socks.port}"
    before = openssh_socks.log().count(line)
    client.open(ws_server.url(host="localhost"), proxy=proxy)
    assert_echo(client)
    deadline = time.monotonic() + WAIT
    while openssh_socks.log().count(line) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert openssh_socks.log().count(line) == before + 1


# --------------------------------------------------------------------------------------------------
# Refusals name the hop
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [None, ("alice", "wrong")], ids=["none", "wrong"])
def test_proxy_auth_refused_407(
    client: Client, tinyproxy_auth: Tinyproxy, ws_server: WebsocketsServer, credentials: Any
) -> None:
    with pytest.raises(ProxyError) as info:
        client.open(ws_server.url(), proxy=tinyproxy_auth.url(auth=credentials or False))
    # RFC 9110 §15.5.8: 407 asks for proxy credentials; tinyproxy 1.11 answers 401 to wrong ones.
    assert info.value.status == (407 if credentials is None else 401)
    assert info.value.hop == "proxy"
    assert isinstance(info.value, HandshakeError)
    assert "wrong" not in str(info.value)  # no password in messages


def test_http_proxy_refusing_the_tunnel(
    client: Client, tinyproxy_refusing: Tinyproxy, ws_server: WebsocketsServer
) -> None:
    with pytest.raises(ProxyError) as info:
        client.open(ws_server.url(), proxy=tinyproxy_refusing.url())
    assert info.value.status == 403
    assert info.value.hop == "proxy"


def test_socks5_auth_refused(
    client: Client, microsocks_auth: Microsocks, ws_server: WebsocketsServer
) -> None:
    with pytest.raises(ProxyError) as info:
        client.open(ws_server.url(), proxy=microsocks_auth.url("socks5", auth=(SOCKS_AUTH[0], "wrong")))
    assert info.value.hop == "proxy"
    assert "wrong" not in str(info.value)  # no password in messages


def test_socks5_target_refused(client: Client, microsocks: Microsocks) -> None:
    """The proxy could not reach the server: its reply code (5, connection refused) is the status."""
    with pytest.raises(ProxyError) as info:
        client.open(f"ws://{HOST}:{free_port()}/", proxy=microsocks.url("socks5"))
    assert info.value.status == 5


@pytest.mark.parametrize("kind", ["http", "socks5", "socks4"])
def test_dead_proxy_port(client: Client, ws_server: WebsocketsServer, kind: str) -> None:
    with pytest.raises(OpeningError) as info:
        client.open(ws_server.url(), proxy=f"{kind}://{HOST}:{free_port()}")
    assert (info.value.hop, info.value.stage) == ("proxy", "connect")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_https_proxy_with_an_untrusted_certificate(
    client: Client, https_proxies: Any, ws_server: WebsocketsServer
) -> None:
    """proxy_ssl defaults to a verifying context with the system CAs: the test CA is not among them."""
    with pytest.raises(TLSError) as info:
        client.open(ws_server.url(), proxy=f"https://{HOST}:{https_proxies.stream_ports[0]}")
    assert (info.value.hop, info.value.stage) == ("proxy", "tls")
    assert isinstance(info.value.__cause__, ssl_module.SSLCertVerificationError)


def test_server_with_an_untrusted_certificate(client: Client, wss_server: WebsocketsServer) -> None:
    with pytest.raises(TLSError) as info:
        client.open(wss_server.url())
    assert (info.value.hop, info.value.stage) == ("server", "tls")


def test_tls_failure_behind_a_proxy_names_the_server(
    client: Client, tinyproxy: Tinyproxy, wss_server: WebsocketsServer
) -> None:
    with pytest.raises(TLSError) as info:
        client.open(wss_server.url(), proxy=tinyproxy.url())
    assert info.value.hop == "server"


def test_server_refuses_tcp(client: Client) -> None:
    with pytest.raises(OpeningError) as info:
        client.open(f"ws://{HOST}:{free_port()}/")
    assert (info.value.hop, info.value.stage) == ("server", "connect")
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert client.events.seen == []


def silent(conn: RawConnection) -> None:
    """Accept TCP, read whatever comes (a request, a TLS ClientHello, a SOCKS greeting), never answer."""
    while conn._fill():
        pass


@pytest.mark.parametrize(
    ("proxy", "scheme", "hop", "stage"),
    [
        (None, "ws", "server", "handshake"),  # the upgrade is never answered
        (None, "wss", "server", "tls"),  # TLS never starts
        ("http", "ws", "proxy", "proxy"),  # CONNECT is never answered
        ("socks5h", "ws", "proxy", "proxy"),  # the SOCKS greeting is never answered
        ("https", "ws", "proxy", "tls"),  # TLS to the proxy never starts
    ],
)
def test_open_timeout_names_the_step(
    client: Client, proxy: str | None, scheme: str, hop: str, stage: str
) -> None:
    """One deadline for the whole opening; OpenTimeout names the hop and stage it expired in."""
    with RawServer(silent) as server:
        if proxy is None:
            url, options = f"{scheme}://{HOST}:{server.port}/", {}
        else:
            url, options = "ws://example.invalid/", {"proxy": f"{proxy}://{HOST}:{server.port}"}
        started = time.monotonic()
        with pytest.raises(OpenTimeout) as info:
            client.open(url, open_timeout=0.2, **options)
        assert time.monotonic() - started < 2.0
    assert isinstance(info.value, TimeoutError)
    assert (info.value.hop, info.value.stage) == (hop, stage)


# --------------------------------------------------------------------------------------------------
# proxy=True: from the environment
# --------------------------------------------------------------------------------------------------

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_environment_proxies_are_off_by_default(
    client: Client, clean_env: pytest.MonkeyPatch, tinyproxy: Tinyproxy, ws_server: WebsocketsServer
) -> None:
    clean_env.setenv("HTTP_PROXY", tinyproxy.url())
    clean_env.setenv("ALL_PROXY", tinyproxy.url())
    with new_peers(ws_server) as peers:
        client.open(ws_server.url())
        assert_echo(client)
    assert peers == [HOST]


@pytest.mark.parametrize(
    ("variable", "lower"),
    [("HTTP_PROXY", False), ("HTTP_PROXY", True), ("ALL_PROXY", False)],
    ids=["HTTP_PROXY", "http_proxy", "ALL_PROXY"],
)
def test_proxy_true_for_ws_uses_http_proxy(
    client: Client,
    clean_env: pytest.MonkeyPatch,
    tinyproxy: Tinyproxy,
    ws_server: WebsocketsServer,
    variable: str,
    lower: bool,
) -> None:
    clean_env.setenv(variable.lower() if lower else variable, tinyproxy.url())
    clean_env.setenv("HTTPS_PROXY", f"http://{HOST}:{free_port()}")  # for wss only: must not be used
    with new_peers(ws_server) as peers:
        client.open(ws_server.url(), proxy=True)
        assert_echo(client)
    assert peers == [tinyproxy.bind]


def test_proxy_true_for_wss_uses_https_proxy(
    client: Client,
    clean_env: pytest.MonkeyPatch,
    tinyproxy_auth: Tinyproxy,
    wss_server: WebsocketsServer,
    certs: Any,
) -> None:
    clean_env.setenv("HTTPS_PROXY", tinyproxy_auth.url())  # with user:password@
    clean_env.setenv("HTTP_PROXY", f"http://{HOST}:{free_port()}")  # for ws only: must not be used
    with new_peers(wss_server) as peers:
        client.open(wss_server.url(), proxy=True, ssl=certs.client_context)
        assert_echo(client)
    assert peers == [tinyproxy_auth.bind]


def test_proxy_true_with_a_socks_proxy_in_all_proxy(
    client: Client, clean_env: pytest.MonkeyPatch, microsocks: Microsocks, ws_server: WebsocketsServer
) -> None:
    clean_env.setenv("ALL_PROXY", microsocks.url("socks5h"))
    with new_peers(ws_server) as peers:
        client.open(ws_server.url(), proxy=True)
        assert_echo(client)
    assert peers == [microsocks.bind]


@pytest.mark.parametrize(
    ("no_proxy", "host"),
    [
        ("127.0.0.1", HOST),
        ("127.0.0.0/8", HOST),
        ("*", HOST),
        ("example.com, localhost", "localhost"),
        (".localhost,other", "localhost"),
        ("localhost:{port}", "localhost"),
    ],
)
def test_no_proxy_is_honoured(
    client: Client,
    clean_env: pytest.MonkeyPatch,
    ws_server: WebsocketsServer,
    no_proxy: str,
    host: str,
) -> None:
    clean_env.setenv("HTTP_PROXY", f"http://{HOST}:{free_port()}")  # dead: used, it would fail
    clean_env.setenv("NO_PROXY", no_proxy.format(port=ws_server.port))
    client.open(ws_server.url(host=host), proxy=True)
    assert_echo(client)


def test_no_proxy_for_another_port_still_proxies(
    client: Client, clean_env: pytest.MonkeyPatch, tinyproxy: Tinyproxy, ws_server: WebsocketsServer
) -> None:
    clean_env.setenv("HTTP_PROXY", tinyproxy.url())
    clean_env.setenv("no_proxy", f"127.0.0.1:{ws_server.port + 1}")
    with new_peers(ws_server) as peers:
        client.open(ws_server.url(), proxy=True)
        assert_echo(client)
    assert peers == [tinyproxy.bind]


# --------------------------------------------------------------------------------------------------
# Unix sockets and sock=
# --------------------------------------------------------------------------------------------------


def test_unix_socket(client: Client, unix_server: UnixWebsocketsServer) -> None:
    client.open("ws://ws.invalid/over-unix", unix_socket=unix_server.path)
    assert_echo(client)
    assert unix_server.hosts == ["ws.invalid"]


def test_unix_socket_missing(client: Client, tmp_path: Any) -> None:
    with pytest.raises(OpeningError) as info:
        client.open("ws://localhost/", unix_socket=str(tmp_path / "nobody-listens.sock"))
    assert (info.value.hop, info.value.stage) == ("server", "connect")


def test_unix_socket_with_tls(client: Client, unix_tls_server: UnixWebsocketsServer, certs: Any) -> None:
    """wss:// over a Unix socket does TLS with the URL's host name (SNI and the certificate check)."""
    client.open("wss://localhost/over-unix", unix_socket=unix_tls_server.path, ssl=certs.client_context)
    assert_echo(client)
    assert certs.sni[-1] == "localhost"


def test_sock(client: Client, scheme: str, echo_server: WebsocketsServer, certs: Any) -> None:
    sock = socket.create_connection((HOST, echo_server.port), timeout=WAIT)
    with new_peers(echo_server) as peers:
        client.open(echo_server.url(), sock=sock, **tls_options(scheme, certs))
        assert_echo(client)
    assert peers == [HOST]


def test_unix_socket_and_sock_together_are_refused(client: Client) -> None:
    """unix_socket= and sock= each say how to open the connection: at most one, at construction."""
    left, right = socket.socketpair()
    with left, right, pytest.raises(OptionError, match="unix_socket and sock"):
        client.construct(f"ws://{HOST}:1/", unix_socket="/nonexistent/ws.sock", sock=left)


def test_sock_connected_to_a_proxy(
    client: Client, scheme: str, echo_server: WebsocketsServer, certs: Any, tinyproxy: Tinyproxy
) -> None:
    """With proxy=, a given socket is the way to the proxy: the tunnel is asked for on it."""
    sock = socket.create_connection((HOST, tinyproxy.port), timeout=WAIT)
    with new_peers(echo_server) as peers:
        client.open(echo_server.url(), sock=sock, proxy=tinyproxy.url(), **tls_options(scheme, certs))
        assert_echo(client)
    assert peers == [tinyproxy.bind]  # the server was reached from the proxy's address


def test_sock_refuses_a_redirect_to_another_origin(client: Client) -> None:
    def handler(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(redirect_response(f"ws://{HOST}:{free_port()}/elsewhere"))

    with RawServer(handler) as server:
        sock = socket.create_connection((HOST, server.port), timeout=WAIT)
        with pytest.raises(InvalidURL, match="sock"):
            client.open(server.url(), sock=sock)


def test_sock_with_an_untrusted_certificate(client: Client) -> None:
    other = tls_certs()
    with WebsocketsServer(ssl_context=other.server_context) as server:
        sock = socket.create_connection((HOST, server.port), timeout=WAIT)
        with pytest.raises(TLSError):
            client.open(server.url(), sock=sock)


def test_proxy_credentials_are_not_in_the_url(
    client: Client, tinyproxy_auth: Tinyproxy, ws_server: WebsocketsServer
) -> None:
    client.open(ws_server.url(), proxy=tinyproxy_auth.url())
    assert PROXY_AUTH[1] not in client.url


@pytest.mark.frontends("threaded")
def test_tls_inside_tls_carries_a_stream(
    client: Any, https_proxies: Any, wss_server: WebsocketsServer, certs: Any
) -> None:
    """The threaded client's TLS inside TLS (an SSLObject over memory BIOs) under load and keepalive: many
    records arrive per socket read, and a record already received must never wait for the next poll."""
    client.open(
        wss_server.url(),
        ssl=certs.client_context,
        proxy=f"https://{HOST}:{https_proxies.stream_ports[0]}",
        proxy_ssl=certs.client_context,
        ping_interval=0.2,  # the event thread polls the socket between messages: pending() matters
        ping_timeout=WAIT,
    )
    messages = [f"{index}:" + "x" * (index * 37 % 5000) for index in range(400)]
    for message in messages:
        client.send(message)
    assert client.recv_many(len(messages)) == messages
    time.sleep(0.5)  # keepalive PINGs go out and their PONGs come back through both TLS layers
    assert client.client.is_open
    assert client.stats().last_rtt is not None
