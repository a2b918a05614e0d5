"""Helpers of the venue tests: a packaged build with its data, and the simulator as a child
process on a free port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

import zcbench.examples.order_flow as order_flow
from zcbench.marketdata import SyntheticConfig, write_ticks
from zcbench.packager import package_notebook


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


