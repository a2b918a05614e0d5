"""The ledger gate benchmark runs, the boot from a sealed state included (its figures are
printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_ledger_gate.py"


@pytest.mark.slow
def test_bench_ledger_gate_quick_run_completes() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "ratio gate/baseline time" in result.stdout
    assert "boot from the sealed state, ledger of 503 entries" in result.stdout
    assert "ratio boot at 503 / at 53 entries" in result.stdout


@pytest.mark.slow
def test_bench_ledger_open_quick_run_completes() -> None:
    script = BENCH.with_name("bench_ledger_open.py")
    result = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "open with the record, ledger of 505 entries (3 after the record)" in result.stdout
    assert "ratio open at 505 / at 55 entries" in result.stdout
    assert "witness proof from 502 to 505, ledger of 505 entries" in result.stdout
    assert "ratio proof at 505 / at 55 entries" in result.stdout
