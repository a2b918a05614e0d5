"""Small research notebooks for the packager tests, written with nbformat (no tests here)."""

from __future__ import annotations

from pathlib import Path

import nbformat

IMPORTS = """\
import polars as pl
import matplotlib.pyplot as plt
from dataclasses import dataclass
from zcbench.strategy import Batch, Signal, Strategy
"""

PARAMETERS = """\
fast = 3
slow = 8
size = 10
batch_count = 50
data_path = "data/ticks.parquet"
"""

PARAMS_CELL = """\
@dataclass(frozen=True)
class CrossParams:
    fast: int = 3
    slow: int = 8
    size: int = 10
"""

STRATEGY_CELL = """\
class SmaCross(Strategy):
    name = "sma_cross_test"
    params_type = CrossParams
    input_fields = ("price",)

    def __init__(self, params: CrossParams) -> None:
        super().__init__(params)
        self.prices: list[int] = []
        self.long = False

    def on_batch(self, batch: Batch) -> list[Signal]:
        out: list[Signal] = []
        for symbol, price in zip(batch.events["symbol"], batch.events["price"]):
            self.prices.append(price)
            if len(self.prices) < self.params.slow:
                continue
            fast = sum(self.prices[-self.params.fast:]) // self.params.fast
            slow = sum(self.prices[-self.params.slow:]) // self.params.slow
            if fast > slow and not self.long:
                self.long = True
                out.append(Signal(symbol, "buy", self.params.size))
            elif fast < slow and self.long:
                self.long = False
                out.append(Signal(symbol, "sell", self.params.size))
        return out
"""

EXPLORE = """\
%matplotlib inline
frame = pl.DataFrame({"price": [1, 2, 3]})
plt.plot(frame["price"])
"""


def code(source: str, *tags: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def make_notebook(
    path: Path,
    *,
    strategy_cells: tuple[str, ...] = (PARAMS_CELL, STRATEGY_CELL),
    imports: str = IMPORTS,
    parameters: str | None = PARAMETERS,
    explore: str = EXPLORE,
    extra: tuple[nbformat.NotebookNode, ...] = (),
) -> Path:
    """A research notebook: markdown, imports, parameters, strategy cells, exploration."""
    nb = nbformat.v4.new_notebook()
    cells = [nbformat.v4.new_markdown_cell("# Research"), code(imports)]
    if parameters is not None:
        cells.append(code(parameters, "parameters"))
    cells += [code(src, "strategy") for src in strategy_cells]
    cells.append(code(explore))
    cells += list(extra)
    nb.cells = cells
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
