"""The receive queue of a front-end whose application reads messages, sans-I/O: :class:`Delivery`.

A front-end that hands messages to a reader (``recv()``, ``async for``) rather than to an inline callback
keeps one :class:`Delivery` across its connections. It decides what a bounded queue does; the driver
owns the transport, the waiting and the wake-ups:

* ``max_queue`` messages wait at most before the :class:`OverflowPolicy` applies: ``"pause"`` stops
  reading from the socket (TCP backpressure, nothing lost) until the reader brings the queue down to its
  low-water mark (a quarter of ``max_queue``); ``"drop_oldest"`` keeps the newest ``max_queue`` messages
  and counts the others in :attr:`Delivery.dropped`; ``"error"`` fails the connection with 1008 (RFC 6455
  §7.4.1, policy violation) and keeps the messages queued before the overflow readable, then
  :attr:`Delivery.error` is raised after them.
* A protocol error found behind messages (RFC 6455 §7.1.7: frames are processed in order) waits behind
  them as the :data:`FAILED` marker: the reader takes those messages first, then reaching the marker
  fails the connection.
* After a reconnection, a :class:`~wsfast.Reconnected` marker is queued at the gap, before the new
  connection's messages, so that a reader can resynchronise.
* A message that ``loads`` rejected is a :class:`~wsfast.MessageDecodeError` in the stream, raised by
  :meth:`Delivery.get` at its place (the connection stays usable).
* One reader at a time: a second reader waiting at once could never be served in order, and one of
  them would wait forever; :attr:`Delivery.reader` refuses it with :class:`~wsfast.ConcurrencyError`.

A driver's use::

    delivery = Delivery(max_queue, overflow, pause_reading=..., resume_reading=...)
    on messages:         if delivery.put(messages, protocol): write protocol.data_to_send(); close
                         wake the reader
    on a protocol error: if not delivery.queue_failure(): fail the connection now (nothing queued)
    reader:              while not delivery.queue:
                             if delivery.empty(protocol, ...) is AWAIT_CLOSE: wait for TCP to close
                             else: with delivery.reader: wait for a wake-up
                             (empty() raises when no message will come)
                         message = delivery.get()
                         if message is FAILED: fail the connection now, raise its error
    at each connection:  delivery.opened(reconnected_marker_or_None)

Reading also pauses while the server does not read our replies: a reply (a PONG, a CLOSE) written while
the transport's write buffer is full stops reading what asks for more of them (a PING flood would grow the
buffer without bound, as the threaded client's reader blocks in ``sendall``) until the buffer drains
(:meth:`Delivery.replies_blocked`, :meth:`Delivery.replies_drained`).

Reading is paused and resumed through the two callables given (as websockets' ``Assembler`` does), so
that :meth:`Delivery.get` can raise a :class:`~wsfast.MessageDecodeError` at its place and still resume
reading first. Not thread-safe: a threaded driver calls it under the lock that guards its queue.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Iterable
from typing import Any, Final

from .exceptions import ConcurrencyError, ConnectionClosedError, MessageDecodeError
from .frames import CloseCode
from .health import Reconnected
from .protocol import ClientProtocol, State

__all__ = ["AWAIT_CLOSE", "FAILED", "WAIT", "Delivery", "OverflowPolicy"]


class OverflowPolicy(str, enum.Enum):
    """What happens when messages arrive faster than the application reads them (``max_queue``)."""

    PAUSE = "pause"  # stop reading from the socket (TCP backpressure) until the queue drains to 1/4
    DROP_OLDEST = "drop_oldest"  # keep the newest max_queue messages, count the dropped ones
    ERROR = "error"  # fail the connection (1008) and raise from recv() after the queued messages


class _Failed:
    """The type of :data:`FAILED`."""

    def __repr__(self) -> str:
        return "wsfast.delivery.FAILED"


FAILED: Final = _Failed()
"""Queued behind the messages that preceded a protocol error: reaching it fails the connection."""

WAIT: Final = "wait"
"""What :meth:`Delivery.empty` says when a message (or a new connection) may still come: wait."""

AWAIT_CLOSE: Final = "await_close"
"""What :meth:`Delivery.empty` says after the closing handshake: wait for the server to close TCP (RFC 6455
§7.1.1, bounded by ``close_timeout``), then look again."""


class _Reader:
    """The one reader allowed to wait at a time (a context manager, cheaper than a generator's)."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting = False

    def __enter__(self) -> None:
        if self.waiting:
            raise ConcurrencyError(
                "recv() called while another recv() (or async for) is waiting for the next message: "
                "read from one task (or thread) and hand the messages on through a queue of your own"
            )
        self.waiting = True

    def __exit__(self, *exc_info: object) -> None:
        self.waiting = False


class Delivery:
    """A bounded queue of messages for a reader, and what its overflow policy decides.

    Args:
        max_queue: messages held before *overflow* applies (at least 1).
        overflow: an :class:`OverflowPolicy` or its value.
        pause_reading: stop reading from the connection (the queue is full, or a failure waits in it).
        resume_reading: read again (the reader brought the queue down to the low-water mark).

    Attributes:
        queue: the messages (and markers) waiting to be read, oldest first.
        paused: whether the ``"pause"`` policy stopped reading.
        dropped: messages dropped by the ``"drop_oldest"`` policy, over every connection.
        error: the :class:`~wsfast.ConnectionClosedError` (1008) once the ``"error"`` policy failed the
            connection; the reader gets it after the messages queued before the overflow.
        failure_queued: a protocol error waits behind queued messages on the current connection.
        replies_waiting: reading is paused until the server reads our replies.
    """

    def __init__(
        self,
        max_queue: int,
        overflow: OverflowPolicy | str,
        *,
        pause_reading: Callable[[], None],
        resume_reading: Callable[[], None],
    ) -> None:
        self.queue: collections.deque[Any] = collections.deque()
        self.max_queue = max_queue
        self.low_water = max(max_queue // 4, 1) if max_queue > 1 else 0
        self.overflow = OverflowPolicy(overflow)
        self._pause = pause_reading
        self._resume = resume_reading
        self.paused = False
        self.dropped = 0
        self.error: ConnectionClosedError | None = None
        self.failure_queued = False
        self.replies_waiting = False
        self.reader = _Reader()
        """``with delivery.reader:`` around a reader's wait for the next message (the queue is empty);
        entering raises :class:`~wsfast.ConcurrencyError` while another reader waits."""

    def opened(self, reconnected: Reconnected | None) -> None:
        """A connection opened, its reading not paused; *reconnected* (the marker of a reconnection,
        ``None`` for the first connection) is queued at the gap, before the new connection's messages."""
        self.paused = False
        self.failure_queued = False
        self.replies_waiting = False
        if reconnected is not None:
            self.queue.append(reconnected)

    def put(self, messages: Iterable[Any], protocol: ClientProtocol) -> bool:
        """Queue *messages* received on *protocol*'s connection, in order, and apply the overflow policy.

        Returns ``True`` when the ``"error"`` policy failed the connection (1008): the driver writes
        ``protocol.data_to_send()`` and closes. The driver wakes the reader either way.
        """
        queue = self.queue
        queue.extend(messages)
        if len(queue) < self.max_queue:
            return False
        if self.overflow is OverflowPolicy.PAUSE:
            # Once closing, reading goes on: the server's CLOSE must be seen (close_timeout bounds it).
            if not self.paused and protocol.close_sent is None:
                self.paused = True
                self._pause()
        elif self.overflow is OverflowPolicy.DROP_OLDEST:
            while len(queue) > self.max_queue:
                queue.popleft()
                self.dropped += 1
        elif len(queue) > self.max_queue:
            # The messages queued before the overflow stay readable; the error comes after them. Those
            # beyond max_queue are the overflow: the connection fails on them.
            while len(queue) > self.max_queue:
                queue.pop()
            reason = f"receive queue overflow (max_queue={self.max_queue})"
            self.error = ConnectionClosedError(
                CloseCode.POLICY_VIOLATION, reason, protocol.close_received is not None
            )
            if protocol.state is State.OPEN:
                # RFC 6455 §7.4.1: 1008, "a message that violates its policy".
                protocol.fail(CloseCode.POLICY_VIOLATION, reason)
            return True
        return False

    def queue_failure(self) -> bool:
        """A protocol error was found after the messages just queued (RFC 6455 §7.1.7): queue
        :data:`FAILED` behind them and pause reading. Returns ``False`` when nothing is queued (the driver
        fails the connection now), ``True`` when the failure waits (the driver bounds the wait, with
        ``close_timeout``, the first time)."""
        if self.failure_queued:
            return True
        if not self.queue:
            return False
        self.failure_queued = True
        self.queue.append(FAILED)
        self._pause()
        return True

    def release_failure(self) -> bool:
        """The connection fails now for the failure that waited in the queue (or not): whether reading
        was paused for it, and must resume so that the server's TCP close is seen."""
        if not self.failure_queued:
            return False
        self.paused = False
        return True

    def unpause(self) -> None:
        """Resume reading if the ``"pause"`` policy stopped it (closing: the server's CLOSE must be read)."""
        if self.paused:
            self.paused = False
            if not self.replies_waiting:
                self._resume()

    def replies_blocked(self) -> None:
        """A reply was written and the transport's write buffer is full: pause reading until
        :meth:`replies_drained`."""
        if not self.replies_waiting:
            self.replies_waiting = True
            self._pause()

    def replies_drained(self) -> None:
        """The transport's write buffer drained: resume reading if only the replies paused it."""
        if self.replies_waiting:
            self.replies_waiting = False
            if not self.paused and not self.failure_queued:
                self._resume()

    def empty(
        self, protocol: ClientProtocol, *, reconnecting: bool, gave_up: BaseException | None = None
    ) -> str:
        """What a reader finds when the queue is empty, on the connection of *protocol*: :data:`WAIT` or
        :data:`AWAIT_CLOSE`. *reconnecting*: whether another connection may still follow this one;
        *gave_up*: why reconnecting gave up, if it did.

        Raises:
            ConnectionClosedError: the ``"error"`` policy failed the connection (after the messages
                queued before the overflow), or it closed abnormally and none follows.
            ConnectionClosedOK: it closed normally and none follows.
        """
        if self.error is not None:
            raise self.error
        if protocol.state is State.CLOSED or protocol.failed:
            if not reconnecting:
                raise gave_up or protocol.closed_exception()
            return WAIT  # between connections: the reconnection (or giving up) wakes the reader
        if protocol.close_received is not None and protocol.state is not State.OPEN:
            return AWAIT_CLOSE
        return WAIT

    def get(self) -> Any:
        """Take the next message (the queue holds one): a message, a :class:`~wsfast.Reconnected`
        marker, or :data:`FAILED` (the driver fails the connection and raises its error). Resumes
        reading when the queue is down to the low-water mark.

        Popping the queue, :meth:`drained` once the queue is down to :attr:`low_water` while
        :attr:`paused`, and raising a decode error are all this does: a driver's hot path may do it inline
        (a call less per message) when the next item is not :data:`FAILED`.

        Raises:
            MessageDecodeError: ``loads`` rejected this message (its bytes in ``.payload``); the next
                message follows on the next call.
        """
        queue = self.queue
        message = queue.popleft()
        if self.paused and len(queue) <= self.low_water:
            self.drained()
        if type(message) is MessageDecodeError:
            raise message
        return message

    def drained(self) -> None:
        """The reader brought a paused queue down to :attr:`low_water`: resume reading (unless the
        server's unread replies keep it paused). :meth:`get` calls it; a driver's inlined hot path too."""
        self.paused = False
        if not self.replies_waiting:
            self._resume()
