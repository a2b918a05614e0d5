"""The TEE benchmark runs (its figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_tee.py"


@pytest.mark.slow
def test_bench_tee_quick_run_completes() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "snp crypto only" in result.stdout
    assert "ratio DCAP" in result.stdout
