"""The three panels over the real parts: a promoted build, the NSM emulator, a live local run
and its signed log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.promoted_build import make_build
from zcbench.auditlog.frame import iter_records
from zcbench.host.execution import read_journal
from zcbench.strategy import is_context
from zcbench.widgets.attestation import AttestationPanel, emulator_backend
from zcbench.widgets.liverun import LiveRunPanel, LocalRunBackend
from zcbench.widgets.loginspector import AuditLogBackend, LogInspector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, LiveRunPanel]:
    # One build and one short run, shared by the tests below (the run takes a few seconds).
    folder = tmp_path_factory.mktemp("live")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZCBENCH_HOME", str(folder / "home"))
    try:
        build = make_build(folder)
        panel = LiveRunPanel(
            LocalRunBackend(poll_s=0.2), build_dir=build, rate=4.0, duration=2.5,
            refresh_s=0.2,
        )
        assert panel.start(), panel.last_error
        final = panel.wait(timeout=120)
        assert final is not None
        assert final.run_dir is not None
        return build, final.run_dir, panel
    finally:
        mp.undo()


@pytest.fixture
def home_of_run(live_run: tuple[Path, Path, LiveRunPanel], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCBENCH_HOME", str(live_run[0].parent / "home"))


def test_live_run_panel_runs_a_real_enclave(live_run: tuple[Path, Path, LiveRunPanel]) -> None:
    build, run_dir, panel = live_run
    snap = panel.snapshot
    assert snap is not None
    assert snap.state == "stopped", snap.errors
    assert snap.events > 0
    assert snap.throughput > 0
    assert snap.run_id is not None
    assert snap.signals
    assert snap.prices
    assert panel.draws >= 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_id"] == snap.run_id
    assert summary["events"] == snap.events
    assert summary["image"] == str(build)
    assert "STOPPED" in panel.state.value
    assert "ev/s" in panel.metrics.value
    # the PnL card names the currency and unit the run recorded (synthetic symbols: USD)
    assert (snap.currency, snap.money_scale) == (summary["currency"], summary["money_scale"])
    assert summary["currency"] == "USD"
    assert "PnL (USD)" in panel.metrics.value
    # the panel's run binds capital as `zcbench run` does by default and shows the account
    assert summary["capital"]["amount"] == 1_000_000 * summary["money_scale"]
    assert (snap.cash, snap.buying_power_used) == (
        summary["cash_ticks"], summary["buying_power_used_ticks"])
    assert "cash (USD)" in panel.metrics.value
    assert "buying power used (USD)" in panel.metrics.value
    assert "refused: insufficient cash" in panel.risk.value
    # the run `zcbench run` makes by default: its orders went to the paper venue (whose
    # acknowledgements are journaled; the built-in fills have none) and, feedback on, what
    # became of them was logged as feedback IN records before the strategy's next batches
    journal = read_journal(run_dir).rows
    assert "ack" in journal["event"].to_list()
    assert any(r.kind == "in" and is_context(r.body) for r, _ in iter_records(run_dir))
    # the panel's figures are the paper venue's outcomes: fills against orders, positions
    assert (snap.orders, snap.fills) == (summary["orders"], summary["fills"])
    assert f"{snap.fills:,} / {snap.orders:,}" in panel.metrics.value
    held = ", ".join(f"{k} {v:+,}" for k, v in sorted(summary["positions"].items())) or "flat"
    assert dict(snap.risk)["positions"] == held


@pytest.mark.usefixtures("home_of_run")
def test_log_inspector_verifies_and_exports_the_run(
    live_run: tuple[Path, Path, LiveRunPanel], tmp_path: Path
) -> None:
    _, run_dir, _ = live_run
    panel = LogInspector(AuditLogBackend(trust="dev"), path=run_dir, export_dir=tmp_path)
    assert panel.records is not None
    assert panel.records["kind"][0] == "boot"
    report = panel.verify()
    assert report is not None
    assert report.verified, report.message
    assert not [w for w in report.warnings if "no PCR" in w]  # held to the build's commitment
    assert "VERIFIED" in panel.verdict.value
    panel.start.value, panel.stop.value = 1, 5
    out = panel.export()
    assert out is not None, panel.last_error
    panel.start.value, panel.stop.value = 0, panel.records.height
    replayed = panel.replay()
    assert replayed is not None, panel.last_error
    assert replayed.compared > 0
    assert replayed.mismatched == 0
    assert "REPLAY MATCHES" in panel.action_status.value
    sliced = LogInspector(AuditLogBackend(trust="dev"), path=out)
    assert sliced.records is not None
    sliced_report = sliced.verify()
    assert sliced_report is not None
    assert sliced_report.verified, sliced_report.message
    aws = LogInspector(AuditLogBackend(trust="aws"), path=run_dir)
    aws_report = aws.verify()
    assert aws_report is not None
    assert not aws_report.verified
    assert "FAILED" in aws.verdict.value


@pytest.mark.usefixtures("home_of_run")
def test_attestation_panel_over_the_emulator_for_the_build(
    live_run: tuple[Path, Path, LiveRunPanel], tmp_path: Path
) -> None:
    build, _, _ = live_run
    panel = AttestationPanel(emulator_backend(build))
    result = panel.request()
    assert result is not None, panel.last_error
    assert result.verdict == "VERIFIED"
    assert result.report.simulated
    assert result.report.checked_pcrs == (0, 1, 2)
    # A commitment that no longer names the measured image fails on PCR0.
    copy = tmp_path / "build"
    copy.mkdir()
    for item in build.rglob("*"):
        if item.is_file():
            target = copy / item.relative_to(build)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.read_bytes())
    commitment = json.loads((copy / "commitment.json").read_text())
    commitment["pcrs"]["0"] = "00" * 47 + "01"
    (copy / "commitment.json").write_text(json.dumps(commitment))
    failed = AttestationPanel(emulator_backend(copy)).request()
    assert failed is not None
    assert failed.verdict == "FAILED"
    assert failed.report.failed_check == "pcr0"
    missing = AttestationPanel(emulator_backend(tmp_path / "nope"))
    assert missing.request() is None
    assert "zcbench package" in missing.status.value


@pytest.mark.usefixtures("home_of_run")
def test_attestation_panel_asks_a_running_enclave(
    live_run: tuple[Path, Path, LiveRunPanel], tmp_path: Path
) -> None:
    from zcbench.widgets.liverun import RunRequest, running_enclave_backend

    build, _, _ = live_run
    backend = LocalRunBackend(poll_s=0.2)
    panel = AttestationPanel(running_enclave_backend(backend, build))
    backend.booted.set()  # nothing is running yet: the panel says so at once
    assert panel.request() is None
    assert "no local enclave is running" in panel.status.value
    stop = backend.start_in_background(
        RunRequest(build_dir=build, rate=1.0, run_dir=tmp_path / "run")
    )
    try:
        assert backend.booted.wait(60), backend.error
        result = panel.request()
        assert result is not None, panel.last_error
        assert result.verdict == "VERIFIED"
        assert result.report.simulated
        assert result.checkpoint is not None
        assert result.checkpoint.signed, result.checkpoint.problem
        assert "signed by the attested log key" in panel.facts.value
    finally:
        stop.set()
    deadline = time.monotonic() + 60  # a stop is normally seen within a batch
    while backend.handle is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert backend.handle is None


@pytest.mark.usefixtures("home_of_run")
def test_a_request_starts_a_run_when_none_is_going(
    live_run: tuple[Path, Path, LiveRunPanel], tmp_path: Path
) -> None:
    from zcbench.widgets.liverun import RunRequest, running_enclave_backend

    build, _, _ = live_run
    backend = LocalRunBackend(poll_s=0.2)
    attest = running_enclave_backend(
        backend, build, start=RunRequest(build_dir=build, rate=1.0, run_dir=tmp_path / "run")
    )
    panel = AttestationPanel(attest)
    try:
        result = panel.request()
        assert result is not None, panel.last_error
        assert result.verdict == "VERIFIED"
        assert backend.handle is not None
        again = panel.request()  # the same run answers: no second run is started
        assert again is not None
        assert again.verdict == "VERIFIED"
        assert [p.name for p in tmp_path.iterdir()] == ["run"]
    finally:
        if attest.fetch.stop is not None:
            attest.fetch.stop.set()
