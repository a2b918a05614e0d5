"""summary.json is written whole: a host killed in the middle of writing it leaves the previous
summary, never a torn one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from zcbench.host.summary import RunSummary, write_summary

# The child writes one summary, then a second with every write of file data (os.write, and
# the files io.open gives) cut to half its bytes and the process SIGKILLed right after.
_CHILD = r"""
import io, os, signal, sys
from pathlib import Path
from tests.host.test_summary_write import summary
from zcbench.host.summary import write_summary

run = Path(sys.argv[1])
write_summary(run, summary("first"))


def killed(data):
    return data[: max(1, len(data) // 2)]


real_write, real_open = os.write, io.open


def cut_write(fd, data):
    real_write(fd, killed(bytes(data)))
    os.kill(os.getpid(), signal.SIGKILL)


class CutFile:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(killed(data))
        self._f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def cut_open(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    return CutFile(f) if any(c in mode for c in "wax+") else f


os.write = cut_write
io.open = cut_open
write_summary(run, summary("second"))
"""


def summary(status: str) -> RunSummary:
    """A summary whose fields are all set (the writer's input)."""
    return RunSummary(
        run_id="run-x", origin="o", status=status, reason="why " * 200, run_dir="run",
        image="img", batches=3, events=30, signals=2, orders=2, fills=1, rejects=1, pnl=-7,
        positions={"AAA": 5}, log_size=9, elapsed_s=0.5, events_per_s=60.0,
        freshness_p50_ms=1.0, freshness_p99_ms=2.0, batch_rtt_p50_ms=0.5,
        batch_rtt_p99_ms=0.9, freshness_histogram={"1": 3}, dropped_batches=0,
        dropped_events=0, isolated_network=False, simulated=True, trust="dev")


def test_write_summary_writes_what_to_json_gives(tmp_path: Path) -> None:
    path = write_summary(tmp_path, summary("completed"))
    assert path == tmp_path / "summary.json"
    assert json.loads(path.read_text(encoding="utf-8")) == summary("completed").to_json()


def test_a_kill_in_the_middle_of_writing_leaves_the_previous_summary(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path)], cwd=root,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr  # SIGKILLed in the second write
    written = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert written == summary("first").to_json()
