"""Fixtures of the contract suite: the ``client`` of each variant, real servers and real proxies.

Every test that takes ``client`` runs once per :class:`adapters.Variant` (front-end x event loop x codec
twin); ``@pytest.mark.frontends("recv", ...)`` narrows a test to the front-ends a behaviour exists on, and
``@pytest.mark.xfail_on("sync", reason=...)`` records a known gap of a front-end as a strict xfail.
Servers and proxies are session-scoped (started once, on first use). When a test fails, the part of each
running proxy's log written during that test is added to its report.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (_HERE, os.path.dirname(_HERE)):  # adapters.py here; servers.py and proxies.py above
    if _path not in sys.path:
        sys.path.insert(0, _path)

from adapters import FRONTENDS, Client, Variant, has_codec_seam, make_client, variants  # noqa: E402
from routes import PROXY_AUTH, SOCKS_AUTH, Route  # noqa: E402

import proxies  # noqa: E402
import wsfast  # noqa: E402
from proxies import (  # noqa: E402
    Dante,
    Microsocks,
    Nginx,
    OpensshSocks,
    Relay,
    Tinyproxy,
    UnixWebsocketsServer,
    localhost_resolves_to_ipv6,
    write_certificate,
)
from servers import HOST, WebsocketsServer, echo, tls_certs  # noqa: E402

LOG_TAIL = 6000  # characters of each proxy's log shown with a failure


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "frontends(*names): run a contract test on these front-ends only")
    config.addinivalue_line(
        "markers",
        "xfail_on(*names, reason): a known gap of these front-ends (a strict xfail: it fails once fixed)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("frontends")
        chosen = variants(tuple(marker.args) if marker else FRONTENDS)
        gap = metafunc.definition.get_closest_marker("xfail_on")
        params = [
            pytest.param(v, marks=pytest.mark.xfail(strict=True, reason=gap.kwargs["reason"]))
            if gap is not None and v.frontend in gap.args
            else v
            for v in chosen
        ]
        metafunc.parametrize("variant", params, ids=[v.id for v in chosen])


# --------------------------------------------------------------------------------------------------
# Proxy logs with failures
# --------------------------------------------------------------------------------------------------

_LOG_OFFSETS = pytest.StashKey[dict[int, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LOG_OFFSETS] = {id(proxy): len(proxy.log()) for proxy in proxies.RUNNING}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    offsets = item.stash.get(_LOG_OFFSETS, {})
    for proxy in list(proxies.RUNNING):
        text = proxy.log()[offsets.get(id(proxy), 0) :]
        if text.strip():
            report.sections.append((f"log of {proxy!r} during the test", text[-LOG_TAIL:]))


# --------------------------------------------------------------------------------------------------
# The client under test
# --------------------------------------------------------------------------------------------------


def require_twin(name: str) -> None:
    """Skip (WSFAST_NO_EXTENSIONS set) or fail when the compiled twin is not importable."""
    if name != "cython":
        return
    try:
        module = importlib.import_module("wsfast._codec_c")
        path = getattr(module, "__file__", None) or ""
        if not path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            raise ImportError(f"wsfast._codec_c is not a compiled extension: {path!r}")
    except ImportError as exc:
        if os.environ.get("WSFAST_NO_EXTENSIONS") or sys.implementation.name != "cpython":
            pytest.skip(f"compiled twins disabled by WSFAST_NO_EXTENSIONS: {exc}")
        pytest.fail(f"cannot import the cython codec twin: {exc}", pytrace=False)


@pytest.fixture
def client(variant: Variant) -> Iterator[Client]:
    """An adapter for *variant* (see adapters.py); closed after the test."""
    require_twin(variant.twin)
    if variant.loop == "uvloop":
        pytest.importorskip("uvloop")
    if not has_codec_seam(variant) and variant.twin != wsfast.implementation:
        pytest.skip(f"{variant.frontend}: no implementation= option (the codec seam) in this build")
    adapter = make_client(variant)
    try:
        yield adapter
    finally:
        adapter.shutdown()


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


def peer_echo(peers: list[str]) -> Callable[[Any], Any]:
    """Echo, recording the peer address of each connection (a proxy's outgoing address, if any)."""

    async def handler(ws: Any) -> None:
        peers.append(ws.remote_address[0])
        await echo(ws)

    return handler


@pytest.fixture(scope="session")
def certs() -> Any:
    """A throw-away CA; server certificates for localhost and 127.0.0.1 (see servers.tls_certs)."""
    return tls_certs()


@pytest.fixture(scope="session")
def cert_files(certs: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_certificate(certs.ca, tmp_path_factory.mktemp("certs"))


@contextlib.contextmanager
def _echo_server(ssl_context: Any = None) -> Iterator[WebsocketsServer]:
    peers: list[str] = []
    with WebsocketsServer(peer_echo(peers), ssl_context=ssl_context) as server:
        server.peers = peers  # type: ignore[attr-defined]
        relay = Relay(server.port) if localhost_resolves_to_ipv6() else contextlib.nullcontext()
        with relay:
            yield server


@pytest.fixture(scope="session")
def ws_server() -> Iterator[WebsocketsServer]:
    """A ws:// echo server (``peers``: the peer address of each connection)."""
    with _echo_server() as server:
        yield server


@pytest.fixture(scope="session")
def wss_server(certs: Any) -> Iterator[WebsocketsServer]:
    """A wss:// echo server, its certificate from ``certs``."""
    with _echo_server(certs.server_context) as server:
        yield server


@pytest.fixture
def unix_server() -> Iterator[UnixWebsocketsServer]:
    with UnixWebsocketsServer(echo) as server:
        yield server


@pytest.fixture
def unix_tls_server(certs: Any) -> Iterator[UnixWebsocketsServer]:
    with UnixWebsocketsServer(echo, ssl_context=certs.server_context) as server:
        yield server


# --------------------------------------------------------------------------------------------------
# Proxies (each binds its outgoing connections to its own loopback address)
# --------------------------------------------------------------------------------------------------


def _started(proxy: proxies.ProxyProcess) -> Iterator[Any]:
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.cleanup()


@pytest.fixture(scope="session")
def tinyproxy() -> Iterator[Tinyproxy]:
    yield from _started(Tinyproxy(bind="127.0.0.2"))


@pytest.fixture(scope="session")
def tinyproxy_auth() -> Iterator[Tinyproxy]:
    yield from _started(Tinyproxy(auth=PROXY_AUTH, bind="127.0.0.3"))


@pytest.fixture(scope="session")
def tinyproxy_refusing() -> Iterator[Tinyproxy]:
    """CONNECT only to port 1: every tunnel the tests ask for is refused with 403."""
    yield from _started(Tinyproxy(connect_ports=[1], bind="127.0.0.2"))


@pytest.fixture(scope="session")
def microsocks() -> Iterator[Microsocks]:
    yield from _started(Microsocks(bind="127.0.0.4"))


@pytest.fixture(scope="session")
def microsocks_auth() -> Iterator[Microsocks]:
    yield from _started(Microsocks(auth=SOCKS_AUTH, bind="127.0.0.5"))


@pytest.fixture(scope="session")
def dante() -> Iterator[Dante]:
    yield from _started(Dante(bind="127.0.0.6"))


@pytest.fixture(scope="session")
def openssh_socks() -> Iterator[OpensshSocks]:
    yield from _started(OpensshSocks())


@pytest.fixture(scope="session")
def https_proxies(
    cert_files: tuple[Path, Path], tinyproxy: Tinyproxy, tinyproxy_auth: Tinyproxy
) -> Iterator[Nginx]:
    """nginx: TLS (stream module) in front of tinyproxy (``stream_ports[0]``) and of tinyproxy with
    Basic auth (``stream_ports[1]``): two HTTPS proxies."""
    nginx = Nginx(*cert_files).tls_stream(tinyproxy.port).tls_stream(tinyproxy_auth.port)
    yield from _started(nginx)


@pytest.fixture(scope="session")
def nginx_wss(cert_files: tuple[Path, Path], ws_server: WebsocketsServer) -> Iterator[Nginx]:
    """nginx terminating TLS for ``ws_server``: ``wss://127.0.0.1:<port>/``."""
    yield from _started(Nginx(*cert_files).tls_front(ws_server.port))


ROUTES = (
    "http",
    "http-auth",
    "https",
    "https-auth",
    "socks5",
    "socks5-auth",
    "socks5h",
    "socks5h-auth",
    "socks4",
    "socks4a",
)


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest, certs: Any) -> Route:
    """Each kind of proxy, on a real proxy server. socks5h and socks4a send the host name for the proxy
    to resolve (``localhost``); socks5 and socks4 resolve it in the client."""
    name: str = request.param
    get = request.getfixturevalue
    if name in ("http", "http-auth"):
        proxy = get("tinyproxy" if name == "http" else "tinyproxy_auth")
        return Route(name, proxy.url(), HOST, proxy.bind, {})
    if name in ("https", "https-auth"):
        nginx = get("https_proxies")
        behind = get("tinyproxy" if name == "https" else "tinyproxy_auth")
        auth = f"{PROXY_AUTH[0]}:{PROXY_AUTH[1]}@" if name == "https-auth" else ""
        port = nginx.stream_ports[0 if name == "https" else 1]
        url = f"https://{auth}{HOST}:{port}"
        return Route(name, url, HOST, behind.bind, {"proxy_ssl": certs.client_context})
    if name.startswith("socks5"):
        proxy = get("microsocks_auth" if name.endswith("-auth") else "microsocks")
        scheme = "socks5h" if name.startswith("socks5h") else "socks5"
        return Route(name, proxy.url(scheme), "localhost", proxy.bind, {})
    if name == "socks4":
        proxy = get("dante")
        return Route(name, proxy.url("socks4"), "localhost", proxy.bind, {})
    assert name == "socks4a"
    ssh = get("openssh_socks")
    return Route(
        name,
        ssh.url("socks4a"),
        "localhost",
        HOST,
        {},
        carried=lambda: ssh.requests().count("socks4a: host localhost"),
    )
