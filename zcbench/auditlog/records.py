"""Log records: the deterministic CBOR map that is one leaf of the audit log.

A record is a CBOR map with exactly these keys, encoded canonically (RFC 8949 §4.2.3 ordering,
shortest integer forms, definite lengths), so one record has exactly one byte string and the leaf
hash is SHA-256(0x00 ‖ those bytes)::

    {"v": 1, "index": uint, "kind": "boot" | "in" | "out" | "note",
     "seq": uint | null,           batch sequence number (in, out); null for boot and note
     "time_ns": int,               when the record was made (ns since the Unix epoch, UTC)
     "event_time_ns": int | null,  newest event time of the batch (in, out), else null
     "body": bytes}

Bodies are opaque here: the boot body is the boot attestation document, an IN body the
column-wise batch, an OUT body the encoded signals, a note body UTF-8 text or any bytes the
writer chose. :func:`decode_record` is strict: unknown or missing keys, wrong types and any
non-canonical encoding are refused, so a record cannot be re-encoded into different bytes with
the same meaning.

This module owns the record format only; it reads no file and knows no key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, cast

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.auditlog._errors import LogFormatError

__all__ = [
    "KINDS",
    "MAX_RECORD_BYTES",
    "RECORD_VERSION",
    "RUN_RECORDS",
    "Indexed",
    "Kind",
    "Record",
    "RecordCodec",
    "decode_record",
    "encode_record",
]

RECORD_VERSION: Final = 1
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
"""Largest encoded record accepted (a batch of a million events stays far below)."""

Kind = Literal["boot", "in", "out", "note"]
KINDS: Final[tuple[Kind, ...]] = ("boot", "in", "out", "note")
_KEYS: Final = frozenset({"v", "index", "kind", "seq", "time_ns", "event_time_ns", "body"})
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded log record (see the module docstring for the fields)."""

    index: int
    kind: Kind
    seq: int | None
    time_ns: int
    event_time_ns: int | None
    body: bytes
    version: int = RECORD_VERSION

    @property
    def batch_seq(self) -> int:
        """The batch seq of an IN or OUT record, the one place a batch's seq is in the log (a
        batch's bytes carry none since batch version 2); :class:`LogFormatError` for a boot or
        note record, which has none."""
        if self.seq is None:
            raise LogFormatError(f"record {self.index}: a {self.kind} record has no batch seq")
        return self.seq


def encode_record(
    *,
    index: int,
    kind: Kind,
    body: bytes,
    time_ns: int,
    seq: int | None = None,
    event_time_ns: int | None = None,
) -> bytes:
    """The canonical bytes of one record; raises ``ValueError`` on a field out of its domain."""
    _check_fields(index, kind, seq, time_ns, event_time_ns, body, ValueError)
    # built in canonical key order (shorter first, then bytewise) from fields just checked to
    # be text, bytes, None and 64-bit integers, so it is written as built: two records per
    # live batch, and checking the plain tree cost more than writing it
    doc = {
        "v": RECORD_VERSION,
        "seq": seq,
        "body": bytes(body),
        "kind": kind,
        "index": index,
        "time_ns": time_ns,
        "event_time_ns": event_time_ns,
    }
    data: bytes = _cbor.encode_canonical(doc, ordered=True)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(data)} bytes exceeds {MAX_RECORD_BYTES}")
    return data


def decode_record(data: bytes) -> Record:
    """The record in ``data``; raises :class:`LogFormatError` unless it is exactly canonical."""
    try:
        doc = _cbor.decode(data, canonical=True, max_depth=1, max_bytes=MAX_RECORD_BYTES)
    except _cbor.CborError as exc:
        raise LogFormatError(f"record is not canonical CBOR: {exc}") from None
    if not isinstance(doc, dict):
        raise LogFormatError(f"record is {describe(doc)}, not a map")
    if set(doc) != _KEYS:
        keys = ", ".join(sorted(describe(k) for k in doc))
        raise LogFormatError(f"record keys {keys} are not exactly {', '.join(sorted(_KEYS))}")
    if type(doc["v"]) is not int or doc["v"] != RECORD_VERSION:
        raise LogFormatError(f"record version {describe(doc['v'])} is not {RECORD_VERSION}")
    index, kind, seq = doc["index"], doc["kind"], doc["seq"]
    time_ns, event_time_ns, body = doc["time_ns"], doc["event_time_ns"], doc["body"]
    _check_fields(index, kind, seq, time_ns, event_time_ns, body, LogFormatError)
    return Record(
        index=index,
        kind=cast(Kind, kind),
        seq=seq,
        time_ns=time_ns,
        event_time_ns=event_time_ns,
        body=body,
    )


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high  # bool is not an int here


def _check_fields(
    index: Any,
    kind: Any,
    seq: Any,
    time_ns: Any,
    event_time_ns: Any,
    body: Any,
    error: type[Exception],
) -> None:
    if not _is_int(index, 0, _UINT64_MAX):
        raise error(f"record index {describe(index)} is not an unsigned 64-bit integer")
    if kind not in KINDS or type(kind) is not str:
        raise error(f"record {index}: kind {describe(kind)} is not one of {', '.join(KINDS)}")
    batch = kind in ("in", "out")
    if batch and not _is_int(seq, 0, _UINT64_MAX):
        raise error(f"record {index}: a {kind} record needs a batch seq, got {describe(seq)}")
    if not batch and seq is not None:
        raise error(f"record {index}: a {kind} record has no batch seq, got {describe(seq)}")
    if not _is_int(time_ns, _INT64_MIN, _INT64_MAX):
        raise error(f"record {index}: time_ns {describe(time_ns)} is not a 64-bit integer")
    if event_time_ns is not None and not _is_int(event_time_ns, _INT64_MIN, _INT64_MAX):
        raise error(
            f"record {index}: event_time_ns {describe(event_time_ns)} is not a 64-bit integer"
        )
    if type(body) is not bytes:
        raise error(f"record {index}: body is {type(body).__name__}, not bytes")


class Indexed(Protocol):
    """What the log's storage needs of a decoded record: its position in the log."""

    @property
    def index(self) -> int: ...


R = TypeVar("R", bound=Indexed)


@dataclass(slots=True)
class RecordCodec(Generic[R]):
    """A log's record type, for the storage and the walk that share the segment format.

    ``decode`` is the strict reader of one record (raising :class:`LogFormatError`); ``lead``
    is the first byte every encoded record of the type starts with (its CBOR map header), which
    keeps the search for a valid frame after damage to a few candidates (empty: any byte).
    A run's log holds :data:`RUN_RECORDS`; a strategy's ledger (``zcbench.ledger``) its entries.
    """

    name: str
    decode: Callable[[bytes], R]
    lead: bytes = b""


RUN_RECORDS: Final = RecordCodec("run record", decode_record, b"\xa7")
"""The records of a run's log: every record is a CBOR map of seven keys (0xa7)."""
