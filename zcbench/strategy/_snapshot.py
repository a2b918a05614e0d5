"""A strategy's own state across runs: the optional snapshot contract and its log record.

**The contract (optional).** A strategy that keeps state worth carrying into the next run
implements both ``snapshot(self) -> bytes`` and ``restore(self, state: bytes) -> None``:
``snapshot`` returns its whole state as at most :data:`MAX_SNAPSHOT_BYTES` bytes, the same bytes
for the same state (it is called between batches, never during one); ``restore`` is called on a
freshly made instance, before its first batch, with bytes its own ``snapshot`` returned, and
must leave it in that state. Strategies without the two methods are unaffected
(:func:`takes_snapshot` is False): nothing is taken, logged or restored for them.
:func:`take_snapshot` and :func:`restore_snapshot` are the one call path (the enclave's), and
turn what a strategy raises or returns wrong into a :class:`StrategyError` that names no
strategy internals. :func:`encode_state` and :func:`decode_state` give a strategy (which may
import no codec of its own) one deterministic encoding of plain data: canonical CBOR of ints,
strings, bytes, booleans, None, lists and string-keyed maps.

**The record.** The enclave seals the bytes (``zcbench.keys.seal_state``; the sealed file lives
beside the run) and logs what it took, and later what it restored, as a note record whose body
is canonical CBOR, the schema :data:`SNAPSHOT_NOTE`::

    {"note": "zcbench.snapshot/1", "action": "taken" | "restored" | "caught_up",
     "seq": uint,          the next batch's seq: the state is the one after batches 0..seq-1
     "sha256": bytes(32),  SHA-256 of the strategy's snapshot bytes (the plaintext)
     "size": uint,         their length
     "from": null | {"origin": str, "size": uint, "root": bytes(32), "index": uint}}

and a ``caught_up`` record has one key more, ``"batches": uint``.

``from`` is null for ``taken``; for ``restored`` it names the log and record the snapshot was
taken in: the checkpoint (origin, size, root) under which the ``taken`` record at ``index`` was
proven to the enclave. A continuing run logs ``caught_up`` right after its ``restored`` record:
the enclave was handed the previous log's records from ``index`` to the checkpoint's ``size``
(proven to reach its ``root``), fed the ``batches`` batches among them to the restored strategy
as they were logged, and found its signals equal to the logged ones; ``sha256`` and ``size``
are then those of the strategy's state after them, sealed beside the run like a ``taken`` one.
:func:`decode_snapshot_note` is strict and bounded (through ``zcbench._cbor``), and refuses any
other encoding of the same content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final, Literal

from zcbench import _cbor
from zcbench.errors import DataError
from zcbench.strategy._contract import Strategy, StrategyError

__all__ = [
    "MAX_SNAPSHOT_BYTES",
    "SNAPSHOT_NOTE",
    "SnapshotNote",
    "SnapshotSource",
    "decode_snapshot_note",
    "decode_state",
    "encode_snapshot_note",
    "encode_state",
    "is_snapshot_note",
    "restore_snapshot",
    "take_snapshot",
    "takes_snapshot",
]

SNAPSHOT_NOTE: Final = "zcbench.snapshot/1"
"""The schema (``note``) of a snapshot record's body."""
MAX_SNAPSHOT_BYTES: Final = 1024 * 1024
"""Largest snapshot a strategy may return (1 MiB)."""
_KEYS: Final = frozenset({"note", "action", "seq", "sha256", "size", "from"})
_CAUGHT_UP_KEYS: Final = _KEYS | {"batches"}
_FROM_KEYS: Final = frozenset({"origin", "size", "root", "index"})
_MAX_BODY: Final = 2048
_UINT64: Final = 2**64


def takes_snapshot(strategy: Strategy | type[Strategy]) -> bool:
    """Whether ``strategy`` (an instance or its class) implements the snapshot contract: both
    ``snapshot`` and ``restore`` are callables of its class."""
    cls = strategy if isinstance(strategy, type) else type(strategy)
    return callable(getattr(cls, "snapshot", None)) and callable(getattr(cls, "restore", None))


def take_snapshot(strategy: Strategy, *, seq: int) -> bytes:
    """The strategy's snapshot before batch ``seq``; :class:`StrategyError` if it raises or
    returns anything but at most :data:`MAX_SNAPSHOT_BYTES` bytes."""
    if not takes_snapshot(strategy):
        raise StrategyError(f"strategy {strategy.name!r} keeps no snapshot", seq=seq)
    try:
        state = strategy.snapshot()  # type: ignore[attr-defined]
    except Exception as exc:
        raise StrategyError(
            f"strategy {strategy.name!r} raised {type(exc).__name__} in snapshot before batch "
            f"{seq}", seq=seq) from exc
    if type(state) is not bytes or len(state) > MAX_SNAPSHOT_BYTES:
        raise StrategyError(
            f"strategy {strategy.name!r}: snapshot must return at most {MAX_SNAPSHOT_BYTES} "
            "bytes", seq=seq)
    return state


def restore_snapshot(strategy: Strategy, state: bytes, *, seq: int) -> None:
    """Hand ``state`` to the strategy's ``restore``; :class:`StrategyError` if it raises."""
    if not takes_snapshot(strategy):
        raise StrategyError(f"strategy {strategy.name!r} cannot restore a snapshot", seq=seq)
    try:
        strategy.restore(state)  # type: ignore[attr-defined]
    except Exception as exc:
        raise StrategyError(
            f"strategy {strategy.name!r} raised {type(exc).__name__} restoring its snapshot",
            seq=seq) from exc


def encode_state(value: Any) -> bytes:
    """Plain data as canonical CBOR, for a strategy's ``snapshot``; :class:`DataError` for a
    value that is not plain data (a float, a tuple key, an object)."""
    try:
        data = _cbor.encode_canonical(value)
    except (_cbor.CborError, TypeError, ValueError) as exc:
        raise DataError(f"a strategy state is plain data (int, str, bytes, bool, None, list, "
                        f"map): {exc}") from None
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise DataError(f"a strategy state is at most {MAX_SNAPSHOT_BYTES} bytes")
    return data


def decode_state(data: bytes) -> Any:
    """What :func:`encode_state` encoded; :class:`DataError` for anything else."""
    try:
        return _cbor.decode(data, canonical=True, max_depth=16, max_bytes=MAX_SNAPSHOT_BYTES)
    except _cbor.CborError as exc:
        raise DataError(f"not a strategy state: {exc}") from None


@dataclass(frozen=True, slots=True)
class SnapshotSource:
    """Where a restored snapshot was taken: the ``taken`` record at ``index`` of the log whose
    checkpoint is (``origin``, ``size``, ``root``)."""

    origin: str
    size: int
    root: bytes
    index: int

    def __post_init__(self) -> None:
        if type(self.origin) is not str or not 0 < len(self.origin) <= 256:
            raise DataError("a snapshot's source names a log origin")
        if type(self.root) is not bytes or len(self.root) != 32:
            raise DataError("a snapshot's source root is 32 bytes")
        for name in ("size", "index"):
            if not _uint(getattr(self, name)):
                raise DataError(f"a snapshot's source {name} is an unsigned integer")
        if not self.index < self.size:
            raise DataError("a snapshot's source record lies outside its checkpoint")


@dataclass(frozen=True, slots=True)
class SnapshotNote:
    """A snapshot record's body (see the module docstring); ``batches`` only for
    ``caught_up``."""

    action: Literal["taken", "restored", "caught_up"]
    seq: int
    sha256: bytes
    size: int
    source: SnapshotSource | None = None
    batches: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ("taken", "restored", "caught_up"):
            raise DataError("a snapshot record is taken, restored or caught_up, not "
                            f"{self.action!r}")
        if (self.batches is None) != (self.action != "caught_up") or (
                self.batches is not None and not _uint(self.batches)):
            raise DataError("a caught_up snapshot record, and only one, counts its batches")
        if not _uint(self.seq) or not _uint(self.size) or self.size > MAX_SNAPSHOT_BYTES:
            raise DataError("a snapshot record's seq and size are unsigned, the size bounded")
        if type(self.sha256) is not bytes or len(self.sha256) != 32:
            raise DataError("a snapshot record's sha256 is 32 bytes")
        if (self.source is None) != (self.action == "taken"):
            raise DataError("a restored or caught_up snapshot names its source; a taken one "
                            "does not")

    def matches(self, state: bytes) -> bool:
        """Whether ``state`` is the snapshot this record names (its SHA-256 and size)."""
        return len(state) == self.size and hashlib.sha256(state).digest() == self.sha256


def _uint(value: Any) -> bool:
    return type(value) is int and 0 <= value < _UINT64


def encode_snapshot_note(note: SnapshotNote) -> bytes:
    """The one encoding of a snapshot record's body."""
    source = note.source
    doc: dict[str, Any] = {
        "note": SNAPSHOT_NOTE, "action": note.action, "seq": note.seq, "sha256": note.sha256,
        "size": note.size,
        "from": None if source is None else {"origin": source.origin, "size": source.size,
                                             "root": source.root, "index": source.index},
    }
    if note.batches is not None:
        doc["batches"] = note.batches
    return _cbor.encode_canonical(doc)


def is_snapshot_note(data: bytes) -> bool:
    """Whether a note body names the snapshot schema (it may still fail to decode): the
    enclave logs no such note for the host."""
    return len(data) <= _MAX_BODY and SNAPSHOT_NOTE.encode() in data


def decode_snapshot_note(data: bytes) -> SnapshotNote:
    """The snapshot record in ``data``; :class:`DataError` unless it is exactly the canonical
    encoding of one."""
    if len(data) > _MAX_BODY:
        raise DataError("a snapshot record's body is too large")
    try:
        doc = _cbor.decode(data, canonical=True, max_depth=3, max_bytes=_MAX_BODY)
    except _cbor.CborError as exc:
        raise DataError(f"a snapshot record is not canonical CBOR: {exc}") from None
    if not isinstance(doc, dict) or doc.get("note") != SNAPSHOT_NOTE or set(doc) != (
            _CAUGHT_UP_KEYS if doc.get("action") == "caught_up" else _KEYS):
        raise DataError(f"not a {SNAPSHOT_NOTE} record")
    source = doc["from"]
    if source is not None:
        if not isinstance(source, dict) or set(source) != _FROM_KEYS:
            raise DataError("a snapshot record's from names origin, size, root and index")
        source = SnapshotSource(source["origin"], source["size"], source["root"],
                                source["index"])
    note = SnapshotNote(doc["action"], doc["seq"], doc["sha256"], doc["size"], source,
                        doc.get("batches"))
    if encode_snapshot_note(note) != data:
        raise DataError("a snapshot record is not in its one encoding")
    return note
