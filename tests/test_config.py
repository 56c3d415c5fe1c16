"""The frozen configuration (wsfast.config.Config) both constructors build once from the option registry:
defaults defined once, derived values, refusals at construction (unknown names with "did you mean",
headers, ssl= with ws://, contradictory options), the codec twin the implementation option selects."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wsfast
from wsfast import Deflate, OptionError, OptionTypeError, ReconnectPolicy, options
from wsfast._impl import codec_twins
from wsfast.config import Config, checks_options, codec_twin
from wsfast.options import ASYNCIO, CLIENTS, REQUIRED, SYNC, THREADED

URL = "ws://127.0.0.1:9/feed"
BUILDERS: dict[str, Callable[..., Any]] = {
    THREADED: lambda url, **kw: wsfast.WebSocketClient(kw.pop("callback", None), url, **kw),
    ASYNCIO: lambda url, **kw: wsfast.connect(url, **kw),
    SYNC: lambda url, **kw: wsfast.sync.connect(url, **kw),
}


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def build(client: str, url: str = URL, **kwargs: Any) -> Any:
    """A constructed (unconnected) client of kind *client*."""
    return BUILDERS[client](url, **kwargs)


class TestBuild:
    def test_every_option_holds_its_registry_default(self, client: str) -> None:
        config = Config.build(client, {"url": URL, "callback": None})
        assert set(config.values) == {option.name for option in options.client_options(client)}
        for option in options.client_options(client):
            if option.default is not REQUIRED:
                assert config[option.name] == option.default, option.name

    def test_the_constructors_store_the_same_config(self, client: str) -> None:
        config = build(client, token="t", compression="deflate")._config
        assert isinstance(config, Config)
        assert config.client == client
        assert config["token"] == "t"
        assert config.authorization == "Bearer t"
        assert config.compression == Deflate()

    def test_the_protocol_and_the_lifecycle_follow_the_options(self, client: str) -> None:
        config = Config.build(
            client,
            {"url": URL, "callback": None, "on_ping": print, "max_message_size": 99, "text_as_bytes": True},
        )
        protocol = config.new_protocol()
        assert not protocol.auto_pong
        assert protocol.codec is config.codec
        assert protocol.receive_data(b"\x81\x02hi") == [b"hi"]  # text_as_bytes
        protocol.receive_data(b"\x82\x64" + b"x" * 100)  # over max_message_size: 1009
        assert protocol.close_code == 1009
        assert Config.build(client, {"url": URL, "callback": None}).new_protocol().auto_pong
        lifecycle = Config.build(
            client,
            {"url": URL, "callback": None, "ping_interval": 3.0, "idle_timeout": 7.0, "reconnect": True},
        ).new_lifecycle()
        assert (lifecycle.ping_interval, lifecycle.idle_timeout, lifecycle.on_idle) == (3.0, 7.0, False)
        assert lifecycle.policy == ReconnectPolicy()

    def test_frozen_and_read_only(self) -> None:
        config = Config.build(ASYNCIO, {"url": URL})
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.url = config.url  # type: ignore[misc]
        with pytest.raises(TypeError):
            config.values["open_timeout"] = 1.0  # type: ignore[index]
        with pytest.raises(KeyError):
            config["raw_hook"]  # the threaded client's option only

    def test_derived_values(self) -> None:
        policy = ReconnectPolicy(max_attempts=3)
        config = Config.build(
            ASYNCIO,
            {
                "url": "wss://user:pw@example.com:8443/ws?x=1",
                "headers": {"X-Api-Key": "k"},
                "token": "abc",
                "token_type": "Token",
                "compression": "permessage-deflate",
                "reconnect": policy,
                "subprotocols": ["chat"],
            },
        )
        assert (config.url.host, config.url.port, config.url.resource) == ("example.com", 8443, "/ws?x=1")
        assert config.url_text == "wss://user:pw@example.com:8443/ws?x=1"
        assert config.headers == (("X-Api-Key", "k"),)
        assert isinstance(config.headers, tuple)
        assert config.authorization == "Token abc"
        assert config.compression == Deflate()
        assert config.reconnect is policy
        assert Config.build(ASYNCIO, {"url": URL, "reconnect": True}).reconnect == ReconnectPolicy()
        assert Config.build(ASYNCIO, {"url": URL}).reconnect is None

    def test_connect_timeout_defaults_to_open_timeout(self) -> None:
        assert Config.build(THREADED, {"url": URL, "callback": None}).connect_timeout == 10.0
        config = Config.build(THREADED, {"url": URL, "callback": None, "open_timeout": 4})
        assert config.connect_timeout == 4.0
        config = Config.build(
            THREADED, {"url": URL, "callback": None, "open_timeout": 4, "connect_timeout": 2}
        )
        assert config.connect_timeout == 2.0
        client = wsfast.WebSocketClient(None, URL, open_timeout=3)
        assert (client._config.connect_timeout, client._config["open_timeout"]) == (3.0, 3)

    def test_repr_masks_secrets(self) -> None:
        config = Config.build(
            ASYNCIO,
            {
                "url": "ws://user:urlpass@h/",
                "token": "s3cret",
                "headers": {"Cookie": "id=s3cret"},
                "proxy": "socks5://u:proxypass@p:1080",
            },
        )
        text = repr(config)
        for secret in ("s3cret", "urlpass", "proxypass"):
            assert secret not in text
        assert "proxy" in text
        assert "open_timeout" not in text  # only what was given differs from the defaults
        assert config.shown()["token"] == options.MASK

    def test_close_timeout_none_on_both(self, client: str) -> None:
        assert build(client, close_timeout=None)._config["close_timeout"] is None


class TestDefaultsDefinedOnce:
    """Every default lives in the registry; the constructors' signatures repeat them for IDEs only."""

    @pytest.mark.parametrize(
        ("constructor", "client"),
        [
            (wsfast.WebSocketClient.__init__, THREADED),
            (wsfast.connect.__init__, ASYNCIO),
            (wsfast.sync.connect.__init__, SYNC),
        ],
    )
    def test_signature_defaults_equal_the_registry(self, constructor: Any, client: str) -> None:
        parameters = inspect.signature(constructor).parameters
        for option in options.client_options(client):
            default = parameters[option.name].default
            expected = inspect.Parameter.empty if option.default is REQUIRED else option.default
            assert default == expected, option.name

    def test_module_constants_read_the_registry(self) -> None:
        from wsfast import client as threaded_module
        from wsfast.asyncio import client as asyncio_module

        assert options.get_option("timeout").default == threaded_module.DEFAULT_TIMEOUT
        assert options.get_option("close_timeout").default == threaded_module.DEFAULT_CLOSE_TIMEOUT
        assert threaded_module.DEFAULT_USER_AGENT == options.DEFAULT_USER_AGENT
        assert asyncio_module.DEFAULT_USER_AGENT == options.DEFAULT_USER_AGENT


class TestUnknownKeywords:
    def test_did_you_mean_on_both(self, client: str) -> None:
        with pytest.raises(
            OptionError, match=r"unknown option 'ping_intreval'; did you mean 'ping_interval'"
        ):
            build(client, ping_intreval=5)

    def test_names_come_from_the_clients_own_options(self) -> None:
        with pytest.raises(
            OptionError, match=r"wsfast\.connect\(\) got an unknown option 'opne_timeout'"
        ) as info:
            wsfast.connect(URL, opne_timeout=1)
        assert "'open_timeout'" in str(info.value)
        with pytest.raises(OptionError, match=r"'zzz'$"):
            wsfast.WebSocketClient(None, URL, zzz=1)

    def test_the_other_clients_option(self) -> None:
        with pytest.raises(OptionError, match=r"'max_queue' is not accepted by wsfast\.WebSocketClient"):
            wsfast.WebSocketClient(None, URL, max_queue=3)
        with pytest.raises(OptionError, match=r"'raw_hook' is not accepted by wsfast\.connect"):
            wsfast.connect(URL, raw_hook=print)

    def test_signatures_stay_explicit(self) -> None:
        for constructor in (wsfast.WebSocketClient.__init__, wsfast.connect.__init__):
            kinds = {parameter.kind for parameter in inspect.signature(constructor).parameters.values()}
            assert inspect.Parameter.VAR_KEYWORD not in kinds
        assert "implementation" in inspect.signature(wsfast.WebSocketClient).parameters

    def test_checks_options_keeps_the_call(self) -> None:
        calls: list[tuple[Any, ...]] = []

        class Thing:
            @checks_options(ASYNCIO)
            def __init__(self, url: str, *, open_timeout: float = 1.0) -> None:
                calls.append((url, open_timeout))

        Thing("u", open_timeout=2.0)
        assert calls == [("u", 2.0)]
        with pytest.raises(OptionError, match="did you mean 'open_timeout'"):
            Thing("u", open_timout=2.0)
        with pytest.raises(OptionError, match=r"not accepted by wsfast\.connect"):
            Thing("u", timeout=2.0)  # the registry knows it, for the threaded client only


class TestHeaders:
    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            ({"X Api": "k"}, r"header name 'X Api' is not an RFC 9110 token"),
            ({"X-Api:": "k"}, r"header name 'X-Api:' is not an RFC 9110 token"),
            ({"": "k"}, r"header name '' is not an RFC 9110 token"),
            ({"Näme": "k"}, r"header name 'Näme'"),
            ({"X-Api": "k\r\nInjected: 1"}, r"value of header 'X-Api' contains CR, LF or NUL"),
            ([("X-Api", "k\n")], r"value of header 'X-Api'"),
            ([("X-Api", "k\x00")], r"value of header 'X-Api'"),
        ],
    )
    def test_refused_at_construction(self, client: str, headers: Any, message: str) -> None:
        with pytest.raises(OptionError, match=message):
            build(client, headers=headers)

    def test_refused_by_connection_objects(self) -> None:
        with pytest.raises(OptionError, match="header name 'Bad Name'"):
            wsfast.Connection("c", URL, options={"headers": {"Bad Name": "v"}})
        with pytest.raises(OptionError, match="value of header 'X'"):
            wsfast.Connection("c", URL, options={"headers": ["X: a\rb"]})

    def test_valid_headers_pass(self, client: str) -> None:
        tokens = "!#$%&'*+-.^_`|~09azAZ"
        config = build(client, headers=[(tokens, "any value, even: colons\t"), ("X", "")])._config
        assert config.headers == ((tokens, "any value, even: colons\t"), ("X", ""))


class TestSslWithWs:
    @pytest.mark.parametrize("value", [True, False, "context"])
    def test_refused(self, client: str, value: Any) -> None:
        setting = ssl.create_default_context() if value == "context" else value
        with pytest.raises(
            OptionError, match="ssl= applies to wss:// URLs; use a wss:// URL or leave ssl unset"
        ):
            build(client, "ws://127.0.0.1/", ssl=setting)

    def test_allowed_with_wss(self, client: str) -> None:
        context = ssl.create_default_context()
        config = build(client, "wss://127.0.0.1/", ssl=context)._config
        assert config.tls_context() is context

    def test_tls_context_is_lazy_verified_and_cached(self) -> None:
        config = Config.build(ASYNCIO, {"url": "wss://example.com/"})
        assert config._contexts == {}  # nothing built until a TLS connection needs it
        context = config.tls_context("example.com")
        assert context is config.tls_context("other.example")
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname

    def test_unverified_when_asked(self) -> None:
        context = Config.build(ASYNCIO, {"url": "wss://example.com/", "ssl": False}).tls_context()
        assert context.verify_mode is ssl.CERT_NONE
        assert not context.check_hostname

    def test_proxy_tls_context(self) -> None:
        config = Config.build(ASYNCIO, {"url": URL, "proxy": "https://proxy:3128"})
        assert config.proxy_tls_context().verify_mode is ssl.CERT_REQUIRED
        assert config.proxy_tls_context() is config.proxy_tls_context()
        assert config.proxy_tls_context() is not config.tls_context()
        mine = ssl.create_default_context()
        config = Config.build(ASYNCIO, {"url": URL, "proxy": "https://proxy:3128", "proxy_ssl": mine})
        assert config.proxy_tls_context() is mine
        config = Config.build(ASYNCIO, {"url": URL, "proxy": "https://proxy:3128", "proxy_ssl": False})
        assert config.proxy_tls_context().verify_mode is ssl.CERT_NONE


class TestRoutes:
    def test_new_options_are_stored_for_the_drivers(self, client: str, tmp_path: Path) -> None:
        context = ssl.create_default_context()
        instance = build(client, proxy="socks5h://u:p@proxy:1080", proxy_ssl=context, open_timeout=2)
        config = instance._config
        assert (config["proxy"], config["proxy_ssl"], config["open_timeout"]) == (
            "socks5h://u:p@proxy:1080",
            context,
            2,
        )
        assert build(client, unix_socket=tmp_path / "s")._config["unix_socket"] == str(tmp_path / "s")
        assert build(client, proxy=True)._config["proxy"] is True

    def test_sock_is_stored(self, client: str) -> None:
        left, right = socket.socketpair()
        with left, right:
            config = build(client, sock=left)._config
            assert config["sock"] is left
            assert config.with_headers({"X-Trace": "1"}).take_sock() is left  # copies share it
            with pytest.raises(wsfast.OpeningError, match="served the first connection"):
                config.take_sock()  # one connection only: a second connect(), reconnect()
            assert build(client)._config.take_sock() is None

    def test_at_most_one_first_hop(self, client: str) -> None:
        left, right = socket.socketpair()
        with left, right, pytest.raises(OptionError, match="give at most one"):
            build(client, unix_socket="/tmp/ws.sock", sock=left)

    def test_a_proxy_reached_through_a_unix_socket_or_a_given_socket(self, client: str) -> None:
        left, right = socket.socketpair()
        with left, right:
            assert build(client, proxy="socks5h://127.0.0.1:1080", sock=left)._config["sock"] is left
        through_unix = build(client, proxy="http://proxy:3128", unix_socket="/tmp/proxy.sock")
        assert through_unix._config["unix_socket"] == "/tmp/proxy.sock"

    def test_sock_cannot_reconnect(self, client: str) -> None:
        left, right = socket.socketpair()
        with left, right, pytest.raises(OptionError, match="reconnect needs to open new connections"):
            build(client, sock=left, reconnect=True)

    def test_bad_values(self, client: str) -> None:
        with pytest.raises(OptionError, match="unsupported proxy"):
            build(client, proxy="ftp://proxy:21")
        with pytest.raises(OptionTypeError, match="connected socket"):
            build(client, sock="127.0.0.1:80")
        with pytest.raises(OptionTypeError, match="proxy_ssl"):
            build(client, proxy_ssl=True)


class TestOnMessageOnTheThreadedClient:
    def test_on_message_is_the_callback(self) -> None:
        assert wsfast.WebSocketClient(None, URL, on_message=print)._on_message is print
        assert wsfast.WebSocketClient(print, URL)._on_message is print
        config = wsfast.WebSocketClient(None, URL, on_message=print)._config
        assert config["callback"] is config["on_message"] is print

    def test_both_is_an_error(self) -> None:
        with pytest.raises(OptionError, match="both a callback and on_message"):
            wsfast.WebSocketClient(print, URL, on_message=print)

    def test_must_be_callable(self) -> None:
        with pytest.raises(OptionTypeError, match="on_message must be callable"):
            wsfast.WebSocketClient(None, URL, on_message=42)  # type: ignore[arg-type]


class TestImplementation:
    def test_default_is_wsfasts_choice(self, client: str) -> None:
        config = build(client)._config
        assert config.implementation == wsfast.implementation
        assert config.codec is wsfast._impl.codec

    def test_python(self, client: str) -> None:
        config = build(client, implementation="python")._config
        assert config.implementation == "python"
        assert config.codec is codec_twins()["python"]

    def test_cython(self, client: str) -> None:
        if "cython" not in codec_twins():
            pytest.skip("the compiled twins are not built here (test_unavailable_cython covers the error)")
        config = build(client, implementation="cython")._config
        assert config.implementation == "cython"
        assert config.codec is codec_twins()["cython"]

    def test_unknown(self, client: str) -> None:
        with pytest.raises(OptionError, match=r"'implementation' must be one of"):
            build(client, implementation="rust")

    def test_unavailable_cython(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Simulate a build without the compiled twins: only codec_twins() is replaced.
        monkeypatch.setattr(wsfast._impl, "codec_twins", lambda: {"python": codec_twins()["python"]})
        with pytest.raises(OptionError, match=r"not available.*use implementation='python'"):
            codec_twin("cython")
        assert codec_twin("python")[0] == "python"

    def test_the_protocol_gets_the_twin(self) -> None:
        from wsfast.asyncio.client import WebSocket

        connector = wsfast.connect(URL, implementation="python")
        assert connector._config.codec is codec_twins()["python"]

        async def make() -> WebSocket:
            return WebSocket(connector)

        assert asyncio.run(make())._protocol.codec is codec_twins()["python"]

    def test_from_text(self) -> None:
        assert options.validate({"implementation": " Python "}, from_text=True) == {
            "implementation": "python"
        }
        assert options.validate({"implementation": "none"}, from_text=True) == {"implementation": None}
