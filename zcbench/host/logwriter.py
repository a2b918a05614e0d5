"""The host's audit-log writer: store what the enclave sent, recompute, verify, then release.

For every batch the enclave returns its IN and OUT records and a checkpoint signed with the run's
log key. The writer checks that the IN record holds exactly the batch the host sent and that the
OUT record holds exactly the signals in the reply, appends both records to the store and syncs
them, recomputes the tree root over its own copy of the log state (independently of the store),
verifies the checkpoint signature under the attested key with that size and root, then stores
the checkpoint (fsynced). Only then does it hand out
:class:`~zcbench.host.execution.VerifiedSignals`: log before act. It never holds the enclave's
signing key.

If a check fails the records stay in the store without a covering checkpoint (the verifier
reports them as an uncommitted tail) and :class:`~zcbench.errors.VerificationError` is raised.
"""

from __future__ import annotations

from zcbench.auditlog.checkpoint import verify_checkpoint
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.storage import LogStore
from zcbench.errors import VerificationError
from zcbench.host.execution import VerifiedSignals
from zcbench.strategy import decode_signals

__all__ = ["HostLog"]


class HostLog:
    """Writes and checks one run's log as the enclave extends it.

    Built from the *verified* boot document's public key (DER SPKI) and the origin; call
    :meth:`open` with the boot record and its checkpoint first, then :meth:`commit` per batch.
    """

    def __init__(self, store: LogStore, public_key: bytes, origin: str) -> None:
        self._store = store
        self._public_key = public_key
        self.origin = origin
        self._range = CompactRange()
        self.durable_size = 0
        self.last_checkpoint: bytes | None = None

    @property
    def size(self) -> int:
        """Records written (durable or not)."""
        return self._range.size

    def open(self, boot_record: bytes, checkpoint: bytes, document: bytes) -> None:
        """Write the boot record (index 0, body = the boot document) and its checkpoint."""
        record = decode_record(boot_record)
        if record.index != 0 or record.kind != "boot" or record.body != document:
            raise VerificationError(
                "the boot record is not index 0 of kind boot holding the boot document",
                check="boot_record",
                expected="index 0, kind boot, body = boot document",
                actual=f"index {record.index}, kind {record.kind}",
            )
        self._write([boot_record], checkpoint)

    def commit(
        self, seq: int, batch: bytes, signals: bytes, records: list[bytes], checkpoint: bytes
    ) -> VerifiedSignals:
        """Store one batch's records and checkpoint after checking them; the signals to act on."""
        if len(records) != 2:
            raise VerificationError(
                f"batch {seq}: expected an IN and an OUT record, got {len(records)}",
                check="record_count",
                expected=2,
                actual=len(records),
            )
        rec_in, rec_out = decode_record(records[0]), decode_record(records[1])
        first = self._range.size
        self._expect(rec_in, first, "in", seq)
        self._expect(rec_out, first + 1, "out", seq)
        if rec_in.body != batch:
            raise VerificationError(
                f"batch {seq}: the IN record does not hold the batch the host sent",
                check="in_body",
            )
        if rec_out.body != signals:
            raise VerificationError(
                f"batch {seq}: the OUT record does not hold the signals in the reply",
                check="out_body",
            )
        decoded = decode_signals(signals)
        self._write(records, checkpoint)
        return VerifiedSignals(seq, first + 1, self.durable_size, tuple(decoded))

    def _expect(self, record: Record, index: int, kind: str, seq: int) -> None:
        if (record.index, record.kind, record.seq) != (index, kind, seq):
            raise VerificationError(
                f"batch {seq}: unexpected record",
                check="record_position",
                expected=f"index {index}, kind {kind}, seq {seq}",
                actual=f"index {record.index}, kind {record.kind}, seq {record.seq}",
            )

    def _write(self, records: list[bytes], checkpoint: bytes) -> None:
        self._store.append(records)
        for raw in records:
            self._range.append(leaf_hash(raw))
        self._store.sync()  # the records are durable, whatever the checkpoint turns out to be
        root = self._range.root()
        cp = verify_checkpoint(checkpoint, self._public_key, self.origin)
        if cp.size != self._range.size or cp.root != root:
            raise VerificationError(
                "the enclave's checkpoint does not match the log the host wrote",
                check="checkpoint_root",
                expected=f"size {self._range.size} root {root.hex()}",
                actual=f"size {cp.size} root {cp.root.hex()}",
            )
        self._store.add_checkpoint(checkpoint)
        self.durable_size = self._range.size
        self.last_checkpoint = checkpoint
