"""A host SIGKILLed at random moments of a FIX run and restarted with ``--continue``, again and
again: after the last run, every execution in the venue's drop copy is in the chain's record
exactly once, and the positions agree.

One chain of runs against one ``zcbench venue sim`` (a separate process, its drop copy on
disk): each run continues the last one that got as far as its journal, resuming its FIX
session (sequence numbers carried, so the venue resends what the killed host never stored
and the host resends what the venue never got) and its data after its last logged batch.
Kills land anywhere: during boot, during the session's resume, between the venue's report
and the journal's append, mid-batch. The chain's record of a venue execution is a journal row
or, for one a killed host never journaled, the start state (the signed first IN record) of
the run after it. The test counts ExecIDs itself (each in exactly one place, none left out,
none the venue did not send) and then has ``reconcile`` check the chain: no discrepancy at
all, so no crash window is left open (``not_journaled``, ``missing_in_journal``,
``no_outcome``, ``no_venue_record``), every link holds and the positions from the drop copy
equal the journals' and the last run's summary.

``ZCBENCH_FIX_KILLS`` sets how many kills (default 50). Each kill costs a host's start, about
2 s of CPU: 50 took 11 minutes on two cores shared with other jobs (load 19 to 32).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.venue.support import Sim, package
from zcbench.cli import main
from zcbench.host.execution import read_journal
from zcbench.host.restart import check_link, read_start_state
from zcbench.marketdata import SyntheticConfig, write_ticks
from zcbench.venue.reconcile import check_reconciliation, read_statement

KILLS = int(os.environ.get("ZCBENCH_FIX_KILLS", "50"))
# a host takes seconds to start on loaded cores: the time bound grows with the kills
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 + 30 * KILLS)]


def _rows(run_dir: Path) -> int:
    try:
        return read_journal(run_dir).rows.height
    except Exception:  # not there yet, or mid-write: the next look sees more
        return 0


def _kill_at_random(proc: subprocess.Popen[bytes], run_dir: Path, rng: random.Random) -> bool:
    """SIGKILL the host (and its enclave) at a random moment: a random time after launch, or
    just after a random number of journal rows; False when it ended first."""
    if rng.random() < 0.3:
        deadline = time.monotonic() + rng.uniform(0.0, 5.0)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
    else:
        want = rng.randrange(1, 25)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and _rows(run_dir) < want:
            time.sleep(rng.uniform(0.001, 0.02))
        time.sleep(rng.uniform(0, 0.03))
    alive = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return alive


def test_sigkilled_fix_hosts_restart_with_every_execution_recorded_once(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    build, _ = package(tmp_path)
    # Replayed at real time (--rate 1), so a host uses data in proportion to the time it runs,
    # however fast the machine: a kill lands within 5 s of a start or about 0.3 s of data (25
    # journal rows) after it. 200 s is enough for 38 timed kills of 5 s each, where 15 are
    # expected. (Replayed as fast as possible, 40 s of data lasted 13 s on a loaded machine, and
    # a faster one ran out before the chain's last run.)
    ticks = Path(write_ticks(SyntheticConfig(duration_s=200.0, rate=5000), tmp_path / "d.parquet",
                             seed=3))
    drop = tmp_path / "drop.fix"
    sim = Sim(tmp_path, ticks, drop)
    venue = f"fix://127.0.0.1:{sim.port}"
    chain: list[Path] = []
    kills = 0
    try:
        for k in range(KILLS):
            run_dir = tmp_path / f"run{k}"
            cmd = [sys.executable, "-m", "zcbench", "run", str(build), "--data", str(ticks),
                   "--run-dir", str(run_dir), "--venue", venue, "--rate", "1", "--json"]
            if chain:
                cmd += ["--continue", str(chain[-1])]
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            kills += _kill_at_random(proc, run_dir, rng)
            if (run_dir / "journal.jsonl").exists():
                chain.append(run_dir)  # killed before its journal: it acted on nothing
        last = tmp_path / "final"
        argv = ["run", str(build), "--data", str(ticks), "--run-dir", str(last),
                "--venue", venue, "--duration", "0.5", "--json"]
        assert main([*argv, "--continue", str(chain[-1])] if chain else argv) == 0
        chain.append(last)
    finally:
        sim.stop()
    assert kills >= KILLS - 2, f"seed {seed}: only {kills} hosts were alive to be killed"
    assert len(chain) > 3, f"seed {seed}: too few runs got as far as their journal"

    # every venue execution is recorded exactly once: a journal row, or a start state
    venue_ids = [e.exec_id for _, e in read_statement(drop).executions]
    assert len(set(venue_ids)) == len(venue_ids) > 0
    recorded: collections.Counter[str] = collections.Counter()
    for run_dir in chain:
        recorded.update(x for x in read_journal(run_dir).rows["exec_id"].to_list() if x)
        start = read_start_state(run_dir)
        if start is not None:
            recorded.update(e.exec_id for e in start.executions)
    twice = sorted(x for x, n in recorded.items() if n > 1)
    assert twice == [], f"seed {seed}: recorded more than once: {twice[:5]}"
    assert set(recorded) == set(venue_ids), (
        f"seed {seed}: not recorded {sorted(set(venue_ids) - set(recorded))[:5]}, not the "
        f"venue's {sorted(set(recorded) - set(venue_ids))[:5]}"
    )
    # every link holds, and the whole chain reconciles with the drop copy
    for before, run in itertools.pairwise(chain):
        assert check_link(before, run) == [], f"seed {seed}: {run.name}"
    report = check_reconciliation(chain, drop, trust="dev")
    assert report.ok, f"seed {seed}: {[d.describe() for d in report.discrepancies[:5]]}"
    summary = json.loads((last / "summary.json").read_text())
    assert report.positions == {k: v for k, v in summary["positions"].items() if v}
    assert report.journal_positions == report.positions
