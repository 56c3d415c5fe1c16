"""The security defaults of docs/security.md that other test files do not already check.

Already covered elsewhere: certificate verification end to end (test_client.py, test_asyncio_client.py,
test_hostile.py), masks differing per frame (test_codec_encoder.py), the handshake size limits and
deadlines against hostile servers (test_hostile.py, test_handshake.py), the threaded client dropping
credentials on a cross-origin redirect (test_client.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import ssl
import struct
import threading
from typing import Any

import pytest

import wsfast
from servers import RawConnection, RawServer, redirect_response, server_frame
from wsfast import ConnectionClosedError, InvalidStatus, InvalidURL
from wsfast.client import WebSocketClient
from wsfast.config import make_ssl_context
from wsfast.http11 import MAX_BODY_SIZE, MAX_HEAD_SIZE, MAX_HEADERS

DEFAULT_MAX_MESSAGE_SIZE = 64 * 2**20
SECRETS = ("S3CRET-PASSWORD", "S3CRET-TOKEN", "S3CRET-COOKIE", "S3CRET-PROXY")


class TestDocumentedDefaults:
    def test_tls_context_verifies_certificates_and_hostnames(self) -> None:
        context = make_ssl_context(None)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2

    def test_client_defaults(self) -> None:
        threaded = inspect.signature(WebSocketClient).parameters
        assert threaded["max_message_size"].default == DEFAULT_MAX_MESSAGE_SIZE
        assert threaded["timeout"].default == 15.0  # also the handshake deadline
        assert threaded["ssl"].default is None  # None: verify
        assert threaded["max_redirects"].default == 5
        asyncio_ = inspect.signature(wsfast.connect).parameters
        assert asyncio_["max_message_size"].default == DEFAULT_MAX_MESSAGE_SIZE
        assert asyncio_["open_timeout"].default == 10.0  # TCP, TLS, handshake and redirects together
        assert asyncio_["ssl"].default is None
        assert asyncio_["max_redirects"].default == 5
        assert asyncio_["compression"].default is None  # no permessage-deflate unless asked for

    def test_handshake_limits(self) -> None:
        assert MAX_HEAD_SIZE == 64 * 1024
        assert MAX_HEADERS == 256
        assert MAX_BODY_SIZE == 64 * 1024

    def test_masking_keys_come_from_os_urandom(self, impl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        # RFC 6455 §10.3: masking keys from a strong source of entropy. Both twins draw them from
        # os.urandom (a pool of 256 keys at a time), never from the random module.
        calls: list[int] = []

        def urandom(size: int) -> bytes:
            calls.append(size)
            return bytes((i * 7 + 3) % 256 for i in range(size))

        monkeypatch.setattr(os, "urandom", urandom)
        encoder = impl.Encoder()
        frames = [encoder.encode(b"payload", 0x2) for _ in range(3)]
        assert calls == [1024]
        keys = [frame[2:6] for frame in frames]
        assert keys == [urandom(1024)[4 * i : 4 * i + 4] for i in range(3)]


def claim_just_over_the_default_limit(conn: RawConnection) -> None:
    conn.accept(bytes([0x82, 0x7F]) + struct.pack("!Q", DEFAULT_MAX_MESSAGE_SIZE + 1))
    conn.read_until_eof()


class TestDefaultMessageLimit:
    """With no options, a message over 64 MiB is refused with 1009 as soon as its header arrives."""

    def test_threaded(self) -> None:
        closed = threading.Event()
        codes: list[int] = []

        def on_close(code: int, reason: str) -> None:
            codes.append(code)
            closed.set()

        with RawServer(claim_just_over_the_default_limit) as server:
            client = WebSocketClient(None, server.url(), on_close=on_close)
            client.connect()
            assert closed.wait(10)
        assert codes == [1009]

    def test_asyncio(self) -> None:
        async def main(url: str) -> None:
            async with wsfast.connect(url) as ws:
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.code == 1009

        with RawServer(claim_just_over_the_default_limit) as server:
            asyncio.run(asyncio.wait_for(main(server.url()), 10))


class TestAsyncioRedirectCredentials:
    @pytest.mark.parametrize("url_credentials", [False, True])
    def test_credentials_stay_with_their_origin(self, url_credentials: bool) -> None:
        with RawServer(lambda conn: conn.accept() or conn.finish_closing_handshake()) as target:

            def redirector(conn: RawConnection) -> None:
                conn.read_request()
                location = "/same-origin" if conn.index == 0 else target.url("/other-origin")
                conn.send(redirect_response(location))

            with RawServer(redirector) as origin:
                if url_credentials:
                    url, options = f"ws://user:pw@127.0.0.1:{origin.port}/a", {}
                else:
                    url = origin.url("/a")
                    options = {"token": "t0ken", "headers": {"Cookie": "session=1", "X-Keep": "yes"}}

                async def main() -> None:
                    async with wsfast.connect(url, **options) as ws:
                        assert ws.url == f"ws://127.0.0.1:{target.port}/other-origin"

                asyncio.run(asyncio.wait_for(main(), 10))
                first, same = origin.connections[0], origin.connections[1]
        moved = target.connections[0]
        for conn in (first, same):  # a redirect within the origin keeps them
            assert conn.header("Authorization") is not None
        assert moved.header("Authorization") is None
        assert moved.header("Cookie") is None
        if not url_credentials:
            assert same.header("Cookie") == "session=1"
            assert moved.header("X-Keep") == "yes"


class TestCredentialsAreNeverLogged:
    """Passwords, tokens and cookies never appear in log records, log hooks, reprs or error messages."""

    @staticmethod
    def server(conn: RawConnection) -> None:
        conn.read_request()
        if conn.index == 0:
            conn.send(redirect_response("/moved"))  # same origin: credentials follow
        elif conn.index == 1:
            conn.accept()
            conn.send(server_frame(0x1, "hello"))
            conn.finish_closing_handshake()
        else:
            conn.send(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nrefuse")

    def check(self, texts: list[str]) -> None:
        joined = "\n".join(texts)
        assert joined, "nothing was logged: the test would prove nothing"
        for secret in SECRETS:
            assert secret not in joined, f"{secret} leaked:\n{joined}"

    def test_threaded(self, caplog: pytest.LogCaptureFixture) -> None:
        lines: list[str] = []
        texts: list[str] = []
        with caplog.at_level(logging.DEBUG), RawServer(self.server) as server:
            url = f"ws://user:S3CRET-PASSWORD@127.0.0.1:{server.port}/feed"
            options: dict[str, Any] = dict(
                token="S3CRET-TOKEN",
                headers={"Cookie": "id=S3CRET-COOKIE"},
                log=lines.append,
                errlog=lines.append,
                debuglog=lines.append,
            )
            client = WebSocketClient(lambda message: None, url, **options)
            client.connect()
            texts += [repr(client), str(client._url), repr(client._config)]
            client.disconnect()
            with pytest.raises(InvalidStatus) as refused:
                client.connect()
            texts.append(str(refused.value))
            for bad in ("ws://user:S3CRET-PASSWORD@host:99999/", "http://user:S3CRET-PASSWORD@host/"):
                with pytest.raises(InvalidURL) as invalid:
                    WebSocketClient(None, bad)
                texts.append(str(invalid.value))
            # The option registry rejects the proxy at construction (wsfast.options), password masked.
            with pytest.raises(wsfast.OptionError) as proxy_error:
                WebSocketClient(None, "ws://127.0.0.1:1/", proxy="ftp://u:S3CRET-PROXY@p:1")
            texts.append(str(proxy_error.value))
        self.check(lines + texts + [caplog.text])

    def test_asyncio(self, caplog: pytest.LogCaptureFixture) -> None:
        texts: list[str] = []

        async def main(port: int) -> None:
            url = f"ws://user:S3CRET-PASSWORD@127.0.0.1:{port}/feed"
            options: dict[str, Any] = dict(token="S3CRET-TOKEN", headers={"Cookie": "id=S3CRET-COOKIE"})
            async with wsfast.connect(url, **options) as ws:
                texts.extend([repr(ws), str(ws.url), await ws.recv()])
            with pytest.raises(InvalidStatus) as refused:
                await wsfast.connect(url, **options)
            texts.append(str(refused.value))
            with pytest.raises(wsfast.OptionError) as proxy_error:
                wsfast.connect("ws://127.0.0.1:1/", proxy="ftp://u:S3CRET-PROXY@p:1")
            texts.append(str(proxy_error.value))
            # A supported proxy is kept; the configuration's repr masks its password and the token.
            config = wsfast.connect(url, proxy="socks5://u:S3CRET-PROXY@p:1", **options)._config
            texts.append(repr(config))

        with caplog.at_level(logging.DEBUG), RawServer(self.server) as server:
            asyncio.run(asyncio.wait_for(main(server.port), 10))
        self.check([*texts, caplog.text])


def test_the_command_line_never_prints_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    from wsfast.cli import main

    def server(conn: RawConnection) -> None:
        conn.accept(server_frame(0x1, "hello"))
        conn.finish_closing_handshake()

    with RawServer(server) as good:
        assert main([f"ws://user:S3CRET-PASSWORD@127.0.0.1:{good.port}/", "--count", "1"]) == 0
    with RawServer(lambda conn: conn.read_request() and conn.send(b"HTTP/1.1 403 No\r\n\r\n")) as refusing:
        assert main([f"ws://user:S3CRET-PASSWORD@127.0.0.1:{refusing.port}/"]) == 1
    output = capsys.readouterr()
    assert "connected to ws://user:***@127.0.0.1" in output.err
    assert "cannot connect to ws://user:***@127.0.0.1" in output.err
    assert "S3CRET" not in output.out + output.err
