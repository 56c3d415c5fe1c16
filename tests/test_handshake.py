"""The opening handshake without sockets: ClientHandshake, ResponseParser and parse_url (RFC 6455 §3, §4).

Expected values are computed here independently (base64/hashlib, RFC 6455 §1.3's worked example), never
taken from wsfast.
"""

from __future__ import annotations

import base64
import binascii

import pytest

from servers import accept_key as independent_accept_key
from wsfast.exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidHTTP,
    InvalidStatus,
    InvalidURL,
    WebSocketError,
)
from wsfast.handshake import Accepted, ClientHandshake, Redirect, accept_key, generate_key
from wsfast.http11 import MAX_BODY_SIZE, MAX_HEAD_SIZE, Headers, ResponseParser
from wsfast.uri import WebSocketURL, parse_url, redact

# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def parse_request(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Split a request head into its request line and header pairs, checking the framing."""
    assert raw.endswith(b"\r\n\r\n"), raw
    text = raw.decode("utf-8")
    lines = text[:-4].split("\r\n")
    pairs = []
    for line in lines[1:]:
        name, sep, value = line.partition(": ")
        assert sep, f"malformed header line {line!r}"
        pairs.append((name, value))
    return lines[0], pairs


def values(pairs: list[tuple[str, str]], name: str) -> list[str]:
    return [value for field, value in pairs if field.lower() == name.lower()]


def one(pairs: list[tuple[str, str]], name: str) -> str:
    found = values(pairs, name)
    assert len(found) == 1, f"expected exactly one {name} header, got {found!r}"
    return found[0]


def request_of(url: str, **kwargs: object) -> tuple[ClientHandshake, str, list[tuple[str, str]]]:
    handshake = ClientHandshake(url, **kwargs)  # type: ignore[arg-type]
    line, pairs = parse_request(handshake.request())
    return handshake, line, pairs


def response_101(handshake: ClientHandshake, *extra: str, accept: str | None = None) -> bytes:
    key = handshake.headers["Sec-WebSocket-Key"]
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {independent_accept_key(key) if accept is None else accept}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


# --------------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------------


def test_accept_key_matches_the_rfc_example() -> None:
    # RFC 6455 §1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert independent_accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_generated_keys_are_16_random_bytes_in_base64() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert len(key) == 24
        assert len(base64.b64decode(key, validate=True)) == 16


# --------------------------------------------------------------------------------------------------
# The request
# --------------------------------------------------------------------------------------------------


def test_request_line_and_mandatory_headers() -> None:
    handshake, line, pairs = request_of("ws://example.com:8765/chat?room=1&x=%20y")
    assert line == "GET /chat?room=1&x=%20y HTTP/1.1"
    assert one(pairs, "Host") == "example.com:8765"
    assert one(pairs, "Upgrade").lower() == "websocket"
    assert "upgrade" in [t.strip().lower() for t in one(pairs, "Connection").split(",")]
    assert one(pairs, "Sec-WebSocket-Version") == "13"
    key = one(pairs, "Sec-WebSocket-Key")
    assert len(key) == 24
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:  # pragma: no cover - reported below
        raw = b""
    assert len(raw) == 16, f"Sec-WebSocket-Key {key!r} is not 16 bytes in base64"
    assert handshake.key == key


def test_request_without_path_uses_slash() -> None:
    _, line, _ = request_of("ws://example.com")
    assert line == "GET / HTTP/1.1"
    _, line, _ = request_of("ws://example.com?q=1")
    assert line == "GET /?q=1 HTTP/1.1"


def test_key_differs_on_each_handshake() -> None:
    keys = {one(request_of("ws://example.com/")[2], "Sec-WebSocket-Key") for _ in range(50)}
    assert len(keys) == 50


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ws://example.com/", "example.com"),
        ("ws://example.com:80/", "example.com"),
        ("ws://example.com:443/", "example.com:443"),
        ("wss://example.com/", "example.com"),
        ("wss://example.com:443/", "example.com"),
        ("wss://example.com:80/", "example.com:80"),
        ("ws://127.0.0.1:9001/", "127.0.0.1:9001"),
        ("ws://[::1]/", "[::1]"),
        ("ws://[::1]:9001/", "[::1]:9001"),
        ("wss://[2001:db8::1]:8443/x", "[2001:db8::1]:8443"),
    ],
)
def test_host_header(url: str, host: str) -> None:
    assert one(request_of(url)[2], "Host") == host


def test_optional_headers_absent_by_default() -> None:
    _, _, pairs = request_of("ws://example.com/")
    for name in ("Origin", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Authorization"):
        assert values(pairs, name) == [], name


def test_origin_subprotocols_extensions_user_agent() -> None:
    _, _, pairs = request_of(
        "ws://example.com/",
        origin="https://app.example.com",
        subprotocols=["v2.chat", "v1.chat"],
        extensions=["permessage-deflate; client_max_window_bits", "x-test"],
        user_agent="tester/1.0",
    )
    assert one(pairs, "Origin") == "https://app.example.com"
    offered = [p.strip() for v in values(pairs, "Sec-WebSocket-Protocol") for p in v.split(",")]
    assert offered == ["v2.chat", "v1.chat"]
    extensions = ", ".join(values(pairs, "Sec-WebSocket-Extensions"))
    assert "permessage-deflate; client_max_window_bits" in extensions
    assert "x-test" in extensions
    assert one(pairs, "User-Agent") == "tester/1.0"


def test_no_user_agent_when_none() -> None:
    _, _, pairs = request_of("ws://example.com/", user_agent=None)
    assert values(pairs, "User-Agent") == []


@pytest.mark.parametrize("as_pairs", [False, True])
def test_extra_headers_sent(as_pairs: bool) -> None:
    extra = {"X-Api-Key": "k123", "Cookie": "a=1"}
    headers = list(extra.items()) if as_pairs else extra
    _, _, pairs = request_of("ws://example.com/", headers=headers)
    assert one(pairs, "X-Api-Key") == "k123"
    assert one(pairs, "Cookie") == "a=1"


def test_extra_headers_override_defaults_but_not_the_handshake_headers() -> None:
    handshake, _, pairs = request_of(
        "ws://example.com/",
        user_agent="default/1",
        headers={
            "user-agent": "mine/2",
            "Host": "virtual.example.com",
            "Upgrade": "h2c",
            "Connection": "close",
            "Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAA==",
            "Sec-WebSocket-Version": "8",
        },
    )
    assert one(pairs, "User-Agent") == "mine/2"
    assert one(pairs, "Host") == "virtual.example.com"
    assert one(pairs, "Upgrade").lower() == "websocket"
    assert one(pairs, "Connection").lower() == "upgrade"
    assert one(pairs, "Sec-WebSocket-Version") == "13"
    assert one(pairs, "Sec-WebSocket-Key") == handshake.key != "AAAAAAAAAAAAAAAAAAAAAA=="


def test_repeated_extra_header_pairs_all_sent() -> None:
    _, _, pairs = request_of("ws://example.com/", headers=[("X-Tag", "a"), ("X-Tag", "b")])
    assert values(pairs, "X-Tag") == ["a", "b"]


@pytest.mark.parametrize("name", ["X-Evil", "X-Evil\r\nInjected"])
def test_header_line_breaks_rejected(name: str) -> None:
    handshake = ClientHandshake("ws://example.com/", headers={name: "a\r\nInjected: yes"})
    with pytest.raises(ValueError, match="line break"):
        handshake.request()


def test_basic_auth_from_url() -> None:
    _, _, pairs = request_of("ws://alice:s3cret@example.com/")
    assert one(pairs, "Authorization") == basic("alice:s3cret")
    # The credentials never appear anywhere else in the request.
    assert all("s3cret" not in value for name, value in pairs if name.lower() != "authorization")


def test_basic_auth_percent_decoded() -> None:
    _, _, pairs = request_of("ws://us%40er:p%3Ass%20w%C3%A9@example.com/")
    assert one(pairs, "Authorization") == basic("us@er:p:ss wé")


def test_basic_auth_user_without_password() -> None:
    _, _, pairs = request_of("ws://bob@example.com/")
    assert one(pairs, "Authorization") == basic("bob:")


def test_explicit_authorization_wins_over_url_credentials() -> None:
    _, _, pairs = request_of("ws://alice:s3cret@example.com/", authorization="Bearer tok")
    assert one(pairs, "Authorization") == "Bearer tok"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_caller_authorization_header_is_never_overridden(name: str) -> None:
    _, _, pairs = request_of(
        "ws://alice:s3cret@example.com/", headers={name: "Custom xyz"}, authorization="Bearer tok"
    )
    assert values(pairs, "Authorization") == ["Custom xyz"]


def test_password_not_in_repr_or_str() -> None:
    url = parse_url("ws://alice:s3cret@example.com:81/p")
    assert "s3cret" not in repr(url)
    assert "s3cret" not in str(url)
    assert url.safe_url() == "ws://alice@example.com:81/p"


# --------------------------------------------------------------------------------------------------
# The response
# --------------------------------------------------------------------------------------------------


def test_valid_101_accepted() -> None:
    handshake = ClientHandshake("ws://example.com/")
    outcome = handshake.receive(response_101(handshake, "X-Server: test"))
    assert isinstance(outcome, Accepted)
    assert outcome.response.status == 101
    assert outcome.response.headers["x-server"] == "test"
    assert outcome.subprotocol is None
    assert outcome.extensions == []
    assert outcome.leftover == b""


def test_response_fed_byte_by_byte() -> None:
    handshake = ClientHandshake("ws://example.com/")
    data = response_101(handshake)
    for i in range(len(data) - 1):
        assert handshake.receive(data[i : i + 1]) is None
    assert isinstance(handshake.receive(data[-1:]), Accepted)


def test_leftover_bytes_after_the_head_returned() -> None:
    handshake = ClientHandshake("ws://example.com/")
    frames = b"\x81\x05hello\x82\x01\x00"
    outcome = handshake.receive(response_101(handshake) + frames)
    assert isinstance(outcome, Accepted)
    assert outcome.leftover == frames


def test_header_names_and_tokens_case_insensitive() -> None:
    handshake = ClientHandshake("ws://example.com/")
    key = handshake.headers["Sec-WebSocket-Key"]
    data = head(
        "HTTP/1.1 101 Switching Protocols",
        "upgrade: WebSocket",
        "CONNECTION: keep-alive, UPGRADE",
        f"sec-websocket-accept: {independent_accept_key(key)}",
    )
    assert isinstance(handshake.receive(data), Accepted)


@pytest.mark.parametrize(
    "accept",
    [
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",  # the RFC example: right format, wrong key
        "",
        "garbage",
    ],
)
def test_bad_accept_rejected(accept: str) -> None:
    handshake = ClientHandshake("ws://example.com/")
    with pytest.raises(InvalidHeader) as info:
        handshake.receive(response_101(handshake, accept=accept))
    assert info.value.status == 101
    assert isinstance(info.value, HandshakeError)


def test_missing_accept_rejected() -> None:
    handshake = ClientHandshake("ws://example.com/")
    data = head("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade")
    with pytest.raises(InvalidHeader):
        handshake.receive(data)


def test_duplicate_accept_rejected() -> None:
    handshake = ClientHandshake("ws://example.com/")
    good = independent_accept_key(handshake.key)
    with pytest.raises(InvalidHeader):
        handshake.receive(response_101(handshake, f"Sec-WebSocket-Accept: {good}"))


@pytest.mark.parametrize(
    ("drop", "replacement"),
    [
        ("Upgrade", None),
        ("Upgrade", "Upgrade: h2c"),
        ("Connection", None),
        ("Connection", "Connection: keep-alive"),
    ],
)
def test_missing_or_wrong_upgrade_connection_rejected(drop: str, replacement: str | None) -> None:
    handshake = ClientHandshake("ws://example.com/")
    lines = response_101(handshake).decode().split("\r\n")
    lines = [line for line in lines if not line.startswith(drop + ":")]
    if replacement:
        lines.insert(1, replacement)
    with pytest.raises(InvalidHeader) as info:
        handshake.receive("\r\n".join(lines).encode())
    assert info.value.status == 101


def test_offered_subprotocol_chosen() -> None:
    handshake = ClientHandshake("ws://example.com/", subprotocols=["a", "b"])
    outcome = handshake.receive(response_101(handshake, "Sec-WebSocket-Protocol: b"))
    assert isinstance(outcome, Accepted)
    assert outcome.subprotocol == "b"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["a", "b"], "c"),  # not offered
        ([], "a"),  # nothing offered
        (["a", "b"], "a, b"),  # more than one
    ],
)
def test_unoffered_subprotocol_rejected(offered: list[str], chosen: str) -> None:
    handshake = ClientHandshake("ws://example.com/", subprotocols=offered)
    with pytest.raises(InvalidHeader):
        handshake.receive(response_101(handshake, f"Sec-WebSocket-Protocol: {chosen}"))


def test_two_subprotocol_headers_rejected() -> None:
    handshake = ClientHandshake("ws://example.com/", subprotocols=["a", "b"])
    with pytest.raises(InvalidHeader):
        handshake.receive(response_101(handshake, "Sec-WebSocket-Protocol: a", "Sec-WebSocket-Protocol: b"))


def test_offered_extension_accepted() -> None:
    handshake = ClientHandshake(
        "ws://example.com/", extensions=["permessage-deflate; client_max_window_bits"]
    )
    outcome = handshake.receive(
        response_101(handshake, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover")
    )
    assert isinstance(outcome, Accepted)
    assert outcome.extensions == ["permessage-deflate; server_no_context_takeover"]


@pytest.mark.parametrize("offered", [[], ["x-other"]])
def test_unoffered_extension_rejected(offered: list[str]) -> None:
    handshake = ClientHandshake("ws://example.com/", extensions=offered)
    with pytest.raises(InvalidHeader):
        handshake.receive(response_101(handshake, "Sec-WebSocket-Extensions: permessage-deflate"))


def test_non_101_with_content_length_body() -> None:
    handshake = ClientHandshake("ws://example.com/")
    body = b'{"error": "forbidden"}'
    data = head(
        "HTTP/1.1 403 Forbidden",
        "Content-Type: application/json",
        "X-Why: no-token",
        f"Content-Length: {len(body)}",
    )
    # The body arrives in a separate read: nothing is decided before it is complete.
    assert handshake.receive(data) is None
    with pytest.raises(InvalidStatus) as info:
        handshake.receive(body + b"trailing junk")
    error = info.value
    assert error.status == 403
    assert error.headers["x-why"] == "no-token"
    assert error.body == body
    assert isinstance(error, HandshakeError)


def test_non_101_with_chunked_body() -> None:
    handshake = ClientHandshake("ws://example.com/")
    data = head("HTTP/1.1 500 Internal Server Error", "Transfer-Encoding: chunked")
    chunks = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"
    assert handshake.receive(data + chunks[:9]) is None
    with pytest.raises(InvalidStatus) as info:
        handshake.receive(chunks[9:])
    assert info.value.status == 500
    assert info.value.body == b"hello, world"


def test_non_101_body_until_eof() -> None:
    handshake = ClientHandshake("ws://example.com/")
    assert handshake.receive(head("HTTP/1.1 503 Service Unavailable", "Retry-After: 5") + b"try ") is None
    assert handshake.receive(b"later") is None
    with pytest.raises(InvalidStatus) as info:
        handshake.receive_eof()
    assert info.value.status == 503
    assert info.value.headers["Retry-After"] == "5"
    assert info.value.body == b"try later"


def test_non_101_body_is_bounded() -> None:
    handshake = ClientHandshake("ws://example.com/")
    with pytest.raises(InvalidStatus) as info:
        handshake.receive(head("HTTP/1.1 400 Bad Request") + b"x" * (MAX_BODY_SIZE + 10))
    assert info.value.body == b"x" * MAX_BODY_SIZE


@pytest.mark.parametrize("status", [200, 204, 400, 404, 426])
def test_other_statuses_are_invalid_status(status: int) -> None:
    handshake = ClientHandshake("ws://example.com/")
    with pytest.raises(InvalidStatus) as info:
        handshake.receive(head(f"HTTP/1.1 {status} Whatever", "Content-Length: 0"))
    assert info.value.status == status


def test_redirect_status_without_location_is_invalid_status() -> None:
    handshake = ClientHandshake("ws://example.com/")
    with pytest.raises(InvalidStatus) as info:
        handshake.receive(head("HTTP/1.1 302 Found", "Content-Length: 0"))
    assert info.value.status == 302


def test_head_too_large() -> None:
    handshake = ClientHandshake("ws://example.com/")
    assert handshake.receive(b"HTTP/1.1 101 Switching Protocols\r\n") is None
    with pytest.raises(InvalidHTTP):  # noqa: PT012 - whichever piece crosses the limit
        for _ in range(MAX_HEAD_SIZE // 1000 + 2):
            handshake.receive(b"X-Filler: " + b"a" * 988 + b"\r\n")


def test_head_too_large_in_one_piece_with_terminator() -> None:
    parser = ResponseParser(max_head_size=100)
    with pytest.raises(InvalidHTTP):
        parser.feed(head("HTTP/1.1 101 Switching Protocols", "X-Long: " + "a" * 200))


def test_too_many_headers() -> None:
    parser = ResponseParser()
    with pytest.raises(InvalidHTTP):
        parser.feed(head("HTTP/1.1 101 Switching Protocols", *[f"X-H{i}: v" for i in range(300)]))


@pytest.mark.parametrize(
    "status_line",
    # "50\xb3": a superscript digit, which str.isdigit() accepts and int() refuses (found by the fuzzer)
    [
        "HTTP/2 101 Switching",
        "ICY 200 OK",
        "HTTP/1.1 1O1 Switching",
        "HTTP/1.1",
        "garbage",
        "HTTP/1.1 50\xb3 X",
    ],
)
def test_malformed_status_line(status_line: str) -> None:
    handshake = ClientHandshake("ws://example.com/")
    with pytest.raises(InvalidHTTP):
        handshake.receive(head(status_line, "Upgrade: websocket"))


def test_malformed_header_line() -> None:
    handshake = ClientHandshake("ws://example.com/")
    with pytest.raises(InvalidHTTP):
        handshake.receive(head("HTTP/1.1 101 Switching Protocols", "no colon here"))


def test_invalid_content_length() -> None:
    with pytest.raises(InvalidHTTP):
        ResponseParser().feed(head("HTTP/1.1 403 Forbidden", "Content-Length: lots"))


@pytest.mark.parametrize("received", [b"", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs"])
def test_eof_before_head(received: bytes) -> None:
    handshake = ClientHandshake("ws://example.com/")
    assert handshake.receive(received) is None
    with pytest.raises(InvalidHTTP) as info:
        handshake.receive_eof()
    assert info.value.status is None


def test_status_line_without_reason() -> None:
    handshake = ClientHandshake("ws://example.com/")
    data = response_101(handshake).replace(b"101 Switching Protocols", b"101", 1)
    assert isinstance(handshake.receive(data), Accepted)


# --------------------------------------------------------------------------------------------------
# Redirects
# --------------------------------------------------------------------------------------------------


def redirect_to(base: str, location: str, status: int = 302) -> WebSocketURL:
    handshake = ClientHandshake(base)
    outcome = handshake.receive(
        head(f"HTTP/1.1 {status} Moved", f"Location: {location}", "Content-Length: 0")
    )
    assert isinstance(outcome, Redirect)
    assert outcome.response.status == status
    return outcome.url


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses(status: int) -> None:
    url = redirect_to("ws://example.com/a", "ws://other.example.com:8080/b?x=1", status)
    assert (url.secure, url.host, url.port, url.resource) == (False, "other.example.com", 8080, "/b?x=1")


@pytest.mark.parametrize(
    "endless",
    [b"f" * 1000, b"1;" + b"x" * 998, b"1\r\nx\r\n" * 166],  # a size line without its CRLF; tiny chunks
)
def test_non_101_chunked_body_that_never_ends_is_bounded(endless: bytes) -> None:
    # The body is only diagnostics: what is buffered for it stays bounded however the chunks are framed.
    handshake = ClientHandshake("ws://example.com/")
    handshake.receive(head("HTTP/1.1 403 Forbidden", "Transfer-Encoding: chunked"))
    error = None
    for _ in range(10 * MAX_BODY_SIZE // len(endless)):
        try:
            handshake.receive(endless)
        except InvalidStatus as exc:
            error = exc
            break
    assert isinstance(error, InvalidStatus), "the body was never cut off"
    assert error.status == 403
    assert len(error.body) <= MAX_BODY_SIZE


def test_redirect_body_ignored() -> None:
    handshake = ClientHandshake("ws://example.com/")
    outcome = handshake.receive(head("HTTP/1.1 302 Found", "Location: /b") + b"<html>moved</html>")
    assert isinstance(outcome, Redirect)


@pytest.mark.parametrize(
    ("base", "location", "expected"),
    [
        ("ws://example.com/a", "http://other.example.com/b", (False, "other.example.com", 80, "/b")),
        ("ws://example.com/a", "https://other.example.com/b", (True, "other.example.com", 443, "/b")),
        ("ws://example.com/a", "wss://other.example.com:9443/b", (True, "other.example.com", 9443, "/b")),
        ("wss://example.com/a", "wss://other.example.com/b", (True, "other.example.com", 443, "/b")),
        ("wss://example.com/a", "https://other.example.com/b", (True, "other.example.com", 443, "/b")),
        ("ws://example.com:81/a/b", "/c?d=1", (False, "example.com", 81, "/c?d=1")),
        ("ws://example.com:81/a/b", "c", (False, "example.com", 81, "/a/c")),
        ("wss://example.com/a", "/c", (True, "example.com", 443, "/c")),
        ("ws://[::1]:81/a", "/c", (False, "::1", 81, "/c")),
    ],
)
def test_redirect_targets(base: str, location: str, expected: tuple[bool, str, int, str]) -> None:
    url = redirect_to(base, location)
    assert (url.secure, url.host, url.port, url.resource) == expected


@pytest.mark.parametrize("location", ["ws://other.example.com/b", "http://other.example.com/b"])
def test_redirect_from_wss_to_ws_refused(location: str) -> None:
    handshake = ClientHandshake("wss://example.com/a")
    with pytest.raises(InvalidURL):
        handshake.receive(head("HTTP/1.1 302 Found", f"Location: {location}"))


@pytest.mark.parametrize("location", ["ftp://example.com/b", "mailto:someone@example.com"])
def test_redirect_to_other_schemes_refused(location: str) -> None:
    handshake = ClientHandshake("ws://example.com/a")
    with pytest.raises(InvalidURL):
        handshake.receive(head("HTTP/1.1 302 Found", f"Location: {location}"))


@pytest.mark.parametrize("location", ["ws://[example.org/", "http://ex[ample.org/x", "ws://[::1/"])
def test_redirect_to_unparsable_url_is_invalid_url(location: str) -> None:
    # urllib raises a bare ValueError ("Invalid IPv6 URL") for these; wsfast's error is InvalidURL.
    handshake = ClientHandshake("ws://example.com/a")
    with pytest.raises(InvalidURL):
        handshake.receive(head("HTTP/1.1 307 Temporary Redirect", f"Location: {location}"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://alice:s3cret@example.com/p", "ws://alice:***@example.com/p"),
        ("wss://a:b:c@h:1/x?y=1@2", "wss://a:***@h:1/x?y=1@2"),
        ("http://u:p%40w@proxy:8080", "http://u:***@proxy:8080"),
        ("ws://alice@example.com/", "ws://alice@example.com/"),
        ("ws://example.com/a:b@c", "ws://example.com/a:b@c"),
    ],
)
def test_redact_hides_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url", ["ws://u:s3cret@host:99999/", "http://u:s3cret@host/", "ws://u:s3cret@host/#x", "ws://u:s3cret@/x"]
)
def test_invalid_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(url)
    assert "s3cret" not in str(info.value)
    assert "u:***@" in str(info.value)


def test_redirect_to_url_with_credentials() -> None:
    url = redirect_to("ws://example.com/a", "ws://u%20x:p%40w@other.example.com/b")
    assert (url.username, url.password) == ("u x", "p@w")


def test_url_credentials_follow_same_origin_redirect_only() -> None:
    same = redirect_to("ws://u%40x:pw@example.com:81/a", "/b")
    assert (same.host, same.port, same.username, same.password) == ("example.com", 81, "u@x", "pw")
    for location in ("ws://other.example.com:81/b", "ws://example.com:82/b", "wss://example.com:81/b"):
        other = redirect_to("ws://u:pw@example.com:81/a", location)
        assert (other.username, other.password) == (None, None), location


def test_redirect_to_url_with_its_own_credentials() -> None:
    url = redirect_to("ws://a:b@example.com/a", "ws://c:d@example.com/b")
    assert (url.username, url.password) == ("c", "d")


def test_connect_response_parser_has_no_body_for_2xx() -> None:
    # RFC 9110 §9.3.6: a 2xx answer to CONNECT ends with its head; the tunnel starts right after.
    parser = ResponseParser(connect=True)
    response = parser.feed(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert response is not None
    assert response.status == 200
    assert parser.leftover == b""
    refused = ResponseParser(connect=True)
    assert refused.feed(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\n") is None
    response = refused.feed(b"nope")
    assert response is not None
    assert (response.status, response.body) == (407, b"nope")


# --------------------------------------------------------------------------------------------------
# parse_url
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://example.com", (False, "example.com", 80, "/")),
        ("ws://example.com/", (False, "example.com", 80, "/")),
        ("wss://example.com", (True, "example.com", 443, "/")),
        ("ws://example.com:9000/chat", (False, "example.com", 9000, "/chat")),
        ("wss://example.com:9443/a/b?c=1&d=%2F", (True, "example.com", 9443, "/a/b?c=1&d=%2F")),
        ("ws://example.com?x=1", (False, "example.com", 80, "/?x=1")),
        ("WS://EXAMPLE.com/Path", (False, "example.com", 80, "/Path")),
        ("WSS://example.com", (True, "example.com", 443, "/")),
        ("ws://127.0.0.1:1234", (False, "127.0.0.1", 1234, "/")),
        ("ws://[::1]:1234/x", (False, "::1", 1234, "/x")),
        ("wss://[2001:db8::1]/", (True, "2001:db8::1", 443, "/")),
        ("  ws://example.com/  ", (False, "example.com", 80, "/")),
    ],
)
def test_parse_url(url: str, expected: tuple[bool, str, int, str]) -> None:
    parsed = parse_url(url)
    assert (parsed.secure, parsed.host, parsed.port, parsed.resource) == expected
    assert parsed.scheme == ("wss" if expected[0] else "ws")
    assert parsed.username is None
    assert parsed.password is None


def test_parse_url_credentials() -> None:
    parsed = parse_url("wss://a%3Ab:c%23d@example.com/")
    assert parsed.username == "a:b"
    assert parsed.password == "c#d"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/",
        "https://example.com/",
        "ftp://example.com/",
        "example.com:80/path",
        "ws:///path",
        "ws://",
        "ws://example.com:99999/",
        "ws://example.com:port/",
        "ws://example.com/#fragment",
        "ws://example.com/path#",
        "wss://example.com/?q=1#frag",
        "",
    ],
)
def test_parse_url_rejects(url: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(url)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, WebSocketError)


def test_parse_url_rejects_non_str() -> None:
    with pytest.raises(InvalidURL):
        parse_url(b"ws://example.com/")  # type: ignore[arg-type]


def test_handshake_accepts_parsed_url() -> None:
    parsed = parse_url("ws://example.com:81/x")
    handshake = ClientHandshake(parsed)
    line, pairs = parse_request(handshake.request())
    assert line == "GET /x HTTP/1.1"
    assert one(pairs, "Host") == "example.com:81"


def test_handshake_rejects_http_url() -> None:
    with pytest.raises(InvalidURL):
        ClientHandshake("http://example.com/")


# --------------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------------


def test_headers_case_insensitive_and_repeated() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X-One", "1")])
    assert "SET-COOKIE" in headers
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers["set-cookie"] == "a=1, b=2"
    assert len(headers) == 2
    headers["x-one"] = "uno"
    assert headers.get_all("X-One") == ["uno"]
    del headers["SET-cookie"]
    assert "Set-Cookie" not in headers
    with pytest.raises(KeyError):
        headers["Missing"]
