"""A read-only, streaming walk over a log folder: records in order, checkpoint notes, findings.

Storage recovery and verification both read the folder through this walk so that they classify
damage the same way. It never writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._frames import (
    CHECKPOINT_FILE,
    CHECKPOINT_MAGIC,
    HEADER_SIZE,
    SEGMENT_MAGIC,
    Damage,
    index_frames,
    scan_file,
    scan_tail,
    segment_number,
)
from zcbench.auditlog._fs import FileSystem, read_range
from zcbench.auditlog.records import RUN_RECORDS, Indexed, Record, RecordCodec

__all__ = ["Finding", "LogWalk", "WalkedRecord"]

R = TypeVar("R", bound=Indexed)


@dataclass(frozen=True, slots=True)
class Finding:
    """A fatal finding: its classification, the record index and byte offset where it is seen."""

    classification: str
    index: int | None
    path: str | None
    offset: int | None
    message: str


class WalkedRecord(Generic[R]):
    """One record in place: its bytes, leaf hash, decoded form and position on disk.

    A plain slotted class rather than a frozen dataclass: one is made per record read.
    """

    __slots__ = ("data", "index", "leaf_hash", "offset", "path", "record")

    def __init__(self, index: int, data: bytes, leaf_hash: bytes, record: R, path: Path,
                 offset: int) -> None:
        self.index = index
        self.data = data
        self.leaf_hash = leaf_hash
        self.record = record
        self.path = path
        self.offset = offset


class LogWalk(Generic[R]):
    """Walk ``folder``'s segments in order; findings are set once :meth:`records` is exhausted.

    ``codec`` is the log's record type (default: a run's records).
    """

    @overload
    def __init__(self: LogWalk[Record], folder: Path, fs: FileSystem) -> None: ...

    @overload
    def __init__(self, folder: Path, fs: FileSystem, codec: RecordCodec[R]) -> None: ...

    def __init__(self, folder: Path, fs: FileSystem, codec: RecordCodec[Any] = RUN_RECORDS
                 ) -> None:
        self.folder = folder
        self.fs = fs
        self.codec = codec
        self.finding: Finding | None = None
        self.torn: Damage | None = None
        self.count = 0
        try:
            names = fs.list_dir(folder)
        except FileNotFoundError:
            names = []  # a run whose log/ folder was deleted: damage, reported as corrupt
        numbered = sorted((n, name) for name in names if (n := segment_number(name)) is not None)
        self.segments = [folder / name for _, name in numbered]
        self._numbers = [n for n, _ in numbered]

    def _fatal(self, classification: str, index: int | None, path: Path | None,
               offset: int | None, message: str) -> None:
        self.finding = Finding(
            classification, index, str(path) if path else None, offset, message
        )

    def records(self, start: tuple[int, int, int] | None = None) -> Iterator[WalkedRecord[R]]:
        """Every whole record in order, stopping at the first fatal finding.

        ``start``: ``(segment, byte offset, index)`` where a verified prefix ends: only the
        records after it are read (segment ``segment`` from that offset on, then the later
        segments whole); the prefix is not read again."""
        if not self.segments:
            self._fatal("corrupt", 0, self.folder, None, f"no segment files in {self.folder}")
            return
        last = len(self.segments) - 1
        first_segment = 0
        if start is not None:
            first_segment, _, self.count = start
        for position, path in enumerate(self.segments):
            if position < first_segment:
                continue
            if start is not None and position == first_segment:
                if self._numbers[position] != position:
                    self._fatal("reordered", self.count, path, 0,
                                f"segment file {path.name} is not segment {position}: "
                                "segments were renamed or removed")
                    return
                scan = scan_tail(path, read_range(self.fs, path, start[1]), start[1],
                                 self.codec.lead)
            else:
                scan = scan_file(path, self.fs.read_bytes(path), SEGMENT_MAGIC, self.codec.lead)
            if scan.number is not None and (
                scan.number != position or self._numbers[position] != position
            ):
                self._fatal(
                    "reordered", self.count, path, 0,
                    f"segment file {path.name} is segment {scan.number} by its header, "
                    f"expected segment {position}: segments were swapped, renamed or removed",
                )
                return
            if scan.first_index is not None and scan.first_index != self.count:
                self._fatal(
                    "reordered", self.count, path, 0,
                    f"segment {path.name} starts at index {scan.first_index}, expected "
                    f"{self.count}: segments were swapped or removed",
                )
                return
            for frame in scan.frames:
                try:
                    record = self.codec.decode(frame.payload)
                except LogFormatError as exc:
                    self._fatal("corrupt", self.count, path, frame.offset, str(exc))
                    return
                if record.index != self.count:
                    self._fatal(
                        "reordered", self.count, path, frame.offset,
                        f"record at {path.name}:{frame.offset} carries index {record.index}, "
                        f"expected {self.count}: records were deleted, inserted or reordered",
                    )
                    return
                yield WalkedRecord(
                    self.count, frame.payload, frame.leaf_hash, record, path, frame.offset
                )
                self.count += 1
            damage = scan.damage
            if damage is None:
                continue
            if damage.resumes_at is not None or position != last:
                where = (
                    f"valid records resume at byte {damage.resumes_at}"
                    if damage.resumes_at is not None
                    else "later segments follow"
                )
                self._fatal(
                    "corrupt", self.count, path, damage.offset,
                    f"{damage.reason} at {path.name}:{damage.offset} (record {self.count}), "
                    f"and {where}: damage in the middle of the log",
                )
                return
            self.torn = damage

    def count_records(self) -> int:
        """How many whole records the log holds, without reading payloads: the last segment's
        first index (from its header) plus its frames. Unverified; for listings."""
        if not self.segments:
            return 0
        last = self.segments[-1]
        first = 0
        if len(self.segments) > 1:
            head = _header_of(last)
            first = int.from_bytes(head[16:24], "big") if len(head) == HEADER_SIZE else 0
        return first + sum(1 for _ in index_frames(last, SEGMENT_MAGIC, lambda n: False))

    def checkpoint_notes(self) -> tuple[list[tuple[bytes, int]], Damage | None, Finding | None]:
        """The checkpoint notes with their offsets, a torn tail, and a fatal finding."""
        path = self.folder / CHECKPOINT_FILE
        if not self.fs.exists(path):
            return [], None, None
        scan = scan_file(path, self.fs.read_bytes(path), CHECKPOINT_MAGIC)
        notes = [(frame.payload, frame.offset) for frame in scan.frames]
        damage = scan.damage
        if damage is None:
            return notes, None, None
        if damage.resumes_at is not None:
            finding = Finding(
                "corrupt", None, str(path), damage.offset,
                f"{damage.reason} at {path.name}:{damage.offset}, and valid checkpoints resume "
                f"at byte {damage.resumes_at}: damage in the middle of the checkpoint file",
            )
            return notes, None, finding
        return notes, damage, None


def _header_of(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(HEADER_SIZE)
