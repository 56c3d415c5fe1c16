"""The proxy routes of the contract suite: how each kind of proxy is reached, and what proves it carried
a connection (see conftest.py's ``route`` fixture)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROXY_AUTH = ("alice", "s3cret")  # tinyproxy's BasicAuth
SOCKS_AUTH = ("bob", "pa55word")  # microsocks' -u/-P (RFC 1929)


@dataclass
class Route:
    """How to reach the echo servers through one proxy: the ``proxy`` URL, the host name to put in the
    WebSocket URL, extra client options, and what proves the proxy carried the connection."""

    name: str
    proxy: str
    host: str
    peer: str  # the address the server sees the connection come from
    options: dict[str, Any]
    carried: Callable[[], int] | None = None  # a count that grows with each tunnel (when peer can't tell)
