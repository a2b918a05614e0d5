"""Promotion end to end: reproducible bytes and PCRs, what changes PCR0, nothing readable leaks."""

from __future__ import annotations

import datetime as dt
import json
import os
import tarfile
import time
from pathlib import Path

import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.packager.helpers import PARAMS_CELL, STRATEGY_CELL, make_notebook
from zcbench.cli import main
from zcbench.errors import DataError, EnvError, UsageError, VerificationError
from zcbench.keys import LocalKeyBroker, read_sealed_header, unseal_strategy, unwrap_recipient
from zcbench.nitro import DevCA, NsmEmulator, load_commitment_pcrs
from zcbench.packager import (
    COMMITMENT_SCHEMA,
    extract_strategy,
    load_build,
    measure_local_image,
    package_notebook,
    read_app_image,
)
from zcbench.strategy import Batch, find_strategy, make_strategy


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return make_notebook(tmp_path / "nb" / "research.ipynb")


def test_two_builds_in_different_folders_are_identical(notebook: Path, tmp_path: Path) -> None:
    a = package_notebook(notebook, tmp_path / "one")
    old_umask = os.umask(0o077)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kathmandu"
    time.tzset()
    try:
        copy = make_notebook(tmp_path / "elsewhere" / "deeper" / "research.ipynb")
        os.utime(copy, (1_234_567_890, 1_234_567_890))
        b = package_notebook(copy, tmp_path / "x" / "y" / "two")
    finally:
        os.umask(old_umask)
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
    assert _tree(a.build_dir) == _tree(b.build_dir)
    assert a.pcrs == b.pcrs
    assert a.bundle_sha256 == b.bundle_sha256
    assert sorted(_tree(a.build_dir)) == [
        "bundle.tar",
        "commitment.json",
        "image/cmdline",
        "image/kernel",
        "image/ramdisk0",
        "image/ramdisk1",
        "manifest.json",
        "nitro/Dockerfile",
        "nitro/entrypoint.sh",
        "payload.sealed",
    ]


def test_strategy_edit_changes_pcr0_untagged_edit_does_not(tmp_path: Path) -> None:
    base = package_notebook(make_notebook(tmp_path / "a.ipynb"), tmp_path / "a")
    edited = STRATEGY_CELL.replace("out: list[Signal] = []", "out: list[Signal] = [ ]")
    assert edited != STRATEGY_CELL
    changed = package_notebook(
        make_notebook(tmp_path / "b.ipynb", strategy_cells=(PARAMS_CELL, edited)), tmp_path / "b"
    )
    assert changed.pcrs[0] != base.pcrs[0]
    assert changed.pcrs[2] != base.pcrs[2]
    assert changed.pcrs[1] == base.pcrs[1]  # the runtime did not change
    untagged = package_notebook(
        make_notebook(tmp_path / "c.ipynb", explore="plt.plot([1, 2, 4])  # one more look\n"),
        tmp_path / "c",
    )
    assert untagged.pcrs == base.pcrs
    assert _tree(untagged.build_dir) == _tree(base.build_dir)


def test_no_readable_strategy_source_anywhere(notebook: Path, tmp_path: Path) -> None:
    build = package_notebook(notebook, tmp_path / "out")
    source = extract_strategy(notebook).source
    words = ("prices", "fast", "slow", "long", "CrossParams", "SmaCross(", "input_fields")
    needles = [
        line.strip().encode()
        for line in source.splitlines()
        if any(w in line for w in words) and len(line.strip()) > 12
    ]
    needles += [b"CrossParams", b"self.prices", b"class SmaCross"]
    assert len(needles) > 10
    for name, data in _tree(build.build_dir).items():
        for needle in needles:
            assert needle not in data, (name, needle)
    sealed = build.paths.payload.read_bytes()
    for needle in needles:
        assert needle not in sealed


@pytest.mark.slow
def test_commitment_contract(notebook: Path, tmp_path: Path) -> None:
    build = package_notebook(notebook, tmp_path / "out", source_date_epoch=1_700_000_000)
    doc = json.loads(build.paths.commitment.read_text())
    required = {
        "schema",
        "strategy",
        "pcrs",
        "strategy_sha256",
        "lock_sha256",
        "zcbench_version",
        "source_date_epoch",
    }
    assert required <= set(doc)
    assert doc["schema"] == COMMITMENT_SCHEMA
    assert set(doc["pcrs"]) == {"0", "1", "2"}
    assert all(len(v) == 96 and v == v.lower() for v in doc["pcrs"].values())
    assert doc["source_date_epoch"] == 1_700_000_000
    assert doc["strategy"] == "sma_cross_test"
    assert load_commitment_pcrs(build.paths.commitment) == dict(build.pcrs)
    assert measure_local_image(build.build_dir) == dict(build.pcrs)
    manifest = json.loads(build.paths.manifest.read_text())
    assert manifest["input_fields"] == ["ts", "symbol", "price"]
    assert manifest["batching"] == {"count": 50}
    assert manifest["parameters"] == ["fast", "size", "slow"]  # data_path stays behind


def test_archives_are_normalised(notebook: Path, tmp_path: Path) -> None:
    build = package_notebook(notebook, tmp_path / "out", source_date_epoch=1_600_000_000)
    with tarfile.open(build.paths.bundle) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {"manifest.json", "requirements.lock"} <= set(names)
        assert "payload.sealed" not in names  # delivered at boot, never measured
        assert "runtime/zcbench/strategy/_contract.py" in names
        assert not any("cli/" in n or "packager/" in n or "__pycache__" in n for n in names)
        for m in members:
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (1_600_000_000, 0, 0, "", "")
            assert m.mode == 0o644
            assert m.isreg()
        assert tar.pax_headers == {}
    other = package_notebook(notebook, tmp_path / "other", source_date_epoch=1_600_000_001)
    assert other.bundle_sha256 != build.bundle_sha256


def test_load_build_detects_tampering(notebook: Path, tmp_path: Path) -> None:
    build = package_notebook(notebook, tmp_path / "out")
    loaded = load_build(build.build_dir)
    assert loaded.pcrs == build.pcrs
    assert loaded.manifest == build.manifest
    ramdisk1 = build.paths.ramdisks[1]
    data = bytearray(ramdisk1.read_bytes())
    data[600] ^= 1
    ramdisk1.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as info:
        load_build(build.build_dir)
    assert info.value.check == "pcr0"
    assert info.value.expected == build.pcrs[0].hex()
    assert load_build(build.build_dir, verify=False).pcrs == build.pcrs


def test_enclave_side_unseal_after_attested_release(notebook: Path, tmp_path: Path) -> None:
    """The whole key path: measured image -> emulated NSM -> broker -> CMS -> unseal -> run."""
    now = dt.datetime.now(dt.UTC)
    build = package_notebook(notebook, tmp_path / "out")
    # boot: measure what is loaded, set the emulator's PCRs from it
    pcrs = measure_local_image(build.build_dir)
    manifest = read_app_image(build.paths.ramdisks[1].read_bytes())
    sealed = build.paths.payload.read_bytes()
    header = read_sealed_header(sealed)
    enclave_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = enclave_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    nsm = NsmEmulator(pcrs=pcrs, ca=DevCA.load_or_create(now=now), clock=lambda: now)
    document = nsm.attestation(user_data=None, nonce=None, public_key=spki)
    answer = LocalKeyBroker().decrypt(
        {
            "CiphertextBlob": header.data_key_blob,
            "KeyId": header.key_id,
            "Recipient": {
                "AttestationDocument": document,
                "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            },
        }
    )
    data_key = unwrap_recipient(answer["CiphertextForRecipient"], enclave_key)
    opened = unseal_strategy(sealed, data_key)
    assert opened.content_sha256 == manifest.sealed_content_sha256
    namespace: dict[str, object] = {"__name__": "sealed_strategy"}
    exec(compile(opened.module_source, "<sealed>", "exec", dont_inherit=True), namespace)
    strategy = make_strategy(find_strategy(namespace), opened.parameters)
    prices = [100, 100, 100, 100, 100, 100, 100, 100, 120, 130, 140]
    events = pl.DataFrame(
        {"ts": list(range(len(prices))), "symbol": ["ABC"] * len(prices), "price": prices}
    )
    signals = strategy.on_batch(Batch(seq=0, events=events))
    assert [(s.side, s.quantity) for s in signals] == [("buy", 10)]
    # the same request from an image with another PCR0 is refused
    other = NsmEmulator(pcrs={**pcrs, 0: bytes(range(48))}, ca=DevCA.load_or_create(now=now))
    bad_doc = other.attestation(user_data=None, nonce=None, public_key=spki)
    from zcbench.keys import KeyReleaseRefused

    with pytest.raises(KeyReleaseRefused, match=r"^refused"):
        LocalKeyBroker().decrypt(
            {
                "CiphertextBlob": header.data_key_blob,
                "Recipient": {
                    "AttestationDocument": bad_doc,
                    "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
                },
            }
        )


def test_bad_inputs(notebook: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not part of a build"):
        package_notebook(notebook, out)
    with pytest.raises(EnvError, match="lock"):
        package_notebook(notebook, tmp_path / "o", lock_path=tmp_path / "missing.lock")
    with pytest.raises(UsageError, match="batching"):
        package_notebook(notebook, tmp_path / "o", batching={"count": 0})
    unfrozen = PARAMS_CELL.replace("@dataclass(frozen=True)", "@dataclass")
    nb = make_notebook(tmp_path / "u.ipynb", strategy_cells=(unfrozen, STRATEGY_CELL))
    with pytest.raises(DataError, match="frozen"):
        package_notebook(nb, tmp_path / "o")
    raising = PARAMS_CELL + "\nraise RuntimeError('boom')\n"
    nb = make_notebook(tmp_path / "r.ipynb", strategy_cells=(raising, STRATEGY_CELL))
    with pytest.raises(DataError, match="fail to load: RuntimeError: boom"):
        package_notebook(nb, tmp_path / "o")
    assert not (tmp_path / "o" / "commitment.json").exists()


def test_rebuild_into_same_folder(notebook: Path, tmp_path: Path) -> None:
    a = package_notebook(notebook, tmp_path / "out")
    before = _tree(a.build_dir)
    b = package_notebook(notebook, tmp_path / "out")
    assert _tree(b.build_dir) == before


def test_cli_package_json(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    code = main(["package", str(notebook), "-o", str(out), "--json", "-p", "fast", "4"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["pcrs"]) == {"0", "1", "2"}
    assert summary["bundle_sha256"] == load_build(out).bundle_sha256
    base = package_notebook(notebook, tmp_path / "base")
    assert summary["pcrs"]["0"] != base.pcrs[0].hex()  # the parameter is sealed, hence measured
    assert main(["package", str(tmp_path / "missing.ipynb")]) == 2
    bad = make_notebook(tmp_path / "bad.ipynb", strategy_cells=())
    assert main(["package", str(bad), "-o", str(tmp_path / "bad")]) == 1
    assert "no code cell is tagged 'strategy'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_check_reproducible(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repro"
    code = main(["package", str(notebook), "-o", str(out), "--check-reproducible", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    rep = summary["reproducible"]
    assert rep["identical"] is True
    assert rep["differences"] == []
    assert len(rep["builds"]) == 3
    assert len({json.dumps(p, sort_keys=True) for p in rep["pcrs"]}) == 1
    assert rep["pcrs"][0] == summary["pcrs"]


def test_measure_cli_on_a_build_folder(
    notebook: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = package_notebook(notebook, tmp_path / "out")
    assert main(["measure", str(build.build_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: out[k] for k in ("0", "1", "2")} == {str(i): v.hex() for i, v in build.pcrs.items()}
    (build.paths.kernel).unlink()
    assert main(["measure", str(build.build_dir)]) == 3


def test_rendered_enclave_templates(notebook: Path, tmp_path: Path) -> None:
    build = package_notebook(notebook, tmp_path / "out", source_date_epoch=1_650_000_000)
    dockerfile = build.paths.dockerfile.read_text()
    assert "FROM python:3.11-slim-bookworm@sha256:" in dockerfile
    assert "SOURCE_DATE_EPOCH=1650000000" in dockerfile
    assert "pip install --require-hashes" in dockerfile
    assert "COPY bundle.tar" in dockerfile
    assert "$" not in dockerfile.replace("${", "")  # every placeholder was filled
    entry = build.paths.entrypoint.read_text()
    assert "exec python -m zcbench.enclave --vsock 5005 --bundle /zcbench" in entry
    assert build.paths.entrypoint.stat().st_mode & 0o777 == 0o755
    kernel = json.loads(build.paths.kernel.read_text())
    assert kernel["entrypoint"] == ["python", "-m", "zcbench.enclave"]
    with pytest.raises(EnvError, match="template"):
        package_notebook(notebook, tmp_path / "o", templates_dir=tmp_path / "none")


def test_load_build_detects_bundle_and_manifest_edits(notebook: Path, tmp_path: Path) -> None:
    build = package_notebook(notebook, tmp_path / "out")
    original = build.paths.bundle.read_bytes()
    build.paths.bundle.write_bytes(original + bytes(512))
    with pytest.raises(VerificationError) as info:
        load_build(build.build_dir)
    assert info.value.check == "bundle_sha256"
    build.paths.bundle.write_bytes(original)
    manifest = json.loads(build.paths.manifest.read_text())
    manifest["batching"] = {"count": 1}
    build.paths.manifest.write_text(json.dumps(manifest))
    with pytest.raises(VerificationError) as info:
        load_build(build.build_dir)
    assert info.value.check == "manifest"


@pytest.mark.slow
def test_reproducibility_check_reports_differences(notebook: Path, tmp_path: Path) -> None:
    from zcbench.packager import BUILD_VARIANTS, check_reproducible, verify_reproducible

    other = package_notebook(notebook, tmp_path / "other", source_date_epoch=99)
    report = check_reproducible(
        notebook, reference_dir=other.build_dir, source_date_epoch=0, variants=BUILD_VARIANTS[:1]
    )
    assert not report.identical
    assert "bundle.tar" in report.differences
    assert "commitment.json" in report.differences
    assert "nitro/Dockerfile" in report.differences
    assert report.pcrs[0] != report.pcrs[1]
    with pytest.raises(VerificationError) as info:
        verify_reproducible(
            notebook,
            reference_dir=other.build_dir,
            source_date_epoch=0,
            variants=BUILD_VARIANTS[:1],
        )
    assert info.value.check == "reproducible"


def test_check_build_reports_every_failure(notebook: Path, tmp_path: Path) -> None:
    from zcbench.packager import check_build

    build = package_notebook(notebook, tmp_path / "out")
    assert check_build(build.build_dir).ok
    build.paths.cmdline.write_bytes(b"zcbench.enclave transport=unix network=host")
    build.paths.bundle.write_bytes(b"")
    report = check_build(build.build_dir)
    assert not report.ok
    assert [f.check for f in report.failures] == ["pcr0", "pcr1", "bundle_sha256"]
    assert report.failures[0].expected == build.pcrs[0].hex()
    assert report.measured[2] == build.pcrs[2]  # ramdisk 1 untouched
