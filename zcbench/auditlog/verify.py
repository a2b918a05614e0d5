"""Verify a run's signed log: from the boot document to the log key, every checkpoint, every record.

``check_log`` reads (never repairs) a run folder, a log folder or an exported slice and returns a
frozen :class:`~zcbench.auditlog.verdict.LogReport` (its classifications are drawn in
verdict.py); ``verify_log`` raises :class:`LogVerificationError` on a report that failed. A path
that is no log at all (a build folder, a document) is a :class:`~zcbench.errors.UsageError`
(location.py), not a verdict.

What is checked, in order: record 0 is a boot record and its attestation document verifies under
the caller's trust at the document's own time (boot.py), yielding the log key and the origin
``zcbench/<PCR0[:16]>/<run id>``; every checkpoint note is signed by that key under that origin;
no two checkpoints of one size differ; the records hash (recomputed, RFC 9162) to every
checkpoint's root at its size, which proves consistency between successive checkpoints and that
the first one extends the boot record; a checkpoint known from outside (a witness, an LP) is
matched the same way. A log shorter than its newest checkpoint can only be seen if that checkpoint
survives somewhere: pass ``known_checkpoint``.
"""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk, WalkedRecord
from zcbench.auditlog.boot import BootIdentity, BootVerifier, nitro_boot_verifier
from zcbench.auditlog.checkpoint import (
    Checkpoint,
    CheckpointVerifier,
    parse_checkpoint_note,
    verify_checkpoint,
)
from zcbench.auditlog.location import locate_log, resolve_log_path
from zcbench.auditlog.merkle import EMPTY_ROOT, CompactRange
from zcbench.auditlog.records import Record
from zcbench.auditlog.slice import check_slice
from zcbench.auditlog.verdict import (
    CLASSIFICATIONS,
    OK_CLASSIFICATIONS,
    Classification,
    LogReport,
    LogVerificationError,
)
from zcbench.errors import EnvError, UsageError, VerificationError, ZcbenchError
from zcbench.progress import progress as progress_lines

__all__ = [
    "CLASSIFICATIONS",
    "OK_CLASSIFICATIONS",
    "BootIdentity",
    "BootVerifier",
    "Classification",
    "LogReport",
    "LogVerificationError",
    "check_log",
    "nitro_boot_verifier",
    "resolve_log_path",
    "verify_boot",
    "verify_log",
]


class _Failure(Exception):
    def __init__(self, classification: Classification, message: str, *, index: int | None = None,
                 path: str | None = None, offset: int | None = None) -> None:
        super().__init__(message)
        self.classification = classification
        self.message = message
        self.index = index
        self.path = path
        self.offset = offset


def check_log(
    path: str | Path,
    *,
    trust: str | Path = "aws",
    known_checkpoint: bytes | None = None,
    boot_verifier: BootVerifier | None = None,
    progress: bool | None = None,
) -> LogReport:
    """Verify the log at ``path`` (run folder, log folder or exported slice); never raises for
    bad data, only for a path that is none of those (:class:`UsageError`)."""
    where = locate_log(path)
    verifier = boot_verifier or nitro_boot_verifier()
    if where.kind == "slice":
        return check_slice(where.target, trust=trust, boot_verifier=verifier,
                           known_checkpoint=known_checkpoint)
    return _FolderCheck(where.target, where.run_folder, trust, verifier).run(
        known_checkpoint, progress)


def verify_log(
    path: str | Path,
    *,
    trust: str | Path = "aws",
    known_checkpoint: bytes | None = None,
    boot_verifier: BootVerifier | None = None,
    progress: bool | None = None,
) -> LogReport:
    """:func:`check_log`, raising :class:`LogVerificationError` unless the log verified."""
    report = check_log(path, trust=trust, known_checkpoint=known_checkpoint,
                       boot_verifier=boot_verifier, progress=progress)
    if not report.verified:
        raise LogVerificationError(report)
    return report


def verify_boot(document: bytes, trust: str | Path, verifier: BootVerifier) -> BootIdentity:
    """Run ``verifier``, turning any refusal into an ``untrusted_boot`` failure.

    A missing root or a misused trust option (EnvError, UsageError) is no verdict on the log:
    it propagates, so the CLI exits 3 or 2 instead of calling the log untrusted."""
    try:
        identity = verifier(document, trust)
        identity.origin  # noqa: B018 - a PCR0 or run id that makes no origin is refused here
    except (EnvError, UsageError):
        raise
    except (ZcbenchError, ValueError) as exc:
        raise _Failure("untrusted_boot", f"the boot document does not verify: {exc}",
                       index=0) from exc
    return identity


@dataclass
class _Verified:
    """The verified checkpoints as size -> root (no per-checkpoint objects kept: a long log
    has one per batch), and the newest one."""

    roots: dict[int, bytes]
    count: int
    latest: tuple[Checkpoint, bytes] | None


def _verify_notes(
    notes: list[tuple[bytes, int]], boot: BootIdentity, cp_path: Path
) -> _Verified:
    """Every note signed by the boot-attested key, and no two roots for one size."""
    origin = boot.origin
    try:
        verifier = CheckpointVerifier(boot.public_key, origin)
    except VerificationError as exc:
        raise _Failure("bad_signature", f"the boot document's public key is unusable: {exc}",
                       index=0) from exc
    roots: dict[int, bytes] = {}
    latest: tuple[Checkpoint, bytes] | None = None
    for note, offset in notes:
        try:
            cp = verifier.verify(note)
        except (VerificationError, LogFormatError) as exc:
            raise _Failure(
                "bad_signature",
                f"the checkpoint at {cp_path.name}:{offset} is not signed by this run's "
                f"attested log key for {origin}: {exc}",
                path=str(cp_path), offset=offset,
            ) from exc
        seen = roots.setdefault(cp.size, cp.root)
        if seen != cp.root:
            raise _Failure(
                "forked",
                f"two signed checkpoints for size {cp.size} with different roots "
                f"({base64.b64encode(seen).decode()} and "
                f"{base64.b64encode(cp.root).decode()}): the log key signed a fork",
                index=cp.size, path=str(cp_path), offset=offset,
            )
        if latest is None or cp.size > latest[0].size:
            latest = (cp, note)
    if roots.get(0, EMPTY_ROOT) != EMPTY_ROOT:
        raise _Failure("forked", "a signed checkpoint of size 0 with a non-empty root", index=0)
    return _Verified(roots, len(notes), latest)


@dataclass
class _Progress:
    """What the walk has established so far, for the report."""

    records: int = 0
    entries: int = 0
    checkpoints: int = 0
    boot: BootIdentity | None = None
    latest: tuple[Checkpoint, bytes] | None = None
    warnings: list[str] = field(default_factory=list)


class _FolderCheck:
    """One verification of a log folder: the walk, then the checks that need its end."""

    def __init__(self, folder: Path, run_folder: Path | None, trust: str | Path,
                 verifier: BootVerifier) -> None:
        self.folder = folder
        self.run_folder = run_folder
        self.trust = trust
        self.verifier = verifier
        self.walk = LogWalk(folder, OsFileSystem())
        self.cp_path = folder / "checkpoints.zlog"
        self.state = _Progress()
        # Filled in once the boot record is verified:
        self._notes: list[tuple[bytes, int]] = []
        self._by_size: dict[int, bytes] = {}
        self._pending: deque[int] = deque()
        self._compact = CompactRange()

    def report(self, classification: Classification, message: str, *,
               index: int | None = None, path: str | None = None,
               offset: int | None = None) -> LogReport:
        s = self.state
        return LogReport(
            verified=classification in OK_CLASSIFICATIONS,
            classification=classification,
            entries=s.entries,
            records=s.records,
            checkpoints=s.checkpoints,
            first_bad_index=index,
            bad_path=path,
            bad_offset=offset,
            message=message,
            origin=s.boot.origin if s.boot else None,
            root=s.latest[0].root.hex() if s.latest else None,
            latest_checkpoint=s.latest[1] if s.latest else None,
            public_key=s.boot.public_key if s.boot else None,
            simulated=s.boot.simulated if s.boot else False,
            warnings=tuple(s.warnings),
        )

    def run(self, known_checkpoint: bytes | None, show: bool | None) -> LogReport:
        try:
            cp_torn = self._read_notes()
            known_size = _known_size(known_checkpoint)
            known_root = self._walk_records(known_size, show)
            self._check_end(known_checkpoint, known_root)
        except _Failure as failure:
            return self.report(failure.classification, failure.message, index=failure.index,
                               path=failure.path, offset=failure.offset)
        return self._verdict(cp_torn)

    def _read_notes(self) -> Any:
        notes, cp_torn, cp_finding = self.walk.checkpoint_notes()
        if cp_finding is not None:
            raise _Failure("corrupt", cp_finding.message, path=cp_finding.path,
                           offset=cp_finding.offset)
        if cp_torn is not None:
            self.state.warnings.append(
                f"torn tail in {self.cp_path.name} at byte {cp_torn.offset} ({cp_torn.reason})"
            )
        self._notes = notes
        return cp_torn

    def _boot(self, item: WalkedRecord[Record]) -> None:
        """Record 0: verify the boot document, then every checkpoint note against its key."""
        if item.record.kind != "boot":
            raise _Failure("untrusted_boot",
                           f"record 0 is a {item.record.kind} record, not the boot record",
                           index=0, path=str(item.path), offset=item.offset)
        boot = verify_boot(item.record.body, self.trust, self.verifier)
        self.state.boot = boot
        self.state.warnings.extend(boot.warnings)
        boot_file = self.run_folder / "boot.cbor" if self.run_folder is not None else None
        if (boot_file is not None and boot_file.is_file()
                and boot_file.read_bytes() != item.record.body):
            raise _Failure("untrusted_boot",
                           "run/boot.cbor differs from the boot record in the log",
                           index=0, path=str(boot_file))
        verified = _verify_notes(self._notes, boot, self.cp_path)
        self._notes = []  # only sizes and roots are needed from here on
        self.state.checkpoints = verified.count
        self._by_size = verified.roots
        self._pending = deque(sorted(s for s in self._by_size if s > 0))
        self.state.latest = verified.latest

    def _walk_records(self, known_size: int | None, show: bool | None) -> bytes | None:
        """Hash every record in order, matching each signed root at its size; returns the root
        at ``known_size`` when the log reaches it."""
        known_root: bytes | None = EMPTY_ROOT if known_size == 0 else None
        good = 0
        s = self.state
        for item in progress_lines(self.walk.records(), desc="verifying log", enabled=show):
            if s.boot is None:
                self._boot(item)
            self._compact.append(item.leaf_hash)
            s.records += 1
            if s.records == known_size:
                known_root = self._compact.root()
            while self._pending and self._pending[0] == s.records:
                size = self._pending.popleft()
                if self._by_size[size] != self._compact.root():
                    raise _Failure(
                        "rewritten",
                        f"records [{good}, {size}) do not hash to the signed root of size "
                        f"{size}: a record in that range was modified, inserted or deleted "
                        f"(records up to {good} match the checkpoint of size {good})",
                        index=good, path=str(item.path), offset=item.offset,
                    )
                good = size
                s.entries = good
        return known_root

    def _check_end(self, known_checkpoint: bytes | None, known_root: bytes | None) -> None:
        s = self.state
        walk = self.walk
        if walk.finding is not None:
            f = walk.finding
            raise _Failure(cast(Classification, f.classification), f.message, index=f.index,
                           path=f.path, offset=f.offset)
        if s.boot is None:
            raise _Failure("untrusted_boot" if s.records == 0 and walk.segments
                           else "corrupt", "the log holds no records, not even a boot record",
                           index=0)
        if self._pending:
            size = self._pending[-1]
            raise _Failure(
                "rollback",
                f"the log holds {s.records} records but its own signed checkpoint "
                f"commits to {size}: records were cut away",
                index=s.records,
                path=str(walk.torn.path) if walk.torn else None,
                offset=walk.torn.offset if walk.torn else None,
            )
        if known_checkpoint is not None:
            _match_known(known_checkpoint, s.boot, root_at_size=known_root, records=s.records)
        if s.entries == 0:
            # Fail closed: without one signed checkpoint nothing here is proven, and a deleted
            # checkpoint file must not pass as an "uncommitted tail".
            raise _Failure(
                "corrupt",
                f"no signed checkpoint covers any of the {s.records} records: nothing "
                "in this log can be verified (if the writer stopped before its first "
                "checkpoint, nothing was acted on; otherwise the checkpoints were removed)",
                index=0, path=str(self.cp_path),
            )

    def _verdict(self, cp_torn: Any) -> LogReport:
        s = self.state
        assert s.boot is not None  # _check_end refused a log without one
        classification: Classification = "intact"
        # The message never repeats its classification: every reader shows them together
        # ("INTACT: 12 records under ...").
        message = f"{s.entries} records under the newest signed checkpoint of {s.boot.origin}"
        if s.records > s.entries:
            extra = s.records - s.entries
            s.warnings.append(
                f"{extra} records after the newest checkpoint (from index {s.entries}) "
                "are not covered by any signature"
            )
            classification = "uncommitted_tail"
            message = f"{extra} records past the newest checkpoint are unverified"
        torn = self.walk.torn
        if torn is not None:
            s.warnings.append(
                f"torn tail at {torn.path.name}:{torn.offset} ({torn.reason}); "
                "recovery cuts it when the log is reopened"
            )
            classification = "torn_tail"
            message = f"bad bytes after record {s.records - 1}; " + message
        if cp_torn is not None and classification == "intact":
            classification = "torn_tail"
        return self.report(classification, message)


def _known_size(known_checkpoint: bytes | None) -> int | None:
    if known_checkpoint is None:
        return None
    try:
        return parse_checkpoint_note(known_checkpoint).size
    except LogFormatError as exc:
        raise _Failure("bad_signature", f"the known checkpoint is malformed: {exc}") from exc


def _match_known(known_note: bytes, boot: BootIdentity, *, root_at_size: bytes | None,
                 records: int) -> None:
    try:
        known = verify_checkpoint(known_note, boot.public_key, boot.origin)
    except (VerificationError, LogFormatError) as exc:
        raise _Failure(
            "bad_signature",
            f"the known checkpoint is not signed by this run's attested log key for "
            f"{boot.origin}: {exc}",
        ) from exc
    if known.size > records or root_at_size is None:
        raise _Failure(
            "rollback",
            f"the log holds {records} records but a checkpoint known from outside commits to "
            f"{known.size}: the log was rolled back or truncated",
            index=records,
        )
    if root_at_size != known.root:
        raise _Failure(
            "forked",
            f"the checkpoint known from outside (size {known.size}) is signed by this log's key "
            "but the records do not hash to its root: the log shown now is a different history",
            index=known.size,
        )
