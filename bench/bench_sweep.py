"""Sweep speed on Dask against the serial sweep, and memory on a 10x grid.

Baseline, measured in the same run: **the serial sweep** (``sweep(..., serial=True)``) of a
200-point grid of the tick example (``window`` 1..10 x ``enter_pct`` 5..100) on seeded
synthetic ticks. Against it:

- a ``LocalCluster`` of 2 single-threaded worker processes (``sweep``'s default), its start-up
  and a first 2-point sweep (the workers import zcbench and unpickle the strategy) timed apart;
- an external cluster this benchmark starts (``dask scheduler`` and 2 ``dask worker`` processes
  on localhost), reached by address, as a user's cluster would be;
- a 10x grid (2,000 points) on the external cluster: time per point against the 200-point run,
  and memory: the peak resident set of this (client) process and of the scheduler process during
  each sweep, sampled every 20 ms, as a ratio to the 200-point run's.

Every Dask table is checked byte-identical (Arrow IPC) to the serial one of the same grid. The
serial baseline runs before and after the Dask runs and the faster is kept (the machine is
shared: that brackets drifting load).

    .venv/bin/python bench/bench_sweep.py           # the README's figures
    .venv/bin/python bench/bench_sweep.py --quick   # a smoke run (20 and 200 points)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import psutil

from zcbench.backtest import BacktestConfig, sweep
from zcbench.backtest._dask import ProcessCluster, dask_client
from zcbench.examples import OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks

CONFIG = BacktestConfig(width_ns=100_000_000, fee_bps=0.2)
BASE = {"exit_pct": 0}


def _grid(windows: int, enters: int) -> dict[str, list[int]]:
    step = max(1, 100 // enters)
    return {"window": list(range(1, windows + 1)),
            "enter_pct": [step * (i + 1) for i in range(enters)]}


def _ipc(frame: pl.DataFrame) -> str:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


class _Peak:
    """The peak resident set of some processes, sampled in a thread while the block runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self._procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    duration = 2.0 if args.quick else 4.0
    ticks = generate_ticks(SyntheticConfig(rate=10_000, duration_s=duration), seed=7)
    small = _grid(4, 5) if args.quick else _grid(10, 20)
    large = _grid(10, 20) if args.quick else _grid(20, 100)
    n_small = len(small["window"]) * len(small["enter_pct"])
    n_large = len(large["window"]) * len(large["enter_pct"])
    run = {"base_params": BASE, "show_progress": False}
    print(f"  data: {ticks.height:,} synthetic events, {duration:.0f} s of event time in 100 ms "
          f"batches; {os.cpu_count()} cores (shared)")

    warm = {"window": [1], "enter_pct": [10, 20]}
    t_serial, serial = _timed(lambda: sweep(OrderFlowImbalance, small, ticks, CONFIG,
                                            serial=True, **run))

    t_up, cm = _timed(lambda: dask_client(None))
    t_up2, client = _timed(cm.__enter__)
    try:
        t_warm, _ = _timed(lambda: sweep(OrderFlowImbalance, warm, ticks, CONFIG,
                                         scheduler=client, **run))
        t_local, local = _timed(lambda: sweep(OrderFlowImbalance, small, ticks, CONFIG,
                                              scheduler=client, **run))
    finally:
        cm.__exit__(None, None, None)
    assert _ipc(local) == _ipc(serial), "LocalCluster table differs from the serial one"

    with ProcessCluster(n_workers=2) as cluster:
        assert cluster.scheduler is not None
        pids = {"client": os.getpid(), "scheduler": cluster.scheduler.pid}
        t_ext_warm, _ = _timed(lambda: sweep(OrderFlowImbalance, warm, ticks, CONFIG,
                                             scheduler=cluster.address, **run))
        with _Peak(pids) as mem_small:
            t_ext, ext = _timed(lambda: sweep(OrderFlowImbalance, small, ticks, CONFIG,
                                              scheduler=cluster.address, **run))
        assert _ipc(ext) == _ipc(serial), "external-cluster table differs from the serial one"
        with _Peak(pids) as mem_large:
            t_big, big = _timed(lambda: sweep(OrderFlowImbalance, large, ticks, CONFIG,
                                              scheduler=cluster.address, **run))
    assert big.height == n_large
    t_again, _ = _timed(lambda: sweep(OrderFlowImbalance, small, ticks, CONFIG, serial=True,
                                      **run))
    t_serial = min(t_serial, t_again)
    print(f"  {n_small}-point grid   serial {t_serial:7.2f} s   (baseline, "
          f"{t_serial / n_small * 1e3:.1f} ms a point; best of a run before and one after)")
    print(f"  {n_small}-point grid   LocalCluster(2) {t_local:7.2f} s   ratio to serial "
          f"{t_local / t_serial:5.2f}   (start {t_up + t_up2:.1f} s, first 2-point sweep "
          f"{t_warm:.1f} s, apart; identical table)")
    print(f"  {n_small}-point grid   external scheduler + 2 workers {t_ext:7.2f} s   "
          f"ratio to serial {t_ext / t_serial:5.2f}   (first 2-point sweep {t_ext_warm:.1f} s, "
          "apart; identical table)")
    per_small, per_large = t_ext / n_small, t_big / n_large
    print(f"  {n_large}-point grid  external scheduler + 2 workers {t_big:7.2f} s   "
          f"{per_large * 1e3:.1f} ms a point, ratio to the {n_small}-point run's "
          f"{per_large / per_small:5.2f}")
    for name in ("client", "scheduler"):
        a, b = mem_small.peak[name], mem_large.peak[name]
        print(f"  peak RSS of the {name:9s}: {a / 2**20:7.1f} MiB ({n_small} points) -> "
              f"{b / 2**20:7.1f} MiB ({n_large} points), ratio {b / a:5.2f} for "
              f"{n_large / n_small:.0f}x the points")
    print(f"  result table: {big.estimated_size() / 2**20:.2f} MiB for {n_large} rows")


if __name__ == "__main__":
    main()
