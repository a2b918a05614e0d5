"""A run's strategy snapshots: the records that log them and the sealed files beside the run.

A strategy that keeps a snapshot (``zcbench.strategy._snapshot``) has each one logged as a
``zcbench.snapshot/1`` note record (``taken``, or ``restored`` when a continuing run started
from it) and its sealed bytes written beside the run, durably, before the record is stored:
``RUN_DIR/snapshots/<log index>.sealed`` (:func:`sealed_snapshot_path`). Only the enclave of
the build that sealed them opens them; anyone can check a file against its record's SHA-256
only through that enclave, which is what a continuing run and a replay do.

:func:`find_snapshot` reads a log's snapshot records under a checkpoint (its size and root)
and returns the newest one that qualifies, with its record's bytes, its inclusion proof under
that checkpoint and its sealed file's bytes: what the enclave is handed to restore it
(the ``restore`` message). :func:`catch_up_chunks` reads the records a continuing run's
enclave catches up on after it (the ``catch_up`` messages). It reads; it writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.location import resolve_log_path
from zcbench.auditlog.merkle import CompactRange, MerkleTree, leaf_hash
from zcbench.auditlog.records import encode_record
from zcbench.errors import DataError, EnvError, VerificationError

__all__ = ["SNAPSHOT_DIR", "CatchUpChunk", "LoggedSnapshot", "catch_up_chunks",
           "catch_up_start", "find_snapshot", "sealed_snapshot_path"]

SNAPSHOT_DIR: Final = "snapshots"
"""The folder of a run's sealed snapshots."""
_MAX_SEALED: Final = 2 * 1024 * 1024
_CHUNK_BYTES: Final = 8 * 1024 * 1024
_CHUNK_RECORDS: Final = 1024


def sealed_snapshot_path(run_dir: Path, index: int) -> Path:
    """Where the sealed snapshot that the record at ``index`` logs lives."""
    return Path(run_dir) / SNAPSHOT_DIR / f"{index}.sealed"


@dataclass(frozen=True)
class LoggedSnapshot:
    """A snapshot record of the log ``origin`` (at ``index``), proven under the checkpoint
    (``size``, ``root``), with its sealed bytes; ``seq`` and ``sha256`` are the record's."""

    origin: str
    size: int
    root: bytes
    index: int
    seq: int
    action: str
    sha256: bytes
    record: bytes
    proof: tuple[bytes, ...]
    path: Path
    sealed: bytes = b""
    """The sealed file's bytes (empty until :meth:`loaded`)."""

    def loaded(self) -> LoggedSnapshot:
        """This snapshot with its sealed file's bytes; :class:`~zcbench.errors.EnvError`
        when the file is missing or unreadable."""
        try:
            with open(self.path, "rb") as fh:
                sealed = fh.read(_MAX_SEALED + 1)
        except OSError as exc:
            raise EnvError(
                f"the snapshot the log records at index {self.index} is not readable at "
                f"{self.path} ({exc.strerror}); restore that file from the run's copy"
            ) from None
        if len(sealed) > _MAX_SEALED:
            raise EnvError(f"{self.path} is too large for a sealed snapshot")
        return dataclasses.replace(self, sealed=sealed)

    def restore_fields(self) -> dict[str, object]:
        """The fields of the ``restore`` message that hands it to an enclave."""
        return {"sealed": self.sealed, "record": self.record, "index": self.index,
                "origin": self.origin, "size": self.size, "root": self.root,
                "proof": list(self.proof)}


def find_snapshot(path: Path, *, origin: str, size: int, root: bytes,
                  before: int | None = None, taken_only: bool = False,
                  load: bool = True) -> LoggedSnapshot | None:
    """The newest snapshot record of the log at ``path`` (a run folder) among its first
    ``size`` records (``before``: with an index below it; ``taken_only``: no ``restored``
    ones), proven under the checkpoint (``size``, ``root``), with its sealed file; None when
    the log has none (``load`` False: without reading the sealed file).

    Raises :class:`~zcbench.errors.VerificationError` when the records do not give ``root``
    (the log changed since it was verified), :class:`~zcbench.errors.EnvError` when the
    sealed file of the record found is missing or unreadable."""
    from zcbench.strategy import decode_snapshot_note, is_snapshot_note

    _, _, run_dir = resolve_log_path(Path(path))
    leaves: list[bytes] = []
    found = None
    for record, leaf in iter_records(path):
        if record.index >= size:
            break
        leaves.append(leaf)
        if (record.kind == "note" and is_snapshot_note(record.body)
                and (before is None or record.index < before)):
            try:
                note = decode_snapshot_note(record.body)
            except DataError:
                continue  # a note that merely names the schema: not the enclave's
            if not taken_only or note.action == "taken":
                found = (record, note)
    if found is None:
        return None  # no tree to build: the common case costs one walk
    tree = MerkleTree(leaves)
    if len(leaves) != size or tree.root() != root:
        raise VerificationError(
            "the log's records do not give the checkpoint it was verified under; verify it "
            "again", check="snapshot_checkpoint")
    record, note = found
    if run_dir is None:
        raise EnvError(f"{path} is no run folder: its sealed snapshots are not beside it")
    where = sealed_snapshot_path(run_dir, record.index)
    data = encode_record(index=record.index, kind=record.kind, body=record.body,
                         time_ns=record.time_ns, seq=record.seq,
                         event_time_ns=record.event_time_ns)
    found_snapshot = LoggedSnapshot(origin, size, root, record.index, note.seq, note.action,
                                    note.sha256, data, tuple(tree.inclusion_proof(record.index)),
                                    where)
    return found_snapshot.loaded() if load else found_snapshot


def catch_up_start(index: int, seq: int) -> int:
    """The index of the first record a continuing run catches up on after the snapshot record
    at ``index`` (its ``seq``): the record after it, or for a snapshot of seq 0 (a continuing
    run's own) the start state at index 1, which gave that run's batch 0 its context."""
    return 1 if seq == 0 else index + 1


@dataclass(frozen=True)
class CatchUpChunk:
    """One ``catch_up`` request: the records from index ``first`` on, ``hashes`` the compact
    range of those before it (in the first chunk only), ``last`` for the final one."""

    first: int
    hashes: tuple[bytes, ...]
    records: tuple[bytes, ...]
    last: bool

    def fields(self) -> dict[str, object]:
        """The fields of the ``catch_up`` message."""
        return {"first": self.first, "range": list(self.hashes), "records": list(self.records),
                "last": int(self.last)}


def catch_up_chunks(path: Path, snapshot: LoggedSnapshot, *, max_bytes: int = _CHUNK_BYTES,
                    max_records: int = _CHUNK_RECORDS) -> Iterator[CatchUpChunk]:
    """The records of the log at ``path`` a continuing run's enclave catches up on after
    ``snapshot`` (one of that log's, proven under its checkpoint): from the record after it (for
    a snapshot of seq 0, from the start state at index 1) to the checkpoint's size, in chunks
    of at most ``max_records`` records and about ``max_bytes`` (a larger record goes alone),
    the first with the compact range of the records before it; always at least one chunk.

    Raises :class:`~zcbench.errors.VerificationError` when the records do not give the
    checkpoint's root (the log changed since it was verified)."""
    first = catch_up_start(snapshot.index, snapshot.seq)
    whole = CompactRange()  # every leaf, checked against the checkpoint at the end
    hashes: tuple[bytes, ...] | None = None  # the compact range before ``first``
    chunk: list[bytes] = []
    at, held = first, 0  # the first index of ``chunk``, its bytes
    for record, leaf in iter_records(path):
        if record.index >= snapshot.size:
            break
        if record.index == first:
            hashes = whole.hashes
        whole.append(leaf)
        if record.index < first:
            continue
        data = encode_record(index=record.index, kind=record.kind, body=record.body,
                             time_ns=record.time_ns, seq=record.seq,
                             event_time_ns=record.event_time_ns)
        if leaf_hash(data) != leaf:
            raise VerificationError(f"record {record.index} of {path} does not encode back to "
                                    "its leaf", check="snapshot_checkpoint")
        if chunk and (len(chunk) >= max_records or held + len(data) > max_bytes):
            assert hashes is not None  # taken at ``first``, where the first chunk starts
            yield CatchUpChunk(at, hashes if at == first else (), tuple(chunk), False)
            chunk, at, held = [], record.index, 0
        chunk.append(data)
        held += len(data)
    if whole.size != snapshot.size or whole.root() != snapshot.root:
        raise VerificationError(
            "the log's records do not give the checkpoint it was verified under; verify it "
            "again", check="snapshot_checkpoint")
    if hashes is None:  # nothing after the snapshot record
        hashes = whole.hashes
    yield CatchUpChunk(at, hashes if at == first else (), tuple(chunk), True)
