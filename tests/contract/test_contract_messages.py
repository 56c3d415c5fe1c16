"""Messages and control frames, on every front-end: echo of every payload type, large and fragmented
messages, order, ``text_as_bytes``, PING/PONG (``ping()``, automatic PONGs, the ``on_ping`` and
``on_pong`` hooks; RFC 6455 §5.5.2, §5.5.3).
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest
from adapters import WAIT, Client

from servers import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    RawConnection,
    RawServer,
    WebsocketsServer,
    accept_then,
    echo,
    ping_then_echo,
    send_messages,
    server_close,
    server_frame,
)
from wsfast import ConnectionClosedOK, Opcode, _impl

# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def test_the_chosen_twin_frames_the_connection(client: Client, ws_server: WebsocketsServer) -> None:
    """``implementation=`` (the codec seam): this connection's decoder and encoder are that twin's."""
    client.open(ws_server.url())
    twin = _impl.codec_twins()[client.variant.twin]
    protocol = client.protocol
    assert protocol.codec is twin
    assert type(protocol._decoder) is twin.Decoder
    assert type(protocol._encoder) is twin.Encoder


def test_echo_keeps_each_payload_type(client: Client) -> None:
    with WebsocketsServer(echo) as server:
        client.open(server.url("/echo?x=1"))
        response = client.raw.response
        assert response.status == 101
        assert "sec-websocket-accept" in response.headers
        assert client.url == server.url("/echo?x=1")
        for data in ("héllo ☃", b"\x00\x01\xff", bytearray(b"ba"), memoryview(b"memoryview"), "", b""):
            client.send(data)  # type: ignore[arg-type]
        messages = client.recv_many(6)
        assert messages == ["héllo ☃", b"\x00\x01\xff", b"ba", b"memoryview", "", b""]
        assert [type(m) for m in messages] == [str, bytes, bytes, bytes, str, bytes]
        stats = client.stats()
        assert (stats.messages_sent, stats.messages_received, stats.connections) == (6, 6, 1)
        client.close()
        assert client.close_code == 1000
        assert server.wait_closes(1) == [(1000, "")]


def test_large_and_fragmented_messages(client: Client) -> None:
    size = 16 * 2**20
    payload = bytes(range(256)) * (size // 256)
    with WebsocketsServer(echo, max_size=None) as server:
        client.open(server.url(), max_message_size=size + 1024)
        client.send(payload)
        client.send("x" * size)
        first, second = client.recv_many(2, timeout=30)
        assert first == payload
        assert second == "x" * size
        client.send_frame("Hel", Opcode.TEXT, fin=False)
        client.send_frame("lo ", Opcode.CONT, fin=False)
        client.send_frame("wörld", Opcode.CONT, fin=True)
        client.send_frame(b"\x01", Opcode.BINARY, fin=False)
        client.ping()  # a control frame may be interleaved with fragments
        client.send_frame(b"\x02", Opcode.CONT)
        assert client.recv_many(2) == ["Hello wörld", b"\x01\x02"]
        with pytest.raises(ValueError):  # noqa: PT011
            client.send_frame(b"", Opcode.CLOSE)
        with pytest.raises(ValueError):  # noqa: PT011
            client.send_frame(b"", 0x3)
        client.send("still open")
        assert client.recv() == "still open"


def test_many_messages_arrive_in_order_until_a_normal_close(client: Any) -> None:
    """``async for`` ends on a normal close; callbacks get every message, in order."""
    expected = [f"message {i}" for i in range(2000)]
    with WebsocketsServer(send_messages(2000)) as server:
        client.open(server.url())
        if client.has_recv:
            assert client.iterate() == expected  # ends by itself: the server closed with 1000
        else:
            assert client.recv_many(2000) == expected
        (event,) = client.events.wait_for("disconnect")
        assert event[1].code == 1000
        if client.variant.frontend == "inline":  # on_message takes the messages: recv() is refused
            ws = client.ws
            with pytest.raises(RuntimeError):
                client.run(lambda: ws.recv())


def test_text_as_bytes(client: Client, ws_server: WebsocketsServer) -> None:
    client.open(ws_server.url(), text_as_bytes=True)
    client.send("héllo")
    client.send(b"bin")
    assert client.recv_many(2) == ["héllo".encode(), b"bin"]


# --------------------------------------------------------------------------------------------------
# ping() and PONGs
# --------------------------------------------------------------------------------------------------


def test_ping_payloads_and_on_pong(client: Client, ws_server: WebsocketsServer) -> None:
    pongs: list[bytes] = []
    client.open(ws_server.url(), on_pong=pongs.append)
    rtt = client.ping()
    assert isinstance(rtt, float)
    assert 0 < rtt < WAIT
    if client.variant.frontend != "threaded":
        assert client.raw.latency == rtt
    for payload in (b"abc", "text payload", b""):
        assert client.ping(payload=payload) >= 0.0
    deadline = time.monotonic() + WAIT
    while len(pongs) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pongs[0]) == 4  # the default payload: 4 random bytes
    assert pongs[1:] == [b"abc", b"text payload", b""]
    with pytest.raises(ValueError, match="125"):
        client.ping(payload=b"x" * 126)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # pings at once, from other threads
        times = [future.result(WAIT) for future in [pool.submit(client.ping) for _ in range(3)]]
    assert all(t > 0 for t in times)


def test_a_pong_answers_earlier_pings_too(client: Client) -> None:
    """RFC 6455 §5.5.3: a PONG answers the most recent PING; the earlier ones count as answered."""

    def handler(conn: RawConnection) -> None:
        conn.accept()
        first, last = conn.read_frame(), conn.read_frame()
        assert first is not None
        assert last is not None
        assert (first.opcode, last.opcode) == (PING, PING)
        conn.send(server_frame(PONG, last.payload))  # answers the most recent PING only
        conn.finish_closing_handshake()

    with RawServer(handler) as server:
        client.open(server.url(), ping_interval=None)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(client.ping)
            time.sleep(0.1)
            second = pool.submit(client.ping)
            assert first.result(WAIT) >= second.result(WAIT) > 0.0


def test_a_waiting_ping_ends_with_the_servers_close(client: Client) -> None:
    """Nothing follows the server's CLOSE (RFC 6455 §5.5.1): a ping() waiting then ends at once."""

    def handler(conn: RawConnection) -> None:
        conn.accept()
        frame = conn.read_frame()
        assert frame is not None
        assert frame.opcode == PING
        conn.send(server_close(1001, "going away"))  # no PONG
        conn.read_until_close()

    with RawServer(handler) as server:
        client.open(server.url(), ping_interval=None)
        with pytest.raises(ConnectionClosedOK) as info:
            client.ping()
        assert (info.value.code, info.value.reason) == (1001, "going away")


def test_server_ping_gets_an_automatic_pong(client: Client) -> None:
    with WebsocketsServer(ping_then_echo(b"are you there")) as server:
        client.open(server.url())
        assert client.recv() == "pong: ok"


def ping_after_go(conn: RawConnection) -> None:
    """Wait for the client's first message (it is open, and its adapter knows its object), then send a
    PING and a message; answer the client's CLOSE."""
    conn.accept()
    conn.read_frame()
    conn.send(server_frame(PING, b"hb") + server_frame(TEXT, "after ping"))
    conn.finish_closing_handshake()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, []),  # the hook replaces the automatic PONG: none goes out
        (b"", [(PONG, b"hb")]),  # the hook answers with pong(payload)
        (b"!", [(PONG, b"hb!")]),  # a PONG of its own making
    ],
    ids=["no-answer", "pong", "custom-pong"],
)
def test_on_ping_replaces_the_automatic_pong(
    client: Client, answer: bytes | None, expected: list[tuple[int, bytes]]
) -> None:
    seen: list[bytes] = []

    def on_ping(payload: bytes) -> None:
        seen.append(payload)
        if answer is not None:
            client.pong_from_callback(payload + answer)

    with RawServer(ping_after_go) as server:
        client.open(server.url(), on_ping=on_ping, ping_interval=None)
        client.send("go")
        assert client.recv() == "after ping"
        assert seen == [b"hb"]
        client.pong(b"keepalive")  # unsolicited: a unidirectional heartbeat (RFC 6455 §5.5.3)
        client.close()
        server.wait_finished(1)
        frames = [(f.opcode, f.payload) for f in server.connections[0].frames]
        assert frames[0] == (TEXT, b"go")
        assert frames[1:-1] == [*expected, (PONG, b"keepalive")]
        assert frames[-1][0] == CLOSE
        assert all(f.masked for f in server.connections[0].frames)


def test_frames_sent_with_the_101_are_delivered(client: Client) -> None:
    after = server_frame(TEXT, "first") + server_frame(0x2, b"second") + server_frame(PING, b"p")
    with RawServer(accept_then(after)) as server:
        client.open(server.url())
        assert client.recv_many(2) == ["first", b"second"]
        client.close()
        server.wait_finished(1)
        assert (server.connections[0].frames[0].opcode, server.connections[0].frames[0].payload) == (
            PONG,
            b"p",
        )
