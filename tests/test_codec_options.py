"""Decoder options for JSON feeds: ``text_as_bytes`` and ``loads``, and the ``control_count`` hint."""

from __future__ import annotations

import json

import pytest

from helpers import BINARY, CONT, PING, TEXT, decode_variants, frame
from wsfast import InvalidUTF8Error, MessageDecodeError, Ping

TRADE = '{"e":"trade","p":"60001.50","q":"0.25","s":"BTCUSDT","note":"café"}'
STREAM = (
    frame(TEXT, TRADE.encode())
    + frame(PING, b"hb")
    + frame(TEXT, TRADE.encode()[:10], fin=False)
    + frame(CONT, TRADE.encode()[10:])
    + frame(BINARY, b"\x00\x01")
)


class TestTextAsBytes:
    def test_text_messages_come_out_as_validated_bytes(self, impl):
        messages, error = decode_variants(lambda: impl.Decoder(text_as_bytes=True), STREAM)
        assert error is None
        assert messages == [TRADE.encode(), Ping(b"hb"), TRADE.encode(), b"\x00\x01"]

    def test_a_partial_unfragmented_message_is_returned_as_bytes(self, impl):
        decoder = impl.Decoder(text_as_bytes=True)
        payload = ("x" * 70_000 + "é").encode()
        data = frame(TEXT, payload)
        assert decoder.feed(data[:30_000]) == []
        assert decoder.feed(data[30_000:]) == [payload]

    @pytest.mark.parametrize("bad", [b"\xff", b"ok\xed\xa0\x80", b"\xe2\x82"])
    def test_invalid_utf8_still_fails_with_1007(self, impl, bad):
        for data in (frame(TEXT, bad), frame(TEXT, bad[:1], fin=False) + frame(CONT, bad[1:])):
            messages, error = decode_variants(lambda: impl.Decoder(text_as_bytes=True), data)
            assert messages == []
            assert error == (InvalidUTF8Error, 1007)

    def test_fails_fast_inside_an_incomplete_frame(self, impl):
        decoder = impl.Decoder(text_as_bytes=True)
        with pytest.raises(InvalidUTF8Error):
            decoder.feed(frame(TEXT, b"abc\xc0" + b"x" * 1000)[:10])


class TestLoads:
    def test_loads_is_applied_to_text_messages_only(self, impl):
        seen: list[object] = []

        def loads(data: bytes) -> object:
            seen.append(type(data))
            return json.loads(data)

        messages, error = decode_variants(lambda: impl.Decoder(loads=loads), STREAM)
        assert error is None
        assert messages == [json.loads(TRADE), Ping(b"hb"), json.loads(TRADE), b"\x00\x01"]
        assert set(seen) == {bytes}  # loads always gets bytes, never str

    def test_a_failing_loads_gives_an_error_item_and_decoding_goes_on(self, impl):
        decoder = impl.Decoder(loads=json.loads)
        data = frame(TEXT, b"pong") + frame(TEXT, b"[1]")
        first, second = decoder.feed(data)
        assert isinstance(first, MessageDecodeError)
        assert first.payload == b"pong"
        assert isinstance(first.__cause__, ValueError)
        assert second == [1]
        assert decoder.control_count == 1
        assert decoder.feed(frame(TEXT, b"[2]")) == [[2]]

    def test_loads_must_be_callable(self, impl):
        with pytest.raises(TypeError):
            impl.Decoder(loads="json")


class TestControlCount:
    def test_counts_control_frames_of_the_last_feed(self, impl):
        decoder = impl.Decoder()
        decoder.feed(frame(TEXT, b"a") + frame(PING, b"") + frame(PING, b"x"))
        assert decoder.control_count == 2
        decoder.feed(frame(TEXT, b"b"))
        assert decoder.control_count == 0
        decoder.feed(frame(BINARY, b"c")[:1])
        assert decoder.control_count == 0
