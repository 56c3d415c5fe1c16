"""Captures (wsfast.capture): the file format, torn tails, appending, and a capture of a real feed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import wsfast
from wsfast.capture import (
    BINARY,
    MAGIC,
    NOTE,
    TEXT,
    CaptureError,
    CaptureReader,
    CaptureWriter,
    Record,
    TornTail,
)
from wsfast.feed import FeedServer, trade_messages
from wsfast.replay import ReplayServer

WAIT = 30.0


def _write_sample(path: Path) -> list[Record]:
    """A capture of three messages and a note; returns what a reader must give back."""
    with CaptureWriter(path, url="ws://example/feed", flush_every=1) as writer:
        writer.write("héllo", wall_ns=1_000, monotonic_ns=10)
        writer.write(b"\x00\xff", wall_ns=2_000, monotonic_ns=20)
        writer.note({"event": "reconnected", "attempt": 1})
        writer.write(bytearray(b"ab"), wall_ns=3_000, monotonic_ns=30)
    return list(CaptureReader(path))


def test_a_capture_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "sample.wscap"
    records = _write_sample(path)
    assert path.read_bytes().startswith(MAGIC)
    assert [record.kind for record in records] == [NOTE, TEXT, BINARY, NOTE, BINARY]
    header = records[0].note
    assert header["format"] == 1
    assert header["url"] == "ws://example/feed"
    assert header["appended"] is False
    messages = [record for record in records if record.kind != NOTE]
    assert [record.message for record in messages] == ["héllo", b"\x00\xff", b"ab"]
    assert [(record.wall_ns, record.monotonic_ns) for record in messages] == [
        (1_000, 10),
        (2_000, 20),
        (3_000, 30),
    ]
    assert records[3].note == {"event": "reconnected", "attempt": 1}
    reader = CaptureReader(path)
    assert [record.message for record in reader.messages()] == ["héllo", b"\x00\xff", b"ab"]
    assert reader.torn is None
    assert reader.end == path.stat().st_size
    assert reader.header == header
    with pytest.raises(CaptureError, match="not a message"):
        _ = records[0].message
    with pytest.raises(CaptureError, match="not a note"):
        _ = records[1].note


def test_a_capture_cut_at_any_byte_reads_every_complete_record(tmp_path: Path) -> None:
    path = tmp_path / "sample.wscap"
    records = _write_sample(path)
    data = path.read_bytes()
    boundaries = [len(MAGIC)]
    reader = CaptureReader(path)
    for _ in reader:
        boundaries.append(reader.end)
    assert boundaries[-1] == len(data)
    assert len(boundaries) == len(records) + 1
    cut_path = tmp_path / "cut.wscap"
    for cut in range(len(MAGIC), len(data) + 1):
        cut_path.write_bytes(data[:cut])
        reader = CaptureReader(cut_path)
        complete = [boundary for boundary in boundaries if boundary <= cut]
        assert list(reader) == records[: len(complete) - 1], cut
        assert reader.end == complete[-1]
        if cut in boundaries:
            assert reader.torn is None
        else:
            assert reader.torn == TornTail(complete[-1], cut - complete[-1])


def test_a_record_damaged_before_the_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "sample.wscap"
    _write_sample(path)
    data = bytearray(path.read_bytes())
    data[len(MAGIC) + 12] ^= 0x01  # inside the first record, with complete records after it
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=f"offset {len(MAGIC)} is damaged"):
        list(CaptureReader(path))


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "not a wsfast capture"),
        (b'{"json": true}\n', "not a wsfast capture"),
        (b"\x89WSCAP9\n", "format b'9' is not supported"),
    ],
)
def test_what_is_not_a_capture_is_refused(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "other"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=error):
        list(CaptureReader(path))


def test_appending_cuts_a_torn_tail_and_marks_the_restart(tmp_path: Path) -> None:
    path = tmp_path / "sample.wscap"
    records = _write_sample(path)
    with path.open("ab") as file:
        file.write(b"\x30\x00\x00\x00\x01\x02")  # a crash in the middle of the next record
    reader = CaptureReader(path)
    assert list(reader) == records
    assert reader.torn == TornTail(reader.end, 6)
    with CaptureWriter(path, append=True, url="ws://example/feed") as writer:
        writer.write("after the restart")
    reader = CaptureReader(path)
    again = list(reader)
    assert reader.torn is None
    assert again[: len(records)] == records
    assert again[len(records)].note["appended"] is True
    assert again[-1].message == "after the restart"


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_every"):
        CaptureWriter(tmp_path / "x", flush_every=0)


def _receive_all(url: str, writer: CaptureWriter | None = None) -> tuple[list[str | bytes], int | None]:
    """Every message a threaded client receives from *url* (recorded by *writer* too) until the server
    closes; and the close code."""
    closed = threading.Event()
    received: list[str | bytes] = []
    codes: list[int] = []

    def on_message(message: str | bytes) -> None:
        received.append(message)
        if writer is not None:
            writer.write(message)

    def on_close(code: int, reason: str) -> None:
        codes.append(code)
        closed.set()

    client = wsfast.WebSocketClient(on_message, url, on_close=on_close)
    client.connect()
    assert closed.wait(WAIT)
    client.disconnect()
    return received, codes[0] if codes else None


def test_a_capture_of_the_embedded_feed_holds_its_messages_in_order(tmp_path: Path) -> None:
    count = 5_000
    path = tmp_path / "feed.wscap"
    with FeedServer(messages=count) as feed, CaptureWriter(path, url=feed.url) as writer:
        received, code = _receive_all(feed.url, writer)
    assert code == 1000
    records = list(CaptureReader(path).messages())
    assert len(received) == count
    assert [record.message for record in records] == received
    assert received[0] == trade_messages(1)[0].decode()
    stamps = [record.monotonic_ns for record in records]
    assert stamps == sorted(stamps)  # the receive order, on a clock that never goes back


def test_a_capture_of_the_embedded_feed_replays_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "feed.wscap"
    with FeedServer(messages=5_000) as feed, CaptureWriter(path, url=feed.url) as writer:
        recorded, _ = _receive_all(feed.url, writer)
    with ReplayServer(path, speed=None) as replay:
        replayed, code = _receive_all(replay.url)
        assert replay.pacing() is None  # nothing was on a schedule
    assert code == 1000
    assert replayed == recorded
    assert len(replayed) == 5_000


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_a_replay_keeps_the_capture_s_pace(tmp_path: Path, speed: float) -> None:
    path = tmp_path / "paced.wscap"
    messages: list[str | bytes] = [f"tick {i}" if i % 3 else bytes([i % 256]) * 20 for i in range(100)]
    with CaptureWriter(path) as writer:
        for i, message in enumerate(messages):
            writer.write(
                message, wall_ns=1_700_000_000_000_000_000 + i, monotonic_ns=5_000_000 + i * 2_000_000
            )
    with ReplayServer(path, speed=speed) as replay:
        replayed, code = _receive_all(replay.url)
        pacing = replay.pacing()
    assert replayed == messages
    assert code == 1000
    assert pacing is not None
    assert pacing.messages == len(messages)
    # Never early: each message waits for its time (2 ms apart in the capture, divided by speed).
    assert 0 <= pacing.median_us <= pacing.p99_us <= pacing.max_us


def test_a_replay_refuses_what_it_cannot_play(tmp_path: Path) -> None:
    path = tmp_path / "sample.wscap"
    _write_sample(path)
    with pytest.raises(ValueError, match="speed must be positive"):
        ReplayServer(path, speed=0)
    other = tmp_path / "other"
    other.write_bytes(b"not a capture")
    with pytest.raises(CaptureError, match="not a wsfast capture"):
        ReplayServer(other)
