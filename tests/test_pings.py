"""wsfast.pings: the bookkeeping of PINGs waiting for their PONG (RFC 6455 §5.5.2, §5.5.3), without I/O."""

from __future__ import annotations

import itertools

import pytest

from wsfast.pings import DEFAULT_PAYLOAD_SIZE, Pings


def counting_random() -> Pings[str]:
    """Pings whose default payloads are 0000, 0001, ... (4 bytes each)."""
    counter = itertools.count()
    return Pings(random=lambda size: next(counter).to_bytes(size, "big"))


class TestPayload:
    def test_default_is_random_bytes_of_the_default_size(self) -> None:
        pings: Pings[str] = Pings()
        first, second = pings.payload(), pings.payload()
        assert len(first) == len(second) == DEFAULT_PAYLOAD_SIZE == 4
        assert first != second  # 2**-32 odds of a false failure

    def test_random_source_is_injectable(self) -> None:
        pings = counting_random()
        assert [pings.payload(), pings.payload()] == [b"\0\0\0\0", b"\0\0\0\1"]

    def test_given_payloads(self) -> None:
        pings: Pings[str] = Pings()
        assert pings.payload("hé") == "hé".encode()
        assert pings.payload(bytearray(b"ab")) == b"ab"
        assert pings.payload(memoryview(b"cd")) == b"cd"
        assert pings.payload(b"") == b""

    def test_a_payload_in_flight_is_refused(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"p", "first", 1.0)
        with pytest.raises(ValueError, match="already waiting for its PONG"):
            pings.payload(b"p")
        with pytest.raises(ValueError, match="already waiting for its PONG"):
            pings.sent(b"p", "second", 2.0)
        assert pings.answered(b"p", 3.0) == [("first", 2.0)]
        assert pings.payload(b"p") == b"p"  # answered: free again

    def test_a_default_payload_in_flight_is_refused(self) -> None:
        pings: Pings[str] = Pings(random=lambda size: b"same")
        pings.sent(pings.payload(), "first", 0.0)
        with pytest.raises(ValueError, match="already waiting"):
            pings.payload()


class TestAnswered:
    def test_the_matching_ping_with_its_round_trip_time(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"a", "a", 10.0)
        assert len(pings) == 1
        assert pings.answered(b"a", 10.25) == [("a", 0.25)]
        assert len(pings) == 0

    def test_a_pong_answers_every_earlier_ping_too(self) -> None:
        # RFC 6455 §5.5.3: a PONG may answer only the most recent PING.
        pings: Pings[str] = Pings()
        for index, payload in enumerate([b"1", b"2", b"3", b"4"]):
            pings.sent(payload, payload.decode(), float(index))
        assert pings.answered(b"3", 10.0) == [("1", 10.0), ("2", 9.0), ("3", 8.0)]
        assert len(pings) == 1
        assert pings.answered(b"4", 10.5) == [("4", 7.5)]

    def test_sending_order_decides_not_the_clock(self) -> None:
        # A coarse clock gives two PINGs one time: the later one is not answered by the earlier's PONG.
        pings: Pings[str] = Pings()
        pings.sent(b"first", "first", 5.0)
        pings.sent(b"second", "second", 5.0)
        assert pings.answered(b"first", 6.0) == [("first", 1.0)]
        assert pings.answered(b"second", 6.0) == [("second", 1.0)]

    def test_a_pong_for_no_waiting_ping_answers_none(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"mine", "mine", 0.0)
        assert pings.answered(b"keepalive or unsolicited", 1.0) == []
        assert pings.answered(b"", 1.0) == []
        assert len(pings) == 1

    def test_round_trip_time_is_never_negative(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"p", "p", 2.0)
        assert pings.answered(b"p", 1.0) == [("p", 0.0)]


class TestClosedAndForget:
    def test_closed_returns_every_waiter_and_empties(self) -> None:
        pings = counting_random()
        for waiter in ("a", "b", "c"):
            pings.sent(pings.payload(), waiter, 0.0)
        assert pings.closed() == ["a", "b", "c"]
        assert len(pings) == 0
        assert pings.closed() == []
        assert pings.answered(b"\0\0\0\0", 1.0) == []

    def test_forget_drops_only_that_waiters_ping(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"p", "old", 0.0)
        pings.forget("old")
        assert len(pings) == 0
        pings.sent(b"p", "new", 1.0)
        pings.forget("old")  # a late forget by the old waiter leaves the new PING waiting
        pings.forget("unknown")
        assert pings.answered(b"p", 2.0) == [("new", 1.0)]

    def test_a_forgotten_ping_is_not_answered_by_a_later_pong(self) -> None:
        pings: Pings[str] = Pings()
        pings.sent(b"1", "one", 0.0)
        pings.sent(b"2", "two", 1.0)
        pings.forget("one")
        assert pings.answered(b"2", 3.0) == [("two", 2.0)]
