"""Codec micro-benchmarks: wsfast (compiled and pure) against peer libraries.

Every contender of a scenario shares one pytest-benchmark group, so the ratios
come from a single run.  Each benchmark checks its result (message count and
payload equality / mask output / validator verdict): once before timing when
benchmarking, or on the single call when run with --benchmark-disable.
"""

from __future__ import annotations

import functools
import random

import pytest

import peers

KiB, MiB = 1024, 2**20


def run_checked(benchmark, check, fn, *args):
    """Benchmark fn(*args) (called directly, no wrapper frame) and check its result."""
    if not benchmark.disabled:
        check(fn(*args))  # un-timed verification (also warms buffers up)
    result = benchmark(fn, *args)
    check(result)
    return result


def _parse_bench(benchmark, scenario, adapter, group):
    benchmark.group = group
    benchmark.extra_info["stream_bytes"] = scenario.nbytes
    benchmark.extra_info["messages"] = len(scenario.expected)

    def check(count):
        assert count == len(scenario.expected), (group, count)
        scenario.check(adapter.last)

    run_checked(benchmark, check, adapter.parse, scenario.chunks)


# --------------------------------------------------------------------------- 1. small JSON
@pytest.mark.parametrize("contender", peers.CONTENDERS)
def test_small_json(benchmark, scenarios, make_adapter, contender):
    """10,000 ~150-byte trade JSON text messages, 64 KiB chunks."""
    adapter = make_adapter(contender)
    _parse_bench(benchmark, scenarios["small-json"], adapter, "small-json")


# --------------------------------------------------------------------------- 2. binary
@pytest.mark.parametrize("contender", peers.CONTENDERS)
@pytest.mark.parametrize("size", ["64k", "1m"])
def test_binary(benchmark, scenarios, make_adapter, size, contender):
    """4 MiB of binary messages of 64 KiB or 1 MiB each, 64 KiB chunks."""
    adapter = make_adapter(contender)
    name = f"binary-{size}"
    _parse_bench(benchmark, scenarios[name], adapter, name)


# --------------------------------------------------------------------------- 3. fragmented
@pytest.mark.parametrize("contender", peers.CONTENDERS)
@pytest.mark.parametrize("frag", ["64", "1k", "64k"])
def test_text_fragmented(benchmark, scenarios, make_adapter, frag, contender):
    """One 4 MiB order-book snapshot (ASCII JSON, as exchanges send) in fragments, 64 KiB chunks."""
    adapter = make_adapter(contender)
    name = f"text-4m-fragmented-{frag}"
    _parse_bench(benchmark, scenarios[name], adapter, name)


@pytest.mark.parametrize("contender", peers.CONTENDERS)
def test_text_multibyte_fragmented(benchmark, scenarios, make_adapter, contender):
    """One 4 MiB text message with 2-, 3- and 4-byte characters in 1 KiB fragments, 64 KiB chunks.

    Here CPython's own UTF-8 decoding (building a UCS-4 string) dominates every contender's time.
    """
    adapter = make_adapter(contender)
    name = "text-4m-multibyte-fragmented-1k"
    _parse_bench(benchmark, scenarios[name], adapter, name)


# --------------------------------------------------------------------------- 4. masking
MASK_SIZES = {"16": 16, "1k": KiB, "64k": 64 * KiB, "1m": MiB}
MASK_KEY = b"\x37\xfa\x21\x3d"
_MASKS = peers.mask_functions()


def _reference_mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def _load(table, contender):
    requirement, factory = table[contender]
    if requirement is not None:
        peers.importorskip(requirement)
    return factory()


@pytest.mark.parametrize("contender", list(_MASKS))
@pytest.mark.parametrize("size", list(MASK_SIZES))
def test_mask(benchmark, size, contender):
    """apply_mask on 16 B .. 1 MiB; `copy` is a plain memory copy baseline."""
    apply = _load(_MASKS, contender)
    benchmark.group = f"mask-{size}"
    data = random.Random(3).randbytes(MASK_SIZES[size])
    expected = data if contender == "copy" else _reference_mask(data, MASK_KEY)

    def check(out):
        assert out == expected, contender

    if contender == "copy":
        # bound C method: one allocation + memcpy, no Python frame
        run_checked(benchmark, check, memoryview(data).tobytes)
    else:
        run_checked(benchmark, check, apply, data, MASK_KEY)


# --------------------------------------------------------------------------- 5. UTF-8
_UTF8 = peers.utf8_functions()


@functools.cache
def _utf8_data(kind: str) -> bytes:
    rnd = random.Random(5)
    if kind == "ascii":
        alphabet = [chr(c) for c in range(0x20, 0x7F)]
    else:  # ~1/4 each of 1-, 2-, 3- and 4-byte sequences
        alphabet = ["a", "z", "{", "é", "ж", "ß", "日", "€", "語", "😀", "🚀", "𝄞"]
    out, size = [], 0
    while size < MiB:
        s = "".join(rnd.choice(alphabet) for _ in range(256))
        out.append(s)
        size += len(s.encode())
    raw = "".join(out).encode()[:MiB]
    return raw.decode("utf-8", errors="ignore").encode()


@pytest.mark.parametrize("contender", list(_UTF8))
@pytest.mark.parametrize("kind", ["ascii", "multibyte"])
def test_utf8(benchmark, kind, contender):
    """validate_utf8 on ~1 MiB; `bytes.decode` is the baseline."""
    validate = _load(_UTF8, contender)
    benchmark.group = f"utf8-{kind}"
    data = _utf8_data(kind)
    # A validator that always says "valid" must not produce a number.
    assert validate(data[: len(data) // 2] + b"\xc3\x28" + data[len(data) // 2 :]) is False
    assert validate(data + b"\xe6\x97") is False  # truncated sequence at the end

    def check(ok):
        assert ok is True, contender

    run_checked(benchmark, check, validate, data)
