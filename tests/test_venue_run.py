"""``zcbench run --venue fix://`` against ``zcbench venue sim`` (real processes, real TCP):
the same fills as the paper venue, every report in the drop copy and in the journal once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

import zcbench.examples.order_flow as order_flow
from zcbench.cli import main
from zcbench.host.execution import read_journal
from zcbench.marketdata import SyntheticConfig, write_ticks
from zcbench.packager import package_notebook
from zcbench.venue.fix import decode
from zcbench.venue.fix.codec import iter_messages

pytestmark = pytest.mark.slow


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


@pytest.fixture
def sim_world(tmp_path: Path) -> Iterator[tuple[Path, Path, Sim]]:
    build, ticks = package(tmp_path)
    sim = Sim(tmp_path, ticks, tmp_path / "drop.fix")
    try:
        yield build, ticks, sim
    finally:
        if sim.proc.poll() is None:
            os.kill(sim.proc.pid, signal.SIGKILL)
            sim.proc.wait(timeout=30)


def test_fix_run_fills_as_paper_and_the_drop_copy_holds_every_report(
    tmp_path: Path, sim_world: tuple[Path, Path, Sim]
) -> None:
    build, ticks, sim = sim_world
    venue = f"fix://127.0.0.1:{sim.port}"
    base = ["run", str(build), "--data", str(ticks), "--json"]
    assert main([*base, "--run-dir", str(tmp_path / "fix"), "--venue", venue]) == 0
    assert main([*base, "--run-dir", str(tmp_path / "paper")]) == 0
    sim.stop()
    fix = read_journal(tmp_path / "fix").rows
    paper = read_journal(tmp_path / "paper").rows
    cols = ["seq", "log_index", "event", "symbol", "side", "quantity", "price_ticks", "reason"]
    assert fix.height > 0
    assert fix.select(cols).equals(paper.select(cols))  # one venue model, two transports
    drop = [decode(m) for m in iter_messages((tmp_path / "drop.fix").read_bytes())]
    reported = [r for r in fix["exec_id"].to_list() if r]
    assert [m[17] for m in drop] == reported  # type: ignore[index]
    assert len(set(reported)) == len(reported)
