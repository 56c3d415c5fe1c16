"""The asyncio client: ``async with wsfast.connect(url) as ws``, on the same sans-I/O core as the threaded
client (:mod:`wsfast.protocol`), with an inline-callback mode for the lowest latency."""

from .client import OverflowPolicy, WebSocket, connect

__all__ = ["OverflowPolicy", "WebSocket", "connect"]
