"""wsfast.Connection: validated options, config round trip, the scheme registry, file and environment
loading, info() without secrets, and ping() against real servers on 127.0.0.1 (both codec twins)."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import socket
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wsfast
import wsfast.connection
from servers import WebsocketsServer, echo
from wsfast import (
    Connection,
    InvalidURL,
    OptionError,
    OptionTypeError,
    PingResult,
    connection_from_url,
    connections_from_env,
    load_connections,
    register_scheme,
)
from wsfast.connection import connection_class, parse_connections, registered_schemes, unregister_scheme

pytest_plugins = ["conftest_client"]

TIMEOUT = 10.0
SECRET = "s3cret-value"
requires_tomllib = pytest.mark.skipif(sys.version_info < (3, 11), reason="reading TOML needs tomllib (3.11+)")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def secret_connection() -> Connection:
    return Connection(
        "feed",
        f"wss://user:{SECRET}@stream.example.com:9443/ws?x=1",
        description="the feed",
        options={
            "token": SECRET,
            "headers": {"Authorization": f"Basic {SECRET}", "X-Api-Key": "public"},
            "proxy": f"http://proxyuser:{SECRET}@127.0.0.1:3128",
            "timeout": "5",
        },
        tags={"team": "md", "tier": 1},
    )


class TestConstruction:
    def test_options_are_validated_and_coerced(self) -> None:
        conn = Connection("c", "ws://127.0.0.1:9/", options={"timeout": "5", "max_queue": "10", "ssl": "no"})
        assert conn.option_values == {"timeout": 5.0, "max_queue": 10, "ssl": False}

    def test_unknown_option_names_close_matches(self) -> None:
        with pytest.raises(OptionError, match="did you mean 'max_queue'"):
            Connection("c", "ws://127.0.0.1/", options={"max_queu": 1})

    def test_wrong_types(self) -> None:
        with pytest.raises(OptionTypeError):
            Connection("c", "ws://127.0.0.1/", options={"max_redirects": [1]})
        with pytest.raises(OptionError):
            Connection("c", "ws://127.0.0.1/", options={"timeout": "later"})
        with pytest.raises(OptionError, match="name"):
            Connection("", "ws://127.0.0.1/")
        with pytest.raises(OptionError, match="tags"):
            Connection("c", "ws://127.0.0.1/", tags=["a"])  # type: ignore[arg-type]
        with pytest.raises(OptionError, match="monitor"):
            Connection("c", "ws://127.0.0.1/", monitor="perhaps")  # type: ignore[arg-type]

    def test_attributes(self) -> None:
        conn = Connection("c", "ws://127.0.0.1/", monitor="no", enabled=True, locked="1", debug_data=False)  # type: ignore[arg-type]
        assert (conn.monitor, conn.enabled, conn.locked, conn.debug_data) == (False, True, True, False)
        assert (conn.status, conn.up, conn.last_check) == ("not checked", False, None)

    def test_bad_urls(self) -> None:
        with pytest.raises(InvalidURL):
            Connection("c", "http://127.0.0.1/")
        with pytest.raises(InvalidURL):
            Connection("c", "ws://")
        with pytest.raises(InvalidURL):
            Connection("c", 42)  # type: ignore[arg-type]

    def test_options_describe_the_registry(self) -> None:
        described = Connection.options()
        assert list(described) == [option.name for option in wsfast.options.OPTIONS]
        assert described["token"].sensitive
        assert "max_queue" in Connection.options("asyncio")
        assert "max_queue" not in Connection.options("threaded")

    def test_equality(self) -> None:
        first, second = secret_connection(), secret_connection()
        assert first == second
        second.status = "OK"  # status is not part of the identity
        assert first == second
        assert first != Connection("feed", first.url, description="the feed")
        assert first != Connection("other", first.url)
        assert Connection("c", "ws://127.0.0.1/", tags={"a": 1}) != Connection(
            "c", "ws://127.0.0.1/", tags={"a": 2}
        )
        with pytest.raises(TypeError):
            hash(first)


class TestConfig:
    def test_round_trip_through_json(self) -> None:
        conn = secret_connection()
        config = conn.config()
        text = json.dumps(config)
        again = Connection.from_config(json.loads(text))
        assert again == conn
        assert again.config() == config
        assert config["url"] == conn.url  # a config is a secret: it keeps the password
        assert config["attributes"]["tags"] == {"team": "md", "tier": 1}

    def test_round_trip_of_every_serialisable_type(self) -> None:
        conn = Connection(
            "all",
            "ws://127.0.0.1:1/",
            options={
                "compression": wsfast.Deflate(server_max_window_bits=10, level=3),
                "subprotocols": ["a", "b"],
                "overflow": "drop_oldest",
                "ssl": False,
                "max_message_size": None,
                "text_as_bytes": True,
                "close_timeout": 2,
                "warn_slow_operation": 0.5,
            },
            monitor=False,
            locked=True,
            debug_data=True,
        )
        assert Connection.from_config(json.loads(json.dumps(conn.config()))) == conn

    def test_callables_are_not_serialisable(self) -> None:
        conn = Connection(
            "c", "ws://127.0.0.1/", options={"on_ping": print, "timeout": 2, "events": queue.Queue()}
        )
        with pytest.raises(OptionError, match=r"'on_ping', 'events'.*run time"):
            conn.config()
        config = conn.config(omit_unserialisable=True)
        assert config["options"] == {"timeout": 2.0}
        assert Connection.from_config(config) != conn  # the callables must be passed again at run time

    def test_bad_configs(self) -> None:
        with pytest.raises(OptionError, match="unknown connection config keys"):
            Connection.from_config({"name": "c", "url": "ws://h/", "opts": {}})
        with pytest.raises(OptionError, match="needs a 'url'"):
            Connection.from_config({"name": "c"})
        with pytest.raises(OptionError, match="unknown connection attributes"):
            Connection.from_config({"name": "c", "url": "ws://h/", "attributes": {"color": "red"}})
        with pytest.raises(OptionError, match="mapping"):
            Connection.from_config(["c"])  # type: ignore[arg-type]


class TestInfo:
    def test_info_never_shows_the_password(self) -> None:
        conn = secret_connection()
        info = conn.info()
        assert SECRET not in json.dumps(info)
        assert info["url"] == "wss://user@stream.example.com:9443/ws?x=1"
        assert info["options"]["token"] == wsfast.options.MASK
        assert dict(info["options"]["headers"]) == {
            "Authorization": wsfast.options.MASK,
            "X-Api-Key": "public",
        }
        assert info["options"]["proxy"] == f"http://proxyuser:{wsfast.options.MASK}@127.0.0.1:3128"
        assert info["options"]["timeout"] == 5.0
        assert (info["name"], info["description"], info["type"]) == ("feed", "the feed", "wss")
        assert SECRET not in repr(conn)
        assert SECRET not in conn.safe_url

    def test_info_with_password(self) -> None:
        info = secret_connection().info(with_password=True)
        assert info["url"] == f"wss://user:{SECRET}@stream.example.com:9443/ws?x=1"
        assert info["options"]["token"] == SECRET
        json.dumps(info)

    def test_info_shows_callables_by_name(self) -> None:
        def on_pong(payload: bytes) -> None:
            pass

        info = Connection("c", "ws://127.0.0.1/", options={"on_pong": on_pong}).info()
        assert "on_pong" in info["options"]["on_pong"]
        json.dumps(info)

    def test_url_without_user_keeps_no_at(self) -> None:
        assert Connection("c", f"ws://:{SECRET}@127.0.0.1/").safe_url == "ws://127.0.0.1/"


class EchoConnection(Connection):
    """A custom scheme: ``local://PORT/path`` means ``ws://127.0.0.1:PORT/path``."""

    schemes = ("local",)

    def client_url(self) -> str:
        return "ws://127.0.0.1:" + self.url.removeprefix("local://")


@pytest.fixture
def local_scheme() -> Iterator[None]:
    register_scheme("local", EchoConnection)
    yield
    unregister_scheme("local")


class TestSchemes:
    def test_ws_and_wss(self) -> None:
        assert registered_schemes()["ws"] is Connection
        assert type(connection_from_url("wss://stream.example.com/ws")) is Connection
        conn = connection_from_url("ws://127.0.0.1:1/x", options={"timeout": "1"}, description="d")
        assert (conn.name, conn.description, conn.option_values) == ("127.0.0.1", "d", {"timeout": 1.0})
        assert connection_from_url("ws://127.0.0.1/", name="mine").name == "mine"

    def test_unknown_scheme(self) -> None:
        with pytest.raises(InvalidURL, match=r"no connection class for ftp://"):
            connection_from_url("ftp://127.0.0.1/")
        with pytest.raises(InvalidURL, match="without a scheme"):
            connection_class("127.0.0.1:80")

    def test_register_a_scheme(self, local_scheme: None) -> None:
        conn = connection_from_url("local://1234/path")
        assert type(conn) is EchoConnection
        assert conn.client_url() == "ws://127.0.0.1:1234/path"
        again = Connection.from_config(conn.config())
        assert type(again) is EchoConnection
        assert again == conn
        with pytest.raises(InvalidURL):
            EchoConnection("c", "ws://127.0.0.1/")  # the class serves local:// only

    def test_registering_twice(self, local_scheme: None) -> None:
        register_scheme("local", EchoConnection)  # the same class again: fine
        with pytest.raises(ValueError, match="already registered"):
            register_scheme("local", Connection)
        register_scheme("local", Connection, replace=True)
        assert connection_class("local://x") is Connection
        with pytest.raises(TypeError):
            register_scheme("x", dict)  # type: ignore[arg-type]

    def test_custom_scheme_connects(self, local_scheme: None, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server:
            conn = connection_from_url(
                f"local://{server.port}/", options={"timeout": 5, "implementation": codec_impl.name}
            )
            assert conn.ping().ok


TOML = """
[connections.trades]
url = "wss://stream.example.com/ws"
description = "trades"
attributes = { monitor = false, tags = { team = "md" } }
options = { timeout = "5", headers = { "X-Api-Key" = "k" }, compression = { level = 3 } }

[connections.local]
url = "ws://127.0.0.1:1/"
"""


class TestLoading:
    @requires_tomllib
    def test_toml(self, tmp_path: Path) -> None:
        path = tmp_path / "connections.toml"
        path.write_text(TOML, encoding="utf-8")
        connections = load_connections(path)
        assert list(connections) == ["trades", "local"]
        trades = connections["trades"]
        assert (trades.description, trades.monitor, trades.tags) == ("trades", False, {"team": "md"})
        assert trades.option_values["timeout"] == 5.0
        assert trades.option_values["compression"] == wsfast.Deflate(level=3)

    @requires_tomllib
    def test_json_is_the_same(self, tmp_path: Path) -> None:
        toml_path = tmp_path / "c.toml"
        toml_path.write_text(TOML, encoding="utf-8")
        from_toml = load_connections(toml_path)
        json_path = tmp_path / "c.json"
        data = {
            "connections": {
                name: {k: v for k, v in c.config().items() if k != "name"} for name, c in from_toml.items()
            }
        }
        json_path.write_text(json.dumps(data), encoding="utf-8")
        assert load_connections(json_path) == from_toml

    def test_environment(self, tmp_path: Path) -> None:
        inline = json.dumps({"connections": {"a": {"url": "ws://127.0.0.1:1/", "options": {"timeout": "2"}}}})
        connections = connections_from_env(environ={"WSFAST_CONNECTIONS": inline})
        assert connections["a"].option_values == {"timeout": 2.0}
        path = tmp_path / "c.json"
        path.write_text(inline, encoding="utf-8")
        assert connections_from_env(environ={"WSFAST_CONNECTIONS": str(path)}) == connections
        assert connections_from_env(environ={}) == {}
        assert connections_from_env("OTHER", environ={"OTHER": inline}) == connections

    @requires_tomllib
    def test_environment_names_a_toml_file(self, tmp_path: Path) -> None:
        path = tmp_path / "c.toml"
        path.write_text(TOML, encoding="utf-8")
        assert list(connections_from_env(environ={"WSFAST_CONNECTIONS": str(path)})) == ["trades", "local"]

    def test_errors_name_the_source_and_connection(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"connections": {"x": {"url": "ws://h/", "options": {"timout": 1}}}}))
        with pytest.raises(OptionError, match=r"bad.json: connection 'x': unknown option 'timout'"):
            load_connections(path)
        path.write_text("{not json")
        with pytest.raises(OptionError, match="not valid JSON"):
            load_connections(path)
        other = tmp_path / "c.yaml"
        other.write_text("connections: {}")
        with pytest.raises(OptionError, match=r"\.toml or \.json"):
            load_connections(other)
        with pytest.raises(OptionError, match="no 'connections' table"):
            parse_connections({"trades": {}})
        with pytest.raises(InvalidURL, match="connection 'x'"):
            parse_connections({"connections": {"x": {"url": "http://h/"}}})

    @requires_tomllib
    def test_broken_toml(self, tmp_path: Path) -> None:
        (tmp_path / "broken.toml").write_text("[connections")
        with pytest.raises(OptionError, match="not valid TOML"):
            load_connections(tmp_path / "broken.toml")

    def test_toml_without_tomllib(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(wsfast.connection, "_toml", None)  # what Python 3.10 has
        path = tmp_path / "c.toml"
        path.write_text(TOML, encoding="utf-8")
        with pytest.raises(OptionError, match=r"TOML needs Python 3\.11.*use a \.json file"):
            load_connections(path)


class TestAgainstServers:
    def test_ping_reachable(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server:
            conn = Connection(
                "echo",
                server.url(),
                description="local echo",
                options={"timeout": "5", "implementation": codec_impl.name},
            )
            result = conn.ping()
            assert isinstance(result, PingResult)
            assert (result.ok, result.info, result.error) == (True, "OK", None)
            assert 0 < result.time < TIMEOUT
            assert (result.name, result.description, result.url) == ("echo", "local echo", server.url())
            assert (conn.status, conn.up) == ("OK", True)
            assert conn.last_check is not None
            assert server.wait_closes(1) == [(1000, "")]

    def test_ping_unreachable(self) -> None:
        conn = Connection("down", f"ws://user:{SECRET}@127.0.0.1:{closed_port()}/", options={"timeout": 5})
        result = conn.ping()
        assert not result.ok
        # An OpeningError naming the hop, the socket's error as its cause (issue 15).
        assert isinstance(result.error, wsfast.OpeningError)
        assert isinstance(result.error.__cause__, ConnectionRefusedError)
        assert result.info.startswith("OpeningError: ")
        assert SECRET not in result.url
        assert (conn.up, conn.status) == (False, result.info)
        with pytest.raises(wsfast.OpeningError):
            conn.ping(raise_error=True)

    def test_ping_async(self, codec_impl: types.SimpleNamespace) -> None:
        with WebsocketsServer(echo) as server:
            conn = Connection("echo", server.url(), options={"implementation": codec_impl.name})
            assert asyncio.run(conn.ping_async()).ok
            down = Connection("down", f"ws://127.0.0.1:{closed_port()}/")
            result = asyncio.run(down.ping_async())
            assert not result.ok
            assert isinstance(result.error, OSError)

    def test_get_returns_a_connected_client(self, codec_impl: types.SimpleNamespace) -> None:
        messages: queue.Queue[Any] = queue.Queue()
        closed = threading.Event()
        with WebsocketsServer(echo) as server:
            conn = Connection(
                "echo",
                server.url(),
                options={"timeout": "5", "max_queue": 4, "implementation": codec_impl.name},
            )
            client = conn.get(callback=messages.put, on_close=lambda code, reason: closed.set())
            assert client.is_open
            client.send("hello")
            assert messages.get(timeout=TIMEOUT) == "hello"
            client.disconnect()
            assert closed.wait(TIMEOUT)
            unconnected = conn.get(connect=False)
            assert not unconnected.is_open
            with pytest.raises(OptionError, match=r"not accepted by wsfast\.WebSocketClient"):
                conn.get(max_queue=3)

    def test_get_async_returns_a_connected_websocket(self, codec_impl: types.SimpleNamespace) -> None:
        async def main(url: str) -> None:
            conn = Connection(
                "echo", url, options={"timeout": "5", "max_queue": "4", "implementation": codec_impl.name}
            )
            ws = await conn.get_async()
            await ws.send("hello")
            assert await ws.recv(timeout=TIMEOUT) == "hello"
            await ws.close()
            async with conn.connector(text_as_bytes=True) as ws2:
                await ws2.send("again")
                assert await ws2.recv(timeout=TIMEOUT) == b"again"

        with WebsocketsServer(echo) as server:
            asyncio.run(main(server.url()))

    def test_debug_data_logs_the_events(self, caplog: pytest.LogCaptureFixture) -> None:
        with WebsocketsServer(echo) as server, caplog.at_level(logging.DEBUG, logger="wsfast"):
            Connection("echo", server.url(), debug_data=True).ping(raise_error=True)
        text = caplog.text
        assert "HostnameLookup(" in text
        assert "ResponseReceived(" in text
        assert "DataSent(" in text
        assert "data=b'" in text
