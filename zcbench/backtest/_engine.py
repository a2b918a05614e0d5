"""Event-driven replay of batches through a Strategy, on the enclave's own code path.

Every batch goes ``encode_batch -> decode_batch -> apply_strategy`` and every batch's signals go
``encode_signals -> decode_signals``, exactly as they cross the enclave boundary in a live run, so
a strategy cannot see anything different in a backtest than it will see live. The canonical
signals digest is SHA-256 over, for each batch in order, its ``seq`` and the length of its
encoded signals (8-byte big-endian each) and those encoded signals: two runs agree on it exactly
when they produced the same signals on the same batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from zcbench.backtest._accounting import FillModel, book
from zcbench.backtest._metrics import compute_metrics
from zcbench.errors import EnvError, UsageError
from zcbench.marketdata import BatchSpec, batch_bounds, normalise_events, validate_events
from zcbench.strategy import (
    Batch,
    Signal,
    Strategy,
    StrategyError,
    apply_strategy,
    decode_batch,
    decode_signals,
    encode_batch,
    encode_signals,
    price_to_ticks,
    select_fields,
)

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "PreparedData",
    "prepare",
    "replay",
    "run_backtest",
    "run_prepared",
]

_SIGNAL_SCHEMA = {
    "seq": pl.Int64,
    "idx": pl.Int64,
    "symbol": pl.String,
    "side": pl.String,
    "quantity": pl.Int64,
    "limit_price": pl.Int64,
    "hints": pl.String,
    "end_row": pl.Int64,
}


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """Batching, fills and capital for one backtest.

    Exactly one of ``width_ns`` and ``count`` sets the batching (event time, see
    :mod:`zcbench.marketdata`); ``initial_cash`` is in currency units; ``periods_per_year``
    scales the Sharpe ratio (None: measured from the batches).
    """

    width_ns: int | None = None
    count: int | None = None
    slippage_ticks: int = 0
    fee_bps: float = 0.0
    initial_cash: float = 1_000_000.0
    periods_per_year: float | None = None

    def __post_init__(self) -> None:
        BatchSpec(width_ns=self.width_ns, count=self.count)
        FillModel(slippage_ticks=self.slippage_ticks, fee_bps=self.fee_bps)
        if not self.initial_cash > 0:
            raise UsageError(f"initial_cash must be positive, got {self.initial_cash!r}")

    @property
    def spec(self) -> BatchSpec:
        return BatchSpec(width_ns=self.width_ns, count=self.count)

    @property
    def fills(self) -> FillModel:
        return FillModel(slippage_ticks=self.slippage_ticks, fee_bps=self.fee_bps)


@dataclass(frozen=True, slots=True)
class PreparedData:
    """Events cut into batches and encoded once; reused by every run of a sweep."""

    events: pl.DataFrame
    fields: tuple[str, ...]
    spec: BatchSpec
    bounds: tuple[tuple[int, int], ...]
    wires: tuple[bytes, ...]


def prepare(events: pl.DataFrame, fields: Sequence[str], spec: BatchSpec) -> PreparedData:
    """Validate ``events``, cut them into batches of ``fields`` and encode each for the wire."""
    full = validate_events(normalise_events(events))
    bounds = batch_bounds(full.get_column("ts"), spec)
    if not bounds:
        raise UsageError("backtest: no events to replay")
    selected = select_fields(full, fields)
    wires = tuple(
        encode_batch(Batch(seq=i, events=selected.slice(s, e - s)))
        for i, (s, e) in enumerate(bounds)
    )
    return PreparedData(full, tuple(fields), spec, tuple(bounds), wires)


def replay(strategy: Strategy, data: PreparedData) -> tuple[list[list[Signal]], str]:
    """Each batch's signals, as they come out of the boundary, and the signals digest."""
    digest = hashlib.sha256()
    out: list[list[Signal]] = []
    for seq, wire in enumerate(data.wires):
        batch = decode_batch(wire)
        try:
            signals = apply_strategy(strategy, batch)
        except StrategyError as exc:
            start, end = data.bounds[seq]
            ts = data.events.get_column("ts")
            raise StrategyError(
                f"{exc}: batch {seq} holds {end - start} events from ts {ts[start]} to "
                f"{ts[end - 1]} (rows {start + 1}..{end}); the backtest stopped there",
                seq=exc.seq,
            ) from exc.__cause__
        blob = encode_signals(signals)
        digest.update(seq.to_bytes(8, "big") + len(blob).to_bytes(8, "big") + blob)
        out.append(decode_signals(blob) if signals else [])
    return out, digest.hexdigest()


def _signal_frame(per_batch: list[list[Signal]], bounds: Sequence[tuple[int, int]]) -> pl.DataFrame:
    rows = [
        {
            "seq": seq,
            "idx": idx,
            "symbol": s.symbol,
            "side": s.side,
            "quantity": s.quantity,
            "limit_price": s.limit_price,
            "hints": json.dumps([list(h) for h in s.hints]),
            "end_row": bounds[seq][1],
        }
        for seq, signals in enumerate(per_batch)
        for idx, s in enumerate(signals)
    ]
    return pl.DataFrame(rows, schema=_SIGNAL_SCHEMA)


@dataclass(frozen=True)
class BacktestResult:
    """Everything one backtest produced; money columns are integer ticks unless named ``_ccy``.

    - ``signals``: one row per signal (``seq`` of its batch, ``idx`` within the batch);
    - ``fills``: one row per signal turned order, with ``status`` and the fill if any;
    - ``positions``: position, average cost and realised PnL after each fill;
    - ``equity``: cash, position value and equity after each batch;
    - ``metrics``: one row, the columns of ``zcbench.backtest.METRIC_NAMES``.
    """

    strategy: str
    params: dict[str, Any]
    config: BacktestConfig
    n_events: int
    signals_digest: str
    signals: pl.DataFrame
    fills: pl.DataFrame
    positions: pl.DataFrame
    equity: pl.DataFrame
    metrics: pl.DataFrame

    def metrics_dict(self) -> dict[str, float | int]:
        """The metrics row as a plain map."""
        row: dict[str, float | int] = self.metrics.row(0, named=True)
        return row

    def summary(self) -> dict[str, Any]:
        """A JSON-able summary: strategy, parameters, batching, digest and metrics."""
        return {
            "strategy": self.strategy,
            "params": self.params,
            "config": dataclasses.asdict(self.config),
            "n_events": self.n_events,
            "signals_digest": self.signals_digest,
            "metrics": self.metrics_dict(),
        }

    def write(self, out_dir: str | Path) -> Path:
        """Write ``summary.json`` and one parquet file per table into ``out_dir``."""
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name in ("signals", "fills", "positions", "equity", "metrics"):
                frame: pl.DataFrame = getattr(self, name)
                frame.write_parquet(out / f"{name}.parquet", statistics=False)
            text = json.dumps(self.summary(), indent=2, sort_keys=True)
            (out / "summary.json").write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise EnvError(f"cannot write the backtest result to {out}: {exc}") from None
        return out


def run_prepared(strategy: Strategy, data: PreparedData, config: BacktestConfig) -> BacktestResult:
    """Replay prepared batches through ``strategy`` and account for its signals."""
    per_batch, digest = replay(strategy, data)
    signals = _signal_frame(per_batch, data.bounds)
    initial = price_to_ticks(config.initial_cash)
    ends = [e for _, e in data.bounds]
    ledger = book(data.events, signals, ends, config.fills, initial)
    filled = ledger.fills.filter(pl.col("status") == "filled").height
    metrics = compute_metrics(
        equity=ledger.equity.get_column("equity").to_numpy(),
        end_ts=ledger.equity.get_column("ts").to_numpy(),
        initial=initial,
        traded_notional=ledger.traded_notional,
        fees=ledger.fees,
        closing_pnls=ledger.closing_pnls,
        n_signals=signals.height,
        n_fills=filled,
        periods_per_year=config.periods_per_year,
    )
    return BacktestResult(
        strategy=strategy.name,
        params=dataclasses.asdict(strategy.params),
        config=config,
        n_events=data.events.height,
        signals_digest=digest,
        signals=signals.drop("end_row"),
        fills=ledger.fills,
        positions=ledger.positions,
        equity=ledger.equity,
        metrics=pl.DataFrame([metrics]),
    )


def run_backtest(
    strategy: Strategy, events: pl.DataFrame, config: BacktestConfig
) -> BacktestResult:
    """Backtest ``strategy`` on ``events`` (any frame in the event schema, sorted by ``ts``)."""
    data = prepare(events, strategy.fields(), config.spec)
    return run_prepared(strategy, data, config)
