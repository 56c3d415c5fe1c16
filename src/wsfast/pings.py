"""The PINGs a client sent with ``ping()`` and the PONGs that answer them (RFC 6455 §5.5.2, §5.5.3), sans-I/O.

Both front-ends keep one :class:`Pings` per client and ask it what a PONG means; they own the waiting
(a future, an event) and the clock. The rules, decided here once:

* A PING's payload is the caller's (``str`` as UTF-8) or, by default, 4 random bytes, so that concurrent
  pings are told apart. Two PINGs in flight never share a payload: a PONG could not say which it answers.
* A PONG answers the PING whose payload it carries (§5.5.3) and every PING sent before it: an endpoint
  "MAY elect to send a Pong frame for only the most recently processed Ping frame". A PONG that carries
  no waiting payload (unsolicited, §5.5.3, or a keepalive PING's) answers none.
* The round-trip time is the time the PONG was read minus the time the PING was sent, both given by the
  driver on one monotonic clock.
* After the server's CLOSE no PONG can follow (§5.5.1), nor after the connection's end: every PING still
  waiting fails.

A driver::

    data = pings.payload(payload)            # ValueError: a PING with it is waiting
    frame = protocol.send_ping(data)         # ValueError: over 125 bytes
    pings.sent(data, waiter, now)            # write frame; wait on waiter
    for each PONG:                           for waiter, rtt in pings.answered(pong.payload, now): settle
    the server's CLOSE, the connection ends: for waiter in pings.closed(): fail it
    a waiter stops waiting (timeout):        pings.forget(waiter)

Not thread-safe: a threaded driver holds one lock around these calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, TypeVar

from ._typing import BytesLike

__all__ = ["DEFAULT_PAYLOAD_SIZE", "Pings"]

DEFAULT_PAYLOAD_SIZE = 4
"""Bytes of a default PING payload: 2**32 values, so concurrent pings are told apart."""

W = TypeVar("W")


class Pings(Generic[W]):
    """The PINGs waiting for their PONG, each with the driver's *waiter* (what it settles: a future).

    Args:
        random: ``random(n)`` returns *n* random bytes for default payloads (default :func:`os.urandom`);
            tests pass their own.
    """

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._waiting: dict[bytes, tuple[W, float]] = {}  # payload -> (waiter, sent at), in sending order

    def __len__(self) -> int:
        """How many PINGs wait for their PONG."""
        return len(self._waiting)

    def payload(self, payload: str | BytesLike | None = None) -> bytes:
        """The payload of the next PING: *payload* (``str`` encoded as UTF-8), or
        :data:`DEFAULT_PAYLOAD_SIZE` random bytes when it is ``None``.

        Raises:
            ValueError: a PING with this payload already waits for its PONG.
        """
        if payload is None:
            data = self._random(DEFAULT_PAYLOAD_SIZE)
        else:
            data = payload.encode() if isinstance(payload, str) else bytes(payload)
        if data in self._waiting:
            raise ValueError("a PING with this payload is already waiting for its PONG")
        return data

    def sent(self, payload: bytes, waiter: W, now: float) -> None:
        """The PING with *payload* (from :meth:`payload`) was sent at *now*; *waiter* waits for its PONG.

        Raises:
            ValueError: a PING with this payload already waits for its PONG.
        """
        if payload in self._waiting:
            raise ValueError("a PING with this payload is already waiting for its PONG")
        self._waiting[payload] = (waiter, now)

    def answered(self, payload: bytes, now: float) -> list[tuple[W, float]]:
        """The PINGs a PONG carrying *payload*, read at *now*, answers, each with its round-trip time in
        seconds, in the order they were sent: every PING sent before the one with *payload*, then that
        one (RFC 6455 §5.5.3). Empty for a PONG that answers none. They no longer wait."""
        if payload not in self._waiting:
            return []
        answered = []
        for key in list(self._waiting):
            waiter, sent_at = self._waiting.pop(key)
            answered.append((waiter, max(0.0, now - sent_at)))
            if key == payload:
                break
        return answered

    def closed(self) -> list[W]:
        """The server's CLOSE came (RFC 6455 §5.5.1: nothing follows it) or the connection ended: no PONG
        will come. Returns the waiters of every PING still waiting, to fail; none waits any longer."""
        waiters = [waiter for waiter, _ in self._waiting.values()]
        self._waiting.clear()
        return waiters

    def forget(self, waiter: W) -> None:
        """*waiter* stopped waiting (it timed out, it was cancelled): its PING no longer waits. Another
        waiter's PING that took its payload since keeps waiting (waiters are told apart by identity)."""
        for payload, (entry, _) in self._waiting.items():
            if entry is waiter:
                del self._waiting[payload]
                return
