"""The receive queue's policy (wsfast.delivery), sans-I/O: overflow, low-water resume, markers."""

from __future__ import annotations

import pytest

from wsfast.delivery import AWAIT_CLOSE, FAILED, WAIT, Delivery, OverflowPolicy
from wsfast.exceptions import ConcurrencyError, ConnectionClosedError, MessageDecodeError
from wsfast.frames import CloseCode
from wsfast.health import Reconnected
from wsfast.protocol import ClientProtocol, State


class Reading:
    """Records what the queue asks of the driver's reading."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")


def make(max_queue: int, overflow: str = "pause") -> tuple[Delivery, Reading, ClientProtocol]:
    reading = Reading()
    delivery = Delivery(max_queue, overflow, pause_reading=reading.pause, resume_reading=reading.resume)
    return delivery, reading, ClientProtocol()


def take_all(delivery: Delivery) -> list[object]:
    taken = []
    while delivery.queue:
        taken.append(delivery.get())
    return taken


class TestPause:
    def test_reading_pauses_at_max_queue_and_resumes_at_the_low_water_mark(self) -> None:
        delivery, reading, protocol = make(8)
        assert delivery.low_water == 2
        assert not delivery.put(range(7), protocol)
        assert reading.calls == []
        assert not delivery.put([7, 8], protocol)  # nothing is lost: the queue holds more than max
        assert reading.calls == ["pause"]
        assert delivery.paused
        assert not delivery.put([9], protocol)
        assert reading.calls == ["pause"]  # once
        assert [delivery.get() for _ in range(7)] == list(range(7))
        assert reading.calls == ["pause"]  # 3 left: above the low-water mark
        assert delivery.get() == 7
        assert reading.calls == ["pause", "resume"]
        assert not delivery.paused
        assert take_all(delivery) == [8, 9]

    def test_reading_goes_on_once_closing(self) -> None:
        # The server's CLOSE must be read for the closing handshake to end.
        delivery, reading, protocol = make(2)
        protocol.send_close(CloseCode.NORMAL_CLOSURE)
        delivery.put([1, 2, 3], protocol)
        assert reading.calls == []
        assert not delivery.paused

    def test_unpause_resumes_only_a_paused_queue(self) -> None:
        delivery, reading, protocol = make(2)
        delivery.unpause()
        assert reading.calls == []
        delivery.put([1, 2], protocol)
        delivery.unpause()
        assert reading.calls == ["pause", "resume"]
        assert not delivery.paused

    def test_max_queue_of_one_resumes_when_empty(self) -> None:
        delivery, reading, protocol = make(1)
        assert delivery.low_water == 0
        delivery.put(["a"], protocol)
        assert delivery.get() == "a"
        assert reading.calls == ["pause", "resume"]


class TestReplies:
    def test_reading_pauses_until_the_server_reads_our_replies(self) -> None:
        delivery, reading, _ = make(8)
        delivery.replies_blocked()
        delivery.replies_blocked()
        assert reading.calls == ["pause"]
        delivery.replies_drained()
        assert reading.calls == ["pause", "resume"]
        delivery.replies_drained()
        assert reading.calls == ["pause", "resume"]

    def test_the_queue_resumes_reading_only_once_the_replies_are_read(self) -> None:
        delivery, reading, protocol = make(4)
        delivery.put(range(4), protocol)
        delivery.replies_blocked()
        take_all(delivery)
        assert not delivery.paused
        assert reading.calls == ["pause", "pause"]  # the full queue, the replies: still paused
        delivery.replies_drained()
        assert reading.calls == ["pause", "pause", "resume"]

    def test_a_full_queue_keeps_reading_paused_after_the_replies_drain(self) -> None:
        delivery, reading, protocol = make(4)
        delivery.replies_blocked()
        delivery.put(range(4), protocol)
        delivery.replies_drained()
        assert reading.calls == ["pause", "pause"]
        delivery.opened(None)  # a new connection reads
        assert not delivery.replies_waiting


def test_one_reader_at_a_time() -> None:
    delivery, _, _ = make(4)
    with delivery.reader, pytest.raises(ConcurrencyError, match="another recv"), delivery.reader:
        pass  # pragma: no cover
    with delivery.reader:  # the first one is done: the next may wait
        pass


class TestDropOldest:
    def test_keeps_the_newest_and_counts_the_rest(self) -> None:
        delivery, reading, protocol = make(3, OverflowPolicy.DROP_OLDEST)
        assert not delivery.put(range(5), protocol)
        assert not delivery.put([5], protocol)
        assert take_all(delivery) == [3, 4, 5]
        assert delivery.dropped == 3
        assert reading.calls == []


class TestError:
    def test_the_queued_messages_stay_readable_and_the_connection_fails_with_1008(self) -> None:
        delivery, reading, protocol = make(4, "error")
        assert not delivery.put(range(4), protocol)  # full, not over
        assert delivery.error is None
        assert delivery.put([4, 5], protocol)
        error = delivery.error
        assert isinstance(error, ConnectionClosedError)
        assert error.code == CloseCode.POLICY_VIOLATION
        assert "max_queue=4" in error.reason
        assert protocol.state is not State.OPEN
        assert protocol.close_sent is not None
        assert protocol.close_sent.code == CloseCode.POLICY_VIOLATION
        assert protocol.data_to_send()  # the CLOSE the driver writes
        assert take_all(delivery) == [0, 1, 2, 3]
        assert reading.calls == []


class TestFailure:
    def test_nothing_queued_fails_now(self) -> None:
        delivery, reading, _ = make(4)
        assert not delivery.queue_failure()
        assert not delivery.queue
        assert reading.calls == []
        assert not delivery.release_failure()

    def test_the_failure_waits_behind_the_queued_messages(self) -> None:
        delivery, reading, protocol = make(4)
        delivery.put(["a", "b"], protocol)
        assert delivery.queue_failure()
        assert delivery.queue_failure()  # once
        assert reading.calls == ["pause"]
        assert take_all(delivery) == ["a", "b", FAILED]
        assert delivery.release_failure()
        assert not delivery.paused

    def test_a_new_connection_forgets_the_failure(self) -> None:
        delivery, _, protocol = make(4)
        delivery.put(["a"], protocol)
        delivery.queue_failure()
        delivery.opened(None)
        assert not delivery.failure_queued
        assert not delivery.paused


class TestMarkers:
    def test_reconnected_marker_at_the_gap(self) -> None:
        delivery, _, protocol = make(8)
        delivery.put(["old"], protocol)
        marker = Reconnected(1.0, 2.0, 1, 1006, "", 7)
        delivery.opened(marker)
        delivery.put(["new"], protocol)
        assert take_all(delivery) == ["old", marker, "new"]

    def test_decode_error_is_raised_at_its_place_and_resumes_reading_first(self) -> None:
        delivery, reading, protocol = make(2)
        error = MessageDecodeError("loads failed", b"{")
        delivery.put(["a", error, "b"], protocol)
        assert delivery.get() == "a"
        with pytest.raises(MessageDecodeError) as info:
            delivery.get()
        assert info.value is error
        assert reading.calls == ["pause", "resume"]
        assert delivery.get() == "b"


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="block"):
        make(4, "block")


class TestEmpty:
    def test_open_waits(self) -> None:
        delivery, _, protocol = make(4)
        assert delivery.empty(protocol, reconnecting=False) is WAIT

    def test_the_overflow_error_comes_once_the_queue_is_read(self) -> None:
        delivery, _, protocol = make(1, "error")
        delivery.put(["a", "b"], protocol)
        assert delivery.get() == "a"
        with pytest.raises(ConnectionClosedError) as info:
            delivery.empty(protocol, reconnecting=True)
        assert info.value is delivery.error

    def test_after_the_closing_handshake_the_reader_waits_for_tcp(self) -> None:
        delivery, _, protocol = make(4)
        protocol.send_close(CloseCode.NORMAL_CLOSURE)
        protocol.receive_data(b"\x88\x02\x03\xe8")  # the server's CLOSE 1000
        assert delivery.empty(protocol, reconnecting=False) is AWAIT_CLOSE

    def test_closed_raises_unless_a_connection_follows(self) -> None:
        delivery, _, protocol = make(4)
        protocol.fail(CloseCode.PROTOCOL_ERROR, "bad frame")
        assert delivery.empty(protocol, reconnecting=True) is WAIT
        with pytest.raises(ConnectionClosedError):
            delivery.empty(protocol, reconnecting=False)
        gave_up = ConnectionClosedError(CloseCode.ABNORMAL_CLOSURE, "gave up after 3 attempts")
        with pytest.raises(ConnectionClosedError) as info:
            delivery.empty(protocol, reconnecting=False, gave_up=gave_up)
        assert info.value is gave_up
