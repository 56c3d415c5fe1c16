"""The wsfast exception tree.

Every error that the protocol core detects in what the server sent is a :class:`ProtocolError` carrying the
close code the client must send when it fails the connection (RFC 6455 §7.4.1), so the I/O layers never have
to decide it again::

    WebSocketError
    ├── ProtocolError                 1002  the peer broke RFC 6455
    │   ├── InvalidUTF8Error          1007  a text message or close reason is not UTF-8 (RFC 6455 §8.1)
    │   ├── InvalidCompressedDataError 1007 a permessage-deflate message does not inflate (RFC 7692)
    │   └── MessageTooBigError        1009  a message is larger than ``max_message_size`` (RFC 6455 §10.4)
    ├── InvalidURL                          not a ws:// or wss:// URL (also a ValueError)
    ├── OptionError                         an unknown client option or a bad value (also a ValueError)
    │   └── OptionTypeError                 an option value of the wrong type (also a TypeError)
    ├── HandshakeError                      the opening handshake failed; carries status, headers, body
    │   ├── InvalidStatus                   the server did not answer 101
    │   ├── InvalidHeader                   a 101 whose headers break RFC 6455 §4.1
    │   ├── InvalidHTTP                     malformed or oversized HTTP response
    │   └── TooManyRedirects                more redirects than ``max_redirects``
    ├── OpeningError                        TCP, TLS or a proxy failed while opening (also an OSError);
    │   │                                   ``hop`` says where: "proxy" or "server"
    │   ├── OpenTimeout                     the opening took longer than ``open_timeout`` (a TimeoutError)
    │   ├── TLSError                        the TLS handshake failed (certificate, protocol)
    │   └── ProxyError                      the proxy refused or broke its protocol (also a HandshakeError)
    ├── ConcurrencyError                    two readers at once, or a call from the wrong thread or loop
    ├── MessageDecodeError                  a ``loads`` hook failed on one text message (not fatal)
    └── ConnectionClosed                    the connection is closed: code, reason, close_received
        ├── ConnectionClosedOK              a normal closing handshake (1000, 1001 or no status)
        └── ConnectionClosedError           anything else

Arguments that the *caller* gets wrong (an invalid close code to send, a control payload over 125 bytes)
raise the built-in ``ValueError`` / ``TypeError`` instead: they are programming errors, not protocol events.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "IdleTimeout",
    "InvalidCompressedDataError",
    "InvalidHTTP",
    "InvalidHeader",
    "InvalidStatus",
    "InvalidURL",
    "InvalidUTF8Error",
    "KeepaliveTimeout",
    "MessageDecodeError",
    "MessageTooBigError",
    "OpenTimeout",
    "OpeningError",
    "OptionError",
    "OptionTypeError",
    "ProtocolError",
    "ProxyError",
    "TLSError",
    "TooManyRedirects",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Base class of every exception wsfast raises on purpose."""


class ProtocolError(WebSocketError):
    """The server violated RFC 6455; the connection must be failed with :attr:`close_code`.

    Attributes:
        close_code: the status code to send in the CLOSE frame that fails the connection.
        messages: what the same ``Decoder.feed()`` call decoded *before* the offending frame, in wire order.
            RFC 6455 processes frames in order, so a caller delivers these first and then fails the
            connection.
    """

    close_code: ClassVar[int] = 1002

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.messages: list[object] = []


class InvalidUTF8Error(ProtocolError):
    """A text message or a close reason is not valid UTF-8 (RFC 6455 §8.1): close code 1007."""

    close_code: ClassVar[int] = 1007


class InvalidCompressedDataError(ProtocolError):
    """A permessage-deflate message is not a valid DEFLATE stream (RFC 7692 §7.2.2): close code 1007."""

    close_code: ClassVar[int] = 1007


class MessageTooBigError(ProtocolError):
    """A message would exceed ``max_message_size`` (RFC 6455 §10.4): close code 1009.

    Raised when the frame header *declares* the excess, before any of its payload is buffered, so a
    hostile length claim never allocates memory; for a compressed message, also as soon as inflating it
    produces more than the limit, so a small hostile frame can never expand into unbounded memory.
    """

    close_code: ClassVar[int] = 1009


class MessageDecodeError(WebSocketError):
    """The ``loads`` hook raised on a text message; the connection itself is fine.

    The decoder puts this object in its output in place of the message, so that one message the
    application cannot parse neither kills the connection nor disappears. ``recv()`` and ``async for``
    raise it; callbacks (the threaded client's, the asyncio ``on_message``) never receive it: it is logged
    and skipped. Both clients count it in ``stats().decode_errors``.

    Attributes:
        payload: the message's bytes (valid UTF-8). ``__cause__`` is the exception *loads* raised.
    """

    def __init__(self, message: str, payload: bytes = b"") -> None:
        super().__init__(message)
        self.payload = payload


class InvalidURL(WebSocketError, ValueError):
    """The URL is not a ``ws://`` or ``wss://`` URL wsfast can connect to (RFC 6455 §3)."""


class OptionError(WebSocketError, ValueError):
    """A client or connection option is unknown (the message names the closest matches) or its value is
    out of range or not among the allowed values (see :mod:`wsfast.options`)."""


class OptionTypeError(OptionError, TypeError):
    """A client or connection option has a value of the wrong type (also a ``TypeError``)."""


class HandshakeError(WebSocketError):
    """The opening handshake failed (RFC 6455 §4.1-4.2).

    Attributes:
        status: the HTTP status code the server answered with (``None`` if no response was parsed).
        headers: the response headers (a :class:`~wsfast.http11.Headers`, empty if none).
        body: the start of the response body (at most ``MAX_BODY_SIZE`` bytes), so a person can see why
            the server said no.
    """

    def __init__(
        self, message: str, status: int | None = None, headers: Any = None, body: bytes = b""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers if headers is not None else {}
        self.body = body


class InvalidStatus(HandshakeError):
    """The server answered the upgrade request with a status other than 101 (and not a redirect we follow)."""


class InvalidHeader(HandshakeError):
    """A 101 response whose headers break RFC 6455 §4.1 (Upgrade, Connection, Sec-WebSocket-Accept,
    a subprotocol or an extension the client did not offer)."""


class InvalidHTTP(HandshakeError):
    """The response is not well-formed HTTP/1.1, or exceeds the size limits on its head or body."""


class TooManyRedirects(HandshakeError):
    """The server redirected the upgrade request more than ``max_redirects`` times."""


class OpeningError(WebSocketError, ConnectionError):
    """The connection could not be opened: the TCP connection, TLS or a proxy failed.

    It is also an ``OSError`` (a ``ConnectionError``), so code that catches socket errors still catches it;
    the original error is its ``__cause__``.

    Attributes:
        hop: where it failed: ``"proxy"`` (the proxy, or the tunnel through it) or ``"server"``.
        stage: what failed: ``"connect"`` (TCP or a Unix socket), ``"tls"``, ``"proxy"`` (the proxy's
            CONNECT or SOCKS exchange) or ``"handshake"`` (reading the upgrade response).
    """

    def __init__(self, message: str, *, hop: str = "server", stage: str = "connect") -> None:
        super().__init__(message)
        self.hop = hop
        self.stage = stage


class OpenTimeout(OpeningError, TimeoutError):
    """Opening the connection (TCP, TLS, proxies, the upgrade, redirects) took longer than
    ``open_timeout`` seconds (also a ``TimeoutError``)."""


class TLSError(OpeningError):
    """The TLS handshake with the server or an HTTPS proxy failed (a certificate that does not verify,
    no shared protocol); the ``ssl.SSLError`` is its ``__cause__``."""


class ProxyError(OpeningError, HandshakeError):
    """The proxy refused the tunnel or broke its protocol (HTTP CONNECT, SOCKS4/4a/5).

    Attributes:
        status: the HTTP status of a refused CONNECT (407: credentials needed), or the SOCKS reply code;
            ``None`` when the proxy broke its protocol.
        headers, body: the proxy's HTTP answer, for a refused CONNECT.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        headers: Any = None,
        body: bytes = b"",
        *,
        hop: str = "proxy",
        stage: str = "proxy",
    ) -> None:
        OpeningError.__init__(self, message, hop=hop, stage=stage)
        self.status = status
        self.headers = headers if headers is not None else {}
        self.body = body


class ConcurrencyError(WebSocketError, RuntimeError):
    """The connection was used in a way it cannot serve: two ``recv()`` calls waiting at once, or a
    method called from another thread or event loop than the one that owns the connection (also a
    ``RuntimeError``)."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; raised by operations that need an open connection.

    Attributes:
        code: the close code received from the server, or 1006 if the connection ended without a CLOSE
            frame (RFC 6455 §7.1.5).
        reason: the close reason received, or a description of what went wrong.
        close_received: whether the server sent a CLOSE frame.
    """

    def __init__(self, code: int, reason: str = "", close_received: bool = False) -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
        self.close_received = close_received


class ConnectionClosedOK(ConnectionClosed):
    """The connection was closed normally (1000 or 1001, or an empty CLOSE) after a closing handshake."""


class ConnectionClosedError(ConnectionClosed):
    """The connection was closed with an error, or without a complete closing handshake."""


class KeepaliveTimeout(ConnectionClosedError, TimeoutError):
    """No frame completed within ``ping_timeout`` of a keepalive PING: the connection was presumed dead
    and failed with 1011 (RFC 6455 §5.5.2 makes the PONG mandatory; any complete frame proves the peer
    alive, the bytes of an unfinished one do not)."""

    def __init__(self, code: int, reason: str = "", close_received: bool = False) -> None:
        ConnectionClosedError.__init__(self, code, reason, close_received)


class IdleTimeout(ConnectionClosedError, TimeoutError):
    """No data message arrived within ``idle_timeout`` (the server may still answer PINGs), and there was
    neither an ``on_idle`` hook nor ``reconnect``: wsfast closed the connection (1001)."""

    def __init__(self, code: int, reason: str = "", close_received: bool = False) -> None:
        ConnectionClosedError.__init__(self, code, reason, close_received)
