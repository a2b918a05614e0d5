"""Verify a run's signed log: from the boot document to the log key, every checkpoint, every record.

``check_log`` reads (never repairs) a run folder, a log folder or an exported slice and returns a
frozen :class:`LogReport`; ``verify_log`` raises :class:`LogVerificationError` on a report that
failed. The classification is one of DESIGN.md's closed set::

    exit 0   intact            every record under the newest signed checkpoint
             torn_tail         as intact, plus bad bytes cut-able at the very end (warning)
             uncommitted_tail  as intact, plus whole records no checkpoint covers (warning)
    exit 1   corrupt           bytes that are not records, in the middle; no log at all;
                               or no signed checkpoint, so nothing is proven
             rewritten         records that do not hash to a signed root
             reordered         records or segments out of sequence (deleted, inserted, swapped)
             forked            two signed checkpoints that cannot both be true
             rollback          fewer records than a signed checkpoint commits to
             bad_signature     a checkpoint the boot-attested key did not sign
             untrusted_boot    no boot record, or its document fails attestation

What is checked, in order: record 0 is a boot record and its attestation document verifies under
the caller's trust at the document's own time, yielding the log key and the origin
``zcbench/<PCR0[:16]>/<run id>``; every checkpoint note is signed by that key under that origin;
no two checkpoints of one size differ; the records hash (recomputed, RFC 9162) to every
checkpoint's root at its size — which proves consistency between successive checkpoints and that
the first one extends the boot record; a checkpoint known from outside (a witness, an LP) is
matched the same way. A log shorter than its newest checkpoint can only be seen if that checkpoint
survives somewhere: pass ``known_checkpoint``.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast

from zcbench.auditlog._errors import LogFormatError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.checkpoint import (
    Checkpoint,
    CheckpointVerifier,
    log_origin,
    parse_checkpoint_note,
    verify_checkpoint,
)
from zcbench.auditlog.merkle import EMPTY_ROOT, CompactRange
from zcbench.errors import EnvError, UsageError, VerificationError, ZcbenchError
from zcbench.progress import progress as progress_bar

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
    "verify_log",
]

Classification = Literal[
    "intact", "torn_tail", "uncommitted_tail", "corrupt", "rewritten", "reordered", "forked",
    "rollback", "bad_signature", "untrusted_boot",
]
CLASSIFICATIONS: Final[tuple[str, ...]] = (
    "intact", "torn_tail", "uncommitted_tail", "corrupt", "rewritten", "reordered", "forked",
    "rollback", "bad_signature", "untrusted_boot",
)
OK_CLASSIFICATIONS: Final = frozenset({"intact", "torn_tail", "uncommitted_tail"})


@dataclass(frozen=True, slots=True)
class BootIdentity:
    """What a verified boot document establishes about the log.

    ``public_key`` is the DER SubjectPublicKeyInfo of the log's Ed25519 key, ``pcr0`` the
    enclave measurement, ``run_id`` the document's nonce (the run id).
    """

    public_key: bytes
    pcr0: bytes
    run_id: str
    simulated: bool = False
    pcrs_checked: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        """The log origin this boot commits to."""
        return log_origin(self.pcr0, self.run_id)


BootVerifier = Callable[[bytes, "str | Path"], BootIdentity]
"""``(boot document bytes, trust) -> BootIdentity``; raises a ZcbenchError when untrusted."""


def nitro_boot_verifier(
    expected_pcrs: Mapping[int, bytes] | None = None,
) -> BootVerifier:
    """The default boot verifier: ``zcbench.nitro`` at the document's own timestamp.

    Without ``expected_pcrs`` the PCRs are not compared (the origin still names PCR0) and the
    identity carries a warning saying so.
    """

    def verify(document: bytes, trust: str | Path) -> BootIdentity:
        from zcbench import nitro  # heavy: X.509 and COSE

        parsed = nitro.parse_document(document)
        verified = nitro.verify_attestation(
            document,
            trust=trust,
            at=parsed.time,
            expected_pcrs=expected_pcrs,
            unsafe_skip_pcr_check=expected_pcrs is None,
        )
        doc = verified.document
        if doc.public_key is None or doc.nonce is None or 0 not in doc.pcrs:
            raise VerificationError(
                "the boot document lacks its public_key, nonce (run id) or PCR0",
                check="boot_document_fields",
            )
        try:
            run_id = doc.nonce.decode("ascii")
        except UnicodeDecodeError:
            raise VerificationError(
                "the boot document's nonce is not an ASCII run id",
                check="boot_run_id",
                actual=doc.nonce.hex(),
            ) from None
        warnings = [] if verified.pcrs_checked else [
            "no PCR was compared with a commitment (pcrs_checked: false)"
        ]
        if verified.simulated:
            warnings.append("SIMULATED: the boot document chains to the development CA")
        elif verified.trust_root.kind == "custom":
            warnings.append(f"the boot document chains to {verified.trust_root.description}, "
                            "not to AWS's root")
        return BootIdentity(
            public_key=doc.public_key,
            pcr0=doc.pcrs[0],
            run_id=run_id,
            simulated=verified.simulated,
            pcrs_checked=verified.pcrs_checked,
            warnings=tuple(warnings),
        )

    return verify


@dataclass(frozen=True)
class LogReport:
    """The outcome of :func:`check_log`. ``entries`` is how many records the newest verified
    checkpoint covers; ``records`` how many whole records were read."""

    verified: bool
    classification: Classification
    entries: int
    records: int
    checkpoints: int
    first_bad_index: int | None
    message: str
    bad_path: str | None = None
    bad_offset: int | None = None
    origin: str | None = None
    root: str | None = None
    latest_checkpoint: bytes | None = None
    public_key: bytes | None = None
    simulated: bool = False
    warnings: tuple[str, ...] = ()
    kind: Literal["log", "slice"] = "log"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        return {
            "verified": self.verified,
            "classification": self.classification,
            "entries": self.entries,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "first_bad_index": self.first_bad_index,
            "bad_path": self.bad_path,
            "bad_offset": self.bad_offset,
            "origin": self.origin,
            "root": self.root,
            "simulated": self.simulated,
            "warnings": list(self.warnings),
            "message": self.message,
            "kind": self.kind,
            **dict(self.extra),
        }


class LogVerificationError(VerificationError):
    """A log failed verification; ``report`` holds the details."""

    def __init__(self, report: LogReport) -> None:
        super().__init__(
            report.message,
            check=f"log_{report.classification}",
            expected="intact",
            actual=report.classification,
        )
        self.report = report


def resolve_log_path(path: Path) -> tuple[Literal["log", "slice"], Path, Path | None]:
    """What ``path`` is: ``("log", log folder, run folder | None)`` or ``("slice", file, None)``."""
    if path.is_file():
        return "slice", path, None
    if (path / "log").is_dir():
        return "log", path / "log", path
    if path.is_dir():
        return "log", path, path.parent if (path.parent / "boot.cbor").is_file() else None
    raise UsageError(f"{path} is not a run folder, a log folder or an exported slice")


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
    path: Path,
    *,
    trust: str | Path = "aws",
    known_checkpoint: bytes | None = None,
    boot_verifier: BootVerifier | None = None,
    progress: bool | None = None,
) -> LogReport:
    """Verify the log at ``path`` (run folder, log folder or exported slice); never raises for
    bad data, only for a path that is none of those (:class:`UsageError`)."""
    kind, target, run_folder = resolve_log_path(path)
    verifier = boot_verifier or nitro_boot_verifier()
    if kind == "slice":
        from zcbench.auditlog.export import check_slice

        return check_slice(target, trust=trust, boot_verifier=verifier,
                           known_checkpoint=known_checkpoint)
    return _check_folder(target, run_folder, trust, known_checkpoint, verifier, progress)


def verify_log(
    path: Path,
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


def _check_folder(
    folder: Path,
    run_folder: Path | None,
    trust: str | Path,
    known_checkpoint: bytes | None,
    verifier: BootVerifier,
    show: bool | None,
) -> LogReport:
    fs = OsFileSystem()
    walk = LogWalk(folder, fs)
    warnings: list[str] = []
    counts = {"records": 0, "checkpoints": 0, "entries": 0}
    boot: BootIdentity | None = None
    latest: tuple[Checkpoint, bytes] | None = None
    cp_path = folder / "checkpoints.zlog"

    def report(classification: Classification, message: str, **where: Any) -> LogReport:
        ok = classification in OK_CLASSIFICATIONS
        return LogReport(
            verified=ok,
            classification=classification,
            entries=counts["entries"],
            records=counts["records"],
            checkpoints=counts["checkpoints"],
            first_bad_index=where.get("index"),
            bad_path=where.get("path"),
            bad_offset=where.get("offset"),
            message=message,
            origin=boot.origin if boot else None,
            root=latest[0].root.hex() if latest else None,
            latest_checkpoint=latest[1] if latest else None,
            public_key=boot.public_key if boot else None,
            simulated=boot.simulated if boot else False,
            warnings=tuple(warnings),
        )

    try:
        notes, cp_torn, cp_finding = walk.checkpoint_notes()
        if cp_finding is not None:
            raise _Failure("corrupt", cp_finding.message, path=cp_finding.path,
                           offset=cp_finding.offset)
        if cp_torn is not None:
            warnings.append(
                f"torn tail in {cp_path.name} at byte {cp_torn.offset} ({cp_torn.reason})"
            )
        known_size: int | None = None
        if known_checkpoint is not None:
            try:
                known_size = parse_checkpoint_note(known_checkpoint).size
            except LogFormatError as exc:
                raise _Failure("bad_signature", f"the known checkpoint is malformed: {exc}") \
                    from exc
        known_root: bytes | None = EMPTY_ROOT if known_size == 0 else None
        compact = CompactRange()
        by_size: dict[int, bytes] = {}
        pending: deque[int] = deque()
        good = 0
        for item in progress_bar(walk.records(), desc="verifying log", enabled=show):
            if boot is None:
                if item.record.kind != "boot":
                    raise _Failure("untrusted_boot",
                                   f"record 0 is a {item.record.kind} record, not the boot record",
                                   index=0, path=str(item.path), offset=item.offset)
                boot = verify_boot(item.record.body, trust, verifier)
                warnings.extend(boot.warnings)
                boot_file = run_folder / "boot.cbor" if run_folder is not None else None
                if (boot_file is not None and boot_file.is_file()
                        and boot_file.read_bytes() != item.record.body):
                    raise _Failure("untrusted_boot",
                                   "run/boot.cbor differs from the boot record in the log",
                                   index=0, path=str(boot_file))
                verified = _verify_notes(notes, boot, cp_path)
                del notes  # only sizes and roots are needed from here on
                counts["checkpoints"] = verified.count
                by_size = verified.roots
                pending = deque(sorted(s for s in by_size if s > 0))
                latest = verified.latest
            compact.append(item.leaf_hash)
            counts["records"] += 1
            if counts["records"] == known_size:
                known_root = compact.root()
            while pending and pending[0] == counts["records"]:
                size = pending.popleft()
                if by_size[size] != compact.root():
                    raise _Failure(
                        "rewritten",
                        f"records [{good}, {size}) do not hash to the signed root of size "
                        f"{size}: a record in that range was modified, inserted or deleted "
                        f"(records up to {good} match the checkpoint of size {good})",
                        index=good, path=str(item.path), offset=item.offset,
                    )
                good = size
                counts["entries"] = good
        if walk.finding is not None:
            f = walk.finding
            raise _Failure(cast(Classification, f.classification), f.message, index=f.index,
                           path=f.path, offset=f.offset)
        if boot is None:
            raise _Failure("untrusted_boot" if counts["records"] == 0 and walk.segments
                           else "corrupt", "the log holds no records, not even a boot record",
                           index=0)
        if pending:
            size = pending[-1]
            raise _Failure(
                "rollback",
                f"the log holds {counts['records']} records but its own signed checkpoint "
                f"commits to {size}: records were cut away",
                index=counts["records"],
                path=str(walk.torn.path) if walk.torn else None,
                offset=walk.torn.offset if walk.torn else None,
            )
        if known_checkpoint is not None:
            _match_known(known_checkpoint, boot, root_at_size=known_root,
                         records=counts["records"])
        if counts["entries"] == 0:
            # Fail closed: without one signed checkpoint nothing here is proven, and a deleted
            # checkpoint file must not pass as an "uncommitted tail".
            raise _Failure(
                "corrupt",
                f"no signed checkpoint covers any of the {counts['records']} records: nothing "
                "in this log can be verified (if the writer stopped before its first "
                "checkpoint, nothing was acted on; otherwise the checkpoints were removed)",
                index=0, path=str(cp_path),
            )
    except _Failure as failure:
        return report(failure.classification, failure.message, index=failure.index,
                      path=failure.path, offset=failure.offset)
    classification: Classification = "intact"
    message = (f"intact: {counts['entries']} records under the newest signed checkpoint "
               f"of {boot.origin}")
    if counts["records"] > counts["entries"]:
        extra = counts["records"] - counts["entries"]
        warnings.append(
            f"{extra} records after the newest checkpoint (from index {counts['entries']}) "
            "are not covered by any signature"
        )
        classification = "uncommitted_tail"
        message = f"uncommitted tail: {extra} records past the newest checkpoint are unverified"
    if walk.torn is not None:
        warnings.append(
            f"torn tail at {walk.torn.path.name}:{walk.torn.offset} ({walk.torn.reason}); "
            "recovery cuts it when the log is reopened"
        )
        classification = "torn_tail"
        message = f"torn tail after record {counts['records'] - 1}; " + message
    if cp_torn is not None and classification == "intact":
        classification = "torn_tail"
    return report(classification, message)


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
