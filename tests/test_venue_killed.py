"""A host SIGKILLed at random moments of FIX runs: nothing the venue executed is counted
twice, and reconciliation against the drop copy names exactly the crash windows.

Each kill ends a run (a restarted host starts a new run and a new FIX session: carrying the
session and the positions over is the restart-continuity work, not here). After the kills one
run completes; the chain is reconciled. What a kill may leave, and only in the killed runs:
``not_journaled`` (sent or received by the FIX session, not yet in the journal),
``missing_in_journal`` (the venue's reports the host never received), ``no_venue_record``
(an order stored but never delivered), ``no_outcome`` (a signal of the last signed batch not
yet acted upon), and the ``position_mismatch`` those imply. ``ZCBENCH_FIX_KILLS`` sets how many
kills (default 5; 50 took about ten minutes on two cores under a load of 15 to 25).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_venue_support import Sim, package

from zcbench.cli import main
from zcbench.host.execution import read_journal
from zcbench.venue.reconcile import check_reconciliation

KILLS = int(os.environ.get("ZCBENCH_FIX_KILLS", "5"))
# a run to kill takes seconds to start on loaded cores: the time bound grows with the kills
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120 + 60 * KILLS)]
CRASH_KINDS = {"not_journaled", "missing_in_journal", "no_venue_record", "no_outcome",
               "position_mismatch"}


def _rows(run_dir: Path) -> int:
    try:
        return read_journal(run_dir).rows.height
    except Exception:  # not there yet, or mid-write: the next look sees more
        return 0


def test_sigkilled_fix_hosts_reconcile_to_their_crash_windows(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    build, ticks = package(tmp_path)
    sim = Sim(tmp_path, ticks, tmp_path / "drop.fix")
    venue = f"fix://127.0.0.1:{sim.port}"
    runs: list[Path] = []
    killed: list[str] = []
    try:
        for k in range(KILLS):
            run_dir = tmp_path / f"run{k}"
            runs.append(run_dir)
            cmd = [sys.executable, "-m", "zcbench", "run", str(build), "--data", str(ticks),
                   "--run-dir", str(run_dir), "--venue", venue, "--json"]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            want = rng.randrange(1, 120)
            try:
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline and proc.poll() is None:
                    if _rows(run_dir) >= want:
                        break
                    time.sleep(rng.uniform(0.001, 0.05))
                time.sleep(rng.uniform(0, 0.05))
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed.append(str(run_dir))
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
            if not (run_dir / "journal.jsonl").exists():
                runs.pop()  # killed before its run started: nothing acted on
                killed = [r for r in killed if r != str(run_dir)]
        last = tmp_path / "final"
        assert main(["run", str(build), "--data", str(ticks), "--run-dir", str(last),
                     "--venue", venue, "--json"]) == 0
        runs.append(last)
    finally:
        sim.stop()
    report = check_reconciliation(runs, tmp_path / "drop.fix", trust="dev")
    assert killed, f"seed {seed}: no run was killed mid-way"
    bad = [d for d in report.discrepancies if d.kind not in CRASH_KINDS]
    assert bad == [], f"seed {seed}: {[d.describe() for d in bad[:5]]}"
    final_id = read_journal(last).header["run_id"]
    for d in report.discrepancies:
        if d.run:
            assert d.run in killed, f"seed {seed}: {d.describe()}"
        if d.kind == "missing_in_journal":
            assert final_id not in d.detail, f"seed {seed}: {d.describe()}"
    if any(d.kind == "position_mismatch" for d in report.discrepancies):
        assert any(d.kind in ("missing_in_journal", "no_venue_record")
                   for d in report.discrepancies), f"seed {seed}"
