"""Event-time batching: bucket width and event count, field stripping, incremental agreement."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.errors import DataError, UsageError
from zcbench.marketdata import EventTimeBatcher, SyntheticConfig, batches, generate_ticks


def _events(ts: list[int]) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame(
        {
            "ts": ts,
            "symbol": ["A"] * n,
            "kind": ["trade"] * n,
            "price": list(range(1, n + 1)),
            "size": [1] * n,
            "bid": [None] * n,
        },
        schema_overrides={"bid": pl.Int64},
    )


def test_width_buckets_are_aligned_to_the_epoch_and_skip_empty_ones() -> None:
    out = list(batches(_events([5, 9, 10, 31, 39, 40]), ["price"], width_ns=10))
    assert [b.seq for b in out] == [0, 1, 2, 3]
    assert [b.events["ts"].to_list() for b in out] == [[5, 9], [10], [31, 39], [40]]
    assert all(b.events.columns == ["ts", "symbol", "price"] for b in out)


def test_count_batches() -> None:
    out = list(batches(_events(list(range(7))), ["size"], count=3, first_seq=5))
    assert [b.seq for b in out] == [5, 6, 7]
    assert [len(b) for b in out] == [3, 3, 1]
    assert out[0].events.columns == ["ts", "symbol", "size"]


def test_bad_batching_requests() -> None:
    ev = _events([1, 2])
    with pytest.raises(UsageError):
        list(batches(ev, [], width_ns=1, count=1))
    with pytest.raises(UsageError):
        list(batches(ev, []))
    with pytest.raises(UsageError):
        list(batches(ev, [], width_ns=0))
    with pytest.raises(DataError, match="sorted"):
        list(batches(_events([2, 1]), [], width_ns=5))
    with pytest.raises(DataError, match="lack fields"):
        list(batches(ev.drop("price"), ["price"], count=1))


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 30), min_size=1, max_size=60),
    chunks=st.lists(st.integers(1, 10), min_size=1, max_size=20),
    rule=st.sampled_from([("width_ns", 7), ("width_ns", 50), ("count", 1), ("count", 4)]),
)
def test_incremental_batcher_cuts_like_batches(
    gaps: list[int], chunks: list[int], rule: tuple[str, int]
) -> None:
    ts = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    ev = _events(ts)
    expected = list(batches(ev, ["price"], **{rule[0]: rule[1]}))  # type: ignore[arg-type]
    batcher = EventTimeBatcher(["price"], **{rule[0]: rule[1]})  # type: ignore[arg-type]
    got = []
    start = 0
    for size in chunks * (len(ts) // sum(chunks) + 1):
        if start >= len(ts):
            break
        got += batcher.push(ev.slice(start, size))
        start += size
    got += batcher.flush()
    assert [b.seq for b in got] == [b.seq for b in expected]
    assert all(a.events.equals(b.events) for a, b in zip(got, expected, strict=True))
    assert batcher.flush() == []


def test_incremental_batcher_refuses_older_events() -> None:
    batcher = EventTimeBatcher([], width_ns=10)
    batcher.push(_events([20, 25]))
    with pytest.raises(DataError, match="older"):
        batcher.push(_events([19]))


def test_synthetic_stream_batches_cover_every_event_once() -> None:
    ev = generate_ticks(SyntheticConfig(rate=10_000, duration_s=2.0), seed=5)
    out = list(batches(ev, ["kind", "bid", "ask"], width_ns=50_000_000))
    assert sum(len(b) for b in out) == ev.height
    assert pl.concat([b.events for b in out])["ts"].equals(ev["ts"])
    buckets = [set((b.events["ts"] // 50_000_000).to_list()) for b in out]
    assert all(len(s) == 1 for s in buckets)
