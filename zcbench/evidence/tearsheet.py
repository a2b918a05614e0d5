"""A verified tear sheet: performance recomputed from what the run signed and acted on, not from
figures the fund typed in (Advisers Act Rule 204-2 wants the records behind any performance shown).

Inputs are the journal's fills whose signal is in the verified signed log (the pack's
``in_signed_log``), and marks from the signed log's IN batches by the execution layer's own
rule (a trade's price, else the quote's mid, else a bar's close). After each batch: its events
update the marks, its fills move cash and positions, and equity is capital + cash + positions at
the marks; so the last equity minus capital is the run's PnL. The figures are the backtest's
(:mod:`zcbench.backtest` metrics, the same formulas, README "Backtest metrics"), so the live and
the backtest sheets over the same logged batches compare like for like.

The deflated Sharpe ratio (Bailey and López de Prado, 2014) discounts the per-batch Sharpe by the
number of research trials behind the committed parameters and the variance of their Sharpe
ratios; with one trial it is the probabilistic Sharpe ratio against zero.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl

from zcbench.errors import UsageError

__all__ = [
    "DEFAULT_CAPITAL_TICKS",
    "TearSheet",
    "deflated_sharpe",
    "marks_by_batch",
    "run_tear_sheet",
    "tear_sheet",
]

DEFAULT_CAPITAL_TICKS: Final = 1_000_000 * 10_000
"""1,000,000 currency units: the capital returns are measured against unless one is given."""
_EULER_GAMMA: Final = 0.5772156649015329


@dataclass(frozen=True, slots=True)
class TearSheet:
    """Figures of one run. Money in ticks; ``sharpe_per_batch`` is not annualised (it is what
    the deflated Sharpe takes); ``deflated_sharpe`` is a probability (None with under 3
    batches); ``trials`` is None when the number of research trials is not known."""

    capital_ticks: int
    pnl_ticks: int
    total_return: float
    volatility: float
    sharpe: float
    sharpe_per_batch: float
    sortino: float
    max_drawdown: float
    max_drawdown_duration_s: float
    exposure: float
    turnover: float
    n_batches: int
    n_fills: int
    periods_per_year: float
    trials: int | None
    deflated_sharpe: float | None
    equity_ticks: tuple[int, ...] = ()
    """Equity after each logged batch (for plots; not a column of the pack's table)."""

    def to_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "equity_ticks"}


def deflated_sharpe(sharpe: float, n_obs: int, *, skew: float = 0.0, kurtosis: float = 3.0,
                    trials: int = 1, trial_sharpe_variance: float = 0.0) -> float:
    """The probability that the true per-period Sharpe exceeds the expected maximum of
    ``trials`` unskilled ones (Bailey and López de Prado 2014, eq. 2 with SR0 of eq. 3)."""
    if n_obs < 2 or trials < 1 or trial_sharpe_variance < 0:
        raise UsageError("the deflated Sharpe needs at least 2 observations, 1 trial and a "
                         "non-negative variance")
    normal = statistics.NormalDist()
    sr0 = 0.0
    if trials > 1:
        sr0 = math.sqrt(trial_sharpe_variance) * (
            (1 - _EULER_GAMMA) * normal.inv_cdf(1 - 1 / trials)
            + _EULER_GAMMA * normal.inv_cdf(1 - 1 / (trials * math.e)))
    denominator = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if denominator <= 0:
        return 0.0
    return normal.cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(denominator))


def marks_by_batch(events: pl.DataFrame) -> pl.DataFrame:
    """``seq, symbol, price_ticks``: each symbol's last positive price in each batch."""
    cols = set(events.columns)
    price = pl.lit(None, pl.Int64)
    if "close" in cols:
        price = pl.col("close").cast(pl.Int64)
    if {"bid", "ask"} <= cols:
        mid = (pl.col("bid").cast(pl.Int64) + pl.col("ask").cast(pl.Int64)) // 2
        price = pl.when(pl.col("bid").is_not_null() & pl.col("ask").is_not_null()).then(
            mid).otherwise(price)
    if "price" in cols:
        price = pl.when(pl.col("price").is_not_null()).then(
            pl.col("price").cast(pl.Int64)).otherwise(price)
    if "symbol" not in cols or not events.height:
        return pl.DataFrame(schema={"seq": pl.Int64, "symbol": pl.String,
                                    "price_ticks": pl.Int64})
    return (events.select(pl.col("seq").cast(pl.Int64), "symbol", price.alias("price_ticks"))
            .filter(pl.col("price_ticks") > 0)
            .group_by("seq", "symbol", maintain_order=True).last()
            .sort("seq", "symbol"))


def tear_sheet(fills: pl.DataFrame, marks: pl.DataFrame, batch_ends: pl.DataFrame, *,
               capital_ticks: int = DEFAULT_CAPITAL_TICKS, periods_per_year: float | None = None,
               trials: int | None = None, trial_sharpe_variance: float = 0.0) -> TearSheet:
    """The sheet from ``fills`` (seq, symbol, side, quantity, price_ticks), ``marks`` (seq,
    symbol, price_ticks) and ``batch_ends`` (seq, end_ns: the batch's newest event time)."""
    from zcbench.backtest._metrics import compute_metrics
    from zcbench.strategy import PRICE_SCALE

    if type(capital_ticks) is not int or capital_ticks <= 0:
        raise UsageError(f"capital must be a positive number of ticks, got {capital_ticks!r}")
    batches = batch_ends.sort("seq")
    fills_at: dict[int, list[tuple[str, int, int]]] = {}
    for seq, symbol, side, qty, px in fills.select(
            "seq", "symbol", "side", "quantity", "price_ticks").iter_rows():
        signed = int(qty) if side == "buy" else -int(qty)
        fills_at.setdefault(int(seq), []).append((symbol, signed, int(px)))
    marks_at: dict[int, list[tuple[str, int]]] = {}
    for seq, symbol, px in marks.select("seq", "symbol", "price_ticks").iter_rows():
        marks_at.setdefault(int(seq), []).append((symbol, int(px)))
    cash, traded, open_after = 0, 0, 0
    positions: dict[str, int] = {}
    last: dict[str, int] = {}
    equity = []
    for seq in batches["seq"].to_list():
        last.update(marks_at.get(int(seq), []))
        for symbol, signed, px in fills_at.get(int(seq), []):
            positions[symbol] = positions.get(symbol, 0) + signed
            cash -= signed * px
            traded += abs(signed) * px
        equity.append(capital_ticks + cash + sum(q * last.get(s, 0)
                                                 for s, q in positions.items()))
        open_after += any(q != 0 for q in positions.values())
    n = len(equity)
    curve = np.array(equity, dtype=np.int64)
    metrics = compute_metrics(
        equity=curve, end_ts=batches["end_ns"].to_numpy().astype(np.int64),
        initial=capital_ticks, traded_notional=traded, fees=0, closing_pnls=[],
        trade_pnls=np.array([], dtype=np.float64), exposure=open_after / n if n else 0.0,
        n_signals=0, n_fills=fills.height, n_refused=0, periods_per_year=periods_per_year,
        money_scale=PRICE_SCALE)
    full = np.concatenate([[capital_ticks], curve]).astype(np.float64)
    returns = full[1:] / full[:-1] - 1.0 if n else np.array([])
    per_batch = 0.0
    dsr = None
    if returns.size > 2:
        sd = float(np.std(returns, ddof=1))
        per_batch = float(np.mean(returns)) / sd if sd > 0 else 0.0
        centred = returns - returns.mean()
        m2 = float(np.mean(centred**2))
        skew = float(np.mean(centred**3)) / m2**1.5 if m2 > 0 else 0.0
        kurt = float(np.mean(centred**4)) / m2**2 if m2 > 0 else 3.0
        dsr = deflated_sharpe(per_batch, int(returns.size), skew=skew, kurtosis=kurt,
                              trials=trials or 1, trial_sharpe_variance=trial_sharpe_variance)

    def number(name: str) -> float:
        value = metrics[name]
        return float(value) if value is not None else 0.0

    return TearSheet(
        capital_ticks=capital_ticks, pnl_ticks=(equity[-1] - capital_ticks) if n else 0,
        total_return=number("total_return"), volatility=number("volatility"),
        sharpe=number("sharpe"), sharpe_per_batch=per_batch, sortino=number("sortino"),
        max_drawdown=number("max_drawdown"),
        max_drawdown_duration_s=number("max_drawdown_duration_s"),
        exposure=number("exposure"), turnover=number("turnover"), n_batches=n,
        n_fills=fills.height, periods_per_year=number("periods_per_year"), trials=trials,
        deflated_sharpe=dsr, equity_ticks=tuple(int(e) for e in equity))


def run_tear_sheet(run_dir: Path, orders: pl.DataFrame, *,
                   capital_ticks: int = DEFAULT_CAPITAL_TICKS) -> TearSheet:
    """The sheet of a run from its verified ``orders`` rows (the pack's table) and its log."""
    from zcbench.auditlog import events_frame

    events = events_frame(run_dir)
    fills = orders.filter((pl.col("event") == "fill") & pl.col("in_signed_log"))
    if not events.height:
        ends = pl.DataFrame(schema={"seq": pl.Int64, "end_ns": pl.Int64})
    else:
        ends = events.group_by("seq").agg(pl.col("ts").max().cast(pl.Int64).alias("end_ns"))
    return tear_sheet(fills, marks_by_batch(events), ends, capital_ticks=capital_ticks)
