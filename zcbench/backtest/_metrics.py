"""Performance metrics from an equity curve and the fills.

Definitions (all computed in a fixed order with numpy, so the same inputs give the same floats
whatever the thread count):

- ``total_return``: final equity / initial equity - 1;
- ``sharpe``: mean / sample standard deviation of the per-batch returns (the first measured
  from the initial equity), times sqrt(periods per year); periods per year is given, or the
  number of batches divided by the years the batches span (about 252 for daily bars); 0.0 when
  the returns do not vary;
- ``max_drawdown``: the largest fall from a running peak, as a fraction of that peak (>= 0);
- ``turnover``: traded notional / initial equity;
- ``hit_rate``: the share of position-reducing fills whose realised PnL (fill price against
  average cost, before fees) is positive; 0.0 when nothing was closed.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Final

import numpy as np

from zcbench.strategy import PRICE_SCALE

__all__ = ["METRIC_NAMES", "compute_metrics"]

YEAR_NS: Final = int(365.25 * 86_400 * 1_000_000_000)

METRIC_NAMES: Final = (
    "total_return",
    "sharpe",
    "max_drawdown",
    "turnover",
    "hit_rate",
    "final_equity",
    "pnl",
    "fees",
    "n_batches",
    "n_signals",
    "n_fills",
    "n_closing_fills",
    "periods_per_year",
)


def compute_metrics(
    *,
    equity: np.ndarray[Any, Any],
    end_ts: np.ndarray[Any, Any],
    initial: int,
    traded_notional: int,
    fees: int,
    closing_pnls: list[Fraction],
    n_signals: int,
    n_fills: int,
    periods_per_year: float | None,
) -> dict[str, float | int]:
    """The metrics above as a flat map (money in currency units, the rest plain numbers)."""
    curve = np.concatenate([[initial], equity.astype(np.int64)]).astype(np.float64)
    n = int(equity.size)
    if periods_per_year is None:
        span = int(end_ts[-1] - end_ts[0]) if n > 1 else 0
        periods_per_year = n * YEAR_NS / span if span > 0 else 0.0
    returns = curve[1:] / curve[:-1] - 1.0
    sharpe = 0.0
    if returns.size > 1:
        sd = float(np.std(returns, ddof=1))
        if sd > 0:
            sharpe = float(np.mean(returns)) / sd * math.sqrt(periods_per_year)
    peaks = np.maximum.accumulate(curve)
    drawdown = float(np.max(1.0 - curve / peaks)) if curve.size else 0.0
    wins = sum(1 for p in closing_pnls if p > 0)
    final = int(equity[-1]) if n else initial
    return {
        "total_return": final / initial - 1.0,
        "sharpe": sharpe,
        "max_drawdown": max(drawdown, 0.0),
        "turnover": traded_notional / initial,
        "hit_rate": wins / len(closing_pnls) if closing_pnls else 0.0,
        "final_equity": final / PRICE_SCALE,
        "pnl": (final - initial) / PRICE_SCALE,
        "fees": fees / PRICE_SCALE,
        "n_batches": n,
        "n_signals": n_signals,
        "n_fills": n_fills,
        "n_closing_fills": len(closing_pnls),
        "periods_per_year": float(periods_per_year),
    }
