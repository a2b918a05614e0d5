"""Fast tests of the archive's error paths: endpoint and retention values, the strict manifest,
an unreachable endpoint, and (on moto's in-process S3) a bucket without Object Lock and one whose
lock is not enforced, both refused as WORM with nothing recorded. moto is never the proof that a
lock holds (it lets COMPLIANCE retention be shortened): the SeaweedFS tests are."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from zcbench.archive import (
    Archive,
    ArchivedObject,
    ArchiveManifest,
    LockNotEnforcedError,
    NotWormBucketError,
    RetentionPolicy,
    S3Endpoint,
    archive_run,
    check_archive,
    read_manifest,
    run_files,
    write_manifest,
)
from zcbench.cli import main
from zcbench.errors import DataError, UsageError

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
LOCAL = S3Endpoint("http://127.0.0.1:9")


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "log").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"run_id": "run-0123", "image": ""}))
    (run / "boot.cbor").write_bytes(b"\x84boot")
    (run / "log" / "seg-00000000.zlog").write_bytes(b"records")
    return run


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("value", ["ftp://x", "http://", "http://u:p@host:1", "http://h/p",
                                   "http://h?q=1", "s3.amazonaws.com"])
def test_endpoint_values_refused(value: str) -> None:
    with pytest.raises(UsageError):
        S3Endpoint(value)


def test_endpoint_forms() -> None:
    assert str(S3Endpoint("aws")) == "aws"
    assert S3Endpoint("aws").url is None
    assert str(S3Endpoint("http://127.0.0.1:8333/")) == "http://127.0.0.1:8333"


def test_retention_policy() -> None:
    policy = RetentionPolicy(min_days=30)
    assert policy.check(NOW + dt.timedelta(days=30), NOW) == NOW + dt.timedelta(days=30)
    with pytest.raises(UsageError, match="shorter than the minimum of 30 days"):
        policy.check(NOW + dt.timedelta(days=29, hours=23), NOW)
    with pytest.raises(UsageError, match="time zone"):
        policy.check(dt.datetime(2040, 1, 1), NOW)
    with pytest.raises(UsageError):
        RetentionPolicy(min_days=0)
    assert RetentionPolicy().min_days >= 5 * 365


def _manifest() -> ArchiveManifest:
    item = ArchivedObject("run/boot.cbor", "zcbench/run-0123/run/boot.cbor", "v1", "ab" * 32, 5)
    archive = Archive("http://127.0.0.1:9", "b", "zcbench", "2026-01-02T03:04:05Z",
                      "COMPLIANCE", "2031-01-02T03:04:05Z", {"worm": True}, (item,))
    return ArchiveManifest("run-0123", (archive,))


def test_manifest_round_trip_and_strictness(run_dir: Path) -> None:
    assert read_manifest(run_dir) is None
    path = write_manifest(run_dir, _manifest())
    assert read_manifest(run_dir) == _manifest()
    assert not path.with_name("archive.json.tmp").exists()
    good = json.loads(path.read_text())
    bad_cases: list[Any] = []
    for mutate in (
        lambda d: d.update(extra=1),
        lambda d: d.update(schema="zcbench.archive/9"),
        lambda d: d["archives"][0].update(mode="GOVERNANCE"),
        lambda d: d["archives"][0]["objects"][0].update(sha256="AB" * 32),
        lambda d: d["archives"][0]["objects"][0].update(size=-1),
        lambda d: d["archives"][0]["objects"][0].update(path="../escape"),
        lambda d: d["archives"][0].update(retain_until="2031-01-02"),
        lambda d: d["archives"][0].update(objects=[]),
        lambda d: d["archives"][0]["objects"][0].pop("version_id"),
    ):
        case = json.loads(json.dumps(good))
        mutate(case)
        bad_cases.append(case)
    for case in bad_cases:
        path.write_text(json.dumps(case))
        with pytest.raises(DataError):
            read_manifest(run_dir)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not JSON"):
        read_manifest(run_dir)


def test_a_bucket_without_object_lock_is_refused(run_dir: Path, aws: Any) -> None:
    aws.create_bucket(Bucket="plain-bucket")
    with pytest.raises(NotWormBucketError, match="without Object Lock"):
        archive_run(run_dir, endpoint=LOCAL, bucket="plain-bucket", client=aws,
                    retain_until=NOW + dt.timedelta(days=2000), now=lambda: NOW)
    assert not (run_dir / "archive.json").exists()
    assert aws.list_objects_v2(Bucket="plain-bucket").get("KeyCount", 0) == 0


def test_a_lock_the_server_does_not_enforce_is_not_called_worm(run_dir: Path, aws: Any) -> None:
    # moto takes the lock but lets COMPLIANCE retention be shortened and versioning suspended
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(LockNotEnforcedError, match="not WORM") as refused:
        archive_run(run_dir, endpoint=LOCAL, bucket="moto-lock", client=aws,
                    retain_until=now + dt.timedelta(days=2000), now=lambda: now)
    assert "shortening COMPLIANCE retention" in str(refused.value)
    assert not (run_dir / "archive.json").exists()
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket="moto-lock").get("Contents", [])]
    assert all("/.lock-probe/" in k for k in keys)  # only the probe, no record
    assert aws.get_bucket_versioning(Bucket="moto-lock")["Status"] == "Enabled"  # undone


def test_verify_of_a_run_never_archived_fails(run_dir: Path, aws: Any) -> None:
    report = check_archive(run_dir, endpoint=LOCAL, bucket="any-bucket", client=aws)
    assert not report.verified
    assert report.findings[0].problem == "not_archived"


def test_an_unreachable_endpoint_is_an_environment_error(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main(["archive", str(run_dir), "--s3", url, "--bucket", "records",
                 "--retain-days", "2000"])
    err = capsys.readouterr().err
    assert code == 3
    assert "does not answer" in err
    assert "testing-secret" not in err
    assert not (run_dir / "archive.json").exists()


def test_no_credentials_is_an_environment_error(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(["archive", str(run_dir), "--s3", "http://127.0.0.1:9", "--bucket", "records",
                 "--retain-days", "2000"])
    assert code == 3
    assert "no AWS credentials" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "b"],
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "b", "--retain-days", "9",
     "--retain-until", "2040-01-01"],
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "b", "--retain-until", "2040-01-01T00"],
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "b", "--retain-until", "soon"],
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "b", "--retain-days", "0"],
    ["archive", "verify", "RUN", "--s3", "http://h:1", "--bucket", "b", "--retain-days", "9"],
    ["archive", "verify", "--s3", "http://h:1", "--bucket", "b"],
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "B_ad", "--retain-days", "3000"],
    ["archive", "RUN", "--s3", "http://h:1", "--bucket", "bucket", "--retain-days", "3000",
     "--prefix", "../up"],
    ["archive", "missing-run", "--s3", "http://h:1", "--bucket", "bucket",
     "--retain-days", "3000"],
])
def test_usage_errors(argv: list[str], run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(run_dir) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("zcbench: ")


def test_run_files_never_follow_a_link_or_take_the_manifest(run_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not the run's")
    (run_dir / "log" / "linked-file").symlink_to(outside / "secret")
    (run_dir / "linked-dir").symlink_to(outside)
    (run_dir / "archive.json").write_text("{}")
    (run_dir / "log" / "x.tmp").write_text("half")
    names = [name for name, _ in run_files(run_dir)]
    assert names == ["run/boot.cbor", "run/log/seg-00000000.zlog", "run/summary.json"]
