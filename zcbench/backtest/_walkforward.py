"""Walk-forward analysis: optimise in sample, evaluate out of sample, fold after fold.

The batches of the data (the backtest's own event-time batches) are cut into folds. Fold ``k``
tests on batches ``[train + k * test, train + (k + 1) * test)`` and trains on the ``train``
batches before them (``rolling``) or on every batch before them (``expanding``); only whole
test windows are used. In each fold the grid is swept on the training batches, the point with
the largest ``metric`` (ties: the first in grid order; failed points never) is chosen, and that
point is backtested on the test batches from a fresh start (no position, the initial cash, the
strategy's state new: what a redeployment at the fold's start would see).

Because batches are cut on event time aligned to the epoch (or on counts from the first row),
a slice of whole batches re-cut gives the same batches, so a fold sees exactly the batches the
full backtest does. Every in-sample point of every fold, and every out-of-sample run, is one
task: the same serial or Dask machinery as :func:`zcbench.backtest.sweep`, with byte-identical
results.

The result (:class:`WalkForwardResult`): ``folds`` (one row per fold: its windows as batch
indices and event times, the chosen parameters (``params``: a JSON object in the grid's order,
the values as the research record writes them) and their in-sample metric, the out-of-sample
metrics), ``in_sample`` (every trial, with its ``fold``) and ``oos_equity``: the stitched
out-of-sample equity, each fold's curve scaled to start where the previous one ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from zcbench.backtest._engine import BacktestConfig, PreparedData, prepare, run_prepared
from zcbench.backtest._metrics import METRIC_NAMES
from zcbench.backtest._sweep import Grid, cluster_for, collect, run_points, trial_table
from zcbench.backtest._trial import TRIAL_SCHEMA, failed_trial, run_trial
from zcbench.errors import UsageError
from zcbench.progress import Reporter, reporter
from zcbench.strategy import Strategy, make_strategy

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["MODES", "Folds", "WalkForwardResult", "walk_forward"]

ROLLING: Final = "rolling"
EXPANDING: Final = "expanding"
MODES: Final = (ROLLING, EXPANDING)


@dataclass(frozen=True, slots=True)
class Folds:
    """Fold sizes in batches and how the training window moves (``rolling``/``expanding``)."""

    train: int
    test: int
    mode: str = ROLLING

    def __post_init__(self) -> None:
        for name in ("train", "test"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise UsageError(f"walk-forward: {name} must be a positive number of batches")
        if self.mode not in MODES:
            raise UsageError(f"walk-forward: mode must be one of {', '.join(MODES)}")

    def windows(self, n_batches: int) -> list[tuple[int, int, int, int]]:
        """Each fold's ``(train_start, train_end, test_start, test_end)`` batch indices."""
        out = []
        k = 0
        while self.train + (k + 1) * self.test <= n_batches:
            test_start = self.train + k * self.test
            train_start = test_start - self.train if self.mode == ROLLING else 0
            out.append((train_start, test_start, test_start, test_start + self.test))
            k += 1
        if not out:
            raise UsageError(
                f"walk-forward: {n_batches} batches hold no fold of {self.train} training and "
                f"{self.test} test batches; use smaller folds or more data"
            )
        return out


def _slice(data: PreparedData, start: int, end: int) -> PreparedData:
    """The prepared data of batches ``[start, end)``."""
    first = int(data.ends[start - 1]) if start > 0 else 0
    last = int(data.ends[end - 1])
    return prepare(data.events.slice(first, last - first), data.fields, data.spec)


def run_oos(
    strategy_cls: type[Strategy],
    params: Mapping[str, Any],
    data: PreparedData,
    config: BacktestConfig,
) -> dict[str, Any]:
    """An out-of-sample run: :func:`run_trial`'s row and the equity curve (``ts``, ``equity``
    in ticks, ``money_scale``)."""
    try:
        result = run_prepared(make_strategy(strategy_cls, params), data, config)
    except Exception as exc:
        return {**failed_trial(f"{type(exc).__name__}: {exc}"), "ts": [], "equity": []}
    return {
        **result.metrics_dict(),
        "signals_digest": result.signals_digest,
        "error": None,
        "ts": result.equity.get_column("ts").to_list(),
        "equity": result.equity.get_column("equity").to_list(),
        "money_scale": result.money_scale,
    }


@dataclass(frozen=True)
class WalkForwardResult:
    """Folds, every in-sample trial and the stitched out-of-sample equity (module docstring)."""

    folds: pl.DataFrame
    in_sample: pl.DataFrame
    oos_equity: pl.DataFrame
    metric: str

    def oos_total_return(self) -> float:
        """The stitched curve's final value over the initial cash, minus one (0.0 if empty)."""
        if self.oos_equity.height == 0:
            return 0.0
        curve = self.oos_equity.get_column("stitched_ccy")
        first = self.folds.get_column("oos_initial_ccy")[0]
        return float(curve[-1]) / float(first) - 1.0


def _best(table: pl.DataFrame, metric: str) -> int | None:
    """The row with the largest metric among those that ran (first on ties), or None."""
    best, value = None, None
    for i, (err, v) in enumerate(zip(table.get_column("error"), table.get_column(metric),
                                     strict=True)):
        if err is None and v is not None and (value is None or v > value):
            best, value = i, v
    return best


def walk_forward(
    strategy_cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    events: pl.DataFrame,
    config: BacktestConfig,
    *,
    train: int,
    test: int,
    mode: str = ROLLING,
    metric: str = "sharpe",
    base_params: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
    serial: bool = False,
    scheduler: str | Client | None = None,
    max_in_flight: int | None = None,
    points_per_task: int | None = None,
    progress: Reporter | None = None,
    record: str | Path | None = None,
) -> WalkForwardResult:
    """Walk-forward over ``grid`` (module docstring); ``train`` and ``test`` are numbers of
    batches. ``serial``, ``scheduler``, ``max_in_flight``, ``points_per_task``, ``progress`` and
    ``record`` are as in :func:`zcbench.backtest.sweep` (the record's trials are the in-sample
    ones)."""
    folds = Folds(train=train, test=test, mode=mode)
    if metric not in METRIC_NAMES:
        known = ", ".join(METRIC_NAMES)
        raise UsageError(f"walk-forward: unknown metric {metric!r}; one of {known}")
    spec = Grid.of(grid)
    spec.check(strategy_cls)
    data = prepare(events, strategy_cls.fields(), config.spec)
    windows = folds.windows(data.n_batches)
    train_data = [_slice(data, a, b) for a, b, _, _ in windows]
    test_data = [_slice(data, c, d) for _, _, c, d in windows]
    base = dict(base_params or {})
    points = [{**base, **p} for p in spec.points()]
    n_is = len(windows) * spec.size
    report = progress or reporter(
        "walk-forward", total=n_is + len(windows), unit="runs", enabled=show_progress
    )
    calls = (
        (k * spec.size + i, k, p) for k in range(len(windows)) for i, p in enumerate(points)
    )
    with cluster_for(serial, scheduler) as client:
        rows = collect(
            run_points(run_trial, strategy_cls, calls, train_data, config, client=client,
                       max_in_flight=max_in_flight, n_points=n_is,
                       points_per_task=points_per_task),
            n_is, _NoClose(report),
        )
        tables = [trial_table(spec, rows[k * spec.size:(k + 1) * spec.size])
                  for k in range(len(windows))]
        chosen = [_best(t, metric) for t in tables]
        oos_calls = [(k, k, points[c]) for k, c in enumerate(chosen) if c is not None]
        oos_rows = dict(
            run_points(run_oos, strategy_cls, oos_calls, test_data, config, client=client,
                       max_in_flight=max_in_flight, points_per_task=1)
        )
    for _ in oos_calls:
        report.advance()
    report.close()
    in_sample = pl.concat(
        [t.with_columns(pl.lit(k, dtype=pl.Int64).alias("fold")) for k, t in enumerate(tables)]
    ).select("fold", pl.exclude("fold"))
    result = _assemble(
        spec, windows, data, tables, chosen, oos_rows, in_sample, metric, config
    )
    if record is not None:
        from zcbench.backtest._research import build_record, write_record

        write_record(
            record,
            build_record(
                kind="walkforward", strategy_cls=strategy_cls, grid=grid, base_params=base,
                config=config, events=data.events, table=in_sample, metric=metric,
                extra={"folds": {"train": train, "test": test, "mode": mode,
                                 "n_folds": len(windows)}},
            ),
        )
    return result


class _NoClose:
    """A reporter whose close is left to the caller (two phases share one bar)."""

    def __init__(self, inner: Reporter) -> None:
        self._inner = inner

    def advance(self, n: int = 1) -> None:
        self._inner.advance(n)

    def close(self) -> None:
        pass


def _assemble(
    spec: Grid,
    windows: list[tuple[int, int, int, int]],
    data: PreparedData,
    tables: list[pl.DataFrame],
    chosen: list[int | None],
    oos_rows: dict[int, dict[str, Any]],
    in_sample: pl.DataFrame,
    metric: str,
    config: BacktestConfig,
) -> WalkForwardResult:
    from zcbench.backtest._research import _json_value

    ts = data.events.get_column("ts")
    ends = data.ends
    fold_rows = []
    curve_ts: list[int] = []
    curve_fold: list[int] = []
    curve_own: list[float] = []
    curve_stitched: list[float] = []
    carry: float | None = None
    initial = float(config.initial_cash)
    for k, (a, b, c, d) in enumerate(windows):
        best = chosen[k]
        row: dict[str, Any] = {
            "fold": k,
            "train_start": a,
            "train_end": b,
            "test_start": c,
            "test_end": d,
            "train_start_ts": int(ts[int(ends[a - 1]) if a else 0]),
            "test_start_ts": int(ts[int(ends[c - 1])]),
            "test_end_ts": int(ts[int(ends[d - 1]) - 1]),
            "params": None,
            f"is_{metric}": None,
            "oos_initial_ccy": initial,
        }
        oos: dict[str, Any] = {}
        if best is not None:
            picked = tables[k].row(best, named=True)
            row["params"] = json.dumps({n: _json_value(picked[n]) for n in spec.names})
            row[f"is_{metric}"] = picked[metric]
            oos = oos_rows.get(k, {})
        for name in (*METRIC_NAMES, "signals_digest", "error"):
            row[f"oos_{name}"] = oos.get(name)
        if best is None:
            row["oos_error"] = "no in-sample point ran"
        fold_rows.append(row)
        if oos.get("equity"):
            scale = float(oos["money_scale"])
            own = [e / scale for e in oos["equity"]]
            start = initial if carry is None else carry
            factor = start / initial
            curve_ts += oos["ts"]
            curve_fold += [k] * len(own)
            curve_own += own
            curve_stitched += [e * factor for e in own]
            carry = curve_stitched[-1]
    schema: dict[str, Any] = {
        "fold": pl.Int64, "train_start": pl.Int64, "train_end": pl.Int64,
        "test_start": pl.Int64, "test_end": pl.Int64, "train_start_ts": pl.Int64,
        "test_start_ts": pl.Int64, "test_end_ts": pl.Int64, "params": pl.String,
        f"is_{metric}": TRIAL_SCHEMA[metric], "oos_initial_ccy": pl.Float64,
        **{f"oos_{n}": t for n, t in TRIAL_SCHEMA.items()},
    }
    folds = pl.DataFrame(fold_rows, schema=schema, orient="row")
    oos_equity = pl.DataFrame(
        {"fold": curve_fold, "ts": curve_ts, "equity_ccy": curve_own,
         "stitched_ccy": curve_stitched},
        schema={"fold": pl.Int64, "ts": pl.Int64, "equity_ccy": pl.Float64,
                "stitched_ccy": pl.Float64},
    )
    return WalkForwardResult(folds=folds, in_sample=in_sample, oos_equity=oos_equity,
                             metric=metric)
