"""The configuration of one client, validated once and frozen: :class:`Config`.

Both constructors (:class:`wsfast.WebSocketClient`, ``"threaded"``, and :func:`wsfast.connect`,
``"asyncio"``) keep explicit, typed keyword signatures for IDEs and type checkers, and hand their arguments
to :meth:`Config.build`, which

* checks every value against the option registry (:data:`wsfast.options.OPTIONS`), where every default
  is defined, once;
* refuses combinations that cannot work, at construction rather than after TCP is open: ``ssl=`` with a
  ``ws://`` URL (no silent plaintext), a header name that is not an RFC 9110 token or a value with CR, LF
  or NUL (RFC 9110 §5.1, §5.5), ``callback`` and ``on_message`` both given to the threaded client,
  both ``unix_socket`` and ``sock``, ``sock`` with ``reconnect``, a ``"cython"``
  *implementation* that is not built;
* computes the derived values once: the parsed URL, the headers as a tuple, the ``Authorization``
  value, the permessage-deflate offer (RFC 7692), the :class:`~wsfast.ReconnectPolicy`, the codec twin
  (the module :class:`~wsfast.protocol.ClientProtocol` takes as ``codec=``), and, lazily and cached, the
  TLS contexts for ``wss://`` and for an ``https://`` proxy (:func:`make_ssl_context`);
* knows that a socket given with ``sock`` serves one connection: :meth:`Config.take_sock` hands it to the
  first opening and refuses every later one, for every front-end.

:func:`checks_options` wraps a constructor so that an unknown keyword argument is an
:class:`~wsfast.OptionError` with a "did you mean" instead of Python's bare ``TypeError``.

Example::

    config = Config.build("asyncio", {"url": "wss://example.com/feed", "compression": "deflate"})
    config.url.host                 # 'example.com'
    config["open_timeout"]          # 10.0, the registry's default
    config.compression              # Deflate()
    config.tls_context()            # a verified ssl.SSLContext, built on first use
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import ssl as ssl_module
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from . import _impl
from .deflate import Deflate, Negotiated
from .exceptions import OpeningError, OptionError
from .handshake import to_deflate
from .health import Heartbeat, ReconnectPolicy, to_reconnect_policy
from .lifecycle import Lifecycle
from .options import (
    CLIENT_NAMES,
    REQUIRED,
    THREADED,
    authorization,
    check_names,
    client_options,
    mask,
    normalise_headers,
)
from .protocol import ClientProtocol
from .uri import WebSocketURL, parse_url

__all__ = ["Config", "checks_options", "codec_twin", "make_ssl_context"]

_Init = TypeVar("_Init", bound=Callable[..., None])

SSL_WITH_WS = "ssl= applies to wss:// URLs; use a wss:// URL or leave ssl unset"
SOCK_USED = (
    "the socket given with sock= served the first connection and cannot be reconnected; "
    "give a URL (or unix_socket=) that wsfast can connect to again"
)


def codec_twin(implementation: str | None) -> tuple[str, types.ModuleType]:
    """The name and module of the codec twin *implementation* asks for (``None``: the one
    :data:`wsfast.implementation` names).

    Raises:
        OptionError: ``"cython"`` is not built here, or an unknown name.
    """
    if implementation is None:
        return _impl.implementation, _impl.codec
    twins = _impl.codec_twins()
    twin = twins.get(implementation)
    if twin is None:
        if implementation == "cython":
            raise OptionError(
                "implementation='cython' is not available: the compiled twins are not built here (run "
                "`pip install -e .` in a source checkout, or install a compiled wheel); use "
                "implementation='python' or leave it unset"
            )
        raise OptionError(f"implementation must be None, 'python' or 'cython', not {implementation!r}")
    return implementation, twin


@dataclasses.dataclass(frozen=True, eq=False)
class Config:
    """Every option of one client, final and validated, and the values derived from them.

    Build it with :meth:`build`. Read an option's value with ``config[name]`` (every option the client
    takes is there, with the registry's default when it was not given).

    Attributes:
        client: ``"threaded"`` or ``"asyncio"`` (:data:`wsfast.options.CLIENTS`).
        url: the parsed ``ws://``/``wss://`` URL.
        url_text: the URL as given.
        values: every option of *client*: its validated value, or the registry's default (read-only).
        headers: the extra handshake headers, checked (RFC 9110 §5.1, §5.5), as ``(name, value)`` pairs.
        authorization: the ``Authorization`` value made from *token* and *token_type*, or ``None``.
        compression: the permessage-deflate offer (RFC 7692), or ``None``.
        reconnect: the :class:`~wsfast.ReconnectPolicy`, or ``None`` (no reconnection).
        implementation: the codec twin's name, ``"python"`` or ``"cython"``.
        codec: the codec twin module (``Decoder``, ``Encoder``): ``ClientProtocol(codec=config.codec)``.
        connect_timeout: seconds for each TCP connection attempt (*connect_timeout*, else *open_timeout*).
    """

    client: str
    url: WebSocketURL
    url_text: str
    values: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...]
    authorization: str | None
    compression: Deflate | None
    reconnect: ReconnectPolicy | None
    implementation: str
    codec: types.ModuleType
    connect_timeout: float | None
    # State every copy (with_headers) shares: the TLS contexts built, and the socket given with sock= until
    # the first opening takes it.
    _contexts: dict[str, ssl_module.SSLContext] = dataclasses.field(default_factory=dict, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)
    _given: list[Any] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def build(cls, client: str, arguments: Mapping[str, Any]) -> Config:
        """The configuration for *client* from a constructor's *arguments* (its ``locals()`` on entry:
        ``url`` and the options; anything else, ``self`` included, is ignored).

        Raises:
            OptionError: a value out of range or not allowed, or a combination that cannot work (the
                message says what to do).
            OptionTypeError: a value of the wrong type.
            InvalidURL: *url* is not a ``ws://`` or ``wss://`` URL.
        """
        values: dict[str, Any] = {}
        for option in client_options(client):
            value = arguments.get(option.name, option.default)
            values[option.name] = value if value is REQUIRED else option.validate(value)
        url_text = arguments["url"]
        url = parse_url(url_text)
        if client == THREADED:
            _merge_message_callbacks(values)
        _check_combinations(client, url, values)
        Heartbeat(values["ping_interval"], values["ping_timeout"], values["idle_timeout"], now=0.0)
        implementation, twin = codec_twin(values["implementation"])
        connect_timeout = values.get("connect_timeout")
        return cls(
            client=client,
            url=url,
            url_text=url_text,
            values=types.MappingProxyType(values),
            headers=tuple(values["headers"] or ()),
            authorization=authorization(values["token"], values["token_type"]),
            compression=to_deflate(values["compression"]),
            reconnect=to_reconnect_policy(values["reconnect"]),
            implementation=implementation,
            codec=twin,
            connect_timeout=connect_timeout if connect_timeout is not None else values["open_timeout"],
            _given=[values["sock"]] if values["sock"] is not None else [],
        )

    def __getitem__(self, name: str) -> Any:
        """The final value of option *name*.

        Raises:
            KeyError: *client* does not take *name*.
        """
        return self.values[name]

    def with_headers(self, headers: Any) -> Config:
        """This configuration with *headers* (a mapping or ``(name, value)`` pairs, checked as the *headers*
        option) sent after its own: ``connect(headers=...)``. The copy shares the TLS contexts and the
        socket given with *sock*.

        Raises:
            OptionError: a header name that is not a token, or a value with CR, LF or NUL.
        """
        extra = tuple(normalise_headers(headers))
        return dataclasses.replace(self, headers=self.headers + extra) if extra else self

    def take_sock(self) -> Any:
        """The socket given with *sock* for the opening of a connection (``None``: none was given). It
        serves one connection, the client's first: the opening that takes it owns it.

        Raises:
            OpeningError: the socket given with *sock* served a connection already (a second ``connect()``,
                ``reconnect()``): no other connection can be opened.
        """
        if self.values["sock"] is None:
            return None
        with self._lock:
            if not self._given:
                raise OpeningError(SOCK_USED)
            return self._given.pop()

    def new_protocol(self, compression: Negotiated | None = None) -> ClientProtocol:
        """The :class:`~wsfast.protocol.ClientProtocol` of a connection whose handshake accepted
        *compression*: this configuration's message limit, text handling, *loads* and codec twin."""
        return ClientProtocol(
            max_message_size=self.values["max_message_size"],
            auto_pong=self.values.get("on_ping") is None,  # else on_ping answers PINGs
            text_as_bytes=self.values["text_as_bytes"],
            loads=self.values["loads"],
            compression=compression,
            codec=self.codec,
        )

    def new_lifecycle(self) -> Lifecycle:
        """The client's :class:`~wsfast.lifecycle.Lifecycle`: keepalive, the idle watchdog and reconnecting
        as this configuration says."""
        return Lifecycle(
            ping_interval=self.values["ping_interval"],
            ping_timeout=self.values["ping_timeout"],
            idle_timeout=self.values["idle_timeout"],
            on_idle=self.values.get("on_idle") is not None,
            reconnect=self.reconnect,
        )

    def tls_context(self, host: str = "") -> ssl_module.SSLContext:
        """The TLS context for ``wss://`` connections (and redirects to them), built on first use and
        cached: the *ssl* option's context, or a verified one (system CAs), unverified for ``ssl=False``.
        Every *host* shares one context."""
        return self._context("server", self.values["ssl"])

    def hop_tls_context(self, hop: str) -> ssl_module.SSLContext:
        """``tls_context(hop)`` for :class:`~wsfast.opening.Opening`: :meth:`proxy_tls_context` for
        ``"proxy"``, :meth:`tls_context` for ``"server"``."""
        return self.proxy_tls_context() if hop == "proxy" else self.tls_context()

    def proxy_tls_context(self, host: str = "") -> ssl_module.SSLContext:
        """The TLS context for an ``https://`` proxy, built on first use and cached: the *proxy_ssl*
        option's context, or a verified one (system CAs), unverified for ``proxy_ssl=False``."""
        return self._context("proxy", self.values["proxy_ssl"])

    def shown(self) -> dict[str, Any]:
        """Every option's value, safe to log: secrets masked (:func:`wsfast.options.mask`)."""
        return {option.name: mask(option, self.values[option.name]) for option in client_options(self.client)}

    def __repr__(self) -> str:
        shown = self.shown()
        given = {
            option.name: shown[option.name]
            for option in client_options(self.client)
            if self.values[option.name] != option.default
        }
        return f"<Config {self.client} {self.url.safe_url()} {given!r}>"

    def _context(self, key: str, setting: ssl_module.SSLContext | bool | None) -> ssl_module.SSLContext:
        context = self._contexts.get(key)
        if context is None:
            with self._lock:
                context = self._contexts.get(key)
                if context is None:
                    context = self._contexts[key] = make_ssl_context(setting)
        return context


def make_ssl_context(setting: ssl_module.SSLContext | bool | None) -> ssl_module.SSLContext:
    """The TLS context *setting* (the *ssl* or *proxy_ssl* option) asks for: the context itself, or the
    default one (system CAs, certificate and host name verified) unless *setting* is ``False``."""
    if isinstance(setting, ssl_module.SSLContext):
        return setting
    context = ssl_module.create_default_context()
    if setting is False:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def _merge_message_callbacks(values: dict[str, Any]) -> None:
    """The threaded client's positional *callback* and its *on_message* are one option given two ways."""
    callback, on_message = values["callback"], values["on_message"]
    if callback is not None and on_message is not None:
        raise OptionError(
            "wsfast.WebSocketClient got both a callback and on_message, which are the same option: "
            "pass the message callback once (WebSocketClient(None, url, on_message=f) or "
            "WebSocketClient(f, url))"
        )
    values["callback"] = values["on_message"] = callback if callback is not None else on_message


def _check_combinations(client: str, url: WebSocketURL, values: Mapping[str, Any]) -> None:
    """Refuse options that contradict each other or the URL."""
    if values["ssl"] is not None and not url.secure:
        raise OptionError(f"{SSL_WITH_WS} (got ssl={values['ssl']!r} with {url.safe_url()})")
    # With a proxy, unix_socket= or sock= reaches the proxy (a local proxy's socket); the two together
    # would be two first hops.
    if values["unix_socket"] is not None and values["sock"] is not None:
        raise OptionError(
            f"{CLIENT_NAMES[client]} got unix_socket and sock, which each say how to open the connection: "
            "give at most one"
        )
    if values["sock"] is not None and values["reconnect"] not in (None, False):
        raise OptionError(
            "reconnect needs to open new connections, which a given sock= cannot: leave reconnect unset "
            "with sock=, or use unix_socket= or the URL instead"
        )


def checks_options(client: str) -> Callable[[_Init], _Init]:
    """Decorate *client*'s constructor: a keyword argument it does not take raises
    :class:`~wsfast.OptionError` with the closest names ("did you mean"), as
    :func:`wsfast.options.get_option` does, before the call. The signature stays what IDEs show
    (:func:`functools.wraps`; :func:`inspect.signature` follows ``__wrapped__``)."""

    def decorate(init: _Init) -> _Init:
        parameters = frozenset(inspect.signature(init).parameters) - {"self"}

        @functools.wraps(init)
        def checked(self: Any, *args: Any, **kwargs: Any) -> None:
            if not parameters.issuperset(kwargs):
                check_names(client, kwargs, accepted=parameters)
            init(self, *args, **kwargs)

        return cast(_Init, checked)

    return decorate
