"""The wsfast exception tree.

Every error that the protocol core detects in what the server sent is a :class:`ProtocolError` carrying the
close code the client must send when it fails the connection (RFC 6455 §7.4.1), so the I/O layers never have
to decide it again::

    WebSocketError
    └── ProtocolError                 1002  the peer broke RFC 6455
        ├── InvalidUTF8Error          1007  a text message or close reason is not UTF-8 (RFC 6455 §8.1)
        └── MessageTooBigError        1009  a message is larger than ``max_message_size`` (RFC 6455 §10.4)

Arguments that the *caller* gets wrong (an invalid close code to send, a control payload over 125 bytes)
raise the built-in ``ValueError`` / ``TypeError`` instead: they are programming errors, not protocol events.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "InvalidUTF8Error",
    "MessageTooBigError",
    "ProtocolError",
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


class MessageTooBigError(ProtocolError):
    """A message would exceed ``max_message_size`` (RFC 6455 §10.4): close code 1009.

    Raised when the frame header *declares* the excess, before any of its payload is buffered, so a
    hostile length claim never allocates memory.
    """

    close_code: ClassVar[int] = 1009
