"""wsfast: the fastest correct WebSocket client for Python.

The hot path (frame parsing, masking, UTF-8 validation, reassembly) is compiled from Cython; every compiled
module has a pure-Python twin with identical behaviour. :data:`implementation` says which one is loaded
(``"cython"`` or ``"python"``); ``WSFAST_NO_EXTENSIONS=1`` forces the pure twins.

* :class:`WebSocketClient`: the threaded client (callbacks on an event thread).
* :func:`connect`: the asyncio client (``async with wsfast.connect(url) as ws``), imported on first use.
* :mod:`wsfast.sync`: the blocking client (``with wsfast.sync.connect(url) as ws``, ``ws.recv()``), over
  the threaded client, imported on first use.
* :mod:`wsfast.codec`: the sans-I/O frame codec; :mod:`wsfast.protocol`: the connection state machine.
* :class:`Connection`: a named endpoint with validated options (:mod:`wsfast.options`), built from a URL
  (:func:`connection_from_url`) or a file (:func:`load_connections`); :mod:`wsfast.events`: socket events
  and usage statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import codec, options
from .__version__ import __version__
from ._impl import implementation
from .client import WebSocketClient
from .deflate import Deflate, inflate
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    IdleTimeout,
    InvalidCompressedDataError,
    InvalidHeader,
    InvalidHTTP,
    InvalidStatus,
    InvalidURL,
    InvalidUTF8Error,
    KeepaliveTimeout,
    MessageDecodeError,
    MessageTooBigError,
    OpeningError,
    OpenTimeout,
    OptionError,
    OptionTypeError,
    ProtocolError,
    ProxyError,
    TLSError,
    TooManyRedirects,
    WebSocketError,
)
from .frames import Close, CloseCode, Opcode, Ping, Pong
from .health import Disconnected, Reconnected, ReconnectPolicy, Stats
from .protocol import FrameAction

if TYPE_CHECKING:
    from . import events, sync
    from .asyncio import OverflowPolicy, WebSocket, connect
    from .connection import (
        Connection,
        PingResult,
        connection_from_url,
        connections_from_env,
        load_connections,
        register_scheme,
    )

__all__ = [
    "Close",
    "CloseCode",
    "ConcurrencyError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Deflate",
    "Disconnected",
    "FrameAction",
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
    "Opcode",
    "OpenTimeout",
    "OpeningError",
    "OptionError",
    "OptionTypeError",
    "OverflowPolicy",
    "Ping",
    "PingResult",
    "Pong",
    "ProtocolError",
    "ProxyError",
    "ReconnectPolicy",
    "Reconnected",
    "Stats",
    "TLSError",
    "TooManyRedirects",
    "WebSocket",
    "WebSocketClient",
    "WebSocketError",
    "__version__",
    "codec",
    "connect",
    "connection_from_url",
    "connections_from_env",
    "events",
    "implementation",
    "inflate",
    "load_connections",
    "options",
    "register_scheme",
    "sync",
]

_ASYNCIO_NAMES = frozenset({"connect", "WebSocket", "OverflowPolicy"})
_CONNECTION_NAMES = frozenset(
    {
        "Connection",
        "PingResult",
        "connection_from_url",
        "connections_from_env",
        "load_connections",
        "register_scheme",
    }
)


def __getattr__(name: str) -> Any:
    # The asyncio client is imported on first use, so threaded users never pay for importing asyncio;
    # so are the connection objects and the event classes, for those who never use them.
    if name in _ASYNCIO_NAMES:
        from . import asyncio as _asyncio_client

        return getattr(_asyncio_client, name)
    if name in _CONNECTION_NAMES:
        from . import connection as _connection

        return getattr(_connection, name)
    if name in ("events", "sync"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'wsfast' has no attribute {name!r}")
