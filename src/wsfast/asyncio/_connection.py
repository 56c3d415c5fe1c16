"""The asyncio client's protocol: :class:`_Connection`, an :class:`asyncio.BufferedProtocol` that hands the
transport's reusable receive buffer straight to the :class:`~wsfast.asyncio.WebSocket` once the connection
is open (no copy, no task per read), and keeps what arrives before for the opening executor
(:mod:`wsfast.asyncio._opening`)."""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._monitor import Monitor
    from .client import WebSocket

__all__ = ["RECEIVE_BUFFER_SIZE", "_Connection", "_Phase"]

RECEIVE_BUFFER_SIZE = 256 * 1024


class _Phase(enum.Enum):
    HANDSHAKE = 1  # opening: TCP, TLS, the proxy's exchange, the upgrade
    OPEN = 2
    ENDED = 3  # replaced or closed: callbacks from its transport are ignored


_PHASE_OPEN = _Phase.OPEN  # read on every socket read: a global, not an enum attribute (~70 ns on 3.11)


class _Connection(asyncio.BufferedProtocol):
    """The asyncio protocol: moves bytes between the transport and the sans-I/O core, and holds what
    belongs to one connection (its timers, its end)."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._buffer = bytearray(RECEIVE_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self.transport: asyncio.Transport | None = None
        self.phase = _Phase.HANDSHAKE
        self.pending = bytearray()  # bytes read before the WebSocket connection is open
        self.waiter: asyncio.Future[None] | None = None  # woken when pending grows or the peer leaves
        loop = asyncio.get_running_loop()
        self.lost = loop.create_future()  # the transport is closed
        self.ended = loop.create_future()  # the open WebSocket connection ended (see end())
        self.eof = False
        self.events: Monitor | None = ws._events
        self.closed_reported = False
        self.beat_timer: asyncio.TimerHandle | None = None  # keepalive and idle verdicts
        self.close_timer: asyncio.TimerHandle | None = None  # bounds the wait for the server's TCP close
        self.failure_timer: asyncio.TimerHandle | None = None  # bounds a failure queued behind messages

    # Transport callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.events is not None:
            self.events.data_read(self._view[:nbytes])
        if self.phase is _PHASE_OPEN:
            self._ws._receive(self._view[:nbytes])
        else:
            self.pending += self._view[:nbytes]
            self._wake()

    def eof_received(self) -> bool | None:
        self._peer_gone()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_gone()
        if not self.lost.done():
            self.lost.set_result(None)

    def _peer_gone(self) -> None:
        if self.phase is _Phase.OPEN:
            self.report_closed()  # before, the code opening the connection reports it in order
        self.eof = True
        self._wake()
        self.end()

    def opened(self, leftover: bytes) -> None:
        """The WebSocket connection is open: hand what arrived already to the WebSocket, in order."""
        self.phase = _Phase.OPEN
        data = leftover + bytes(self.pending)
        self.pending.clear()
        if data:
            self._ws._receive(memoryview(data))
        if self.eof:
            self.end()
        if self.lost.done():  # the server closed TCP before the connection opened
            self.report_closed()

    def end(self) -> None:
        """The open WebSocket connection on this transport ended (once): its timers stop."""
        if self.phase is _Phase.OPEN:
            self.phase = _Phase.ENDED
            for timer in (self.beat_timer, self.close_timer, self.failure_timer):
                if timer is not None:
                    timer.cancel()
            self.ended.set_result(None)
            self._ws._connection_ended(self)

    def pause_writing(self) -> None:
        self._ws._pause_writing()

    def resume_writing(self) -> None:
        self._ws._resume_writing()

    def report_closed(self) -> None:
        """Tell the event subscribers, once, that the socket is closed."""
        if self.events is not None and not self.closed_reported:
            self.closed_reported = True
            self.events.closed()

    # Before the connection is open

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> bytes:
        """The bytes received so far and not read yet, waiting for some; ``b""`` once the peer closed."""
        while not self.pending and not self.eof:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        data, self.pending = bytes(self.pending), bytearray()
        return data
