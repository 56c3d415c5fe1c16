"""Sans-I/O SOCKS client negotiation: SOCKS4, SOCKS4a, SOCKS5 (RFC 1928) with username/password (RFC 1929).

wsfast writes its own SOCKS client rather than depending on python-socks: the negotiation is a few dozen
bytes each way, and one sans-I/O implementation, fed bytes by :mod:`wsfast.opening`, serves every front-end
(threaded, asyncio, blocking) and runs over whatever the driver has: a TCP socket, a TLS connection, a
user's own socket. A library bound to its own sockets or event loop could do neither.

Use: ``negotiation.data_to_send()`` gives the bytes to write; feed what the proxy answers to
``receive_data()`` until :attr:`established` is true (then :attr:`leftover` holds any bytes after the
reply); ``receive_eof()`` when the proxy closes. Refusals and protocol violations raise
:class:`~wsfast.exceptions.ProxyError` with the reply code as ``status`` (``None`` for a broken reply).
"""

from __future__ import annotations

import ipaddress

from .exceptions import ProxyError

__all__ = ["SOCKS4_REPLIES", "SOCKS5_REPLIES", "Socks4Negotiation", "Socks5Negotiation", "SocksNegotiation"]

# SOCKS4 (the protocol document of Ying-Da Lee): the CD field of the reply.
SOCKS4_GRANTED = 90
SOCKS4_REPLIES = {
    91: "request rejected or failed",
    92: "the proxy cannot reach the client's identd",
    93: "the client's identd reported a different user id",
}
# RFC 1928 §6: the REP field.
SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
NO_AUTHENTICATION = 0x00
USERNAME_PASSWORD = 0x02
NO_ACCEPTABLE_METHODS = 0xFF


def _port(port: int) -> bytes:
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return port.to_bytes(2, "big")


def _encode_name(host: str) -> bytes:
    try:
        return host.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"{host[:80]!r} is not a valid host name: {exc}") from None


class SocksNegotiation:
    """What the SOCKS4 and SOCKS5 negotiations have in common: an output buffer and an input buffer."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._in = bytearray()
        self.established = False
        self.leftover = b""

    def data_to_send(self) -> bytes:
        """The bytes to write to the proxy now (empty when waiting for its answer)."""
        data, self._out = bytes(self._out), bytearray()
        return data

    def receive_data(self, data: bytes) -> None:
        """Bytes from the proxy.

        Raises:
            ProxyError: the proxy refused (``status`` is its reply code) or broke the protocol.
        """
        if self.established:
            raise RuntimeError("the SOCKS negotiation is over: bytes after it belong to the tunnel")
        self._in += data
        self._advance()

    def receive_eof(self) -> None:
        """The proxy closed the connection before the negotiation finished.

        Raises:
            ProxyError: always, unless the negotiation had already succeeded.
        """
        if not self.established:
            raise ProxyError(f"the {self.name} proxy closed the connection during the negotiation")

    name = "SOCKS"

    def _advance(self) -> None:
        raise NotImplementedError

    def _take(self, size: int) -> bytes | None:
        if len(self._in) < size:
            return None
        data = bytes(self._in[:size])
        del self._in[:size]
        return data

    def _finish(self) -> None:
        self.established = True
        self.leftover, self._in = bytes(self._in), bytearray()


class Socks4Negotiation(SocksNegotiation):
    """A SOCKS4 or SOCKS4a CONNECT.

    Args:
        host: an IPv4 address (SOCKS4), or a name the proxy resolves (SOCKS4a, when *remote_dns*).
        port: the server's port.
        user_id: the USERID field (the proxy URL's user name); empty by default.
        remote_dns: SOCKS4a: send *host* as a name (DSTIP 0.0.0.1, the name after the user id).

    Raises:
        ValueError: *host* is not an IPv4 address and *remote_dns* is false (resolve it first: SOCKS4
            carries IPv4 addresses only), or a field contains a NUL byte.
    """

    name = "SOCKS4"

    def __init__(self, host: str, port: int, *, user_id: str = "", remote_dns: bool = False) -> None:
        super().__init__()
        user = user_id.encode()
        if b"\0" in user or "\0" in host:
            raise ValueError("a SOCKS4 user id or host name cannot contain a NUL byte")
        request = b"\x04\x01" + _port(port)
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            if not remote_dns:
                raise ValueError(
                    f"SOCKS4 needs an IPv4 address, not {host!r}: resolve it first or use socks4a:// "
                    "(or socks5:// for IPv6)"
                ) from None
            self.name = "SOCKS4a"
            request += b"\x00\x00\x00\x01" + user + b"\0" + _encode_name(host) + b"\0"
        else:
            request += address.packed + user + b"\0"
        self._out += request

    def _advance(self) -> None:
        reply = self._take(8)
        if reply is None:
            return
        if reply[0] != 0:
            raise ProxyError(f"the {self.name} proxy sent an invalid reply (version byte {reply[0]})")
        code = reply[1]
        if code != SOCKS4_GRANTED:
            meaning = SOCKS4_REPLIES.get(code, "unknown reply code")
            raise ProxyError(f"the {self.name} proxy refused the connection: {meaning} (code {code})", code)
        self._finish()


class Socks5Negotiation(SocksNegotiation):
    """A SOCKS5 CONNECT (RFC 1928), with username/password authentication when given (RFC 1929).

    Args:
        host: an IP address, or a name the proxy resolves (ATYP DOMAINNAME, RFC 1928 §5).
        port: the server's port.
        username, password: offered with method 02 (RFC 1929) besides "no authentication".

    Raises:
        ValueError: a user name, password or host name over 255 bytes.
    """

    name = "SOCKS5"

    def __init__(
        self, host: str, port: int, *, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__()
        self._credentials: tuple[bytes, bytes] | None = None
        if username is not None:
            user, secret = username.encode(), (password or "").encode()
            if len(user) > 255 or len(secret) > 255:
                raise ValueError("SOCKS5 user names and passwords are at most 255 bytes (RFC 1929)")
            self._credentials = (user, secret)
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            name = _encode_name(host)
            if not 0 < len(name) < 256:
                raise ValueError(f"a SOCKS5 host name is 1 to 255 bytes, not {len(name)}") from None
            destination = b"\x03" + bytes([len(name)]) + name
        else:
            destination = (b"\x01" if address.version == 4 else b"\x04") + address.packed
        self._request = b"\x05\x01\x00" + destination + _port(port)
        methods = (
            bytes([NO_AUTHENTICATION, USERNAME_PASSWORD]) if self._credentials else bytes([NO_AUTHENTICATION])
        )
        self._out += b"\x05" + bytes([len(methods)]) + methods  # RFC 1928 §3
        self._step = self._method

    def _advance(self) -> None:
        while not self.established and self._step():
            pass

    def _method(self) -> bool:
        reply = self._take(2)
        if reply is None:
            return False
        if reply[0] != 5:
            raise ProxyError(f"the SOCKS5 proxy sent an invalid reply (version byte {reply[0]})")
        method = reply[1]
        if method == NO_AUTHENTICATION:
            self._out += self._request
            self._step = self._reply
        elif method == USERNAME_PASSWORD and self._credentials is not None:
            user, secret = self._credentials
            self._out += b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret  # RFC 1929 §2
            self._step = self._authenticated
        elif method == NO_ACCEPTABLE_METHODS:
            needs = "" if self._credentials else ": it may need a user name and password in the proxy URL"
            raise ProxyError(
                f"the SOCKS5 proxy accepts none of the offered authentication methods{needs}", method
            )
        else:
            raise ProxyError(f"the SOCKS5 proxy chose authentication method {method}, which was not offered")
        return True

    def _authenticated(self) -> bool:
        reply = self._take(2)
        if reply is None:
            return False
        if reply[0] != 1:
            raise ProxyError(
                f"the SOCKS5 proxy sent an invalid authentication reply (version byte {reply[0]})"
            )
        if reply[1] != 0:
            raise ProxyError(
                f"the SOCKS5 proxy rejected the user name or password (RFC 1929 status {reply[1]})", reply[1]
            )
        self._out += self._request
        self._step = self._reply
        return True

    def _reply(self) -> bool:
        if len(self._in) < 5:
            return False
        version, code, _, kind, first = self._in[:5]
        if version != 5:
            raise ProxyError(f"the SOCKS5 proxy sent an invalid reply (version byte {version})")
        if code != 0:
            meaning = SOCKS5_REPLIES.get(code, "unknown reply code")
            raise ProxyError(f"the SOCKS5 proxy refused the connection: {meaning} (code {code})", code)
        sizes = {1: 4, 4: 16, 3: 1 + first}
        if kind not in sizes:
            raise ProxyError(f"the SOCKS5 proxy sent a reply with an unknown address type {kind}")
        if self._take(4 + sizes[kind] + 2) is None:
            return False
        self._finish()
        return False
