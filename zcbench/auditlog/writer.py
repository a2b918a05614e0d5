"""The two halves of writing a log: the enclave's signing state and the host's durable commit.

One builder makes a batch's two records (:func:`batch_records`): the enclave calls it to sign
them, the host calls it to rebuild them from the batch it sent and the signals it received, and
tests and benchmarks go through the same two classes as the product.

:class:`EnclaveLogState` is what the enclave keeps (DESIGN.md, "The live run"): the compact range
(O(log n) hashes) and the log signer. It makes the boot record, then per batch one IN and one OUT
record and a checkpoint signed over the new root. It touches no file.

:class:`HostLogWriter` is what the host does with them, *log before act*: append the records,
fsync, recompute the root over what it has just written (its own compact range, independent of
the store's), check the enclave's signature on a checkpoint of exactly that size and root, and
store the checkpoint durably. Steps already waiting are staged together and made durable with one
fsync for their records and one for the newest checkpoint (group commit): only the newest
checkpoint of a group is stored, so only it is verified, once, against the root over every
record of the group; on a failure the group's checkpoints are checked in order to name the first
bad step. Only when :meth:`HostLogWriter.flush` (or :meth:`~HostLogWriter.commit`) returns may
the execution layer act. The host never holds the signing key.

If a check fails the records stay in the store without a covering checkpoint (the verifier
reports them as an uncommitted tail) and :class:`~zcbench.errors.VerificationError` is raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zcbench.auditlog._fs import FileSystem
from zcbench.auditlog.checkpoint import Checkpoint, CheckpointVerifier, LogSigner
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import encode_record
from zcbench.auditlog.storage import DEFAULT_SEGMENT_BYTES, LogStore
from zcbench.errors import DataError, UsageError, VerificationError

__all__ = [
    "BatchRecords",
    "EnclaveLogState",
    "HostLogWriter",
    "batch_event_time",
    "batch_records",
]


def batch_event_time(ts: Any) -> int | None:
    """The newest event time of a batch, from its ``ts`` column (any sequence with ``max``,
    such as a polars Series); None for an empty batch. The proxy stamps it once per batch, the
    enclave computes it from the batch it received, and the records of both sides carry it."""
    return int(ts.max()) if len(ts) else None


def batch_records(
    index: int,
    seq: int,
    in_body: bytes,
    out_body: bytes,
    *,
    time_ns: int,
    event_time_ns: int | None,
) -> tuple[bytes, bytes]:
    """Batch ``seq``'s IN record (index ``index``, the batch bytes) and OUT record (the next
    index, the encoded signals), both stamped ``time_ns`` and the batch's newest event time.

    Raises ``ValueError`` for a field outside its domain."""
    return (
        encode_record(
            index=index, kind="in", seq=seq, body=in_body, time_ns=time_ns,
            event_time_ns=event_time_ns,
        ),
        encode_record(
            index=index + 1, kind="out", seq=seq, body=out_body, time_ns=time_ns,
            event_time_ns=event_time_ns,
        ),
    )


@dataclass(frozen=True, slots=True)
class BatchRecords:
    """What the enclave makes per step: the new records, their leaf hashes and the checkpoint."""

    records: tuple[bytes, ...]
    checkpoint: bytes
    leaves: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not self.leaves and self.records:
            object.__setattr__(self, "leaves", tuple(leaf_hash(r) for r in self.records))


class EnclaveLogState:
    """The enclave's log state: compact range plus signer (no storage, no clock of its own)."""

    def __init__(self, signer: LogSigner, compact: CompactRange | None = None) -> None:
        self.signer = signer
        self.compact = compact if compact is not None else CompactRange()
        self._next_seq = 0
        self.note: bytes | None = None
        """The latest signed checkpoint (None before the boot record)."""

    @property
    def size(self) -> int:
        """Records appended so far."""
        return self.compact.size

    @property
    def next_seq(self) -> int:
        """The sequence number the next batch must carry."""
        return self._next_seq

    def continue_at(self, seq: int) -> None:
        """Take batches from ``seq`` on (a replay that starts from a strategy's snapshot taken
        before batch ``seq``); only before any IN record."""
        if self._next_seq != 0:
            raise ValueError("a log continues at another seq only before its first batch")
        self._next_seq = seq

    def _add(self, records: Sequence[bytes]) -> BatchRecords:
        leaves = tuple(leaf_hash(data) for data in records)
        for leaf in leaves:
            self.compact.append(leaf)
        self.note = self.signer.sign(self.compact.size, self.compact.root())
        return BatchRecords(tuple(records), self.note, leaves)

    def boot(self, document: bytes, *, time_ns: int) -> BatchRecords:
        """Record 0: the boot attestation document; the first checkpoint covers it."""
        if self.compact.size != 0:
            raise ValueError("the boot record is record 0; the log is not empty")
        return self._add([encode_record(index=0, kind="boot", body=document, time_ns=time_ns)])

    def batch(
        self, seq: int, in_body: bytes, out_body: bytes, *, time_ns: int,
        event_time_ns: int | None = None,
    ) -> BatchRecords:
        """The IN and OUT records of batch ``seq`` (:func:`batch_records`) and the checkpoint
        after them.

        Sequence numbers must follow each other from 0: a gap or a replay is refused.
        """
        if self.note is None:
            raise ValueError("record the boot document first")
        if seq != self._next_seq:
            raise ValueError(f"batch seq {seq} but {self._next_seq} was expected")
        records = batch_records(
            self.compact.size, seq, in_body, out_body, time_ns=time_ns,
            event_time_ns=event_time_ns,
        )
        self._next_seq += 1
        return self._add(records)

    def add_input(self, seq: int, body: bytes, *, time_ns: int) -> BatchRecords:
        """An IN record of batch ``seq`` that is not the batch itself (the feedback the strategy
        is handed before it) and the checkpoint after it; ``seq`` must be the next batch's."""
        if self.note is None:
            raise ValueError("record the boot document first")
        if seq != self._next_seq:
            raise ValueError(f"input for batch seq {seq} but {self._next_seq} is next")
        n = self.compact.size
        return self._add([encode_record(index=n, kind="in", seq=seq, body=body, time_ns=time_ns)])

    def add_note(self, text: bytes, *, time_ns: int) -> BatchRecords:
        """A note record (operator remark, dropped batches, shutdown) and the checkpoint after
        it."""
        n = self.compact.size
        return self._add([encode_record(index=n, kind="note", body=text, time_ns=time_ns)])


@dataclass(frozen=True, slots=True)
class _Staged:
    size: int
    compact: CompactRange
    checkpoint: bytes


class HostLogWriter:
    """Durable, checked commits of what the enclave returns (the host side; holds no key)."""

    def __init__(self, store: LogStore, public_key_spki_der: bytes, origin: str) -> None:
        self.store = store
        self.public_key = public_key_spki_der
        self.origin = origin
        self._verifier = CheckpointVerifier(public_key_spki_der, origin)  # key loaded once
        self._range = store.compact_range()
        self._staged: list[_Staged] = []
        self._records: list[bytes] = []
        self._leaves: list[bytes] = []
        self.durable_size = store.acknowledged
        """Records covered by a verified, durable checkpoint."""
        self.last_checkpoint: bytes | None = None
        self.commits = 0
        """Group commits so far (each one fsync of records, one of a checkpoint)."""

    @classmethod
    def create(cls, folder: Path, public_key_spki_der: bytes, origin: str, *,
               fs: FileSystem | None = None,
               segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> HostLogWriter:
        """A writer over a new log in ``folder``."""
        return cls(LogStore.create(folder, fs=fs, segment_bytes=segment_bytes),
                   public_key_spki_der, origin)

    @property
    def size(self) -> int:
        """Records written (durable or not)."""
        return self._range.size

    @property
    def staged(self) -> int:
        """Steps staged and not yet flushed."""
        return len(self._staged)

    def stage(self, records: Sequence[bytes], checkpoint: bytes, *,
              leaves: Sequence[bytes] | None = None) -> None:
        """Take ``records`` for the log (written and made durable at the next :meth:`flush`) and
        keep ``checkpoint`` to verify then. ``leaves``: their leaf hashes, when the caller has
        just computed them. Nothing staged may be acted on before :meth:`flush` returns."""
        hashes = list(leaves) if leaves is not None else [leaf_hash(r) for r in records]
        if len(hashes) != len(records):
            raise UsageError(f"{len(records)} records but {len(hashes)} leaf hashes")
        # written at flush, one write for the group (nothing is acknowledged before it anyway)
        self._records.extend(records)
        self._leaves.extend(hashes)
        for leaf in hashes:
            self._range.append(leaf)
        # the range after this step (O(log n) hashes), only read to name a bad step
        self._staged.append(_Staged(self._range.size, self._range.copy(), checkpoint))

    def flush(self) -> Checkpoint | None:
        """Make everything staged durable (one fsync for the records, then the newest
        checkpoint, verified over the recomputed root, fsynced); None when nothing was staged.

        Raises :class:`VerificationError` (the run must stop; nothing staged may be acted on)."""
        if not self._staged:
            return None
        staged, self._staged = self._staged, []
        records, self._records = self._records, []
        leaves, self._leaves = self._leaves, []
        self.store.append(records, leaves=leaves)
        self.store.sync()
        newest = staged[-1]
        try:
            self._check(newest.checkpoint, self._range.size, self._range.root())
        except VerificationError:
            self._name_first_bad(staged)
            raise
        stored = self.store.add_checkpoint(newest.checkpoint)
        self.commits += 1
        self.durable_size = self._range.size
        self.last_checkpoint = newest.checkpoint
        return stored

    def commit(self, step: BatchRecords) -> Checkpoint:
        """:meth:`stage` one step and :meth:`flush`: the stored checkpoint."""
        self.stage(step.records, step.checkpoint, leaves=step.leaves or None)
        stored = self.flush()
        assert stored is not None
        return stored

    def _check(self, note: bytes, size: int, root: bytes) -> None:
        try:
            cp = self._verifier.verify(note)
        except DataError as exc:
            if isinstance(exc, VerificationError):
                raise
            raise VerificationError(
                f"the enclave's checkpoint is malformed: {exc}", check="checkpoint_format"
            ) from None
        if cp.size != size or cp.root != root:
            raise VerificationError(
                "the enclave's checkpoint does not match the records the host wrote",
                check="checkpoint_root",
                expected=f"size {size} root {root.hex()}",
                actual=f"size {cp.size} root {cp.root.hex()}",
            )

    def _name_first_bad(self, staged: list[_Staged]) -> None:
        """Raise for the first step of a failed group whose checkpoint does not verify."""
        for step in staged[:-1]:
            self._check(step.checkpoint, step.size, step.compact.root())

    def close(self) -> None:
        """Close the store."""
        self.store.close()
