"""A small promoted strategy for the widget, report and notebook tests (no tests here).

Writes a research notebook whose ``strategy`` cell is a moving-average crossover on trade
prices, and promotes it with :func:`zcbench.packager.package_notebook` into a build folder, so
those tests drive the real packager, enclave and log.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

IMPORTS = (
    "from dataclasses import dataclass\n"
    "from zcbench.strategy import Batch, Signal, Strategy\n"
)

PARAMETERS = "fast = 5\nslow = 20\nsize = 10\nbatch_count = 200\n"

STRATEGY = '''\
@dataclass(frozen=True)
class CrossParams:
    fast: int = 5
    slow: int = 20
    size: int = 10


class PriceCross(Strategy):
    name = "price_cross"
    params_type = CrossParams
    input_fields = ("kind", "price")

    def __init__(self, params: CrossParams) -> None:
        super().__init__(params)
        self.prices: dict[str, list[int]] = {}
        self.long: dict[str, bool] = {}

    def on_batch(self, batch: Batch) -> list[Signal]:
        out: list[Signal] = []
        ev = batch.events
        for symbol, kind, price in zip(ev["symbol"], ev["kind"], ev["price"]):
            if kind != "trade" or price is None:
                continue
            seen = self.prices.setdefault(symbol, [])
            seen.append(price)
            if len(seen) < self.params.slow:
                continue
            fast = sum(seen[-self.params.fast:]) * self.params.slow
            slow = sum(seen[-self.params.slow:]) * self.params.fast
            if fast > slow and not self.long.get(symbol, False):
                self.long[symbol] = True
                out.append(Signal(symbol, "buy", self.params.size))
            elif fast < slow and self.long.get(symbol, False):
                self.long[symbol] = False
                out.append(Signal(symbol, "sell", self.params.size))
        return out
'''


def write_research_notebook(path: Path) -> Path:
    """A notebook with imports, a ``parameters`` cell and one ``strategy`` cell."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMETERS)
    params.metadata["tags"] = ["parameters"]
    strategy = nbformat.v4.new_code_cell(STRATEGY)
    strategy.metadata["tags"] = ["strategy"]
    nb.cells = [nbformat.v4.new_code_cell(IMPORTS), params, strategy]
    nbformat.write(nb, path)
    return path


def make_build(folder: Path) -> Path:
    """Promote the notebook into ``folder/build`` (keys from the current zcbench home)."""
    from zcbench.packager import package_notebook

    folder.mkdir(parents=True, exist_ok=True)
    notebook = write_research_notebook(folder / "research.ipynb")
    package_notebook(notebook, folder / "build")
    return folder / "build"


def make_run(folder: Path, *, seconds: float = 1.5) -> Path:
    """A short live local run of the build in ``folder/build`` (made if absent) into
    ``folder/run``; returns the run folder. Uses the current zcbench home."""
    import threading

    from zcbench.host.live import BuildImage, run_live
    from zcbench.host.proxy import ReplaySource
    from zcbench.marketdata import SyntheticConfig, generate_ticks

    build = folder / "build"
    if not build.is_dir():
        make_build(folder)
    image = BuildImage(build)
    events = generate_ticks(SyntheticConfig(symbols=("AAA",), rate=2000, duration_s=5), seed=3)
    stop = threading.Event()
    # The clock starts once the enclave has booted: a slow boot on a loaded machine must not
    # leave a run with no batches.
    timer = threading.Timer(seconds, stop.set)
    try:
        run_live(image, folder / "run", ReplaySource(events, image.batching(), rate=4.0),
                 trust="dev", stop=stop, on_booted=lambda _handle: timer.start())
    finally:
        timer.cancel()
    return folder / "run"
