"""``zcbench run --venue fix://`` against ``zcbench venue sim`` (real processes, real TCP):
the same fills as the paper venue, every report in the drop copy and in the journal once."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.venue.support import Sim, package
from zcbench.cli import main
from zcbench.host.execution import read_journal
from zcbench.venue.fix import decode
from zcbench.venue.fix.codec import iter_messages

pytestmark = pytest.mark.slow


@pytest.fixture
def sim_world(tmp_path: Path) -> Iterator[tuple[Path, Path, Sim]]:
    build, ticks = package(tmp_path)
    sim = Sim(tmp_path, ticks, tmp_path / "drop.fix")
    try:
        yield build, ticks, sim
    finally:
        if sim.proc.poll() is None:
            os.kill(sim.proc.pid, signal.SIGKILL)
            sim.proc.wait(timeout=30)


def test_fix_run_fills_as_paper_and_the_drop_copy_holds_every_report(
    tmp_path: Path, sim_world: tuple[Path, Path, Sim]
) -> None:
    build, ticks, sim = sim_world
    venue = f"fix://127.0.0.1:{sim.port}"
    base = ["run", str(build), "--data", str(ticks), "--json"]
    assert main([*base, "--run-dir", str(tmp_path / "fix"), "--venue", venue]) == 0
    assert main([*base, "--run-dir", str(tmp_path / "paper")]) == 0
    sim.stop()
    fix = read_journal(tmp_path / "fix").rows
    paper = read_journal(tmp_path / "paper").rows
    # log indices are left out: clock records sit at wall-clock moments, so the two runs' logs
    # interleave them differently; the batch (seq) each order came from is compared instead
    cols = ["seq", "event", "symbol", "side", "quantity", "price_ticks", "reason"]
    assert fix.height > 0
    assert fix.select(cols).equals(paper.select(cols))  # one venue model, two transports
    drop = [decode(m) for m in iter_messages((tmp_path / "drop.fix").read_bytes())]
    reported = [r for r in fix["exec_id"].to_list() if r]
    assert [m[17] for m in drop] == reported  # type: ignore[index]
    assert len(set(reported)) == len(reported)
