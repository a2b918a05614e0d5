"""The strategy lint: a static check over the module's syntax tree.

Allowed imports only (a configurable allow-list), and no clock, unseeded randomness, file,
network, process or environment access, no dynamic code, no ``hash()``/``id()`` (both differ
between processes). It is a guard rail against mistakes, not a sandbox: the sealed module still
runs only inside the enclave.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from typing import Any, Final

from zcbench.packager._notebook import Cell, LintProblem

__all__ = ["DEFAULT_ALLOWED_IMPORTS", "lint_tree", "module_aliases", "parse_cells"]

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


def module_aliases(tree: ast.AST) -> dict[str, str]:
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


def lint_tree(
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


def parse_cells(name: str, cells: list[Cell]) -> tuple[list[LintProblem], list[Cell]]:
    problems: list[LintProblem] = []
    parsed: list[Cell] = []
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
