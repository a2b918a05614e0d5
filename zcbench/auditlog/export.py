"""Export selected records of a log into one slice file that verifies alone (slice.py).

:func:`export_slice` does not re-verify the whole log (``check_log`` does that): it reads the
newest checkpoint note, the boot record, the stored leaf hashes of the records under that
checkpoint (lengths and checksums, not payloads) and the payloads of the records it needs, builds
the inclusion proofs, and then verifies the slice it built, in memory, exactly as an LP would:
the boot document under the caller's trust, the checkpoint's signature by the attested key, every
proof against the signed root. Only a slice that verifies is written (atomically, fsynced); one
that does not is refused with :class:`~zcbench.auditlog.verdict.LogVerificationError`, and the
log should then be checked with ``zcbench log verify``. A small slice of a large log therefore
costs about as much as verifying the slice, not the log.

Selection is a :class:`~zcbench.auditlog.select.RecordFilter` (an index range, a time range on
the record's event time, else its record time, a kind or a symbol); a symbol selection takes
every IN and OUT record of each batch whose events or signals name it. Only records under the
newest checkpoint can be exported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._frames import SEGMENT_MAGIC, index_frames
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.boot import BootVerifier, nitro_boot_verifier
from zcbench.auditlog.checkpoint import parse_checkpoint_note
from zcbench.auditlog.location import locate_log
from zcbench.auditlog.merkle import MerkleTree, leaf_hash
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.select import RecordFilter, SymbolsOf, strategy_symbols
from zcbench.auditlog.slice import (
    SLICE_FORMAT,
    LogSlice,
    SliceEntry,
    check_slice,
    check_slice_bytes,
    read_slice,
)
from zcbench.auditlog.verdict import Classification, LogReport, LogVerificationError
from zcbench.durable import write_output
from zcbench.errors import UsageError
from zcbench.progress import progress as progress_lines

__all__ = [
    "SLICE_FORMAT",
    "ExportSummary",
    "SymbolsOf",
    "build_slice",
    "check_slice",
    "export_slice",
    "read_slice",
    "strategy_symbols",
]


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_slice` wrote."""

    path: Path
    entries: int
    indices: tuple[int, ...]
    checkpoint_size: int
    origin: str
    report: LogReport | None = None


def _filter(
    index_range: tuple[int, int] | None,
    time_range: tuple[int, int] | None,
    symbol: str | None,
    record_filter: RecordFilter | None,
    symbols_of: SymbolsOf | None,
) -> RecordFilter:
    given = sum(x is not None for x in (index_range, time_range, symbol, record_filter))
    if given != 1:
        raise UsageError("choose exactly one of an index range, a time range or a symbol")
    if record_filter is not None:
        return record_filter
    if time_range is not None:
        return RecordFilter(since_ns=time_range[0], until_ns=time_range[1])
    return RecordFilter(index_range=index_range, symbol=symbol,
                        symbols_of=symbols_of or strategy_symbols)


class _Frames:
    """The log's records under one size, read through the stored leaf hashes."""

    def __init__(self, walk: LogWalk[Record], size: int, show: bool | None) -> None:
        self.walk = walk
        self.size = size
        self.show = show

    def read(self, want: Callable[[int], bool]) -> tuple[list[bytes], dict[int, bytes]]:
        """Every stored leaf hash up to ``size``, and the payloads ``want(index)`` asks for."""
        leaves: list[bytes] = []
        payloads: dict[int, bytes] = {}
        for segment in progress_lines(self.walk.segments, desc="reading log segments",
                                      enabled=self.show):
            base = len(leaves)

            def wanted(n: int, base: int = base) -> bool:
                return want(base + n)

            for _, leaf, payload in index_frames(segment, SEGMENT_MAGIC, wanted):
                if len(leaves) >= self.size:
                    return leaves, payloads
                if payload is not None:
                    payloads[len(leaves)] = payload
                    leaf = leaf_hash(payload)
                leaves.append(leaf)
        return leaves, payloads


def _newest_note(walk: LogWalk[Record]) -> bytes:
    """The last checkpoint note in the file (the writer appends them in order); refused when
    an earlier one is larger, which only a damaged or altered log shows."""
    notes, _, _ = walk.checkpoint_notes()
    sizes: list[tuple[int, bytes]] = []
    for note, _ in notes:
        try:
            sizes.append((parse_checkpoint_note(note).size, note))
        except LogFormatError as exc:
            raise LogVerificationError(_refusal(
                f"a checkpoint note does not parse ({exc}): check the log with "
                "'zcbench log verify'", None)) from exc
    if not sizes or sizes[-1][0] == 0:
        raise UsageError("the log has no signed checkpoint yet: nothing can be proven")
    if max(size for size, _ in sizes) > sizes[-1][0]:
        raise LogVerificationError(_refusal(
            "the checkpoint file's last note is not its largest: check the log with "
            "'zcbench log verify'", None))
    return sizes[-1][1]


def build_slice(
    path: str | Path,
    record_filter: RecordFilter,
    *,
    checkpoint_note: bytes | None = None,
    progress: bool | None = None,
) -> LogSlice:
    """The slice of the records of the log at ``path`` that ``record_filter`` keeps, with
    inclusion proofs against ``checkpoint_note`` (default: the log's newest checkpoint).

    Nothing is verified beyond the root: the stored leaf hashes (and the payloads read, hashed
    again) must hash to the checkpoint's root, else :class:`LogVerificationError`. The boot
    document and the checkpoint's signature are the caller's to verify (:func:`export_slice`
    does, as an LP would; the proof service serves checkpoints it verified already). Records
    past the checkpoint's size are not in the slice.
    """
    return _build(path, record_filter, checkpoint_note, progress)[0]


def _build(path: str | Path, record_filter: RecordFilter, checkpoint_note: bytes | None,
           progress: bool | None) -> tuple[LogSlice, tuple[int, ...]]:
    """:func:`build_slice`, and the indices of the records chosen."""
    where = locate_log(path)
    if where.kind != "log":
        raise UsageError(f"{path} is already a slice; export from the run or log folder")
    walk = LogWalk(where.target, OsFileSystem())
    note = _newest_note(walk) if checkpoint_note is None else checkpoint_note
    try:
        checkpoint = parse_checkpoint_note(note)
    except LogFormatError as exc:
        raise UsageError(f"the checkpoint to prove against does not parse: {exc}") from None
    size = checkpoint.size
    frames = _Frames(walk, size, progress)
    if record_filter.index_range is not None and record_filter.symbol is None:
        # an index range (with a kind or a time, perhaps): only those payloads and the boot's
        start, stop = record_filter.index_range
        leaves, payloads = frames.read(lambda i: i == 0 or start <= i < stop)
    else:
        leaves, payloads = frames.read(lambda i: True)
    if len(leaves) < size:
        raise LogVerificationError(_refusal(
            f"the log holds {len(leaves)} readable records but the checkpoint commits to "
            f"{size}: check it with 'zcbench log verify'", size))
    records: dict[int, Record] = {}
    for index, payload in payloads.items():
        try:
            records[index] = decode_record(payload)
        except LogFormatError as exc:
            raise LogVerificationError(_refusal(
                f"record {index} is not a record ({exc}): check the log with "
                "'zcbench log verify'", index)) from exc
    chosen = [i for i in sorted(records) if i > 0 and record_filter.matches(records[i])]
    if record_filter.symbol is not None:
        seqs = {records[i].seq for i in chosen if records[i].seq is not None}
        chosen = [i for i in sorted(records)
                  if records[i].kind in ("in", "out") and records[i].seq in seqs]
    if 0 not in payloads:
        raise LogVerificationError(_refusal("the log has no boot record", 0))
    tree = MerkleTree(leaves)
    if size and tree.root() != checkpoint.root:
        raise LogVerificationError(_refusal(
            f"the log's records do not hash to the root of its checkpoint of size {size}: "
            "check it with 'zcbench log verify'", None, classification="rewritten"))
    sliced = LogSlice(
        boot=SliceEntry(payloads[0], tuple(tree.inclusion_proof(0))),
        checkpoint=note,
        entries=tuple(SliceEntry(payloads[i], tuple(tree.inclusion_proof(i))) for i in chosen),
        selection=record_filter.describe(),
    )
    return sliced, tuple(chosen)


def export_slice(
    path: str | Path,
    out: str | Path,
    *,
    index_range: tuple[int, int] | None = None,
    time_range: tuple[int, int] | None = None,
    symbol: str | None = None,
    record_filter: RecordFilter | None = None,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    symbols_of: SymbolsOf | None = None,
    progress: bool | None = None,
) -> ExportSummary:
    """Write the selected records of the log at ``path`` with proofs to ``out``.

    Exactly one selector: ``index_range`` [start, stop), ``time_range`` [t0, t1) in ns,
    ``symbol``, or a ``record_filter``. The slice (:func:`build_slice`) is verified before it
    is written (raises :class:`LogVerificationError` when it does not verify).
    """
    chosen_filter = _filter(index_range, time_range, symbol, record_filter, symbols_of)
    sliced, chosen = _build(path, chosen_filter, None, progress)
    data = sliced.to_bytes()
    report = check_slice_bytes(data, str(out), trust=trust,
                               boot_verifier=boot_verifier or nitro_boot_verifier())
    if not report.verified:
        raise LogVerificationError(_refusal(
            f"the slice built from this log does not verify ({report.classification}: "
            f"{report.message}); nothing was written. Check the log with 'zcbench log verify'",
            report.first_bad_index, base=report))
    _write_durably(Path(out), data)
    checkpoint = parse_checkpoint_note(sliced.checkpoint)
    return ExportSummary(Path(out), len(chosen), chosen, checkpoint.size,
                         checkpoint.origin, report)


def _refusal(message: str, index: int | None, base: LogReport | None = None, *,
             classification: Classification = "corrupt") -> LogReport:
    if base is not None:
        return dataclasses.replace(base, message=message)
    return LogReport(verified=False, classification=classification, entries=0, records=0,
                     checkpoints=0, first_bad_index=index, message=message)


def _write_durably(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` atomically (:func:`zcbench.durable.write_output`: straight
    into ``out`` when it is a device or a pipe, which cannot be replaced)."""
    write_output(out, data)
