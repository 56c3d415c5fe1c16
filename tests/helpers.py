"""Test helpers written independently of wsfast.

- ``header`` / ``frame``: build server frames with ``struct`` (RFC 6455 §5.2), including
  non-minimal length encodings, reserved bits, reserved opcodes and masking.
- ``parse_client_frame``: parse one client frame produced by an encoder (§5.2, §5.3).
- ``feed_all`` / ``split_variants`` / ``decode_variants``: feed a stream to a decoder split at given cut
  points, and check that every split gives the same outcome (chunk invariance).
- ``utf8_scan`` and friends: a UTF-8 well-formedness oracle written from the Unicode Standard,
  Table 3-7 "Well-Formed UTF-8 Byte Sequences" (never from CPython's decoder).

Only the exception classes are taken from wsfast (to know what a decoder error is).
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from wsfast import InvalidUTF8Error, MessageTooBigError, ProtocolError, WebSocketError

# RFC 6455 §5.2 / §11.8 opcodes, spelled out so the tests don't depend on wsfast.Opcode.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = (TEXT, BINARY)
CONTROL_OPCODES = (CLOSE, PING, PONG)
RESERVED_OPCODES = (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)

# The three reserved bits as a 3-bit value: RSV1 is the high bit (0x40 of byte 0).
RSV1, RSV2, RSV3 = 0b100, 0b010, 0b001

DEFAULT_MAX_MESSAGE_SIZE = 64 * 2**20
RFC_MASK = bytes.fromhex("37fa213d")  # the masking key of the RFC 6455 §5.7 examples


# --------------------------------------------------------------------------------------------------
# Frame building (server side) and parsing (client side)
# --------------------------------------------------------------------------------------------------


def minimal_length_form(length: int) -> int:
    """RFC 6455 §5.2: 7-bit up to 125, 16-bit up to 65535, 64-bit beyond."""
    if length <= 125:
        return 7
    if length <= 0xFFFF:
        return 16
    return 64


def header(
    opcode: int,
    length: int,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = False,
    length_form: int | None = None,
) -> bytes:
    """Frame header (without masking key) claiming ``length`` payload bytes.

    ``length_form`` forces the 7-, 16- or 64-bit length encoding (non-minimal encodings allowed);
    with the 64-bit form any value up to 2**64-1 can be claimed, including the forbidden top bit.
    """
    assert 0 <= opcode <= 0xF
    assert 0 <= rsv <= 0b111
    if length_form is None:
        length_form = minimal_length_form(length)
    b0 = (0x80 if fin else 0x00) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0x00
    if length_form == 7:
        assert 0 <= length <= 125
        return struct.pack("!BB", b0, mask_bit | length)
    if length_form == 16:
        assert 0 <= length <= 0xFFFF
        return struct.pack("!BBH", b0, mask_bit | 126, length)
    if length_form == 64:
        assert 0 <= length <= 0xFFFF_FFFF_FFFF_FFFF
        return struct.pack("!BBQ", b0, mask_bit | 127, length)
    raise AssertionError(f"bad length_form {length_form!r}")


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3 masking, computed with big-integer XOR (fast, independent of wsfast)."""
    n = len(data)
    if n == 0:
        return b""
    key = (bytes(mask) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def frame(
    opcode: int,
    payload: bytes | str = b"",
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length_form: int | None = None,
) -> bytes:
    """A complete frame; ``str`` payloads are UTF-8 encoded; ``mask`` sets the MASK bit and key."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    payload = bytes(payload)
    head = header(opcode, len(payload), fin, rsv, mask is not None, length_form)
    if mask is None:
        return head + payload
    assert len(mask) == 4
    return head + bytes(mask) + xor_mask(payload, mask)


def close_payload(code: int, reason: bytes | str = b"") -> bytes:
    """RFC 6455 §5.5.1: 2-byte big-endian status code followed by the reason."""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class ParsedFrame(NamedTuple):
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    length: int
    length_form: int
    mask: bytes | None
    payload: bytes  # unmasked


def parse_client_frame(data: bytes) -> ParsedFrame:
    """Parse exactly one frame; fail the test if ``data`` holds more or less than one frame."""
    data = bytes(data)
    assert len(data) >= 2, f"frame too short: {data!r}"
    b0, b1 = data[0], data[1]
    fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 0b111, b0 & 0x0F
    masked, length = bool(b1 & 0x80), b1 & 0x7F
    pos = 2
    if length == 126:
        (length,) = struct.unpack_from("!H", data, pos)
        pos, form = pos + 2, 16
    elif length == 127:
        (length,) = struct.unpack_from("!Q", data, pos)
        pos, form = pos + 8, 64
    else:
        form = 7
    mask = None
    if masked:
        mask = data[pos : pos + 4]
        assert len(mask) == 4, "truncated masking key"
        pos += 4
    payload = data[pos:]
    assert len(payload) == length, f"declared length {length}, got {len(payload)} payload bytes"
    if mask is not None:
        payload = xor_mask(payload, mask)
    return ParsedFrame(fin, rsv, opcode, masked, length, form, mask, payload)


# --------------------------------------------------------------------------------------------------
# Feeding decoders
# --------------------------------------------------------------------------------------------------


def chunks(data: bytes, cuts: Sequence[int] = ()) -> list[bytes]:
    """Split ``data`` at the given cut points (out-of-range and duplicate cuts are ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(
    decoder: Any, data: bytes, cuts: Sequence[int] = (), wrap: Callable[[bytes], Any] = bytes
) -> tuple[list[Any], WebSocketError | None]:
    """Feed ``data`` split at ``cuts``; return (messages, error).

    Stops at the first WebSocketError; the messages it carries (decoded by the failing call before the
    error) are appended, so ``messages`` is everything decoded before the error in wire order.
    Any other exception propagates and fails the test.
    """
    messages: list[Any] = []
    for chunk in chunks(data, cuts):
        try:
            result = decoder.feed(wrap(chunk))
        except WebSocketError as exc:
            messages.extend(exc.messages)
            return messages, exc
        assert isinstance(result, list), f"feed() returned {type(result).__name__}, not list"
        messages.extend(result)
    return messages, None


ErrorSig = tuple[type, int] | None


def error_sig(error: WebSocketError | None) -> ErrorSig:
    return None if error is None else (type(error), error.close_code)


def outcome(
    decoder: Any, data: bytes, cuts: Sequence[int] = (), wrap: Callable[[bytes], Any] = bytes
) -> tuple[list[Any], ErrorSig]:
    """(messages with their types, (error type, close_code) or None): comparable across splits."""
    messages, error = feed_all(decoder, data, cuts, wrap)
    return messages, error_sig(error)


def split_variants(data: bytes, seed: int = 0) -> Iterator[tuple[str, list[int]]]:
    """Cut-point lists: whole, byte by byte (edges only for big inputs), and seeded random cuts."""
    n = len(data)
    yield "whole", []
    if n <= 4096:
        yield "bytewise", list(range(1, n))
    else:
        yield "bytewise-edges", [*range(1, 300), *range(n - 300, n)]
    if n < 2:
        return
    rng = random.Random(n * 7919 + seed)
    for k in range(3):
        count = rng.randint(1, min(n - 1, 64))
        yield f"random-{k}", sorted(rng.sample(range(1, n), count))


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def decode_variants(make_decoder: Callable[[], Any], data: bytes) -> tuple[list[Any], ErrorSig]:
    """Decode ``data`` with every split of ``split_variants``; assert they agree; return the outcome."""
    results = {label: outcome(make_decoder(), data, cuts) for label, cuts in split_variants(data)}
    whole_messages, whole_error = results["whole"]
    for label, (messages, error) in results.items():
        assert error == whole_error, f"{label}: error {error} != {whole_error} when fed whole"
        assert messages == whole_messages, (
            f"{label}: messages {_short(messages)} != {_short(whole_messages)} when fed whole"
        )
        assert [type(m) for m in messages] == [type(m) for m in whole_messages], label
    return whole_messages, whole_error


_ERROR_CLASSES = {1002: ProtocolError, 1007: InvalidUTF8Error, 1009: MessageTooBigError}


def check_error(sig: ErrorSig, close_code: int) -> None:
    """Assert an error signature is the wsfast error class for ``close_code`` (1002, 1007 or 1009)."""
    assert sig is not None, f"expected an error with close code {close_code}, got none"
    cls, code = sig
    assert code == close_code, f"close_code {code} ({cls.__name__}), expected {close_code}"
    assert issubclass(cls, _ERROR_CLASSES[close_code]), cls
    if close_code == 1002:
        assert not issubclass(cls, (InvalidUTF8Error, MessageTooBigError)), cls


# --------------------------------------------------------------------------------------------------
# UTF-8 oracle: Unicode Standard, Table 3-7 "Well-Formed UTF-8 Byte Sequences"
# --------------------------------------------------------------------------------------------------

#   Code Points          First Byte  Second Byte  Third Byte  Fourth Byte
#   U+0000..U+007F       00..7F
#   U+0080..U+07FF       C2..DF      80..BF
#   U+0800..U+0FFF       E0          A0..BF       80..BF
#   U+1000..U+CFFF       E1..EC      80..BF       80..BF
#   U+D000..U+D7FF       ED          80..9F       80..BF
#   U+E000..U+FFFF       EE..EF      80..BF       80..BF
#   U+10000..U+3FFFF     F0          90..BF       80..BF      80..BF
#   U+40000..U+FFFFF     F1..F3      80..BF       80..BF      80..BF
#   U+100000..U+10FFFF   F4          80..8F       80..BF      80..BF
TABLE_3_7: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0x00, 0x7F),),
    ((0xC2, 0xDF), (0x80, 0xBF)),
    ((0xE0, 0xE0), (0xA0, 0xBF), (0x80, 0xBF)),
    ((0xE1, 0xEC), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xED, 0xED), (0x80, 0x9F), (0x80, 0xBF)),
    ((0xEE, 0xEF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF0, 0xF0), (0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF1, 0xF3), (0x80, 0xBF), (0x80, 0xBF), (0x80, 0xBF)),
    ((0xF4, 0xF4), (0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)),
)
_ROW_BY_LEAD: dict[int, tuple[tuple[int, int], ...]] = {
    lead: row for row in TABLE_3_7 for lead in range(row[0][0], row[0][1] + 1)
}


def utf8_scan(data: bytes) -> tuple[int | None, bool]:
    """Return (index of the first byte proving ``data`` is not a prefix of valid UTF-8, or None;
    whether ``data`` ends on a sequence boundary)."""
    i, n = 0, len(data)
    while i < n:
        lead = data[i]
        if lead < 0x80:
            i += 1
            continue
        row = _ROW_BY_LEAD.get(lead)
        if row is None:
            return i, False
        for k, (lo, hi) in enumerate(row[1:], 1):
            if i + k >= n:
                return None, False  # valid so far, sequence incomplete
            if not lo <= data[i + k] <= hi:
                return i + k, False
        i += len(row)
    return None, True


def is_valid_prefix(data: bytes) -> bool:
    """``data`` is a prefix of some well-formed UTF-8 string."""
    return utf8_scan(data)[0] is None


def is_valid_utf8(data: bytes) -> bool:
    fail, complete = utf8_scan(data)
    return fail is None and complete


def first_invalid_index(data: bytes) -> int | None:
    return utf8_scan(data)[0]


def utf8_validator_outcome(validator_cls: Any, parts: Sequence[bytes]) -> tuple[Any, ...]:
    """What a Utf8Validator does with ``parts``: ("feed", i) if feed #i raised, ("end",) if end()
    raised, ("ok",) otherwise. Errors must be InvalidUTF8Error with close_code 1007."""
    validator = validator_cls()
    result: tuple[Any, ...] = ("ok",)
    error: InvalidUTF8Error | None = None
    for i, part in enumerate(parts):
        try:
            validator.feed(part)
        except InvalidUTF8Error as exc:
            result, error = ("feed", i), exc
            break
    else:
        try:
            validator.end()
        except InvalidUTF8Error as exc:
            result, error = ("end",), exc
    if error is not None:
        assert error.close_code == 1007
    return result


def expected_utf8_outcome(parts: Sequence[bytes]) -> tuple[Any, ...]:
    """What the Table 3-7 oracle says ``utf8_validator_outcome`` must be (the fail-point contract)."""
    seen = b""
    for i, part in enumerate(parts):
        seen += part
        if not is_valid_prefix(seen):
            return ("feed", i)
    return ("ok",) if is_valid_utf8(seen) else ("end",)
