"""The seeded synthetic tick generator: deterministic, well-formed, fast enough, on parquet."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pytest

from zcbench.errors import UsageError
from zcbench.marketdata import (
    SyntheticConfig,
    generate_ticks,
    load_events,
    validate_events,
    write_ticks,
)
from zcbench.strategy import EVENT_SCHEMA

SMALL = SyntheticConfig(rate=5_000, duration_s=4.0)


def test_same_seed_same_events_other_seed_other_events() -> None:
    a = generate_ticks(SMALL, seed=3)
    assert a.equals(generate_ticks(SMALL, seed=3))
    assert not a.equals(generate_ticks(SMALL, seed=4))


def test_events_are_well_formed() -> None:
    ev = generate_ticks(SMALL, seed=1)
    assert ev.schema == pl.Schema(EVENT_SCHEMA)
    assert ev.height == 20_000
    validate_events(ev)  # sorted, positive prices, kinds, required fields
    ts = ev.get_column("ts")
    assert ts.is_unique().all()
    assert ts[0] >= SMALL.start_ns
    assert ts[-1] <= SMALL.start_ns + 4 * 10**9
    assert set(ev.get_column("symbol").unique()) == set(SMALL.symbols)
    quotes = ev.filter(pl.col("kind") == "quote")
    trades = ev.filter(pl.col("kind") == "trade")
    assert (quotes["ask"] > quotes["bid"]).all()
    assert (quotes["bid"] % SMALL.grid_ticks == 0).all()
    assert 0.25 < trades.height / ev.height < 0.35
    assert (trades["size"] % SMALL.lot == 0).all()
    assert trades["bid"].is_null().all()
    # bursts: the busiest 10 ms hold far more than the average 50 events
    per_bucket = ev.group_by(pl.col("ts") // 10_000_000).len().get_column("len")
    assert per_bucket.max() > 3 * per_bucket.mean()  # type: ignore[operator]


def test_prices_move_and_jump() -> None:
    ev = generate_ticks(SyntheticConfig(rate=20_000, duration_s=5.0, jump_prob=0.01), seed=2)
    bids = ev.filter((pl.col("kind") == "quote") & (pl.col("symbol") == "AAA"))["bid"]
    steps = bids.diff().drop_nulls().abs()
    assert bids.n_unique() > 20
    assert steps.max() >= 10 * SyntheticConfig().grid_ticks  # a jump, not just noise


def test_rate_well_over_200k_events_per_second() -> None:
    cfg = SyntheticConfig(rate=200_000, duration_s=5.0)
    start = time.perf_counter()
    ev = generate_ticks(cfg, seed=0)
    elapsed = time.perf_counter() - start
    assert ev.height == 1_000_000
    # a liveness bound (the generator does several million events/s here), not a benchmark
    assert elapsed < 30


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = write_ticks(SMALL, tmp_path / "ticks.parquet", seed=9)
    assert load_events(path).equals(generate_ticks(SMALL, seed=9))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbols": ()},
        {"symbols": ("A", "A")},
        {"rate": 0},
        {"rate": 1e9, "duration_s": 1.0},
        {"trade_fraction": 1.5},
        {"spread_p": 0.0},
        {"min_price": 200.0},
    ],
)
def test_bad_config_is_usage_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SyntheticConfig(**kwargs)  # type: ignore[arg-type]


def test_committed_settings_file_is_the_default(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2] / "data" / "synthetic.json"
    assert SyntheticConfig.from_file(data) == SyntheticConfig()
    assert SyntheticConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(UsageError, match="unknown settings"):
        SyntheticConfig.from_dict({"speed": 1})
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UsageError, match="JSON object"):
        SyntheticConfig.from_file(bad)
    bad.write_text("{")
    with pytest.raises(UsageError, match="not a readable JSON"):
        SyntheticConfig.from_file(bad)
