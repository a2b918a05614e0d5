"""Archives in the strategy's ledger: ``archive`` entries written after an upload, read back to
hold an archive to them.

An archive of one run becomes one or more ``archive`` entries
(:class:`zcbench.ledger.entries.ArchiveEntry`): the run's origin (its run-start must be in the
ledger: a run the ledger never saw is not archived into it), the bucket, the SHA-256 of the
archive's record in ``archive.json`` (:func:`archive_record_sha256`, canonical JSON), the
retention, and ``(key, VersionId, SHA-256)`` of every object, packed so that each entry stays
under the 65,535-byte entry bound (at most :data:`~zcbench.ledger.entries.MAX_ARCHIVE_OBJECTS`
objects each). ``archive verify --ledger`` takes the ledger's hashes, not the manifest's, as the
truth: a manifest edited to match an altered object does not hide it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from zcbench.archive.manifest import Archive
from zcbench.errors import UsageError, VerificationError

if TYPE_CHECKING:
    from zcbench.ledger.entries import ArchiveEntry
    from zcbench.ledger.rules import LedgerState

__all__ = [
    "LedgerArchive",
    "archive_bodies",
    "archive_entries",
    "archive_record_sha256",
    "check_runs_in_ledger",
    "ledger_archives",
    "record_archives",
    "run_origin_in_ledger",
]

_BUDGET: Final = 60_000  # bytes of objects per entry, under the 65,535 bound with the rest


def archive_record_sha256(archive: Archive) -> bytes:
    """SHA-256 of the archive's record as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(archive.to_json(), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)
    return hashlib.sha256(text.encode()).digest()


def _retain_ns(archive: Archive) -> int:
    until = dt.datetime.strptime(archive.retain_until, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=dt.UTC)
    return int(until.timestamp()) * 1_000_000_000


def archive_entries(run_origin: str, archive: Archive) -> list[ArchiveEntry]:
    """The ``archive`` entry bodies for one archive of the run ``run_origin``."""
    from zcbench.ledger.entries import MAX_ARCHIVE_OBJECTS, ArchiveEntry, ArchiveEntryObject

    digest = archive_record_sha256(archive)
    until = _retain_ns(archive)
    bodies: list[ArchiveEntry] = []
    chunk: list[ArchiveEntryObject] = []
    used = 0
    for item in archive.objects:
        obj = ArchiveEntryObject(item.key, item.version_id, bytes.fromhex(item.sha256))
        cost = len(item.key.encode()) + len(item.version_id.encode()) + 64
        if chunk and (used + cost > _BUDGET or len(chunk) == MAX_ARCHIVE_OBJECTS):
            bodies.append(ArchiveEntry(run_origin, archive.bucket, digest, until, tuple(chunk)))
            chunk, used = [], 0
        chunk.append(obj)
        used += cost
    if chunk:
        bodies.append(ArchiveEntry(run_origin, archive.bucket, digest, until, tuple(chunk)))
    return bodies


def run_origin_in_ledger(state: LedgerState, run_id: str, ledger_dir: Path) -> str:
    """The origin of the ledger's run ``run_id`` (``zcbench/<pcr0>/<run id>``); UsageError when
    the ledger has no run-start for it (or two)."""
    found = [origin for origin in state.runs if origin.rsplit("/", 1)[-1] == run_id]
    if len(found) != 1:
        raise UsageError(
            f"the ledger {ledger_dir} holds "
            + ("no run-start" if not found else f"{len(found)} run-starts")
            + f" for run {run_id}: archive into the ledger the run started in")
    return found[0]


def archive_bodies(ledger_dir: Path, archives: Sequence[tuple[str, Archive]]
                   ) -> list[ArchiveEntry]:
    """The ``archive`` entries of each ``(run_id, archive)``, for the run-start the ledger
    holds of each run, in order: what the live version's enclave appends
    (:func:`zcbench.host.endorse.archive_request`)."""
    from zcbench.ledger import Ledger

    with Ledger.open(ledger_dir) as ledger:
        return [body for run_id, archive in archives
                for body in archive_entries(run_origin_in_ledger(ledger.state, run_id,
                                                                 ledger_dir), archive)]


def record_archives(ledger_dir: Path, archives: Sequence[tuple[str, Archive]]) -> list[int]:
    """Append the ``archive`` entries of each ``(run_id, archive)`` in this process; their
    indices. Only for a ledger whose key this process may open (a development ledger, or one
    made before genesis moved into the enclave); an enclave-made ledger refuses, and its
    archive entries are appended by the live version's enclave (``zcbench archive --ledger DIR
    --by LIVE_BUILD_DIR``)."""
    from zcbench.ledger import Ledger

    bodies = archive_bodies(ledger_dir, archives)
    with Ledger.open(ledger_dir) as ledger:
        return [ledger.append(body).entry.index for body in bodies]


def check_runs_in_ledger(ledger_dir: Path, run_ids: Sequence[str], *,
                         by_enclave: bool = False) -> None:
    """Refuse (UsageError) before any upload when a run has no run-start in the ledger, or
    when the ledger's key was made in its genesis enclave and no live build (``by_enclave``)
    will append the entries."""
    from zcbench.ledger import Ledger

    with Ledger.open(ledger_dir) as ledger:
        for run_id in run_ids:
            run_origin_in_ledger(ledger.state, run_id, ledger_dir)
        if ledger.key_made_in_enclave and not by_enclave:
            raise UsageError(
                f"--ledger {ledger_dir} needs --by LIVE_BUILD_DIR: the ledger's key is held "
                "only by attested enclaves, so the live version's enclave appends the archive "
                "entries; give its build folder (nothing was uploaded)")


@dataclass(frozen=True, slots=True)
class LedgerArchive:
    """What the ledger says was archived of one run in one bucket."""

    run_origin: str
    manifest_sha256: frozenset[bytes]
    retain_until_ns: dict[tuple[str, str], int]
    objects: dict[tuple[str, str], bytes]  # (key, version_id) -> SHA-256
    indices: tuple[int, ...]


def ledger_archives(ledger_dir: Path, run_id: str, bucket: str) -> LedgerArchive:
    """The ledger's archive entries of ``run_id`` in ``bucket``, after verifying the whole
    ledger (a ledger that fails verification is a :class:`VerificationError`)."""
    from zcbench.ledger.verify import check_ledger

    report = check_ledger(ledger_dir)
    if not report.ok:
        raise VerificationError(f"the ledger {ledger_dir} does not verify ({report.failed}): "
                                f"{report.message}", check="ledger")
    origin = run_origin_in_ledger(report.state, run_id, ledger_dir)
    run = report.state.runs[origin]
    digests: set[bytes] = set()
    until: dict[tuple[str, str], int] = {}
    objects: dict[tuple[str, str], bytes] = {}
    indices = []
    for index, body in run.archives:
        if body.bucket != bucket:
            continue
        indices.append(index)
        digests.add(body.manifest_sha256)
        for obj in body.objects:
            objects[(obj.key, obj.version_id)] = obj.sha256
            until[(obj.key, obj.version_id)] = body.retain_until_ns
    return LedgerArchive(origin, frozenset(digests), until, objects, tuple(indices))
