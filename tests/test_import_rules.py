"""An architecture rule checked on the source: the surfaces (``cli``, ``widgets``, ``report``)
import no private module of another part (the foundation's ``_cbor`` aside), so everything they
show goes through a part's public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zcbench"
SURFACES = ("cli", "widgets", "report")
# zcbench's own foundation modules, private by name but shared by every part by design
FOUNDATION = frozenset({"zcbench._cbor"})


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _private_of_another_part(module: str, part: str) -> bool:
    names = module.split(".")
    if names[0] != "zcbench" or module in FOUNDATION or len(names) < 3:
        return False
    return names[1] != part and any(name.startswith("_") for name in names[2:])


@pytest.mark.parametrize("surface", SURFACES)
def test_surfaces_import_no_private_module_of_another_part(surface: str) -> None:
    offending = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in sorted((PACKAGE / surface).rglob("*.py"))
        for line, module in _imports(path)
        if _private_of_another_part(module, surface)
    ]
    assert offending == []


def test_the_rule_sees_a_private_import() -> None:
    assert _private_of_another_part("zcbench.backtest._dask", "cli")
    assert not _private_of_another_part("zcbench.cli._paths", "cli")
    assert not _private_of_another_part("zcbench.backtest", "cli")
