"""permessage-deflate (RFC 7692) receive benchmarks: wsfast (compiled and pure) against the peers'
receive paths with compression negotiated, and the share of wsfast's time that is zlib itself.

Streams are compressed as a server sends them (conftest.deflate_messages: raw DEFLATE, level 6,
32 KiB window, Z_SYNC_FLUSH per message, 00 00 ff ff removed, RSV1 set) and fed in 64 KiB chunks.
Every contender is configured from the same server answer through its own negotiation code
(peers.make_deflate_adapter).  Each benchmark checks its output against the original messages once
before timing and again on the last round (or on its single call with --benchmark-disable).

Groups:
  deflate-small-json-takeover, deflate-small-json-no-takeover  10,000 ~150-byte trade messages
  deflate-orderbook                                            4 x 1 MiB order-book snapshots
  zlib-share-{takeover,no-takeover,orderbook}                  the same payloads through bare
      decompressobj(-15).decompress() calls (stdlib zlib, isal, zlib-ng) vs wsfast-c with that backend

After a timed run, the terminal summary prints wsfast-c / fastest peer and the zlib share.
"""

from __future__ import annotations

import pytest

import peers

TAIL = b"\x00\x00\xff\xff"

#: median seconds, filled by timed runs: group -> contender -> median
REPORT: dict[str, dict[str, float]] = {}


def run_checked(benchmark, contender, check, fn, *args):
    """Benchmark fn(*args) (called directly, no wrapper frame), check its result, record the median."""
    if not benchmark.disabled:
        check(fn(*args))  # un-timed verification (also warms buffers up)
    result = benchmark(fn, *args)
    check(result)
    if not benchmark.disabled and benchmark.stats is not None:
        REPORT.setdefault(benchmark.group, {})[contender] = benchmark.stats.stats.median
    return result


@pytest.fixture
def make_deflate_adapter():
    """make_deflate_adapter(contender, takeover, zlib_backend=None) -> adapter; skips if not installed."""
    created = []

    def make(name: str, takeover: bool, zlib_backend=None):
        peers.importorskip(peers.DEFLATE_REQUIRES[name])
        adapter = peers.make_deflate_adapter(name, takeover, zlib_backend)
        created.append(adapter)
        return adapter

    yield make
    for adapter in created:
        adapter.close()


def _parse_bench(benchmark, scenario, adapter, group, contender):
    benchmark.group = group
    benchmark.extra_info["stream_bytes"] = scenario.nbytes
    benchmark.extra_info["inflated_bytes"] = sum(len(m.encode()) for m in scenario.expected)
    benchmark.extra_info["messages"] = len(scenario.expected)

    def check(count):
        assert count == len(scenario.expected), (group, contender, count)
        scenario.check(adapter.last)

    run_checked(benchmark, contender, check, adapter.parse, scenario.chunks)


# --------------------------------------------------------------------------- 1. small JSON
@pytest.mark.parametrize("contender", peers.DEFLATE_CONTENDERS)
@pytest.mark.parametrize("takeover", ["takeover", "no-takeover"])
def test_deflate_small_json(benchmark, scenarios, make_deflate_adapter, takeover, contender):
    """10,000 ~150-byte trade JSON messages, compressed with / without context takeover, 64 KiB chunks."""
    name = f"deflate-small-json-{takeover}"
    adapter = make_deflate_adapter(contender, takeover == "takeover")
    _parse_bench(benchmark, scenarios[name], adapter, name, contender)


# --------------------------------------------------------------------------- 2. order book
@pytest.mark.parametrize("contender", peers.DEFLATE_CONTENDERS)
def test_deflate_orderbook(benchmark, scenarios, make_deflate_adapter, contender):
    """4 different 1 MiB order-book JSON snapshots, compressed with context takeover, 64 KiB chunks."""
    name = "deflate-orderbook"
    adapter = make_deflate_adapter(contender, True)
    _parse_bench(benchmark, scenarios[name], adapter, name, contender)


# --------------------------------------------------------------------------- 3. zlib share
ZLIB_SHARE_SCENARIOS = {
    "takeover": "deflate-small-json-takeover",
    "no-takeover": "deflate-small-json-no-takeover",
    "orderbook": "deflate-orderbook",
}
#: backend name -> module with zlib's interface
BACKENDS = {"zlib": "zlib", "isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng"}
#: contender -> (backend, kind): "bare" = decompress() calls only, "bare+utf8" = and str(..., "utf-8"),
#: "wsfast-c" = the full compiled decode of the framed stream with Negotiated(zlib_backend=backend)
SHARE_CONTENDERS = {
    "zlib": ("zlib", "bare"),
    "zlib+utf8": ("zlib", "bare+utf8"),
    "wsfast-c": ("zlib", "wsfast-c"),
    "isal": ("isal", "bare"),
    "wsfast-c-isal": ("isal", "wsfast-c"),
    "zlib-ng": ("zlib-ng", "bare"),
    "wsfast-c-zlib-ng": ("zlib-ng", "wsfast-c"),
}


def bare_inflate(decompressobj, takeover: bool, utf8: bool = False):
    """The irreducible cost: one decompress() call per message on its payload with the tail already
    appended (done outside the timing), one decompressor for the stream (takeover) or one per message.
    """
    if takeover:
        if utf8:

            def run(payloads):
                decompress = decompressobj(-15).decompress
                return [str(decompress(p), "utf-8") for p in payloads]

        else:

            def run(payloads):
                decompress = decompressobj(-15).decompress
                return [decompress(p) for p in payloads]

    elif utf8:

        def run(payloads):
            return [str(decompressobj(-15).decompress(p), "utf-8") for p in payloads]

    else:

        def run(payloads):
            return [decompressobj(-15).decompress(p) for p in payloads]

    return run


@pytest.mark.parametrize("contender", list(SHARE_CONTENDERS))
@pytest.mark.parametrize("stream", list(ZLIB_SHARE_SCENARIOS))
def test_zlib_share(benchmark, scenarios, make_deflate_adapter, stream, contender):
    """Bare decompress() calls on the same payloads vs wsfast-c's full decode, per zlib backend."""
    backend_name, kind = SHARE_CONTENDERS[contender]
    backend = peers.importorskip(BACKENDS[backend_name])
    scenario = scenarios[ZLIB_SHARE_SCENARIOS[stream]]
    group = f"zlib-share-{stream}"
    if kind == "wsfast-c":
        adapter = make_deflate_adapter("wsfast-c", scenario.takeover, backend)
        _parse_bench(benchmark, scenario, adapter, group, contender)
        return
    benchmark.group = group
    benchmark.extra_info["messages"] = len(scenario.expected)
    payloads = [p + TAIL for p in scenario.payloads]
    utf8 = kind == "bare+utf8"
    expected = scenario.expected if utf8 else [m.encode() for m in scenario.expected]

    def check(out):
        assert out == expected, (group, contender)

    run_checked(
        benchmark, contender, check, bare_inflate(backend.decompressobj, scenario.takeover, utf8), payloads
    )


# --------------------------------------------------------------------------- summary
DECODE_GROUPS = ("deflate-small-json-takeover", "deflate-small-json-no-takeover", "deflate-orderbook")
PEERS = [c for c in peers.DEFLATE_CONTENDERS if not c.startswith("wsfast")]


def summary_lines() -> list[str]:
    """wsfast-c vs the fastest peer per decode group, and the zlib share per zlib-share group."""
    lines = []
    for group in DECODE_GROUPS:
        medians = REPORT.get(group)
        if not medians or "wsfast-c" not in medians:
            continue
        ours = medians["wsfast-c"]
        row = ", ".join(
            f"{name} {t * 1e3:.2f} ms" for name, t in sorted(medians.items(), key=lambda kv: kv[1])
        )
        lines.append(f"{group}: {row}")
        present = [p for p in PEERS if p in medians]
        if present:
            best = min(present, key=medians.__getitem__)
            lines.append(f"  wsfast-c is {medians[best] / ours:.2f}x the fastest peer ({best})")
    for stream in ZLIB_SHARE_SCENARIOS:
        group = f"zlib-share-{stream}"
        medians = REPORT.get(group, {})
        for bare, full in (("zlib", "wsfast-c"), ("isal", "wsfast-c-isal"), ("zlib-ng", "wsfast-c-zlib-ng")):
            if bare in medians and full in medians:
                extra = ""
                if bare == "zlib" and "zlib+utf8" in medians:
                    extra = f"; decompress+str(utf-8) is {medians['zlib+utf8'] / medians[full]:.0%}"
                lines.append(
                    f"{group}: bare {bare} decompress() is {medians[bare] / medians[full]:.0%} of "
                    f"{full} ({medians[bare] * 1e3:.2f} / {medians[full] * 1e3:.2f} ms){extra}"
                )
        if "wsfast-c" in medians:
            for full in ("wsfast-c-isal", "wsfast-c-zlib-ng"):
                if full in medians:
                    speedup = medians["wsfast-c"] / medians[full]
                    lines.append(f"{group}: {full} is {speedup:.2f}x wsfast-c (zlib)")
    return lines
