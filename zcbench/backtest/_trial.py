"""One point of a sweep: its row's columns, how it runs and how it fails.

:func:`run_trial` is what a sweep runs for each point, in this process (:func:`run_serial`) or on
a Dask worker (:mod:`zcbench.backtest._dask`); a point that does not run through is the row
:func:`failed_trial` makes, null metrics and the error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import polars as pl

from zcbench.backtest._engine import BacktestConfig, PreparedData, run_prepared
from zcbench.backtest._metrics import METRICS_SCHEMA
from zcbench.errors import UsageError, ZcbenchError
from zcbench.strategy import Strategy, make_strategy

__all__ = ["TRIAL_SCHEMA", "Call", "Trial", "failed_trial", "run_serial", "run_trial"]

TRIAL_SCHEMA: Final[dict[str, Any]] = {
    **METRICS_SCHEMA,
    "signals_digest": pl.String,
    "error": pl.String,
}
"""The columns a trial adds to its parameters, in order."""


def failed_trial(error: str) -> dict[str, Any]:
    """The row of a point that did not run through: null metrics and the error."""
    return {**dict.fromkeys(TRIAL_SCHEMA), "error": error}


def run_trial(
    strategy_cls: type[Strategy],
    params: Mapping[str, Any],
    data: PreparedData,
    config: BacktestConfig,
) -> dict[str, Any]:
    """One grid point's row (:data:`TRIAL_SCHEMA`): its metrics and signals digest, or the
    reason it failed. Runs wherever the sweep runs it (this process or a Dask worker)."""
    try:
        strategy = make_strategy(strategy_cls, params)
    except (ValueError, UsageError) as exc:
        return failed_trial(f"parameters refused: {exc}")
    try:
        result = run_prepared(strategy, data, config)
    except ZcbenchError as exc:
        return failed_trial(str(exc))
    except Exception as exc:
        return failed_trial(f"{type(exc).__name__}: {exc}")
    return {**result.metrics_dict(), "signals_digest": result.signals_digest, "error": None}


Trial = Callable[[type[Strategy], Mapping[str, Any], PreparedData, BacktestConfig], dict[str, Any]]
"""What runs one point: :func:`run_trial`, or the walk-forward's out-of-sample run."""
Call = tuple[int, int, Mapping[str, Any]]
"""One point to run: its index in the result, the index of its data, its parameters."""


def run_serial(
    fn: Trial,
    strategy_cls: type[Strategy],
    calls: Iterable[Call],
    datas: Sequence[PreparedData],
    config: BacktestConfig,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each call's ``(index, row)``, one after the other in this process."""
    for index, which, params in calls:
        yield index, fn(strategy_cls, params, datas[which], config)
