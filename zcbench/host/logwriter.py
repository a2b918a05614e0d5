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

A live run moves the writer into a process of its own (:meth:`HostLog.use_writer_process`:
:class:`~zcbench.auditlog._writer_process.WriterProcess`, the same writer over the same folder):
the records are still rebuilt and their leaves checked here, then :meth:`HostLog.submit` hands a
group over without waiting and :meth:`HostLog.durable` releases the batches the child reports
durable and verified, in order, so the next group is received and checked while the child
fsyncs this one. :meth:`HostLog.flush` (submit and wait) stays the one-step form.

If a check fails the records stay in the store without a covering checkpoint (the verifier
reports them as an uncommitted tail) and :class:`~zcbench.errors.VerificationError` is raised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from zcbench.auditlog._writer_process import WriterProcess
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.writer import HostLogWriter, batch_records
from zcbench.channel import Message
from zcbench.errors import DataError, UsageError, VerificationError
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
        self.public_key = public_key
        self.writer: HostLogWriter | WriterProcess = HostLogWriter(store, public_key, origin)
        self.origin = origin
        self._staged: list[tuple[int, int, tuple[Signal, ...]]] = []
        # submitted groups not yet released: (the log's size once durable, their batches)
        self._submitted: deque[tuple[int, list[tuple[int, int, tuple[Signal, ...]]]]] = deque()

    def use_writer_process(self, *, timeout: float = 30.0, thread: bool = False) -> None:
        """From here on the store's writes, fsyncs and checkpoint checks run in a child
        process (``thread``: on a thread of this one, to compare) over the same folder; call
        with nothing staged. The store this log was built on is closed (the child reopens
        it). ``timeout``: how long the child may take to take or commit a group before the run
        counts it as hung."""
        if isinstance(self.writer, WriterProcess):
            return
        if self.writer.staged or self._staged:
            raise UsageError("use_writer_process needs nothing staged")
        size = self.writer.durable_size
        self._store.close()
        self.writer = WriterProcess(self._store.folder, self.public_key, self.origin, size=size,
                                    fs=self._store.fs, timeout=timeout, thread=thread)

    def close(self) -> None:
        """Stop a writer process after what was submitted (its store closes with it), or close
        the store."""
        if isinstance(self.writer, WriterProcess):
            self.writer.close()
        else:
            self._store.close()

    @property
    def pending(self) -> int:
        """Batches submitted and not yet released as durable."""
        return sum(len(group) for _, group in self._submitted)

    def fileno(self) -> int | None:
        """What to wait on for :meth:`durable` (None: every submit is durable at once)."""
        return self.writer.fileno() if isinstance(self.writer, WriterProcess) else None

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
        checkpoint: group commit) and release the staged batches' signals, in order (with
        those of groups submitted before)."""
        self.submit()
        released: list[VerifiedSignals] = []
        while self._submitted:
            released += self.durable(None)
        return released

    def submit(self) -> None:
        """Hand everything staged to the writer: at once durable with the writer in this
        process, in the writer process's next commit otherwise. Nothing is released (to be
        acted on) before :meth:`durable` returns it."""
        staged, self._staged = self._staged, []
        if isinstance(self.writer, WriterProcess):
            target = self.writer.submit()
        else:
            target = self.writer.size if self.writer.flush() is not None else None
        if target is not None:
            self._submitted.append((target, staged))

    def durable(self, timeout: float | None = 0) -> list[VerifiedSignals]:
        """The submitted batches now durable and verified, in order, with the checkpoint size
        covering them; waits up to ``timeout`` s for the writer's next report when nothing is
        (0: never; None: the writer's own bound, then :class:`~zcbench.errors.EnvError`).
        Raises what the writer raised (:class:`VerificationError`, :class:`EnvError`)."""
        if not self._submitted:
            return []
        if isinstance(self.writer, WriterProcess):
            self.writer.wait(timeout)
        size = self.writer.durable_size
        released: list[VerifiedSignals] = []
        while self._submitted and self._submitted[0][0] <= size:
            _, group = self._submitted.popleft()
            released += [VerifiedSignals(seq, out, size, signals) for seq, out, signals in group]
        return released
