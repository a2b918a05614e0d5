"""Architecture rules checked on the source: the surfaces (``cli``, ``widgets``, ``report``)
import no private module of another part (the foundation's ``_cbor`` aside), so everything they
show goes through a part's public API; and no two modules of ``zcbench`` import each other,
directly or round a longer loop, not even through an import deferred into a function (only
``if TYPE_CHECKING:`` imports, which never run, are left out)."""

from __future__ import annotations

import ast
from collections.abc import Mapping
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, modules: frozenset[str]) -> set[str]:
    """The modules of ``modules`` that ``path`` imports at any time it can run (at import or
    in a function); ``from a.b import c`` is an import of ``a.b.c`` when that is a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return (found & modules) - {_module_name(path)}


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def test_no_import_cycle_between_modules() -> None:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = frozenset(_module_name(p) for p in paths)
    graph = {_module_name(p): _runtime_imports(p, modules) for p in paths}
    assert len(graph) > 100  # the graph was read
    assert sum(map(len, graph.values())) > 500
    assert _cycles(graph) == []


def test_the_rule_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
