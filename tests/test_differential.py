"""Differential property tests: the python and cython twins must behave identically.

Streams are generated with the independent frame builder (valid streams with fragments, interleaved
control frames and sometimes invalid UTF-8 or close codes), then optionally mutated (bit flips, byte
overwrites, insertions, deletions, truncation). Both twins get the same stream at the same random cuts;
they must return the same messages and fail with the same (exception type, close_code). Each twin must
also be chunk invariant, and on clean streams must match the model built alongside the stream.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import (
    BINARY,
    CLOSE,
    CONT,
    DEFAULT_MAX_MESSAGE_SIZE,
    PING,
    PONG,
    TEXT,
    expected_utf8_outcome,
    frame,
    is_valid_utf8,
    outcome,
    parse_client_frame,
    utf8_validator_outcome,
    xor_mask,
)
from wsfast import Close, Ping, Pong

NAMES = ["python", "cython"]

MAX_SIZES = st.sampled_from([None, DEFAULT_MAX_MESSAGE_SIZE, 0, 1, 16, 64, 200])
WRAPS = st.sampled_from([bytes, bytearray, memoryview])
LENGTH_FORMS = st.sampled_from([None, None, None, 16, 64])

VALID_PIECES = [
    s.encode() for s in ("a", "Z", " ", "é", "ß", "€", "\ud7ff", "\ue000", "\uffff", "𝄞", "\U0010ffff")
]
INVALID_PIECES = [
    b"\xff",
    b"\x80",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xe2\x82",
    b"\xf4\x90\x80\x80",
    b"\xf0\x9f\x98",
    b"\xe0\x9f\xbf",
]
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]


def text_payloads(clean):
    valid = st.one_of(
        st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")).filter(is_valid_utf8),
        st.lists(st.sampled_from(VALID_PIECES), max_size=15).map(b"".join),
    )
    if clean:
        return valid
    return st.one_of(
        valid, st.lists(st.sampled_from(VALID_PIECES + INVALID_PIECES), max_size=12).map(b"".join)
    )


@st.composite
def control_frames(draw, clean=False):
    """(frame bytes, expected message or None when not clean)."""
    opcode = draw(st.sampled_from([PING, PONG, CLOSE]))
    length_form = draw(LENGTH_FORMS)
    if opcode != CLOSE:
        payload = draw(st.binary(max_size=30))
        return frame(opcode, payload, length_form=length_form), (Ping if opcode == PING else Pong)(payload)
    if draw(st.integers(0, 4)) == 0:
        return frame(CLOSE, b"", length_form=length_form), Close(1005, "")
    codes = VALID_CLOSE_CODES if clean else VALID_CLOSE_CODES + INVALID_CLOSE_CODES
    code = draw(st.sampled_from(codes))
    reason = draw(text_payloads(clean))  # at most 120 bytes: the frame stays within 125
    payload = struct.pack("!H", code) + reason
    expected = Close(code, reason.decode()) if is_valid_utf8(reason) else None
    return frame(CLOSE, payload, length_form=length_form), expected


@st.composite
def data_messages(draw, clean=False):
    """A possibly fragmented TEXT/BINARY message with control frames between fragments."""
    opcode = draw(st.sampled_from([TEXT, BINARY]))
    payload = draw(text_payloads(clean) if opcode == TEXT else st.binary(max_size=80))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=4)))
    bounds = [0, *cuts, len(payload)]
    parts = [payload[a:b] for a, b in itertools.pairwise(bounds)]  # empty fragments allowed
    wire, expected = b"", []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        wire += frame(opcode if i == 0 else CONT, part, fin=last, length_form=draw(LENGTH_FORMS))
        if not last:
            for control, message in draw(st.lists(control_frames(clean), max_size=2)):
                wire += control
                expected.append(message)
    if opcode == BINARY:
        expected.append(payload)
    else:
        expected.append(payload.decode() if is_valid_utf8(payload) else None)
    return wire, expected


@st.composite
def frame_streams(draw, clean=False):
    """(stream, expected messages); expected is meaningful only for clean streams."""
    items = draw(
        st.lists(
            st.one_of(data_messages(clean), control_frames(clean).map(lambda f: (f[0], [f[1]]))), max_size=8
        )
    )
    return b"".join(w for w, _ in items), [m for _, ms in items for m in ms]


@st.composite
def mutated_streams(draw):
    data = bytearray(draw(frame_streams())[0])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if op == "insert":
            pos = draw(st.integers(0, len(data)))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
            continue
        if not data:
            continue
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        else:
            del data[pos:]
    return bytes(data)


ANY_STREAM = st.one_of(
    frame_streams().map(lambda s: s[0]),
    mutated_streams(),
    st.binary(max_size=40),
)


def draw_cuts(data, stream):
    return data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=12), label="cuts")


def assert_same(a, b, context):
    assert a == b, context
    assert [type(m) for m in a[0]] == [type(m) for m in b[0]], context


class TestDecoderTwins:
    @given(stream=ANY_STREAM, data=st.data())
    def test_twins_agree(self, twins, stream, data):
        max_message_size = data.draw(MAX_SIZES, label="max_message_size")
        cuts = draw_cuts(data, stream)
        wrap = data.draw(WRAPS, label="wrap")
        py = outcome(twins.python.Decoder(max_message_size=max_message_size), stream, cuts, wrap)
        c = outcome(twins.cython.Decoder(max_message_size=max_message_size), stream, cuts, wrap)
        assert_same(py, c, "python vs cython")

    @given(stream=mutated_streams(), data=st.data())
    def test_twins_agree_on_mutated_streams(self, twins, stream, data):
        cuts = draw_cuts(data, stream)
        py = outcome(twins.python.Decoder(), stream, cuts)
        c = outcome(twins.cython.Decoder(), stream, cuts)
        assert_same(py, c, "python vs cython")

    @pytest.mark.parametrize("name", NAMES)
    @given(stream=ANY_STREAM, data=st.data())
    def test_chunk_invariance(self, twins, name, stream, data):
        impl = getattr(twins, name)
        max_message_size = data.draw(MAX_SIZES, label="max_message_size")
        whole = outcome(impl.Decoder(max_message_size=max_message_size), stream, [])
        split = outcome(impl.Decoder(max_message_size=max_message_size), stream, draw_cuts(data, stream))
        assert_same(whole, split, "whole vs random cuts")
        bytewise = outcome(impl.Decoder(max_message_size=max_message_size), stream, range(1, len(stream)))
        assert_same(whole, bytewise, "whole vs byte by byte")

    @pytest.mark.parametrize("name", NAMES)
    @given(generated=frame_streams(clean=True), data=st.data())
    def test_clean_streams_match_the_model(self, twins, name, generated, data):
        stream, expected = generated
        impl = getattr(twins, name)
        messages, error = outcome(impl.Decoder(max_message_size=None), stream, draw_cuts(data, stream))
        assert error is None
        assert messages == expected
        assert [type(m) for m in messages] == [type(m) for m in expected]


UTF8_ISH = st.one_of(
    st.lists(st.sampled_from(VALID_PIECES + INVALID_PIECES), max_size=10).map(b"".join),
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    0x00,
                    0x41,
                    0x7F,
                    0x80,
                    0x8F,
                    0x90,
                    0x9F,
                    0xA0,
                    0xBF,
                    0xC0,
                    0xC1,
                    0xC2,
                    0xDF,
                    0xE0,
                    0xE1,
                    0xED,
                    0xEE,
                    0xEF,
                    0xF0,
                    0xF1,
                    0xF4,
                    0xF5,
                    0xFF,
                ]
            ),
            st.integers(0, 255),
        ),
        max_size=16,
    ).map(bytes),
)


class TestKernelTwins:
    @given(data=st.binary(max_size=200), mask=st.binary(min_size=4, max_size=4), offset=st.integers(0, 7))
    def test_apply_mask(self, twins, data, mask, offset):
        view = memoryview(data)[offset:]
        expected = xor_mask(bytes(view), mask)
        assert twins.python.apply_mask(view, mask) == expected
        assert twins.cython.apply_mask(view, mask) == expected

    @given(data=UTF8_ISH, cuts=st.lists(st.integers(1, 15), max_size=4))
    def test_utf8(self, twins, data, cuts):
        assert twins.python.validate_utf8(data) is twins.cython.validate_utf8(data) is is_valid_utf8(data)
        points = sorted({c for c in cuts if c < len(data)})
        bounds = [0, *points, len(data)]
        parts = [data[a:b] for a, b in itertools.pairwise(bounds)]
        py = utf8_validator_outcome(twins.python.Utf8Validator, parts)
        c = utf8_validator_outcome(twins.cython.Utf8Validator, parts)
        assert py == c == expected_utf8_outcome(parts)


class TestEncoderTwins:
    @given(
        payload=st.one_of(
            st.binary(max_size=140),
            st.text(max_size=40),
            st.tuples(st.integers(0, 5100), st.binary(max_size=10)).map(
                lambda t: struct.pack("!H", t[0]) + t[1]
            ),
        ),
        opcode=st.integers(0, 15),
        fin=st.booleans(),
    )
    def test_encoders_agree(self, twins, payload, opcode, fin):
        results = []
        for impl in (twins.python, twins.cython):
            try:
                parsed = parse_client_frame(impl.Encoder().encode(payload, opcode, fin))
            except ValueError as exc:
                results.append(type(exc))
            else:
                assert parsed.masked
                results.append((parsed.fin, parsed.rsv, parsed.opcode, parsed.length_form, parsed.payload))
        assert results[0] == results[1]
