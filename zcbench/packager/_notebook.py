"""Reading a research notebook: its code cells and tags, and the ``parameters`` cell.

The nbformat v4 layout is read directly as JSON (never executed); problems are
:class:`LintProblem` findings raised together as one :class:`NotebookError`, each naming the
notebook, the cell and the line.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from zcbench.errors import DataError, UsageError

__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "PARAMETERS_TAG",
    "STRATEGY_TAG",
    "Cell",
    "LintProblem",
    "NotebookError",
    "load_cells",
    "read_parameters",
    "strip_magics",
]

STRATEGY_TAG: Final = "strategy"
PARAMETERS_TAG: Final = "parameters"
MAX_NOTEBOOK_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LintProblem:
    """One finding: where (notebook, 0-based cell index, line in that cell) and what."""

    notebook: str
    cell: int
    line: int
    message: str

    def __str__(self) -> str:
        if self.cell < 0:  # about the notebook as a whole
            return f"{self.notebook}: {self.message}"
        return f"{self.notebook}: cell {self.cell}, line {self.line}: {self.message}"


class NotebookError(DataError):
    """The notebook cannot be promoted; ``problems`` lists every finding, each naming its place."""

    def __init__(self, problems: Iterable[LintProblem]) -> None:
        self.problems = tuple(problems)
        lines = [str(p) for p in self.problems]
        head = "strategy cells cannot be promoted" if len(lines) != 1 else lines[0]
        body = "" if len(lines) == 1 else "\n  " + "\n  ".join(lines)
        super().__init__(head + body)


@dataclass(slots=True)
class Cell:
    index: int
    source: str
    tags: frozenset[str]
    tree: ast.Module | None = None


def _cell_source(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return None


def load_cells(path: Path) -> tuple[str, list[Cell]]:
    """The code cells of a v4 notebook, read as JSON.

    The nbformat v4 layout is read directly rather than through ``nbformat.read``: importing
    nbformat's validator costs seconds (jsonschema's format checkers), more than a whole build.
    """
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such notebook") from None
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise DataError(f"{name}: notebook is over {MAX_NOTEBOOK_BYTES} bytes")
    try:
        nb = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: not a Jupyter notebook (not JSON: {exc})") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise DataError(f"{name}: not a version 4 Jupyter notebook (nbformat 4 with a cell list)")
    cells = []
    for index, cell in enumerate(nb["cells"]):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            raise DataError(f"{name}: cell {index} is not a notebook cell")
        if cell["cell_type"] != "code":
            continue
        source = _cell_source(cell.get("source", ""))
        if source is None:
            raise DataError(f"{name}: cell {index} source must be text or a list of lines")
        metadata = cell.get("metadata", {})
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else []
        if not isinstance(tags, list):
            tags = []
        cells.append(Cell(index, source, frozenset(t for t in tags if isinstance(t, str))))
    return name, cells


def strip_magics(source: str) -> str:
    """IPython magics and shell escapes blanked out (untagged cells only), keeping line numbers."""
    lines = source.splitlines()
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)


def read_parameters(
    notebook: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    _cells: tuple[str, list[Cell]] | None = None,
) -> dict[str, Any]:
    """The literal assignments of the cell tagged ``parameters``, with ``overrides`` applied.

    Every top-level statement of that cell must be ``name = <literal>`` (or annotated); anything
    else is a :class:`NotebookError` naming the line. An override for a name the cell does not
    set is a :class:`UsageError`. No ``parameters`` cell gives only the overrides... of which
    there may then be none.
    """
    name, cells = _cells if _cells is not None else load_cells(Path(notebook))
    found = [c for c in cells if PARAMETERS_TAG in c.tags]
    params: dict[str, Any] = {}
    problems: list[LintProblem] = []
    if len(found) > 1:
        problems.append(
            LintProblem(name, found[1].index, 0, "more than one cell is tagged 'parameters'")
        )
    for cell in found[:1]:
        try:
            tree = ast.parse(cell.source)
        except SyntaxError as exc:
            raise NotebookError(
                [LintProblem(name, cell.index, exc.lineno or 0, f"syntax error: {exc.msg}")]
            ) from None
        for stmt in tree.body:
            target: ast.expr | None = None
            value: ast.expr | None = None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            if not isinstance(target, ast.Name) or value is None:
                problems.append(
                    LintProblem(
                        name,
                        cell.index,
                        stmt.lineno,
                        "the parameters cell may only assign literals to names",
                    )
                )
                continue
            try:
                params[target.id] = ast.literal_eval(value)
            except ValueError:
                problems.append(
                    LintProblem(
                        name,
                        cell.index,
                        stmt.lineno,
                        f"parameter {target.id!r} is not a literal (number, string, list, dict...)",
                    )
                )
    if problems:
        raise NotebookError(problems)
    for key, value in (overrides or {}).items():
        if key not in params:
            raise UsageError(
                f"{name}: unknown parameter {key!r}; the parameters cell sets {sorted(params)}"
            )
        params[key] = value
    return params
