"""Every notebook's default folders are in the one ``demo-out/`` that ``make demo`` fills at the
top of the checkout, never in a second one beside the notebooks (they run with ``notebooks/`` as
their working folder)."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _parameters(notebook: Path) -> dict[str, object]:
    nb = nbformat.read(notebook, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    values: dict[str, object] = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign)
        (target,) = node.targets
        assert isinstance(target, ast.Name)
        values[target.id] = ast.literal_eval(node.value)
    return values


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_default_folders_are_under_the_one_demo_out(notebook: Path) -> None:
    demo_out = (ROOT / "demo-out").resolve()
    folders = {name: value for name, value in _parameters(notebook).items()
               if name.endswith(("_dir", "_root")) and isinstance(value, str)}
    assert folders, notebook.name  # every notebook reads or writes one
    for name, value in folders.items():
        where = (notebook.parent / value).resolve()
        assert where.is_relative_to(demo_out), f"{notebook.name}: {name} = {value!r} is {where}"
