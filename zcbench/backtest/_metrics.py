"""Performance metrics from an equity curve, the fills and the round-trip trades.

Every figure is computed in a fixed order with numpy, so the same inputs give the same floats
whatever the thread count. The curve is the equity after each batch, preceded by the initial
cash; per-batch returns are ``r[i] = curve[i+1] / curve[i] - 1`` (0 when ``curve[i]`` is at or below
zero: nothing is left to earn a return on).

Annualisation: ``periods_per_year`` (P) is given, or measured as the number of batches divided by
the years their end times span (a year is 365.25 days; about 252 for daily bars of a market
open on weekdays, 315 million for 100 ms batches). On a few seconds of tick data P extrapolates
wildly: a tick-scale Sharpe ranks strategies on the same data, it is not a yearly figure.
``years`` is that span in years.

- ``total_return``: final equity / initial cash - 1;
- ``cagr``: ``(final / initial) ** (1 / years) - 1`` (0.0 when the span is empty, -1.0 when
  equity ended at or below zero, None when compounding a short span to a year overflows);
- ``volatility``: sample standard deviation of r, times sqrt(P);
- ``sharpe``: mean(r) / sample standard deviation of r, times sqrt(P) (risk-free rate 0; 0.0
  when the returns do not vary);
- ``sortino``: mean(r) / downside deviation, times sqrt(P); the downside deviation is
  ``sqrt(mean(min(r, 0) ** 2))`` over all periods (0.0 when no period lost);
- ``max_drawdown``: the largest fall from a running peak of the curve, as a fraction of that
  peak (>= 0); ``max_drawdown_duration_s``: the longest time from a peak until equity is back
  at it (or the end), in seconds of event time;
- ``calmar``: cagr / max_drawdown (0.0 without a drawdown, None when cagr is);
- ``exposure``: the share of batches after which some position was open;
- ``turnover``: traded notional / initial cash;
- ``hit_rate``: the share of position-reducing fills whose realised PnL (fill price against
  average cost, before fees) is positive; 0.0 when nothing was closed;
- ``n_trades``, ``win_rate``: round trips (a position leaving zero until it is back at zero or
  flips) and the share of them whose PnL, fees included, is positive;
- ``profit_factor``: gross PnL of winning trades / gross loss of losing ones (None when no trade
  lost, so that JSON stays valid); ``expectancy``: mean PnL per trade (currency);
- ``final_equity``, ``pnl``, ``fees``: currency; ``n_refused``: orders refused for capital;
- ``skewness``, ``kurtosis``: the moments of r (population, ``m3 / m2 ** 1.5`` and
  ``m4 / m2 ** 2``, so a normal distribution has kurtosis 3; 0.0 and 3.0 when r does not vary):
  what the deflated Sharpe ratio needs of the selected trial;
- ``benchmark`` (a separate map, per symbol): buy and hold from the first mark to the last,
  its ``total_return`` and ``cagr`` over the symbol's own span.

The deflated Sharpe ratio (Bailey and López de Prado, "The Deflated Sharpe Ratio: Correcting
for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
40(5), 2014) is :func:`deflated_sharpe_ratio`: the probability that the true Sharpe ratio of the
selected trial is above the one the best of ``N`` skill-less trials would show by luck alone,
``SR0 = sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))`` (``g`` the
Euler-Mascheroni constant, ``V`` the variance of the trials' Sharpe ratios), given the track's
length ``T``, skewness and kurtosis:
``DSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurt - 1) / 4 * SR ** 2))``. Every
Sharpe ratio there is per period (the annualised one divided by ``sqrt(P)``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import polars as pl

__all__ = [
    "METRICS_SCHEMA",
    "METRIC_NAMES",
    "benchmark",
    "compute_metrics",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
]

YEAR_NS: Final = int(365.25 * 86_400 * 1_000_000_000)

METRIC_NAMES: Final = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_s",
    "exposure",
    "turnover",
    "hit_rate",
    "n_trades",
    "win_rate",
    "profit_factor",
    "expectancy",
    "final_equity",
    "pnl",
    "fees",
    "n_batches",
    "n_signals",
    "n_fills",
    "n_refused",
    "n_closing_fills",
    "periods_per_year",
    "years",
    "skewness",
    "kurtosis",
)


def _cagr(ratio: float, years: float) -> float | None:
    if ratio <= 0:
        return -1.0
    if years <= 0:
        return 0.0
    try:
        return math.exp(math.log(ratio) / years) - 1.0
    except OverflowError:  # seconds of ticks compounded to a year: no float holds it
        return None


def compute_metrics(
    *,
    equity: np.ndarray[Any, Any],
    end_ts: np.ndarray[Any, Any],
    initial: int,
    traded_notional: int,
    fees: int,
    closing_pnls: list[Fraction],
    trade_pnls: np.ndarray[Any, Any],
    exposure: float,
    n_signals: int,
    n_fills: int,
    n_refused: int,
    periods_per_year: float | None,
    money_scale: int,
) -> dict[str, float | int | None]:
    """The metrics above as a flat map (money in currency units, the rest plain numbers)."""
    curve = np.concatenate([[initial], equity.astype(np.int64)]).astype(np.float64)
    n = int(equity.size)
    span = int(end_ts[-1] - end_ts[0]) if n > 1 else 0
    years = span / YEAR_NS
    if periods_per_year is None:
        periods_per_year = n * YEAR_NS / span if span > 0 else 0.0
    root = math.sqrt(periods_per_year)
    prev = curve[:-1]
    ok = prev > 0
    returns = np.zeros(prev.size)
    np.divide(curve[1:], prev, out=returns, where=ok)
    returns = np.where(ok, returns - 1.0, 0.0)
    sharpe = volatility = sortino = 0.0
    skewness, kurtosis = _moments(returns)
    if returns.size > 1:
        sd = float(np.std(returns, ddof=1))
        volatility = sd * root
        if sd > 0:
            sharpe = float(np.mean(returns)) / sd * root
        downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
        if downside > 0:
            sortino = float(np.mean(returns)) / downside * root
    peaks = np.maximum.accumulate(curve)
    drawdown = max(float(np.max(1.0 - curve / peaks)), 0.0) if curve.size else 0.0
    final = int(equity[-1]) if n else initial
    cagr = _cagr(final / initial, years)
    wins = trade_pnls[trade_pnls > 0]
    losses = trade_pnls[trade_pnls < 0]
    return {
        "total_return": final / initial - 1.0,
        "cagr": cagr,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": None if cagr is None else cagr / drawdown if drawdown > 0 else 0.0,
        "max_drawdown": drawdown,
        "max_drawdown_duration_s": _drawdown_duration(curve[1:], end_ts) / 1e9,
        "exposure": exposure,
        "turnover": traded_notional / initial,
        "hit_rate": sum(1 for p in closing_pnls if p > 0) / len(closing_pnls)
        if closing_pnls
        else 0.0,
        "n_trades": int(trade_pnls.size),
        "win_rate": float(wins.size / trade_pnls.size) if trade_pnls.size else 0.0,
        "profit_factor": float(wins.sum() / -losses.sum()) if losses.size else None,
        "expectancy": float(trade_pnls.mean()) if trade_pnls.size else 0.0,
        "final_equity": final / money_scale,
        "pnl": (final - initial) / money_scale,
        "fees": fees / money_scale,
        "n_batches": n,
        "n_signals": n_signals,
        "n_fills": n_fills,
        "n_refused": n_refused,
        "n_closing_fills": len(closing_pnls),
        "periods_per_year": float(periods_per_year),
        "years": years,
        "skewness": skewness,
        "kurtosis": kurtosis,
    }


def _moments(returns: np.ndarray[Any, Any]) -> tuple[float, float]:
    """Population skewness and (non-excess) kurtosis; 0.0 and 3.0 for returns that do not vary."""
    if returns.size < 2:
        return 0.0, 3.0
    centred = returns - float(np.mean(returns))
    m2 = float(np.mean(centred**2))
    if m2 <= 0:
        return 0.0, 3.0
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


EULER_GAMMA: Final = 0.5772156649015329


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """``SR0``: the expected largest Sharpe ratio of ``n_trials`` skill-less trials whose Sharpe
    ratios have ``variance`` (the module docstring); 0.0 for a single trial."""
    if type(n_trials) is not int or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    if not (math.isfinite(variance) and variance >= 0):
        raise ValueError(f"the trials' Sharpe variance must be finite and >= 0, got {variance!r}")
    if n_trials == 1:
        return 0.0
    z = NormalDist().inv_cdf
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * z(1 - 1 / n_trials) + EULER_GAMMA * z(1 - 1 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(
    sharpe: float,
    *,
    n_trials: int,
    trials_variance: float,
    n_obs: int,
    skewness: float,
    kurtosis: float,
) -> float | None:
    """The deflated Sharpe ratio (module docstring) of a per-period ``sharpe`` over ``n_obs``
    returns, selected among ``n_trials`` whose per-period Sharpe ratios have variance
    ``trials_variance``; ``kurtosis`` is non-excess (3 for normal returns). None when the track
    is too short (``n_obs < 2``) or its moments make the estimate's variance non-positive."""
    sr0 = expected_max_sharpe(n_trials, trials_variance)
    if n_obs < 2:
        return None
    spread = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if not (math.isfinite(spread) and spread > 0):
        return None
    return NormalDist().cdf((sharpe - sr0) * math.sqrt(n_obs - 1) / math.sqrt(spread))


def _drawdown_duration(curve: np.ndarray[Any, Any], ts: np.ndarray[Any, Any]) -> int:
    """The longest stretch (ns of event time) from a running peak until equity is back at it,
    or until the end when it never is."""
    if curve.size < 2:
        return 0
    t = ts.astype(np.int64)
    peaks = np.flatnonzero(curve >= np.maximum.accumulate(curve))
    spans = [t[peaks[1:]] - t[peaks[:-1]]]  # consecutive peaks: 0-length unless underwater
    if peaks[-1] < curve.size - 1:
        spans.append(np.array([t[-1] - t[peaks[-1]]]))
    gaps = np.concatenate(spans)
    underwater = np.concatenate([np.diff(peaks) > 1, [peaks[-1] < curve.size - 1]])
    return int(np.max(gaps[underwater[: gaps.size]], initial=0))


def benchmark(
    ts: np.ndarray[Any, Any],
    marks: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
) -> dict[str, dict[str, float | None]]:
    """Buy and hold per symbol, from its first mark to its last (see the module docstring).

    ``marks[symbol]`` are the event rows that carry a mark and those marks; ``ts`` the events'
    times.
    """
    out: dict[str, dict[str, float | None]] = {}
    for symbol in sorted(marks):
        rows, px = marks[symbol]
        if px.size == 0:
            continue
        ratio = int(px[-1]) / int(px[0])
        years = (int(ts[rows[-1]]) - int(ts[rows[0]])) / YEAR_NS
        out[symbol] = {"total_return": ratio - 1.0, "cagr": _cagr(ratio, years)}
    return out


METRICS_SCHEMA: Final[dict[str, Any]] = {
    name: pl.Int64 if name.startswith("n_") else pl.Float64 for name in METRIC_NAMES
}
