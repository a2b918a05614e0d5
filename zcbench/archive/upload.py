"""Archiving a run: every file an examiner needs, uploaded under COMPLIANCE retention, each
recorded by key, VersionId and SHA-256 in the run's archive manifest.

What is archived (:func:`run_files`): every regular file of the ended run folder (the sealed log
segments and checkpoints under ``log/``, ``boot.cbor``, ``journal.jsonl``, ``summary.json``, the
final ``attestation.cbor``, the enclave's diagnostics), and from the build the run names, what
proves what ran: ``commitment.json``, ``manifest.json``, ``bundle.tar`` and the image sections
(from which PCR0 is recomputed). Never the sealed strategy payload, never a symbolic link. A run
without ``summary.json`` has not ended (its last segment may still grow) and is refused.

Keys are ``<prefix>/<run id>/run/<path>`` and ``<prefix>/<run id>/build/<path>``. Each upload
carries its SHA-256 (``ChecksumSHA256``: the server refuses bytes that differ from what was
hashed) and its lock (mode COMPLIANCE, retain-until); after it, the version's lock is read back
and must be the one asked for. The manifest is written only once every object is archived and
checked: an interrupted archive records nothing, and running it again uploads new versions.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench.archive._s3 import S3Endpoint, error_code, s3_client, s3_failure
from zcbench.archive.lock import LockProbe, ensure_worm_bucket, probe_lock, require_worm
from zcbench.archive.manifest import (
    MANIFEST_FILE,
    Archive,
    ArchivedObject,
    ArchiveManifest,
    read_manifest,
    write_manifest,
)
from zcbench.errors import DataError, EnvError, UsageError, VerificationError

__all__ = [
    "DEFAULT_MIN_RETENTION_DAYS",
    "DEFAULT_PREFIX",
    "ArchiveResult",
    "RetentionPolicy",
    "archive_run",
    "archive_runs",
    "run_files",
    "run_identity",
]

DEFAULT_MIN_RETENTION_DAYS: Final = 1827
"""Five years, leap days included: Advisers Act Rule 204-2 and RTS 6 Art. 28 keep 5 years."""
DEFAULT_PREFIX: Final = "zcbench"
_BUILD_FILES: Final = ("commitment.json", "manifest.json", "bundle.tar")
_MAX_OBJECT: Final = 5 * 1024**3  # S3's single-PUT limit
_RUN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PREFIX: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
_BUCKET: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The shortest retention allowed, in days (the rule's); an archive asking for less is
    refused before anything is uploaded."""

    min_days: int = DEFAULT_MIN_RETENTION_DAYS

    def __post_init__(self) -> None:
        if type(self.min_days) is not int or self.min_days < 1:
            raise UsageError(f"the minimum retention must be a whole number of days >= 1, got "
                             f"{self.min_days!r}")

    def check(self, retain_until: dt.datetime, now: dt.datetime) -> dt.datetime:
        """``retain_until`` (UTC, whole seconds) if it is at least the minimum after ``now``."""
        if retain_until.tzinfo is None:
            raise UsageError("the retain-until date must name its time zone (e.g. ...Z)")
        until = retain_until.astimezone(dt.UTC).replace(microsecond=0)
        shortest = (now + dt.timedelta(days=self.min_days)).replace(microsecond=0)
        if until < shortest:
            raise UsageError(
                f"retention until {until:%Y-%m-%d} is shorter than the minimum of "
                f"{self.min_days} days (until {shortest:%Y-%m-%d} at the earliest): records "
                "kept for less would not meet the rule; give a later date")
        return until


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """One run archived: the manifest written, the archive appended to it, the probe seen."""

    run_dir: Path
    manifest: Path
    archive: Archive
    probe: LockProbe
    created_bucket: bool

    def to_json(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "manifest": str(self.manifest),
                "created_bucket": self.created_bucket, **self.archive.to_json()}


def run_identity(run_dir: Path) -> tuple[str, Path | None]:
    """The run id and the build folder ``summary.json`` names (None when it names none)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} has no summary.json: the run has not ended (its log may "
                         "still grow); archive it once it has")
    try:
        summary = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON: {exc}") from None
    if not isinstance(summary, dict):
        raise DataError(f"{path} is not a JSON object")
    run_id = summary.get("run_id")
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise DataError(f"{path}: run_id {run_id!r} is not a run id")
    image = summary.get("image")
    build = None
    if isinstance(image, str) and image:
        candidate = Path(image)
        if not candidate.is_absolute():
            candidate = Path(run_dir) / candidate
        if (candidate / "commitment.json").is_file():
            build = candidate
    return run_id, build


def _regular_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, never through a symbolic link, sorted."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        for name in names:
            path = here / name
            if path.is_symlink() or not path.is_file() or name.endswith(".tmp"):
                continue
            if here == folder and name == MANIFEST_FILE:
                continue
            found.append(path)
    return sorted(found)


def run_files(run_dir: Path) -> list[tuple[str, Path]]:
    """What :func:`archive_run` uploads: ``(path in the archive, file)`` pairs, in order."""
    run_dir = Path(run_dir)
    _, build = run_identity(run_dir)
    files = [(f"run/{p.relative_to(run_dir).as_posix()}", p) for p in _regular_files(run_dir)]
    if not any(name == "run/boot.cbor" for name, _ in files):
        raise UsageError(f"{run_dir} has no boot.cbor: is it a run folder made by 'zcbench run'?")
    if build is not None:
        for name in _BUILD_FILES:
            if (build / name).is_file() and not (build / name).is_symlink():
                files.append((f"build/{name}", build / name))
        image = build / "image"
        if image.is_dir():
            files += [(f"build/image/{p.relative_to(image).as_posix()}", p)
                      for p in _regular_files(image)]
    return files


def _digests(path: Path) -> tuple[str, str, int]:
    """SHA-256 (hex) and MD5 (base64, the Content-MD5 S3 asks of a locked upload) and size."""
    digest = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), base64.b64encode(md5.digest()).decode(), size


def _upload(client: Any, endpoint: S3Endpoint, bucket: str, key: str, path: Path,
            until: dt.datetime) -> tuple[str, str, int]:
    from botocore.exceptions import BotoCoreError, ClientError

    sha, md5, size = _digests(path)
    if size > _MAX_OBJECT:
        raise UsageError(f"{path} is {size} bytes, over S3's single upload limit")
    checksum = base64.b64encode(bytes.fromhex(sha)).decode()
    try:
        with path.open("rb") as body:
            put = client.put_object(Bucket=bucket, Key=key, Body=body, ContentLength=size,
                                    ContentMD5=md5, ChecksumSHA256=checksum,
                                    ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
        version = put.get("VersionId")
        if not isinstance(version, str) or not version or version == "null":
            raise VerificationError(f"S3 gave {key} no version id: the bucket is not versioned",
                                    check="version_id", expected="a VersionId", actual=version)
        head = client.head_object(Bucket=bucket, Key=key, VersionId=version)
    except (ClientError, BotoCoreError) as exc:
        failure = s3_failure(exc, endpoint, f"archive {path}")
        if failure is not None:
            raise failure from None
        raise EnvError(f"S3 at {endpoint} refused {key} ({error_code(exc)}): the archive is "
                       "incomplete and no manifest was written; fix and run it again") from None
    mode, kept = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
    if mode != "COMPLIANCE" or not isinstance(kept, dt.datetime) or kept < until:
        raise VerificationError(
            f"S3 stored {key} version {version} with lock {mode} until {kept}, not COMPLIANCE "
            f"until {until:%Y-%m-%dT%H:%M:%SZ}: not WORM; no manifest was written",
            check="object_lock", expected=f"COMPLIANCE until {until.isoformat()}",
            actual=f"{mode} until {kept}")
    if head.get("ContentLength") not in (None, size):
        raise VerificationError(f"S3 stored {head.get('ContentLength')} bytes for {key}, "
                                f"{size} were sent", check="size", expected=size,
                                actual=head.get("ContentLength"))
    return version, sha, size


def _check_names(bucket: str, prefix: str) -> None:
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise UsageError(f"--bucket {bucket!r} is not an S3 bucket name (3-63 lower-case "
                         "letters, digits, dots and hyphens)")
    if not _PREFIX.fullmatch(prefix) or "//" in prefix or prefix.endswith("/") or ".." in prefix:
        raise UsageError(f"--prefix {prefix!r}: letters, digits, '.', '_', '-' and '/' between "
                         "names")


def archive_run(
    run_dir: Path,
    *,
    endpoint: S3Endpoint,
    bucket: str,
    retain_until: dt.datetime,
    policy: RetentionPolicy | None = None,
    prefix: str = DEFAULT_PREFIX,
    client: Any | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    on_file: Callable[[str], None] | None = None,
) -> ArchiveResult:
    """Archive one run (see the module docstring); returns what was recorded."""
    return archive_runs([run_dir], endpoint=endpoint, bucket=bucket, retain_until=retain_until,
                        policy=policy, prefix=prefix, client=client, now=now,
                        on_file=on_file)[0]


def archive_runs(
    run_dirs: Sequence[Path],
    *,
    endpoint: S3Endpoint,
    bucket: str,
    retain_until: dt.datetime,
    policy: RetentionPolicy | None = None,
    prefix: str = DEFAULT_PREFIX,
    client: Any | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    on_file: Callable[[str], None] | None = None,
) -> list[ArchiveResult]:
    """Archive each run into ``bucket``; every check that can fail without uploading (names,
    retention, run folders, bucket lock and its probe) runs before the first upload."""
    _check_names(bucket, prefix)
    if not run_dirs:
        raise UsageError("give at least one run folder to archive")
    start = now()
    until = (policy or RetentionPolicy()).check(retain_until, start)
    plans = []
    for run_dir in run_dirs:
        run_id, _ = run_identity(Path(run_dir))
        plans.append((Path(run_dir), run_id, run_files(Path(run_dir))))
        read_manifest(Path(run_dir))  # a damaged manifest is refused before any upload
    client = client if client is not None else s3_client(endpoint)
    created = ensure_worm_bucket(client, endpoint, bucket)
    probe = require_worm(probe_lock(client, endpoint, bucket, prefix=prefix, now=start),
                         endpoint)
    results = []
    for run_dir, run_id, files in plans:
        objects = []
        for name, path in files:
            key = f"{prefix}/{run_id}/{name}"
            version, sha, size = _upload(client, endpoint, bucket, key, path, until)
            objects.append(ArchivedObject(name, key, version, sha, size))
            if on_file is not None:
                on_file(name)
        archive = Archive(str(endpoint), bucket, prefix, start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "COMPLIANCE", until.strftime("%Y-%m-%dT%H:%M:%SZ"), probe.to_json(),
                          tuple(objects))
        previous = read_manifest(run_dir)
        if previous is not None and previous.run_id != run_id:
            raise DataError(f"{run_dir / MANIFEST_FILE} names run {previous.run_id}, the run "
                            f"folder is {run_id}")
        manifest = ArchiveManifest(run_id, (previous.archives if previous else ()) + (archive,))
        path = write_manifest(run_dir, manifest)
        results.append(ArchiveResult(run_dir, path, archive, probe, created))
    return results
