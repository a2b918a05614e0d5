"""Sweeps on Dask: the same table as the serial path, byte for byte, on a LocalCluster and on
real ``dask scheduler`` / ``dask worker`` processes, with a worker killed mid-sweep; failing
points reported with their parameters; the scheduler never holding more than the in-flight
bound."""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from zcbench.backtest import BacktestConfig, sweep, walk_forward
from zcbench.backtest._dask import ProcessCluster, dask_client
from zcbench.errors import EnvError, UsageError
from zcbench.examples import OrderFlowImbalance
from zcbench.marketdata import SyntheticConfig, generate_ticks

CONFIG = BacktestConfig(width_ns=50_000_000, fee_bps=0.2)
# enter_pct 2 with exit_pct 3 is refused by the parameters type: a failing point
GRID: dict[str, list[Any]] = {"window": [2, 4, 8], "enter_pct": [2, 10, 20, 40]}
BASE = {"exit_pct": 3}


def _ipc_sha256(frame: pl.DataFrame) -> str:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.fixture(scope="module")
def ticks() -> pl.DataFrame:
    return generate_ticks(SyntheticConfig(rate=4_000, duration_s=2.0), seed=3)


@pytest.fixture(scope="module")
def serial_table(ticks: pl.DataFrame) -> pl.DataFrame:
    return sweep(
        OrderFlowImbalance, GRID, ticks, CONFIG, base_params=BASE, serial=True,
        show_progress=False,
    )


@pytest.fixture
def quiet_dask() -> Iterator[None]:
    """Dask logs every lost worker and closed comm at warning level: expected here."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def test_serial_table_in_grid_order_with_the_failing_point(serial_table: pl.DataFrame) -> None:
    assert serial_table.height == 12
    assert serial_table.get_column("window").to_list() == [2] * 4 + [4] * 4 + [8] * 4
    assert serial_table.get_column("enter_pct").to_list() == [2, 10, 20, 40] * 3
    errors = serial_table.get_column("error").to_list()
    for i, error in enumerate(errors):
        if i % 4 == 0:  # enter_pct 2 < exit_pct 3
            assert error is not None
            assert error.startswith("parameters refused")
            assert serial_table.row(i, named=True)["sharpe"] is None
        else:
            assert error is None
    ok = serial_table.filter(pl.col("error").is_null())
    assert ok.get_column("n_signals").min() > 0  # type: ignore[operator]
    assert ok.get_column("signals_digest").n_unique() > 1


def test_unknown_parameter_and_empty_grid_are_usage_errors(ticks: pl.DataFrame) -> None:
    with pytest.raises(UsageError, match="no parameter 'nope'"):
        sweep(OrderFlowImbalance, {"nope": [1]}, ticks, CONFIG, serial=True)
    with pytest.raises(UsageError, match="at least one value"):
        sweep(OrderFlowImbalance, {"window": []}, ticks, CONFIG, serial=True)
    with pytest.raises(UsageError, match="twice"):
        sweep(OrderFlowImbalance, {"window": [2, 2]}, ticks, CONFIG, serial=True)
    with pytest.raises(UsageError, match="not both"):
        sweep(OrderFlowImbalance, GRID, ticks, CONFIG, serial=True, scheduler="tcp://a:1")


def test_bad_scheduler_address_is_a_usage_error_and_no_scheduler_an_env_error() -> None:
    for bad in ("localhost:8786", "tcp://:8786", "tcp://host:", "tcp://host:99999"):
        with pytest.raises(UsageError), dask_client(bad):
            pass


def test_tasks_are_consecutive_points_on_one_data() -> None:
    from zcbench.backtest._dask import _chunks, points_per_task

    calls = [(0, 0, {"a": 0}), (1, 0, {"a": 1}), (2, 0, {"a": 2}), (3, 1, {"a": 3}),
             (4, 1, {"a": 4})]
    assert [(w, [i for i, _ in pts]) for w, pts in _chunks(calls, 2)] == [
        (0, [0, 1]), (0, [2]), (1, [3, 4]),
    ]
    assert [len(pts) for _, pts in _chunks(calls, 1)] == [1] * 5
    assert points_per_task(12, 2) == 1
    assert points_per_task(200, 2) == 12
    assert points_per_task(100_000, 2) == 32


@pytest.mark.slow
def test_unreachable_scheduler_is_an_env_error(quiet_dask: None) -> None:
    from zcbench.backtest._dask import _free_port

    address = f"tcp://127.0.0.1:{_free_port('127.0.0.1')}"  # nothing listens there
    with (
        pytest.raises(EnvError, match="cannot reach the Dask scheduler"),
        dask_client(address, timeout_s=1.0),
    ):
        pass


@pytest.mark.slow
def test_local_cluster_gives_the_serial_bytes(
    ticks: pl.DataFrame, serial_table: pl.DataFrame, quiet_dask: None
) -> None:
    table = sweep(OrderFlowImbalance, GRID, ticks, CONFIG, base_params=BASE, show_progress=False)
    assert table.equals(serial_table)
    assert _ipc_sha256(table) == _ipc_sha256(serial_table)


def _scheduler_drains(client: Any, patience_s: float = 30.0) -> bool:
    """Whether the scheduler comes to hold no task within ``patience_s`` (polled)."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        if client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0:
            return True
        time.sleep(0.05)
    return False


class _KillOnce:
    """A progress reporter that, after ``after`` results, SIGKILLs a worker that has tasks, and
    records how many tasks the scheduler holds at every result."""

    def __init__(self, cluster: ProcessCluster, client: Any, after: int) -> None:
        self.cluster, self.client, self.after = cluster, client, after
        self.done = 0
        self.killed: str | None = None
        self.scheduler_tasks: list[int] = []
        self.closed = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.scheduler_tasks.append(
            self.client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        )
        if self.killed is None and self.done >= self.after:
            info = self.client.scheduler_info()["workers"]
            busy = self.client.processing()
            for address, worker in info.items():
                if busy.get(address):
                    self.killed = str(worker["name"])
                    self.cluster.kill_worker(self.killed)
                    return

    def close(self) -> None:
        self.closed = True


@pytest.mark.slow
def test_external_cluster_with_a_worker_killed_mid_sweep(
    ticks: pl.DataFrame, serial_table: pl.DataFrame, quiet_dask: None, tmp_path: Path
) -> None:
    grid = {**GRID, "quantity": [50, 100, 200]}  # 36 points
    expected = sweep(
        OrderFlowImbalance, grid, ticks, CONFIG, base_params=BASE, serial=True,
        show_progress=False,
    )
    with ProcessCluster(n_workers=2, log_dir=tmp_path) as cluster:
        from distributed import Client

        with Client(cluster.address, timeout=30) as client:
            # by address: the sweep's own client, closed after
            by_address = sweep(
                OrderFlowImbalance, GRID, ticks, CONFIG, base_params=BASE,
                scheduler=cluster.address, show_progress=False,
            )
            assert _ipc_sha256(by_address) == _ipc_sha256(serial_table)

            report = _KillOnce(cluster, client, after=4)
            table = sweep(
                OrderFlowImbalance, grid, ticks, CONFIG, base_params=BASE, scheduler=client,
                max_in_flight=4, points_per_task=3, progress=report,
            )
            assert report.killed is not None  # a worker with tasks died mid-sweep
            assert report.closed
            assert report.done == 36
            assert len(client.scheduler_info()["workers"]) == 1
            assert table.get_column("error").null_count() == 36 - 9  # only the refused points
            assert _ipc_sha256(table) == _ipc_sha256(expected)
            # bounded: the in-flight tasks and the scattered data, never the whole grid
            assert max(report.scheduler_tasks) <= 4 + 1
            # nothing of the sweep is left in the scheduler once the client's releases (sent
            # asynchronously) have arrived
            assert _scheduler_drains(client)

            # walk-forward on the surviving worker: the serial folds and curve exactly
            wf = {"train": 12, "test": 6, "base_params": BASE, "show_progress": False}
            on_dask = walk_forward(OrderFlowImbalance, GRID, ticks, CONFIG, scheduler=client, **wf)
            serial = walk_forward(OrderFlowImbalance, GRID, ticks, CONFIG, serial=True, **wf)
            assert on_dask.folds.height >= 3
            for name in ("folds", "in_sample", "oos_equity"):
                assert _ipc_sha256(getattr(on_dask, name)) == _ipc_sha256(getattr(serial, name))


def _until(condition: Any, what: str, patience_s: float = 60.0) -> None:
    deadline = time.monotonic() + patience_s
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {patience_s:.0f} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_results_lost_with_their_workers_after_finishing_are_computed_again(
    quiet_dask: None, tmp_path: Path
) -> None:
    # A task that finished on a worker that then died before its result was fetched: the
    # client sees it 'lost' and the scheduler computes it again. The sweep waits for it (it
    # stopped with "lost task" before).
    from distributed import Client

    from zcbench.backtest._dask import run_tasks

    with ProcessCluster(n_workers=1, log_dir=tmp_path) as cluster, \
            Client(cluster.address, timeout=30) as client:
        results = run_tasks(client, pow, ((i, (i, 2)) for i in range(6)), max_in_flight=6)
        got = [next(results)]

        def all_done() -> bool:
            futures = client.futures.values()
            return len(futures) == 5 and all(f.status == "finished" for f in futures)

        _until(all_done, "every task finished")
        cluster.kill_worker("w0")  # every result held dies with it
        _until(lambda: all(f.status == "lost" for f in client.futures.values()),
               "every result seen lost")
        cluster.start_worker("w1")
        got += list(results)
    assert sorted(got) == [(i, i * i, None) for i in range(6)]
