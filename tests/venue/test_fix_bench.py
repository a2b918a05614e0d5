"""The FIX round-trip benchmark runs and prints its figures (``--quick``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_bench_fix_quick_completes(tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_fix.py"
    done = subprocess.run([sys.executable, str(bench), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for figure in ("FIX round trip", "bare TCP ping-pong", "ratio to TCP + fsyncs"):
        assert figure in done.stdout
