"""The ledger's version history in the LP report and the attestation panel: a real ledger with
three versions (the genesis, an announcement with a notice period later revoked, a successor
that went live) and a real local run held to it."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from tests.promoted_build import make_build
from zcbench.cli import main
from zcbench.ledger import Ledger
from zcbench.ledger.history import version_history
from zcbench.ledger.runs import LedgerRunHook
from zcbench.report import collect_report, report_sections

pytestmark = pytest.mark.slow

ORIGIN = "acme.example/zcbench/demo"
WEEK_NS = 7 * 86_400 * 10**9
PENDING = hashlib.sha384(b"announced, then revoked").digest()
SUCCESSOR = hashlib.sha384(b"the successor").digest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """home/, build/, ledger/ (run, then the announcements), empty-ledger/ and run/."""
    from zcbench.host.live import BuildImage, run_live
    from zcbench.host.proxy import ReplaySource
    from zcbench.marketdata import SyntheticConfig, generate_ticks

    folder = tmp_path_factory.mktemp("report-ledger")
    mp = pytest.MonkeyPatch()
    mp.setenv("ZCBENCH_HOME", str(folder / "home"))
    try:
        make_build(folder)
        image = BuildImage(folder / "build")
        commitment = (folder / "build" / "commitment.json").read_bytes()
        ledger_dir = folder / "ledger"
        Ledger.init_insecure_host_key(
                ledger_dir, origin=ORIGIN, genesis_pcr0=image.expected_pcrs()[0],
                commitment_sha256=hashlib.sha256(commitment).digest()).close()
        shutil.copytree(ledger_dir, folder / "empty-ledger")
        hook = LedgerRunHook(ledger_dir, folder / "run")
        events = generate_ticks(SyntheticConfig(symbols=("AAA",), rate=2000, duration_s=5),
                                seed=3)
        stop = threading.Event()
        timer = threading.Timer(1.5, stop.set)

        def booted(handle: object) -> None:
            timer.start()

        try:
            run_live(image, folder / "run", ReplaySource(events, image.batching(), rate=4.0),
                     trust="dev", stop=stop, on_booted=booted, ledger=hook)
        finally:
            timer.cancel()
        with Ledger.open(ledger_dir) as ledger:
            ledger.announce(PENDING, b"\x02" * 32, notice_ns=WEEK_NS)
            ledger.revoke(PENDING, reason="withdrawn before valid_from")
            ledger.announce(SUCCESSOR, b"\x03" * 32, notice_ns=0)
    finally:
        mp.undo()
    return folder


@pytest.fixture
def home(world: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZCBENCH_HOME", str(world / "home"))
    return world


def test_version_history_of_a_real_ledger(home: Path) -> None:
    history = version_history(home / "ledger")
    assert history.ok, history.message
    genesis, pending, successor = history.versions
    assert genesis.notice_ns == 0
    assert genesis.revoked_ns is None
    assert pending.pcr0 == PENDING
    assert pending.notice_ns == WEEK_NS
    assert pending.revoked_ns is not None
    assert pending.revoked_ns < pending.valid_from_ns
    assert pending.live == ()  # revoked before its valid_from: never live
    # the genesis was live from its append until the successor's valid_from, then the successor
    assert genesis.live == ((genesis.valid_from_ns, successor.valid_from_ns),)
    assert successor.live == ((successor.valid_from_ns, None),)
    (run,) = history.runs
    assert run.pcr0 == genesis.pcr0
    assert run.end_index is not None
    assert genesis.valid_from_ns <= run.started_ns < successor.valid_from_ns


def test_the_lp_report_shows_the_history_and_holds_the_run(home: Path) -> None:
    report = collect_report(home / "run", trust="dev", ledger=home / "ledger")
    assert report.verified
    assert report.ledger is not None
    assert report.ledger.ok
    assert report.ledger_run is not None
    assert report.ledger_run.ok, report.ledger_run.message
    facts = report.to_json()["ledger"]
    assert [v["pcr0"] for v in facts["versions"]][1:] == [PENDING.hex(), SUCCESSOR.hex()]
    assert facts["this_run"]["end_index"] == facts["runs"][0]["end_index"]
    html = "".join(report_sections(report))
    assert "Versions (PCR0 announcements)" in html
    assert PENDING.hex()[:16] in html
    assert SUCCESSOR.hex()[:16] in html
    assert "HELD" in html
    assert "7 days" in html
    assert "zcbench ledger verify ledger" in html
    # the same run against a ledger that never saw it
    missing = collect_report(home / "run", trust="dev", ledger=home / "empty-ledger")
    assert missing.ledger_run is not None
    assert not missing.ledger_run.ok
    assert missing.ledger_run.failed == "run_start"
    assert "NOT HELD" in "".join(report_sections(missing))


def test_cli_report_with_ledger(home: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(home / "run"), "--trust", "dev", "--ledger",
                 str(home / "ledger"), "-o", str(out), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["ledger"]["ok"]
    assert facts["ledger"]["this_run"]["ok"]
    assert "Versions (PCR0 announcements)" in out.read_text()
    assert main(["report", str(home / "run"), "--trust", "dev", "--ledger",
                 str(home / "empty-ledger"), "-o", str(out)]) == 1
    assert "NOT held" in capsys.readouterr().out
    assert main(["report", str(home / "run"), "--trust", "dev", "--ledger",
                 str(tmp_path), "-o", str(out)]) == 2


def test_the_attestation_panel_shows_the_history(home: Path) -> None:
    from zcbench.widgets import AttestationPanel
    from zcbench.widgets._attest_sources import emulator_backend

    origin = version_history(home / "ledger").runs[0].origin
    panel = AttestationPanel(emulator_backend(home / "build"), ledger=home / "ledger",
                             run_origin=origin)
    assert panel.ledger_history is not None
    assert panel.ledger_history.ok
    assert SUCCESSOR.hex()[:16] in panel.ledger.value
    assert f"entry {panel.ledger_history.runs[0].end_index}" in panel.ledger.value
    other = AttestationPanel(emulator_backend(home / "build"), ledger=home / "empty-ledger",
                             run_origin=origin)
    assert "a run the ledger does not hold" in other.ledger.value
