"""The attestation benchmark runs (its figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_attestation.py"


@pytest.mark.slow
def test_bench_attestation_quick_run_completes() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "crypto only (5 x ES384 verify)" in result.stdout
    assert "ratio" in result.stdout
