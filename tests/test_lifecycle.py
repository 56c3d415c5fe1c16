"""wsfast.lifecycle: every decision about a client's life across connections, with a fake clock.

The unit tests drive :class:`~wsfast.lifecycle.Lifecycle` with a real :class:`~wsfast.protocol.ClientProtocol`
fed server bytes by hand, and read the decisions: bytes to write, aborts, ``on_idle``, ``Retry`` /
``GiveUp``, the ``Disconnected`` / ``Reconnected`` events and the ``Stats`` totals. The last section runs
both clients against a real loopback server that trickles an unfinished frame (RFC 6455 §5.5.2: only a
complete frame proves the peer alive after a keepalive PING).
"""

from __future__ import annotations

import asyncio
import threading
import time
import types
from typing import Any

import pytest

import wsfast
from servers import RawConnection, RawServer, server_close, server_frame
from wsfast import (
    ConnectionClosedError,
    Disconnected,
    HandshakeError,
    IdleTimeout,
    InvalidURL,
    KeepaliveTimeout,
    Reconnected,
    ReconnectPolicy,
    WebSocketClient,
)
from wsfast.exceptions import OpeningError, OpenTimeout, ProxyError
from wsfast.frames import Close, CloseCode, Opcode, Ping, Pong
from wsfast.health import PROTOCOL_COUNTERS, Beat, Heartbeat, Stats
from wsfast.lifecycle import ATTEMPT_ERRORS, LATE_TIMER, Closing, GiveUp, Lifecycle, Retry, Verdict, closing
from wsfast.protocol import ClientProtocol, State

WAIT = 10.0  # seconds: the bound on every blocking wait in the loopback tests
pytest_plugins = ["conftest_client"]

NO_JITTER = ReconnectPolicy(initial_delay=1.0, max_delay=8.0, multiplier=2.0, jitter=0.0, stable_after=10.0)


def opcode_of(frame: bytes) -> int:
    return frame[0] & 0x0F


def close_code_of(frame: bytes) -> int:
    """The status code of a client CLOSE frame (masked, short payload)."""
    assert opcode_of(frame) == Opcode.CLOSE, frame
    key, payload = frame[2:6], frame[6:]
    unmasked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return int.from_bytes(unmasked[:2], "big")


def opened(lifecycle: Lifecycle, now: float = 0.0, wall: float = 1000.0, cid: int = 1) -> ClientProtocol:
    protocol = ClientProtocol()
    assert lifecycle.opened(protocol, now=now, wall=wall, connection_id=cid) is None
    return protocol


def lose(protocol: ClientProtocol, data: bytes = b"") -> ClientProtocol:
    """End *protocol*'s TCP connection, after the server sent *data*."""
    if data:
        protocol.receive_data(data)
    protocol.receive_eof()
    return protocol


# --------------------------------------------------------------------------------------------------
# Keepalive verdicts
# --------------------------------------------------------------------------------------------------


class TestKeepalive:
    def test_ping_every_interval(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        assert lifecycle.deadline == 10.0
        assert lifecycle.beat(9.9, 0.0) == Verdict()
        verdict = lifecycle.beat(10.0, 0.0)
        assert opcode_of(verdict.data) == Opcode.PING
        assert verdict == Verdict(data=verdict.data)  # no abort, no on_idle, nothing ended
        assert protocol.pings_sent == 1
        assert lifecycle.deadline == 15.0  # the proof-of-life deadline comes before the next PING

    def test_a_complete_frame_proves_life(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        lifecycle.beat(10.0, 0.0)
        protocol.receive_data(server_frame(Opcode.TEXT, "tick"))  # any frame, not only the PONG
        assert lifecycle.beat(15.0, 0.0) == Verdict()
        assert protocol.state is State.OPEN
        assert lifecycle.deadline == 20.0
        assert opcode_of(lifecycle.beat(20.0, 0.0).data) == Opcode.PING

    def test_an_unfinished_frame_is_no_proof_of_life(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        lifecycle.beat(10.0, 0.0)
        frame = server_frame(Opcode.BINARY, b"x" * 100)
        for byte in frame[:50]:  # a trickle: bytes keep coming, no frame ever completes
            protocol.receive_data(bytes([byte]))
        assert not lifecycle.overdue(14.9)
        assert lifecycle.beat(14.9, 0.0) == Verdict()
        assert lifecycle.overdue(15.0)
        verdict = lifecycle.beat(15.0, 0.0)
        assert verdict.abort
        assert "keepalive timeout" in verdict.ended
        assert close_code_of(verdict.data) == CloseCode.INTERNAL_ERROR
        assert protocol.state is State.CLOSING
        exception = protocol.closed_exception()
        assert isinstance(exception, KeepaliveTimeout)
        assert exception.code == 1011
        assert lifecycle.deadline is None  # the connection is being failed: nothing more to decide
        assert lifecycle.beat(100.0, 0.0) == Verdict()

    def test_a_late_timer_defers_a_death_verdict(self) -> None:
        # The loop was busy: what arrived meanwhile is read before the connection is failed.
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        lifecycle.beat(10.0, 0.0)
        assert lifecycle.beat(16.0, 0.0, late=1.0) == Verdict(again=LATE_TIMER)
        assert protocol.state is State.OPEN
        assert lifecycle.beat(16.0, 0.0, late=LATE_TIMER).abort  # on time, or late twice: the verdict

    def test_a_late_timer_with_life_proven_decides_at_once(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        assert opcode_of(lifecycle.beat(11.0, 0.0, late=1.0).data) == Opcode.PING  # not overdue
        protocol.receive_data(server_frame(Opcode.PONG, b"x"))
        assert lifecycle.beat(16.0, 0.0, late=1.0) == Verdict()

    def test_a_pong_after_an_unfinished_frame_proves_life(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        frame = server_frame(Opcode.BINARY, b"x" * 100)
        protocol.receive_data(frame[:10])  # a frame begun before the PING
        lifecycle.beat(10.0, 0.0)
        protocol.receive_data(frame[10:] + server_frame(Opcode.PONG, b"late"))
        assert lifecycle.beat(15.0, 0.0) == Verdict()
        assert protocol.state is State.OPEN

    def test_two_frames_begun_prove_that_one_ended(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        lifecycle.beat(10.0, 0.0)
        fragment = server_frame(Opcode.TEXT, "a" * 50, fin=False)  # no message completes yet
        protocol.receive_data(fragment + server_frame(Opcode.CONT, "b" * 50, fin=False)[:5])
        assert lifecycle.beat(15.0, 0.0) == Verdict()
        assert protocol.state is State.OPEN

    def test_keepalive_pong_gives_the_round_trip_time(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        lifecycle.beat(10.0, 0.0)
        assert lifecycle.heartbeat is not None
        payload = lifecycle.heartbeat.ping_payload()
        assert lifecycle.pong_received(b"a user's ping", 10.1) is None
        protocol.receive_data(server_frame(Opcode.PONG, payload))
        assert lifecycle.pong_received(payload, 10.25) == pytest.approx(0.25)
        assert lifecycle.stats(now=11.0, wall=1011.0, last_message_at=0.0).last_rtt == pytest.approx(0.25)
        assert lifecycle.beat(16.0, 0.0) == Verdict()

    def test_a_user_ping_answered_gives_the_round_trip_time(self) -> None:
        lifecycle = Lifecycle(ping_interval=None)
        assert lifecycle.pings_answered([]) == []
        assert lifecycle.last_rtt is None
        answered = [("earlier", 0.5), ("its own", 0.25)]
        assert lifecycle.pings_answered(answered) is answered
        assert lifecycle.stats(now=1.0, wall=1001.0, last_message_at=0.0).last_rtt == 0.25

    def test_received_accounts_pongs_and_says_whether_a_message_came(self) -> None:
        lifecycle = Lifecycle(ping_interval=10.0, ping_timeout=5.0)
        protocol = opened(lifecycle)
        lifecycle.beat(10.0, 0.0)
        assert lifecycle.heartbeat is not None
        pong = Pong(lifecycle.heartbeat.ping_payload())
        protocol.receive_data(server_frame(Opcode.PONG, pong.payload))
        assert lifecycle.received([Ping(b"p"), pong, Close(1000, "")], 10.5) is False
        assert lifecycle.last_rtt == pytest.approx(0.5)  # the keepalive PING's, read at 10.5
        decode_error = wsfast.MessageDecodeError("not JSON", b"{")
        assert lifecycle.received([Ping(b"p"), "text"], 11.0) is True
        assert lifecycle.received([b"binary"], 11.0) is True
        assert lifecycle.received([decode_error], 11.0) is True  # it arrived, though loads rejected it
        assert lifecycle.received([], 11.0) is False

    def test_idle_runs_on_idle_once_per_period(self) -> None:
        lifecycle = Lifecycle(ping_interval=None, ping_timeout=None, idle_timeout=3.0, on_idle=True)
        protocol = opened(lifecycle)
        assert lifecycle.beat(2.0, 2.0) == Verdict()  # a message at 2.0
        assert lifecycle.deadline == 5.0
        assert lifecycle.beat(5.0, 2.0) == Verdict(on_idle=True)
        assert lifecycle.beat(5.1, 2.0) == Verdict()
        assert lifecycle.beat(8.0, 2.0) == Verdict(on_idle=True)
        assert protocol.state is State.OPEN

    def test_idle_without_hook_closes_with_1001(self) -> None:
        lifecycle = Lifecycle(ping_interval=None, ping_timeout=None, idle_timeout=3.0)
        protocol = opened(lifecycle)
        verdict = lifecycle.beat(3.0, 0.0)
        assert close_code_of(verdict.data) == CloseCode.GOING_AWAY
        assert not verdict.abort  # a clean closing handshake: the server answers
        assert "idle timeout" in verdict.ended
        assert isinstance(protocol.closed_exception(), IdleTimeout)
        assert lifecycle.deadline is None

    def test_ping_and_idle_due_together(self) -> None:
        lifecycle = Lifecycle(ping_interval=3.0, ping_timeout=5.0, idle_timeout=3.0, on_idle=True)
        opened(lifecycle)
        verdict = lifecycle.beat(3.0, 0.0)
        assert verdict.on_idle
        assert opcode_of(verdict.data) == Opcode.PING

    def test_nothing_enabled_or_not_open(self) -> None:
        lifecycle = Lifecycle(ping_interval=None, ping_timeout=None)
        opened(lifecycle)
        assert lifecycle.deadline is None
        assert lifecycle.beat(1e9, 0.0) == Verdict()
        assert Lifecycle().deadline is None  # never connected
        assert Lifecycle().beat(1e9, 0.0) == Verdict()
        lifecycle = Lifecycle(ping_interval=1.0)
        protocol = opened(lifecycle)
        protocol.send_close()
        assert lifecycle.deadline is None
        assert lifecycle.beat(5.0, 0.0) == Verdict()

    @pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "idle_timeout"])
    def test_invalid_intervals(self, name: str) -> None:
        arguments: dict[str, Any] = {name: 0.0}
        with pytest.raises(ValueError, match=name):
            Lifecycle(**arguments)


class TestHeartbeatCounters:
    """health.Heartbeat given the protocol's counters instead of the time bytes last arrived."""

    def test_bytes_alone_are_no_proof_of_life(self) -> None:
        beat = Heartbeat(10.0, 5.0, now=0.0)
        assert beat.poll(10.0, None, 0.0, frames_received=3, events_received=3) is Beat.SEND_PING
        # One more frame begun (its header read), nothing completed: a trickle.
        assert not beat.overdue(14.0, None, frames_received=4, events_received=3)
        assert beat.overdue(15.0, None, frames_received=4, events_received=3)
        assert beat.poll(15.0, None, 0.0, frames_received=4, events_received=3) is Beat.PING_TIMEOUT

    @pytest.mark.parametrize(("frames", "events"), [(4, 4), (5, 3)])
    def test_a_completed_frame_is(self, frames: int, events: int) -> None:
        beat = Heartbeat(10.0, 5.0, now=0.0)
        beat.poll(10.0, None, 0.0, frames_received=3, events_received=3)
        assert not beat.overdue(15.0, None, frames_received=frames, events_received=events)
        assert beat.poll(15.0, None, 0.0, frames_received=frames, events_received=events) is Beat.NOTHING
        assert beat.deadline == 20.0

    def test_the_older_form_still_counts_any_byte(self) -> None:
        beat = Heartbeat(10.0, 5.0, now=0.0)
        assert beat.poll(10.0, 0.0, 0.0) is Beat.SEND_PING
        assert beat.poll(15.0, 11.0, 0.0) is Beat.NOTHING


# --------------------------------------------------------------------------------------------------
# Reconnect decisions
# --------------------------------------------------------------------------------------------------


class TestReconnect:
    def test_no_policy_gives_up_silently(self) -> None:
        lifecycle = Lifecycle()
        protocol = lose(opened(lifecycle))
        info, decision = lifecycle.lost(protocol, now=1.0, wall=1001.0)
        assert decision == GiveUp(None)
        assert not info.reconnecting
        assert not lifecycle.reconnecting

    def test_backoff_grows_and_gives_up_after_max_attempts(self) -> None:
        policy = ReconnectPolicy(initial_delay=1.0, max_delay=3.0, jitter=0.0, max_attempts=3)
        lifecycle = Lifecycle(reconnect=policy)
        protocol = lose(opened(lifecycle))
        info, decision = lifecycle.lost(protocol, now=20.0, wall=1020.0)
        assert info.reconnecting
        assert decision == Retry(1.0, 1)
        assert lifecycle.reconnecting
        assert lifecycle.attempt_failed(ConnectionRefusedError("refused")) == Retry(2.0, 2)
        assert lifecycle.attempt_failed(TimeoutError("slow")) == Retry(3.0, 3)  # capped at max_delay
        decision = lifecycle.attempt_failed(ConnectionRefusedError("still refused"))
        assert isinstance(decision, GiveUp)
        assert isinstance(decision.error, ConnectionClosedError)
        assert decision.error.code == 1006
        assert "gave up reconnecting after 3 attempts: still refused" in decision.error.reason
        assert lifecycle.gave_up is decision.error
        assert not lifecycle.reconnecting

    def test_jitter_comes_from_rand(self) -> None:
        policy = ReconnectPolicy(initial_delay=1.0, jitter=0.5)
        lifecycle = Lifecycle(reconnect=policy, rand=lambda: 1.0)
        protocol = lose(opened(lifecycle))
        assert lifecycle.lost(protocol, now=20.0, wall=1020.0)[1] == Retry(0.5, 1)

    def test_reconnect_true_is_the_default_policy(self) -> None:
        lifecycle = Lifecycle(reconnect=True)
        assert lifecycle.policy == ReconnectPolicy()

    def test_forced_reconnect_is_immediate_even_without_policy(self) -> None:
        lifecycle = Lifecycle(rand=lambda: 0.0)
        protocol = lose(opened(lifecycle), server_close(1000))
        info, decision = lifecycle.lost(protocol, now=1.0, wall=1001.0, forced=True)
        assert info.reconnecting
        assert decision == Retry(0.0, 1)
        # The default policy paces the next attempts.
        assert lifecycle.attempt_failed(OSError("down")) == Retry(ReconnectPolicy().delay(2, lambda: 0.0), 2)

    def test_a_requested_reconnect_forces_the_next_loss_only(self) -> None:
        lifecycle = Lifecycle(rand=lambda: 0.0)
        assert lifecycle.request_reconnect()
        protocol = lose(opened(lifecycle), server_close(1000))
        info, decision = lifecycle.lost(protocol, now=1.0, wall=1001.0)
        assert info.reconnecting
        assert decision == Retry(0.0, 1)
        assert not lifecycle.request_reconnect()  # one is under way
        protocol = ClientProtocol()
        assert lifecycle.opened(protocol, now=2.0, wall=1002.0, connection_id=2) is not None
        lose(protocol, server_close(1000))
        assert lifecycle.lost(protocol, now=3.0, wall=1003.0)[1] == GiveUp()  # the request was used

    def test_stopped_or_fatal_never_reconnects(self) -> None:
        cases: list[dict[str, Any]] = [{"stopped": True}, {"fatal": True}, {"stopped": True, "forced": True}]
        for flags in cases:
            lifecycle = Lifecycle(reconnect=NO_JITTER)
            protocol = lose(opened(lifecycle))
            info, decision = lifecycle.lost(protocol, now=1.0, wall=1001.0, **flags)
            assert decision == GiveUp(None), flags
            assert not info.reconnecting

    def test_cancel_ends_the_reconnection(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        lifecycle.lost(lose(opened(lifecycle)), now=1.0, wall=1001.0)
        assert lifecycle.reconnecting
        lifecycle.cancel()
        assert not lifecycle.reconnecting
        assert lifecycle.attempt_failed(OSError("late")) == GiveUp(None)

    def test_another_connection_may_follow_until_reconnecting_gives_up(self) -> None:
        lifecycle = Lifecycle(reconnect=ReconnectPolicy(max_attempts=1, jitter=0.0))
        protocol = opened(lifecycle)
        assert lifecycle.may_follow(stopped=False)
        assert not lifecycle.may_follow(stopped=True)  # close()/disconnect() was called
        lifecycle.lost(lose(protocol), now=1.0, wall=1001.0)
        assert lifecycle.may_follow(stopped=False)  # waiting to reconnect: a reader waits across the gap
        assert isinstance(lifecycle.attempt_failed(OSError("down")), GiveUp)
        assert not lifecycle.may_follow(stopped=False)
        opened(lifecycle, now=2.0)  # connect() again
        assert lifecycle.may_follow(stopped=False)

    def test_nothing_follows_without_a_policy_or_after_cancel(self) -> None:
        lifecycle = Lifecycle()
        opened(lifecycle)
        assert not lifecycle.may_follow(stopped=False)  # no policy, even before the end
        assert lifecycle.request_reconnect()  # reconnect() still forces one
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        lifecycle.lost(lose(opened(lifecycle)), now=1.0, wall=1001.0)
        lifecycle.cancel()
        assert not lifecycle.may_follow(stopped=False)

    def test_a_connection_lost_without_retry_is_the_last(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        lifecycle.lost(lose(opened(lifecycle)), now=1.0, wall=1001.0, fatal=True)
        assert not lifecycle.may_follow(stopped=False)

    def test_attempts_reset_after_a_stable_connection(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        protocol = lose(opened(lifecycle, now=0.0))
        assert lifecycle.lost(protocol, now=100.0, wall=1100.0)[1] == Retry(1.0, 1)
        # The new connection drops at once, three times: the delay keeps growing.
        for expected, now in ((2.0, 101.0), (4.0, 102.0), (8.0, 103.0)):
            protocol = ClientProtocol()
            assert lifecycle.opened(protocol, now=now, wall=1000.0 + now, connection_id=2) is not None
            assert lifecycle.lost(lose(protocol), now=now + 0.5, wall=1000.5 + now)[1] == Retry(expected, 1)
        # One that lasts stable_after seconds starts the count again.
        protocol = ClientProtocol()
        lifecycle.opened(protocol, now=200.0, wall=1200.0, connection_id=3)
        assert lifecycle.lost(lose(protocol), now=210.0, wall=1210.0)[1] == Retry(1.0, 1)

    @pytest.mark.parametrize(
        ("error", "retried"),
        [
            (OSError("refused"), True),
            (OpenTimeout("slow"), True),
            (OpeningError("tls", hop="server", stage="tls"), True),
            (HandshakeError("unavailable", 503), True),
            (HandshakeError("no response", None), True),
            (HandshakeError("timeout", 408), True),
            (HandshakeError("too early", 425), True),
            (HandshakeError("slow down", 429), True),
            (HandshakeError("forbidden", 403), False),
            (HandshakeError("not found", 404), False),
            (HandshakeError("unauthorized", 401), False),
            (ProxyError("credentials", 407), False),
            (ProxyError("forbidden", 403), False),
            (ProxyError("slow down", 429), True),
            (ProxyError("bad gateway", 502), True),
            (ProxyError("broken proxy", None), True),
            (ProxyError("SOCKS5: host unreachable", 4), True),
            (InvalidURL("ftp://nowhere"), False),
        ],
    )
    def test_which_refusals_give_up(self, error: BaseException, retried: bool) -> None:
        assert isinstance(error, ATTEMPT_ERRORS)
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        lifecycle.lost(lose(opened(lifecycle)), now=1.0, wall=1001.0)
        decision = lifecycle.attempt_failed(error)
        assert isinstance(decision, Retry) is retried
        if not retried:
            assert isinstance(decision, GiveUp)
            assert decision.error is not None
            assert "gave up reconnecting after 1 attempts" in decision.error.reason

    def test_reconnected_marker(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        protocol = lose(opened(lifecycle, cid=7), server_close(1012, "restart"))
        lifecycle.lost(protocol, now=50.0, wall=1050.0)
        lifecycle.attempt_failed(OSError("down"))
        marker = lifecycle.opened(ClientProtocol(), now=60.0, wall=1060.0, connection_id=9)
        assert marker == Reconnected(1050.0, 1060.0, 2, 1012, "restart", 9)
        assert type(marker.code) is int
        assert marker.downtime == 10.0
        assert not lifecycle.reconnecting
        assert lifecycle.reconnects == 1

    def test_disconnected_event(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        protocol = lose(opened(lifecycle, cid=4), server_close(1000, "bye"))
        info, _ = lifecycle.lost(protocol, now=1.0, wall=1001.0)
        assert info == Disconnected(1000, "bye", 1001.0, None, True, 4)  # clean close: no error
        assert type(info.code) is int
        protocol = ClientProtocol()
        lifecycle.opened(protocol, now=2.0, wall=1002.0, connection_id=5)
        info, _ = lifecycle.lost(lose(protocol), now=3.0, wall=1003.0)
        assert info.code == 1006
        assert type(info.code) is int
        assert isinstance(info.error, ConnectionClosedError)
        reset = ConnectionResetError("reset by peer")
        protocol = ClientProtocol()
        lifecycle.opened(protocol, now=4.0, wall=1004.0, connection_id=6)
        info, _ = lifecycle.lost(lose(protocol), now=5.0, wall=1005.0, error=reset)
        assert info.error is reset


class TestClosedException:
    """What ``close_exception`` (threaded) and the calls refused after the end (asyncio) report."""

    def test_none_before_the_first_connection(self) -> None:
        assert Lifecycle().closed_exception() is None

    def test_the_last_connections_end(self, codec_impl: types.SimpleNamespace) -> None:
        lifecycle = Lifecycle()
        protocol = ClientProtocol(codec=codec_impl.module)
        lifecycle.opened(protocol, now=0.0, wall=1000.0, connection_id=1)
        lose(protocol, server_close(1000, "bye"))
        closed = lifecycle.closed_exception()
        assert isinstance(closed, wsfast.ConnectionClosedOK)
        assert (closed.code, closed.reason) == (1000, "bye")
        lose(second := ClientProtocol(codec=codec_impl.module))  # TCP lost without a CLOSE
        lifecycle.opened(second, now=1.0, wall=1001.0, connection_id=2)
        closed = lifecycle.closed_exception()
        assert isinstance(closed, wsfast.ConnectionClosedError)
        assert closed.code == 1006

    def test_why_reconnecting_gave_up_comes_first(self, codec_impl: types.SimpleNamespace) -> None:
        lifecycle = Lifecycle(reconnect=ReconnectPolicy(max_attempts=1, jitter=0.0))
        protocol = ClientProtocol(codec=codec_impl.module)
        lifecycle.opened(protocol, now=0.0, wall=1000.0, connection_id=1)
        lifecycle.lost(lose(protocol, server_close(1001)), now=1.0, wall=1001.0)
        lifecycle.attempt_failed(OSError("refused"))
        assert lifecycle.closed_exception() is lifecycle.gave_up
        assert "gave up reconnecting after 1 attempts" in str(lifecycle.gave_up)


class TestOnConnectFailed:
    def test_first_connection_fails_with_1011_and_no_reconnection(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        protocol = opened(lifecycle)
        data = lifecycle.on_connect_failed(ValueError("subscription refused"))
        assert close_code_of(data) == CloseCode.INTERNAL_ERROR
        assert protocol.close_code == 1011
        assert "on_connect failed: ValueError: subscription refused" in protocol.close_reason
        info, decision = lifecycle.lost(lose(protocol), now=1.0, wall=1001.0)
        assert decision == GiveUp(None)
        assert not info.reconnecting
        assert info.code == 1011
        assert isinstance(info.error, ValueError)  # what on_connect raised, on both clients

    def test_after_a_reconnection_the_policy_applies(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        lifecycle.lost(lose(opened(lifecycle)), now=20.0, wall=1020.0)
        protocol = ClientProtocol()
        assert lifecycle.opened(protocol, now=21.0, wall=1021.0, connection_id=2) is not None
        assert close_code_of(lifecycle.on_connect_failed(RuntimeError("boom"))) == 1011
        info, decision = lifecycle.lost(lose(protocol), now=21.1, wall=1021.1)
        assert info.reconnecting
        assert info.code == 1011
        assert isinstance(info.error, RuntimeError)
        assert decision == Retry(2.0, 1)  # it did not last: the delay grows

    def test_a_new_connect_clears_the_failure(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        lifecycle.on_connect_failed(ValueError("before any connection"))  # nothing to fail
        protocol = opened(lifecycle)
        lifecycle.on_connect_failed(ValueError("no"))
        lifecycle.lost(lose(protocol), now=1.0, wall=1001.0)
        protocol = opened(lifecycle, now=2.0)
        assert isinstance(lifecycle.lost(lose(protocol), now=30.0, wall=1030.0)[1], Retry)


# --------------------------------------------------------------------------------------------------
# Totals and Stats
# --------------------------------------------------------------------------------------------------


class TestStats:
    def test_before_any_connection(self) -> None:
        assert Lifecycle().stats(now=5.0, wall=1005.0, last_message_at=0.0) == Stats()

    def test_totals_across_connections_count_each_once(self) -> None:
        lifecycle = Lifecycle(reconnect=NO_JITTER)
        first = opened(lifecycle, wall=1000.0)
        first.receive_data(server_frame(Opcode.TEXT, "a") + server_frame(Opcode.TEXT, "b"))
        first.send_text("out")
        during = lifecycle.stats(now=1.0, wall=1001.0, last_message_at=0.5, dropped=3, queue_depth=2)
        assert (during.messages_received, during.messages_sent, during.frames_received) == (2, 1, 2)
        assert (during.dropped, during.queue_depth, during.connections) == (3, 2, 1)
        assert during.last_message_at == pytest.approx(1000.5)
        assert during.connected_at == 1000.0
        lifecycle.lost(lose(first), now=20.0, wall=1020.0)
        between = lifecycle.stats(now=21.0, wall=1021.0, last_message_at=0.5)
        assert between.messages_received == 2  # counted once, not again for the lost connection
        second = ClientProtocol()
        lifecycle.opened(second, now=22.0, wall=1022.0, connection_id=2)
        second.receive_data(server_frame(Opcode.BINARY, b"c"))
        lifecycle.lost(lose(second), now=23.0, wall=1023.0)
        lifecycle.lost(second, now=23.0, wall=1023.0)  # reported twice: still counted once
        after = lifecycle.stats(now=24.0, wall=1024.0, last_message_at=22.5)
        assert after.messages_received == 3
        assert after.frames_received == 3
        assert (after.connections, after.reconnects, after.connected_at) == (2, 1, 1022.0)
        for name in PROTOCOL_COUNTERS:  # every protocol counter is summed, whatever the list holds
            assert getattr(after, name) == getattr(first, name) + getattr(second, name)


# --------------------------------------------------------------------------------------------------
# Both clients against a server that trickles an unfinished frame
# --------------------------------------------------------------------------------------------------

PING_INTERVAL, PING_TIMEOUT = 0.3, 0.5


def trickle(conn: RawConnection) -> None:
    """Accept, then send one byte of a never-finished 125-byte frame every 0.05 s (over 6 s in all)."""
    conn.accept()
    conn.drip(server_frame(Opcode.BINARY, b"x" * 125), interval=0.05)


def test_threaded_client_fails_a_trickling_server_with_1011() -> None:
    with RawServer(trickle) as server:
        closed: list[tuple[int, str]] = []
        ended = threading.Event()

        def on_close(code: int, reason: str) -> None:
            closed.append((code, reason))
            ended.set()

        client = WebSocketClient(
            None, server.url(), on_close=on_close, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT
        )
        started = time.monotonic()
        client.connect()
        assert ended.wait(WAIT), "the keepalive timeout never failed the connection"
        elapsed = time.monotonic() - started
        assert client.wait(WAIT)
        assert closed[0][0] == 1011
        assert isinstance(client.close_exception, KeepaliveTimeout)
        assert elapsed < PING_INTERVAL + PING_TIMEOUT + 3.0, elapsed  # the trickle itself lasts 6 s


def test_asyncio_client_fails_a_trickling_server_with_1011() -> None:
    async def main() -> float:
        started = time.monotonic()
        ws = await wsfast.connect(server.url(), ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT)
        with pytest.raises(KeepaliveTimeout) as caught:
            await ws.recv()
        assert caught.value.code == 1011
        await ws.wait_closed()
        assert ws.close_code == 1011
        return time.monotonic() - started

    with RawServer(trickle) as server:
        elapsed = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert elapsed < PING_INTERVAL + PING_TIMEOUT + 3.0, elapsed  # the trickle itself lasts 6 s


# --------------------------------------------------------------------------------------------------
# on_connect failures, the same on both clients
# --------------------------------------------------------------------------------------------------


def answer_close(conn: RawConnection) -> None:
    """Accept, then answer the client's CLOSE and record its code."""
    conn.accept()
    conn.finish_closing_handshake()


def refuse_subscription(client: Any) -> None:
    raise ValueError("subscription refused")


def test_threaded_on_connect_error_fails_the_first_connection() -> None:
    lost: list[Disconnected] = []
    with RawServer(answer_close) as server:
        client = WebSocketClient(
            None,
            server.url(),
            on_connect=refuse_subscription,
            on_disconnect=lost.append,
            reconnect=NO_JITTER,
            ping_interval=None,
        )
        with pytest.raises(ValueError, match="subscription refused"):
            client.connect()
        assert client.wait(WAIT)
        assert client.close_code == 1011
        assert not client.is_open
        server.wait_finished(1)
        assert server.connections[0].frames[-1].close_code == 1011
        assert len(server.connections) == 1  # no reconnection after a failed first connect()
    assert [(info.code, info.reconnecting) for info in lost] == [(1011, False)]
    assert isinstance(lost[0].error, ValueError)


def test_threaded_on_connect_may_connect_again_without_deadlock() -> None:
    # connect() waits for on_connect outside its lock: an on_connect that opens a new connection (once
    # here) does not wait for itself.
    ids: list[int] = []
    with RawServer(answer_close) as server:

        def on_connect(client: WebSocketClient) -> None:
            ids.append(client.connection_id)
            if len(ids) == 1:
                client.connect()

        client = WebSocketClient(None, server.url(), on_connect=on_connect, ping_interval=None)
        client.connect()
        assert len(ids) == 2
        assert client.connection_id == ids[1]
        client.disconnect()
        assert client.wait(WAIT)
        assert client.close_code == 1000


def test_asyncio_on_connect_error_fails_the_first_connection() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="subscription refused"):
            await wsfast.connect(
                server.url(), on_connect=refuse_subscription, reconnect=NO_JITTER, ping_interval=None
            )

    with RawServer(answer_close) as server:
        asyncio.run(asyncio.wait_for(main(), WAIT))
        server.wait_finished(1)
        assert server.connections[0].frames[-1].close_code == 1011
        assert len(server.connections) == 1


def numbered(conn: RawConnection) -> None:
    """Accept, say which connection this is, end the first one at once (1012), then answer closes."""
    conn.accept(server_frame(Opcode.TEXT, f"conn-{conn.index}"))
    if conn.index == 0:
        conn.send(server_close(1012, "restart"))
    conn.finish_closing_handshake()


FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.05, jitter=0.0)


def test_threaded_on_connect_error_after_a_reconnection() -> None:
    connects: list[int] = []
    messages: list[str] = []
    lost: list[Disconnected] = []
    third = threading.Event()

    def on_connect(client: WebSocketClient) -> None:
        connects.append(client.connection_id)
        if len(connects) == 2:
            raise RuntimeError("the second subscription fails")
        if len(connects) == 3:
            third.set()

    with RawServer(numbered) as server:
        client = WebSocketClient(
            messages.append,
            server.url(),
            on_connect=on_connect,
            on_disconnect=lost.append,
            reconnect=FAST,
            ping_interval=None,
        )
        client.connect()
        assert third.wait(WAIT)
        client.disconnect()
        assert client.wait(WAIT)
    assert [info.code for info in lost[:2]] == [1012, 1011]
    assert all(info.reconnecting for info in lost[:2])
    assert isinstance(lost[1].error, RuntimeError)
    assert "conn-1" not in messages  # nothing of the failed connection was delivered
    assert messages[0] == "conn-0"
    assert "conn-2" in messages


def test_asyncio_on_connect_error_after_a_reconnection() -> None:
    async def main() -> list[Disconnected]:
        lost: list[Disconnected] = []
        calls = 0

        async def on_connect(ws: wsfast.WebSocket) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise RuntimeError("the second subscription fails")

        async with wsfast.connect(
            server.url(), on_connect=on_connect, on_disconnect=lost.append, reconnect=FAST, ping_interval=None
        ) as ws:
            assert await ws.recv() == "conn-0"
            received: list[Any] = []
            while not received or received[-1] != "conn-2":
                received.append(await ws.recv())
            # A marker for each reconnection (what the failed connection queued before on_connect ran
            # may sit between them).
            assert sum(isinstance(item, Reconnected) for item in received) == 2, received
        return lost

    with RawServer(numbered) as server:
        lost = asyncio.run(asyncio.wait_for(main(), WAIT))
    assert [info.code for info in lost[:2]] == [1012, 1011]
    assert all(type(info.code) is int for info in lost)
    assert all(info.reconnecting for info in lost[:2])
    assert isinstance(lost[1].error, RuntimeError)


# --------------------------------------------------------------------------------------------------
# Closing (RFC 6455 §7.1.1, §7.1.7)
# --------------------------------------------------------------------------------------------------


class TestClosing:
    def test_failed_half_closes_and_awaits_the_tcp_close(self) -> None:
        protocol = ClientProtocol()
        protocol.fail(CloseCode.PROTOCOL_ERROR, "bad frame")
        action = closing(protocol)
        assert close_code_of(action.data) == CloseCode.PROTOCOL_ERROR
        assert (action.half_close, action.await_close) == (True, True)
        assert closing(protocol).data == b""  # sent once

    def test_server_close_answered_awaits_the_tcp_close(self) -> None:
        protocol = ClientProtocol()
        protocol.receive_data(server_frame(Opcode.CLOSE, b"\x03\xe8"))
        action = closing(protocol)
        assert close_code_of(action.data) == CloseCode.NORMAL_CLOSURE  # the reply
        assert (action.half_close, action.await_close) == (False, True)

    def test_our_close_unanswered_waits_for_the_server(self) -> None:
        protocol = ClientProtocol()
        protocol.send_close(CloseCode.NORMAL_CLOSURE)
        action = closing(protocol)
        assert action == Closing(b"", half_close=False, await_close=False)
