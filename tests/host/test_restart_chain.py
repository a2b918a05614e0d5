"""A run continuing another on the paper venue: its boot names the previous run's final
checkpoint and positions, its first IN record is the venue's state at start, the strategy sees
the carried position (so the restart neither flattens nor doubles it), replay matches, and a
run that names another predecessor breaks the chain where it is checked."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import polars as pl
import pytest

from zcbench.auditlog import events_frame, to_polars
from zcbench.auditlog.checkpoint import parse_checkpoint_note
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.listing import describe_body
from zcbench.auditlog.opening import boot_record_of, start_state_of
from zcbench.auditlog.verify import check_log, nitro_boot_verifier
from zcbench.cli import main
from zcbench.errors import UsageError, ZcbenchError
from zcbench.evidence import collect_evidence
from zcbench.evidence.tearsheet import marks_by_batch
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.replay import replay_log
from zcbench.host.restart import check_link, continue_run
from zcbench.host.sources import market_source
from zcbench.marketdata import BatchSpec
from zcbench.venue import PaperVenue

# Buys 7 AAA once, unless the context says it holds some already: without a carried
# position a restart would buy again (doubling); reading a flat book it would too.
HOLDER = '''
from dataclasses import dataclass
from zcbench.strategy import Batch, Signal, Strategy


@dataclass(frozen=True)
class P:
    quantity: int = 7


class Holder(Strategy):
    name = "holder"
    params_type = P
    input_fields = ("price", "bid", "ask", "size", "bid_size", "ask_size", "kind")

    def __init__(self, params):
        super().__init__(params)
        self.held = None

    def on_batch(self, batch, context=None):
        if context is not None:
            self.held = context.position("AAA")
        if self.held is None and batch.seq == 0:
            self.held = 0
        if self.held == 0 and batch.seq >= 1:
            self.held = self.params.quantity
            return [Signal("AAA", "buy", self.params.quantity)]
        return []
'''


def _source() -> object:
    return market_source(BatchSpec(count=200), rate=2000.0, duration_s=1.0).source


def _run(image: ModuleImage, run_dir: Path, **kw: object) -> dict[str, object]:
    summary = run_live(image, run_dir, _source(), venue=PaperVenue(),  # type: ignore[arg-type]
                       **kw)  # type: ignore[arg-type]
    assert summary.status == "completed", summary.reason
    return dict(summary.positions)


def _carried_pnl(run_dir: Path, quantity: int) -> int:
    """What holding ``quantity`` AAA through the run made: its marks (the tear sheet's rule)
    after the first and the last batch that price it."""
    marks = marks_by_batch(events_frame(run_dir)).filter(pl.col("symbol") == "AAA")
    prices = marks.get_column("price_ticks").to_list()
    return quantity * (prices[-1] - prices[0])


@pytest.mark.slow  # three live runs
def test_a_continuing_run_carries_the_position_and_names_its_predecessor(
    tmp_path: Path,
) -> None:
    module = tmp_path / "holder.py"
    module.write_text(HOLDER)
    image = ModuleImage(module)
    first, second, fork = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _run(image, first) == {"AAA": 7}
    continuation = continue_run(first)
    assert continuation.link.positions == (("AAA", 7),)
    assert _run(image, second, continuation=continuation) == {"AAA": 7}  # not 14, not 0
    # it traded nothing: its PnL is what the carried 7 AAA made over it, not their value
    pnl = json.loads((second / "summary.json").read_text())["pnl_ticks"]
    assert pnl == _carried_pnl(second, 7)
    performance = collect_evidence([second], trust="dev").tables["performance"]
    assert performance["pnl_ticks"].to_list() == [pnl]  # the verified tear sheet agrees

    # the boot document attests the link: the previous run's final checkpoint and positions
    identity = nitro_boot_verifier()(boot_record_of(second), "dev")
    final = parse_checkpoint_note(check_log(first, trust="dev").latest_checkpoint or b"")
    assert identity.previous is not None
    assert (identity.previous.origin, identity.previous.size, identity.previous.root) == (
        final.origin, final.size, final.root)
    start = start_state_of(second)
    assert start is not None
    assert (start.venue, start.position_map, start.executions) == ("paper", {"AAA": 7}, ())
    assert check_link(first, second) == []
    journal = (second / "journal.jsonl").read_text().splitlines()
    assert json.loads(journal[0])["continues"] == str(first.resolve())
    assert all(json.loads(line)["event"] != "order" for line in journal[1:])

    # the readers tell the start state from a batch
    assert "venue state at start (paper): positions AAA +7" in describe_body(
        next(r for r, _ in iter_records(second) if r.index == 1))
    assert to_polars(second)["events"][1] is None
    assert events_frame(second).height == events_frame(first).height

    # replay feeds the start state first: the strategy sees the same position, same signals
    report = replay_log(second, build=image, trust="dev")
    assert report.verified, report.message

    # a run continuing the same predecessor again forks the chain: b -> c does not link
    _run(image, fork, continuation=continue_run(first))
    problems = check_link(second, fork)
    assert any("chain broken" in p for p in problems), problems
    assert check_link(first, fork) == []
    verify = ["log", "verify", "--trust", "dev", "--previous"]
    assert main([*verify, str(first), str(second)]) == 0
    assert main([*verify, str(second), str(fork)]) == 1


def test_only_a_run_folder_can_be_continued(tmp_path: Path) -> None:
    (tmp_path / "not-a-run").mkdir()
    with pytest.raises(UsageError, match="no run folder"):
        continue_run(tmp_path / "not-a-run")


def test_a_run_still_running_is_not_continued(tmp_path: Path) -> None:
    run = tmp_path / "live"
    (run / "control").mkdir(parents=True)
    (run / "journal.jsonl").write_text('{"schema": "zcbench.journal/1"}\n')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(run / "control" / "attest.sock"))
    listener.listen(1)
    try:
        with pytest.raises(UsageError, match="still running"):
            continue_run(run)
    finally:
        listener.close()
    # a killed host's socket is left behind with no one listening: that run can be continued
    with pytest.raises(ZcbenchError) as caught:
        continue_run(run)
    assert "still running" not in str(caught.value)
