"""Export a slice of a verified log into one file that verifies alone, and verify such a file.

A slice is deterministic CBOR::

    {"format": "zcbench.log-slice/1",
     "boot":       {"record": <record 0 bytes>, "proof": [hash, ...]},
     "checkpoint": <signed checkpoint note bytes>,
     "entries":    [{"record": <record bytes>, "proof": [hash, ...]}, ...],   ascending index
     "selection":  <text saying how the slice was chosen, informational only>}

Every proof is an RFC 9162 inclusion proof against the checkpoint's size and root (taken
together from the one signed checkpoint, never from anywhere else). Verifying a slice: the boot
document verifies (trust as the caller says), giving the log key and origin; the checkpoint is
signed by that key; the boot record and every entry are included under its root.

Selection is by index range, by time range (on the record's event time, else its record time)
or by symbol (every IN and OUT record of each batch whose events or signals name it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cbor2

from zcbench import _cbor
from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.checkpoint import Checkpoint, parse_checkpoint_note, verify_checkpoint
from zcbench.auditlog.merkle import HASH_SIZE, MerkleTree, leaf_hash, verify_inclusion
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.verify import (
    BootVerifier,
    LogReport,
    LogVerificationError,
    check_log,
    nitro_boot_verifier,
    resolve_log_path,
)
from zcbench.errors import DataError, UsageError, VerificationError, ZcbenchError

__all__ = [
    "SLICE_FORMAT",
    "ExportSummary",
    "SymbolsOf",
    "check_slice",
    "export_slice",
    "read_slice",
    "strategy_symbols",
]

SLICE_FORMAT: Final = "zcbench.log-slice/1"
_MAX_SLICE_BYTES: Final = 2 * 1024 * 1024 * 1024

SymbolsOf = Callable[[Record], "set[str]"]
"""Which symbols a record mentions (used by ``symbol=`` selection)."""


def strategy_symbols(record: Record) -> set[str]:
    """Symbols of an IN batch's events or an OUT record's signals, via ``zcbench.strategy``."""
    from zcbench.strategy import decode_batch, decode_signals

    if record.kind == "in":
        return set(decode_batch(record.body).events.get_column("symbol").unique().to_list())
    if record.kind == "out":
        return {signal.symbol for signal in decode_signals(record.body)}
    return set()


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_slice` wrote."""

    path: Path
    entries: int
    indices: tuple[int, ...]
    checkpoint_size: int
    origin: str


@dataclass(frozen=True, slots=True)
class _Slice:
    boot: bytes
    boot_proof: list[bytes]
    checkpoint: bytes
    entries: list[tuple[bytes, list[bytes]]]
    selection: str


def export_slice(
    path: Path,
    out: Path,
    *,
    index_range: tuple[int, int] | None = None,
    time_range: tuple[int, int] | None = None,
    symbol: str | None = None,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    symbols_of: SymbolsOf | None = None,
    progress: bool | None = None,
) -> ExportSummary:
    """Write the selected records of the log at ``path`` with proofs to ``out``.

    Exactly one selector: ``index_range`` [start, stop), ``time_range`` [t0, t1) in ns, or
    ``symbol``. The log must verify first (raises :class:`LogVerificationError`); only records
    under its newest signed checkpoint can be exported.
    """
    if sum(x is not None for x in (index_range, time_range, symbol)) != 1:
        raise UsageError("choose exactly one of an index range, a time range or a symbol")
    kind, folder, _ = resolve_log_path(path)
    if kind != "log":
        raise UsageError(f"{path} is already a slice; export from the run or log folder")
    report = check_log(path, trust=trust, boot_verifier=boot_verifier, progress=progress)
    if not report.verified:
        raise LogVerificationError(report)
    if report.latest_checkpoint is None:
        raise UsageError("the log has no signed checkpoint yet: nothing can be proven")
    checkpoint = parse_checkpoint_note(report.latest_checkpoint)
    select, selection = _selector(index_range, time_range, symbol, symbols_of)
    leaves: list[bytes] = []
    chosen: list[tuple[int, bytes, Record]] = []
    boot = b""
    for item in LogWalk(folder, OsFileSystem()).records():
        if item.index >= checkpoint.size:
            break
        leaves.append(item.leaf_hash)
        if item.index == 0:
            boot = item.data
        if select(item.record):
            chosen.append((item.index, item.data, item.record))
    if symbol is not None:
        seqs = {r.seq for _, _, r in chosen if r.seq is not None}
        chosen = []
        for item in LogWalk(folder, OsFileSystem()).records():
            if item.index >= checkpoint.size:
                break
            if item.record.seq in seqs and item.record.kind in ("in", "out"):
                chosen.append((item.index, item.data, item.record))
    tree = MerkleTree(leaves)
    sliced = _Slice(
        boot=boot,
        boot_proof=tree.inclusion_proof(0),
        checkpoint=report.latest_checkpoint,
        entries=[(data, tree.inclusion_proof(index)) for index, data, _ in chosen],
        selection=selection,
    )
    out.write_bytes(_encode(sliced))
    return ExportSummary(out, len(chosen), tuple(i for i, _, _ in chosen), checkpoint.size,
                         checkpoint.origin)


def _selector(
    index_range: tuple[int, int] | None,
    time_range: tuple[int, int] | None,
    symbol: str | None,
    symbols_of: SymbolsOf | None,
) -> tuple[Callable[[Record], bool], str]:
    if index_range is not None:
        start, stop = index_range
        if not 0 <= start < stop:
            raise UsageError(f"index range [{start}, {stop}) is empty or negative")
        return (lambda r: start <= r.index < stop), f"index [{start}, {stop})"
    if time_range is not None:
        t0, t1 = time_range
        if not t0 < t1:
            raise UsageError(f"time range [{t0}, {t1}) is empty")

        def in_time(r: Record) -> bool:
            t = r.event_time_ns if r.event_time_ns is not None else r.time_ns
            return r.kind != "boot" and t0 <= t < t1

        return in_time, f"time_ns [{t0}, {t1})"
    if symbol is None:
        raise UsageError("choose an index range, a time range or a symbol")
    symbols = symbols_of or strategy_symbols
    return (lambda r: symbol in symbols(r)), f"symbol {symbol}"


def _encode(sliced: _Slice) -> bytes:
    doc = {
        "format": SLICE_FORMAT,
        "boot": {"record": sliced.boot, "proof": sliced.boot_proof},
        "checkpoint": sliced.checkpoint,
        "entries": [{"record": r, "proof": p} for r, p in sliced.entries],
        "selection": sliced.selection,
    }
    data: bytes = cbor2.dumps(doc, canonical=True)
    return data


def _proof(value: Any, where: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 64 or not all(
        type(h) is bytes and len(h) == HASH_SIZE for h in value
    ):
        raise LogFormatError(f"{where}: proof must be a list of at most 64 32-byte hashes")
    return list(value)


def _entry(value: Any, where: str) -> tuple[bytes, list[bytes]]:
    if not isinstance(value, dict) or set(value) != {"record", "proof"}:
        raise LogFormatError(f"{where}: expected a map with record and proof")
    if type(value["record"]) is not bytes:
        raise LogFormatError(f"{where}: record must be bytes")
    return value["record"], _proof(value["proof"], where)


def read_slice(data: bytes) -> tuple[bytes, list[bytes], bytes, list[tuple[bytes, list[bytes]]],
                                      str]:
    """Parse a slice file strictly: (boot record, its proof, checkpoint note, entries, selection).

    Nothing is verified here; raises :class:`LogFormatError` when malformed.
    """
    try:  # canonical, as _encode writes it: map > entries > entry > proof > hash
        doc = _cbor.decode(data, canonical=True, max_depth=4, max_bytes=_MAX_SLICE_BYTES)
    except _cbor.CborError as exc:
        raise LogFormatError(f"slice is not canonical CBOR: {exc}") from None
    keys = {"format", "boot", "checkpoint", "entries", "selection"}
    if not isinstance(doc, dict) or set(doc) != keys or doc["format"] != SLICE_FORMAT:
        raise LogFormatError(f"not a {SLICE_FORMAT} file")
    if type(doc["checkpoint"]) is not bytes or type(doc["selection"]) is not str:
        raise LogFormatError("slice checkpoint must be bytes and selection text")
    if not isinstance(doc["entries"], list):
        raise LogFormatError("slice entries must be a list")
    boot, boot_proof = _entry(doc["boot"], "boot")
    entries = [_entry(e, f"entry {i}") for i, e in enumerate(doc["entries"])]
    return boot, boot_proof, doc["checkpoint"], entries, doc["selection"]


def check_slice(
    path: Path,
    *,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    known_checkpoint: bytes | None = None,
) -> LogReport:
    """Verify an exported slice alone; a frozen report, never raising for bad data."""
    verifier = boot_verifier or nitro_boot_verifier()
    origin: str | None = None
    checkpoint: Checkpoint | None = None
    note: bytes | None = None
    simulated = False
    public_key: bytes | None = None
    warnings: list[str] = []
    count = 0

    def report(classification: Any, message: str, index: int | None = None) -> LogReport:
        return LogReport(
            verified=classification == "intact",
            classification=classification,
            entries=count,
            records=count,
            checkpoints=1 if checkpoint else 0,
            first_bad_index=index,
            message=message,
            bad_path=str(path) if classification != "intact" else None,
            origin=origin,
            root=checkpoint.root.hex() if checkpoint else None,
            latest_checkpoint=note,
            public_key=public_key,
            simulated=simulated,
            warnings=tuple(warnings),
            kind="slice",
        )

    try:
        boot_bytes, boot_proof, note, entries, selection = read_slice(path.read_bytes())
        boot_record = decode_record(boot_bytes)
    except (LogFormatError, OSError) as exc:
        return report("corrupt", f"{path} is not a readable slice: {exc}")
    if boot_record.index != 0 or boot_record.kind != "boot":
        return report("untrusted_boot", "the slice's boot record is not record 0 of kind boot", 0)
    try:
        identity = verifier(boot_record.body, trust)
    except ZcbenchError as exc:
        return report("untrusted_boot", f"the boot document does not verify: {exc}", 0)
    origin, simulated, public_key = identity.origin, identity.simulated, identity.public_key
    warnings.extend(identity.warnings)
    try:
        checkpoint = verify_checkpoint(note, identity.public_key, identity.origin)
    except (VerificationError, LogFormatError) as exc:
        return report("bad_signature", f"the slice's checkpoint is not signed by the attested "
                                       f"log key for {origin}: {exc}")
    size, root = checkpoint.size, checkpoint.root
    try:
        verify_inclusion(leaf_hash(boot_bytes), 0, size, boot_proof, root)
    except VerificationError as exc:
        return report("rewritten", f"the boot record is not under the checkpoint: {exc}", 0)
    last = -1
    for data, proof in entries:
        try:
            record = decode_record(data)
        except DataError as exc:
            return report("corrupt", f"entry after index {last} is not a record: {exc}", last + 1)
        if record.index <= last:
            return report("reordered", f"entry {record.index} follows {last}: entries must "
                                       "ascend without repeats", record.index)
        try:
            verify_inclusion(leaf_hash(data), record.index, size, proof, root)
        except VerificationError as exc:
            return report("rewritten", f"record {record.index} is not under the signed root: "
                                       f"{exc}", record.index)
        last = record.index
        count += 1
    if known_checkpoint is not None:
        try:
            known = verify_checkpoint(known_checkpoint, identity.public_key, identity.origin)
        except (VerificationError, LogFormatError) as exc:
            return report("bad_signature", f"the known checkpoint is not this log's: {exc}")
        if known.size == size and known.root != root:
            return report("forked", f"the known checkpoint of size {size} has another root", size)
        if known.size > size:
            warnings.append(f"a newer checkpoint of size {known.size} is known; this slice "
                            f"proves against size {size}")
        elif known.size != size:
            warnings.append("the known checkpoint is older; consistency is not proven by a slice")
    b64 = base64.b64encode(root).decode()
    return report("intact", f"intact: {count} records ({selection}) included under the signed "
                            f"checkpoint {origin} size {size} root {b64}")
