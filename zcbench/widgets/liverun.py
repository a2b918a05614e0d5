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
from typing import Any, Protocol

import ipywidgets as widgets

from zcbench.errors import EnvError, UsageError, ZcbenchError
from zcbench.widgets import _charts
from zcbench.widgets import _html as h

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

SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class RunRequest:
    """What to run: a build folder, a source (``"synthetic"`` or a data file), a speed in
    multiples of real time by event time (``None``: as fast as the enclave takes it), an
    optional duration in seconds and run folder."""

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
    pairs a limit's name with its state in words; ``pnl`` is in
    currency units; ``events_per_s`` the backend's own throughput figure when it has one.
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



# ----------------------------------------------------------------------- the real backend

_STATUS_STATE = {"completed": "finished", "stopped": "stopped"}
_MAX_PRICE_POINTS = 1500


def _event_prices(events: Any) -> tuple[list[int], list[float]]:
    """(event time ns, price in currency units) per event that has one: a trade's price, a
    bar's close, else a quote's mid; events without any are left out."""
    import polars as pl

    from zcbench.strategy import PRICE_SCALE

    cols = events.columns
    price = pl.lit(None, dtype=pl.Int64)
    for name in ("close", "price"):
        if name in cols:
            price = pl.coalesce(pl.col(name), price)
    if "bid" in cols and "ask" in cols:
        price = pl.coalesce(price, (pl.col("bid") + pl.col("ask")) // 2)
    frame = events.select(pl.col("ts"), price.alias("p")).drop_nulls()
    return frame["ts"].to_list(), [p / PRICE_SCALE for p in frame["p"].to_list()]


class LocalRunBackend:
    """The real backend: :func:`zcbench.host.live.run_live` on a build folder, locally.

    ``trust`` names the root the boot document must chain to (``"dev"`` for the local
    enclave: SIMULATED); ``limits`` are the execution layer's risk limits (its defaults when
    ``None``); ``synthetic`` and ``seed`` make the ``"synthetic"`` source (seeded ticks,
    replayed at the requested speed); runs go to ``request.run_dir`` or a fresh folder under
    ``run_root`` (default: ``runs/`` beside the build). While the run goes, a watcher thread
    turns the runner's progress reports and the signals in the growing log into snapshots every
    ``poll_s`` seconds, so the runner's own thread does no drawing work.
    """

    def __init__(
        self,
        *,
        trust: str = "dev",
        limits: Any = None,
        synthetic: Any = None,
        seed: int = 7,
        run_root: pathlib.Path | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.trust = trust
        self.limits = limits
        self.synthetic = synthetic
        self.seed = seed
        self.run_root = run_root
        self.poll_s = poll_s
        self.summary: Any = None
        self.handle: Any = None  # the running run's RunHandle (attest, stop), None otherwise
        self.booted = threading.Event()
        self.error: str | None = None

    def start_in_background(self, request: RunRequest) -> threading.Event:
        """Start a run on a daemon thread with no panel watching; returns its stop event.

        For a running enclave to attest (:class:`LiveEnclaveSource`); a failure is kept in
        :attr:`error`.
        """
        stop = threading.Event()
        self.error = None
        self.booted.clear()

        def target() -> None:
            try:
                self.run(request, on_update=lambda _snap: None, stop=stop)
            except ZcbenchError as exc:
                self.error = str(exc)
            finally:
                self.booted.set()  # wake anyone waiting for a boot that will not come

        threading.Thread(target=target, name="zcbench-live-run-bg", daemon=True).start()
        return stop

    def _events(self, source: str) -> Any:
        from zcbench.marketdata import SyntheticConfig, generate_ticks, load_market_data

        if source == SYNTHETIC:
            config = self.synthetic or SyntheticConfig(symbols=("AAA",), rate=2000.0,
                                                       duration_s=30.0)
            return generate_ticks(config, seed=self.seed)
        return load_market_data(pathlib.Path(source))

    def _run_dir(self, request: RunRequest) -> pathlib.Path:
        if request.run_dir is not None:
            return request.run_dir
        root = self.run_root or request.build_dir.parent / "runs"
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = root / f"run-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"run-{stamp}-{n}"
        return path

    def run(
        self,
        request: RunRequest,
        *,
        on_update: Callable[[RunSnapshot], None],
        stop: threading.Event,
    ) -> RunSnapshot:
        from zcbench.host.live import BuildImage, RunHandle, RunProgress, run_live
        from zcbench.host.proxy import ReplaySource

        image = BuildImage(request.build_dir)
        spec = image.batching()  # a missing or damaged build fails here, with its message
        events = self._events(request.source)
        if events.height == 0:
            raise UsageError(f"the source {request.source} has no events")
        times, prices = _event_prices(events)
        t0 = int(events["ts"][0])
        run_dir = self._run_dir(request)
        watcher = _RunWatcher(run_dir, t0, times, prices, self.poll_s, on_update, self.limits)
        done = threading.Event()
        started = time.monotonic()

        def on_progress(progress: RunProgress) -> None:
            watcher.progress = progress

        def on_booted(handle: RunHandle) -> None:
            self.handle = handle
            watcher.run_id = handle.run_id
            self.booted.set()

        def watch() -> None:
            while not done.wait(self.poll_s):
                watcher.publish(time.monotonic() - started, "running")
                if request.duration is not None and time.monotonic() - started > request.duration:
                    stop.set()

        thread = threading.Thread(target=watch, name="zcbench-live-run-watch", daemon=True)
        self.error = None
        self.booted.clear()
        thread.start()
        try:
            summary = run_live(
                image,
                run_dir,
                ReplaySource(events, spec, rate=request.rate),
                limits=self.limits,
                trust=self.trust,
                on_progress=on_progress,
                on_booted=on_booted,
                stop=stop,
            )
        finally:
            self.handle = None
            done.set()
            thread.join()
        self.summary = summary
        return watcher.final(summary)


class _RunWatcher:
    """Builds snapshots from the runner's progress and the signals already in the log."""

    def __init__(
        self,
        run_dir: pathlib.Path,
        t0: int,
        times: list[int],
        prices: list[float],
        poll_s: float,
        on_update: Callable[[RunSnapshot], None],
        limits: Any,
    ) -> None:
        self.run_dir = run_dir
        self.t0 = t0
        self.times = times
        self.prices = prices
        self.on_update = on_update
        self.limits = limits
        self.progress: Any = None
        self.signals: list[tuple[float, float, str]] = []
        self.series: list[tuple[float, float, float]] = []
        self.records_seen = 0
        self.newest_event_ns = t0
        self.run_id: str | None = None
        self.errors: list[str] = []

    def _price_at(self, ts: int) -> float:
        import bisect

        i = bisect.bisect_right(self.times, ts) - 1
        return self.prices[max(i, 0)] if self.prices else 0.0

    def _tail_log(self) -> None:
        """New OUT records' signals, placed at their batch's newest event time."""
        from zcbench.auditlog.frame import iter_records
        from zcbench.strategy import decode_signals

        if not (self.run_dir / "log").is_dir():
            return
        try:
            for n, (record, _) in enumerate(iter_records(self.run_dir)):
                if n < self.records_seen:
                    continue
                self.records_seen = n + 1
                if record.event_time_ns is not None:
                    self.newest_event_ns = max(self.newest_event_ns, record.event_time_ns)
                if record.kind != "out" or record.event_time_ns is None:
                    continue
                x = (record.event_time_ns - self.t0) / 1e9
                y = self._price_at(record.event_time_ns)
                self.signals.extend((x, y, s.side) for s in decode_signals(record.body))
        except ZcbenchError as exc:
            # The log is being written as we read it; a half-written tail is expected and
            # the next poll reads past it. Anything else is worth showing.
            message = f"reading the live log: {exc}"
            if message not in self.errors:
                self.errors.append(message)

    def _price_points(self) -> tuple[tuple[float, float], ...]:
        import bisect

        end = bisect.bisect_right(self.times, self.newest_event_ns)
        step = max(1, end // _MAX_PRICE_POINTS)
        return tuple(
            ((self.times[i] - self.t0) / 1e9, self.prices[i]) for i in range(0, end, step)
        )

    def _risk(self, summary: Any = None) -> tuple[tuple[str, str], ...]:
        from zcbench.host.execution import RiskLimits

        limits = self.limits or RiskLimits()
        rows = [
            ("max position", f"{limits.max_position:,} units"),
            ("max notional", f"{limits.max_notional:,} ticks × units"),
            ("order rate", f"{limits.max_orders_per_s:,} / s"),
            ("price collar", f"{limits.price_collar_bps} bps"),
        ]
        if summary is None:
            p = self.progress
            if p is not None:
                rows.append(("rejected orders", f"{p.rejects:,}" + (" (rejected)" if p.rejects
                                                                    else "")))
                positions = ", ".join(f"{k} {v:+,}" for k, v in sorted(p.positions.items()))
                rows.append(("positions", positions or "flat"))
            killed = None if p is None else p.kill_switch
            rows.append(("kill switch", f"tripped: {killed}" if killed else
                         "on" if limits.kill_switch else "off"))
            return tuple(rows)
        rows.append(("rejected orders", f"{summary.rejects:,}" + (" (rejected)" if
                                                                  summary.rejects else "")))
        positions = ", ".join(f"{k} {v:+,}" for k, v in sorted(summary.positions.items()))
        rows.append(("positions", positions or "flat"))
        rows.append(
            ("kill switch", f"tripped: {summary.reason}" if summary.status not in _STATUS_STATE
             else "on at close (run ended)")
        )
        return tuple(rows)

    def publish(self, elapsed: float, state: str) -> None:
        from zcbench.strategy import PRICE_SCALE

        self._tail_log()
        p = self.progress
        if p is not None:
            self.series.append((elapsed, p.freshness_p50_ms, p.freshness_p99_ms))
        self.on_update(
            RunSnapshot(
                state=state,
                elapsed_s=elapsed,
                batches=0 if p is None else p.batches,
                events=0 if p is None else p.events,
                signals_count=0 if p is None else p.signals,
                orders=0 if p is None else p.orders,
                fills=0 if p is None else p.fills,
                rejected=0 if p is None else p.rejects,
                pnl=0.0 if p is None else p.pnl / PRICE_SCALE,
                prices=self._price_points(),
                signals=tuple(self.signals),
                freshness_series=tuple(self.series),
                freshness_p50_ms=None if p is None else p.freshness_p50_ms,
                freshness_p99_ms=None if p is None else p.freshness_p99_ms,
                events_per_s=None if p is None else p.events_per_s,
                risk=self._risk(),
                errors=tuple(self.errors),
                run_dir=self.run_dir,
                run_id=self.run_id,
            )
        )

    def final(self, summary: Any) -> RunSnapshot:
        from zcbench.strategy import PRICE_SCALE

        self._tail_log()
        state = _STATUS_STATE.get(summary.status, "failed")
        errors = list(self.errors)
        if state == "failed":
            errors.append(f"the run ended with {summary.status}: {summary.reason}")
        return RunSnapshot(
            state=state,
            elapsed_s=summary.elapsed_s,
            batches=summary.batches,
            events=summary.events,
            signals_count=summary.signals,
            orders=summary.orders,
            fills=summary.fills,
            rejected=summary.rejects,
            pnl=summary.pnl / PRICE_SCALE,
            prices=self._price_points(),
            signals=tuple(self.signals),
            freshness_series=tuple(self.series),
            freshness_buckets=tuple(summary.freshness_histogram.items()),
            freshness_p50_ms=summary.freshness_p50_ms,
            freshness_p99_ms=summary.freshness_p99_ms,
            events_per_s=summary.events_per_s,
            risk=self._risk(summary),
            errors=tuple(errors),
            run_dir=self.run_dir,
            run_id=summary.run_id,
        )


class LiveEnclaveSource:
    """Attestation documents from the enclave of a run ``backend`` is running, for
    :class:`~zcbench.widgets.attestation.VerifyingBackend`: the enclave answers with the
    caller's nonce and, in ``user_data``, its latest signed checkpoint.

    With ``start``, a request when no run is going starts that run in the background first
    (:meth:`LocalRunBackend.start_in_background`; :attr:`stop` then ends it). A starting run is
    waited for up to ``boot_s`` seconds.
    """

    def __init__(
        self,
        backend: LocalRunBackend,
        *,
        start: RunRequest | None = None,
        boot_s: float = 60.0,
    ) -> None:
        self.backend = backend
        self.start = start
        self.boot_s = boot_s
        self.stop: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(self, nonce: bytes) -> bytes:
        with self._lock:
            if self.backend.handle is None and self.start is not None and (
                self.stop is None or self.backend.booted.is_set()
            ):
                self.stop = self.backend.start_in_background(self.start)
        self.backend.booted.wait(self.boot_s)
        handle = self.backend.handle
        if handle is None:
            why = f": {self.backend.error}" if self.backend.error else ""
            raise EnvError(
                f"no local enclave is running{why}; start a run (the live-run panel's Start) "
                "and ask again"
            )
        document: bytes = handle.attest(nonce)
        return document


def running_enclave_backend(
    backend: LocalRunBackend, build_dir: pathlib.Path, *, start: RunRequest | None = None
) -> Any:
    """An attestation backend asking the enclave of ``backend``'s current run (starting
    ``start`` first when given and no run is going), checked against
    ``build_dir/commitment.json`` under the root ``backend`` trusts (``"dev"``: SIMULATED)."""
    from zcbench.widgets.attestation import VerifyingBackend

    build_dir = pathlib.Path(build_dir)
    return VerifyingBackend(
        LiveEnclaveSource(backend, start=start),
        commitment=build_dir / "commitment.json",
        trust=backend.trust,
        description=f"the running local enclave of {build_dir} (SIMULATED)",
    )
