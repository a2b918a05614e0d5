"""The live-run panel: start and stop a local enclave run and watch it.

Owns what a PM sees of a live run: build, data source and rate; Start and Stop; the price with
the strategy's signals marked, PnL, throughput, a freshness histogram, the risk-limit state, and
any error, in the panel. The run itself is the live-run API's, behind a small
:class:`LiveRunBackend`; the panel only calls it on a background thread (so the kernel stays
responsive and the charts update while it runs) and draws the :class:`RunSnapshot` values it
reports.

The concepts live in their own modules and are re-exported here: the request, snapshot, backend
interface and figure HTML in ``_runmodel``; the real backend and its incremental watcher in
``_localrun``; attestations from the running enclave in ``_liveattest``.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import ipywidgets as widgets

from zcbench.errors import EnvError, UsageError, ZcbenchError
from zcbench.report import html as h
from zcbench.widgets import _charts
from zcbench.widgets._attest_sources import running_enclave_backend
from zcbench.widgets._liveattest import LiveEnclaveSource
from zcbench.widgets._localrun import LocalRunBackend
from zcbench.widgets._runmodel import (
    SYNTHETIC,
    LiveRunBackend,
    RunRequest,
    RunSnapshot,
    find_builds,
    metrics_html,
    risk_html,
)

__all__ = [
    "LiveEnclaveSource",
    "LiveRunBackend",
    "LiveRunPanel",
    "LocalRunBackend",
    "RunRequest",
    "RunSnapshot",
    "find_builds",
    "metrics_html",
    "risk_html",
    "running_enclave_backend",
]


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
        rate: float = 1.0,
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
            value=rate, description="Speed (×)", layout=widgets.Layout(width="220px"),
            style={"description_width": "80px"},
            tooltip="multiples of real time by event time; 0 = as fast as possible",
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
            raise UsageError("the speed must be 0 (as fast as possible) or a positive number")
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
            self.metrics.value = metrics_html(snap)
            self.price_image.value = _charts.price_chart(snap.prices, snap.signals)
            if snap.freshness_buckets:
                self.freshness_image.value = _charts.bars(
                    snap.freshness_buckets, title="freshness: batches per bucket",
                    xlabel="ms from newest event to signal",
                )
            elif snap.freshness_ms or not snap.freshness_series:
                self.freshness_image.value = _charts.histogram(
                    snap.freshness_ms, title="freshness", xlabel="ms from newest event to signal"
                )
            else:
                self.freshness_image.value = _charts.percentile_series(
                    snap.freshness_series, title="freshness (ms from newest event to signal)"
                )
            self.risk.value = h.heading("Risk limits") + risk_html(snap)
            if snap.errors and self.last_error is None:
                self.errors.value = h.banner(
                    "ERROR", h.RED, [h.esc(e) for e in snap.errors[-5:]]
                )
            # The state last: whoever sees it change sees the figures that go with it.
            self.state.value = self._state_html(
                snap.state, _STATE_COLOURS.get(snap.state, h.GREY), detail
            )
            self.draws += 1
        finally:
            self._draw_lock.release()
