"""Replay: run a log's IN batches through the bundle again and compare the OUT bodies.

:func:`check_replay` reads the IN and OUT records of a run folder, a log folder or an exported
slice, hands every logged batch ``(seq, IN body)`` to a :class:`ReplayRunner` and compares each
body it returns with the logged OUT body, byte for byte. Record times are never compared: a
replay happens later, so only the signals can match. It returns a frozen :class:`ReplayReport`
listing every mismatch (seq, log index of the OUT record, both bodies' SHA-256, size and signal
count), every batch the runner did not answer (``missing``) and every answer nobody asked for
(``extra``). :func:`verify_replay` raises :class:`ReplayMismatchError` (``check="replay"``)
unless every batch matched.

The runner is where the bundle runs; in practice ``zcbench.host.replay.EnclaveReplayRunner``,
a fresh enclave that unseals like a live one. This module imports nothing from ``zcbench.host``
or ``zcbench.enclave``: a runner is passed in, so tests can use an in-memory fake.

The log is verified first (:func:`~zcbench.auditlog.verify.check_log`, trust as the caller says)
and a log that does not verify is refused, nothing replayed: a match against records that are
not the enclave's own proves nothing. Only the records the newest signed checkpoint covers are
replayed (an uncommitted tail is left out and said so). ``unsafe_skip_log_check=True`` replays
whatever whole records are there, for a damaged log or a deliberately altered copy; the report
then says that the log was not checked.

A strategy may keep state, so its signals for a batch depend on every batch before. An
``index_range`` of a log therefore replays from the run's first batch up to the range's end and
compares only the batches whose IN and OUT records both lie in the range: an honest log never
differs. A strategy that keeps snapshots (``zcbench.strategy._snapshot``) has them logged, and
with ``from_snapshot`` (the default) a range is replayed from the newest snapshot record before
it instead (:func:`zcbench.auditlog.snapshots.find_snapshot`: the record, its inclusion proof
under the log's newest checkpoint and the sealed file beside the run): the runner hands the
replay enclave the snapshot first, which opens it only under the build's key and only when it
hashes to the record, and then the batches from the snapshot's seq on. A log whose strategy
started from a restored snapshot (a continuing run) is replayed from the state its first batch
started from, its ``caught_up`` record's (the restored snapshot and the previous run's batches
after it), since that is where its state came from.

A slice holds only its own records; it is replayed as it is, and when it does not hold every
batch from the run's first (``contiguous`` false) a mismatch is *inconclusive*, never a verdict
that the log differs: replay the run's log with a range to decide. The report's
:attr:`ReplayReport.verdict` is one of ``match``, ``differs``, ``inconclusive`` or ``refused``,
and its ``headline`` and ``warnings`` are what every surface shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.boot import BootVerifier
from zcbench.auditlog.location import resolve_log_path
from zcbench.auditlog.records import Record, decode_record
from zcbench.auditlog.slice import LogSlice
from zcbench.auditlog.verdict import LogReport
from zcbench.auditlog.verify import check_log
from zcbench.errors import EnvError, UsageError, VerificationError, ZcbenchError
from zcbench.progress import progress as progress_bar

__all__ = [
    "BodySummary",
    "ReplayMismatch",
    "ReplayMismatchError",
    "ReplayReport",
    "ReplayRunner",
    "check_replay",
    "summarize_body",
    "verify_replay",
]


class ReplayRunner(Protocol):
    """Runs logged batches through the bundle: ``(seq, IN body)`` in, ``(seq, OUT body)`` out.

    ``batches`` may carry a ``snapshot`` (:class:`~zcbench.auditlog.snapshots.LoggedSnapshot`,
    set before the replay starts): the runner restores it (after the venue's state at start,
    when one is fed) and sends the batches with their logged seqs, which start at its seq.

    ``replay`` is called once per replay; it consumes ``batches`` lazily, in log order, and
    yields one OUT body per batch with the seq it was given. It raises
    :class:`~zcbench.errors.EnvError` when it cannot run at all (no enclave, no key); any other
    :class:`~zcbench.errors.ZcbenchError` mid-way ends the replay, and the batches not yet
    answered are reported missing. ``pcr0`` is the measurement the runner's enclave will attest
    to, when known beforehand (compared with the log's origin), else None. ``batches`` may have
    a ``feedback`` mapping (seq: body), filled before each batch is handed over: the feedback IN
    record logged just before that batch, which the runner feeds first.
    """

    @property
    def pcr0(self) -> bytes | None: ...

    def replay(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]: ...


@dataclass(frozen=True)
class BodySummary:
    """What identifies an OUT body in a report: SHA-256 (hex), size, and the signal count when
    it decodes as signals (else None)."""

    sha256: str
    size: int
    signals: int | None

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "signals": self.signals}

    def __str__(self) -> str:
        count = "undecodable" if self.signals is None else f"{self.signals} signals"
        return f"sha256 {self.sha256[:16]}.. {self.size} bytes, {count}"


def summarize_body(body: bytes) -> BodySummary:
    """The :class:`BodySummary` of one OUT body."""
    from zcbench.strategy import decode_signals  # the body codec, lazily (DESIGN.md)

    try:
        count: int | None = len(decode_signals(body))
    except ZcbenchError:
        count = None
    return BodySummary(hashlib.sha256(body).hexdigest(), len(body), count)


@dataclass(frozen=True)
class ReplayMismatch:
    """One batch whose replayed OUT body differs from the logged one."""

    seq: int
    index: int
    """Log index of the logged OUT record."""
    expected: BodySummary
    actual: BodySummary

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "index": self.index, "expected": self.expected.to_json(),
                "actual": self.actual.to_json()}


@dataclass(frozen=True)
class ReplayReport:
    """The outcome of :func:`check_replay`.

    ``batches``: logged batches handed to the runner; ``matched``: replies byte-identical to the
    logged OUT body; ``mismatches``, ``missing`` (seqs never answered) and ``extra`` (seqs
    answered twice or never asked) are the failures. ``skipped``: IN or OUT records left out
    because their partner is not in the selection. ``scope`` is ``log``, ``slice`` or ``range``;
    ``log_checked`` says whether the log was verified first, ``log_classification`` how it came
    out. ``verified`` is True only when the log was accepted, at least one batch was replayed
    and every batch matched.
    """

    verified: bool
    batches: int
    matched: int
    mismatches: tuple[ReplayMismatch, ...]
    missing: tuple[int, ...]
    extra: tuple[int, ...]
    skipped: int
    scope: Literal["log", "slice", "range"]
    log_checked: bool
    log_classification: str | None
    message: str
    first_seq: int | None = None
    last_seq: int | None = None
    warnings: tuple[str, ...] = ()
    log_report: LogReport | None = field(default=None, compare=False)
    contiguous: bool = True
    """Whether every batch from the run's first up to the last compared one was replayed (in
    order), so that a stateful strategy's state was rebuilt; a mismatch is conclusive only
    then."""
    stopped: bool = False
    """The replay ended early (the runner failed mid-way)."""
    warmup: int = 0
    """Batches replayed before the selection to rebuild the strategy's state, not compared."""
    snapshot: int | None = None
    """The log index of the snapshot record the replay started from (None: the run's
    start)."""

    @property
    def verdict(self) -> Literal["match", "differs", "inconclusive", "refused"]:
        """``match``, ``differs`` (a conclusive mismatch), ``inconclusive`` (a mismatch after
        batches the replay could not see) or ``refused`` (the log did not verify, nothing to
        replay, or the replay stopped)."""
        if self.verified:
            return "match"
        if self.batches == 0 or self.stopped:
            return "refused"
        if not self.contiguous:
            return "inconclusive"
        return "differs"

    @property
    def headline(self) -> str:
        """The verdict in the words every surface uses."""
        return {"match": "REPLAY MATCHES", "differs": "REPLAY DIFFERS",
                "inconclusive": "REPLAY INCONCLUSIVE", "refused": "REPLAY REFUSED"}[self.verdict]

    @property
    def first_mismatch_index(self) -> int | None:
        """Log index of the first mismatched OUT record, if any."""
        return self.mismatches[0].index if self.mismatches else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        return {
            "verified": self.verified,
            "batches": self.batches,
            "matched": self.matched,
            "mismatches": [m.to_json() for m in self.mismatches],
            "missing": list(self.missing),
            "extra": list(self.extra),
            "skipped": self.skipped,
            "scope": self.scope,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "log_checked": self.log_checked,
            "log_classification": self.log_classification,
            "first_mismatch_index": self.first_mismatch_index,
            "verdict": self.verdict,
            "contiguous": self.contiguous,
            "warmup": self.warmup,
            "from_snapshot": self.snapshot,
            "warnings": list(self.warnings),
            "message": self.message,
        }


class ReplayMismatchError(VerificationError):
    """A replay did not reproduce the log; ``report`` holds every mismatch."""

    def __init__(self, report: ReplayReport) -> None:
        first = report.mismatches[0] if report.mismatches else None
        super().__init__(
            report.message,
            check="replay",
            expected=str(first.expected) if first else f"{report.batches} matching batches",
            actual=str(first.actual) if first else f"{report.matched} matched",
        )
        self.report = report


@dataclass
class _Pairs:
    """Streams the logged (seq, IN body) pairs and remembers what each OUT body should be.

    Pairs before ``start`` (by IN record index) are replayed to rebuild the strategy's state
    but not compared (``warmup_seqs``); ``contiguous`` turns false when the batches handed over
    do not run 0, 1, 2, ... from the run's first.
    """

    records: Iterator[Record]
    start: int = 0
    expected: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    warmup_seqs: set[int] = field(default_factory=set)
    contiguous: bool = True
    _next_seq: int = 0
    seen: set[int] = field(default_factory=set)
    skipped: int = 0
    duplicates: list[int] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    count: int = 0
    feedback: dict[int, bytes] = field(default_factory=dict)
    """The feedback IN body logged right before a batch's IN record, by seq (set before the
    batch is yielded; the runner takes it)."""
    venue_start: bytes | None = None
    """A continuing run's venue state at start (its first IN record, before batch 0), set
    before the first batch is yielded; the runner feeds it first."""
    snapshot: Any = None
    """The snapshot the replay starts from (a LoggedSnapshot): records before it are left out
    (but the venue's state at start, for a snapshot of seq 0), and batches start at its seq."""

    def __post_init__(self) -> None:
        if self.snapshot is not None:
            self._next_seq = self.snapshot.seq

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        # The enclave writes a batch's IN and OUT records next to each other (index i, i + 1),
        # so a pair is an IN record directly followed by the OUT record of the same seq.
        from zcbench.strategy import is_context, is_start

        pending: Record | None = None
        before: Record | None = None  # a feedback IN record directly before ``pending``
        for record in self.records:
            if record.kind == "in" and record.index == 1 and record.seq == 0 and is_start(
                record.body
            ):
                if self.snapshot is None or self.snapshot.seq == 0:
                    self.venue_start = record.body
                continue
            if self.snapshot is not None and record.index <= self.snapshot.index:
                continue  # the snapshot holds the strategy's state up to here
            if record.kind == "in":
                if (
                    pending is not None
                    and pending.seq == record.seq
                    and pending.index + 1 == record.index
                    and is_context(pending.body)
                ):
                    before = pending
                elif pending is not None:
                    self.skipped += 1
                    before = None
                pending = record
                continue
            if record.kind != "out":
                continue
            if pending is None or pending.seq != record.seq or pending.index + 1 != record.index:
                self.skipped += 1 + (pending is not None)
                pending = None
                continue
            seq, body, in_index = record.seq, pending.body, pending.index
            fed, pending, before = before, None, None
            assert seq is not None  # in/out records always carry one (records.py)
            if fed is not None:
                self.feedback[seq] = fed.body
            if seq in self.seen:
                self.duplicates.append(seq)
                continue
            self.seen.add(seq)
            if seq != self._next_seq:
                self.contiguous = False
            self._next_seq = seq + 1
            if in_index < self.start:
                self.warmup_seqs.add(seq)
                yield seq, body
                continue
            self.expected[seq] = (record.index, record.body)
            self.first_seq = seq if self.first_seq is None else self.first_seq
            self.last_seq = seq
            self.count += 1
            yield seq, body
        if pending is not None and not is_context(pending.body):  # a run's last feedback
            self.skipped += 1


def _records(path: Path, limit: int | None) -> tuple[Literal["log", "slice"], Iterator[Record]]:
    kind, target, _ = resolve_log_path(path)
    if kind == "slice":
        entries = LogSlice.read(target).entries
        return kind, (decode_record(entry.record) for entry in entries)

    def walk() -> Iterator[Record]:
        for item in LogWalk(target, OsFileSystem()).records():
            if limit is not None and item.index >= limit:
                return
            yield item.record

    return kind, walk()


def check_replay(
    path: Path,
    runner: ReplayRunner,
    *,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    known_checkpoint: bytes | None = None,
    index_range: tuple[int, int] | None = None,
    unsafe_skip_log_check: bool = False,
    progress: bool | None = None,
    from_snapshot: bool = True,
) -> ReplayReport:
    """Verify the log at ``path``, replay its batches through ``runner``, compare OUT bodies.

    ``trust``, ``boot_verifier`` and ``known_checkpoint`` go to ``check_log``. ``index_range``
    ``(start, stop)`` keeps the batches whose IN and OUT records both lie in ``[start, stop)``.
    Never raises for bad data or a mismatch (see :func:`verify_replay`); raises
    :class:`~zcbench.errors.UsageError` for a path that is no log and lets the runner's
    :class:`~zcbench.errors.EnvError` through.
    """
    if index_range is not None and not 0 <= index_range[0] < index_range[1]:
        raise UsageError(f"index range {index_range} is not [start, stop) with 0 <= start < stop")
    warnings: list[str] = []
    log_report: LogReport | None = None
    limit: int | None = None
    if unsafe_skip_log_check:
        warnings.append("UNSAFE: the log was not verified before replay (unsafe_skip_log_check)")
    else:
        log_report = check_log(path, trust=trust, boot_verifier=boot_verifier,
                               known_checkpoint=known_checkpoint, progress=progress)
        warnings.extend(log_report.warnings)
        if not log_report.verified:
            return _refused(log_report, warnings)
        if log_report.kind == "log":
            limit = log_report.entries
            if log_report.records > log_report.entries:
                warnings.append(
                    f"{log_report.records - log_report.entries} records past the newest signed "
                    "checkpoint were not replayed"
                )
        pcr0 = runner.pcr0
        if pcr0 is not None and log_report.origin is not None:
            committed = log_report.origin.split("/")[1]
            if committed != pcr0.hex()[: len(committed)]:
                return _refused(log_report, warnings, message=(
                    f"the replay enclave's PCR0 {pcr0.hex()[:16]}.. is not the PCR0 the log was "
                    f"written under ({committed}..): replay with the build that made this run"))
    try:
        kind, records = _records(path, limit)
    except LogFormatError as exc:
        return _refused(log_report, warnings, message=f"cannot read the log: {exc}")
    start = 0
    if index_range is not None:
        start, stop = index_range
        if kind == "slice":
            records = (r for r in records if start <= r.index < stop)
            start = 0
        else:
            # From the run's first batch: the batches before the range rebuild the state.
            records = (r for r in records if r.index < stop)
    scope: Literal["log", "slice", "range"] = "range" if index_range is not None else kind
    snapshot = None
    if kind == "log" and log_report is not None and log_report.latest_checkpoint is not None:
        before = start if from_snapshot and index_range is not None else None
        try:
            try:
                snapshot = _snapshot_to_start_from(path, log_report.latest_checkpoint, before)
            except EnvError as exc:
                if before is None:
                    raise
                warnings.append(f"replayed from the run's start: {exc}")
                snapshot = _snapshot_to_start_from(path, log_report.latest_checkpoint, None)
        except (EnvError, VerificationError) as exc:
            return _refused(log_report, warnings, message=f"cannot replay from the strategy's "
                            f"snapshot: {exc}")
    pairs = _Pairs(records, start=start, snapshot=snapshot)
    matched = 0
    mismatches: list[ReplayMismatch] = []
    extra: list[int] = []
    stopped: str | None = None
    total = (limit - 1) // 2 if limit is not None and index_range is None else None
    replies = runner.replay(pairs)
    try:
        for seq, body in progress_bar(replies, total=total, desc="replaying", enabled=progress):
            want = pairs.expected.pop(seq, None)
            if want is None:
                if seq in pairs.warmup_seqs:
                    pairs.warmup_seqs.discard(seq)
                    continue
                extra.append(seq)
                continue
            index, logged = want
            if body == logged:
                matched += 1
            else:
                mismatches.append(
                    ReplayMismatch(seq, index, summarize_body(logged), summarize_body(body))
                )
    except (EnvError, UsageError):
        raise
    except ZcbenchError as exc:
        stopped = f"the replay stopped: {exc}"
    finally:
        close = getattr(replies, "close", None)
        if close is not None:
            close()
    missing = tuple(sorted(pairs.expected))
    if pairs.skipped:
        warnings.append(
            f"{pairs.skipped} IN/OUT records without their partner in the selection were left out"
        )
    if pairs.duplicates:
        warnings.append(f"batches logged twice were replayed once: seqs {pairs.duplicates[:10]}")
    warmup = len(pairs.seen) - pairs.count - len(pairs.duplicates)
    if snapshot is not None:
        warnings.append(
            f"replayed from the strategy's snapshot at log index {snapshot.index} (its state "
            f"before batch {snapshot.seq}, opened and checked against that record by the "
            "replay enclave)" + (": the batches before it were not replayed"
                                 if snapshot.seq else ""))
    if scope != "log":
        warnings.append(
            f"{scope}: only the {pairs.count} batches whose IN and OUT records are both in it "
            "were compared"
            + (f"; the {warmup} batches before it were replayed first to rebuild the "
               "strategy's state" if warmup else "")
        )
    if not pairs.contiguous:
        start_note = (f"it starts at batch {pairs.first_seq}, not the run's first: "
                      if pairs.first_seq not in (None, 0) else "")
        warnings.append(
            f"{start_note}this slice does not hold every batch from the run's first, so a "
            "strategy that "
            "keeps state cannot be rebuilt: a mismatch here is inconclusive, not a fault; "
            "replay the run's log with --range to decide"
        )
    ok = (pairs.count > 0 and matched == pairs.count and not mismatches and not missing
          and not extra and stopped is None)
    if stopped is not None:
        message = f"{stopped}; {matched} of {pairs.count} batches matched before it"
    elif not ok and pairs.count and not pairs.contiguous:
        message = (f"replay inconclusive: {matched} of {pairs.count} batches match; the "
                   "others may depend on batches this slice does not hold")
    elif pairs.count == 0:
        message = "no batch to replay: the selection holds no IN record with its OUT record"
    elif ok:
        message = f"all {matched} replayed batches match the log byte for byte"
    else:
        parts = [f"{len(mismatches)} mismatched"] if mismatches else []
        parts += [f"{len(missing)} not answered"] if missing else []
        parts += [f"{len(extra)} unexpected answers"] if extra else []
        first = (f"; first mismatch: batch {mismatches[0].seq}, OUT record {mismatches[0].index}"
                 if mismatches else "")
        message = (f"replay differs from the log: {matched} of {pairs.count} batches match, "
                   + ", ".join(parts) + first)
    return ReplayReport(
        verified=ok,
        batches=pairs.count,
        matched=matched,
        mismatches=tuple(mismatches),
        missing=missing,
        extra=tuple(extra),
        skipped=pairs.skipped,
        scope=scope,
        log_checked=log_report is not None,
        log_classification=log_report.classification if log_report else None,
        message=message,
        first_seq=pairs.first_seq,
        last_seq=pairs.last_seq,
        warnings=tuple(warnings),
        log_report=log_report,
        contiguous=pairs.contiguous,
        stopped=stopped is not None,
        warmup=warmup,
        snapshot=None if snapshot is None else snapshot.index,
    )


def _snapshot_to_start_from(path: Path, checkpoint: bytes, before: int | None) -> Any:
    """The snapshot a replay starts from: the newest one logged before index ``before``, or
    (``before`` None, or none there) the one a continuing run's first batch started from
    (its ``caught_up`` record, or for a run before catch-ups its ``restored`` one: its state
    came from there); None for a run from nothing. Read under ``checkpoint``."""
    from zcbench.auditlog.checkpoint import parse_checkpoint_note
    from zcbench.auditlog.snapshots import find_snapshot

    final = parse_checkpoint_note(checkpoint)
    if before is not None:
        found = find_snapshot(path, origin=final.origin, size=final.size, root=final.root,
                              before=before)
        if found is not None:
            return found
    last = _restored_at_start(path)
    if last is None:
        return None  # the common case: no second walk of the log
    return find_snapshot(path, origin=final.origin, size=final.size, root=final.root,
                         before=last + 1)


_RESTORED_INDEX = 2
"""Where a continuing run's restored snapshot record lies: right after its start state; its
``caught_up`` record follows it."""


def _restored_at_start(path: Path) -> int | None:
    """The index of the last of a continuing run's snapshot records before its first batch:
    its ``caught_up`` record (3) or, without one, its ``restored`` record (2); None when record
    2 is no restored snapshot record (no continuing run's)."""
    from zcbench.auditlog.frame import iter_records
    from zcbench.auditlog.select import RecordFilter
    from zcbench.strategy import decode_snapshot_note, is_snapshot_note

    actions: list[str] = []
    span = RecordFilter(index_range=(_RESTORED_INDEX, _RESTORED_INDEX + 2))
    for record, _ in iter_records(path, span):
        if record.kind != "note" or not is_snapshot_note(record.body):
            break
        try:
            actions.append(decode_snapshot_note(record.body).action)
        except ZcbenchError:
            break
    if actions[:1] != ["restored"]:
        return None
    return _RESTORED_INDEX + 1 if actions[1:2] == ["caught_up"] else _RESTORED_INDEX


def _refused(log_report: LogReport | None, warnings: list[str], *,
             message: str | None = None) -> ReplayReport:
    if message is None:
        assert log_report is not None
        message = (
            f"the log does not verify ({log_report.classification}: {log_report.message}); "
            "nothing was replayed. Replaying records that are not the enclave's own proves "
            "nothing; to compare anyway, pass unsafe_skip_log_check (--unsafe-skip-log-check)"
        )
    return ReplayReport(
        verified=False, batches=0, matched=0, mismatches=(), missing=(), extra=(), skipped=0,
        scope=log_report.kind if log_report else "log",
        log_checked=log_report is not None,
        log_classification=log_report.classification if log_report else None,
        message=message, warnings=tuple(warnings), log_report=log_report,
    )


def verify_replay(
    path: Path,
    runner: ReplayRunner,
    *,
    trust: str | Path = "aws",
    boot_verifier: BootVerifier | None = None,
    known_checkpoint: bytes | None = None,
    index_range: tuple[int, int] | None = None,
    unsafe_skip_log_check: bool = False,
    progress: bool | None = None,
) -> ReplayReport:
    """:func:`check_replay`, raising :class:`ReplayMismatchError` unless every batch matched."""
    report = check_replay(path, runner, trust=trust, boot_verifier=boot_verifier,
                          known_checkpoint=known_checkpoint, index_range=index_range,
                          unsafe_skip_log_check=unsafe_skip_log_check, progress=progress)
    if not report.verified:
        raise ReplayMismatchError(report)
    return report
