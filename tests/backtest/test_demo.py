"""research_demo (the research step of ``zcbench demo``) and the benchmark's smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zcbench.backtest import research_demo

REPO = Path(__file__).resolve().parents[2]


def test_research_demo_writes_both_backtests(tmp_path: Path) -> None:
    summary = research_demo(tmp_path / "research")
    assert set(summary) == {"daily", "ticks"}
    assert summary["daily"]["strategy"] == "ma_crossover"
    assert summary["daily"]["metrics"]["n_batches"] == 7983
    assert summary["ticks"]["strategy"] == "order_flow_imbalance"
    assert summary["ticks"]["metrics"]["n_signals"] > 0
    on_disk = json.loads((tmp_path / "research" / "research.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for part in ("daily", "ticks"):
        folder = Path(summary[part]["out"])
        assert folder.parent == tmp_path / "research"
        assert (folder / "equity.parquet").is_file()
        assert (folder / "summary.json").is_file()


@pytest.mark.slow
def test_benchmark_quick_run_completes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_backtest.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in ("MSFT daily", "one-minute bars", "grid on MSFT", "bare on_batch loop"):
        assert line in out
    assert out.count("backtesting.py") >= 3  # each comparison names its peer figure
    assert "of the baseline's speed" in out
    assert "x the frame" in out
