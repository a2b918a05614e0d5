"""Notebook → strategy module: resolving the names the strategy cells use, and joining them.

The strategy lives in code cells tagged ``strategy``; the import statements of untagged cells
that those cells need come along, everything else stays behind. The result is one module source,
built only from the cells' text (never from paths, times or cell positions), so the same strategy
cells always give the same bytes and the same ``strategy_sha256``.

Reading the notebook is :mod:`zcbench.packager._notebook`, the lint
:mod:`zcbench.packager._lint`; this module resolves the names the strategy cells use (imports
pulled in from untagged cells, definitions that must move) and joins the module.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from zcbench.packager._lint import DEFAULT_ALLOWED_IMPORTS, lint_tree, module_aliases, parse_cells
from zcbench.packager._notebook import (
    STRATEGY_TAG,
    Cell,
    LintProblem,
    NotebookError,
    load_cells,
    read_parameters,
    strip_magics,
)

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "ExtractedStrategy",
    "LintProblem",
    "NotebookError",
    "extract_strategy",
    "read_parameters",
]

MODULE_HEADER: Final = '"""Strategy module extracted by zcbench from cells tagged `strategy`."""\n'


@dataclass(frozen=True, slots=True)
class ExtractedStrategy:
    """The extracted strategy module and what was read alongside it.

    ``source`` is the module text (imports first, then the strategy cells in notebook order);
    ``strategy_sha256`` is the hex SHA-256 of its UTF-8 bytes; ``parameters`` are the literal
    values of the ``parameters`` cell after overrides; ``cells`` are the strategy cells' indices.
    """

    notebook: str
    source: str
    strategy_sha256: str
    parameters: Mapping[str, Any]
    cells: tuple[int, ...]
    imports: tuple[str, ...] = field(default=())


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (an over-approximation of what it defines)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            out.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            out.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            out.add(node.rest)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            out.update(node.names)
    return out


def _loaded_names(tree: ast.AST) -> dict[str, int]:
    """Names read, with the first line each is read on."""
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            line = getattr(node, "lineno", 0)
            if node.id not in out or line < out[node.id]:
                out[node.id] = line
    return out


def _import_bindings(tree: ast.Module) -> list[tuple[ast.stmt, set[str]]]:
    """Top-level import statements with the names each binds."""
    out: list[tuple[ast.stmt, set[str]]] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            out.append((stmt, {a.asname or a.name.split(".")[0] for a in stmt.names}))
    return out


def extract_strategy(
    notebook: str | Path,
    *,
    allowed_imports: Iterable[str] = DEFAULT_ALLOWED_IMPORTS,
    overrides: Mapping[str, Any] | None = None,
) -> ExtractedStrategy:
    """Extract, lint and hash the strategy of ``notebook``; read its parameters.

    Raises :class:`NotebookError` (a :class:`DataError`) listing every problem, each naming the
    notebook, the cell index and the line: no tagged cells, syntax errors, forbidden imports or
    calls, names defined only in untagged cells, and names defined nowhere.
    """
    path = Path(notebook)
    allowed = tuple(sorted(set(allowed_imports)))
    name, cells = load_cells(path)
    tagged = [c for c in cells if STRATEGY_TAG in c.tags]
    if not tagged:
        raise NotebookError(
            [
                LintProblem(
                    name,
                    -1,
                    0,
                    "no code cell is tagged 'strategy'; tag the cells that "
                    "define the strategy class and its parameters dataclass",
                )
            ]
        )
    problems, parsed = parse_cells(name, tagged)
    if problems:
        raise NotebookError(problems)

    # Untagged cells: their imports may be pulled in; their other definitions may not be used.
    others: list[tuple[Cell, ast.Module]] = []
    for cell in cells:
        if STRATEGY_TAG in cell.tags:
            continue
        try:
            others.append((cell, ast.parse(strip_magics(cell.source))))
        except SyntaxError:
            continue  # exploration cells may be anything; they stay behind

    bound: set[str] = set()
    for cell in parsed:
        assert cell.tree is not None
        bound |= _bound_names(cell.tree)
    known = set(dir(builtins)) | {"__name__", "__file__", "__doc__"}

    needed_imports: list[tuple[int, ast.stmt]] = []
    seen_imports: set[str] = set()
    for cell in parsed:
        assert cell.tree is not None
        for ident, line in sorted(_loaded_names(cell.tree).items(), key=lambda kv: (kv[1], kv[0])):
            if ident in bound or ident in known:
                continue
            found = _find_import(ident, others)
            if found is not None:
                text = ast.unparse(found[1])
                if text not in seen_imports:
                    seen_imports.add(text)
                    needed_imports.append(found)
                bound.add(ident)
                continue
            definer = _find_definition(ident, others)
            if definer is not None:
                problems.append(
                    LintProblem(
                        name,
                        cell.index,
                        line,
                        f"name {ident!r} is defined only in untagged cell {definer}; move that "
                        "definition into a cell tagged 'strategy'",
                    )
                )
            else:
                problems.append(
                    LintProblem(name, cell.index, line, f"name {ident!r} is not defined")
                )

    modules: dict[str, str] = {}
    for cell in parsed:
        assert cell.tree is not None
        modules |= module_aliases(cell.tree)
    for _index, stmt in needed_imports:
        modules |= module_aliases(stmt)
    for cell in parsed:
        assert cell.tree is not None
        for line, message in lint_tree(cell.tree, allowed, bound=bound, modules=modules):
            problems.append(LintProblem(name, cell.index, line, message))
    for index, stmt in needed_imports:
        tree = ast.Module(body=[stmt], type_ignores=[])
        for line, message in lint_tree(tree, allowed, bound=bound, modules=modules):
            problems.append(LintProblem(name, index, line, message))
    if problems:
        raise NotebookError(sorted(set(problems), key=lambda p: (p.cell, p.line, p.message)))

    import_lines = _import_lines([stmt for _index, stmt in needed_imports])
    # __future__ imports must come first in a module.
    import_lines.sort(key=lambda s: not s.startswith("from __future__"))
    parts = [MODULE_HEADER]
    if import_lines:
        parts.append("\n".join(import_lines) + "\n")
    parts.extend(c.source.strip("\n") + "\n" for c in tagged)
    source = "\n\n".join(p.rstrip("\n") for p in parts) + "\n"
    try:
        ast.parse(source)
    except SyntaxError as exc:  # e.g. a __future__ import inside a cell
        raise NotebookError(
            [LintProblem(name, -1, exc.lineno or 0, f"the joined module does not parse: {exc.msg}")]
        ) from None
    params = read_parameters(path, overrides=overrides, _cells=(name, cells))
    return ExtractedStrategy(
        notebook=name,
        source=source,
        strategy_sha256=hashlib.sha256(source.encode()).hexdigest(),
        parameters=params,
        cells=tuple(c.index for c in tagged),
        imports=tuple(import_lines),
    )


def _find_import(ident: str, others: list[tuple[Cell, ast.Module]]) -> tuple[int, ast.stmt] | None:
    """The first untagged import binding ``ident``, reduced to that one name, and its cell."""
    for cell, tree in others:
        for stmt, names in _import_bindings(tree):
            if ident not in names:
                continue
            new: ast.stmt
            if isinstance(stmt, ast.Import):
                keep = [a for a in stmt.names if (a.asname or a.name.split(".")[0]) == ident]
                new = ast.Import(names=keep)
            else:
                assert isinstance(stmt, ast.ImportFrom)
                keep = [a for a in stmt.names if (a.asname or a.name) == ident]
                new = ast.ImportFrom(module=stmt.module, names=keep, level=stmt.level)
            return cell.index, ast.copy_location(new, stmt)
    return None


def _import_lines(stmts: list[ast.stmt]) -> list[str]:
    """Import statements, ``from`` imports of one module merged, in order of first use."""
    merged: dict[tuple[str, str], list[ast.alias]] = {}
    for stmt in stmts:
        if isinstance(stmt, ast.ImportFrom):
            merged.setdefault(("from", stmt.module or ""), []).extend(stmt.names)
        else:
            merged.setdefault(("import", ast.unparse(stmt)), [])
    lines = []
    for (kind, what), names in merged.items():
        if kind == "from":
            lines.append(ast.unparse(ast.ImportFrom(module=what, names=names, level=0)))
        else:
            lines.append(what)
    return lines


def _find_definition(ident: str, others: list[tuple[Cell, ast.Module]]) -> int | None:
    for cell, tree in others:
        if ident in _bound_names(tree):
            return cell.index
    return None
