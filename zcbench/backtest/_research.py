"""The research record: every trial a sweep or a walk-forward ran, on the record.

An LP can discount a backtest for multiple testing only when the number of trials behind the
chosen parameters is known. Every sweep can write one record (``research.json``)::

    {"schema": "zcbench.research/1", "kind": "sweep" | "walkforward",
     "strategy": name, "strategy_class": "module.Class",
     "grid": {name: [values]}, "base_params": {...}, "config": {...},
     "data_sha256": hex, "n_events": int, "metric": "sharpe",
     "n_trials": int, "n_failed": int,
     "distribution": {"count", "mean", "std", "min", "p25", "median", "p75", "max"},
     "trials": [{"params": {...}, "sharpe": float|null, "sharpe_per_period": float|null,
                 "n_obs": int|null, "skewness": ..., "kurtosis": ..., "signals_digest": ...,
                 "error": str|null}, ...],
     "table_sha256": hex, "digest": hex}

``data_sha256`` is SHA-256 over the event frame written as CSV (every column, in order: the
events are integers and text, so the text is exact); ``table_sha256`` is over the result table
as uncompressed Arrow IPC; ``digest`` is SHA-256 over the record's canonical JSON without
``digest`` (sorted keys, no spaces, ASCII). The file is that JSON with two-space indent and a
final newline, written as every command's output (``zcbench.durable.write_output``): the same
sweep writes the same bytes. :func:`load_record` reads a record strictly (bounded, no duplicate
keys, schema, required fields, the digest recomputed) and raises :class:`DataError` naming the
file.

:func:`research_summary` is what ``zcbench package --research FILE`` commits: the records'
digests, the trial count behind the packaged parameters, and the deflated Sharpe ratio of the
packaged point (:func:`zcbench.backtest._metrics.deflated_sharpe_ratio`) over every trial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from zcbench.backtest._engine import BacktestConfig
from zcbench.backtest._metrics import deflated_sharpe_ratio
from zcbench.durable import write_output
from zcbench.errors import DataError, EnvError, UsageError, describe_os_error
from zcbench.nitro.commitment import read_bounded, read_json_object
from zcbench.strategy import Strategy

__all__ = [
    "RESEARCH_SCHEMA",
    "ResearchRecord",
    "build_record",
    "data_sha256",
    "load_record",
    "research_summary",
    "table_sha256",
    "write_record",
]

RESEARCH_SCHEMA: Final = "zcbench.research/1"
KINDS: Final = ("sweep", "walkforward")
_MAX_BYTES: Final = 256 << 20  # 100,000 trials take about 40 MiB
_CSV_ROWS: Final = 65_536
_SHA256_HEX: Final = frozenset("0123456789abcdef")
_REQUIRED: Final = (
    "schema", "kind", "strategy", "grid", "data_sha256", "metric", "n_trials", "n_failed",
    "distribution", "trials", "table_sha256", "digest",
)


def data_sha256(events: pl.DataFrame) -> str:
    """SHA-256 of ``events`` as CSV (the module docstring), hashed a slice at a time so a large
    frame is never one string."""
    digest = hashlib.sha256()
    for start in range(0, max(events.height, 1), _CSV_ROWS):
        part = events.slice(start, _CSV_ROWS)
        digest.update(part.write_csv(include_header=start == 0).encode())
    return digest.hexdigest()


def table_sha256(table: pl.DataFrame) -> str:
    """SHA-256 of ``table`` as uncompressed Arrow IPC."""
    buf = io.BytesIO()
    table.write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, **dict.fromkeys(("mean", "std", "min", "p25", "median", "p75", "max"))}
    arr = np.array(values, dtype=np.float64)
    q = np.quantile(arr, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "count": int(arr.size),
        "mean": float(np.mean(arr)),
        "std": float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0,
        "min": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "max": float(q[4]),
    }


def _config_json(config: BacktestConfig) -> dict[str, Any]:
    out = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    instruments = out.pop("instruments")
    out["instruments"] = None if instruments is None else str(instruments.source)
    return out


def _json_value(value: Any) -> Any:
    return value if type(value) in (int, float, str, bool) or value is None else repr(value)


def build_record(
    *,
    kind: str,
    strategy_cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    base_params: Mapping[str, Any] | None,
    config: BacktestConfig,
    events: pl.DataFrame,
    table: pl.DataFrame,
    metric: str = "sharpe",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of ``table`` (one row per trial, the sweep's columns) as a JSON object with
    its digest."""
    if kind not in KINDS:
        raise UsageError(f"research record: kind must be one of {', '.join(KINDS)}")
    if metric not in table.columns:
        raise UsageError(f"research record: the table has no metric {metric!r}")
    names = list(grid)
    trials = []
    values: list[float] = []
    for row in table.iter_rows(named=True):
        ppy = row.get("periods_per_year")
        sharpe = _finite(row.get("sharpe"))
        per_period = (
            sharpe / math.sqrt(ppy) if sharpe is not None and ppy else None
        )
        value = _finite(row.get(metric))
        if row.get("error") is None and value is not None:
            values.append(value)
        trials.append(
            {
                "params": {n: _json_value(row[n]) for n in names},
                **({"fold": row["fold"]} if "fold" in row else {}),
                metric: value,
                "sharpe": sharpe,
                "sharpe_per_period": per_period,
                "n_obs": row.get("n_batches"),
                "skewness": _finite(row.get("skewness")),
                "kurtosis": _finite(row.get("kurtosis")),
                "signals_digest": row.get("signals_digest"),
                "error": row.get("error"),
            }
        )
    doc: dict[str, Any] = {
        "schema": RESEARCH_SCHEMA,
        "kind": kind,
        "strategy": strategy_cls.name,
        "strategy_class": f"{strategy_cls.__module__}.{strategy_cls.__qualname__}",
        "grid": {n: [_json_value(v) for v in grid[n]] for n in names},
        "base_params": {k: _json_value(v) for k, v in (base_params or {}).items()},
        "config": _config_json(config),
        "data_sha256": data_sha256(events),
        "n_events": events.height,
        "metric": metric,
        "n_trials": table.height,
        "n_failed": int(table.get_column("error").is_not_null().sum()),
        "distribution": _distribution(values),
        "trials": trials,
        "table_sha256": table_sha256(table),
        **(dict(extra) if extra else {}),
    }
    doc["digest"] = hashlib.sha256(_canonical(doc)).hexdigest()
    return doc


def write_record(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Write ``record`` to ``path`` as every command's output is written
    (:func:`zcbench.durable.write_output`: a regular file replaced atomically and durably)."""
    target = Path(path)
    body = (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
            + "\n").encode()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_output(target, body)
    except OSError as exc:
        raise EnvError(
            f"the research record: {describe_os_error(exc, writing=True)}"
        ) from None
    return target


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA256_HEX


@dataclass(frozen=True, slots=True)
class ResearchRecord:
    """A research record as read and checked by :func:`load_record`."""

    source: str
    doc: Mapping[str, Any]

    @property
    def digest(self) -> str:
        return str(self.doc["digest"])

    @property
    def n_trials(self) -> int:
        return int(self.doc["n_trials"])

    @property
    def strategy(self) -> str:
        return str(self.doc["strategy"])

    @property
    def trials(self) -> list[dict[str, Any]]:
        return list(self.doc["trials"])


def parse_record(raw: str | bytes, *, source: str = "research record") -> ResearchRecord:
    """A record from its bytes, strictly (the module docstring)."""
    doc = read_json_object(raw, source=source, what="research record")
    if doc.get("schema") != RESEARCH_SCHEMA:
        raise DataError(f"{source} has schema {doc.get('schema')!r}; expected {RESEARCH_SCHEMA!r}")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)}")
    if doc["kind"] not in KINDS:
        raise DataError(f"{source}: kind {doc['kind']!r} is not one of {', '.join(KINDS)}")
    for name in ("data_sha256", "table_sha256", "digest"):
        if not _is_sha256(doc[name]):
            raise DataError(f"{source}: {name!r} must be 64 lowercase hex digits")
    n, trials = doc["n_trials"], doc["trials"]
    if type(n) is not int or not isinstance(trials, list) or len(trials) != n or n < 1:
        raise DataError(f"{source}: 'n_trials' must be the number of entries of 'trials' (>= 1)")
    if not all(isinstance(t, dict) and isinstance(t.get("params"), dict) for t in trials):
        raise DataError(f"{source}: every trial must be an object with 'params'")
    if not isinstance(doc["strategy"], str) or not isinstance(doc["grid"], dict):
        raise DataError(f"{source}: 'strategy' must be a string and 'grid' an object")
    body = {k: v for k, v in doc.items() if k != "digest"}
    try:
        computed = hashlib.sha256(_canonical(body)).hexdigest()
    except ValueError as exc:  # NaN or infinity
        raise DataError(f"{source}: {exc}") from None
    if computed != doc["digest"]:
        raise DataError(
            f"{source}: digest {doc['digest']} does not match its content ({computed}); the "
            "record was altered"
        )
    return ResearchRecord(source=source, doc=doc)


def load_record(path: str | os.PathLike[str]) -> ResearchRecord:
    """Read and check the record at ``path`` (missing: UsageError; malformed: DataError)."""
    raw = read_bounded(path, what="research record", limit=_MAX_BYTES)
    return parse_record(raw, source=os.fspath(path))


def _matches(trial: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    return all(
        name in params and _json_value(params[name]) == value
        for name, value in trial["params"].items()
    )


def research_summary(
    records: Sequence[ResearchRecord], *, strategy: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """What a build commits of its research: each record's digest, kind and trials, the total
    number of trials, and the packaged point's Sharpe ratio deflated over all of them.

    Every record must be of ``strategy``, and the packaged ``params`` must be a point one of
    them tried (else :class:`DataError`: the record is not the research behind this build)."""
    if not records:
        raise UsageError("research: give at least one record")
    for rec in records:
        if rec.strategy != strategy:
            raise DataError(
                f"{rec.source} is research on {rec.strategy!r}, not on the packaged {strategy!r}"
            )
    chosen = None
    for rec in records:
        for trial in rec.trials:
            if trial.get("error") is None and _matches(trial, params):
                chosen = trial
                break
        if chosen is not None:
            break
    if chosen is None:
        raise DataError(
            f"the packaged parameters {dict(sorted(params.items()))} are no point of the research "
            f"record(s) {', '.join(r.source for r in records)}; package a point that was tried"
        )
    n_trials = sum(r.n_trials for r in records)
    per_period = [
        float(t["sharpe_per_period"])
        for r in records
        for t in r.trials
        if t.get("error") is None and t.get("sharpe_per_period") is not None
    ]
    variance = float(np.var(per_period, ddof=1)) if len(per_period) > 1 else 0.0
    dsr = None
    sr = chosen.get("sharpe_per_period")
    if sr is not None and chosen.get("n_obs") and chosen.get("kurtosis") is not None:
        dsr = deflated_sharpe_ratio(
            float(sr),
            n_trials=n_trials,
            trials_variance=variance,
            n_obs=int(chosen["n_obs"]),
            skewness=float(chosen.get("skewness") or 0.0),
            kurtosis=float(chosen["kurtosis"]),
        )
    return {
        "n_trials": n_trials,
        "records": [
            {"digest": r.digest, "kind": r.doc["kind"], "n_trials": r.n_trials,
             "data_sha256": r.doc["data_sha256"], "metric": r.doc["metric"]}
            for r in records
        ],
        "selected": {
            "params": dict(chosen["params"]),
            "sharpe": chosen.get("sharpe"),
            "sharpe_per_period": sr,
            "n_obs": chosen.get("n_obs"),
        },
        "trials_sharpe_variance": variance,
        "deflated_sharpe": dsr,
    }
