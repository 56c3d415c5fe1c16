"""Just enough HTTP/1.1 for the opening handshake: case-insensitive headers and a bounded response parser.

The parser is sans-I/O (bytes in, a :class:`Response` out) and bounds everything a hostile server controls:
the size of the head, the number of headers and the size of the body kept for diagnostics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, MutableMapping

from .exceptions import InvalidHTTP

__all__ = ["MAX_BODY_SIZE", "MAX_HEADERS", "MAX_HEAD_SIZE", "Headers", "Response", "ResponseParser"]

MAX_HEAD_SIZE = 64 * 1024  # status line and headers, in bytes
MAX_HEADERS = 256
MAX_BODY_SIZE = 64 * 1024  # of an error response's body, kept to explain a refusal


class Headers(MutableMapping[str, str]):
    """HTTP headers: case-insensitive names, repeated fields kept in order.

    ``headers[name]`` joins repeated fields with ``", "`` (RFC 9110 §5.3); :meth:`get_all` lists them.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        pairs = items.items() if isinstance(items, Mapping) else items
        for name, value in pairs:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any earlier field of the same name."""
        self._items.append((name, value))

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [value for field, value in self._items if field.lower() == key]

    def raw_items(self) -> list[tuple[str, str]]:
        """Every field in order, with the names' original case."""
        return list(self._items)

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name: str, value: str) -> None:
        self._items = [item for item in self._items if item[0].lower() != name.lower()]
        self._items.append((name, value))

    def __delitem__(self, name: str) -> None:
        kept = [item for item in self._items if item[0].lower() != name.lower()]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(field.lower() == name.lower() for field, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for field, _ in self._items:
            if field.lower() not in seen:
                seen.add(field.lower())
                yield field

    def __len__(self) -> int:
        return len({field.lower() for field, _ in self._items})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted((k.lower(), v) for k, v in self._items) == sorted(
                (k.lower(), v) for k, v in other._items
            )
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclasses.dataclass
class Response:
    """An HTTP response to the upgrade request."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    http_version: str = "HTTP/1.1"


class ResponseParser:
    """Parses one HTTP/1.1 response head, and for non-101 answers a bounded part of the body.

    :meth:`feed` returns the :class:`Response` once it is complete, else ``None``; :attr:`leftover` then
    holds the bytes that followed the head (for a 101, the first WebSocket frames).
    """

    def __init__(
        self,
        max_head_size: int = MAX_HEAD_SIZE,
        max_body_size: int = MAX_BODY_SIZE,
        *,
        connect: bool = False,
    ) -> None:
        self._connect = connect  # the response to a CONNECT: a 2xx has no body (RFC 9110 §9.3.6)
        self._max_head_size = max_head_size
        self._max_body_size = max_body_size
        self._buffer = bytearray()
        self._response: Response | None = None
        self._body_length: int | None = None  # bytes of body still wanted; None: until EOF
        self._chunked = False
        self.leftover = b""

    def feed(self, data: bytes) -> Response | None:
        """Add bytes from the server.

        Raises:
            InvalidHTTP: malformed, or the head is over ``max_head_size`` / has over ``MAX_HEADERS`` fields.
        """
        self._buffer += data
        if self._response is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._max_head_size:
                    raise InvalidHTTP(f"response head larger than {self._max_head_size} bytes")
                return None
            if end + 4 > self._max_head_size:
                raise InvalidHTTP(f"response head larger than {self._max_head_size} bytes")
            self._response = self._parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
            if not self._wants_body(self._response):
                self.leftover = bytes(self._buffer)
                self._buffer.clear()
                return self._response
        return self._read_body(eof=False)

    def feed_eof(self) -> Response:
        """The server closed the connection: return what was received.

        Raises:
            InvalidHTTP: the connection closed before a complete response head.
        """
        if self._response is None:
            raise InvalidHTTP(
                "connection closed before a complete HTTP response"
                + (f" (received {bytes(self._buffer[:200])!r})" if self._buffer else "")
            )
        response = self._read_body(eof=True)
        assert response is not None
        return response

    def _wants_body(self, response: Response) -> bool:
        status = response.status
        if status == 101 or 300 <= status < 400 or status in (204, 304) or status < 200:
            return False
        if self._connect and 200 <= status < 300:
            return False
        if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
            self._chunked = True
        elif "Content-Length" in response.headers:
            try:
                self._body_length = int(response.headers["Content-Length"])
            except ValueError:
                raise InvalidHTTP("invalid Content-Length") from None
        return True

    def _read_body(self, eof: bool) -> Response | None:
        response = self._response
        assert response is not None
        if self._chunked:
            body, done = _decode_chunked(bytes(self._buffer))
        else:
            body = bytes(self._buffer)
            done = self._body_length is not None and len(body) >= self._body_length
            if self._body_length is not None:
                body = body[: self._body_length]
        # The body is kept only to explain a refusal: stop at max_body_size bytes of it, and also once
        # twice that much was buffered, so chunk framing that never completes (a size line without its
        # CRLF, say) cannot grow the buffer until the handshake deadline.
        if done or eof or len(body) >= self._max_body_size or len(self._buffer) >= 2 * self._max_body_size:
            response.body = body[: self._max_body_size]
            return response
        return None

    @staticmethod
    def _parse_head(head: bytes) -> Response:
        try:
            text = head.decode("iso-8859-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise InvalidHTTP("undecodable response head") from None
        status_line, *lines = text.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        # isascii(): str.isdigit() also accepts digits like "³" that int() refuses (found by the fuzzer).
        if not version.startswith("HTTP/1.") or len(code) != 3 or not (code.isascii() and code.isdigit()):
            raise InvalidHTTP(f"invalid HTTP status line: {status_line[:200]!r}")
        if len(lines) > MAX_HEADERS:
            raise InvalidHTTP(f"more than {MAX_HEADERS} response headers")
        headers = Headers()
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or any(c in name for c in " \t"):
                raise InvalidHTTP(f"invalid HTTP header line: {line[:200]!r}")
            headers.add(name, value.strip(" \t"))
        return Response(int(code), reason, headers, http_version=version)


def _decode_chunked(data: bytes) -> tuple[bytes, bool]:
    """Decode as much of a chunked body as *data* holds; return it and whether the last chunk was seen."""
    body = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return bytes(body), False
        try:
            size = int(data[pos:end].split(b";")[0], 16)
        except ValueError:
            return bytes(body), True  # malformed: keep what we have, it is only diagnostics
        if size == 0:
            return bytes(body), True
        chunk = data[end + 2 : end + 2 + size]
        body += chunk
        if len(chunk) < size:
            return bytes(body), False
        pos = end + 2 + size + 2
