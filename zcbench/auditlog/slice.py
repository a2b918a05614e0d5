"""The log slice: selected records with inclusion proofs that verify alone, and its check.

:class:`LogSlice` is the one owning type of the format (read with :meth:`LogSlice.from_bytes`,
written with :meth:`LogSlice.to_bytes`). A slice is deterministic CBOR::

    {"format": "zcbench.log-slice/1",
     "boot":       {"record": <record 0 bytes>, "proof": [hash, ...]},
     "checkpoint": <signed checkpoint note bytes>,
     "entries":    [{"record": <record bytes>, "proof": [hash, ...]}, ...],   ascending index
     "selection":  <text saying how the slice was chosen, informational only>}

Every proof is an RFC 9162 inclusion proof against the checkpoint's size and root (taken
together from the one signed checkpoint, never from anywhere else). :func:`check_slice`
verifies one: the boot document verifies (trust as the caller says), giving the log key and
origin; the checkpoint is signed by that key; the boot record and every entry are included
under its root. It returns the same :class:`~zcbench.auditlog.verdict.LogReport` as a log's
check.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench import _cbor
from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog.boot import BootVerifier, nitro_boot_verifier
from zcbench.auditlog.checkpoint import Checkpoint, verify_checkpoint
from zcbench.auditlog.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.verdict import Classification, LogReport
from zcbench.errors import DataError, VerificationError, ZcbenchError

__all__ = ["SLICE_FORMAT", "LogSlice", "SliceEntry", "check_slice", "check_slice_bytes",
           "read_slice"]

SLICE_FORMAT: Final = "zcbench.log-slice/1"
MAX_SLICE_BYTES: Final = 2 * 1024 * 1024 * 1024
_KEYS: Final = frozenset({"format", "boot", "checkpoint", "entries", "selection"})


@dataclass(frozen=True, slots=True)
class SliceEntry:
    """One record's bytes and its inclusion proof against the slice's checkpoint."""

    record: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LogSlice:
    """An exported slice (see the module docstring). Parsing verifies nothing."""

    boot: SliceEntry
    checkpoint: bytes
    entries: tuple[SliceEntry, ...]
    selection: str

    def records(self) -> list[Record]:
        """The boot record and every entry, decoded, in order."""
        return [decode_record(self.boot.record), *(decode_record(e.record) for e in self.entries)]

    def to_bytes(self) -> bytes:
        """The canonical CBOR of this slice."""
        doc = {
            "format": SLICE_FORMAT,
            "boot": {"record": self.boot.record, "proof": list(self.boot.proof)},
            "checkpoint": self.checkpoint,
            "entries": [{"record": e.record, "proof": list(e.proof)} for e in self.entries],
            "selection": self.selection,
        }
        data: bytes = _cbor.encode_canonical(doc)
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> LogSlice:
        """Parse a slice strictly; raises :class:`LogFormatError` when malformed."""
        try:  # canonical, as to_bytes writes it: map > entries > entry > proof > hash
            doc = _cbor.decode(data, canonical=True, max_depth=4, max_bytes=MAX_SLICE_BYTES)
        except _cbor.CborError as exc:
            raise LogFormatError(f"slice is not canonical CBOR: {exc}") from None
        if not isinstance(doc, dict) or set(doc) != _KEYS or doc["format"] != SLICE_FORMAT:
            raise LogFormatError(f"not a {SLICE_FORMAT} file")
        if type(doc["checkpoint"]) is not bytes or type(doc["selection"]) is not str:
            raise LogFormatError("slice checkpoint must be bytes and selection text")
        if not isinstance(doc["entries"], list):
            raise LogFormatError("slice entries must be a list")
        parsed = cls(
            boot=_entry(doc["boot"], "boot"),
            checkpoint=doc["checkpoint"],
            entries=tuple(_entry(e, f"entry {i}") for i, e in enumerate(doc["entries"])),
            selection=doc["selection"],
        )
        return parsed

    @classmethod
    def read(cls, path: Path) -> LogSlice:
        """:meth:`from_bytes` of the file at ``path``."""
        return cls.from_bytes(path.read_bytes())


def _proof(value: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > 64 or not all(
        type(h) is bytes and len(h) == HASH_SIZE for h in value
    ):
        raise LogFormatError(f"{where}: proof must be a list of at most 64 32-byte hashes")
    return tuple(value)


def _entry(value: Any, where: str) -> SliceEntry:
    if not isinstance(value, dict) or set(value) != {"record", "proof"}:
        raise LogFormatError(f"{where}: expected a map with record and proof")
    if type(value["record"]) is not bytes:
        raise LogFormatError(f"{where}: record must be bytes")
    return SliceEntry(value["record"], _proof(value["proof"], where))


def read_slice(data: bytes) -> tuple[bytes, list[bytes], bytes, list[tuple[bytes, list[bytes]]],
                                      str]:
    """:meth:`LogSlice.from_bytes` as a tuple (boot record, its proof, checkpoint note,
    entries, selection); kept for callers of the first format reader."""
    s = LogSlice.from_bytes(data)
    return (s.boot.record, list(s.boot.proof), s.checkpoint,
            [(e.record, list(e.proof)) for e in s.entries], s.selection)


def check_slice(
    path: Path,
    *,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    known_checkpoint: bytes | None = None,
) -> LogReport:
    """Verify the exported slice at ``path`` alone; a frozen report, never raising for bad
    data."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return _Check(str(path)).report("corrupt", f"{path} cannot be read: {exc.strerror}")
    return check_slice_bytes(data, str(path), trust=trust, boot_verifier=boot_verifier,
                             known_checkpoint=known_checkpoint)


class _Check:
    """What a slice check has established so far, for its report."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.origin: str | None = None
        self.checkpoint: Checkpoint | None = None
        self.note: bytes | None = None
        self.simulated = False
        self.public_key: bytes | None = None
        self.warnings: list[str] = []
        self.count = 0

    def report(self, classification: Classification, message: str,
               index: int | None = None) -> LogReport:
        return LogReport(
            verified=classification == "intact",
            classification=classification,
            entries=self.count,
            records=self.count,
            checkpoints=1 if self.checkpoint else 0,
            first_bad_index=index,
            message=message,
            bad_path=self.where if classification != "intact" else None,
            origin=self.origin,
            root=self.checkpoint.root.hex() if self.checkpoint else None,
            latest_checkpoint=self.note,
            public_key=self.public_key,
            simulated=self.simulated,
            warnings=tuple(self.warnings),
            kind="slice",
        )


def check_slice_bytes(
    data: bytes,
    where: str,
    *,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    known_checkpoint: bytes | None = None,
) -> LogReport:
    """:func:`check_slice` of slice bytes in memory (``where`` names them in the report)."""
    verifier = boot_verifier or nitro_boot_verifier()
    state = _Check(where)
    try:
        sliced = LogSlice.from_bytes(data)
        boot_record = decode_record(sliced.boot.record)
    except LogFormatError as exc:
        return state.report("corrupt", f"{where} is not a readable slice: {exc}")
    state.note = sliced.checkpoint
    if boot_record.index != 0 or boot_record.kind != "boot":
        return state.report("untrusted_boot",
                            "the slice's boot record is not record 0 of kind boot", 0)
    try:
        identity = verifier(boot_record.body, trust)
    except ZcbenchError as exc:
        return state.report("untrusted_boot", f"the boot document does not verify: {exc}", 0)
    state.origin, state.simulated = identity.origin, identity.simulated
    state.public_key = identity.public_key
    state.warnings.extend(identity.warnings)
    try:
        checkpoint = verify_checkpoint(sliced.checkpoint, identity.public_key, identity.origin)
    except (VerificationError, LogFormatError) as exc:
        return state.report("bad_signature", f"the slice's checkpoint is not signed by the "
                                             f"attested log key for {state.origin}: {exc}")
    state.checkpoint = checkpoint
    size, root = checkpoint.size, checkpoint.root
    try:
        verify_inclusion(leaf_hash(sliced.boot.record), 0, size, list(sliced.boot.proof), root)
    except VerificationError as exc:
        return state.report("rewritten", f"the boot record is not under the checkpoint: {exc}",
                            0)
    last = -1
    for entry in sliced.entries:
        try:
            record = decode_record(entry.record)
        except DataError as exc:
            return state.report("corrupt", f"entry after index {last} is not a record: {exc}",
                                last + 1)
        if record.index <= last:
            return state.report("reordered", f"entry {record.index} follows {last}: entries "
                                             "must ascend without repeats", record.index)
        try:
            verify_inclusion(leaf_hash(entry.record), record.index, size, list(entry.proof),
                             root)
        except VerificationError as exc:
            return state.report("rewritten", f"record {record.index} is not under the signed "
                                             f"root: {exc}", record.index)
        last = record.index
        state.count += 1
    if known_checkpoint is not None:
        try:
            known = verify_checkpoint(known_checkpoint, identity.public_key, identity.origin)
        except (VerificationError, LogFormatError) as exc:
            return state.report("bad_signature", f"the known checkpoint is not this log's: {exc}")
        if known.size == size and known.root != root:
            return state.report("forked", f"the known checkpoint of size {size} has another "
                                          "root", size)
        if known.size > size:
            state.warnings.append(f"a newer checkpoint of size {known.size} is known; this "
                                  f"slice proves against size {size}")
        elif known.size != size:
            state.warnings.append("the known checkpoint is older; consistency is not proven "
                                  "by a slice")
    b64 = base64.b64encode(root).decode()
    return state.report("intact", f"{state.count} records ({sliced.selection}) "
                                  f"included under the signed checkpoint {state.origin} size "
                                  f"{size} root {b64}")
