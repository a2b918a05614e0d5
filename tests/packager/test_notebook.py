"""Promotion of the real research notebook (01), and notebooks/02_promote.ipynb run headless."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from zcbench.packager import extract_strategy, load_build, package_notebook, read_parameters

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_01 = REPO / "notebooks" / "01_research.ipynb"
NOTEBOOK_02 = REPO / "notebooks" / "02_promote.ipynb"


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_notebook_01_builds_identically_in_two_folders(tmp_path: Path) -> None:
    a = package_notebook(NOTEBOOK_01, tmp_path / "a")
    b = package_notebook(NOTEBOOK_01, tmp_path / "b" / "c")
    assert _tree(a.build_dir) == _tree(b.build_dir)
    assert a.pcrs == b.pcrs
    assert a.strategy == "order_flow_imbalance"
    params = read_parameters(NOTEBOOK_01)
    assert a.manifest.batching == {"width_ns": params["batch_width_ns"]}
    # the strategy's parameters are sealed; the notebook's own (seed, out_dir...) stay behind
    assert {"enter_pct", "exit_pct", "quantity", "window"} <= set(a.manifest.parameters)
    assert not {"out_dir", "seed", "batch_width_ns"} & set(a.manifest.parameters)
    source = extract_strategy(NOTEBOOK_01).source
    assert "matplotlib" not in source
    assert "run_backtest" not in source


def test_notebook_01_strategy_vs_untagged_edits(tmp_path: Path) -> None:
    base = package_notebook(NOTEBOOK_01, tmp_path / "base")
    nb = nbformat.read(str(NOTEBOOK_01), as_version=4)
    tagged = [c for c in nb.cells if "strategy" in c.metadata.get("tags", [])]
    untagged = [c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("tags")]
    untagged[-1].source += "\n# one more remark"
    nbformat.write(nb, str(tmp_path / "untagged.ipynb"))
    same = package_notebook(tmp_path / "untagged.ipynb", tmp_path / "same")
    assert same.pcrs == base.pcrs
    tagged[-1].source = tagged[-1].source.replace("Trade with", "Trade on", 1)
    nbformat.write(nb, str(tmp_path / "tagged.ipynb"))
    changed = package_notebook(tmp_path / "tagged.ipynb", tmp_path / "changed")
    assert changed.pcrs[0] != base.pcrs[0]
    assert changed.pcrs[1] == base.pcrs[1]


@pytest.mark.slow
def test_notebook_02_runs_headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out_dir = tmp_path / "out"
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_02),
        str(executed),
        parameters={"research_notebook": str(NOTEBOOK_01), "out_dir": str(out_dir)},
        kernel_name="python3",
        cwd=str(work),
        progress_bar=False,
        execution_timeout=120,
    )
    assert list(work.iterdir()) == []  # wrote only under out_dir
    build = load_build(out_dir / "build")
    text = json.dumps(json.loads(executed.read_text())["cells"])
    assert build.pcrs[0].hex() in text
    assert "identical: True" in text
    assert "image PCRs match commitment.json" in text


@pytest.mark.slow
def test_bench_quick_completes() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_package.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ratio" in done.stdout
