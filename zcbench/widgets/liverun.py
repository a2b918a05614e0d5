"""The live-run panel: start and stop a local enclave run and watch it.

Owns what a PM sees of a live run: build, data source and rate; Start and Stop; the price with
the strategy's signals marked, PnL, throughput, a freshness histogram, the risk-limit state, and
any error, in the panel. The run itself is the live-run API's, behind a small
:class:`LiveRunBackend`; the panel only calls it on a background thread (so the kernel stays
responsive and the charts update while it runs) and draws the :class:`RunSnapshot` values it
reports.
"""

from __future__ import annotations

import pathlib
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import ipywidgets as widgets

from zcbench.errors import EnvError, UsageError, ZcbenchError
from zcbench.widgets import _charts
from zcbench.widgets import _html as h

__all__ = [
    "LiveRunBackend",
    "LiveRunPanel",
    "RunRequest",
    "RunSnapshot",
    "find_builds",
    "metrics_html",
    "risk_html",
]

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class RunRequest:
    """What to run: a build folder, a source (``"synthetic"`` or a data file), a rate in events
    per second (``None``: as fast as the data allows), an optional duration in seconds and run
    folder."""

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
    ``freshness_ms`` how stale the newest event of each batch was when its signal came back;
    ``risk`` pairs a limit's name with its state in words; ``pnl`` is in currency units.
    """

    state: str = "starting"
    elapsed_s: float = 0.0
    batches: int = 0
    events: int = 0
    signals_count: int = 0
    orders: int = 0
    fills: int = 0
    rejected: int = 0
    pnl: float = 0.0
    prices: tuple[tuple[float, float], ...] = ()
    signals: tuple[tuple[float, float, str], ...] = ()
    freshness_ms: tuple[float, ...] = ()
    risk: tuple[tuple[str, str], ...] = ()
    errors: tuple[str, ...] = ()
    run_dir: pathlib.Path | None = None
    run_id: str | None = None

    @property
    def throughput(self) -> float:
        """Events per second over the run so far."""
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
    """Throughput, events, batches, signals, orders/fills, PnL and freshness as cards."""
    pnl_colour = h.GREEN if snap.pnl > 0 else h.RED if snap.pnl < 0 else h.INK
    cards = [
        _card("throughput", f"{snap.throughput:,.0f} ev/s"),
        _card("events", f"{snap.events:,}"),
        _card("batches", f"{snap.batches:,}"),
        _card("signals", f"{snap.signals_count:,}"),
        _card("fills / orders", f"{snap.fills:,} / {snap.orders:,}"),
        _card("PnL", f"{snap.pnl:+,.2f}", pnl_colour),
    ]
    if snap.freshness_ms:
        cards.append(
            _card(
                "freshness p50 / p99",
                f"{statistics.median(snap.freshness_ms):.1f} / "
                f"{_percentile(snap.freshness_ms, 0.99):.1f} ms",
            )
        )
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


_STATE_COLOURS = {
    "starting": h.GREY,
    "running": h.GREEN,
    "finished": h.INK,
    "stopped": h.AMBER,
    "failed": h.RED,
}


class LiveRunPanel(widgets.VBox):  # type: ignore[misc]
    """Build, source, rate, Start/Stop, and the run's charts, figures, risk state and errors.

    ``backend`` runs the run; ``builds_root`` is searched for build folders to offer;
    ``refresh_s`` is the least time between two redraws. :meth:`start`, :meth:`stop` and
    :meth:`wait` do what the buttons do, for notebooks and tests.
    """

    def __init__(
        self,
        backend: LiveRunBackend,
        *,
        build_dir: pathlib.Path | None = None,
        builds_root: pathlib.Path | None = None,
        source: str = SYNTHETIC,
        rate: float = 2000.0,
        duration: float | None = None,
        run_root: pathlib.Path | None = None,
        refresh_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        title: str = "Live run",
    ) -> None:
        self.backend = backend
        self.run_root = run_root
        self.duration = duration
        self.refresh_s = refresh_s
        self._monotonic = monotonic
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._draw_lock = threading.Lock()
        self._last_draw = float("-inf")
        self.snapshot: RunSnapshot | None = None
        self.last_error: str | None = None
        self.draws = 0

        options = [str(p) for p in find_builds(builds_root)] if builds_root else []
        if build_dir is not None and str(build_dir) not in options:
            options.insert(0, str(build_dir))
        self.header = widgets.HTML(
            f'<div style="{h.FONT};font-size:20px;font-weight:700;color:{h.INK}">'
            f"{h.esc(title)}</div>"
        )
        self.build = widgets.Combobox(
            value=options[0] if options else "",
            options=options,
            placeholder="build folder (holds commitment.json)",
            description="Build",
            ensure_option=False,
            layout=widgets.Layout(width="520px"),
        )
        self.source = widgets.Combobox(
            value=source,
            options=[SYNTHETIC],
            placeholder="'synthetic' or a CSV/parquet file",
            description="Data",
            ensure_option=False,
            layout=widgets.Layout(width="520px"),
        )
        self.rate = widgets.FloatText(
            value=rate, description="Rate (ev/s)", layout=widgets.Layout(width="220px"),
            style={"description_width": "80px"},
        )
        self.start_button = widgets.Button(
            description="Start", button_style="success", icon="play"
        )
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.state = widgets.HTML(
            self._state_html("idle", h.GREY, "choose a build and press Start")
        )
        self.metrics = widgets.HTML()
        self.price_image = widgets.Image(format="png", layout=widgets.Layout(width="58%"))
        self.freshness_image = widgets.Image(format="png", layout=widgets.Layout(width="40%"))
        self.risk = widgets.HTML()
        self.errors = widgets.HTML()
        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        super().__init__(
            [
                self.header,
                self.build,
                widgets.HBox([self.source, self.rate]),
                widgets.HBox([self.start_button, self.stop_button]),
                self.state,
                self.errors,
                self.metrics,
                widgets.HBox([self.price_image, self.freshness_image]),
                self.risk,
            ],
            layout=widgets.Layout(border="1px solid #d0d7de", padding="10px", max_width="1100px"),
        )
        self.add_class("zcbench-liverun-panel")

    @staticmethod
    def _state_html(state: str, colour: str, detail: str) -> str:
        return (
            f'<div style="{h.FONT};margin:6px 0">{h.pill(state.upper(), colour)}'
            f'<span style="color:{h.GREY};font-size:13px">{h.esc(detail)}</span></div>'
        )

    @property
    def running(self) -> bool:
        """True while a run's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _request(self) -> RunRequest:
        build = self.build.value.strip()
        if not build:
            raise UsageError("choose a build folder first (one that holds commitment.json)")
        build_dir = pathlib.Path(build).expanduser()
        if not build_dir.is_dir():
            raise EnvError(
                f"build folder {build_dir} does not exist: make one with 'zcbench package'"
            )
        source = self.source.value.strip() or SYNTHETIC
        if source != SYNTHETIC and not pathlib.Path(source).expanduser().is_file():
            raise EnvError(
                f"data file {source} does not exist; use 'synthetic' or a CSV/parquet file"
            )
        rate = float(self.rate.value)
        if rate < 0:
            raise UsageError("the rate must be 0 (as fast as possible) or a positive number")
        run_dir = None
        if self.run_root is not None:
            run_dir = pathlib.Path(self.run_root) / time.strftime("run-%Y%m%dT%H%M%S")
        return RunRequest(
            build_dir=build_dir,
            source=source if source == SYNTHETIC else str(pathlib.Path(source).expanduser()),
            rate=rate or None,
            duration=self.duration,
            run_dir=run_dir,
        )

    def start(self) -> bool:
        """Start a run on a background thread; returns False (and says why) if it cannot."""
        if self.running:
            self._error("a run is already going: stop it first")
            return False
        try:
            request = self._request()
        except ZcbenchError as exc:
            self._error(str(exc))
            return False
        self.last_error = None
        self.errors.value = ""
        self._stop = threading.Event()
        self.snapshot = RunSnapshot(state="starting")
        self._last_draw = float("-inf")
        self._draw(self.snapshot, force=True)
        self.start_button.disabled = True
        self.stop_button.disabled = False
        self._thread = threading.Thread(
            target=self._worker, args=(request, self._stop), name="zcbench-live-run", daemon=True
        )
        self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the run to stop; it finishes its current batch and closes its log."""
        self._stop.set()
        self.stop_button.disabled = True
        if self.running:
            self.state.value = self._state_html("stopping", h.AMBER, "finishing the current batch")

    def wait(self, timeout: float | None = None) -> RunSnapshot | None:
        """Wait for the run's thread to end (at most ``timeout`` seconds); the last snapshot."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot

    def _worker(self, request: RunRequest, stop: threading.Event) -> None:
        try:
            final = self.backend.run(request, on_update=self._on_update, stop=stop)
        except ZcbenchError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug below us: show it in the panel, not as a traceback
            self._fail(h.unexpected(exc))
        else:
            if stop.is_set() and final.state == "finished":
                final = replace(final, state="stopped")
            self.snapshot = final
            self._draw(final, force=True)
        finally:
            self.start_button.disabled = False
            self.stop_button.disabled = True

    def _fail(self, message: str) -> None:
        base = self.snapshot or RunSnapshot()
        failed = replace(base, state="failed", errors=(*base.errors, message))
        self.snapshot = failed
        self._error(message)
        self._draw(failed, force=True)

    def _error(self, message: str) -> None:
        self.last_error = message
        self.errors.value = h.banner("ERROR", h.RED, [h.esc(message)])

    def _on_update(self, snap: RunSnapshot) -> None:
        self.snapshot = snap
        self._draw(snap, force=False)

    def _draw(self, snap: RunSnapshot, *, force: bool) -> None:
        now = self._monotonic()
        if not force and now - self._last_draw < self.refresh_s:
            return
        if not self._draw_lock.acquire(blocking=force):
            return  # another thread is drawing; the next update redraws
        try:
            self._last_draw = now
            detail = f"{snap.elapsed_s:.1f} s"
            if snap.run_id:
                detail += f" · run {snap.run_id}"
            if snap.run_dir is not None:
                detail += f" · {snap.run_dir}"
            self.state.value = self._state_html(
                snap.state, _STATE_COLOURS.get(snap.state, h.GREY), detail
            )
            self.metrics.value = metrics_html(snap)
            self.price_image.value = _charts.price_chart(snap.prices, snap.signals)
            self.freshness_image.value = _charts.histogram(
                snap.freshness_ms, title="freshness", xlabel="ms from newest event to signal"
            )
            self.risk.value = h.heading("Risk limits") + risk_html(snap)
            if snap.errors and self.last_error is None:
                self.errors.value = h.banner(
                    "ERROR", h.RED, [h.esc(e) for e in snap.errors[-5:]]
                )
            self.draws += 1
        finally:
            self._draw_lock.release()

