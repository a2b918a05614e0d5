"""A FIX chain whose GTC limit order rests at the end of the first run and fills in the
continuing one (the venue keeps it): the evidence pack holds those fills to the signal of the
first run's signed log, the verified tear sheet counts them, and reconcile finds nothing."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.host.support import REST_THEN_SELL, first_fill_batch, resting_bars
from zcbench.evidence import collect_evidence
from zcbench.host import ReplaySource
from zcbench.host.execution import read_journal
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.options import new_run_id, open_venue
from zcbench.host.restart import Continuation, continue_run
from zcbench.marketdata import BatchSpec
from zcbench.venue import PaperVenue
from zcbench.venue.fix import VenueSimulator
from zcbench.venue.reconcile import check_reconciliation

pytestmark = pytest.mark.slow  # three live runs against the simulator


def _run(image: ModuleImage, bars: pl.DataFrame, run_dir: Path, venue: object,
         run_id: str, continuation: Continuation | None = None) -> None:
    summary = run_live(image, run_dir, ReplaySource(bars, BatchSpec(count=1)),
                       venue=venue, run_id=run_id, feedback=True,  # type: ignore[arg-type]
                       clock_every_s=None, continuation=continuation)
    assert summary.status == "completed", summary.reason


def test_a_fix_chains_carried_fills_are_in_the_signed_log(tmp_path: Path) -> None:
    module = tmp_path / "rest_then_sell.py"
    module.write_text(REST_THEN_SELL)
    image, bars = ModuleImage(module, {}), resting_bars()
    whole = tmp_path / "whole"
    _run(image, bars, whole, PaperVenue(), new_run_id())
    cut = first_fill_batch(whole)
    sim = VenueSimulator(bars, tmp_path / "drop.fix", tmp_path / "sim-state")
    url = f"fix://127.0.0.1:{sim.start()}"
    first, second = tmp_path / "first", tmp_path / "second"
    try:
        ids = new_run_id(), new_run_id()
        _run(image, bars.head(cut), first, open_venue(url, first, ids[0]), ids[0])
        continuation = continue_run(first)
        _run(image, bars.slice(cut), second, open_venue(url, second, ids[1], continuation),
             ids[1], continuation)
    finally:
        sim.stop()
    rows = read_journal(second).rows
    carried = rows.filter(pl.col("cl_ord_id").str.starts_with(f"{ids[0]}-")
                          & (pl.col("event") == "fill"))
    assert carried.height > 0  # the order rested at the venue across the restart and filled
    evidence = collect_evidence([second], trust="dev")
    orders = evidence.tables["orders"]
    assert orders["in_signed_log"].all()
    performance = evidence.tables["performance"].row(0, named=True)
    assert performance["pnl_matches_summary"] is True
    assert performance["n_fills"] == rows.filter(pl.col("event") == "fill").height
    assert orders.filter(pl.col("signal_run_id") == ids[0]).height == carried.height
    report = check_reconciliation([first, second], tmp_path / "drop.fix", trust="dev")
    assert [(d.kind, d.detail) for d in report.discrepancies] == []
