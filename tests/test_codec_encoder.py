"""Encoder (client -> server frames) tests: every output is parsed with struct, independently of wsfast."""

from __future__ import annotations

import struct

import pytest

from helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    RESERVED_OPCODES,
    TEXT,
    check_error,
    close_payload,
    decode_variants,
    frame,
    parse_client_frame,
)
from wsfast import Close, Ping

VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]


def encode(impl, payload, opcode, fin=True):
    out = impl.Encoder().encode(payload, opcode, fin)
    assert type(out) is bytes
    return parse_client_frame(out)


def refuses(call, *args):
    """The encoder rejects its arguments with ValueError (messages are not part of the contract)."""
    with pytest.raises(ValueError):  # noqa: PT011
        call(*args)


def pattern(length):
    return bytes((i * 13 + 5) % 256 for i in range(length))


class TestEncoder:
    """RFC 6455 §5.2-§5.3 from the client side."""

    def test_text_frame(self, impl):
        parsed = encode(impl, b"Hello", TEXT)
        assert parsed.fin is True
        assert parsed.rsv == 0
        assert parsed.opcode == TEXT
        # RFC 6455 §5.3: "All frames sent from client to server have this bit set to 1."
        assert parsed.masked is True
        assert parsed.length == 5
        assert parsed.length_form == 7
        assert parsed.payload == b"Hello"

    @pytest.mark.parametrize(
        ("length", "length_form"),
        [(0, 7), (1, 7), (125, 7), (126, 16), (127, 16), (65535, 16), (65536, 64), (70000, 64)],
    )
    @pytest.mark.parametrize("opcode", [TEXT, BINARY, CONT])
    def test_length_forms_are_minimal(self, impl, opcode, length, length_form):
        # RFC 6455 §5.2: "the minimal number of bytes MUST be used to encode the length"
        payload = b"a" * length if opcode == TEXT else pattern(length)
        parsed = encode(impl, payload, opcode)
        assert (parsed.length, parsed.length_form) == (length, length_form)
        assert parsed.payload == payload
        assert (parsed.fin, parsed.rsv, parsed.opcode, parsed.masked) == (True, 0, opcode, True)

    @pytest.mark.parametrize("opcode", [TEXT, BINARY, CONT])
    @pytest.mark.parametrize("fin", [True, False])
    def test_fin_bit(self, impl, opcode, fin):
        parsed = encode(impl, b"part", opcode, fin)
        assert parsed.fin is fin
        assert parsed.opcode == opcode
        assert parsed.payload == b"part"

    def test_fin_defaults_to_true(self, impl):
        assert parse_client_frame(impl.Encoder().encode(b"x", BINARY)).fin is True

    @pytest.mark.parametrize("opcode", [PING, PONG])
    @pytest.mark.parametrize("length", [0, 1, 125])
    def test_ping_pong(self, impl, opcode, length):
        parsed = encode(impl, pattern(length), opcode)
        assert (parsed.fin, parsed.rsv, parsed.opcode, parsed.masked) == (True, 0, opcode, True)
        assert parsed.payload == pattern(length)

    def test_masks_differ_between_frames(self, impl):
        encoder = impl.Encoder()
        frames = [encoder.encode(b"same payload", BINARY) for _ in range(32)]
        masks = {parse_client_frame(f).mask for f in frames}
        # RFC 6455 §5.3: "a fresh masking key chosen at random"; 32 random 32-bit keys never collide
        # in practice (p < 1e-7).
        assert len(masks) == 32
        assert len(set(frames)) == 32
        assert all(parse_client_frame(f).payload == b"same payload" for f in frames)

    def test_masks_stay_random_across_many_frames(self, impl):
        # crosses any batching of random keys; a collision among 1,000 random 32-bit keys has p ~ 1e-4,
        # so allow two.
        encoder = impl.Encoder()
        frames = [parse_client_frame(encoder.encode(b"abcd", PING)) for _ in range(1000)]
        assert all(f.payload == b"abcd" for f in frames)
        assert len({f.mask for f in frames}) >= 998

    def test_masks_differ_between_encoders(self, impl):
        masks = {parse_client_frame(impl.Encoder().encode(b"", PING)).mask for _ in range(16)}
        assert len(masks) == 16

    def test_masked_bytes_are_not_the_payload(self, impl):
        # with overwhelming probability some byte of a 64-byte payload is changed by the mask
        payload = pattern(64)
        out = impl.Encoder().encode(payload, BINARY)
        assert payload not in out

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_str_payload_is_utf8_encoded(self, impl, opcode):
        text = "héllo € 𝄞 \U0010ffff"
        assert encode(impl, text, opcode).payload == text.encode("utf-8")

    @pytest.mark.parametrize(
        "wrap",
        [bytes, bytearray, memoryview, lambda b: memoryview(b"xx" + b + b"yy")[2:-2]],
        ids=["bytes", "bytearray", "memoryview", "memoryview-slice"],
    )
    def test_bytes_like_payload(self, impl, wrap):
        for length in (0, 3, 126, 70000):
            payload = pattern(length)
            assert encode(impl, wrap(payload), BINARY).payload == payload

    def test_input_not_modified(self, impl):
        payload = bytearray(pattern(300))
        impl.Encoder().encode(payload, BINARY)
        assert payload == pattern(300)

    @pytest.mark.parametrize("opcode", [PING, PONG])
    @pytest.mark.parametrize("length", [126, 127, 65536])
    def test_control_payload_over_125(self, impl, opcode, length):
        refuses(impl.Encoder().encode, pattern(length), opcode)

    def test_close_payload_over_125(self, impl):
        refuses(impl.Encoder().encode, close_payload(1000, "a" * 124), CLOSE)

    @pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
    def test_control_frame_not_final(self, impl, opcode):
        # RFC 6455 §5.5: "Control frames themselves MUST NOT be fragmented."
        payload = close_payload(1000) if opcode == CLOSE else b"x"
        refuses(impl.Encoder().encode, payload, opcode, False)

    @pytest.mark.parametrize("opcode", RESERVED_OPCODES)
    def test_reserved_opcode(self, impl, opcode):
        refuses(impl.Encoder().encode, b"x", opcode)

    @pytest.mark.parametrize("opcode", [16, 255, -1, 2**40])
    def test_opcode_out_of_range(self, impl, opcode):
        refuses(impl.Encoder().encode, b"x", opcode)

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_str_that_cannot_be_utf8(self, impl, opcode):
        refuses(impl.Encoder().encode, "lone surrogate \ud800", opcode)

    @pytest.mark.parametrize(
        ("method", "args"),
        [
            ("encode", (None, BINARY)),
            ("encode", (12345, BINARY)),
            ("encode", (b"x", "1")),
            ("encode_close", (1000, None)),
            ("encode_close", (1000, b"bytes reason")),
            ("encode_close", (1000, "\ud800")),
            ("encode_close", ("1000",)),
            ("encode_close", (2**70,)),
            ("encode_close", (None, "reason without a code")),
        ],
        ids=[
            "payload-None",
            "payload-int",
            "opcode-str",
            "reason-None",
            "reason-bytes",
            "reason-surrogate",
            "code-str",
            "code-2**70",
            "reason-without-code",
        ],
    )
    def test_argument_errors(self, impl, method, args):
        # spec: "Encoder argument errors raise ValueError/TypeError"
        with pytest.raises((ValueError, TypeError)):
            getattr(impl.Encoder(), method)(*args)

    def test_encode_close(self, impl):
        parsed = parse_client_frame(impl.Encoder().encode_close(1000, "bye"))
        assert (parsed.fin, parsed.rsv, parsed.opcode, parsed.masked) == (True, 0, CLOSE, True)
        assert parsed.payload == b"\x03\xe8bye"

    def test_encode_close_defaults(self, impl):
        assert parse_client_frame(impl.Encoder().encode_close()).payload == b"\x03\xe8"

    def test_encode_close_without_code(self, impl):
        parsed = parse_client_frame(impl.Encoder().encode_close(None))
        assert (parsed.fin, parsed.opcode, parsed.masked) == (True, CLOSE, True)
        assert parsed.payload == b""

    @pytest.mark.parametrize("code", VALID_CLOSE_CODES)
    def test_encode_close_valid_codes(self, impl, code):
        assert parse_client_frame(impl.Encoder().encode_close(code, "r")).payload == close_payload(code, "r")

    @pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
    def test_encode_close_invalid_codes(self, impl, code):
        # RFC 6455 §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame"
        refuses(impl.Encoder().encode_close, code)
        refuses(impl.Encoder().encode, close_payload(code), CLOSE)

    def test_encode_close_reason_length(self, impl):
        encoder = impl.Encoder()
        reason = "é" * 61 + "a"  # 123 bytes: payload of exactly 125
        assert parse_client_frame(encoder.encode_close(1000, reason)).payload == close_payload(1000, reason)
        refuses(encoder.encode_close, 1000, "é" * 62)  # 124 bytes
        refuses(encoder.encode_close, 1000, "a" * 124)

    @pytest.mark.parametrize(
        "payload",
        [b"\x03", close_payload(1005), close_payload(1000, b"\xff"), close_payload(1000, b"\xed\xa0\x80")],
        ids=["one-byte", "code-1005", "reason-ff", "reason-surrogate"],
    )
    def test_encode_invalid_close_payload(self, impl, payload):
        refuses(impl.Encoder().encode, payload, CLOSE)

    @pytest.mark.parametrize("payload", [b"", close_payload(1000), close_payload(4000, "ok")])
    def test_encode_valid_close_payload(self, impl, payload):
        assert encode(impl, payload, CLOSE).payload == payload

    def test_round_trip_through_decoder(self, impl):
        """Unmask what the encoder produced, resend it as a server frame, and decode it."""
        encoder = impl.Encoder()
        outputs = [
            encoder.encode("Hel", TEXT, False),
            encoder.encode(b"ping", PING),
            encoder.encode("lo €", CONT, True),
            encoder.encode(pattern(70000), BINARY),
            encoder.encode_close(1001, "going"),
        ]
        wire = b""
        for out in outputs:
            parsed = parse_client_frame(out)
            wire += frame(parsed.opcode, parsed.payload, fin=parsed.fin)
        messages, error = decode_variants(impl.Decoder, wire)
        assert error is None
        assert messages == [Ping(b"ping"), "Hello €", pattern(70000), Close(1001, "going")]


class TestCloseOnTheWire:
    """qore's WebSocketUtil test vector: an unmasked CLOSE 1005 "test" is 88 06 03 ED 74 65 73 74."""

    VECTOR = bytes.fromhex("88 06 03 ED 74 65 73 74")

    def test_vector_layout(self):
        assert frame(CLOSE, close_payload(1005, "test")) == self.VECTOR
        assert struct.unpack("!H", self.VECTOR[2:4]) == (1005,)

    def test_decoder_rejects_1005_on_the_wire(self, impl):
        messages, error = decode_variants(impl.Decoder, self.VECTOR)
        assert messages == []
        check_error(error, 1002)

    def test_encoder_refuses_1005(self, impl):
        refuses(impl.Encoder().encode_close, 1005, "test")
