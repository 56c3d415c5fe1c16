"""``wsfast feed --rate``'s pacing, with an injected clock and measured on a live feed."""

from __future__ import annotations

import itertools
import math
import random
import statistics
import time

import pytest

import wsfast
from wsfast.feed import FeedServer, Pacer

TIMEOUT = 20.0  # seconds, for every wait


class TestPacer:
    def test_one_message_per_period_without_drift(self) -> None:
        """A sender that wakes up late by random amounts, on an injected clock: every message goes out at
        or after its deadline, late ones are made up at once, and after 10,000 periods the count is exact."""
        rate, start = 1000.0, 50.0
        pacer = Pacer(rate, start)
        rng = random.Random(3)
        now = start
        sent_at: list[float] = []
        while len(sent_at) < 10_000:
            count = pacer.due(now)
            sent_at += [now] * count
            pacer.advance(count)
            assert pacer.due(now) == 0
            now = max(now, pacer.next_at()) + rng.choice([0.0, 0.0, 0.0, 0.0002, 0.003])  # late wake-ups
        for index, when in enumerate(sent_at[:10_000]):
            assert when >= start + index / rate - 1e-9, index  # never early
            assert when <= start + index / rate + 0.003 + 1e-9, index  # late by at most one late wake-up
        assert math.floor((now - start) * rate) + 1 >= len(sent_at)

    def test_deadlines_are_from_the_start(self) -> None:
        pacer = Pacer(4.0, 10.0)
        assert pacer.due(9.0) == 0
        assert pacer.due(10.0) == 1  # message 0 is due at the start
        pacer.advance(1)
        assert pacer.next_at() == 10.25
        assert pacer.due(10.2499) == 0
        assert pacer.due(10.25) == 1
        assert pacer.due(11.0) == 4  # 1, 2, 3, 4 by now: made up at once, no drift
        pacer.advance(4)
        assert pacer.next_at() == 11.25

    @pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
    def test_a_rate_must_be_positive(self, rate: float) -> None:
        with pytest.raises(ValueError, match="positive"):
            Pacer(rate, 0.0)


def arrival_times(url: str, timeout: float = TIMEOUT) -> list[float]:
    times: list[float] = []
    client = wsfast.WebSocketClient(lambda message: times.append(time.monotonic()), url)
    client.connect()
    assert client.wait(timeout), "the feed did not finish"
    return times


class TestFeedRate:
    def test_messages_are_spread_evenly_not_sent_in_a_burst(self) -> None:
        """The server never sends message i before start + i / rate, so the spread of arrivals has a lower
        bound that load cannot break (a late start only shrinks it by the first message's delay); the
        spacing statistics are reported, not held to wall-clock limits a loaded machine could miss."""
        rate, count = 200.0, 60
        with FeedServer(messages=count, rate=rate) as feed:
            times = arrival_times(feed.url)
        assert len(times) == count
        ideal = (count - 1) / rate
        spread = times[-1] - times[0]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        report = (
            f"spread {spread:.3f} s (ideal {ideal:.3f}), gap median {statistics.median(gaps) * 1e3:.2f} ms "
            f"(ideal {1e3 / rate:.2f}), stdev {statistics.pstdev(gaps) * 1e3:.2f} ms"
        )
        assert spread >= ideal * 0.5, report  # bursts of 1,000 arrived within a millisecond
        print(report)
