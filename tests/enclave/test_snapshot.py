"""A strategy's snapshot in the enclave runtime: taken, sealed and logged; restored only from
bytes this build sealed whose hash the proven record logs; refused otherwise, with a reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence

import cbor2
import polars as pl

from zcbench.auditlog.link import RunLink, encode_link
from zcbench.auditlog.merkle import CompactRange, MerkleTree, leaf_hash
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.channel import Message, error_message
from zcbench.enclave import EnclaveRuntime
from zcbench.enclave.runtime import _dispatch, _Refused
from zcbench.nitro import DevCA, NsmEmulator
from zcbench.strategy import (
    Batch,
    Signal,
    Strategy,
    decode_signals,
    decode_snapshot_note,
    encode_batch,
    encode_signals,
    encode_snapshot_note,
    encode_state,
)

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
PCRS = {0: b"\x01" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}
OTHER = {0: b"\x09" * 48, 1: b"\x02" * 48, 2: b"\x03" * 48}


@dataclasses.dataclass(frozen=True)
class P:
    pass


class Counter(Strategy):
    """Counts the events it has seen across runs and signals the count as a quantity."""

    name = "counter"
    params_type = P
    input_fields = ("price",)

    def __init__(self, params: P) -> None:
        super().__init__(params)
        self.seen = 0

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        self.seen += batch.events.height
        return [Signal("AAA", "buy", self.seen)]

    def snapshot(self) -> bytes:
        return encode_state({"seen": self.seen})

    def restore(self, state: bytes) -> None:
        doc = cbor2.loads(state)
        self.seen = int(doc["seen"])


def _runtime(pcrs: dict[int, bytes] = PCRS, secret: bytes | None = b"\x05" * 32
             ) -> EnclaveRuntime:
    nsm = NsmEmulator(pcrs=pcrs, ca=DevCA.load_or_create(now=NOW), clock=lambda: NOW)
    return EnclaveRuntime(Counter(P()), nsm, pcr0=pcrs[0], clock=lambda: 1_000,
                          state_secret=secret)


def _batch(seq: int) -> bytes:
    events = pl.DataFrame({"ts": [seq * 10, seq * 10 + 1], "symbol": ["AAA", "AAA"],
                           "price": [100, 101]})
    return encode_batch(Batch(seq, events))


class _Run:
    """A runtime and a copy of its records (as the host keeps them)."""

    def __init__(self, rt: EnclaveRuntime, run_id: str, link: RunLink | None = None) -> None:
        self.rt = rt
        booted = rt.boot(run_id, None if link is None else encode_link(link))
        self.origin = booted["origin"]
        self.records = [booted["record"]]

    def ask(self, msg: Message) -> Message:
        try:
            reply = _dispatch(self.rt, msg)
        except _Refused as exc:  # what serve() turns into an error frame
            return error_message(exc.code, str(exc), None)
        except Exception as exc:
            code = getattr(exc, "code", type(exc).__name__)
            return error_message(str(code), str(exc), None)
        if reply.type == "signals":
            seq = reply["seq"]
            self.records += [b"in", b"out"]  # placeholders: rebuilt below from the leaves
            self.records[-2:] = _batch_records(self.rt, seq, msg["batch"], reply)
        elif reply.type == "feedback_logged":
            self.records.append(encode_record(index=len(self.records), kind="in",
                                              body=msg["body"], time_ns=reply["time_ns"],
                                              seq=msg["seq"]))
            assert leaf_hash(self.records[-1]) == reply["leaf"]
        elif reply.type in ("snapshot_taken", "restored", "caught_up"):
            self.records.append(encode_record(index=len(self.records), kind="note",
                                              body=reply["body"], time_ns=reply["time_ns"]))
            assert leaf_hash(self.records[-1]) == reply["leaf"]
        return reply

    def proof_of(self, index: int) -> dict[str, object]:
        tree = MerkleTree([leaf_hash(r) for r in self.records])
        return {"record": self.records[index], "index": index, "origin": self.origin,
                "size": len(self.records), "root": tree.root(),
                "proof": tree.inclusion_proof(index)}


def _batch_records(rt: EnclaveRuntime, seq: int, batch: bytes, reply: Message) -> list[bytes]:
    from zcbench.auditlog.writer import batch_event_time, batch_records
    from zcbench.strategy import decode_batch

    n = rt.size - 2
    events = decode_batch(batch, seq=seq).events
    records = list(batch_records(n, seq, batch, reply["signals"], time_ns=reply["time_ns"],
                                 event_time_ns=batch_event_time(events.get_column("ts"))))
    assert [leaf_hash(r) for r in records] == list(reply["leaves"])
    return records


def _first_run() -> tuple[_Run, Message]:
    run = _Run(_runtime(), "run-1")
    for seq in range(3):
        assert run.ask(Message("ingest", {"seq": seq, "batch": _batch(seq)})).type == "signals"
    taken = run.ask(Message("snapshot", {}))
    assert taken.type == "snapshot_taken", taken.fields
    return run, taken


def _catch_up_fields(run: _Run, first: int, records: Sequence[bytes] | None = None,
                     *, last: int = 1) -> dict[str, object]:
    """A ``catch_up`` request of ``run``'s records from ``first`` on (``records``: others)."""
    prefix = CompactRange()
    for r in run.records[:first]:
        prefix.append(leaf_hash(r))
    sent = run.records[first:] if records is None else records
    return {"first": first, "range": list(prefix.hashes), "records": list(sent), "last": last}


def _link(run: _Run) -> RunLink:
    tree = MerkleTree([leaf_hash(r) for r in run.records])
    return RunLink(run.origin, len(run.records), tree.root())


def test_a_snapshot_is_sealed_logged_and_restored_by_a_continuing_run() -> None:
    run, taken = _first_run()
    note = decode_snapshot_note(taken["body"])
    plain = encode_state({"seen": 6})
    assert (note.action, note.seq, note.sha256) == ("taken", 3, hashlib.sha256(plain).digest())
    assert plain not in taken["sealed"]  # sealed, not merely wrapped
    index = len(run.records) - 1
    assert decode_record(run.records[index]).body == taken["body"]
    nxt = _Run(_runtime(), "run-2", _link(run))
    restored = nxt.ask(Message("restore", {"sealed": taken["sealed"], **run.proof_of(index)}))
    assert restored.type == "restored", restored.fields
    back = decode_snapshot_note(restored["body"])
    assert (back.action, back.seq, back.sha256) == ("restored", 0, note.sha256)
    assert back.source is not None
    assert (back.source.origin, back.source.index) == (
        run.origin, index)
    # nothing was logged after the snapshot: the catch-up feeds no batch, the state stays
    assert nxt.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))["code"] == (
        "catch_up_order")
    caught = nxt.ask(Message("catch_up", _catch_up_fields(run, index + 1)))
    assert caught.type == "caught_up", caught.fields
    note = decode_snapshot_note(caught["body"])
    assert (note.action, note.seq, note.sha256, note.batches) == ("caught_up", 0, back.sha256, 0)
    assert note.source == back.source
    # the count goes on from the snapshot, at batch 0 of the new run
    signals = nxt.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    assert decode_signals(signals["signals"])[0].quantity == 8
    again = nxt.ask(Message("restore", {"sealed": taken["sealed"], **run.proof_of(index)}))
    assert again["code"] == "restore_order"
    assert nxt.ask(Message("catch_up", _catch_up_fields(run, index + 1)))["code"] == (
        "catch_up_order")
    # a replay of the continuing run restores from its caught_up record, at its seq 0
    replay = _Run(_runtime(), "replay-2")
    proven = nxt.proof_of(len(nxt.records) - 3)  # the caught_up record, before batch 0's two
    assert replay.ask(Message("restore", {"sealed": caught["sealed"], **proven})).type == (
        "restored")
    assert replay.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))["signals"] == (
        signals["signals"])


def test_a_foreign_edited_or_unlogged_snapshot_is_refused_by_name() -> None:
    run, taken = _first_run()
    index = len(run.records) - 1
    sealed = taken["sealed"]
    outer = cbor2.loads(sealed)
    flipped = bytearray(outer["ciphertext"])
    flipped[3] ^= 1
    edited = cbor2.dumps({**outer, "ciphertext": bytes(flipped)}, canonical=True)
    # sealed by an enclave of another build (PCR0), or with another released secret
    foreign_rt = _Run(_runtime(OTHER), "run-x")
    foreign_rt.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    foreign = foreign_rt.ask(Message("snapshot", {}))["sealed"]
    other_key = _Run(_runtime(secret=b"\x06" * 32), "run-y").ask(Message("snapshot", {}))
    # the same build's, but another state than the record logs (an older snapshot)
    older = _Run(_runtime(), "run-z").ask(Message("snapshot", {}))["sealed"]
    cases = [(edited, "snapshot_sealed"), (foreign, "snapshot_sealed"),
             (other_key["sealed"], "snapshot_sealed"), (older, "snapshot_hash")]
    for bad, code in cases:
        nxt = _Run(_runtime(), "run-2", _link(run))
        reply = nxt.ask(Message("restore", {"sealed": bad, **run.proof_of(index)}))
        assert (reply.type, reply["code"]) == ("error", code), (code, reply.fields)
        assert "PCR0" in reply["reason"] or "SHA-256" in reply["reason"]
        # refused: the strategy starts from nothing and the log holds no restored record
        assert decode_signals(nxt.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))[
            "signals"])[0].quantity == 2
    # a record that is not the one proven, or not under the checkpoint the boot names
    nxt = _Run(_runtime(), "run-2", _link(run))
    wrong = {**run.proof_of(index), "index": index - 1}
    assert nxt.ask(Message("restore", {"sealed": sealed, **wrong}))["code"] == (
        "snapshot_record")
    elsewhere = {**run.proof_of(index), "root": b"\x00" * 32}
    assert nxt.ask(Message("restore", {"sealed": sealed, **elsewhere}))["code"] == (
        "snapshot_source")
    batch_record = run.proof_of(1)
    assert nxt.ask(Message("restore", {"sealed": sealed, **batch_record}))["code"] == (
        "snapshot_record")
    # not between a batch's feedback and the batch: the state would miss that context
    from zcbench.strategy import Context, encode_context

    fed = _Run(_runtime(), "run-f")
    fed.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    fed.ask(Message("feedback", {"seq": 1, "body": encode_context(Context(1))}))
    assert fed.ask(Message("snapshot", {}))["code"] == "snapshot_order"
    # the host cannot log a snapshot record of its own
    body = encode_snapshot_note(decode_snapshot_note(taken["body"]))
    assert nxt.ask(Message("record_note", {"body": body}))["code"] == "bad_note"


def test_a_replay_restores_a_snapshot_of_the_log_it_replays_and_goes_on_at_its_seq() -> None:
    run, taken = _first_run()
    index = len(run.records) - 1
    live = run.ask(Message("ingest", {"seq": 3, "batch": _batch(3)}))
    replay = _Run(_runtime(), "replay-1")  # no link: a replay of run-1's log
    restored = replay.ask(Message("restore", {"sealed": taken["sealed"],
                                              **run.proof_of(index)}))
    assert decode_snapshot_note(restored["body"]).seq == 3
    assert replay.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))["code"] == "seq_replay"
    again = replay.ask(Message("ingest", {"seq": 3, "batch": _batch(3)}))
    assert again["signals"] == live["signals"]  # byte for byte what the live run signed


def _killed_run() -> tuple[_Run, Message, int]:
    """A run that logged two batches (one with its feedback) after its newest snapshot, then
    ended without another (as a killed one does)."""
    from zcbench.strategy import Context, encode_context

    run, taken = _first_run()
    index = len(run.records) - 1
    run.ask(Message("ingest", {"seq": 3, "batch": _batch(3)}))
    assert run.ask(Message("feedback", {"seq": 4, "body": encode_context(Context(4))})).type == (
        "feedback_logged")
    run.ask(Message("ingest", {"seq": 4, "batch": _batch(4)}))
    return run, taken, index


def _restored(run: _Run, taken: Message, index: int) -> _Run:
    nxt = _Run(_runtime(), "run-2", _link(run))
    assert nxt.ask(Message("restore", {"sealed": taken["sealed"], **run.proof_of(index)})).type == (
        "restored")
    return nxt


def test_a_continuing_run_catches_up_on_the_batches_logged_after_the_snapshot() -> None:
    run, taken, index = _killed_run()
    nxt = _restored(run, taken, index)
    from zcbench.strategy import Context, encode_context

    for msg in (Message("ingest", {"seq": 0, "batch": _batch(0)}),
                Message("feedback", {"seq": 0, "body": encode_context(Context(0))}),
                Message("snapshot", {})):
        assert nxt.ask(msg)["code"] == "catch_up_order"  # nothing before the catch-up
    # in two requests: the first with the compact range before it, the next going on
    part = _catch_up_fields(run, index + 1, run.records[index + 1:index + 3], last=0)
    assert nxt.ask(Message("catch_up", part)).fields == {"next": index + 3}
    rest = {"first": index + 3, "range": [], "records": run.records[index + 3:], "last": 1}
    caught = nxt.ask(Message("catch_up", rest))
    assert caught.type == "caught_up", caught.fields
    note = decode_snapshot_note(caught["body"])
    assert (note.action, note.seq, note.batches) == ("caught_up", 0, 2)
    assert note.sha256 == hashlib.sha256(encode_state({"seen": 10})).digest()
    assert note.source is not None
    assert note.source.index == index
    # batch 0 of the new run follows batch 4 of the killed one, as in one run
    signals = nxt.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))
    assert decode_signals(signals["signals"])[0].quantity == 12
    # and the next run restores the caught-up state from its caught_up record
    after = _Run(_runtime(), "run-3", _link(nxt))
    at = len(nxt.records) - 3
    assert after.ask(Message("restore", {"sealed": caught["sealed"], **nxt.proof_of(at)})
                     ).type == "restored"


def test_catch_up_records_edited_omitted_or_reordered_are_refused_and_the_state_unused(
        ) -> None:
    run, taken, index = _killed_run()
    after = run.records[index + 1:]
    out = decode_record(after[1])
    assert out.kind == "out"
    forged_out = encode_record(index=out.index, kind="out", seq=out.seq, time_ns=out.time_ns,
                               body=encode_signals([Signal("AAA", "buy", 99)]))
    late_out = encode_record(index=out.index, kind="out", seq=out.seq, time_ns=out.time_ns + 1,
                             body=out.body)
    flipped = _catch_up_fields(run, index + 1)
    flipped["range"] = [bytes([h[0] ^ 1]) + h[1:] for h in flipped["range"]]  # type: ignore[attr-defined]
    cases = [
        (_catch_up_fields(run, index + 1, [after[0], *after[2:]]), "catch_up_records"),
        (_catch_up_fields(run, index + 1, [after[1], after[0], *after[2:]]), "catch_up_records"),
        (_catch_up_fields(run, index + 1, [after[0], forged_out, *after[2:]]),
         "catch_up_signals"),
        (_catch_up_fields(run, index + 1, [after[0], late_out, *after[2:]]), "catch_up_proof"),
        (_catch_up_fields(run, index + 1, after[:-2]), "catch_up_proof"),  # cut short
        (_catch_up_fields(run, index + 1, [*after, after[-1]]), "catch_up_proof"),  # past it
        (_catch_up_fields(run, index + 3, after[2:]), "catch_up_proof"),  # not after it
        (flipped, "catch_up_proof"),
    ]
    for fields, code in cases:
        nxt = _restored(run, taken, index)
        reply = nxt.ask(Message("catch_up", fields))
        assert (reply.type, reply["code"]) == ("error", code), (code, reply.fields)
        # the strategy's state is not used: no batch, no snapshot, no second catch-up
        assert nxt.ask(Message("ingest", {"seq": 0, "batch": _batch(0)}))["code"] == (
            "strategy_failed")
        assert nxt.ask(Message("snapshot", {}))["code"] == "strategy_failed"
        assert nxt.ask(Message("catch_up", _catch_up_fields(run, index + 1)))["code"] == (
            "strategy_failed")
        assert not [r for r in nxt.records if b"caught_up" in r]
    # a replay restores without a link: it has no catch-up, and needs none
    replay = _Run(_runtime(), "replay-1")
    replay.ask(Message("restore", {"sealed": taken["sealed"], **run.proof_of(index)}))
    assert replay.ask(Message("catch_up", _catch_up_fields(run, index + 1)))["code"] == (
        "catch_up_order")
