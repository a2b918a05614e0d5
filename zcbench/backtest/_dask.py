"""Sweeps on ``dask.distributed``: a local cluster by default, or any cluster by address.

:func:`dask_client` gives a ``Client``: the caller's own (left open), one connected to a
``tcp://HOST:PORT`` scheduler (closed after), or a ``LocalCluster`` of worker processes started
and stopped here. :func:`run_on_dask` runs trials on it:

- the prepared data is scattered once, to every worker (``broadcast``), so a task carries only
  its parameters and a worker that dies leaves the data on the others;
- a task runs a few consecutive points (:func:`points_per_task`: a scheduler round trip per
  task costs tens of milliseconds on a loaded machine, more than a small backtest);
- at most ``max_in_flight`` tasks are submitted at a time; each result is taken as it completes
  (``as_completed``) and its future released at once, so neither the scheduler nor the client
  holds more than that many results, however large the grid;
- a task the scheduler gives up on (its workers died more often than ``allowed-failures``) or
  that raised outside :func:`~zcbench.backtest._trial.run_trial` is a failed row naming the
  error; tasks lost with a worker are rerun by the scheduler on the others.

Results are exactly the serial path's: the same function on the same data, gathered by index.
Dask is imported here only, when a sweep first needs it.

:class:`ProcessCluster` starts a real ``dask scheduler`` and ``dask worker`` processes on
localhost (free ports, no dashboard): what the tests and the benchmark use as an "existing
cluster", and a quick way to get one for ``zcbench sweep --scheduler``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from zcbench.backtest._engine import BacktestConfig, PreparedData
from zcbench.backtest._trial import Call, Trial, failed_trial
from zcbench.errors import EnvError, UsageError
from zcbench.strategy import Strategy

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DEFAULT_WORKERS", "ProcessCluster", "dask_client", "run_on_dask", "run_tasks"]

DEFAULT_WORKERS: Final = 2
_CONNECT_TIMEOUT_S: Final = 30
_PER_THREAD: Final = 4
_MAX_LOSSES: Final = 3  # a task whose result is lost more often than this stops the sweep


def parse_address(address: str) -> str:
    host, sep, port = address.removeprefix("tcp://").rpartition(":")
    if not address.startswith("tcp://") or not sep or not host or not port.isdigit():
        raise UsageError(f"the scheduler address {address} is not tcp://HOST:PORT")
    if not 0 < int(port) < 65536:
        raise UsageError(f"the scheduler address {address} has a port outside 1..65535")
    return address


@contextlib.contextmanager
def dask_client(
    scheduler: str | Client | None = None,
    *,
    n_workers: int = DEFAULT_WORKERS,
    timeout_s: float = _CONNECT_TIMEOUT_S,
) -> Iterator[Client]:
    """A connected ``Client`` for the duration of the block (see the module docstring);
    ``timeout_s`` bounds the wait for a scheduler given by address."""
    address = parse_address(scheduler) if isinstance(scheduler, str) else None
    import distributed

    # distributed's API is only partly typed: its calls go through Any here
    dist: Any = distributed
    Client, LocalCluster = dist.Client, dist.LocalCluster
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if address is not None:
        try:
            client = Client(address, timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            raise EnvError(
                f"cannot reach the Dask scheduler at {address}: {exc}; start one with "
                "'dask scheduler' and 'dask worker ADDRESS', or leave --scheduler out for a "
                "local cluster"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    # worker processes inherit this environment: keep their thread pools at one thread each
    # so two single-threaded workers do not fight over the cores
    env = {"OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # no fixed port: 8787 may be taken
            silence_logs=logging.ERROR,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _nthreads(client: Client) -> int:
    c: Any = client
    return max(1, int(sum(c.nthreads().values())))


def run_tasks(
    client: Client,
    fn: Any,
    calls: Iterable[tuple[int, tuple[Any, ...]]],
    *,
    max_in_flight: int | None = None,
) -> Iterator[tuple[int, Any, str | None]]:
    """``(id, fn(*args), None)`` for each ``(id, args)`` of ``calls``, in completion order, with
    at most ``max_in_flight`` tasks submitted at once; a task that errs (or that the scheduler
    gave up on) yields ``(id, None, "<error type>: <message>")``."""
    import distributed

    dist: Any = distributed
    c: Any = client
    limit = max_in_flight if max_in_flight is not None else _PER_THREAD * _nthreads(client)
    if limit < 1:
        raise UsageError(f"max_in_flight must be at least 1, got {limit}")
    run = uuid.uuid4().hex[:12]
    pending: dict[str, int] = {}
    source = iter(calls)
    queue = dist.as_completed()

    def submit() -> bool:
        for task, args in source:
            key = f"zcbench-trial-{run}-{task}"
            future = c.submit(fn, *args, key=key, pure=False, retries=0)
            pending[key] = task
            queue.add(future)
            return True
        return False

    for _ in range(limit):
        if not submit():
            break
    losses: dict[int, int] = {}
    try:
        for future in queue:
            task = pending.pop(future.key)
            if future.status == "finished":
                out: tuple[int, Any, str | None] = (task, future.result(), None)
            elif future.status == "error":
                exc = future.exception()
                out = (task, None, f"{type(exc).__name__}: {exc}")
            elif future.status in ("lost", "pending") and losses.get(task, 0) < _MAX_LOSSES:
                # it finished, then the worker holding its result died before the result was
                # fetched: the scheduler computes it again (this client still wants it), so
                # wait for it once more
                losses[task] = losses.get(task, 0) + 1
                pending[future.key] = task
                queue.add(future)
                continue
            else:
                raise EnvError(
                    f"the Dask scheduler lost task {task} ({future.status}"
                    f"{f', {losses[task]} times' if task in losses else ''}); the sweep "
                    "stopped: check the scheduler and its workers and rerun"
                )
            future.release()
            yield out
            submit()
    finally:
        for future in list(queue.futures):
            future.cancel()


def _run_chunk(
    fn: Trial,
    strategy_cls: type[Strategy],
    points: Sequence[tuple[int, Mapping[str, Any]]],
    data: PreparedData,
    config: BacktestConfig,
) -> list[tuple[int, dict[str, Any]]]:
    return [(index, fn(strategy_cls, params, data, config)) for index, params in points]


def _chunks(calls: Iterable[Call], size: int) -> Iterator[tuple[int, list[tuple[int, Any]]]]:
    """Consecutive calls on the same data, ``size`` at a time, as ``(data index, points)``."""
    chunk: list[tuple[int, Any]] = []
    which = -1
    for index, w, params in calls:
        if chunk and (w != which or len(chunk) == size):
            yield which, chunk
            chunk = []
        which = w
        chunk.append((index, dict(params)))
    if chunk:
        yield which, chunk


def points_per_task(n_points: int, nthreads: int) -> int:
    """Points a task runs: enough to amortise a scheduler round trip per task (tens of ms on a
    loaded machine), few enough that every thread gets about eight tasks (progress, balance, a
    lost worker's share to rerun); between 1 and 32."""
    return max(1, min(32, n_points // (8 * max(1, nthreads))))


def run_on_dask(
    client: Client,
    fn: Trial,
    strategy_cls: type[Strategy],
    calls: Iterable[Call],
    datas: Sequence[PreparedData],
    config: BacktestConfig,
    *,
    max_in_flight: int | None = None,
    n_points: int | None = None,
    chunk: int | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each call's ``(index, fn(strategy_cls, params, datas[i], config))``, on the cluster,
    ``chunk`` points a task (default :func:`points_per_task` of ``n_points``)."""
    c: Any = client
    if not c.nthreads():
        try:
            c.wait_for_workers(1, timeout=_CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise EnvError(
                f"the Dask scheduler has no workers after {_CONNECT_TIMEOUT_S} s; start some "
                "with 'dask worker ADDRESS'"
            ) from None
    size = chunk if chunk is not None else points_per_task(n_points or 0, _nthreads(client))
    if size < 1:
        raise UsageError(f"points per task must be at least 1, got {size}")
    shared = [c.scatter(d, broadcast=True, hash=False) for d in datas]
    members: dict[int, list[int]] = {}

    def tasks() -> Iterator[tuple[int, tuple[Any, ...]]]:
        for task, (which, points) in enumerate(_chunks(calls, size)):
            members[task] = [index for index, _ in points]
            yield task, (fn, strategy_cls, points, shared[which], config)

    try:
        for task, rows, error in run_tasks(client, _run_chunk, tasks(),
                                           max_in_flight=max_in_flight):
            indices = members.pop(task)
            if error is not None:
                for index in indices:
                    yield index, failed_trial(error)
            else:
                yield from rows
    finally:
        for future in shared:
            future.release()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ProcessCluster:
    """A ``dask scheduler`` and ``n_workers`` single-threaded ``dask worker`` processes (no
    nanny: a killed worker stays dead) on ``host``, each in its own process group, their output
    in ``log_dir`` (default: discarded). Use as a context manager; :meth:`close` kills them."""

    n_workers: int = DEFAULT_WORKERS
    host: str = "127.0.0.1"
    log_dir: Path | None = None
    startup_timeout_s: float = 60.0
    address: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if self.log_dir is not None:
            out = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        env = {**os.environ, "OMP_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()

    def start(self) -> ProcessCluster:
        import distributed

        dist: Any = distributed
        port = _free_port(self.host)
        self.address = f"tcp://{self.host}:{port}"
        self.scheduler = self._spawn(
            "scheduler", ["scheduler", "--host", self.host, "--port", str(port), "--no-dashboard"]
        )
        for i in range(self.n_workers):
            self.start_worker(f"w{i}")
        deadline = time.monotonic() + self.startup_timeout_s
        with dist.Client(self.address, timeout=self.startup_timeout_s) as client:
            client.wait_for_workers(
                self.n_workers, timeout=max(1.0, deadline - time.monotonic())
            )
        return self

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start one more worker named ``name``."""
        proc = self._spawn(
            name,
            [
                "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
                "--no-dashboard", "--host", self.host,
            ],
        )
        self.workers[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL worker ``name`` (no goodbye to the scheduler) and reap it."""
        proc = self.workers[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        """Kill every process started here and reap it."""
        procs = [*self.workers.values(), *([self.scheduler] if self.scheduler else [])]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> ProcessCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
