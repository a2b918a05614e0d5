"""The backtester: event-driven replay through a Strategy, fills, positions, metrics, sweeps.

Batches reach the strategy exactly as they reach it in the enclave (encoded, decoded, then
``apply_strategy``), so a backtest and a live run cannot differ in what the strategy sees.

- :func:`backtest_log`: the records and journal a live run with feedback writes, from the live
  run's own execution layer, paper venue and feedback builder (byte for byte the same);
- :func:`run_backtest` with :class:`BacktestConfig` gives a :class:`BacktestResult`
  (signals, fills, positions, equity curve, metrics as polars frames, and the signals digest);
- :func:`sweep` runs a parameter grid, serially or on Dask (a local cluster by default, or an
  existing one by address or ``Client``), with a progress bar; :func:`walk_forward` optimises in
  sample and evaluates out of sample, fold after fold;
- every sweep can write a research record (:func:`load_research_record`; the trials behind the
  parameters, for the deflated Sharpe ratio, :func:`deflated_sharpe_ratio`);
- :func:`equity_figure` / :func:`equity_png`: equity and drawdown with the trades marked;
- every metric is defined, annualisation included, in :mod:`zcbench.backtest._metrics`;
  capital binds through :mod:`zcbench.risk`;
- :func:`research_demo` is the research step of ``zcbench demo``.
"""

from zcbench.backtest._accounting import FillModel
from zcbench.backtest._dask import dask_client, parse_address
from zcbench.backtest._demo import research_demo
from zcbench.backtest._engine import (
    BacktestConfig,
    BacktestLog,
    BacktestResult,
    PreparedData,
    backtest_log,
    prepare,
    replay,
    run_backtest,
    run_prepared,
)
from zcbench.backtest._metrics import METRIC_NAMES, deflated_sharpe_ratio
from zcbench.backtest._plot import equity_figure, equity_png, sweep_heatmap, walkforward_figure
from zcbench.backtest._research import ResearchRecord, research_summary
from zcbench.backtest._research import load_record as load_research_record
from zcbench.backtest._sweep import sweep
from zcbench.backtest._walkforward import Folds, WalkForwardResult, walk_forward

__all__ = [
    "METRIC_NAMES",
    "BacktestConfig",
    "BacktestLog",
    "BacktestResult",
    "FillModel",
    "Folds",
    "PreparedData",
    "ResearchRecord",
    "WalkForwardResult",
    "backtest_log",
    "dask_client",
    "deflated_sharpe_ratio",
    "equity_figure",
    "equity_png",
    "load_research_record",
    "parse_address",
    "prepare",
    "replay",
    "research_demo",
    "research_summary",
    "run_backtest",
    "run_prepared",
    "sweep",
    "sweep_heatmap",
    "walk_forward",
    "walkforward_figure",
]
