"""The live run's latency distributions: fixed memory, one percentile definition (nearest rank,
reported as the upper edge of a 1.04 % bucket), exact summary buckets."""

from __future__ import annotations

import math
import sys

import numpy as np

from zcbench.host._stats import BUCKETS_MS, Distribution, LatencyRecorder


def test_percentiles_are_nearest_rank_within_the_bucket_width() -> None:
    values = np.random.default_rng(3).lognormal(15, 2, 5_000).astype(np.int64)
    d = Distribution()
    for v in values:
        d.add(int(v))
    ordered = np.sort(values)
    for p in (1, 50, 90, 99, 99.9, 100):
        true = ordered[max(1, math.ceil(p / 100 * len(values))) - 1] / 1e6
        got = d.percentile(p)
        assert true <= got <= true * 1.0105, (p, true, got)


def test_summary_buckets_are_exact_and_cover_every_value() -> None:
    d = Distribution()
    edges_ns = [b * 1_000_000 for b in BUCKETS_MS]
    for v in [-5, 0, *edges_ns, *(e + 1 for e in edges_ns), 10**13]:
        d.add(v)
    hist = d.histogram()
    assert list(hist) == [f"<={b} ms" for b in BUCKETS_MS] + [">5000 ms"]
    assert hist["<=1 ms"] == 3  # -5, 0 and exactly 1 ms
    assert hist["<=2 ms"] == 2  # 1 ms + 1 ns and exactly 2 ms
    assert hist[">5000 ms"] == 2  # 5000 ms + 1 ns and 10,000 s
    assert sum(hist.values()) == d.count


def test_memory_does_not_grow_with_the_values_recorded() -> None:
    rec = LatencyRecorder(window=100)
    for v in range(1_000):
        rec.add(v * 1_000)
    size = sys.getsizeof(rec.total._fine) + sys.getsizeof(rec.recent()._fine)
    for v in range(100_000):
        rec.add(v * 1_000)
    assert sys.getsizeof(rec.total._fine) + sys.getsizeof(rec.recent()._fine) == size
    assert rec.total.count == 101_000
    # the recent figures cover the last one to two windows only
    assert 100 <= rec.recent().count < 200
    assert rec.recent().percentile(0) >= 99_800 * 1_000 / 1e6


def test_empty_distribution_reports_zero() -> None:
    assert Distribution().percentile(99) == 0.0
    assert sum(Distribution().histogram().values()) == 0
