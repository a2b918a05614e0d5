"""The live panel's poll benchmark runs and prints its figures (``--quick``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_bench_liverun_poll_quick_completes(tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_liverun_poll.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for figure in ("poll now", "the whole-log poll", "growth with the run's length"):
        assert figure in done.stdout
