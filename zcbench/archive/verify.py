"""Reading an archive back: every object by its recorded VersionId, its SHA-256 recomputed and
compared with the manifest, its lock still COMPLIANCE until at least the recorded date; and the
run folder's own files, where still present, compared with the same hashes.

:func:`check_archive` never raises for what it finds (a frozen :class:`ArchiveReport` with one
:class:`ArchiveFinding` per problem, each naming the file, key and version); :func:`verify_archive`
raises :class:`ArchiveVerificationError` unless the report is clean. A run never archived to the
bucket is a failed check (``not_archived``), not a pass.

With a ledger, the ledger's ``archive`` entries are the truth: every object they name is read
back and hashed against the ledger's SHA-256; a manifest object the ledger does not name
(``not_in_ledger``), or names with another hash, and an archive record whose hash no entry
carries (``ledger_mismatch``) are findings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from zcbench.archive._s3 import S3Endpoint, error_code, http_status, s3_client, s3_failure
from zcbench.archive.manifest import MANIFEST_FILE, Archive, ArchivedObject, read_manifest
from zcbench.errors import VerificationError

__all__ = [
    "ArchiveFinding",
    "ArchiveReport",
    "ArchiveVerificationError",
    "check_archive",
    "check_archives",
    "verify_archive",
]

Problem = Literal["missing", "altered", "unlocked", "unreadable", "local_altered",
                  "not_archived", "not_in_ledger", "ledger_mismatch"]
_MISSING_CODES: Final = frozenset({"NoSuchKey", "NoSuchVersion", "NotFound", "404"})


@dataclass(frozen=True, slots=True)
class ArchiveFinding:
    """One problem: which file, where it was archived, what was expected and found."""

    problem: Problem
    path: str
    key: str
    version_id: str
    expected: str
    actual: str

    def describe(self) -> str:
        where = f"{self.path} ({self.key} version {self.version_id})" if self.key else self.path
        return f"{self.problem}: {where}: expected {self.expected}, found {self.actual}"


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """The outcome of reading back one run's archives in one bucket."""

    run_dir: Path
    bucket: str
    run_id: str
    archives: int
    objects: int
    findings: tuple[ArchiveFinding, ...]

    @property
    def verified(self) -> bool:
        return not self.findings and self.objects > 0

    def summary_lines(self) -> list[str]:
        head = "VERIFIED" if self.verified else "FAILED"
        lines = [f"{head}: {self.run_dir}: {self.objects} objects in {self.archives} "
                 f"archive(s) in bucket {self.bucket}"]
        lines += [f"  {f.describe()}" for f in self.findings]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "bucket": self.bucket, "run_id": self.run_id,
                "archives": self.archives, "objects": self.objects, "verified": self.verified,
                "findings": [{"problem": f.problem, "path": f.path, "key": f.key,
                              "version_id": f.version_id, "expected": f.expected,
                              "actual": f.actual} for f in self.findings]}


class ArchiveVerificationError(VerificationError):
    """An archive did not read back as recorded; ``report`` holds every finding."""

    def __init__(self, report: ArchiveReport) -> None:
        first = report.findings[0] if report.findings else None
        message = (f"archive of {report.run_dir} in bucket {report.bucket} does not verify: "
                   + (first.describe() if first else "no object checked")
                   + (f" (and {len(report.findings) - 1} more)"
                      if len(report.findings) > 1 else ""))
        super().__init__(message, check=first.problem if first else "objects",
                         expected=first.expected if first else None,
                         actual=first.actual if first else None)
        self.report = report


def _parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _remote(client: Any, endpoint: S3Endpoint, bucket: str, item: ArchivedObject,
            retain_until: dt.datetime) -> ArchiveFinding | None:
    from botocore.exceptions import BotoCoreError, ClientError

    def finding(problem: Problem, expected: str, actual: str) -> ArchiveFinding:
        return ArchiveFinding(problem, item.path, item.key, item.version_id, expected, actual)

    try:
        got = client.get_object(Bucket=bucket, Key=item.key, VersionId=item.version_id)
        digest = hashlib.sha256()
        for chunk in got["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
    except (ClientError, BotoCoreError) as exc:
        failure = s3_failure(exc, endpoint, f"read {item.key}")
        if failure is not None:
            raise failure from None
        code = error_code(exc)
        if code in _MISSING_CODES or http_status(exc) == 404:
            return finding("missing", f"sha256 {item.sha256}", f"no such version ({code})")
        return finding("unreadable", f"sha256 {item.sha256}", code or str(http_status(exc)))
    if digest.hexdigest() != item.sha256:
        return finding("altered", f"sha256 {item.sha256}", f"sha256 {digest.hexdigest()}")
    mode, kept = got.get("ObjectLockMode"), got.get("ObjectLockRetainUntilDate")
    if mode != "COMPLIANCE" or not isinstance(kept, dt.datetime) or kept < retain_until:
        return finding("unlocked", f"COMPLIANCE until {retain_until:%Y-%m-%dT%H:%M:%SZ}",
                       f"{mode} until {kept}")
    return None


def _local(run_dir: Path, item: ArchivedObject) -> ArchiveFinding | None:
    if not item.path.startswith("run/"):
        return None  # the build's files live elsewhere; the archive holds them
    path = run_dir / item.path[len("run/"):]
    if not path.is_file():
        return None  # a local copy may be dropped once archived
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != item.sha256:
        return ArchiveFinding("local_altered", item.path, "", "", f"sha256 {item.sha256}",
                              f"sha256 {digest.hexdigest()} (the run folder changed after it "
                              "was archived)")
    return None


def check_archive(
    run_dir: Path, *, endpoint: S3Endpoint, bucket: str, client: Any | None = None,
    ledger: Path | None = None,
) -> ArchiveReport:
    """Read back every object of ``run_dir``'s archives in ``bucket`` (see the module); with
    ``ledger``, every object the ledger's ``archive`` entries name, against the ledger's hash."""
    return _check(Path(run_dir), endpoint, bucket,
                  (lambda: client) if client is not None else (lambda: s3_client(endpoint)),
                  ledger)


def _against_ledger(run_dir: Path, endpoint: S3Endpoint, bucket: str, client: Any,
                    run_id: str, archives: Sequence[Archive], ledger: Path,
                    ) -> tuple[int, list[ArchiveFinding]]:
    from zcbench.archive.ledger import archive_record_sha256, ledger_archives

    held = ledger_archives(ledger, run_id, bucket)
    findings: list[ArchiveFinding] = []
    if not held.objects:
        findings.append(ArchiveFinding("not_in_ledger", MANIFEST_FILE, "", "",
                                       f"archive entries of run {run_id} in bucket {bucket}",
                                       f"none in the ledger {ledger}"))
    paths: dict[tuple[str, str], str] = {}
    for archive in archives:
        if archive_record_sha256(archive) not in held.manifest_sha256:
            findings.append(ArchiveFinding(
                "ledger_mismatch", MANIFEST_FILE, "", "",
                "an archive record whose SHA-256 an archive entry carries",
                f"the archive of {archive.archived_at}, in no entry"))
        for item in archive.objects:
            paths[(item.key, item.version_id)] = item.path
            want = held.objects.get((item.key, item.version_id))
            if want is None:
                findings.append(ArchiveFinding("not_in_ledger", item.path, item.key,
                                               item.version_id, "an archive entry naming it",
                                               "none"))
            elif want.hex() != item.sha256:
                findings.append(ArchiveFinding("ledger_mismatch", item.path, item.key,
                                               item.version_id, f"sha256 {want.hex()} (ledger)",
                                               f"sha256 {item.sha256} (manifest)"))
    for (key, version), digest in held.objects.items():
        until = dt.datetime.fromtimestamp(held.retain_until_ns[(key, version)] // 10**9, dt.UTC)
        item = ArchivedObject(paths.get((key, version), key), key, version, digest.hex(), 0)
        found = _remote(client, endpoint, bucket, item, until)
        if found is not None:
            findings.append(found)
    return len(held.objects), findings


def _check(run_dir: Path, endpoint: S3Endpoint, bucket: str,
           get_client: Callable[[], Any], ledger: Path | None = None) -> ArchiveReport:
    manifest = read_manifest(run_dir)
    if manifest is None:
        return ArchiveReport(run_dir, bucket, "", 0, 0, (ArchiveFinding(
            "not_archived", MANIFEST_FILE, "", "", "an archive manifest",
            "none: run 'zcbench archive' first"),))
    archives = manifest.in_bucket(bucket)
    if not archives:
        return ArchiveReport(run_dir, bucket, manifest.run_id, 0, 0, (ArchiveFinding(
            "not_archived", MANIFEST_FILE, "", "", f"an archive in bucket {bucket}",
            "archives in " + (", ".join(sorted({a.bucket for a in manifest.archives}))
                              or "no bucket")),))
    client = get_client()  # only now: a run never archived needs no server
    if ledger is not None:
        count, held = _against_ledger(run_dir, endpoint, bucket, client, manifest.run_id,
                                      archives, ledger)
        local = [f for a in archives for i in a.objects
                 if (f := _local(run_dir, i)) is not None]
        return ArchiveReport(run_dir, bucket, manifest.run_id, len(archives), count,
                             tuple(held + local))
    findings: list[ArchiveFinding] = []
    count = 0
    for archive in archives:
        until = _parse_iso(archive.retain_until)
        for item in archive.objects:
            count += 1
            for found in (_remote(client, endpoint, bucket, item, until), _local(run_dir, item)):
                if found is not None:
                    findings.append(found)
    return ArchiveReport(run_dir, bucket, manifest.run_id, len(archives), count,
                         tuple(findings))


def verify_archive(
    run_dir: Path, *, endpoint: S3Endpoint, bucket: str, client: Any | None = None,
    ledger: Path | None = None,
) -> ArchiveReport:
    """:func:`check_archive`, raising :class:`ArchiveVerificationError` unless it verified."""
    report = check_archive(run_dir, endpoint=endpoint, bucket=bucket, client=client,
                           ledger=ledger)
    if not report.verified:
        raise ArchiveVerificationError(report)
    return report


def check_archives(
    run_dirs: Sequence[Path], *, endpoint: S3Endpoint, bucket: str, client: Any | None = None,
    ledger: Path | None = None,
) -> list[ArchiveReport]:
    """:func:`check_archive` for each run, with one client."""
    made = [client]

    def one_client() -> Any:
        if made[0] is None:
            made[0] = s3_client(endpoint)
        return made[0]

    return [_check(Path(r), endpoint, bucket, one_client, ledger) for r in run_dirs]
