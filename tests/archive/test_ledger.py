"""Archives in the ledger: the ``archive`` entry (format, bound, rule), appending an archive's
entries, and ``archive verify --ledger`` holding every object to the ledger's hashes, on moto's
in-process S3 (the lock itself is proven on SeaweedFS in tests/archive/test_worm.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from moto import mock_aws

from zcbench.archive import Archive, ArchivedObject, ArchiveManifest, S3Endpoint, write_manifest
from zcbench.archive.ledger import archive_entries, archive_record_sha256, record_archives
from zcbench.archive.verify import check_archive
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.errors import UsageError
from zcbench.ledger import Ledger
from zcbench.ledger._errors import LedgerFormatError, LedgerRuleError
from zcbench.ledger.entries import (
    MAX_ARCHIVE_OBJECTS,
    MAX_ENTRY_BYTES,
    ArchiveEntry,
    ArchiveEntryObject,
    RunStartEntry,
    decode_entry,
    encode_entry,
)
from zcbench.ledger.verify import check_ledger

T0 = 1_700_000_000 * 10**9
P0 = hashlib.sha384(b"build 0").digest()
ORIGIN = "acme.example/zcbench/ma-crossover"
RUN_ID = "run-0123"
BUCKET = "worm"
LOCAL = S3Endpoint("http://127.0.0.1:9")
UNTIL = dt.datetime(2031, 1, 2, tzinfo=dt.UTC)


def _obj(i: int) -> ArchiveEntryObject:
    return ArchiveEntryObject(f"zcbench/{RUN_ID}/run/log/seg-{i:08d}.zlog", f"v{i}",
                              hashlib.sha256(bytes([i % 256])).digest())


def test_archive_entry_round_trips_is_strict_and_bounded() -> None:
    body = ArchiveEntry("zcbench/abc/r", BUCKET, b"\x01" * 32, T0, (_obj(0), _obj(1)))
    data = encode_entry(index=3, time_ns=T0, body=body)
    assert decode_entry(data).body == body
    doc = cbor2.loads(data)
    objects = doc["body"]["objects"]
    for bad in ([], [{**objects[0], "extra": 1}], [{**objects[0], "sha256": b"\x00"}],
                [{"key": "k", "version_id": "", "sha256": b"\x00" * 32}]):
        with pytest.raises(LedgerFormatError, match="objects"):
            decode_entry(cbor2.dumps({**doc, "body": {**doc["body"], "objects": bad}},
                                     canonical=True))
    with pytest.raises(ValueError, match="objects"):
        encode_entry(index=0, time_ns=T0, body=ArchiveEntry(
            "o", BUCKET, b"\x01" * 32, T0, tuple(_obj(i) for i in range(MAX_ARCHIVE_OBJECTS + 1))))
    # the packer keeps the largest objects under the entry bound, several entries per archive
    huge = tuple(ArchivedObject(f"p{i}", "k" * 1000 + str(i), "v" * 1000, "ab" * 32, 1)
                 for i in range(100))
    archive = Archive(str(LOCAL), BUCKET, "zcbench", "2026-01-02T03:04:05Z", "COMPLIANCE",
                      "2031-01-02T00:00:00Z", {}, huge)
    bodies = archive_entries("zcbench/abc/r", archive)
    assert len(bodies) > 1
    assert sum(len(b.objects) for b in bodies) == 100
    assert [o.key for b in bodies for o in b.objects] == [o.key for o in huge]
    for b in bodies:
        assert len(encode_entry(index=2**64 - 1, time_ns=T0, body=b)) < MAX_ENTRY_BYTES
        assert b.manifest_sha256 == archive_record_sha256(archive)


def _ledger(tmp_path: Path) -> tuple[Ledger, str]:
    ledger = Ledger.init_insecure_host_key(tmp_path / "ledger", origin=ORIGIN, genesis_pcr0=P0,
                         commitment_sha256=b"\x01" * 32, at_ns=T0)
    origin = log_origin(P0, RUN_ID)
    signer = LogSigner(Ed25519PrivateKey.generate(), origin)
    ledger.append(RunStartEntry(P0, origin, signer.vkey, b"\x05" * 32, None), at_ns=T0 + 1)
    return ledger, origin


def test_an_archive_of_a_run_the_ledger_never_saw_is_refused(tmp_path: Path) -> None:
    ledger, origin = _ledger(tmp_path)
    with ledger:
        with pytest.raises(LedgerRuleError, match="no run-start"):
            ledger.append(ArchiveEntry(log_origin(P0, "run-9999"), BUCKET, b"\x01" * 32, T0,
                                       (_obj(0),)), at_ns=T0 + 2)
        with pytest.raises(LedgerRuleError, match="twice"):
            ledger.append(ArchiveEntry(origin, BUCKET, b"\x01" * 32, T0, (_obj(0), _obj(0))),
                          at_ns=T0 + 2)
        assert ledger.size == 2
    archive = Archive(str(LOCAL), BUCKET, "zcbench", "2026-01-02T03:04:05Z", "COMPLIANCE",
                      "2031-01-02T00:00:00Z", {}, (ArchivedObject("p", "k", "v", "ab" * 32, 1),))
    with pytest.raises(UsageError, match="no run-start for run run-9999"):
        record_archives(tmp_path / "ledger", [("run-9999", archive)])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        yield client


def _put(client: Any, key: str, data: bytes) -> str:
    got = client.put_object(Bucket=BUCKET, Key=key, Body=data, ObjectLockMode="COMPLIANCE",
                            ObjectLockRetainUntilDate=UNTIL)
    return str(got["VersionId"])


def _archived_run(tmp_path: Path, client: Any) -> tuple[Path, ArchiveManifest]:
    run = tmp_path / "run"
    (run / "log").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"run_id": RUN_ID, "image": ""}))
    files = {"run/summary.json": (run / "summary.json").read_bytes(),
             "run/log/seg-00000000.zlog": b"records"}
    (run / "log" / "seg-00000000.zlog").write_bytes(files["run/log/seg-00000000.zlog"])
    objects = tuple(ArchivedObject(name, f"zcbench/{RUN_ID}/{name}",
                                   _put(client, f"zcbench/{RUN_ID}/{name}", data),
                                   hashlib.sha256(data).hexdigest(), len(data))
                    for name, data in files.items())
    archive = Archive(str(LOCAL), BUCKET, "zcbench", "2026-01-02T03:04:05Z", "COMPLIANCE",
                      "2031-01-02T00:00:00Z", {}, objects)
    manifest = ArchiveManifest(RUN_ID, (archive,))
    write_manifest(run, manifest)
    return run, manifest


def test_archive_verify_holds_every_object_to_the_ledger(tmp_path: Path, s3: Any) -> None:
    ledger, _ = _ledger(tmp_path)
    ledger.close()
    run, manifest = _archived_run(tmp_path, s3)
    folder = tmp_path / "ledger"
    # before the ledger records it, the archive is not in the ledger: a failed check
    report = check_archive(run, endpoint=LOCAL, bucket=BUCKET, client=s3, ledger=folder)
    assert not report.verified
    assert {f.problem for f in report.findings} == {"not_in_ledger", "ledger_mismatch"}
    assert record_archives(folder, [(RUN_ID, manifest.archives[0])]) == [2]
    ledger_report = check_ledger(folder)
    assert ledger_report.ok, ledger_report.message
    assert ledger_report.entries[2].type == "archive"
    report = check_archive(run, endpoint=LOCAL, bucket=BUCKET, client=s3, ledger=folder)
    assert report.verified, report.summary_lines()
    assert report.objects == 2

    # an object replaced by a new version and the manifest edited to match: the manifest
    # alone verifies, the ledger names both the edited record and the unrecorded version
    seg = manifest.archives[0].objects[1]
    forged = _put(s3, seg.key, b"forged")
    edited = ArchivedObject(seg.path, seg.key, forged, hashlib.sha256(b"forged").hexdigest(), 6)
    archive = manifest.archives[0]
    forged_archive = Archive(archive.endpoint, archive.bucket, archive.prefix,
                             archive.archived_at, archive.mode, archive.retain_until,
                             archive.lock_probe, (archive.objects[0], edited))
    write_manifest(run, ArchiveManifest(RUN_ID, (forged_archive,)))
    (run / "log" / "seg-00000000.zlog").write_bytes(b"forged")
    assert check_archive(run, endpoint=LOCAL, bucket=BUCKET, client=s3).verified
    report = check_archive(run, endpoint=LOCAL, bucket=BUCKET, client=s3, ledger=folder)
    assert not report.verified
    problems = {(f.problem, f.key, f.version_id) for f in report.findings}
    assert ("not_in_ledger", seg.key, forged) in problems
    assert ("ledger_mismatch", "", "") in problems

    # a version the ledger names that the bucket no longer holds (moto, like a real lock,
    # refuses to delete one, so the ledger names one the bucket never had): named as missing
    write_manifest(run, manifest)
    (run / "log" / "seg-00000000.zlog").write_bytes(b"records")
    gone = ArchivedObject(seg.path, seg.key, "gone-version", seg.sha256, seg.size)
    record_archives(folder, [(RUN_ID, Archive(
        archive.endpoint, archive.bucket, archive.prefix, archive.archived_at, archive.mode,
        archive.retain_until, archive.lock_probe, (gone,)))])
    report = check_archive(run, endpoint=LOCAL, bucket=BUCKET, client=s3, ledger=folder)
    assert [(f.problem, f.path, f.version_id) for f in report.findings] == [
        ("missing", seg.key, "gone-version")]
