"""`zcbench demo` end to end, in a fresh process, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zcbench.cli import main


@pytest.mark.slow
def test_demo_leaves_every_artefact_and_they_reverify(
    tmp_path: Path, zcbench_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-out"
    done = subprocess.run(
        [sys.executable, "-m", "zcbench", "demo", "--out", str(out), "--duration", "2", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["simulated"] is True
    assert result["log_classification"] == "intact"
    assert result["run_summary"]["status"] == "completed"
    # the run binds capital as `zcbench run` does by default, and the demo says so
    run = result["run_summary"]
    assert run["capital"] == {"amount": 1_000_000 * run["money_scale"],
                              "money_scale": run["money_scale"], "leverage": 1.0,
                              "short_margin": 1.0}
    assert run["cash_ticks"] is not None
    assert 0 <= run["buying_power_used_ticks"] <= run["equity_ticks"]
    assert "capital 1,000,000.00 USD (leverage 1, short margin 1): cash " in done.stderr
    # and it is made as `zcbench run` makes a run by default: the paper venue acknowledges
    # each order, and the strategy's feedback is in the signed log
    journal = [json.loads(line) for line in
               (out / "run" / "journal.jsonl").read_text().splitlines()[1:]]
    events = {row["event"] for row in journal}
    assert {"order", "ack"} <= events, events
    from zcbench.auditlog.frame import iter_records
    from zcbench.strategy import is_context
    assert any(record.kind == "in" and is_context(record.body)
               for record, _ in iter_records(out / "run"))
    for name in ("build/commitment.json", "run/summary.json", "attestation.cbor", "report.html"):
        assert (out / name).is_file(), name
    commitment = json.loads((out / "build" / "commitment.json").read_text())
    assert set(commitment["pcrs"]) == {"0", "1", "2"}
    assert all(len(v) == 96 and v == v.lower() for v in commitment["pcrs"].values())
    assert result["pcrs"] == commitment["pcrs"]
    assert "SIMULATED" in (out / "report.html").read_text()
    _assert_no_strategy_source(out)

    # The artefacts re-verify with the commands the demo prints, and only under dev trust.
    attestation = str(out / "attestation.cbor")
    commit_file = str(out / "build" / "commitment.json")
    assert (
        main(
            [
                "verify",
                "attestation",
                attestation,
                "--trust",
                "dev",
                "--commitment",
                commit_file,
                "--json",
            ]
        )
        == 0
    )
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["verified"] is True
    assert verdict["root"] == "dev"
    assert main(["verify", "attestation", attestation, "--commitment", commit_file]) == 1
    assert main(["log", "verify", str(out / "run"), "--trust", "dev", "--json"]) == 0
    capsys.readouterr()
    assert main(["log", "verify", str(out / "run"), "--json"]) == 1  # aws trust by default
    assert json.loads(capsys.readouterr().out)["classification"] == "untrusted_boot"


def test_demo_refuses_to_reuse_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert main(["demo", "--out", str(tmp_path)]) == 2


def test_a_finished_demo_is_cleared_before_the_next(tmp_path: Path) -> None:
    from zcbench.demo import _clear_previous_demo

    for name in ("build", "run", "research"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("old")
    (tmp_path / "report.html").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    _clear_previous_demo(tmp_path)  # no marker: nothing is touched
    assert (tmp_path / "run" / "x").exists()
    (tmp_path / "demo.json").write_text("{}")
    _clear_previous_demo(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _assert_no_strategy_source(out: Path) -> None:
    """No line of notebook 01's strategy cells is readable anywhere the demo wrote, raw or
    inside a gzip or zlib stream (the sealed payload is the only place the code lives)."""
    import gzip
    import zlib

    from zcbench.demo import default_notebook
    from zcbench.packager import runtime_files

    notebook = json.loads(default_notebook().read_text())
    lines = {
        line.strip()
        for cell in notebook["cells"]
        if "strategy" in cell.get("metadata", {}).get("tags", [])
        for line in "".join(cell["source"]).splitlines()
        if len(line.strip()) >= 24 and not line.strip().startswith(("import ", "from "))
    }
    # Lines the enclave runtime itself contains (e.g. the `on_batch` signature) are not secrets.
    runtime = b"\n".join(runtime_files().values())
    lines = {line for line in lines if line.encode() not in runtime}
    assert len(lines) >= 5
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.relative_to(out).parts[0] == "research":
            continue  # the research step's own outputs are the researcher's, not the build's
        blobs = [path.read_bytes()]
        for opener in (gzip.decompress, zlib.decompress):
            try:
                blobs.append(opener(blobs[0]))
            except Exception:
                continue  # not that kind of stream
        for blob in blobs:
            for line in lines:
                assert line.encode() not in blob, f"{path} holds strategy source: {line!r}"


@pytest.mark.slow
def test_demo_after_an_interrupted_demo_works(tmp_path: Path) -> None:
    """A demo killed during its live run leaves build/, research/ and a partial run/; the next
    demo into the same folder clears them and succeeds."""
    import contextlib
    import os
    import signal

    out = tmp_path / "demo-out"
    cmd = [sys.executable, "-m", "zcbench", "demo", "--out", str(out), "--duration", "30"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait for the run step, then for its folder to exist
            if line.startswith("3/6"):
                break
        else:
            pytest.fail("the demo ended before its run step")
        while not (out / "run" / "log").exists() and proc.poll() is None:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert (out / "run").is_dir()
    assert not (out / "run" / "summary.json").exists()
    done = subprocess.run(
        [sys.executable, "-m", "zcbench", "demo", "--out", str(out), "--duration", "1", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_summary"]["status"] == "completed"
    assert json.loads((out / "demo.json").read_text())["log_classification"] == "intact"
