"""The equity-and-drawdown chart of a backtest, with its trades marked, as PNG bytes; the
heatmap of a sweep over two parameters; the stitched out-of-sample curve of a walk-forward.

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
    from zcbench.backtest._walkforward import WalkForwardResult

__all__ = ["equity_figure", "equity_png", "sweep_heatmap", "walkforward_figure"]


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
    filled = result.fills.filter(pl.col("filled_quantity") > 0)  # partial fills are trades too
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


def sweep_heatmap(table: pl.DataFrame, x: str, y: str, metric: str = "sharpe") -> Any:
    """A ``Figure``: ``metric`` of a sweep table over parameters ``x`` (columns) and ``y``
    (rows), each cell annotated; failed points (and cells the grid lacks) are blank. When the
    grid has further parameters, each cell shows the best value over them."""
    from matplotlib.figure import Figure

    for name in (x, y, metric):
        if name not in table.columns:
            raise ValueError(f"the sweep table has no column {name!r}")
    ok = table.filter(pl.col("error").is_null())
    cells = ok.group_by(x, y).agg(pl.col(metric).max())
    xs = table.get_column(x).unique(maintain_order=True).to_list()
    ys = table.get_column(y).unique(maintain_order=True).to_list()
    grid = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, value in cells.iter_rows():
        if value is not None:
            grid[ys.index(yv), xs.index(xv)] = value
    fig = Figure(figsize=(1.2 + 0.9 * len(xs), 1.2 + 0.6 * len(ys)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(ys)):
        for j in range(len(xs)):
            text = "failed" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_title(f"sweep: {metric} over {x} and {y} ({table.height} trials)")
    return fig


def walkforward_figure(result: WalkForwardResult) -> Any:
    """A ``Figure``: the stitched out-of-sample equity, folds shaded in turn and labelled with
    the parameters chosen in sample."""
    from matplotlib.figure import Figure

    curve = result.oos_equity
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.subplots()
    ts = curve.get_column("ts").to_numpy().astype("datetime64[ns]")
    ax.plot(ts, curve.get_column("stitched_ccy").to_numpy(), lw=1.0, color="#1f4e79")
    folds = curve.get_column("fold").to_numpy()
    params = dict(zip(result.folds.get_column("fold").to_list(),
                      result.folds.get_column("params").to_list(), strict=True))
    for k in np.unique(folds):
        span = ts[folds == k]
        if k % 2:
            ax.axvspan(span[0], span[-1], color="#999999", alpha=0.15, lw=0)
        ax.annotate(str(params.get(int(k), "")), (span[0], 1.0), xycoords=("data", "axes fraction"),
                    fontsize=6, va="top", rotation=90)
    ax.set_ylabel("out-of-sample equity (stitched)")
    ax.set_title(f"walk-forward: {result.folds.height} folds, chosen in sample by {result.metric}")
    return fig
