"""Replay end to end with real enclave processes: a sealed build run live, then replayed through
a fresh enclave that unseals through the key broker (library and CLI), a tampered copy of the
run (refused, then a named mismatch under the unsafe option), a slice from the middle of a run
(renumbered), a build of another measurement, and the CLI's usage and environment exits."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.live_world import LiveWorld
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.export import export_slice
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.auditlog.replay import check_replay
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.verify import check_log
from zcbench.cli import main
from zcbench.errors import UsageError
from zcbench.host.launcher import LocalEnclave, launch_local
from zcbench.host.live import ModuleImage, run_live
from zcbench.host.proxy import ReplaySource
from zcbench.host.replay import EnclaveReplayRunner, build_of_run, replay_log
from zcbench.marketdata import BatchSpec, SyntheticConfig, generate_ticks
from zcbench.strategy import Signal, encode_signals

pytestmark = pytest.mark.slow

# stateless, so a slice from the middle of a run replays to the same signals
STATELESS = textwrap.dedent('''\
    from dataclasses import dataclass

    from zcbench.strategy import Batch, Signal, Strategy


    @dataclass(frozen=True)
    class Params:
        size: int = 3


    class EveryBatch(Strategy):
        name = "every_batch"
        params_type = Params
        input_fields = ("kind", "price")

        def on_batch(self, batch: Batch) -> list[Signal]:
            trades = batch.events.filter(batch.events["kind"] == "trade")
            if trades.height == 0:
                return []
            side = "buy" if trades["price"][-1] >= trades["price"][0] else "sell"
            return [Signal(trades["symbol"][0], side, self.params.size + trades.height)]
    ''')


def _cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def _tampered_copy(run: Path, dest: Path, index: int, scratch: Path) -> None:
    """``run`` copied to ``dest`` with the OUT record at ``index`` holding other signals,
    framed properly (the checkpoints file is the original's)."""
    walk = LogWalk(run / "log", OsFileSystem())
    with LogStore.create(scratch) as store:
        for item in walk.records():
            data = item.data
            if item.index == index:
                record = decode_record(data)
                assert record.kind == "out"
                data = encode_record(index=index, kind="out", seq=record.seq,
                                     time_ns=record.time_ns, event_time_ns=record.event_time_ns,
                                     body=encode_signals([Signal("AAA", "sell", 7)]))
            store.append([data])
        store.sync()
    shutil.copytree(run, dest)
    for seg in (dest / "log").glob("seg-*"):
        seg.unlink()
    for seg in scratch.glob("seg-*"):
        shutil.copy(seg, dest / "log" / seg.name)


def test_sealed_build_replays_byte_for_byte_and_a_tampered_copy_is_caught(
    live_world_copy: LiveWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZCBENCH_HOME", str(live_world_copy.home))  # the build's sealing keys
    run, build = live_world_copy.run, live_world_copy.build
    outs = [r for r, _ in iter_records(run) if r.kind == "out"]
    assert len(outs) >= 3, "the live run made too few batches to replay"

    runner = EnclaveReplayRunner(build, keep_dir=tmp_path / "replay-log")
    report = check_replay(run, runner, trust="dev")
    assert report.verified, report.message
    assert report.batches == report.matched == len(outs)
    assert report.log_classification == "intact"
    assert not runner.renumbered
    assert runner.last_run_id is not None
    assert runner.last_run_id.startswith("replay-")
    # the replay enclave unsealed the build and signed its own log, kept here on request
    kept = check_log(tmp_path / "replay-log", trust="dev")
    assert kept.verified, kept.message
    assert kept.origin is not None
    assert kept.origin.endswith("/" + runner.last_run_id)
    assert kept.entries == 1 + 2 * len(outs)

    # the CLI finds the build through summary.json
    code, payload = _cli_json(["log", "replay", str(run), "--trust", "dev", "--json"], capsys)
    assert code == 0, payload
    assert payload["verified"]
    assert payload["matched"] == len(outs)
    assert payload["build"] == str(build.resolve())
    assert payload["replay_run_id"].startswith("replay-")

    target = outs[len(outs) // 2]
    _tampered_copy(run, tmp_path / "copy", target.index, tmp_path / "relog")
    code, payload = _cli_json(["log", "replay", str(tmp_path / "copy"), "--trust", "dev",
                               "--json"], capsys)
    assert code == 1
    assert payload["log_classification"] == "rewritten"
    assert payload["batches"] == 0
    code, payload = _cli_json(["log", "replay", str(tmp_path / "copy"), "--trust", "dev",
                               "--unsafe-skip-log-check", "--json"], capsys)
    assert code == 1
    assert [(m["seq"], m["index"]) for m in payload["mismatches"]] == [
        (target.seq, target.index)
    ]
    assert payload["matched"] == len(outs) - 1
    assert not payload["log_checked"]
    # without --json the mismatch is named in words
    assert main(["log", "replay", str(tmp_path / "copy"), "--trust", "dev",
                 "--unsafe-skip-log-check"]) == 1
    text = capsys.readouterr().out
    assert f"batch {target.seq} (OUT record {target.index})" in text


def _module_run(tmp_path: Path, size: int = 3) -> tuple[Path, ModuleImage]:
    module = tmp_path / "every_batch.py"
    module.write_text(STATELESS)
    image = ModuleImage(module, {"size": size})
    events = generate_ticks(SyntheticConfig(symbols=("AAA", "BBB"), rate=2000, duration_s=2),
                            seed=5)
    # no clock records: the log's layout is then fixed (boot, the start limits, IN/OUT pairs)
    summary = run_live(image, tmp_path / "run", ReplaySource(events, BatchSpec(count=400)),
                       clock_every_s=None)
    assert summary.status == "completed", summary.reason
    assert summary.batches >= 6
    return tmp_path / "run", image


def test_a_slice_from_the_middle_is_renumbered_and_matches(tmp_path: Path) -> None:
    run, image = _module_run(tmp_path)
    # [7, 14): OUT of batch 2, batches 3..5 whole, nothing of 6
    export_slice(run, tmp_path / "slice.cbor", index_range=(7, 14), trust="dev")
    runner = EnclaveReplayRunner(image, keep_dir=tmp_path / "replay-log")
    report = check_replay(tmp_path / "slice.cbor", runner, trust="dev")
    assert report.verified, report.message
    assert report.scope == "slice"
    assert report.batches == 3
    assert (report.first_seq, report.last_seq, report.skipped) == (3, 5, 1)
    assert runner.renumbered
    assert any("starts at batch 3" in w for w in report.warnings)
    # renumbered in the frames and records only: the replay enclave logged each batch's bytes
    # exactly as the live run did (a batch's bytes carry no seq, so nothing is re-encoded)
    logged = {r.seq: r.body for r, _ in iter_records(run) if r.kind == "in"}
    replayed = [(r.seq, r.body) for r, _ in iter_records(tmp_path / "replay-log")
                if r.kind == "in"]
    assert [seq for seq, _ in replayed] == [0, 1, 2]
    assert [body for _, body in replayed] == [logged[3], logged[4], logged[5]]


def test_a_build_of_another_measurement_is_refused_before_any_enclave_starts(
    tmp_path: Path,
) -> None:
    run, image = _module_run(tmp_path)
    other = EnclaveReplayRunner(ModuleImage(image.module, {"size": 4}))
    report = check_replay(run, other, trust="dev")
    assert not report.verified
    assert report.batches == 0
    assert "replay with the build that made this run" in report.message
    assert other.last_run_id is None  # refused before replay() was called


def test_cli_usage_and_environment_exits(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = _module_run(tmp_path)
    # a module run names no build folder: the caller must give one
    assert main(["log", "replay", str(run), "--trust", "dev"]) == 2
    assert "--build" in capsys.readouterr().err
    assert main(["log", "replay", str(run), "--trust", "dev",
                 "--build", str(tmp_path / "no-build")]) == 2  # a missing input path
    assert main(["log", "replay", str(run), "--trust", "dev", "--build", str(tmp_path),
                 "--range", "5"]) == 2


def test_stopping_early_shuts_the_enclave_down_and_replay_log_reports(tmp_path: Path) -> None:
    run, image = _module_run(tmp_path)
    started: list[LocalEnclave] = []

    def launcher(folder: Path) -> LocalEnclave:
        enclave = launch_local(image.launch_args(), stderr_path=folder / "enclave.stderr")
        started.append(enclave)
        return enclave

    runner = EnclaveReplayRunner(image, launcher=launcher)
    logged = [(r.seq, r.body) for r, _ in iter_records(run) if r.kind == "in"]
    replies = runner.replay(iter(logged))
    first = next(replies)
    assert first[0] == 0
    [enclave] = started
    assert enclave.alive()
    replies.close()  # the caller stops after one batch: finally shuts the enclave down
    assert not enclave.alive()

    report = replay_log(run, build=image, trust="dev", index_range=(0, 10))
    assert report.verified, report.message
    assert report.batches == 4
    assert report.scope == "range"
    with pytest.raises(UsageError, match="unsealed module"):
        build_of_run(run)
    (tmp_path / "slice.cbor").write_bytes(b"")
    with pytest.raises(UsageError, match=r"no run summary|is not a log"):
        build_of_run(tmp_path / "slice.cbor")
