"""The threaded client's opening executor: it does what a :class:`~wsfast.opening.Opening` asks with blocking
sockets, all within one ``open_timeout`` deadline; and the blocking-socket helpers the client keeps using on
the connection it opened (:class:`TLSStream`, :func:`readable_waiter`).

Not part of the sans-I/O core: this module owns sockets, TLS and timeouts. It decides nothing: the proxy's
protocol, TLS, the upgrade and redirects are :mod:`wsfast.opening`'s.

TLS is never an ``ssl.SSLSocket``: the client's event thread reads while other threads send, which one
``SSLSocket`` does not allow. :class:`TLSStream` runs each TLS connection (the server's, an ``https://``
proxy's, or the server's inside the proxy's) in an ``ssl.SSLObject`` over memory BIOs and offers the
socket methods the client uses (``recv_into``, ``sendall``, ``shutdown``, ``fileno``, ``pending``).
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from ._opening_io import Reporter, answer, new_opening, open_timeout_error, opening_error
from .exceptions import WebSocketError
from .handshake import Accepted
from .opening import (
    Action,
    Connect,
    ConnectUnix,
    Disconnect,
    Open,
    Receive,
    Resolve,
    Send,
    StartTLS,
    UseSocket,
)
from .uri import WebSocketURL

if TYPE_CHECKING:
    from ._monitor import Monitor
    from .config import Config

__all__ = ["TLSStream", "open_connection", "readable_waiter"]

READ_SIZE = 65536


class TLSStream:
    """A TLS connection over a socket (a plain one, or an ``https://`` proxy's TLS connection) that one
    thread reads while others write, with the socket methods the threaded client uses.

    OpenSSL forbids using one ``SSL`` object from two threads at once, and an ``ssl.SSLSocket`` does
    nothing to prevent it: the event thread's ``SSL_read`` would run while another thread's ``SSL_write``
    does, and a TLS 1.3 KeyUpdate (RFC 8446 §4.6.3), which the read path answers, could then corrupt the
    stream. Here the ``ssl.SSLObject`` runs over memory BIOs under a lock that is held only while OpenSSL
    works, never while waiting on the socket. One thread at a time (the *sender*) writes the encrypted
    bytes, in the order OpenSSL produced them; a reader never waits for a blocked sender: records its
    SSL_read produced are left for the sender, which takes everything pending before it stops sending.
    """

    def __init__(self, outer: Any, context: ssl_module.SSLContext, server_hostname: str) -> None:
        self._outer = outer
        self._incoming = ssl_module.MemoryBIO()
        self._outgoing = ssl_module.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._lock = threading.Lock()
        self._sender_done = threading.Condition(self._lock)
        self._sending = False  # a thread is writing encrypted bytes to the socket
        self._raw = bytearray(READ_SIZE)
        self._raw_view = memoryview(self._raw)
        self._more = False  # the last read filled its buffer: records may wait in the incoming BIO
        self._ended = False  # the peer's close_notify, or the socket's end, was read
        self._starved = False  # OpenSSL wants more ciphertext than the incoming BIO has
        outer_pending = getattr(outer, "pending", None)  # an SSLSocket's decrypted bytes (TLS in TLS)
        self._outer_pending: Callable[[], int] = outer_pending if outer_pending is not None else int

    def do_handshake(self) -> None:
        """Run the TLS handshake (one thread: the connection is not shared yet)."""
        while True:
            with self._lock:
                try:
                    self._ssl.do_handshake()
                    done = True
                except ssl_module.SSLWantReadError:
                    done = False
                data = self._claim()
            if data:
                self._send(data)
            if done:
                return
            self._feed()

    def _feed(self) -> None:
        """Wait for ciphertext from the socket and give it to the SSL object (no lock held while waiting)."""
        size = self._outer.recv_into(self._raw_view)
        with self._lock:
            self._starved = False
            if size:
                self._incoming.write(self._raw_view[:size])
            else:
                self._incoming.write_eof()

    def _claim(self) -> bytes:
        """Under the lock: the encrypted bytes waiting to be sent, if no other thread is sending (this one
        becomes the sender, and must call :meth:`_send`); else nothing: the sender will take them."""
        if self._sending or not self._outgoing.pending:
            return b""
        self._sending = True
        return self._outgoing.read()

    def _send(self, data: bytes) -> None:
        """As the sender: write *data*, then whatever was encrypted meanwhile, then stop being the sender."""
        try:
            while data:
                self._outer.sendall(data)
                with self._lock:
                    data = self._outgoing.read()
                    if not data:
                        self._sending = False
                        self._sender_done.notify_all()
        except BaseException:
            with self._lock:
                self._sending = False
                self._sender_done.notify_all()
            raise

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        view = memoryview(buffer)[: nbytes or len(buffer)]
        wanted = len(view)
        while not self._ended:
            size = 0
            with self._lock:
                if not self._starved:
                    try:
                        # Decrypt all that came in, without waiting (OpenSSL may hold whole records read
                        # ahead, which no poll of the socket would show), until it wants more.
                        while size < wanted:
                            read: int = self._ssl.read(wanted - size, view[size:])  # type: ignore[assignment]
                            if not read:  # the peer's close_notify (RFC 8446 §6.1)
                                self._ended = True
                                break
                            size += read
                    except ssl_module.SSLWantReadError:
                        self._starved = True
                    except (ssl_module.SSLZeroReturnError, ssl_module.SSLEOFError):
                        self._ended = True  # the end of the stream (ragged: no close_notify)
                data = self._claim()  # a KeyUpdate answer (RFC 8446 §4.6.3), an alert
            if data:
                try:
                    self._send(data)
                except OSError:
                    if not self._ended:
                        raise  # else: an alert about the end, to a peer that is gone; the end stands
            if size:  # then 0 once the stream ended
                self._more = not (self._starved or self._ended)  # the buffer filled up first
                return size
            if not self._ended:
                self._feed()
        self._more = False
        return 0

    def recv(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[: self.recv_into(buffer)])

    def sendall(self, data: Any) -> None:
        with self._lock:
            while self._sending:
                self._sender_done.wait()
            self._ssl.write(data)
            data = self._claim()
        self._send(data)

    def pending(self) -> int:
        """Bytes readable without waiting on the socket: decrypted, or complete records not decrypted yet."""
        return self._ssl.pending() or int(self._more) or self._outer_pending()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._ssl.cipher()

    def settimeout(self, timeout: float | None) -> None:
        self._outer.settimeout(timeout)

    def fileno(self) -> int:
        return int(self._outer.fileno())

    def shutdown(self, how: int) -> None:
        self._outer.shutdown(how)

    def close(self) -> None:
        self._outer.close()

    def getpeername(self) -> Any:
        return self._outer.getpeername()

    def getsockname(self) -> Any:
        return self._outer.getsockname()


def _nodelay(sock: Any) -> None:
    # Market data is latency-sensitive: never let Nagle's algorithm hold back a small frame.
    if getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Executor:
    """Executes the actions of one opening; owns the socket until it is handed over."""

    def __init__(
        self,
        reporter: Reporter,
        deadline: float | None,
        connect_timeout: float | None,
        sock: socket.socket | None,
    ) -> None:
        self.reporter = reporter
        self.events: Monitor | None = reporter.events
        self.deadline = deadline
        self.connect_timeout = connect_timeout
        self.given = sock
        self.current: Any = None

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("open_timeout expired")
        return remaining

    def perform(self, action: Action) -> Any:
        if isinstance(action, Receive):
            self.current.settimeout(self.remaining())
            data = self.current.recv(READ_SIZE)
            if data and self.events is not None:
                self.events.data_read(data)
            return data
        if isinstance(action, Send):
            self.current.settimeout(self.remaining())
            self.reporter.sending()
            if self.events is None:
                self.current.sendall(action.data)
            else:
                self.events.send(self.current.sendall, action.data)
            return None
        if isinstance(action, Connect):
            self.current = self.connect(action.host, action.port)
        elif isinstance(action, ConnectUnix):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.current = sock
            sock.settimeout(self.limit(self.connect_timeout))
            sock.connect(action.path)
        elif isinstance(action, UseSocket):
            assert self.given is not None
            self.current, self.given = self.given, None
            _nodelay(self.current)
        elif isinstance(action, Resolve):
            return self.resolve(action)
        elif isinstance(action, StartTLS):
            self.start_tls(action)
        elif isinstance(action, Disconnect):
            self.close()
        return None

    def limit(self, timeout: float | None) -> float | None:
        remaining = self.remaining()
        if remaining is None:
            return timeout
        return remaining if timeout is None else min(timeout, remaining)

    def connect(self, host: str, port: int) -> socket.socket:
        timeout = self.limit(self.connect_timeout)
        events = self.events
        if events is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            _nodelay(sock)
            return sock
        # What socket.create_connection does (every address in turn, the last error raised), with the
        # steps reported.
        infos = events.lookup(host, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        error: OSError | None = None
        for info in infos:
            family, kind, proto, _, address = info
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                events.connecting(host, info)
                started = time.perf_counter()
                sock.connect(address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            events.connected(info, time.perf_counter() - started)
            _nodelay(sock)
            return sock
        raise error if error is not None else OSError(f"getaddrinfo returned no address for {host!r}")

    def resolve(self, action: Resolve) -> str:
        family = socket.AF_INET if action.ipv4_only else socket.AF_UNSPEC

        def lookup() -> list[Any]:
            return socket.getaddrinfo(action.host, action.port, family, socket.SOCK_STREAM)

        infos = lookup() if self.events is None else self.events.lookup(action.host, lookup)
        if not infos:
            raise OSError(f"getaddrinfo returned no address for {action.host!r}")
        return str(infos[0][4][0])

    def start_tls(self, action: StartTLS) -> None:
        self.current.settimeout(self.limit(self.connect_timeout))
        events = self.events
        started = time.perf_counter()
        if events is not None:
            events.tls_start(action.server_hostname)
        # The server's TLS inside an https:// proxy's is a TLSStream over a TLSStream: each is thread-safe.
        stream = TLSStream(self.current, action.context, action.server_hostname)
        stream.do_handshake()
        self.current = stream
        if events is not None:
            events.tls_established(self.current.cipher(), time.perf_counter() - started)

    def close(self) -> None:
        sock, self.current = self.current, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
            if self.events is not None:
                self.events.closed()
        if self.given is not None:  # the user's socket, never used: it was handed to us all the same
            with contextlib.suppress(OSError):
                self.given.close()
            self.given = None


def open_connection(config: Config, events: Monitor | None) -> tuple[socket.socket, Accepted, WebSocketURL]:
    """Open a connection of the client *config* describes: execute its :class:`~wsfast.opening.Opening`'s
    actions with blocking sockets until the upgrade is accepted; return the socket, what the server
    accepted, and the URL it was accepted at (after redirects).

    The option *connect_timeout* bounds each TCP connection attempt and TLS handshake, *open_timeout*
    everything together; the *sock* option's socket serves the first connection only
    (:meth:`~wsfast.config.Config.take_sock`); *events* gets the socket
    events (``None``: nothing observes the client). The socket returned is blocking, with no timeout: the
    caller sets its own. For ``wss://`` it is a :class:`TLSStream`, which has the socket methods the
    client uses.

    Raises:
        OpenTimeout: *open_timeout* expired (``hop`` and ``stage`` say during what).
        TLSError: a TLS handshake failed (``hop``: ``"proxy"`` or ``"server"``).
        OpeningError: a connection, a lookup, a read or a write failed (the ``OSError`` is its
            ``__cause__``), or the socket given with *sock* served a connection already.
        ProxyError: the proxy refused, or broke its protocol.
        HandshakeError: the server refused the upgrade, or redirected too often (:class:`TooManyRedirects`).
        InvalidURL: a redirect that cannot be followed.
    """
    reporter = Reporter(events)
    open_timeout = config["open_timeout"]
    deadline = None if open_timeout is None else time.monotonic() + open_timeout
    executor = _Executor(reporter, deadline, config.connect_timeout, config.take_sock())
    action: Action | None = None
    try:
        opening = new_opening(config, reporter)
        action = opening.start()
        while not isinstance(action, Open):
            try:
                result = executor.perform(action)
            except WebSocketError:
                raise
            except TimeoutError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise open_timeout_error(action, open_timeout) from exc
                raise opening_error(action, exc) from exc
            except OSError as exc:
                raise opening_error(action, exc) from exc
            action = answer(opening, action, result)
        executor.current.settimeout(None)
        return cast(socket.socket, executor.current), action.accepted, action.url
    except BaseException:
        executor.close()
        raise


def readable_waiter(sock: socket.socket) -> Callable[[float], bool]:
    """A function that waits up to *timeout* seconds for *sock* to be readable, without reading."""
    pending = getattr(sock, "pending", None)  # TLS: decrypted bytes may wait in the SSL object
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)

        def wait(timeout: float) -> bool:
            if pending is not None and pending():
                return True
            # Round up, so a wait never ends just before its deadline and spins.
            return bool(poller.poll(max(0, int(timeout * 1000) + 1)))

    else:  # Windows

        def wait(timeout: float) -> bool:
            if pending is not None and pending():
                return True
            readable, _, errored = select.select([sock], [], [sock], max(0.0, timeout))
            return bool(readable or errored)

    return wait
