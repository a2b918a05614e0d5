"""The backtester: event-driven replay through a Strategy, fills, positions, metrics, sweeps.

Batches reach the strategy exactly as they reach it in the enclave (encoded, decoded, then
``apply_strategy``), so a backtest and a live run cannot differ in what the strategy sees.

- :func:`run_backtest` with :class:`BacktestConfig` gives a :class:`BacktestResult`
  (signals, fills, positions, equity curve, metrics as polars frames, and the signals digest);
- :func:`sweep` runs a parameter grid with a progress bar;
- :func:`equity_figure` / :func:`equity_png`: equity and drawdown with the trades marked;
- every metric is defined, annualisation included, in :mod:`zcbench.backtest._metrics`;
  capital binds through :mod:`zcbench.risk`;
- :func:`research_demo` is the research step of ``zcbench demo``.
"""

from zcbench.backtest._accounting import FillModel
from zcbench.backtest._demo import research_demo
from zcbench.backtest._engine import (
    BacktestConfig,
    BacktestResult,
    PreparedData,
    prepare,
    replay,
    run_backtest,
    run_prepared,
)
from zcbench.backtest._metrics import METRIC_NAMES
from zcbench.backtest._plot import equity_figure, equity_png
from zcbench.backtest._sweep import sweep

__all__ = [
    "METRIC_NAMES",
    "BacktestConfig",
    "BacktestResult",
    "FillModel",
    "PreparedData",
    "equity_figure",
    "equity_png",
    "prepare",
    "replay",
    "research_demo",
    "run_backtest",
    "run_prepared",
    "sweep",
]
