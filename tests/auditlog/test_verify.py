"""Verification and the tamper suite: every way of changing a signed log is detected and
classified (DESIGN.md's closed set), with the first bad index where there is one."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cbor2
import pytest

from tests.auditlog.support import (
    PCR0,
    BuiltLog,
    build_log,
    fake_boot_document,
    fake_boot_verifier,
    key,
)
from zcbench.auditlog._frames import (
    CHECKPOINT_FILE,
    CHECKPOINT_MAGIC,
    SEGMENT_MAGIC,
    frame,
    header,
    scan_file,
)
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import decode_record, encode_record
from zcbench.auditlog.verify import (
    CLASSIFICATIONS,
    LogReport,
    LogVerificationError,
    check_log,
    verify_log,
)
from zcbench.errors import UsageError


def _check(path: Path, **kw: object) -> LogReport:
    report = check_log(path, trust="fake", boot_verifier=fake_boot_verifier, **kw)  # type: ignore[arg-type]
    assert report.classification in CLASSIFICATIONS
    assert report.verified == (report.classification in
                               {"intact", "torn_tail", "uncommitted_tail"})
    return report


@pytest.fixture
def built(tmp_path: Path) -> BuiltLog:
    return build_log(tmp_path / "run", batches=6)


def _segment(log: Path) -> Path:
    return log / "seg-00000000.zlog"


def _payloads(path: Path, magic: bytes = SEGMENT_MAGIC) -> list[bytes]:
    scan = scan_file(path, path.read_bytes(), magic)
    assert scan.damage is None
    return [f.payload for f in scan.frames]


def _rewrite(path: Path, change: Callable[[list[bytes]], list[bytes]],
             magic: bytes = SEGMENT_MAGIC) -> None:
    """Rewrite a file with re-computed frame checksums: what a careful attacker does."""
    data = path.read_bytes()
    payloads = change(_payloads(path, magic))
    path.write_bytes(data[:32] + b"".join(frame(p) for p in payloads))


def _record(data: bytes, **changes: object) -> bytes:
    r = decode_record(data)
    fields = {"index": r.index, "kind": r.kind, "seq": r.seq, "time_ns": r.time_ns,
              "event_time_ns": r.event_time_ns, "body": r.body}
    fields.update(changes)
    return encode_record(**fields)  # type: ignore[arg-type]


def test_intact_log(built: BuiltLog) -> None:
    report = _check(built.run)
    assert report.classification == "intact"
    assert (report.entries, report.records, report.checkpoints) == (13, 13, 7)
    assert report.first_bad_index is None
    assert report.origin == log_origin(PCR0, "run-1")
    assert report.latest_checkpoint is not None
    # A log folder is accepted as well as the run folder.
    assert _check(built.log).classification == "intact"
    assert verify_log(built.run, trust="fake", boot_verifier=fake_boot_verifier) is not None
    json_report = report.to_json()
    for field in ("verified", "entries", "checkpoints", "first_bad_index", "classification"):
        assert field in json_report


def test_modified_record_is_rewritten(built: BuiltLog) -> None:
    def change(p: list[bytes]) -> list[bytes]:
        p[5] = _record(p[5], body=decode_record(p[5]).body + b"x")
        return p

    _rewrite(_segment(built.log), change)
    report = _check(built.run)
    assert report.classification == "rewritten"
    assert report.first_bad_index == 5  # the checkpoint of size 5 still matched
    with pytest.raises(LogVerificationError) as info:
        verify_log(built.run, trust="fake", boot_verifier=fake_boot_verifier)
    assert info.value.check == "log_rewritten"


def test_flipped_byte_mid_file_is_corrupt(built: BuiltLog) -> None:
    seg = _segment(built.log)
    data = bytearray(seg.read_bytes())
    scan = scan_file(seg, bytes(data), SEGMENT_MAGIC)
    target = scan.frames[4]
    data[target.offset + 20] ^= 0x01
    seg.write_bytes(bytes(data))
    report = _check(built.run)
    assert report.classification == "corrupt"
    assert report.first_bad_index == 4
    assert report.bad_offset == target.offset


def test_deleted_record_is_reordered(built: BuiltLog) -> None:
    _rewrite(_segment(built.log), lambda p: p[:3] + p[4:])
    report = _check(built.run)
    assert report.classification == "reordered"
    assert report.first_bad_index == 3


def test_deleted_and_renumbered_records_are_rewritten(built: BuiltLog) -> None:
    def change(p: list[bytes]) -> list[bytes]:
        rest = [_record(x, index=i + 3) for i, x in enumerate(p[4:])]
        return p[:3] + rest

    _rewrite(_segment(built.log), change)
    report = _check(built.run)
    assert report.classification == "rewritten"
    assert report.first_bad_index == 3


def test_inserted_record(built: BuiltLog) -> None:
    forged = encode_record(index=3, kind="note", body=b"forged", time_ns=1)
    _rewrite(_segment(built.log), lambda p: [*p[:3], forged, *p[3:]])
    assert _check(built.run).classification == "reordered"


def test_reordered_records(built: BuiltLog) -> None:
    _rewrite(_segment(built.log), lambda p: [*p[:3], p[4], p[3], *p[5:]])
    report = _check(built.run)
    assert report.classification == "reordered"
    assert report.first_bad_index == 3


def test_reordered_and_renumbered_records_are_rewritten(built: BuiltLog) -> None:
    def change(p: list[bytes]) -> list[bytes]:
        return [*p[:3], _record(p[4], index=3), _record(p[3], index=4), *p[5:]]

    _rewrite(_segment(built.log), change)
    report = _check(built.run)
    assert report.classification == "rewritten"
    assert report.first_bad_index == 3


def test_truncated_records_below_own_checkpoint_is_rollback(built: BuiltLog) -> None:
    _rewrite(_segment(built.log), lambda p: p[:-2])
    report = _check(built.run)
    assert report.classification == "rollback"
    assert report.first_bad_index == 11


def test_truncated_with_checkpoints_needs_known_checkpoint(built: BuiltLog) -> None:
    known = built.writer.store.checkpoints[-1]
    assert known.size == 13
    notes = _payloads(built.log / CHECKPOINT_FILE, CHECKPOINT_MAGIC)
    last_note = notes[-1]
    _rewrite(_segment(built.log), lambda p: p[:-2])
    _rewrite(built.log / CHECKPOINT_FILE, lambda p: p[:-1], CHECKPOINT_MAGIC)
    # Without outside knowledge a consistently truncated log looks whole: that is the limit.
    assert _check(built.run).classification == "intact"
    report = _check(built.run, known_checkpoint=last_note)
    assert report.classification == "rollback"
    assert report.first_bad_index == 11


def test_torn_tail_is_a_warning(built: BuiltLog) -> None:
    seg = _segment(built.log)
    whole = seg.read_bytes()
    extra = frame(encode_record(index=13, kind="note", body=b"x" * 50, time_ns=9))
    seg.write_bytes(whole + extra[:-7])
    report = _check(built.run)
    assert report.classification == "torn_tail"
    assert report.entries == 13
    assert any("torn tail" in w for w in report.warnings)


def test_uncommitted_tail_is_a_warning(built: BuiltLog) -> None:
    seg = _segment(built.log)
    extra = frame(encode_record(index=13, kind="note", body=b"late", time_ns=9))
    seg.write_bytes(seg.read_bytes() + extra)
    report = _check(built.run)
    assert report.classification == "uncommitted_tail"
    assert (report.entries, report.records) == (13, 14)


def test_swapped_segments(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=12, segment_bytes=600)
    segments = sorted(built.log.glob("seg-*.zlog"))
    assert len(segments) >= 3
    a, b = segments[1], segments[2]
    tmp = a.with_suffix(".tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    report = _check(built.run)
    assert report.classification == "reordered"
    assert _check(build_log(tmp_path / "run2", batches=12,
                            segment_bytes=600).run).classification == "intact"


def test_swapped_segment_contents_with_fixed_headers(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=12, segment_bytes=600)
    segments = sorted(built.log.glob("seg-*.zlog"))
    a, b = segments[1].read_bytes(), segments[2].read_bytes()
    # The attacker also swaps the header's segment number, keeping each file's name valid.
    segments[1].write_bytes(_renumber(b, 1))
    segments[2].write_bytes(_renumber(a, 2))
    assert _check(built.run).classification == "reordered"


def _renumber(data: bytes, number: int) -> bytes:
    import struct

    first = struct.unpack_from(">Q", data, 16)[0]
    return header(SEGMENT_MAGIC, number, first) + data[32:]


def test_forged_checkpoint_with_another_key(built: BuiltLog) -> None:
    store_root = built.writer.store.root()
    forger = LogSigner(key(99), built.origin)
    cp = built.log / CHECKPOINT_FILE
    cp.write_bytes(cp.read_bytes() + frame(forger.sign(13, store_root)))
    report = _check(built.run)
    assert report.classification == "bad_signature"
    assert report.bad_offset is not None


def test_checkpoint_spliced_from_another_run(tmp_path: Path) -> None:
    one = build_log(tmp_path / "one", batches=3, run_id="run-1", seed=7)
    two = build_log(tmp_path / "two", batches=3, run_id="run-2", seed=8)
    notes_two = _payloads(two.log / CHECKPOINT_FILE, CHECKPOINT_MAGIC)
    cp = one.log / CHECKPOINT_FILE
    cp.write_bytes(cp.read_bytes() + frame(notes_two[-1]))
    assert _check(one.run).classification == "bad_signature"
    # And as an outside "known" checkpoint it is refused the same way.
    fresh = build_log(tmp_path / "three", batches=3, run_id="run-1", seed=7)
    report = _check(fresh.run, known_checkpoint=notes_two[-1])
    assert report.classification == "bad_signature"


def test_fork_signed_by_the_log_key(built: BuiltLog) -> None:
    other_root = leaf_hash(b"another history")
    forked = built.signer.sign(13, other_root)
    # As an outside checkpoint (what another LP was shown): forked.
    report = _check(built.run, known_checkpoint=forked)
    assert report.classification == "forked"
    # Stored beside the log: two signed checkpoints of one size with different roots.
    cp = built.log / CHECKPOINT_FILE
    cp.write_bytes(cp.read_bytes() + frame(forked))
    assert _check(built.run).classification == "forked"


def test_known_checkpoint_that_matches(built: BuiltLog) -> None:
    notes = _payloads(built.log / CHECKPOINT_FILE, CHECKPOINT_MAGIC)
    assert _check(built.run, known_checkpoint=notes[3]).classification == "intact"
    assert _check(built.run, known_checkpoint=notes[-1]).classification == "intact"


def test_untrusted_boot(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=2)
    report = check_log(built.run, trust="aws-but-not-fake", boot_verifier=fake_boot_verifier)
    assert report.classification == "untrusted_boot"
    assert report.first_bad_index == 0
    # The real default verifier (zcbench.nitro) refuses the stand-in document under aws.
    assert check_log(built.run, trust="aws").classification == "untrusted_boot"


def test_boot_record_replaced(built: BuiltLog) -> None:
    untrusted = fake_boot_document(built.signer.public_key_spki_der, "run-1", trusted=False)
    _rewrite(_segment(built.log), lambda p: [_record(p[0], body=untrusted), *p[1:]])
    assert _check(built.run).classification == "untrusted_boot"
    (built.run / "boot.cbor").unlink()
    assert _check(built.run).classification == "untrusted_boot"


def test_boot_file_differs_from_boot_record(built: BuiltLog) -> None:
    doc = cbor2.loads((built.run / "boot.cbor").read_bytes())
    doc["run"] = "run-2"
    (built.run / "boot.cbor").write_bytes(cbor2.dumps(doc, canonical=True))
    assert _check(built.run).classification == "untrusted_boot"


def test_first_record_not_boot(built: BuiltLog) -> None:
    _rewrite(_segment(built.log), lambda p: [_record(p[0], kind="note"), *p[1:]])
    assert _check(built.run).classification == "untrusted_boot"


def test_another_key_in_the_boot_document(tmp_path: Path) -> None:
    """A boot document naming another key: every checkpoint fails under it."""
    built = build_log(tmp_path / "run", batches=2)
    other = LogSigner(key(50), built.origin).public_key_spki_der
    doc = fake_boot_document(other, "run-1")
    _rewrite(_segment(built.log), lambda p: [_record(p[0], body=doc), *p[1:]])
    (built.run / "boot.cbor").write_bytes(doc)
    assert _check(built.run).classification == "bad_signature"


def test_deleted_checkpoints_fail_closed(built: BuiltLog) -> None:
    (built.log / CHECKPOINT_FILE).unlink()
    report = _check(built.run)
    assert report.classification == "corrupt"
    assert report.entries == 0
    assert "no signed checkpoint" in report.message


def test_empty_or_missing_log(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="is not a log"):
        _check(tmp_path / "empty")  # a folder with no log in it is no log, not a corrupt one
    built = build_log(tmp_path / "run", batches=1)
    shutil.rmtree(built.log)
    (built.log).mkdir()
    assert _check(built.run).classification == "corrupt"


def _assert_class_said_once(report: LogReport) -> None:
    # The verdict line is "CLASS: message"; the message does not say the class again
    # ("INTACT: intact: ..." read as a stutter).
    head, _, message = report.summary_lines()[0].partition(": ")
    assert head == report.classification.upper()
    spoken = report.classification.replace("_", " ")
    assert not message.lower().startswith((report.classification, spoken)), message
    assert spoken not in message.lower(), message


def test_the_verdict_line_says_its_class_once(built: BuiltLog, tmp_path: Path) -> None:
    from zcbench.auditlog import export_slice

    _assert_class_said_once(_check(built.run))
    out = tmp_path / "slice.cbor"
    export_slice(built.run, out, trust="fake", boot_verifier=fake_boot_verifier,
                 index_range=(1, 4))
    _assert_class_said_once(_check(out))
    seg = _segment(built.log)
    whole = seg.read_bytes()
    late = frame(encode_record(index=13, kind="note", body=b"late", time_ns=9))
    seg.write_bytes(whole + late)
    _assert_class_said_once(_check(built.run))
    seg.write_bytes(whole + late[:-2])
    _assert_class_said_once(_check(built.run))
