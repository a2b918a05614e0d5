"""The WORM archive against a real SeaweedFS S3 server on loopback: the server's Object Lock in
COMPLIANCE mode holds (delete, shorten, downgrade, suspend all refused; an overwrite is a new
version), ``zcbench archive`` uploads a real run under it, and ``archive verify`` catches a
missing or altered object."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from _seaweed import SeaweedS3, running_seaweed
from botocore.exceptions import ClientError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    with running_seaweed() as server:
        yield server


@pytest.fixture
def s3(seaweed: SeaweedS3) -> Any:
    return seaweed.client()


def _locked_bucket(s3: Any) -> str:
    name = f"lock-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _until(days: int = 2) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_server_enforces_compliance_retention(s3: Any) -> None:
    bucket = _locked_bucket(s3)
    until = _until()
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"original", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until)
    version = put["VersionId"]
    with pytest.raises(ClientError) as deleted:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
    assert _code(deleted) == "AccessDenied"
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version,
                         BypassGovernanceRetention=True)
    with pytest.raises(ClientError) as shortened:
        s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version, Retention={
            "Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(days=1)})
    assert _code(shortened) == "AccessDenied"
    with pytest.raises(ClientError):
        s3.put_object_retention(Bucket=bucket, Key="k", VersionId=version,
                                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    with pytest.raises(ClientError) as suspended:
        s3.put_bucket_versioning(Bucket=bucket,
                                 VersioningConfiguration={"Status": "Suspended"})
    assert _code(suspended) == "InvalidBucketState"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    retention = s3.get_object_retention(Bucket=bucket, Key="k", VersionId=version)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert retention["RetainUntilDate"] == until

    # an overwrite in place and a plain delete succeed, as new versions, leaving the original
    again = s3.put_object(Bucket=bucket, Key="k", Body=b"rewritten")
    assert again["VersionId"] != version
    marker = s3.delete_object(Bucket=bucket, Key="k")
    assert marker["DeleteMarker"] is True
    body = s3.get_object(Bucket=bucket, Key="k", VersionId=version)["Body"].read()
    assert body == b"original"
