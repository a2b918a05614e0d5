"""Notebook → strategy module: extraction, lint and the ``parameters`` cell.

The strategy lives in code cells tagged ``strategy``; the import statements of untagged cells
that those cells need come along, everything else stays behind. The result is one module source,
built only from the cells' text (never from paths, times or cell positions), so the same strategy
cells always give the same bytes and the same ``strategy_sha256``.

The lint is a static check over the module's syntax tree: allowed imports only (a configurable
allow-list), and no clock, unseeded randomness, file, network, process or environment access, no
dynamic code, no ``hash()``/``id()`` (both differ between processes). It is a guard rail against
mistakes, not a sandbox: the sealed module still runs only inside the enclave.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from zcbench.errors import DataError, UsageError

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "ExtractedStrategy",
    "LintProblem",
    "NotebookError",
    "extract_strategy",
    "read_parameters",
]

STRATEGY_TAG: Final = "strategy"
PARAMETERS_TAG: Final = "parameters"
MAX_NOTEBOOK_BYTES: Final = 64 * 1024 * 1024
MODULE_HEADER: Final = '"""Strategy module extracted by zcbench from cells tagged `strategy`."""\n'

DEFAULT_ALLOWED_IMPORTS: Final = (
    "__future__",
    "abc",
    "bisect",
    "collections",
    "dataclasses",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "heapq",
    "itertools",
    "math",
    "numpy",
    "operator",
    "polars",
    "statistics",
    "typing",
    "zcbench.strategy",
)
"""Modules a strategy may import by default (a module or any of its submodules)."""

# Calls refused whatever the allow-list says: each reads the world or runs code from a string.
_FORBIDDEN_BUILTINS: Final = {
    "open": "file access",
    "input": "reads the terminal",
    "exec": "dynamic code",
    "eval": "dynamic code",
    "compile": "dynamic code",
    "__import__": "dynamic import",
    "breakpoint": "debugger",
    "globals": "reaches outside the module",
    "vars": "reaches outside the module",
    "hash": "differs between processes (PYTHONHASHSEED)",
    "id": "differs between runs",
    "memoryview": "raw memory access",
}
_FORBIDDEN_ATTRS: Final = {
    "now": "clock",
    "utcnow": "clock",
    "today": "clock",
    "time_ns": "clock",
    "perf_counter": "clock",
    "monotonic": "clock",
    "environ": "environment",
    "getenv": "environment",
    "system": "process",
    "popen": "process",
    "__builtins__": "reaches builtins",
    "__globals__": "reaches outside the module",
    "__subclasses__": "reaches outside the module",
    "__code__": "code object access",
    "__import__": "dynamic import",
}
# File I/O entry points of allowed libraries (polars, numpy): prefixes of called attribute names.
_FILE_PREFIXES: Final = ("read_", "scan_", "write_", "sink_", "load", "save", "tofile")
_FILE_NAMES: Final = {"fromfile", "genfromtxt", "loadtxt", "savetxt", "memmap", "open"}
# The same, as methods on any object (a DataFrame's write_csv, an array's tofile).
_METHOD_FILE_PREFIXES: Final = ("write_", "sink_", "tofile")
_SEED_CALLS: Final = {"default_rng", "RandomState", "Random", "seed", "SeedSequence"}
_RANDOM_METHODS: Final = {"sample", "shuffle"}


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


@dataclass(slots=True)
class _Cell:
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


def _load_cells(path: Path) -> tuple[str, list[_Cell]]:
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
        cells.append(_Cell(index, source, frozenset(t for t in tags if isinstance(t, str))))
    return name, cells


def _strip_magics(source: str) -> str:
    """IPython magics and shell escapes blanked out (untagged cells only), keeping line numbers."""
    lines = source.splitlines()
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)


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


def _module_allowed(module: str, allowed: Iterable[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of attributes on a name; "" when the chain starts elsewhere."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))


def _rng_names(tree: ast.AST) -> set[str]:
    """Dotted names assigned from a seeded generator constructor (``rng = default_rng(7)``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            last = _dotted(node.value.func).rsplit(".", 1)[-1]
            if last in _SEED_CALLS or last == "Generator":
                out.update(_dotted(t) for t in node.targets)
    return out


def _module_aliases(tree: ast.AST) -> dict[str, str]:
    """Names bound by imports, mapped to the dotted module (or module attribute) they stand for."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    out[a.asname] = a.name
                else:
                    root = a.name.split(".")[0]
                    out[root] = root
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _is_random_module(module: str) -> bool:
    return module == "random" or module.endswith(".random")


def _lint_tree(
    tree: ast.Module, allowed: tuple[str, ...], *, bound: set[str], modules: Mapping[str, str]
) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    rngs = _rng_names(tree)

    def add(node: ast.AST, message: str) -> None:
        found.append((getattr(node, "lineno", 0), message))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_allowed(alias.name, allowed):
                    add(
                        node,
                        f"import of {alias.name!r} is not allowed (allowed: {', '.join(allowed)})",
                    )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                add(node, "relative imports are not allowed in a strategy")
            elif not _module_allowed(node.module or "", allowed):
                add(
                    node,
                    f"import from {node.module!r} is not allowed (allowed: {', '.join(allowed)})",
                )
            elif any(a.name == "*" for a in node.names):
                add(node, f"'from {node.module} import *' is not allowed: import names explicitly")
            else:
                _lint_from_import(node, add)
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            add(node, "'__builtins__' is not allowed in a strategy (reaches builtins)")
        elif isinstance(node, ast.Name) and node.id in _FORBIDDEN_BUILTINS and node.id not in bound:
            add(node, f"{node.id}() is not allowed in a strategy ({_FORBIDDEN_BUILTINS[node.id]})")
        elif isinstance(node, ast.Attribute) and node.attr in _FORBIDDEN_ATTRS:
            add(
                node, f"'.{node.attr}' is not allowed in a strategy ({_FORBIDDEN_ATTRS[node.attr]})"
            )
        elif isinstance(node, ast.Call):
            _lint_call(node, add, rngs=rngs, modules=modules)
        if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
            add(node, "async code is not allowed in a strategy")
    return found


def _lint_from_import(node: ast.ImportFrom, add: Any) -> None:
    module = node.module or ""
    for alias in node.names:
        if alias.name.startswith(_FILE_PREFIXES) or alias.name in _FILE_NAMES:
            add(node, f"'from {module} import {alias.name}' is file access, not allowed")
        elif _is_random_module(module) and alias.name not in _SEED_CALLS | {"Generator"}:
            add(
                node,
                f"'from {module} import {alias.name}' draws unseeded randomness; "
                "import default_rng (or Random) and pass a seed",
            )


def _lint_call(node: ast.Call, add: Any, *, rngs: set[str], modules: Mapping[str, str]) -> None:
    func = node.func
    if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr", "hasattr"):
        attr = node.args[1] if len(node.args) > 1 else None
        if not (isinstance(attr, ast.Constant) and isinstance(attr.value, str)):
            add(node, f"{func.id}() with a computed name is not allowed in a strategy")
        elif attr.value.startswith("__"):
            add(node, f"{func.id}() of {attr.value!r} is not allowed in a strategy")
        return
    if not isinstance(func, ast.Attribute):
        return
    name = _dotted(func) or f"<expr>.{func.attr}"
    receiver = name.rsplit(".", 1)[0]
    root, _, rest = name.partition(".")
    last = func.attr
    keywords = {k.arg for k in node.keywords}
    on_module = root in modules
    full = f"{modules[root]}.{rest}" if on_module else name
    if (on_module and (last.startswith(_FILE_PREFIXES) or last in _FILE_NAMES)) or (
        last.startswith(_METHOD_FILE_PREFIXES)
    ):
        add(node, f"{name}() is file access, not allowed in a strategy")
    if (
        on_module
        and _is_random_module(full.rsplit(".", 1)[0])
        and last not in _SEED_CALLS | {"Generator"}
    ):
        add(node, f"{name}() draws unseeded randomness; use numpy.random.default_rng(seed)")
    if last in _SEED_CALLS and not node.args and "seed" not in keywords:
        add(node, f"{name}() without a seed is not deterministic; pass a seed")
    if (
        last in _RANDOM_METHODS
        and "seed" not in keywords
        and receiver not in rngs
        and not on_module
    ):
        add(node, f"{name}() without seed= is not deterministic; pass seed=")


def _lint_problem_cells(name: str, cells: list[_Cell]) -> tuple[list[LintProblem], list[_Cell]]:
    problems: list[LintProblem] = []
    parsed: list[_Cell] = []
    for cell in cells:
        try:
            cell.tree = ast.parse(cell.source, filename=f"{name}[{cell.index}]")
        except SyntaxError as exc:
            problems.append(
                LintProblem(name, cell.index, exc.lineno or 0, f"syntax error: {exc.msg}")
            )
            continue
        parsed.append(cell)
    return problems, parsed


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
    name, cells = _load_cells(path)
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
    problems, parsed = _lint_problem_cells(name, tagged)
    if problems:
        raise NotebookError(problems)

    # Untagged cells: their imports may be pulled in; their other definitions may not be used.
    others: list[tuple[_Cell, ast.Module]] = []
    for cell in cells:
        if STRATEGY_TAG in cell.tags:
            continue
        try:
            others.append((cell, ast.parse(_strip_magics(cell.source))))
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
        modules |= _module_aliases(cell.tree)
    for _index, stmt in needed_imports:
        modules |= _module_aliases(stmt)
    for cell in parsed:
        assert cell.tree is not None
        for line, message in _lint_tree(cell.tree, allowed, bound=bound, modules=modules):
            problems.append(LintProblem(name, cell.index, line, message))
    for index, stmt in needed_imports:
        tree = ast.Module(body=[stmt], type_ignores=[])
        for line, message in _lint_tree(tree, allowed, bound=bound, modules=modules):
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


def _find_import(ident: str, others: list[tuple[_Cell, ast.Module]]) -> tuple[int, ast.stmt] | None:
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


def _find_definition(ident: str, others: list[tuple[_Cell, ast.Module]]) -> int | None:
    for cell, tree in others:
        if ident in _bound_names(tree):
            return cell.index
    return None


def read_parameters(
    notebook: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    _cells: tuple[str, list[_Cell]] | None = None,
) -> dict[str, Any]:
    """The literal assignments of the cell tagged ``parameters``, with ``overrides`` applied.

    Every top-level statement of that cell must be ``name = <literal>`` (or annotated); anything
    else is a :class:`NotebookError` naming the line. An override for a name the cell does not
    set is a :class:`UsageError`. No ``parameters`` cell gives only the overrides... of which
    there may then be none.
    """
    name, cells = _cells if _cells is not None else _load_cells(Path(notebook))
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
