"""The in-enclave runtime: log state, per-batch records and checkpoints, and the serve loop.

After boot the enclave holds a strategy instance, the run's ephemeral Ed25519 log key (as a
:class:`zcbench.auditlog.checkpoint.LogSigner`) and the log's compact range: O(log n) hashes,
never the log itself. Per ingested batch it appends one IN leaf (the batch bytes exactly as
received) and one OUT leaf (the encoded signals) and signs a checkpoint over the new size. The
reply carries the signals, the records' time stamps and the two leaf hashes, not the records:
the host rebuilds both records from the batch it sent and the signals, checks them against the
leaves, stores them, recomputes the root and verifies the signature before acting.

The boot record (index 0) carries the boot attestation document: nonce = the run id,
``public_key`` = DER SubjectPublicKeyInfo of the log key. An ``attest`` request gets a document
with the caller's nonce and ``user_data`` = CBOR ``{"checkpoint": <latest signed note>}``.

Errors leave as an error frame naming the batch and a short reason; never a traceback and never
strategy internals. After a strategy failure the runtime refuses further batches (the strategy's
state is unknown) but still answers attest, checkpoint and shutdown.

The ledger (``ledger_*`` requests, :mod:`zcbench.enclave.ledger`): the enclave gets the ledger
key from the key broker through ``relay``, checks what the host delivers, appends its run's
entries and signs the ledger's checkpoints; a control record it logs as a note gets its
``control`` entry in the same step (``note_logged`` then carries ``entry`` and
``ledger_checkpoint``). When the image is measured with a ledger
requirement (``ledger``), or once the host opened a ledger, batches and feedback are refused
until the gate passed.

A strategy's snapshot (:mod:`zcbench.strategy._snapshot`; only for a strategy that implements
the contract): on ``snapshot`` the enclave takes the strategy's state between batches, seals it
(:func:`zcbench.keys.seal_state`, label :data:`SNAPSHOT_LABEL`) under a key derived from the
secret the key broker released to this attested enclave at boot (a build's data key) and its
PCR0, logs a ``taken`` snapshot record with the state's SHA-256 and hands the host the sealed
bytes to keep. On ``restore``, before the first batch, it is given sealed bytes, the record
that logged them (``taken``, or ``restored`` by a run that started from them) and the record's
inclusion proof under a checkpoint (origin, size, root): for
a run that continues another, exactly the checkpoint its boot names; for a replay (no link)
the checkpoint of the log it replays, and it then takes batches from the snapshot's seq on. It
opens the bytes (another build's, or edited ones, do not open), checks their SHA-256 against
the record (a record of another log, or another snapshot, does not match), restores the
strategy and logs a ``restored`` record naming where the snapshot came from. A module image
(development, unsealed) has no released secret: its snapshots are sealed under a key derived
from its PCR0 alone, which binds them to the build and keeps them checked against the log,
but hides nothing.

The attester (NSM emulator or ``/dev/nsm``) and the clock are parameters.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench import _cbor
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.link import RunLink, decode_link, encode_link
from zcbench.auditlog.merkle import leaf_hash, verify_inclusion
from zcbench.auditlog.records import decode_record
from zcbench.auditlog.snapshots import catch_up_start
from zcbench.auditlog.writer import EnclaveLogState, batch_event_time
from zcbench.channel import (
    ChannelClosed,
    Connection,
    FrameError,
    Message,
    SequenceGuard,
    error_message,
)
from zcbench.enclave._catchup import CatchUp, CatchUpRefused
from zcbench.enclave.ledger import (
    EnclaveLedger,
    LedgerRequirement,
    control_facts,
    release_ledger_seed,
)
from zcbench.errors import DataError, UsageError, VerificationError
from zcbench.keys import UnsealError, open_state, seal_state, state_key
from zcbench.strategy import (
    SNAPSHOT_NOTE,
    Context,
    SnapshotNote,
    SnapshotSource,
    Strategy,
    StrategyError,
    apply_strategy,
    decode_batch,
    decode_context,
    decode_snapshot_note,
    decode_start,
    encode_signals,
    encode_snapshot_note,
    is_snapshot_note,
    restore_snapshot,
    take_snapshot,
    takes_snapshot,
)

__all__ = ["MAX_NOTE_BYTES", "SNAPSHOT_LABEL", "Attester", "EnclaveRuntime", "boot_reply",
           "serve"]

MAX_NOTE_BYTES: Final = 4096
"""Largest note body the host may have logged."""
SNAPSHOT_LABEL: Final = SNAPSHOT_NOTE
"""The label a strategy's snapshot is sealed under (and its key derived with)."""
_MAX_PROOF: Final = 64


class Attester(Protocol):
    """What the runtime needs from an NSM: an attestation document for these fields."""

    def attestation(
        self, *, user_data: bytes | None, nonce: bytes | None, public_key: bytes | None
    ) -> bytes: ...


@dataclass
class _Booted:
    run_id: str
    signer: LogSigner
    document: bytes
    log: EnclaveLogState

    @property
    def note(self) -> bytes:
        assert self.log.note is not None  # the boot record is signed at boot
        return self.log.note


class EnclaveRuntime:
    """One enclave's run: boot once, then ingest batches in sequence.

    ``pcr0`` is the measurement of the image this enclave loaded (it names the log's origin);
    ``key`` is for tests that need a fixed key, else a fresh one is made at boot.
    """

    def __init__(
        self,
        strategy: Strategy,
        attester: Attester,
        *,
        pcr0: bytes,
        clock: Callable[[], int] = time.time_ns,
        key: Ed25519PrivateKey | None = None,
        relay: Callable[[bytes, bytes, str], bytes] | None = None,
        ledger: LedgerRequirement | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        state_secret: bytes | None = None,
    ) -> None:
        # the snapshot key: the secret released at boot and this build's PCR0 (module images
        # have no secret: development, see the module docstring)
        self._snapshot_key = state_key(state_secret or b"", SNAPSHOT_LABEL, pcr0)
        self._link: RunLink | None = None
        self._restored = False
        # a continuing run's catch-up, due after its restore: the snapshot record's (index,
        # seq), then the catch-up in progress
        self._catch_up_due: tuple[int, int] | None = None
        self._catching: CatchUp | None = None
        self._relay = relay
        self._requirement = ledger
        self._monotonic = monotonic
        self._ledger: EnclaveLedger | None = None
        self._strategy = strategy
        self._attester = attester
        self._pcr0 = pcr0
        self._clock = clock
        self._key = key
        self._state: _Booted | None = None
        self._guard = SequenceGuard()
        self._context: Context | None = None
        self.failed: str | None = None

    @property
    def size(self) -> int:
        """Records in the log so far (0 before boot)."""
        return 0 if self._state is None else self._state.log.size

    def boot(self, run_id: str, previous: bytes | None = None) -> Message:
        """Make the log key and the boot document (the log's first record); ``booted`` reply.
        ``previous``: the encoded link to the run this one continues
        (:mod:`zcbench.auditlog.link`), attested as the document's ``user_data``."""
        if self._state is not None:
            raise UsageError("this enclave has booted already; a new run needs a new enclave")
        try:
            origin = log_origin(self._pcr0, run_id)
        except ValueError as exc:
            raise _Refused("bad_run_id", str(exc)) from None
        user_data = None
        if previous is not None:
            try:
                link = decode_link(previous)
            except DataError as exc:
                raise _Refused("bad_previous", str(exc)) from None
            assert link is not None
            user_data = encode_link(link)
            self._link = link
        signer = LogSigner(self._key or Ed25519PrivateKey.generate(), origin)
        self._key = None  # never reused
        document = self._attester.attestation(
            user_data=user_data, nonce=run_id.encode(), public_key=signer.public_key_spki_der
        )
        log = EnclaveLogState(signer)
        step = log.boot(document, time_ns=self._clock())
        self._state = _Booted(run_id, signer, document, log)
        record, note = step.records[0], step.checkpoint
        return Message(
            "booted",
            {
                "run_id": run_id,
                "origin": origin,
                "public_key": signer.public_key_spki_der,
                "document": document,
                "record": record,
                "checkpoint": note,
                "fields": list(self._strategy.fields()),
                "snapshots": int(takes_snapshot(self._strategy)),
            },
        )

    def ingest(self, seq: int, batch_bytes: bytes) -> Message:
        """Run one batch: IN leaf, strategy, OUT leaf, signed checkpoint; ``signals`` reply."""
        state = self._booted()
        self._gate_passed(f"batch {seq}")
        if self.failed is not None:
            raise _Refused("strategy_failed", f"refusing batch {seq}: {self.failed}")
        self._caught_up(f"batch {seq}")
        self._guard.check(seq)  # advanced only once the batch is in the log state
        batch = decode_batch(batch_bytes, seq=seq)  # the frame's seq: the bytes carry none
        try:
            context, self._context = self._context, None
            signals = apply_strategy(self._strategy, batch, context)
        except StrategyError as exc:
            self.failed = str(exc)
            raise
        body = encode_signals(signals)
        now = self._clock()
        step = state.log.batch(
            seq,
            batch_bytes,
            body,
            time_ns=now,
            event_time_ns=batch_event_time(batch.events.get_column("ts")),
        )
        self._guard.accept(seq)
        # the host holds the batch and gets the signals: it rebuilds both records from them, the
        # stamp and the newest event time it computes itself, and checks the leaves, so the
        # ~batch-sized IN record never travels back
        return Message(
            "signals",
            {
                "seq": seq,
                "signals": body,
                "time_ns": now,
                "leaves": list(step.leaves),
                "checkpoint": step.checkpoint,
            },
        )

    def feedback(self, seq: int, body: bytes) -> Message:
        """Log the host's feedback for batch ``seq`` (the next one) as an IN record, keep it for
        the strategy's next ``on_batch`` and sign the new checkpoint; ``feedback_logged``
        reply. The body must decode strictly as a context naming that batch."""
        state = self._booted()
        self._gate_passed(f"feedback {seq}")
        if self.failed is not None:
            raise _Refused("strategy_failed", f"refusing feedback {seq}: {self.failed}")
        self._caught_up(f"feedback {seq}")
        if self._context is not None and not (seq == 0 and not self._context.outcomes):
            raise _Refused("bad_feedback", f"batch {seq} has its feedback already")
        try:
            context = decode_context(body, seq=seq)  # the frame's seq: a v3 body carries none
        except DataError as exc:
            raise _Refused("bad_feedback", str(exc).splitlines()[0]) from None
        if seq != state.log.next_seq:
            raise _Refused(
                "bad_feedback", f"feedback for batch {seq}; batch {state.log.next_seq} is next"
            )
        now = self._clock()
        step = state.log.add_input(seq, body, time_ns=now)
        self._context = context
        return Message(
            "feedback_logged",
            {"seq": seq, "time_ns": now, "leaf": step.leaves[0], "checkpoint": step.checkpoint},
        )

    def start(self, body: bytes) -> Message:
        """Log the venue's state at start (:mod:`zcbench.strategy._start`) as the IN record of
        seq 0 before any batch, hand its positions to the strategy as batch 0's context and
        sign the new checkpoint; ``start_logged`` reply."""
        state = self._booted()
        if state.log.next_seq != 0 or self._context is not None or state.log.size != 1:
            raise _Refused("bad_start", "the venue's state at start comes right after boot")
        try:
            venue = decode_start(body)
        except DataError as exc:
            raise _Refused("bad_start", str(exc).splitlines()[0]) from None
        now = self._clock()
        step = state.log.add_input(0, body, time_ns=now)
        self._context = Context(0, positions=venue.positions)
        return Message(
            "start_logged",
            {"seq": 0, "time_ns": now, "leaf": step.leaves[0], "checkpoint": step.checkpoint},
        )

    def snapshot(self) -> Message:
        """Take the strategy's snapshot now (between batches), seal it, log its ``taken``
        record and sign the new checkpoint; ``snapshot_taken`` reply with the sealed bytes."""
        state = self._booted()
        self._gate_passed("a snapshot")
        if self.failed is not None:
            raise _Refused("strategy_failed", f"no snapshot: {self.failed}")
        self._caught_up("a snapshot")
        if not takes_snapshot(self._strategy):
            raise _Refused("no_snapshot", "this strategy keeps no snapshot (it implements no "
                           "snapshot/restore)")
        if self._context is not None:
            # the state would miss the context logged for the next batch: a replay from here
            # would not see it
            raise _Refused("snapshot_order", "a snapshot is taken after a batch, before the "
                           "next batch's feedback")
        seq = state.log.next_seq
        plain = take_snapshot(self._strategy, seq=seq)  # a StrategyError leaves as one
        note = SnapshotNote("taken", seq, hashlib.sha256(plain).digest(), len(plain))
        body = encode_snapshot_note(note)
        sealed = seal_state(self._snapshot_key, SNAPSHOT_LABEL, plain)
        now = self._clock()
        step = state.log.add_note(body, time_ns=now)
        return Message("snapshot_taken", {"body": body, "sealed": sealed, "time_ns": now,
                                          "leaf": step.leaves[0], "checkpoint": step.checkpoint})

    def restore(self, sealed: bytes, data: bytes, index: int, origin: str, size: int,
                root: bytes, proof: list[bytes]) -> Message:
        """Restore the strategy from a sealed snapshot before its first batch (see the module
        docstring); ``restored`` reply. Refused, the strategy untouched, unless the bytes open
        under this build's key and hash to the ``taken`` record ``data`` at ``index``, proven
        by ``proof`` under the checkpoint (``origin``, ``size``, ``root``); for a continuing
        run that must be the one its boot names."""
        state = self._booted()
        if self._restored or state.log.next_seq != 0 or self.failed is not None:
            raise _Refused("restore_order", "a snapshot is restored once, before the first "
                           "batch")
        if not takes_snapshot(self._strategy):
            raise _Refused("no_snapshot", "this strategy cannot restore a snapshot")
        link = self._link
        if link is not None and (origin, size, root) != (link.origin, link.size, link.root):
            raise _Refused("snapshot_source", "the snapshot is not proven under the previous "
                           "run's final checkpoint, which this run's boot names")
        try:
            record = decode_record(data)
            if record.kind != "note" or record.index != index or not is_snapshot_note(
                    record.body):
                raise DataError("not a snapshot record")
            taken = decode_snapshot_note(record.body)  # taken here, or restored from before
            source = SnapshotSource(origin, size, root, index)
            if len(proof) > _MAX_PROOF or not all(isinstance(h, bytes) for h in proof):
                raise DataError("a bad inclusion proof")
            verify_inclusion(leaf_hash(data), index, size, list(proof), root)
        except (DataError, VerificationError, ValueError) as exc:
            raise _Refused("snapshot_record", "the snapshot's record is not a snapshot record "
                           f"proven under that checkpoint: {str(exc).splitlines()[0]}"
                           ) from None
        try:
            plain = open_state(sealed, self._snapshot_key, SNAPSHOT_LABEL)
        except UnsealError:
            raise _Refused("snapshot_sealed", "the snapshot does not open under this build's "
                           "key: it was sealed by an enclave of another PCR0, or edited") from None
        if not taken.matches(plain):
            raise _Refused("snapshot_hash", f"the snapshot is not the one the log records at "
                           f"index {index}: its SHA-256 differs")
        at = 0 if link is not None else taken.seq
        try:
            restore_snapshot(self._strategy, plain, seq=at)
        except StrategyError as exc:
            self.failed = str(exc)
            raise
        if at:
            state.log.continue_at(at)
            self._guard = SequenceGuard(at)
        self._restored = True
        if link is not None:  # the previous run's batches after the snapshot come next
            self._catch_up_due = (index, taken.seq)
        body = encode_snapshot_note(SnapshotNote("restored", at, taken.sha256, taken.size,
                                                 source))
        now = self._clock()
        step = state.log.add_note(body, time_ns=now)
        return Message("restored", {"body": body, "time_ns": now, "leaf": step.leaves[0],
                                    "checkpoint": step.checkpoint})

    def catch_up(self, first: int, hashes: list[bytes], records: list[bytes],
                 last: int) -> Message:
        """Take the next records of a continuing run's catch-up (:mod:`zcbench.enclave._catchup`):
        the previous run's records from index ``first`` on (``hashes``: the compact range of
        those before it, in the first request only). ``catch_up_ack`` with the next index
        expected; after the ``last`` one (1), the strategy's state as caught up is sealed and
        logged as a ``caught_up`` snapshot record, ``caught_up`` reply with the sealed bytes.
        A refusal leaves the strategy failed: its state is not to be used."""
        state = self._booted()
        if type(first) is not int or first < 1 or last not in (0, 1):
            raise _Refused("bad_request", "catch_up names its first record's index and whether "
                           "it is the last request")
        if self._catch_up_due is None:
            raise _Refused("catch_up_order", "a catch-up follows a continuing run's restore, "
                           "once")
        if self.failed is not None:
            raise _Refused("strategy_failed", f"no catch-up: {self.failed}")
        index, seq = self._catch_up_due
        link = self._link
        assert link is not None  # a catch-up is due only with one
        try:
            if self._catching is None:
                if first != catch_up_start(index, seq):
                    raise CatchUpRefused("catch_up_proof", f"the catch-up after the snapshot "
                                         f"record {index} starts at record "
                                         f"{catch_up_start(index, seq)}, not {first}")
                self._catching = CatchUp(self._strategy, link, first, hashes, seq)
            elif first != self._catching.next_index or hashes:
                raise CatchUpRefused("catch_up_records", f"the catch-up goes on at record "
                                     f"{self._catching.next_index}, not {first}")
            catching = self._catching
            catching.take(records)
            if not last:
                return Message("catch_up_ack", {"next": catching.next_index})
            batches = catching.finish()
            plain = take_snapshot(self._strategy, seq=0)
        except CatchUpRefused as exc:
            self.failed = f"the catch-up was refused: {exc}"
            self._catching = None
            raise _Refused(exc.code, str(exc)) from None
        except StrategyError as exc:
            self.failed = str(exc)
            self._catching = None
            raise
        self._catch_up_due = self._catching = None
        note = SnapshotNote("caught_up", 0, hashlib.sha256(plain).digest(), len(plain),
                            SnapshotSource(link.origin, link.size, link.root, index), batches)
        body = encode_snapshot_note(note)
        sealed = seal_state(self._snapshot_key, SNAPSHOT_LABEL, plain)
        now = self._clock()
        step = state.log.add_note(body, time_ns=now)
        return Message("caught_up", {"body": body, "sealed": sealed, "batches": batches,
                                     "time_ns": now, "leaf": step.leaves[0],
                                     "checkpoint": step.checkpoint})

    def _caught_up(self, what: str) -> None:
        """Refuse ``what`` while a continuing run's catch-up is due."""
        if self._catch_up_due is not None:
            raise _Refused("catch_up_order", f"refusing {what}: the previous run's records "
                           "after its snapshot come first (catch_up)")

    def record_note(self, body: bytes) -> Message:
        """Append a ``note`` record the host asked for (e.g. batches its proxy dropped) and sign
        the new checkpoint; ``note_logged`` reply. The body is the host's statement, bounded in
        size; the enclave vouches only that it was logged here, in this order."""
        state = self._booted()
        if len(body) > MAX_NOTE_BYTES:
            raise _Refused("bad_note", f"a note holds at most {MAX_NOTE_BYTES} bytes")
        if is_snapshot_note(body):
            raise _Refused("bad_note", "snapshot records are the enclave's own; the host "
                           "cannot log one")
        ledger = self._ledger if self._ledger is not None and self._ledger.serving else None
        facts = control_facts(body) if ledger is not None else None
        now = self._clock()
        index = state.log.size
        step = state.log.add_note(body, time_ns=now)
        fields = {"time_ns": now, "leaf": step.leaves[0], "checkpoint": step.checkpoint}
        if ledger is not None and facts is not None:
            # a control record of a run with a ledger: its entry, signed here (the reply
            # carries both; the host stores the record, then the entry)
            appended = ledger.control(index, step.leaves[0], *facts)
            fields |= {"entry": appended.data, "ledger_checkpoint": appended.checkpoint}
        return Message("note_logged", fields)

    def attest(self, nonce: bytes) -> Message:
        """A fresh document: the caller's nonce, the latest checkpoint in ``user_data``."""
        state = self._booted()
        if not nonce:
            raise _Refused("bad_nonce", "attest needs a non-empty nonce")
        user_data = _cbor.encode_canonical({"checkpoint": state.note})
        document = self._attester.attestation(
            user_data=user_data, nonce=nonce, public_key=state.signer.public_key_spki_der
        )
        return Message("document", {"document": document})

    def checkpoint(self) -> Message:
        """The latest signed checkpoint."""
        state = self._booted()
        return Message("note", {"checkpoint": state.note, "size": state.log.size})

    # -- the ledger (zcbench.enclave.ledger) ---------------------------------------------------

    def _gate_passed(self, what: str) -> None:
        """Refuse to serve while a ledger is required (measured, or opened by the host) and its
        gate has not passed."""
        if self._requirement is None and self._ledger is None:
            return
        if self._ledger is None or not self._ledger.serving:
            raise _Refused("serve_gate", f"refusing {what}: the ledger's gate has not passed "
                           "(run-start appended and, with witnesses, cosigned by the quorum)")

    def ledger_open(self, origin: str, key_blob: bytes, key_id: str) -> Message:
        """Get the ledger key from the key broker (through the host's relay); ``ledger_key``."""
        self._booted()
        if self._ledger is not None:
            raise _Refused("ledger_order", "the ledger is opened once per run")
        if self._requirement is not None and origin != self._requirement.origin:
            raise _Refused("ledger_origin", f"this image is measured for the ledger "
                           f"{self._requirement.origin}, not {origin}")
        if self._relay is None:
            raise _Refused("ledger_key_release", "no key relay to ask for the ledger key")
        requirement = self._requirement or LedgerRequirement(origin)
        seed = release_ledger_seed(self._attester, self._relay, key_blob, key_id)
        self._ledger = EnclaveLedger(seed, requirement, pcr0=self._pcr0, clock=self._clock,
                                     monotonic=self._monotonic)
        return Message("ledger_key", {"vkey": self._ledger.vkey})

    def ledger_genesis(self, origin: str, commitment_sha256: bytes, seal_key: bytes) -> Message:
        """Make a new ledger here (the genesis build's enclave): the ledger key, sealed to the
        key broker's ``seal_key``, and the genesis entry of this PCR0; ``ledger_made``."""
        from zcbench.keys import seal_to_broker
        from zcbench.ledger.key import secret_name

        self._booted()
        if self._ledger is not None:
            raise _Refused("ledger_order", "the ledger is opened or made once per run")
        if self._requirement is not None and origin != self._requirement.origin:
            raise _Refused("ledger_origin", f"this image is measured for the ledger "
                           f"{self._requirement.origin}, not {origin}")
        requirement = self._requirement or LedgerRequirement(origin)
        ledger, blob, appended = EnclaveLedger.genesis(
            requirement, pcr0=self._pcr0, commitment_sha256=commitment_sha256,
            seal=lambda seed: seal_to_broker(secret_name(origin), seed, seal_key),
            clock=self._clock, monotonic=self._monotonic)
        self._ledger = ledger
        return Message("ledger_made", {"vkey": ledger.vkey, "key_blob": blob,
                                       "entry": appended.data,
                                       "checkpoint": appended.checkpoint,
                                       "state": ledger.sealed_state()})

    def _open_ledger(self) -> EnclaveLedger:
        if self._ledger is None:
            raise _Refused("ledger_order", "open the ledger first (ledger_open)")
        return self._ledger

    def ledger_resume(self, state: bytes) -> Message:
        """Start from a sealed state of this ledger; ``ledger_ack`` with the size it covers."""
        return Message("ledger_ack", {"size": self._open_ledger().resume(state)})

    def ledger_entries(self, entries: list[bytes]) -> Message:
        """Replay delivered entries through the rules; ``ledger_ack`` with the size so far."""
        return Message("ledger_ack", {"size": self._open_ledger().take(entries)})

    def ledger_start(self, checkpoint: bytes) -> Message:
        """Check the delivered checkpoint and this PCR0, append the run-start."""
        state = self._booted()
        ledger = self._open_ledger()
        appended = ledger.start(
            checkpoint, run_origin=state.signer.origin, run_vkey=state.signer.vkey,
            boot_document=state.document)
        return Message("ledger_appended", {"entry": appended.data,
                                           "checkpoint": appended.checkpoint,
                                           "state": ledger.sealed_state()})

    def ledger_cosigned(self, checkpoint: bytes) -> Message:
        """Serve once the run-start's checkpoint carries the measured quorum."""
        ledger = self._open_ledger()
        ledger.cosigned(checkpoint)
        return Message("ledger_serving", {"size": ledger.size})

    def ledger_checkpoint(self, final: bool = False) -> Message:
        """A run-checkpoint of this run's newest checkpoint, when its interval has passed (or
        ``final``: the last of a run without a run-end)."""
        appended = self._open_ledger().run_checkpoint(self._booted().note, final=final)
        if appended is None:
            return Message("ledger_appended", {"entry": None, "checkpoint": None})
        return Message("ledger_appended", {"entry": appended.data,
                                           "checkpoint": appended.checkpoint})

    def ledger_announce(self, pcr0: bytes, commitment_sha256: bytes, notice_ns: int) -> Message:
        """This live version endorses a successor (its commitment entry)."""
        appended = self._open_ledger().announce(pcr0, commitment_sha256, notice_ns)
        return Message("ledger_appended", {"entry": appended.data,
                                           "checkpoint": appended.checkpoint})

    def ledger_revoke(self, pcr0: bytes, reason: str) -> Message:
        """This live version revokes an announcement or a retired version."""
        appended = self._open_ledger().revoke(pcr0, reason)
        return Message("ledger_appended", {"entry": appended.data,
                                           "checkpoint": appended.checkpoint})

    def ledger_archive(self, entry: bytes) -> Message:
        """An archive entry of this ledger, appended and signed here."""
        appended = self._open_ledger().archive(entry)
        return Message("ledger_appended", {"entry": appended.data,
                                           "checkpoint": appended.checkpoint})

    def ledger_end(self, summary_sha256: bytes) -> Message:
        """The run-end with this run's final checkpoint."""
        ledger = self._open_ledger()
        appended = ledger.run_end(self._booted().note, summary_sha256)
        return Message("ledger_appended", {"entry": appended.data,
                                           "checkpoint": appended.checkpoint,
                                           "state": ledger.sealed_state()})

    def _booted(self) -> _Booted:
        if self._state is None:
            raise _Refused("not_booted", "boot first")
        return self._state


class _Refused(Exception):
    """A request the runtime answers with an error frame (code, short reason)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def serve(conn: Connection, runtime: EnclaveRuntime, *, idle_timeout: float | None = None) -> str:
    """Answer requests on ``conn`` until shutdown or disconnect; returns why it stopped.

    Every failure inside a request becomes an error frame with a short reason; only a lost
    connection ends the loop early.
    """
    while True:
        try:
            msg = conn.recv(timeout=idle_timeout)
        except FrameError as exc:
            if exc.fatal:
                return f"closed: {exc}"
            conn.reject(exc)
            continue
        except ChannelClosed as exc:
            return exc.reason
        except TimeoutError:
            conn.close("idle timeout")
            return "idle timeout"
        seq = msg.fields.get("seq") if msg.type == "ingest" else None
        try:
            reply = _dispatch(runtime, msg)
        except _Refused as exc:
            reply = error_message(exc.code, str(exc), seq)
        except StrategyError as exc:
            reply = error_message("strategy", str(exc), exc.seq)
        except FrameError as exc:
            reply = error_message(exc.code, str(exc), seq)
        except VerificationError as exc:  # the ledger's gate refused what the host delivered
            reply = error_message(exc.check, str(exc), seq)
        except DataError as exc:
            reply = error_message("bad_request", str(exc).splitlines()[0], seq)
        except UsageError as exc:
            reply = error_message("usage", str(exc), seq)
        except Exception as exc:  # the boundary: report the type only, never a traceback
            reply = error_message("internal", f"{type(exc).__name__} in {msg.type}", seq)
        try:
            try:
                conn.send(reply)
            except FrameError as exc:  # a reply over the frame limit: say so, stay up
                conn.send(error_message(exc.code, f"{reply.type} reply too large", seq))
        except ChannelClosed as exc:
            return exc.reason
        if msg.type == "shutdown":
            conn.close(f"shutdown: {msg['reason']}")
            return f"shutdown: {msg['reason']}"


def boot_reply(runtime: EnclaveRuntime, msg: Message) -> Message:
    """The reply to a ``boot`` message: ``booted``, or an error frame when its config's
    ``previous`` (the run this one continues) is not a well-formed link."""
    config = msg.fields.get("config") or {}
    previous = config.get("previous") if isinstance(config, dict) else None
    if previous is not None and not isinstance(previous, bytes):
        return error_message("bad_previous", "config previous must be the encoded run link")
    try:
        return runtime.boot(msg["run_id"], previous)
    except _Refused as exc:
        return error_message(exc.code, str(exc))


def _dispatch(runtime: EnclaveRuntime, msg: Message) -> Message:
    if msg.type == "boot":
        return boot_reply(runtime, msg)
    if msg.type == "start":
        return runtime.start(msg["body"])
    if msg.type == "ingest":
        return runtime.ingest(msg["seq"], msg["batch"])
    if msg.type == "attest":
        return runtime.attest(msg["nonce"])
    if msg.type == "feedback":
        return runtime.feedback(msg["seq"], msg["body"])
    if msg.type == "record_note":
        return runtime.record_note(msg["body"])
    if msg.type == "snapshot":
        return runtime.snapshot()
    if msg.type == "restore":
        return runtime.restore(msg["sealed"], msg["record"], msg["index"], msg["origin"],
                               msg["size"], msg["root"], list(msg["proof"]))
    if msg.type == "catch_up":
        return runtime.catch_up(msg["first"], list(msg["range"]), list(msg["records"]),
                                msg["last"])
    if msg.type == "checkpoint":
        return runtime.checkpoint()
    if msg.type == "ledger_open":
        return runtime.ledger_open(msg["origin"], msg["key_blob"], msg["key_id"])
    if msg.type == "ledger_genesis":
        return runtime.ledger_genesis(msg["origin"], msg["commitment_sha256"], msg["seal_key"])
    if msg.type == "ledger_resume":
        return runtime.ledger_resume(msg["state"])
    if msg.type == "ledger_entries":
        return runtime.ledger_entries(list(msg["entries"]))
    if msg.type == "ledger_start":
        return runtime.ledger_start(msg["checkpoint"])
    if msg.type == "ledger_cosigned":
        return runtime.ledger_cosigned(msg["checkpoint"])
    if msg.type == "ledger_checkpoint":
        return runtime.ledger_checkpoint()
    if msg.type == "ledger_announce":
        return runtime.ledger_announce(msg["pcr0"], msg["commitment_sha256"], msg["notice_ns"])
    if msg.type == "ledger_revoke":
        return runtime.ledger_revoke(msg["pcr0"], msg["reason"])
    if msg.type == "ledger_archive":
        return runtime.ledger_archive(msg["entry"])
    if msg.type == "ledger_final":
        return runtime.ledger_checkpoint(final=True)
    if msg.type == "ledger_end":
        return runtime.ledger_end(msg["summary_sha256"])
    if msg.type == "shutdown":
        return Message("bye", {"size": runtime.size})
    raise _Refused("unexpected", f"the enclave does not accept {msg.type!r} frames")
