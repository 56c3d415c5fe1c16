"""wsfast: the fastest correct WebSocket client for Python.

The hot path (frame parsing, masking, UTF-8 validation, reassembly) is compiled from Cython; every compiled
module has a pure-Python twin with identical behaviour. :data:`implementation` says which one is loaded
(``"cython"`` or ``"python"``); ``WSFAST_NO_EXTENSIONS=1`` forces the pure twins.
"""

from __future__ import annotations

from . import codec
from .__version__ import __version__
from ._impl import implementation
from .exceptions import InvalidUTF8Error, MessageTooBigError, ProtocolError, WebSocketError
from .frames import Close, CloseCode, Opcode, Ping, Pong

__all__ = [
    "Close",
    "CloseCode",
    "InvalidUTF8Error",
    "MessageTooBigError",
    "Opcode",
    "Ping",
    "Pong",
    "ProtocolError",
    "WebSocketError",
    "__version__",
    "codec",
    "implementation",
]
