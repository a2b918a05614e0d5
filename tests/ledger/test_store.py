"""The ledger: entries, rules (announce, notice, revoke, the allowed set), storage and recovery,
the sealed ledger key, and runs in the ledger."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog import LogDamageError, LogFormatError, NoteError
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.keys import LocalKeyBroker
from zcbench.ledger._errors import LedgerFormatError, LedgerKeyRefused, LedgerRuleError
from zcbench.ledger.entries import (
    MAX_ENTRY_BYTES,
    CommitmentEntry,
    RevocationEntry,
    RunCheckpointEntry,
    RunEndEntry,
    RunStartEntry,
    decode_entry,
    encode_entry,
)
from zcbench.ledger.key import KEY_FILE, kms_ledger_key_policy
from zcbench.ledger.store import Ledger, checkpoint_of

T0 = 1_700_000_000 * 10**9
P0 = hashlib.sha384(b"build 0").digest()
P1 = hashlib.sha384(b"build 1").digest()
P2 = hashlib.sha384(b"build 2").digest()
ORIGIN = "acme.example/zcbench/ma-crossover"


def make(tmp_path: Path) -> Ledger:
    return Ledger.init_insecure_host_key(tmp_path / "ledger", origin=ORIGIN, genesis_pcr0=P0,
                       commitment_sha256=b"\x01" * 32, at_ns=T0)


def test_entries_round_trip_and_are_strict() -> None:
    bodies = [
        CommitmentEntry(P0, b"\x01" * 32, T0),
        RevocationEntry(P1, "withdrawn"),
        RunStartEntry(P0, "zcbench/" + P0.hex()[:16] + "/r1", "v+00000000+AA", b"\x02" * 32,
                      None),
        RunCheckpointEntry("o", b"note\n"),
        RunEndEntry("o", b"note\n", b"\x03" * 32),
    ]
    for i, body in enumerate(bodies):
        data = encode_entry(index=i, time_ns=T0, body=body)
        entry = decode_entry(data)
        assert (entry.index, entry.time_ns, entry.body) == (i, T0, body)
        doc = cbor2.loads(data)
        for bad in (
            {**doc, "extra": 1},
            {**doc, "v": 2},
            {**doc, "type": "upgrade"},
            {**doc, "body": {**doc["body"], "more": 1}},
            {**doc, "index": -1},
        ):
            with pytest.raises(LedgerFormatError):
                decode_entry(cbor2.dumps(bad, canonical=True))
        with pytest.raises(LedgerFormatError):
            decode_entry(cbor2.dumps(doc, canonical=False) if list(doc) != sorted(
                doc, key=lambda k: (len(k), k)) else data + b"\x00")
    with pytest.raises(LedgerFormatError, match="exceeds"):
        decode_entry(b"\xa5" + b"\x00" * MAX_ENTRY_BYTES)
    with pytest.raises(ValueError, match="pcr0"):
        encode_entry(index=0, time_ns=T0, body=CommitmentEntry(bytes(48), b"\x01" * 32, T0))
    # the field bounds keep the largest entry of any type inside the tlog-tiles bound
    largest = encode_entry(index=2**64 - 1, time_ns=-(2**63),
                           body=RunEndEntry("o" * 1024, b"n" * 16_384, b"\x03" * 32))
    assert len(largest) < MAX_ENTRY_BYTES
    with pytest.raises(ValueError, match="final_checkpoint"):
        encode_entry(index=0, time_ns=T0, body=RunEndEntry("o", b"n" * 16_385, b"\x03" * 32))


def test_genesis_announce_notice_and_allowed_set(tmp_path: Path) -> None:
    ledger = make(tmp_path)
    assert [v.pcr0 for v in ledger.state.allowed(T0)] == [P0]
    ledger.announce(P1, b"\x02" * 32, notice_ns=60 * 10**9, at_ns=T0 + 10)
    valid_from = T0 + 10 + 60 * 10**9
    assert [v.pcr0 for v in ledger.state.allowed(valid_from - 1)] == [P0]
    assert [v.pcr0 for v in ledger.state.allowed(valid_from)] == [P0, P1]
    assert ledger.state.live(valid_from).pcr0 == P1  # type: ignore[union-attr]
    # the successor cannot get the key before valid_from, and gets it after
    with pytest.raises(LedgerKeyRefused, match="valid only from"):
        ledger.key.release(P1, ledger.state, valid_from - 1)
    assert ledger.key.release(P1, ledger.state, valid_from).vkey == ledger.vkey
    with pytest.raises(LedgerKeyRefused, match="not announced"):
        ledger.key.release(P2, ledger.state, valid_from)
    statement = kms_ledger_key_policy(ledger.state, principal_arn="arn:aws:iam::1:role/r",
                                      at_ns=valid_from)
    condition = statement["Condition"]["StringEqualsIgnoreCase"]
    assert sorted(condition["kms:RecipientAttestation:ImageSha384"]) == sorted(
        [P0.hex(), P1.hex()])
    ledger.close()


def test_rules_refuse_with_their_reason_and_leave_the_ledger_unchanged(tmp_path: Path) -> None:
    ledger = make(tmp_path)
    ledger.announce(P1, b"\x02" * 32, notice_ns=100, at_ns=T0 + 10)
    size, notes = ledger.size, ledger.checkpoint_notes()
    cases = [
        (lambda: ledger.append(CommitmentEntry(P2, b"\x03" * 32, T0 + 19), at_ns=T0 + 20),
         "valid_from"),
        (lambda: ledger.announce(P1, b"\x02" * 32, notice_ns=0, at_ns=T0 + 20),
         "announced_twice"),
        (lambda: ledger.revoke(P0, at_ns=T0 + 20), "revoke_live"),
        (lambda: ledger.revoke(P2, at_ns=T0 + 20), "revoke_unknown"),
        (lambda: ledger.append(CommitmentEntry(P2, b"\x03" * 32, T0 + 5), at_ns=T0 + 5),
         "entry_time"),
    ]
    for attempt, check in cases:
        with pytest.raises(LedgerRuleError) as info:
            attempt()
        assert info.value.check == check
        assert (ledger.size, ledger.checkpoint_notes()) == (size, notes)
    # a revoked announcement never can: neither the key, nor a run, nor a second announcement
    ledger.revoke(P1, reason="bad build", at_ns=T0 + 50)
    with pytest.raises(LedgerKeyRefused):
        ledger.key.release(P1, ledger.state, T0 + 10**12)
    with pytest.raises(LedgerRuleError) as info:
        ledger.revoke(P1, at_ns=T0 + 60)
    assert info.value.check == "revoked_twice"
    with pytest.raises(LedgerRuleError):
        ledger.announce(P1, b"\x02" * 32, notice_ns=0, at_ns=T0 + 60)
    # a retired version may be revoked once its successor is live
    ledger.announce(P2, b"\x03" * 32, notice_ns=0, at_ns=T0 + 70)
    ledger.revoke(P0, at_ns=T0 + 80)
    assert [v.pcr0 for v in ledger.state.allowed(T0 + 80)] == [P2]
    assert [v.pcr0 for v in ledger.state.allowed(T0 + 75)] == [P0, P2]  # history is kept
    ledger.close()
    reopened = Ledger.open(tmp_path / "ledger")
    assert reopened.size == 5
    assert [v.pcr0 for v in reopened.state.allowed(T0 + 80)] == [P2]
    reopened.close()


def test_ledger_key_is_sealed_and_checkpoints_verify(tmp_path: Path) -> None:
    ledger = make(tmp_path)
    sealed = (tmp_path / "ledger" / "ledger-key.sealed").read_bytes()
    assert (tmp_path / "ledger" / "ledger-key.sealed").stat().st_mode & 0o077 == 0
    signer = ledger.key.release(P0, ledger.state, T0)
    seed = signer._signer.private_key.private_bytes_raw()
    assert seed not in sealed
    note = ledger.latest_checkpoint()
    assert checkpoint_of(note, ledger.vkey).size == 1
    forged = LogSigner(Ed25519PrivateKey.generate(), ORIGIN).sign(1, checkpoint_of(
        note, ledger.vkey).root)
    with pytest.raises(NoteError):
        checkpoint_of(forged, ledger.vkey)
    ledger.close()
    # reopening checks the newest checkpoint's signature: a forged one is refused
    cp_file = tmp_path / "ledger" / "log" / "checkpoints.zlog"
    from zcbench.auditlog._frames import frame

    with cp_file.open("ab") as out:
        out.write(frame(forged))
    with pytest.raises(NoteError):
        Ledger.open(tmp_path / "ledger")


def run_log(pcr0: bytes, run_id: str) -> tuple[LogSigner, str]:
    origin = log_origin(pcr0, run_id)
    return LogSigner(Ed25519PrivateKey.generate(), origin), origin


def test_runs_chain_and_a_hidden_run_is_refused(tmp_path: Path) -> None:
    ledger = make(tmp_path)
    signer, origin = run_log(P0, "run-1")
    ledger.append(RunStartEntry(P0, origin, signer.vkey, b"\x05" * 32, None), at_ns=T0 + 1)
    cp3 = signer.sign(3, b"\x07" * 32)
    ledger.append(RunCheckpointEntry(origin, cp3), pcr0=P0, at_ns=T0 + 2)
    with pytest.raises(LedgerRuleError) as info:
        ledger.append(RunCheckpointEntry(origin, signer.sign(2, b"\x08" * 32)), at_ns=T0 + 3)
    assert info.value.check == "run_rollback"
    other = LogSigner(Ed25519PrivateKey.generate(), origin)
    with pytest.raises(LedgerRuleError) as info:
        ledger.append(RunCheckpointEntry(origin, other.sign(4, b"\x08" * 32)), at_ns=T0 + 3)
    assert info.value.check == "run_checkpoint"
    final = signer.sign(5, b"\x09" * 32)
    ledger.append(RunEndEntry(origin, final, b"\x0a" * 32), at_ns=T0 + 4)
    signer2, origin2 = run_log(P0, "run-2")
    # run 2 must name run 1's final checkpoint: naming none hides run 1
    with pytest.raises(LedgerRuleError) as info:
        ledger.append(RunStartEntry(P0, origin2, signer2.vkey, b"\x06" * 32, None), at_ns=T0 + 5)
    assert info.value.check == "run_previous_checkpoint"
    ledger.append(RunStartEntry(P0, origin2, signer2.vkey, b"\x06" * 32, final), at_ns=T0 + 5)
    # a PCR0 not allowed cannot start a run
    signer3, origin3 = run_log(P1, "run-3")
    with pytest.raises(LedgerRuleError) as info:
        ledger.append(RunStartEntry(P1, origin3, signer3.vkey, b"\x06" * 32, None),
                      pcr0=P0, at_ns=T0 + 6)
    assert info.value.check == "run_pcr0_allowed"
    assert ledger.state.runs[origin].ended
    assert not ledger.state.runs[origin2].ended
    ledger.close()


def test_a_state_snapshot_answers_every_rule_as_the_full_replay_and_is_strict(
        tmp_path: Path) -> None:
    import copy

    from zcbench.ledger.entries import ControlEntry, LedgerEntry
    from zcbench.ledger.rules import LedgerState

    ledger = make(tmp_path)
    ledger.announce(P1, b"\x02" * 32, notice_ns=0, at_ns=T0 + 1)
    ledger.announce(P2, b"\x03" * 32, notice_ns=10**12, at_ns=T0 + 2)
    ledger.revoke(P0, reason="retired", at_ns=T0 + 3)
    signer, origin = run_log(P1, "run-1")
    ledger.append(RunStartEntry(P1, origin, signer.vkey, b"\x05" * 32, None), at_ns=T0 + 4)
    ledger.append(ControlEntry(origin, 1, b"\x06" * 32, "start", "dora"), at_ns=T0 + 5)
    ledger.append(RunCheckpointEntry(origin, signer.sign(3, b"\x07" * 32)), at_ns=T0 + 6)
    full = ledger.state
    restored = LedgerState.from_snapshot(cbor2.loads(cbor2.dumps(full.snapshot())),
                                         signed_history=False)
    assert restored.snapshot() == full.snapshot()
    assert restored.versions == full.versions
    assert restored.runs[origin].last_checkpoint == full.runs[origin].last_checkpoint
    # the next entries meet the same rules on both
    seen = []
    for body in (ControlEntry(origin, 1, b"\x06" * 32, "kill", "bob"),  # not forward
                 ControlEntry(origin, 2, b"\x06" * 32, "start", "bob"),  # a second start
                 RunCheckpointEntry(origin, signer.sign(2, b"\x08" * 32)),  # went back
                 ControlEntry(origin, 2, b"\x06" * 32, "kill", "bob"),
                 RunEndEntry(origin, signer.sign(4, b"\x09" * 32), b"\x0a" * 32)):
        entry = LedgerEntry(full.size, T0 + 7, body)
        outcomes = []
        for state in (copy.deepcopy(full), copy.deepcopy(restored)):
            try:
                state.apply(entry)
                outcomes.append("ok")
            except LedgerRuleError as exc:
                outcomes.append(str(exc.check))
        assert outcomes[0] == outcomes[1], body
        seen.append(outcomes[0])
    assert seen == ["control_order", "control_order", "run_rollback", "ok", "ok"]
    doc = full.snapshot()
    for bad in ([2, *doc[1:]], doc[:-1], [*doc[:3], [[P1[:47], *doc[3][0][1:]]], *doc[4:]],
                [*doc[:5], "zcbench/none/run-9"], [doc[0], -1, *doc[2:]],
                [*doc[:3], doc[3] + doc[3][:1], *doc[4:]]):
        with pytest.raises(ValueError, match="snapshot"):
            LedgerState.from_snapshot(bad)
    ledger.close()


def test_torn_tail_is_cut_and_reported_mid_damage_refused(tmp_path: Path) -> None:
    ledger = make(tmp_path)
    ledger.announce(P1, b"\x02" * 32, notice_ns=0, at_ns=T0 + 1)
    ledger.close()
    segment = tmp_path / "ledger" / "log" / "seg-00000000.zlog"
    whole = segment.read_bytes()
    with segment.open("ab") as out:
        out.write(b"\x00\x00\x01\x00\xa5partial")  # a frame the crash cut short
    reopened = Ledger.open(tmp_path / "ledger")
    assert reopened.recovery.classification == "torn_tail"
    assert segment.read_bytes() == whole
    assert reopened.size == 2
    reopened.announce(P2, b"\x03" * 32, notice_ns=0, at_ns=T0 + 2)
    reopened.close()
    data = bytearray(segment.read_bytes())
    data[40] ^= 0x01  # inside the first entry, whole entries follow
    segment.write_bytes(bytes(data))
    # below the verified record an open reads nothing; every whole read refuses the damage
    from zcbench.ledger.store import VERIFIED_FILE
    from zcbench.ledger.verify import check_ledger

    assert check_ledger(tmp_path / "ledger").failed == "corrupt"
    from zcbench.ledger._errors import LedgerVerificationError

    with Ledger.open(tmp_path / "ledger") as tail_only, pytest.raises(
            LedgerVerificationError, match="corrupt"):
        tail_only.entries  # noqa: B018
    (tmp_path / "ledger" / VERIFIED_FILE).unlink()
    with pytest.raises(LogDamageError, match="corrupt"):
        Ledger.open(tmp_path / "ledger")


def test_entries_written_by_anything_but_the_rules_are_refused_on_open(tmp_path: Path) -> None:
    from zcbench.auditlog.storage import LogStore
    from zcbench.ledger._errors import LedgerVerificationError
    from zcbench.ledger.entries import LEDGER_ENTRIES

    ledger = make(tmp_path)
    signer = ledger.key.release(P0, ledger.state, T0 + 1)
    ledger.close()
    store = LogStore.open(tmp_path / "ledger" / "log", codec=LEDGER_ENTRIES)
    store.append([encode_entry(index=1, time_ns=T0 + 1,
                               body=CommitmentEntry(P1, b"\x02" * 32, T0))])  # valid_from < append
    store.sync()
    store.add_checkpoint(signer.sign(store.size, store.root()))  # even signed by the ledger key
    store.close()
    with pytest.raises(LedgerVerificationError, match="valid from"):
        Ledger.open(tmp_path / "ledger")


def test_an_unsigned_tail_that_breaks_a_rule_is_rolled_back(tmp_path: Path) -> None:
    from zcbench.ledger.store import read_recoveries

    make(tmp_path).close()
    bad = encode_entry(index=1, time_ns=T0 + 1, body=CommitmentEntry(P1, b"\x02" * 32, T0))
    _write_unsigned(tmp_path / "ledger", bad)
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert ledger.size == 1
        assert ledger.tail_recovery is not None
        assert ledger.tail_recovery.action == "rolled_back"
        assert "breaks a rule (valid_from)" in ledger.tail_recovery.reason
    [record] = read_recoveries(tmp_path / "ledger")
    assert record["entries"][0]["sha256"] == hashlib.sha256(bad).hexdigest()


def _write_unsigned(folder: Path, data: bytes) -> None:
    """What a crash between an entry's fsync and its checkpoint's leaves (no pending entry:
    the code before it wrote one, or a pending file lost)."""
    from zcbench.auditlog.storage import LogStore
    from zcbench.ledger.entries import LEDGER_ENTRIES

    store = LogStore.open(folder / "log", codec=LEDGER_ENTRIES)
    store.append([data])
    store.sync()
    store.close()


def test_init_refuses_a_used_folder_and_a_bad_origin(tmp_path: Path) -> None:
    from zcbench.errors import UsageError

    make(tmp_path).close()
    with pytest.raises(UsageError, match="new folder"):
        make(tmp_path)
    with pytest.raises(UsageError, match="origin"):
        Ledger.init_insecure_host_key(tmp_path / "x", origin="no-slashes", genesis_pcr0=P0,
                    commitment_sha256=b"\x01" * 32)


def test_an_unsigned_tail_without_its_checkpoint_is_rolled_back_on_open_and_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import base64
    import json

    from zcbench.cli import main
    from zcbench.ledger.store import read_recoveries
    from zcbench.ledger.verify import check_ledger

    make(tmp_path).close()
    # the crash: the entry is durable, its checkpoint was never signed (nor kept pending)
    lost = encode_entry(index=1, time_ns=T0 + 1, body=CommitmentEntry(P1, b"\x02" * 32, T0 + 1))
    _write_unsigned(tmp_path / "ledger", lost)
    report = check_ledger(tmp_path / "ledger")  # read-only: reports the tail, changes nothing
    assert report.ok
    assert any("not checkpointed" in w for w in report.warnings)
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert ledger.tail_recovery is not None
        assert ledger.tail_recovery.action == "rolled_back"
        assert ledger.tail_recovery.entries == ((1, "commitment",
                                                 hashlib.sha256(lost).hexdigest()),)
        assert ledger.size == 1  # the unacknowledged entry is gone, the next index is 1 again
        ledger.announce(P2, b"\x03" * 32, notice_ns=0, at_ns=T0 + 2)
        assert checkpoint_of(ledger.latest_checkpoint(), ledger.vkey).size == 2
        assert ledger.entries[1].body.pcr0 == P2  # type: ignore[union-attr]
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert ledger.tail_recovery is None  # settled once, durably
    [record] = read_recoveries(tmp_path / "ledger")
    assert record["action"] == "rolled_back"
    assert base64.b64decode(record["entries"][0]["bytes"]) == lost  # kept in the record
    after = check_ledger(tmp_path / "ledger")
    assert after.ok
    assert not any("not checkpointed" in w for w in after.warnings)
    assert any("rolled back" in w for w in after.warnings)  # never silent
    assert main(["ledger", "verify", str(tmp_path / "ledger"), "--json"]) == 0
    assert any("rolled back" in w for w in json.loads(capsys.readouterr().out)["warnings"])


_KILLED_WRITER = """
import hashlib, sys
from pathlib import Path
from zcbench.auditlog.storage import LogStore
from zcbench.ledger import Ledger

def stop_here(*_args):  # the kill point
    print("K", flush=True)
    sys.stdin.read()

ledger = Ledger.open(Path(sys.argv[1]))
KILL_POINT = stop_here
ledger.announce(hashlib.sha384(b"build 1").digest(), b"\\x02" * 32, notice_ns=0)
"""


def _kill_a_writer_at(root: Path, point: str) -> None:
    """A new ledger in ``root``, then a writer process announcing a build, SIGKILLed when it
    reaches ``point`` (``LogStore.append``: before the entry's write; ``LogStore.add_checkpoint``:
    after the entry's fsync, before its checkpoint's)."""
    import os
    import signal
    import subprocess
    import sys

    Ledger.init_insecure_host_key(
            root, origin=ORIGIN, genesis_pcr0=P0, commitment_sha256=b"\x01" * 32).close()
    script = _KILLED_WRITER.replace("KILL_POINT", point)
    process = subprocess.Popen([sys.executable, "-c", script, str(root)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ})
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        assert process.stdout.readline() == b"K\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        process.stdin.close()


def test_an_append_killed_before_its_entry_is_written_is_recorded_as_discarded(
        tmp_path: Path) -> None:
    """Killed after the pending entry (signed) and before the entry's write: nothing to
    complete or cut, but the ledger key's signature over it is recorded, not dropped."""
    from zcbench.ledger.store import read_recoveries
    from zcbench.ledger.verify import check_ledger

    _kill_a_writer_at(tmp_path / "ledger", "LogStore.append")
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert ledger.size == 1
        assert ledger.tail_recovery is not None
        assert ledger.tail_recovery.action == "discarded"
        assert ledger.tail_recovery.entries[0][:2] == (1, "commitment")
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert ledger.tail_recovery is None  # recorded once
    [record] = read_recoveries(tmp_path / "ledger")
    assert record["action"] == "discarded"
    assert "bytes" in record["entries"][0]
    assert record["checkpoint"].startswith(ORIGIN + "\n2\n")  # the signature it made
    report = check_ledger(tmp_path / "ledger")
    assert report.ok
    assert any("discarded" in w for w in report.warnings)


def test_an_append_killed_before_its_checkpoint_is_completed_on_the_next_open(
        tmp_path: Path) -> None:
    """A writer SIGKILLed between the entry's fsync and its checkpoint's: the next open stores
    the checkpoint the ledger key signed over it (kept pending), records that, and the ledger
    verifies."""
    from zcbench.ledger.store import read_recoveries
    from zcbench.ledger.verify import check_ledger

    _kill_a_writer_at(tmp_path / "ledger", "LogStore.add_checkpoint")
    before = check_ledger(tmp_path / "ledger")
    assert (before.size, before.checkpoint_size) == (2, 1)  # the unsigned tail the kill left
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert ledger.tail_recovery is not None
        assert ledger.tail_recovery.action == "completed"
        assert checkpoint_of(ledger.latest_checkpoint(), ledger.vkey).size == 2
        assert ledger.state.versions[P1].index == 1
        ledger.announce(P2, b"\x03" * 32, notice_ns=0)
    assert [r["action"] for r in read_recoveries(tmp_path / "ledger")] == ["completed"]
    after = check_ledger(tmp_path / "ledger")
    assert after.ok, after.message
    assert (after.size, after.checkpoint_size) == (3, 3)


def test_two_writers_take_turns(tmp_path: Path) -> None:
    make(tmp_path).close()
    first = Ledger.open(tmp_path / "ledger")
    second = Ledger.open(tmp_path / "ledger")
    first.announce(P1, b"\x02" * 32, notice_ns=0, at_ns=T0 + 1)
    appended = second.announce(P2, b"\x03" * 32, notice_ns=0, at_ns=T0 + 2)
    assert appended.entry.index == 2  # the second writer read the first's entry before its own
    with pytest.raises(LedgerRuleError):
        first.announce(P2, b"\x03" * 32, notice_ns=0, at_ns=T0 + 3)  # and so does the first
    first.close()
    second.close()
    with Ledger.open(tmp_path / "ledger") as ledger:
        assert [v.pcr0 for v in ledger.state.versions.values()] == [P0, P1, P2]


def test_the_broker_opens_a_sealed_secret_only_under_its_name(tmp_path: Path) -> None:
    from zcbench.keys import KeyReleaseRefused, LocalKeyBroker

    broker = LocalKeyBroker()
    blob = broker.seal_secret("ledger.a", b"\x05" * 32)
    assert broker.open_secret(blob, "ledger.a") == b"\x05" * 32
    with pytest.raises(KeyReleaseRefused):
        broker.open_secret(blob, "ledger.b")
    with pytest.raises(KeyReleaseRefused):
        broker.open_secret(blob[:-1] + bytes([blob[-1] ^ 1]), "ledger.a")
    assert any("not the secret" in r.reason for r in broker.refusals())
    with pytest.raises(KeyReleaseRefused):  # another broker (another home) cannot open it
        LocalKeyBroker(tmp_path / "other-broker").open_secret(blob, "ledger.a")


def test_entries_the_enclave_signed_are_stored_only_when_they_cover_this_ledger(
        tmp_path: Path) -> None:
    from zcbench.auditlog.merkle import CompactRange, leaf_hash
    from zcbench.ledger import LedgerVerificationError
    from zcbench.ledger.key import secret_name

    ledger = make(tmp_path)
    broker = LocalKeyBroker()
    seed = broker.open_secret((tmp_path / "ledger" / KEY_FILE).read_bytes(), secret_name(ORIGIN))
    key = LogSigner(Ed25519PrivateKey.from_private_bytes(seed), ORIGIN)
    signer, origin = run_log(P0, "run-1")
    data = encode_entry(index=1, time_ns=T0 + 1,
                        body=RunStartEntry(P0, origin, signer.vkey, b"\x05" * 32, None))

    def signed(entries: list[bytes], k: LogSigner = key) -> bytes:
        grown = CompactRange()
        for e in entries:
            grown.append(leaf_hash(e))
        return k.sign(len(entries), grown.root())

    before = ledger.entry_bytes
    with pytest.raises(LedgerVerificationError):  # a checkpoint over something else
        ledger.append_signed(data, signed([before[0]]))
    with pytest.raises((NoteError, LogFormatError)):  # another key
        ledger.append_signed(data, signed([*before, data],
                                          LogSigner(Ed25519PrivateKey.generate(), ORIGIN)))
    hidden = encode_entry(index=1, time_ns=T0 + 1,
                          body=RunStartEntry(P0, origin, signer.vkey, b"\x05" * 32, b"x\n"))
    with pytest.raises(LedgerRuleError):  # a rule broken, even when signed
        ledger.append_signed(hidden, signed([*before, hidden]))
    assert ledger.size == 1
    assert len(ledger.checkpoint_notes()) == 1
    ledger.append_signed(data, signed([*before, data]))
    ledger.close()
    with Ledger.open(tmp_path / "ledger") as reopened:
        assert reopened.size == 2
        assert origin in reopened.state.runs


def test_the_nitro_ledger_key_is_sealed_and_released_by_kms(tmp_path: Path) -> None:
    """The Nitro path against botocore's Stubber: KMS Encrypt at genesis, Decrypt with
    Recipient at release; the allowed set is checked before KMS is asked, and any refusal
    from KMS is LedgerKeyRefused."""
    import boto3
    from botocore.stub import ANY, Stubber
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from zcbench.keys import KmsRecipientBroker, wrap_for_recipient
    from zcbench.ledger.key import AttestedLedgerKey
    from zcbench.ledger.rules import LedgerState

    key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    client = boto3.client("kms", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                          aws_secret_access_key="not-a-secret")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    broker = KmsRecipientBroker(client, key_id=key_arn, store=tmp_path / "kms")
    with Stubber(client) as stub:
        stub.add_response("encrypt", {"CiphertextBlob": b"kms-blob", "KeyId": key_arn},
                          {"KeyId": key_arn, "Plaintext": ANY})
        holder, signer = AttestedLedgerKey.generate(
            tmp_path, ORIGIN, kms=client, key_id=key_arn, broker=broker,
            attest=lambda spki: b"doc:" + spki[:8])
        seed = signer._signer.private_key.private_bytes_raw()
        holder = AttestedLedgerKey(tmp_path, ORIGIN, key_arn, broker,
                                   attest=lambda spki: b"doc:" + spki[:8],
                                   new_rsa_key=lambda: rsa_key)
        state = LedgerState()
        state.apply(decode_entry(encode_entry(index=0, time_ns=T0,
                                              body=CommitmentEntry(P0, b"\x01" * 32, T0))))
        with pytest.raises(LedgerKeyRefused):
            holder.release(P1, state, T0)  # not allowed: KMS is never asked
        spki_head = rsa_key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)[:8]
        request = {"CiphertextBlob": b"kms-blob", "KeyId": key_arn,
                   "Recipient": {"AttestationDocument": b"doc:" + spki_head,
                                 "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}}
        stub.add_response("decrypt", {"CiphertextForRecipient": wrap_for_recipient(
            seed, rsa_key.public_key()), "KeyId": key_arn}, request)
        released = holder.release(P0, state, T0)
        assert released.vkey == signer.vkey
        stub.add_client_error("decrypt", "AccessDeniedException", expected_params=request)
        with pytest.raises(LedgerKeyRefused):
            holder.release(P0, state, T0)
    assert (tmp_path / "ledger-key.sealed").read_bytes() == b"kms-blob"


def test_opening_waits_for_a_writer_and_never_cuts_its_frame(tmp_path: Path) -> None:
    import threading

    from zcbench import _cbor
    from zcbench.auditlog._frames import frame
    from zcbench.auditlog.merkle import leaf_hash
    from zcbench.ledger.store import PENDING_FILE, _folder_lock

    ledger = make(tmp_path)
    entry = encode_entry(index=1, time_ns=T0 + 1, body=CommitmentEntry(P1, b"\x02" * 32, T0 + 1))
    grown = ledger._store.compact_range()
    grown.append(leaf_hash(entry))
    note = ledger.key.release(P0, ledger.state, T0 + 1).sign(2, grown.root())
    ledger.close()
    segment = tmp_path / "ledger" / "log" / "seg-00000000.zlog"
    whole = frame(entry)
    opened: list[Ledger] = []
    with _folder_lock(tmp_path / "ledger"):
        (tmp_path / "ledger" / PENDING_FILE).write_bytes(
            _cbor.encode_canonical({"entry": entry, "checkpoint": note}))
        with segment.open("ab") as out:
            out.write(whole[:20])  # a writer in the middle of a frame
        reader = threading.Thread(target=lambda: opened.append(Ledger.open(tmp_path / "ledger")))
        reader.start()
        reader.join(0.5)
        assert not opened  # the reader waits for the lock instead of cutting the frame
        with segment.open("ab") as out:
            out.write(whole[20:])
    reader.join(30)
    assert opened[0].size == 2  # the whole frame, completed with its pending checkpoint
    assert opened[0].recovery.classification == "clean"
    opened[0].close()
