"""A live run whose market data flows only while the test lets it, and a wait for the proof
service to publish its log up to a size (no tests here): the remote-verification, ledger and
report tests grow a run to exactly the tree they need."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl

import zcbench.examples.order_flow as order_flow
from tests.serve.support import RunningServer
from zcbench.host.live import ModuleImage, RunHandle, run_live
from zcbench.host.proxy import LiveSource
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
from zcbench.serve.control import ControlSocket

EXAMPLE = Path(order_flow.__file__)


class GatedRun:
    """A live run in a thread whose market data flows only while ``flowing`` is set."""

    def __init__(self, runs: Path, name: str, run_id: str) -> None:
        self.flowing = threading.Event()
        self.finish = threading.Event()
        self.handle: RunHandle | None = None
        self.control = ControlSocket(runs / name)
        self.image = ModuleImage(EXAMPLE)
        events = generate_ticks(SyntheticConfig(rate=5_000, duration_s=120), seed=11)
        source = LiveSource(self._chunks(events), BatchSpec(count=100), rate=1.0)
        self.booted = threading.Event()

        def on_booted(handle: RunHandle) -> None:
            self.handle = handle
            self.control.attach(handle)
            self.booted.set()

        self.thread = threading.Thread(
            target=run_live, args=(self.image, runs / name, source),
            kwargs={"run_id": run_id, "on_booted": on_booted, "max_delay_s": 0.02}, daemon=True)
        self.thread.start()
        assert self.booted.wait(120), "the enclave did not boot"

    def _chunks(self, events: pl.DataFrame) -> Iterator[pl.DataFrame]:
        for start in range(0, events.height, 50):
            while not self.flowing.is_set():
                if self.finish.is_set():
                    return
                self.flowing.wait(0.05)
            if self.finish.is_set():
                return
            yield events.slice(start, 50)

    def stop(self) -> None:
        self.finish.set()
        self.flowing.set()
        if self.handle is not None:
            self.handle.stop()
        self.thread.join(timeout=60)
        self.control.close()


def published(server: RunningServer) -> int:
    runs: list[dict[str, Any]] = httpx.get(server.url + "/runs", timeout=10).json()["runs"]
    return max((r["size"] or 0 for r in runs), default=0)


def grow_to(run: GatedRun, server: RunningServer, size: int) -> None:
    run.flowing.set()
    deadline = time.monotonic() + 120
    while published(server) < size:
        assert time.monotonic() < deadline, "the log did not grow"
        time.sleep(0.05)
    run.flowing.clear()
