"""wsfast.proxies: proxy URLs (every scheme, every refusal, never the password) and proxies from the
environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY in all its forms)."""

from __future__ import annotations

import pytest

import wsfast
from wsfast.exceptions import InvalidURL, OptionError
from wsfast.proxies import Proxy, bypasses_proxy, parse_proxy, proxy_from_environment
from wsfast.uri import parse_url

SECRET = "S3CRET-PROXY"


class TestParse:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://proxy:3128", Proxy("http", "proxy", 3128)),
            ("http://proxy", Proxy("http", "proxy", 8080)),
            ("proxy.local:3128", Proxy("http", "proxy.local", 3128)),
            ("https://proxy", Proxy("https", "proxy", 443)),
            ("socks4://me@10.0.0.1", Proxy("socks4", "10.0.0.1", 1080, "me")),
            ("socks4a://proxy:9050", Proxy("socks4a", "proxy", 9050)),
            ("SOCKS5://[::1]:1080", Proxy("socks5", "::1", 1080)),
            ("socks5h://u%40x:p%3Aw@proxy:1", Proxy("socks5h", "proxy", 1, "u@x", "p:w")),
        ],
    )
    def test_schemes(self, url: str, expected: Proxy) -> None:
        proxy = parse_proxy(url)
        assert proxy == expected
        assert proxy.password == expected.password

    def test_properties(self) -> None:
        assert parse_proxy("https://p").tls
        assert parse_proxy("https://p").is_http
        assert not parse_proxy("socks5://p").remote_dns
        assert parse_proxy("socks5h://p").remote_dns
        assert parse_proxy("socks4a://p").remote_dns
        assert not parse_proxy("socks4://p").remote_dns
        assert parse_proxy("http://p").remote_dns

    def test_the_password_is_never_shown(self) -> None:
        proxy = parse_proxy(f"socks5://user:{SECRET}@proxy:1080")
        assert SECRET not in repr(proxy)
        assert SECRET not in str(proxy)
        assert str(proxy) == "socks5://user:***@proxy:1080"
        assert str(parse_proxy("http://user@[::1]:3128")) == "http://user@[::1]:3128"

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            (f"ftp://u:{SECRET}@proxy:21", "unsupported proxy"),
            (f"http://u:{SECRET}@:3128", "no host"),
            (f"http://u:{SECRET}@proxy:99999", "not a valid proxy URL"),
            (f"http://u:{SECRET}@proxy:3128/path", "no path"),
            (f"socks4://u:{SECRET}@proxy", "no password"),
            (f"socks5://{'u' * 256}:{SECRET}@proxy", "255 bytes"),
        ],
    )
    def test_refusals_hide_the_password(self, url: str, message: str) -> None:
        with pytest.raises(InvalidURL, match=message) as refused:
            parse_proxy(url)
        assert SECRET not in str(refused.value)

    def test_not_a_string(self) -> None:
        with pytest.raises(InvalidURL, match="str"):
            parse_proxy(1080)  # type: ignore[arg-type]

    @pytest.mark.parametrize("make", ["threaded", "asyncio"])
    def test_clients_refuse_bad_proxies_at_construction(self, make: str) -> None:
        url = f"gopher://u:{SECRET}@proxy:70"
        construct = wsfast.WebSocketClient if make == "threaded" else wsfast.connect
        arguments = (None, "ws://127.0.0.1:1/") if make == "threaded" else ("ws://127.0.0.1:1/",)
        with pytest.raises(OptionError) as refused:
            construct(*arguments, proxy=url)  # type: ignore[operator]
        assert SECRET not in str(refused.value)
        assert "socks5://" in str(refused.value)  # says what is supported

    @pytest.mark.parametrize("value", [True, "socks5h://proxy:1080", "https://proxy"])
    def test_clients_take_every_kind(self, value: object) -> None:
        wsfast.WebSocketClient(None, "ws://127.0.0.1:1/", proxy=value)  # type: ignore[arg-type]
        wsfast.connect("ws://127.0.0.1:1/", proxy=value)  # type: ignore[arg-type]


class TestNoProxy:
    @pytest.mark.parametrize(
        ("host", "port", "no_proxy", "bypassed"),
        [
            ("example.com", 443, "*", True),
            ("example.com", 443, "example.com", True),
            ("api.example.com", 443, "example.com", True),
            ("api.example.com", 443, ".example.com", True),
            ("api.example.com", 443, "*.example.com", True),
            ("badexample.com", 443, "example.com", False),
            ("example.com", 443, ".example.com", True),
            ("EXAMPLE.com.", 443, "example.COM", True),
            ("example.com", 443, "other.org, example.com", True),
            ("example.com", 443, "other.org example.com", True),
            ("example.com", 443, "example.com:443", True),
            ("example.com", 80, "example.com:443", False),
            ("10.1.2.3", 80, "10.1.2.3", True),
            ("10.1.2.3", 80, "10.0.0.0/8", True),
            ("11.1.2.3", 80, "10.0.0.0/8", False),
            ("::1", 80, "::1", True),
            ("::1", 8080, "[::1]:8080", True),
            ("::1", 80, "[::1]:8080", False),
            ("fd00::5", 80, "fd00::/8", True),
            ("10.1.2.3", 80, "fd00::/8", False),
            ("example.com", 80, "10.0.0.0/8", False),
            ("example.com", 80, "not/a/cidr", False),
            ("example.com", 80, "", False),
            ("example.com", 80, " , ,", False),
        ],
    )
    def test_entries(self, host: str, port: int, no_proxy: str, bypassed: bool) -> None:
        assert bypasses_proxy(host, port, no_proxy) is bypassed


class TestEnvironment:
    def test_scheme_picks_the_variable(self) -> None:
        environ = {"HTTPS_PROXY": "http://secure:1", "HTTP_PROXY": "http://plain:2"}
        assert proxy_from_environment(parse_url("wss://example.com/"), environ) == Proxy("http", "secure", 1)
        assert proxy_from_environment(parse_url("ws://example.com/"), environ) == Proxy("http", "plain", 2)

    def test_lower_case_first_then_all_proxy(self) -> None:
        environ = {
            "https_proxy": "http://lower:1",
            "HTTPS_PROXY": "http://upper:2",
            "ALL_PROXY": "socks5h://all:3",
        }
        assert proxy_from_environment(parse_url("wss://h/"), environ) == Proxy("http", "lower", 1)
        assert proxy_from_environment(parse_url("ws://h/"), environ) == Proxy("socks5h", "all", 3)
        assert proxy_from_environment(parse_url("ws://h/"), {"all_proxy": "socks5://a"}) == Proxy(
            "socks5", "a", 1080
        )

    def test_empty_and_unset(self) -> None:
        assert proxy_from_environment(parse_url("ws://h/"), {}) is None
        assert proxy_from_environment(
            parse_url("ws://h/"), {"http_proxy": " ", "HTTP_PROXY": "http://u:1"}
        ) == Proxy("http", "u", 1)

    def test_no_proxy(self) -> None:
        environ = {"HTTPS_PROXY": "http://p:1", "no_proxy": "internal.example, 10.0.0.0/8"}
        assert proxy_from_environment(parse_url("wss://api.internal.example/"), environ) is None
        assert proxy_from_environment(parse_url("wss://10.2.3.4/"), environ) is None
        assert proxy_from_environment(parse_url("wss://example.com/"), environ) is not None
        assert (
            proxy_from_environment(parse_url("wss://example.com/"), {**environ, "NO_PROXY": "*"}) is not None
        )
        assert (
            proxy_from_environment(parse_url("wss://example.com/"), {"HTTPS_PROXY": "p:1", "NO_PROXY": "*"})
            is None
        )

    def test_a_bad_variable_is_named_without_its_password(self) -> None:
        with pytest.raises(InvalidURL, match="HTTP_PROXY") as refused:
            proxy_from_environment(parse_url("ws://h/"), {"HTTP_PROXY": f"ftp://u:{SECRET}@p"})
        assert SECRET not in str(refused.value)
