"""No fill uses data from after the moment it happens.

The paper venue fills a market order at the close of the bar that signalled (backtesting.py's
``trade_on_close``): optimistic about latency, but it must not be a look-ahead. Held here the
way a look-ahead would show: a backtest cut at any event gives exactly the journal, fills and
equity of the whole backtest up to that event, for the venue model (a strategy that takes the
context) and for the next-event model (one that takes batches only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.backtest import BacktestConfig, BacktestResult, run_backtest
from zcbench.examples.ma_crossover import MACrossover, MACrossoverParams
from zcbench.marketdata import load_ohlcv, sample_daily_path
from zcbench.strategy import Batch, Context, Signal, Strategy

CONFIG = BacktestConfig(count=1, initial_cash=1.0)


def _upto(result: BacktestResult, ts: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """What had happened by event time ``ts``: the journal's rows (the venue model's orders
    and reports), each fill's position (either model) and the equity after each batch."""
    journal = (result.journal.filter(pl.col("time_ns") <= ts)
               if result.journal is not None else pl.DataFrame())
    positions = result.positions.filter(pl.col("fill_ts") <= ts)
    equity = result.equity.filter(pl.col("ts") <= ts)
    return journal, positions, equity


def _same_up_to_each_cut(strategy: type[Strategy], params: object, events: pl.DataFrame,
                         cuts: Sequence[int], config: BacktestConfig = CONFIG) -> None:
    whole = run_backtest(strategy(params), events, config)
    for cut in cuts:
        ts = int(events["ts"][cut - 1])
        part = run_backtest(strategy(params), events.slice(0, cut), config)
        for mine, theirs in zip(_upto(part, ts), _upto(whole, ts), strict=True):
            assert mine.equals(theirs), f"the backtest cut after event {cut} differs"


def test_the_crossover_on_the_venue_fills_the_same_whatever_follows() -> None:
    bars = load_ohlcv(sample_daily_path()).slice(0, 700)
    params = MACrossoverParams(fast=5, slow=20, quantity=1_000)
    whole = run_backtest(MACrossover(params), bars, CONFIG)
    assert whole.fills.height > 10  # it trades: the cuts land between its orders and fills
    _same_up_to_each_cut(MACrossover, params, bars, [25, 101, 250, 333, 480, 699])


@dataclass(frozen=True)
class PlanParams:
    plan: tuple[tuple[int, str, int, int | None, str], ...] = ()  # seq, side, qty, limit, tif


class Told(Strategy):
    """Places planned orders, resting ones included; takes the context (the venue model)."""

    name = "told_lookahead"
    params_type = PlanParams
    input_fields = ("close",)

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        return [
            Signal("X", side, qty, limit_price=limit, hints=(("tif", tif),))  # type: ignore[arg-type]
            for seq, side, qty, limit, tif in self.params.plan  # type: ignore[attr-defined]
            if seq == batch.seq
        ]


class Blind(Told):
    """The same orders, market ones only, taking batches only (the next-event model)."""

    name = "blind_lookahead"

    def on_batch(self, batch: Batch) -> Sequence[Signal]:  # type: ignore[override]
        return [Signal("X", side, qty)  # type: ignore[arg-type]
                for seq, side, qty, _limit, _tif in self.params.plan  # type: ignore[attr-defined]
                if seq == batch.seq]


def _bars(closes: list[int], volumes: list[int]) -> pl.DataFrame:
    opens = [closes[0], *closes[:-1]]
    return pl.DataFrame({
        "ts": [(i + 1) * 86_400 * 10**9 for i in range(len(closes))],
        "symbol": ["X"] * len(closes), "kind": ["bar"] * len(closes),
        "open": opens, "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
        "low": [min(o, c) for o, c in zip(opens, closes, strict=True)], "close": closes,
        "volume": volumes,
    })


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(min_value=3, max_value=24))
def test_random_orders_on_random_bars_fill_the_same_whatever_follows(
        data: st.DataObject, n: int) -> None:
    closes = data.draw(st.lists(st.integers(90, 110), min_size=n, max_size=n), label="closes")
    volumes = data.draw(st.lists(st.integers(1, 12), min_size=n, max_size=n), label="volumes")
    plan = tuple(data.draw(st.lists(st.tuples(
        st.integers(0, n - 1), st.sampled_from(["buy", "sell"]), st.integers(1, 15),
        st.one_of(st.none(), st.integers(88, 112)), st.sampled_from(["IOC", "DAY", "GTC"]),
    ), max_size=8), label="plan"))
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n), min_size=1, max_size=3),
                                label="cuts")))
    events = _bars(closes, volumes)
    config = BacktestConfig(count=1, initial_cash=1.0, leverage=2.0)
    _same_up_to_each_cut(Told, PlanParams(plan), events, cuts, config)
    _same_up_to_each_cut(Blind, PlanParams(plan), events, cuts, config)
