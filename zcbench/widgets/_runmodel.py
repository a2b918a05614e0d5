"""What a live run looks like to the panel: the request, the snapshots, the backend interface,
and the HTML of its figures (cards, risk table). No widgets and no run machinery here.

Money is an int of the run's account unit (``RunSnapshot.money_scale``, ``currency``: what the
run reports), shown through :func:`zcbench.money.format_money`.
"""

from __future__ import annotations

import pathlib
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from zcbench.money import format_money
from zcbench.report import html as h
from zcbench.strategy import PRICE_SCALE

__all__ = [
    "SYNTHETIC",
    "LiveRunBackend",
    "RunRequest",
    "RunSnapshot",
    "find_builds",
    "metrics_html",
    "risk_html",
]

SYNTHETIC = "synthetic"  # the source name zcbench.host.sources.market_source knows


@dataclass(frozen=True)
class RunRequest:
    """What to run: a build folder, a source (``"synthetic"`` or a data file), a speed in
    multiples of real time by event time (``None``: as fast as the enclave takes it), an
    optional duration in seconds (counted from the enclave's boot) and run folder."""

    build_dir: pathlib.Path
    source: str = SYNTHETIC
    rate: float | None = None
    duration: float | None = None
    run_dir: pathlib.Path | None = None


@dataclass(frozen=True)
class RunSnapshot:
    """What a run looks like now.

    ``state`` is ``starting``, ``running``, ``finished``, ``stopped`` or ``failed``.
    ``prices`` are ``(seconds since start, price)``; ``signals`` ``(seconds, price, side)``;
    ``freshness_ms`` how stale the newest event of each batch was when its signal came back
    (samples, for a histogram), ``freshness_buckets`` the same already counted per bucket, and
    ``freshness_series`` ``(seconds, p50, p99)`` when only percentiles are known; ``risk``
    pairs a limit's name with its state in words; ``pnl`` is an int of ``1 / money_scale``
    of ``currency``, the run's account as the run reports it (None until its first report);
    ``events_per_s`` the backend's own throughput figure when it has one; ``cash``, ``equity``
    and ``buying_power_used`` the account under the buying-power rule in the same unit
    (:class:`zcbench.risk.CapitalState`; None when capital does not bind).
    """

    state: str = "starting"
    elapsed_s: float = 0.0
    batches: int = 0
    events: int = 0
    signals_count: int = 0
    orders: int = 0
    fills: int = 0
    rejected: int = 0
    pnl: int = 0
    currency: str | None = None
    money_scale: int = PRICE_SCALE
    cash: int | None = None
    equity: int | None = None
    buying_power_used: int | None = None
    prices: tuple[tuple[float, float], ...] = ()
    signals: tuple[tuple[float, float, str], ...] = ()
    freshness_ms: tuple[float, ...] = ()
    freshness_series: tuple[tuple[float, float, float], ...] = ()
    freshness_buckets: tuple[tuple[str, int], ...] = ()
    freshness_p50_ms: float | None = None
    freshness_p99_ms: float | None = None
    events_per_s: float | None = None
    risk: tuple[tuple[str, str], ...] = ()
    errors: tuple[str, ...] = ()
    run_dir: pathlib.Path | None = None
    run_id: str | None = None

    @property
    def pnl_text(self) -> str:
        """The PnL for people, signed, in the run's recorded currency and unit."""
        if self.currency is None:
            return format_money(self.pnl, signed=True, scale=self.money_scale)
        return format_money(self.pnl, signed=True, scale=self.money_scale, currency=self.currency)

    @property
    def throughput(self) -> float:
        """Events per second: the backend's figure, else events over elapsed time."""
        if self.events_per_s is not None:
            return self.events_per_s
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


class LiveRunBackend(Protocol):
    """Runs one live run to its end, reporting as it goes.

    ``run`` blocks until the run ends (its data or duration is exhausted, ``stop`` is set, or it
    fails) and returns the final snapshot; meanwhile it calls ``on_update`` with fresh snapshots
    (from the thread it runs on). It raises a :class:`~zcbench.errors.ZcbenchError` when the
    run cannot start or fails; the panel shows the message.
    """

    def run(
        self,
        request: RunRequest,
        *,
        on_update: Callable[[RunSnapshot], None],
        stop: threading.Event,
    ) -> RunSnapshot: ...


def find_builds(root: pathlib.Path) -> list[pathlib.Path]:
    """Build folders (those holding a ``commitment.json``) at ``root`` or one level below it."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    found = [root] if (root / "commitment.json").is_file() else []
    found += sorted(p.parent for p in root.glob("*/commitment.json"))
    return found


def _card(label: str, value: str, colour: str = h.INK) -> str:
    return (
        f'<div style="display:inline-block;min-width:120px;margin:4px 8px 4px 0;padding:6px 10px;'
        f'border:1px solid #d0d7de;border-radius:6px;{h.FONT}">'
        f'<div style="font-size:11px;color:{h.GREY};text-transform:uppercase">{h.esc(label)}</div>'
        f'<div style="font-size:20px;font-weight:700;color:{colour}">{h.esc(value)}</div></div>'
    )


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def metrics_html(snap: RunSnapshot) -> str:
    """Throughput, events, batches, signals, orders/fills, PnL, cash and buying power used
    (when capital binds) and freshness as cards."""
    pnl_colour = h.GREEN if snap.pnl > 0 else h.RED if snap.pnl < 0 else h.INK
    cards = [
        _card("throughput", f"{snap.throughput:,.0f} ev/s"),
        _card("events", f"{snap.events:,}"),
        _card("batches", f"{snap.batches:,}"),
        _card("signals", f"{snap.signals_count:,}"),
        _card("fills / orders", f"{snap.fills:,} / {snap.orders:,}"),
        _card(
            f"PnL ({snap.currency})" if snap.currency else "PnL",
            format_money(snap.pnl, signed=True, unit=False, scale=snap.money_scale),
            pnl_colour,
        ),
    ]
    unit = f" ({snap.currency})" if snap.currency else ""
    if snap.cash is not None:
        cards.append(_card(f"cash{unit}", format_money(snap.cash, unit=False,
                                                       scale=snap.money_scale)))
    if snap.buying_power_used is not None and snap.equity is not None:
        used = format_money(snap.buying_power_used, unit=False, scale=snap.money_scale)
        share = f" ({snap.buying_power_used / snap.equity:.0%})" if snap.equity > 0 else ""
        over = snap.buying_power_used > snap.equity
        cards.append(_card(f"buying power used{unit}", used + share, h.RED if over else h.INK))
    if snap.freshness_ms:
        p50: float | None = statistics.median(snap.freshness_ms)
        p99: float | None = _percentile(snap.freshness_ms, 0.99)
    else:
        p50, p99 = snap.freshness_p50_ms, snap.freshness_p99_ms
    if p50 is not None and p99 is not None:
        cards.append(_card("freshness p50 / p99", f"{p50:.1f} / {p99:.1f} ms"))
    return "".join(cards)


def risk_html(snap: RunSnapshot) -> str:
    """Risk limits and their state; a tripped kill switch or rejections are shown in red."""
    if not snap.risk:
        return h.notice("no risk-limit state reported yet")
    rows = []
    colours: list[str | None] = []
    for name, state in snap.risk:
        alarming = any(w in state.lower() for w in ("tripped", "breach", "rejected", "killed"))
        rows.append([h.esc(name), f"<b>{h.esc(state)}</b>" if alarming else h.esc(state)])
        colours.append("#ffebe9" if alarming else None)
    return h.table(["limit", "state"], rows, row_colours=colours)

