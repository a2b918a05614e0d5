"""Parameter sweeps: one backtest per point of a grid, batches encoded once for all.

A sweep runs serially in this process or on a Dask cluster (:mod:`zcbench.backtest._dask`);
both call the same :func:`run_trial` on the same prepared data and build the table with the
same :func:`trial_table`, so the two give byte-identical tables (the tests compare their Arrow
IPC bytes). The table has one row per grid point in the order of ``itertools.product`` over the
grid as given: the point's parameters, every metric, the signals digest and ``error``.

A point that fails (its parameters refused by the strategy's parameters type, the strategy
raising, a worker lost more often than the scheduler allows) is a row whose ``error`` names
what happened and whose metrics are null: the sweep goes on. A grid naming a parameter the
strategy does not have is refused before anything runs (:class:`UsageError`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from zcbench.backtest._dask import dask_client, run_on_dask
from zcbench.backtest._engine import BacktestConfig, PreparedData, prepare
from zcbench.backtest._trial import (
    TRIAL_SCHEMA,
    Call,
    Trial,
    run_serial,
    run_trial,
)
from zcbench.errors import UsageError
from zcbench.progress import Reporter, reporter
from zcbench.strategy import Strategy

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["Grid", "sweep", "trial_table"]

_SCALARS: Final = (int, float, str, bool)


@dataclass(frozen=True, slots=True)
class Grid:
    """A parameter grid: names in order, and each name's values in order."""

    names: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    @classmethod
    def of(cls, grid: Mapping[str, Sequence[Any]]) -> Grid:
        """The grid ``{name: values}``; at least one value per name, no value twice."""
        if not grid or any(len(values) == 0 for values in grid.values()):
            raise UsageError("sweep: the grid needs at least one value for each parameter")
        for name, values in grid.items():
            if len({repr(v) for v in values}) != len(values):
                raise UsageError(f"sweep: the grid gives a value of {name!r} twice")
        return cls(tuple(grid), tuple(tuple(grid[n]) for n in grid))

    @property
    def size(self) -> int:
        n = 1
        for values in self.values:
            n *= len(values)
        return n

    def points(self) -> Iterator[dict[str, Any]]:
        """Each point as ``{name: value}``, in ``itertools.product`` order (lazily)."""
        for combo in itertools.product(*self.values):
            yield dict(zip(self.names, combo, strict=True))

    def check(self, strategy_cls: type[Strategy]) -> None:
        """Refuse names the strategy's parameters type does not have."""
        known = {f.name for f in dataclasses.fields(strategy_cls.params_type)}
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise UsageError(
                f"sweep: {strategy_cls.__name__} has no parameter {', '.join(map(repr, unknown))};"
                f" known: {', '.join(sorted(known))}"
            )

    def scalar(self, name: str) -> bool:
        """Whether every value of ``name`` is a plain scalar (others appear as their repr)."""
        return all(type(v) in _SCALARS for v in self.values[self.names.index(name)])

    def to_json(self) -> dict[str, list[Any]]:
        """The grid as JSON values (non-scalar values as their repr)."""
        return {
            n: list(vs) if self.scalar(n) else [repr(v) for v in vs]
            for n, vs in zip(self.names, self.values, strict=True)
        }

    def frame(self) -> pl.DataFrame:
        """The points' parameter columns, one row per point."""
        columns: dict[str, list[Any]] = {n: [] for n in self.names}
        for point in self.points():
            for n, v in point.items():
                columns[n].append(v if self.scalar(n) else repr(v))
        return pl.DataFrame(columns, strict=False)  # mixed values: 5,7.5 or 5,x


def trial_table(grid: Grid, rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The sweep table: the grid's parameter columns beside the trials' rows, in grid order."""
    trials = pl.DataFrame(list(rows), schema=TRIAL_SCHEMA, orient="row")
    return pl.concat([grid.frame(), trials], how="horizontal")


def run_points(
    fn: Trial,
    strategy_cls: type[Strategy],
    calls: Iterable[Call],
    datas: Sequence[PreparedData],
    config: BacktestConfig,
    *,
    client: Client | None,
    max_in_flight: int | None = None,
    n_points: int | None = None,
    points_per_task: int | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Serially (``client`` None) or on the cluster of ``client``: the same rows."""
    if client is None:
        return run_serial(fn, strategy_cls, calls, datas, config)
    return run_on_dask(
        client, fn, strategy_cls, calls, datas, config, max_in_flight=max_in_flight,
        n_points=n_points, chunk=points_per_task,
    )


@contextlib.contextmanager
def cluster_for(serial: bool, scheduler: str | Client | None) -> Iterator[Client | None]:
    """None for a serial run, else a connected client (see ``sweep``)."""
    if serial and scheduler is not None:
        raise UsageError("sweep: give serial=True or a scheduler, not both")
    if serial:
        yield None
        return
    with dask_client(scheduler) as client:
        yield client


def collect(
    results: Iterable[tuple[int, dict[str, Any]]], n: int, report: Reporter
) -> list[dict[str, Any]]:
    """Rows in index order from results in any order, advancing ``report`` as they come."""
    rows: list[dict[str, Any] | None] = [None] * n
    try:
        for index, row in results:
            rows[index] = row
            report.advance()
    finally:
        report.close()
    missing = [i for i, r in enumerate(rows) if r is None]
    if missing:  # a bug, not a data problem: every call yields exactly once
        raise RuntimeError(f"sweep: no result for points {missing[:5]}")
    return [r for r in rows if r is not None]


def sweep(
    strategy_cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    events: pl.DataFrame,
    config: BacktestConfig,
    *,
    base_params: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
    serial: bool = False,
    scheduler: str | Client | None = None,
    max_in_flight: int | None = None,
    points_per_task: int | None = None,
    progress: Reporter | None = None,
    record: str | Path | None = None,
) -> pl.DataFrame:
    """One row per grid point: its parameters, every metric, the signals digest and ``error``.

    It runs on Dask: ``scheduler`` is a ``tcp://HOST:PORT`` address or a
    ``distributed.Client`` of an existing cluster, or None (the default) for a local cluster of
    two worker processes started here and stopped after; ``serial=True`` runs in this process.
    The data is prepared once and scattered once; a task runs ``points_per_task`` consecutive
    points (default: enough for about eight tasks per worker thread, at most 32), and at most
    ``max_in_flight`` tasks are on the cluster at a time (default: four per worker thread).
    ``progress`` replaces the default reporter (a bar on a terminal, lines otherwise;
    ``show_progress=False``: none).
    ``record``: write the research record of the sweep there
    (:mod:`zcbench.backtest._research`: the grid, the data's hash, every trial, the digest).
    """
    spec = Grid.of(grid)
    spec.check(strategy_cls)
    data = prepare(events, strategy_cls.fields(), config.spec)
    base = dict(base_params or {})
    calls = ((i, 0, {**base, **point}) for i, point in enumerate(spec.points()))
    report = progress or reporter(
        "sweep", total=spec.size, unit="points", enabled=show_progress
    )
    with cluster_for(serial, scheduler) as client:
        results = run_points(
            run_trial, strategy_cls, calls, [data], config, client=client,
            max_in_flight=max_in_flight, n_points=spec.size, points_per_task=points_per_task,
        )
        table = trial_table(spec, collect(results, spec.size, report))
    if record is not None:
        from zcbench.backtest._research import build_record, write_record

        write_record(
            record,
            build_record(
                kind="sweep", strategy_cls=strategy_cls, grid=grid, base_params=base,
                config=config, events=data.events, table=table,
            ),
        )
    return table
