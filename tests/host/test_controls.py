"""Risk limits and controls as signed records: the limits at a run's start, changes, kill and
re-enable by a named operator through the control socket only, and verification flagging a
change made any other way."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
import pytest

from zcbench.auditlog.frame import iter_records
from zcbench.cli import main
from zcbench.errors import DataError, UsageError
from zcbench.host.controls import (
    ControlRecord,
    apply_control,
    control_history,
    decode_control,
    encode_control,
    limits_of,
    parse_assignments,
)
from zcbench.host.execution import RiskLimits, read_journal
from zcbench.host.live import ModuleImage, RunHandle, run_live
from zcbench.host.proxy import LiveSource
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
from zcbench.serve.control import ControlSocket, NoEnclave, control_run


def test_a_control_record_round_trips_through_one_canonical_encoding() -> None:
    record, after = apply_control(RiskLimits(), "set", operator="alice", requested_ns=5,
                                  values={"max_position": 7}, reason="tighten")
    assert after.max_position == 7
    assert record.changed() == {"max_position": (1_000, 7)}
    body = encode_control(record)
    assert decode_control(body) == record
    doc = cbor2.loads(body)
    assert cbor2.dumps(doc, canonical=True) == body
    with pytest.raises(DataError, match="control record"):  # not the canonical encoding
        decode_control(cbor2.dumps(dict(reversed(list(doc.items())))))
    for key, value in (("operator", ""), ("requested_ns", -1), ("extra", 1),
                       ("new", {"max_position": 1})):
        bad = {**doc, key: value}
        with pytest.raises(DataError, match="control record"):
            decode_control(cbor2.dumps(bad, canonical=True))
    start, _ = apply_control(RiskLimits(), "start", operator="bob", requested_ns=1)
    assert start.old == {}
    assert start.new == limits_of(RiskLimits())
    with pytest.raises(DataError, match="start record"):
        decode_control(cbor2.dumps({**cbor2.loads(encode_control(start)),
                                    "old": limits_of(RiskLimits())}, canonical=True))


def test_bad_changes_are_usage_errors_naming_what_to_give() -> None:
    with pytest.raises(UsageError, match="LIMIT=VALUE"):
        parse_assignments(["max_pos=3"])
    with pytest.raises(UsageError, match="kill / enable"):
        parse_assignments(["kill_switch=1"])
    with pytest.raises(UsageError, match="whole number"):
        parse_assignments(["max_position=x"])
    with pytest.raises(UsageError, match="never negative"):
        parse_assignments(["max_position=-1"])
    assert parse_assignments(["max-position=1_000", "price_collar_bps=20"]) == {
        "max_position": 1000, "price_collar_bps": 20}
    with pytest.raises(UsageError, match="operator"):
        apply_control(RiskLimits(), "kill", operator="a\nb", requested_ns=0)
    with pytest.raises(UsageError, match="cannot set kill_switch"):
        apply_control(RiskLimits(), "set", operator="a", requested_ns=0,
                      values={"kill_switch": 0})
    assert ControlRecord("kill", "ops desk", 0, limits_of(RiskLimits()),
                         {**limits_of(RiskLimits()), "kill_switch": 1}).changed() == {
        "kill_switch": (0, 1)}


def test_a_run_that_is_not_live_takes_no_change(tmp_path: Path) -> None:
    with pytest.raises(NoEnclave, match="only while it runs"):
        control_run(tmp_path, "kill", operator="alice")
    assert main(["kill", str(tmp_path), "--operator", "alice"]) == 3


BUYER = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from zcbench.strategy import Signal, Strategy


    @dataclass(frozen=True)
    class Params:
        size: int = 1


    class Seesaw(Strategy):
        """Buys one unit on even batches, sells it back on odd ones."""

        name = "seesaw"
        params_type = Params
        input_fields = ("price",)

        def on_batch(self, batch):
            if not len(batch):
                return []
            side = "buy" if batch.seq % 2 == 0 else "sell"
            return [Signal(batch.events["symbol"][0], side, self.params.size)]
    '''
)


def _operate(run: Path, gates: list[threading.Event], out: dict[str, Any]) -> None:
    steps = [
        ("set", {"max_position": 0}, "alice", "halt new exposure"),
        ("kill", None, "bob", "venue outage"),
        ("enable", None, "carol", "venue back"),
        ("set", {"max_position": 5}, "carol", ""),
    ]
    seen = 0
    try:
        for (action, values, operator, reason), gate in zip(steps, gates, strict=True):
            for _ in range(3000):  # a few batches acted on under the limits before this step
                rows = read_journal(run).rows.height if (run / "journal.jsonl").is_file() else 0
                if rows >= seen + 6:
                    break
                time.sleep(0.01)
            out[action + str(len(out))] = control_run(run, action, operator=operator,
                                                      values=values, reason=reason)
            seen = read_journal(run).rows.height
            gate.set()
    except Exception as exc:  # the test reads it
        out["error"] = exc
        for gate in gates:
            gate.set()


@pytest.mark.slow
def test_limits_changes_kill_and_enable_are_signed_records_and_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    module = tmp_path / "seesaw.py"
    module.write_text(BUYER)
    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=2.5), seed=3)
    n = events.height // 5
    gates = [threading.Event() for _ in range(4)]

    def chunks() -> Any:
        for k in range(5):
            if k:
                assert gates[k - 1].wait(60)
            yield events.slice(k * n, n)

    run = tmp_path / "run"
    control = ControlSocket(run)
    results: dict[str, Any] = {}

    def booted(handle: RunHandle) -> None:
        control.attach(handle)
        threading.Thread(target=_operate, args=(run, gates, results), daemon=True).start()

    try:
        summary = run_live(
            ModuleImage(module), run, LiveSource(chunks(), BatchSpec(count=20), rate=1e6,
                                                  lossless=True),
            limits=RiskLimits(max_orders_per_s=1_000_000), on_booted=booted, operator="dora")
    finally:
        control.close()
    assert "error" not in results, results
    assert summary.status == "completed", summary.reason
    assert summary.risk_limits == {**limits_of(RiskLimits(max_orders_per_s=1_000_000)),
                                   "max_position": 5}
    history = control_history(run, json.loads((run / "summary.json").read_text()))
    assert history.problems == ()
    actions = [(e.record.action, e.record.operator) for e in history.events]
    assert actions == [("start", "dora"), ("set", "alice"), ("kill", "bob"),
                       ("enable", "carol"), ("set", "carol")]
    start, tighten, kill, enable, loosen = history.events
    assert start.log_index == 1  # before the first batch
    assert tighten.record.changed() == {"max_position": (1_000, 0)}
    assert tighten.record.reason == "halt new exposure"
    assert kill.record.changed() == {"kill_switch": (0, 1)}
    assert enable.record.changed() == {"kill_switch": (1, 0)}
    assert [v[0] for v in results.values()] == [e.log_index for e in history.events[1:]]
    # each record is in force from the next batch acted on: the journal shows it
    rows = read_journal(run).rows.to_dicts()

    def between(lo: int, hi: int) -> list[dict[str, Any]]:
        return [r for r in rows if lo < r["log_index"] < hi and r["event"] != "order"]

    tight = between(tighten.log_index, kill.log_index)
    assert any(r["event"] == "reject" for r in tight)
    # under max_position 0 only a sale back to flat fills; every other order is refused
    assert all((r["event"] == "reject" and r["reason"].endswith(", limit 0"))
               or (r["event"] == "fill" and r["position_after"] == 0) for r in tight), tight
    killed = between(kill.log_index, enable.log_index)
    assert killed
    assert all(r["reason"] == "kill switch: engaged by bob: venue outage" for r in killed)
    assert any(r["event"] == "fill" for r in between(loosen.log_index, 10**9))
    assert any(r["event"] == "fill" for r in between(0, tighten.log_index))
    # every control record is a note under the signed log, and the log verifies
    notes = {r.index for r, _ in iter_records(run) if r.kind == "note"}
    assert {e.log_index for e in history.events} <= notes
    assert main(["log", "verify", str(run), "--trust", "dev"]) == 0
    capsys.readouterr()
    assert main(["limits", "show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "set    alice (halt new exposure): max_position 1000 -> 0" in shown
    assert "kill   bob (venue outage): kill_switch 0 -> 1" in shown
    assert main(["log", "show", str(run), "--kind", "note", "--limit", "0"]) == 0
    listing = capsys.readouterr().out
    assert "zcbench.control/1: action=kill" in listing
    assert "zcbench.clock/1: detail=" in listing

    # a limit changed any other way is flagged: a reject naming a limit not logged (its value
    # as the row records it, not its text) ...
    journal = run / "journal.jsonl"
    original = journal.read_bytes()
    first, *rows = original.decode().splitlines(keepends=True)
    refused = next(i for i, line in enumerate(rows) if json.loads(line)["control"]
                   == "max_position" and json.loads(line)["limit_value"] == 0)
    row = json.loads(rows[refused])
    assert row["reason"].endswith(", limit 0")
    row["limit_value"] = 2
    rows[refused] = json.dumps(row, sort_keys=True) + "\n"
    journal.write_text(first + "".join(rows))
    flagged = control_history(run).problems
    assert len(flagged) == 1, flagged
    assert "max_position = 2" in flagged[0]
    assert main(["limits", "show", str(run)]) == 1
    assert main(["log", "verify", str(run), "--trust", "dev"]) == 1  # verification flags it
    # ... a fill while the logged kill switch was engaged ...
    lines = original.decode().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    victim = next(i for i, line in enumerate(body)
                  if kill.log_index < json.loads(line)["log_index"] < enable.log_index
                  and json.loads(line)["event"] == "reject")
    row = json.loads(body[victim])
    row.update(event="fill", reason="", price_ticks=1)
    body[victim] = json.dumps(row, sort_keys=True) + "\n"
    journal.write_text(header + "".join(body))
    assert any("kill switch was engaged" in p for p in control_history(run).problems)
    # ... a paper fill past the logged max_position ...
    body = lines[1:]
    victim = next(i for i, line in enumerate(body)
                  if json.loads(line)["log_index"] > loosen.log_index
                  and json.loads(line)["event"] == "fill")
    row = json.loads(body[victim])
    row["position_after"] = 50
    body[victim] = json.dumps(row, sort_keys=True) + "\n"
    journal.write_text(header + "".join(body))
    assert any("past the logged max_position 5" in p for p in control_history(run).problems)
    journal.write_bytes(original)
    # ... and a summary whose limits are not the last logged ones
    summary_doc = json.loads((run / "summary.json").read_text())
    summary_doc["risk_limits"]["max_position"] = 50
    assert any("summary.json" in p for p in control_history(run, summary_doc).problems)
