"""commitment.json and manifest.json: one owning type each, one reader, one error per kind of fault
(a missing file is a usage error, exit 2; malformed content exit 1), whichever command reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.packager.helpers import make_notebook
from zcbench.cli import main
from zcbench.enclave.manifest import MANIFEST_SCHEMA, BundleManifest
from zcbench.errors import DataError, UsageError
from zcbench.nitro.commitment import COMMITMENT_SCHEMA, Commitment
from zcbench.packager import Build, load_build, package_notebook


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    root = tmp_path_factory.mktemp("documents")
    return package_notebook(make_notebook(root / "nb" / "research.ipynb"), root / "build")


def test_round_trips_are_byte_exact(build: Build) -> None:
    raw = build.paths.commitment.read_bytes()
    assert Commitment.from_json(raw).to_json() == raw
    assert Commitment.load(build.paths.commitment) == build.commitment
    raw = build.paths.manifest.read_bytes()
    assert BundleManifest.from_json(raw).to_json() == raw
    assert BundleManifest.load(build.paths.manifest) == build.manifest
    assert json.loads(raw)["schema"] == MANIFEST_SCHEMA == BundleManifest.SCHEMA
    assert Commitment.SCHEMA == COMMITMENT_SCHEMA
    # a newer packager's facts survive in a commitment; a manifest is exact
    newer = {**json.loads(build.paths.commitment.read_text()), "provenance": {"x": 1}}
    assert Commitment.from_json(json.dumps(newer)).to_dict()["provenance"] == {"x": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "zcbench.manifest/1"}, "expected 'zcbench.manifest/2'"),
        ({"extra": 1}, "unexpected keys ['extra']"),
        ({"strategy_sha256": "AB" * 32}, "64 lowercase hex"),
        ({"batching": {"count": 0}}, "batching"),
        ({"batching": {"count": 5, "width_ns": 5}}, "batching"),
        ({"input_fields": "price"}, "list of strings"),
        ({"seal": {"alg": "AES-256-GCM-SIV", "key_id": "k"}}, "'seal'"),
        ({"source_date_epoch": -1}, "source_date_epoch"),
        ({"strategy": "../x"}, "not a strategy name"),
    ],
)
def test_manifest_is_strict(build: Build, change: dict[str, object], message: str) -> None:
    doc = {**json.loads(build.paths.manifest.read_text()), **change}
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BundleManifest.from_json(json.dumps(doc), source="m.json")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"schema": "zcbench.commitment/1", "pcrs": {"0": "aa"}, "pcrs": {}}', "twice"),
        ('{"schema": "zcbench.commitment/1", "pcrs": {"٠": "' + "aa" * 48 + '"}}', "index"),
        ('{"schema": "zcbench.commitment/1", "pcrs": {"0": "' + "aa" * 48 + '"}, '
         '"source_date_epoch": "0"}', "source_date_epoch"),
        ('{"schema": "zcbench.commitment/1", "pcrs": {"0": "' + "aa" * 48 + '"}, '
         '"strategy_sha256": 5}', "strategy_sha256"),
    ],
)
def test_commitment_faults_are_data_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "commitment.json"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        Commitment.load(path)
    with pytest.raises(UsageError, match="does not exist"):
        Commitment.load(tmp_path / "nowhere.json")
    with pytest.raises(UsageError, match="is a folder"):
        Commitment.load(tmp_path)


def _copy_without(build: Build, tmp_path: Path, name: str, body: str | None = None) -> Path:
    copy = tmp_path / "copy"
    for path in build.build_dir.rglob("*"):
        if path.is_file():
            target = copy / path.relative_to(build.build_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    if body is None:
        (copy / name).unlink()
    else:
        (copy / name).write_text(body)
    return copy


@pytest.mark.parametrize("name", ["commitment.json", "manifest.json"])
def test_run_exits_2_on_a_missing_document_and_1_on_a_malformed_one(
    build: Build, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing commitment exited 3 from ``zcbench run`` (2 from ``verify``)."""
    missing = _copy_without(build, tmp_path / "missing", name)
    with pytest.raises(UsageError, match="does not exist"):
        load_build(missing)
    assert main(["run", str(missing), "--duration", "1", "--run-dir", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "Traceback" not in err
    malformed = _copy_without(build, tmp_path / "malformed", name, body='{"schema": 1}')
    assert main(["run", str(malformed), "--duration", "1", "--run-dir", str(tmp_path / "r2")]) == 1
    assert "schema" in capsys.readouterr().err
