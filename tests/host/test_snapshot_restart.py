"""A strategy's state across runs: the crossover continued from a sealed snapshot signals as
one uninterrupted run over the same bars; the snapshot is logged, kept beside the run, and a
snapshot that is edited, of another build or not the logged one is refused by name."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import polars as pl
import pytest

import zcbench.examples.ma_crossover as crossover_module
from zcbench.auditlog.frame import iter_records
from zcbench.auditlog.listing import describe_body
from zcbench.auditlog.records import decode_record
from zcbench.auditlog.snapshots import catch_up_chunks, find_snapshot
from zcbench.errors import VerificationError
from zcbench.host import ReplaySource
from zcbench.host.live import ModuleImage, RunHandle, run_live
from zcbench.host.replay import replay_log
from zcbench.host.restart import check_link, continue_run
from zcbench.marketdata import BatchSpec, load_ohlcv, sample_daily_path
from zcbench.strategy import Signal, decode_signals, decode_snapshot_note, is_snapshot_note
from zcbench.venue import PaperVenue

PARAMS = {"fast": 3, "slow": 8, "quantity": 100, "allow_short": True}


def _bars(n: int = 120) -> pl.DataFrame:
    return load_ohlcv(sample_daily_path()).slice(2_000, n)


def _image(tmp_path: Path, params: dict[str, object] = PARAMS) -> ModuleImage:
    module = tmp_path / "crossover.py"
    if not module.exists():
        shutil.copy(crossover_module.__file__, module)
    return ModuleImage(module, params)


def _run(image: ModuleImage, bars: pl.DataFrame, run: Path, **kw: object) -> None:
    summary = run_live(image, run, ReplaySource(bars, BatchSpec(count=1)), venue=PaperVenue(),
                       feedback=True, clock_every_s=None, **kw)  # type: ignore[arg-type]
    assert summary.status == "completed", summary.reason


def _signals(run: Path) -> list[list[Signal]]:
    return [decode_signals(r.body) for r, _ in iter_records(run) if r.kind == "out"]


def _snapshot_notes(run: Path) -> list[tuple[int, str, int]]:
    return [(r.index, n.action, n.seq) for r, _ in iter_records(run)
            if r.kind == "note" and is_snapshot_note(r.body)
            for n in [decode_snapshot_note(r.body)]]


@pytest.mark.slow  # three live runs
def test_a_continued_crossover_signals_as_one_uninterrupted_run(tmp_path: Path) -> None:
    image, bars = _image(tmp_path), _bars()
    whole, first, second = tmp_path / "whole", tmp_path / "first", tmp_path / "second"
    _run(image, bars, whole)
    _run(image, bars.head(60), first)
    notes = _snapshot_notes(first)
    assert notes
    assert notes[-1][1:] == ("taken", 60)
    assert (first / "snapshots" / f"{notes[-1][0]}.sealed").is_file()
    _run(image, bars.tail(60), second, continuation=continue_run(first))
    restored = _snapshot_notes(second)[0]
    assert restored[1:] == ("restored", 0)
    assert (second / "snapshots" / f"{restored[0]}.sealed").read_bytes() == (
        first / "snapshots" / f"{notes[-1][0]}.sealed").read_bytes()
    assert check_link(first, second) == []
    shown = describe_body(next(r for r, _ in iter_records(second) if r.index == restored[0]))
    assert shown.startswith("strategy snapshot restored before batch 0: ")
    assert f"from {continue_run(first).link.origin} record {notes[-1][0]}" in shown
    expected = _signals(whole)
    assert any(expected[60:])  # the tail trades, so the windows matter
    assert _signals(first) + _signals(second) == expected
    # without the snapshot the continued run's windows start empty: it signals otherwise
    bare = tmp_path / "bare"
    _run(image, bars.tail(60), bare, continuation=continue_run(first), snapshot_every_s=None)
    # still restored, and caught up (on no batch: the first run's last snapshot followed its
    # last batch)
    assert _snapshot_notes(bare) == [(restored[0], "restored", 0),
                                     (restored[0] + 1, "caught_up", 0)]
    fresh = tmp_path / "fresh"
    _run(image, bars.tail(60), fresh)
    assert _signals(fresh) != expected[60:]


@pytest.mark.slow  # four live runs
def test_an_edited_foreign_or_unlogged_snapshot_is_refused(tmp_path: Path) -> None:
    image, bars = _image(tmp_path), _bars(30)
    first = tmp_path / "first"
    _run(image, bars, first)
    index = _snapshot_notes(first)[-1][0]
    sealed_file = first / "snapshots" / f"{index}.sealed"
    good = sealed_file.read_bytes()
    # another build (other parameters: another PCR0) sealed its own snapshot
    other = tmp_path / "other"
    _run(_image(tmp_path, {**PARAMS, "quantity": 50}), bars, other)
    foreign = (other / "snapshots" / f"{_snapshot_notes(other)[-1][0]}.sealed").read_bytes()
    # the same build's snapshot of another run: opens, but is not the one the log records
    again = tmp_path / "again"
    _run(image, bars.head(20), again)
    unlogged = (again / "snapshots" / f"{_snapshot_notes(again)[-1][0]}.sealed").read_bytes()
    edited = bytearray(good)
    edited[-3] ^= 0x01
    for n, (bad, reason) in enumerate([(bytes(edited), "another PCR0, or edited"),
                                       (foreign, "another PCR0, or edited"),
                                       (unlogged, "SHA-256 differs")]):
        sealed_file.write_bytes(bad)
        with pytest.raises(VerificationError, match=reason):
            run_live(image, tmp_path / f"refused-{n}", ReplaySource(bars, BatchSpec(count=1)),
                     venue=PaperVenue(), feedback=True, clock_every_s=None,
                     continuation=continue_run(first))
    sealed_file.unlink()
    with pytest.raises(Exception, match="restore that file"):
        continue_run(first)
    sealed_file.write_bytes(good)
    snapshot = find_snapshot(first, origin=continue_run(first).link.origin,
                             size=continue_run(first).link.size,
                             root=continue_run(first).link.root)
    assert snapshot is not None
    assert snapshot.sealed == good


@pytest.mark.slow  # two live runs
def test_a_continuation_from_an_older_snapshot_is_named_by_the_chain_check(
        tmp_path: Path) -> None:
    image, bars = _image(tmp_path), _bars(30)
    first, second = tmp_path / "first", tmp_path / "second"
    _run(image, bars.head(20), first, snapshot_every_s=0.0)
    continuation = continue_run(first)
    assert continuation.snapshot is not None
    link = continuation.link
    older = find_snapshot(first, origin=link.origin, size=link.size, root=link.root,
                          before=continuation.snapshot.index)
    assert older is not None
    assert older.seq < continuation.snapshot.seq
    # a host handing over an older state: the enclave can only check that it is one the log
    # records, so it runs; the chain check names it
    _run(image, bars.tail(10), second,
         continuation=dataclasses.replace(continuation, snapshot=older))
    problems = check_link(first, second)
    assert len(problems) == 1
    assert "did not start from the previous run's newest snapshot" in problems[0]
    # a run that never restored its predecessor's snapshot (as a host killed between its start
    # state and its restore leaves it): continuing it would lose the state, so it is refused
    unrestored = tmp_path / "unrestored"
    _run(image, bars.tail(10), unrestored, snapshot_every_s=None,
         continuation=dataclasses.replace(continuation, snapshot=None))
    assert _snapshot_notes(unrestored) == []
    assert continue_run(unrestored).end.snapshot_behind == first
    with pytest.raises(VerificationError, match="killed before it restored"):
        run_live(image, tmp_path / "after", ReplaySource(bars.tail(5), BatchSpec(count=1)),
                 venue=PaperVenue(), feedback=True, clock_every_s=None,
                 continuation=continue_run(unrestored))


@pytest.mark.slow  # four live runs and a replay
def test_a_run_killed_after_its_snapshot_continues_with_the_batches_it_logged_after_it(
        tmp_path: Path) -> None:
    image, bars = _image(tmp_path), _bars()
    whole, first, killed, third = (tmp_path / n for n in ("whole", "first", "killed", "third"))
    _run(image, bars, whole)
    _run(image, bars.head(40), first)
    # the second run takes no snapshot of its own (one an hour at most) and its enclave dies
    # after 20 batches: its newest snapshot is the state it started from, and every batch it
    # logged comes after it
    handle: list[RunHandle] = []

    def kill_after_some(progress: object) -> None:
        if len(handle) == 1 and getattr(progress, "batches", 0) >= 20:
            handle.append(handle[0])
            handle[0].enclave.kill()

    summary = run_live(image, killed, ReplaySource(bars.slice(40, 40), BatchSpec(count=1)),
                       venue=PaperVenue(), feedback=True, clock_every_s=None,
                       continuation=continue_run(first), snapshot_every_s=3600.0,
                       on_booted=handle.append, on_progress=kill_after_some)
    assert summary.status == "enclave_died", summary.reason
    logged = len(_signals(killed))
    assert 20 <= logged < 40
    assert [n[1] for n in _snapshot_notes(killed)] == ["restored", "caught_up"]
    continuation = continue_run(killed)
    assert continuation.snapshot is not None
    assert continuation.snapshot.action == "caught_up"
    # what the next enclave is handed, in bounded chunks: every record after that snapshot
    # (a seq-0 one: from the start state on), the first chunk with the range before them
    chunks = list(catch_up_chunks(killed, continuation.snapshot, max_records=7))
    assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(len(c.records) <= 7 for c in chunks)
    assert [bool(c.hashes) for c in chunks] == [True] + [False] * (len(chunks) - 1)
    sent = [r for c in chunks for r in c.records]
    assert [decode_record(r).index for r in sent] == list(range(1, continuation.link.size))
    assert [c.first for c in chunks] == [decode_record(c.records[0]).index for c in chunks]
    _run(image, bars.slice(40 + logged, 80 - logged), third, continuation=continuation)
    notes = _snapshot_notes(third)
    assert notes[:2] == [(2, "restored", 0), (3, "caught_up", 0)]
    caught = next(decode_snapshot_note(r.body) for r, _ in iter_records(third) if r.index == 3)
    assert caught.batches == logged
    shown = describe_body(next(r for r, _ in iter_records(third) if r.index == 3))
    assert shown.startswith(f"strategy snapshot caught up on {logged} batches before batch 0")
    # the strategy went on from the killed run's last logged batch: one run's signals
    expected = _signals(whole)
    assert any(expected[40 + logged:])
    assert _signals(first) + _signals(killed) + _signals(third) == expected
    assert check_link(killed, third) == []
    report = replay_log(third, build=image, trust="dev")
    assert report.verified, report.message
    assert report.snapshot == 3


@pytest.mark.slow  # three live runs
def test_a_refused_catch_up_ends_the_run_and_leaves_no_state_to_continue_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zcbench.auditlog.snapshots as snapshots

    image, bars = _image(tmp_path), _bars(30)
    first, second, refused = tmp_path / "first", tmp_path / "second", tmp_path / "refused"
    _run(image, bars.head(10), first)
    # a host whose catch-up does not reach the final checkpoint (a hash of the range before
    # it flipped): the enclave names it, the run ends
    chunks = snapshots.catch_up_chunks

    def flipped(path: Path, snapshot: object, **kw: object):  # type: ignore[no-untyped-def]
        for chunk in chunks(path, snapshot, **kw):  # type: ignore[arg-type]
            hashes = [bytes([h[0] ^ 1]) + h[1:] for h in chunk.hashes]
            yield dataclasses.replace(chunk, hashes=tuple(hashes))

    continuation = continue_run(first)
    with monkeypatch.context() as patch:
        patch.setattr(snapshots, "catch_up_chunks", flipped)
        with pytest.raises(VerificationError, match="refused the records") as refusal:
            run_live(image, refused, ReplaySource(bars.tail(20), BatchSpec(count=1)),
                     venue=PaperVenue(), feedback=True, clock_every_s=None,
                     continuation=continuation)
    assert refusal.value.check == "catch_up_proof"
    # it acted on no batch, and its restored state lacks its predecessor's catch-up: a run
    # continuing it is told to continue the first one instead, which works
    assert [n[1] for n in _snapshot_notes(refused)] == ["restored"]
    assert not _signals(refused)
    assert continue_run(refused).end.snapshot_behind == first
    with pytest.raises(VerificationError, match="killed before it restored and caught up"):
        run_live(image, tmp_path / "after", ReplaySource(bars.tail(20), BatchSpec(count=1)),
                 venue=PaperVenue(), feedback=True, clock_every_s=None,
                 continuation=continue_run(refused))
    _run(image, bars.tail(20), second, continuation=continue_run(first))
    assert [n[1] for n in _snapshot_notes(second)][:2] == ["restored", "caught_up"]
