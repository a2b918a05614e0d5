"""The ledger's rules kept inside the enclave: a host that lies gets a refusal.

The enclave runtime is driven in-process as the host would drive it: the ledger key is released
by a real local key broker (its policy follows the ledger's allowed set) to the runtime's
attestation document, the host delivers entries and checkpoints, the enclave checks them,
appends its run-start and signs. Every lie (an omitted revocation, a forged entry, a withheld
run-start, withheld or forged cosignatures) ends in an error reply and no serving."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import cbor2
import polars as pl
import pytest

from zcbench.auditlog.merkle import MerkleTree, leaf_hash
from zcbench.auditlog.note import parse_note
from zcbench.auditlog.witness import Witness
from zcbench.channel import MAX_LEDGER_BATCH, FrameError, Message, decode_body, encode_frame
from zcbench.enclave import EnclaveRuntime
from zcbench.enclave.ledger import CONTROL_NOTE, LedgerRequirement, control_facts
from zcbench.enclave.runtime import _dispatch
from zcbench.errors import VerificationError
from zcbench.host import controls
from zcbench.host.execution import RiskLimits
from zcbench.keys import KEY_ENCRYPTION_ALGORITHM, LocalKeyBroker
from zcbench.ledger import Ledger, LedgerFormatError, ServeRefused
from zcbench.ledger.entries import CommitmentEntry, encode_entry
from zcbench.ledger.key import KEY_FILE, secret_name
from zcbench.ledger.verify import check_ledger
from zcbench.nitro import DevCA, NsmEmulator
from zcbench.strategy import Batch, Signal, Strategy, encode_batch

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
T0 = int(NOW.timestamp()) * 1_000_000_000
ORIGIN = "acme.example/zcbench/echo"
A = b"\x0a" * 48
B = b"\x0b" * 48
PCRS = {1: b"\x02" * 48, 2: b"\x03" * 48}


@dataclasses.dataclass(frozen=True)
class P:
    pass


class Echo(Strategy):
    name = "echo"
    params_type = P
    input_fields = ("price",)

    def on_batch(self, batch: Batch) -> Sequence[Signal]:
        return [Signal(batch.events["symbol"][0], "buy", 1)]


def _batch(seq: int) -> bytes:
    events = pl.DataFrame({"ts": [seq * 10], "symbol": ["AAA"], "price": [100]})
    return encode_batch(Batch(seq, events))


class Stand:
    """A ledger, a key broker and the runtime of an enclave of ``pcr0``; the test plays the
    host (honest or not)."""

    def __init__(self, tmp: Path, *, witnesses: str | None = None) -> None:
        self.tmp = tmp
        self.root = tmp / "kb"
        self.clock_ns = T0 + 10**6  # 1 ms after genesis (the broker keeps microseconds)
        self.dir = tmp / "ledger"
        self.ledger = Ledger.init_insecure_host_key(self.dir, origin=ORIGIN, genesis_pcr0=A,
                                  commitment_sha256=b"\x01" * 32, at_ns=T0,
                                  broker_factory=self.broker)
        self.requirement = LedgerRequirement(ORIGIN, witnesses, checkpoint_interval_s=0.0)

    def now(self) -> dt.datetime:
        return NOW + dt.timedelta(microseconds=(self.clock_ns - T0) // 1000)

    def broker(self) -> LocalKeyBroker:
        return LocalKeyBroker(self.root, clock=self.now)

    def runtime(self, pcr0: bytes = A, *, requirement: bool = True,
                run_id: str = "run-1") -> EnclaveRuntime:
        ca = DevCA.load_or_create(now=NOW)
        nsm = NsmEmulator(pcrs={0: pcr0, **PCRS}, ca=ca, clock=self.now)

        def relay(document: bytes, blob: bytes, key_id: str) -> bytes:
            answer = self.broker().decrypt({
                "CiphertextBlob": blob, "KeyId": key_id,
                "Recipient": {"AttestationDocument": document,
                              "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM}})
            ciphertext: bytes = answer["CiphertextForRecipient"]
            return ciphertext

        rt = EnclaveRuntime(Echo(P()), nsm, pcr0=pcr0, clock=lambda: self.clock_ns,
                            relay=relay, ledger=self.requirement if requirement else None)
        rt.boot(run_id)
        return rt

    def open(self, rt: EnclaveRuntime) -> Message:
        blob = (self.dir / KEY_FILE).read_bytes()
        return ask(rt, Message("ledger_open", {"origin": ORIGIN, "key_blob": blob,
                                               "key_id": self.broker().key_id}))

    def deliver(self, rt: EnclaveRuntime, entries: Sequence[bytes] | None = None,
                note: bytes | None = None) -> Message:
        assert self.open(rt).type == "ledger_key"
        entries = self.ledger.entry_bytes if entries is None else entries
        for at in range(0, len(entries), MAX_LEDGER_BATCH):
            reply = ask(rt, Message("ledger_entries",
                                    {"entries": list(entries[at:at + MAX_LEDGER_BATCH])}))
            if reply.type == "error":
                return reply
        note = self.ledger.latest_checkpoint() if note is None else note
        return ask(rt, Message("ledger_start", {"checkpoint": note}))


def ask(rt: EnclaveRuntime, message: Message) -> Message:
    """One request through the runtime's dispatch, as serve() answers it (errors as frames)."""
    # the wire: what the host sends is one frame, decoded as the enclave decodes it
    message = decode_body(encode_frame(message)[4:])
    try:
        return _dispatch(rt, message)
    except VerificationError as exc:
        return Message("error", {"code": exc.check, "reason": str(exc)[:200], "seq": None})
    except Exception as exc:
        code = getattr(exc, "code", type(exc).__name__)
        return Message("error", {"code": code, "reason": str(exc)[:200], "seq": None})


def _ingest(rt: EnclaveRuntime) -> Message:
    return ask(rt, Message("ingest", {"seq": 0, "batch": _batch(0)}))


def test_an_honest_host_gets_a_run_start_signed_by_the_enclave(tmp_path: Path) -> None:
    stand = Stand(tmp_path)
    rt = stand.runtime()
    assert _ingest(rt)["code"] == "serve_gate"  # measured with a ledger: no batch before
    reply = stand.deliver(rt)
    assert reply.type == "ledger_appended", reply.fields
    stand.ledger.append_signed(reply["entry"], reply["checkpoint"])
    # no witnesses measured: the checkpoint handed back is accepted as it is
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": reply["checkpoint"]})).type == (
        "ledger_serving")
    assert _ingest(rt).type == "signals"
    ran = ask(rt, Message("ledger_checkpoint", {}))
    stand.ledger.append_signed(ran["entry"], ran["checkpoint"])
    end = ask(rt, Message("ledger_end", {"summary_sha256": b"\x05" * 32}))
    stand.ledger.append_signed(end["entry"], end["checkpoint"])
    assert [e.type for e in stand.ledger.entries] == [
        "commitment", "run-start", "run-checkpoint", "run-end"]
    report = check_ledger(stand.dir)
    assert report.ok, report.message
    run = report.state.runs[f"zcbench/{A.hex()[:16]}/run-1"]
    assert run.ended
    assert run.last_size == 3


def _resume(stand: Stand, rt: EnclaveRuntime, sealed: bytes,
            first: int | None = None) -> Message:
    """A boot from a sealed state: the entries after it (or from ``first``), the checkpoint."""
    assert stand.open(rt).type == "ledger_key"
    ack = ask(rt, Message("ledger_resume", {"state": sealed}))
    if ack.type == "error":
        return ack
    entries = stand.ledger.entry_bytes[ack["size"] if first is None else first:]
    if entries:
        taken = ask(rt, Message("ledger_entries", {"entries": list(entries)}))
        if taken.type == "error":
            return taken
    return ask(rt, Message("ledger_start", {"checkpoint": stand.ledger.latest_checkpoint()}))


def test_a_sealed_state_lets_the_next_boot_take_only_the_entries_after_it(
        tmp_path: Path) -> None:
    from zcbench.ledger.entries import RunStartEntry, decode_entry

    stand = Stand(tmp_path)
    rt = stand.runtime()
    start = stand.deliver(rt)
    stand.ledger.append_signed(start["entry"], start["checkpoint"])
    ask(rt, Message("ledger_cosigned", {"checkpoint": start["checkpoint"]}))
    end = ask(rt, Message("ledger_end", {"summary_sha256": b"\x05" * 32}))
    stand.ledger.append_signed(end["entry"], end["checkpoint"])
    sealed = end["state"]
    stand.ledger.announce(B, b"\x02" * 32, notice_ns=10**15, at_ns=stand.clock_ns, by=A)
    rt2 = stand.runtime(run_id="run-2")
    assert stand.open(rt2).type == "ledger_key"
    assert ask(rt2, Message("ledger_resume", {"state": sealed}))["size"] == 3
    # only the announcement after the sealed state is delivered
    assert ask(rt2, Message("ledger_entries", {"entries": [stand.ledger.entry_bytes[3]]}))[
        "size"] == 4
    second = ask(rt2, Message("ledger_start", {"checkpoint": stand.ledger.latest_checkpoint()}))
    assert second.type == "ledger_appended", second.fields
    body = decode_entry(second["entry"]).body
    assert isinstance(body, RunStartEntry)
    end_body = decode_entry(end["entry"]).body
    assert body.previous_checkpoint == end_body.final_checkpoint  # type: ignore[union-attr]
    stand.ledger.append_signed(second["entry"], second["checkpoint"])
    report = check_ledger(stand.dir)
    assert report.ok, report.message
    assert report.state.versions[B].index == 3  # what the resumed enclave took, the LP sees
    # an older sealed state (the run-start's) is a longer delivery, and as sound
    assert _resume(stand, stand.runtime(run_id="run-3"), start["state"]).type == (
        "ledger_appended")


def test_a_sealed_state_that_is_not_this_ledgers_or_does_not_fit_is_refused(
        tmp_path: Path) -> None:
    stand = Stand(tmp_path)
    rt = stand.runtime()
    start = stand.deliver(rt)
    stand.ledger.append_signed(start["entry"], start["checkpoint"])
    sealed = start["state"]
    outer = cbor2.loads(sealed)
    flipped = bytearray(outer["ciphertext"])
    flipped[-1] ^= 0x01
    forged = cbor2.dumps({**outer, "ciphertext": bytes(flipped)}, canonical=True)
    relabelled = cbor2.dumps({**outer, "label": "zcbench.snapshot/1"}, canonical=True)
    other = Stand(tmp_path / "other")  # the same origin, another ledger key
    other_rt = other.runtime()
    theirs = other.deliver(other_rt)["state"]
    for bad in (forged, relabelled, theirs, sealed[:-1], sealed + b"\x00", b"",
                cbor2.dumps([1, 2])):
        reply = _resume(stand, stand.runtime(run_id="run-2"), bad)
        assert (reply.type, reply["code"]) == ("error", "ledger_state"), bad[:20]
    # the whole ledger delivered after a sealed state: the entries' indices do not follow it
    reply = _resume(stand, stand.runtime(run_id="run-2"), sealed, first=0)
    assert reply["code"] == "entry_index"
    # a sealed state comes first, not after entries
    rt2 = stand.runtime(run_id="run-2")
    assert stand.open(rt2).type == "ledger_key"
    ask(rt2, Message("ledger_entries", {"entries": [stand.ledger.entry_bytes[0]]}))
    assert ask(rt2, Message("ledger_resume", {"state": sealed}))["code"] == "ledger_order"
    # a state ahead of the checkpoint delivered (an older checkpoint): the sizes differ
    rt3 = stand.runtime(run_id="run-2")
    assert stand.open(rt3).type == "ledger_key"
    ask(rt3, Message("ledger_resume", {"state": sealed}))
    stale = ask(rt3, Message("ledger_start", {"checkpoint": stand.ledger.checkpoint_notes()[0]}))
    assert stale["code"] == "ledger_checkpoint"
    with pytest.raises(FrameError, match="sealed state"):
        encode_frame(Message("ledger_resume", {"state": b"x" * (16 * 1024 * 1024 + 1)}))


def test_a_run_without_a_run_end_appends_one_final_run_checkpoint(tmp_path: Path) -> None:
    """A replay's last run-checkpoint: whatever the measured interval, once, nothing after."""
    stand = Stand(tmp_path)
    stand.requirement = LedgerRequirement(ORIGIN, None, checkpoint_interval_s=3600.0)
    rt = stand.runtime()
    start = stand.deliver(rt)
    stand.ledger.append_signed(start["entry"], start["checkpoint"])
    ask(rt, Message("ledger_cosigned", {"checkpoint": start["checkpoint"]}))
    assert _ingest(rt).type == "signals"
    first = ask(rt, Message("ledger_checkpoint", {}))
    stand.ledger.append_signed(first["entry"], first["checkpoint"])
    assert ask(rt, Message("ingest", {"seq": 1, "batch": _batch(1)})).type == "signals"
    assert ask(rt, Message("ledger_checkpoint", {}))["entry"] is None  # the interval holds
    final = ask(rt, Message("ledger_final", {}))
    assert final.type == "ledger_appended"
    stand.ledger.append_signed(final["entry"], final["checkpoint"])
    for again in (Message("ledger_final", {}),
                  Message("ledger_end", {"summary_sha256": b"\x05" * 32})):
        assert ask(rt, again)["code"] == "ledger_order"
    run = check_ledger(stand.dir).state.runs[f"zcbench/{A.hex()[:16]}/run-1"]
    assert run.last_size == 5  # the boot record, IN and OUT of both batches: the log as it ended
    assert not run.ended


def test_the_live_enclave_signs_its_successors_announcement_and_revocations(
        tmp_path: Path) -> None:
    stand = Stand(tmp_path)
    rt = stand.runtime()
    announce = Message("ledger_announce", {"pcr0": B, "commitment_sha256": b"\x02" * 32,
                                           "notice_ns": 10**9})
    assert stand.open(rt).type == "ledger_key"
    assert ask(rt, announce)["code"] == "serve_gate"  # never before the gate
    rt = stand.runtime(run_id="run-2")
    start = stand.deliver(rt)
    stand.ledger.append_signed(start["entry"], start["checkpoint"])
    ask(rt, Message("ledger_cosigned", {"checkpoint": start["checkpoint"]}))
    reply = ask(rt, announce)
    assert reply.type == "ledger_appended", reply.fields
    stored = stand.ledger.append_signed(reply["entry"], reply["checkpoint"])
    version = stand.ledger.state.versions[B]
    assert version.valid_from_ns == stored.entry.time_ns + 10**9  # the enclave's clock
    # the key broker's policy follows the stored announcement: B gets no key in its notice
    assert stand.open(stand.runtime(B))["code"] == "ledger_key_release"
    # the rules hold for the enclave too: the only live version is never revoked
    assert ask(rt, Message("ledger_revoke", {"pcr0": A, "reason": "x"}))["code"] == (
        "revoke_live")
    withdrawn = ask(rt, Message("ledger_revoke", {"pcr0": B, "reason": "withdrawn"}))
    stand.ledger.append_signed(withdrawn["entry"], withdrawn["checkpoint"])
    assert stand.ledger.state.versions[B].revoked_ns is not None
    assert ask(rt, Message("ledger_announce", {"pcr0": B, "commitment_sha256": b"\x02" * 32,
                                               "notice_ns": -1}))["code"] == "ledger_entry"
    report = check_ledger(stand.dir)
    assert report.ok, report.message
    # a version that is allowed but no longer the live one endorses nothing
    c = b"\x0c" * 48
    again = ask(rt, Message("ledger_announce", {"pcr0": c, "commitment_sha256": b"\x03" * 32,
                                                "notice_ns": 0}))
    stand.ledger.append_signed(again["entry"], again["checkpoint"])
    stand.clock_ns += 10**6
    assert ask(rt, Message("ledger_announce", {"pcr0": b"\x0d" * 48,
                                               "commitment_sha256": b"\x04" * 32,
                                               "notice_ns": 0}))["code"] == "endorse_live"


def test_the_host_delivers_the_whole_ledger_only_to_an_enclave_without_sealed_states(
        tmp_path: Path) -> None:
    from zcbench.channel import error_message
    from zcbench.ledger.runs import resumed_at

    # an enclave built before sealed states: the message is unknown to it, not refused
    old = error_message("unknown_type", "unknown message type 'ledger_resume'", None)
    assert resumed_at(old, tmp_path) == 0
    assert resumed_at(Message("ledger_ack", {"size": 7}), tmp_path) == 7
    # an enclave that refuses the state: the gate fails, with what to do
    with pytest.raises(ServeRefused, match="enclave-state") as refused:
        resumed_at(error_message("ledger_state", "not sealed with this ledger's key", None),
                   tmp_path)
    assert refused.value.check == "ledger_state"
    stand = Stand(tmp_path)  # and the real answer of an enclave that knows it
    rt = stand.runtime()
    start = stand.deliver(rt)
    rt2 = stand.runtime(run_id="run-2")
    stand.open(rt2)
    assert resumed_at(ask(rt2, Message("ledger_resume", {"state": start["state"]})),
                      tmp_path) == 2


def test_the_host_cannot_omit_a_revocation(tmp_path: Path) -> None:
    witness = Witness(tmp_path / "w")
    cosigner = witness.cosigner("w1.example")
    stand = Stand(tmp_path, witnesses=f"witness w1 {cosigner.vkey}\nquorum w1\n")
    stand.ledger.announce(B, b"\x02" * 32, notice_ns=0, at_ns=T0 + 1, by=A)
    stand.ledger.revoke(A, reason="superseded", at_ns=T0 + 2, by=B)  # A is retired, B live
    entries = stand.ledger.entry_bytes
    before = stand.ledger.checkpoint_notes()[-2]  # signed before the revocation
    newest = stand.ledger.latest_checkpoint()
    witness.add_checkpoint(newest, old_size=0, proof=[], log=stand.ledger.verifier,
                           cosigner=cosigner, timestamp=1_700_000_000)
    # the key broker's policy follows the allowed set: A does not even get the ledger key
    assert stand.open(stand.runtime())["code"] == "ledger_key_release"
    assert any("revoked" in r.reason for r in stand.broker().refusals())
    # a broker whose policy lags behind the ledger: the enclave's own checks still hold
    stand.broker().set_secret_policy(secret_name(ORIGIN), [(A, T0, None), (B, T0 + 1, None)])
    honest = stand.deliver(stand.runtime())
    assert (honest.type, honest["code"]) == ("error", "serve_pcr0")
    # the revocation left out: the newest checkpoint does not cover what was delivered ...
    assert stand.deliver(stand.runtime(), entries[:-1])["code"] == "ledger_checkpoint"
    # ... nor does any signed checkpoint cover the ledger with the revocation cut out of it
    assert stand.deliver(stand.runtime(), [entries[0], entries[2]]).type == "error"
    # the older ledger whole, under its own older checkpoint: the enclave appends a run-start
    # on it, but that fork of the witnessed ledger is never cosigned, so it never serves
    rt = stand.runtime()
    stale = stand.deliver(rt, entries[:-1], before)
    assert stale.type == "ledger_appended"
    from zcbench.auditlog import WitnessRefusal

    with pytest.raises(WitnessRefusal) as refused:
        witness.add_checkpoint(stale["checkpoint"], old_size=3, proof=[],
                               log=stand.ledger.verifier, cosigner=cosigner,
                               timestamp=1_700_000_001)
    assert refused.value.status == 409
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": stale["checkpoint"]}))["code"] == (
        "serve_quorum")
    assert _ingest(rt)["code"] == "serve_gate"


def test_forged_entries_and_checkpoints_are_refused(tmp_path: Path) -> None:
    stand = Stand(tmp_path)
    genesis = stand.ledger.entry_bytes[0]
    # an announcement the enclave never endorsed, added after the signed checkpoint
    forged = encode_entry(index=1, time_ns=T0 + 1, body=CommitmentEntry(B, b"\x09" * 32, T0 + 1))
    reply = stand.deliver(stand.runtime(), [genesis, forged])
    assert reply["code"] == "ledger_checkpoint"
    # an entry changed under the signed checkpoint
    changed = encode_entry(index=0, time_ns=T0, body=CommitmentEntry(A, b"\x07" * 32, T0))
    assert stand.deliver(stand.runtime(), [changed])["code"] == "ledger_root"
    # a checkpoint signed by another key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from zcbench.auditlog.checkpoint import LogSigner

    other = LogSigner(Ed25519PrivateKey.generate(), ORIGIN).sign(1, leaf_hash(genesis))
    assert stand.deliver(stand.runtime(), [genesis], other)["code"] == "ledger_checkpoint"
    # bytes that are no entry, and an entry that breaks a rule (not the genesis first)
    assert stand.deliver(stand.runtime(), [b"\xa0"])["code"] == "ledger_entry"
    run_first = encode_entry(index=0, time_ns=T0, body=CommitmentEntry(A, b"\x01" * 32, T0 + 5))
    assert stand.deliver(stand.runtime(), [run_first])["code"] == "genesis"
    # the frame itself is bounded
    with pytest.raises(FrameError):
        Message("ledger_entries", {"entries": [b"x"] * (MAX_LEDGER_BATCH + 1)})
    with pytest.raises(FrameError):
        Message("ledger_entries", {"entries": [b"x" * 65_536]})


def test_a_build_in_its_notice_period_gets_neither_the_key_nor_the_gate(tmp_path: Path
                                                                       ) -> None:
    stand = Stand(tmp_path)
    stand.ledger.announce(B, b"\x02" * 32, notice_ns=3_600 * 10**9, at_ns=T0 + 1, by=A)
    reply = stand.open(stand.runtime(B))
    assert reply.type == "error"
    assert reply["code"] == "ledger_key_release"
    stand.clock_ns = T0 + 3_601 * 10**9  # the notice ran out: B may hold it and serve
    rt = stand.runtime(B)
    assert stand.deliver(rt).type == "ledger_appended"


def test_a_withheld_run_start_or_withheld_cosignatures_never_serve(tmp_path: Path) -> None:
    witness = Witness(tmp_path / "w")
    cosigner = witness.cosigner("w1.example")
    witnesses = f"witness w1 {cosigner.vkey}\nquorum w1\n"
    stand = Stand(tmp_path, witnesses=witnesses)
    rt = stand.runtime()
    # no run-start: the host never delivers the ledger
    assert _ingest(rt)["code"] == "serve_gate"
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": stand.ledger.latest_checkpoint()})
               ).type == "error"
    reply = stand.deliver(rt)
    note = reply["checkpoint"]
    stand.ledger.append_signed(reply["entry"], note)
    # withheld: the checkpoint without its cosignature
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": note}))["code"] == "serve_quorum"
    # forged: a cosignature line by a key the measured policy does not name
    rogue = Witness(tmp_path / "rogue").cosigner("w1.example")
    text = parse_note(note).text
    fake = note + rogue.cosign(text, 1_700_000_000).line().encode()
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": fake}))["code"] == "serve_quorum"
    # a cosigned checkpoint the enclave did not sign (the ledger before its run-start)
    old = stand.ledger.checkpoint_notes()[0]
    old_cosigned = old + cosigner.cosign(parse_note(old).text, 1_700_000_000).line().encode()
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": old_cosigned}))["code"] in (
        "serve_quorum", "ledger_checkpoint")
    assert _ingest(rt)["code"] == "serve_gate"
    # the real thing: the witness checks consistency and cosigns
    tree = MerkleTree([leaf_hash(e) for e in stand.ledger.entry_bytes])
    line = witness.add_checkpoint(note, old_size=0, proof=[], log=stand.ledger.verifier,
                                  cosigner=cosigner, timestamp=1_700_000_000)
    assert tree.root() == stand.ledger._store.root()
    cosigned = note + line.line().encode()
    assert ask(rt, Message("ledger_cosigned", {"checkpoint": cosigned})).type == "ledger_serving"
    assert _ingest(rt).type == "signals"


def test_the_requirement_is_strict_and_measured(tmp_path: Path) -> None:
    req = LedgerRequirement(ORIGIN, None, 5.0)
    assert LedgerRequirement.from_bytes(req.to_bytes()) == req
    for bad in (b"{}", b"not json", req.to_bytes().replace(b":5.0", b":5.00"),
                req.to_bytes() + b" ", req.to_bytes().replace(b"5.0", b"true")):
        with pytest.raises(LedgerFormatError):
            LedgerRequirement.from_bytes(bad)
    with pytest.raises(LedgerFormatError, match="name no log"):
        LedgerRequirement(ORIGIN, "log x+1+2\nquorum none\n")
    # a host that opens the ledger of another origin than the measured one
    stand = Stand(tmp_path)
    rt = stand.runtime()
    blob = (stand.dir / KEY_FILE).read_bytes()
    reply = ask(rt, Message("ledger_open", {"origin": "evil.example/zcbench/echo",
                                            "key_blob": blob, "key_id": "k"}))
    assert reply["code"] == "ledger_origin"
    # and an image measured without one: the host may still open the ledger, then the gate
    # holds from there on
    free = stand.runtime(requirement=False)
    assert _ingest(free).type == "signals"
    assert stand.open(free).type == "ledger_key"
    assert ask(free, Message("ingest", {"seq": 1, "batch": _batch(1)}))["code"] == "serve_gate"


def test_a_signed_history_is_still_held_to_the_rules(tmp_path: Path) -> None:
    """The gate does not verify run checkpoints' signatures again (the code that signed the
    covering ledger checkpoint did), but sizes and origins still hold even under a checkpoint
    the ledger key signed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from zcbench.auditlog.checkpoint import LogSigner, log_origin
    from zcbench.auditlog.merkle import CompactRange
    from zcbench.ledger.entries import RunCheckpointEntry, RunStartEntry

    stand = Stand(tmp_path)
    seed = stand.broker().open_secret((stand.dir / KEY_FILE).read_bytes(), secret_name(ORIGIN))
    key = LogSigner(Ed25519PrivateKey.from_private_bytes(seed), ORIGIN)
    origin = log_origin(A, "old")
    run = LogSigner(Ed25519PrivateKey.generate(), origin)
    other = log_origin(A, "other")

    def ledger_of(*bodies: object) -> tuple[list[bytes], bytes]:
        entries = [stand.ledger.entry_bytes[0]]
        entries += [encode_entry(index=i + 1, time_ns=T0 + 1 + i, body=b)  # type: ignore[arg-type]
                    for i, b in enumerate(bodies)]
        tree = CompactRange()
        for data in entries:
            tree.append(leaf_hash(data))
        return entries, key.sign(len(entries), tree.root())

    start = RunStartEntry(A, origin, run.vkey, b"\x05" * 32, None)
    ok = ledger_of(start, RunCheckpointEntry(origin, run.sign(5, b"\x01" * 32)))
    assert stand.deliver(stand.runtime(), *ok).type == "ledger_appended"
    shrinks = ledger_of(start, RunCheckpointEntry(origin, run.sign(5, b"\x01" * 32)),
                        RunCheckpointEntry(origin, run.sign(4, b"\x02" * 32)))
    assert stand.deliver(stand.runtime(), *shrinks)["code"] == "run_rollback"
    elsewhere = ledger_of(start, RunCheckpointEntry(
        origin, LogSigner(Ed25519PrivateKey.generate(), other).sign(6, b"\x01" * 32)))
    assert stand.deliver(stand.runtime(), *elsewhere)["code"] == "run_checkpoint"


def test_the_enclave_reads_a_control_records_facts_and_refuses_a_bad_one() -> None:
    assert CONTROL_NOTE == controls.CONTROL_NOTE  # the host's module owns the format
    record, _ = controls.apply_control(RiskLimits(), "kill", operator="bob", requested_ns=1,
                                       reason="venue outage")
    body = controls.encode_control(record)
    assert control_facts(body) == ("kill", "bob")
    assert control_facts(cbor2.dumps({"note": "zcbench.clock/1"}, canonical=True)) is None
    doc = cbor2.loads(body)
    for bad in (cbor2.dumps(dict(reversed(list(doc.items())))),  # not canonical
                cbor2.dumps({**doc, "action": "pause"}, canonical=True),
                cbor2.dumps({**doc, "operator": ""}, canonical=True),
                body[:-3]):
        with pytest.raises(ServeRefused, match="control record"):
            control_facts(bad)


def test_genesis_is_made_in_the_enclave_and_no_host_process_can_open_its_key(
        tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from zcbench.auditlog.note import parse_vkey
    from zcbench.errors import DataError
    from zcbench.keys import KeyReleaseRefused, is_enclave_sealed
    from zcbench.ledger import LedgerKeyRefused
    from zcbench.ledger.entries import RevocationEntry

    stand = Stand.__new__(Stand)  # a broker and an enclave, no ledger yet
    stand.tmp, stand.root, stand.clock_ns = tmp_path, tmp_path / "kb", T0 + 10**6
    stand.dir = tmp_path / "ledger"
    stand.requirement = LedgerRequirement(ORIGIN, None, checkpoint_interval_s=0.0)
    seal_key = stand.broker().seal_public_key

    def made(pcr0: bytes = A, run_id: str = "genesis") -> Message:
        reply = ask(stand.runtime(pcr0, run_id=run_id), Message("ledger_genesis", {
            "origin": ORIGIN, "commitment_sha256": b"\x01" * 32, "seal_key": seal_key}))
        assert reply.type == "ledger_made", reply.fields
        return reply

    reply = made()
    stand.clock_ns += 1000
    other = made(run_id="genesis-2")  # another key, and an entry of another time
    stand.clock_ns -= 1000
    fields = {"origin": ORIGIN, "vkey": reply["vkey"], "key_blob": reply["key_blob"],
              "entry": reply["entry"], "checkpoint": reply["checkpoint"], "genesis_pcr0": A,
              "commitment_sha256": b"\x01" * 32, "broker_factory": stand.broker}
    # what the host is handed is checked: the genesis of this PCR0 and commitment, signed by
    # the key the enclave made, over exactly that entry; a refusal leaves no folder behind
    sealed_here = stand.broker().seal_secret(secret_name(ORIGIN), b"\x07" * 32)
    for bad in ({"genesis_pcr0": B}, {"commitment_sha256": b"\x02" * 32},
                {"checkpoint": other["checkpoint"]}, {"entry": other["entry"]},
                {"key_blob": sealed_here}, {"vkey": other["vkey"]}):
        with pytest.raises((DataError, VerificationError)):
            Ledger.from_genesis(stand.dir, **{**fields, **bad})  # type: ignore[arg-type]
        assert not stand.dir.exists()
    stand.ledger = Ledger.from_genesis(stand.dir, **fields)  # type: ignore[arg-type]
    assert stand.ledger.key_made_in_enclave
    blob = (stand.dir / KEY_FILE).read_bytes()
    assert is_enclave_sealed(blob)
    # the file the host can read is ciphertext: no 32 bytes of it are the ledger key's seed
    public = parse_vkey(reply["vkey"]).public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert all(Ed25519PrivateKey.from_private_bytes(blob[i:i + 32]).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw) != public for i in range(len(blob) - 31))
    # the broker opens it for no caller but an attested enclave, so this process cannot sign
    with pytest.raises(KeyReleaseRefused):
        stand.broker().open_secret(blob, secret_name(ORIGIN))
    with pytest.raises(LedgerKeyRefused, match="genesis enclave"):
        stand.ledger.append(RevocationEntry(B, ""), at_ns=T0 + 2 * 10**6)
    assert stand.ledger.size == 1
    # the genesis enclave serves nothing and makes no second genesis
    genesis_rt = stand.runtime(run_id="genesis-3")
    ask(genesis_rt, Message("ledger_genesis", {"origin": ORIGIN,
                                               "commitment_sha256": b"\x01" * 32,
                                               "seal_key": seal_key}))
    assert _ingest(genesis_rt)["code"] == "serve_gate"
    assert ask(genesis_rt, Message("ledger_genesis", {
        "origin": ORIGIN, "commitment_sha256": b"\x01" * 32,
        "seal_key": seal_key}))["code"] == "ledger_order"
    # the next enclave of the genesis PCR0 gets the key from the broker and runs in the ledger
    stand.clock_ns += 10**6
    rt = stand.runtime(run_id="run-1")
    opened = stand.open(rt)
    assert opened["vkey"] == stand.ledger.vkey
    ask(rt, Message("ledger_entries", {"entries": list(stand.ledger.entry_bytes)}))
    start = ask(rt, Message("ledger_start", {"checkpoint": stand.ledger.latest_checkpoint()}))
    assert start.type == "ledger_appended", start.fields
    stand.ledger.append_signed(start["entry"], start["checkpoint"])
    # an enclave of a PCR0 the ledger does not allow gets no key
    assert stand.open(stand.runtime(B, run_id="run-b"))["code"] == "ledger_key_release"
    report = check_ledger(stand.dir)
    assert report.ok, report.message
    assert not any("outside an enclave" in w for w in report.warnings)
