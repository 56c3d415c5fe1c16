"""WebSocket URLs (RFC 6455 §3): ``ws://`` and ``wss://``, user information, redirect targets."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import unquote, urljoin, urlsplit

from .exceptions import InvalidURL

__all__ = ["WebSocketURL", "parse_url", "redact"]

DEFAULT_PORTS = {"ws": 80, "wss": 443}
# Redirects to http(s) URLs are followed on the matching ws(s) scheme (RFC 6455 §4.1 reuses HTTP).
REDIRECT_SCHEMES = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
_PASSWORD = re.compile(r"(//[^/?#@]*?:)[^/?#]*@")


def redact(url: str) -> str:
    """*url* with the password of its user information replaced by ``***``, for error messages and logs.

    Works on text that does not parse as a URL, too: credentials never reach an exception message.
    """
    return _PASSWORD.sub(r"\1***@", url)


@dataclasses.dataclass(frozen=True)
class WebSocketURL:
    """A parsed ``ws://`` or ``wss://`` URL.

    Attributes:
        secure: ``True`` for ``wss`` (TLS).
        host: the host name or address, without brackets for IPv6.
        port: the TCP port (80 or 443 when the URL has none).
        resource: the path and query sent in the request line, at least ``/`` (RFC 6455 §3).
        username, password: the percent-decoded user information, if the URL has any.
    """

    secure: bool
    host: str
    port: int
    resource: str = "/"
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "wss" if self.secure else "ws"

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the port appears only when it is not the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    def safe_url(self) -> str:
        """The URL without the password, safe to log or show."""
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host_header}{self.resource}"

    def __str__(self) -> str:
        return self.safe_url()

    def same_origin(self, other: WebSocketURL) -> bool:
        """Whether *other* has the same scheme, host and port (RFC 6454 origins)."""
        return (self.secure, self.host.lower(), self.port) == (other.secure, other.host.lower(), other.port)

    def join(self, location: str) -> WebSocketURL:
        """The URL a redirect's ``Location`` points to, resolved against this one.

        Raises:
            InvalidURL: the target is not a ws/wss/http/https URL, or it would downgrade ``wss`` to ``ws``.
        """
        base = f"{'https' if self.secure else 'http'}://{self.host_header}{self.resource}"
        try:
            target = urljoin(base, location)
        except ValueError as exc:  # e.g. "Invalid IPv6 URL" for a stray '[' (found by the fuzzer)
            raise InvalidURL(f"cannot follow a redirect to {location!r}: {exc}") from None
        scheme, sep, rest = target.partition("://")
        mapped = REDIRECT_SCHEMES.get(scheme.lower())
        if not sep or mapped is None:
            raise InvalidURL(f"cannot follow a redirect to {location!r}")
        url = parse_url(f"{mapped}://{rest}")
        if self.secure and not url.secure:
            raise InvalidURL(f"refusing a redirect from wss:// to insecure {url.safe_url()}")
        if url.same_origin(self) and url.username is None and self.username is not None:
            # Credentials from the URL follow a redirect within the same origin, never to another one.
            url = dataclasses.replace(url, username=self.username, password=self.password)
        return url


def parse_url(url: str) -> WebSocketURL:
    """Parse a ``ws://`` or ``wss://`` URL.

    Raises:
        InvalidURL: another scheme, no host, a bad port, or a fragment (RFC 6455 §3 forbids fragments).
    """
    if not isinstance(url, str):
        raise InvalidURL(f"the URL must be a str, not {type(url).__name__}")
    shown = redact(url)  # error messages end up in logs: never with the password
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"{shown!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(f"{shown!r} is not a WebSocket URL: the scheme must be ws:// or wss://")
    if not parts.hostname:
        raise InvalidURL(f"{shown!r} has no host")
    if parts.fragment or url.endswith("#"):
        raise InvalidURL(f"{shown!r} has a fragment, which WebSocket URLs must not have (RFC 6455 §3)")
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return WebSocketURL(
        secure=scheme == "wss",
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        resource=resource,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
