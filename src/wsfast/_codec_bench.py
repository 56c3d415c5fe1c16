"""``wsfast codec``: the frame decoder of each implementation on an in-memory market-data feed."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence

from . import __version__, implementation
from ._impl import codec_twins

__all__ = ["codec_demo"]


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


def codec_demo(count: int) -> int:
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
