"""Notebook extraction and lint: what comes along, what stays behind, and every refusal's place."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tests.packager.helpers import PARAMS_CELL, STRATEGY_CELL, code, make_notebook
from zcbench.errors import DataError, UsageError
from zcbench.packager import NotebookError, extract_strategy, read_parameters

# cell indices in make_notebook: 0 markdown, 1 imports, 2 parameters, 3.. strategy cells
FIRST_STRATEGY = 3


def test_extracts_tagged_cells_and_needed_imports_only(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "r.ipynb")
    ex = extract_strategy(nb)
    assert ex.cells == (3, 4)
    assert "class SmaCross(Strategy)" in ex.source
    assert "from zcbench.strategy import Strategy, Batch, Signal" in ex.source
    assert "from dataclasses import dataclass" in ex.source
    # used only by untagged cells: stays behind
    assert "matplotlib" not in ex.source
    assert "polars" not in ex.source
    assert "plt.plot" not in ex.source
    assert "data_path" not in ex.source
    assert ex.parameters == {
        "fast": 3,
        "slow": 8,
        "size": 10,
        "batch_count": 50,
        "data_path": "data/ticks.parquet",
    }
    compile(ex.source, "<module>", "exec")


def test_deterministic_and_independent_of_untagged_cells(tmp_path: Path) -> None:
    a = extract_strategy(make_notebook(tmp_path / "a" / "r.ipynb"))
    b = extract_strategy(make_notebook(tmp_path / "b" / "other-name.ipynb", explore="x = 1\n"))
    assert a.source == b.source
    assert a.strategy_sha256 == b.strategy_sha256
    c = extract_strategy(
        make_notebook(
            tmp_path / "c.ipynb", strategy_cells=(PARAMS_CELL.replace("3", "4"), STRATEGY_CELL)
        )
    )
    assert c.strategy_sha256 != a.strategy_sha256


def test_source_as_text_or_line_list(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "r.ipynb")
    doc = json.loads(nb.read_text())
    assert any(isinstance(c["source"], list) for c in doc["cells"])  # nbformat writes lines
    for cell in doc["cells"]:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    nb.write_text(json.dumps(doc))
    assert (
        extract_strategy(nb).source == extract_strategy(make_notebook(tmp_path / "s.ipynb")).source
    )


def _problems(path: Path) -> list[tuple[int, int, str]]:
    with pytest.raises(NotebookError) as info:
        extract_strategy(path)
    assert isinstance(info.value, DataError)
    for p in info.value.problems:
        assert p.notebook == path.name
        assert p.cell < 0 or f"cell {p.cell}, line {p.line}" in str(info.value)
    return [(p.cell, p.line, p.message) for p in info.value.problems]


def test_no_tagged_cells(tmp_path: Path) -> None:
    problems = _problems(make_notebook(tmp_path / "r.ipynb", strategy_cells=()))
    assert len(problems) == 1
    assert "no code cell is tagged 'strategy'" in problems[0][2]


def test_syntax_error_names_cell_and_line(tmp_path: Path) -> None:
    bad = STRATEGY_CELL.replace("        return out", "        return out +")
    problems = _problems(make_notebook(tmp_path / "r.ipynb", strategy_cells=(PARAMS_CELL, bad)))
    assert problems[0][0] == FIRST_STRATEGY + 1
    assert problems[0][1] == bad.splitlines().index("        return out +") + 1
    assert "syntax error" in problems[0][2]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("import os", "import of 'os' is not allowed"),
        ("import time", "import of 'time' is not allowed"),
        ("from socket import socket", "import from 'socket' is not allowed"),
        ("import subprocess", "import of 'subprocess' is not allowed"),
        ("from . import x", "relative imports"),
        ("from math import *", "import names explicitly"),
        ("x = open('f')", "open() is not allowed"),
        ("x = eval('1')", "eval() is not allowed"),
        ("x = __import__('os')", "__import__() is not allowed"),
        ("x = hash('a')", "hash() is not allowed"),
        ("import numpy as np\nx = np.random.normal()", "unseeded randomness"),
        ("import numpy as np\nx = np.random.default_rng()", "without a seed"),
        ("import numpy as np\nx = np.load('f.npy')", "file access"),
        ("import polars as pl\nx = pl.read_csv('f.csv')", "file access"),
        ("import polars as pl\npl.DataFrame().write_parquet('f')", "file access"),
        ("import polars as pl\nx = pl.DataFrame().sample(n=2)", "without seed="),
        ("import datetime\nx = datetime.datetime.now()", "import of 'datetime' is not allowed"),
        ("import math\nx = math.__builtins__", "reaches builtins"),
    ],
)
def test_forbidden_code_names_line(tmp_path: Path, line: str, message: str) -> None:
    cell = "X_PRE = 1\n" + line + "\n"
    nb = make_notebook(tmp_path / "r.ipynb", strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell))
    problems = _problems(nb)
    hits = [p for p in problems if message in p[2]]
    assert hits, problems
    assert hits[0][0] == FIRST_STRATEGY + 2
    assert hits[0][1] >= 2


def test_seeded_randomness_is_fine(tmp_path: Path) -> None:
    cell = (
        "import numpy as np\n"
        "RNG = np.random.default_rng(7)\n"
        "NOISE = RNG.normal(size=3)\n"
        "import polars as pl\n"
        "S = pl.DataFrame({'a': [1, 2]}).sample(n=1, seed=3)\n"
    )
    ex = extract_strategy(
        make_notebook(tmp_path / "r.ipynb", strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell))
    )
    assert "default_rng(7)" in ex.source


def test_allow_list_is_configurable(tmp_path: Path) -> None:
    cell = "import random\nR = random.Random(5)\nV = R.random()\n"
    nb = make_notebook(tmp_path / "r.ipynb", strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell))
    assert any("'random'" in p[2] for p in _problems(nb))
    from zcbench.packager import DEFAULT_ALLOWED_IMPORTS

    ex = extract_strategy(nb, allowed_imports=(*DEFAULT_ALLOWED_IMPORTS, "random"))
    assert "random.Random(5)" in ex.source
    bad = "import random\nV = random.random()\n"
    nb2 = make_notebook(tmp_path / "s.ipynb", strategy_cells=(PARAMS_CELL, STRATEGY_CELL, bad))
    with pytest.raises(NotebookError, match="unseeded randomness"):
        extract_strategy(nb2, allowed_imports=(*DEFAULT_ALLOWED_IMPORTS, "random"))


def test_forbidden_import_pulled_from_untagged_cell_names_that_cell(tmp_path: Path) -> None:
    cell = "def helper() -> float:\n    return time.time()\n"
    nb = make_notebook(
        tmp_path / "r.ipynb",
        imports="import time\n" + "from dataclasses import dataclass\n"
        "from zcbench.strategy import Batch, Signal, Strategy\n",
        strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell),
    )
    problems = _problems(nb)
    assert (1, 1, problems[0][2]) == problems[0]
    assert "import of 'time' is not allowed" in problems[0][2]


def test_name_defined_only_in_untagged_cell(tmp_path: Path) -> None:
    cell = "def threshold() -> int:\n    return LIMIT * 2\n"
    nb = make_notebook(
        tmp_path / "r.ipynb",
        strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell),
        extra=(code("LIMIT = 5\n"),),
    )
    problems = _problems(nb)
    assert problems == [
        (
            FIRST_STRATEGY + 2,
            2,
            "name 'LIMIT' is defined only in untagged cell 7; move that definition into a cell "
            "tagged 'strategy'",
        )
    ]


def test_undefined_and_missing_imports(tmp_path: Path) -> None:
    nb = make_notebook(
        tmp_path / "r.ipynb", imports="from dataclasses import dataclass\n"
    )  # Strategy, Batch, Signal imported nowhere
    problems = _problems(nb)
    assert {m for _c, _l, m in problems} >= {
        "name 'Strategy' is not defined",
        "name 'Signal' is not defined",
    }


def test_magics_in_untagged_cells_are_fine_in_tagged_cells_not(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "r.ipynb", explore="%timeit 1\n!ls\nx = 1\n")
    extract_strategy(nb)
    bad = make_notebook(
        tmp_path / "s.ipynb", strategy_cells=(PARAMS_CELL, "%timeit 1\n" + STRATEGY_CELL)
    )
    assert "syntax error" in _problems(bad)[0][2]


def test_parameters_cell(tmp_path: Path) -> None:
    nb = make_notebook(tmp_path / "r.ipynb")
    assert read_parameters(nb, overrides={"fast": 5})["fast"] == 5
    with pytest.raises(UsageError, match="unknown parameter 'nope'"):
        read_parameters(nb, overrides={"nope": 1})
    bad = make_notebook(tmp_path / "s.ipynb", parameters="fast = 3\nslow = compute()\n")
    with pytest.raises(NotebookError, match=r"cell 2, line 2: parameter 'slow' is not a literal"):
        read_parameters(bad)
    none = make_notebook(tmp_path / "t.ipynb", parameters=None)
    assert read_parameters(none) == {}


def test_not_a_notebook(tmp_path: Path) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text("{ not json")
    with pytest.raises(DataError, match="not JSON"):
        extract_strategy(path)
    path.write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    with pytest.raises(DataError, match="version 4"):
        extract_strategy(path)
    with pytest.raises(UsageError, match="no such notebook"):
        extract_strategy(tmp_path / "missing.ipynb")


def test_nbformat_written_notebook_reads_the_same(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [code(PARAMS_CELL, "strategy")]
    nb.cells.insert(0, code("from dataclasses import dataclass\n"))
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    assert "class CrossParams" in extract_strategy(path).source


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("from numpy.random import normal", "draws unseeded randomness"),
        ("import numpy.random as npr\nx = npr.normal()", "unseeded randomness"),
        ("from numpy import random as r\nx = r.uniform()", "unseeded randomness"),
        ("from polars import read_csv", "file access"),
        ("x = __builtins__['open']", "reaches builtins"),
        ("x = getattr(int, '__subclasses__')", "getattr() of '__subclasses__'"),
        ("n = 'x'\nx = getattr(int, n)", "computed name"),
    ],
)
def test_indirect_routes_refused(tmp_path: Path, line: str, message: str) -> None:
    cell = "X_PRE = 1\n" + line + "\n"
    nb = make_notebook(tmp_path / "r.ipynb", strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell))
    assert any(message in p[2] for p in _problems(nb))


def test_seeded_generators_by_any_import_route(tmp_path: Path) -> None:
    cell = (
        "from numpy.random import default_rng\n"
        "import numpy.random as npr\n"
        "A = default_rng(1).normal()\n"
        "B = npr.default_rng(2).integers(5)\n"
        "C = getattr(A, 'real')\n"
    )
    nb = make_notebook(tmp_path / "r.ipynb", strategy_cells=(PARAMS_CELL, STRATEGY_CELL, cell))
    assert "default_rng(1)" in extract_strategy(nb).source
