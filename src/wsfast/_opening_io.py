"""What the two opening executors share (:mod:`wsfast._opening_sync`, :mod:`wsfast.asyncio._opening`): the
Opening of a connection, the answer each action gets, the errors that name the hop, and the socket events of
the notes of :class:`~wsfast.opening.Opening`.

Not part of the sans-I/O core: it knows ``ssl`` and the clock.
"""

from __future__ import annotations

import os
import ssl as ssl_module
import time
from typing import TYPE_CHECKING, Any

from .exceptions import OpeningError, OpenTimeout, TLSError
from .opening import (
    Action,
    Connect,
    ConnectUnix,
    Disconnect,
    Note,
    Opening,
    Receive,
    Redirected,
    RequestSent,
    Resolve,
    ResponseReceived,
    Send,
    StartTLS,
    UseSocket,
)

if TYPE_CHECKING:
    from ._monitor import Monitor
    from .config import Config

__all__ = ["Reporter", "answer", "new_opening", "opening_error"]


def new_opening(config: Config, report: Reporter, *, sock_given: bool | None = None) -> Opening:
    """The :class:`~wsfast.opening.Opening` of one connection of the client configured by *config*
    (proxies from the environment are read now: ``proxy=True``). *sock_given* defaults to whether *config*
    has a *sock*: the opening then starts on it (:meth:`~wsfast.config.Config.take_sock`)."""
    return Opening(
        config.url,
        tls_context=config.hop_tls_context,
        headers=config.headers,
        subprotocols=config["subprotocols"],
        origin=config["origin"],
        user_agent=config["user_agent"],
        authorization=config.authorization,
        compression=config.compression,
        proxy=config["proxy"],
        environ=os.environ,
        unix_socket=config["unix_socket"],
        sock_given=config["sock"] is not None if sock_given is None else sock_given,
        max_redirects=config["max_redirects"],
        server_hostname=config["server_hostname"],
        report=report,
    )


def answer(opening: Opening, action: Action, result: Any) -> Action:
    """Tell *opening* that *action* was done (with *result*: the bytes read, the address found)."""
    if isinstance(action, (Connect, ConnectUnix, UseSocket)):
        return opening.connected()
    if isinstance(action, Resolve):
        return opening.resolved(result)
    if isinstance(action, StartTLS):
        return opening.tls_started()
    if isinstance(action, Send):
        return opening.sent()
    if isinstance(action, Receive):
        return opening.receive_data(result) if result else opening.receive_eof()
    if isinstance(action, Disconnect):
        return opening.disconnected()
    raise TypeError(f"no answer for {action!r}")


def _describe(action: Action | None) -> tuple[str, str, str]:
    """(hop, stage, what was being done) for an error message."""
    hop = getattr(action, "hop", "server")
    who = "the proxy" if hop == "proxy" else "the server"
    if isinstance(action, Connect):
        host = f"[{action.host}]" if ":" in action.host else action.host
        return hop, "connect", f"connecting to {who} at {host}:{action.port}"
    if isinstance(action, ConnectUnix):
        return hop, "connect", f"connecting to the Unix socket {action.path!r}"
    if isinstance(action, UseSocket):
        return hop, "connect", "using the socket given with sock="
    if isinstance(action, Resolve):
        return hop, "connect", f"looking up {action.host!r} for the SOCKS proxy"
    if isinstance(action, StartTLS):
        return hop, "tls", f"the TLS handshake with {who} ({action.server_hostname})"
    stage = "proxy" if hop == "proxy" else "handshake"
    return hop, stage, f"the {'proxy exchange' if hop == 'proxy' else 'upgrade'} with {who}"


def opening_error(action: Action | None, exc: BaseException) -> OpeningError:
    """The typed error for *exc* (an ``OSError``, an ``ssl.SSLError``) raised while doing *action*."""
    hop, stage, what = _describe(action)
    if isinstance(exc, TimeoutError):
        return OpenTimeout(f"timed out during {what}", hop=hop, stage=stage)
    if isinstance(exc, (ssl_module.SSLError, ssl_module.CertificateError)) and stage == "tls":
        return TLSError(f"{what} failed: {exc}", hop=hop, stage=stage)
    return OpeningError(f"{what} failed: {exc}", hop=hop, stage=stage)


def open_timeout_error(action: Action | None, open_timeout: float | None) -> OpenTimeout:
    """The error for an opening that took longer than *open_timeout* seconds, naming the step it was in."""
    hop, stage, what = _describe(action)
    return OpenTimeout(
        f"the connection did not open within open_timeout={open_timeout} s ({what})", hop=hop, stage=stage
    )


class Reporter:
    """Turns the notes of an :class:`~wsfast.opening.Opening` into socket events, with their durations.

    *events* is the client's :class:`~wsfast.Monitor` (``None``: nothing is reported).
    """

    def __init__(self, events: Monitor | None) -> None:
        self.events = events
        self._started = time.perf_counter()
        self._received = 0

    def sending(self) -> None:
        """A request is about to be written: the answer's duration and size count from here."""
        self._started = time.perf_counter()
        self._received = self.events.bytes_received if self.events is not None else 0

    def __call__(self, note: Note) -> None:
        events = self.events
        if events is None:
            return
        if isinstance(note, RequestSent):
            events.request_sent(note.request)
        elif isinstance(note, ResponseReceived):
            events.response_received(
                note.status,
                note.reason,
                note.headers,
                events.bytes_received - self._received,
                time.perf_counter() - self._started,
                note.operation,
            )
        elif isinstance(note, Redirected):
            events.redirect(note.status, note.location)
