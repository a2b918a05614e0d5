"""Feedback as logged inputs: the context codec, the contract's optional context, and a real
local run where a risk limit refuses the strategy's order and the strategy sees it next batch."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cbor2
import polars as pl
import pytest

from zcbench.auditlog.export import export_slice
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.replay import check_replay
from zcbench.cli import main
from zcbench.errors import DataError
from zcbench.host import ReplaySource
from zcbench.host.execution import RiskLimits, read_journal
from zcbench.host.feedback import check_journal
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.replay import EnclaveReplayRunner, replay_log
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
from zcbench.strategy import (
    Batch,
    Context,
    Outcome,
    Signal,
    Strategy,
    apply_strategy,
    decode_context,
    decode_signals,
    encode_context,
    is_context,
)
from zcbench.strategy._feedback import FEEDBACK_VERSION, context_carries_seq


def _context() -> Context:
    return Context(
        4,
        (
            Outcome(7, 0, "AAA", "sent", 5),
            Outcome(7, 0, "AAA", "refused", 5, limit="max_position", reason="position would be 5"),
            Outcome(9, 1, "BBB", "filled", 2, price=1_000_000),
        ),
        (("BBB", 2), ("AAA", -1)),
        (("max_position", 3),),
    )


def test_context_round_trips_through_one_canonical_encoding() -> None:
    ctx = _context()
    data = encode_context(ctx)
    assert is_context(data)
    back = decode_context(data, seq=4)
    assert back == ctx
    assert back.positions == (("AAA", -1), ("BBB", 2))  # sorted: one encoding per context
    assert back.position("AAA") == -1
    assert [o.limit for o in back.refusals()] == ["max_position"]
    assert encode_context(back) == data


def test_a_contexts_seq_is_its_records_and_its_bytes_carry_none() -> None:
    """Version 3: one context has one byte string whichever batch it precedes (the seq is the
    frame's or the record's); a version 2 body (logged before) names its own, held to it."""
    ctx = _context()
    data = encode_context(ctx)
    doc = cbor2.loads(data)
    assert (doc["v"], "seq" in doc) == (FEEDBACK_VERSION, False) == (3, False)
    assert encode_context(dataclasses.replace(ctx, seq=9)) == data
    assert decode_context(data, seq=9) == dataclasses.replace(ctx, seq=9)
    assert not context_carries_seq(data)
    legacy = cbor2.dumps({**doc, "v": 2, "seq": 4}, canonical=True)
    assert context_carries_seq(legacy)
    assert is_context(legacy)
    assert decode_context(legacy, seq=4) == ctx
    with pytest.raises(DataError, match="its bytes say seq 4, it was given as 5"):
        decode_context(legacy, seq=5)
    with pytest.raises(DataError, match="seq must be a non-negative int"):
        decode_context(data, seq=-1)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(v=1),  # the version naming signals by log index
        lambda d: d.update(extra=1),
        lambda d: d.update(seq=4),  # version 3 carries no seq
        lambda d: d.update(v=2),  # version 2 carries one
        lambda d: d.update(v=2, seq=-1),
        lambda d: d.update(v=2, seq=True),
        lambda d: d["outcomes"][0].update(status="lost"),
        lambda d: d["outcomes"][1].update(limit=""),  # a refusal names its limit
        lambda d: d["outcomes"][0].update(quantity=True),
        lambda d: d.update(positions=[["BBB", 2], ["AAA", -1]]),  # not sorted
        lambda d: d.update(limits=[["x", 1], ["x", 2]]),
    ],
)
def test_decoder_is_strict(mutate: object) -> None:
    doc = cbor2.loads(encode_context(_context()))
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(DataError, match="feedback"):
        decode_context(cbor2.dumps(doc, canonical=True), seq=4)


def test_decoder_refuses_non_canonical_and_garbage() -> None:
    doc = cbor2.loads(encode_context(_context()))
    with pytest.raises(DataError):
        decode_context(cbor2.dumps(dict(reversed(doc.items()))), seq=4)  # keys out of order
    for junk in (b"", b"\xff", b"\xa1\x61v\x01", bytes(100)):
        with pytest.raises(DataError):
            decode_context(junk, seq=4)


@dataclass(frozen=True)
class _P:
    pass


class _Plain(Strategy):
    name = "plain"
    params_type = _P
    input_fields = ("price",)

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [Signal("AAA", "buy", 1)]


class _Aware(Strategy):
    name = "aware"
    params_type = _P
    input_fields = ("price",)

    def on_batch(self, batch: Batch, context: Context | None = None) -> Sequence[Signal]:
        if context is None:
            return []
        return [Signal(o.symbol, "sell", 1) for o in context.refusals()]


def test_contract_hands_the_context_only_to_strategies_that_take_it() -> None:
    batch = Batch(0, pl.DataFrame({"ts": [1], "symbol": ["AAA"], "price": [1]}))
    assert apply_strategy(_Plain(_P()), batch, _context()) == [Signal("AAA", "buy", 1)]
    assert apply_strategy(_Aware(_P()), batch) == []
    assert apply_strategy(_Aware(_P()), batch, _context()) == [Signal("AAA", "sell", 1)]


STRATEGY = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from zcbench.strategy import Signal, Strategy


    @dataclass(frozen=True)
    class Params:
        size: int = 5


    class Stubborn(Strategy):
        """Buys too much once; then reports each refusal it is told of in a signal's hints."""

        name = "stubborn"
        params_type = Params
        input_fields = ("price",)

        def __init__(self, params):
            super().__init__(params)
            self.sent = False

        def on_batch(self, batch, context=None):
            out = []
            if context is not None:
                for o in context.refusals():
                    out.append(Signal(o.symbol, "buy", 1, hints=(
                        ("seen_limit", o.limit), ("seen_batch", o.batch),
                        ("seen_position", context.position(o.symbol)))))
            if not self.sent and len(batch):
                self.sent = True
                out.append(Signal(batch.events["symbol"][0], "buy", self.params.size))
            return out
    '''
)


@pytest.mark.slow
def test_refused_order_is_seen_by_the_strategy_in_its_next_batch(tmp_path: Path) -> None:
    module = tmp_path / "stubborn.py"
    module.write_text(STRATEGY)
    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=0.5), seed=3)
    run = tmp_path / "run"
    summary = run_live(
        ModuleImage(module),
        run,
        ReplaySource(events, BatchSpec(count=20)),
        limits=RiskLimits(max_position=3),
        feedback=True,
    )
    assert summary.status == "completed", summary.reason
    records = [r for r, _ in iter_records(run)]
    outs = {r.seq: r for r in records if r.kind == "out"}
    first = next(seq for seq in sorted(outs) if decode_signals(outs[seq].body))
    [order] = decode_signals(outs[first].body)
    assert order.quantity == 5
    # the feedback IN record of the next batch, logged before its market data
    nxt = [r for r in records if r.seq == first + 1]
    assert [r.kind for r in nxt] == ["in", "in", "out"]
    context = decode_context(nxt[0].body, seq=nxt[0].batch_seq)
    assert context.seq == first + 1
    [refusal] = context.refusals()
    assert (refusal.limit, refusal.batch, refusal.signal) == ("max_position", first, 0)
    assert ("max_position", 3) in context.limits
    # and the strategy saw it: its next signals say so (signed in the OUT record)
    [seen] = decode_signals(nxt[2].body)
    assert dict(seen.hints) == {
        "seen_limit": "max_position", "seen_batch": first, "seen_position": 0
    }
    # the buy of 1 that followed is within the limit and was filled: reported one batch later
    later = [r for r in records if r.seq == first + 2 and r.kind == "in"]
    statuses = [o.status for o in decode_context(later[0].body, seq=later[0].batch_seq).outcomes]
    assert statuses == ["sent", "filled"]
    # every journal row is a signed outcome
    signed = [o for r in records if r.kind == "in" and is_context(r.body)
              for o in decode_context(r.body, seq=r.batch_seq).outcomes]
    assert len(signed) == len(read_journal(run).rows)
    assert main(["log", "verify", str(run), "--trust", "dev"]) == 0
    # replay re-feeds the feedback records: byte-identical OUT records, feedback included
    report = replay_log(run, build=ModuleImage(module), trust="dev")
    assert report.verified, report.message
    assert report.skipped == 0
    assert report.matched == len(outs)
    # item 2: the journal is checked row by row against the signed outcomes
    assert check_journal(run) == []
    journal = run / "journal.jsonl"
    original = journal.read_bytes()
    header, *rows = original.splitlines(keepends=True)
    assert len(rows) == 4  # order, reject, order, fill
    edited = json.loads(rows[3])
    edited["quantity"] += 1
    variants = {
        "edited": [*rows[:3], json.dumps(edited, sort_keys=True).encode() + b"\n"],
        "deleted": [rows[0], *rows[2:]],
        "added": [*rows[:2], rows[1], *rows[2:]],
    }
    for word, lines in variants.items():
        journal.write_bytes(header + b"".join(lines))
        [problem] = check_journal(run)
        assert problem.startswith("journal row "), problem
        assert f" {word}" in problem, problem
        assert main(["log", "verify", str(run), "--trust", "dev"]) == 1
    journal.write_bytes(original)
    assert main(["log", "verify", str(run), "--trust", "dev"]) == 0


EVERY_BATCH = textwrap.dedent(
    '''
    from dataclasses import dataclass
    from zcbench.strategy import Signal, Strategy


    @dataclass(frozen=True)
    class Params:
        pass


    class Steady(Strategy):
        """Buys one unit per batch; its hints carry the position it was told of."""

        name = "steady"
        params_type = Params
        input_fields = ("price",)

        def on_batch(self, batch, context=None):
            if not len(batch):
                return []
            told = context.position(batch.events["symbol"][0]) if context else -1
            return [Signal(batch.events["symbol"][0], "buy", 1, hints=(("told", told),))]
    '''
)


@pytest.mark.slow
def test_last_batch_outcomes_are_signed_after_it_and_replay_takes_them(tmp_path: Path) -> None:
    module = tmp_path / "steady.py"
    module.write_text(EVERY_BATCH)
    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=0.2), seed=5)
    run = tmp_path / "run"
    summary = run_live(
        ModuleImage(module), run, ReplaySource(events, BatchSpec(count=50)), feedback=True
    )
    assert summary.status == "completed", summary.reason
    records = [r for r, _ in iter_records(run)]
    last = records[-1]
    assert last.kind == "in"
    assert decode_context(last.body, seq=last.batch_seq).seq == summary.batches
    assert check_journal(run) == []
    report = replay_log(run, build=ModuleImage(module), trust="dev")
    assert report.verified, report.message
    assert report.skipped == 0


def _version_2(context: Context) -> bytes:
    """``context`` as a version 2 body (with its seq), as hosts before version 3 logged it."""
    doc = {**cbor2.loads(encode_context(context)), "v": 2, "seq": context.seq}
    return cbor2.dumps(doc, canonical=True)


@pytest.mark.slow
@pytest.mark.parametrize("logged_version", [3, 2])
def test_a_renumbered_replay_feeds_each_context_as_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged_version: int
) -> None:
    """A slice from the middle of a run is replayed as batches 0, 1, ...: each context's bytes
    are sent and logged as the live run logged them (they carry no seq); a version 2 body, which
    names its logged seq, is the one re-encoded (to version 3, the same context)."""
    module = tmp_path / "steady.py"
    module.write_text(EVERY_BATCH)
    events = generate_ticks(SyntheticConfig(rate=2_000, duration_s=0.2), seed=5)
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        if logged_version == 2:  # a run logged by an older host: its contexts carry their seq
            patch.setattr("zcbench.host.feedback.encode_context", _version_2)
        summary = run_live(ModuleImage(module), run, ReplaySource(events, BatchSpec(count=50)),
                           feedback=True, clock_every_s=None)
    assert summary.status == "completed", summary.reason
    assert summary.batches >= 7
    records = [r for r, _ in iter_records(run)]
    fed = {r.batch_seq: r for r in records if r.kind == "in" and is_context(r.body)}
    assert {context_carries_seq(r.body) for r in fed.values()} == {logged_version == 2}
    out5 = next(r for r in records if r.kind == "out" and r.seq == 5)
    export_slice(run, tmp_path / "slice.cbor", index_range=(fed[3].index, out5.index + 1),
                 trust="dev")
    runner = EnclaveReplayRunner(ModuleImage(module), keep_dir=tmp_path / "replay-log")
    report = check_replay(tmp_path / "slice.cbor", runner, trust="dev")
    assert report.verified, report.message
    assert runner.renumbered
    assert (report.first_seq, report.last_seq, report.batches) == (3, 5, 3)
    replayed = [(r.seq, r.body) for r, _ in iter_records(tmp_path / "replay-log")
                if r.kind == "in" and is_context(r.body)]
    assert [seq for seq, _ in replayed] == [0, 1, 2]
    logged = [fed[seq].body for seq in (3, 4, 5)]
    if logged_version == 2:
        logged = [encode_context(decode_context(b, seq=s)) for s, b in zip((3, 4, 5), logged,
                                                                             strict=True)]
        assert not any(context_carries_seq(b) for b in logged)
    assert [body for _, body in replayed] == logged
