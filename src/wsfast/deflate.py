"""permessage-deflate (RFC 7692): negotiation and the compression side, sans-I/O.

Off by default: a market-data client spends CPU on every inflated message, and only feeds that send large or
repetitive payloads (order books) gain. Ask for it with ``compression="deflate"`` (or a :class:`Deflate`
with the parameters you want) when the feed compresses well.

* :class:`Deflate` holds what the client offers. :meth:`Deflate.offers` lists the alternatives, in order of
  preference, so any compliant server can accept one; :meth:`Deflate.negotiate` checks the server's answer
  against RFC 7692 §7 and returns the :class:`Negotiated` parameters.
* Decompression runs in the codec's ``Decoder`` (the compiled twin for speed), which inflates fragments as
  they arrive and bounds the *decompressed* size by ``max_message_size``.
* :class:`Compressor` compresses outgoing messages (RFC 7692 §7.2.1).

The zlib implementation is pluggable (``zlib_backend=``): the standard :mod:`zlib`, ``isal.isal_zlib`` or
``zlib_ng.zlib_ng`` -- any module with zlib's ``compressobj``/``decompressobj`` interface.
"""

from __future__ import annotations

import dataclasses
import zlib
from types import ModuleType
from typing import Any

__all__ = ["EXTENSION_NAME", "Compressor", "Deflate", "Negotiated", "NegotiationError", "parse_extensions"]

EXTENSION_NAME = "permessage-deflate"
# RFC 7692 §7.2.1: the 4 octets removed from the end of each compressed message, added back to inflate it.
TAIL = b"\x00\x00\xff\xff"
DEFAULT_WINDOW_BITS = 15
DEFAULT_COMPRESS_THRESHOLD = 128  # bytes; smaller messages are sent uncompressed (RFC 7692 §6 allows it)
PARAMETERS = (
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
)


class NegotiationError(ValueError):
    """The server's ``Sec-WebSocket-Extensions`` answer breaks RFC 7692 §7 or matches no offer."""


def parse_extensions(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse ``Sec-WebSocket-Extensions`` header values into ``(name, [(param, value or None)])``.

    Raises:
        NegotiationError: a malformed element.
    """
    extensions = []
    for value in values:
        for element in value.split(","):
            if not element.strip():
                continue
            name, *raw_params = (part.strip() for part in element.split(";"))
            if not name or not _is_token(name):
                raise NegotiationError(f"invalid extension in {value!r}")
            params: list[tuple[str, str | None]] = []
            for raw in raw_params:
                key, sep, param_value = (piece.strip() for piece in raw.partition("="))
                if not _is_token(key):
                    raise NegotiationError(f"invalid extension parameter {raw!r}")
                if sep:
                    if len(param_value) >= 2 and param_value[0] == param_value[-1] == '"':
                        param_value = param_value[1:-1]
                    if not _is_token(param_value):
                        raise NegotiationError(f"invalid value in extension parameter {raw!r}")
                    params.append((key.lower(), param_value))
                else:
                    params.append((key.lower(), None))
            extensions.append((name.lower(), params))
    return extensions


def _is_token(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in text)


def _window_bits(name: str, value: str | None) -> int:
    # RFC 7692 §7.1.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
    if value is None or not value.isdigit() or value != str(int(value)) or not 8 <= int(value) <= 15:
        raise NegotiationError(f"{name} must be an integer from 8 to 15, not {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Negotiated:
    """The permessage-deflate parameters in force on a connection (RFC 7692 §7.1)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = DEFAULT_WINDOW_BITS
    client_max_window_bits: int = DEFAULT_WINDOW_BITS
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    level: int = 6
    mem_level: int = 8
    zlib_backend: ModuleType = zlib

    @property
    def inflate_wbits(self) -> int:
        """The ``wbits`` of a raw inflater for the server's messages (its window, RFC 7692 §7.1.2.1).

        A window of 2**8 is inflated with 2**9: zlib compresses "8" with 9 bits anyway, and a larger
        inflate window decodes everything a smaller one does.
        """
        return -max(self.server_max_window_bits, 9)

    def decompressobj(self) -> Any:
        """A raw inflater for the server's messages."""
        return self.zlib_backend.decompressobj(self.inflate_wbits)

    @property
    def agreed(self) -> str:
        """The negotiated parameters as an extension header element (for logs and ``info()``)."""
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits != DEFAULT_WINDOW_BITS:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits != DEFAULT_WINDOW_BITS:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


@dataclasses.dataclass(frozen=True)
class Deflate:
    """What the client offers for permessage-deflate (RFC 7692 §7.1).

    Args:
        client_max_window_bits: ``True`` (default) tells the server it may limit our window; an int (9-15)
            also limits it ourselves. ``False``: don't offer the parameter.
        server_max_window_bits: ask the server to use a window of at most 2**N bytes (8-15), to bound the
            memory its messages need here; ``None`` (default): no request.
        client_no_context_takeover: promise to compress each message on its own.
        server_no_context_takeover: ask the server to compress each message on its own (less memory,
            worse compression ratio).
        compress_threshold: messages shorter than this are sent uncompressed.
        level, mem_level: zlib's compression level (0-9) and memory level (1-9) for outgoing messages.
        zlib_backend: a module with zlib's interface (``zlib``, ``isal.isal_zlib``, ``zlib_ng.zlib_ng``).
    """

    client_max_window_bits: int | bool = True
    server_max_window_bits: int | None = None
    client_no_context_takeover: bool = False
    server_no_context_takeover: bool = False
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    level: int = 6
    mem_level: int = 8
    zlib_backend: ModuleType = zlib

    def __post_init__(self) -> None:
        bits = self.client_max_window_bits
        if not isinstance(bits, bool) and not 9 <= bits <= 15:
            # zlib cannot compress with a 256-byte window (it silently uses 512), so 8 is never offered.
            raise ValueError(f"client_max_window_bits must be True, False or 9-15, not {bits!r}")
        if self.server_max_window_bits is not None and not 8 <= self.server_max_window_bits <= 15:
            raise ValueError(f"server_max_window_bits must be 8-15, not {self.server_max_window_bits!r}")
        if not hasattr(self.zlib_backend, "decompressobj") or not hasattr(self.zlib_backend, "compressobj"):
            raise TypeError("zlib_backend must have zlib's compressobj() and decompressobj()")

    def _first_offer(self) -> list[str]:
        params = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            params.append("server_no_context_takeover")
        if self.server_max_window_bits is not None:
            params.append(f"server_max_window_bits={self.server_max_window_bits}")
        # Client-to-server traffic (subscriptions, pongs) is small: promising no context takeover costs
        # nearly nothing and lets servers that require it accept this offer.
        params.append("client_no_context_takeover")
        if self.client_max_window_bits is True:
            params.append("client_max_window_bits")
        elif self.client_max_window_bits:
            params.append(f"client_max_window_bits={self.client_max_window_bits}")
        return params

    def offers(self) -> list[str]:
        """``Sec-WebSocket-Extensions`` offers, most preferred first (RFC 7692 §5.1).

        The first carries every requested parameter plus ``client_no_context_takeover`` and
        ``client_max_window_bits``; the last is the plain ``permessage-deflate`` that every compliant
        server accepts.
        """
        first = "; ".join(self._first_offer())
        plain = (
            EXTENSION_NAME
            if not self.client_no_context_takeover
            else (f"{EXTENSION_NAME}; client_no_context_takeover")
        )
        return [first] if first == plain else [first, plain]

    def negotiate(self, header_values: list[str]) -> Negotiated | None:
        """Check the server's ``Sec-WebSocket-Extensions`` answer (RFC 7692 §7.1); ``None`` if it
        accepted no permessage-deflate offer.

        Raises:
            NegotiationError: unknown or duplicate parameters, values out of range, parameters answering
                nothing we offered, more than one permessage-deflate element.
        """
        accepted = [params for name, params in parse_extensions(header_values) if name == EXTENSION_NAME]
        if not accepted:
            return None
        if len(accepted) > 1:
            raise NegotiationError("the server accepted permessage-deflate more than once")
        response: dict[str, str | None] = {}
        for key, value in accepted[0]:
            if key not in PARAMETERS:
                raise NegotiationError(f"unknown permessage-deflate parameter {key!r}")
            if key in response:
                raise NegotiationError(f"duplicate permessage-deflate parameter {key!r}")
            if key.endswith("no_context_takeover") and value is not None:
                raise NegotiationError(f"{key} takes no value, got {value!r}")
            response[key] = value
        server_bits = DEFAULT_WINDOW_BITS
        if "server_max_window_bits" in response:
            server_bits = _window_bits("server_max_window_bits", response["server_max_window_bits"])
        client_bits = (
            DEFAULT_WINDOW_BITS
            if self.client_max_window_bits is True
            else (self.client_max_window_bits or DEFAULT_WINDOW_BITS)
        )
        if "client_max_window_bits" in response:
            # §7.1.2.2: only when the offer had it; the value must not exceed what we offered.
            if self.client_max_window_bits is False:
                raise NegotiationError("client_max_window_bits in the answer, but it was not offered")
            client_bits = _window_bits("client_max_window_bits", response["client_max_window_bits"])
            offered = self.client_max_window_bits
            if not isinstance(offered, bool) and client_bits > offered:
                raise NegotiationError(f"client_max_window_bits={client_bits} exceeds the offered {offered}")
        # A server_max_window_bits above what the first offer asked for can only answer the plain offer;
        # either way the inflater uses the window the server announced.
        return Negotiated(
            server_no_context_takeover="server_no_context_takeover" in response,
            # Our first offer promised no context takeover; keeping the promise whichever offer the
            # server took is always safe (the server may have relied on the hint, RFC 7692 §7.1.1.2).
            client_no_context_takeover=True,
            server_max_window_bits=server_bits,
            client_max_window_bits=client_bits,
            compress_threshold=self.compress_threshold,
            level=self.level,
            mem_level=self.mem_level,
            zlib_backend=self.zlib_backend,
        )


class Compressor:
    """Compresses outgoing messages for permessage-deflate (RFC 7692 §7.2.1)."""

    def __init__(self, negotiated: Negotiated) -> None:
        self._negotiated = negotiated
        self._threshold = negotiated.compress_threshold
        # zlib cannot honour a 256-byte window (client_max_window_bits=8): then nothing is compressed,
        # which RFC 7692 §6 allows message by message.
        self._enabled = negotiated.client_max_window_bits >= 9
        self._compressor: Any = None

    def compress(self, payload: bytes) -> bytes | None:
        """The compressed payload (tail removed), or ``None`` to send this message uncompressed."""
        if not self._enabled or len(payload) < self._threshold:
            return None
        negotiated = self._negotiated
        if self._compressor is None or negotiated.client_no_context_takeover:
            self._compressor = negotiated.zlib_backend.compressobj(
                negotiated.level,
                negotiated.zlib_backend.DEFLATED,
                -negotiated.client_max_window_bits,
                negotiated.mem_level,
            )
        data: bytes = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(TAIL):
            data = data[: -len(TAIL)]
        return data


def inflate(
    data: bytes | bytearray | memoryview,
    *,
    format: str = "auto",
    max_size: int | None = 64 * 2**20,
    zlib_backend: ModuleType = zlib,
) -> bytes:
    """Decompress an exchange's application-level compressed payload (inside a BINARY message).

    Some exchanges compress each message themselves instead of negotiating permessage-deflate: gzip
    (Huobi/HTX), raw DEFLATE (OKX v3), zlib streams. ``format`` is ``"gzip"``, ``"zlib"``, ``"raw"`` or
    ``"auto"`` (gzip or zlib by their headers, raw DEFLATE otherwise). The same pluggable backend as
    permessage-deflate is used, and *max_size* bounds the output, so a small hostile payload cannot
    expand into unbounded memory.

    Raises:
        ValueError: an unknown *format*, or data that does not decompress in that format.
        MessageTooBigError: the output would exceed *max_size* (close code 1009).
    """
    view = memoryview(data)
    if format == "auto":
        head = bytes(view[:2])
        if head[:2] == b"\x1f\x8b":
            format = "gzip"
        elif len(head) == 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
            format = "zlib"
        else:
            format = "raw"
    wbits = {"gzip": 16 + 15, "zlib": 15, "raw": -15}.get(format)
    if wbits is None:
        raise ValueError(f"format must be 'auto', 'gzip', 'zlib' or 'raw', not {format!r}")
    inflater = zlib_backend.decompressobj(wbits)
    try:
        output: bytes = inflater.decompress(view, 0 if max_size is None else max_size + 1)
        if max_size is None:
            output += inflater.flush()
    except Exception as exc:  # zlib.error, or the backend's equivalent
        raise ValueError(f"not valid {format} data: {exc}") from None
    if max_size is not None and len(output) > max_size:
        from .exceptions import MessageTooBigError

        raise MessageTooBigError(f"payload inflates to more than max_size={max_size} bytes")
    return output
