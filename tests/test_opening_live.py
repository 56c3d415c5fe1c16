"""The opening on loopback, for both clients (threaded; asyncio on its own loop and on uvloop): through real
proxies (tinyproxy: HTTP CONNECT; nginx's stream module in front of tinyproxy: an HTTPS proxy; microsocks:
SOCKS5 with RFC 1929 auth; dante: SOCKS4 and SOCKS5), the tests' own CONNECT proxy, proxies from the
environment, Unix sockets and ``sock=``, each for ``ws://`` and ``wss://``.

The proxies are module-local and small on purpose: the contract suite (tests/contract, tests/proxies.py)
covers the behaviour in depth; these prove each path of the executors works. A missing binary skips its test.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
from servers import HOST, IO_TIMEOUT, ConnectProxy, RawConnection, RawServer, WebsocketsServer, echo

TIMEOUT = 5.0
CLIENTS = ["threaded", "asyncio", "uvloop"]
SECRET = "S3CRET-PW"


# --------------------------------------------------------------------------------------------------
# Servers and proxies
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Process:
    """A proxy binary started with *argv* (``{port}`` and ``{dir}`` filled in), until the port accepts."""

    def __init__(self, binary: str, argv: list[str], config: str | None = None) -> None:
        path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin:/sbin")
        if path is None:
            pytest.skip(f"{binary} is not installed")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"wsfast-{binary}-"))
        values = {"port": str(self.port), "dir": str(self.directory)}
        if config is not None:
            (self.directory / "config").write_text(config.format(**values))
        self.log = (self.directory / "log").open("wb")
        self.process = subprocess.Popen(
            [path, *(arg.format(**values) for arg in argv)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + IO_TIMEOUT
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"{binary} did not start: {(self.directory / 'log').read_text()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(IO_TIMEOUT)
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


TINYPROXY = """Port {port}
Listen 127.0.0.1
Timeout 30
MaxClients 20
LogLevel Error
Allow 127.0.0.1
DisableViaHeader Yes
"""
DANTE = """logoutput: stderr
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 0.0.0.0/0 to: 0.0.0.0/0
}}
socks pass {{
    from: 0.0.0.0/0 to: 0.0.0.0/0
    command: connect
    protocol: tcp
}}
"""
NGINX_TLS_STREAM = """load_module {module};
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr error;
user root;
events {{ worker_connections 64; }}
stream {{
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/cert.pem;
        proxy_pass 127.0.0.1:{upstream};
    }}
}}
"""


@pytest.fixture(scope="module")
def tls() -> Any:
    """A CA, the server's certificate (localhost, 127.0.0.1) as PEM, and the contexts of both sides."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    pem = cert.private_key_and_cert_chain_pem.bytes()
    return type("TLS", (), {"server": server, "client": client, "pem": pem})


@pytest.fixture(scope="module")
def servers(tls: Any) -> Iterator[dict[str, WebsocketsServer]]:
    with WebsocketsServer(echo) as plain, WebsocketsServer(echo, ssl_context=tls.server) as secure:
        yield {"ws": plain, "wss": secure}


def _proxy(binary: str, argv: list[str], config: str | None = None) -> Iterator[Process]:
    process = Process(binary, argv, config)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[Process]:
    yield from _proxy("tinyproxy", ["-d", "-c", "{dir}/config"], TINYPROXY)


@pytest.fixture(scope="module")
def tinyproxy_auth() -> Iterator[Process]:
    yield from _proxy("tinyproxy", ["-d", "-c", "{dir}/config"], TINYPROXY + f"BasicAuth user {SECRET}\n")


@pytest.fixture(scope="module")
def microsocks() -> Iterator[Process]:
    yield from _proxy("microsocks", ["-i", HOST, "-p", "{port}", "-u", "user", "-P", SECRET])


@pytest.fixture(scope="module")
def dante() -> Iterator[Process]:
    yield from _proxy("danted", ["-f", "{dir}/config", "-N", "1", "-p", "{dir}/danted.pid"], DANTE)


@pytest.fixture(scope="module")
def https_proxy(tinyproxy: Process, tls: Any) -> Iterator[Process]:
    """nginx terminating TLS in front of tinyproxy: an ``https://`` proxy."""
    module = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
    if not module.exists():
        pytest.skip("nginx's stream module is not installed (libnginx-mod-stream)")
    # The certificate must be in the directory before nginx starts: write it into a prepared config.
    directory = Path(tempfile.mkdtemp(prefix="wsfast-nginx-pem-"))
    (directory / "cert.pem").write_bytes(tls.pem)
    config = NGINX_TLS_STREAM.replace("{dir}/cert.pem", str(directory / "cert.pem"))
    config = config.replace("{module}", str(module)).replace("{upstream}", str(tinyproxy.port))
    try:
        yield from _proxy("nginx", ["-c", "{dir}/config", "-p", "{dir}", "-e", "stderr"], config)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# Clients: open, echo one message, close
# --------------------------------------------------------------------------------------------------


def echo_once(client: str, url: str, **options: Any) -> str:
    """Connect with *client*, send one message, return the echo (errors propagate)."""
    options.setdefault("open_timeout", TIMEOUT)
    if client == "threaded":
        received: queue.Queue[Any] = queue.Queue()
        ws = wsfast.WebSocketClient(received.put, url, ping_interval=None, **options)
        ws.connect()
        try:
            ws.send("hello")
            return str(received.get(timeout=TIMEOUT))
        finally:
            ws.disconnect()

    async def main() -> str:
        async with wsfast.connect(url, ping_interval=None, **options) as ws:
            await ws.send("hello")
            return str(await asyncio.wait_for(ws.recv(), TIMEOUT))

    if client == "uvloop":
        import uvloop

        return uvloop.run(asyncio.wait_for(main(), TIMEOUT * 2))
    return asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


def refused(client: str, url: str, **options: Any) -> BaseException:
    """The error *client* raises connecting to *url*."""
    with pytest.raises(Exception) as failed:  # noqa: PT011 (each test checks the type it expects)
        echo_once(client, url, **options)
    return failed.value


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["ws", "wss"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def target(
    servers: dict[str, WebsocketsServer], scheme: str, tls: Any, host: str = HOST
) -> tuple[str, dict[str, Any]]:
    server = servers[scheme]
    return server.url(host=host), ({"ssl": tls.client} if scheme == "wss" else {})


# --------------------------------------------------------------------------------------------------
# Through proxies
# --------------------------------------------------------------------------------------------------


class TestRealProxies:
    def test_tinyproxy(self, client: str, scheme: str, servers: Any, tls: Any, tinyproxy: Process) -> None:
        url, options = target(servers, scheme, tls)
        assert echo_once(client, url, proxy=f"http://{HOST}:{tinyproxy.port}", **options) == "hello"

    def test_tinyproxy_basic_auth(
        self, client: str, scheme: str, servers: Any, tls: Any, tinyproxy_auth: Process
    ) -> None:
        url, options = target(servers, scheme, tls)
        proxy = f"http://user:{SECRET}@{HOST}:{tinyproxy_auth.port}"
        assert echo_once(client, url, proxy=proxy, **options) == "hello"

    def test_tinyproxy_refuses_wrong_credentials(
        self, client: str, servers: Any, tls: Any, tinyproxy_auth: Process
    ) -> None:
        url, options = target(servers, "ws", tls)
        error = refused(
            client, url, proxy=f"http://user:WRONG-{SECRET}@{HOST}:{tinyproxy_auth.port}", **options
        )
        assert isinstance(error, wsfast.ProxyError), error
        assert isinstance(error, wsfast.HandshakeError)
        assert error.status in (401, 407)  # tinyproxy answers 401, as to a server request
        assert error.hop == "proxy"
        assert SECRET not in str(error)

    def test_https_proxy(
        self, client: str, scheme: str, servers: Any, tls: Any, https_proxy: Process
    ) -> None:
        # wss:// through it is TLS inside TLS: the server's TLS runs inside the proxy's.
        url, options = target(servers, scheme, tls)
        proxy = f"https://localhost:{https_proxy.port}"
        assert echo_once(client, url, proxy=proxy, proxy_ssl=tls.client, **options) == "hello"

    def test_https_proxy_is_verified(self, client: str, servers: Any, tls: Any, https_proxy: Process) -> None:
        url, options = target(servers, "wss", tls)
        error = refused(client, url, proxy=f"https://localhost:{https_proxy.port}", **options)
        assert isinstance(error, wsfast.TLSError), error
        assert (error.hop, error.stage) == ("proxy", "tls")
        assert isinstance(error.__cause__, ssl.SSLCertVerificationError)

    @pytest.mark.parametrize("kind", ["socks5", "socks5h"])
    def test_microsocks_with_auth(
        self, client: str, scheme: str, kind: str, servers: Any, tls: Any, microsocks: Process
    ) -> None:
        url, options = target(servers, scheme, tls, host="localhost")
        proxy = f"{kind}://user:{SECRET}@{HOST}:{microsocks.port}"
        assert echo_once(client, url, proxy=proxy, **options) == "hello"

    def test_microsocks_refuses_wrong_password(
        self, client: str, servers: Any, tls: Any, microsocks: Process
    ) -> None:
        url, options = target(servers, "ws", tls)
        error = refused(
            client, url, proxy=f"socks5://user:WRONG-{SECRET}@{HOST}:{microsocks.port}", **options
        )
        assert isinstance(error, wsfast.ProxyError), error
        assert error.hop == "proxy"
        assert SECRET not in str(error)

    @pytest.mark.parametrize("kind", ["socks4", "socks5"])
    def test_dante(self, client: str, scheme: str, kind: str, servers: Any, tls: Any, dante: Process) -> None:
        url, options = target(servers, scheme, tls, host="localhost")  # socks4: the client resolves it
        assert echo_once(client, url, proxy=f"{kind}://{HOST}:{dante.port}", **options) == "hello"

    def test_proxy_that_is_not_listening(self, client: str, servers: Any, tls: Any) -> None:
        url, options = target(servers, "ws", tls)
        error = refused(client, url, proxy=f"socks5://{HOST}:{free_port()}", **options)
        assert isinstance(error, wsfast.OpeningError), error
        assert (error.hop, error.stage) == ("proxy", "connect")
        assert isinstance(error.__cause__, ConnectionRefusedError)


class TestEnvironment:
    def test_proxy_true_takes_the_variable(
        self, client: str, scheme: str, servers: Any, tls: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url, options = target(servers, scheme, tls)
        with ConnectProxy() as proxy:
            monkeypatch.setenv("HTTPS_PROXY" if scheme == "wss" else "HTTP_PROXY", proxy.url())
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            assert echo_once(client, url, proxy=True, **options) == "hello"
            assert proxy.tunnels == 1
            monkeypatch.setenv("NO_PROXY", f"{HOST}:{servers[scheme].port}")
            assert echo_once(client, url, proxy=True, **options) == "hello"
            assert proxy.tunnels == 1  # NO_PROXY: direct
            assert echo_once(client, url, **options) == "hello"  # off by default
            assert proxy.tunnels == 1


# --------------------------------------------------------------------------------------------------
# One deadline: OpenTimeout names the step it expired in
# --------------------------------------------------------------------------------------------------


def silent(conn: RawConnection) -> None:
    """Accept TCP, read what comes, never answer."""
    while conn._fill():
        pass


class TestOpenTimeout:
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
    def test_the_step_is_named(
        self, client: str, proxy: str | None, scheme: str, hop: str, stage: str
    ) -> None:
        with RawServer(silent) as server:
            if proxy is None:
                url, options = f"{scheme}://{HOST}:{server.port}/", {}
            else:
                url, options = "ws://example.invalid/", {"proxy": f"{proxy}://{HOST}:{server.port}"}
            started = time.monotonic()
            error = refused(client, url, open_timeout=0.5, **options)
            assert isinstance(error, wsfast.OpenTimeout), error
            assert isinstance(error, TimeoutError)
            assert (error.hop, error.stage) == (hop, stage)
            assert time.monotonic() - started < 3


# --------------------------------------------------------------------------------------------------
# Unix sockets and sock=
# --------------------------------------------------------------------------------------------------


class UnixServer(WebsocketsServer):
    """The echo server on a Unix socket (``unix_serve``)."""

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(echo, **kwargs)
        self.path = path

    async def _start(self) -> None:
        from websockets.asyncio.server import unix_serve

        self._server = await unix_serve(self._wrapped, self.path, ssl=self.ssl_context, **self.serve_kwargs)


@pytest.fixture
def unix_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="wsfast-unix-")
    yield os.path.join(directory, "ws.sock")
    shutil.rmtree(directory, ignore_errors=True)


class TestSockets:
    def test_unix_socket(self, client: str, scheme: str, tls: Any, unix_path: str) -> None:
        # The URL still gives Host and the TLS server name.
        options: dict[str, Any] = {"ssl": tls.client} if scheme == "wss" else {}
        with UnixServer(unix_path, ssl_context=tls.server if scheme == "wss" else None) as server:
            assert (
                echo_once(client, f"{scheme}://localhost/feed", unix_socket=unix_path, **options) == "hello"
            )
            assert server.requests[0]["Host"] == "localhost"

    def test_unix_socket_missing(self, client: str, unix_path: str) -> None:
        error = refused(client, "ws://localhost/", unix_socket=unix_path)
        assert isinstance(error, wsfast.OpeningError), error
        assert (error.hop, error.stage) == ("server", "connect")

    def test_sock(self, client: str, scheme: str, servers: Any, tls: Any) -> None:
        url, options = target(servers, scheme, tls)
        sock = socket.create_connection((HOST, servers[scheme].port), timeout=TIMEOUT)
        assert echo_once(client, url, sock=sock, **options) == "hello"

    def test_sock_connected_to_a_proxy(self, client: str, servers: Any, tls: Any) -> None:
        url, options = target(servers, "wss", tls)
        with ConnectProxy() as proxy:
            sock = socket.create_connection((HOST, proxy.port), timeout=TIMEOUT)
            assert echo_once(client, url, sock=sock, proxy=proxy.url(), **options) == "hello"
            assert proxy.tunnels == 1


def test_tls_inside_tls_carries_a_stream(servers: Any, tls: Any, https_proxy: Process) -> None:
    """The threaded client's TLS inside TLS (an SSLObject over memory BIOs) under load and keepalive: many
    records arrive per socket read, and a record already received must never wait for the next poll."""
    received: queue.Queue[Any] = queue.Queue()
    ws = wsfast.WebSocketClient(
        received.put,
        servers["wss"].url(),
        ssl=tls.client,
        proxy=f"https://localhost:{https_proxy.port}",
        proxy_ssl=tls.client,
        ping_interval=0.2,  # the event thread polls the socket between messages: pending() matters
        ping_timeout=TIMEOUT,
        open_timeout=TIMEOUT,
    )
    ws.connect()
    try:
        messages = [f"{index}:" + "x" * (index * 37 % 5000) for index in range(400)]
        for message in messages:
            ws.send(message)
        assert [received.get(timeout=TIMEOUT) for _ in messages] == messages
        time.sleep(0.5)  # keepalive PINGs go out and their PONGs come back through both TLS layers
        assert ws.is_open
        assert ws.stats().last_rtt is not None
    finally:
        ws.disconnect()
