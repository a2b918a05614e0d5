"""check_replay / verify_replay over logs written by the real enclave-state and host-writer code,
with in-memory runners: all match, a logged OUT body the bundle does not produce, a runner that
answers one batch differently, misses or repeats one, a slice and an index range, an unverified
log refused (and replayed only under the unsafe option), a runner built for another PCR0."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.auditlog.support import (
    PCR0,
    batch_bodies,
    build_log,
    fake_boot_document,
    fake_boot_verifier,
    key,
)
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.export import export_slice
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.auditlog.replay import (
    ReplayMismatchError,
    ReplayReport,
    check_replay,
    summarize_body,
    verify_replay,
)
from zcbench.auditlog.storage import LogStore
from zcbench.auditlog.writer import EnclaveLogState, HostLogWriter
from zcbench.errors import DataError, EnvError, UsageError
from zcbench.strategy import Signal, decode_batch, encode_signals


class BundleRunner:
    """Stands in for the bundle: decodes each IN batch and computes the signal the test logs
    carry (buy ``1 + seq`` of the batch's first symbol), so a match means the bytes agree."""

    def __init__(self, *, pcr0: bytes | None = PCR0, alter: int | None = None,
                 drop: int | None = None, repeat: int | None = None,
                 fail_at: int | None = None) -> None:
        self.pcr0 = pcr0
        self.alter, self.drop, self.repeat, self.fail_at = alter, drop, repeat, fail_at
        self.seen: list[int] = []

    def replay(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        for seq, body in batches:
            self.seen.append(seq)
            if seq == self.fail_at:
                raise DataError(f"strategy failed on batch {seq}")
            batch = decode_batch(body, seq=seq)
            symbol = batch.events["symbol"][0]
            quantity = 1 + batch.seq + (1 if seq == self.alter else 0)
            out = encode_signals([Signal(symbol=symbol, side="buy", quantity=quantity)])
            if seq == self.drop:
                continue
            yield seq, out
            if seq == self.repeat:
                yield seq, out


def _replay(path: Path, runner: BundleRunner, **kw: object) -> ReplayReport:
    return check_replay(path, runner, trust="fake", boot_verifier=fake_boot_verifier,
                        **kw)  # type: ignore[arg-type]


def test_every_batch_matches(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=6)
    runner = BundleRunner()
    report = _replay(tmp_path / "run", runner)
    assert report.verified, report.message
    assert (report.batches, report.matched, report.mismatches) == (6, 6, ())
    assert (report.missing, report.extra, report.skipped) == ((), (), 0)
    assert report.scope == "log"
    assert report.log_checked
    assert report.log_classification == "intact"
    assert (report.first_seq, report.last_seq) == (0, 5)
    assert runner.seen == [0, 1, 2, 3, 4, 5]
    assert verify_replay(tmp_path / "run" / "log", runner, trust="fake",
                         boot_verifier=fake_boot_verifier).matched == 6


def test_a_signed_out_body_the_bundle_does_not_produce_is_a_mismatch(tmp_path: Path) -> None:
    signer = LogSigner(key(7), log_origin(PCR0, "run-1"))
    document = fake_boot_document(signer.public_key_spki_der, "run-1")
    enclave = EnclaveLogState(signer)
    writer = HostLogWriter.create(tmp_path / "run" / "log", signer.public_key_spki_der,
                                  signer.origin)
    writer.commit(enclave.boot(document, time_ns=1_700_000_000_000_000_000))
    for seq in range(5):
        in_body, out_body, event_time = batch_bodies(seq)
        if seq == 3:  # the enclave signed signals its bundle does not give for this batch
            out_body = encode_signals([Signal(symbol="MSFT", side="sell", quantity=99)])
        writer.commit(enclave.batch(seq, in_body, out_body, time_ns=event_time,
                                    event_time_ns=event_time))
    writer.close()
    report = _replay(tmp_path / "run", BundleRunner())
    assert report.log_classification == "intact"  # the log itself is sound
    assert not report.verified
    assert (report.batches, report.matched) == (5, 4)
    [bad] = report.mismatches
    assert (bad.seq, bad.index) == (3, 8)  # boot 0; batch k has IN 2k+1, OUT 2k+2
    assert bad.expected == summarize_body(
        encode_signals([Signal(symbol="MSFT", side="sell", quantity=99)]))
    assert bad.actual.signals == 1
    assert bad.actual.sha256 != bad.expected.sha256
    assert report.first_mismatch_index == 8
    assert "batch 3, OUT record 8" in report.message
    with pytest.raises(ReplayMismatchError) as exc:
        verify_replay(tmp_path / "run", BundleRunner(), trust="fake",
                      boot_verifier=fake_boot_verifier)
    assert exc.value.check == "replay"
    assert exc.value.report.mismatches == report.mismatches


def test_runner_answering_one_batch_differently_is_reported_with_seq_and_index(
    tmp_path: Path,
) -> None:
    build_log(tmp_path / "run", batches=6)
    report = _replay(tmp_path / "run", BundleRunner(alter=4))
    assert not report.verified
    assert [(m.seq, m.index) for m in report.mismatches] == [(4, 10)]
    assert report.matched == 5
    assert report.to_json()["mismatches"][0]["seq"] == 4


def test_every_mismatch_is_listed(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=6)

    class Shifted(BundleRunner):
        def replay(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
            for seq, body in super().replay(batches):
                yield seq, body if seq % 2 else body + b"\x00"

    report = _replay(tmp_path / "run", Shifted())
    assert [m.seq for m in report.mismatches] == [0, 2, 4]
    assert report.matched == 3


def test_missing_and_extra_answers(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=5)
    dropped = _replay(tmp_path / "run", BundleRunner(drop=2))
    assert not dropped.verified
    assert dropped.missing == (2,)
    assert dropped.matched == 4
    repeated = _replay(tmp_path / "run", BundleRunner(repeat=1))
    assert not repeated.verified
    assert repeated.extra == (1,)
    assert repeated.matched == 5


def test_a_runner_failing_mid_way_ends_the_replay_with_the_rest_missing(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=5)
    report = _replay(tmp_path / "run", BundleRunner(fail_at=3))
    assert not report.verified
    assert report.matched == 3
    assert report.missing == (3,)
    assert "strategy failed on batch 3" in report.message


def test_an_environment_error_from_the_runner_propagates(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=2)

    class NoEnclave(BundleRunner):
        def replay(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
            raise EnvError("no enclave here")
            yield  # pragma: no cover

    with pytest.raises(EnvError):
        _replay(tmp_path / "run", NoEnclave())


def test_a_log_that_does_not_verify_is_refused_unless_unsafe(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=4)
    # a copy whose OUT record of batch 2 (index 6) is rewritten and framed properly, with the
    # original checkpoints file: the records no longer hash to the signed roots
    records, _ = _records(built.log)
    with LogStore.create(tmp_path / "relog") as store:
        for data in records:
            record = decode_record(data)
            if record.index == 6:
                data = encode_record(index=6, kind="out", seq=record.seq, time_ns=record.time_ns,
                                     event_time_ns=record.event_time_ns,
                                     body=encode_signals([Signal("TSLA", "sell", 5)]))
            store.append([data])
        store.sync()
    copy = tmp_path / "copy"
    shutil.copytree(built.run, copy)
    segments = sorted(p.name for p in (tmp_path / "relog").iterdir() if p.name.startswith("seg-"))
    assert segments == sorted(p.name for p in (copy / "log").iterdir() if p.name.startswith("seg-"))
    for name in segments:
        shutil.copy(tmp_path / "relog" / name, copy / "log" / name)
    runner = BundleRunner()
    refused = _replay(copy, runner)
    assert not refused.verified
    assert refused.batches == 0
    assert refused.log_classification == "rewritten"
    assert "nothing was replayed" in refused.message
    assert runner.seen == []
    unsafe = _replay(copy, runner, unsafe_skip_log_check=True)
    assert not unsafe.log_checked
    assert any("UNSAFE" in w for w in unsafe.warnings)
    assert [(m.seq, m.index) for m in unsafe.mismatches] == [(2, 6)]
    assert unsafe.matched == 3


def _records(folder: Path) -> tuple[list[bytes], list[bytes]]:
    from zcbench.auditlog._fs import OsFileSystem
    from zcbench.auditlog._walk import LogWalk

    walk = LogWalk(folder, OsFileSystem())
    notes, _, _ = walk.checkpoint_notes()
    return [item.data for item in walk.records()], [note for note, _ in notes]


def test_a_slice_replays_only_its_whole_batches(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=6)
    out = tmp_path / "slice.cbor"
    # [4, 10): OUT of batch 1 (4), batches 2, 3 whole (5-8), IN of batch 4 (9)
    export_slice(tmp_path / "run", out, index_range=(4, 10), trust="fake",
                 boot_verifier=fake_boot_verifier)
    runner = BundleRunner()
    report = _replay(out, runner)
    assert report.verified, report.message
    assert report.scope == "slice"
    assert report.log_classification == "intact"
    assert runner.seen == [2, 3]
    assert (report.batches, report.matched, report.skipped) == (2, 2, 2)
    assert any("only the 2 batches" in w for w in report.warnings)
    assert not report.contiguous  # batches 0 and 1 are not in the slice
    assert any("does not hold every batch from the run's first" in w for w in report.warnings)


def test_an_index_range_replays_its_subset(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=6)
    runner = BundleRunner(alter=5)
    report = _replay(tmp_path / "run", runner, index_range=(1, 7))
    assert report.verified
    assert report.scope == "range"
    assert runner.seen == [0, 1, 2]
    assert not any("does not hold every batch" in w for w in report.warnings)
    with pytest.raises(UsageError):
        _replay(tmp_path / "run", runner, index_range=(5, 5))


def test_an_empty_selection_does_not_verify(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=3)
    report = _replay(tmp_path / "run", BundleRunner(), index_range=(0, 2))
    assert not report.verified
    assert report.batches == 0
    assert "no batch to replay" in report.message


def test_a_runner_for_another_measurement_is_refused(tmp_path: Path) -> None:
    build_log(tmp_path / "run", batches=2)
    runner = BundleRunner(pcr0=bytes(48))
    report = _replay(tmp_path / "run", runner)
    assert not report.verified
    assert runner.seen == []
    assert "replay with the build that made this run" in report.message


def test_uncommitted_records_are_not_replayed(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=3)
    in_body, out_body, event_time = batch_bodies(3)
    with LogStore.open(built.log) as store:  # a batch the enclave never signed a checkpoint for
        store.append([
            encode_record(index=7, kind="in", seq=3, body=in_body, time_ns=event_time),
            encode_record(index=8, kind="out", seq=3, body=out_body, time_ns=event_time),
        ])
        store.sync()
    runner = BundleRunner()
    report = _replay(tmp_path / "run", runner)
    assert report.log_classification == "uncommitted_tail"
    assert report.verified
    assert runner.seen == [0, 1, 2]
    assert any("were not replayed" in w for w in report.warnings)


# -- A strategy that keeps state --------------------------------------------------------------


def _running_total(seq: int) -> int:
    return sum(1 + s for s in range(seq + 1))


class StatefulRunner:
    """A bundle whose signal for a batch depends on every batch before it (a running total),
    as a real strategy's moving averages do."""

    pcr0 = PCR0

    def __init__(self) -> None:
        self.seen: list[int] = []

    def replay(self, batches: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        total = 0
        for seq, body in batches:
            self.seen.append(seq)
            batch = decode_batch(body, seq=seq)
            total += 1 + batch.seq
            yield seq, encode_signals([Signal(symbol=batch.events["symbol"][0], side="buy",
                                              quantity=total)])


def _stateful_log(run: Path, batches: int) -> None:
    signer = LogSigner(key(7), log_origin(PCR0, "run-1"))
    document = fake_boot_document(signer.public_key_spki_der, "run-1")
    run.mkdir(parents=True)
    enclave = EnclaveLogState(signer)
    writer = HostLogWriter.create(run / "log", signer.public_key_spki_der, signer.origin)
    writer.commit(enclave.boot(document, time_ns=1))
    for seq in range(batches):
        in_body, _, t = batch_bodies(seq)
        symbol = decode_batch(in_body, seq=seq).events["symbol"][0]
        out_body = encode_signals([Signal(symbol=symbol, side="buy",
                                          quantity=_running_total(seq))])
        writer.commit(enclave.batch(seq, in_body, out_body, time_ns=t + 1, event_time_ns=t))
    writer.close()


def test_a_range_of_a_stateful_strategy_replays_from_the_start(tmp_path: Path) -> None:
    _stateful_log(tmp_path / "run", batches=6)
    runner = StatefulRunner()
    report = _replay(tmp_path / "run", runner, index_range=(7, 13))  # batches 3, 4, 5
    assert report.verified, report.message
    assert report.verdict == "match"
    assert runner.seen == [0, 1, 2, 3, 4, 5]  # from the run's first batch
    assert (report.batches, report.matched, report.warmup) == (3, 3, 3)
    assert report.first_seq == 3
    assert any("replayed first to rebuild" in w for w in report.warnings)


def test_a_slice_of_a_stateful_strategy_is_inconclusive_never_differs(tmp_path: Path) -> None:
    _stateful_log(tmp_path / "run", batches=6)
    out = tmp_path / "slice.cbor"
    export_slice(tmp_path / "run", out, index_range=(7, 13), trust="fake",
                 boot_verifier=fake_boot_verifier)
    report = _replay(out, StatefulRunner())
    assert not report.verified
    assert not report.contiguous
    assert report.verdict == "inconclusive"
    assert report.headline == "REPLAY INCONCLUSIVE"
    assert "inconclusive" in report.message
    # A slice that starts at the run's first batch rebuilds the state: a verdict either way.
    export_slice(tmp_path / "run", out, index_range=(0, 9), trust="fake",
                 boot_verifier=fake_boot_verifier)
    assert _replay(out, StatefulRunner()).verdict == "match"
