"""Differential property tests of the protocol and handshake layers (the codec's are in test_differential).

The checks are the fuzz harness's (``fuzz/harness.py``): ``ClientProtocol.receive_data`` on both codec
twins must give the same events, the same replies (PONGs, the CLOSE that answers or fails) and the same
close code and error, whatever the split, without raising; ``ClientHandshake.receive`` must raise only
documented errors, give the same outcome however the response is split, and hand the bytes after a 101 to
both twins alike. Hypothesis builds the inputs (valid and mutated frame streams, handshake responses)
under the suite's profile (``ci``: 200 examples, derandomized; ``make fuzz``: ``dev``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest_client import extensions_disabled
from test_differential import ANY_STREAM, frame_streams, mutated_streams

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"


@pytest.fixture(scope="module")
def harness():
    if extensions_disabled():
        pytest.skip("the differential checks compare the compiled twin with the pure one")
    sys.path.insert(0, str(FUZZ))
    try:
        import harness
    finally:
        sys.path.remove(str(FUZZ))
    return harness


OPTIONS = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)).map(bytes)


class TestProtocolTwins:
    @given(options=OPTIONS, stream=ANY_STREAM)
    def test_receive_data_agrees(self, harness, options, stream):
        harness.check_protocol(options + stream)

    @given(options=OPTIONS, stream=mutated_streams())
    def test_mutated_streams(self, harness, options, stream):
        harness.check_protocol(options + stream)


def _header_line(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("latin-1")


STATUS_LINES = st.sampled_from(
    [
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101 OK",
        b"HTTP/1.0 101 Switching Protocols",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 301 Moved Permanently",
        b"HTTP/1.1 302 Found",
        b"HTTP/1.1 307 Temporary Redirect",
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 503 Service Unavailable",
        b"HTTP/1.1 1O1 Nope",
        b"HTTP/2 101",
        b"",
    ]
)
HEADERS = st.sampled_from(
    [
        _header_line("Upgrade", "websocket"),
        _header_line("Upgrade", "WebSocket, h2c"),
        _header_line("Connection", "Upgrade"),
        _header_line("Connection", "keep-alive, upgrade"),
        b"Sec-WebSocket-Accept: @ACCEPT@\r\n",
        _header_line("Sec-WebSocket-Accept", "dGhlIHNhbXBsZSBub25jZQ=="),
        _header_line("Sec-WebSocket-Protocol", "chat"),
        _header_line("Sec-WebSocket-Protocol", "chat, superchat"),
        _header_line("Sec-WebSocket-Protocol", "other"),
        _header_line("Sec-WebSocket-Extensions", "permessage-deflate"),
        _header_line("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover"),
        _header_line("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=9"),
        _header_line("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=20"),
        _header_line("Sec-WebSocket-Extensions", "x-unknown"),
        _header_line("Location", "ws://example.org/next"),
        _header_line("Location", "/relative?q=1"),
        _header_line("Location", "https://[::1]:8443/x"),
        _header_line("Location", "ftp://example.org/"),
        _header_line("Content-Length", "5"),
        _header_line("Content-Length", "nope"),
        _header_line("Transfer-Encoding", "chunked"),
        b"Bad header line\r\n",
        b" folded: value\r\n",
    ]
)


@st.composite
def handshake_responses(draw):
    head = draw(STATUS_LINES) + b"\r\n" + b"".join(draw(st.lists(HEADERS, max_size=8))) + b"\r\n"
    after = draw(st.one_of(st.just(b""), frame_streams().map(lambda s: s[0]), st.binary(max_size=30)))
    data = bytearray(head + after)
    for _ in range(draw(st.integers(0, 2))):  # a few mutations
        if data:
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] = draw(st.integers(0, 255))
    return bytes(data)


class TestHandshake:
    @given(options=OPTIONS, response=handshake_responses())
    def test_receive_agrees_and_raises_only_documented_errors(self, harness, options, response):
        harness.check_handshake(options + response)
