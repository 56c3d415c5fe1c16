"""Every client option, described once.

:data:`OPTIONS` is the single description of the options of every client: :class:`wsfast.WebSocketClient`
(``"threaded"``), :func:`wsfast.connect` (``"asyncio"``) and :class:`wsfast.sync.connect` (``"sync"``, the
blocking front-end over the threaded client). Each :class:`Option` has a name, a type, a
default, a description, a sensitive flag, its allowed values and the clients that accept it. That one table
drives:

* validation and coercion: :func:`validate` (unknown names are rejected with the closest matches, values
  are type-checked; with ``from_text=True`` strings from a config file, an environment variable or the
  command line are coerced, ``"5"`` to ``5.0`` for a timeout), used by both clients' constructors
  (through :class:`wsfast.config.Config`, which also holds the final values and what derives from them)
  and by :class:`wsfast.Connection`; :func:`check_names` gives unknown keyword arguments a "did you mean";
* :meth:`wsfast.Connection.options`, the ``wsfast`` command's help (``wsfast --help``, ``wsfast options``)
  and ``docs/options.md``, which ``python -m wsfast options --write docs/options.md`` writes (a test checks
  the committed file is up to date);
* a test that compares the table with both constructors' signatures (names and defaults).

Adding an option to a client is one :class:`Option` entry here plus the constructor parameter (and, if it
affects sockets, the one place in each driver that uses it).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import ssl as ssl_module
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from . import codec
from .__version__ import __version__
from .deflate import Deflate
from .exceptions import InvalidURL, OptionError, OptionTypeError
from .handshake import CREDENTIAL_HEADERS, to_deflate
from .health import DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, ReconnectPolicy
from .proxies import parse_proxy

__all__ = [
    "ASYNCIO",
    "CLIENTS",
    "OPTIONS",
    "REQUIRED",
    "THREADED",
    "AllowedValue",
    "Option",
    "authorization",
    "check_header",
    "check_names",
    "client_options",
    "get_option",
    "mask",
    "normalise_headers",
    "render_markdown",
    "render_text",
    "to_config",
    "validate",
    "write_docs",
]

THREADED = "threaded"  # wsfast.WebSocketClient
ASYNCIO = "asyncio"  # wsfast.connect
SYNC = "sync"  # wsfast.sync.connect: a blocking front-end over the threaded client
CLIENTS = (THREADED, ASYNCIO, SYNC)
CLIENT_NAMES = {THREADED: "wsfast.WebSocketClient", ASYNCIO: "wsfast.connect", SYNC: "wsfast.sync.connect"}
_ALL = frozenset(CLIENTS)
_ONLY_THREADED = frozenset({THREADED})
_CALLBACKS = frozenset({THREADED, ASYNCIO})  # the front-ends that deliver messages to a callback
_THREADS = frozenset({THREADED, SYNC})  # the front-ends whose I/O is the threaded client's
_QUEUES = frozenset({ASYNCIO, SYNC})  # the front-ends whose messages wait in a queue for recv()

DEFAULT_USER_AGENT = f"wsfast/{__version__}"
MASK = "********"


class _Required(enum.Enum):
    REQUIRED = "required"

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required.REQUIRED
"""The default of an option that has none (the threaded client's positional *callback*)."""


@dataclasses.dataclass(frozen=True)
class AllowedValue:
    """One of the values an option accepts, with what it means."""

    value: Any
    description: str


@dataclasses.dataclass(frozen=True)
class Option:
    """The description of one client option.

    Attributes:
        name: the keyword argument's name.
        type: the value type (a key of the type table: ``"float"``, ``"int"``, ``"bool"``, ``"str"``,
            ``"strings"``, ``"headers"``, ``"callable"``, ``"ssl"``, ``"proxy"``, ``"compression"``,
            ``"choice"``, ``"subscriber"``).
        default: the constructor's default (:data:`REQUIRED` if there is none).
        description: one paragraph for help texts and the docs.
        clients: the clients that accept it (:data:`THREADED`, :data:`ASYNCIO`).
        sensitive: its value is a secret, masked by :func:`mask` and :meth:`wsfast.Connection.info`.
        nullable: ``None`` is accepted.
        allowed: the accepted values, for options with a fixed set (checked by :func:`validate`).
        minimum: the smallest number accepted; *exclusive* makes it a strict bound.
        overrides: per-client differences, e.g. ``{"threaded": {"nullable": False}}``.
    """

    name: str
    type: str
    default: Any
    description: str
    clients: frozenset[str] = _ALL
    sensitive: bool = False
    nullable: bool = False
    allowed: tuple[AllowedValue, ...] = ()
    minimum: float | None = None
    exclusive: bool = False
    overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )

    def for_client(self, client: str) -> Option:
        """This option as *client* sees it (its overrides applied)."""
        changes = self.overrides.get(client)
        return dataclasses.replace(self, **changes) if changes else self

    @property
    def serialisable(self) -> bool:
        """Whether a configuration file can hold its value (callables and queues cannot)."""
        return _TYPES[self.type].serialisable

    @property
    def type_name(self) -> str:
        """The type as the docs show it."""
        name = _TYPES[self.type].display
        return f"{name} | None" if self.nullable and "None" not in name else name

    def validate(self, value: Any, *, from_text: bool = False) -> Any:
        """*value* checked and normalised for this option.

        Raises:
            OptionTypeError: the value has the wrong type (also a ``TypeError``).
            OptionError: the value is out of range or not among the allowed values (a ``ValueError``).
        """
        if value is None or (from_text and self.nullable and _is_null_text(value)):
            if self.nullable or self.default is None:
                return None
            raise OptionTypeError(f"option {self.name!r} may not be None ({self.type_name})")
        value = _TYPES[self.type].coerce(self, value, from_text)
        minimum = self.minimum
        if (
            minimum is not None
            and isinstance(value, (int, float))
            and (value < minimum or (self.exclusive and value == minimum))
        ):
            bound = "greater than" if self.exclusive else "at least"
            raise OptionError(f"{self.name} must be {bound} {minimum:g}, not {value!r}")
        if self.allowed and not isinstance(value, Deflate):
            values = [allowed.value for allowed in self.allowed]
            if value not in values:
                raise OptionError(f"option {self.name!r} must be one of {values!r}, not {value!r}")
        return value


# --------------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Type:
    display: str
    coerce: Callable[[Option, Any, bool], Any]
    to_config: Callable[[Any], Any] | None = None  # None: not serialisable

    @property
    def serialisable(self) -> bool:
        return self.to_config is not None


def _is_null_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("", "none", "null")


def _wrong_type(option: Option, value: Any) -> OptionTypeError:
    return OptionTypeError(
        f"option {option.name!r} must be {option.type_name}, not {type(value).__name__} ({value!r})"
    )


def _coerce_float(option: Option, value: Any, from_text: bool) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if from_text and isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise OptionError(f"option {option.name!r} must be a number, not {value!r}") from None
    raise _wrong_type(option, value)


def _coerce_int(option: Option, value: Any, from_text: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise OptionError(f"option {option.name!r} must be an integer, not {value!r}") from None
    if from_text and isinstance(value, float) and value.is_integer():
        return int(value)
    raise _wrong_type(option, value)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _coerce_bool(option: Option, value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise OptionError(
            f"option {option.name!r} must be true or false (yes/no, on/off, 1/0), not {value!r}"
        )
    if from_text and isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _wrong_type(option, value)


def _coerce_str(option: Option, value: Any, from_text: bool) -> str:
    if isinstance(value, str):
        return value
    raise _wrong_type(option, value)


def _coerce_strings(option: Option, value: Any, from_text: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        if not from_text:
            raise OptionTypeError(f"option {option.name!r} must be a sequence of str, not a single str")
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = tuple(value)
        if all(isinstance(item, str) for item in items):
            return items
    raise _wrong_type(option, value)


def _coerce_callable(option: Option, value: Any, from_text: bool) -> Callable[..., Any]:
    if callable(value):
        return value  # type: ignore[no-any-return]
    raise OptionTypeError(f"{option.name} must be callable, not {type(value).__name__}")


def _coerce_ssl(option: Option, value: Any, from_text: bool) -> ssl_module.SSLContext | bool:
    if isinstance(value, (bool, ssl_module.SSLContext)):
        return value
    if from_text and isinstance(value, str):
        return _coerce_bool(option, value, from_text)
    raise _wrong_type(option, value)


def _coerce_proxy(option: Option, value: Any, from_text: bool) -> str | bool:
    if value is True:
        return True
    if from_text and isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if not isinstance(value, str):
        raise _wrong_type(option, value)
    try:
        parse_proxy(value)  # the one proxy URL parser (wsfast.proxies); messages never show the password
    except InvalidURL as exc:
        raise OptionError(
            f"{exc}; or proxy=True to read HTTPS_PROXY/HTTP_PROXY/ALL_PROXY from the environment"
        ) from None
    return value


def _coerce_proxy_ssl(option: Option, value: Any, from_text: bool) -> ssl_module.SSLContext | bool:
    if value is False or isinstance(value, ssl_module.SSLContext):
        return value
    if from_text and isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise _wrong_type(option, value)


def _coerce_path(option: Option, value: Any, from_text: bool) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value:
        return value
    raise _wrong_type(option, value)


def _coerce_socket(option: Option, value: Any, from_text: bool) -> Any:
    # Duck-typed (socket.socket, or a wrapper with its methods): options.py imports no socket module.
    if all(callable(getattr(value, name, None)) for name in ("fileno", "recv", "send", "getpeername")):
        return value
    raise OptionTypeError(
        f"option {option.name!r} must be a connected socket.socket, not {type(value).__name__}"
    )


def _coerce_compression(option: Option, value: Any, from_text: bool) -> str | Deflate:
    if isinstance(value, Deflate):
        return value
    if isinstance(value, Mapping) and from_text:
        try:
            return Deflate(**value)
        except TypeError as exc:
            raise OptionError(f"option 'compression': {exc}") from None
    if isinstance(value, str):
        try:
            to_deflate(value)
        except ValueError as exc:
            raise OptionError(str(exc)) from None
        return value
    raise _wrong_type(option, value)


def _compression_config(value: Any) -> Any:
    if isinstance(value, Deflate):
        import zlib

        if value.zlib_backend is not zlib:
            raise OptionError("a Deflate with a zlib_backend other than zlib cannot be written to a config")
        return {
            field.name: getattr(value, field.name)
            for field in dataclasses.fields(value)
            if field.name != "zlib_backend"
        }
    return value


def _coerce_choice(option: Option, value: Any, from_text: bool) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return value.strip().lower() if from_text else value
    raise _wrong_type(option, value)


def _coerce_headers(option: Option, value: Any, from_text: bool) -> list[tuple[str, str]]:
    if from_text and isinstance(value, str):
        value = [value]
    if from_text and isinstance(value, (list, tuple)):
        value = [_parse_header_line(option, item) if isinstance(item, str) else item for item in value]
    try:
        return normalise_headers(value)
    except OptionError:
        raise
    except (TypeError, ValueError):
        raise OptionTypeError(
            f"option {option.name!r} must be a mapping of str to str or (name, value) pairs, not {value!r}"
        ) from None


def _parse_header_line(option: Option, line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep or not name.strip():
        raise OptionError(f"option {option.name!r}: a header must be 'Name: value', not {line!r}")
    return name.strip(), value.strip()


def _coerce_subscriber(option: Option, value: Any, from_text: bool) -> Any:
    if callable(value) or hasattr(value, "put_nowait"):
        return value
    raise OptionTypeError(
        f"option {option.name!r} must be a queue.Queue, an asyncio.Queue or a callable, not "
        f"{type(value).__name__}"
    )


def _coerce_reconnect(option: Option, value: Any, from_text: bool) -> bool | ReconnectPolicy:
    if isinstance(value, (bool, ReconnectPolicy)):
        return value
    if from_text and isinstance(value, str):
        return _coerce_bool(option, value, from_text)
    if from_text and isinstance(value, Mapping):
        try:
            return ReconnectPolicy(**value)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"option 'reconnect': {exc}") from None
    raise _wrong_type(option, value)


def _reconnect_config(value: Any) -> Any:
    if isinstance(value, ReconnectPolicy):
        return dataclasses.asdict(value)
    return value


def _identity(value: Any) -> Any:
    return value


def _ssl_config(value: Any) -> Any:
    if isinstance(value, ssl_module.SSLContext):
        raise OptionError("an ssl.SSLContext cannot be written to a config (write true or false instead)")
    return value


_TYPES: dict[str, _Type] = {
    "float": _Type("float", _coerce_float, _identity),
    "int": _Type("int", _coerce_int, _identity),
    "bool": _Type("bool", _coerce_bool, _identity),
    "str": _Type("str", _coerce_str, _identity),
    "strings": _Type("sequence of str", _coerce_strings, list),
    "headers": _Type(
        "mapping or (name, value) pairs", _coerce_headers, lambda value: [list(pair) for pair in value]
    ),
    "callable": _Type("callable", _coerce_callable),
    "ssl": _Type("ssl.SSLContext | bool | None", _coerce_ssl, _ssl_config),
    "proxy": _Type("str (URL) | True", _coerce_proxy, _identity),
    "proxy_ssl": _Type("ssl.SSLContext | False | None", _coerce_proxy_ssl, _ssl_config),
    "path": _Type("str | os.PathLike", _coerce_path, _identity),
    "socket": _Type("socket.socket", _coerce_socket),
    "compression": _Type("str | wsfast.Deflate | None", _coerce_compression, _compression_config),
    "choice": _Type("str", _coerce_choice, _identity),
    "subscriber": _Type("queue.Queue | asyncio.Queue | callable", _coerce_subscriber),
    "reconnect": _Type("bool | wsfast.ReconnectPolicy", _coerce_reconnect, _reconnect_config),
}


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------

OPTIONS: tuple[Option, ...] = (
    Option(
        "callback",
        "callable",
        REQUIRED,
        "Called on the event thread with each message: str for TEXT, bytes for BINARY (or what loads "
        "returns). The threaded client's first positional argument.",
        clients=_ONLY_THREADED,
        nullable=True,
    ),
    Option(
        "on_message",
        "callable",
        None,
        "Called with each message. Asyncio: inline from the protocol's data path (no queue, no task), the "
        "lowest latency; without it, read messages with WebSocket.recv() or async for. Threaded: the same "
        "as the positional callback, on the event thread (give one of the two, not both).",
        clients=_CALLBACKS,
        nullable=True,
    ),
    Option(
        "on_close",
        "callable",
        None,
        "on_close(code, reason), called exactly once and last however the connection ended: the "
        "server's code, the code wsfast failed the connection with, 1006 without a CLOSE frame.",
        clients=_ONLY_THREADED,
        nullable=True,
    ),
    Option(
        "on_ping",
        "callable",
        None,
        "on_ping(payload) replaces the automatic PONG; answer with pong().",
        nullable=True,
    ),
    Option("on_pong", "callable", None, "on_pong(payload), called for each PONG received.", nullable=True),
    Option(
        "raw_hook",
        "callable",
        None,
        "Sees every event (message, Ping, Pong, Close) before processing and returns a FrameAction.",
        clients=_ONLY_THREADED,
        nullable=True,
    ),
    Option(
        "headers",
        "headers",
        None,
        "Extra handshake headers: a mapping or (name, value) pairs; from text, 'Name: value' lines. "
        "Values of Authorization, Cookie and Proxy-Authorization are masked in info().",
        nullable=True,
    ),
    Option(
        "token",
        "str",
        None,
        "Sends 'Authorization: <token_type> <token>' unless headers has an Authorization header.",
        sensitive=True,
        nullable=True,
    ),
    Option("token_type", "str", "Bearer", "The scheme of the Authorization header made from token."),
    Option(
        "subprotocols",
        "strings",
        (),
        "Subprotocols offered in Sec-WebSocket-Protocol (RFC 6455 §4.1); from text, comma-separated.",
    ),
    Option("origin", "str", None, "The Origin header (RFC 6455 §4.1); none by default.", nullable=True),
    Option(
        "user_agent",
        "str",
        DEFAULT_USER_AGENT,
        "The User-Agent header; None sends none.",
        nullable=True,
    ),
    Option(
        "timeout",
        "float",
        15.0,
        "Seconds for each blocking socket operation (the handshake, each send).",
        clients=_THREADS,
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "connect_timeout",
        "float",
        None,
        "Seconds for each TCP connection attempt; None uses open_timeout.",
        clients=_THREADS,
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "open_timeout",
        "float",
        10.0,
        "Seconds for the whole opening together: TCP, TLS, the proxy, the upgrade and redirects; on "
        "expiry wsfast.OpenTimeout. None: no limit.",
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "close_timeout",
        "float",
        10.0,
        "Seconds the closing handshake may take (disconnect() / WebSocket.close()) before the TCP "
        "connection is closed regardless; None: no limit.",
        minimum=0,
        nullable=True,
    ),
    Option(
        "ssl",
        "ssl",
        None,
        "For wss:// URLs only: an ssl.SSLContext, True (the default context), or false to skip "
        "certificate verification. Verification is on by default. With a ws:// URL it is an OptionError "
        "(use a wss:// URL or leave ssl unset): never a silent plaintext connection.",
        nullable=True,
    ),
    Option(
        "server_hostname",
        "str",
        None,
        "The TLS server name (SNI and certificate check) when it differs from the URL's host.",
        nullable=True,
    ),
    Option(
        "proxy",
        "proxy",
        None,
        "A proxy URL scheme://[user:password@]host:port: http:// (CONNECT), https:// (TLS to the proxy, "
        "then CONNECT), socks4://, socks4a://, socks5:// (the client resolves the host), socks5h:// (the "
        "proxy resolves it); user:password@ is Basic auth for HTTP(S), RFC 1929 for SOCKS5, the user id "
        "for SOCKS4. True: from the environment (wss: HTTPS_PROXY, ws: HTTP_PROXY, then ALL_PROXY, "
        "lower-case names too; NO_PROXY honoured). None (the default): direct; a library never follows "
        "ambient proxy settings unasked. Its password is masked in info().",
        nullable=True,
    ),
    Option(
        "proxy_ssl",
        "proxy_ssl",
        None,
        "The ssl.SSLContext for an https:// proxy, or false to skip verifying the proxy's certificate. "
        "None: verified with the system's CAs.",
        nullable=True,
    ),
    Option(
        "unix_socket",
        "path",
        None,
        "A Unix socket path that replaces the TCP connection; the URL still gives the Host header and "
        "TLS (wss:// over a Unix socket does TLS with the URL's host name); with a proxy, the proxy's "
        "socket. Redirects to another origin are refused.",
        nullable=True,
    ),
    Option(
        "sock",
        "socket",
        None,
        "An already connected socket (to the server, or to the proxy when proxy is set): the opening "
        "starts on it. Redirects to another origin are refused; reconnecting needs a new socket, so "
        "reconnect cannot use it.",
        nullable=True,
    ),
    Option(
        "max_message_size",
        "int",
        codec.DEFAULT_MAX_MESSAGE_SIZE,
        "The largest message accepted, in bytes; None: no limit.",
        nullable=True,
        minimum=0,
    ),
    Option("max_redirects", "int", 5, "How many 3xx answers to the upgrade request are followed.", minimum=0),
    Option(
        "max_queue",
        "int",
        1024,
        "Messages held for recv() before overflow applies.",
        clients=_QUEUES,
        minimum=1,
    ),
    Option(
        "overflow",
        "choice",
        "pause",
        "What happens when max_queue messages wait to be read.",
        clients=_QUEUES,
        allowed=(
            AllowedValue("pause", "stop reading from the socket (TCP backpressure) until the queue drains"),
            AllowedValue("drop_oldest", "keep the newest max_queue messages and count the dropped ones"),
            AllowedValue("error", "fail the connection (1008) and raise from recv()"),
        ),
    ),
    Option(
        "text_as_bytes",
        "bool",
        False,
        "Deliver TEXT messages as validated UTF-8 bytes instead of str.",
    ),
    Option(
        "loads",
        "callable",
        None,
        "Applied to each TEXT message's validated bytes (orjson.loads, a msgspec decoder); the message "
        "becomes its result.",
        nullable=True,
    ),
    Option(
        "compression",
        "compression",
        None,
        "Offer permessage-deflate (RFC 7692): 'deflate' or a wsfast.Deflate with parameters (in a config, "
        "a table of Deflate's fields). Off by default: it costs CPU on every message.",
        nullable=True,
        allowed=(
            AllowedValue(None, "no compression"),
            AllowedValue("deflate", "permessage-deflate with the default parameters"),
            AllowedValue("permessage-deflate", "the same"),
        ),
    ),
    Option(
        "ping_interval",
        "float",
        DEFAULT_PING_INTERVAL,
        "Seconds between keepalive PINGs, sent whatever the traffic (they keep NATs open and measure the "
        "round-trip time); None: no keepalive.",
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "ping_timeout",
        "float",
        DEFAULT_PING_TIMEOUT,
        "Seconds to wait for any frame after a keepalive PING; on expiry the connection is failed with "
        "1011 (wsfast.KeepaliveTimeout). None: never time out.",
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "idle_timeout",
        "float",
        None,
        "Seconds without a data message (exchanges answer PINGs while a stream is stale): on expiry "
        "on_idle runs, or the connection is closed (1001, wsfast.IdleTimeout) and reconnect applies.",
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "on_idle",
        "callable",
        None,
        "on_idle(client) when the stream has been idle idle_timeout seconds, and again every "
        "idle_timeout while it stays idle (a coroutine function for the asyncio client).",
        nullable=True,
    ),
    Option(
        "reconnect",
        "reconnect",
        False,
        "True or a wsfast.ReconnectPolicy (in a config, a table of its fields: initial_delay, max_delay, "
        "multiplier, jitter, max_attempts, stable_after) reconnects whenever a connection is lost, except "
        "after disconnect()/close().",
    ),
    Option(
        "on_connect",
        "callable",
        None,
        "on_connect(client) after every successful connection and reconnection, before any of its "
        "messages: send subscriptions here (a coroutine function for the asyncio client).",
        nullable=True,
    ),
    Option(
        "on_disconnect",
        "callable",
        None,
        "on_disconnect(info) with a wsfast.Disconnected (code, reason, time, error, whether a reconnect "
        "follows) each time a connection is lost.",
        nullable=True,
    ),
    Option(
        "log",
        "callable",
        None,
        "Receives the client's info lines (the wsfast logger receives them too).",
        clients=_THREADS,
        nullable=True,
    ),
    Option(
        "errlog",
        "callable",
        None,
        "Receives the client's error lines.",
        clients=_THREADS,
        nullable=True,
    ),
    Option(
        "debuglog",
        "callable",
        None,
        "Receives the client's debug lines.",
        clients=_THREADS,
        nullable=True,
    ),
    Option(
        "events",
        "subscriber",
        None,
        "A subscriber for socket events (wsfast.events): a queue.Queue, an asyncio.Queue or a callable. "
        "More can subscribe() and unsubscribe() at any time.",
        nullable=True,
    ),
    Option(
        "warn_slow_operation",
        "float",
        None,
        "Seconds: a socket operation (lookup, connect, TLS, proxy CONNECT, handshake, send) that takes "
        "longer sends a SlowOperation event to the subscribers.",
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "warn_low_throughput",
        "float",
        None,
        "Bytes per second: a timed transfer (a send, the handshake or proxy response) slower than this "
        "sends a LowThroughput event to the subscribers.",
        nullable=True,
        minimum=0,
        exclusive=True,
    ),
    Option(
        "implementation",
        "choice",
        None,
        "The codec twin this client uses: 'cython' (compiled) or 'python'. None: the one "
        "wsfast.implementation names (compiled when available).",
        nullable=True,
        allowed=(
            AllowedValue(None, "what wsfast.implementation says"),
            AllowedValue("python", "the pure-Python twin"),
            AllowedValue("cython", "the compiled twin (an OptionError where it is not built)"),
        ),
    ),
)

_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
_BY_CLIENT: dict[str, tuple[Option, ...]] = {
    client: tuple(option.for_client(client) for option in OPTIONS if client in option.clients)
    for client in CLIENTS
}


def client_options(client: str | None = None) -> tuple[Option, ...]:
    """The options *client* accepts (as it sees them), or every option."""
    if client is None:
        return OPTIONS
    try:
        return _BY_CLIENT[client]
    except KeyError:
        raise ValueError(f"client must be one of {CLIENTS!r}, not {client!r}") from None


def get_option(name: str, client: str | None = None) -> Option:
    """The option called *name*.

    Raises:
        OptionError: no such option (the message names the closest matches), or *client* does not
            accept it.
    """
    option = _BY_NAME.get(name)
    if option is None:
        import difflib

        matches = difflib.get_close_matches(name, _BY_NAME, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
        raise OptionError(f"unknown option {name!r}{hint}")
    if client is not None:
        if client not in option.clients:
            others = " and ".join(CLIENT_NAMES[other] for other in CLIENTS if other in option.clients)
            raise OptionError(f"option {name!r} is not accepted by {CLIENT_NAMES[client]} (only by {others})")
        return option.for_client(client)
    return option


def check_names(client: str, names: Iterable[str], accepted: Iterable[str] = ()) -> None:
    """Refuse any of *names* (keyword arguments) that *client* does not take; *accepted* are its
    other parameters (``url``).

    Raises:
        OptionError: the first unknown name, with the closest of *client*'s own names ("did you
            mean"), or the name of an option only the other client takes.
    """
    known = {option.name for option in _BY_CLIENT[client]}
    known.update(accepted)
    for name in names:
        if name in known:
            continue
        if name in _BY_NAME:
            get_option(name, client)  # raises: "not accepted by ... (only by ...)"
        import difflib

        matches = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
        raise OptionError(f"{CLIENT_NAMES[client]}() got an unknown option {name!r}{hint}")


def validate(
    options: Mapping[str, Any], client: str | None = None, *, from_text: bool = False
) -> dict[str, Any]:
    """*options* checked and normalised (defaults are not added).

    With *client*, every name must be one of that client's options; without, one of any client's.
    *from_text* coerces strings (``"5"`` becomes ``5.0`` for a float, ``"yes"`` ``True``...) and config
    values (a table for ``compression``), as they come from a config file, the environment or the
    command line.

    Raises:
        OptionError: an unknown option (with close matches), a value out of range or not allowed.
        OptionTypeError: a value of the wrong type.
    """
    return {
        name: get_option(name, client).validate(value, from_text=from_text) for name, value in options.items()
    }


# --------------------------------------------------------------------------------------------------
# Helpers shared by both clients and the connection objects
# --------------------------------------------------------------------------------------------------


# RFC 9110 §5.1: a field name is a token; §5.6.2: tchar.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# RFC 9110 §5.5: a field value never holds CR, LF or NUL (they would end the header or the request).
_FORBIDDEN_IN_VALUES = ("\r", "\n", "\x00")


def check_header(name: str, value: str) -> None:
    """Refuse a header that would not be sent as given: *name* must be an RFC 9110 token (§5.1, §5.6.2),
    *value* free of CR, LF and NUL (§5.5).

    Raises:
        OptionError: the message names the header and what is wrong with it.
    """
    if not name or not _TCHAR.issuperset(name):
        raise OptionError(
            f"header name {name!r} is not an RFC 9110 token: use letters, digits and !#$%&'*+-.^_`|~ only "
            "(no spaces, colons or control characters)"
        )
    if any(character in value for character in _FORBIDDEN_IN_VALUES):
        raise OptionError(
            f"the value of header {name!r} contains CR, LF or NUL, which would end the header early "
            "(RFC 9110 §5.5): remove them"
        )


def normalise_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    """The *headers* option (a mapping, or pairs, or ``None``) as a list of ``(name, value)`` pairs, each
    checked by :func:`check_header`.

    Raises:
        TypeError: not a mapping or pairs of ``str``.
        OptionError: a header name that is not a token, a value with CR, LF or NUL (names the header).
    """
    if not headers:
        return []
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    for pair in pairs:
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not isinstance(pair[0], str)
            or not isinstance(pair[1], str)
        ):
            raise TypeError(f"a header must be a (name, value) pair of str, not {pair!r}")
        check_header(pair[0], pair[1])
    return [(name, value) for name, value in pairs]


def authorization(token: str | None, token_type: str) -> str | None:
    """The ``Authorization`` header value the *token* and *token_type* options ask for."""
    return f"{token_type} {token}" if token is not None else None


def mask_url(url: str) -> str:
    """*url* with its password replaced by ``********``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()


def mask(option: Option, value: Any) -> Any:
    """*value* safe to show: a sensitive option's value masked, credentials removed from headers and
    from a proxy URL."""
    if value is None:
        return None
    if option.sensitive:
        return MASK
    if option.type == "headers":
        return [(name, MASK if name.lower() in CREDENTIAL_HEADERS else text) for name, text in value]
    if option.type == "proxy" and isinstance(value, str):
        return mask_url(value)
    return value


def to_config(name: str, value: Any) -> Any:
    """The JSON-serialisable form of option *name*'s (validated) value.

    Raises:
        OptionError: the value cannot be serialised (a callable, a queue, an SSLContext).
    """
    option = get_option(name)
    if value is None:
        return None
    convert = _TYPES[option.type].to_config
    if convert is None:
        raise OptionError(f"option {name!r} holds a {option.type_name}, which a config cannot hold")
    return convert(value)


# --------------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------------


def _default_text(option: Option) -> str:
    if option.default is REQUIRED:
        return "required"
    if option.name == "user_agent":
        return '"wsfast/<version>"'
    if option.name == "max_message_size":
        return f"{option.default} (64 MiB)"
    if isinstance(option.default, str):
        return f'"{option.default}"'
    return repr(option.default)


def _clients_text(option: Option) -> str:
    return ", ".join(CLIENT_NAMES[client] for client in CLIENTS if client in option.clients)


def render_markdown() -> str:
    """``docs/options.md``: every option, generated from :data:`OPTIONS`."""
    lines = [
        "# Client options",
        "",
        "<!-- Generated by `python -m wsfast options --write docs/options.md` from src/wsfast/options.py;",
        "     do not edit by hand. tests/test_options.py checks that this file is up to date. -->",
        "",
        "Both clients take these as keyword arguments: `wsfast.WebSocketClient` (threaded) and",
        "`wsfast.connect` (asyncio). `wsfast.Connection` validates them (coercing strings from config",
        "files, the environment and the command line), and `wsfast URL -o NAME=VALUE` passes them on.",
        "",
        "| Option | Type | Default | Clients | Sensitive |",
        "|---|---|---|---|---|",
    ]
    for option in OPTIONS:
        type_name = option.type_name.replace("|", "\\|")  # a bare | would end the table cell
        lines.append(
            f"| [`{option.name}`](#{option.name}) | {type_name} | `{_default_text(option)}` | "
            f"{_clients_text(option)} | {'yes' if option.sensitive else ''} |"
        )
    for option in OPTIONS:
        lines += ["", f"## {option.name}", "", option.description, ""]
        lines.append(f"- type: {option.type_name}")
        lines.append(f"- default: `{_default_text(option)}`")
        lines.append(f"- clients: {_clients_text(option)}")
        for client, changes in option.overrides.items():
            described = ", ".join(f"{key}={value!r}" for key, value in changes.items())
            lines.append(f"- for {CLIENT_NAMES[client]}: {described}")
        if option.minimum is not None:
            lines.append(f"- {'greater than' if option.exclusive else 'at least'} {option.minimum:g}")
        if option.sensitive:
            lines.append("- sensitive: masked by `Connection.info()`")
        if not option.serialisable:
            lines.append("- not serialisable: `Connection.config()` cannot write it")
        if option.allowed:
            lines.append("- allowed values:")
            lines += [f"  - `{allowed.value!r}`: {allowed.description}" for allowed in option.allowed]
    return "\n".join(lines) + "\n"


def render_text(client: str | None = None, width: int = 100, *, settable: bool = False) -> str:
    """A plain-text list of the options of *client* (or all), for the command line's help; *settable*
    leaves out those text cannot set (callables, queues)."""
    import textwrap

    lines = []
    for option in client_options(client):
        if settable and not option.serialisable:
            continue
        head = f"  {option.name} ({option.type_name}, default {_default_text(option)})"
        lines.append(head)
        lines += textwrap.wrap(option.description, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def write_docs(write: str | None = None, check: str | None = None) -> int:
    """Print ``docs/options.md``'s text, write it to *write*, or check that *check* is up to date (1 if
    not). ``wsfast options --markdown / --write PATH / --check PATH`` calls it."""
    from pathlib import Path

    text = render_markdown()
    if write:
        Path(write).write_text(text, encoding="utf-8")
    elif check:
        path = Path(check)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date: run python -m wsfast options --write {path}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0
