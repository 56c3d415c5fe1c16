"""``python -m wsfast`` / ``wsfast``: the command-line entry point.

``wsfast demo`` (the default) runs the frame codec on a synthetic exchange feed held in memory, in both
implementations, and prints the throughput of each, so a fresh install shows at once whether the compiled
hot path is in use and what it buys.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence

from . import __version__, implementation
from ._impl import codec_twins

__all__ = ["main"]


def _market_data_stream(count: int, seed: int = 7) -> list[bytes]:
    """Server frames of ~150-byte trade messages, cut into 64 KiB pieces as a socket would deliver."""
    rng = random.Random(seed)
    frames = bytearray()
    for i in range(count):
        payload = json.dumps(
            {
                "e": "trade",
                "E": 1_700_000_000_000 + i,
                "s": "BTCUSDT",
                "t": 4_000_000 + i,
                "p": f"{60_000 + rng.random() * 100:.2f}",
                "q": f"{rng.random():.5f}",
                "T": 1_700_000_000_000 + i,
                "m": rng.random() < 0.5,
            },
            separators=(",", ":"),
        ).encode()
        frames += bytes((0x81, len(payload))) + payload
    return [bytes(frames[i : i + 65536]) for i in range(0, len(frames), 65536)]


def _messages_per_second(decoder_factory: Callable[[], object], chunks: Sequence[bytes]) -> float:
    best = float("inf")
    count = 0
    for _ in range(5):
        decoder = decoder_factory()
        feed = decoder.feed  # type: ignore[attr-defined]
        start = time.perf_counter()
        count = 0
        for chunk in chunks:
            count += len(feed(chunk))
        best = min(best, time.perf_counter() - start)
    return count / best


def demo(count: int) -> int:
    chunks = _market_data_stream(count)
    size = sum(map(len, chunks))
    print(f"wsfast {__version__} ({implementation} implementation loaded)")
    print(f"decoding {count:,} trade messages ({size / 2**20:.1f} MiB of frames), best of 5 runs:")
    rates = {name: _messages_per_second(twin.Decoder, chunks) for name, twin in codec_twins().items()}
    for name, rate in rates.items():
        print(f"  {name:<7} {rate / 1e6:8.2f} M messages/s  {rate * size / count / 2**20:9.1f} MiB/s")
    if len(rates) == 2:
        print(f"  compiled / pure: {rates['cython'] / rates['python']:.1f}x")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wsfast", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"wsfast {__version__}")
    commands = parser.add_subparsers(dest="command")
    demo_parser = commands.add_parser("demo", help="decode a synthetic market-data feed and show speed")
    demo_parser.add_argument("--count", type=int, default=200_000, help="messages (default 200,000)")
    args = parser.parse_args(argv)
    return demo(getattr(args, "count", 200_000))


if __name__ == "__main__":
    sys.exit(main())
