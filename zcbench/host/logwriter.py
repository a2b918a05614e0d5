"""The host's audit-log writer for a live run: rebuild what the enclave logged, then release.

For every batch the enclave returns the signals, the time stamp of its IN and OUT records, their
two leaf hashes and a checkpoint signed with the run's log key. :class:`HostLog` rebuilds both
records itself with the one builder (:func:`zcbench.auditlog.writer.batch_records`: the IN
record's body is exactly the batch the host sent, the OUT record's exactly the signals in the
reply, the newest event time is the host's own), refuses the reply unless their leaf hashes are
the enclave's, and hands them to :class:`~zcbench.auditlog.writer.HostLogWriter`, the one
host-side writer: append, group commit (one fsync for the records of every reply already
waiting), the newest checkpoint verified under the attested key over the recomputed root and
fsynced. Only then does it hand out :class:`~zcbench.host.execution.VerifiedSignals`: log before
act. It never holds the enclave's signing key.

If a check fails the records stay in the store without a covering checkpoint (the verifier
reports them as an uncommitted tail) and :class:`~zcbench.errors.VerificationError` is raised.
"""

from __future__ import annotations

from collections.abc import Sequence

from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.writer import HostLogWriter, batch_records
from zcbench.channel import Message
from zcbench.errors import DataError, VerificationError
from zcbench.host.execution import VerifiedSignals
from zcbench.strategy import Signal, decode_signals

__all__ = ["HostLog"]


class HostLog:
    """Writes and checks one run's log as the enclave extends it.

    Built from the *verified* boot document's public key (DER SPKI) and the origin; call
    :meth:`open` with the boot record and its checkpoint first, then :meth:`stage` per reply and
    :meth:`flush` per group (or :meth:`commit` per batch).
    """

    def __init__(self, store: LogStore, public_key: bytes, origin: str) -> None:
        self._store = store
        self.writer = HostLogWriter(store, public_key, origin)
        self.origin = origin
        self._staged: list[tuple[int, int, tuple[Signal, ...]]] = []

    @property
    def size(self) -> int:
        """Records written (durable or not)."""
        return self.writer.size

    @property
    def durable_size(self) -> int:
        """Records covered by a verified, durable checkpoint."""
        return self.writer.durable_size

    @property
    def last_checkpoint(self) -> bytes | None:
        """The newest checkpoint stored."""
        return self.writer.last_checkpoint

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
        self.writer.stage([boot_record], checkpoint)
        self.writer.flush()

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

    def stage_reply(self, seq: int, batch: bytes, reply: Message, *,
                    event_time_ns: int | None) -> None:
        """:meth:`stage` the enclave's ``signals`` reply to ``batch``, whose newest event time
        the host computed (``event_time_ns``, None for an empty batch)."""
        self.stage(
            seq,
            batch,
            reply["signals"],
            reply["leaves"],
            reply["checkpoint"],
            time_ns=reply["time_ns"],
            event_time_ns=event_time_ns,
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
        """Rebuild one batch's IN and OUT records, check them against the enclave's ``leaves``
        and append them (not yet durable); the checkpoint is verified at :meth:`flush`. Nothing
        staged may be acted on before :meth:`flush`.

        Raises :class:`VerificationError` when a leaf does not match (nothing is written),
        :class:`DataError` when the signals or the stamps are malformed (nothing is written)."""
        if len(leaves) != 2:
            raise VerificationError(
                f"batch {seq}: expected an IN and an OUT leaf, got {len(leaves)}",
                check="leaf_count",
                expected=2,
                actual=len(leaves),
            )
        first = self.writer.size
        try:
            records = batch_records(
                first, seq, batch, signals, time_ns=time_ns, event_time_ns=event_time_ns
            )
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
        self.writer.stage(records, checkpoint, leaves=hashes)
        self._staged.append((seq, first + 1, decoded))

    def stage_feedback(self, seq: int, body: bytes, checkpoint: bytes, *, time_ns: int,
                       leaf: bytes) -> None:
        """Stage the feedback IN record the enclave logged before batch ``seq`` (``leaf`` its
        hash, rebuilt here from the body the host sent) and its checkpoint."""
        record = encode_record(
            index=self.writer.size, kind="in", seq=seq, body=body, time_ns=time_ns
        )
        mine = leaf_hash(record)
        if mine != leaf:
            raise VerificationError(
                f"batch {seq}: the enclave's feedback leaf is not that of the feedback sent",
                check="feedback_leaf",
                expected=mine.hex(),
                actual=bytes(leaf).hex(),
            )
        self.writer.stage([record], checkpoint, leaves=[mine])

    def stage_start(self, body: bytes, checkpoint: bytes, *, time_ns: int, leaf: bytes) -> None:
        """Stage the venue's state at start, the IN record of seq 0 the enclave logged before
        batch 0 (``leaf`` its hash, rebuilt here from the body sent), and its checkpoint."""
        record = encode_record(index=self.writer.size, kind="in", seq=0, body=body,
                               time_ns=time_ns)
        mine = leaf_hash(record)
        if mine != leaf:
            raise VerificationError(
                "the enclave's start leaf is not that of the venue state sent",
                check="start_leaf",
                expected=mine.hex(),
                actual=bytes(leaf).hex(),
            )
        self.writer.stage([record], checkpoint, leaves=[mine])

    def stage_note(self, note: bytes, checkpoint: bytes, *, time_ns: int,
                   leaf: bytes) -> None:
        """Stage a note record the enclave logged (``leaf`` its hash) and its checkpoint."""
        record = encode_record(index=self.writer.size, kind="note", body=note, time_ns=time_ns)
        mine = leaf_hash(record)
        if mine != leaf:
            raise VerificationError(
                "the enclave's note leaf is not that of the note the host asked for",
                check="note_leaf",
                expected=mine.hex(),
                actual=bytes(leaf).hex(),
            )
        self.writer.stage([record], checkpoint, leaves=[mine])

    def flush(self) -> list[VerifiedSignals]:
        """Make everything staged durable (one fsync for the records, one for the newest
        checkpoint: group commit) and release the staged batches' signals, in order."""
        staged, self._staged = self._staged, []
        if self.writer.flush() is None:
            return []
        size = self.writer.durable_size
        return [VerifiedSignals(seq, out, size, signals) for seq, out, signals in staged]
