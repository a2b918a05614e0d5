"""Follow a log folder as it grows: new checkpoint notes, and the records they commit to.

For readers beside a running writer (the proof service's tile writer): each :meth:`LogFollower.poll`
reads only the bytes appended since the last one (a byte offset per file), never the whole log
again. It reads checkpoint notes first and then records up to the newest checkpoint's size: a
checkpoint is stored only after its records were fsynced (``storage``), so everything below that
size is whole on disk, and a bad frame there is damage (:class:`FollowError`), not a write in
progress. A frame of the checkpoint file that is not whole yet is simply read on the next poll.

Nothing here is verified beyond framing and order: the caller computes the root over the records
it is given and compares it with each checkpoint (and checks the signature) before publishing.
It never writes.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from zcbench.auditlog._frames import (
    CHECKPOINT_FILE,
    CHECKPOINT_MAGIC,
    HEADER_SIZE,
    MAX_FRAME,
    SEGMENT_MAGIC,
    segment_name,
)
from zcbench.auditlog.checkpoint import Checkpoint, parse_checkpoint_note
from zcbench.auditlog.merkle import leaf_hash
from zcbench.errors import DataError

__all__ = ["FollowError", "FollowStep", "FollowedRecord", "LogFollower"]

_LEN: Final = struct.Struct(">I")
_READ_CHUNK: Final = 4 * 1024 * 1024


class FollowError(DataError):
    """The followed log is damaged or was rewritten under the follower (names file and offset)."""


@dataclass(frozen=True, slots=True)
class FollowedRecord:
    """One record read by the follower: index, encoded bytes and leaf hash."""

    index: int
    data: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class FollowStep:
    """What one poll found: records in order, and checkpoints (note, parsed) in file order.

    Every checkpoint's size is at most the follower's record count after this step.
    """

    records: tuple[FollowedRecord, ...]
    checkpoints: tuple[tuple[bytes, Checkpoint], ...]


def _check_header(path: Path, head: bytes, magic: bytes, number: int, first: int | None) -> None:
    if len(head) < HEADER_SIZE:
        raise FollowError(f"{path.name}: header incomplete ({len(head)} of {HEADER_SIZE} bytes)")
    got_magic, got_number, got_first = struct.unpack_from(">8sQQ", head, 0)
    (crc,) = struct.unpack_from(">I", head, 24)
    if got_magic != magic or crc != zlib.crc32(head[:24]):
        raise FollowError(f"{path.name}: bad file header")
    if got_number != number or (first is not None and got_first != first):
        raise FollowError(
            f"{path.name}: header says file {got_number} from index {got_first}, expected file "
            f"{number} from index {first}: the log was rewritten under the reader"
        )


class _Tail:
    """Read whole frames from one file, from a byte offset on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = HEADER_SIZE
        self._buffer = b""

    def frames(self, *, limit: int, strict: bool) -> list[tuple[int, bytes, bytes]]:
        """Up to ``limit`` whole frames (offset, payload, stored leaf hash) after the offset.

        ``strict``: the frames wanted are known to be whole on disk, so an incomplete or bad
        one is damage; otherwise an incomplete frame at the end is a write in progress.
        """
        out: list[tuple[int, bytes, bytes]] = []
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            raise FollowError(f"{self.path} vanished while being followed") from None
        if size < self.offset:
            raise FollowError(
                f"{self.path.name} shrank to {size} bytes below the {self.offset} already read: "
                "the log was cut under the reader"
            )
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            while len(out) < limit:
                head = handle.read(4)
                if not head:
                    break  # the end of this file
                if len(head) < 4:
                    if strict:
                        raise FollowError(f"{self.path.name}:{self.offset}: frame cut short")
                    break
                (length,) = _LEN.unpack(head)
                if length == 0 or length > MAX_FRAME:
                    raise FollowError(
                        f"{self.path.name}:{self.offset}: implausible frame length {length}"
                    )
                body = handle.read(length + 32)
                if len(body) < length + 32:
                    if strict:
                        raise FollowError(f"{self.path.name}:{self.offset}: frame cut short")
                    break
                payload, stored = body[:length], body[length:]
                if leaf_hash(payload) != stored:
                    if strict:
                        raise FollowError(
                            f"{self.path.name}:{self.offset}: frame checksum mismatch"
                        )
                    break  # a checkpoint frame being written; read again next poll
                out.append((self.offset, payload, stored))
                self.offset += 4 + length + 32
        return out


class LogFollower:
    """Follow ``folder`` (a run's ``log/``) from its start; see the module docstring."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.count = 0
        self._segment = 0
        self._seg_tail: _Tail | None = None
        self._cp_tail: _Tail | None = None
        self._wanted = 0  # records the checkpoints read so far commit to
        self._pending: list[tuple[bytes, Checkpoint]] = []

    def _open_checkpoints(self) -> _Tail | None:
        if self._cp_tail is None:
            path = self.folder / CHECKPOINT_FILE
            try:
                with path.open("rb") as handle:
                    head = handle.read(HEADER_SIZE)
            except FileNotFoundError:
                return None
            if len(head) < HEADER_SIZE:
                return None  # being created
            _check_header(path, head, CHECKPOINT_MAGIC, 0, None)
            self._cp_tail = _Tail(path)
        return self._cp_tail

    def _open_segment(self, number: int) -> _Tail:
        path = self.folder / segment_name(number)
        try:
            with path.open("rb") as handle:
                head = handle.read(HEADER_SIZE)
        except FileNotFoundError:
            raise FollowError(
                f"{path.name} is missing although a checkpoint commits to record {self.count}"
            ) from None
        _check_header(path, head, SEGMENT_MAGIC, number, self.count)
        return _Tail(path)

    def poll(self, *, max_records: int = 1 << 20) -> FollowStep:
        """Read what was appended since the last poll (at most ``max_records`` records).

        Raises :class:`FollowError` when the log is damaged or was rewritten.
        """
        checkpoints: list[tuple[bytes, Checkpoint]] = []
        tail = self._open_checkpoints()
        if tail is not None:
            for offset, note, _ in tail.frames(limit=1 << 16, strict=False):
                try:
                    checkpoint = parse_checkpoint_note(note)
                except DataError as exc:
                    raise FollowError(
                        f"{CHECKPOINT_FILE}:{offset} is not a checkpoint note: {exc}"
                    ) from None
                checkpoints.append((note, checkpoint))
                self._wanted = max(self._wanted, checkpoint.size)
        records: list[FollowedRecord] = []
        if self._seg_tail is not None:
            self._seg_tail.frames(limit=0, strict=True)  # a segment cut under the reader
        goal = min(self._wanted, self.count + max_records)
        while self.count < goal:
            if self._seg_tail is None:
                self._seg_tail = self._open_segment(self._segment)
            frames = self._seg_tail.frames(limit=goal - self.count, strict=True)
            if not frames:
                # this segment is exhausted: the records go on in the next one
                nxt = self.folder / segment_name(self._segment + 1)
                if not nxt.exists():
                    raise FollowError(
                        f"the log holds {self.count} records but a checkpoint commits to "
                        f"{self._wanted}: records are missing"
                    )
                self._segment += 1
                self._seg_tail = None
                continue
            for _, payload, stored in frames:
                records.append(FollowedRecord(self.count, payload, stored))
                self.count += 1
        # a checkpoint is handed out once the records it commits to have been
        self._pending.extend(checkpoints)
        ready = tuple(cp for cp in self._pending if cp[1].size <= self.count)
        self._pending = [cp for cp in self._pending if cp[1].size > self.count]
        return FollowStep(tuple(records), ready)
