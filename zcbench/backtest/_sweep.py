"""Parameter sweeps: one backtest per point of a grid, batches encoded once for all."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from zcbench.backtest._engine import BacktestConfig, prepare, run_prepared
from zcbench.errors import UsageError
from zcbench.progress import progress
from zcbench.strategy import Strategy, make_strategy

__all__ = ["sweep"]


def sweep(
    strategy_cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    events: pl.DataFrame,
    config: BacktestConfig,
    *,
    base_params: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
) -> pl.DataFrame:
    """One row per grid point: its parameters, every metric and the signals digest.

    Points run in the order of ``itertools.product`` over ``grid`` as given; a point whose
    parameters the strategy refuses raises :class:`UsageError` naming it.
    """
    if not grid or any(len(values) == 0 for values in grid.values()):
        raise UsageError("sweep: the grid needs at least one value for each parameter")
    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    # non-scalar parameter values (tuples, dataclasses) appear as their repr in the table
    scalar = {n for n in names if all(type(v) in (int, float, str, bool) for v in grid[n])}
    data = prepare(events, strategy_cls.fields(), config.spec)
    rows: list[dict[str, Any]] = []
    for values in progress(points, total=len(points), desc="sweep", enabled=show_progress):
        params = {**(base_params or {}), **dict(zip(names, values, strict=True))}
        try:
            strategy = make_strategy(strategy_cls, params)
        except ValueError as exc:
            raise UsageError(f"sweep: {strategy_cls.__name__} refuses {params}: {exc}") from None
        result = run_prepared(strategy, data, config)
        rows.append(
            {
                **{n: v if n in scalar else repr(v) for n, v in zip(names, values, strict=True)},
                **result.metrics_dict(),
                "signals_digest": result.signals_digest,
            }
        )
    return pl.DataFrame(rows)
