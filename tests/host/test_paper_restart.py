"""A paper venue's resting orders across a restart: a continuing run's paper venue starts with
the orders the previous run's records show still resting (a GTC limit order, partly filled),
which go on filling as in one uninterrupted run; its start state names them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.host.support import REST_THEN_SELL, first_fill_batch, resting_bars
from zcbench.auditlog.frame import iter_records
from zcbench.cli import main
from zcbench.errors import VerificationError
from zcbench.evidence import collect_evidence
from zcbench.host import ReplaySource
from zcbench.host.execution import read_journal
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.restart import carry_paper_orders, continue_run, read_start_state
from zcbench.marketdata import BatchSpec
from zcbench.strategy import decode_signals
from zcbench.venue import PaperVenue


def _run(image: ModuleImage, bars: pl.DataFrame, run: Path, **kw: object) -> None:
    summary = run_live(image, run, ReplaySource(bars, BatchSpec(count=1)), venue=PaperVenue(),
                       feedback=True, clock_every_s=None, **kw)  # type: ignore[arg-type]
    assert summary.status == "completed", summary.reason


def _fills(run: Path) -> list[tuple[str, str, int, int]]:
    rows = read_journal(run).rows.filter(pl.col("event") == "fill")
    return [(r["symbol"], r["side"], r["quantity"], r["price_ticks"])
            for r in rows.iter_rows(named=True)]


def _exec_ids(*runs: Path) -> list[str]:
    return [i for run in runs for i in read_journal(run).rows["exec_id"].to_list() if i]


def _signals(run: Path) -> list[list[object]]:
    return [list(decode_signals(r.body)) for r, _ in iter_records(run) if r.kind == "out"]


@pytest.mark.slow  # three live runs
def test_a_resting_paper_order_survives_a_restart_and_fills_as_in_one_run(
        tmp_path: Path) -> None:
    module = tmp_path / "rest_then_sell.py"
    module.write_text(REST_THEN_SELL)
    image, bars = ModuleImage(module, {}), resting_bars()
    whole, first, second = tmp_path / "whole", tmp_path / "first", tmp_path / "second"
    _run(image, bars, whole)
    expected = _fills(whole)
    assert len([f for f in expected if f[1] == "buy"]) >= 2  # the buy filled in parts
    # the first run ends one batch after the order first filled, in part: it still rests
    cut = first_fill_batch(whole)
    _run(image, bars.head(cut), first)
    held = sum(q for _, side, q, _ in _fills(first) if side == "buy")
    assert 0 < held < 300
    _run(image, bars.slice(cut), second, continuation=continue_run(first))
    # the carried order went on resting and filling: the chain's fills and signals are one
    # uninterrupted run's
    assert _fills(first) + _fills(second) == expected
    assert _signals(first) + _signals(second) == _signals(whole)
    assert any(s for s in _signals(second))  # the sale, once the carried order filled enough
    # the continuing run's signed start state names it, with what was left of it
    start = read_start_state(second)
    assert start is not None
    assert [(o.cl_ord_id, o.leaves_qty) for o in start.open_orders] == [
        (read_journal(first).rows.filter(pl.col("event") == "order")["cl_ord_id"][0],
         300 - held)]
    _carried_fills_are_evidence(first, second)


def _carried_fills_are_evidence(first: Path, second: Path) -> None:
    """The evidence pack holds the carried order's fills in the continuing run to the signal
    of the predecessor's signed log (found through the verified link), counts them in the
    verified tear sheet, and says so plainly when the predecessor's folder is not at hand."""
    first_id = read_journal(first).header["run_id"]
    out = next((r, leaf) for r, leaf in iter_records(first) if r.kind == "out")
    evidence = collect_evidence([second], trust="dev")
    orders = evidence.tables["orders"]
    assert orders["in_signed_log"].all()
    performance = evidence.tables["performance"].row(0, named=True)
    assert performance["pnl_matches_summary"] is True
    assert performance["n_fills"] == len(_fills(second))
    carried = orders.filter(pl.col("signal_run_id") == first_id)
    assert carried.height == len([f for f in _fills(second) if f[1] == "buy"]) > 0
    assert set(carried["out_log_index"]) == {out[0].index}
    assert set(carried["out_leaf_hash"]) == {out[1].hex()}
    assert evidence.tables["runs"]["caveats"].to_list() == [""]
    # the predecessor's folder gone: a named caveat, its fills not taken on trust
    aside, pack = first.with_name("first-aside"), first.with_name("pack")
    first.rename(aside)
    try:
        evidence = collect_evidence([second], trust="dev")
        assert main(["evidence", str(second), "--out", str(pack), "--trust", "dev"]) == 0
    finally:
        aside.rename(first)
    assert "give that run&#x27;s folder" in (pack / "index.html").read_text()
    orders = evidence.tables["orders"]
    assert not orders.filter(pl.col("signal_run_id") == first_id)["in_signed_log"].any()
    [caveat] = evidence.tables["runs"]["caveats"].to_list()
    assert first_id in caveat
    assert "give that run's folder" in caveat
    # given beside it (moved elsewhere), the folder is found by its proven checkpoint
    first.rename(aside)
    try:
        evidence = collect_evidence([aside, second], trust="dev")
    finally:
        aside.rename(first)
    assert evidence.tables["orders"]["in_signed_log"].all()


@pytest.mark.slow  # four live runs
def test_an_order_carried_twice_keeps_resting_and_filling(tmp_path: Path) -> None:
    module = tmp_path / "rest_then_sell.py"
    module.write_text(REST_THEN_SELL)
    image, bars = ModuleImage(module, {}), resting_bars()
    whole, first, mid, last = (tmp_path / n for n in ("whole", "first", "mid", "last"))
    _run(image, bars, whole)
    cut = first_fill_batch(whole)
    _run(image, bars.head(cut), first)
    # a run of one bar that places nothing: the order it carried rests on into the next
    _run(image, bars.slice(cut, 1), mid, continuation=continue_run(first))
    mid_start = read_start_state(mid)
    assert mid_start is not None
    end = continue_run(mid).end
    left = [o.leaves_qty for o in end.orders.values() if o.leaves_qty]
    assert len(left) == 1
    assert 0 < left[0] <= mid_start.open_orders[0].leaves_qty
    _run(image, bars.slice(cut + 1), last, continuation=continue_run(mid))
    assert _fills(first) + _fills(mid) + _fills(last) == _fills(whole)
    assert _signals(first) + _signals(mid) + _signals(last) == _signals(whole)
    # each continuing paper venue numbers its ids after every id of the chain: no ExecID
    # repeats along it, and the chain's ids are those of one run
    ids = _exec_ids(first, mid, last)
    assert len(ids) == len(set(ids)) == len(_exec_ids(whole))
    assert ids == _exec_ids(whole)
    # the signal is read from a log that verifies: a run whose log was edited since carries
    # nothing (it is refused, naming that log)
    segment = first / "log" / "seg-00000000.zlog"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="which placed an order still resting"):
        carry_paper_orders(continue_run(mid).end)
    # nor does the evidence pack take a carried order's fills on trust from an edited log,
    # two links back: they are not in the signed log, and the run's caveat says why
    first_id = read_journal(first).header["run_id"]
    evidence = collect_evidence([last], trust="dev")
    orders = evidence.tables["orders"].filter(pl.col("signal_run_id") == first_id)
    assert orders.height > 0
    assert not orders["in_signed_log"].any()
    [caveat] = evidence.tables["runs"]["caveats"].to_list()
    assert first_id in caveat
