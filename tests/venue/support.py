"""Helpers of the venue tests: a packaged build with its data, and the simulator as a child
process on a free port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

import zcbench.examples.order_flow as order_flow
from zcbench.marketdata import SyntheticConfig, write_ticks
from zcbench.packager import package_notebook

if TYPE_CHECKING:
    import polars as pl

    from zcbench.venue.fix import FixVenue, VenueSimulator


def package(tmp: Path) -> tuple[Path, Path]:
    nb = nbformat.v4.new_notebook()
    source = Path(order_flow.__file__).read_text().replace(
        "from __future__ import annotations\n", ""
    )
    nb.cells = [
        nbformat.v4.new_code_cell("batch_count = 100", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source, metadata={"tags": ["strategy"]}),
    ]
    nbformat.write(nb, tmp / "research.ipynb")
    package_notebook(tmp / "research.ipynb", tmp / "build")
    ticks = write_ticks(SyntheticConfig(duration_s=2.0, rate=5000), tmp / "ticks.parquet", seed=3)
    return tmp / "build", Path(ticks)


class Sim:
    """``zcbench venue sim`` as a child process on a free port."""

    def __init__(self, tmp: Path, data: Path, drop: Path) -> None:
        self.err = tmp / "sim.stderr"
        with self.err.open("wb") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zcbench", "venue", "sim", "--port", "0",
                 "--drop-copy", str(drop), "--data", str(data)],
                stdout=subprocess.DEVNULL, stderr=sink,
            )
        deadline = time.monotonic() + 60
        self.port = 0
        while time.monotonic() < deadline and not self.port:
            text = self.err.read_text()
            if "listening on 127.0.0.1:" in text:
                self.port = int(text.split("127.0.0.1:")[1].split(",")[0])
            elif self.proc.poll() is not None:
                raise AssertionError(text)
            time.sleep(0.05)
        assert self.port, self.err.read_text()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=30) == 0, self.err.read_text()




def fix_events(n: int = 40) -> pl.DataFrame:
    """``n`` events of one symbol, AAA: two quotes then a trade, prices about 100 (the FIX
    tests' market)."""
    import polars as pl

    t0 = 1_704_186_000 * 1_000_000_000
    rows = []
    for i in range(n):
        mid = 1_000_000 + 100 * ((i * 7) % 11 - 5)
        trade = i % 3 == 2
        rows.append({"ts": t0 + i * 1000, "symbol": "AAA", "kind": "trade" if trade else "quote",
                     "price": mid if trade else None, "size": 20 if trade else None,
                     "bid": None if trade else mid - 100, "ask": None if trade else mid + 100,
                     "bid_size": None if trade else 15, "ask_size": None if trade else 25})
    return pl.DataFrame(rows)


def fix_venue(sim: VenueSimulator, state: Path, name: str) -> FixVenue:
    """An initiator to ``sim`` (listening in this process) as SenderCompID ``name``."""
    from zcbench.venue.fix import FixVenue

    assert sim._listener is not None
    port = sim._listener.getsockname()[1]
    return FixVenue("127.0.0.1", port, state_dir=state / name, sender=name, timeout_s=5)
