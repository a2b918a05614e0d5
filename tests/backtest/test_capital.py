"""Capital binds: orders beyond cash or margin are refused by name; cash stays >= 0 unlevered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.errors import UsageError
from zcbench.examples import MACrossover
from zcbench.marketdata import SyntheticConfig, generate_ticks, load_ohlcv, sample_daily_path
from zcbench.risk import (
    INSUFFICIENT_CASH,
    INSUFFICIENT_MARGIN,
    BuyingPower,
    Refusal,
    buying_power_refusal,
)
from zcbench.strategy import Batch, Signal, Strategy, make_strategy

Order = tuple[int, str, str, int]


@dataclass(frozen=True)
class PlanParams:
    plan: tuple[Order, ...] = ()


class Planned(Strategy):
    name = "planned"
    params_type = PlanParams
    input_fields = ()

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [
            Signal(sym, side, qty)  # type: ignore[arg-type]
            for seq, sym, side, qty in self.params.plan
            if seq == batch.seq
        ]


def _bars(closes: list[int]) -> pl.DataFrame:
    """Daily bars of one symbol X whose open and close are the given ticks."""
    day = 86_400 * 10**9
    return pl.DataFrame(
        {
            "ts": [i * day for i in range(len(closes))],
            "symbol": ["X"] * len(closes),
            "kind": ["bar"] * len(closes),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": [1] * len(closes),
        }
    )


def test_capital_runs_out_orders_are_refused_and_cash_never_below_zero() -> None:
    # the case: 1,000 of cash and 1,000-unit orders on the MSFT sample
    bars = load_ohlcv(sample_daily_path())
    strategy = make_strategy(MACrossover, {"quantity": 1000})
    result = run_backtest(strategy, bars, BacktestConfig(count=1, initial_cash=1_000.0))
    fills = result.fills
    refused = fills.filter(pl.col("status") == "refused")
    assert refused.height > 0
    # a refused buy lacked cash; the strategy, not told (that is the feedback of issue #13),
    # later sells what it never got, which from flat is a short its equity cannot carry
    reasons = dict(zip(refused["side"], refused["reason"], strict=True))
    assert reasons["buy"] == INSUFFICIENT_CASH
    assert set(refused.filter(pl.col("side") == "buy")["reason"]) == {INSUFFICIENT_CASH}
    assert set(refused.filter(pl.col("side") == "sell")["reason"]) <= {INSUFFICIENT_MARGIN}
    assert fills.filter(pl.col("status") == "filled").height > 0  # early on, MSFT was cheap
    assert fills.get_column("cash_after").drop_nulls().min() >= 0  # type: ignore[operator]
    assert result.equity.get_column("cash").min() >= 0  # type: ignore[operator]
    m = result.metrics_dict()
    assert m["n_refused"] == refused.height
    assert 0 <= m["max_drawdown"] <= 1  # type: ignore[operator]
    assert refused.get_column("fill_price").null_count() == refused.height


def test_refusal_names_the_reason_and_the_next_order_can_fill() -> None:
    plan = ((0, "X", "buy", 10), (1, "X", "buy", 1), (2, "X", "sell", 10))
    # 1.0 of cash = 10,000 ticks; the first buy costs 10 x 900 = 9,000, the second 1 x 1,100
    result = run_backtest(
        Planned(PlanParams(plan)),
        _bars([1000, 900, 1100, 1200]),
        BacktestConfig(count=1, initial_cash=1.0),
    )
    rows = result.fills.select("status", "reason", "fill_price", "cash_after").rows()
    assert rows == [
        ("filled", None, 900, 1000),
        ("refused", INSUFFICIENT_CASH, None, None),
        ("filled", None, 1200, 13_000),
    ]


def test_leverage_lets_cash_go_negative_within_its_limit() -> None:
    plan = ((0, "X", "buy", 15),)
    cash_account = run_backtest(
        Planned(PlanParams(plan)),
        _bars([1000, 1000, 1000]),
        BacktestConfig(count=1, initial_cash=1.0),
    )
    assert cash_account.fills.get_column("reason").to_list() == [INSUFFICIENT_CASH]
    levered = run_backtest(
        Planned(PlanParams(plan)),
        _bars([1000, 1000, 1000]),
        BacktestConfig(count=1, initial_cash=1.0, leverage=2.0),
    )
    assert levered.fills.get_column("status").to_list() == ["filled"]
    assert levered.equity.get_column("cash").to_list() == [10_000, -5_000, -5_000]
    too_much = run_backtest(
        Planned(PlanParams(((0, "X", "buy", 21),))),
        _bars([1000, 1000, 1000]),
        BacktestConfig(count=1, initial_cash=1.0, leverage=2.0),
    )
    assert too_much.fills.get_column("reason").to_list() == [INSUFFICIENT_MARGIN]


def test_short_needs_margin_and_a_closing_order_always_goes_through() -> None:
    plan = ((0, "X", "sell", 12), (1, "X", "buy", 12))
    bars = _bars([1000, 1000, 1000, 1000])
    # a short of 12,000 needs 12,000 of equity at a 100 % requirement: refused with 10,000
    full = run_backtest(Planned(PlanParams(plan)), bars, BacktestConfig(count=1, initial_cash=1.0))
    # (and the buy, from flat, is then a long of 12,000 beyond the cash)
    assert full.fills.get_column("reason").to_list() == [INSUFFICIENT_MARGIN, INSUFFICIENT_CASH]
    half = run_backtest(
        Planned(PlanParams(plan)), bars, BacktestConfig(count=1, initial_cash=1.0, short_margin=0.5)
    )
    assert half.fills.get_column("status").to_list() == ["filled", "filled"]
    # after a loss beyond the margin, the covering buy still fills (it lowers the requirement)
    crash = _bars([1000, 1000, 2000, 2000])
    squeezed = run_backtest(
        Planned(PlanParams(((0, "X", "sell", 10), (2, "X", "buy", 10)))),
        crash,
        BacktestConfig(count=1, initial_cash=1.0),
    )
    assert squeezed.fills.get_column("status").to_list() == ["filled", "filled"]


def test_the_rule_itself() -> None:
    cash = BuyingPower()
    assert (
        buying_power_refusal(
            cash, equity_after=100, long_before=0, short_before=0, long_after=100, short_after=0
        )
        is None
    )
    assert (
        buying_power_refusal(
            cash, equity_after=100, long_before=0, short_before=0, long_after=101, short_after=0
        )
        == Refusal(INSUFFICIENT_CASH, limit=100, attempted=101)
    )
    assert (
        buying_power_refusal(
            BuyingPower(leverage=3),
            equity_after=100,
            long_before=0,
            short_before=0,
            long_after=300,
            short_after=0,
        )
        is None
    )
    # reducing exposure is never refused, even under water
    assert (
        buying_power_refusal(
            cash, equity_after=-5, long_before=200, short_before=0, long_after=100, short_after=0
        )
        is None
    )
    assert BuyingPower(short_margin=1.5).requirement(0, 100) == 150
    for bad in ({"leverage": 0.5}, {"short_margin": 0}, {"leverage": "2"}):
        with pytest.raises(UsageError):
            BuyingPower(**bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        BacktestConfig(count=1, leverage=0.9)


EVENTS = generate_ticks(SyntheticConfig(rate=2_000, duration_s=1.0, symbols=("A", "B")), seed=5)

orders = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.sampled_from(["A", "B"]),
        st.sampled_from(["buy", "sell"]),
        st.integers(1, 60),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(plan=orders, cash=st.sampled_from([2_000.0, 10_000.0, 50_000.0]))
def test_cash_account_never_borrows(plan: list[Order], cash: float) -> None:
    config = BacktestConfig(count=50, fee_bps=2.0, initial_cash=cash, short_margin=1.0)
    result = run_backtest(Planned(PlanParams(tuple(plan))), EVENTS, config)
    assert result.equity.get_column("cash").min() >= 0  # type: ignore[operator]
    lowest = result.fills.get_column("cash_after").min()
    assert lowest is None or lowest >= 0  # type: ignore[operator]
    refused = result.fills.filter(pl.col("status") == "refused")
    assert set(refused.get_column("reason").to_list()) <= {INSUFFICIENT_CASH, INSUFFICIENT_MARGIN}
