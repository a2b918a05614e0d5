"""A backtest small enough to check on paper, and a strategy that raises."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
import pytest

from zcbench.backtest import BacktestConfig, run_backtest, sweep
from zcbench.errors import UsageError
from zcbench.strategy import Batch, Signal, Strategy, StrategyError, make_strategy

Plan = tuple[tuple[int, str, str, int, int | None], ...]


@dataclass(frozen=True)
class ScriptParams:
    plan: Plan = ()
    fail_on: int = -1


class Scripted(Strategy):
    """Emits the planned signals on the planned batches; records what it was shown."""

    name = "scripted"
    params_type = ScriptParams
    input_fields = ("price",)

    def __init__(self, params: ScriptParams) -> None:
        super().__init__(params)
        self.seen: list[pl.DataFrame] = []

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        self.seen.append(batch.events)
        if batch.seq == self.params.fail_on:
            raise RuntimeError("boom")
        return [
            Signal(symbol=sym, side=side, quantity=qty, limit_price=limit)  # type: ignore[arg-type]
            for seq, sym, side, qty, limit in self.params.plan
            if seq == batch.seq
        ]


def _events() -> pl.DataFrame:
    q, t = "quote", "trade"
    rows = [
        (10, q, None, None, 99, 101),
        (20, t, 100, 5, None, None),
        (30, q, None, None, 104, 106),
        (40, t, 105, 5, None, None),
        (50, t, 108, 5, None, None),
        (60, q, None, None, 109, 111),
        (70, t, 112, 5, None, None),
        (80, q, None, None, 100, 102),
    ]
    return pl.DataFrame(
        [
            {
                "ts": ts,
                "symbol": "X",
                "kind": kind,
                "price": price,
                "size": size,
                "bid": bid,
                "ask": ask,
                "bid_size": 1 if kind == q else None,
                "ask_size": 1 if kind == q else None,
            }
            for ts, kind, price, size, bid, ask in rows
        ]
    )


PLAN: Plan = (
    (0, "X", "buy", 10, None),  # fills at the next event's ask 106 + 1 slippage = 107
    (1, "X", "sell", 4, 110),  # next trade 108 - 1 = 107 < limit 110: not filled
    (2, "X", "sell", 10, None),  # next trade 112 - 1 = 111
    (3, "X", "buy", 3, None),  # no event after the last batch
)
CONFIG = BacktestConfig(
    count=2, slippage_ticks=1, fee_bps=100, initial_cash=1.0, periods_per_year=4
)


def test_hand_computed_backtest() -> None:
    strategy = Scripted(ScriptParams(plan=PLAN))
    result = run_backtest(strategy, _events(), CONFIG)

    fills = result.fills.select("seq", "status", "fill_ts", "fill_price", "notional", "fee")
    assert fills.rows() == [
        (0, "filled", 30, 107, 1070, 11),  # fee: 1% of 1070 = 10.7, rounded up
        (1, "limit_not_reached", None, None, None, None),
        (2, "filled", 70, 111, 1110, 12),  # 11.1 rounded up
        (3, "no_next_event", None, None, None, None),
    ]
    # initial cash 1.0 = 10_000 ticks; equity after each batch, marked at its last event
    # batch 0: nothing filled yet                                      10_000
    # batch 1: cash 10_000 - 1070 - 11 = 8919, 10 units at trade 105: 8919 + 1050 = 9969
    # batch 2: same cash, 10 units at the quote mid (109 + 111) // 2 = 110:      10_019
    # batch 3: cash 8919 + 1110 - 12 = 10_017, flat                              10_017
    assert result.equity.get_column("equity").to_list() == [10_000, 9969, 10_019, 10_017]
    assert result.equity.get_column("ts").to_list() == [20, 40, 60, 80]
    assert result.positions.select("position", "realised_pnl").rows() == [
        (10, 0.0),
        (0, 40 / 10_000),  # sold 10 at 111 against an average cost of 107
    ]

    m = result.metrics_dict()
    assert m["total_return"] == pytest.approx(0.0017)
    assert m["pnl"] == pytest.approx(0.0017)
    assert m["fees"] == pytest.approx(0.0023)
    assert m["max_drawdown"] == pytest.approx(31 / 10_000)
    assert m["turnover"] == pytest.approx((1070 + 1110) / 10_000)
    assert m["hit_rate"] == 1.0
    assert (m["n_batches"], m["n_signals"], m["n_fills"], m["n_closing_fills"]) == (4, 4, 2, 1)
    curve = [10_000, 10_000, 9969, 10_019, 10_017]
    returns = [b / a - 1 for a, b in itertools.pairwise(curve)]
    assert m["sharpe"] == pytest.approx(statistics.mean(returns) / statistics.stdev(returns) * 2)


def test_strategy_sees_only_declared_fields_through_the_wire() -> None:
    strategy = Scripted(ScriptParams())
    run_backtest(strategy, _events(), CONFIG)
    assert [f.columns for f in strategy.seen] == [["ts", "symbol", "price"]] * 4
    assert strategy.seen[1].get_column("price").to_list() == [None, 105]


def test_short_position_and_flip() -> None:
    plan: Plan = ((0, "X", "sell", 5, None), (1, "X", "buy", 8, None))
    result = run_backtest(Scripted(ScriptParams(plan=plan)), _events(), CONFIG)
    # short 5 at bid 104 - 1 = 103; buy 8 at the next trade 108 + 1 = 109: close 5, long 3
    assert result.fills.get_column("fill_price").to_list() == [103, 109]
    assert result.positions.select("position", "avg_cost", "realised_pnl").rows() == [
        (-5, 103 / 10_000, 0.0),
        (3, 109 / 10_000, -30 / 10_000),
    ]
    assert result.metrics_dict()["hit_rate"] == 0.0


def test_strategy_that_raises_is_reported_with_its_batch() -> None:
    strategy = Scripted(ScriptParams(fail_on=2))
    with pytest.raises(StrategyError) as info:
        run_backtest(strategy, _events(), CONFIG)
    assert info.value.seq == 2
    message = str(info.value)
    assert "raised RuntimeError on batch 2" in message
    assert "from ts 50 to 60" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_digest_depends_on_signals_only() -> None:
    a = run_backtest(Scripted(ScriptParams(plan=PLAN)), _events(), CONFIG)
    b = run_backtest(Scripted(ScriptParams(plan=PLAN)), _events(), BacktestConfig(count=2))
    c = run_backtest(Scripted(ScriptParams(plan=PLAN[:2])), _events(), CONFIG)
    assert a.signals_digest == b.signals_digest != c.signals_digest


def test_sweep_runs_every_grid_point_in_order() -> None:
    grid = {"fail_on": [-1, 99], "plan": [PLAN, PLAN[:1]]}
    table = sweep(Scripted, grid, _events(), CONFIG, show_progress=False, serial=True)
    assert table.height == 4
    assert table.get_column("fail_on").to_list() == [-1, -1, 99, 99]
    assert table.get_column("n_signals").to_list() == [4, 1, 4, 1]
    with pytest.raises(UsageError):
        sweep(Scripted, {"nope": [1]}, _events(), CONFIG, serial=True)
    with pytest.raises(UsageError):
        sweep(Scripted, {}, _events(), CONFIG, serial=True)


def test_bad_config_is_usage_error() -> None:
    for kwargs in ({}, {"count": 1, "width_ns": 5}, {"count": 0}, {"count": 1, "fee_bps": -1}):
        with pytest.raises(UsageError):
            BacktestConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        make_strategy(Scripted, {"bogus": 1})


def test_absurd_quantity_is_a_data_error_not_an_overflow() -> None:
    from zcbench.errors import DataError

    plan: Plan = ((0, "X", "buy", 10**15, None),)
    with pytest.raises(DataError, match="signal 0 of batch 0"):
        run_backtest(Scripted(ScriptParams(plan=plan)), _events(), CONFIG)
