"""The accounting's memory habits, held by their results: the equity worked out a chunk of
batches at a time equals it worked out at once, and price indexes that read the same prices
are one pair of arrays (a bar or trade stream's buy and sell). The bench measures the memory
(bench/bench_backtest.py, 1,000,000 bars); these tests pin that the savings change nothing."""

from __future__ import annotations

import io

import polars as pl
import pytest

import zcbench.backtest._accounting as accounting
from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.examples import MACrossover, OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks, load_ohlcv, sample_daily_path
from zcbench.strategy import make_strategy


def _tables(result: object) -> bytes:
    out = io.BytesIO()
    for name in ("fills", "positions", "trades", "equity", "metrics"):
        frame: pl.DataFrame = getattr(result, name)
        frame.write_ipc(out, compression="uncompressed")
    return out.getvalue()


@pytest.mark.parametrize("example", ["daily", "ticks"])
def test_equity_by_chunks_is_equity_at_once(
    example: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if example == "daily":
        events = load_ohlcv(sample_daily_path()).head(1_500)
        strategy, config = MACrossover, BacktestConfig(count=1, fee_bps=1.0)
    else:
        events = generate_ticks(SyntheticConfig(duration_s=0.5), seed=11)
        strategy, config = OrderFlowImbalance, BacktestConfig(width_ns=50_000_000, fee_bps=0.2)
    whole = _tables(run_backtest(make_strategy(strategy), events, config))
    monkeypatch.setattr(accounting, "_CHUNK", 7)  # many chunks, and a ragged last one
    assert _tables(run_backtest(make_strategy(strategy), events, config)) == whole


def test_price_indexes_that_read_the_same_prices_are_shared() -> None:
    bars = load_ohlcv(sample_daily_path())
    prices = accounting._Prices(bars)
    symbol = bars.get_column("symbol")[0]
    buy, sell, mark = (prices.index(symbol, w) for w in ("buy", "sell", "mark"))
    assert buy[1] is sell[1]  # a bar fills at its open, either side
    assert mark[1] is not buy[1]  # and is marked at its close
    ticks = generate_ticks(SyntheticConfig(duration_s=1.0), seed=3)
    quoted = accounting._Prices(ticks)
    name = ticks.get_column("symbol")[0]
    if ticks.filter(pl.col("symbol") == name).get_column("kind").eq("quote").any():
        assert quoted.index(name, "buy")[1] is not quoted.index(name, "sell")[1]


def test_marks_of_a_column_with_every_value_are_that_column() -> None:
    """A stream whose first mark field has every value is marked by that column itself, no
    copy; a column with no value takes no part, and a mid needs both sides."""
    import numpy as np

    from zcbench.marketdata import marks

    n = 1_000
    nulls = pl.Series(dtype=pl.Int64).extend_constant(None, n)
    for first in ("price", "close"):
        frame = pl.DataFrame({first: np.arange(1, n + 1, dtype=np.int64)}).with_columns(
            nulls.alias("bid"), nulls.alias("ask"))
        got = marks(frame)
        assert got.to_list() == list(range(1, n + 1))
        assert np.shares_memory(got.to_numpy(), frame.get_column(first).to_numpy())
    one_side = pl.DataFrame({"bid": [None, None], "ask": [None, 5]},
                            schema={"bid": pl.Int64, "ask": pl.Int64})
    assert marks(one_side).to_list() == [None, None]


def test_normalise_copies_no_clean_text_column() -> None:
    from zcbench.marketdata import normalise_events

    bars = load_ohlcv(sample_daily_path()).head(500)
    out = normalise_events(bars)
    for name in ("symbol", "kind"):  # nothing to strip: the column as it came
        assert out.get_column(name).equals(bars.get_column(name))
    padded = normalise_events(bars.with_columns(pl.lit(" MSFT ").alias("symbol")))
    assert set(padded.get_column("symbol")) == {"MSFT"}
