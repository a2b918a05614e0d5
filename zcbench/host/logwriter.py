"""The host's audit-log writer: store what the enclave sent, recompute, verify, then release.

For every batch the enclave returns the signals, the time stamps of its IN and OUT records, their
two leaf hashes and a checkpoint signed with the run's log key. The writer rebuilds both records
itself (the IN record's body is exactly the batch the host sent, the OUT record's exactly the
signals in the reply), refuses the reply unless their leaf hashes are the enclave's, appends both
records to the store, recomputes the tree root over its own copy of the log state (independently
of the store),
verifies the checkpoint signature under the attested key with that size and root, then stores
the checkpoint (fsynced). Replies that are already waiting are staged together and made durable
with one fsync for their records and one for the newest checkpoint (group commit; every
checkpoint is still verified). Only then does it hand out
:class:`~zcbench.host.execution.VerifiedSignals`: log before act. It never holds the enclave's
signing key.

If a check fails the records stay in the store without a covering checkpoint (the verifier
reports them as an uncommitted tail) and :class:`~zcbench.errors.VerificationError` is raised.
"""

from __future__ import annotations

from collections.abc import Sequence

from zcbench.auditlog.checkpoint import CheckpointVerifier
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.auditlog.storage import LogStore
from zcbench.channel import Message
from zcbench.errors import DataError, VerificationError
from zcbench.host.execution import VerifiedSignals
from zcbench.strategy import Signal, decode_signals

__all__ = ["HostLog"]


class HostLog:
    """Writes and checks one run's log as the enclave extends it.

    Built from the *verified* boot document's public key (DER SPKI) and the origin; call
    :meth:`open` with the boot record and its checkpoint first, then :meth:`commit` per batch.
    """

    def __init__(self, store: LogStore, public_key: bytes, origin: str) -> None:
        self._store = store
        self._verifier = CheckpointVerifier(public_key, origin)  # the key is loaded once
        self.origin = origin
        self._range = CompactRange()
        self.durable_size = 0
        self.last_checkpoint: bytes | None = None
        self._staged: list[tuple[int, int, tuple[Signal, ...], bytes]] = []

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
        self,
        seq: int,
        batch: bytes,
        signals: bytes,
        leaves: Sequence[bytes],
        checkpoint: bytes,
        *,
        time_ns: int,
        event_time_ns: int | None,
    ) -> VerifiedSignals:
        """:meth:`stage` one batch and :meth:`flush`: its signals, once durable and verified."""
        self.stage(
            seq, batch, signals, leaves, checkpoint, time_ns=time_ns, event_time_ns=event_time_ns
        )
        [verified] = self.flush()
        return verified

    def stage_reply(self, seq: int, batch: bytes, reply: Message) -> None:
        """:meth:`stage` the enclave's ``signals`` reply to ``batch``."""
        self.stage(
            seq,
            batch,
            reply["signals"],
            reply["leaves"],
            reply["checkpoint"],
            time_ns=reply["time_ns"],
            event_time_ns=reply["event_time_ns"],
        )

    def stage(
        self,
        seq: int,
        batch: bytes,
        signals: bytes,
        leaves: Sequence[bytes],
        checkpoint: bytes,
        *,
        time_ns: int,
        event_time_ns: int | None,
    ) -> None:
        """Rebuild one batch's IN and OUT records, check them against the enclave's ``leaves``,
        append them (not yet durable), recompute the root and verify the enclave's checkpoint
        over it. Nothing staged may be acted on before :meth:`flush`.

        Raises :class:`VerificationError` when a leaf or the checkpoint does not match (nothing
        is written for a leaf mismatch), :class:`DataError` when the signals or the stamps are
        malformed (nothing is written)."""
        if len(leaves) != 2:
            raise VerificationError(
                f"batch {seq}: expected an IN and an OUT leaf, got {len(leaves)}",
                check="leaf_count",
                expected=2,
                actual=len(leaves),
            )
        first = self._range.size
        try:
            records = [
                encode_record(
                    index=first,
                    kind="in",
                    seq=seq,
                    body=batch,
                    time_ns=time_ns,
                    event_time_ns=event_time_ns,
                ),
                encode_record(
                    index=first + 1,
                    kind="out",
                    seq=seq,
                    body=signals,
                    time_ns=time_ns,
                    event_time_ns=event_time_ns,
                ),
            ]
        except ValueError as exc:
            raise DataError(f"batch {seq}: the reply's record stamps are invalid: {exc}") from None
        hashes = [leaf_hash(raw) for raw in records]
        for kind, mine, theirs in zip(("in", "out"), hashes, leaves, strict=True):
            if mine != theirs:
                what = "the batch the host sent" if kind == "in" else "the signals in the reply"
                raise VerificationError(
                    f"batch {seq}: the enclave's {kind.upper()} leaf is not that of a record "
                    f"holding {what}",
                    check=f"{kind}_leaf",
                    expected=mine.hex(),
                    actual=bytes(theirs).hex(),
                )
        decoded = tuple(decode_signals(signals))
        self._store.append(records)
        for h in hashes:
            self._range.append(h)
        try:
            self._check(checkpoint)
        except VerificationError:
            self._salvage()
            raise
        except DataError as exc:
            self._salvage()
            raise VerificationError(
                f"batch {seq}: the enclave's checkpoint is malformed: {exc}",
                check="checkpoint_format",
            ) from None
        self._staged.append((seq, first + 1, decoded, checkpoint))

    def flush(self) -> list[VerifiedSignals]:
        """Make everything staged durable (one fsync for the records, one for the newest
        checkpoint: group commit) and release the staged batches' signals, in order."""
        if not self._staged:
            return []
        self._store.sync()
        note = self._staged[-1][3]
        self._store.add_checkpoint(note)
        self.durable_size = self._range.size
        self.last_checkpoint = note
        staged, self._staged = self._staged, []
        return [
            VerifiedSignals(seq, out_index, self.durable_size, signals)
            for seq, out_index, signals, _ in staged
        ]

    def _check(self, checkpoint: bytes) -> None:
        root = self._range.root()
        cp = self._verifier.verify(checkpoint)
        if cp.size != self._range.size or cp.root != root:
            raise VerificationError(
                "the enclave's checkpoint does not match the log the host wrote",
                check="checkpoint_root",
                expected=f"size {self._range.size} root {root.hex()}",
                actual=f"size {cp.size} root {cp.root.hex()}",
            )

    def _salvage(self) -> None:
        # What was received stays on disk; the newest good checkpoint is stored only if it
        # covers everything written, else the records after it remain an uncommitted tail.
        self._store.sync()
        good, self._staged = self._staged, []
        if good and self._store.size == good[-1][1] + 1:
            self._store.add_checkpoint(good[-1][3])
            self.durable_size = self._store.size

    def _write(self, records: list[bytes], checkpoint: bytes) -> None:
        self._store.append(records)
        for raw in records:
            self._range.append(leaf_hash(raw))
        self._store.sync()
        self._check(checkpoint)
        self._store.add_checkpoint(checkpoint)
        self.durable_size = self._range.size
        self.last_checkpoint = checkpoint
