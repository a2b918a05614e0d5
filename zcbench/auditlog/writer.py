"""The two halves of writing a log: the enclave's signing state and the host's durable commit.

:class:`EnclaveLogState` is what the enclave keeps (DESIGN.md, "The live run"): the compact range
(O(log n) hashes) and the log signer. It makes the boot record, then per batch one IN and one OUT
record and a checkpoint signed over the new root. It touches no file.

:class:`HostLogWriter` is what the host does with them, *log before act*: append the records,
fsync, recompute the root over what it has just written, check the enclave's signature on a
checkpoint of exactly that size and root, and store the checkpoint durably. Only when
:meth:`HostLogWriter.commit` returns may the execution layer act on the signals. The host never
holds the signing key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zcbench.auditlog._fs import FileSystem
from zcbench.auditlog.checkpoint import Checkpoint, CheckpointVerifier, LogSigner
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import encode_record
from zcbench.auditlog.storage import DEFAULT_SEGMENT_BYTES, LogStore
from zcbench.errors import VerificationError

__all__ = ["BatchRecords", "EnclaveLogState", "HostLogWriter"]


@dataclass(frozen=True, slots=True)
class BatchRecords:
    """What the enclave returns per step: the new records and the checkpoint over them."""

    records: tuple[bytes, ...]
    checkpoint: bytes


class EnclaveLogState:
    """The enclave's log state: compact range plus signer (no storage, no clock of its own)."""

    def __init__(self, signer: LogSigner, compact: CompactRange | None = None) -> None:
        self.signer = signer
        self.compact = compact if compact is not None else CompactRange()
        self._next_seq = 0

    @property
    def size(self) -> int:
        """Records appended so far."""
        return self.compact.size

    def _add(self, records: Sequence[bytes]) -> BatchRecords:
        for data in records:
            self.compact.append(leaf_hash(data))
        note = self.signer.sign(self.compact.size, self.compact.root())
        return BatchRecords(tuple(records), note)

    def boot(self, document: bytes, *, time_ns: int) -> BatchRecords:
        """Record 0: the boot attestation document; the first checkpoint covers it."""
        if self.compact.size != 0:
            raise ValueError("the boot record is record 0; the log is not empty")
        return self._add([encode_record(index=0, kind="boot", body=document, time_ns=time_ns)])

    def batch(
        self, seq: int, in_body: bytes, out_body: bytes, *, time_ns: int,
        event_time_ns: int | None = None, out_time_ns: int | None = None,
    ) -> BatchRecords:
        """The IN and OUT records of batch ``seq`` and the checkpoint after them.

        Sequence numbers must follow each other from 0: a gap or a replay is refused.
        """
        if self.compact.size == 0:
            raise ValueError("record the boot document first")
        if seq != self._next_seq:
            raise ValueError(f"batch seq {seq} but {self._next_seq} was expected")
        n = self.compact.size
        records = [
            encode_record(index=n, kind="in", seq=seq, body=in_body, time_ns=time_ns,
                          event_time_ns=event_time_ns),
            encode_record(index=n + 1, kind="out", seq=seq, body=out_body,
                          time_ns=out_time_ns if out_time_ns is not None else time_ns,
                          event_time_ns=event_time_ns),
        ]
        self._next_seq += 1
        return self._add(records)

    def note(self, text: bytes, *, time_ns: int) -> BatchRecords:
        """A note record (operator remark, shutdown) and the checkpoint after it."""
        n = self.compact.size
        return self._add([encode_record(index=n, kind="note", body=text, time_ns=time_ns)])


class HostLogWriter:
    """Durable, checked commits of what the enclave returns (the host side; holds no key)."""

    def __init__(self, store: LogStore, public_key_spki_der: bytes, origin: str) -> None:
        self.store = store
        self.public_key = public_key_spki_der
        self.origin = origin
        self._verifier = CheckpointVerifier(public_key_spki_der, origin)

    @classmethod
    def create(cls, folder: Path, public_key_spki_der: bytes, origin: str, *,
               fs: FileSystem | None = None,
               segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> HostLogWriter:
        """A writer over a new log in ``folder``."""
        return cls(LogStore.create(folder, fs=fs, segment_bytes=segment_bytes),
                   public_key_spki_der, origin)

    def commit(self, step: BatchRecords) -> Checkpoint:
        """Append, fsync, check the signed checkpoint against the records, store it.

        Raises :class:`VerificationError` when the checkpoint is not the enclave's signature
        over exactly these records (nothing may then be acted on); the records stay written
        but uncommitted.
        """
        self.store.append(step.records)
        self.store.sync()
        checkpoint = self._verifier.verify(step.checkpoint)
        if checkpoint.size != self.store.acknowledged or checkpoint.root != self.store.root():
            raise VerificationError(
                "the enclave's checkpoint does not match the records the host wrote",
                check="checkpoint_matches_records",
                expected=f"{self.store.acknowledged} {self.store.root().hex()}",
                actual=f"{checkpoint.size} {checkpoint.root.hex()}",
            )
        return self.store.add_checkpoint(step.checkpoint)

    def close(self) -> None:
        """Close the store."""
        self.store.close()
