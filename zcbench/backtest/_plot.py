"""The equity-and-drawdown chart of a backtest, with its trades marked, as PNG bytes.

Drawn off-screen on a new matplotlib ``Figure`` (Agg), never pyplot's global state, so it works
headless and in threads; a PNG is one self-contained file (``zcbench backtest --out`` writes
``equity.png``; notebook 01 shows the same figure).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from zcbench.backtest._engine import BacktestResult

__all__ = ["equity_figure", "equity_png"]


def equity_figure(result: BacktestResult) -> Any:
    """A ``matplotlib.figure.Figure``: equity (currency) above, drawdown (%) below, buys and
    sells as markers on the equity line at their fill times."""
    from matplotlib.figure import Figure

    eq = result.equity
    ts = eq.get_column("ts").to_numpy().astype("datetime64[ns]")
    equity = eq.get_column("equity_ccy").to_numpy()
    peak = np.maximum.accumulate(np.maximum(equity, 1e-300))
    drawdown = np.where(peak > 0, equity / peak - 1.0, 0.0) * 100
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(ts, equity, lw=1.0, color="#1f4e79", label="equity")
    filled = result.fills.filter(pl.col("status") == "filled")
    if filled.height and ts.size:
        fill_ts = filled.get_column("fill_ts").to_numpy()
        at = np.clip(np.searchsorted(eq.get_column("ts").to_numpy(), fill_ts), 0, ts.size - 1)
        buys = filled.get_column("side").to_numpy() == "buy"
        top.scatter(ts[at[buys]], equity[at[buys]], marker="^", s=22, color="#2e7d32", label="buy")
        top.scatter(
            ts[at[~buys]], equity[at[~buys]], marker="v", s=22, color="#c62828", label="sell"
        )
    top.set_ylabel(f"equity ({result.currency})")
    top.set_title(f"{result.strategy}: equity and drawdown")
    top.legend(loc="upper left", fontsize=8)
    bottom.fill_between(ts, drawdown, 0, color="#c62828", alpha=0.35, lw=0)
    bottom.set_ylabel("drawdown (%)")
    return fig


def equity_png(result: BacktestResult) -> bytes:
    """:func:`equity_figure` as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = equity_figure(result)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
