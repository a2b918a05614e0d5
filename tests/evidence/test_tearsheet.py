"""The verified tear sheet on a case small enough to compute by hand, and the deflated Sharpe
ratio against its formula written out independently."""

from __future__ import annotations

import math
import statistics

import polars as pl
import pytest

from zcbench.errors import UsageError
from zcbench.evidence.tearsheet import deflated_sharpe, marks_by_batch, tear_sheet

S = 10**9


def _case() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    # one symbol X marked 100, 110, 99, 121 over four batches; buy 10 at 100 in the first,
    # sell 10 at 99 in the third; capital 10,000 ticks
    fills = pl.DataFrame({"seq": [0, 2], "symbol": ["X", "X"], "side": ["buy", "sell"],
                          "quantity": [10, 10], "price_ticks": [100, 99]})
    marks = pl.DataFrame({"seq": [0, 1, 2, 3], "symbol": ["X"] * 4,
                          "price_ticks": [100, 110, 99, 121]})
    ends = pl.DataFrame({"seq": [0, 1, 2, 3], "end_ns": [0, 1 * S, 2 * S, 3 * S]})
    return fills, marks, ends


def test_hand_computed_case() -> None:
    fills, marks, ends = _case()
    sheet = tear_sheet(fills, marks, ends, capital_ticks=10_000, periods_per_year=4.0)
    # equity after each batch, by hand: 10,000; 10,100; 9,990; 9,990
    curve = [10_000, 10_000, 10_100, 9_990, 9_990]
    returns = [curve[i + 1] / curve[i] - 1 for i in range(4)]
    assert sheet.pnl_ticks == -10
    assert sheet.total_return == pytest.approx(-0.001)
    assert sheet.max_drawdown == pytest.approx(110 / 10_100)
    assert sheet.max_drawdown_duration_s == pytest.approx(2.0)  # peak at 1 s, not regained by 3 s
    assert sheet.exposure == pytest.approx(0.5)  # open after batches 0 and 1
    assert sheet.turnover == pytest.approx((1_000 + 990) / 10_000)
    per_batch = statistics.mean(returns) / statistics.stdev(returns)
    assert sheet.sharpe_per_batch == pytest.approx(per_batch)
    assert sheet.sharpe == pytest.approx(per_batch * 2)  # sqrt(4 periods a year)
    assert sheet.volatility == pytest.approx(statistics.stdev(returns) * 2)
    assert sheet.n_batches == 4
    assert sheet.n_fills == 2
    assert sheet.deflated_sharpe is not None
    assert 0.0 < sheet.deflated_sharpe < 0.5  # a losing run: below even odds of skill


def test_carried_positions_count_from_their_first_mark() -> None:
    # 5 X and -2 Y carried in; Y is first marked in batch 2 (at 40), X in batch 0 (at 100)
    _, marks, ends = _case()
    marks = pl.concat([marks, pl.DataFrame({"seq": [2, 3], "symbol": ["Y", "Y"],
                                            "price_ticks": [40, 30]})]).sort("seq")
    empty = pl.DataFrame(schema={"seq": pl.Int64, "symbol": pl.String, "side": pl.String,
                                 "quantity": pl.Int64, "price_ticks": pl.Int64})
    sheet = tear_sheet(empty, marks, ends, capital_ticks=10_000, carried={"X": 5, "Y": -2})
    assert sheet.pnl_ticks == 5 * (121 - 100) + -2 * (30 - 40)
    assert tear_sheet(empty, marks, ends, capital_ticks=10_000).pnl_ticks == 0  # a first run


def test_marks_follow_the_execution_rule() -> None:
    events = pl.DataFrame({
        "seq": [0, 0, 0, 1], "symbol": ["A", "A", "B", "A"],
        "price": [None, 101, None, None], "bid": [99, None, 50, 200], "ask": [101, None, 52, 202],
    })
    marks = marks_by_batch(events)
    assert marks.rows() == [(0, "A", 101), (0, "B", 51), (1, "A", 201)]


def _psr(sr: float, n: int, skew: float, kurt: float, sr0: float) -> float:
    z = (sr - sr0) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_deflated_sharpe_formula_and_trials() -> None:
    assert deflated_sharpe(0.1, 250) == pytest.approx(_psr(0.1, 250, 0.0, 3.0, 0.0))
    # SR0 for 100 trials of variance 0.01, from the expected maximum of 100 normal draws
    gamma = 0.5772156649015329
    inv = statistics.NormalDist().inv_cdf
    sr0 = 0.1 * ((1 - gamma) * inv(1 - 1 / 100) + gamma * inv(1 - 1 / (100 * math.e)))
    got = deflated_sharpe(0.3, 250, skew=-0.5, kurtosis=5.0, trials=100,
                          trial_sharpe_variance=0.01)
    assert got == pytest.approx(_psr(0.3, 250, -0.5, 5.0, sr0))
    more = [deflated_sharpe(0.3, 250, trials=n, trial_sharpe_variance=0.01)
            for n in (1, 10, 100, 1000)]
    assert more == sorted(more, reverse=True)  # more trials, less confidence
    with pytest.raises(UsageError):
        deflated_sharpe(0.1, 1)
    with pytest.raises(UsageError):
        tear_sheet(*_case(), capital_ticks=0)


def test_backtest_over_the_logged_batches_hand_computed() -> None:
    from zcbench.evidence.tearsheet import backtest_fills, backtest_sheet

    # the same four batches of X (trades at 100, 110, 99, 121), and the signed signals: buy 10
    # in batch 0, sell 10 in batch 2. The backtest fills each at the next event after its
    # batch: the buy at 110 (batch 1), the sell at 121 (batch 3). By hand, capital 10,000:
    # equity 10,000; 8,900 + 1,100 = 10,000; 8,900 + 990 = 9,890; 8,900 + 1,210 = 10,110
    events = pl.DataFrame({"seq": [0, 1, 2, 3], "ts": [0, 1 * S, 2 * S, 3 * S],
                           "symbol": ["X"] * 4, "price": [100, 110, 99, 121]})
    signals = pl.DataFrame({"seq": [0, 2], "symbol": ["X", "X"], "side": ["buy", "sell"],
                            "quantity": [10, 10], "limit_price": [None, None]},
                           schema_overrides={"limit_price": pl.Int64})
    fills = backtest_fills(events, signals, capital_ticks=10_000)
    assert fills.rows() == [(1, "X", "buy", 10, 110), (3, "X", "sell", 10, 121)]
    sheet = backtest_sheet(events, signals, capital_ticks=10_000)
    assert sheet.equity_ticks == (10_000, 10_000, 9_890, 10_110)
    assert sheet.pnl_ticks == 110
    assert sheet.total_return == pytest.approx(0.011)
    assert sheet.max_drawdown == pytest.approx(110 / 10_000)
    assert sheet.exposure == pytest.approx(0.5)  # open after batches 1 and 2
    assert sheet.turnover == pytest.approx((1_100 + 1_210) / 10_000)
    returns = [0.0, 0.0, -0.011, 10_110 / 9_890 - 1]
    assert sheet.sharpe_per_batch == pytest.approx(statistics.mean(returns)
                                                   / statistics.stdev(returns))
    # a limit the next price breaches leaves the buy unfilled (the sell is then a short)
    limited = signals.with_columns(pl.Series("limit_price", [105, None], dtype=pl.Int64))
    assert backtest_fills(events, limited, capital_ticks=10_000).rows() == [
        (3, "X", "sell", 10, 121)]
    # with 1,000 of capital the buy (1,100) and the short (1,210) are both refused
    assert backtest_fills(events, signals, capital_ticks=1_000).height == 0
