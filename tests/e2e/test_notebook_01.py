"""notebooks/01_research.ipynb: runs headless through papermill, writes only under out_dir, and
its strategy cells are self-contained and behave exactly like the packaged example."""

from __future__ import annotations

import ast
import json
import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import papermill
import polars as pl
import pytest

from zcbench.backtest import BacktestConfig, load_research_record, run_backtest
from zcbench.examples import OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks
from zcbench.strategy import Strategy, find_strategy, make_strategy

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_research.ipynb"
ALLOWED_IMPORTS = {
    "collections",
    "collections.abc",
    "dataclasses",
    "math",
    "polars",
    "zcbench.strategy",
}


def _cells(tag: str) -> list[Any]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.slow
def test_notebook_runs_headless_and_writes_only_under_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _snapshot(NOTEBOOK.parent)
    out_dir = tmp_path / "out"
    executed = tmp_path / "executed.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(executed),
        parameters={"out_dir": str(out_dir), "duration_s": 3.0, "seed": 5},
        kernel_name="python3",
        cwd=str(work),
        progress_bar=False,
        execution_timeout=120,
    )
    assert _snapshot(NOTEBOOK.parent) == before
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "executed.ipynb", "out"]
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert written == [
        "backtest/equity.parquet",
        "backtest/fills.parquet",
        "backtest/metrics.parquet",
        "backtest/positions.parquet",
        "backtest/signals.parquet",
        "backtest/summary.json",
        "backtest/trades.parquet",
        "equity.png",
        "prices.png",
        "research.json",
        "sweep.parquet",
        "sweep_heatmap.png",
        "walkforward.json",
        "walkforward.png",
        "walkforward_folds.parquet",
    ]
    summary = json.loads((out_dir / "backtest" / "summary.json").read_text())
    assert summary["strategy"] == "order_flow_imbalance"
    assert summary["n_events"] == 60_000
    assert summary["config"]["width_ns"] == 100_000_000
    # the notebook's strategy gives what the packaged example gives on the same data
    ticks = generate_ticks(SyntheticConfig(rate=20_000.0, duration_s=3.0), seed=5)
    example = run_backtest(
        make_strategy(OrderFlowImbalance, summary["params"]),
        ticks,
        BacktestConfig(width_ns=100_000_000, fee_bps=0.2),
    )
    assert summary["signals_digest"] == example.signals_digest
    assert summary["metrics"] == example.metrics_dict()
    plots = [
        o
        for c in nbformat.read(executed, as_version=4).cells
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(plots) == 4  # prices, equity, the sweep's heatmap, the walk-forward's curve
    # the sweep ran on Dask and its record is the table it wrote
    record = load_research_record(out_dir / "research.json")
    assert record.n_trials == 15
    table = pl.read_parquet(out_dir / "sweep.parquet")
    assert [t["sharpe"] for t in record.trials] == table.get_column("sharpe").to_list()
    assert load_research_record(out_dir / "walkforward.json").doc["kind"] == "walkforward"


def _strategy_namespace() -> dict[str, Any]:
    """Run only the tagged cells, in a fresh module, as the packager's extraction would."""
    module = types.ModuleType("_notebook01_strategy")
    sys.modules[module.__name__] = module
    try:
        for cell in _cells("strategy"):
            # dont_inherit: this test file's `from __future__ import annotations` stays out
            exec(compile(cell.source, "<strategy cell>", "exec", dont_inherit=True), vars(module))
    finally:
        del sys.modules[module.__name__]
    return vars(module)


def test_strategy_cells_are_self_contained() -> None:
    cells = _cells("strategy")
    assert len(cells) == 2
    for cell in cells:
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= ALLOWED_IMPORTS
            elif isinstance(node, ast.ImportFrom):
                assert node.module in ALLOWED_IMPORTS | {"__future__"}
    cls: type[Strategy] = find_strategy(_strategy_namespace())  # only the tagged cells ran
    assert cls.name == OrderFlowImbalance.name
    assert cls.fields() == OrderFlowImbalance.fields()


def test_strategy_cells_match_the_example_signal_for_signal() -> None:
    cls = find_strategy(_strategy_namespace())
    ticks = generate_ticks(SyntheticConfig(rate=10_000, duration_s=2.0), seed=8)
    params = {"window": 2, "enter_pct": 10, "exit_pct": 2}
    config = BacktestConfig(width_ns=20_000_000)
    mine = run_backtest(make_strategy(cls, params), ticks, config)
    theirs = run_backtest(make_strategy(OrderFlowImbalance, params), ticks, config)
    assert mine.signals.height > 0
    assert mine.signals_digest == theirs.signals_digest


def test_parameters_cell_is_literal_and_names_the_batching() -> None:
    (cell,) = _cells("parameters")
    values = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign)
        (target,) = node.targets
        assert isinstance(target, ast.Name)
        values[target.id] = ast.literal_eval(node.value)
    assert "out_dir" in values
    assert values["batch_width_ns"] == 100_000_000
    assert {"window", "enter_pct", "exit_pct", "quantity"} <= set(values)
    cls = find_strategy(_strategy_namespace())
    make_strategy(cls, {k: values[k] for k in ("window", "enter_pct", "exit_pct", "quantity")})
