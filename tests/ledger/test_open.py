"""Opening a ledger reads only what follows its verified record (``verified-state``): the size,
root and rules' state the host verified before; a ledger rolled back or forked below the
record, or a newer checkpoint not consistent with it, is refused."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.ledger.support import count_reads
from zcbench.auditlog import LogDamageError
from zcbench.auditlog.checkpoint import LogSigner, log_origin
from zcbench.errors import DataError
from zcbench.ledger.entries import ControlEntry, RunCheckpointEntry, RunStartEntry
from zcbench.ledger.store import VERIFIED_FILE, Ledger
from zcbench.ledger.verify import check_ledger

T0 = 1_700_000_000 * 10**9
P0 = hashlib.sha384(b"build 0").digest()
ORIGIN = "acme.example/zcbench/ma-crossover"


def run_log(pcr0: bytes, run_id: str) -> tuple[LogSigner, str]:
    origin = log_origin(pcr0, run_id)
    return LogSigner(Ed25519PrivateKey.generate(), origin), origin


def pcr(i: int) -> bytes:
    return hashlib.sha384(b"build %d" % (i + 100)).digest()


def _ledger(tmp_path: Path, versions: int) -> Path:
    """A ledger of the genesis, ``versions`` announcements and a run with two controls."""
    folder = tmp_path / "ledger"
    with Ledger.init_insecure_host_key(folder, origin=ORIGIN, genesis_pcr0=P0,
                                       commitment_sha256=b"\x01" * 32, at_ns=T0) as ledger:
        signer, origin = run_log(P0, "run-1")
        ledger.append(RunStartEntry(P0, origin, signer.vkey, b"\x05" * 32, None), at_ns=T0 + 1)
        ledger.append(ControlEntry(origin, 1, b"\x06" * 32, "start", "dora"), at_ns=T0 + 2)
        ledger.append(ControlEntry(origin, 4, b"\x06" * 32, "kill", "dora"), at_ns=T0 + 3)
        ledger.append(RunCheckpointEntry(origin, signer.sign(5, b"\x07" * 32)), at_ns=T0 + 4)
        for i in range(versions):
            ledger.announce(pcr(i), b"\x02" * 32, notice_ns=10**15, at_ns=T0 + 10 + i)
    return folder


def test_open_reads_only_the_entries_after_the_verified_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _ledger(tmp_path, 40)
    kept = (folder / VERIFIED_FILE).read_bytes()  # at size 45, what the last close kept
    with Ledger.open(folder) as ledger:
        assert ledger.read_from == 45
        for i in range(40, 43):
            ledger.announce(pcr(i), b"\x02" * 32, notice_ns=10**15, at_ns=T0 + 10 + i)
    (folder / VERIFIED_FILE).write_bytes(kept)  # as if killed before keeping the newer one
    segment = folder / "log" / "seg-00000000.zlog"
    whole = segment.stat().st_size
    reads = count_reads(monkeypatch)
    with Ledger.open(folder) as ledger:
        assert ledger.read_from == 45
        assert ledger.size == 48
        assert ledger.entry_bytes_from(45) == tuple(ledger._data[-3:])
        tail = sum(len(d) + 36 for d in ledger.entry_bytes_from(45))
        # the tail (once to recover the store, once to replay it) and the last verified frame
        assert reads.segment_bytes <= 2 * tail + 512
        assert reads.segment_bytes < whole // 4
        state = ledger.state
        entries = ledger.entries  # a whole read when asked for, held to the record's root
    assert reads.segment_bytes > whole
    monkeypatch.undo()
    (folder / VERIFIED_FILE).unlink()
    with Ledger.open(folder) as full:
        assert full.read_from == 0
        assert full.state.snapshot() == state.snapshot()
        assert full.entries == entries
        for origin, run in full.state.runs.items():  # every control, not only the last
            assert run.controls == state.runs[origin].controls
            assert [c.action for _, c in run.controls] == ["start", "kill"]
    with Ledger.open(folder) as again:
        assert again.read_from == 48


def test_a_ledger_rolled_back_or_forked_below_the_record_is_refused(tmp_path: Path) -> None:
    folder = _ledger(tmp_path, 3)
    older = tmp_path / "older-log"
    shutil.copytree(folder / "log", older)  # the whole log at size 8, checkpoints and all
    with Ledger.open(folder) as ledger:
        for i in range(3, 6):
            ledger.announce(pcr(i), b"\x02" * 32, notice_ns=10**15, at_ns=T0 + 10 + i)
    assert Ledger.open(folder).read_from == 11
    # a consistent older copy (entries and checkpoints cut together): a rollback
    shutil.rmtree(folder / "log")
    shutil.copytree(older, folder / "log")
    with pytest.raises(LogDamageError, match=r"rollback|rolled back"):
        Ledger.open(folder)
    assert check_ledger(folder).ok  # read alone the older ledger is intact: only the record
    # a fork under the same key: the older copy grown by other entries past the record
    fork = tmp_path / "fork"
    shutil.copytree(folder, fork)
    (fork / VERIFIED_FILE).unlink()
    with Ledger.open(fork) as other:
        for i in range(3, 7):
            other.announce(pcr(i + 50), b"\x02" * 32, notice_ns=10**15, at_ns=T0 + 10 + i)
    shutil.rmtree(folder / "log")
    shutil.copytree(fork / "log", folder / "log")
    with pytest.raises(LogDamageError, match="forked"):
        Ledger.open(folder)


def test_a_record_that_is_not_this_ledgers_is_refused_with_what_to_do(tmp_path: Path) -> None:
    folder = _ledger(tmp_path, 2)
    record = folder / VERIFIED_FILE
    good = record.read_bytes()
    other = _ledger(tmp_path / "other", 2) / VERIFIED_FILE  # another ledger's key
    for bad in (good[:-1], b"\xa0", other.read_bytes(), good + b"\x00"):
        record.write_bytes(bad)
        with pytest.raises(DataError, match=r"remove .*verified-state"):
            Ledger.open(folder)
    record.unlink()  # then the whole ledger is read and verified, and the record kept again
    with Ledger.open(folder) as ledger:
        assert ledger.read_from == 0
        assert not ledger.key_made_in_enclave
    assert record.read_bytes() == good
    # a key a host process made (this development ledger) is reported by the LP's check
    assert any("made outside an enclave" in w for w in check_ledger(folder).warnings)
