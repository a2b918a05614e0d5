"""Charts for the panels, drawn off-screen with matplotlib's Agg backend into PNG bytes.

A new :class:`~matplotlib.figure.Figure` per drawing, never pyplot's global state, so drawing is
safe from the background thread that watches a live run.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__: list[str] = []

_GREEN = "#1b7f3b"
_RED = "#b3261e"
_BLUE = "#0969da"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    return out.getvalue()


def price_chart(
    prices: Sequence[tuple[float, float]],
    signals: Sequence[tuple[float, float, str]],
    *,
    title: str = "price and signals",
) -> bytes:
    """Price against event time (seconds since the first event), buy (▲ green) and sell
    (▼ red) signals marked."""
    fig = Figure(figsize=(6.4, 2.8))
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.17)
    ax = fig.add_subplot()
    if prices:
        ax.plot([p[0] for p in prices], [p[1] for p in prices], color=_BLUE, linewidth=1.2)
    for side, marker, colour in (("buy", "^", _GREEN), ("sell", "v", _RED)):
        pts = [s for s in signals if s[2] == side]
        if pts:
            ax.scatter(
                [p[0] for p in pts], [p[1] for p in pts], marker=marker, color=colour, s=36,
                label=f"{side} ({len(pts)})", zorder=3,
            )
    if signals:
        ax.legend(loc="best", fontsize=8, framealpha=0.8)
    if not prices:
        ax.text(0.5, 0.5, "no prices yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("event time, seconds since the first event", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def histogram(
    values: Sequence[float], *, title: str, xlabel: str, bins: int = 30
) -> bytes:
    """A histogram of ``values`` (for freshness in milliseconds)."""
    fig = Figure(figsize=(4.2, 2.8))
    fig.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.17)
    ax = fig.add_subplot()
    if values:
        ax.hist(list(values), bins=bins, color=_BLUE, alpha=0.85)
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def percentile_series(
    series: Sequence[tuple[float, float, float]], *, title: str
) -> bytes:
    """p50 and p99 against elapsed seconds, when only percentiles are known (not samples)."""
    fig = Figure(figsize=(4.2, 2.8))
    fig.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.17)
    ax = fig.add_subplot()
    xs = [p[0] for p in series]
    ax.plot(xs, [p[1] for p in series], color=_BLUE, label="p50")
    ax.plot(xs, [p[2] for p in series], color=_RED, label="p99")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("seconds since start", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def bars(buckets: Sequence[tuple[str, int]], *, title: str, xlabel: str) -> bytes:
    """Counts per labelled bucket (a histogram already counted), empty buckets at the end
    left out."""
    items = list(buckets)
    while items and items[-1][1] == 0:
        items.pop()
    fig = Figure(figsize=(4.2, 2.8))
    fig.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.3)
    ax = fig.add_subplot()
    if items:
        ax.bar(range(len(items)), [c for _, c in items], color=_BLUE)
        ax.set_xticks(range(len(items)), [label for label, _ in items], rotation=45,
                      ha="right", fontsize=7)
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
