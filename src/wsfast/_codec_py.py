"""Frame decoding and encoding (RFC 6455 §5), pure-Python twin of :mod:`wsfast._codec_c`.

The contract both twins keep, and that ``tests/`` checks on both in one run:

* :meth:`Decoder.feed` accepts any bytes-like object, split anywhere, and returns what became complete in
  wire order: ``str`` (TEXT), ``bytes`` (BINARY), :class:`~wsfast.Ping`, :class:`~wsfast.Pong`,
  :class:`~wsfast.Close`. How the stream is split never changes the messages or the error.
* Header rules are checked as soon as the first two header bytes are in, the length rules as soon as the
  extended length is in; ``max_message_size`` is checked against the *declared* length, before any payload
  is buffered.
* Text is validated as it arrives: an invalid sequence fails on the byte that proves it invalid (see
  :class:`~wsfast._utf8_py.Utf8Validator`), even inside a frame that has not fully arrived; a message that
  ends inside a sequence fails when its last frame completes.
* Errors are :class:`~wsfast.ProtocolError` subclasses carrying the close code and, in ``.messages``, what
  the same call decoded before the bad frame. After an error the decoder raises it again on every call.
* Non-minimal length encodings are accepted (RFC 6455 §5.2's "minimal number of bytes" binds the sender;
  rejecting them would only break interop).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from operator import index
from typing import Any, TypeAlias

from ._mask_py import apply_mask
from ._typing import BytesLike
from ._utf8_py import Utf8Validator
from .deflate import TAIL, Negotiated
from .exceptions import (
    InvalidCompressedDataError,
    InvalidUTF8Error,
    MessageDecodeError,
    MessageTooBigError,
    ProtocolError,
)
from .frames import MAX_CONTROL_PAYLOAD, Close, Ping, Pong, is_valid_close_code

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Decoder", "Encoder", "Message", "close_payload"]

DEFAULT_MAX_MESSAGE_SIZE = 64 * 2**20

Message: TypeAlias = str | bytes | Ping | Pong | Close

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
READ_HEADER, READ_PAYLOAD = 0, 1
KEY_POOL_SIZE = 1024  # masking keys are drawn from os.urandom() 256 at a time
KEEP_BUFFER_LIMIT = 8 << 20  # a reassembly buffer larger than this is dropped after its message


def _header_size(second_byte: int) -> int:
    length7 = second_byte & 0x7F
    if length7 < 126:
        return 2
    return 4 if length7 == 126 else 10


class Decoder:
    """Turns the bytes a server sends into messages (RFC 6455 §5, server-to-client direction).

    ``feed(data)`` returns a list of what became complete, in wire order: ``str`` for a text message,
    ``bytes`` for a binary one, and :class:`~wsfast.Ping`, :class:`~wsfast.Pong`, :class:`~wsfast.Close`
    for control frames.

    One decoder belongs to one connection: it keeps the partial frame and message between calls, so an
    instance must not be used from two threads at once without a lock. Separate instances are independent.
    """

    __slots__ = (
        "_buffer",
        "_compressed",
        "_control",
        "_deflate",
        "_error",
        "_fin",
        "_header",
        "_inflater",
        "_loads",
        "_max_size",
        "_message_opcode",
        "_opcode",
        "_remaining",
        "_state",
        "_text_as_bytes",
        "_utf8",
        "_wire_len",
        "control_count",
        "frames_received",
    )

    def __init__(
        self,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        *,
        text_as_bytes: bool = False,
        loads: Callable[[bytes], Any] | None = None,
        compression: Negotiated | None = None,
    ) -> None:
        self._deflate = compression
        self._inflater: Any = None
        self._compressed = False  # the message in progress is compressed (RSV1 on its first frame)
        self._wire_len = 0  # compressed bytes of the message in progress
        if loads is not None and not callable(loads):
            raise TypeError(f"loads must be callable, not {type(loads).__name__}")
        self._text_as_bytes = bool(text_as_bytes) or loads is not None
        self._loads = loads
        self.control_count = 0
        """How many entries of the last :meth:`feed` result are not data messages (control frames and
        :class:`~wsfast.MessageDecodeError` items): 0 lets a caller skip looking at each entry's type."""
        self.frames_received = 0
        """How many frame headers this decoder has read, over its whole life (a statistic)."""
        if max_message_size is not None:
            max_message_size = index(max_message_size)
            if max_message_size < 0:
                raise ValueError(f"max_message_size must be >= 0 or None, not {max_message_size!r}")
        self._max_size = max_message_size
        self._state = READ_HEADER
        self._header = bytearray()
        self._fin = False
        self._opcode = 0
        self._remaining = 0
        self._message_opcode = 0  # 0: no data message in progress
        # Payload of the message in progress, text included (validated as it arrives, decoded once at
        # the end): memory stays within max_message_size however small the fragments are.
        self._buffer = bytearray()
        self._utf8 = Utf8Validator()
        self._control = bytearray()
        self._error: ProtocolError | None = None

    @property
    def max_message_size(self) -> int | None:
        """The largest message accepted, in bytes, or ``None`` for no limit."""
        return self._max_size

    def feed(self, data: BytesLike) -> list[Any]:
        """Parse *data*, the next bytes from the server, and return the messages it completes.

        Raises:
            ProtocolError: the server broke RFC 6455; ``.close_code`` says how to fail the connection and
                ``.messages`` holds what this call decoded before the offending frame.
        """
        self.control_count = 0
        if self._error is not None:
            raise type(self._error)(*self._error.args)
        view = memoryview(data)
        if not view.c_contiguous:
            # A non-contiguous view (e.g. memoryview(data)[::2]) is decoded from a contiguous copy.
            view = memoryview(view.tobytes())
        elif view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        out: list[Any] = []
        try:
            self._parse(view, out)
        except ProtocolError as exc:
            exc.messages = list(out)
            self._error = exc
            self._buffer = bytearray()
            raise
        return out

    def _parse(self, data: memoryview, out: list[Any]) -> None:
        size = len(data)
        pos = 0
        while True:
            if self._state == READ_HEADER:
                header = self._header
                if not header and size - pos >= 2:
                    needed = self._check_header_start(data[pos], data[pos + 1])
                    if size - pos >= needed:
                        self._start_frame(data[pos : pos + needed])
                        pos += needed
                    else:
                        header += data[pos:]
                        return
                else:
                    if pos >= size:
                        return
                    if len(header) < 2:
                        take = min(2 - len(header), size - pos)
                        header += data[pos : pos + take]
                        pos += take
                        if len(header) < 2:
                            return
                        self._check_header_start(header[0], header[1])
                    needed = _header_size(header[1])
                    take = min(needed - len(header), size - pos)
                    header += data[pos : pos + take]
                    pos += take
                    if len(header) < needed:
                        return
                    self._header = bytearray()
                    self._start_frame(header)

            # READ_PAYLOAD; runs even with no data left, so that an empty frame completes at once.
            available = size - pos
            if self._opcode >= OP_CLOSE:
                take = min(self._remaining, available)
                self._control += data[pos : pos + take]
                self._remaining -= take
                pos += take
                if self._remaining:
                    return
                out.append(self._control_frame())
                self.control_count += 1
            elif self._compressed:
                take = min(self._remaining, available)
                self._inflate(data[pos : pos + take])
                self._remaining -= take
                pos += take
                if self._remaining:
                    return
                if self._fin:
                    # RFC 7692 §7.2.2: append 00 00 ff ff, then inflate. The inflater is kept even with
                    # server_no_context_takeover: that server never refers back to earlier messages.
                    self._inflate(memoryview(TAIL))
                    self._compressed = False
                    self._emit(out, self._finish_message())
            elif self._fin and self._remaining <= available and not self._buffer:
                # The whole message is in *data*: build it in one step.
                take = self._remaining
                self._emit(out, self._message(data[pos : pos + take]))
                pos += take
                self._message_opcode = 0
            else:
                take = min(self._remaining, available)
                self._append(data[pos : pos + take])
                self._remaining -= take
                pos += take
                if self._remaining:
                    return
                if self._fin:
                    self._emit(out, self._finish_message())
            self._state = READ_HEADER

    def _check_header_start(self, first: int, second: int) -> int:
        """Apply every rule the first two header bytes decide; return the header size."""
        opcode = first & 0x0F
        # RFC 6455 §5.2: "MUST be 0 unless an extension is negotiated that defines meanings".
        if first & 0x70:
            if first & 0x70 != 0x40 or self._deflate is None:
                raise ProtocolError("reserved bits RSV1-3 are set but no extension was negotiated")
            # RFC 7692 §6.1: RSV1 marks the first frame of a compressed message, nothing else.
            if opcode == OP_CONT or opcode >= OP_CLOSE:
                raise ProtocolError("RSV1 is set on a continuation or control frame")
        # RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail_".
        if OP_BINARY < opcode < OP_CLOSE or opcode > OP_PONG:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        if opcode >= OP_CLOSE:
            # RFC 6455 §5.5: "Control frames themselves MUST NOT be fragmented."
            if not first & 0x80:
                raise ProtocolError("fragmented control frame")
            # RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
            # (126 and 127 announce an extended length, checked in _start_frame.)
            if MAX_CONTROL_PAYLOAD < second & 0x7F < 126:
                raise ProtocolError("control frame payload longer than 125 bytes")
        elif opcode == OP_CONT:
            if not self._message_opcode:
                raise ProtocolError("continuation frame without a message to continue")
        elif self._message_opcode:
            # RFC 6455 §5.4: fragments of one message are not interleaved with another data message.
            raise ProtocolError("new data frame before the fragmented message was finished")
        # RFC 6455 §5.1: "A client MUST close a connection if it detects a masked frame."
        if second & 0x80:
            raise ProtocolError("masked frame from the server")
        return _header_size(second)

    def _start_frame(self, header: BytesLike) -> None:
        """Read the payload length of a checked header and prepare to read the payload."""
        self.frames_received += 1
        length = header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
            # RFC 6455 §5.2: "the most significant bit MUST be 0".
            if length >> 63:
                raise ProtocolError("64-bit payload length has its most significant bit set")
        self._fin = bool(header[0] & 0x80)
        self._opcode = header[0] & 0x0F
        self._remaining = length
        self._state = READ_PAYLOAD
        if self._opcode >= OP_CLOSE:
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError("control frame payload longer than 125 bytes")
            self._control = bytearray()
            return
        if self._opcode != OP_CONT:
            self._compressed = bool(header[0] & 0x40)
            self._wire_len = 0
        # RFC 6455 §10.4: checked against the declared length, before any payload is buffered. (For a
        # compressed message the declared lengths are compressed bytes; its inflated size is checked
        # while it inflates.)
        held = self._wire_len if self._compressed else self._held()
        if self._max_size is not None and length > self._max_size - held:
            raise MessageTooBigError(
                f"message of at least {held + length} bytes exceeds max_message_size={self._max_size}"
            )
        self._wire_len += length
        if self._opcode != OP_CONT:
            self._message_opcode = self._opcode
            self._utf8.reset()

    def _inflate(self, data: memoryview) -> None:
        """Inflate a piece of a compressed message into the message, never past max_message_size."""
        assert self._deflate is not None
        if self._inflater is None:
            self._inflater = self._deflate.decompressobj()
        limit = None if self._max_size is None else self._max_size - self._held()
        try:
            # Asking for one byte more than the limit allows tells "exactly at the limit" from "over".
            output = self._inflater.decompress(data, 0 if limit is None else limit + 1)
            while self._inflater.eof and (limit is None or len(output) <= limit):
                # A final DEFLATE block (BFINAL) ended the stream. RFC 7692 §7.2.3.3: what follows starts
                # a new stream (a sender that flushes with BFINAL adds an empty block's header byte so the
                # 00 00 ff ff tail completes it), as zlib's C API sees it after inflateReset.
                rest = self._inflater.unused_data
                self._inflater = self._deflate.decompressobj()
                if not rest:
                    break
                more = self._inflater.decompress(rest, 0 if limit is None else limit + 1 - len(output))
                output = output + more
        except Exception as exc:  # zlib.error, or the backend's equivalent
            raise InvalidCompressedDataError(f"invalid compressed data: {exc}") from None
        if limit is not None and len(output) > limit:
            if self._message_opcode == OP_TEXT:
                # Text within the limit is validated first, so the error (1007 or 1009) does not depend on
                # how much of the message was inflated per call, i.e. on how the stream was split.
                self._append(memoryview(output)[:limit])
            raise MessageTooBigError(f"message inflates to more than max_message_size={self._max_size} bytes")
        if output:
            self._append(memoryview(output))

    def _held(self) -> int:
        """Bytes of the message in progress received so far."""
        if self._message_opcode == OP_TEXT:
            return self._utf8._offset
        return len(self._buffer)

    def _append(self, data: memoryview) -> None:
        """Add part of a fragmented or incomplete message."""
        if self._message_opcode == OP_TEXT:
            # RFC 6455 §8.1: fail fast, even inside a frame that has not fully arrived yet.
            try:
                self._utf8.feed(data)
            except InvalidUTF8Error as exc:
                raise InvalidUTF8Error(f"{exc} of a text message") from None
        self._buffer += data

    def _emit(self, out: list[Any], message: Any) -> None:
        if type(message) is MessageDecodeError:
            self.control_count += 1
        out.append(message)

    def _text_bytes(self, payload: bytes) -> Any:
        """A validated text payload as bytes, or what *loads* makes of it."""
        if self._loads is None:
            return payload
        try:
            return self._loads(payload)
        except Exception as exc:
            error = MessageDecodeError(f"loads() failed on a text message: {exc!r}", payload)
            error.__cause__ = exc
            return error

    def _finish_message(self) -> Any:
        message: Any
        if self._message_opcode == OP_TEXT:
            try:
                self._utf8.end()
            except InvalidUTF8Error:
                raise InvalidUTF8Error("text message ends inside a UTF-8 sequence") from None
            self._utf8.reset()
            message = self._buffer.decode("utf-8") if not self._text_as_bytes else None
            payload = bytes(self._buffer) if message is None else b""
        else:
            message = bytes(self._buffer)
        if len(self._buffer) > KEEP_BUFFER_LIMIT:
            self._buffer = bytearray()
        else:
            del self._buffer[:]
        self._message_opcode = 0
        if message is None:
            return self._text_bytes(payload)
        return message

    def _message(self, data: memoryview) -> Any:
        if self._message_opcode == OP_BINARY:
            return bytes(data)
        if self._text_as_bytes:
            validator = Utf8Validator()
            try:
                validator.feed(data)
                validator.end()
            except InvalidUTF8Error as exc:
                raise InvalidUTF8Error(f"{exc} of a text message") from None
            return self._text_bytes(bytes(data))
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidUTF8Error(f"invalid UTF-8 at byte {exc.start} of a text message") from None

    def _control_frame(self) -> Message:
        payload = bytes(self._control)
        if self._opcode == OP_PING:
            return Ping(payload)
        if self._opcode == OP_PONG:
            return Pong(payload)
        # RFC 6455 §5.5.1: an empty close body is allowed; otherwise a 2-byte code comes first.
        if not payload:
            return Close(1005, "")
        if len(payload) == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        code = int.from_bytes(payload[:2], "big")
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUTF8Error("close reason is not valid UTF-8") from None
        return Close(code, reason)


class Encoder:
    """Builds masked client frames (RFC 6455 §5.2-5.3).

    Every frame gets a fresh masking key from :func:`os.urandom`, a cryptographically secure source as
    RFC 6455 §10.3 requires; keys are fetched 256 at a time so small sends stay cheap.

    One encoder belongs to one connection: an instance must not be used from two threads at once without
    a lock (:class:`~wsfast.WebSocketClient` holds its write lock around every use).
    """

    __slots__ = ("_key_pos", "_keys")

    def __init__(self) -> None:
        self._keys = b""
        self._key_pos = KEY_POOL_SIZE

    def encode(self, payload: BytesLike | str, opcode: int, fin: bool = True, rsv1: bool = False) -> bytes:
        """Return one masked frame carrying *payload* (``str`` is encoded as UTF-8).

        *rsv1* marks the first frame of a permessage-deflate message (RFC 7692 §6).

        Raises:
            ValueError: reserved opcode, fragmented control frame, control payload over 125 bytes, a
                CLOSE payload that is not a valid close (RFC 6455 §5.5, §7.4), or RSV1 on a frame other
                than TEXT or BINARY.
        """
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        if OP_BINARY < opcode < OP_CLOSE or opcode > OP_PONG or opcode < 0:
            raise ValueError(f"invalid opcode {opcode}")
        view = memoryview(data)
        size = view.nbytes
        if rsv1 and opcode not in (OP_TEXT, OP_BINARY):
            raise ValueError("RSV1 (compression) can only mark a TEXT or BINARY frame")
        if opcode >= OP_CLOSE:
            if not fin:
                raise ValueError("control frames cannot be fragmented")
            if size > MAX_CONTROL_PAYLOAD:
                raise ValueError(f"control frame payload is {size} bytes; the limit is 125")
            if opcode == OP_CLOSE:
                _check_close_payload(bytes(view))
        first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        if size < 126:
            header = bytes((first, 0x80 | size))
        elif size < 65536:
            header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
        if self._key_pos >= KEY_POOL_SIZE:
            self._keys = os.urandom(KEY_POOL_SIZE)
            self._key_pos = 0
        key = self._keys[self._key_pos : self._key_pos + 4]
        self._key_pos += 4
        return header + key + apply_mask(view, key)

    def encode_close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Return a masked CLOSE frame with *code* and *reason*, or an empty body if *code* is None.

        Raises:
            ValueError: *code* may not be sent (RFC 6455 §7.4), a reason without a code, or a body over
                125 bytes.
        """
        return self.encode(close_payload(code, reason), OP_CLOSE)


def close_payload(code: int | None, reason: str) -> bytes:
    """The body of a CLOSE frame: a 2-byte code and a UTF-8 reason, or nothing if *code* is None."""
    if not isinstance(reason, str):
        raise TypeError(f"the close reason must be a str, not {type(reason).__name__}")
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not isinstance(code, int):
        raise TypeError(f"the close code must be an int, not {type(code).__name__}")
    if not (0 <= code <= 0xFFFF and is_valid_close_code(code)):
        raise ValueError(f"close code {code!r} may not be sent (RFC 6455 §7.4)")
    return int(code).to_bytes(2, "big") + reason.encode("utf-8")


def _check_close_payload(body: bytes) -> None:
    if not body:
        return
    if len(body) == 1:
        raise ValueError("a close payload cannot be 1 byte long")
    code = int.from_bytes(body[:2], "big")
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent (RFC 6455 §7.4)")
    try:
        body[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("close reason is not valid UTF-8") from None
