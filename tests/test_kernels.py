"""Kernel tests: XOR masking (RFC 6455 §5.3) and UTF-8 validation (RFC 3629, Unicode Table 3-7).

The fail-point contract shared by both twins: ``Utf8Validator.feed`` raises on the call whose bytes make
the input seen so far no longer a prefix of well-formed UTF-8 (per Table 3-7, so ``ED A0`` fails at the
second byte), and ``end`` raises iff the input is such a prefix but stops inside a sequence.
"""

from __future__ import annotations

import itertools
import random

import pytest

from helpers import (
    chunks,
    expected_utf8_outcome,
    first_invalid_index,
    is_valid_utf8,
    utf8_scan,
    utf8_validator_outcome,
    xor_mask,
)
from wsfast import InvalidUTF8Error, ProtocolError

MASKS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", bytes.fromhex("37fa213d"), b"\x01\x02\x04\x80"]


def naive_mask(data, mask):
    """RFC 6455 §5.3: "octet i of the transformed data is the XOR of octet i of the original data
    with octet at index i modulo 4 of the masking key"."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class TestApplyMask:
    @pytest.mark.parametrize("mask", MASKS, ids=lambda m: m.hex())
    def test_sizes_0_to_70(self, impl, mask):
        data = bytes(range(256)) * 2
        for size in range(71):
            for offset in (0, 1, 3):  # unaligned starts matter for word-at-a-time code
                chunk = data[offset : offset + size]
                expected = naive_mask(chunk, mask)
                for wrap in (bytes, bytearray, memoryview):
                    result = impl.apply_mask(wrap(chunk), mask)
                    assert type(result) is bytes, (size, offset, wrap)
                    assert result == expected, (size, offset, wrap)
                view = memoryview(b"\xaa" * offset + chunk + b"\x55")[offset : offset + size]
                assert impl.apply_mask(view, mask) == expected, (size, offset, "slice")

    def test_random_masks(self, impl):
        rng = random.Random(5)
        for _ in range(200):
            mask = rng.randbytes(4)
            data = rng.randbytes(rng.randint(0, 300))
            assert impl.apply_mask(data, mask) == naive_mask(data, mask)

    def test_one_mib(self, impl):
        rng = random.Random(1)
        data = rng.randbytes(2**20)
        mask = rng.randbytes(4)
        expected = xor_mask(data, mask)
        assert expected[:1000] == naive_mask(data[:1000], mask)  # the fast reference agrees
        assert impl.apply_mask(data, mask) == expected
        assert impl.apply_mask(bytearray(data), mask) == expected
        assert impl.apply_mask(memoryview(data)[7:], mask) == xor_mask(data[7:], mask)

    def test_twice_is_identity(self, impl):
        rng = random.Random(2)
        for size in (0, 1, 7, 8, 9, 63, 64, 65, 4096, 100_003):
            data = rng.randbytes(size)
            mask = rng.randbytes(4)
            assert impl.apply_mask(impl.apply_mask(data, mask), mask) == data

    def test_input_not_modified(self, impl):
        data = bytearray(b"payload bytes")
        impl.apply_mask(data, b"\x01\x02\x03\x04")
        assert data == b"payload bytes"


VALID = [
    b"",
    b"plain ASCII \x00\x7f",
    "é ß ñ \u0080 \u07ff".encode(),  # 2-byte
    "€ \u0800 \u0fff \u1000 \ucfff \ud000 \ud7ff \ue000 \uffff".encode(),  # 3-byte
    "𝄞 😀 \U00010000 \U0003ffff \U00040000 \U000fffff \U00100000 \U0010ffff".encode(),  # 4-byte
    b"\xef\xbf\xbf",  # U+FFFF
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF
    b"\xed\x9f\xbf",  # U+D7FF
    b"\xee\x80\x80",  # U+E000
    b"a" * 100 + "é".encode() + b"b" * 33,
]
INVALID = [
    b"\xc0\x80",  # overlong NUL
    b"\xc1\xbf",  # overlong
    b"\xe0\x80\x80",  # overlong 3-byte
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\x80",  # overlong 4-byte
    b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80",  # U+D800, surrogate
    b"\xed\xbf\xbf",  # U+DFFF, surrogate
    b"\xf4\x90\x80\x80",  # U+110000
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xff",
    b"\xfe",
    b"\x80",  # stray continuation
    b"a\xbfb",
    b"\xc3",  # truncated
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xe2\x82a",  # truncated, followed by ASCII
    b"a" * 100 + b"\xff",
    b"a" * 100 + b"\xe2",
]


class TestOracle:
    """The oracle itself, checked against CPython's (correct) strict decoder on complete inputs."""

    def test_corpus(self):
        for data in VALID:
            assert is_valid_utf8(data), data
        for data in INVALID:
            assert not is_valid_utf8(data), data

    def test_two_bytes_against_cpython(self):
        for pair in itertools.product(range(256), repeat=2):
            data = bytes(pair)
            try:
                data.decode("utf-8")
                ok = True
            except UnicodeDecodeError:
                ok = False
            assert is_valid_utf8(data) == ok, data

    def test_prefixes_where_cpython_incremental_decoder_waits(self):
        # CPython's incremental decoder accepts these as incomplete; Table 3-7 says they are invalid.
        for data in (b"\xed\xa0", b"\xed\xbf", b"\xe0\x80", b"\xf0\x80", b"\xf4\x90"):
            assert utf8_scan(data) == (1, False), data
        assert first_invalid_index(b"ab\xed\xa0\x80") == 3


class TestValidateUtf8:
    @pytest.mark.parametrize("data", VALID)
    def test_valid(self, impl, data):
        for wrap in (bytes, bytearray, memoryview):
            assert impl.validate_utf8(wrap(data)) is True

    @pytest.mark.parametrize("data", INVALID)
    def test_invalid(self, impl, data):
        for wrap in (bytes, bytearray, memoryview):
            assert impl.validate_utf8(wrap(data)) is False

    def test_invalid_byte_after_every_ascii_run(self, impl):
        # exercises word-at-a-time ASCII fast paths at every alignment
        for n in range(0, 70):
            for bad in (b"\xff", b"\x80", b"\xc0\x80", b"\xe2\x82", b"\xed\xa0\x80"):
                assert impl.validate_utf8(b"a" * n + bad) is False, (n, bad)
                assert impl.validate_utf8(b"a" * n + bad + b"a" * 17) is False, (n, bad)
            assert impl.validate_utf8(b"a" * n + "€".encode() + b"a" * n) is True, n

    def test_random_against_oracle(self, impl):
        rng = random.Random(3)
        alphabet = [
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
            0xC2,
            0xDF,
            0xE0,
            0xE1,
            0xED,
            0xEE,
            0xEF,
            0xF0,
            0xF3,
            0xF4,
            0xF5,
            0xFF,
        ]
        for _ in range(5000):
            data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            assert impl.validate_utf8(data) == is_valid_utf8(data), data


class TestUtf8Validator:
    @pytest.mark.parametrize("data", VALID + INVALID)
    def test_corpus_whole_and_split_at_every_offset(self, impl, data):
        assert utf8_validator_outcome(impl.Utf8Validator, [data]) == expected_utf8_outcome([data])
        for cut in range(len(data) + 1):
            parts = [data[:cut], data[cut:]]
            assert utf8_validator_outcome(impl.Utf8Validator, parts) == expected_utf8_outcome(parts), (
                data,
                cut,
            )
        bytewise = [data[i : i + 1] for i in range(len(data))]
        assert utf8_validator_outcome(impl.Utf8Validator, bytewise) == expected_utf8_outcome(bytewise), data

    @pytest.mark.parametrize("data", INVALID)
    def test_invalid_corpus_fails(self, impl, data):
        assert utf8_validator_outcome(impl.Utf8Validator, [data]) != ("ok",)

    def test_bytes_like_input(self, impl):
        validator = impl.Utf8Validator()
        validator.feed(bytearray("é".encode()))
        validator.feed(memoryview("€".encode())[:2])
        validator.feed(memoryview(b"xx\xac")[2:])
        validator.end()

    def test_reset_forgets_incomplete_sequence(self, impl):
        validator = impl.Utf8Validator()
        validator.feed(b"a\xe2\x82")
        validator.reset()
        validator.feed(b"b")
        validator.end()

    def test_reset_after_error(self, impl):
        validator = impl.Utf8Validator()
        with pytest.raises(InvalidUTF8Error):
            validator.feed(b"\xff")
        validator.reset()
        validator.feed("ok €".encode())
        validator.end()

    def test_error_class(self, impl):
        with pytest.raises(ProtocolError) as excinfo:
            impl.Utf8Validator().feed(b"\xc0")
        assert isinstance(excinfo.value, InvalidUTF8Error)
        assert excinfo.value.close_code == 1007


class TestFailPointContract:
    """feed() raises iff the bytes seen so far are not a prefix of valid UTF-8 (Table 3-7)."""

    def test_all_one_byte_inputs(self, impl):
        wrong = []
        for b0 in range(256):
            parts = [bytes([b0])]
            got, want = utf8_validator_outcome(impl.Utf8Validator, parts), expected_utf8_outcome(parts)
            if got != want:
                wrong.append((parts, got, want))
        assert wrong == []

    def test_all_two_byte_inputs(self, impl):
        """All 65536 inputs, fed as one chunk and as two one-byte chunks."""
        wrong = []
        for b0, b1 in itertools.product(range(256), repeat=2):
            data = bytes((b0, b1))
            for parts in ([data], [data[:1], data[1:]]):
                got, want = utf8_validator_outcome(impl.Utf8Validator, parts), expected_utf8_outcome(parts)
                if got != want:
                    wrong.append((parts, got, want))
        assert wrong[:20] == []

    # Boundary bytes of Table 3-7 plus a few ordinary ones.
    EDGES = [
        0x00,
        0x41,
        0x7F,
        0x80,
        0x81,
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
        0xEC,
        0xED,
        0xEE,
        0xEF,
        0xF0,
        0xF1,
        0xF3,
        0xF4,
        0xF5,
        0xFF,
    ]

    def test_three_byte_edges(self, impl):
        wrong = []
        for triple in itertools.product(self.EDGES, repeat=3):
            data = bytes(triple)
            for parts in ([data], [data[:1], data[1:]], [data[:2], data[2:]]):
                got, want = utf8_validator_outcome(impl.Utf8Validator, parts), expected_utf8_outcome(parts)
                if got != want:
                    wrong.append((parts, got, want))
        assert wrong[:20] == []

    def test_four_byte_sample(self, impl):
        rng = random.Random(4)
        leads = [0xE0, 0xED, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xC2, 0x41, 0x80]
        wrong = []
        for _ in range(20000):
            data = bytes([rng.choice(leads)] + [rng.choice(self.EDGES) for _ in range(3)])
            cut = rng.randint(0, 4)
            for parts in ([data], [data[:cut], data[cut:]], [data[i : i + 1] for i in range(4)]):
                got, want = utf8_validator_outcome(impl.Utf8Validator, parts), expected_utf8_outcome(parts)
                if got != want:
                    wrong.append((parts, got, want))
        assert wrong[:20] == []

    def test_fail_index_in_longer_inputs(self, impl):
        """Byte by byte, the raising feed is exactly the oracle's first invalid byte."""
        rng = random.Random(6)
        pieces = [
            b"a",
            b"xyz",
            "é".encode(),
            "€".encode(),
            "𝄞".encode(),
            "\U0010ffff".encode(),
            "\ud7ff".encode(),
            b"\xff",
            b"\xed\xa0",
            b"\xe2\x82",
            b"\xf4\x90",
            b"\x80",
            b"\xc0",
        ]
        for _ in range(2000):
            data = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
            bytewise = [data[i : i + 1] for i in range(len(data))]
            fail = first_invalid_index(data)
            got = utf8_validator_outcome(impl.Utf8Validator, bytewise)
            if fail is not None:
                assert got == ("feed", fail), data
            else:
                assert got == expected_utf8_outcome(bytewise), data
            cuts = sorted(rng.sample(range(len(data) + 1), min(3, len(data) + 1)))
            parts = chunks(data, cuts)
            assert utf8_validator_outcome(impl.Utf8Validator, parts) == expected_utf8_outcome(parts), (
                data,
                cuts,
            )
