"""The live panel's real backend: :func:`zcbench.host.live.run_live` on a build folder, locally,
and the watcher that turns the run's progress and its journal into snapshots.

The watcher reads the journal incrementally (from the byte where its last read ended), so a
poll costs what was appended since the last one, not the length of the run.
"""

from __future__ import annotations

import bisect
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any

from zcbench.errors import ZcbenchError
from zcbench.money import format_money
from zcbench.risk import (
    INSUFFICIENT_CASH,
    INSUFFICIENT_MARGIN,
    BuyingPower,
    CapitalState,
)
from zcbench.runsettings import RUN_DEFAULTS, RunSettings
from zcbench.strategy import PRICE_SCALE
from zcbench.widgets._runmodel import SYNTHETIC, RunRequest, RunSnapshot

__all__ = ["LocalRunBackend"]

_STATUS_STATE = {"completed": "finished", "stopped": "stopped"}
_MAX_PRICE_POINTS = 1500


def _event_prices(events: Any, price_scale: int) -> tuple[list[int], list[float]]:
    """(event time ns, price in currency units) per event that has a mark (the one
    market-price rule, :func:`zcbench.marketdata.marks`), its integers ``price_scale`` to the
    currency unit (the instrument's); events without a mark are left out."""
    import polars as pl

    from zcbench.marketdata import marks

    frame = pl.DataFrame([events.get_column("ts"), marks(events)]).drop_nulls()
    return frame["ts"].to_list(), [p / price_scale for p in frame["mark"].to_list()]


class LocalRunBackend:
    """The real backend: :func:`zcbench.host.live.run_live` on a build folder, locally.

    ``settings`` are the run's (:class:`zcbench.runsettings.RunSettings`), by default
    ``zcbench run``'s own (:data:`~zcbench.runsettings.RUN_DEFAULTS`), made into the run's
    options as the CLI makes them (:func:`zcbench.host.options.run_options`): orders go to the
    paper venue and feedback is on, so the run the panel shows is the run the CLI would make;
    their ``initial_cash`` (None: capital does not bind) and ``buying_power`` (default a cash
    account) make capital bind, counted in the run's account unit, so an order the account
    cannot carry is refused ``insufficient_cash`` / ``insufficient_margin`` as in the CLI's run
    and the backtest. ``trust`` names the root the boot document must chain to (``"dev"`` for
    the local enclave: SIMULATED); ``limits`` are the execution layer's risk limits (its
    defaults when ``None``). The ``"synthetic"`` source is
    :func:`zcbench.host.sources.market_source`'s, as for the CLI and the demo: seeded ticks of
    ``synthetic_rate`` events/s over ``synthetic_duration_s`` seconds of event time
    (``synthetic``, a ``SyntheticConfig``, replaces the rest of its settings), replayed at the
    requested speed (the source and its speed are the panel's own choice, set in the panel;
    everything else is the settings'); runs go to
    ``request.run_dir`` or a fresh folder under ``run_root`` (default: ``runs/`` beside the
    build). While the run goes, a watcher thread turns the runner's progress reports and the
    orders in the run's journal into snapshots every ``poll_s`` seconds, so the runner's own
    thread does no drawing work.
    """

    def __init__(
        self,
        *,
        trust: str = "dev",
        limits: Any = None,
        settings: RunSettings = RUN_DEFAULTS,
        buying_power: BuyingPower | None = None,
        synthetic: Any = None,
        synthetic_rate: float = 2000.0,
        synthetic_duration_s: float = 30.0,
        seed: int = 7,
        run_root: pathlib.Path | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.trust = trust
        self.limits = limits
        self.settings = settings
        self.buying_power = buying_power or BuyingPower()
        self.synthetic = synthetic
        self.synthetic_rate = synthetic_rate
        self.synthetic_duration_s = synthetic_duration_s
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
        from zcbench.host.options import new_run_id, run_options
        from zcbench.host.sources import market_source

        image = BuildImage(request.build_dir)
        spec = image.batching()  # a missing or damaged build fails here, with its message
        synthetic = request.source == SYNTHETIC
        market = market_source(
            spec,
            data=None if synthetic else pathlib.Path(request.source),
            speed=request.rate,
            rate=self.synthetic_rate if synthetic and self.synthetic is None else None,
            duration_s=self.synthetic_duration_s if synthetic and self.synthetic is None else None,
            seed=self.seed,
            synthetic=self.synthetic,
        )
        run_dir = self._run_dir(request)
        run_id = new_run_id()
        options = run_options(self.settings, run_dir, run_id)
        capital = self.settings.capital(market.account)
        watcher = _RunWatcher(run_dir, market.events, spec, on_update, self.limits,
                              market.account, capital, self.buying_power)
        done = threading.Event()
        started = time.monotonic()

        def on_progress(progress: RunProgress) -> None:
            watcher.progress = progress

        booted_at: list[float] = []

        def on_booted(handle: RunHandle) -> None:
            self.handle = handle
            watcher.run_id = handle.run_id
            booted_at.append(time.monotonic())
            self.booted.set()

        def watch() -> None:
            # the duration counts from the boot: a slow boot on a loaded machine must not
            # leave a run with no batches
            while not done.wait(self.poll_s):
                watcher.publish(time.monotonic() - started, "running")
                if (
                    request.duration is not None
                    and booted_at
                    and time.monotonic() - booted_at[0] > request.duration
                ):
                    stop.set()

        thread = threading.Thread(target=watch, name="zcbench-live-run-watch", daemon=True)
        self.error = None
        self.booted.clear()
        thread.start()
        try:
            summary = run_live(
                image,
                run_dir,
                market.source,
                run_id=run_id,
                limits=self.limits,
                capital=capital,
                buying_power=self.buying_power,
                trust=self.trust,
                account=market.account,
                on_progress=on_progress,
                on_booted=on_booted,
                stop=stop,
                **options,
            )
        finally:
            self.handle = None
            done.set()
            thread.join()
        self.summary = summary
        return watcher.final(summary)


class _RunWatcher:
    """Builds snapshots from the runner's progress and the orders in the run's journal.

    The chart follows one symbol (the first in the data); its signals are the journal's order
    rows (every signal the host acted on, after its log records were durable and verified),
    placed at the newest event time of their batch, which the batching rule gives from the
    source's events. Each poll reads the journal from where the last read ended:
    :attr:`rows_read` counts the rows read over all polls.
    """

    def __init__(
        self,
        run_dir: pathlib.Path,
        events: Any,
        spec: Any,
        on_update: Callable[[RunSnapshot], None],
        limits: Any,
        account: Any,
        capital: int | None = None,
        buying_power: BuyingPower | None = None,
    ) -> None:
        import polars as pl

        from zcbench.marketdata import batch_bounds

        self.run_dir = run_dir
        ts = events.get_column("ts")
        self.t0 = int(ts[0])
        self.event_ts: list[int] = ts.to_list()
        self.batch_newest = [self.event_ts[end - 1] for _, end in batch_bounds(ts, spec)]
        self.symbol: str = str(events.get_column("symbol")[0])
        self.times, self.prices = _event_prices(
            events.filter(pl.col("symbol") == self.symbol), account.price_scale_of(self.symbol)
        )
        self.currency: str = account.currency  # the account the run is given and records
        self.money_scale: int = account.money_scale
        self.on_update = on_update
        self.limits = limits
        self.capital = capital
        self.buying_power = buying_power or BuyingPower()
        self.progress: Any = None
        self.signals: list[tuple[float, float, str]] = []
        self.series: list[tuple[float, float, float]] = []
        self.journal_end = 0
        self.rows_read = 0
        self.run_id: str | None = None
        self.errors: list[str] = []

    def _price_at(self, ts: int) -> float:
        i = bisect.bisect_right(self.times, ts) - 1
        return self.prices[max(i, 0)] if self.prices else 0.0

    def _tail_journal(self) -> None:
        """The orders appended to the journal since the last read, as chart signals."""
        from zcbench.host.execution import JOURNAL_FILE, read_journal

        if not (self.run_dir / JOURNAL_FILE).is_file():
            return
        try:
            # a row being written as we read is left for the next poll (a torn tail, not cut)
            read = read_journal(self.run_dir, offset=self.journal_end)
        except ZcbenchError as exc:
            message = f"reading the run's journal: {exc}"
            if message not in self.errors:
                self.errors.append(message)
            return
        self.journal_end = read.end
        self.rows_read += read.rows.height
        for seq, event, symbol, side in read.rows.select(
            "seq", "event", "symbol", "side"
        ).iter_rows():
            if event != "order" or symbol != self.symbol:
                continue
            ts = self.batch_newest[seq] if 0 <= seq < len(self.batch_newest) else self.t0
            self.signals.append(((ts - self.t0) / 1e9, self._price_at(ts), side))

    def _price_points(self, events_done: int) -> tuple[tuple[float, float], ...]:
        newest = self.event_ts[min(events_done, len(self.event_ts)) - 1] if events_done else 0
        end = bisect.bisect_right(self.times, newest)
        step = max(1, end // _MAX_PRICE_POINTS)
        return tuple(
            ((self.times[i] - self.t0) / 1e9, self.prices[i]) for i in range(0, end, step)
        )

    def _risk(self, summary: Any = None) -> tuple[tuple[str, str], ...]:
        from zcbench.host.execution import RiskLimits

        limits = self.limits or RiskLimits()
        # the limit is in the run's account ticks (1/money_scale of its currency)
        reported = summary if summary is not None else self.progress
        currency = self.currency if reported is None else reported.currency
        scale = self.money_scale if reported is None else reported.money_scale
        rows = [
            ("max position", f"{limits.max_position:,} units"),
            ("max notional", format_money(limits.max_notional, scale=scale, currency=currency)),
            ("order rate", f"{limits.max_orders_per_s:,} / s"),
            ("price collar", f"{limits.price_collar_bps} bps"),
        ]
        rule = self.buying_power
        rows.append(("capital", "does not bind" if self.capital is None else
                     f"{format_money(self.capital, scale=scale, currency=currency)}, leverage "
                     f"{rule.leverage:g}, short margin {rule.short_margin:g}"))
        if reported is not None:
            rows.append(("rejected orders", f"{reported.rejects:,}" + (
                " (rejected)" if reported.rejects else "")))
            if self.capital is not None:
                for control in (INSUFFICIENT_CASH, INSUFFICIENT_MARGIN):
                    n = reported.refusals.get(control, 0)
                    rows.append((f"refused: {control.replace('_', ' ')}",
                                 f"{n:,}" + (" (rejected)" if n else "")))
            positions = ", ".join(f"{k} {v:+,}" for k, v in sorted(reported.positions.items()))
            rows.append(("positions", positions or "flat"))
        if summary is None:
            killed = None if self.progress is None else self.progress.kill_switch
            rows.append(("kill switch", f"tripped: {killed}" if killed else
                         "on" if limits.kill_switch else "off"))
            return tuple(rows)
        rows.append(
            ("kill switch", f"tripped: {summary.reason}" if summary.status not in _STATUS_STATE
             else "on at close (run ended)")
        )
        return tuple(rows)

    def publish(self, elapsed: float, state: str) -> None:
        self._tail_journal()
        p = self.progress
        capital: CapitalState | None = None if p is None else p.capital
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
                pnl=0 if p is None else p.pnl,
                currency=None if p is None else p.currency,
                money_scale=PRICE_SCALE if p is None else p.money_scale,
                cash=None if capital is None else capital.cash,
                equity=None if capital is None else capital.equity,
                buying_power_used=None if capital is None else capital.used,
                prices=self._price_points(0 if p is None else p.events),
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
        self._tail_journal()
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
            pnl=summary.pnl,
            currency=summary.currency,
            money_scale=summary.money_scale,
            cash=summary.cash,
            equity=summary.equity,
            buying_power_used=summary.buying_power_used,
            prices=self._price_points(summary.events),
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
