"""The example strategies: behaviour on hand-made data, validation, integer-only state."""

from __future__ import annotations

import polars as pl
import pytest

from zcbench.backtest import BacktestConfig, run_backtest
from zcbench.examples import EXAMPLES, MACrossover, OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks, load_ohlcv, sample_daily_path
from zcbench.strategy import Batch, Signal, make_strategy


def _bars(closes: list[int]) -> Batch:
    n = len(closes)
    events = pl.DataFrame({"ts": list(range(n)), "symbol": ["M"] * n, "close": closes})
    return Batch(seq=0, events=events)


def test_ma_crossover_by_hand() -> None:
    s = make_strategy(MACrossover, {"fast": 2, "slow": 3, "quantity": 5})
    # closes 10 10 10: averages equal, no position; 13: fast 11.5 > slow 11 -> buy 5
    # 7: fast 10 = slow 10, a tie leaves the position; 7 again: fast 7 < slow 9 -> sell 5
    out = s.on_batch(_bars([10, 10, 10, 13, 7, 7]))
    assert out == [Signal("M", "buy", 5), Signal("M", "sell", 5)]


def test_ma_crossover_short_side_and_bad_params() -> None:
    s = make_strategy(MACrossover, {"fast": 2, "slow": 3, "quantity": 5, "allow_short": True})
    assert s.on_batch(_bars([10, 10, 10, 13, 7, 7])) == [
        Signal("M", "buy", 5),
        Signal("M", "sell", 10),
    ]
    for bad in ({"fast": 5, "slow": 5}, {"fast": 0}, {"quantity": 0}):
        with pytest.raises(ValueError):  # noqa: PT011 - the message is checked in the CLI test
            make_strategy(MACrossover, bad)


def _flow(rows: list[tuple[str, int | None, int | None, int | None, int | None]]) -> Batch:
    """rows of (kind, price, size, bid, ask) for symbol S."""
    n = len(rows)
    events = pl.DataFrame(
        {
            "ts": list(range(n)),
            "symbol": ["S"] * n,
            "ask": [r[4] for r in rows],
            "bid": [r[3] for r in rows],
            "kind": [r[0] for r in rows],
            "price": [r[1] for r in rows],
            "size": [r[2] for r in rows],
        },
        schema_overrides={c: pl.Int64 for c in ("ask", "bid", "price", "size")},
    )
    return Batch(seq=0, events=events)


def test_order_flow_imbalance_by_hand() -> None:
    s = make_strategy(
        OrderFlowImbalance, {"window": 2, "enter_pct": 50, "exit_pct": 10, "quantity": 7}
    )
    quote = ("quote", None, None, 99, 101)
    # batch 0: buys 300 at the ask, sells 100 at the bid: 200/400 = 50% -> long 7
    assert s.on_batch(
        _flow([quote, ("trade", 101, 300, None, None), ("trade", 99, 100, None, None)])
    ) == [Signal("S", "buy", 7)]
    # batch 1: the quote carries over; a trade inside the spread is not classified;
    # sells 300: window 300 buy vs 400 sell: -100/700 = -14%: neither enter nor exit
    assert s.on_batch(_flow([("trade", 100, 50, None, None), ("trade", 99, 300, None, None)])) == []
    # batch 2: window is batches 1-2: sells 300 + 300 -> -100% -> short 7 (sell 14)
    assert s.on_batch(_flow([("trade", 99, 300, None, None)])) == [Signal("S", "sell", 14)]
    # batch 3: buys 300 at a new ask: window 300 buy / 300 sell: 0% < 10% -> flat
    new_quote = ("quote", None, None, 100, 102)
    assert s.on_batch(_flow([new_quote, ("trade", 102, 300, None, None)])) == [
        Signal("S", "buy", 7)
    ]


def test_examples_are_registered_and_keep_integer_state() -> None:
    assert set(EXAMPLES) == {"ma_crossover", "order_flow_imbalance"}
    ticks = generate_ticks(SyntheticConfig(rate=10_000, duration_s=2.0), seed=3)
    s = make_strategy(OrderFlowImbalance, {"window": 2, "enter_pct": 10})
    result = run_backtest(s, ticks, BacktestConfig(width_ns=20_000_000))
    assert result.signals.height > 0
    for state in (s._buy, s._sell, s._bid, s._ask, s._target):
        assert all(type(v) is int for v in state.values())


@pytest.mark.slow
def test_ma_crossover_on_the_real_dataset() -> None:
    result = run_backtest(
        make_strategy(MACrossover, {"quantity": 1000}),
        load_ohlcv(sample_daily_path()),
        BacktestConfig(count=1, fee_bps=1.0, initial_cash=100_000.0),
    )
    m = result.metrics_dict()
    assert m["n_batches"] == 7983
    assert m["n_fills"] == m["n_signals"] > 50  # long-only: every signal fills at the next open
    assert result.positions.get_column("position").is_in([0, 1000]).all()
    assert 240 < m["periods_per_year"] < 260
