"""The LP report: facts gathered from a real local run, the HTML nbconvert makes, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.live_world import LiveWorld
from zcbench.cli import main
from zcbench.errors import DataError, UsageError
from zcbench.report import collect_report

pytestmark = pytest.mark.slow


@pytest.fixture
def run_dir(live_world: LiveWorld, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared run (read only), with its home."""
    monkeypatch.setenv("ZCBENCH_HOME", str(live_world.home))
    return live_world.run


def test_facts_of_a_local_run(run_dir: Path) -> None:
    report = collect_report(run_dir, trust="dev")
    assert report.verified
    assert report.attestation.verdict == "VERIFIED"
    assert report.attestation.report.simulated
    assert report.document_path == run_dir / "boot.cbor"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert report.attestation.nonce == summary["run_id"].encode()
    assert report.at_mode == "document"
    assert report.log is not None
    assert report.log.classification in ("intact", "uncommitted_tail")
    facts = report.to_json()
    assert facts["verdict"] == "VERIFIED"
    assert facts["simulated"] is True
    assert facts["run_id"] == summary["run_id"]


def test_aws_trust_fails_a_local_run_naming_the_root(run_dir: Path) -> None:
    report = collect_report(run_dir, trust="aws")
    assert not report.verified
    assert report.attestation.report.failed_check == "root"
    assert report.log is not None
    assert report.log.classification == "untrusted_boot"


def test_a_commitment_that_names_other_pcrs_fails(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "w"
    shutil.copytree(run_dir.parent / "build", copy / "build")
    shutil.copytree(run_dir, copy / "run")
    summary = json.loads((copy / "run" / "summary.json").read_text())
    summary["image"] = str(copy / "build")
    (copy / "run" / "summary.json").write_text(json.dumps(summary))
    commitment = json.loads((copy / "build" / "commitment.json").read_text())
    commitment["pcrs"]["0"] = "ab" * 48
    (copy / "build" / "commitment.json").write_text(json.dumps(commitment))
    report = collect_report(copy / "run", trust="dev")
    assert report.attestation.report.failed_check == "pcr0"
    assert report.log is not None
    assert not report.log.verified  # the log's boot document is held to the same commitment


def test_missing_pieces_are_named(run_dir: Path, tmp_path: Path) -> None:
    # Missing or wrong-kind inputs are usage errors (exit 2), malformed ones data errors (1).
    with pytest.raises(UsageError, match="does not exist"):
        collect_report(tmp_path / "nope", trust="dev")
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(UsageError, match=r"summary\.json"):
        collect_report(bare, trust="dev")
    (bare / "summary.json").write_text("{not json")
    with pytest.raises(DataError, match="not JSON"):
        collect_report(bare, trust="dev")
    (bare / "summary.json").write_text(json.dumps({"run_id": "r", "image": str(tmp_path)}))
    with pytest.raises(UsageError, match=r"no commitment\.json"):
        collect_report(bare, trust="dev")


def test_cli_writes_the_html_report_with_code_hidden(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lp" / "report.html"
    code = main(["report", str(run_dir), "-o", str(out), "--trust", "dev", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed["verdict"] == "VERIFIED"
    assert printed["report"] == str(out)
    html = out.read_text()
    commitment = json.loads((run_dir.parent / "build" / "commitment.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    for needle in (
        "VERIFIED",
        "SIMULATED",
        commitment["strategy_sha256"],
        commitment["pcrs"]["0"][:56],
        summary["run_id"].encode().hex(),
        "zcbench verify attestation",
        "zcbench log verify",
        "The signed log of the run",
    ):
        assert needle in html, needle
    assert "collect_report(" not in html  # the code cells are hidden
    assert "Traceback" not in html
    # Self-contained: renders offline (no script from a CDN), no path of the builder's machine,
    # and the re-verify commands name the files as the LP receives them.
    import re

    assert not re.search(r"<script[^>]*src=\"https?://", html)
    assert str(run_dir.parent) not in html
    assert "zcbench verify attestation attestation.cbor --commitment build/commitment.json" \
        in html or "zcbench verify attestation run/boot.cbor --commitment build/commitment.json" \
        in html
    assert f"zcbench log verify {run_dir.name} --trust dev" in html


def test_cli_errors_and_exit_codes(run_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope"), "--trust", "dev"]) == 2
    assert main(["report", str(run_dir), "--at", "yesterday"]) == 2
    assert main(["report", str(run_dir), "--nonce", "xyz"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "ISO 8601" in err
    assert "hex digits" in err


def test_the_report_does_not_import_the_widgets() -> None:
    """``zcbench.report`` renders HTML and JSON without a widget toolkit: importing it loads
    neither ``zcbench.widgets`` nor ipywidgets nor matplotlib (issue: 2.65 s an import)."""
    import subprocess
    import sys

    probe = (
        "import sys, zcbench.report, zcbench.report.attestation, zcbench.report.attestation_html, "
        "zcbench.cli.report; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ipywidgets', 'matplotlib') "
        "or m.startswith('zcbench.widgets')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout
