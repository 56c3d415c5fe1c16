"""The client side of the opening handshake (RFC 6455 §4.1-4.2), sans-I/O.

:class:`ClientHandshake` builds the upgrade request and checks the server's answer. The I/O layer sends
:meth:`ClientHandshake.request`, feeds what it reads to :meth:`ClientHandshake.receive` until that returns a
result, and then either starts the WebSocket connection (:class:`Accepted`) or follows a
:class:`Redirect` with a new handshake to ``redirect.url``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence

from .deflate import Deflate, Negotiated, NegotiationError
from .exceptions import HandshakeError, InvalidHeader, InvalidStatus
from .http11 import Headers, Response, ResponseParser
from .uri import WebSocketURL, parse_url

__all__ = [
    "GUID",
    "Accepted",
    "ClientHandshake",
    "Redirect",
    "accept_key",
    "generate_key",
    "without_credentials",
]

# RFC 6455 §1.3: the GUID appended to the key before hashing.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def generate_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes from ``os.urandom``, base64-encoded (§4.1)."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must answer *key* with (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The server accepted the upgrade.

    Attributes:
        response: the 101 response.
        subprotocol: the subprotocol the server chose, or ``None``.
        extensions: the ``Sec-WebSocket-Extensions`` values the server accepted, as sent.
        leftover: bytes that followed the response: the first WebSocket frames.
        compression: the permessage-deflate parameters in force, or ``None`` (RFC 7692).
    """

    response: Response
    subprotocol: str | None
    extensions: list[str]
    leftover: bytes
    compression: Negotiated | None = None


@dataclasses.dataclass(frozen=True)
class Redirect:
    """The server redirected the upgrade request to :attr:`url` (a 301/302/303/307/308)."""

    response: Response
    url: WebSocketURL


def to_deflate(compression: Deflate | str | None) -> Deflate | None:
    """The ``compression=`` option of the clients: ``None``, ``"deflate"`` or a :class:`Deflate`."""
    if compression is None or isinstance(compression, Deflate):
        return compression
    if compression in ("deflate", "permessage-deflate"):
        return Deflate()
    raise ValueError(f"compression must be None, 'deflate' or a wsfast.Deflate, not {compression!r}")


CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def without_credentials(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """*headers* minus those that carry credentials, for a redirect to another origin."""
    return [(name, value) for name, value in headers if name.lower() not in CREDENTIAL_HEADERS]


def _header_tokens(values: Iterable[str]) -> list[str]:
    return [token.strip().lower() for value in values for token in value.split(",") if token.strip()]


class ClientHandshake:
    """One upgrade request and the checks of its response.

    Args:
        url: a ``ws://``/``wss://`` URL or a parsed :class:`~wsfast.uri.WebSocketURL`.
        headers: extra request headers, sent as given (they override the defaults, except the four
            handshake headers the RFC fixes).
        subprotocols: offered in ``Sec-WebSocket-Protocol``, in order of preference.
        extensions: ``Sec-WebSocket-Extensions`` offers, each a complete header value.
        origin: the ``Origin`` header, if any.
        user_agent: the ``User-Agent`` header; ``None`` to send none.
        authorization: the ``Authorization`` value to send unless *headers* has one; if ``None`` and the
            URL has user information, Basic auth is built from it.
        compression: offer permessage-deflate (:class:`~wsfast.deflate.Deflate`; ``"deflate"`` for the
            defaults); the server's answer is checked against RFC 7692 §7.
    """

    def __init__(
        self,
        url: str | WebSocketURL,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[str] = (),
        origin: str | None = None,
        user_agent: str | None = None,
        authorization: str | None = None,
        compression: Deflate | str | None = None,
    ) -> None:
        self.url = parse_url(url) if isinstance(url, str) else url
        self.compression = to_deflate(compression)
        if self.compression is not None:
            extensions = [*self.compression.offers(), *extensions]
        self.key = generate_key()
        self.subprotocols = list(subprotocols)
        self.extensions = list(extensions)
        self._parser = ResponseParser()
        request = Headers()
        request["Host"] = self.url.host_header
        if user_agent:
            request["User-Agent"] = user_agent
        if origin:
            request["Origin"] = origin
        if self.subprotocols:
            request["Sec-WebSocket-Protocol"] = ", ".join(self.subprotocols)
        if self.extensions:
            request["Sec-WebSocket-Extensions"] = ", ".join(self.extensions)
        extra = Headers(headers or ()).raw_items()
        for name in {name.lower() for name, _ in extra}:
            if name in request:
                del request[name]  # a caller's header replaces the default of the same name
        for name, value in extra:
            request.add(name, value)  # repeated fields are sent as given
        if "Authorization" not in request:
            if authorization is None and self.url.username is not None:
                credentials = f"{self.url.username}:{self.url.password or ''}".encode()
                authorization = "Basic " + base64.b64encode(credentials).decode()
            if authorization is not None:
                request["Authorization"] = authorization
        # RFC 6455 §4.1, items 5-9: these are the handshake itself, never overridden.
        request["Upgrade"] = "websocket"
        request["Connection"] = "Upgrade"
        request["Sec-WebSocket-Key"] = self.key
        request["Sec-WebSocket-Version"] = "13"
        self.headers = request

    def request(self) -> bytes:
        """The HTTP/1.1 GET upgrade request (RFC 6455 §4.1)."""
        lines = [f"GET {self.url.resource} HTTP/1.1"]
        for name, value in self.headers.raw_items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def receive(self, data: bytes) -> Accepted | Redirect | None:
        """Feed bytes of the response; return the outcome once the response is complete.

        Raises:
            InvalidHTTP: the response is malformed or too large.
            InvalidStatus: the server refused (the error has the status, headers and body).
            InvalidHeader: a 101 whose headers break RFC 6455 §4.1.
        """
        response = self._parser.feed(data)
        return None if response is None else self._check(response)

    def receive_eof(self) -> Accepted | Redirect:
        """The server closed the connection during the handshake.

        Raises:
            InvalidHTTP, InvalidStatus, InvalidHeader: as for :meth:`receive`.
        """
        return self._check(self._parser.feed_eof())

    def _check(self, response: Response) -> Accepted | Redirect:
        status, headers = response.status, response.headers
        if status in REDIRECT_STATUSES and "Location" in headers:
            return Redirect(response, self.url.join(headers["Location"]))
        if status != 101:
            raise InvalidStatus(
                f"server rejected the WebSocket upgrade: HTTP {status} {response.reason}".rstrip(),
                status,
                headers,
                response.body,
            )

        def invalid(message: str) -> HandshakeError:
            return InvalidHeader(message, status, headers, response.body)

        # RFC 6455 §4.1, client requirements 2-6 on the server's response.
        if "websocket" not in _header_tokens(headers.get_all("Upgrade")):
            raise invalid(f"missing or invalid Upgrade header: {headers.get('Upgrade')!r}")
        if "upgrade" not in _header_tokens(headers.get_all("Connection")):
            raise invalid(f"missing or invalid Connection header: {headers.get('Connection')!r}")
        accept = headers.get_all("Sec-WebSocket-Accept")
        if accept != [accept_key(self.key)]:
            raise invalid(f"missing or wrong Sec-WebSocket-Accept: {accept!r}")
        extensions = headers.get_all("Sec-WebSocket-Extensions")
        offered = {offer.split(";")[0].strip().lower() for offer in self.extensions}
        for value in extensions:
            for extension in value.split(","):
                name = extension.split(";")[0].strip().lower()
                if name and name not in offered:
                    raise invalid(f"server accepted extension {name!r}, which was not offered")
        negotiated = None
        if self.compression is not None:
            try:
                negotiated = self.compression.negotiate(extensions)
            except NegotiationError as exc:
                raise invalid(f"invalid permessage-deflate answer: {exc}") from None
        protocols = headers.get_all("Sec-WebSocket-Protocol")
        subprotocol = None
        if protocols:
            if len(protocols) > 1 or "," in protocols[0]:
                raise invalid(f"server chose more than one subprotocol: {protocols!r}")
            subprotocol = protocols[0].strip()
            if subprotocol not in self.subprotocols:
                raise invalid(f"server chose subprotocol {subprotocol!r}, which was not offered")
        return Accepted(response, subprotocol, extensions, self._parser.leftover, negotiated)
