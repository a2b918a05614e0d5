"""Market-data proxy: stripping, cuts equal to the backtest's, pacing, live flush, backpressure."""

from __future__ import annotations

import polars as pl

from zcbench.host.proxy import Backlog, LiveSource, MarketDataProxy, ReplaySource
from zcbench.marketdata import BatchSpec, SyntheticConfig, batches, generate_ticks
from zcbench.strategy import Batch, encode_batch


def _ticks(n_s: float = 0.5) -> pl.DataFrame:
    return generate_ticks(SyntheticConfig(rate=2_000, duration_s=n_s), seed=7)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0
        self.slept: list[float] = []

    def clock(self) -> int:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += int(s * 1e9)


def test_replay_batches_are_encoded_from_prepared_columns_as_the_backtest_encodes() -> None:
    # more rows than one prepared stretch, so batches come from several
    events = generate_ticks(SyntheticConfig(rate=20_000, duration_s=2.0), seed=7)
    proxy = MarketDataProxy(ReplaySource(events, BatchSpec(count=1_000)), ["price", "kind"])
    got = list(proxy.start())
    want = list(batches(events, ["price", "kind"], count=1_000))
    assert len(got) == len(want) == 40
    assert all(g.wire is not None for g in got)
    assert [g.encode() for g in got] == [
        encode_batch(Batch(i + 5, w.events)) for i, w in enumerate(want)
    ]


def test_replay_cuts_and_strips_like_the_backtest() -> None:
    events = _ticks()
    spec = BatchSpec(count=100)
    proxy = MarketDataProxy(ReplaySource(events, spec), ["price"], queue_size=2).start()
    got = list(proxy)
    want = list(batches(events, ["price"], count=100))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.events.columns == ["ts", "symbol", "price"]  # bid, ask, sizes... stripped
        assert encode_batch(Batch(i, g.events)) == encode_batch(w)
        assert g.newest_event_ns == int(w.events["ts"].max())  # type: ignore[arg-type]
    stats = proxy.stats()
    assert stats.batches == len(want)
    assert stats.events == events.height
    assert stats.dropped_batches == 0
    assert stats.max_queue <= 2


def test_replay_paces_by_event_time() -> None:
    t = FakeTime()
    events = _ticks(1.0)
    span_ns = int(events["ts"][-1]) - int(events["ts"][0])
    source = ReplaySource(
        events, BatchSpec(width_ns=100_000_000), rate=2.0, clock=t.clock, sleep=t.sleep
    )
    frames = list(source)
    assert sum(f.height for f in frames) == events.height
    assert abs(t.now - span_ns / 2) < 1e6


def test_live_source_flushes_on_max_delay_and_counts_drops() -> None:
    events = _ticks(0.2)
    chunks = [events.slice(i, 10) for i in range(0, events.height, 10)]
    t = FakeTime()

    def clock() -> int:
        t.now += 1_000_000  # every look at the clock is one ms later
        return t.now

    source = LiveSource(chunks, BatchSpec(count=10_000), rate=1e9, clock=clock, sleep=t.sleep)
    proxy = MarketDataProxy(
        source, ["price"], queue_size=1, max_delay_s=0.005, hold=3, clock=clock
    )
    proxy.start()
    assert proxy.source_done.wait(10)  # nobody reads meanwhile: the queue stays full
    stats = proxy.stats()
    got = list(proxy)
    # nobody ever reads: held as through a stall, up to hold * queue_size, then dropped
    assert stats.batches == 3
    assert len(got) == 3
    assert stats.dropped_batches >= 1
    # batches are far below the 10,000-event cut: the delay rule flushed them
    assert got[0].events.height < 10_000
    assert stats.events + stats.dropped_events == events.height


def test_synthetic_feed_streams_in_blocks_with_a_continuous_clock() -> None:
    from zcbench.host.proxy import synthetic_feed

    config = SyntheticConfig(rate=5_000, duration_s=2.5)
    chunks = list(synthetic_feed(config, seed=4, block_s=1.0, arrival_s=0.002))
    assert all(c.height <= 10 for c in chunks)
    ts = pl.concat(chunks)["ts"]
    assert ts.is_sorted()
    assert ts.min() >= config.start_ns
    assert ts.max() < config.start_ns + 2_500_000_000
    assert abs(ts.len() - 12_500) < 1_500  # the rate, whatever the blocks
    again = list(synthetic_feed(config, seed=4, block_s=1.0, arrival_s=0.002))
    assert pl.concat(again).equals(pl.concat(chunks))  # deterministic for the seed


def test_lossless_live_source_is_held_back_instead_of_dropped() -> None:
    events = _ticks(0.2)
    chunks = [events.slice(i, 10) for i in range(0, events.height, 10)]
    source = LiveSource(chunks, BatchSpec(count=50), rate=1e9, lossless=True)
    proxy = MarketDataProxy(source, ["price"], queue_size=1).start()
    got = list(proxy)
    stats = proxy.stats()
    assert stats.dropped_batches == 0
    assert sum(len(b) for b in got) == events.height
    assert proxy.take_drops() is None


def _stalled_proxy(hold: int) -> tuple[MarketDataProxy, int]:
    """A live source of 6 batches offered while nobody reads (a stall downstream), into a
    queue of 2; the proxy and the batches offered."""
    events = _ticks(0.2)
    chunks = [events.slice(i, 50) for i in range(0, 300, 50)]
    source = LiveSource(chunks, BatchSpec(count=50), rate=1e9)
    return MarketDataProxy(source, ["price"], queue_size=2, hold=hold), len(chunks)


def test_a_stall_downstream_holds_live_batches_instead_of_dropping_them() -> None:
    proxy, offered = _stalled_proxy(hold=8)
    proxy.start()
    assert proxy.source_done.wait(10)
    got = list(proxy)
    assert proxy.stats().dropped_batches == 0
    assert proxy.take_drops() is None
    assert len(got) == offered
    # hold=1 is the rule without holding: every batch finding the queue full is dropped
    old, _ = _stalled_proxy(hold=1)
    old.start()
    assert old.source_done.wait(10)
    assert len(list(old)) == 2
    assert old.stats().dropped_batches == offered - 2


MS = 1_000_000


class _Queue:
    """A queue of ``size`` under the rule, on a simulated timeline."""

    def __init__(self, size: int, limit: int) -> None:
        self.rule = Backlog(limit=limit, window_ns=500 * MS)
        self.size = size
        self.queued = self.dropped = 0

    def arrive(self, t: int) -> None:
        self.rule.arrived(t)
        if self.queued < self.size or self.rule.keep(self.queued, t):
            self.queued += 1
        else:
            self.dropped += 1

    def take(self, t: int) -> None:
        if self.queued:
            self.queued -= 1
            self.rule.took(t)


def test_backlog_holds_through_a_stall_and_while_draining_drops_when_sustained() -> None:
    q = _Queue(size=16, limit=1_000)
    # a consumer taking a batch 4 ms after each arrival, batches every 8 ms: never at the size
    for t in range(0, 400 * MS, 8 * MS):
        q.arrive(t)
        q.take(t + 4 * MS)
    # a 1-s stall: nothing taken; every batch arriving meanwhile is held, past the size
    for t in range(400 * MS, 1_400 * MS, 8 * MS):
        q.arrive(t)
    assert q.dropped == 0
    assert q.queued == 125
    # the stall ends: the consumer takes 2 per arrival (draining): nothing dropped
    for t in range(1_400 * MS, 2_400 * MS, 8 * MS):
        q.take(t)
        q.take(t + 2 * MS)
        q.arrive(t + 3 * MS)
    assert q.dropped == 0
    assert q.queued < q.size
    # sustained: 2 arrivals per take: about half dropped, the queue kept near its size
    for t in range(2_400 * MS, 6_400 * MS, 8 * MS):
        q.take(t)
        q.arrive(t + 1 * MS)
        q.arrive(t + 5 * MS)
    assert 450 < q.dropped <= 500  # of 1,000 offered, 500 taken: the excess
    assert q.queued <= 2 * q.size
    # at the limit a batch is dropped even in a stall
    full = _Queue(size=4, limit=10)
    for t in range(0, 100 * MS, MS):
        full.arrive(t)
    assert (full.queued, full.dropped) == (10, 90)
