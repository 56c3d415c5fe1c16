"""RFC 6455 vocabulary: opcodes, close codes and the control-frame events the decoder returns.

Data messages are returned as plain ``str`` (TEXT) and ``bytes`` (BINARY); control frames as the small
immutable objects :class:`Ping`, :class:`Pong` and :class:`Close`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MAX_CONTROL_PAYLOAD",
    "Close",
    "CloseCode",
    "Opcode",
    "Ping",
    "Pong",
    "is_valid_close_code",
]

# RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2, §11.8). Values 3-7 and 11-15 are reserved."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry, §11.7)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


def is_valid_close_code(code: int) -> bool:
    """Whether *code* may appear in a CLOSE frame on the wire (RFC 6455 §7.4).

    1000-1003 and 1007-1014 are defined codes; 3000-4999 belong to libraries, frameworks and applications.
    1004 is reserved, and 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame".
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class Ping:
    """A PING control frame; answer it with a PONG carrying the same payload (RFC 6455 §5.5.2)."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    """A PONG control frame (RFC 6455 §5.5.3)."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Close:
    """A CLOSE control frame (RFC 6455 §5.5.1).

    An empty close payload is reported as ``Close(CloseCode.NO_STATUS_RCVD, "")``: 1005 is what RFC 6455
    §7.1.5 says the status "is considered to be"; it is never sent on the wire.
    """

    code: int = CloseCode.NO_STATUS_RCVD
    reason: str = ""
