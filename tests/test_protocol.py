"""ClientProtocol, the sans-I/O connection state machine (RFC 6455 §5-7), fed server frames built here.

Every test runs on both codec twins: the ``codec_impl`` fixture's twin is passed through the codec seam,
``ClientProtocol(codec=codec_impl.module)``. Frames the protocol wants to send are parsed and unmasked with
the independent helpers in ``helpers.py``.
"""

from __future__ import annotations

import struct
import types
from typing import Any

import pytest

import wsfast.codec
from helpers import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, frame, parse_client_frame
from wsfast import _impl
from wsfast.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, ProtocolError
from wsfast.frames import Close, Opcode, Ping, Pong
from wsfast.protocol import ClientProtocol, FrameAction, State

pytest_plugins = ["conftest_client"]
pytestmark = pytest.mark.usefixtures("codec_impl")


def split_frames(data: bytes) -> list[bytes]:
    """Cut a stream of client frames (masked, as the protocol produces them) into single frames."""
    frames = []
    pos = 0
    while pos < len(data):
        length = data[pos + 1] & 0x7F
        size = 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos + 2)
            size += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos + 2)
            size += 8
        if data[pos + 1] & 0x80:
            size += 4
        frames.append(data[pos : pos + size + length])
        pos += size + length
    return frames


def sent(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, unmasked payload) of each frame in *data*; every frame must be masked and final."""
    out = []
    for raw in split_frames(data):
        parsed = parse_client_frame(raw)
        assert parsed.masked, "client frames must be masked (RFC 6455 §5.3)"
        assert parsed.rsv == 0
        out.append((parsed.opcode, parsed.payload))
    return out


def close_code_of(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if payload else None


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, close_payload(code, reason))


# --------------------------------------------------------------------------------------------------
# Set-up and data
# --------------------------------------------------------------------------------------------------


def test_protocol_uses_the_chosen_codec(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert type(protocol._decoder) is codec_impl.Decoder
    assert type(protocol._encoder) is codec_impl.Encoder
    assert protocol.codec is codec_impl.module


def test_the_default_codec_is_wsfasts_choice() -> None:
    protocol = ClientProtocol()
    assert protocol.codec is _impl.codec
    assert type(protocol._decoder) is wsfast.codec.Decoder


def test_initial_state(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.state is State.OPEN
    assert protocol.close_sent is None
    assert protocol.close_received is None
    assert protocol.error is None
    assert protocol.data_to_send() == b""
    assert not protocol.handshake_complete


def test_messages_in_wire_order_and_split_anywhere(codec_impl: types.SimpleNamespace) -> None:
    stream = (
        frame(TEXT, "héllo")
        + frame(BINARY, b"\x00\x01")
        + frame(TEXT, "frag", fin=False)
        + frame(PONG, b"p")
        + frame(CONT, "mented", fin=True)
    )
    expected = ["héllo", b"\x00\x01", Pong(b"p"), "fragmented"]
    assert ClientProtocol(codec=codec_impl.module).receive_data(stream) == expected
    protocol = ClientProtocol(codec=codec_impl.module)
    events = []
    for i in range(len(stream)):
        events += protocol.receive_data(stream[i : i + 1])
    assert events == expected
    assert protocol.data_to_send() == b""


def test_receive_data_accepts_memoryview_and_bytearray(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.receive_data(memoryview(frame(TEXT, "a"))) == ["a"]
    assert protocol.receive_data(bytearray(frame(BINARY, b"b"))) == [b"b"]


# --------------------------------------------------------------------------------------------------
# PING / PONG
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"abc", bytes(range(125))])
def test_auto_pong_with_same_payload(payload: bytes, codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.receive_data(frame(PING, payload)) == [Ping(payload)]
    assert sent(protocol.data_to_send()) == [(PONG, payload)]
    assert protocol.data_to_send() == b""  # the queue was emptied


def test_auto_pong_for_each_ping_in_order(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_data(frame(PING, b"1") + frame(TEXT, "x") + frame(PING, b"2"))
    assert events == [Ping(b"1"), "x", Ping(b"2")]
    assert sent(protocol.data_to_send()) == [(PONG, b"1"), (PONG, b"2")]


def test_auto_pong_between_fragments(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_data(frame(TEXT, "a", fin=False) + frame(PING, b"mid") + frame(CONT, "b"))
    assert events == [Ping(b"mid"), "ab"]
    assert sent(protocol.data_to_send()) == [(PONG, b"mid")]


def test_no_auto_pong_when_disabled(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(auto_pong=False, codec=codec_impl.module)
    assert protocol.receive_data(frame(PING, b"abc")) == [Ping(b"abc")]
    assert protocol.data_to_send() == b""
    # The hook answers itself.
    assert sent(protocol.send_pong(b"abc")) == [(PONG, b"abc")]


def test_no_auto_pong_after_close_sent(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    protocol.send_close(1000)
    assert protocol.receive_data(frame(PING, b"late")) == [Ping(b"late")]
    assert protocol.data_to_send() == b""


def test_unsolicited_pong_and_ping(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert sent(protocol.send_pong()) == [(PONG, b"")]
    assert sent(protocol.send_ping("hi")) == [(PING, b"hi")]
    with pytest.raises(ValueError):  # noqa: PT011
        protocol.send_ping(b"x" * 126)


# --------------------------------------------------------------------------------------------------
# The closing handshake started by the server
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "ok"), [(1000, True), (1001, True), (1011, False), (3000, False), (4999, False)]
)
def test_server_close_answered_with_same_code(code: int, ok: bool, codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_data(close_frame(code, "bye"))
    assert events == [Close(code, "bye")]
    replies = sent(protocol.data_to_send())
    assert len(replies) == 1
    assert replies[0][0] == CLOSE
    assert close_code_of(replies[0][1]) == code
    assert protocol.state is State.CLOSING
    assert protocol.close_received == Close(code, "bye")
    assert protocol.close_sent is not None
    assert protocol.close_sent.code == code
    assert protocol.handshake_complete
    assert (protocol.close_code, protocol.close_reason) == (code, "bye")
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedOK if ok else ConnectionClosedError)
    assert (exc.code, exc.reason, exc.close_received) == (code, "bye", True)
    # Later the server closes TCP: the outcome stays the same.
    protocol.receive_eof()
    assert protocol.state is State.CLOSED
    assert protocol.close_code == code
    assert type(protocol.closed_exception()) is type(exc)


def test_empty_server_close_answered_with_empty_close(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.receive_data(frame(CLOSE, b"")) == [Close(1005, "")]
    assert sent(protocol.data_to_send()) == [(CLOSE, b"")]  # never 1005 on the wire (RFC 6455 §7.4.1)
    assert protocol.close_code == 1005
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.code, exc.close_received) == (1005, True)


@pytest.mark.parametrize("same_feed", [True, False])
def test_second_close_ignored(same_feed: bool, codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    first, second = close_frame(1000, "one"), close_frame(4000, "two")
    if same_feed:
        events = protocol.receive_data(first + second)
    else:
        events = protocol.receive_data(first) + protocol.receive_data(second)
    assert events == [Close(1000, "one")]
    assert [close_code_of(p) for _, p in sent(protocol.data_to_send())] == [1000]
    assert protocol.close_received == Close(1000, "one")
    assert protocol.close_code == 1000


@pytest.mark.parametrize("same_feed", [True, False])
def test_data_after_close_ignored(same_feed: bool, codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    after = frame(TEXT, "late") + frame(PING, b"late") + frame(BINARY, b"late")
    if same_feed:
        events = protocol.receive_data(close_frame(1000) + after)
    else:
        events = protocol.receive_data(close_frame(1000)) + protocol.receive_data(after)
    assert events == [Close(1000, "")]
    assert [op for op, _ in sent(protocol.data_to_send())] == [CLOSE]  # no PONG for the late PING


def test_garbage_after_close_ignored(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_data(close_frame(1000) + frame(0x3, b"reserved opcode"))
    assert events == [Close(1000, "")]
    assert protocol.error is None
    assert protocol.close_code == 1000
    assert isinstance(protocol.closed_exception(), ConnectionClosedOK)


def test_close_between_fragments_honoured(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_data(
        frame(TEXT, "part", fin=False) + close_frame(1001, "going") + frame(CONT, "rest")
    )
    assert events == [Close(1001, "going")]
    assert [(op, close_code_of(p)) for op, p in sent(protocol.data_to_send())] == [(CLOSE, 1001)]
    assert protocol.close_code == 1001


def test_messages_before_close_returned(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_data(frame(TEXT, "a") + frame(PING, b"p") + close_frame(1000))
    assert events == ["a", Ping(b"p"), Close(1000, "")]
    assert [op for op, _ in sent(protocol.data_to_send())] == [PONG, CLOSE]


# --------------------------------------------------------------------------------------------------
# The closing handshake started by the client
# --------------------------------------------------------------------------------------------------


def test_client_close_then_server_reply(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    data = protocol.send_close(1000, "done")
    assert sent(data) == [(CLOSE, close_payload(1000, "done"))]
    assert protocol.state is State.CLOSING
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.code, exc.close_received) == (1000, False)
    # Data still arrives until the server's CLOSE (RFC 6455 §7.1.2).
    assert protocol.receive_data(frame(TEXT, "still")) == ["still"]
    assert protocol.receive_data(close_frame(1000)) == [Close(1000, "")]
    assert protocol.data_to_send() == b""  # no second CLOSE
    assert protocol.handshake_complete
    protocol.receive_eof()
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedOK)
    assert (exc.code, exc.close_received) == (1000, True)


def test_client_close_without_code(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert sent(protocol.send_close(None)) == [(CLOSE, b"")]
    assert protocol.close_sent == Close(1005, "")


def test_client_close_then_eof_without_reply_is_1006(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    protocol.send_close(1000)
    protocol.receive_eof()
    assert protocol.close_code == 1006
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.close_received) == (1006, False)


def test_send_close_twice_returns_empty(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.send_close(1000)
    assert protocol.send_close(1000) == b""
    assert protocol.send_close(1001, "other") == b""
    assert protocol.close_sent == Close(1000, "")


def test_send_close_after_server_close_returns_empty(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    protocol.receive_data(close_frame(1000))
    protocol.data_to_send()
    assert protocol.send_close(1000) == b""


def test_send_close_after_eof_returns_empty(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    protocol.receive_eof()
    assert protocol.send_close(1000) == b""


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_send_close_invalid_code(code: int, codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    with pytest.raises(ValueError):  # noqa: PT011
        protocol.send_close(code)
    # Nothing changed: the connection is still open and can be closed properly.
    assert protocol.state is State.OPEN
    assert protocol.close_sent is None
    assert sent(protocol.send_close(1000)) == [(CLOSE, close_payload(1000))]


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_send_close_valid_codes(code: int, codec_impl: types.SimpleNamespace) -> None:
    assert sent(ClientProtocol(codec=codec_impl.module).send_close(code)) == [(CLOSE, close_payload(code))]


def test_send_close_reason_limits(codec_impl: types.SimpleNamespace) -> None:
    assert sent(ClientProtocol(codec=codec_impl.module).send_close(1000, "r" * 123)) == [
        (CLOSE, close_payload(1000, "r" * 123))
    ]
    protocol = ClientProtocol(codec=codec_impl.module)
    with pytest.raises(ValueError):  # noqa: PT011
        protocol.send_close(1000, "r" * 124)
    assert protocol.state is State.OPEN
    with pytest.raises(ValueError):  # noqa: PT011
        protocol.send_close(None, "a reason without a code")


# --------------------------------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------------------------------


def test_send_methods_produce_masked_frames(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert sent(protocol.send_text("héllo")) == [(TEXT, "héllo".encode())]
    assert sent(protocol.send_binary(b"\x00\xff")) == [(BINARY, b"\x00\xff")]
    assert sent(protocol.send_binary(bytearray(b"ba"))) == [(BINARY, b"ba")]
    assert sent(protocol.send_binary(memoryview(b"mv"))) == [(BINARY, b"mv")]
    big = bytes(range(256)) * 300
    assert sent(protocol.send_binary(big)) == [(BINARY, big)]


def test_send_frame_fragments(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    first = parse_client_frame(protocol.send_frame("frag", Opcode.TEXT, fin=False))
    last = parse_client_frame(protocol.send_frame(b"ment", Opcode.CONT, fin=True))
    assert (first.fin, first.opcode, first.payload) == (False, TEXT, b"frag")
    assert (last.fin, last.opcode, last.payload) == (True, CONT, b"ment")


@pytest.mark.parametrize(
    ("opcode", "fin", "payload"),
    [
        (Opcode.CLOSE, True, b""),
        (0x3, True, b""),
        (0xB, True, b""),
        (Opcode.PING, False, b""),
        (Opcode.PING, True, b"x" * 126),
    ],
)
def test_send_frame_rejects_invalid_frames(
    opcode: int, fin: bool, payload: bytes, codec_impl: types.SimpleNamespace
) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    with pytest.raises(ValueError):  # noqa: PT011
        protocol.send_frame(payload, opcode, fin)
    assert protocol.state is State.OPEN


SENDERS = {
    "send_text": lambda p: p.send_text("x"),
    "send_binary": lambda p: p.send_binary(b"x"),
    "send_frame": lambda p: p.send_frame(b"x", Opcode.BINARY),
    "send_ping": lambda p: p.send_ping(b"x"),
    "send_pong": lambda p: p.send_pong(b"x"),
}


def close_by_client(protocol: ClientProtocol) -> None:
    protocol.send_close(1000)


def close_by_server(protocol: ClientProtocol) -> None:
    protocol.receive_data(close_frame(1001, "away"))


def close_by_eof(protocol: ClientProtocol) -> None:
    protocol.receive_eof()


def close_by_error(protocol: ClientProtocol) -> None:
    protocol.receive_data(frame(TEXT, b"\xff"))


@pytest.mark.parametrize("sender", list(SENDERS))
@pytest.mark.parametrize(
    ("closer", "expected"),
    [
        (close_by_client, ConnectionClosedOK),
        (close_by_server, ConnectionClosedOK),
        (close_by_eof, ConnectionClosedError),
        (close_by_error, ConnectionClosedError),
    ],
)
def test_send_after_close_raises(
    sender: str, closer: object, expected: type, codec_impl: types.SimpleNamespace
) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    closer(protocol)  # type: ignore[operator]
    with pytest.raises(ConnectionClosed) as info:
        SENDERS[sender](protocol)
    assert type(info.value) is expected


# --------------------------------------------------------------------------------------------------
# Failing the connection
# --------------------------------------------------------------------------------------------------

BAD_FRAMES = {
    "rsv1": (frame(TEXT, "x", rsv=0b100), 1002),
    "rsv3": (frame(BINARY, b"x", rsv=0b001), 1002),
    "reserved opcode 3": (frame(0x3, b""), 1002),
    "reserved opcode 0xB": (frame(0xB, b""), 1002),
    "masked server frame": (frame(TEXT, "x", mask=b"abcd"), 1002),
    "fragmented ping": (frame(PING, b"x", fin=False), 1002),
    "ping over 125 bytes": (frame(PING, b"x" * 126), 1002),
    "continuation without start": (frame(CONT, b"x"), 1002),
    "new message inside fragmented one": (frame(TEXT, "a", fin=False) + frame(TEXT, "b"), 1002),
    "close with 1-byte payload": (frame(CLOSE, b"\x03"), 1002),
    "close code 999": (frame(CLOSE, close_payload(999)), 1002),
    "close code 1005 on the wire": (frame(CLOSE, close_payload(1005)), 1002),
    "close code 1006 on the wire": (frame(CLOSE, close_payload(1006)), 1002),
    "close code 1015 on the wire": (frame(CLOSE, close_payload(1015)), 1002),
    "close code 2000": (frame(CLOSE, close_payload(2000)), 1002),
    "invalid utf-8 text": (frame(TEXT, b"ok \xc3\x28"), 1007),
    "invalid utf-8 across fragments": (frame(TEXT, b"\xe2\x82", fin=False) + frame(CONT, b"\x28"), 1007),
    "text ends inside a sequence": (frame(TEXT, b"\xe2\x82"), 1007),
    "invalid utf-8 close reason": (frame(CLOSE, close_payload(1000, b"\xff")), 1007),
    "message too big": (frame(BINARY, b"x" * 101), 1009),
    "fragmented message too big": (frame(BINARY, b"x" * 60, fin=False) + frame(CONT, b"x" * 60), 1009),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_protocol_error_fails_the_connection(name: str, codec_impl: types.SimpleNamespace) -> None:
    bad, code = BAD_FRAMES[name]
    protocol = ClientProtocol(max_message_size=100, codec=codec_impl.module)
    before = frame(TEXT, "before") + frame(PING, b"p")
    events = protocol.receive_data(before + bad + frame(TEXT, "after"))
    assert events == ["before", Ping(b"p")]  # what came before the bad frame is still delivered
    assert isinstance(protocol.error, ProtocolError)
    assert protocol.error.close_code == code
    replies = sent(protocol.data_to_send())
    assert [op for op, _ in replies] == [PONG, CLOSE]
    assert close_code_of(replies[1][1]) == code
    assert len(replies[1][1]) <= 125
    replies[1][1][2:].decode("utf-8")  # the reason is valid UTF-8
    assert protocol.state is State.CLOSING
    assert protocol.close_sent is not None
    assert protocol.close_sent.code == code
    assert protocol.close_received is None
    assert protocol.close_code == code
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.close_received) == (code, False)
    # Nothing more is processed or sent, and the outcome survives the end of TCP.
    assert protocol.receive_data(frame(TEXT, "later") + close_frame(1000)) == []
    assert protocol.data_to_send() == b""
    assert protocol.send_close(1000) == b""
    protocol.receive_eof()
    assert protocol.state is State.CLOSED
    assert protocol.close_code == code
    assert isinstance(protocol.closed_exception(), ConnectionClosedError)
    with pytest.raises(ConnectionClosedError):
        protocol.send_text("x")


@pytest.mark.parametrize("name", ["rsv1", "invalid utf-8 text", "message too big"])
def test_protocol_error_split_across_feeds(name: str, codec_impl: types.SimpleNamespace) -> None:
    bad, code = BAD_FRAMES[name]
    protocol = ClientProtocol(max_message_size=100, codec=codec_impl.module)
    stream = frame(TEXT, "before") + bad
    events = []
    for i in range(len(stream)):
        events += protocol.receive_data(stream[i : i + 1])
        if protocol.error is not None:
            break
    assert events == ["before"]
    assert protocol.close_code == code
    assert [close_code_of(p) for _, p in sent(protocol.data_to_send())] == [code]


def test_fail_reason_truncated_on_a_character_boundary(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    protocol.fail(1011, "é" * 100)
    ((opcode, payload),) = sent(protocol.data_to_send())
    assert opcode == CLOSE
    assert len(payload) <= 125
    reason = payload[2:].decode("utf-8")
    assert reason == "é" * 61
    assert protocol.close_sent == Close(1011, "é" * 61)
    assert protocol.state is State.CLOSING


def test_fail_after_close_sent_sends_nothing_more(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    protocol.send_close(1000)
    protocol.fail(1002, "late")
    assert protocol.data_to_send() == b""


def test_eof_without_close_is_1006(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.receive_data(frame(TEXT, "a")) == ["a"]
    protocol.receive_eof()
    assert protocol.state is State.CLOSED
    assert (protocol.close_code, protocol.close_reason) == (1006, "")
    exc = protocol.closed_exception()
    assert isinstance(exc, ConnectionClosedError)
    assert (exc.code, exc.close_received) == (1006, False)
    assert protocol.receive_data(frame(TEXT, "after eof")) == []
    assert protocol.data_to_send() == b""


def test_eof_in_the_middle_of_a_message_is_1006(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    assert protocol.receive_data(frame(TEXT, "partial", fin=False)) == []
    protocol.receive_eof()
    assert protocol.close_code == 1006


# --------------------------------------------------------------------------------------------------
# Events shown to a hook before the protocol acts on them
# --------------------------------------------------------------------------------------------------


def test_receive_events_does_not_act_until_processed(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_events(frame(PING, b"p") + close_frame(1000))
    assert events == [Ping(b"p"), Close(1000, "")]
    assert protocol.data_to_send() == b""  # nothing decided yet
    assert protocol.state is State.OPEN
    assert protocol.process(events[0])
    assert sent(protocol.data_to_send()) == [(PONG, b"p")]
    assert protocol.process(events[1])
    assert [op for op, _ in sent(protocol.data_to_send())] == [CLOSE]
    protocol.finish_receive()
    assert protocol.close_code == 1000


def test_skipped_events_have_no_effect(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_events(frame(PING, b"p") + frame(TEXT, "a"))
    assert events == [Ping(b"p"), "a"]
    assert protocol.process(events[1])  # the PING is skipped: no PONG
    protocol.finish_receive()
    assert protocol.data_to_send() == b""


def test_failure_applied_by_finish_receive(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_events(frame(TEXT, "ok") + frame(TEXT, b"\xff"))
    assert events == ["ok"]
    assert protocol.error is None
    protocol.process(events[0])
    protocol.finish_receive()
    assert protocol.close_code == 1007
    assert [close_code_of(p) for _, p in sent(protocol.data_to_send())] == [1007]


# --------------------------------------------------------------------------------------------------
# A raw hook's verdicts (process_as): PROCESS, SKIP, STOP
# --------------------------------------------------------------------------------------------------


def hooked(protocol: ClientProtocol, data: bytes, verdicts: dict[Any, FrameAction]) -> list[Any]:
    """What a driver with a raw hook delivers: each event shown to the hook (verdicts; PROCESS unless
    given) until it said STOP, then processed as it said."""
    delivered = []
    for event in protocol.receive_events(data):
        action = None if protocol.hook_stopped else verdicts.get(event, FrameAction.PROCESS)
        if protocol.process_as(event, action):
            delivered.append(event)
    protocol.finish_receive()
    return delivered


@pytest.mark.parametrize("action", [None, 0, FrameAction.PROCESS, 7])
def test_process_as_process_is_process(action: Any, codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    events = protocol.receive_events(frame(TEXT, "a") + frame(PING, b"p"))
    assert [protocol.process_as(event, action) for event in events] == [True, True]
    assert sent(protocol.data_to_send()) == [(PONG, b"p")]


def test_process_as_skip_does_nothing(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    data = frame(TEXT, "skip") + frame(PING, b"p") + frame(TEXT, "keep") + close_frame(1000)
    verdicts = {"skip": FrameAction.SKIP, Ping(b"p"): FrameAction.SKIP, Close(1000, ""): FrameAction.SKIP}
    assert hooked(protocol, data, verdicts) == ["keep"]
    assert protocol.data_to_send() == b""  # no PONG, no answer to the CLOSE
    assert protocol.state is State.OPEN


def test_process_as_stop_closes_and_delivers_nothing_more(codec_impl: types.SimpleNamespace) -> None:
    protocol = ClientProtocol(codec=codec_impl.module)
    data = frame(TEXT, "a") + frame(TEXT, "stop") + frame(TEXT, "b") + frame(PING, b"p")
    assert hooked(protocol, data, {"stop": FrameAction.STOP}) == ["a"]
    assert protocol.hook_stopped
    closing = protocol.data_to_send()
    assert sent(closing) == [(CLOSE, close_payload(1000))]
    assert protocol.bytes_sent == len(closing)  # counted once, when written
    # STOP holds for the rest of the connection, in later reads too; the server's CLOSE still completes
    # the closing handshake, so the close code is the server's.
    assert hooked(protocol, frame(TEXT, "later") + close_frame(1001, "bye"), {}) == []
    assert protocol.close_received == Close(1001, "bye")
    assert protocol.data_to_send() == b""  # our CLOSE was sent already
    assert (protocol.close_code, protocol.close_reason) == (1001, "bye")
