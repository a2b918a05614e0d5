"""Replaying a range of a stateful strategy from a snapshot the log records: the replay enclave
restores the sealed snapshot (checked against its record), replays only from there, and its
OUT records equal the live run's byte for byte; a replay from the run's start still matches,
and a continuing run replays from the state its first batch started from (the snapshot it
restored, caught up on the batches logged after it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.test_snapshot_restart import _bars, _image, _run, _snapshot_notes
from zcbench.auditlog.frame import iter_records
from zcbench.host.replay import replay_log
from zcbench.host.restart import continue_run


def _outs(run: Path) -> dict[int, bytes]:
    return {r.seq: r.body for r, _ in iter_records(run) if r.kind == "out" and r.seq is not None}


@pytest.mark.slow  # two live runs and five replays
def test_a_range_replays_from_the_snapshot_before_it_and_equals_the_live_run(
        tmp_path: Path) -> None:
    image, bars = _image(tmp_path), _bars(60)
    run = tmp_path / "run"
    _run(image, bars, run, snapshot_every_s=0.0)  # a snapshot after every batch
    notes = _snapshot_notes(run)
    assert len(notes) >= 50
    # a range around batch 40: the snapshot taken before it is the replay's start
    outs = [(r.index, r.seq) for r, _ in iter_records(run) if r.kind == "out"]
    start = next(i for i, seq in outs if seq == 40) - 1  # batch 40's IN record
    stop = next(i for i, seq in outs if seq == 45) + 1
    kept = tmp_path / "kept"
    report = replay_log(run, build=image, trust="dev", index_range=(start, stop),
                        keep_dir=kept)
    assert report.verified, report.message
    assert report.snapshot is not None
    assert report.snapshot < start
    before = next(n for n in notes if n[0] == report.snapshot)
    assert before[1] == "taken"
    assert 35 <= before[2] <= 40
    assert report.warmup == 40 - before[2]  # only the batches after the snapshot rebuilt
    assert report.matched == 6
    assert any("replayed from the strategy's snapshot" in w for w in report.warnings)
    # the replay enclave's own log: it restored that snapshot, and its OUT records are the
    # live run's, byte for byte
    replayed = _outs(kept)
    assert min(replayed) == before[2]
    live = _outs(run)
    assert all(replayed[seq] == live[seq] for seq in replayed)
    assert _snapshot_notes(kept)[0][1:] == ("restored", before[2])
    # from the run's start still works, and matches too
    whole = replay_log(run, build=image, trust="dev", index_range=(start, stop),
                       from_snapshot=False)
    assert whole.verified
    assert whole.snapshot is None
    assert whole.warmup == 40
    # an edited snapshot file: the replay enclave refuses it (nothing is compared)
    sealed = run / "snapshots" / f"{report.snapshot}.sealed"
    good = sealed.read_bytes()
    sealed.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    refused = replay_log(run, build=image, trust="dev", index_range=(start, stop))
    assert refused.verdict == "refused"
    assert "another PCR0, or edited" in refused.message
    sealed.write_bytes(good)


@pytest.mark.slow  # two live runs and a replay
def test_a_continuing_run_replays_from_the_snapshot_it_restored(tmp_path: Path) -> None:
    image, bars = _image(tmp_path), _bars(40)
    first, second = tmp_path / "first", tmp_path / "second"
    _run(image, bars.head(20), first)
    _run(image, bars.tail(20), second, continuation=continue_run(first))
    report = replay_log(second, build=image, trust="dev")
    assert report.verified, report.message
    assert report.snapshot == 3  # its caught_up record, right after the restored one
    assert report.batches == 20
    # the sealed copy beside the run is needed: without it the replay is refused, never run
    # from an empty strategy (which would differ)
    (second / "snapshots" / "3.sealed").unlink()
    missing = replay_log(second, build=image, trust="dev")
    assert missing.verdict == "refused"
    assert "3.sealed" in missing.message
