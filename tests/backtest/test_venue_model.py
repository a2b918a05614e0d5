"""One fill model per run: a strategy that takes the feedback context is filled, accounted and
measured from its closed loop's journal (the paper venue's fills: resting orders, partial fills
against quoted size), so its tables say what it was told and what a live run does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.backtest import BacktestConfig, backtest_log, prepare, run_backtest, run_prepared
from zcbench.errors import UsageError
from zcbench.marketdata import Instrument, Instruments
from zcbench.money import ticks_of
from zcbench.strategy import Batch, Context, Signal, Strategy

Plan = tuple[tuple[int, str, int, int | None, str], ...]  # seq, side, qty, limit, tif

QUOTES = [  # ts, bid, ask, bid size, ask size
    (10, 99, 101, 5, 5),
    (20, 100, 102, 5, 5),
    (30, 98, 100, 3, 3),
    (40, 97, 99, 4, 4),
    (50, 102, 104, 10, 10),
    (60, 101, 103, 10, 10),
]
PLAN: Plan = (
    (0, "buy", 8, None, "IOC"),  # 5 at the ask 101; the other 3 cancelled (IOC)
    (1, "buy", 6, 100, "GTC"),  # rests at ask 102; 3 at 100 (batch 2), 3 at 99 (batch 3)
    (2, "sell", 20, 103, "GTC"),  # the bid never reaches 103: rests to the end
    (4, "sell", 11, None, "IOC"),  # 10 at the bid 102; 1 cancelled
)


def _quotes() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"ts": ts, "symbol": "X", "kind": "quote", "bid": bid, "ask": ask,
             "bid_size": bs, "ask_size": asz}
            for ts, bid, ask, bs, asz in QUOTES
        ]
    )


@dataclass(frozen=True)
class PlanParams:
    plan: Plan = PLAN


class Told(Strategy):
    """Places the planned orders; takes the context (so it runs on the closed loop) and keeps
    the positions it was told."""

    name = "told"
    params_type = PlanParams
    input_fields = ("bid",)

    def __init__(self, params: PlanParams) -> None:
        super().__init__(params)
        self.told: list[dict[str, int]] = []

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        if context is not None:
            self.told.append(dict(context.positions))
        return [
            Signal("X", side, qty, limit_price=limit, hints=(("tif", tif),))  # type: ignore[arg-type]
            for seq, side, qty, limit, tif in self.params.plan
            if seq == batch.seq
        ]


CONFIG = BacktestConfig(count=1, initial_cash=1.0, fee_bps=100, periods_per_year=6)


def test_resting_and_partial_fills_show_in_the_tables_as_in_the_journal() -> None:
    strategy = Told(PlanParams())
    result = run_backtest(strategy, _quotes(), CONFIG)
    journal = result.journal
    assert journal is not None
    fills = result.fills.select("seq", "status", "reason", "filled_quantity", "fill_price",
                                "notional", "fee", "fill_ts")
    assert fills.rows() == [
        (0, "partially_filled", "cancelled: IOC: remainder", 5, 101, 505, 6, 10),
        # 3 at 100 then 3 at 99: average 99.5, floored; fees 1% of 300 and 297, rounded up
        (1, "filled", None, 6, 99, 597, 3 + 3, 40),
        (2, "resting", None, 0, None, None, None, None),
        (4, "partially_filled", "cancelled: IOC: remainder", 10, 102, 1020, 11, 50),
    ]
    journal_fills = journal.filter(pl.col("event") == "fill")
    assert journal_fills.select("seq", "quantity", "price_ticks").rows() == [
        (0, 5, 101), (1, 3, 100), (1, 3, 99), (4, 10, 102)
    ]
    # one positions row per fill of the journal, with the position the journal shows
    assert result.positions["position"].to_list() == journal_fills["position_after"].to_list()
    assert result.positions["position"].to_list() == [5, 8, 11, 1]
    # the strategy was told those positions, batch after batch
    assert strategy.told[:4] == [{"X": 5}, {"X": 5}, {"X": 8}, {"X": 11}]
    m = result.metrics_dict()
    assert (m["n_signals"], m["n_fills"]) == (4, journal_fills.height)
    assert m["fees"] == pytest.approx((6 + 3 + 3 + 11) / 10_000)
    # after each batch: cash after its fills (price x quantity and the fee), and the position
    # at the quote's mid (bid + ask) // 2
    # 0: bought 5 at 101 (505, fee 6)             cash 9489, 5 at 100:  9989
    # 1: the buy at 100 rests                     cash 9489, 5 at 101:  9994
    # 2: 3 of it at 100 (300, fee 3)              cash 9186, 8 at 99:   9978
    # 3: its last 3 at 99 (297, fee 3)            cash 8886, 11 at 98:  9964
    # 4: sold 10 at 102 (1020, fee 11)            cash 9895, 1 at 103:  9998
    # 5: nothing fills                            cash 9895, 1 at 102:  9997
    assert result.equity["cash"].to_list() == [9489, 9489, 9186, 8886, 9895, 9895]
    assert result.equity["equity"].to_list() == [9989, 9994, 9978, 9964, 9998, 9997]
    assert m["pnl"] == pytest.approx(-3 / 10_000)
    assert result.trades.height == 0  # never back to flat


def test_the_tables_pnl_is_the_closed_loops_pnl() -> None:
    """Without fees, the backtest's PnL is the execution layer's (what a live run on the paper
    venue reports as ``pnl_ticks``, tests/e2e/test_capital_parity.py shows it live)."""
    strategy = Told(PlanParams())
    config = BacktestConfig(count=1, initial_cash=1.0)
    result = run_backtest(strategy, _quotes(), config)
    data = prepare(_quotes(), Told.fields(), config.spec)
    log = backtest_log(Told(PlanParams()), data, capital=ticks_of(1.0, scale=10_000))
    assert log.journal.drop("time_ns").equals(result.journal.drop("time_ns"))  # type: ignore[union-attr]
    assert int(result.equity["equity"][-1]) - 10_000 == log.pnl
    assert round(result.metrics_dict()["pnl"] * 10_000) == log.pnl  # type: ignore[operator]


def test_fees_are_charged_by_the_execution_layer_so_capital_binds_with_them() -> None:
    # 1.0 of cash buys 99 units at 101 without the fee; with 1% of fee the 99 do not fit
    plan: Plan = ((0, "buy", 99, None, "IOC"),)
    bars = _quotes().with_columns(pl.lit(1_000).alias("ask_size"))
    free = run_backtest(Told(PlanParams(plan)), bars, BacktestConfig(count=1, initial_cash=1.0))
    assert free.fills["status"].to_list() == ["filled"]
    paid = run_backtest(Told(PlanParams(plan)), bars, CONFIG)
    assert paid.fills.select("status", "reason").rows() == [("refused", "insufficient_cash")]
    assert paid.equity["cash"].min() == 10_000


def test_slippage_is_refused_for_a_strategy_on_the_venue() -> None:
    with pytest.raises(UsageError, match=r"slippage_ticks=1.*paper venue"):
        run_backtest(Told(PlanParams()), _quotes(),
                     BacktestConfig(count=1, slippage_ticks=1))


def test_backtest_log_counts_in_the_instruments_run_prepared_uses() -> None:
    table = Instruments((Instrument("X", currency="EUR", tick_size="0.00001"),), strict=True,
                        source="a test's table")
    config = BacktestConfig(count=1, initial_cash=1.0, instruments=table)
    events = _quotes().with_columns(pl.col("bid", "ask") * 10)  # ticks of 1/100,000
    data = prepare(events, Told.fields(), config.spec)
    result = run_prepared(Told(PlanParams()), data, config)
    log = backtest_log(Told(PlanParams()), data, capital=ticks_of(1.0, scale=100_000),
                       instruments=table)
    assert (log.account.currency, log.account.money_scale) == ("EUR", 100_000)
    assert (result.currency, result.money_scale) == (log.account.currency,
                                                     log.account.money_scale)
    assert int(result.equity["equity"][-1]) - 100_000 == log.pnl


@dataclass(frozen=True)
class OrdersParams:
    plan: tuple[tuple[int, str, int], ...] = ()


class Market(Strategy):
    """Market orders by plan, batches only (the next-event model)."""

    name = "market"
    params_type = OrdersParams
    input_fields = ("close",)

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [Signal("X", side, qty) for seq, side, qty in self.params.plan  # type: ignore[arg-type]
                if seq == batch.seq]


class MarketTold(Market):
    """The same orders, taking the context (the venue model); it changes nothing."""

    name = "market_told"

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        return super().on_batch(batch)


def _continuous_bars(closes: list[int]) -> pl.DataFrame:
    """Bars whose open is the previous close, with more volume than any order takes."""
    opens = [closes[0], *closes[:-1]]
    return pl.DataFrame({
        "ts": [i * 60 * 10**9 for i in range(len(closes))],
        "symbol": ["X"] * len(closes), "kind": ["bar"] * len(closes),
        "open": opens, "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
        "low": [min(o, c) for o, c in zip(opens, closes, strict=True)], "close": closes,
        "volume": [10**9] * len(closes),
    })


@settings(max_examples=40, deadline=None)
@given(
    closes=st.lists(st.integers(90, 110), min_size=3, max_size=30),
    orders=st.lists(st.tuples(st.integers(0, 28), st.sampled_from(["buy", "sell"]),
                              st.integers(1, 50)), max_size=12),
)
def test_the_two_models_agree_where_they_can(
    closes: list[int], orders: list[tuple[int, str, int]]
) -> None:
    """Why the next-event model is not the venue's, and where they meet: on bars whose open is
    the previous close, without fees, market orders fill at the same prices and quantities and
    the equity curve is the same; the venue fills a bar earlier (at the close of the bar that
    signalled, the next-event model at the next bar's open), so the fill times, cash between
    the two moments and exposure differ, and the last bar's orders fill only on the venue."""
    plan = tuple(sorted(o for o in orders if o[0] < len(closes) - 1))
    bars = _continuous_bars(closes)
    config = BacktestConfig(count=1, initial_cash=10.0**6)
    nxt = run_backtest(Market(OrdersParams(plan)), bars, config)
    venue = run_backtest(MarketTold(OrdersParams(plan)), bars, config)
    keys = ["seq", "idx", "side", "quantity", "status", "filled_quantity", "fill_price",
            "notional", "cash_after"]
    assert nxt.fills.select(keys).equals(venue.fills.select(keys))
    # the same equity after every batch (bought at a close, marked at that close: no change),
    # though the venue's cash and position value move a batch earlier
    assert nxt.equity.select("seq", "ts", "equity").equals(venue.equity.select("seq", "ts",
                                                                               "equity"))
    assert nxt.positions.drop("fill_ts").equals(venue.positions.drop("fill_ts"))
    held_longer = {"exposure"}  # a position opens a batch earlier on the venue
    assert {k: v for k, v in nxt.metrics_dict().items() if k not in held_longer} == {
        k: v for k, v in venue.metrics_dict().items() if k not in held_longer}
    fill_seq = venue.fills.filter(pl.col("filled_quantity") > 0)
    ts = bars.get_column("ts")
    assert fill_seq["fill_ts"].to_list() == [ts[s] for s in fill_seq["seq"]]  # its own bar
    assert nxt.fills.filter(pl.col("status") == "filled")["fill_ts"].to_list() == [
        ts[s + 1] for s in fill_seq["seq"]]  # the next bar
