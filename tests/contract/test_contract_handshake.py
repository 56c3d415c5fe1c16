"""The opening handshake on every front-end (RFC 6455 §4.1): what the request carries, the subprotocol,
redirects and refusals from an aiohttp server, URLs refused at construction, and TLS verification
(on by default, ``ssl=False``, SNI, ``server_hostname``).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from adapters import Client

from servers import AiohttpServer, WebsocketsServer, echo, headers_json, tls_certs
from wsfast import InvalidStatus, InvalidURL, TLSError

# --------------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------------


def request_seen(client: Client) -> dict[str, Any]:
    """The request as the ``headers_json`` server saw it; ``lower``: header values by lower-case name."""
    info: dict[str, Any] = json.loads(client.recv())
    info["lower"] = {}
    for name, value in info["headers"]:
        info["lower"].setdefault(name.lower(), []).append(value)
    return info


def test_headers_origin_user_agent_token_and_subprotocol(client: Client) -> None:
    with WebsocketsServer(headers_json, subprotocols=["chat"]) as server:
        client.open(
            server.url("/path?q=1"),
            subprotocols=["superchat", "chat"],
            headers={"X-Api-Key": "k1"},
            origin="https://app.example",
            user_agent="tester/9",
            token="tok123",
        )
        assert client.raw.subprotocol == "chat"
        info = request_seen(client)
        lower = info["lower"]
        assert info["path"] == "/path?q=1"
        assert info["subprotocol"] == "chat"
        assert lower["sec-websocket-protocol"] == ["superchat, chat"]
        assert lower["x-api-key"] == ["k1"]
        assert lower["origin"] == ["https://app.example"]
        assert lower["user-agent"] == ["tester/9"]
        assert lower["authorization"] == ["Bearer tok123"]
        assert lower["sec-websocket-version"] == ["13"]
        assert lower["host"] == [f"127.0.0.1:{server.port}"]


def test_default_user_agent_and_no_subprotocol(client: Client) -> None:
    with WebsocketsServer(headers_json) as server:
        client.open(server.url())
        assert client.raw.subprotocol is None
        lower = request_seen(client)["lower"]
        assert lower["user-agent"][0].startswith("wsfast/")
        assert "sec-websocket-protocol" not in lower


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/", "https://127.0.0.1/", "ftp://x/", "127.0.0.1:80", "ws://h/#frag"]
)
def test_unknown_scheme_is_invalid_url(client: Client, url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        client.construct(url)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------------
# aiohttp: echo, redirects, refusal
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aiohttp_server() -> Iterator[AiohttpServer]:
    with AiohttpServer() as server:
        yield server


@pytest.mark.parametrize("path", ["/ws", "/redirect302", "/redirect307", "/redirect-absolute"])
def test_aiohttp_echo_and_redirects(client: Client, aiohttp_server: AiohttpServer, path: str) -> None:
    mark = len(aiohttp_server.hits)
    client.open(aiohttp_server.url(path))
    assert client.raw.response.status == 101
    assert aiohttp_server.hits[mark:] == ([path] if path == "/ws" else [path, "/ws"])
    client.send("text")
    client.send(b"bin")
    assert client.recv_many(2) == ["text", b"bin"]
    client.close()
    assert client.close_code == 1000


def test_aiohttp_refusal_with_a_body(client: Client, aiohttp_server: AiohttpServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        client.open(aiohttp_server.url("/forbidden"))
    assert info.value.status == 403
    assert info.value.body == AiohttpServer.FORBIDDEN_BODY
    assert info.value.headers["x-reason"] == "test"
    assert client.events.seen == []


# --------------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default(client: Client, wss_server: WebsocketsServer) -> None:
    """The test CA is not among the system's: refused, the hop and stage named, the cause kept."""
    with pytest.raises(TLSError) as info:
        client.open(wss_server.url(host="localhost"))
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert (info.value.hop, info.value.stage) == ("server", "tls")
    assert client.events.seen == []


def test_tls_with_a_host_name_sends_it_as_sni(
    client: Client, wss_server: WebsocketsServer, certs: Any
) -> None:
    client.open(wss_server.url(host="localhost"), ssl=certs.client_context)
    assert certs.sni[-1] == "localhost"
    client.send("secure")
    assert client.recv() == "secure"


def test_tls_verification_disabled(client: Client, wss_server: WebsocketsServer) -> None:
    client.open(wss_server.url(host="localhost"), ssl=False)
    client.send("unverified")
    assert client.recv() == "unverified"


def test_tls_server_hostname_override(client: Client) -> None:
    certs = tls_certs("stream.example.test")
    with WebsocketsServer(echo, ssl_context=certs.server_context) as server:
        # The certificate does not name 127.0.0.1: the check fails without the override...
        with pytest.raises(TLSError) as info:
            client.open(server.url(), ssl=certs.client_context)
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
        # ...and passes with it; the override is also the SNI name.
        client.open(server.url(), ssl=certs.client_context, server_hostname="stream.example.test")
        assert certs.sni[-1] == "stream.example.test"
        client.send("sni")
        assert client.recv() == "sni"
