"""The option registry (wsfast.options): one description that agrees with both clients' constructors and
drives validation, coercion, the command line's help and docs/options.md."""

from __future__ import annotations

import inspect
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

import wsfast
from wsfast import OptionError, OptionTypeError, options
from wsfast.asyncio import OverflowPolicy
from wsfast.cli import main as cli_main
from wsfast.options import ASYNCIO, REQUIRED, SYNC, THREADED
from wsfast.proxies import DEFAULT_PROXY_PORTS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "options.md"
CONSTRUCTORS = {
    THREADED: wsfast.WebSocketClient.__init__,
    ASYNCIO: wsfast.connect.__init__,
    SYNC: wsfast.sync.connect.__init__,
}
NOT_OPTIONS = {"self", "url"}


class TestRegistryMatchesConstructors:
    @pytest.mark.parametrize("client", [THREADED, ASYNCIO, SYNC])
    def test_names_and_defaults_agree_exactly(self, client: str) -> None:
        parameters = {
            name: parameter
            for name, parameter in inspect.signature(CONSTRUCTORS[client]).parameters.items()
            if name not in NOT_OPTIONS
        }
        described = {option.name: option for option in options.client_options(client)}
        assert list(described) == [name for name in (o.name for o in options.OPTIONS) if name in parameters]
        assert set(described) == set(parameters), "an option is missing from wsfast.options or a constructor"
        for name, parameter in parameters.items():
            default = parameter.default
            expected = REQUIRED if default is inspect.Parameter.empty else default
            assert described[name].default == expected, name
            assert type(described[name].default) is type(expected) or isinstance(expected, OverflowPolicy), (
                name
            )

    def test_every_option_is_described(self) -> None:
        for option in options.OPTIONS:
            assert option.description.strip(), option.name
            assert option.clients, option.name
            assert option.clients <= set(options.CLIENTS), option.name
            assert option.type_name  # a known type
            if option.default not in (None, REQUIRED):
                assert (
                    option.for_client(next(iter(option.clients))).validate(option.default) == option.default
                )

    def test_each_default_is_accepted_by_its_client(self) -> None:
        for client in options.CLIENTS:
            for option in options.client_options(client):
                if option.default is not REQUIRED:
                    option.validate(option.default)


class TestValidation:
    def test_unknown_option_names_close_matches(self) -> None:
        with pytest.raises(OptionError, match=r"unknown option 'timout'; did you mean 'timeout'"):
            options.validate({"timout": 5})
        with pytest.raises(OptionError, match=r"unknown option 'zzz'$"):
            options.validate({"zzz": 1})

    def test_option_of_the_other_client(self) -> None:
        with pytest.raises(OptionError, match=r"'max_queue' is not accepted by wsfast.WebSocketClient"):
            options.validate({"max_queue": 10}, THREADED)
        with pytest.raises(OptionError, match=r"only by wsfast.WebSocketClient"):
            options.validate({"raw_hook": print}, ASYNCIO)

    def test_types_are_checked(self) -> None:
        for bad in ({"timeout": "5"}, {"max_redirects": 2.5}, {"text_as_bytes": "yes"}, {"on_ping": 42}):
            with pytest.raises(OptionTypeError) as info:
                options.validate(bad)
            assert isinstance(info.value, TypeError)
            assert isinstance(info.value, ValueError)  # an OptionError too
        with pytest.raises(OptionTypeError):
            options.validate({"max_redirects": True})  # a bool is not an int here
        with pytest.raises(OptionTypeError):
            options.validate({"subprotocols": "chat"})  # a str is not a sequence of str in code

    def test_strings_are_coerced_from_text(self) -> None:
        values = options.validate(
            {
                "timeout": "5",
                "close_timeout": " 0.5 ",
                "max_redirects": "3",
                "max_message_size": "none",
                "text_as_bytes": "yes",
                "ssl": "false",
                "subprotocols": "chat, superchat",
                "headers": ["X-Api-Key: k1", "X-Other:  v "],
                "overflow": "DROP_OLDEST",
                "compression": {"server_max_window_bits": 10},
                "user_agent": "",
            },
            from_text=True,
        )
        assert values["timeout"] == 5.0
        assert isinstance(values["timeout"], float)
        assert values["close_timeout"] == 0.5
        assert values["max_redirects"] == 3
        assert values["max_message_size"] is None
        assert values["text_as_bytes"] is True
        assert values["ssl"] is False
        assert values["subprotocols"] == ("chat", "superchat")
        assert values["headers"] == [("X-Api-Key", "k1"), ("X-Other", "v")]
        assert values["overflow"] == "drop_oldest"
        assert values["compression"] == wsfast.Deflate(server_max_window_bits=10)
        assert values["user_agent"] is None  # an empty string means None for a nullable option

    @pytest.mark.parametrize(
        ("name", "text"),
        [("timeout", "soon"), ("max_redirects", "3.5"), ("text_as_bytes", "maybe"), ("headers", "no colon")],
    )
    def test_bad_text_is_rejected(self, name: str, text: str) -> None:
        with pytest.raises(OptionError, match=name):
            options.validate({name: text}, from_text=True)

    def test_ranges_and_allowed_values(self) -> None:
        with pytest.raises(OptionError, match="max_queue must be at least 1, not 0"):
            options.validate({"max_queue": 0})
        with pytest.raises(OptionError, match="timeout must be greater than 0"):
            options.validate({"timeout": 0})
        with pytest.raises(OptionError, match="max_redirects must be at least 0"):
            options.validate({"max_redirects": -1})
        with pytest.raises(
            OptionError, match=r"'overflow' must be one of \['pause', 'drop_oldest', 'error'\]"
        ):
            options.validate({"overflow": "block"})
        with pytest.raises(OptionError, match="compression"):
            options.validate({"compression": "gzip"})
        with pytest.raises(OptionError, match="unsupported proxy"):
            options.validate({"proxy": "ftp://127.0.0.1:21"})
        with pytest.raises(OptionError, match="has no host"):
            options.validate({"proxy": "socks5://"})
        with pytest.raises(OptionError, match="not a valid proxy URL"):
            options.validate({"proxy": "http://proxy:99999"})
        with pytest.raises(
            OptionError, match=r"'implementation' must be one of \[None, 'python', 'cython'\]"
        ):
            options.validate({"implementation": "rust"})

    @pytest.mark.parametrize("scheme", sorted(DEFAULT_PROXY_PORTS))
    def test_proxy_schemes(self, scheme: str) -> None:
        # SOCKS4 carries a user id but no password (wsfast.proxies refuses one).
        userinfo = "user" if scheme.startswith("socks4") else "user:pw"
        url = f"{scheme}://{userinfo}@proxy.example:1080"
        assert options.validate({"proxy": url}) == {"proxy": url}

    def test_proxy_from_the_environment(self) -> None:
        assert options.validate({"proxy": True}) == {"proxy": True}
        assert options.validate({"proxy": "yes"}, from_text=True) == {"proxy": True}
        with pytest.raises(OptionTypeError):
            options.validate({"proxy": False})
        assert options.mask(options.get_option("proxy"), True) is True

    def test_proxy_ssl_unix_socket_and_sock(self, tmp_path: Path) -> None:
        context = ssl.create_default_context()
        assert options.validate({"proxy_ssl": context})["proxy_ssl"] is context
        assert options.validate({"proxy_ssl": False})["proxy_ssl"] is False
        assert options.validate({"proxy_ssl": "off"}, from_text=True)["proxy_ssl"] is False
        with pytest.raises(OptionTypeError):
            options.validate({"proxy_ssl": True})
        assert options.validate({"unix_socket": tmp_path / "ws.sock"})["unix_socket"] == str(
            tmp_path / "ws.sock"
        )
        with pytest.raises(OptionTypeError):
            options.validate({"unix_socket": 3})
        left, right = socket.socketpair()
        with left, right:
            assert options.validate({"sock": left})["sock"] is left
        with pytest.raises(OptionTypeError, match="connected socket"):
            options.validate({"sock": "127.0.0.1:80"})
        assert not options.get_option("sock").serialisable

    def test_nullable_per_client(self) -> None:
        # close_timeout=None (no limit) means the same on both clients.
        assert options.validate({"close_timeout": None}, ASYNCIO) == {"close_timeout": None}
        assert options.validate({"close_timeout": None}, THREADED) == {"close_timeout": None}
        with pytest.raises(OptionTypeError, match="may not be None"):
            options.validate({"token_type": None}, THREADED)

    def test_enums_normalise_to_their_value(self) -> None:
        assert options.validate({"overflow": OverflowPolicy.ERROR}) == {"overflow": "error"}


class TestConstructorsValidate:
    def test_threaded_client(self) -> None:
        with pytest.raises(OptionTypeError, match="'timeout' must be float"):
            wsfast.WebSocketClient(None, "ws://127.0.0.1/", timeout="5")  # type: ignore[arg-type]
        with pytest.raises(OptionError, match="max_redirects must be at least 0"):
            wsfast.WebSocketClient(None, "ws://127.0.0.1/", max_redirects=-1)
        with pytest.raises(TypeError, match="callback must be callable"):
            wsfast.WebSocketClient("nope", "ws://127.0.0.1/")  # type: ignore[arg-type]
        with pytest.raises(OptionTypeError, match=r"option 'events' must be a queue\.Queue"):
            wsfast.WebSocketClient(None, "ws://127.0.0.1/", events=42)
        wsfast.WebSocketClient(
            None, "wss://127.0.0.1/", timeout=3, headers={"A": "b"}, ssl=ssl.create_default_context()
        )

    def test_asyncio_client(self) -> None:
        with pytest.raises(OptionError, match="max_queue must be at least 1"):
            wsfast.connect("ws://127.0.0.1/", max_queue=0)
        with pytest.raises(OptionError, match="overflow"):
            wsfast.connect("ws://127.0.0.1/", overflow="block")
        with pytest.raises(OptionTypeError, match="open_timeout"):
            wsfast.connect("ws://127.0.0.1/", open_timeout="1")  # type: ignore[arg-type]
        wsfast.connect("ws://127.0.0.1/", overflow=OverflowPolicy.DROP_OLDEST, compression="deflate")


class TestSharedHelpers:
    def test_normalise_headers(self) -> None:
        assert options.normalise_headers(None) == []
        assert options.normalise_headers({"A": "1", "B": "2"}) == [("A", "1"), ("B", "2")]
        assert options.normalise_headers([("A", "1"), ("A", "2")]) == [("A", "1"), ("A", "2")]
        with pytest.raises(TypeError):
            options.normalise_headers([("A", 1)])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            options.normalise_headers(["A: 1"])  # type: ignore[list-item]
        with pytest.raises(OptionError, match="header name 'A B' is not an RFC 9110 token"):
            options.normalise_headers({"A B": "1"})
        with pytest.raises(OptionError, match="value of header 'A' contains CR, LF or NUL"):
            options.normalise_headers({"A": "1\r\nInjected: yes"})

    def test_authorization(self) -> None:
        assert options.authorization(None, "Bearer") is None
        assert options.authorization("abc", "Bearer") == "Bearer abc"
        assert options.authorization("abc", "Token") == "Token abc"

    def test_mask(self) -> None:
        token = options.get_option("token")
        assert token.sensitive
        assert options.mask(token, "s3cret") == options.MASK
        headers = options.get_option("headers")
        masked = options.mask(
            headers, [("Authorization", "Bearer s3cret"), ("Cookie", "a=s3cret"), ("X", "y")]
        )
        assert masked == [("Authorization", options.MASK), ("Cookie", options.MASK), ("X", "y")]
        proxy = options.get_option("proxy")
        assert (
            options.mask(proxy, "http://user:s3cret@proxy:3128") == f"http://user:{options.MASK}@proxy:3128"
        )
        assert options.mask(proxy, "http://proxy:3128") == "http://proxy:3128"

    def test_to_config(self) -> None:
        assert options.to_config("headers", [("A", "b")]) == [["A", "b"]]
        assert options.to_config("compression", wsfast.Deflate(level=3))["level"] == 3
        assert options.to_config("timeout", 5.0) == 5.0
        with pytest.raises(OptionError, match="on_ping"):
            options.to_config("on_ping", print)
        with pytest.raises(OptionError, match="SSLContext"):
            options.to_config("ssl", ssl.create_default_context())


class TestDocsAndHelp:
    def test_committed_docs_are_up_to_date(self) -> None:
        assert DOCS.read_text(encoding="utf-8") == options.render_markdown(), (
            "docs/options.md is out of date: run python -m wsfast options --write docs/options.md"
        )

    def test_docs_name_every_option(self) -> None:
        text = options.render_markdown()
        for option in options.OPTIONS:
            assert f"\n## {option.name}\n" in text
            assert option.description in text

    def test_check_command(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "options.md"
        assert cli_main(["options", "--check", str(target)]) == 1
        assert cli_main(["options", "--write", str(target)]) == 0
        assert cli_main(["options", "--check", str(target)]) == 0
        assert target.read_text(encoding="utf-8") == options.render_markdown()

    def test_options_command_lists_the_registry(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli_main(["options", "--client", "asyncio"]) == 0
        out = capsys.readouterr().out
        for option in options.client_options(ASYNCIO):
            assert f"  {option.name} (" in out
        assert "raw_hook" not in out

    def test_client_help_comes_from_the_registry(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            cli_main(["--help"])
        out = capsys.readouterr().out
        assert options.get_option("timeout").description.split()[0] in out
        for option in options.client_options(THREADED):
            assert (f"  {option.name} (" in out) == option.serialisable, option.name

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["-o", "timout=3"], "did you mean 'timeout'"),
            (["-o", "max_redirects=x"], "must be an integer"),
            (["-o", "novalue"], "NAME=VALUE"),
            (["-o", "on_close=x"], "cannot be set from the command line"),
        ],
    )
    def test_bad_command_line_options(self, argv: list[str], message: str, capsys: Any) -> None:
        assert cli_main(["ws://127.0.0.1:1/", *argv]) == 2
        assert message in capsys.readouterr().err
