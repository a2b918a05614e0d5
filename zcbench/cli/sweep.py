"""``zcbench sweep`` and ``zcbench walkforward``: a parameter grid on Dask, or serially.

Both run an example strategy over ``--param NAME=V1,V2,...`` (repeatable: the grid is their
product) on a data file, the committed sample or seeded synthetic ticks; on a local Dask
cluster by default, an existing one with ``--scheduler tcp://HOST:PORT``, or in this process
with ``--serial`` (the same table, byte for byte). Each writes its research record
(``--record FILE``, default ``research.json``): the trials ``zcbench package --research``
commits behind the packaged parameters.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from zcbench.cli.backtest import _DEFAULT_TICK_WIDTH_MS, add_capital_options, tick_scale_note

__all__ = ["register"]

_MAX_POINTS: Final = 100_000  # a research record of this many trials is about 40 MiB
_SHOWN: Final = 10


def _common(p: Any) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH", help="event or daily OHLCV file (.csv, .parquet)")
    src.add_argument("--synthetic", action="store_true", help="seeded synthetic ticks")
    p.add_argument("--symbol", help="symbol for an OHLCV file (default: from its name)")
    p.add_argument("--seed", type=int, default=7, help="synthetic: seed (default 7)")
    p.add_argument("--rate", type=float, help="synthetic: events/s (default 20000)")
    p.add_argument("--duration", type=float, help="synthetic: seconds (default 10)")
    p.add_argument(
        "--strategy",
        help="example strategy name (default: ma_crossover for bars, order_flow_imbalance "
        "for ticks)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a grid dimension: the values of one strategy parameter (each read as JSON, "
        "else text); repeatable, the grid is the product",
    )
    batching = p.add_mutually_exclusive_group()
    batching.add_argument("--count", type=int, help="batch every N events (default 1 for bars)")
    batching.add_argument(
        "--width-ms",
        type=float,
        help=f"event-time bucket width (default {_DEFAULT_TICK_WIDTH_MS} ms for ticks)",
    )
    p.add_argument("--slippage-ticks", type=int, default=0, help="ticks against each fill (0)")
    p.add_argument("--fee-bps", type=float, default=0.0, help="fee in basis points (0)")
    p.add_argument("--initial-cash", type=float, default=1_000_000.0, help="(1000000)")
    add_capital_options(p)
    p.add_argument("--periods-per-year", type=float, help="annualisation (default: measured)")
    p.add_argument("--metric", default="sharpe", help="the metric to rank by (default sharpe)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--serial", action="store_true", help="run in this process, no Dask")
    where.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="an existing Dask scheduler (default: a local cluster of --workers processes)",
    )
    p.add_argument("--workers", type=int, default=2, help="local cluster: worker processes (2)")
    p.add_argument(
        "--record",
        default="research.json",
        help="write the research record here (default ./research.json)",
    )
    p.add_argument("--table", help="also write the full result table (.parquet)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def register(sub: Any) -> None:
    """Add the ``sweep`` and ``walkforward`` subcommands."""
    p = sub.add_parser(
        "sweep",
        help="backtest every point of a parameter grid, on Dask or serially",
        description=(
            "Backtest an example strategy at every point of the grid given by --param, on a "
            "local Dask cluster (default), an existing one (--scheduler) or in this process "
            "(--serial), and write the research record of every trial."
        ),
    )
    _common(p)
    p.set_defaults(handler=_sweep, check_values=_check)
    w = sub.add_parser(
        "walkforward",
        help="optimise in sample and evaluate out of sample, fold after fold",
        description=(
            "Walk-forward: in each fold sweep the grid on --train batches, take the best point "
            "by --metric, and backtest it on the next --test batches; prints the fold table "
            "and the stitched out-of-sample return."
        ),
    )
    _common(w)
    w.add_argument("--train", type=int, required=True, help="training batches per fold")
    w.add_argument("--test", type=int, required=True, help="test batches per fold")
    w.add_argument(
        "--mode",
        choices=("rolling", "expanding"),
        default="rolling",
        help="the training window moves (rolling, default) or grows (expanding)",
    )
    w.add_argument("--folds-out", metavar="OUT", help="write the fold table (.parquet)")
    w.set_defaults(handler=_walkforward, check_values=_check)


def _values(text: str) -> tuple[str, list[Any]]:
    from zcbench.errors import UsageError

    name, sep, raw = text.partition("=")
    if not sep or not name or not raw:
        raise UsageError(f"--param {text} is not NAME=V1,V2,...")
    out: list[Any] = []
    for item in raw.split(","):
        if not item:
            raise UsageError(f"--param {text} has an empty value")
        try:
            out.append(json.loads(item))
        except json.JSONDecodeError:
            out.append(item)
    return name, out


def _grid(args: argparse.Namespace) -> dict[str, list[Any]]:
    from zcbench.errors import UsageError

    grid: dict[str, list[Any]] = {}
    for text in args.param:
        name, values = _values(text)
        if name in grid:
            raise UsageError(f"--param {name} given twice; list all its values in one")
        grid[name] = values
    return grid


def _check(args: argparse.Namespace) -> None:
    from zcbench.backtest import METRIC_NAMES, parse_address
    from zcbench.errors import UsageError

    if not args.param:
        raise UsageError("give the grid: at least one --param NAME=V1,V2,...")
    grid = _grid(args)
    points = 1
    for values in grid.values():
        points *= len(values)
    if points > _MAX_POINTS:
        raise UsageError(f"--param gives a grid of {points:,} points, more than {_MAX_POINTS:,}")
    if args.metric not in METRIC_NAMES:
        raise UsageError(f"--metric {args.metric} is unknown; one of {', '.join(METRIC_NAMES)}")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.scheduler is not None:
        parse_address(args.scheduler)
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.width_ms is not None and not args.width_ms > 0:
        raise UsageError("--width-ms must be positive")
    for flag in ("train", "test"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be at least 1 batch")


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any, dict[str, Any]]:
    """The strategy class, the events, the backtest config and a description of the data."""
    from zcbench.cli.backtest import backtest_inputs
    from zcbench.examples import EXAMPLES

    name, events, config, source = backtest_inputs(args)
    return EXAMPLES[name], events, config, source


def _where(args: argparse.Namespace) -> dict[str, Any]:
    if args.serial:
        return {"serial": True}
    if args.scheduler:
        return {"scheduler": args.scheduler}
    from zcbench.backtest import dask_client

    return {"scheduler": None, "_local": dask_client(None, n_workers=args.workers)}


def _run(args: argparse.Namespace, fn: Any, **extra: Any) -> Any:
    where = _where(args)
    local = where.pop("_local", None)
    quiet = False if args.json else None
    if local is None:
        return fn(show_progress=quiet, record=args.record, **where, **extra)
    with local as client:
        return fn(show_progress=quiet, record=args.record, scheduler=client, **extra)


def _failed(table: Any, names: list[str]) -> list[dict[str, Any]]:
    import polars as pl

    rows = table.filter(pl.col("error").is_not_null()).select(*names, "error")
    return [
        {"params": {n: r[n] for n in names}, "error": r["error"]}
        for r in rows.iter_rows(named=True)
    ]


def _record_facts(path: str) -> dict[str, Any]:
    from zcbench.backtest import load_research_record

    rec = load_research_record(path)
    return {"record": path, "digest": rec.digest, "n_trials": rec.n_trials}


def _ranked(table: Any, metric: str) -> Any:
    import polars as pl

    return table.filter(pl.col("error").is_null() & pl.col(metric).is_not_null()).sort(
        metric, descending=True, maintain_order=True
    )


def _sweep(args: argparse.Namespace) -> int:
    from zcbench.backtest import sweep

    strategy_cls, events, config, source = _setup(args)
    grid = _grid(args)
    names = list(grid)
    table = _run(
        args,
        lambda **kw: sweep(strategy_cls, grid, events, config, **kw),
    )
    if args.table:
        _write_parquet(table, args.table)
    facts = {**_record_facts(args.record), "strategy": strategy_cls.name, "data": source}
    failed = _failed(table, names)
    ranked = _ranked(table, args.metric)
    if args.json:
        out = {
            **facts,
            "grid": grid,
            "metric": args.metric,
            "n_failed": len(failed),
            "failed": failed,
            "rows": table.to_dicts(),
        }
        sys.stdout.write(json.dumps(out, sort_keys=True, default=str) + "\n")
        return 0
    lines = [
        f"strategy   {strategy_cls.name}, {facts['n_trials']} points "
        f"({len(failed)} failed), ranked by {args.metric}"
    ]
    shown = ranked.select(*names, args.metric, "total_return", "max_drawdown", "n_fills")
    lines.append(_format(shown.head(_SHOWN)))
    for item in failed[:_SHOWN]:
        lines.append(f"failed     {json.dumps(item['params'], sort_keys=True)}: {item['error']}")
    lines += _note(table)
    lines.append(f"record     {facts['record']} (digest {facts['digest']})")
    lines.append(
        f"next       zcbench package NOTEBOOK -o build --research {facts['record']}   "
        "(commits the trial count behind the packaged parameters)"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _walkforward(args: argparse.Namespace) -> int:
    from zcbench.backtest import walk_forward

    strategy_cls, events, config, source = _setup(args)
    grid = _grid(args)
    result = _run(
        args,
        lambda **kw: walk_forward(
            strategy_cls, grid, events, config, train=args.train, test=args.test,
            mode=args.mode, metric=args.metric, **kw,
        ),
    )
    if args.table:
        _write_parquet(result.in_sample, args.table)
    if args.folds_out:
        _write_parquet(result.folds, args.folds_out)
    facts = {**_record_facts(args.record), "strategy": strategy_cls.name, "data": source}
    folds = result.folds.select(
        "fold", "train_start", "train_end", "test_start", "test_end", "params",
        f"is_{args.metric}", f"oos_{args.metric}", "oos_total_return", "oos_error",
    )
    if args.json:
        out = {
            **facts,
            "grid": grid,
            "metric": args.metric,
            "mode": args.mode,
            "folds": [{**row, "params": None if row["params"] is None
                       else json.loads(row["params"])} for row in folds.to_dicts()],
            "oos_total_return": result.oos_total_return(),
        }
        sys.stdout.write(json.dumps(out, sort_keys=True, default=str) + "\n")
        return 0
    lines = [
        f"strategy   {strategy_cls.name}, {result.folds.height} folds ({args.mode}, train "
        f"{args.train}, test {args.test} batches), {facts['n_trials']} in-sample trials",
        _format(folds.with_columns(_point_text("params"))),
        f"out of sample, stitched: total return {result.oos_total_return():+.4%}",
        *_note(result.in_sample),
        f"record     {facts['record']} (digest {facts['digest']})",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _note(table: Any) -> list[str]:
    """The tick-scale note for a table of trials on the same data (none for daily bars)."""
    import polars as pl

    ran = table.filter(pl.col("periods_per_year").is_not_null())
    if ran.height == 0:
        return []
    row = ran.row(0, named=True)
    note = tick_scale_note(row["periods_per_year"], row["years"])
    return [] if note is None else [f"note       {note}"]


def _point_text(column: str) -> Any:
    """A grid point (a JSON object) as the ``--param`` flags name it: ``window=4 enter_pct=15``."""
    import polars as pl

    def text(raw: str) -> str:
        return " ".join(f"{k}={json.dumps(v)}" for k, v in json.loads(raw).items())

    return pl.col(column).map_elements(text, return_dtype=pl.String, skip_nulls=True)


def _format(frame: Any) -> str:
    import polars as pl

    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, fmt_str_lengths=60):
        return str(frame)


def _write_parquet(frame: Any, path: str) -> None:
    from zcbench.errors import EnvError, describe_os_error

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, statistics=False)
    except OSError as exc:
        raise EnvError(describe_os_error(exc, writing=True)) from None
