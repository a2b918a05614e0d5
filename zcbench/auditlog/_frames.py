"""On-disk framing of the log folder, and the read-only scanner that storage and verify share.

A log folder holds segment files ``seg-<8 digits>.zlog`` and one ``checkpoints.zlog``. Every file
starts with a 32-byte header::

    magic (8) ‖ file number u64 BE ‖ first index u64 BE ‖ CRC-32 of the previous 24 bytes (4)
    ‖ 4 zero bytes

then frames::

    length u32 BE ‖ payload ‖ SHA-256(0x00 ‖ payload)

The frame checksum is the payload's Merkle leaf hash, so checking framing and hashing the tree is
one SHA-256 per record. A bad frame is a torn tail only when no valid frame follows it anywhere in
the log; otherwise it is damage in the middle, which is never cut away.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_MAGIC",
    "HEADER_SIZE",
    "MAX_FRAME",
    "SEGMENT_MAGIC",
    "Damage",
    "FileScan",
    "Frame",
    "frame",
    "frame_at",
    "header",
    "index_frames",
    "scan_file",
    "scan_tail",
    "segment_name",
    "segment_number",
]

SEGMENT_MAGIC: Final = b"ZCBLOG\x00\x01"
CHECKPOINT_MAGIC: Final = b"ZCBCKP\x00\x01"
CHECKPOINT_FILE: Final = "checkpoints.zlog"
HEADER_SIZE: Final = 32
MAX_FRAME: Final = 64 * 1024 * 1024 + 64
_SEGMENT_RE: Final = re.compile(r"seg-(\d{8})\.zlog")
_LEN: Final = struct.Struct(">I")
_HEAD: Final = struct.Struct(">8sQQ")
_LEAF_PREFIX: Final = hashlib.sha256(b"\x00")  # copied per frame: SHA-256(0x00 ‖ payload)


def segment_name(number: int) -> str:
    """The file name of segment ``number``."""
    return f"seg-{number:08d}.zlog"


def segment_number(name: str) -> int | None:
    """The number in a segment file name, or None when ``name`` is not a segment."""
    match = _SEGMENT_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def header(magic: bytes, number: int, first_index: int) -> bytes:
    """A file header."""
    head = _HEAD.pack(magic, number, first_index)
    return head + struct.pack(">I", zlib.crc32(head)) + bytes(4)


def frame(payload: bytes, leaf: bytes | None = None) -> bytes:
    """One frame around ``payload`` (``leaf`` is its leaf hash when already known)."""
    if leaf is None:
        leaf = hashlib.sha256(b"\x00" + payload).digest()
    return _LEN.pack(len(payload)) + payload + leaf


class Frame(NamedTuple):
    """One valid frame: where it starts, its payload and leaf hash (a tuple: made per record)."""

    offset: int
    payload: bytes
    leaf_hash: bytes

    @property
    def end(self) -> int:
        """The offset just past this frame."""
        return self.offset + 4 + len(self.payload) + 32


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes that are not a valid frame (or header) at ``offset`` of ``path``.

    ``resumes_at`` is the offset of the next valid frame in the same file, or None.
    """

    path: Path
    offset: int
    reason: str
    resumes_at: int | None


@dataclass(frozen=True, slots=True)
class FileScan:
    """A file's header fields (None when the header itself is bad) and its leading valid frames.

    Scanning stops at the first damage.
    """

    path: Path
    number: int | None
    first_index: int | None
    frames: list[Frame]
    damage: Damage | None
    size: int


def _frame_at(data: bytes, offset: int) -> tuple[Frame | None, str]:
    end = len(data)
    if offset + 4 > end:
        return None, "incomplete length field"
    (length,) = _LEN.unpack_from(data, offset)
    if length == 0 or length > MAX_FRAME:
        return None, f"implausible frame length {length}"
    stop = offset + 4 + length
    if stop + 32 > end:
        return None, f"frame of {length} bytes runs past the end of the file"
    payload = data[offset + 4 : stop]
    hasher = _LEAF_PREFIX.copy()
    hasher.update(payload)
    leaf = hasher.digest()
    if leaf != data[stop : stop + 32]:
        return None, "frame checksum mismatch"
    return Frame(offset, payload, leaf), ""


def _resync(data: bytes, offset: int, lead: bytes) -> int | None:
    """The first offset after ``offset`` where a valid frame starts, if any.

    ``lead`` is the first byte every payload of this file starts with (a record is a CBOR map
    of seven keys, 0xa7), which keeps the search to a few candidates; empty means any.
    """
    last = len(data) - 36
    candidate = offset
    while True:
        if lead:
            found_lead = data.find(lead, candidate + 5, last + 5)
            if found_lead < 0:
                return None
            candidate = found_lead - 4
        else:
            candidate += 1
        if candidate > last:
            return None
        (length,) = _LEN.unpack_from(data, candidate)
        if 0 < length <= MAX_FRAME and candidate + 4 + length + 32 <= len(data):
            found, _ = _frame_at(data, candidate)
            if found is not None:
                return candidate


def scan_file(path: Path, data: bytes, magic: bytes, lead: bytes = b"") -> FileScan:
    """Parse one log file's header and frames, stopping at the first damage.

    ``lead``: the first byte of every payload in this file, if there is one (see _resync).
    """
    damage: Damage | None = None
    if len(data) < HEADER_SIZE:
        damage = Damage(path, 0, f"header incomplete ({len(data)} of {HEADER_SIZE} bytes)", None)
        return FileScan(path, None, None, [], damage, len(data))
    head_magic, number, first_index = _HEAD.unpack_from(data, 0)
    (crc,) = struct.unpack_from(">I", data, 24)
    if head_magic != magic or crc != zlib.crc32(data[:24]) or data[28:32] != bytes(4):
        damage = Damage(path, 0, "bad file header", _resync(data, HEADER_SIZE - 1, lead))
        return FileScan(path, None, None, [], damage, len(data))
    frames: list[Frame] = []
    offset = HEADER_SIZE
    while offset < len(data):
        found, reason = _frame_at(data, offset)
        if found is None:
            damage = Damage(path, offset, reason, _resync(data, offset, lead))
            break
        frames.append(found)
        offset = found.end
    return FileScan(path, number, first_index, frames, damage, len(data))


def scan_tail(path: Path, data: bytes, base: int, lead: bytes = b"") -> FileScan:
    """Parse the frames of ``data``, the bytes of one log file from offset ``base`` on (a
    verified prefix before it is not read again), stopping at the first damage; offsets are the
    file's. The header is not read: ``number`` and ``first_index`` are None."""
    frames: list[Frame] = []
    damage: Damage | None = None
    offset = 0
    while offset < len(data):
        found, reason = _frame_at(data, offset)
        if found is None:
            resumes = _resync(data, offset, lead)
            damage = Damage(path, base + offset, reason,
                            None if resumes is None else base + resumes)
            break
        frames.append(Frame(base + offset, found.payload, found.leaf_hash))
        offset = found.end
    return FileScan(path, None, None, frames, damage, base + len(data))


def frame_at(data: bytes, offset: int = 0) -> Frame | None:
    """The valid frame starting at ``offset`` of ``data``, or None."""
    found, _ = _frame_at(data, offset)
    return found


def index_frames(
    path: Path, magic: bytes, want: Callable[[int], bool]
) -> Iterator[tuple[int, bytes, bytes | None]]:
    """The frames of one log file as ``(offset, stored leaf hash, payload or None)``, reading a
    payload only when ``want(ordinal)`` says so (ordinal: 0 for the file's first frame).

    For readers that need the tree but few records (a slice's export): it reads lengths and
    stored checksums, not payloads, and hashes nothing. The stored leaf hashes are unchecked,
    so whatever is built from them must be verified (an exported slice verifies itself before
    it is written). Stops quietly at a bad header or the first frame that cannot be whole.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[:8] != magic or struct.unpack_from(
            ">I", head, 24
        )[0] != zlib.crc32(head[:24]):
            return
        offset, ordinal = HEADER_SIZE, 0
        while offset + 4 <= size:
            handle.seek(offset)
            (length,) = _LEN.unpack(handle.read(4))
            stop = offset + 4 + length
            if length == 0 or length > MAX_FRAME or stop + 32 > size:
                return
            payload = handle.read(length) if want(ordinal) else None
            if payload is not None and len(payload) != length:
                return
            handle.seek(stop)
            leaf = handle.read(32)
            yield offset, leaf, payload
            offset, ordinal = stop + 32, ordinal + 1
