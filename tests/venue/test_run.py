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
from zcbench.venue.fix import VenueSimulator, decode
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


class _BookAhead(VenueSimulator):
    """A venue whose book holds one more unit of each symbol than it ever reported: a trade
    that did not come from this session (or a venue's own error)."""

    def positions(self, comp_id: str) -> dict[str, int]:
        return {s: q + 1 for s, q in super().positions(comp_id).items()}


@pytest.mark.parametrize("sim_class", [VenueSimulator, _BookAhead])
def test_a_continuing_fix_run_logs_the_venues_positions_and_a_difference_is_named(
    tmp_path: Path, sim_class: type[VenueSimulator]
) -> None:
    from zcbench.host.restart import check_link, read_start_state
    from zcbench.marketdata import load_market_data

    build, ticks = package(tmp_path)
    sim = sim_class(load_market_data(ticks), tmp_path / "drop.fix", tmp_path / "sim-state")
    port = sim.start()
    try:
        base = ["run", str(build), "--data", str(ticks), "--venue", f"fix://127.0.0.1:{port}",
                "--json"]
        first, second = tmp_path / "first", tmp_path / "second"
        assert main([*base, "--run-dir", str(first), "--duration", "1"]) == 0
        assert main([*base, "--run-dir", str(second), "--continue", str(first),
                     "--duration", "0.5"]) == 0
    finally:
        sim.stop()
    start = read_start_state(second)
    assert start is not None
    assert start.version == 3
    assert start.positions, "the first run left no position to carry"
    problems = check_link(first, second)
    if sim_class is VenueSimulator:
        assert start.venue_positions == start.positions  # the venue's book, asked
        assert problems == []
        return
    assert start.venue_positions == tuple((s, q + 1) for s, q in start.positions)
    assert problems == [f"venue positions at start of {second}: {s}: the venue reports "
                        f"{q + 1:+d}, the chain's records and recovered reports make {q:+d}"
                        for s, q in start.positions]
    # reconcile names it a position mismatch, not a broken chain
    from zcbench.venue.reconcile import check_reconciliation

    report = check_reconciliation([first, second], tmp_path / "drop.fix", trust="dev")
    kinds = [(d.kind, d.detail) for d in report.discrepancies]
    assert [k for k, d in kinds if "venue positions at start" in d] == (
        ["position_mismatch"] * len(start.positions))
    assert "chain_broken" not in {k for k, _ in kinds}
