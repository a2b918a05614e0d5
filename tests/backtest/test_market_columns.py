"""The closed loop's market frame leaves out the columns no event of the run fills, and acts
the same as on every market column.

The execution layer and the paper venue read a column a frame lacks as null on every row, so
the backtest hands them only the columns some event fills (a bar stream's trade and quote
fields go). These tests hold that to the full frame: the same records, journal, positions,
digest and PnL, on bar, trade, quote and mixed streams, with refusals and resting orders.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backtest.test_fastpath import TICKS, Told, streams
from zcbench.backtest import _engine, backtest_log, prepare
from zcbench.host.execution import RiskLimits
from zcbench.marketdata import BatchSpec, load_ohlcv, sample_daily_path
from zcbench.strategy import Batch, Context, Side, Signal, Strategy, make_strategy
from zcbench.venue import MARKET_COLUMNS


class Resting(Strategy):
    """Takes the feedback; alternates market orders with limits that rest (GTC) below or
    above the last close or price, so resting orders see the market rows the loop hands on."""

    name = "resting"
    params_type = Told.params_type
    input_fields = ("close", "price", "bid", "ask")

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        rows = batch.events.rows(named=True)
        last = rows[-1]
        px = last["price"] or last["close"] or last["bid"] or last["ask"]
        if batch.seq % 3 or not px:
            return []
        if batch.seq % 2:
            return [Signal(last["symbol"], "buy", self.params.quantity)]
        side: Side = "sell" if batch.seq % 4 else "buy"
        limit = px + 1 if side == "sell" else max(1, px - 1)
        return [Signal(last["symbol"], side, self.params.quantity, limit_price=limit,
                       hints=(("tif", "GTC"),))]


def _full(events: pl.DataFrame) -> pl.DataFrame:
    return events.select([c for c in MARKET_COLUMNS if c in events.columns])


def _same_loop(strategy: type[Strategy], events: pl.DataFrame, spec: BatchSpec,
               limits: RiskLimits, monkeypatch: pytest.MonkeyPatch) -> None:
    data = prepare(events, strategy.fields(), spec)
    reduced = backtest_log(make_strategy(strategy), data, limits=limits, capital=10**15)
    with monkeypatch.context() as patch:
        patch.setattr(_engine, "_market_columns", _full)
        full = backtest_log(make_strategy(strategy), data, limits=limits, capital=10**15)
    assert reduced.records == full.records
    assert reduced.journal.equals(full.journal, null_equal=True)
    assert (reduced.positions, reduced.signals_digest, reduced.pnl) == (
        full.positions, full.signals_digest, full.pnl)


def test_a_bar_stream_leaves_out_its_trade_and_quote_columns() -> None:
    bars = load_ohlcv(sample_daily_path()).slice(0, 50)
    columns = _engine._market_columns(bars).columns
    assert "bid" not in columns
    assert "ask_size" not in columns
    assert columns[:3] == ["ts", "symbol", "kind"]
    assert "close" in columns
    ticks = _engine._market_columns(TICKS).columns
    assert "close" not in ticks
    assert {"price", "bid", "ask"} <= set(ticks)


@pytest.mark.parametrize("strategy", [Told, Resting])
@pytest.mark.parametrize(
    "limits", [RiskLimits(), RiskLimits(max_position=20, max_orders_per_s=3)],
    ids=["defaults", "refusals"],
)
def test_bars_and_ticks_act_as_on_every_column(
    strategy: type[Strategy], limits: RiskLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_loop(strategy, load_ohlcv(sample_daily_path()).slice(0, 400), BatchSpec(count=1),
               limits, monkeypatch)
    _same_loop(strategy, TICKS.slice(0, 3_000), BatchSpec(count=25), limits, monkeypatch)


@pytest.mark.slow
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=streams(), kinds=st.sets(st.sampled_from(["trade", "quote", "bar"]), min_size=1),
       count=st.integers(1, 9), strategy=st.sampled_from([Told, Resting]))
def test_random_streams_act_as_on_every_column(
    events: pl.DataFrame, kinds: set[str], count: int, strategy: type[Strategy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = events.filter(pl.col("kind").is_in(sorted(kinds)))
    if events.height:
        _same_loop(strategy, events, BatchSpec(count=count),
                   RiskLimits(max_position=50, max_orders_per_s=5), monkeypatch)
