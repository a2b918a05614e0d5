"""zcbench.archive: a run's records in a WORM bucket (S3 Object Lock, COMPLIANCE mode).

SEC 17a-4(f) asks for records that cannot be rewritten or erased; Advisers Act Rule 204-2 and
RTS 6 Art. 28 keep them five years. A run is archived by uploading every file an examiner needs
with a COMPLIANCE lock and recording ``(bucket, key, VersionId, SHA-256)`` for each; immutability
in S3 is per version (a PUT to a locked key succeeds as a new version, a DELETE without a version
as a delete marker), so the archive is always read back by VersionId.

* :mod:`~zcbench.archive.lock`      bucket checks and the enforcement probe (WORM is tested)
* :mod:`~zcbench.archive.upload`    what is archived, retention policy, ``archive_runs``
* :mod:`~zcbench.archive.manifest`  ``archive.json`` beside the run (atomic, strict)
* :mod:`~zcbench.archive.verify`    ``check_archive`` / ``verify_archive``

* :mod:`~zcbench.archive.ledger`    ``archive`` entries in the strategy's ledger (``--ledger``)

With a ledger (one history per strategy), each archive is also recorded there as ``archive``
entries (bucket, key, VersionId, SHA-256 of every object), and ``archive verify --ledger`` takes
the ledger's hashes as the truth; without one, the manifest beside the run is the record.
"""

from zcbench.archive._s3 import AWS_ENDPOINT, S3Endpoint, s3_client
from zcbench.archive.lock import (
    LockNotEnforcedError,
    LockProbe,
    NotWormBucketError,
    ensure_worm_bucket,
    probe_lock,
    require_worm,
)
from zcbench.archive.manifest import (
    MANIFEST_FILE,
    MANIFEST_SCHEMA,
    Archive,
    ArchivedObject,
    ArchiveManifest,
    read_manifest,
    write_manifest,
)
from zcbench.archive.upload import (
    DEFAULT_MIN_RETENTION_DAYS,
    DEFAULT_PREFIX,
    ArchiveResult,
    RetentionPolicy,
    archive_run,
    archive_runs,
    run_files,
    run_identity,
)
from zcbench.archive.verify import (
    ArchiveFinding,
    ArchiveReport,
    ArchiveVerificationError,
    check_archive,
    check_archives,
    verify_archive,
)

__all__ = [
    "AWS_ENDPOINT",
    "DEFAULT_MIN_RETENTION_DAYS",
    "DEFAULT_PREFIX",
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA",
    "Archive",
    "ArchiveFinding",
    "ArchiveManifest",
    "ArchiveReport",
    "ArchiveResult",
    "ArchiveVerificationError",
    "ArchivedObject",
    "LockNotEnforcedError",
    "LockProbe",
    "NotWormBucketError",
    "RetentionPolicy",
    "S3Endpoint",
    "archive_run",
    "archive_runs",
    "check_archive",
    "check_archives",
    "ensure_worm_bucket",
    "probe_lock",
    "read_manifest",
    "require_worm",
    "run_files",
    "run_identity",
    "s3_client",
    "verify_archive",
    "write_manifest",
]
