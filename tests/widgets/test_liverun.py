"""LiveRunPanel over an in-memory backend: background thread, live redraws, stop, errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from zcbench.errors import EnvError
from zcbench.widgets.liverun import (
    LiveRunPanel,
    RunRequest,
    RunSnapshot,
    find_builds,
    metrics_html,
    risk_html,
)

PNG = b"\x89PNG\r\n\x1a\n"


class FakeRun:
    """Reports ``steps`` snapshots, one per ``step_s``, unless stopped; or fails as told."""

    def __init__(
        self, steps: int = 5, step_s: float = 0.01, fail: Exception | None = None
    ) -> None:
        self.steps = steps
        self.step_s = step_s
        self.fail = fail
        self.requests: list[RunRequest] = []
        self.started = threading.Event()
        self.thread_names: list[str] = []

    def run(
        self,
        request: RunRequest,
        *,
        on_update: Callable[[RunSnapshot], None],
        stop: threading.Event,
    ) -> RunSnapshot:
        self.requests.append(request)
        self.thread_names.append(threading.current_thread().name)
        self.started.set()
        if self.fail is not None:
            on_update(RunSnapshot(state="running", elapsed_s=0.1, events=10))
            raise self.fail
        snap = RunSnapshot(state="running")
        for i in range(1, self.steps + 1):
            if stop.wait(self.step_s):
                break
            snap = RunSnapshot(
                state="running",
                elapsed_s=i * 0.5,
                batches=i,
                events=100 * i,
                signals_count=i,
                orders=i,
                fills=i - 1,
                pnl=125_000 * i,
                prices=tuple((j * 0.5, 100.0 + j) for j in range(i)),
                signals=((0.0, 100.0, "buy"), (0.5, 101.0, "sell")),
                freshness_ms=tuple(float(j) for j in range(i)),
                risk=(("max position", f"{i} / 1000"), ("kill switch", "off")),
                run_id="r1",
            )
            on_update(snap)
        return RunSnapshot(**{**snap.__dict__, "state": "finished"})


@pytest.fixture
def build(tmp_path: Path) -> Path:
    folder = tmp_path / "builds" / "momentum"
    folder.mkdir(parents=True)
    (folder / "commitment.json").write_text("{}")
    return folder


@pytest.mark.slow
def test_run_goes_on_a_background_thread_and_redraws(build: Path) -> None:
    backend = FakeRun(steps=3)
    panel = LiveRunPanel(backend, builds_root=build.parent, rate=500, refresh_s=0.0)
    assert panel.build.value == str(build)
    assert panel.start()
    final = panel.wait(timeout=30)
    assert final is not None
    assert final.state == "finished"
    assert backend.thread_names == ["zcbench-live-run"]
    assert backend.requests[0] == RunRequest(build_dir=build, source="synthetic", rate=500.0)
    assert final.throughput == pytest.approx(200.0)
    assert panel.draws >= 3
    assert bytes(panel.price_image.value).startswith(PNG)
    assert bytes(panel.freshness_image.value).startswith(PNG)
    assert "FINISHED" in panel.state.value
    assert "200 ev/s" in panel.metrics.value
    assert "+37.50" in panel.metrics.value
    assert "max position" in panel.risk.value
    assert not panel.start_button.disabled
    assert panel.stop_button.disabled


def test_stop_ends_the_run_and_says_stopped(build: Path) -> None:
    backend = FakeRun(steps=10_000, step_s=0.01)
    panel = LiveRunPanel(backend, build_dir=build)
    assert panel.start()
    assert backend.started.wait(10)
    assert panel.running
    assert not panel.start()  # one run at a time
    assert "already going" in panel.errors.value
    panel.stop_button.click()
    final = panel.wait(timeout=30)
    assert final is not None
    assert final.state == "stopped"
    assert not panel.running
    assert "STOPPED" in panel.state.value


def test_missing_build_or_data_is_shown_and_nothing_starts(tmp_path: Path, build: Path) -> None:
    backend = FakeRun()
    panel = LiveRunPanel(backend, build_dir=tmp_path / "nope")
    assert not panel.start()
    assert "does not exist" in panel.errors.value
    assert "zcbench package" in panel.errors.value
    panel.build.value = ""
    assert not panel.start()
    assert "choose a build" in (panel.last_error or "")
    panel.build.value = str(build)
    panel.source.value = str(tmp_path / "missing.csv")
    assert not panel.start()
    assert "missing.csv" in (panel.last_error or "")
    panel.source.value = "synthetic"
    panel.rate.value = -1
    assert not panel.start()
    assert "speed" in (panel.last_error or "")
    assert backend.requests == []


@pytest.mark.slow  # three runs redrawn without pause
def test_a_failing_run_is_shown_and_the_panel_stays_usable(build: Path) -> None:
    backend = FakeRun(fail=EnvError("the enclave exited with status 1 at batch 3"))
    panel = LiveRunPanel(backend, build_dir=build, refresh_s=0.0)
    assert panel.start()
    final = panel.wait(timeout=30)
    assert final is not None
    assert final.state == "failed"
    assert "batch 3" in panel.errors.value
    assert "FAILED" in panel.state.value
    assert not panel.start_button.disabled
    backend.fail = RuntimeError("boom")
    assert panel.start()
    panel.wait(timeout=30)
    assert "Unexpected error" in panel.errors.value
    backend.fail = None
    assert panel.start()
    final = panel.wait(timeout=30)
    assert final is not None
    assert final.state == "finished"
    assert panel.errors.value == ""


def test_find_builds_and_html_pieces(build: Path, tmp_path: Path) -> None:
    assert find_builds(build.parent) == [build]
    assert find_builds(build) == [build]
    assert find_builds(tmp_path / "none") == []
    snap = RunSnapshot(
        elapsed_s=2.0, events=1000, pnl=-30_000, freshness_ms=(1.0, 2.0, 30.0),
        risk=(("kill switch", "TRIPPED: max notional"), ("max position", "3 / 1000")),
    )
    html = metrics_html(snap)
    assert "500 ev/s" in html
    assert "-3.00" in html
    assert "2.0 / 30.0 ms" in html
    risk = risk_html(snap)
    assert "<b>TRIPPED: max notional</b>" in risk
    assert "#ffebe9" in risk
    assert "no risk-limit state" in risk_html(RunSnapshot())
    assert RunSnapshot().throughput == 0.0


def test_the_pnl_card_names_the_runs_recorded_currency_and_unit() -> None:
    # an account of 1/100,000 USD (a five-decimal pair): 12,345 of it is 0.12345 USD
    snap = RunSnapshot(pnl=12_345, currency="USD", money_scale=100_000)
    html = metrics_html(snap)
    assert "PnL (USD)" in html
    assert "+0.12345" in html
    assert "currency unit" not in html
    assert snap.pnl_text == "+0.12345 USD"
    assert "currency unit" not in metrics_html(RunSnapshot())  # before the run's first report


def test_snapshot_text_is_escaped(build: Path) -> None:
    panel = LiveRunPanel(FakeRun(fail=EnvError("<script>alert(1)</script>")), build_dir=build)
    assert panel.start()
    panel.wait(timeout=30)
    assert "<script>" not in panel.errors.value
    assert "&lt;script&gt;" in panel.errors.value


def test_the_watcher_reads_only_what_the_journal_gained_since_its_last_poll(
    tmp_path: Path,
) -> None:
    """A long run must not cost a full re-read per poll: each poll reads the new rows only."""
    from zcbench.host.execution import JOURNAL_FILE, ExecutionLayer, Journal, VerifiedSignals
    from zcbench.host.sources import market_source
    from zcbench.marketdata import BatchSpec
    from zcbench.strategy import Signal
    from zcbench.widgets._localrun import _RunWatcher

    spec = BatchSpec(count=100)
    market = market_source(spec, rate=2000.0, duration_s=2.0, seed=5)
    first = str(market.events["symbol"][0])
    snaps: list[RunSnapshot] = []
    watcher = _RunWatcher(tmp_path, market.events, spec, snaps.append, None, market.account)
    watcher.publish(0.0, "starting")  # no journal yet: nothing read, nothing shown
    journal = Journal.create(tmp_path / JOURNAL_FILE, run_id="r", origin="o", image="b")
    ex = ExecutionLayer(journal_file=journal)
    ex.on_market(market.events.slice(0, 100))
    reads = []
    for poll in range(6):
        for seq in range(poll * 3, poll * 3 + 3):
            signal = Signal(first, "buy" if seq % 2 else "sell", 1)
            ex.act(VerifiedSignals(seq, 2 * seq + 2, 2 * seq + 3, (signal,)), now_ns=seq)
        before = watcher.rows_read
        watcher.publish(float(poll), "running")
        reads.append(watcher.rows_read - before)
    total = len((tmp_path / JOURNAL_FILE).read_bytes().splitlines()) - 1  # less the header
    assert sum(reads) == total
    assert max(reads) == total // 6  # each poll: the three batches' rows appended since the last
    watcher.publish(7.0, "running")
    assert watcher.rows_read == total  # nothing new: nothing read
    signals = snaps[-1].signals
    assert len(signals) == 18  # one per order row
    newest = [market.events["ts"][min(100 * (s + 1), market.events.height) - 1] for s in range(18)]
    t0 = int(market.events["ts"][0])
    assert [x for x, _, _ in signals] == [(int(n) - t0) / 1e9 for n in newest]
    assert [side for _, _, side in signals][:2] == ["sell", "buy"]


def test_cash_and_buying_power_used_are_cards_when_capital_binds() -> None:
    snap = RunSnapshot(currency="USD", money_scale=10_000, cash=9_870_000_000,
                       equity=10_000_500_000, buying_power_used=1_300_000_000)
    html = metrics_html(snap)
    assert "cash (USD)" in html
    assert "987,000.00" in html
    assert "buying power used (USD)" in html
    assert "130,000.00 (13%)" in html
    # without capital there is no account to show
    assert "cash" not in metrics_html(RunSnapshot(currency="USD"))
    # a position needing more than the equity (the marks moved against it) is shown in red
    over = metrics_html(RunSnapshot(cash=-5, equity=100, buying_power_used=150))
    assert "150%" in over.split("buying power used")[1].split("</div></div>")[0]


def test_the_watcher_shows_the_capital_and_the_refusals_for_lack_of_it(tmp_path: Path) -> None:
    """The panel's run binds capital as ``zcbench run`` does by default; its snapshots carry
    the account (cash, equity, buying power used) and the orders refused for lack of cash or
    margin, from the run's progress reports and then its summary."""
    from zcbench.host.execution import ExecutionLayer, RiskLimits, VerifiedSignals
    from zcbench.host.sources import market_source
    from zcbench.host.summary import RunProgress
    from zcbench.marketdata import BatchSpec
    from zcbench.risk import DEFAULT_INITIAL_CASH
    from zcbench.strategy import Signal
    from zcbench.widgets._localrun import LocalRunBackend, _RunWatcher

    assert LocalRunBackend().settings.initial_cash == DEFAULT_INITIAL_CASH  # the CLI's too
    spec = BatchSpec(count=100)
    market = market_source(spec, rate=2000.0, duration_s=2.0, seed=5)
    symbol = str(market.events["symbol"][0])
    scale = market.account.money_scale
    snaps: list[RunSnapshot] = []
    watcher = _RunWatcher(tmp_path, market.events, spec, snaps.append, None, market.account,
                          capital=10_000 * scale)
    ex = ExecutionLayer(RiskLimits(), capital=10_000 * scale, units=dict(market.account.units))
    ex.on_market(market.events.slice(0, 100))
    big = Signal(symbol, "buy", 999)  # within max_position, far more than 10,000 USD buys
    ex.act(VerifiedSignals(0, 2, 3, (Signal(symbol, "buy", 1), big)), now_ns=1)
    state = ex.capital_state()
    assert state is not None
    watcher.progress = RunProgress(
        1, 100, 2, 1.0, 1.0, 1.0, ex.pnl(), orders=2, fills=1, rejects=1,
        positions=dict(ex.positions), currency="USD", money_scale=scale,
        capital=state, refusals=ex.refusals(),
    )
    watcher.publish(1.0, "running")
    snap = snaps[-1]
    assert (snap.cash, snap.equity, snap.buying_power_used) == (
        state.cash, state.equity, state.used)
    assert 0 < state.used < state.equity <= state.cash + state.used
    rows = dict(snap.risk)
    assert rows["capital"] == "10,000.00 USD, leverage 1, short margin 1"
    assert rows["refused: insufficient cash"] == "1 (rejected)"
    assert rows["refused: insufficient margin"] == "0"
    assert "<b>1 (rejected)</b>" in risk_html(snap)
    assert "cash (USD)" in metrics_html(snap)
    # a panel run without capital says so
    free = _RunWatcher(tmp_path, market.events, spec, snaps.append, None, market.account)
    free.publish(0.0, "starting")
    assert dict(snaps[-1].risk)["capital"] == "does not bind"
    assert snaps[-1].cash is None


class _RunLiveCalled(EnvError):
    """What the stand-in for run_live raises once it has kept its arguments."""


def _run_live_arguments(monkeypatch: pytest.MonkeyPatch, build: Path, tmp_path: Path
                        ) -> tuple[dict[str, object], dict[str, object]]:
    """Every argument `zcbench run BUILD` (no flags but its folder) and the panel's backend
    hand run_live, the ones left out filled in with run_live's own defaults: (CLI, panel)."""
    import inspect

    import zcbench.host.live as live
    from zcbench.cli import main
    from zcbench.marketdata import BatchSpec
    from zcbench.widgets._localrun import LocalRunBackend

    class Image:
        def __init__(self, build_dir: Path) -> None:
            self.build_dir = build_dir

        def batching(self) -> BatchSpec:
            return BatchSpec(count=100)

    signature = inspect.signature(live.run_live)
    calls: list[dict[str, object]] = []

    def run_live(*args: object, **kwargs: object) -> None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        raise _RunLiveCalled("stopped before the enclave starts")

    monkeypatch.setattr(live, "BuildImage", Image)
    monkeypatch.setattr(live, "run_live", run_live)
    assert main(["run", str(build), "--run-dir", str(tmp_path / "cli-run")]) == 3
    with pytest.raises(_RunLiveCalled):
        LocalRunBackend(poll_s=0.05).run(
            RunRequest(build_dir=build, run_dir=tmp_path / "panel-run"),
            on_update=lambda _snap: None, stop=threading.Event())
    cli, panel = calls
    return cli, panel


def test_the_panel_makes_the_run_zcbench_run_would_make(
        monkeypatch: pytest.MonkeyPatch, build: Path, tmp_path: Path) -> None:
    """One definition of a live run's defaults (RUN_DEFAULTS) serves both front ends: the
    panel's run goes to the paper venue with feedback on, as `zcbench run`'s does, and every
    other argument run_live is handed is the CLI's too (capital, account, buying power, limits,
    flush delay, snapshots, clock, operator, trust, no ledger, no continuation); only the source
    (the panel's own choice, at its own speed), the folder, the run id and the callbacks
    differ."""
    from zcbench.host.execution import RiskLimits
    from zcbench.venue import PaperVenue

    cli, panel = _run_live_arguments(monkeypatch, build, tmp_path)
    for made in (cli, panel):
        assert isinstance(made["venue"], PaperVenue)
        assert made["feedback"] is True
    per_front_end = {"image", "run_dir", "source", "run_id", "on_progress", "on_booted", "stop"}

    def setting(name: str, value: object) -> object:
        if name in ("venue", "clock_source"):
            return type(value)  # a fresh venue or clock per run: the same kind
        if name == "limits":
            return value or RiskLimits()  # None is the execution layer's defaults
        return value

    assert {k: setting(k, v) for k, v in panel.items() if k not in per_front_end} == {
        k: setting(k, v) for k, v in cli.items() if k not in per_front_end}
