"""Connection objects: a named WebSocket endpoint, its attributes and its validated options.

A :class:`Connection` is what a configuration file names ("the Binance trade stream, with these
options"): it builds connected clients (:meth:`Connection.get`, :meth:`Connection.get_async`), checks its
endpoint (:meth:`Connection.ping`), describes itself without secrets (:meth:`Connection.info`) and
round-trips through a JSON-serialisable configuration (:meth:`Connection.config`,
:meth:`Connection.from_config`)::

    trades = wsfast.Connection("trades", "wss://stream.example.com/ws", options={"timeout": "5"})
    trades.ping()                    # PingResult(ok=True, time=0.041, info='OK', ...)
    client = trades.get(callback=on_message)     # a connected wsfast.WebSocketClient

Options are validated through :mod:`wsfast.options` when the connection is made: unknown names are
rejected (with the closest matches), values are type-checked, and strings from files, the environment
or the command line are coerced (``"5"`` becomes ``5.0`` for a timeout). A connection accepts the
options of either client; :meth:`Connection.get` passes on those the threaded client accepts and
:meth:`Connection.get_async` those the asyncio client accepts (:meth:`Connection.options` tells which).

URL schemes map to connection classes (:func:`register_scheme`): ``ws`` and ``wss`` to
:class:`Connection`; a subclass can add its own scheme and translate it to a ``ws(s)://`` URL in
:meth:`Connection.client_url`. :func:`connection_from_url` picks the class for a URL, and
:func:`load_connections` / :func:`connections_from_env` read named connections from a TOML or JSON file
or an environment variable.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from . import options as _options
from .client import WebSocketClient
from .exceptions import InvalidURL, OptionError
from .frames import CloseCode
from .uri import parse_url

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10 reads JSON only
    _toml = None

if TYPE_CHECKING:
    from .asyncio import WebSocket, connect
    from .events import Event

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "Connection",
    "PingResult",
    "connection_class",
    "connection_from_url",
    "connections_from_env",
    "load_connections",
    "parse_connections",
    "register_scheme",
    "registered_schemes",
    "unregister_scheme",
]

logger = logging.getLogger("wsfast")

ENVIRONMENT_VARIABLE = "WSFAST_CONNECTIONS"
ATTRIBUTES = ("monitor", "enabled", "locked", "debug_data", "tags")
CONFIG_KEYS = frozenset({"name", "description", "url", "attributes", "options"})
NOT_CHECKED = "not checked"


@dataclasses.dataclass(frozen=True)
class PingResult:
    """What :meth:`Connection.ping` found.

    Attributes:
        name, description: the connection's.
        url: the URL without its password.
        ok: whether a WebSocket connection was opened and closed.
        time: seconds it took (or until it failed).
        info: ``"OK"``, or ``"<ExceptionType>: <message>"``.
        error: the exception, if any.
    """

    name: str
    description: str
    url: str
    ok: bool
    time: float
    info: str
    error: BaseException | None = None


def _describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _without_password(url: str) -> str:
    """*url* without its password (and without a bare ``/`` path, as the reference's safe URL)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}@{host}" if user else host).geturl()


def _attribute_bool(name: str, value: Any) -> bool:
    option = _options.Option(name, "bool", False, "")
    return bool(option.validate(value, from_text=True))


class Connection:
    """A named WebSocket endpoint with attributes and validated options.

    Args:
        name: the connection's name (a key in a connections file).
        url: a ``ws://`` or ``wss://`` URL (or a registered scheme's); ``user:password@`` becomes Basic
            auth and is never shown by :meth:`info` unless asked.
        description: free text.
        options: client options (:mod:`wsfast.options`), validated and coerced from strings.
        monitor: whether a monitoring loop should :meth:`ping` it (informational, as ``enabled``,
            ``locked`` and ``tags``, for whoever manages connections).
        enabled: whether it is in use.
        locked: whether a connection manager may change or remove it.
        debug_data: log every socket event, with the raw bytes, on the ``wsfast`` logger at DEBUG level.
        tags: free key/value metadata (JSON-serialisable values).

    Raises:
        InvalidURL: the URL's scheme has no connection class, or the URL is not valid for it.
        OptionError: an unknown option (with close matches) or a bad value; ``OptionTypeError`` (also a
            ``TypeError``) for a value of the wrong type.

    Two connections are equal when their class, name, description, URL, attributes and options are
    equal; status fields (:attr:`status`, :attr:`up`, :attr:`last_check`) are not compared.
    """

    schemes: ClassVar[tuple[str, ...]] = ("ws", "wss")
    """The URL schemes this class serves (see :func:`register_scheme`)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        description: str = "",
        options: Mapping[str, Any] | None = None,
        monitor: bool = True,
        enabled: bool = True,
        locked: bool = False,
        debug_data: bool = False,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise OptionError(f"a connection name must be a non-empty str, not {name!r}")
        if not isinstance(description, str):
            raise OptionError(f"a connection description must be a str, not {description!r}")
        if not isinstance(url, str):
            raise InvalidURL(f"the URL must be a str, not {type(url).__name__}")
        self.name = name
        self.description = description
        self.url = url
        self.check_url(url)
        self.monitor = _attribute_bool("monitor", monitor)
        self.enabled = _attribute_bool("enabled", enabled)
        self.locked = _attribute_bool("locked", locked)
        self.debug_data = _attribute_bool("debug_data", debug_data)
        if tags is not None and not isinstance(tags, Mapping):
            raise OptionError(f"tags must be a mapping, not {type(tags).__name__}")
        self.tags: dict[str, Any] = dict(tags or {})
        self._values = _options.validate(options or {}, from_text=True)
        self.status = NOT_CHECKED
        """``"not checked"``, ``"OK"``, or ``"<ExceptionType>: <message>"`` from the last check."""
        self.up = False
        """Whether the last :meth:`get` or :meth:`ping` succeeded."""
        self.last_check: float | None = None
        """When the last :meth:`get` or :meth:`ping` ran (``time.time()``)."""

    # URLs

    def check_url(self, url: str) -> None:
        """Validate *url* for this class; a subclass with its own scheme overrides it.

        Raises:
            InvalidURL: not a valid URL for this class.
        """
        scheme = urlsplit(url.strip()).scheme.lower()
        if scheme not in self.schemes:
            raise InvalidURL(f"{type(self).__name__} serves {'/'.join(self.schemes)} URLs, not {scheme}://")
        parse_url(self.client_url())

    def client_url(self) -> str:
        """The ``ws://`` or ``wss://`` URL the clients connect to (a subclass may translate its scheme)."""
        return self.url

    @property
    def safe_url(self) -> str:
        """The URL without its password."""
        return _without_password(self.url)

    @property
    def type(self) -> str:
        """The URL's scheme."""
        return urlsplit(self.url).scheme.lower()

    # Options

    @classmethod
    def options(cls, client: str | None = None) -> dict[str, _options.Option]:
        """The options a connection accepts (for *client* ``"threaded"`` or ``"asyncio"``: those it passes
        to that client), described by :mod:`wsfast.options`: name, type, default, description, sensitive
        flag, allowed values and which clients accept it."""
        return {option.name: option for option in _options.client_options(client)}

    @property
    def option_values(self) -> dict[str, Any]:
        """The options given to this connection, validated (a copy)."""
        return dict(self._values)

    def _client_values(self, client: str, runtime: Mapping[str, Any]) -> dict[str, Any]:
        values = {
            name: value for name, value in self._values.items() if client in _options.get_option(name).clients
        }
        values.update(_options.validate(runtime, client))
        return values

    # Clients

    def get(
        self, connect: bool = True, callback: Callable[[Any], Any] | None = None, **runtime: Any
    ) -> WebSocketClient:
        """A :class:`wsfast.WebSocketClient` for this connection, connected unless *connect* is false.

        *callback* receives the messages; *runtime* options (callbacks such as ``on_close``, or any other
        option) override the connection's. Updates :attr:`status`, :attr:`up` and :attr:`last_check`.

        Raises:
            OptionError: a runtime option the threaded client does not accept.
            HandshakeError, OSError: connecting failed (as :meth:`WebSocketClient.connect`).
        """
        values = self._client_values(_options.THREADED, runtime)
        configured = values.pop("callback", None)
        callback = callback if callback is not None else configured
        client = WebSocketClient(callback, self.client_url(), **values)
        if self.debug_data:
            client.subscribe(_log_event, data=True)
        if connect:
            self._checked(client.connect)
        return client

    def connector(self, **runtime: Any) -> connect:
        """A :func:`wsfast.connect` for this connection, not yet opened: ``async with conn.connector() as
        ws`` (or ``await``). *runtime* options override the connection's.

        Raises:
            OptionError: a runtime option the asyncio client does not accept.
        """
        from .asyncio import connect

        values = self._client_values(_options.ASYNCIO, runtime)
        if self.debug_data and values.get("events") is None:
            values["events"] = _log_event
        return connect(self.client_url(), **values)

    async def get_async(self, **runtime: Any) -> WebSocket:
        """A connected asyncio :class:`wsfast.WebSocket` for this connection (see :meth:`connector`).

        Updates :attr:`status`, :attr:`up` and :attr:`last_check`.
        """
        opener = self.connector(**runtime)
        try:
            ws = await opener
        except Exception as exc:
            self._record(exc)
            raise
        self._record(None)
        return ws

    def _checked(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:
            self._record(exc)
            raise
        self._record(None)

    def _record(self, error: BaseException | None) -> None:
        self.last_check = time.time()
        self.up = error is None
        self.status = "OK" if error is None else _describe_error(error)

    # Health check

    def ping(self, raise_error: bool = False) -> PingResult:
        """Open a real WebSocket connection (TCP, TLS, handshake) and close it (1000): a health check.

        Never raises unless *raise_error* is true; the result has ``ok``, the elapsed ``time``, ``info``
        and the ``error``.
        """
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            client = self.get(connect=True)
            client.disconnect(CloseCode.NORMAL_CLOSURE)
        except Exception as exc:
            error = exc
        return self._ping_result(started, error, raise_error)

    async def ping_async(self, raise_error: bool = False) -> PingResult:
        """:meth:`ping` with the asyncio client."""
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            ws = await self.get_async()
            await ws.close(CloseCode.NORMAL_CLOSURE)
        except Exception as exc:
            error = exc
        return self._ping_result(started, error, raise_error)

    def _ping_result(self, started: float, error: BaseException | None, raise_error: bool) -> PingResult:
        elapsed = time.perf_counter() - started
        if error is not None and raise_error:
            raise error
        return PingResult(
            name=self.name,
            description=self.description,
            url=self.safe_url,
            ok=error is None,
            time=elapsed,
            info="OK" if error is None else _describe_error(error),
            error=error,
        )

    # Description and configuration

    def info(self, with_password: bool = False) -> dict[str, Any]:
        """The connection's description: name, URL (without the password unless *with_password*), type,
        attributes, status, and options (sensitive values masked unless *with_password*; callables shown
        by name)."""
        values: dict[str, Any] = {}
        for name, value in self._values.items():
            option = _options.get_option(name)
            shown = value if with_password else _options.mask(option, value)
            values[name] = _shown(option, shown)
        return {
            "name": self.name,
            "description": self.description,
            "url": self.url if with_password else self.safe_url,
            "type": self.type,
            "monitor": self.monitor,
            "enabled": self.enabled,
            "locked": self.locked,
            "debug_data": self.debug_data,
            "tags": dict(self.tags),
            "status": self.status,
            "up": self.up,
            "last_check": self.last_check,
            "options": values,
        }

    def config(self, *, omit_unserialisable: bool = False) -> dict[str, Any]:
        """A JSON-serialisable configuration that :meth:`from_config` turns back into an equal connection.

        It holds the URL with its password and every option value unmasked: store it as a secret.
        Callables, queues and ``ssl.SSLContext`` objects cannot be serialised: by default they raise
        :class:`~wsfast.OptionError` naming them; with *omit_unserialisable* they are left out (and
        the connection read back is then not equal: pass them again at run time, to :meth:`get`).

        Raises:
            OptionError: an option holds a value a config cannot hold (unless *omit_unserialisable*).
        """
        values: dict[str, Any] = {}
        refused = []
        for name, value in self._values.items():
            try:
                values[name] = _options.to_config(name, value)
            except OptionError:
                refused.append(name)
        if refused and not omit_unserialisable:
            raise OptionError(
                f"options {', '.join(map(repr, refused))} hold callables or objects a config cannot hold; "
                "pass them at run time (get(**options)) or use config(omit_unserialisable=True)"
            )
        return {
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "attributes": {
                "monitor": self.monitor,
                "enabled": self.enabled,
                "locked": self.locked,
                "debug_data": self.debug_data,
                "tags": dict(self.tags),
            },
            "options": values,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Connection:
        """The connection *config* describes (the shape :meth:`config` returns). Called on
        :class:`Connection` itself, the class comes from the URL's scheme (:func:`connection_class`).

        Raises:
            OptionError: an unknown key, a missing name or URL, a bad attribute or option.
            InvalidURL: the URL is not valid, or its scheme has no connection class.
        """
        if not isinstance(config, Mapping):
            raise OptionError(f"a connection config must be a mapping, not {type(config).__name__}")
        unknown = set(config) - CONFIG_KEYS
        if unknown:
            raise OptionError(
                f"unknown connection config keys {sorted(unknown)!r}; expected {sorted(CONFIG_KEYS)!r}"
            )
        for key in ("name", "url"):
            if key not in config:
                raise OptionError(f"a connection config needs a {key!r}")
        attributes = config.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise OptionError(f"connection attributes must be a mapping, not {type(attributes).__name__}")
        unknown = set(attributes) - set(ATTRIBUTES)
        if unknown:
            raise OptionError(
                f"unknown connection attributes {sorted(unknown)!r}; expected {list(ATTRIBUTES)!r}"
            )
        url = config["url"]
        target = connection_class(url) if cls is Connection else cls
        return target(
            config["name"],
            url,
            description=config.get("description") or "",
            options=config.get("options") or {},
            **attributes,
        )

    # Comparison

    def _key(self) -> tuple[Any, ...]:
        return (
            type(self),
            self.name,
            self.description,
            self.url,
            self.monitor,
            self.enabled,
            self.locked,
            self.debug_data,
            self.tags,
            self._values,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connection):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable status and tags

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.safe_url}>"


def _shown(option: _options.Option, value: Any) -> Any:
    if value is None or option.serialisable:
        try:
            return _options.to_config(option.name, value)
        except OptionError:
            return repr(value)
    return getattr(value, "__qualname__", None) or repr(value)


def _log_event(event: Event) -> None:
    logger.debug("[%s] %r", event.connection_id, event)


# --------------------------------------------------------------------------------------------------
# The scheme registry
# --------------------------------------------------------------------------------------------------

_schemes: dict[str, type[Connection]] = {}
_schemes_lock = threading.Lock()


def register_scheme(scheme: str, cls: type[Connection], *, replace: bool = False) -> None:
    """Make :func:`connection_from_url` (and :meth:`Connection.from_config`) use *cls* for *scheme* URLs.

    *cls* is :class:`Connection` or a subclass, whose :attr:`~Connection.schemes` should list *scheme*
    and whose :meth:`~Connection.client_url` turns its URLs into ``ws(s)://`` ones::

        class EchoConnection(wsfast.Connection):
            schemes = ("echo",)
            def client_url(self):
                return "wss://echo.example.com/" + self.url.removeprefix("echo://")

        wsfast.register_scheme("echo", EchoConnection)

    Raises:
        ValueError: *scheme* is already registered to another class (pass ``replace=True``).
        TypeError: *cls* is not a Connection class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Connection)):
        raise TypeError(f"a connection class must subclass wsfast.Connection, not {cls!r}")
    key = scheme.lower().rstrip(":/")
    with _schemes_lock:
        current = _schemes.get(key)
        if current is not None and current is not cls and not replace:
            raise ValueError(f"scheme {key!r} is already registered to {current.__qualname__}")
        _schemes[key] = cls


def unregister_scheme(scheme: str) -> None:
    """Forget *scheme* (no error if it is unknown)."""
    with _schemes_lock:
        _schemes.pop(scheme.lower().rstrip(":/"), None)


def registered_schemes() -> dict[str, type[Connection]]:
    """Every registered scheme and its connection class."""
    with _schemes_lock:
        return dict(_schemes)


def connection_class(url: str) -> type[Connection]:
    """The connection class registered for *url*'s scheme.

    Raises:
        InvalidURL: no class is registered for it.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"the URL must be a str, not {type(url).__name__}")
    scheme = urlsplit(url.strip()).scheme.lower()
    with _schemes_lock:
        cls = _schemes.get(scheme)
        known = sorted(_schemes)
    if cls is None:
        raise InvalidURL(f"no connection class for {scheme or 'a URL without a scheme'}:// (known: {known})")
    return cls


def connection_from_url(url: str, name: str | None = None, **kwargs: Any) -> Connection:
    """A connection for *url*, of the class registered for its scheme; *name* defaults to the host.

    *kwargs* are the :class:`Connection` keyword arguments (``description``, ``options``, attributes).
    """
    cls = connection_class(url)
    return cls(name or urlsplit(url.strip()).hostname or url, url, **kwargs)


register_scheme("ws", Connection)
register_scheme("wss", Connection)


# --------------------------------------------------------------------------------------------------
# Loading named connections
# --------------------------------------------------------------------------------------------------


def parse_connections(data: Mapping[str, Any], source: str = "the configuration") -> dict[str, Connection]:
    """The connections of a parsed file: a ``connections`` table of name -> config (as
    :meth:`Connection.config`, without the name)::

        [connections.trades]
        url = "wss://stream.example.com/ws"
        description = "trades"
        attributes = { monitor = true, tags = { team = "md" } }
        options = { timeout = 5, headers = { "X-Api-Key" = "..." } }

    Raises:
        OptionError: the data has no ``connections`` table or a connection is invalid (the message names
            *source* and the connection).
        InvalidURL: a connection's URL is invalid.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("connections"), Mapping):
        raise OptionError(f"{source} has no 'connections' table")
    unknown = set(data) - {"connections"}
    if unknown:
        raise OptionError(f"{source}: unknown top-level keys {sorted(unknown)!r}")
    connections: dict[str, Connection] = {}
    for name, entry in data["connections"].items():
        if not isinstance(entry, Mapping):
            raise OptionError(f"{source}: connection {name!r} must be a table, not {type(entry).__name__}")
        if "name" in entry and entry["name"] != name:
            raise OptionError(f"{source}: connection {name!r} has another name, {entry['name']!r}")
        try:
            connections[name] = Connection.from_config({**entry, "name": name})
        except (OptionError, InvalidURL) as exc:
            raise type(exc)(f"{source}: connection {name!r}: {exc}") from exc
    return connections


def load_connections(path: str | os.PathLike[str]) -> dict[str, Connection]:
    """The named connections in a ``.toml`` or ``.json`` file (see :func:`parse_connections`).

    TOML needs Python 3.11 or later (:mod:`tomllib`); on Python 3.10 use JSON.

    Raises:
        OptionError: the file cannot be parsed, has an unknown suffix, or a connection is invalid;
            TOML on Python 3.10.
        OSError: the file cannot be read.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    text = file.read_text(encoding="utf-8")
    if suffix == ".toml":
        if _toml is None:
            raise OptionError(
                f"{file}: reading TOML needs Python 3.11 or later (tomllib); use a .json file on Python 3.10"
            )
        try:
            data = _toml.loads(text)
        except ValueError as exc:
            raise OptionError(f"{file} is not valid TOML: {exc}") from None
    elif suffix == ".json":
        data = _parse_json(text, str(file))
    else:
        raise OptionError(f"{file}: connections files are .toml or .json, not {suffix or 'no suffix'!r}")
    return parse_connections(data, str(file))


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise OptionError(f"{source} is not valid JSON: {exc}") from None


def connections_from_env(
    variable: str = ENVIRONMENT_VARIABLE, environ: Mapping[str, str] | None = None
) -> dict[str, Connection]:
    """The named connections in the environment variable *variable* (``WSFAST_CONNECTIONS``): either
    JSON text (``{"connections": {...}}``) or the path of a ``.toml`` / ``.json`` file. Empty if unset.

    Raises:
        OptionError, InvalidURL, OSError: as :func:`load_connections`.
    """
    value = (os.environ if environ is None else environ).get(variable, "").strip()
    if not value:
        return {}
    if value.startswith("{"):
        return parse_connections(_parse_json(value, f"${variable}"), f"${variable}")
    return load_connections(value)
