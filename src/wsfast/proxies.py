"""Proxy URLs and proxies from the environment.

A proxy is given as a URL (``proxy=`` of both clients):

- ``http://[user:password@]host[:port]``: an HTTP proxy; the client asks it for a tunnel with ``CONNECT``
  (RFC 9110 §9.3.6), with ``Proxy-Authorization: Basic`` (RFC 7617) when the URL has credentials.
- ``https://...``: the same, over TLS to the proxy (the tunnel to a ``wss://`` server is then TLS inside TLS).
- ``socks4://user@host[:port]`` and ``socks4a://...``: SOCKS4 (the client resolves the name, IPv4 only) and
  SOCKS4a (the proxy resolves it); the user name is the SOCKS4 user id.
- ``socks5://[user:password@]host[:port]`` (the client resolves the name) and ``socks5h://...`` (the proxy
  resolves it): SOCKS5 (RFC 1928), with username/password authentication (RFC 1929).

``proxy=True`` takes the proxy from the environment, as curl and most HTTP libraries do:
``HTTPS_PROXY`` for ``wss://`` and ``HTTP_PROXY`` for ``ws://``, then ``ALL_PROXY`` (lower-case names first,
then upper-case), unless ``NO_PROXY`` names the host. It is off by default: a library never follows
ambient proxy settings unless asked to. The driver passes the environment in as a mapping, so this module
reads no global state and tests pass their own.

Error messages show proxy URLs with the password replaced by ``***``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from .exceptions import InvalidURL
from .uri import WebSocketURL, redact

__all__ = ["DEFAULT_PROXY_PORTS", "Proxy", "bypasses_proxy", "parse_proxy", "proxy_from_environment"]

DEFAULT_PROXY_PORTS = {
    "http": 8080,
    "https": 443,
    "socks4": 1080,
    "socks4a": 1080,
    "socks5": 1080,
    "socks5h": 1080,
}
SUPPORTED = "http://, https://, socks4://, socks4a://, socks5:// or socks5h://"


@dataclasses.dataclass(frozen=True)
class Proxy:
    """A parsed proxy URL.

    Attributes:
        scheme: ``"http"``, ``"https"``, ``"socks4"``, ``"socks4a"``, ``"socks5"`` or ``"socks5h"``.
        host, port: where the proxy listens (port defaults: 8080 for http, 443 for https, 1080 for SOCKS).
        username, password: the percent-decoded credentials, if any (the password is never shown).
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def is_http(self) -> bool:
        """An HTTP(S) proxy, asked for a tunnel with CONNECT."""
        return self.scheme in ("http", "https")

    @property
    def tls(self) -> bool:
        """The connection to the proxy itself is TLS (``https://``)."""
        return self.scheme == "https"

    @property
    def remote_dns(self) -> bool:
        """The proxy resolves the server's name (``socks4a``, ``socks5h``, and HTTP CONNECT)."""
        return self.scheme in ("http", "https", "socks4a", "socks5h")

    def safe_url(self) -> str:
        """The proxy URL without the password, safe to log or show."""
        user = (
            f"{self.username}:***@"
            if self.password is not None
            else (f"{self.username}@" if self.username else "")
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"

    def __str__(self) -> str:
        return self.safe_url()


def parse_proxy(url: str) -> Proxy:
    """Parse a proxy URL (see the module docstring); ``host:port`` without a scheme is an HTTP proxy.

    Raises:
        InvalidURL: an unsupported scheme, no host, a bad port, or credentials a SOCKS4 proxy cannot take.
            The message never shows the password.
    """
    if not isinstance(url, str):
        raise InvalidURL(f"a proxy URL must be a str, not {type(url).__name__}")
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    shown = redact(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"{shown!r} is not a valid proxy URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PROXY_PORTS:
        raise InvalidURL(f"unsupported proxy {shown!r}: use {SUPPORTED} URLs")
    if not parts.hostname:
        raise InvalidURL(f"proxy {shown!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidURL(f"proxy {shown!r} must be scheme://[user:password@]host[:port], with no path")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme.startswith("socks4") and password:
        raise InvalidURL(
            f"proxy {shown!r}: SOCKS4 takes a user id but no password; use socks5:// for passwords"
        )
    if scheme.startswith("socks5") and (
        len((username or "").encode()) > 255 or len((password or "").encode()) > 255
    ):
        raise InvalidURL(f"proxy {shown!r}: SOCKS5 user names and passwords are at most 255 bytes (RFC 1929)")
    return Proxy(
        scheme, parts.hostname, port if port is not None else DEFAULT_PROXY_PORTS[scheme], username, password
    )


def _lookup(environ: Mapping[str, str], name: str) -> str | None:
    for key in (name.lower(), name.upper()):
        value = environ.get(key, "").strip()
        if value:
            return value
    return None


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` (*no_proxy*) sends a connection to *host*:*port* around the proxy.

    The list is separated by commas (or spaces). An entry is ``*`` (every host), a host name (matching it
    and its subdomains, with or without a leading dot: ``example.com`` and ``.example.com`` both match
    ``api.example.com``), an IP address, a CIDR block (``10.0.0.0/8``), any of them with ``:port`` to
    match that port only (IPv6 addresses with a port in brackets: ``[::1]:8080``).
    """
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if "/" in name:
            try:
                network = ipaddress.ip_network(name, strict=False)
            except ValueError:
                continue
            if address is not None and address.version == network.version and address in network:
                return True
            continue
        try:
            entry_address = ipaddress.ip_address(name)
        except ValueError:
            entry_address = None
        if entry_address is not None:
            if entry_address == address:
                return True
            continue
        name = name.lstrip("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port.isdigit() else None
    return entry, None


def proxy_from_environment(url: WebSocketURL, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy ``proxy=True`` uses for *url*: ``https_proxy``/``HTTPS_PROXY`` for ``wss://``,
    ``http_proxy``/``HTTP_PROXY`` for ``ws://``, then ``all_proxy``/``ALL_PROXY``; ``None`` when none is
    set or ``no_proxy``/``NO_PROXY`` names the host (see :func:`bypasses_proxy`).

    Raises:
        InvalidURL: the variable holds a URL :func:`parse_proxy` rejects (the message names the variable).
    """
    no_proxy = _lookup(environ, "no_proxy")
    if no_proxy is not None and bypasses_proxy(url.host, url.port, no_proxy):
        return None
    for name in ("https_proxy" if url.secure else "http_proxy", "all_proxy"):
        value = _lookup(environ, name)
        if value is not None:
            try:
                return parse_proxy(value)
            except InvalidURL as exc:
                raise InvalidURL(f"{name.upper()} from the environment: {exc}") from None
    return None
