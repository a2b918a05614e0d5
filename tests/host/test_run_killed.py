"""A host killed with SIGKILL mid-run keeps every order and fill it placed.

A real ``zcbench run`` process is killed once its journal holds orders; the run folder then
still holds every row acted upon, the log verifies to its last durable record, every journal row
names a signed OUT record, and ``zcbench report`` works on the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import zcbench.examples.order_flow as order_flow
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.verify import check_log
from zcbench.cli import main
from zcbench.host.execution import JOURNAL_FILE, read_journal
from zcbench.packager import package_notebook

pytestmark = pytest.mark.slow


def _package(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    source = Path(order_flow.__file__).read_text()
    source = source.replace("from __future__ import annotations\n", "")
    nb.cells = [
        nbformat.v4.new_code_cell("batch_count = 100", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source, metadata={"tags": ["strategy"]}),
    ]
    nbformat.write(nb, tmp_path / "research.ipynb")
    package_notebook(tmp_path / "research.ipynb", tmp_path / "build")
    return tmp_path / "build"


def _rows(run_dir: Path) -> int:
    try:
        return read_journal(run_dir).rows.height
    except Exception:  # not there yet, or mid-write: the next look sees more
        return 0


def test_sigkilled_host_keeps_every_order_and_the_folder_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = _package(tmp_path)
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "zcbench", "run", str(build), "--synthetic",
        "--rate", "5000", "--duration", "120", "--run-dir", str(run_dir), "--json",
    ]
    err = tmp_path / "run.stderr"
    with err.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        seen = 0
        while time.monotonic() < deadline and proc.poll() is None:
            seen = _rows(run_dir)
            if seen >= 6:
                break
            time.sleep(0.05)
        assert proc.poll() is None, err.read_text()
        assert seen >= 6, "the run placed no orders in time"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the enclave child, if still there
        proc.wait(timeout=30)
    assert not (run_dir / "summary.json").exists()  # it never got to write one

    journal = read_journal(run_dir)
    assert journal.rows.height >= seen  # nothing seen before the kill is gone
    assert journal.header["image"] == str(build.resolve())
    events = journal.rows["event"].to_list()
    assert "order" in events
    assert set(events) <= {"order", "fill", "reject", "ack", "cancel", "expire"}
    # log before act: every row names an OUT record that is durable in the log
    out_index = {r.index for r, _ in iter_records(run_dir) if r.kind == "out"}
    assert set(journal.rows["log_index"].to_list()) <= out_index
    report = check_log(run_dir, trust="dev")
    assert report.verified, report.message

    capsys.readouterr()
    code = main(["report", str(run_dir), "--trust", "dev", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    assert out["run_id"] == journal.header["run_id"]
    assert out["log"]["verified"]
    assert out["run"]["status"] == "unfinished"
    assert out["run"]["pnl_ticks"] is None  # never summed up: the host died first
    assert out["run"]["orders"] == events.count("order")
    assert Path(out["report"]).is_file()
    assert (run_dir / JOURNAL_FILE).stat().st_size > 0


def test_package_and_run_end_with_the_next_command_and_progress_is_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = _package(tmp_path)  # the notebook, then the CLI packaging it again elsewhere
    capsys.readouterr()
    assert main(["package", str(tmp_path / "research.ipynb"), "-o", str(tmp_path / "b2")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("next: ")
    assert out[-1].strip().startswith(f"zcbench run {tmp_path / 'b2'} ")

    run_dir = tmp_path / "run"
    argv = ["run", str(build), "--synthetic", "--rate", "5000", "--duration", "3",
            "--run-dir", str(run_dir)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    # stderr is not a terminal here: progress comes as whole lines, no carriage returns
    assert "\r" not in captured.err
    progress = [line for line in captured.err.splitlines()
                if line.startswith("zcbench: live run: ")]  # the one progress line format
    assert progress, captured.err
    assert "PnL" in progress[-1]
    assert "USD" in progress[-1]
    lines = captured.out.splitlines()
    assert any("PnL" in line and "USD" in line for line in lines)
    assert "ticks" not in captured.out.replace("_ticks", "")
    assert lines[-3].startswith("next: ")
    report_cmd = lines[-2].split()
    assert report_cmd[:3] == ["zcbench", "report", str(run_dir)]
    assert main([*report_cmd[1:], "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["run"]["status"] == "completed"
    assert isinstance(facts["run"]["pnl_ticks"], int)
    assert facts["run"]["orders"] == json.loads((run_dir / "summary.json").read_text())["orders"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_run_ended_by_a_signal_exits_as_the_shell_expects(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """Ctrl-C or SIGTERM mid-run: an ``interrupted`` summary, and exit 128 + the signal, whether
    the signal lands before the run loop or inside it."""
    build = _package(tmp_path)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zcbench", "run", str(build), "--synthetic", "--rate", "2000",
         "--duration", "120", "--run-dir", str(run_dir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _rows(run_dir) == 0:  # inside the run loop: orders are being placed
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the run placed no order"
            time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == code, (out, err)
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    assert summary["reason"].startswith(f"interrupted by {sig.name};")
