"""A host killed with SIGKILL mid-run, continued with ``zcbench run --continue``: the packaged
crossover (sealed, its snapshot key derived from the data key the broker released) starts again
from the newest snapshot the killed run logged, caught up on every batch the killed run logged
after it, so it keeps its windows across the kill as of the last batch logged; the chain, the
log and the replay all hold."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import zcbench.examples.ma_crossover as crossover_module
from tests.host.test_snapshot_restart import _bars, _snapshot_notes
from zcbench.auditlog.frame import iter_records
from zcbench.cli import main
from zcbench.examples import MACrossover
from zcbench.packager import package_notebook
from zcbench.strategy import (
    Batch,
    Context,
    Signal,
    apply_strategy,
    decode_batch,
    decode_context,
    decode_signals,
    decode_snapshot_note,
    decode_start,
    is_context,
    is_snapshot_note,
    is_start,
    make_strategy,
)

pytestmark = pytest.mark.slow

PARAMS = {"fast": 3, "slow": 8, "quantity": 100, "allow_short": True}


def _package(tmp_path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    source = Path(crossover_module.__file__).read_text()
    source = source.replace("from __future__ import annotations\n", "")
    nb.cells = [
        nbformat.v4.new_code_cell(
            "\n".join(["batch_count = 1", *(f"{k} = {v!r}" for k, v in PARAMS.items())]),
            metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(source, metadata={"tags": ["strategy"]}),
    ]
    nbformat.write(nb, tmp_path / "research.ipynb")
    package_notebook(tmp_path / "research.ipynb", tmp_path / "build")
    return tmp_path / "build"


def _feed(strategy: MACrossover, run: Path, *, before: int | None = None) -> list[list[Signal]]:
    """Run ``run``'s logged inputs through ``strategy`` in process, as the enclave does (the
    start state's positions and each feedback record as the next batch's context)."""
    signals: list[list[Signal]] = []
    pending: Context | None = None
    for record, _ in iter_records(run):
        if before is not None and record.index >= before:
            break
        if record.kind != "in":
            continue
        if is_start(record.body):
            pending = Context(0, positions=decode_start(record.body).positions)
        elif is_context(record.body):
            pending = decode_context(record.body, seq=record.batch_seq)
        else:
            batch: Batch = decode_batch(record.body, seq=record.batch_seq)
            signals.append(apply_strategy(strategy, batch, pending))
            pending = None
    return signals


def _outs(run: Path) -> int:
    """OUT records the run's log holds so far (a record being written is not counted)."""
    try:
        return sum(1 for r, _ in iter_records(run) if r.kind == "out")
    except Exception:  # not there yet, or a tail mid-write: the next look sees more
        return 0


def _killed_mid_run(cmd: list[str], run: Path, err: Path, *, outs: int) -> None:
    """Start ``zcbench run`` and SIGKILL it (and its enclave) once its log holds ``outs``
    batches."""
    with err.open("wb") as sink:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sink,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and _outs(run) < outs:
            time.sleep(0.05)
        assert proc.poll() is None, err.read_text()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (run / "summary.json").exists()


def test_a_killed_run_continues_from_its_newest_snapshot(tmp_path: Path) -> None:
    build = _package(tmp_path)
    data = tmp_path / "bars.csv"
    _bars(160).write_csv(data)
    killed, after = tmp_path / "killed", tmp_path / "after"
    cmd = [sys.executable, "-m", "zcbench", "run", str(build), "--data", str(data),
           "--rate", str(86_400 * 20), "--snapshot-every", "0", "--run-dir", str(killed),
           "--json"]
    _killed_mid_run(cmd, killed, tmp_path / "run.stderr", outs=30)
    assert [n for n in _snapshot_notes(killed) if n[1] == "taken"]

    assert main(["run", str(build), "--data", str(data), "--continue", str(killed),
                 "--run-dir", str(after), "--json"]) == 0
    restored = _snapshot_notes(after)[0]
    assert restored == (2, "restored", 0)
    assert main(["log", "verify", "--trust", "dev", "--previous", str(killed), str(after)]) == 0
    assert main(["log", "replay", str(after), "--trust", "dev"]) == 0

    # the continued strategy is the killed one as of its last logged batch (its newest snapshot
    # and the batches after it): in process, every input the killed run logged, then the
    # continued run's, give its signals
    signed = [decode_signals(r.body) for r, _ in iter_records(after) if r.kind == "out"]
    kept = make_strategy(MACrossover, PARAMS)
    _feed(kept, killed)  # type: ignore[arg-type]
    assert _feed(kept, after) == signed  # type: ignore[arg-type]
    assert any(signed)
    fresh = make_strategy(MACrossover, PARAMS)  # from nothing it would signal otherwise
    assert _feed(fresh, after) != signed  # type: ignore[arg-type]


def test_a_run_killed_long_after_its_snapshot_loses_none_of_its_batches(
        tmp_path: Path) -> None:
    build = _package(tmp_path)
    data = tmp_path / "bars.csv"
    _bars(160).write_csv(data)
    first, killed, after = tmp_path / "first", tmp_path / "killed", tmp_path / "after"
    head = tmp_path / "head.csv"
    _bars(160).head(40).write_csv(head)
    assert main(["run", str(build), "--data", str(head), "--run-dir", str(first),
                 "--json"]) == 0
    # continued with no snapshot of its own until its end (one an hour), SIGKILLed mid-run:
    # every batch it logged follows its newest snapshot, the state it started from
    cmd = [sys.executable, "-m", "zcbench", "run", str(build), "--data", str(data),
           "--rate", str(86_400 * 20), "--snapshot-every", "3600", "--continue", str(first),
           "--run-dir", str(killed), "--json"]
    _killed_mid_run(cmd, killed, tmp_path / "run.stderr", outs=25)
    lost = sum(1 for r, _ in iter_records(killed) if r.kind == "out")
    assert [n[1] for n in _snapshot_notes(killed)] == ["restored", "caught_up"]

    assert main(["run", str(build), "--data", str(data), "--continue", str(killed),
                 "--run-dir", str(after), "--json"]) == 0
    caught = [decode_snapshot_note(r.body) for r, _ in iter_records(after)
              if r.kind == "note" and is_snapshot_note(r.body)][1]
    assert (caught.action, caught.batches) == ("caught_up", lost)
    assert main(["log", "verify", "--trust", "dev", "--previous", str(killed), str(after)]) == 0
    assert main(["log", "replay", str(after), "--trust", "dev"]) == 0
    # one strategy fed every input of the chain in order signals as the continued run did
    signed = [decode_signals(r.body) for r, _ in iter_records(after) if r.kind == "out"]
    assert any(signed)
    kept = make_strategy(MACrossover, PARAMS)
    for run in (first, killed):
        _feed(kept, run)  # type: ignore[arg-type]
    # the caught-up state is that strategy's after the killed run's last logged batch, not
    # the state the killed run started from
    assert caught.sha256 == hashlib.sha256(kept.snapshot()).digest()
    behind = make_strategy(MACrossover, PARAMS)
    _feed(behind, first)  # type: ignore[arg-type]
    assert caught.sha256 != hashlib.sha256(behind.snapshot()).digest()
    assert _feed(kept, after) == signed  # type: ignore[arg-type]
