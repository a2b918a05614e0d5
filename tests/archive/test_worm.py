"""The WORM archive against a real SeaweedFS S3 server on loopback: the server's Object Lock in
COMPLIANCE mode holds (delete, shorten, downgrade, suspend all refused; an overwrite is a new
version), ``zcbench archive`` uploads a real run under it, and ``archive verify`` catches a
missing or altered object."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests._seaweed import SeaweedS3, running_seaweed
from tests.live_world import LiveWorld
from zcbench.cli import main

pytestmark = pytest.mark.slow


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


# --- zcbench archive on a real run ------------------------------------------------------------


@pytest.fixture
def run_dir(live_world_copy: LiveWorld) -> Path:
    """A fresh copy of the shared run (each test archives its own), its build beside it."""
    return live_world_copy.run


@pytest.fixture
def aws_env(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed


def _archive(run: Path, server: SeaweedS3, bucket: str, *extra: str) -> int:
    return main(["archive", str(run), "--s3", server.endpoint, "--bucket", bucket,
                 "--retain-days", "1900", *extra])


def _verify(run: Path, server: SeaweedS3, bucket: str) -> int:
    return main(["archive", "verify", str(run), "--s3", server.endpoint, "--bucket", bucket,
                 "--json"])


def _manifest(run: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run / "archive.json").read_text())
    return data


def _bucket() -> str:
    return f"records-{secrets.token_hex(4)}"


def test_archive_uploads_every_record_under_compliance_and_verifies(
    run_dir: Path, aws_env: SeaweedS3, s3: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = _bucket()
    assert _archive(run_dir, aws_env, bucket) == 0
    out = capsys.readouterr()
    assert aws_env.secret_key not in out.out + out.err
    assert aws_env.access_key not in out.out + out.err
    manifest = _manifest(run_dir)
    [archive] = manifest["archives"]
    assert archive["mode"] == "COMPLIANCE"
    assert archive["lock_probe"]["worm"] is True
    paths = {o["path"] for o in archive["objects"]}
    segments = {f"run/log/{p.name}" for p in (run_dir / "log").iterdir()}
    assert segments <= paths
    assert {"run/boot.cbor", "run/journal.jsonl", "run/summary.json", "build/commitment.json",
            "build/manifest.json", "build/bundle.tar"} <= paths
    assert "build/payload.sealed" not in paths
    assert "run/archive.json" not in paths
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"][
        "ObjectLockEnabled"] == "Enabled"  # created with the lock
    for item in archive["objects"]:
        local = (run_dir / item["path"][4:]) if item["path"].startswith("run/") else (
            run_dir.parent / item["path"])
        assert hashlib.sha256(local.read_bytes()).hexdigest() == item["sha256"]
        retention = s3.get_object_retention(Bucket=bucket, Key=item["key"],
                                            VersionId=item["version_id"])["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
    assert _verify(run_dir, aws_env, bucket) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[0]["verified"] is True
    assert report[0]["objects"] == len(archive["objects"])


def test_archived_versions_survive_delete_overwrite_retention_and_suspension(
    run_dir: Path, aws_env: SeaweedS3, s3: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = _bucket()
    assert _archive(run_dir, aws_env, bucket) == 0
    item = next(o for o in _manifest(run_dir)["archives"][0]["objects"]
                if o["path"].startswith("run/log/seg-"))
    key, version = item["key"], item["version_id"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
    with pytest.raises(ClientError):
        s3.put_object_retention(Bucket=bucket, Key=key, VersionId=version, Retention={
            "Mode": "COMPLIANCE", "RetainUntilDate": _until(1)})
    with pytest.raises(ClientError):
        s3.put_object_retention(Bucket=bucket, Key=key, VersionId=version, Retention={
            "Mode": "GOVERNANCE", "RetainUntilDate": _until(1900)})
    with pytest.raises(ClientError):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    overwrite = s3.put_object(Bucket=bucket, Key=key, Body=b"a rewritten history")
    assert overwrite["VersionId"] != version
    s3.delete_object(Bucket=bucket, Key=key)  # a delete marker on top
    capsys.readouterr()
    assert _verify(run_dir, aws_env, bucket) == 0  # by VersionId, the record is untouched
    body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == item["sha256"]


def _point(run: Path, path_prefix: str, **changes: str) -> dict[str, Any]:
    manifest = _manifest(run)
    item: dict[str, Any] = next(o for o in manifest["archives"][0]["objects"]
                                if o["path"].startswith(path_prefix))
    item.update(changes)
    (run / "archive.json").write_text(json.dumps(manifest))
    return item


def test_verify_names_a_missing_an_altered_and_a_locally_changed_object(
    run_dir: Path, aws_env: SeaweedS3, s3: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = _bucket()
    assert _archive(run_dir, aws_env, bucket) == 0
    seg = next(o for o in _manifest(run_dir)["archives"][0]["objects"]
               if o["path"].startswith("run/log/seg-"))
    # the version recorded for the boot document is not in the bucket
    _point(run_dir, "run/boot.cbor", version_id="0" * 32)
    # the version recorded for the segment is one holding other bytes (an overwrite's)
    rewritten = s3.put_object(Bucket=bucket, Key=seg["key"], Body=b"other bytes")
    _point(run_dir, seg["path"], version_id=rewritten["VersionId"])
    journal = run_dir / "journal.jsonl"
    journal.write_bytes(journal.read_bytes() + b'{"forged": true}\n')
    capsys.readouterr()
    assert _verify(run_dir, aws_env, bucket) == 1
    [report] = json.loads(capsys.readouterr().out)
    found = {(f["problem"], f["path"]) for f in report["findings"]}
    assert found == {("missing", "run/boot.cbor"), ("altered", seg["path"]),
                     ("local_altered", "run/journal.jsonl")}
    assert main(["archive", "verify", str(run_dir), "--s3", aws_env.endpoint, "--bucket",
                 bucket]) == 1
    text = capsys.readouterr().out
    assert "missing: run/boot.cbor" in text
    assert f"altered: {seg['path']}" in text


def test_refusals_write_nothing(run_dir: Path, aws_env: SeaweedS3, s3: Any,
                                capsys: pytest.CaptureFixture[str]) -> None:
    plain = _bucket()
    s3.create_bucket(Bucket=plain)
    assert _archive(run_dir, aws_env, plain) == 1
    assert "without Object Lock" in capsys.readouterr().err
    short = _bucket()
    assert main(["archive", str(run_dir), "--s3", aws_env.endpoint, "--bucket", short,
                 "--retain-days", "30"]) == 2
    assert "shorter than the minimum" in capsys.readouterr().err
    assert not (run_dir / "archive.json").exists()
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=short)  # refused before anything was made
    assert s3.list_objects_v2(Bucket=plain).get("KeyCount", 0) == 0


def _ledger_of(run: Path, folder: Path) -> Path:
    """A ledger whose genesis is the run's PCR0 and that holds the run's run-start."""
    from zcbench.auditlog.checkpoint import log_origin, log_verifier
    from zcbench.ledger import Ledger
    from zcbench.ledger.entries import RunStartEntry
    from zcbench.nitro import parse_document

    document = (run / "boot.cbor").read_bytes()
    parsed = parse_document(document)
    pcr0 = bytes(parsed.pcrs[0])
    assert parsed.public_key is not None
    origin = log_origin(pcr0, json.loads((run / "summary.json").read_text())["run_id"])
    with Ledger.init_insecure_host_key(
            folder, origin="acme.example/zcbench/demo", genesis_pcr0=pcr0,
            commitment_sha256=b"\x01" * 32) as ledger:
        ledger.append(RunStartEntry(pcr0, origin, log_verifier(bytes(parsed.public_key),
                                                               origin).vkey,
                                    hashlib.sha256(document).digest(), None))
    return folder


def test_archive_into_the_ledger_and_verify_against_it(
    run_dir: Path, aws_env: SeaweedS3, s3: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    ledger = _ledger_of(run_dir, run_dir.parent / "ledger")
    empty = run_dir.parent / "empty"
    from zcbench.ledger import Ledger

    Ledger.init_insecure_host_key(
            empty, origin="acme.example/zcbench/demo", genesis_pcr0=b"\x07" * 48,
            commitment_sha256=b"\x01" * 32).close()
    bucket = _bucket()
    # a ledger without the run's run-start is refused before anything is uploaded
    assert _archive(run_dir, aws_env, bucket, "--ledger", str(empty)) == 2
    assert "no run-start" in capsys.readouterr().err
    assert not (run_dir / "archive.json").exists()
    assert _archive(run_dir, aws_env, bucket, "--ledger", str(ledger)) == 0
    assert "archive entries appended" in capsys.readouterr().out
    objects = _manifest(run_dir)["archives"][0]["objects"]
    assert main(["ledger", "verify", str(ledger), "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)["runs"]
    assert sum(a["objects"] for a in run["archives"]) == len(objects)
    assert main(["ledger", "show", str(ledger)]) == 0
    assert f"objects in bucket {bucket}" in capsys.readouterr().out
    verify = ["archive", "verify", str(run_dir), "--s3", aws_env.endpoint, "--bucket", bucket,
              "--ledger", str(ledger), "--json"]
    assert main(verify) == 0
    assert json.loads(capsys.readouterr().out)[0]["objects"] == len(objects)
    # an overwrite's version put in the manifest with its hash: the manifest alone passes,
    # the ledger names the object
    seg = next(o for o in objects if o["path"].startswith("run/log/seg-"))
    rewritten = s3.put_object(Bucket=bucket, Key=seg["key"], Body=b"other bytes",
                              ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=_until(2000))
    _point(run_dir, seg["path"], version_id=rewritten["VersionId"],
           sha256=hashlib.sha256(b"other bytes").hexdigest())
    (run_dir / seg["path"][4:]).write_bytes(b"other bytes")
    assert _verify(run_dir, aws_env, bucket) == 0
    capsys.readouterr()
    assert main(verify) == 1
    [report] = json.loads(capsys.readouterr().out)
    found = {(f["problem"], f["path"], f["version_id"]) for f in report["findings"]}
    assert ("not_in_ledger", seg["path"], rewritten["VersionId"]) in found


def test_a_kept_server_reads_back_what_an_earlier_start_stored(tmp_path: Path) -> None:
    # 'make archive-demo' stops its server; 'make archive-verify-demo' starts it again over the
    # kept folder, and the endpoint and credentials the archive was made with read it back.
    kept = tmp_path / "s3"
    with running_seaweed(kept) as first:
        s3 = first.client()
        bucket = _locked_bucket(s3)
        version = s3.put_object(Bucket=bucket, Key="k", Body=b"kept", ObjectLockMode="COMPLIANCE",
                                ObjectLockRetainUntilDate=_until())["VersionId"]
    with running_seaweed(kept) as again:
        assert (again.endpoint, again.access_key) == (first.endpoint, first.access_key)
        body = again.client().get_object(Bucket=bucket, Key="k", VersionId=version)["Body"]
        assert body.read() == b"kept"
    assert (kept / "data").is_dir()  # kept: never removed on stop
