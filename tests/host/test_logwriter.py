"""The host log writer: records rebuilt from what the host sent and checked against the enclave's
leaves, roots recomputed, checkpoints verified under the attested key, group commit, and nothing
released on a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.host.support import batch_bytes as _batch
from tests.host.support import booted_log as _setup
from zcbench.auditlog.merkle import leaf_hash
from zcbench.auditlog.records import encode_record
from zcbench.channel import Message
from zcbench.enclave import EnclaveRuntime
from zcbench.errors import DataError, VerificationError
from zcbench.host import HostLog


def _stamps(r: Message) -> dict[str, Any]:
    # the host's own newest event time: each test batch holds one event at ts = seq
    return {"time_ns": r["time_ns"], "event_time_ns": r["seq"]}


def _stage(rt: EnclaveRuntime, log: HostLog, seq: int) -> None:
    log.stage_reply(seq, _batch(seq), rt.ingest(seq, _batch(seq)), event_time_ns=seq)


def test_group_commit_releases_in_order_only_after_flush(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    for seq in range(3):
        _stage(rt, log, seq)
    assert store.acknowledged == 1  # staged is not durable
    assert log.durable_size == 1
    released = log.flush()
    assert [v.seq for v in released] == [0, 1, 2]
    assert [v.out_index for v in released] == [2, 4, 6]
    assert all(v.checkpoint_size == 7 for v in released)
    assert [v.signals[0].quantity for v in released] == [1, 2, 3]
    assert store.acknowledged == 7
    assert store.checkpoints[-1].size == 7
    assert log.flush() == []
    store.close()


def test_a_batch_other_than_the_one_sent_is_refused(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    r = rt.ingest(0, _batch(0))
    with pytest.raises(VerificationError) as exc:
        log.stage(0, _batch(1), r["signals"], r["leaves"], r["checkpoint"], **_stamps(r))
    assert exc.value.check == "in_leaf"
    with pytest.raises(VerificationError) as exc:
        log.stage(0, _batch(0), b"\xa0", r["leaves"], r["checkpoint"], **_stamps(r))
    assert exc.value.check == "out_leaf"
    assert store.size == 1  # nothing of a refused batch was written
    log.stage_reply(0, _batch(0), r, event_time_ns=0)  # the true reply still stages
    assert [v.seq for v in log.flush()] == [0]
    store.close()


def test_a_lying_enclaves_in_leaf_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    r = rt.ingest(0, _batch(0))
    # an enclave claiming it logged other bytes (here: a record with another time stamp)
    other = encode_record(
        index=1, kind="in", seq=0, body=_batch(0), time_ns=r["time_ns"] + 1, event_time_ns=0,
    )
    lying = [leaf_hash(other), r["leaves"][1]]
    with pytest.raises(VerificationError) as exc:
        log.stage(0, _batch(0), r["signals"], lying, r["checkpoint"], **_stamps(r))
    assert exc.value.check == "in_leaf"
    # stamps that do not match the leaves the enclave signed are refused the same way
    with pytest.raises(VerificationError) as exc:
        log.stage(
            0, _batch(0), r["signals"], r["leaves"], r["checkpoint"],
            time_ns=r["time_ns"] + 1, event_time_ns=0,
        )
    assert exc.value.check == "in_leaf"
    # so is a newest event time other than the batch's (the host computes its own)
    with pytest.raises(VerificationError) as exc:
        log.stage(
            0, _batch(0), r["signals"], r["leaves"], r["checkpoint"],
            time_ns=r["time_ns"], event_time_ns=1,
        )
    assert exc.value.check == "in_leaf"
    with pytest.raises(DataError):
        log.stage(
            0, _batch(0), r["signals"], r["leaves"], r["checkpoint"],
            time_ns=2**63, event_time_ns=None,
        )
    assert store.size == 1
    assert log.flush() == []
    store.close()


def test_checkpoint_over_other_records_is_refused_and_nothing_released(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    _stage(rt, log, 0)
    r = rt.ingest(1, _batch(1))
    # leaves and stamps that agree with each other but not with what the enclave signed
    forged_in = encode_record(index=3, kind="in", seq=1, body=_batch(1), time_ns=1)
    forged_out = encode_record(index=4, kind="out", seq=1, body=r["signals"], time_ns=1)
    forged = [leaf_hash(forged_in), leaf_hash(forged_out)]
    log.stage(1, _batch(1), r["signals"], forged, r["checkpoint"], time_ns=1, event_time_ns=None)
    # the group's checkpoint is verified once, at flush: nothing of it is released, not even
    # the good batch 0 (the run is stopping)
    with pytest.raises(VerificationError) as exc:
        log.flush()
    assert exc.value.check == "checkpoint_root"
    assert "does not match" in str(exc.value)
    assert log.flush() == []
    assert store.acknowledged == store.size == 5  # kept on disk, as an uncommitted tail
    assert store.checkpoints[-1].size == 1
    store.close()


def test_checkpoint_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    other, _, other_store = _setup(tmp_path / "other")
    r = rt.ingest(0, _batch(0))
    forged = other.ingest(0, _batch(0))["checkpoint"]
    log.stage(0, _batch(0), r["signals"], r["leaves"], forged, **_stamps(r))
    with pytest.raises(VerificationError):
        log.flush()
    assert log.flush() == []
    store.close()
    other_store.close()


def test_malformed_checkpoint_is_a_verification_failure(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    r = rt.ingest(0, _batch(0))
    log.stage(0, _batch(0), r["signals"], r["leaves"], b"not a note", **_stamps(r))
    with pytest.raises(VerificationError) as exc:
        log.flush()
    assert exc.value.check in ("checkpoint_format", "note")
    assert log.flush() == []
    store.close()


def test_a_bad_checkpoint_inside_a_group_is_named_and_nothing_is_released(
    tmp_path: Path,
) -> None:
    """Only the newest checkpoint of a group is stored and verified; when it fails, the
    group's checkpoints are checked in order so the error names the first bad batch."""
    rt, log, store = _setup(tmp_path)
    good = [rt.ingest(seq, _batch(seq)) for seq in range(3)]
    log.stage_reply(0, _batch(0), good[0], event_time_ns=0)
    log.stage(1, _batch(1), good[1]["signals"], good[1]["leaves"], b"forged", **_stamps(good[1]))
    log.stage(2, _batch(2), good[2]["signals"], good[2]["leaves"], b"forged", **_stamps(good[2]))
    with pytest.raises(VerificationError) as exc:
        log.flush()
    assert exc.value.check in ("checkpoint_format", "note")
    assert store.checkpoints[-1].size == 1
    assert store.acknowledged == 7


def test_a_group_whose_newest_checkpoint_verifies_is_released_whole(tmp_path: Path) -> None:
    rt, log, store = _setup(tmp_path)
    replies = [rt.ingest(seq, _batch(seq)) for seq in range(3)]
    for seq, r in enumerate(replies):
        # an intermediate checkpoint is never stored, so it is not what decides
        note = r["checkpoint"] if seq == 2 else b"never stored"
        log.stage(seq, _batch(seq), r["signals"], r["leaves"], note, **_stamps(r))
    assert [v.seq for v in log.flush()] == [0, 1, 2]
    assert [cp.size for cp in store.checkpoints] == [1, 7]
    store.close()
