"""Walk-forward: folds by hand, the in-sample choice is the best trial, the out-of-sample run is
the backtest of the chosen point on exactly the full backtest's test batches, and the stitched
curve compounds the folds. (On Dask: tests/backtest/test_sweep_dask.py, on a real cluster.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from zcbench.backtest import (
    BacktestConfig,
    Folds,
    load_research_record,
    prepare,
    run_prepared,
    walk_forward,
)
from zcbench.backtest._walkforward import _slice
from zcbench.errors import UsageError
from zcbench.examples import OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks
from zcbench.strategy import make_strategy

CONFIG = BacktestConfig(width_ns=50_000_000, fee_bps=0.2)
GRID = {"window": [2, 4], "enter_pct": [2, 10, 20]}
BASE = {"exit_pct": 3}


def test_folds_by_hand() -> None:
    assert Folds(train=4, test=2).windows(10) == [(0, 4, 4, 6), (2, 6, 6, 8), (4, 8, 8, 10)]
    assert Folds(train=4, test=2, mode="expanding").windows(9) == [
        (0, 4, 4, 6),
        (0, 6, 6, 8),  # the last 1 batch is no whole test window
    ]
    with pytest.raises(UsageError, match="no fold"):
        Folds(train=8, test=3).windows(10)
    for bad in ({"train": 0, "test": 1}, {"train": 1, "test": -1}, {"train": 1.5, "test": 1}):
        with pytest.raises(UsageError, match="positive"):
            Folds(**bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="mode"):
        Folds(train=1, test=1, mode="anchored")


@pytest.fixture(scope="module")
def ticks() -> pl.DataFrame:
    return generate_ticks(SyntheticConfig(rate=3_000, duration_s=3.0), seed=4)


def test_a_slice_of_whole_batches_is_the_same_batches(ticks: pl.DataFrame) -> None:
    data = prepare(ticks, OrderFlowImbalance.fields(), CONFIG.spec)
    part = _slice(data, 7, 19)
    offset = int(data.ends[6])
    assert (part.ends + offset).tolist() == data.ends[7:19].tolist()
    assert part.stream.equals(data.stream.slice(offset, int(data.ends[18]) - offset))


@pytest.mark.slow
def test_walk_forward_chooses_in_sample_and_runs_out_of_sample(
    ticks: pl.DataFrame, tmp_path: Path
) -> None:
    record = tmp_path / "wf.json"
    result = walk_forward(
        OrderFlowImbalance, GRID, ticks, CONFIG, train=20, test=10, base_params=BASE,
        serial=True, show_progress=False, record=record,
    )
    data = prepare(ticks, OrderFlowImbalance.fields(), CONFIG.spec)
    windows = Folds(train=20, test=10).windows(data.n_batches)
    assert result.folds.height == len(windows) == 4
    assert result.in_sample.height == 4 * 6
    growth = 1.0
    for fold in result.folds.iter_rows(named=True):
        k = fold["fold"]
        assert (fold["train_start"], fold["train_end"], fold["test_start"], fold["test_end"]) == (
            windows[k]
        )
        trials = result.in_sample.filter(pl.col("fold") == k)
        ran = trials.filter(pl.col("error").is_null())
        assert ran.height == 4  # enter_pct 2 < exit_pct 3 is refused in every fold
        best = ran.sort("sharpe", descending=True, maintain_order=True).row(0, named=True)
        assert fold["is_sharpe"] == best["sharpe"]
        params = {"window": best["window"], "enter_pct": best["enter_pct"]}
        assert json.loads(fold["params"]) == params  # JSON, in the grid's order
        assert list(json.loads(fold["params"])) == ["window", "enter_pct"]
        # the out-of-sample run is the chosen point backtested on the test batches alone
        direct = run_prepared(
            make_strategy(OrderFlowImbalance, {**BASE, **params}),
            _slice(data, fold["test_start"], fold["test_end"]),
            CONFIG,
        )
        assert fold["oos_signals_digest"] == direct.signals_digest
        assert fold["oos_sharpe"] == direct.metrics_dict()["sharpe"]
        assert fold["oos_n_batches"] == 10
        growth *= 1 + fold["oos_total_return"]
    curve = result.oos_equity
    assert curve.height == 4 * 10
    assert curve.get_column("ts").is_sorted()
    assert curve.get_column("stitched_ccy")[-1] / CONFIG.initial_cash == pytest.approx(growth)
    assert math.isclose(result.oos_total_return(), growth - 1, rel_tol=1e-12, abs_tol=1e-15)
    rec = load_research_record(record)
    assert rec.doc["kind"] == "walkforward"
    assert rec.n_trials == 24
    assert rec.doc["folds"] == {"train": 20, "test": 10, "mode": "rolling", "n_folds": 4}
    assert [t["fold"] for t in rec.trials] == [k for k in range(4) for _ in range(6)]


def test_walk_forward_refuses_unknown_metric_and_too_little_data(ticks: pl.DataFrame) -> None:
    with pytest.raises(UsageError, match="unknown metric"):
        walk_forward(OrderFlowImbalance, GRID, ticks, CONFIG, train=2, test=2, metric="luck",
                     serial=True)
    with pytest.raises(UsageError, match="no fold"):
        walk_forward(OrderFlowImbalance, GRID, ticks, CONFIG, train=50, test=20, serial=True)
