"""Whether a bucket is WORM: Object Lock enabled, versioning on, and COMPLIANCE retention
actually enforced by the server, tested, not assumed.

A bucket is called WORM only after a probe object, locked in COMPLIANCE mode for a few minutes,
has been seen to survive every attempt to undo the lock: a delete of its version, a shorter
retention, a downgrade to GOVERNANCE, and suspending the bucket's versioning. A server that
accepts any of them (an emulator with a partial lock, a regressed release) is refused with
:class:`LockNotEnforcedError` and nothing is archived. If suspending versioning was accepted it is
re-enabled at once. The probe object stays in the bucket (``<prefix>/.lock-probe/``) until its
short retention ends; it is deletable afterwards.

A missing bucket is created with Object Lock enabled (versioning comes with it); an existing
bucket without Object Lock is refused (:class:`NotWormBucketError`): S3 cannot add the lock to a
bucket's existing objects.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from zcbench.archive._s3 import S3Endpoint, error_code, http_status, s3_failure
from zcbench.errors import EnvError, VerificationError

__all__ = [
    "PROBE_RETENTION",
    "LockNotEnforcedError",
    "LockProbe",
    "NotWormBucketError",
    "ensure_worm_bucket",
    "probe_lock",
    "require_worm",
]

PROBE_RETENTION: Final = dt.timedelta(minutes=10)
"""How long the probe object is locked: long enough for the probe, short enough to be cheap."""
_PROBE_BODY: Final = b"zcbench object lock probe\n"
_PROBE_MD5: Final = base64.b64encode(
    hashlib.md5(_PROBE_BODY, usedforsecurity=False).digest()).decode()
_NO_LOCK_CODES: Final = frozenset({"ObjectLockConfigurationNotFoundError",
                                   "ObjectLockConfigurationNotFound"})


class NotWormBucketError(VerificationError):
    """The bucket exists without Object Lock (or versioning): it cannot hold WORM records."""


class LockNotEnforcedError(VerificationError):
    """The bucket claims Object Lock but the server let a locked version be undone."""


@dataclass(frozen=True, slots=True)
class LockProbe:
    """What the probe saw. Each ``*_refused`` is True when the server refused the operation
    on a COMPLIANCE-locked version (as it must); ``worm`` is True only when all were."""

    bucket: str
    probe_key: str
    probe_version_id: str
    delete_refused: bool
    shorten_refused: bool
    downgrade_refused: bool
    suspend_refused: bool
    lock_reported: bool
    at: str

    @property
    def worm(self) -> bool:
        return (self.delete_refused and self.shorten_refused and self.downgrade_refused
                and self.suspend_refused and self.lock_reported)

    def failures(self) -> list[str]:
        """The operations the server wrongly allowed, in words."""
        names = {
            "delete_refused": "deleting a locked version",
            "shorten_refused": "shortening COMPLIANCE retention",
            "downgrade_refused": "downgrading COMPLIANCE to GOVERNANCE",
            "suspend_refused": "suspending versioning",
            "lock_reported": "reporting the lock it was given on the version",
        }
        return [text for name, text in names.items() if not getattr(self, name)]

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket, "probe_key": self.probe_key,
            "probe_version_id": self.probe_version_id, "delete_refused": self.delete_refused,
            "shorten_refused": self.shorten_refused, "downgrade_refused": self.downgrade_refused,
            "suspend_refused": self.suspend_refused, "lock_reported": self.lock_reported,
            "at": self.at, "worm": self.worm,
        }


def _raise_env(exc: Exception, endpoint: S3Endpoint, what: str) -> None:
    failure = s3_failure(exc, endpoint, what)
    if failure is not None:
        raise failure from None


def ensure_worm_bucket(client: Any, endpoint: S3Endpoint, bucket: str, *,
                       create: bool = True) -> bool:
    """Make sure ``bucket`` has Object Lock enabled and versioning on; create it with the lock
    when missing (and ``create``). Returns True when it was created. Raises
    :class:`NotWormBucketError` for a bucket without the lock."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
        exists = True
    except (ClientError, BotoCoreError) as exc:
        _raise_env(exc, endpoint, f"look up bucket {bucket}")
        if http_status(exc) == 403:
            raise EnvError(f"S3 at {endpoint} denies access to bucket {bucket}: it belongs to "
                           "someone else or the credentials lack s3:ListBucket") from None
        exists = False
    created = False
    if not exists:
        if not create:
            raise NotWormBucketError(f"bucket {bucket} does not exist at {endpoint}",
                                     check="bucket_exists", expected=bucket, actual=None)
        region = getattr(getattr(client, "meta", None), "region_name", None)
        where = ({"CreateBucketConfiguration": {"LocationConstraint": region}}
                 if endpoint.url is None and region not in (None, "us-east-1") else {})
        try:
            client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True, **where)
            created = True
        except (ClientError, BotoCoreError) as exc:
            _raise_env(exc, endpoint, f"create bucket {bucket}")
            raise EnvError(f"S3 at {endpoint} refused to create bucket {bucket} with Object "
                           f"Lock ({error_code(exc)})") from None
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except (ClientError, BotoCoreError) as exc:
        _raise_env(exc, endpoint, f"read bucket {bucket}'s Object Lock configuration")
        if error_code(exc) in _NO_LOCK_CODES or http_status(exc) == 404:
            raise NotWormBucketError(
                f"bucket {bucket} exists without Object Lock: it cannot hold WORM records "
                "(S3 enables the lock only when a bucket is made); archive to a new bucket",
                check="object_lock", expected="Enabled", actual="none") from None
        raise EnvError(f"cannot read bucket {bucket}'s Object Lock configuration "
                       f"({error_code(exc)})") from None
    if config.get("ObjectLockEnabled") != "Enabled":
        raise NotWormBucketError(f"bucket {bucket}'s Object Lock is not enabled",
                                 check="object_lock", expected="Enabled",
                                 actual=config.get("ObjectLockEnabled"))
    try:
        status = client.get_bucket_versioning(Bucket=bucket).get("Status")
    except (ClientError, BotoCoreError) as exc:
        _raise_env(exc, endpoint, f"read bucket {bucket}'s versioning")
        raise EnvError(f"cannot read bucket {bucket}'s versioning ({error_code(exc)})") from None
    if status != "Enabled":
        raise NotWormBucketError(f"bucket {bucket} has Object Lock but versioning is "
                                 f"{status or 'off'}", check="versioning", expected="Enabled",
                                 actual=status)
    return created


def _refused(call: Callable[[], object], endpoint: S3Endpoint, what: str) -> bool:
    """Whether the server refused ``call`` with a 4xx answer (a transport failure raises)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        call()
    except (ClientError, BotoCoreError) as exc:
        _raise_env(exc, endpoint, what)
        return True
    return False


def probe_lock(client: Any, endpoint: S3Endpoint, bucket: str, *, prefix: str,
               now: dt.datetime) -> LockProbe:
    """Test that ``bucket`` enforces COMPLIANCE retention (see the module docstring); returns
    what was seen. Use :func:`require_worm` (or ``probe.worm``) to decide."""
    from botocore.exceptions import BotoCoreError, ClientError

    key = f"{prefix}/.lock-probe/{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
    until = (now + PROBE_RETENTION).replace(microsecond=0)
    try:
        # S3 wants Content-MD5 (or an SDK checksum) on every upload that carries a lock
        put = client.put_object(Bucket=bucket, Key=key, Body=_PROBE_BODY, ContentMD5=_PROBE_MD5,
                                ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    except (ClientError, BotoCoreError) as exc:
        _raise_env(exc, endpoint, f"write a probe object to bucket {bucket}")
        raise EnvError(f"S3 at {endpoint} refused a COMPLIANCE-locked upload to {bucket} "
                       f"({error_code(exc)}): the credentials need s3:PutObject and "
                       "s3:PutObjectRetention") from None
    version = put.get("VersionId")
    if not isinstance(version, str) or not version or version == "null":
        raise NotWormBucketError(f"bucket {bucket} gave no version id to an upload: it is not "
                                 "versioned, so nothing in it is immutable",
                                 check="versioning", expected="a VersionId", actual=version)

    def version_call(name: str, **kwargs: Any) -> Callable[[], object]:
        return lambda: getattr(client, name)(Bucket=bucket, Key=key, VersionId=version, **kwargs)

    lock_reported = False
    try:
        head = client.head_object(Bucket=bucket, Key=key, VersionId=version)
        reported = head.get("ObjectLockRetainUntilDate")
        lock_reported = (head.get("ObjectLockMode") == "COMPLIANCE"
                         and isinstance(reported, dt.datetime) and reported >= until)
    except (ClientError, BotoCoreError) as exc:
        _raise_env(exc, endpoint, f"read the probe object in {bucket}")
    shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(minutes=5)}
    shorten = _refused(version_call("put_object_retention", Retention=shorter), endpoint,
                       "probe retention")
    downgrade = _refused(version_call("put_object_retention", Retention={
        "Mode": "GOVERNANCE", "RetainUntilDate": until}), endpoint, "probe retention")
    delete = _refused(version_call("delete_object"), endpoint, "probe deletion")
    suspend = _refused(lambda: client.put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}), endpoint,
        "probe versioning")
    if not suspend:  # undo at once what never should have been allowed
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return LockProbe(bucket, key, version, delete, shorten, downgrade, suspend, lock_reported,
                     now.strftime("%Y-%m-%dT%H:%M:%SZ"))


def require_worm(probe: LockProbe, endpoint: S3Endpoint) -> LockProbe:
    """``probe`` if the bucket is WORM; else :class:`LockNotEnforcedError` naming what the
    server allowed."""
    if not probe.worm:
        allowed = "; ".join(probe.failures())
        raise LockNotEnforcedError(
            f"bucket {probe.bucket} at {endpoint} is not WORM: its Object Lock is not enforced "
            f"(the server allowed {allowed} on a COMPLIANCE-locked probe); nothing was archived",
            check="lock_enforced", expected="every undo refused", actual=allowed)
    return probe
