"""Ledger entries: the typed, small records of a strategy's ledger.

An entry is a canonical CBOR map (RFC 8949 §4.2.3, through ``cbor2`` canonical and read back
only through :func:`zcbench._cbor.decode` with ``canonical=True``), one leaf of the ledger's
RFC 9162 tree, exactly::

    {"v": 1, "index": uint, "type": str, "time_ns": int, "body": {...}}

``time_ns`` is when the entry was appended (ns since the Unix epoch, UTC). The body's keys are
fixed per type:

=================  ========================================================================
``commitment``     ``pcr0`` (48 bytes), ``commitment_sha256`` (32), ``valid_from_ns`` (int)
``revocation``     ``pcr0`` (48), ``reason`` (text, at most 200 characters)
``run-start``      ``pcr0`` (48), ``run_origin`` (text), ``run_vkey`` (text), ``boot_sha256``
                   (32: SHA-256 of the boot attestation document), ``previous_checkpoint``
                   (the previous run's last checkpoint note, bytes, or null for the first run)
``run-checkpoint`` ``run_origin``, ``checkpoint`` (a signed checkpoint note of the run's log)
``run-end``        ``run_origin``, ``final_checkpoint`` (note), ``summary_sha256`` (32)
``archive``        ``run_origin`` (a run with its run-start in the ledger), ``bucket`` (text),
                   ``manifest_sha256`` (32: SHA-256 of the archive's record in the run's
                   ``archive.json``, canonical JSON), ``retain_until_ns`` (int), ``objects``
                   (1..:data:`MAX_ARCHIVE_OBJECTS` maps of ``key``, ``version_id`` (text) and
                   ``sha256`` (32)); a large archive is several entries with one manifest hash
``control``        ``run_origin`` (an open run), ``log_index`` (int: the control record's
                   index in the run's log), ``leaf_sha256`` (32: that record's leaf hash),
                   ``action`` (``start``, ``set``, ``kill``, ``enable``), ``operator`` (text)
=================  ========================================================================

An entry is at most :data:`MAX_ENTRY_BYTES` (65,535) bytes, the tlog-tiles entry bound: hashes
and facts only, never market data or strategy text. What the facts mean together (which PCR0
may run when) is :mod:`zcbench.ledger.rules`'; this module owns the format only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.auditlog.records import RecordCodec
from zcbench.ledger._errors import LedgerFormatError

__all__ = [
    "ENTRY_TYPES",
    "ENTRY_VERSION",
    "LEDGER_ENTRIES",
    "MAX_ARCHIVE_OBJECTS",
    "MAX_ENTRY_BYTES",
    "ArchiveEntry",
    "ArchiveEntryObject",
    "CommitmentEntry",
    "ControlEntry",
    "EntryBody",
    "EntryType",
    "LedgerEntry",
    "RevocationEntry",
    "RunCheckpointEntry",
    "RunEndEntry",
    "RunStartEntry",
    "decode_entry",
    "encode_entry",
]

ENTRY_VERSION: Final = 1
MAX_ENTRY_BYTES: Final = 65_535
EntryType = Literal["commitment", "revocation", "run-start", "run-checkpoint", "run-end",
                    "archive", "control"]
ENTRY_TYPES: Final[tuple[EntryType, ...]] = (
    "commitment", "revocation", "run-start", "run-checkpoint", "run-end", "archive", "control",
)
CONTROL_ACTIONS: Final = ("start", "set", "kill", "enable")
MAX_ARCHIVE_OBJECTS: Final = 256
_OBJECT_KEYS: Final = frozenset({"key", "version_id", "sha256"})
_KEYS: Final = frozenset({"v", "index", "type", "time_ns", "body"})
_MAX_TEXT: Final = 1024
_MAX_NOTE: Final = 16_384
_INT64: Final = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class CommitmentEntry:
    """A version of the strategy (its PCR0) announced, live from ``valid_from_ns`` on."""

    pcr0: bytes
    commitment_sha256: bytes
    valid_from_ns: int
    type: ClassVar[EntryType] = "commitment"


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """An announcement withdrawn before its ``valid_from``, or a retired version revoked."""

    pcr0: bytes
    reason: str = ""
    type: ClassVar[EntryType] = "revocation"


@dataclass(frozen=True, slots=True)
class RunStartEntry:
    """A run began: which version, which log (origin and key), the boot document's hash, and
    the last checkpoint of the run before it (None for the first run)."""

    pcr0: bytes
    run_origin: str
    run_vkey: str
    boot_sha256: bytes
    previous_checkpoint: bytes | None
    type: ClassVar[EntryType] = "run-start"


@dataclass(frozen=True, slots=True)
class RunCheckpointEntry:
    """A checkpoint of a running run's log (at a bounded rate)."""

    run_origin: str
    checkpoint: bytes
    type: ClassVar[EntryType] = "run-checkpoint"


@dataclass(frozen=True, slots=True)
class RunEndEntry:
    """A run ended: its final checkpoint and the SHA-256 of its summary."""

    run_origin: str
    final_checkpoint: bytes
    summary_sha256: bytes
    type: ClassVar[EntryType] = "run-end"


@dataclass(frozen=True, slots=True)
class ArchiveEntryObject:
    """One archived object: its key, the VersionId the server gave it, its SHA-256."""

    key: str
    version_id: str
    sha256: bytes


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """A run's records archived under Object Lock: the bucket, the hash of the archive's record
    in the run's manifest, the retention, and every object (or a share of them: a large
    archive is several entries with one ``manifest_sha256``)."""

    run_origin: str
    bucket: str
    manifest_sha256: bytes
    retain_until_ns: int
    objects: tuple[ArchiveEntryObject, ...]
    type: ClassVar[EntryType] = "archive"


@dataclass(frozen=True, slots=True)
class ControlEntry:
    """A run's risk limits recorded (``start``) or changed (``set``, ``kill``, ``enable``) by a
    named operator: the control record's index and leaf hash in the run's signed log."""

    run_origin: str
    log_index: int
    leaf_sha256: bytes
    action: str
    operator: str
    type: ClassVar[EntryType] = "control"


EntryBody = (CommitmentEntry | RevocationEntry | RunStartEntry | RunCheckpointEntry | RunEndEntry
             | ArchiveEntry | ControlEntry)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One decoded entry: its index in the ledger, when it was appended, and its body."""

    index: int
    time_ns: int
    body: EntryBody

    @property
    def type(self) -> EntryType:
        """The entry's type name."""
        return self.body.type


_FIELDS: Final[dict[str, tuple[type[Any], dict[str, str]]]] = {
    "commitment": (CommitmentEntry, {
        "pcr0": "pcr0", "commitment_sha256": "sha256", "valid_from_ns": "int64"}),
    "revocation": (RevocationEntry, {"pcr0": "pcr0", "reason": "reason"}),
    "run-start": (RunStartEntry, {
        "pcr0": "pcr0", "run_origin": "text", "run_vkey": "text", "boot_sha256": "sha256",
        "previous_checkpoint": "note?"}),
    "run-checkpoint": (RunCheckpointEntry, {"run_origin": "text", "checkpoint": "note"}),
    "run-end": (RunEndEntry, {
        "run_origin": "text", "final_checkpoint": "note", "summary_sha256": "sha256"}),
    "archive": (ArchiveEntry, {
        "run_origin": "text", "bucket": "text", "manifest_sha256": "sha256",
        "retain_until_ns": "int64", "objects": "objects"}),
    "control": (ControlEntry, {
        "run_origin": "text", "log_index": "int64", "leaf_sha256": "sha256",
        "action": "action", "operator": "text"}),
}


def _check_value(kind: str, name: str, value: Any, error: type[Exception]) -> None:
    ok: bool
    if kind == "pcr0":
        ok = type(value) is bytes and len(value) == 48 and value != bytes(48)
        want = "48 bytes, not all zero"
    elif kind == "sha256":
        ok = type(value) is bytes and len(value) == 32
        want = "32 bytes"
    elif kind == "int64":
        ok = type(value) is int and _INT64[0] <= value <= _INT64[1]
        want = "a 64-bit integer"
    elif kind == "reason":
        ok = type(value) is str and len(value) <= 200 and value.isprintable()
        want = "printable text of at most 200 characters"
    elif kind == "text":
        ok = type(value) is str and 0 < len(value) <= _MAX_TEXT and value.isprintable()
        want = f"printable text of 1..{_MAX_TEXT} characters"
    elif kind in ("note", "note?"):
        ok = (value is None and kind == "note?") or (
            type(value) is bytes and 0 < len(value) <= _MAX_NOTE)
        want = f"a signed note of 1..{_MAX_NOTE} bytes" + (" or null" if kind == "note?" else "")
    elif kind == "action":
        ok = type(value) is str and value in CONTROL_ACTIONS
        want = f"one of {', '.join(CONTROL_ACTIONS)}"
    elif kind == "objects":
        ok = _objects_ok(value)
        want = (f"a list of 1..{MAX_ARCHIVE_OBJECTS} objects of key, version_id (text) and "
                "sha256 (32 bytes)")
    else:  # pragma: no cover - the table above names every kind
        raise AssertionError(kind)
    if not ok:
        raise error(f"{name} is {describe(value)}, expected {want}")


def _text_ok(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= _MAX_TEXT and value.isprintable()


def _objects_ok(value: Any) -> bool:
    if type(value) is tuple:  # as written: ArchiveEntryObject values
        return 0 < len(value) <= MAX_ARCHIVE_OBJECTS and all(
            type(o) is ArchiveEntryObject and _text_ok(o.key) and _text_ok(o.version_id)
            and type(o.sha256) is bytes and len(o.sha256) == 32 for o in value)
    return type(value) is list and 0 < len(value) <= MAX_ARCHIVE_OBJECTS and all(
        type(o) is dict and set(o) == _OBJECT_KEYS and _text_ok(o["key"])
        and _text_ok(o["version_id"]) and type(o["sha256"]) is bytes and len(o["sha256"]) == 32
        for o in value)


def _to_doc(name: str, value: Any) -> Any:
    if name == "objects" and type(value) is tuple:
        return [{"key": o.key, "version_id": o.version_id, "sha256": o.sha256} for o in value]
    return value


def _from_doc(name: str, value: Any) -> Any:
    if name == "objects":
        return tuple(ArchiveEntryObject(o["key"], o["version_id"], o["sha256"]) for o in value)
    return value


def encode_entry(*, index: int, time_ns: int, body: EntryBody) -> bytes:
    """The canonical bytes of one entry; raises ``ValueError`` on a field out of its domain."""
    if type(index) is not int or not 0 <= index < 2**64:
        raise ValueError(f"entry index {describe(index)} is not an unsigned 64-bit integer")
    _check_value("int64", "time_ns", time_ns, ValueError)
    _, fields = _FIELDS[body.type]
    doc_body = {name: getattr(body, name) for name in fields}
    for name, kind in fields.items():
        _check_value(kind, f"{body.type} {name}", doc_body[name], ValueError)
    doc_body = {name: _to_doc(name, value) for name, value in doc_body.items()}
    doc = {"v": ENTRY_VERSION, "index": index, "type": body.type, "time_ns": time_ns,
           "body": doc_body}
    data: bytes = _cbor.encode_canonical(doc)
    if len(data) > MAX_ENTRY_BYTES:
        raise ValueError(f"ledger entry of {len(data)} bytes exceeds {MAX_ENTRY_BYTES}")
    return data


def decode_entry(data: bytes) -> LedgerEntry:
    """The entry in ``data``; raises :class:`LedgerFormatError` unless it is exactly canonical."""
    if len(data) > MAX_ENTRY_BYTES:
        raise LedgerFormatError(f"ledger entry of {len(data)} bytes exceeds {MAX_ENTRY_BYTES}")
    try:
        doc = _cbor.decode(data, canonical=True, max_depth=4, max_bytes=MAX_ENTRY_BYTES)
    except _cbor.CborError as exc:
        raise LedgerFormatError(f"ledger entry is not canonical CBOR: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != _KEYS:
        shown = ", ".join(sorted(describe(k) for k in doc)) if isinstance(doc, dict) else describe(
            doc)
        raise LedgerFormatError(f"ledger entry {shown} is not a map of exactly "
                                f"{', '.join(sorted(_KEYS))}")
    if type(doc["v"]) is not int or doc["v"] != ENTRY_VERSION:
        raise LedgerFormatError(f"ledger entry version {describe(doc['v'])} is not "
                                f"{ENTRY_VERSION}")
    index, kind, time_ns, body = doc["index"], doc["type"], doc["time_ns"], doc["body"]
    if type(index) is not int or not 0 <= index < 2**64:
        raise LedgerFormatError(f"ledger entry index {describe(index)} is not an unsigned "
                                "64-bit integer")
    _check_value("int64", f"entry {index}: time_ns", time_ns, LedgerFormatError)
    if type(kind) is not str or kind not in _FIELDS:
        raise LedgerFormatError(f"entry {index}: type {describe(kind)} is not one of "
                                f"{', '.join(ENTRY_TYPES)}")
    cls, fields = _FIELDS[kind]
    if not isinstance(body, dict) or set(body) != set(fields):
        raise LedgerFormatError(f"entry {index}: a {kind} body has exactly the keys "
                                f"{', '.join(sorted(fields))}")
    for name, value_kind in fields.items():
        _check_value(value_kind, f"entry {index}: {kind} {name}", body[name], LedgerFormatError)
    return LedgerEntry(index, time_ns, cls(**{name: _from_doc(name, body[name])
                                               for name in fields}))


LEDGER_ENTRIES: Final = RecordCodec("ledger entry", decode_entry, b"\xa5")
"""The record type of a ledger's log: every entry is a CBOR map of five keys (0xa5)."""
