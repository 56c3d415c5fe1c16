"""The opening of a connection, sans I/O: from a URL and the options to an open WebSocket connection.

:class:`Opening` decides every step: which socket to open (TCP to the server or the proxy, a Unix socket,
the user's socket), TLS (to an ``https://`` proxy, to the server, or both: TLS inside the proxy's TLS), the
proxy's protocol (HTTP CONNECT, RFC 9110 §9.3.6, with Basic auth; SOCKS4/4a/5, :mod:`wsfast.socks`), the
upgrade (RFC 6455 §4.1, :class:`~wsfast.handshake.ClientHandshake`) and redirects (credentials are dropped
when one leaves the URL's origin). A driver executes its actions with its own sockets or transports and
reports back; it holds no decision of its own. The same machine serves the threaded and the asyncio client.

The driver's loop::

    action = opening.start()
    while not isinstance(action, Open):
        Connect(host, port, hop)        -> open TCP (TCP_NODELAY)           -> opening.connected()
        ConnectUnix(path, hop)          -> open a Unix socket                -> opening.connected()
        UseSocket(hop)                  -> take the user's connected socket  -> opening.connected()
        Resolve(host, port, ipv4_only)  -> look the name up (SOCKS4, socks5) -> opening.resolved(address)
        StartTLS(context, server_hostname, hop)
                                        -> TLS on what is open (over TLS to an https:// proxy, inside it)
                                                                             -> opening.tls_started()
        Send(data, hop)                 -> write all of it                   -> opening.sent()
        Receive(hop)                    -> read some bytes                   -> opening.receive_data(data)
                                                                                or opening.receive_eof()
        Disconnect()                    -> close the connection (a redirect) -> opening.disconnected()
    Open(accepted, url): the upgrade was accepted; accepted.leftover holds the first frames' bytes.

Every method returns the next action. Refusals raise typed errors from these methods:
:class:`~wsfast.exceptions.ProxyError` (the proxy refused, or broke its protocol; ``status`` is the HTTP
status or the SOCKS reply code), :class:`~wsfast.exceptions.InvalidStatus` and the other
:class:`~wsfast.exceptions.HandshakeError` subclasses (the server's answer),
:class:`~wsfast.exceptions.TooManyRedirects`, :class:`~wsfast.exceptions.InvalidURL` (a redirect that cannot
be followed). The driver turns its own I/O errors into :class:`~wsfast.exceptions.OpeningError` naming the
action's ``hop`` (``"proxy"`` or ``"server"``).

``report``, if given, receives :class:`RequestSent`, :class:`ResponseReceived` and :class:`Redirected` notes
as they happen, so a driver can emit its socket events (:mod:`wsfast.events`) without deciding anything.

This module is part of the sans-I/O core: no sockets, no TLS, no clock.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any

from .deflate import Deflate
from .exceptions import HandshakeError, InvalidURL, OptionError, ProxyError, TooManyRedirects
from .handshake import Accepted, ClientHandshake, Redirect, without_credentials
from .http11 import ResponseParser
from .proxies import Proxy, parse_proxy, proxy_from_environment
from .socks import Socks4Negotiation, Socks5Negotiation, SocksNegotiation
from .uri import WebSocketURL

__all__ = [
    "Action",
    "Connect",
    "ConnectUnix",
    "Disconnect",
    "Note",
    "Open",
    "Opening",
    "Receive",
    "Redirected",
    "RequestSent",
    "Resolve",
    "ResponseReceived",
    "Send",
    "StartTLS",
    "UseSocket",
]

PROXY = "proxy"
SERVER = "server"


@dataclasses.dataclass(frozen=True)
class Connect:
    """Open a TCP connection to *host*:*port* (the proxy's or the server's: *hop*), with TCP_NODELAY."""

    host: str
    port: int
    hop: str


@dataclasses.dataclass(frozen=True)
class ConnectUnix:
    """Connect the Unix socket at *path* (it replaces the TCP connection to the first hop)."""

    path: str
    hop: str


@dataclasses.dataclass(frozen=True)
class UseSocket:
    """Use the connected socket the user gave (``sock=``) as the connection to the first hop."""

    hop: str


@dataclasses.dataclass(frozen=True)
class Resolve:
    """Look *host* up and answer with one address (IPv4 only when *ipv4_only*: SOCKS4 carries no other)."""

    host: str
    port: int
    ipv4_only: bool
    hop: str = PROXY


@dataclasses.dataclass(frozen=True)
class StartTLS:
    """Run a TLS handshake with *context* (an ``ssl.SSLContext``) and *server_hostname* (SNI and the
    certificate check) over what is open: over TCP, or inside the TLS connection to an ``https://`` proxy."""

    context: Any
    server_hostname: str
    hop: str


@dataclasses.dataclass(frozen=True)
class Send:
    """Write all of *data*."""

    data: bytes
    hop: str


@dataclasses.dataclass(frozen=True)
class Receive:
    """Read some bytes (any amount) and feed them to :meth:`Opening.receive_data` (or EOF)."""

    hop: str


@dataclasses.dataclass(frozen=True)
class Disconnect:
    """Close the connection: a redirect is followed on a new one."""

    hop: str = SERVER


@dataclasses.dataclass(frozen=True)
class Open:
    """The server accepted the upgrade of *url* (the last one, after redirects)."""

    accepted: Accepted
    url: WebSocketURL
    hop: str = SERVER


Action = Connect | ConnectUnix | UseSocket | Resolve | StartTLS | Send | Receive | Disconnect | Open


@dataclasses.dataclass(frozen=True)
class RequestSent:
    """An HTTP request (the upgrade, or a proxy's CONNECT: *operation* ``"handshake"`` or ``"proxy"``)
    was written."""

    request: bytes
    operation: str


@dataclasses.dataclass(frozen=True)
class ResponseReceived:
    """The answer to the last request; *status* ``None`` when no valid answer came."""

    status: int | None
    reason: str
    headers: Any
    operation: str


@dataclasses.dataclass(frozen=True)
class Redirected:
    """The server redirected the upgrade to *location* (shown without password)."""

    status: int
    location: str


Note = RequestSent | ResponseReceived | Redirected
_Step = Generator[Action, Any, None]


class Opening:
    """The opening of one connection (see the module docstring for the driver's loop).

    Args:
        url: the WebSocket URL.
        headers, subprotocols, origin, user_agent, authorization, compression: the upgrade request, as for
            :class:`~wsfast.handshake.ClientHandshake`; credentials (``Authorization``, ``Cookie``, the URL's
            user information) go to the URL's origin only, never to another origin a redirect names.
        proxy: ``None`` (direct), a proxy URL or a parsed :class:`~wsfast.proxies.Proxy`, or ``True``: the
            proxy from *environ* for each URL (:func:`~wsfast.proxies.proxy_from_environment`).
        environ: the environment variables for ``proxy=True`` (the driver passes ``os.environ``).
        unix_socket: a path: the first hop's TCP connection is replaced by this Unix socket.
        sock_given: the user gave a connected socket: the first hop's connection is that socket.
        max_redirects: how many redirects are followed.
        tls_context: ``tls_context(hop)`` returns the ``ssl.SSLContext`` for ``"server"`` or ``"proxy"``;
            called only when TLS is needed.
        server_hostname: the TLS server name for the URL's host, when it differs from the host.
        report: receives a :class:`Note` for each request, response and redirect.

    Raises:
        InvalidURL: *proxy* is not a proxy URL wsfast supports (the message hides the password).
        OptionError: *unix_socket* and *sock_given* together.
    """

    def __init__(
        self,
        url: WebSocketURL,
        *,
        tls_context: Callable[[str], Any],
        headers: Iterable[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        user_agent: str | None = None,
        authorization: str | None = None,
        compression: Deflate | None = None,
        proxy: Proxy | str | bool | None = None,
        environ: Mapping[str, str] | None = None,
        unix_socket: str | None = None,
        sock_given: bool = False,
        max_redirects: int = 5,
        server_hostname: str | None = None,
        report: Callable[[Note], None] | None = None,
    ) -> None:
        if unix_socket is not None and sock_given:
            raise OptionError("give unix_socket or sock, not both: each is the connection to the first hop")
        self.url = url
        self._origin_url = url
        self._headers = list(headers)
        self._subprotocols = list(subprotocols)
        self._request_origin = origin
        self._user_agent = user_agent
        self._authorization = authorization
        self._compression = compression
        self._proxy: Proxy | bool | None = parse_proxy(proxy) if isinstance(proxy, str) else proxy
        self._environ = environ if environ is not None else {}
        self._unix_socket = unix_socket
        self._sock_given = sock_given
        self._max_redirects = max_redirects
        self._tls_context = tls_context
        self._server_hostname = server_hostname
        self._report = report
        self.proxy: Proxy | None = None
        """The proxy of the current attempt (``None``: direct)."""
        self.redirects = 0
        self._steps: _Step | None = None
        self._action: Action | None = None

    # The driver's calls

    def start(self) -> Action:
        """The first action."""
        if self._steps is not None:
            raise RuntimeError("Opening.start() was already called")
        self._steps = self._run()
        return self._advance(None)

    def connected(self) -> Action:
        """The :class:`Connect`, :class:`ConnectUnix` or :class:`UseSocket` action is done."""
        return self._resume((Connect, ConnectUnix, UseSocket), None)

    def resolved(self, address: str) -> Action:
        """The :class:`Resolve` action found *address* (an IP address, as text)."""
        return self._resume((Resolve,), address)

    def tls_started(self) -> Action:
        """The :class:`StartTLS` handshake succeeded."""
        return self._resume((StartTLS,), None)

    def sent(self) -> Action:
        """The :class:`Send` action wrote all its bytes."""
        return self._resume((Send,), None)

    def receive_data(self, data: bytes) -> Action:
        """The :class:`Receive` action read *data* (empty means the peer closed: as :meth:`receive_eof`)."""
        return self._resume((Receive,), bytes(data))

    def receive_eof(self) -> Action:
        """The :class:`Receive` action found the connection closed by the peer."""
        return self._resume((Receive,), b"")

    def disconnected(self) -> Action:
        """The :class:`Disconnect` action closed the connection."""
        return self._resume((Disconnect,), None)

    @property
    def action(self) -> Action | None:
        """The action the driver is executing (the last one returned)."""
        return self._action

    def _resume(self, expected: tuple[type, ...], value: object) -> Action:
        if self._action is None:
            raise RuntimeError("the opening waits for nothing: start() was not called, or it is over")
        if not isinstance(self._action, expected):
            raise RuntimeError(f"the opening waits for {type(self._action).__name__}, not this answer")
        return self._advance(value)

    def _advance(self, value: object) -> Action:
        assert self._steps is not None
        self._action = None  # an error below ends the opening: every later call is refused
        try:
            action = self._steps.send(value)
        except StopIteration:
            raise RuntimeError("the opening is over") from None
        self._action = action
        return action

    def _note(self, note: Note) -> None:
        if self._report is not None:
            self._report(note)

    # The decisions

    def _proxy_for(self, url: WebSocketURL) -> Proxy | None:
        if self._proxy is True:
            return proxy_from_environment(url, self._environ)
        return self._proxy or None

    def _run(self) -> _Step:
        url = self.url
        while True:
            proxy = self.proxy = self._proxy_for(url)
            hop = PROXY if proxy is not None else SERVER
            if self._sock_given:
                yield UseSocket(hop)
            elif self._unix_socket is not None:
                yield ConnectUnix(self._unix_socket, hop)
            elif proxy is not None:
                yield Connect(proxy.host, proxy.port, PROXY)
            else:
                yield Connect(url.host, url.port, SERVER)
            if proxy is not None:
                if proxy.tls:
                    yield StartTLS(self._tls_context(PROXY), proxy.host, PROXY)
                if proxy.is_http:
                    yield from self._http_tunnel(proxy, url)
                else:
                    yield from self._socks_tunnel(proxy, url)
            if url.secure:
                hostname = url.host
                if self._server_hostname and url.host.lower() == self._origin_url.host.lower():
                    hostname = self._server_hostname
                yield StartTLS(self._tls_context(SERVER), hostname, SERVER)
            outcome = yield from self._upgrade(url)
            if isinstance(outcome, Accepted):
                self.url = url
                yield Open(outcome, url)
                return
            url = yield from self._redirect(url, outcome)

    def _upgrade(self, url: WebSocketURL) -> Generator[Action, Any, Accepted | Redirect]:
        same_origin = url.same_origin(self._origin_url)
        handshake = ClientHandshake(
            url,
            headers=self._headers if same_origin else without_credentials(self._headers),
            subprotocols=self._subprotocols,
            origin=self._request_origin,
            user_agent=self._user_agent,
            authorization=self._authorization if same_origin else None,
            compression=self._compression,
        )
        request = handshake.request()
        yield Send(request, SERVER)
        self._note(RequestSent(request, "handshake"))
        while True:
            data = yield Receive(SERVER)
            try:
                outcome = handshake.receive(data) if data else handshake.receive_eof()
            except HandshakeError as exc:
                self._note(ResponseReceived(exc.status, "", exc.headers, "handshake"))
                raise
            if outcome is not None:
                response = outcome.response
                self._note(ResponseReceived(response.status, response.reason, response.headers, "handshake"))
                return outcome

    def _redirect(self, url: WebSocketURL, redirect: Redirect) -> Generator[Action, Any, WebSocketURL]:
        target = redirect.url
        status = redirect.response.status
        self._note(Redirected(status, target.safe_url()))
        self.redirects += 1
        if self.redirects > self._max_redirects:
            raise TooManyRedirects(
                f"more than {self._max_redirects} redirects (last to {target}); "
                "raise max_redirects to follow more",
                status,
                redirect.response.headers,
            )
        if self._sock_given:
            raise InvalidURL(
                f"cannot follow the redirect to {target}: the socket given with sock= serves one request; "
                "connect to the redirect's target instead"
            )
        if self._unix_socket is not None and not target.same_origin(url):
            raise InvalidURL(
                f"cannot follow the redirect to {target}: it leaves {url.scheme}://{url.host_header}, "
                "and the connection goes to unix_socket; connect to the target without unix_socket instead"
            )
        yield Disconnect(SERVER)
        return target

    def _http_tunnel(self, proxy: Proxy, url: WebSocketURL) -> _Step:
        """RFC 9110 §9.3.6: ``CONNECT host:port``; a 2xx answer opens the tunnel."""
        target = f"[{url.host}]:{url.port}" if ":" in url.host else f"{url.host}:{url.port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if proxy.username is not None:
            credentials = f"{proxy.username}:{proxy.password or ''}".encode()
            lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials).decode())  # RFC 7617
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        yield Send(request, PROXY)
        self._note(RequestSent(request, "proxy"))
        parser = ResponseParser(connect=True)
        while True:
            data = yield Receive(PROXY)
            try:
                response = parser.feed(data) if data else parser.feed_eof()
            except HandshakeError as exc:
                self._note(ResponseReceived(None, "", exc.headers, "proxy"))
                raise ProxyError(f"proxy {proxy} did not answer CONNECT properly: {exc}") from exc
            if response is not None:
                break
        self._note(ResponseReceived(response.status, response.reason, response.headers, "proxy"))
        if not 200 <= response.status < 300:
            hint = ""
            if response.status == 407:
                hint = (
                    ": it needs credentials (http://user:password@host:port)"
                    if proxy.username is None
                    else (": it refused the credentials")
                )
            raise ProxyError(
                f"proxy {proxy} refused the tunnel: HTTP {response.status} {response.reason}".rstrip() + hint,
                response.status,
                response.headers,
                response.body,
            )
        if parser.leftover:
            raise ProxyError(f"proxy {proxy} sent data before the tunnel was established")

    def _socks_tunnel(self, proxy: Proxy, url: WebSocketURL) -> _Step:
        host = url.host
        if not proxy.remote_dns and not _is_address(host):
            ipv4_only = proxy.scheme == "socks4"
            host = yield Resolve(url.host, url.port, ipv4_only)
        negotiation: SocksNegotiation
        try:
            if proxy.scheme.startswith("socks4"):
                negotiation = Socks4Negotiation(
                    host, url.port, user_id=proxy.username or "", remote_dns=proxy.remote_dns
                )
            else:
                negotiation = Socks5Negotiation(
                    host, url.port, username=proxy.username, password=proxy.password
                )
        except ValueError as exc:
            raise ProxyError(f"proxy {proxy} cannot reach {url.host}: {exc}") from None
        while not negotiation.established:
            data = negotiation.data_to_send()
            if data:
                yield Send(data, PROXY)
            received = yield Receive(PROXY)
            if received:
                negotiation.receive_data(received)
            else:
                negotiation.receive_eof()
        data = negotiation.data_to_send()
        if data:  # never in practice: the CONNECT is the last request
            yield Send(data, PROXY)
        if negotiation.leftover:
            raise ProxyError(f"proxy {proxy} sent data before the tunnel was established")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
