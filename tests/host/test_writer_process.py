"""The log writer in a process of its own: a live run's log commits leave the receiving thread.

The child commits what the host rebuilt and checked, reports the durable size and nothing is
released before that report; a checkpoint that does not verify comes back as the writer's own
error; a writer killed mid-run (SIGKILL) or hung (SIGSTOP) ends the run ``host_error`` within
its bound, the log verifying to its last durable record and nothing acted upon beyond it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from pathlib import Path

import polars as pl
import pytest

import zcbench.examples.order_flow as order_flow
from tests.host.support import batch_bytes as _batch
from tests.host.support import booted_log as _setup
from zcbench.auditlog._fs import AppendFile, OsFileSystem
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.verify import check_log
from zcbench.cli.run import _exit_code
from zcbench.enclave import EnclaveRuntime
from zcbench.errors import EnvError, VerificationError
from zcbench.host import HostLog
from zcbench.host.execution import read_journal
from zcbench.host.live import ModuleImage, RunHandle, RunProgress, run_live
from zcbench.host.proxy import ReplaySource
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks

EXAMPLE = Path(order_flow.__file__)




def _stage(rt: EnclaveRuntime, log: HostLog, seq: int) -> None:
    log.stage_reply(seq, _batch(seq), rt.ingest(seq, _batch(seq)), event_time_ns=seq)


def _ticks(seconds: float) -> pl.DataFrame:
    return generate_ticks(SyntheticConfig(rate=5_000, duration_s=seconds), seed=11)


@pytest.mark.parametrize("thread", [False, True])
def test_the_writer_releases_only_what_it_reported_durable(tmp_path: Path, thread: bool) -> None:
    rt, log, _ = _setup(tmp_path)
    log.use_writer_process(thread=thread)
    assert (log.writer.pid is None) == thread  # type: ignore[union-attr]
    for seq in range(3):
        _stage(rt, log, seq)
    log.submit()
    assert log.pending == 3
    released = []
    while log.pending:
        released += log.durable(None)
    assert [v.seq for v in released] == [0, 1, 2]
    assert [v.out_index for v in released] == [2, 4, 6]
    assert all(v.checkpoint_size == 7 for v in released)
    assert log.durable_size == 7
    _stage(rt, log, 3)
    assert [v.seq for v in log.flush()] == [3]
    log.close()
    report = check_log(tmp_path, trust="dev")
    assert report.verified, report.message
    assert report.entries == 9


def test_a_checkpoint_that_does_not_verify_comes_back_as_the_writers_error(
    tmp_path: Path,
) -> None:
    rt, log, _ = _setup(tmp_path)
    log.use_writer_process()
    r0 = rt.ingest(0, _batch(0))
    r1 = rt.ingest(1, _batch(1))
    log.stage_reply(0, _batch(0), r0, event_time_ns=0)
    # batch 1 with batch 0's checkpoint: it covers 3 records of the 5 written
    log.stage(1, _batch(1), r1["signals"], r1["leaves"], r0["checkpoint"],
              time_ns=r1["time_ns"], event_time_ns=1)
    with pytest.raises(VerificationError) as exc:
        log.flush()
    assert exc.value.check == "checkpoint_root"
    assert log.durable_size == 1  # nothing of the group became durable, nothing released
    with pytest.raises(VerificationError):  # and the writer stays failed
        log.durable(None)
    log.close()


def test_a_writer_that_failed_and_exited_is_read_for_its_error_first(tmp_path: Path) -> None:
    """The child reports its error and exits; a hand-over that then meets the closed socket
    (EPIPE) raises what the child said, not that it exited (a full disk once read as "the log
    writer process exited (code 0) while records were being handed to it"). Groups are sent
    only once every earlier one is durable, so the hand-over is made here directly."""
    import time

    rt, log, _ = _setup(tmp_path)
    log.use_writer_process()
    r0 = rt.ingest(0, _batch(0))
    r1 = rt.ingest(1, _batch(1))
    log.stage_reply(0, _batch(0), r0, event_time_ns=0)
    log.stage(1, _batch(1), r1["signals"], r1["leaves"], r0["checkpoint"],
              time_ns=r1["time_ns"], event_time_ns=1)
    log.submit()  # handed over, not waited for: the child fails on it and exits
    writer = log.writer
    proc = writer._proc  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is not None
    with pytest.raises(VerificationError) as exc:
        writer._send(["steps", []])  # type: ignore[union-attr]
    assert exc.value.check == "checkpoint_root"
    log.close()


def test_a_dead_writer_is_an_env_error_never_a_hang(tmp_path: Path) -> None:
    rt, log, _ = _setup(tmp_path)
    log.use_writer_process(timeout=5)
    pid = log.writer.pid  # type: ignore[union-attr]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _stage(rt, log, 0)
    with pytest.raises(EnvError, match=r"log writer process exited \(code -9\)"):
        log.flush()
    log.close()


def _killing(sig: signal.Signals) -> tuple[dict[str, object], object, object]:
    """``on_booted`` and ``on_progress`` for a run whose writer gets ``sig`` once the run has
    acted on orders (on the receiving thread, so nothing more is acted on meanwhile)."""
    seen: dict[str, object] = {}

    def booted(handle: RunHandle) -> None:
        seen["pid"] = handle.log_writer_pid

    def progress(p: RunProgress) -> None:
        if "at" not in seen and p.orders >= 3:
            seen["at"] = p.batches
            os.kill(seen["pid"], sig)  # type: ignore[arg-type]

    return seen, booted, progress


def _nothing_acted_beyond_the_durable_log(run_dir: Path, log_size: int, batches: int, *,
                                          orders: bool = True) -> None:
    report = check_log(run_dir, trust="dev")
    assert report.verified, report.message
    assert report.entries >= log_size
    outs = sorted(r.index for r, _ in iter_records(run_dir) if r.kind == "out")
    durable_outs = [i for i in outs if i < log_size]
    assert batches <= len(durable_outs)  # every batch acted on has its OUT record durable
    rows = read_journal(run_dir).rows
    assert rows.height > 0 or not orders
    assert set(rows["log_index"].to_list()) <= set(durable_outs)


@pytest.mark.slow
def test_a_writer_killed_mid_run_stops_the_run_cleanly(tmp_path: Path) -> None:
    seen, booted, progress = _killing(signal.SIGKILL)
    summary = run_live(
        ModuleImage(EXAMPLE), tmp_path / "run",
        ReplaySource(_ticks(30.0), BatchSpec(count=100)),
        on_booted=booted, on_progress=progress, log_writer="process",  # type: ignore[arg-type]
    )
    assert "at" in seen, "the run placed no orders"
    assert summary.status == "host_error"
    assert _exit_code(summary.status, summary.reason) == 3
    assert "log writer process exited (code -9)" in summary.reason
    assert "\n" not in summary.reason
    assert summary.batches < 1_500  # it stopped, long before the source ran out
    _nothing_acted_beyond_the_durable_log(tmp_path / "run", summary.log_size, summary.batches)


@pytest.mark.slow
def test_a_hung_writer_ends_the_run_within_its_bound(tmp_path: Path) -> None:
    seen, booted, progress = _killing(signal.SIGSTOP)
    try:
        summary = run_live(
            ModuleImage(EXAMPLE), tmp_path / "run",
            ReplaySource(_ticks(30.0), BatchSpec(count=100)),
            on_booted=booted, on_progress=progress, reply_timeout=3.0,  # type: ignore[arg-type]
            log_writer="process",
        )
    finally:
        if "pid" in seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(seen["pid"], signal.SIGKILL)  # type: ignore[arg-type]
    assert summary.status == "host_error"
    assert "log writer" in summary.reason
    assert "within 3 s" in summary.reason
    assert summary.batches < 1_500
    _nothing_acted_beyond_the_durable_log(tmp_path / "run", summary.log_size, summary.batches)


class _FullDisk(OsFileSystem):
    """The real file system, but appends fail with ENOSPC once ``room`` bytes were written
    (picklable: the writer process gets the host's own object and the room left in it)."""

    def __init__(self, room: int) -> None:
        self.room = room

    def open_append(self, path: Path, *, create: bool) -> AppendFile:
        real, disk = super().open_append(path, create=create), self

        class File:
            def write(self, data: bytes) -> None:
                if len(data) > disk.room:
                    disk.room = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.room -= len(data)
                real.write(data)

            def fsync(self) -> None:
                real.fsync()

            def close(self) -> None:
                real.close()

        return File()


def test_a_full_disk_in_the_writer_process_reads_as_the_stores_own_error(tmp_path: Path) -> None:
    summary = run_live(
        ModuleImage(EXAMPLE), tmp_path / "run",
        ReplaySource(_ticks(4.0), BatchSpec(count=100)),
        log_fs=_FullDisk(room=60_000), log_writer="process",
    )
    assert summary.status == "host_error"
    assert "No space left on device" in summary.reason
    assert "seg-00000000.zlog" in summary.reason or "checkpoints.zlog" in summary.reason
    assert "\n" not in summary.reason
    # the disk may fill before the strategy's first order: nothing acted is then right too
    _nothing_acted_beyond_the_durable_log(tmp_path / "run", summary.log_size, summary.batches,
                                          orders=False)
