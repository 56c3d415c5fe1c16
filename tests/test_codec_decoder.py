"""Decoder (server -> client frames) tests, one class per RFC 6455 topic.

Every vector goes through ``decode_variants``: fed whole, byte by byte and at seeded random cuts, all of
which must give the same messages and the same error (type and close code).
"""

from __future__ import annotations

import sys
import tracemalloc

import pytest

from helpers import (
    BINARY,
    CLOSE,
    CONT,
    DEFAULT_MAX_MESSAGE_SIZE,
    PING,
    PONG,
    RESERVED_OPCODES,
    RFC_MASK,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    check_error,
    close_payload,
    decode_variants,
    error_sig,
    feed_all,
    frame,
    header,
    split_variants,
)
from wsfast import (
    Close,
    InvalidUTF8Error,
    MessageTooBigError,
    Ping,
    Pong,
    ProtocolError,
    WebSocketError,
)


def decode(impl, data, **kwargs):
    return decode_variants(lambda: impl.Decoder(**kwargs), data)


def assert_decodes(impl, data, expected, **kwargs):
    messages, error = decode(impl, data, **kwargs)
    assert error is None, f"unexpected error {error}"
    assert messages == expected
    assert [type(m) for m in messages] == [type(m) for m in expected]


def assert_fails(impl, data, close_code, messages=(), **kwargs):
    got, error = decode(impl, data, **kwargs)
    check_error(error, close_code)
    assert got == list(messages)
    assert [type(m) for m in got] == [type(m) for m in messages]


def pattern(length, seed=0):
    """Deterministic binary payload using every byte value."""
    return bytes((i * 7 + seed) % 256 for i in range(length))


def text_of_length(length):
    """Text whose UTF-8 encoding is exactly ``length`` bytes, mixing 1- to 4-byte characters."""
    unit = "aé€𝄞"  # 1 + 2 + 3 + 4 = 10 bytes
    text = unit * (length // 10)
    text += "a" * (length % 10)
    assert len(text.encode()) == length
    return text


class TestRFCExamples:
    """RFC 6455 §5.7, written out byte by byte (not with the test frame builder)."""

    def test_single_frame_unmasked_text(self, impl):
        assert_decodes(impl, bytes.fromhex("81 05 48 65 6c 6c 6f"), ["Hello"])

    def test_single_frame_masked_text_is_rejected(self, impl):
        # RFC 6455 §5.1: "The client MUST close a connection if it detects a masked frame."
        assert_fails(impl, bytes.fromhex("81 85 37 fa 21 3d 7f 9f 4d 51 58"), 1002)

    def test_fragmented_unmasked_text(self, impl):
        data = bytes.fromhex("01 03 48 65 6c") + bytes.fromhex("80 02 6c 6f")
        assert_decodes(impl, data, ["Hello"])

    def test_unmasked_ping(self, impl):
        assert_decodes(impl, bytes.fromhex("89 05 48 65 6c 6c 6f"), [Ping(b"Hello")])

    def test_masked_pong_is_rejected(self, impl):
        assert_fails(impl, bytes.fromhex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"), 1002)

    def test_256_bytes_binary_16_bit_length(self, impl):
        payload = pattern(256)
        assert_decodes(impl, bytes.fromhex("82 7E 01 00") + payload, [payload])

    def test_64_kib_binary_64_bit_length(self, impl):
        payload = pattern(65536)
        data = bytes.fromhex("82 7F 00 00 00 00 00 01 00 00") + payload
        assert_decodes(impl, data, [payload])

    def test_all_unmasked_examples_in_one_stream(self, impl):
        data = bytes.fromhex("81 05 48 65 6c 6c 6f  01 03 48 65 6c  89 05 48 65 6c 6c 6f  80 02 6c 6f")
        assert_decodes(impl, data, ["Hello", Ping(b"Hello"), "Hello"])

    def test_masked_example_after_valid_frame_keeps_earlier_message(self, impl):
        data = bytes.fromhex("81 05 48 65 6c 6c 6f  81 85 37 fa 21 3d 7f 9f 4d 51 58")
        assert_fails(impl, data, 1002, messages=["Hello"])


class TestHeaders:
    """RFC 6455 §5.2 base framing."""

    @pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536])
    def test_binary_length(self, impl, length):
        payload = pattern(length)
        data = frame(BINARY, payload)
        expected_marker = length if length <= 125 else 126 if length <= 65535 else 127
        assert data[1] == expected_marker  # the builder used the minimal form
        assert_decodes(impl, data, [payload])

    @pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536])
    def test_text_length(self, impl, length):
        text = text_of_length(length)
        assert_decodes(impl, frame(TEXT, text), [text])

    @pytest.mark.parametrize(
        ("length", "length_form"),
        [(0, 16), (0, 64), (1, 16), (125, 16), (125, 64), (126, 64), (65535, 64)],
    )
    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_non_minimal_length_encoding_accepted(self, impl, opcode, length, length_form):
        payload = text_of_length(length) if opcode == TEXT else pattern(length)
        assert_decodes(impl, frame(opcode, payload, length_form=length_form), [payload])

    def test_consecutive_frames_of_every_length_form(self, impl):
        payloads = [pattern(n, seed=n) for n in (0, 125, 126, 65535, 65536, 3)]
        data = b"".join(frame(BINARY, p) for p in payloads)
        assert_decodes(impl, data, payloads)

    @pytest.mark.parametrize("length", [2**63, 2**63 + 1, 2**64 - 1])
    @pytest.mark.parametrize("max_message_size", [None, DEFAULT_MAX_MESSAGE_SIZE])
    def test_64_bit_length_with_top_bit_set(self, impl, length, max_message_size):
        # RFC 6455 §5.2: "the most significant bit MUST be 0"
        data = header(BINARY, length, length_form=64)
        assert_fails(impl, data, 1002, max_message_size=max_message_size)

    @pytest.mark.parametrize("rsv", range(1, 8))
    @pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, PONG, CLOSE])
    def test_reserved_bits(self, impl, opcode, rsv):
        # RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated"
        assert_fails(impl, frame(opcode, b"", rsv=rsv), 1002)
        payload = close_payload(1000) if opcode == CLOSE else b"ok"
        assert_fails(impl, frame(opcode, payload, rsv=rsv), 1002)

    @pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3])
    def test_reserved_bits_on_continuation(self, impl, rsv):
        data = frame(TEXT, "a", fin=False) + frame(CONT, "b", rsv=rsv)
        assert_fails(impl, data, 1002)

    @pytest.mark.parametrize("opcode", RESERVED_OPCODES)
    @pytest.mark.parametrize("fin", [True, False])
    def test_reserved_opcode(self, impl, opcode, fin):
        # RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the
        # WebSocket Connection_."
        assert_fails(impl, frame(opcode, b"", fin=fin), 1002)
        assert_fails(impl, frame(opcode, b"abc", fin=fin), 1002)

    @pytest.mark.parametrize("opcode", RESERVED_OPCODES)
    def test_reserved_opcode_inside_fragmented_message(self, impl, opcode):
        data = frame(TEXT, "a", fin=False) + frame(opcode, b"x") + frame(CONT, "b")
        assert_fails(impl, data, 1002)

    @pytest.mark.parametrize("opcode", [TEXT, BINARY, CONT, PING, PONG, CLOSE])
    @pytest.mark.parametrize("mask", [RFC_MASK, b"\x00\x00\x00\x00"])
    def test_masked_server_frame(self, impl, opcode, mask):
        # RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends to the client."
        payload = close_payload(1000) if opcode == CLOSE else b"Hello"
        assert_fails(impl, frame(opcode, payload, mask=mask), 1002)
        assert_fails(impl, frame(opcode, b"", mask=mask), 1002)

    def test_masked_frame_after_valid_frames(self, impl):
        data = frame(TEXT, "one") + frame(BINARY, b"two") + frame(TEXT, "three", mask=RFC_MASK)
        assert_fails(impl, data, 1002, messages=["one", b"two"])


class TestControlFrames:
    """RFC 6455 §5.5: control frames."""

    @pytest.mark.parametrize("length", [0, 1, 125])
    @pytest.mark.parametrize(("cls", "opcode"), [(Ping, PING), (Pong, PONG)])
    def test_ping_pong_payload(self, impl, cls, opcode, length):
        payload = pattern(length)
        messages, error = decode(impl, frame(opcode, payload))
        assert error is None
        assert messages == [cls(payload)]
        assert type(messages[0]) is cls
        assert type(messages[0].payload) is bytes

    @pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
    @pytest.mark.parametrize("length", [126, 127, 200, 65535, 65536])
    def test_control_payload_over_125(self, impl, opcode, length):
        # RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less"
        payload = close_payload(1000, b"a" * (length - 2)) if opcode == CLOSE else pattern(length)
        assert_fails(impl, frame(opcode, payload), 1002)

    @pytest.mark.parametrize("length_form", [16, 64])
    def test_control_payload_with_non_minimal_length_encoding(self, impl, length_form):
        # The spec accepts non-minimal length encodings; the payload itself is within 125 bytes.
        data = frame(PING, b"abc", length_form=length_form) + frame(PONG, b"", length_form=length_form)
        assert_decodes(impl, data, [Ping(b"abc"), Pong(b"")])

    @pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
    def test_fragmented_control_frame(self, impl, opcode):
        # RFC 6455 §5.5: "Control frames themselves MUST NOT be fragmented."
        payload = close_payload(1000) if opcode == CLOSE else b"ab"
        assert_fails(impl, frame(opcode, payload, fin=False), 1002)
        assert_fails(impl, frame(opcode, payload, fin=False) + frame(CONT, b"c"), 1002)

    def test_fragmented_ping_inside_fragmented_message(self, impl):
        data = frame(TEXT, "a", fin=False) + frame(PING, b"p", fin=False) + frame(CONT, "b")
        assert_fails(impl, data, 1002)

    def test_control_frames_between_fragments_in_wire_order(self, impl):
        # RFC 6455 §5.4: "Control frames MAY be injected in the middle of a fragmented message."
        data = (
            frame(TEXT, "Hel", fin=False)
            + frame(PING, b"1")
            + frame(CONT, "l", fin=False)
            + frame(PONG, b"2")
            + frame(PING, b"3")
            + frame(CONT, "o")
            + frame(PONG, b"4")
        )
        assert_decodes(impl, data, [Ping(b"1"), Pong(b"2"), Ping(b"3"), "Hello", Pong(b"4")])

    def test_close_between_fragments(self, impl):
        data = frame(BINARY, b"ab", fin=False) + frame(CLOSE, close_payload(1001, "bye"))
        assert_decodes(impl, data, [Close(1001, "bye")])

    def test_many_control_frames_between_fragments(self, impl):
        data = frame(BINARY, b"x", fin=False)
        expected = []
        for i in range(50):
            data += frame(PING, bytes([i]) * i) + frame(CONT, bytes([i]), fin=False)
            expected.append(Ping(bytes([i]) * i))
        data += frame(CONT, b"!")
        expected.append(b"x" + bytes(range(50)) + b"!")
        assert_decodes(impl, data, expected)

    def test_ping_payload_is_not_utf8_checked(self, impl):
        assert_decodes(
            impl, frame(PING, b"\xff\xfe") + frame(PONG, b"\xc0"), [Ping(b"\xff\xfe"), Pong(b"\xc0")]
        )


class TestFragmentation:
    """RFC 6455 §5.4: fragmentation and reassembly."""

    @pytest.mark.parametrize("count", [1, 2, 3, 7, 100])
    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_any_number_of_fragments(self, impl, opcode, count):
        message = text_of_length(333) if opcode == TEXT else pattern(333)
        raw = message.encode() if opcode == TEXT else message
        step = -(-len(raw) // count)
        parts = [raw[i * step : (i + 1) * step] for i in range(count)]
        assert b"".join(parts) == raw
        data = b"".join(
            frame(opcode if i == 0 else CONT, part, fin=i == count - 1) for i, part in enumerate(parts)
        )
        assert_decodes(impl, data, [message])

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_empty_fragments(self, impl, opcode):
        empty = "" if opcode == TEXT else b""
        # first, middle and last fragment empty
        data = (
            frame(opcode, b"", fin=False)
            + frame(CONT, b"ab", fin=False)
            + frame(CONT, b"", fin=False)
            + frame(CONT, b"", fin=False)
            + frame(CONT, b"cd", fin=False)
            + frame(CONT, b"")
        )
        expected = "abcd" if opcode == TEXT else b"abcd"
        assert_decodes(impl, data, [expected])
        # only empty fragments
        data = frame(opcode, b"", fin=False) + frame(CONT, b"", fin=False) + frame(CONT, b"")
        assert_decodes(impl, data, [empty])
        assert_decodes(impl, frame(opcode, b""), [empty])

    def test_65536_fragments_of_64_bytes(self, impl):
        count, size = 65536, 64
        payload = pattern(count * size)
        parts = [
            bytes([0x02 if i == 0 else (0x80 if i == count - 1 else 0x00), size])
            + payload[i * size : (i + 1) * size]
            for i in range(count)
        ]
        data = b"".join(parts)
        for cuts in ([], list(range(1000, len(data), 1000)), list(range(66, len(data), 66 * 4096))):
            messages, error = feed_all(impl.Decoder(), data, cuts)
            assert error is None
            assert len(messages) == 1
            assert type(messages[0]) is bytes
            assert messages[0] == payload

    def test_fragmented_text_with_characters_split_across_fragments(self, impl):
        text = "€" * 1000 + "𝄞" * 500  # 3- and 4-byte characters; 64 is a multiple of neither
        raw = text.encode()
        parts = [raw[i : i + 64] for i in range(0, len(raw), 64)]
        data = b"".join(
            frame(TEXT if i == 0 else CONT, part, fin=i == len(parts) - 1) for i, part in enumerate(parts)
        )
        assert_decodes(impl, data, [text])

    def test_message_after_fragmented_message(self, impl):
        data = (
            frame(TEXT, "a", fin=False)
            + frame(CONT, "b")
            + frame(BINARY, b"c", fin=False)
            + frame(CONT, b"d")
            + frame(TEXT, "e")
        )
        assert_decodes(impl, data, ["ab", b"cd", "e"])

    @pytest.mark.parametrize("fin", [True, False])
    def test_continuation_without_start(self, impl, fin):
        # RFC 6455 §5.4: a fragmented message starts with a non-continuation frame
        assert_fails(impl, frame(CONT, b"x", fin=fin), 1002)
        assert_fails(impl, frame(CONT, b"", fin=fin), 1002)

    def test_continuation_after_finished_message(self, impl):
        data = frame(TEXT, "a", fin=False) + frame(CONT, "b") + frame(CONT, "c")
        assert_fails(impl, data, 1002, messages=["ab"])
        assert_fails(impl, frame(BINARY, b"a") + frame(CONT, b"b"), 1002, messages=[b"a"])

    @pytest.mark.parametrize("first", [TEXT, BINARY])
    @pytest.mark.parametrize("second", [TEXT, BINARY])
    @pytest.mark.parametrize("second_fin", [True, False])
    def test_new_data_frame_inside_unfinished_message(self, impl, first, second, second_fin):
        # RFC 6455 §5.4: fragments of one message MUST NOT be interleaved with another message
        data = frame(first, b"a", fin=False) + frame(second, b"b", fin=second_fin)
        assert_fails(impl, data, 1002)
        data = frame(first, b"a", fin=False) + frame(PING) + frame(CONT, b"b", fin=False)
        assert_fails(impl, data + frame(second, b"c", fin=second_fin), 1002, messages=[Ping(b"")])


class TestUTF8:
    """RFC 6455 §8.1: text must be valid UTF-8; fail fast (§5.6, §8.1)."""

    VALID = "héllo € 𝄞 \u07ff \u0800 \ud7ff \ue000 \uffff \U00010000 \U0010ffff ascii"

    def test_valid_multi_byte_text(self, impl):
        assert_decodes(impl, frame(TEXT, self.VALID), [self.VALID])

    def test_invalid_byte_at_every_offset(self, impl):
        raw = self.VALID.encode()
        for i in range(len(raw) + 1):
            data = frame(TEXT, raw[:i] + b"\xff" + raw[i:])
            assert_fails(impl, data, 1007)

    def test_fail_fast_at_every_offset(self, impl):
        raw = self.VALID.encode()
        for i in range(len(raw) + 1):
            payload = raw[:i] + b"\xff" + raw[i:]
            decoder = impl.Decoder()
            # the frame is incomplete: only up to and including the invalid byte is fed
            with pytest.raises(InvalidUTF8Error) as excinfo:
                decoder.feed(header(TEXT, len(payload)) + payload[: i + 1])
            assert excinfo.value.close_code == 1007

    @pytest.mark.parametrize(
        "prefix",
        [
            b"ab\xc0",  # C0 is never valid
            b"ab\xc1",
            b"\xf5",
            b"\xff",
            b"\x80",  # stray continuation byte
            b"ab\xe0\x80",  # overlong 3-byte
            b"\xe0\x9f",
            b"ab\xed\xa0",  # surrogate: CPython's incremental decoder still waits here
            b"\xed\xbf",
            b"\xf0\x80",  # overlong 4-byte
            b"\xf0\x8f",
            b"\xf4\x90",  # > U+10FFFF
            b"\xe2\x82\x41",  # truncated sequence followed by ASCII
            b"\xf0\x9f\x98\x41",
        ],
    )
    def test_fail_fast_inside_incomplete_frame(self, impl, prefix):
        decoder = impl.Decoder()
        with pytest.raises(InvalidUTF8Error) as excinfo:
            decoder.feed(header(TEXT, 100) + prefix)
        assert excinfo.value.close_code == 1007
        # and fed as a separate chunk after the header
        decoder = impl.Decoder()
        assert decoder.feed(header(TEXT, 100)) == []
        assert decoder.feed(prefix[:-1]) == []
        with pytest.raises(InvalidUTF8Error) as excinfo:
            decoder.feed(prefix[-1:])
        assert excinfo.value.close_code == 1007

    def test_fail_fast_in_unfinished_first_fragment(self, impl):
        decoder = impl.Decoder()
        with pytest.raises(InvalidUTF8Error) as excinfo:
            decoder.feed(frame(TEXT, b"abc\xff", fin=False))
        assert excinfo.value.close_code == 1007

    def test_fail_fast_across_fragment_boundary(self, impl):
        decoder = impl.Decoder()
        assert decoder.feed(frame(TEXT, b"a\xe2", fin=False)) == []  # valid prefix, message continues
        assert decoder.feed(header(CONT, 10)) == []
        with pytest.raises(InvalidUTF8Error) as excinfo:
            decoder.feed(b"\x28")  # not a continuation byte; the frame is still incomplete
        assert excinfo.value.close_code == 1007

    def test_fail_fast_across_fragment_boundary_with_control_frame(self, impl):
        decoder = impl.Decoder()
        assert decoder.feed(frame(TEXT, b"a\xed", fin=False)) == []
        assert decoder.feed(frame(PING, b"p") + header(CONT, 10, fin=True)) == [Ping(b"p")]
        with pytest.raises(InvalidUTF8Error) as excinfo:
            decoder.feed(b"\xa0")  # ED A0 starts a surrogate
        assert excinfo.value.close_code == 1007
        assert excinfo.value.messages == []

    @pytest.mark.parametrize("tail", [b"\xc3", b"\xe2", b"\xe2\x82", b"\xf0", b"\xf0\x9f", b"\xf0\x9f\x98"])
    def test_truncated_sequence_at_message_end(self, impl, tail):
        assert_fails(impl, frame(TEXT, b"ok" + tail), 1007)
        assert_fails(impl, frame(TEXT, b"ok", fin=False) + frame(CONT, tail), 1007)
        assert_fails(impl, frame(TEXT, b"ok" + tail, fin=False) + frame(CONT, b""), 1007)

    def test_sequence_split_across_frames_is_fine(self, impl):
        data = (
            frame(TEXT, b"\xe2", fin=False)
            + frame(CONT, b"\x82", fin=False)
            + frame(PING, b"")
            + frame(CONT, b"\xac\xf0", fin=False)
            + frame(CONT, b"\x9d\x84\x9e")
        )
        assert_decodes(impl, data, [Ping(b""), "€𝄞"])

    def test_binary_is_not_utf8_checked(self, impl):
        assert_decodes(impl, frame(BINARY, b"\xff\xc0\xed\xa0\x80"), [b"\xff\xc0\xed\xa0\x80"])

    def test_binary_message_does_not_feed_the_text_validator(self, impl):
        # E2 in a binary message must not make the next text message's 82 look like a continuation
        data = frame(TEXT, "é") + frame(BINARY, b"\xe2") + frame(TEXT, b"\x82")
        assert_fails(impl, data, 1007, messages=["é", b"\xe2"])


class TestClose:
    """RFC 6455 §5.5.1 and §7.4: close frames."""

    VALID_CODES = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]
    INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]

    def test_empty_payload(self, impl):
        assert_decodes(impl, frame(CLOSE, b""), [Close(1005, "")])

    def test_one_byte_payload(self, impl):
        assert_fails(impl, frame(CLOSE, b"\x03"), 1002)

    @pytest.mark.parametrize("code", VALID_CODES)
    def test_valid_code(self, impl, code):
        assert_decodes(impl, frame(CLOSE, close_payload(code)), [Close(code, "")])
        assert_decodes(impl, frame(CLOSE, close_payload(code, "why")), [Close(code, "why")])

    @pytest.mark.parametrize("code", INVALID_CODES)
    def test_invalid_code(self, impl, code):
        assert_fails(impl, frame(CLOSE, close_payload(code)), 1002)
        assert_fails(impl, frame(CLOSE, close_payload(code, "why")), 1002)

    def test_every_code(self, impl):
        """All 65536 codes, whole frames: valid are 1000-1003, 1007-1014 and 3000-4999."""
        wrong = []
        for code in range(65536):
            valid = code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999
            decoder = impl.Decoder()
            try:
                messages = decoder.feed(frame(CLOSE, close_payload(code)))
            except ProtocolError as exc:
                if valid or exc.close_code != 1002:
                    wrong.append((code, exc.close_code))
            else:
                if not valid or messages != [Close(code, "")]:
                    wrong.append((code, messages))
        assert wrong == []

    @pytest.mark.parametrize(
        "reason",
        [b"\xff", b"ok\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"ok\xf0\x9f\x98", b"\xf4\x90\x80\x80"],
    )
    def test_reason_not_utf8(self, impl, reason):
        assert_fails(impl, frame(CLOSE, close_payload(1000, reason)), 1007)

    def test_reason_of_123_bytes(self, impl):
        reason = text_of_length(123)
        assert_decodes(impl, frame(CLOSE, close_payload(1000, reason)), [Close(1000, reason)])

    def test_reason_of_124_bytes(self, impl):
        assert_fails(impl, frame(CLOSE, close_payload(1000, "a" * 124)), 1002)

    def test_close_code_is_an_int(self, impl):
        [message] = impl.Decoder().feed(frame(CLOSE, close_payload(4321, "x")))
        assert isinstance(message.code, int)
        assert message.code == 4321
        assert isinstance(message.reason, str)
        assert message.reason == "x"

    def test_close_with_1005_on_the_wire(self, impl):
        # qore's WebSocketUtil test vector: an unmasked CLOSE 1005 "test".
        # RFC 6455 §7.4.1: 1005 "MUST NOT be set as a status code in a Close control frame"
        assert_fails(impl, bytes.fromhex("88 06 03 ED 74 65 73 74"), 1002)

    def test_messages_before_close(self, impl):
        data = frame(TEXT, "bye") + frame(CLOSE, close_payload(1000))
        assert_decodes(impl, data, ["bye", Close(1000, "")])


class TestLimits:
    """max_message_size: checked on the declared length, when the header arrives."""

    @pytest.mark.parametrize("length_form", [None, 16, 64])
    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_frame_over_limit_fails_on_header(self, impl, opcode, length_form):
        head = header(opcode, 1001, length_form=length_form)
        decoder = impl.Decoder(max_message_size=1000)
        with pytest.raises(MessageTooBigError) as excinfo:
            decoder.feed(head)  # no payload byte sent
        assert excinfo.value.close_code == 1009
        # byte by byte: only the last header byte raises
        decoder = impl.Decoder(max_message_size=1000)
        for byte in head[:-1]:
            assert decoder.feed(bytes([byte])) == []
        with pytest.raises(MessageTooBigError) as excinfo:
            decoder.feed(head[-1:])
        assert excinfo.value.close_code == 1009

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_exactly_at_limit(self, impl, opcode):
        payload = text_of_length(1000) if opcode == TEXT else pattern(1000)
        assert_decodes(impl, frame(opcode, payload), [payload], max_message_size=1000)

    def test_full_frame_over_limit(self, impl):
        assert_fails(impl, frame(BINARY, pattern(1001)), 1009, max_message_size=1000)
        assert_fails(impl, frame(TEXT, "é" * 501), 1009, max_message_size=1000)

    def test_fragmented_message_over_limit_fails_on_header(self, impl):
        decoder = impl.Decoder(max_message_size=1000)
        assert decoder.feed(frame(BINARY, pattern(600), fin=False)) == []
        assert decoder.feed(frame(PING, b"p")) == [Ping(b"p")]
        with pytest.raises(MessageTooBigError) as excinfo:
            decoder.feed(header(CONT, 401))
        assert excinfo.value.close_code == 1009

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_fragmented_message_over_limit(self, impl, opcode):
        data = frame(opcode, b"a" * 300, fin=False) + frame(CONT, b"b" * 300, fin=False)
        data += frame(PONG, b"") + frame(CONT, b"c" * 401)
        assert_fails(impl, data, 1009, messages=[Pong(b"")], max_message_size=1000)

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_fragmented_message_exactly_at_limit(self, impl, opcode):
        data = frame(opcode, b"a" * 300, fin=False) + frame(CONT, b"b" * 300, fin=False)
        data += frame(CONT, b"", fin=False) + frame(CONT, b"c" * 400)
        expected = b"a" * 300 + b"b" * 300 + b"c" * 400
        if opcode == TEXT:
            expected = expected.decode()
        assert_decodes(impl, data, [expected], max_message_size=1000)

    def test_limit_applies_per_message(self, impl):
        data = frame(BINARY, pattern(100)) + frame(BINARY, pattern(100), fin=False) + frame(CONT, b"")
        data += frame(TEXT, "x" * 100)
        assert_decodes(impl, data, [pattern(100), pattern(100), "x" * 100], max_message_size=100)

    def test_limit_zero(self, impl):
        assert_decodes(impl, frame(TEXT, "") + frame(BINARY, b""), ["", b""], max_message_size=0)
        assert_fails(impl, frame(BINARY, b"x"), 1009, max_message_size=0)

    def test_default_limit_is_64_mib(self, impl):
        with pytest.raises(MessageTooBigError) as excinfo:
            impl.Decoder().feed(header(BINARY, DEFAULT_MAX_MESSAGE_SIZE + 1))
        assert excinfo.value.close_code == 1009
        assert impl.Decoder().feed(header(BINARY, DEFAULT_MAX_MESSAGE_SIZE)) == []

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_huge_length_claim_with_default_limit(self, impl, opcode):
        # 2**63-1 is a legal length; it is refused by the limit, without allocating it.
        assert_fails(impl, header(opcode, 2**63 - 1, length_form=64), 1009)

    def test_none_is_unlimited(self, impl):
        big = 3 * 2**20
        assert_decodes(impl, frame(BINARY, pattern(big)), [pattern(big)], max_message_size=None)
        data = frame(BINARY, pattern(2**20), fin=False) + frame(CONT, pattern(2**20))
        assert_decodes(impl, data, [pattern(2**20) * 2], max_message_size=None)

    def test_limit_larger_than_any_frame(self, impl):
        # an int limit beyond 2**63 is accepted and behaves like a limit that is never reached
        for limit in (2**63 - 1, 2**63, 2**64):
            decoder = impl.Decoder(max_message_size=limit)
            assert decoder.feed(header(BINARY, 2**63 - 1, length_form=64)) == []
            assert decoder.feed(b"abc") == []

    def test_negative_limit_is_refused(self, impl):
        with pytest.raises(ValueError):  # noqa: PT011
            impl.Decoder(max_message_size=-1)

    def test_none_does_not_allocate_declared_length(self, impl):
        decoder = impl.Decoder(max_message_size=None)
        assert decoder.feed(header(BINARY, 2**62, length_form=64)) == []
        assert decoder.feed(b"x" * 1000) == []

    @pytest.mark.skipif(sys.implementation.name != "cpython", reason="tracemalloc is CPython's")
    @pytest.mark.parametrize("text_as_bytes", [False, True])
    def test_endless_empty_fragments_hold_no_memory(self, impl, text_as_bytes):
        # A message that never ends, in empty fragments, never reaches the size limit: it must not
        # grow memory either (the pure twin once kept one list entry per fragment).
        decoder = impl.Decoder(max_message_size=1000, text_as_bytes=text_as_bytes)
        assert decoder.feed(frame(TEXT, b"", fin=False)) == []
        chunk = frame(CONT, b"", fin=False) * 5000
        decoder.feed(chunk)
        tracemalloc.start()
        try:
            for _ in range(6):
                assert decoder.feed(chunk) == []
            current, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert current < 10_000, current

    @pytest.mark.skipif(sys.implementation.name != "cpython", reason="tracemalloc is CPython's")
    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_tiny_fragments_stay_within_the_limit(self, impl, opcode):
        # 3-byte fragments of a message over the limit: 1009, and the memory held stays near the limit.
        limit = 60_000
        decoder = impl.Decoder(max_message_size=limit)
        assert decoder.feed(frame(opcode, b"abc", fin=False)) == []
        chunk = frame(CONT, b"abc", fin=False) * 5_000
        tracemalloc.start()
        try:
            for _ in range(limit // 15_000 - 1):  # 15,000 payload bytes per chunk: still within the limit
                assert decoder.feed(chunk) == []
            with pytest.raises(MessageTooBigError) as excinfo:
                decoder.feed(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert excinfo.value.close_code == 1009
        assert peak < 4 * limit, peak


class TestErrors:
    """Errors carry their close code, the messages decoded before them, and stick."""

    BAD = {
        1002: frame(TEXT, "x", rsv=RSV1),
        1007: frame(TEXT, b"\xff"),
        1009: header(BINARY, DEFAULT_MAX_MESSAGE_SIZE + 1),
    }

    @pytest.mark.parametrize("close_code", [1002, 1007, 1009])
    def test_error_is_sticky(self, impl, close_code):
        decoder = impl.Decoder()
        with pytest.raises(WebSocketError) as first:
            decoder.feed(self.BAD[close_code])
        check_error(error_sig(first.value), close_code)
        for data in (frame(TEXT, "fine"), b"", frame(PING, b""), self.BAD[close_code]):
            with pytest.raises(WebSocketError) as again:
                decoder.feed(data)
            assert type(again.value) is type(first.value)
            assert again.value.close_code == close_code

    def test_repeated_error_carries_no_messages(self, impl):
        # .messages is what *that* call decoded; a later call decodes nothing.
        decoder = impl.Decoder()
        with pytest.raises(ProtocolError) as first:
            decoder.feed(frame(TEXT, "a") + self.BAD[1002])
        assert first.value.messages == ["a"]
        with pytest.raises(ProtocolError) as again:
            decoder.feed(frame(TEXT, "b"))
        assert again.value.messages == []
        assert again.value.close_code == 1002

    @pytest.mark.parametrize("close_code", [1002, 1007, 1009])
    def test_messages_decoded_before_error_in_same_call(self, impl, close_code):
        good = frame(TEXT, "a") + frame(PING, b"p") + frame(BINARY, b"b", fin=False) + frame(CONT, b"c")
        with pytest.raises(WebSocketError) as excinfo:
            impl.Decoder().feed(good + self.BAD[close_code])
        assert excinfo.value.close_code == close_code
        assert excinfo.value.messages == ["a", Ping(b"p"), b"bc"]

    def test_messages_only_from_the_failing_call(self, impl):
        decoder = impl.Decoder()
        assert decoder.feed(frame(TEXT, "a") + frame(PING, b"p")) == ["a", Ping(b"p")]
        with pytest.raises(ProtocolError) as excinfo:
            decoder.feed(frame(BINARY, b"b") + self.BAD[1002])
        assert excinfo.value.close_code == 1002
        assert excinfo.value.messages == [b"b"]

    def test_no_messages_when_error_comes_first(self, impl):
        with pytest.raises(ProtocolError) as excinfo:
            impl.Decoder().feed(self.BAD[1002] + frame(TEXT, "never"))
        assert excinfo.value.messages == []

    def test_error_classes(self, impl):
        assert issubclass(ProtocolError, WebSocketError)
        assert issubclass(InvalidUTF8Error, ProtocolError)
        assert issubclass(MessageTooBigError, ProtocolError)
        for close_code, data in self.BAD.items():
            with pytest.raises(WebSocketError) as excinfo:
                impl.Decoder().feed(data)
            assert isinstance(excinfo.value.close_code, int)
            assert isinstance(excinfo.value.messages, list)
            check_error(error_sig(excinfo.value), close_code)

    def test_truncated_stream_is_not_an_error(self, impl):
        data = frame(TEXT, "complete") + frame(BINARY, pattern(300))
        for end in range(len(data)):
            messages, error = feed_all(impl.Decoder(), data[:end], [])
            assert error is None
            assert messages == (["complete"] if end >= len(frame(TEXT, "complete")) else [])


def _memoryview_slice(data):
    return memoryview(b"\x00\x01\x02" + bytes(data) + b"\xfe\xff")[3 : 3 + len(data)]


class TestInputTypes:
    """feed() takes bytes, bytearray and memoryview, and never keeps the caller's buffer."""

    STREAM = (
        frame(TEXT, "Hello")
        + frame(BINARY, pattern(300), fin=False)
        + frame(PING, b"p")
        + frame(CONT, b"!")
        + frame(CLOSE, close_payload(1000, "bye"))
    )
    EXPECTED = ["Hello", Ping(b"p"), pattern(300) + b"!", Close(1000, "bye")]

    @pytest.mark.parametrize(
        "wrap",
        [bytes, bytearray, memoryview, _memoryview_slice],
        ids=["bytes", "bytearray", "memoryview", "memoryview-slice"],
    )
    def test_input_type(self, impl, wrap):
        for label, cuts in split_variants(self.STREAM):
            messages, error = feed_all(impl.Decoder(), self.STREAM, cuts, wrap=wrap)
            assert error is None, label
            assert messages == self.EXPECTED, label
            assert [type(m) for m in messages] == [type(m) for m in self.EXPECTED], label

    def test_empty_feed(self, impl):
        decoder = impl.Decoder()
        for empty in (b"", bytearray(), memoryview(b"")):
            assert decoder.feed(empty) == []
        assert decoder.feed(frame(TEXT, "a")) == ["a"]

    # the stream is a 15-byte TEXT frame then a 5-byte BINARY frame: cut in headers and payloads
    SPLITS = [1, 2, 5, 7, 14, 15, 16, 17, 19]

    @staticmethod
    def _two_frames():
        data = frame(TEXT, "Hello, world!") + frame(BINARY, b"xyz")
        assert len(data) == 20
        return data

    @pytest.mark.parametrize("split", SPLITS)
    def test_bytearray_mutated_after_partial_frame(self, impl, split):
        data = self._two_frames()
        decoder = impl.Decoder()
        first = bytearray(data[:split])
        messages = decoder.feed(first)
        first[:] = b"\xff" * len(first)  # the decoder must have copied what it needs
        first.extend(b"grow")  # and must not hold a buffer export (BufferError otherwise)
        messages += decoder.feed(bytearray(data[split:]))
        assert messages == ["Hello, world!", b"xyz"]

    @pytest.mark.parametrize("split", SPLITS)
    def test_memoryview_source_mutated_after_partial_frame(self, impl, split):
        data = self._two_frames()
        buffer = bytearray(data)
        view = memoryview(buffer)
        decoder = impl.Decoder()
        messages = decoder.feed(view[:split])
        buffer[:split] = b"\x00" * split
        messages += decoder.feed(view[split:])
        assert messages == ["Hello, world!", b"xyz"]
        view.release()
        buffer.extend(b"grow")  # no export left behind by the decoder

    def test_results_do_not_alias_the_input(self, impl):
        buffer = bytearray(frame(BINARY, b"abc") + frame(PING, b"ping"))
        messages = impl.Decoder().feed(buffer)
        buffer[:] = b"\x00" * len(buffer)
        assert messages == [b"abc", Ping(b"ping")]
        assert type(messages[0]) is bytes
        assert type(messages[1].payload) is bytes
