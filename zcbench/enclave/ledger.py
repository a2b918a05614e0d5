"""The ledger's rules kept inside the enclave: the gate, the ledger key and the enclave's entries.

The host is not trusted with the ledger. It delivers what it holds (the ledger's entries, its
newest checkpoint, later the checkpoint cosigned by the witnesses) and this module checks all
of it before the enclave serves:

* the **ledger key** is released by the key broker to this enclave's attestation document only
  while the ledger allows its PCR0 (the broker's policy follows the allowed set), and is held
  here; its public half is the key every delivered checkpoint must verify with;
* the delivered **entries** are decoded strictly and replayed through the ledger's rules
  (:class:`zcbench.ledger.rules.LedgerState`) into a compact range (O(log n) hashes, never the
  ledger itself); run checkpoints' signatures are not verified again
  (:attr:`~zcbench.ledger.rules.LedgerState.signed_history`: the code that signed the covering
  ledger checkpoint did), and the first broken rule refuses the whole delivery; the delivered
  **checkpoint** must be signed by the ledger key under the
  measured origin and cover exactly those entries (same size, same root): an omitted, edited
  or forged entry changes the root, an entry the ledger key never signed is refused;
* this enclave's **PCR0** must be announced, past its ``valid_from`` and not revoked at the
  enclave's own clock;
* the **live version endorses**: once its gate passed, the enclave whose PCR0 is the live one
  (the newest allowed) appends a successor's ``commitment`` (valid from its own clock plus the
  notice) or a ``revocation`` (:meth:`EnclaveLedger.announce`, :meth:`EnclaveLedger.revoke`),
  signed here like every entry it appends;
* the enclave appends its **run-start** itself (its PCR0, run origin, run log vkey, the boot
  document's hash and the previous run's last checkpoint, all from its own state) and signs the
  new checkpoint; when the measured requirement names witnesses, it serves only once the host
  delivers that checkpoint (or a later one it signed) cosigned by the quorum.

**Boot cost independent of the ledger's length.** With the run-start and the run-end the
enclave hands out its verified state, sealed (:meth:`EnclaveLedger.sealed_state`: the rules'
state as :meth:`LedgerState.snapshot` writes it, the compact range and the ledger's origin, in
canonical CBOR, sealed by :func:`zcbench.keys.seal_state` under a key derived from the ledger
key, the one sealing of state an enclave keeps for itself, a strategy's snapshot's too, so only
an enclave the ledger allows can make or read one). The host keeps it and at the next boot
sends it before the entries (:meth:`EnclaveLedger.resume`); the enclave then takes only the
entries after it. The covering checkpoint must still be signed by the ledger key and its root
must be the compact range extended by exactly those entries: that extension is the consistency
of the sealed state's tree with the checkpoint's (a consistency proof is what lets a verifier
without the leaves check it; the enclave has them). A state sealed under another key, edited,
of another origin, a layout this code does not read, a range that does not match its size, or a
history the delivered checkpoint does not extend is refused (``ledger_state``, or
``ledger_root`` at the checkpoint), never silently replaced by a full replay; a host without
one delivers the whole ledger.

While the run goes the enclave appends ``run-checkpoint`` entries of its own run log (at most
one per ``checkpoint_interval_s``, and for a run without a run-end, a replay, one final one
after its last batch), a ``control`` entry for every control record it logs (the
limits at the start, each change, kill and re-enable: :func:`control_facts` reads the record's
action and operator, the entry names its index and leaf hash in the run's log) and at the end
the ``run-end``; every checkpoint it signs is one it computed, so the ledger key never signs a
tree it did not check.

The requirement (:class:`LedgerRequirement`) is part of the measured image: the ledger's origin,
the witnesses and quorum (a tlog-policy without its ``log`` line: the ledger key exists only
after the genesis build is measured, so the log key is the one the broker releases), and the
run-checkpoint interval. An image measured with one refuses every batch until the gate passed.

Time is the enclave's clock, passed in. Errors are :class:`ServeRefused` with a short
reason that is safe to show outside the enclave.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench import _cbor
from zcbench.auditlog import LogFormatError, NoteError
from zcbench.auditlog.checkpoint import Checkpoint, LogSigner, parse_checkpoint
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.note import open_note, parse_vkey
from zcbench.channel import MAX_LEDGER_STATE
from zcbench.keys import UnsealError, open_state, seal_state, state_key
from zcbench.ledger._errors import LedgerFormatError, LedgerRuleError, ServeRefused
from zcbench.ledger.entries import (
    CONTROL_ACTIONS,
    ArchiveEntry,
    CommitmentEntry,
    ControlEntry,
    EntryBody,
    LedgerEntry,
    RevocationEntry,
    RunCheckpointEntry,
    RunEndEntry,
    RunStartEntry,
    decode_entry,
    encode_entry,
)
from zcbench.ledger.policy import TlogPolicy, check_quorum, parse_policy
from zcbench.ledger.rules import LedgerState
from zcbench.ledger.store import Appended, check_origin

__all__ = [
    "MAX_LEDGER_ENTRIES",
    "REQUIREMENT_SCHEMA",
    "EnclaveLedger",
    "LedgerRequirement",
    "control_facts",
    "release_ledger_seed",
]

REQUIREMENT_SCHEMA: Final = "zcbench.ledger-requirement/1"
MAX_LEDGER_ENTRIES: Final = 1_000_000
"""Most entries a ledger delivered to the enclave may hold (the replay is O(n) once per boot)."""
_STATE_KEY_LABEL: Final = "zcbench.ledger-state/1"
_MAX_REQUIREMENT: Final = 65_536
_MIN_INTERVAL_S: Final = 0.0
_MAX_INTERVAL_S: Final = 86_400.0
CONTROL_NOTE: Final = "zcbench.control/1"
"""The ``note`` of a control record's body (:data:`zcbench.host.controls.CONTROL_NOTE`, whose
module owns the format; the enclave reads only the two facts its ledger entry names)."""
_MAX_CONTROL_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class LedgerRequirement:
    """What the measured image requires of its ledger (see the module docstring).

    ``witnesses`` is tlog-policy text without ``log`` lines (``witness``, ``group`` and one
    ``quorum`` line), or None for no witnesses.
    """

    origin: str
    witnesses: str | None = None
    checkpoint_interval_s: float = 10.0

    def __post_init__(self) -> None:
        check_origin(self.origin)
        if not _MIN_INTERVAL_S <= self.checkpoint_interval_s <= _MAX_INTERVAL_S:
            raise LedgerFormatError("checkpoint_interval_s is out of 0..86400")
        if self.witnesses is not None:
            if any(line.split("#", 1)[0].split()[:1] == ["log"]
                   for line in self.witnesses.split("\n")):
                raise LedgerFormatError("the requirement's witnesses name no log: the ledger "
                                        "key is the one the key broker releases")
            self.policy_for(_probe_vkey())  # the witnesses' lines parse, or this raises

    @classmethod
    def from_policy(cls, origin: str, policy_text: str | None,
                    checkpoint_interval_s: float = 10.0) -> LedgerRequirement:
        """The requirement of ``origin`` whose witnesses and quorum are a tlog-policy's (its
        ``log`` lines left out: the ledger key is the one the key broker releases)."""
        if policy_text is None:
            return cls(origin, None, checkpoint_interval_s)
        kept = [line.strip() for line in policy_text.split("\n")
                if line.split("#", 1)[0].strip()
                and line.split("#", 1)[0].split()[0] != "log"]
        return cls(origin, "\n".join(kept) + "\n", checkpoint_interval_s)

    def policy_for(self, ledger_vkey: str) -> TlogPolicy | None:
        """The tlog-policy of the ledger whose key is ``ledger_vkey`` (None: no witnesses)."""
        if self.witnesses is None:
            return None
        return parse_policy(f"log {ledger_vkey}\n{self.witnesses}")

    def to_bytes(self) -> bytes:
        """The canonical JSON the image measures."""
        doc = {"schema": REQUIREMENT_SCHEMA, "origin": self.origin,
               "witnesses": self.witnesses,
               "checkpoint_interval_s": self.checkpoint_interval_s}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LedgerRequirement:
        """The requirement in ``data``; :class:`LedgerFormatError` unless it is exactly the
        canonical form :meth:`to_bytes` writes."""
        if len(data) > _MAX_REQUIREMENT:
            raise LedgerFormatError("the ledger requirement is too large")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise LedgerFormatError("the ledger requirement is not JSON") from None
        if (not isinstance(doc, dict)
                or set(doc) != {"schema", "origin", "witnesses", "checkpoint_interval_s"}
                or doc["schema"] != REQUIREMENT_SCHEMA or not isinstance(doc["origin"], str)
                or not (doc["witnesses"] is None or isinstance(doc["witnesses"], str))
                or isinstance(doc["checkpoint_interval_s"], bool)
                or not isinstance(doc["checkpoint_interval_s"], int | float)):
            raise LedgerFormatError(f"the ledger requirement is not a {REQUIREMENT_SCHEMA} "
                                    "document")
        try:
            requirement = cls(doc["origin"], doc["witnesses"],
                              float(doc["checkpoint_interval_s"]))
        except (LedgerFormatError, ValueError) as exc:  # UsageError of check_origin is one
            raise LedgerFormatError(f"the ledger requirement: {exc}") from None
        if requirement.to_bytes() != data:
            raise LedgerFormatError("the ledger requirement is not in canonical form")
        return requirement


def _probe_vkey() -> str:
    return LogSigner(Ed25519PrivateKey.from_private_bytes(bytes(32)), "x.example/zcbench/x").vkey


def _refuse(check: str, reason: str) -> ServeRefused:
    return ServeRefused(reason, check=check)


class EnclaveLedger:
    """The enclave's view of the ledger: the key, the rules' state and the compact range.

    Make one with the released ledger key (``seed``, 32 bytes) and the measured requirement;
    :meth:`take` the delivered entries in order, then :meth:`start` with the delivered
    checkpoint, then (with witnesses) :meth:`cosigned`. :attr:`serving` says whether the gate
    passed.
    """

    def __init__(self, seed: bytes, requirement: LedgerRequirement, *, pcr0: bytes,
                 clock: Callable[[], int], monotonic: Callable[[], float]) -> None:
        if len(seed) != 32:
            raise _refuse("ledger_key", "the released ledger key is not an Ed25519 seed")
        self.requirement = requirement
        self._signer = LogSigner(Ed25519PrivateKey.from_private_bytes(seed), requirement.origin)
        self.vkey = self._signer.vkey
        self._verifier = parse_vkey(self.vkey)
        self.policy = requirement.policy_for(self.vkey)
        self._state_key = state_key(seed, _STATE_KEY_LABEL)
        self._pcr0 = pcr0
        self._clock = clock
        self._monotonic = monotonic
        self.state = LedgerState(signed_history=True)
        self._range = CompactRange()
        self._started = False  # a checkpoint was delivered and the run-start appended
        self._broken = False  # a delivered entry broke a rule: the state is not usable
        self._run_origin: str | None = None
        self._start_index: int | None = None
        self._signed: dict[int, bytes] = {}  # size -> root of every checkpoint signed here
        self._last_run_checkpoint_at = float("-inf")
        self._last_run_size = -1
        self._final = False  # the final run-checkpoint asked for: nothing more for this run
        self.serving = False

    @property
    def size(self) -> int:
        """Entries taken so far (delivered and appended)."""
        return self.state.size

    @classmethod
    def genesis(cls, requirement: LedgerRequirement, *, pcr0: bytes, commitment_sha256: bytes,
                seal: Callable[[bytes], bytes], clock: Callable[[], int],
                monotonic: Callable[[], float]) -> tuple[EnclaveLedger, bytes, Appended]:
        """A new ledger made here: the ledger key generated in this enclave, ``seal(seed)``
        (to the key broker: the blob only an attested enclave the ledger allows gets it back
        from), and the genesis entry announcing this enclave's own PCR0, valid from its append,
        signed with its checkpoint. Returns the ledger (which serves nothing), the sealed key
        and the genesis entry. The seed never leaves this process unsealed."""
        if len(commitment_sha256) != 32:
            raise _refuse("ledger_entry", "commitment_sha256 is 32 bytes")
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        blob = seal(seed)
        ledger = cls(seed, requirement, pcr0=pcr0, clock=clock, monotonic=monotonic)
        now = clock()
        appended = ledger._append(CommitmentEntry(pcr0, commitment_sha256, now), now)
        ledger._started = True  # nothing is delivered to a ledger made here
        return ledger, blob, appended

    # -- the checkpointed state ---------------------------------------------------------------

    def sealed_state(self) -> bytes:
        """This enclave's verified state now, sealed (see the module docstring)."""
        body = _cbor.encode_canonical({"origin": self.requirement.origin,
                                       "size": self._range.size,
                                       "range": list(self._range.hashes),
                                       "state": self.state.snapshot()})
        return seal_state(self._state_key, _STATE_KEY_LABEL, body)

    def resume(self, sealed: bytes) -> int:
        """Start from a state an enclave of this ledger sealed (before any entry is taken);
        returns its size, the index of the first entry to deliver. Raises
        :class:`ServeRefused` (``ledger_state``), the ledger unchanged."""
        if self._started or self._broken or self.state.size or self._range.size:
            raise _refuse("ledger_order", "a checkpointed state comes before every entry")
        if len(sealed) > MAX_LEDGER_STATE:
            raise _refuse("ledger_state", "the checkpointed state is too large")
        try:
            body = open_state(sealed, self._state_key, _STATE_KEY_LABEL)
        except UnsealError:
            raise _refuse("ledger_state", "the checkpointed state is not a state sealed with "
                          "this ledger's key") from None
        try:
            doc = _cbor.decode(body, canonical=True, max_depth=8,
                               max_bytes=MAX_LEDGER_STATE)
            if (not isinstance(doc, dict) or set(doc) != {"origin", "size", "range", "state"}
                    or doc["origin"] != self.requirement.origin
                    or type(doc["size"]) is not int or not isinstance(doc["range"], list)):
                raise ValueError("not a sealed state of this ledger")
            tree = CompactRange(doc["size"], doc["range"])
            state = LedgerState.from_snapshot(doc["state"], signed_history=True)
            if state.size != tree.size:
                raise ValueError(f"a state of {state.size} entries over a tree of {tree.size}")
        except (ValueError, TypeError, _cbor.CborError) as exc:
            raise _refuse("ledger_state", f"the checkpointed state is refused: {exc}") from None
        self.state, self._range = state, tree
        return tree.size

    # -- the gate ----------------------------------------------------------------------------

    def take(self, entries: Sequence[bytes]) -> int:
        """Decode and replay delivered entries; returns the size so far."""
        if self._started:
            raise _refuse("ledger_order", "entries come before the checkpoint, not after")
        if self._broken:
            raise _refuse("ledger_order", "a delivery that broke a rule is not taken further")
        if self.state.size + len(entries) > MAX_LEDGER_ENTRIES:
            raise _refuse("ledger_size", f"a ledger of more than {MAX_LEDGER_ENTRIES} entries")
        for data in entries:
            if not isinstance(data, bytes):
                raise _refuse("ledger_entry", "a delivered entry is not bytes")
            try:
                entry = decode_entry(data)
                self.state.replay(entry)  # a broken rule refuses the whole delivery
            except LedgerFormatError as exc:
                self._broken = True
                raise _refuse("ledger_entry", f"entry {self.state.size}: {exc}") from None
            except LedgerRuleError as exc:
                self._broken = True
                raise _refuse(exc.check or "ledger_rule",
                              f"entry {self.state.size} breaks a rule: {exc}") from None
            self._range.append(leaf_hash(data))
        return self.state.size

    def _read(self, note: bytes) -> Checkpoint:
        try:
            checkpoint = parse_checkpoint(open_note(note, [self._verifier])[0].text)
        except (LogFormatError, NoteError):
            raise _refuse("ledger_checkpoint", "the checkpoint is not signed by the ledger key "
                          f"of {self.requirement.origin}") from None
        if checkpoint.origin != self.requirement.origin:
            raise _refuse("ledger_checkpoint", "the checkpoint is of another origin")
        return checkpoint

    def start(self, checkpoint_note: bytes, *, run_origin: str, run_vkey: str,
              boot_document: bytes) -> Appended:
        """Check the delivered checkpoint against the entries, this PCR0 against the allowed
        set, and append the run-start; raises :class:`ServeRefused`."""
        if self._started or self._broken:
            raise _refuse("ledger_order", "the run-start is appended once, after a whole "
                          "delivery")
        checkpoint = self._read(checkpoint_note)
        if checkpoint.size != self.state.size:
            raise _refuse("ledger_checkpoint", f"the checkpoint covers {checkpoint.size} "
                          f"entries, {self.state.size} were delivered: every entry, and only "
                          "entries the ledger key signed")
        if checkpoint.root != self._range.root():
            raise _refuse("ledger_root", "the delivered entries are not the ones the ledger's "
                          "checkpoint covers (an entry omitted, changed or forged)")
        now = self._clock()
        if not self.state.is_allowed(self._pcr0, now):
            version = self.state.versions.get(self._pcr0)
            why = ("is not announced in the ledger" if version is None else
                   "is revoked" if version.revoked_ns is not None and version.revoked_ns <= now
                   else "is not yet valid (its notice period runs)")
            raise _refuse("serve_pcr0", f"this enclave's PCR0 {why}: it may not serve")
        self._signed[checkpoint.size] = checkpoint.root
        body = RunStartEntry(self._pcr0, run_origin, run_vkey,
                             hashlib.sha256(boot_document).digest(),
                             self.state.previous_checkpoint())
        appended = self._append(body, now)
        self._started = True
        self._run_origin = run_origin
        self._start_index = self.state.size - 1
        self.serving = self.policy is None or self.policy.quorum is None
        return appended

    def cosigned(self, note: bytes) -> tuple[str, ...]:
        """Serve once ``note`` (a checkpoint this enclave signed, covering its run-start)
        carries the quorum's cosignatures (returns who cosigned); raises
        :class:`ServeRefused`."""
        if not self._started or self._start_index is None:
            raise _refuse("ledger_order", "no run-start to cosign yet")
        checkpoint = self._read(note)
        if self._signed.get(checkpoint.size) != checkpoint.root:
            raise _refuse("ledger_checkpoint", "the cosigned checkpoint is not one this "
                          "enclave signed")
        if checkpoint.size <= self._start_index:
            raise _refuse("serve_quorum", "the cosigned checkpoint does not cover the run-start")
        if self.policy is None:
            self.serving = True
            return ()
        report = check_quorum(note, self.policy)
        if not report.met:
            raise _refuse("serve_quorum", "the run-start is not cosigned by the measured "
                          f"quorum (cosigned by: {', '.join(report.cosigned) or 'none'})")
        self.serving = True
        return report.cosigned

    # -- the run's entries -------------------------------------------------------------------

    def run_checkpoint(self, run_note: bytes, *, final: bool = False) -> Appended | None:
        """A run-checkpoint of ``run_note`` (this run's newest checkpoint), or None when the
        interval has not passed or the log has not grown.

        ``final``: the last one of a run that ends without a run-end (a replay, which writes no
        summary): appended whatever the interval, once; nothing is appended for this run
        after it."""
        self._need_serving()
        if self._final:
            raise _refuse("ledger_order", "this run's final run-checkpoint is appended")
        if not final and self._monotonic() - self._last_run_checkpoint_at < (
                self.requirement.checkpoint_interval_s):
            return None
        size = _size_of(run_note)
        self._final = final
        if size <= self._last_run_size:
            return None
        assert self._run_origin is not None
        appended = self._append(RunCheckpointEntry(self._run_origin, run_note), self._clock())
        self._last_run_checkpoint_at = self._monotonic()
        self._last_run_size = size
        return appended

    def control(self, log_index: int, leaf_sha256: bytes, action: str,
                operator: str) -> Appended:
        """The ``control`` entry of the control record at ``log_index`` of this run's log (leaf
        hash ``leaf_sha256``); the ledger's rules refuse one out of order."""
        self._need_serving()
        assert self._run_origin is not None
        return self._append(ControlEntry(self._run_origin, log_index, leaf_sha256, action,
                                         operator), self._clock())

    def run_end(self, run_note: bytes, summary_sha256: bytes) -> Appended:
        """The run-end: the run's final checkpoint and the SHA-256 of its summary."""
        self._need_serving()
        if self._final:
            raise _refuse("ledger_order", "this run's final run-checkpoint is appended")
        if len(summary_sha256) != 32:
            raise _refuse("ledger_entry", "summary_sha256 is 32 bytes")
        assert self._run_origin is not None
        return self._append(RunEndEntry(self._run_origin, run_note, summary_sha256),
                            self._clock())

    # -- endorsements: the live version announces its successors and revokes ----------------

    def announce(self, pcr0: bytes, commitment_sha256: bytes, notice_ns: int) -> Appended:
        """The ``commitment`` of a successor ``pcr0``, valid ``notice_ns`` after now; only the
        live version endorses (see :meth:`revoke`)."""
        if type(notice_ns) is not int or notice_ns < 0:
            raise _refuse("ledger_entry", "a notice period is zero or more nanoseconds")
        now = self._endorsing()
        return self._append(CommitmentEntry(pcr0, commitment_sha256, now + notice_ns), now)

    def revoke(self, pcr0: bytes, reason: str) -> Appended:
        """The ``revocation`` of ``pcr0`` (an announcement before its ``valid_from``, or a
        retired version), by the live version; the rules refuse any other."""
        return self._append(RevocationEntry(pcr0, reason), self._endorsing())

    def archive(self, data: bytes) -> Appended:
        """An ``archive`` entry of the encoded entry ``data`` (its body: the host's index and
        time are replaced by this enclave's), once the gate passed; the rules refuse one of a
        run the ledger does not hold."""
        self._need_serving()
        if self._final:
            raise _refuse("ledger_order", "this run's final run-checkpoint is appended")
        try:
            body = decode_entry(data).body
        except LedgerFormatError as exc:
            raise _refuse("ledger_entry", f"the archive entry: {exc}") from None
        if not isinstance(body, ArchiveEntry):
            raise _refuse("ledger_entry", f"a {body.type} entry where an archive entry belongs")
        return self._append(body, self._clock())

    def _endorsing(self) -> int:
        """Now, when this enclave may endorse: its gate passed and its PCR0 is the live version
        (the newest allowed one) at its own clock; else :class:`ServeRefused`."""
        self._need_serving()
        if self._final:
            raise _refuse("ledger_order", "this run's final run-checkpoint is appended")
        now = self._clock()
        live = self.state.live(now)
        if live is None or live.pcr0 != self._pcr0:
            raise _refuse("endorse_live", "only the live version announces or revokes: this "
                          "enclave's PCR0 is allowed but a later version is live")
        return now

    def _need_serving(self) -> None:
        if not self.serving:
            raise _refuse("serve_gate", "the ledger's gate has not passed")

    def _append(self, body: EntryBody, now: int) -> Appended:
        entry = LedgerEntry(self.state.size, now, body)
        try:
            trial = self.state.after(entry)
            data = encode_entry(index=entry.index, time_ns=now, body=body)
        except LedgerRuleError as exc:
            raise _refuse(exc.check or "ledger_rule", f"the {body.type} breaks a rule: {exc}"
                          ) from None
        except ValueError as exc:
            raise _refuse("ledger_entry", f"the {body.type} cannot be encoded: {exc}") from None
        grown = self._range.copy()
        grown.append(leaf_hash(data))
        note = self._signer.sign(trial.size, grown.root())
        self.state, self._range = trial, grown
        self._signed[trial.size] = grown.root()
        return Appended(entry, data, note)


def control_facts(body: bytes) -> tuple[str, str] | None:
    """The action and operator of a note body that is a control record (None: another note);
    raises :class:`ServeRefused` for a body that names itself a control record and is not a
    canonical one with a known action and a printable operator."""
    if CONTROL_NOTE.encode() not in body:
        return None
    try:
        doc = _cbor.decode(body, canonical=True, max_depth=3, max_bytes=_MAX_CONTROL_BYTES)
    except _cbor.CborError:
        doc = None
    if not isinstance(doc, dict) or doc.get("note") != CONTROL_NOTE:
        if isinstance(doc, dict) and "note" in doc:
            return None  # another note that merely mentions the name
        raise _refuse("bad_control", "a control record that is not canonical CBOR")
    action, operator = doc.get("action"), doc.get("operator")
    if (type(action) is not str or action not in CONTROL_ACTIONS or type(operator) is not str
            or not 0 < len(operator) <= 64 or not operator.isprintable()):
        raise _refuse("bad_control", "a control record without a known action and a named "
                      "operator")
    return action, operator


def _size_of(note: bytes) -> int:
    from zcbench.auditlog.checkpoint import parse_checkpoint_note

    return parse_checkpoint_note(note).size


def release_ledger_seed(attester: Any, relay: Callable[[bytes, bytes, str], bytes],
                        blob: bytes, key_id: str, *, rsa_bits: int = 2048) -> bytes:
    """Ask the key broker for the ledger key with a fresh RSA key bound into this enclave's
    attestation document (relayed by the host; the RSA key never leaves here); the broker
    releases it only while the ledger allows this PCR0. Failures are opaque on purpose."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from zcbench.errors import ZcbenchError
    from zcbench.keys import unwrap_recipient

    key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    document = attester.attestation(user_data=None, nonce=None, public_key=spki)
    try:
        answer = relay(document, blob, key_id)
        seed = unwrap_recipient(answer, key)
    except ZcbenchError:
        raise _refuse("ledger_key_release", "the key broker did not release the ledger key "
                      "to this enclave") from None
    if len(seed) != 32:
        raise _refuse("ledger_key_release", "the released ledger key is not an Ed25519 seed")
    return seed
