"""Incremental UTF-8 validation (RFC 6455 §8.1), pure-Python twin of :mod:`wsfast._utf8_c`.

CPython's incremental UTF-8 decoder does the work in C. It fails at the earliest byte in every case but
one: it holds ``ED A0``..``ED BF`` back as an incomplete sequence although no continuation can make a valid
character of it (those are UTF-16 surrogates). :func:`_is_valid_incomplete` checks the bytes the decoder
holds back against Unicode Table 3-7, so both twins keep the same fail-point contract.
"""

from __future__ import annotations

import codecs

from ._typing import BytesLike
from .exceptions import InvalidUTF8Error

__all__ = ["Utf8Validator", "validate_utf8"]

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

# Unicode Table 3-7: the allowed range of the byte after each multi-byte lead byte.
_SECOND_BYTE_RANGE: dict[int, tuple[int, int]] = {
    **{lead: (0x80, 0xBF) for lead in range(0xC2, 0xF5)},
    0xE0: (0xA0, 0xBF),
    0xED: (0x80, 0x9F),
    0xF0: (0x90, 0xBF),
    0xF4: (0x80, 0x8F),
}


def _is_valid_incomplete(pending: bytes) -> bool:
    """Whether *pending* (1-3 bytes the decoder held back) can still start a well-formed sequence."""
    allowed = _SECOND_BYTE_RANGE.get(pending[0])
    if allowed is None:
        return False
    if len(pending) > 1 and not allowed[0] <= pending[1] <= allowed[1]:
        return False
    return all(0x80 <= byte <= 0xBF for byte in pending[2:])


def validate_utf8(data: BytesLike) -> bool:
    """Whether *data* (any bytes-like object) is well-formed UTF-8 as a whole."""
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Utf8Validator:
    """Validates a UTF-8 stream that arrives in pieces, failing at the earliest provably invalid byte.

    Contract shared with the compiled twin: :meth:`feed` raises as soon as the bytes fed so far are not a
    prefix of any well-formed UTF-8 string (Unicode Table 3-7), e.g. on the ``A0`` of ``ED A0`` (a
    surrogate); :meth:`end` raises if the stream stops inside a sequence.

    A validator keeps the state of one stream: an instance must not be used from two threads at once
    without a lock.
    """

    __slots__ = ("_decoder", "_offset")

    def __init__(self) -> None:
        self._decoder = _Utf8Decoder()
        self._offset = 0

    def decode(self, data: BytesLike) -> str:
        """Validate the next bytes and return the characters they complete (used by the pure codec).

        Raises:
            InvalidUTF8Error: the stream can no longer be valid UTF-8.
        """
        held = len(self._decoder.getstate()[0])
        try:
            text: str = self._decoder.decode(data, False)
        except UnicodeDecodeError as exc:
            # exc.start counts from the bytes the decoder held back, which precede *data*.
            raise InvalidUTF8Error(f"invalid UTF-8 at byte {self._offset - held + exc.start}") from None
        self._offset += len(data)
        pending = self._decoder.getstate()[0]
        if pending and not _is_valid_incomplete(pending):
            # Only the byte after an ED/F4-style lead can be wrong here; CPython checks the rest.
            raise InvalidUTF8Error(f"invalid UTF-8 at byte {self._offset - len(pending) + 1}")
        return text

    def feed(self, data: BytesLike) -> None:
        """Validate the next bytes of the stream.

        Raises:
            InvalidUTF8Error: the stream can no longer be valid UTF-8.
        """
        self.decode(data)

    def end(self) -> None:
        """Declare the end of the stream.

        Raises:
            InvalidUTF8Error: the stream stops inside a multi-byte sequence.
        """
        if self._decoder.getstate()[0]:
            raise InvalidUTF8Error(f"truncated UTF-8 sequence at byte {self._offset}")

    def reset(self) -> None:
        """Start a new stream."""
        self._decoder.reset()
        self._offset = 0
