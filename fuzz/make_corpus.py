"""Write the seed corpus (fuzz/corpus/<target>/) from the test vectors: ``python fuzz/make_corpus.py``.

Every seed is ``3 option bytes + body`` (see ``harness._Options``): the same vectors are written with a few
option sets (limits, text_as_bytes, permessage-deflate, split points). The files are small and committed;
run this again after changing the vectors. It is deterministic and writes files named by content hash.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(
    opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False, length: int | None = None
) -> bytes:
    """An unmasked server frame (RFC 6455 §5.2); *length* overrides the declared length."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


def deflated(payload: bytes) -> bytes:
    """A permessage-deflate message body (RFC 7692 §7.2.1: raw DEFLATE, sync flush, tail removed)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def close(code: int, reason: bytes = b"") -> bytes:
    return frame(0x8, struct.pack("!H", code) + reason)


# RFC 6455 §5.7 examples (server to client, unmasked), and more vectors from the decoder tests.
FRAME_VECTORS = [
    bytes.fromhex("810548656c6c6f"),  # "Hello"
    bytes.fromhex("010348656c80026c6f"),  # "Hel" + "lo" fragmented
    bytes.fromhex("890548656c6c6f"),  # PING "Hello"
    bytes.fromhex("8a0548656c6c6f"),  # PONG "Hello"
    frame(0x2, bytes(range(256))),  # 16-bit length
    bytes([0x82, 0x7F]) + struct.pack("!Q", 5) + b"hello",  # 64-bit length (non-minimal)
    frame(0x1, "Grüße, 𝄞 €".encode()),
    frame(0x1, b"caf\xc3", fin=False) + frame(0x9, b"p") + frame(0x0, b"\xa9"),  # split code point
    frame(0x1, b"\xed\xa0\x80"),  # surrogate: invalid UTF-8
    frame(0x1, b"\xff"),
    close(1000, b"bye"),
    close(1001),
    frame(0x8),  # empty CLOSE: 1005
    close(999),  # invalid code
    close(1000, b"\xc3\x28"),  # invalid UTF-8 reason
    frame(0x8, b"\x03"),  # 1-byte CLOSE body
    frame(0x9, b"x" * 125),
    frame(0x9, b"x" * 126),  # control frame too long
    frame(0x9, b"p", fin=False),  # fragmented control frame
    frame(0x3),  # reserved opcode
    bytes([0x81, 0x85]) + b"\x37\xfa\x21\x3d" + bytes.fromhex("7f9f4d5158"),  # masked frame from a server
    bytes([0x82, 0x7F]) + struct.pack("!Q", 2**63 - 1),  # 2^63-1 length claim
    bytes([0x82, 0x7F]) + struct.pack("!Q", 2**63),  # top bit set
    frame(0x0, b"orphan"),  # continuation without a message
    frame(0x1, b"a", fin=False) + frame(0x1, b"b"),  # new message inside a fragmented one
    frame(0x1, b"", fin=False) + frame(0x0, b"", fin=False) * 8 + frame(0x0, b""),
    frame(0x1, deflated(b"Hello"), rsv1=True),  # compressed (RFC 7692 §7.2.3.1)
    frame(0x1, deflated(b'{"price": 1.5, "qty": 2}' * 8), rsv1=True),
    frame(0x2, deflated(b"\0" * 100_000), rsv1=True),  # a small bomb
    frame(0x1, deflated(b"Hel")[:3], rsv1=True, fin=False) + frame(0x0, deflated(b"Hel")[3:]),
    frame(0x1, b"\xff\xff\xff", rsv1=True),  # invalid DEFLATE data
    frame(0x9, b"x", rsv1=True),  # RSV1 on a control frame
    frame(0x1, b"a") * 20 + close(1000),
]

HANDSHAKE_VECTORS = [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: @ACCEPT@\r\n\r\n" + frame(0x1, b"first") + close(1000),
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: @ACCEPT@\r\nSec-WebSocket-Protocol: chat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
    + frame(0x1, deflated(b"Hello"), rsv1=True),
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
    b"Sec-WebSocket-Accept: wrong\r\n\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: ws://example.org/other\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 301 Moved\r\nLocation: /relative?x=1\r\n\r\n",
    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: ftp://example.org/\r\n\r\n",
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden",
    b"HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n",
    b"HTTP/1.1 500 Oops\r\n\r\nbody until EOF",
    b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n",
    b"HTTP/1.1 10x Nope\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nBad Header\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Long: " + b"a" * 2000 + b"\r\n\r\n",
]

# (flags, size choice, seed): see harness._Options. flags bit 0 text_as_bytes, bit 1 defer_failure,
# bits 2+ the compression choice; the seed picks whole (0 mod 8), byte by byte (1 mod 8) or random cuts.
OPTION_SETS = [
    bytes([0, 0, 0]),
    bytes([1, 1, 1]),
    bytes([2 | 4, 6, 5]),
    bytes([8 | 1, 7, 42]),
    bytes([0, 3, 0x83]),
]


def write(target: str, seeds: list[bytes]) -> int:
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    count = 0
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()
        with open(os.path.join(folder, name), "wb") as file:
            file.write(seed)
        count += 1
    return count


def seeds() -> dict[str, list[bytes]]:
    frames = [options + vector for vector in FRAME_VECTORS for options in OPTION_SETS]
    stream = [options + b"".join(FRAME_VECTORS[:8]) for options in OPTION_SETS]
    handshakes = [options + vector for vector in HANDSHAKE_VECTORS for options in OPTION_SETS]
    return {"decoder": frames + stream, "protocol": frames + stream, "handshake": handshakes}


def main() -> int:
    for target, items in seeds().items():
        print(f"{target}: {write(target, items)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
