"""Crash-safe storage of one run's log: append-only segment files and the checkpoints beside them.

Layout of ``run/log/`` (framing in ``_frames``): ``seg-00000000.zlog``, ``seg-00000001.zlog``, …
holding the records in index order, and ``checkpoints.zlog`` holding the signed checkpoint notes.

Writer discipline (group commit): :meth:`LogStore.append` writes a batch of records, which may sit
in the page cache; :meth:`LogStore.sync` fsyncs every file written since the last sync (and the
folder when a segment was added) and only then moves :attr:`LogStore.acknowledged`. A checkpoint
is accepted only for the acknowledged size and the root of the records on disk, and is itself
fsynced before :meth:`LogStore.add_checkpoint` returns. An fsync error poisons the store: after
a write-back error a retried fsync can report success with data lost, so the only safe move is to
stop and recover by reopening.

Recovery (:meth:`LogStore.open`) classifies what it finds:

- ``clean``: every byte is whole records;
- ``torn_tail``: bad bytes at the very end of the last segment (or of the checkpoint file) with
  no valid frame after them; they are cut away and reported with file and offset;
- fatal (raises :class:`LogDamageError`, nothing is changed): damage followed by valid records,
  records out of sequence, segments swapped, a checkpoint whose root is not the records' root
  (rewritten), two checkpoints of one size with different roots (forked), a log shorter than a
  checkpoint (rollback). Each names the record index and byte offset.

Checkpoint *signatures* are not checked here (the store holds no key); ``verify`` does that.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._frames import (
    CHECKPOINT_FILE,
    CHECKPOINT_MAGIC,
    HEADER_SIZE,
    SEGMENT_MAGIC,
    Damage,
    frame,
    frame_at,
    header,
    scan_tail,
    segment_name,
)
from zcbench.auditlog._fs import AppendFile, FileSystem, OsFileSystem, file_size, read_range
from zcbench.auditlog._walk import Finding, LogWalk, WalkedRecord
from zcbench.auditlog.checkpoint import Checkpoint, parse_checkpoint_note
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.records import RUN_RECORDS, RecordCodec
from zcbench.errors import DataError, EnvError, UsageError

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "Finding",
    "LogDamageError",
    "LogStore",
    "RecoveryReport",
    "StoreMark",
    "TornTail",
    "recover",
]

DEFAULT_SEGMENT_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes cut from the end of a file: where they started and how many there were."""

    path: str
    offset: int
    length: int
    reason: str


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :func:`recover` found: ``clean``, ``torn_tail`` (cut and listed) or ``fatal``."""

    classification: Literal["clean", "torn_tail", "fatal"]
    records: int
    checkpoints: int
    cut: tuple[TornTail, ...] = ()
    finding: Finding | None = None
    message: str = ""


class LogDamageError(DataError):
    """The log is damaged beyond a torn tail; ``report.finding`` names where."""

    def __init__(self, report: RecoveryReport) -> None:
        super().__init__(report.message)
        self.report = report


@dataclass(frozen=True, slots=True)
class StoreMark:
    """Where a verified prefix of a log ends on disk, so a later open reads only what follows
    (:meth:`LogStore.resume`): ``records`` records hashing to the compact range ``compact``,
    ending at byte ``segment_end`` of segment ``segment``; the last one's frame at ``last``
    (segment, offset, leaf hash; None for an empty prefix); the newest checkpoint at that size,
    ``checkpoint`` (its note), whose frame spans ``checkpoint_start`` to ``checkpoint_end`` of
    the checkpoint file."""

    records: int
    compact: tuple[bytes, ...]
    segment: int
    segment_end: int
    last: tuple[int, int, bytes] | None
    checkpoint: bytes
    checkpoint_start: int
    checkpoint_end: int


@dataclass
class _State:
    records: int = 0
    compact: CompactRange = field(default_factory=CompactRange)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    segments: list[Path] = field(default_factory=list)
    last_segment_bytes: int = 0
    last_record: tuple[int, int, bytes] | None = None
    checkpoint_bytes: int = HEADER_SIZE
    last_note: tuple[bytes, int] | None = None  # the newest checkpoint note and its offset


_Mismatch = Callable[[Checkpoint, int, WalkedRecord[Any] | None, int], Finding]


def _walk_against(walk: LogWalk[Any], state: _State, by_size: dict[int, tuple[Checkpoint, int]],
                  pending: deque[int], mismatch: _Mismatch,
                  start: tuple[int, int, int] | None = None) -> Finding | None:
    """Extend ``state``'s tree by the records ``walk`` reads after ``start`` (all of them by
    default), checking at each size the checkpoints ``pending`` there (``by_size`` gives each
    one and its offset in the checkpoint file; the sizes checked are taken off ``pending``).

    Returns the first finding, None for none: for a checkpoint whose root the records do not
    reach, ``mismatch(checkpoint, offset, record, good)``, the caller's name for it (``record``
    is the last one read, None for a checkpoint at the size the walk starts from; ``good`` the
    size of the last checkpoint the records matched); else the walk's own. The records left
    short of a checkpoint still pending are the caller's to judge (:func:`_rollback`)."""
    good = state.records

    def check(at: WalkedRecord[Any] | None) -> Finding | None:
        nonlocal good
        while pending and pending[0] == state.records:
            cp, offset = by_size[pending.popleft()]
            if cp.root != state.compact.root():
                return mismatch(cp, offset, at, good)
            good = cp.size
        return None

    finding = check(None)
    if finding is not None:
        return finding
    last = None
    for item in walk.records(start):
        state.compact.append(item.leaf_hash)
        state.records += 1
        last = item
        finding = check(item)
        if finding is not None:
            break
    if last is not None:
        state.last_record = (walk.segments.index(last.path), last.offset, last.leaf_hash)
    return finding or walk.finding


def _rollback(records: int, committed: int, torn: Damage | None) -> Finding:
    """The finding of a log of ``records`` records under a checkpoint of size ``committed``,
    naming where the records end when a torn tail was seen there."""
    return Finding(
        "rollback", records, torn.path.as_posix() if torn else None,
        torn.offset if torn else None,
        f"the log holds {records} records but a checkpoint commits to {committed}: records "
        "were cut away",
    )


def recover(folder: Path, *, fs: FileSystem | None = None, repair: bool = True,
            codec: RecordCodec[Any] = RUN_RECORDS) -> RecoveryReport:
    """Classify the log in ``folder``; with ``repair`` cut torn tails (durably).

    Never cuts below a checkpoint, never touches anything when the finding is fatal.
    ``codec`` is the log's record type (a run's records by default).
    """
    report, _ = _recover(folder, fs or OsFileSystem(), repair=repair, codec=codec)
    return report


def _recover(folder: Path, fs: FileSystem, *, repair: bool,
             codec: RecordCodec[Any] = RUN_RECORDS) -> tuple[RecoveryReport, _State]:
    walk = LogWalk(folder, fs, codec)
    notes, cp_torn, cp_finding = walk.checkpoint_notes()
    state = _State(segments=list(walk.segments))
    checkpoints: list[tuple[Checkpoint, int]] = []
    finding = cp_finding
    for note, offset in notes:
        try:
            checkpoints.append((parse_checkpoint_note(note), offset))
        except LogFormatError as exc:
            finding = finding or Finding(
                "corrupt", None, str(folder / CHECKPOINT_FILE), offset,
                f"checkpoint at {CHECKPOINT_FILE}:{offset} is not a checkpoint note: {exc}",
            )
    by_size: dict[int, tuple[Checkpoint, int]] = {}
    for cp, offset in checkpoints:
        seen = by_size.setdefault(cp.size, (cp, offset))
        if seen[0].root != cp.root and finding is None:
            finding = Finding(
                "forked", cp.size, str(folder / CHECKPOINT_FILE), offset,
                f"two checkpoints for size {cp.size} with different roots (at bytes "
                f"{seen[1]} and {offset} of {CHECKPOINT_FILE}): the log forked",
            )
    pending = deque(sorted(by_size))

    def rewritten(cp: Checkpoint, offset: int, at: WalkedRecord[Any] | None, good: int
                  ) -> Finding:
        if at is None:
            return Finding("rewritten", 0, str(folder / CHECKPOINT_FILE), offset,
                           "a checkpoint of size 0 whose root is not the empty tree's")
        return Finding(
            "rewritten", good, str(at.path), at.offset,
            f"the records do not hash to the root of the checkpoint of size {cp.size} "
            f"although they matched the one of size {good}: a record in [{good}, {cp.size}) "
            "was rewritten",
        )

    if finding is None:
        finding = _walk_against(walk, state, by_size, pending, rewritten)
    if finding is None and pending:
        finding = _rollback(state.records, by_size[pending[-1]][0].size, walk.torn)
    state.checkpoints = [cp for cp, _ in checkpoints]
    if notes:
        state.last_note = notes[-1]
        state.checkpoint_bytes = notes[-1][1] + 4 + len(notes[-1][0]) + 32
    return _finish(folder, fs, walk, state, finding, cp_torn, len(checkpoints), repair)


def _finish(folder: Path, fs: FileSystem, walk: LogWalk[Any], state: _State,
            finding: Finding | None, cp_torn: Damage | None, checkpoints: int, repair: bool
            ) -> tuple[RecoveryReport, _State]:
    """The report of a recovery and, unless fatal, its torn tails cut (with ``repair``)."""
    if finding is not None:
        where = f" at {finding.path}:{finding.offset}" if finding.offset is not None else ""
        index = f" (record {finding.index})" if finding.index is not None else ""
        message = f"log damaged, {finding.classification}{index}{where}: {finding.message}"
        return RecoveryReport("fatal", state.records, checkpoints, (), finding, message), state
    cut: list[TornTail] = []
    for torn in (walk.torn, cp_torn):
        if torn is None:
            continue
        size = len(fs.read_bytes(torn.path))
        cut.append(TornTail(str(torn.path), torn.offset, size - torn.offset, torn.reason))
        if repair:
            if torn.offset < HEADER_SIZE:
                # A file whose header never became whole: start it again.
                fs.truncate(torn.path, 0)
                is_cp = torn.path.name == CHECKPOINT_FILE
                out = fs.open_append(torn.path, create=False)
                out.write(
                    header(CHECKPOINT_MAGIC, 0, 0) if is_cp
                    else header(SEGMENT_MAGIC, len(state.segments) - 1, state.records)
                )
                out.fsync()
                out.close()
            else:
                fs.truncate(torn.path, torn.offset)
    if state.segments:
        state.last_segment_bytes = file_size(fs, state.segments[-1])
    if cut:
        parts = ", ".join(f"{t.length} bytes at {Path(t.path).name}:{t.offset}" for t in cut)
        verb = "cut" if repair else "would cut"
        message = f"torn tail after record {state.records - 1}: {verb} {parts}"
        return RecoveryReport("torn_tail", state.records, checkpoints, tuple(cut), None,
                              message), state
    return RecoveryReport("clean", state.records, checkpoints, (), None, "clean"), state


def _recover_from(folder: Path, fs: FileSystem, mark: StoreMark, *, repair: bool,
                  codec: RecordCodec[Any]) -> tuple[RecoveryReport, _State]:
    """:func:`_recover` for a log whose prefix up to ``mark`` was verified before: only what
    follows it is read. The prefix must still end where the mark says (its last record's frame,
    the newest checkpoint's frame, no fewer bytes), else the log was cut (``rollback``) or
    changed (``forked``) below the mark: fatal. Every checkpoint stored after the mark must be
    of a larger size and match the mark's tree extended by the records after it (which is the
    consistency of the newer checkpoint with the marked one)."""
    walk = LogWalk(folder, fs, codec)
    recorded = parse_checkpoint_note(mark.checkpoint)
    state = _State(records=mark.records, compact=CompactRange(mark.records, list(mark.compact)),
                   segments=list(walk.segments), checkpoints=[recorded],
                   last_record=mark.last, checkpoint_bytes=mark.checkpoint_end,
                   last_note=(mark.checkpoint, mark.checkpoint_start))
    cp_path = folder / CHECKPOINT_FILE

    def fatal(kind: str, path: Path | None, offset: int | None, message: str
              ) -> tuple[RecoveryReport, _State]:
        finding = Finding(kind, mark.records, str(path) if path else None, offset, message)
        return _finish(folder, fs, walk, state, finding, None, 1, repair)

    if (recorded.size, recorded.root) != (mark.records, state.compact.root()):
        return fatal("corrupt", None, None, "the verified record's checkpoint is not over its "
                     "own tree")
    if len(walk.segments) <= mark.segment or not fs.exists(cp_path):
        return fatal("rollback", None, None, f"the log holds fewer segments than the "
                     f"{mark.records} records verified before: records were cut away")
    segment = walk.segments[mark.segment]
    if (file_size(fs, segment) < mark.segment_end
            or file_size(fs, cp_path) < mark.checkpoint_end):
        return fatal("rollback", segment, mark.segment_end, f"the log is shorter than the "
                     f"{mark.records} records and the checkpoint verified before: it was "
                     "rolled back")
    if mark.last is not None:
        where = walk.segments[mark.last[0]]
        found = frame_at(read_range(fs, where, mark.last[1], mark.segment_end - mark.last[1]
                                    if mark.last[0] == mark.segment else None))
        if found is None or found.leaf_hash != mark.last[2]:
            return fatal("forked", where, mark.last[1], f"record {mark.records - 1} is not "
                         "the one verified before: the log was rewritten or forked below it")
    note = read_range(fs, cp_path, mark.checkpoint_start,
                      mark.checkpoint_end - mark.checkpoint_start)
    found = frame_at(note)
    if found is None or found.payload != mark.checkpoint:
        return fatal("forked", cp_path, mark.checkpoint_start, "the checkpoint verified "
                     "before is no longer where it was: the checkpoints were rewritten")
    scan = scan_tail(cp_path, read_range(fs, cp_path, mark.checkpoint_end),
                     mark.checkpoint_end)
    cp_torn: Damage | None = None
    if scan.damage is not None:
        if scan.damage.resumes_at is not None:
            return fatal("corrupt", cp_path, scan.damage.offset, f"{scan.damage.reason} at "
                         f"{CHECKPOINT_FILE}:{scan.damage.offset}, and valid checkpoints resume "
                         "after it: damage in the middle of the checkpoint file")
        cp_torn = scan.damage
    by_size: dict[int, tuple[Checkpoint, int]] = {}
    for item in scan.frames:
        try:
            cp = parse_checkpoint_note(item.payload)
        except LogFormatError as exc:
            return fatal("corrupt", cp_path, item.offset, f"checkpoint at {CHECKPOINT_FILE}:"
                         f"{item.offset} is not a checkpoint note: {exc}")
        if cp.size <= mark.records and (cp.size, cp.root) != (recorded.size, recorded.root):
            return fatal("forked", cp_path, item.offset, f"a checkpoint of size {cp.size} "
                         f"stored after the verified one of size {mark.records}: the log "
                         "forked or went back")
        seen = by_size.setdefault(cp.size, (cp, item.offset))
        if seen[0].root != cp.root:
            return fatal("forked", cp_path, item.offset, f"two checkpoints for size {cp.size} "
                         "with different roots: the log forked")
        state.checkpoints.append(cp)
        state.last_note = (item.payload, item.offset)
        state.checkpoint_bytes = item.end
    pending = deque(sorted(size for size in by_size if size > mark.records))

    def forked(cp: Checkpoint, offset: int, at: WalkedRecord[Any] | None, good: int
               ) -> Finding:
        return Finding(
            "forked", mark.records, str(cp_path), offset,
            f"the checkpoint of size {cp.size} is not consistent with the one of size "
            f"{mark.records} verified before: the records after it do not lead to its root")

    finding = _walk_against(walk, state, by_size, pending, forked,
                            (mark.segment, mark.segment_end, mark.records))
    if finding is None and pending:
        finding = _rollback(state.records, by_size[pending[-1]][0].size, None)
    return _finish(folder, fs, walk, state, finding, cp_torn, len(state.checkpoints), repair)


def _why(exc: OSError) -> str:
    """An OS error as words, without Python's ``[Errno N]``."""
    return exc.strerror or type(exc).__name__


class LogStore:
    """One run's log folder, open for appending. Create with :meth:`create` or :meth:`open`."""

    def __init__(self, folder: Path, fs: FileSystem, state: _State, segment_bytes: int,
                 recovery: RecoveryReport, codec: RecordCodec[Any] = RUN_RECORDS) -> None:
        self.folder = folder
        self.codec = codec
        self.recovery = recovery
        self._fs = fs
        self._segment_bytes = segment_bytes
        self._compact = state.compact
        self._size = state.records
        self._acknowledged = state.records
        self._segments = state.segments
        self._segment_fill = state.last_segment_bytes
        self._checkpoints = state.checkpoints
        self._last_record = state.last_record
        self._cp_fill = state.checkpoint_bytes
        self._last_note = state.last_note
        self._segment: AppendFile = fs.open_append(self._segments[-1], create=False)
        self._names = {id(self._segment): self._segments[-1].name}  # for error messages
        self._cp_file: AppendFile = fs.open_append(folder / CHECKPOINT_FILE, create=False)
        self._dirty: list[AppendFile] = []
        self._new_dir_entries = False
        self._poisoned: str | None = None
        self._closed = False

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: Path, *, fs: FileSystem | None = None,
               segment_bytes: int = DEFAULT_SEGMENT_BYTES,
               codec: RecordCodec[Any] = RUN_RECORDS) -> LogStore:
        """A new, empty log in ``folder`` (created; must not already hold a log).

        ``codec``: the record type the log holds (a run's records by default).
        """
        fs = fs or OsFileSystem()
        fs.make_dir(folder)
        if fs.exists(folder / segment_name(0)) or fs.exists(folder / CHECKPOINT_FILE):
            raise UsageError(f"{folder} already holds a log; open it instead of creating one")
        for path, head in (
            (folder / segment_name(0), header(SEGMENT_MAGIC, 0, 0)),
            (folder / CHECKPOINT_FILE, header(CHECKPOINT_MAGIC, 0, 0)),
        ):
            out = fs.open_append(path, create=True)
            out.write(head)
            out.fsync()
            out.close()
        fs.fsync_dir(folder)
        state = _State(segments=[folder / segment_name(0)], last_segment_bytes=HEADER_SIZE)
        return cls(folder, fs, state, segment_bytes, RecoveryReport("clean", 0, 0), codec)

    @classmethod
    def open(cls, folder: Path, *, fs: FileSystem | None = None,
             segment_bytes: int = DEFAULT_SEGMENT_BYTES,
             codec: RecordCodec[Any] = RUN_RECORDS) -> LogStore:
        """Reopen a log after a stop or a crash, recovering first (see :attr:`recovery`).

        Raises :class:`LogDamageError` when the damage is fatal.
        """
        fs = fs or OsFileSystem()
        if not fs.exists(folder / CHECKPOINT_FILE) and not fs.exists(folder / segment_name(0)):
            raise EnvError(f"{folder} holds no log (no {segment_name(0)})")
        report, state = _recover(folder, fs, repair=True, codec=codec)
        if report.classification == "fatal":
            raise LogDamageError(report)
        if not fs.exists(folder / CHECKPOINT_FILE):
            out = fs.open_append(folder / CHECKPOINT_FILE, create=True)
            out.write(header(CHECKPOINT_MAGIC, 0, 0))
            out.fsync()
            out.close()
            fs.fsync_dir(folder)
        return cls(folder, fs, state, segment_bytes, report, codec)

    @classmethod
    def resume(cls, folder: Path, mark: StoreMark, *, fs: FileSystem | None = None,
               segment_bytes: int = DEFAULT_SEGMENT_BYTES,
               codec: RecordCodec[Any] = RUN_RECORDS) -> LogStore:
        """Reopen a log whose prefix up to ``mark`` (:meth:`mark`) was verified before,
        reading only what follows it (see :func:`_recover_from`): a torn tail is cut as by
        :meth:`open`; a log cut, rewritten or forked below the mark, or a newer checkpoint that
        does not extend it, raises :class:`LogDamageError`."""
        fs = fs or OsFileSystem()
        report, state = _recover_from(folder, fs, mark, repair=True, codec=codec)
        if report.classification == "fatal":
            raise LogDamageError(report)
        return cls(folder, fs, state, segment_bytes, report, codec)

    def mark(self) -> StoreMark:
        """Where the log ends now, for :meth:`resume`; only for a log whose every record is
        acknowledged and covered by its newest checkpoint."""
        newest = self._last_note
        if (newest is None or self._size != self._acknowledged
                or parse_checkpoint_note(newest[0]).size != self._size):
            raise UsageError("a mark is taken where the newest checkpoint covers every record")
        return StoreMark(self._size, tuple(self._compact.hashes), len(self._segments) - 1,
                         self._segment_fill, self._last_record, newest[0], newest[1],
                         self._cp_fill)

    @property
    def newest_checkpoint_note(self) -> bytes | None:
        """The newest checkpoint note stored (None: none yet)."""
        return None if self._last_note is None else self._last_note[0]

    # -- state ----------------------------------------------------------------------------

    @property
    def fs(self) -> FileSystem:
        """The file system the store writes through (a writer process reopens it with it)."""
        return self._fs

    @property
    def size(self) -> int:
        """Records written (not necessarily durable yet)."""
        return self._size

    @property
    def acknowledged(self) -> int:
        """Records known durable: moves only after a successful fsync in :meth:`sync`."""
        return self._acknowledged

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        """The checkpoints stored so far (parsed, signatures not checked here)."""
        return tuple(self._checkpoints)

    def root(self) -> bytes:
        """The tree root over every record written so far."""
        return self._compact.root()

    def compact_range(self) -> CompactRange:
        """A copy of the compact range over every record written so far."""
        return self._compact.copy()

    def _usable(self) -> None:
        if self._closed:
            raise UsageError("the log store is closed")
        if self._poisoned:
            raise EnvError(
                f"the log store stopped after a failed fsync ({self._poisoned}); reopen it to "
                "recover: retrying an fsync after a write-back error can lose data silently"
            )

    # -- writing --------------------------------------------------------------------------

    def append(
        self, records: Sequence[bytes], *, leaves: Sequence[bytes] | None = None
    ) -> list[bytes]:
        """Write encoded records (indices must continue the log); returns their leaf hashes.

        ``leaves``: the records' leaf hashes, from a writer that has just built the records with
        :func:`~zcbench.auditlog.records.encode_record` for exactly the next indices (the host's
        writer does); the store then neither decodes nor hashes them again. Without it every
        record is decoded and its index checked. Nothing is acknowledged until :meth:`sync`.
        """
        self._usable()
        chunks: list[bytes] = []
        if leaves is not None:
            if len(leaves) != len(records):
                raise UsageError(f"{len(records)} records but {len(leaves)} leaf hashes")
            leaves = list(leaves)
            chunks = [frame(data, leaf) for data, leaf in zip(records, leaves, strict=True)]
        else:
            leaves = []
            for offset, data in enumerate(records):
                record = self.codec.decode(data)
                if record.index != self._size + offset:
                    raise UsageError(
                        f"record carries index {record.index}, the log's next index is "
                        f"{self._size + offset}"
                    )
                leaf = leaf_hash(data)
                leaves.append(leaf)
                chunks.append(frame(data, leaf))
        if not chunks:
            return leaves
        if self._segment_fill >= self._segment_bytes and self._size > 0:
            self._roll_segment()
        blob = b"".join(chunks)
        last_offset = self._segment_fill + len(blob) - len(chunks[-1])
        try:
            self._segment.write(blob)
        except OSError as exc:
            self._poisoned = f"write: {exc}"
            raise EnvError(
                f"writing log segment {self._segments[-1].name} failed: {_why(exc)}"
            ) from exc
        self._segment_fill += len(blob)
        self._last_record = (len(self._segments) - 1, last_offset, leaves[-1])
        if self._segment not in self._dirty:
            self._dirty.append(self._segment)
        for leaf in leaves:
            self._compact.append(leaf)
        self._size += len(leaves)
        return leaves

    def _roll_segment(self) -> None:
        # The old segment is fsynced by the next sync(), still in _dirty if written since.
        number = len(self._segments)
        path = self.folder / segment_name(number)
        out = self._fs.open_append(path, create=True)
        out.write(header(SEGMENT_MAGIC, number, self._size))
        if self._segment not in self._dirty:
            self._segment.close()
        self._segments.append(path)
        self._segment = out
        self._names[id(out)] = path.name
        self._dirty.append(out)
        self._segment_fill = HEADER_SIZE
        self._new_dir_entries = True

    def sync(self) -> int:
        """fsync what was appended; returns the new acknowledged size."""
        self._usable()
        what = "the log folder"
        try:
            for out in self._dirty:
                what = f"log segment {self._names.get(id(out), '?')}"
                out.fsync()
            what = "the log folder"
            if self._new_dir_entries:
                self._fs.fsync_dir(self.folder)
        except OSError as exc:
            self._poisoned = f"fsync: {exc}"
            raise EnvError(
                f"fsync of {what} failed: {_why(exc)}; stop and reopen the log"
            ) from exc
        for out in self._dirty:
            if out is not self._segment:
                out.close()  # a segment rolled over: it is complete and durable now
        self._dirty = []
        self._new_dir_entries = False
        self._acknowledged = self._size
        return self._acknowledged

    def add_checkpoint(self, note: bytes) -> Checkpoint:
        """Store a signed checkpoint note for the acknowledged log; fsynced before returning.

        The caller verifies the signature (the store holds no key); the store refuses a note
        whose size is not the acknowledged size or whose root is not the records' root.
        """
        self._usable()
        checkpoint = parse_checkpoint_note(note)
        if checkpoint.size != self._acknowledged or self._size != self._acknowledged:
            raise UsageError(
                f"checkpoint of size {checkpoint.size}, but the log has {self._size} records "
                f"of which {self._acknowledged} are acknowledged: sync() before checkpointing"
            )
        if checkpoint.root != self._compact.root():
            raise UsageError(
                f"checkpoint root {base64.b64encode(checkpoint.root).decode()} is not the root "
                f"of the {self._size} records written; refusing to store it"
            )
        framed = frame(note)
        try:
            self._cp_file.write(framed)
            self._cp_file.fsync()
        except OSError as exc:
            self._poisoned = f"checkpoint fsync: {exc}"
            raise EnvError(
                f"writing the checkpoint of size {checkpoint.size} to {CHECKPOINT_FILE} failed: "
                f"{_why(exc)}"
            ) from exc
        self._checkpoints.append(checkpoint)
        self._last_note = (note, self._cp_fill)
        self._cp_fill += len(framed)
        return checkpoint

    def close(self) -> None:
        """Close the files (unsynced records stay unacknowledged)."""
        if self._closed:
            return
        self._closed = True
        self._segment.close()
        self._cp_file.close()
        for out in self._dirty:
            if out is not self._segment:
                out.close()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
