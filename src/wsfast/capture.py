"""Captures: every message of a stream with when it was received, in a compact file that survives a crash.

A capture records a feed to debug a bad tick or to backtest on the exact stream::

    with CaptureWriter("feed.wscap", url=url) as capture:
        client = WebSocketClient(capture.write, url)   # or: capture.write(message) in any callback
        ...
    for record in CaptureReader("feed.wscap"):
        record.message, record.wall_ns, record.monotonic_ns

The format (version 1; little-endian):

* the file starts with the 8 bytes ``\\x89WSCAP1\\n`` (a binary signature: a text-mode transfer or another
  file is recognised at once);
* then records, each ``length:u32 crc:u32 kind:u8 wall_ns:i64 monotonic_ns:i64 payload``, where *length*
  counts the bytes after *crc* (17 + the payload's) and *crc* is the CRC-32 of those bytes;
* *kind* 1 is a TEXT message (the payload is its UTF-8), 2 a BINARY message, 3 a note: a JSON object
  (the first record is always one: ``{"format": 1, "url": ..., "wsfast": ...}``; :meth:`CaptureWriter.note`
  adds more, such as a reconnection).

A record is written with one ``write`` and the file is only ever appended to, so a crash (of the process
or of the machine) can only leave a *torn tail*: a last record cut short. :class:`CaptureReader` reads
every complete record and reports the torn tail (:attr:`CaptureReader.torn`) instead of failing; a record
that is damaged *before* the end (a CRC mismatch with complete records after it) raises
:class:`CaptureError`, since that is not what a crash does. Appending to a capture
(``CaptureWriter(path, append=True)``) first cuts a torn tail off, so the file stays readable to its end.

Times are the writer's clocks when not given: ``time.time_ns()`` (wall clock, for the exchange-to-client
delay) and ``time.monotonic_ns()`` (for pacing a replay: it never jumps).
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, BinaryIO

from .__version__ import __version__

__all__ = [
    "BINARY",
    "MAGIC",
    "NOTE",
    "TEXT",
    "CaptureError",
    "CaptureReader",
    "CaptureWriter",
    "Record",
    "TornTail",
]

MAGIC = b"\x89WSCAP1\n"
FORMAT_VERSION = 1
TEXT, BINARY, NOTE = 1, 2, 3
KINDS = (TEXT, BINARY, NOTE)

_PREFIX = struct.Struct("<II")  # length, crc
_FIELDS = struct.Struct("<Bqq")  # kind, wall_ns, monotonic_ns
_MAX_RECORD = 2**32 - 1 - _FIELDS.size  # the largest payload a u32 length can describe


class CaptureError(ValueError):
    """A file that is not a capture, of an unknown format version, or damaged before its end."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record: *kind* is :data:`TEXT`, :data:`BINARY` or :data:`NOTE`; *payload* its raw bytes."""

    kind: int
    wall_ns: int
    monotonic_ns: int
    payload: bytes

    @property
    def message(self) -> str | bytes:
        """The message as the client delivered it: ``str`` for TEXT, ``bytes`` for BINARY."""
        if self.kind == TEXT:
            return self.payload.decode("utf-8")
        if self.kind == BINARY:
            return self.payload
        raise CaptureError("a note is not a message: read Record.note")

    @property
    def note(self) -> dict[str, Any]:
        """A note's JSON object."""
        if self.kind != NOTE:
            raise CaptureError("not a note: read Record.message")
        value = json.loads(self.payload)
        if not isinstance(value, dict):
            raise CaptureError("a note must be a JSON object")
        return value


@dataclass(frozen=True, slots=True)
class TornTail:
    """The incomplete last record a crash left: it starts at *offset* and *size* bytes of it were written."""

    offset: int
    size: int


class CaptureWriter:
    """Appends records to a capture file.

    Args:
        path: the file; created, or replaced unless *append*.
        url: recorded in the first note (its password should already be removed: :func:`wsfast.uri.redact`).
        append: add to an existing capture (a torn tail is cut off first; a new note marks the restart).
        flush_every: write the buffer to the file after this many records (and on :meth:`flush`,
            :meth:`close`); ``1`` writes each record at once.
        fsync: also ask the OS to put each flush on disk (survives a power loss, costs a disk write).

    Thread-safe only as the callback of one client (one thread writes); give each client its own writer.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        url: str | None = None,
        append: bool = False,
        flush_every: int = 1024,
        fsync: bool = False,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be at least 1, got {flush_every}")
        self.path = os.fspath(path)
        self.flush_every = flush_every
        self.fsync = fsync
        self.records = 0  # written by this writer (notes included)
        self._unflushed = 0
        exists = append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if exists:
            reader = CaptureReader(self.path)
            for _ in reader:
                pass
            self._file: BinaryIO = open(self.path, "r+b")  # noqa: SIM115 (closed by close())
            self._file.truncate(reader.end)  # the torn tail, if any, goes
            self._file.seek(reader.end)
        else:
            self._file = open(self.path, "wb")  # noqa: SIM115
            self._file.write(MAGIC)
        self.note({"format": FORMAT_VERSION, "url": url, "wsfast": __version__, "appended": bool(exists)})

    def write(
        self,
        message: str | bytes | bytearray | memoryview,
        wall_ns: int | None = None,
        monotonic_ns: int | None = None,
    ) -> None:
        """Record one message (``str``: TEXT, bytes-like: BINARY), stamped now unless times are given."""
        if isinstance(message, str):
            self._record(TEXT, message.encode("utf-8"), wall_ns, monotonic_ns)
        else:
            self._record(BINARY, bytes(message), wall_ns, monotonic_ns)

    __call__ = write  # a writer is a message callback: WebSocketClient(writer, url)

    def note(self, fields: dict[str, Any]) -> None:
        """Record a JSON object between messages: a reconnection, a subscription, a comment."""
        self._record(NOTE, json.dumps(fields, separators=(",", ":")).encode(), None, None)

    def _record(self, kind: int, payload: bytes, wall_ns: int | None, monotonic_ns: int | None) -> None:
        if len(payload) > _MAX_RECORD:
            raise CaptureError(f"a record holds at most {_MAX_RECORD} bytes, got {len(payload)}")
        fields = _FIELDS.pack(
            kind,
            time.time_ns() if wall_ns is None else wall_ns,
            time.monotonic_ns() if monotonic_ns is None else monotonic_ns,
        )
        crc = zlib.crc32(payload, zlib.crc32(fields))
        self._file.write(_PREFIX.pack(_FIELDS.size + len(payload), crc) + fields + payload)
        self.records += 1
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered records to the OS (and to the disk, with *fsync*)."""
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._unflushed = 0

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CaptureReader:
    """Iterates the records of a capture file, in order, without a server.

    After the iteration, :attr:`torn` describes an incomplete last record (``None`` if the file ended
    cleanly) and :attr:`end` is the offset just after the last complete record. The first note is
    :attr:`header` once read.

    Raises:
        CaptureError: not a capture, an unknown format version, or a record damaged before the end.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.torn: TornTail | None = None
        self.end = len(MAGIC)
        self.header: dict[str, Any] = {}

    def __iter__(self) -> Iterator[Record]:
        with open(self.path, "rb") as file:
            yield from self._records(file)

    def messages(self) -> Iterator[Record]:
        """The message records only (notes skipped)."""
        return (record for record in self if record.kind != NOTE)

    def _records(self, file: IO[bytes]) -> Iterator[Record]:
        size = os.fstat(file.fileno()).st_size
        magic = file.read(len(MAGIC))
        if magic != MAGIC:
            if magic[:6] == MAGIC[:6] and len(magic) == len(MAGIC):
                raise CaptureError(f"{self.path}: capture format {magic[6:7]!r} is not supported (1 is)")
            raise CaptureError(f"{self.path}: not a wsfast capture (it does not start with {MAGIC!r})")
        offset = self.end = len(MAGIC)
        self.torn = None
        while offset < size:
            prefix = file.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                self.torn = TornTail(offset, len(prefix))
                return
            length, crc = _PREFIX.unpack(prefix)
            body = file.read(length) if length >= _FIELDS.size else b""
            record_end = offset + _PREFIX.size + length
            if length < _FIELDS.size or len(body) < length or zlib.crc32(body) != crc:
                if record_end >= size:  # the last record: a crash cut it short
                    self.torn = TornTail(offset, size - offset)
                    return
                raise CaptureError(f"{self.path}: the record at offset {offset} is damaged")
            kind, wall_ns, monotonic_ns = _FIELDS.unpack_from(body)
            if kind not in KINDS:
                raise CaptureError(f"{self.path}: unknown record kind {kind} at offset {offset}")
            record = Record(kind, wall_ns, monotonic_ns, body[_FIELDS.size :])
            if offset == len(MAGIC):
                self.header = record.note if kind == NOTE else {}
            offset = self.end = record_end
            yield record
