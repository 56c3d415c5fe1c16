"""Differential fuzz targets shared by the atheris harnesses, ``make fuzz`` and the test suite.

Each ``check_*`` function takes one input (arbitrary bytes), runs it through the compiled and the pure
twins side by side, and raises ``AssertionError`` when

* an exception escapes that wsfast does not document (anything but a :class:`~wsfast.ProtocolError`
  from the decoder, a :class:`~wsfast.HandshakeError` or :class:`~wsfast.InvalidURL` from the
  handshake; the protocol layer must not raise at all), or
* the twins disagree: other messages or events, another error type or close code, other replies, or
* how the bytes are split changes the outcome (chunk invariance).

The first bytes of an input choose the options (limits, ``text_as_bytes``, permessage-deflate parameters,
the split points), so every input file is self-contained and a crash reproduces from the file alone:
``python fuzz/fuzz_decoder.py crash-...``. Nothing here needs atheris.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import random
import struct
import types
from collections.abc import Callable, Iterator
from typing import Any

import wsfast.protocol
from wsfast import Close, HandshakeError, InvalidURL, Ping, Pong, ProtocolError
from wsfast.deflate import Deflate, Negotiated
from wsfast.handshake import Accepted, ClientHandshake, Redirect, accept_key

__all__ = [
    "ACCEPT_PLACEHOLDER",
    "TARGETS",
    "check_decoder",
    "check_handshake",
    "check_protocol",
    "twins",
]

MAX_SIZES = (None, 64 * 2**20, 0, 1, 16, 125, 1000, 70_000)
COMPRESSIONS: tuple[Negotiated | None, ...] = (
    None,
    Negotiated(),
    Negotiated(server_no_context_takeover=True),
    Negotiated(server_max_window_bits=9),
    Negotiated(True, True, 10, 10),
)
# In a handshake input, replaced by the right Sec-WebSocket-Accept for the request's key, so mutations
# can reach the code behind a valid 101.
ACCEPT_PLACEHOLDER = b"@ACCEPT@"


def twins() -> dict[str, types.ModuleType]:
    """The codec twins by name; the compiled one must really be compiled."""
    modules = {
        "python": importlib.import_module("wsfast._codec_py"),
        "cython": importlib.import_module("wsfast._codec_c"),
    }
    path = getattr(modules["cython"], "__file__", "") or ""
    if not path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        raise ImportError(f"wsfast._codec_c is not a compiled extension: {path!r}")
    return modules


_TWINS: dict[str, types.ModuleType] | None = None


def _twins() -> dict[str, types.ModuleType]:
    global _TWINS
    if _TWINS is None:
        _TWINS = twins()
    return _TWINS


class _Options:
    """Options decoded from the first bytes of an input."""

    def __init__(self, data: bytes) -> None:
        head = data[:3].ljust(3, b"\0")
        flags, size_choice, seed = head
        self.text_as_bytes = bool(flags & 1)
        self.defer_failure = bool(flags & 2)
        self.compression = COMPRESSIONS[(flags >> 2) % len(COMPRESSIONS)]
        self.max_message_size = MAX_SIZES[size_choice % len(MAX_SIZES)]
        self.seed = seed
        self.payload = data[3:]


def _cuts(size: int, seed: int) -> list[int]:
    """Split points for *size* bytes: whole, byte by byte, or random, depending on *seed*."""
    if size < 2 or seed % 8 == 0:
        return []
    if seed % 8 == 1:
        return list(range(1, size))
    rng = random.Random(seed)
    return sorted(rng.sample(range(1, size), min(size - 1, rng.randint(1, 12))))


def _pieces(data: bytes, cuts: list[int]) -> Iterator[memoryview]:
    view = memoryview(data)
    start = 0
    for cut in [*cuts, len(data)]:
        yield view[start:cut]
        start = cut


def _message_key(message: Any) -> tuple[Any, ...]:
    kind = type(message)
    if kind in (Ping, Pong):
        return (kind.__name__, bytes(message.payload))
    if kind is Close:
        return ("Close", message.code, message.reason)
    if isinstance(message, BaseException):  # MessageDecodeError in place of a message (not fatal)
        return (kind.__name__, getattr(message, "payload", None))
    return (kind.__name__, message)


# --------------------------------------------------------------------------------------------------
# The decoder
# --------------------------------------------------------------------------------------------------


def _decode(module: types.ModuleType, options: _Options, cuts: list[int]) -> tuple[Any, ...]:
    decoder = module.Decoder(
        options.max_message_size, text_as_bytes=options.text_as_bytes, compression=options.compression
    )
    messages: list[Any] = []
    for piece in _pieces(options.payload, cuts):
        try:
            out = decoder.feed(piece)
        except ProtocolError as exc:
            messages.extend(_message_key(m) for m in exc.messages)
            # After an error the decoder raises the same error again on every call.
            again: ProtocolError | None = None
            try:
                decoder.feed(b"\x81\x00")
            except ProtocolError as raised:
                again = raised
            if type(again) is not type(exc):
                raise AssertionError(
                    f"{module.__name__}: after {exc!r}, the next feed gave {again!r}"
                ) from exc
            return tuple(messages), (type(exc).__name__, exc.close_code)
        assert decoder.control_count <= len(out)
        messages.extend(_message_key(m) for m in out)
    return tuple(messages), None


def _split_key(result: tuple[Any, ...]) -> tuple[Any, ...]:
    """*result* for the whole-vs-split comparison.

    A compressed text message that is both corrupt DEFLATE data and invalid UTF-8 fails with 1007 either
    way, but which of the two is seen first depends on how much was inflated before the corrupt bytes,
    i.e. on the split: the error *type* may differ there, its close code may not. The twins must still
    agree exactly for the same split.
    """
    names = {"InvalidCompressedDataError": "1007", "InvalidUTF8Error": "1007"}
    return tuple(
        (names.get(item[0], item[0]), *item[1:])
        if isinstance(item, tuple) and item and item[0] in names
        else item
        for item in result
    )


def check_decoder(data: bytes) -> None:
    """Both decoder twins, whole and split, agree on *data* and raise only ProtocolError."""
    options = _Options(data)
    modules = _twins()
    cuts = _cuts(len(options.payload), options.seed)
    results = {name: _decode(module, options, cuts) for name, module in modules.items()}
    assert results["python"] == results["cython"], ("twins disagree", results)
    if cuts:
        for name in ("cython", "python"):
            whole = _decode(modules[name], options, [])
            assert _split_key(whole) == _split_key(results[name]), (
                f"{name}: split changes the outcome",
                whole,
            )


# --------------------------------------------------------------------------------------------------
# The protocol (ClientProtocol.receive_data)
# --------------------------------------------------------------------------------------------------


def _client_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """Parse the client's masked frames: (first byte, length, unmasked payload); checks the masking."""
    frames = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert second & 0x80, "a client frame must be masked (RFC 6455 §5.3)"
        length = second & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        key = data[pos : pos + 4]
        pos += 4
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[pos : pos + length]))
        pos += length
        if first & 0x0F == 0x8:
            payload = payload[:2]  # a CLOSE's reason may be the twin's own error message
        frames.append((first, length if first & 0x0F != 0x8 else -1, payload))
    assert pos == len(data)
    return frames


def _run_protocol(
    module: types.ModuleType, data: bytes, cuts: list[int], options: _Options, compression: Negotiated | None
) -> tuple[Any, ...]:
    protocol = wsfast.protocol.ClientProtocol(
        max_message_size=options.max_message_size,
        text_as_bytes=options.text_as_bytes,
        compression=compression,
        codec=module,
    )
    events: list[Any] = []
    sent: list[tuple[int, int, bytes]] = []
    for piece in _pieces(data, cuts):
        # receive_data never raises: a protocol error fails the connection.
        out = protocol.receive_data(piece, defer_failure=options.defer_failure)
        events.extend(_message_key(m) for m in out)
        if options.defer_failure:
            protocol.finish_receive()
        sent.extend(_client_frames(protocol.data_to_send()))
    state_before_eof = protocol.state.name
    protocol.receive_eof()
    closed = protocol.closed_exception()
    error = protocol.error
    return (
        tuple(events),
        tuple(sent),
        state_before_eof,
        protocol.close_code,
        protocol.close_reason if error is None else None,  # the reason carries the twin's message
        type(closed).__name__,
        None if error is None else (type(error).__name__, error.close_code),
    )


def check_protocol(data: bytes) -> None:
    """``ClientProtocol.receive_data`` on both twins: same events, replies, close code; never raises."""
    options = _Options(data)
    modules = _twins()
    cuts = _cuts(len(options.payload), options.seed)
    results = {
        name: _run_protocol(module, options.payload, cuts, options, options.compression)
        for name, module in modules.items()
    }
    assert results["python"] == results["cython"], ("twins disagree", results)
    if cuts:
        whole = _run_protocol(modules["cython"], options.payload, [], options, options.compression)
        assert _split_key(whole) == _split_key(results["cython"]), ("split changes the outcome", whole)


# --------------------------------------------------------------------------------------------------
# The handshake (ClientHandshake.receive), then the first frames on both twins
# --------------------------------------------------------------------------------------------------


def _handshake(response: bytes, cuts: list[int], compression: bool) -> tuple[Any, bytes]:
    handshake = ClientHandshake(
        "ws://example.com/feed",
        subprotocols=["chat", "superchat"],
        compression=Deflate() if compression else None,
    )
    accept = accept_key(handshake.key)
    response = response.replace(ACCEPT_PLACEHOLDER, accept.encode())
    outcome: Accepted | Redirect | None = None
    after = b""
    try:
        for piece in _pieces(response, cuts):
            if outcome is not None:
                after += piece  # bytes after a complete response belong to the WebSocket connection
                continue
            outcome = handshake.receive(bytes(piece))
        if outcome is None:
            outcome = handshake.receive_eof()
    except (HandshakeError, InvalidURL) as exc:
        status = getattr(exc, "status", None)
        return (type(exc).__name__, status), b""
    if isinstance(outcome, Redirect):
        return ("Redirect", outcome.response.status, str(outcome.url).replace(accept, "@ACCEPT@")), b""
    assert isinstance(outcome, Accepted)
    headers = [
        (name, value.replace(accept, "@ACCEPT@")) for name, value in outcome.response.headers.raw_items()
    ]
    response_key = (outcome.response.status, headers, outcome.response.body)
    # The key is random: put the placeholder back, so runs compare.
    rest = (outcome.leftover + after).replace(accept.encode(), ACCEPT_PLACEHOLDER)
    return ("Accepted", response_key, outcome.subprotocol, outcome.compression), rest


def check_handshake(data: bytes) -> None:
    """A handshake response (whole and split) gives the same outcome and raises only documented
    errors; after a 101, the bytes that follow go through ``ClientProtocol`` on both twins."""
    options = _Options(data)
    compression = bool(options.seed & 0x80)
    cuts = _cuts(len(options.payload), options.seed)
    outcome, leftover = _handshake(options.payload, cuts, compression)
    whole, whole_leftover = _handshake(options.payload, [], compression)
    assert outcome == whole, ("split changes the outcome", outcome, whole)
    assert leftover == whole_leftover, (
        "split changes the bytes after the response",
        leftover,
        whole_leftover,
    )
    if outcome[0] != "Accepted":
        return
    negotiated = outcome[3]
    modules = _twins()
    results = {
        name: _run_protocol(module, leftover, _cuts(len(leftover), options.seed), options, negotiated)
        for name, module in modules.items()
    }
    assert results["python"] == results["cython"], ("twins disagree", results)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoder": check_decoder,
    "protocol": check_protocol,
    "handshake": check_handshake,
}
