"""Storage: group commit and acknowledgement at the file-system interface, recovery of torn and
garbage tails, fatal damage, and the fake file system that models a power loss."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.auditlog.support import build_log, key
from zcbench.auditlog._frames import (
    CHECKPOINT_FILE,
    HEADER_SIZE,
    SEGMENT_MAGIC,
    frame,
    scan_file,
    segment_name,
)
from zcbench.auditlog.checkpoint import LogSigner
from zcbench.auditlog.records import encode_record
from zcbench.auditlog.storage import LogDamageError, LogStore, StoreMark, recover
from zcbench.errors import EnvError, UsageError

SIGNER = LogSigner(key(3), "zcbench/0011223344556677/run-s")


class _MemFile:
    def __init__(self, fs: MemFs, path: Path) -> None:
        self.fs = fs
        self.path = path

    def write(self, data: bytes) -> None:
        self.fs.events.append(("write", self.path.name, len(data)))
        self.fs.pending.setdefault(self.path, bytearray()).extend(data)

    def fsync(self) -> None:
        self.fs.events.append(("fsync", self.path.name, 0))
        if self.fs.fail_fsync:
            raise OSError(5, "Input/output error")
        self.fs.durable[self.path] = self.fs.durable.get(self.path, b"") + bytes(
            self.fs.pending.pop(self.path, b"")
        )

    def close(self) -> None:
        pass


class MemFs:
    """An in-memory file system with a page cache: writes are volatile until fsync, and new
    names until the folder is fsynced. ``crash`` keeps a random prefix of what was volatile."""

    def __init__(self) -> None:
        self.durable: dict[Path, bytes] = {}
        self.pending: dict[Path, bytearray] = {}
        self.durable_names: set[Path] = set()
        self.names: set[Path] = set()
        self.events: list[tuple[str, str, int]] = []
        self.fail_fsync = False

    def open_append(self, path: Path, *, create: bool) -> _MemFile:
        if create:
            assert path not in self.names
            self.names.add(path)
            self.durable.setdefault(path, b"")
        else:
            assert path in self.names
        return _MemFile(self, path)

    def read_bytes(self, path: Path) -> bytes:
        return self.durable.get(path, b"") + bytes(self.pending.get(path, b""))

    def list_dir(self, path: Path) -> list[str]:
        return sorted(p.name for p in self.names if p.parent == path)

    def exists(self, path: Path) -> bool:
        return path in self.names

    def make_dir(self, path: Path) -> None:
        pass

    def truncate(self, path: Path, size: int) -> None:
        whole = self.read_bytes(path)[:size]
        self.pending.pop(path, None)
        self.durable[path] = whole

    def fsync_dir(self, path: Path) -> None:
        self.events.append(("fsync_dir", path.name, 0))
        self.durable_names |= {p for p in self.names if p.parent == path}

    def crash(self, rng: random.Random) -> None:
        for path, data in self.pending.items():
            keep = rng.randint(0, len(data))
            self.durable[path] = self.durable.get(path, b"") + bytes(data[:keep])
        self.pending.clear()
        self.names = set(self.durable_names)
        self.durable = {p: d for p, d in self.durable.items() if p in self.names}


def _records(start: int, count: int, size: int = 40) -> list[bytes]:
    return [
        encode_record(index=start + i, kind="note", body=bytes([i % 256]) * size, time_ns=i)
        for i in range(count)
    ]


def test_acknowledged_moves_only_after_fsync() -> None:
    fs = MemFs()
    folder = Path("/mem/log")
    store = LogStore.create(folder, fs=fs)
    store.append(_records(0, 5))
    assert (store.size, store.acknowledged) == (5, 0)
    fs.events.clear()
    assert store.sync() == 5
    # The fsync of the segment is the last file-system call before the size is acknowledged.
    assert fs.events == [("fsync", "seg-00000000.zlog", 0)]
    store.append(_records(5, 3))
    assert store.acknowledged == 5
    fs.crash(random.Random(1))
    reopened = LogStore.open(folder, fs=fs)
    assert 5 <= reopened.size <= 8
    assert reopened.recovery.classification in ("clean", "torn_tail")


def test_failed_fsync_poisons_the_store() -> None:
    fs = MemFs()
    store = LogStore.create(Path("/mem/log"), fs=fs)
    store.append(_records(0, 2))
    fs.fail_fsync = True
    with pytest.raises(EnvError, match="fsync"):
        store.sync()
    assert store.acknowledged == 0
    fs.fail_fsync = False
    with pytest.raises(EnvError, match="reopen"):
        store.sync()  # never retried: a retried fsync may report success with data lost
    with pytest.raises(EnvError):
        store.append(_records(2, 1))


def test_checkpoint_only_for_acknowledged_records_and_their_root() -> None:
    fs = MemFs()
    store = LogStore.create(Path("/mem/log"), fs=fs)
    store.append(_records(0, 3))
    with pytest.raises(UsageError, match="sync"):
        store.add_checkpoint(SIGNER.sign(3, store.root()))
    store.sync()
    with pytest.raises(UsageError, match="root"):
        store.add_checkpoint(SIGNER.sign(3, bytes(32)))
    fs.events.clear()
    store.add_checkpoint(SIGNER.sign(3, store.root()))
    assert fs.events[-1] == ("fsync", CHECKPOINT_FILE, 0)
    with pytest.raises(UsageError, match="index"):
        store.append(_records(5, 1))


def test_power_loss_never_loses_acknowledged_records() -> None:
    """Random appends, syncs, checkpoints and crashes that keep a random prefix of the volatile
    bytes (torn writes): recovery is never fatal, keeps every acknowledged record and checkpoint,
    and what it keeps is whole."""
    rng = random.Random(20261126)
    for trial in range(60):
        fs = MemFs()
        folder = Path(f"/mem/log{trial}")
        store = LogStore.create(folder, fs=fs, segment_bytes=rng.choice([300, 2000, 1 << 20]))
        acknowledged = checkpoints = 0
        for _ in range(rng.randint(1, 25)):
            store.append(_records(store.size, rng.randint(1, 4), rng.randint(1, 120)))
            if rng.random() < 0.7:
                acknowledged = store.sync()
                if rng.random() < 0.6:
                    store.add_checkpoint(SIGNER.sign(store.size, store.root()))
                    checkpoints += 1
        fs.crash(rng)
        report = recover(folder, fs=fs, repair=False)
        assert report.classification in ("clean", "torn_tail"), report.message
        reopened = LogStore.open(folder, fs=fs)
        assert reopened.size >= acknowledged
        assert len(reopened.checkpoints) >= checkpoints
        assert recover(folder, fs=fs).classification == "clean"
        # The recovered log continues: the next index follows what survived.
        reopened.append(_records(reopened.size, 1))
        reopened.sync()


def _tail_fixture(tmp_path: Path) -> tuple[Path, Path, int]:
    built = build_log(tmp_path / "run", batches=3)
    seg = built.log / "seg-00000000.zlog"
    return built.log, seg, len(seg.read_bytes())


@pytest.mark.parametrize("cut", [1, 3, 4, 10, 30])
def test_injected_torn_tail_is_cut(tmp_path: Path, cut: int) -> None:
    log, seg, size = _tail_fixture(tmp_path)
    extra = frame(encode_record(index=7, kind="note", body=b"n" * 40, time_ns=1))
    seg.write_bytes(seg.read_bytes() + extra[:-cut])
    report = recover(log, repair=False)
    assert report.classification == "torn_tail"
    assert report.cut[0].offset == size
    assert len(seg.read_bytes()) == size + len(extra) - cut  # repair=False changed nothing
    store = LogStore.open(log)
    assert store.recovery.classification == "torn_tail"
    assert store.size == 7
    assert len(seg.read_bytes()) == size
    store.close()


@pytest.mark.parametrize("seed", range(8))
def test_injected_garbage_tail_is_cut(tmp_path: Path, seed: int) -> None:
    log, seg, size = _tail_fixture(tmp_path)
    garbage = random.Random(seed).randbytes(1 + seed * 37)
    seg.write_bytes(seg.read_bytes() + garbage)
    report = recover(log)
    assert report.classification == "torn_tail"
    assert len(seg.read_bytes()) == size
    assert recover(log).classification == "clean"


def test_garbage_followed_by_a_record_is_fatal(tmp_path: Path) -> None:
    log, seg, size = _tail_fixture(tmp_path)
    good = frame(encode_record(index=7, kind="note", body=b"n", time_ns=1))
    junk = b"\x00\x00\x00\x05junk"
    seg.write_bytes(seg.read_bytes() + junk + good)
    with pytest.raises(LogDamageError) as info:
        LogStore.open(log)
    finding = info.value.report.finding
    assert finding is not None
    assert (finding.classification, finding.index, finding.offset) == ("corrupt", 7, size)
    assert len(seg.read_bytes()) == size + len(junk) + len(good)  # fatal: nothing touched


def test_cut_below_a_checkpoint_is_fatal(tmp_path: Path) -> None:
    log, seg, size = _tail_fixture(tmp_path)
    seg.write_bytes(seg.read_bytes()[: size - 5])  # tears the last checkpointed record
    report = recover(log)
    assert report.classification == "fatal"
    assert report.finding is not None
    assert report.finding.classification == "rollback"
    assert len(seg.read_bytes()) == size - 5


def test_rewritten_record_is_fatal_on_open(tmp_path: Path) -> None:
    log, seg, _ = _tail_fixture(tmp_path)
    data = bytearray(seg.read_bytes())
    # Change the last record's body and re-frame it: framing is fine, the checkpoint is not.
    from zcbench.auditlog._frames import SEGMENT_MAGIC, scan_file

    frames = scan_file(seg, bytes(data), SEGMENT_MAGIC).frames
    last = frames[-1]
    forged = bytearray(last.payload)
    forged[-1] ^= 1
    seg.write_bytes(bytes(data[: last.offset]) + frame(bytes(forged)))
    report = recover(log)
    assert report.finding is not None
    # The flipped byte breaks CBOR canonical form or the root; either way it is fatal.
    assert report.finding.classification in ("rewritten", "corrupt")


def test_torn_segment_header_after_roll_is_repaired(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=2)
    nxt = built.log / "seg-00000001.zlog"
    nxt.write_bytes(b"ZCBLOG")  # the crash came while the new segment's header was written
    assert recover(built.log, repair=False).classification == "torn_tail"
    store = LogStore.open(built.log)
    assert len(nxt.read_bytes()) == HEADER_SIZE
    store.append(_records(store.size, 2))
    store.sync()
    store.close()
    assert recover(built.log).classification == "clean"


def test_create_refuses_an_existing_log(tmp_path: Path) -> None:
    built = build_log(tmp_path / "run", batches=1)
    with pytest.raises(UsageError):
        LogStore.create(built.log)
    with pytest.raises(EnvError):
        LogStore.open(tmp_path / "nothing-here")


def test_host_writer_refuses_a_checkpoint_not_over_its_records(tmp_path: Path) -> None:
    """Log before act: the host checks the enclave's signature over exactly the records it has
    just made durable, before anything may act on them."""
    from zcbench.auditlog.checkpoint import log_origin
    from zcbench.auditlog.writer import BatchRecords, EnclaveLogState, HostLogWriter
    from zcbench.errors import VerificationError

    signer = LogSigner(key(4), log_origin(bytes(48), "run-w"))
    enclave = EnclaveLogState(signer)
    host = HostLogWriter.create(tmp_path / "log", signer.public_key_spki_der, signer.origin)
    host.commit(enclave.boot(b"doc", time_ns=0))
    step = enclave.batch(0, b"in", b"out", time_ns=1)
    lying = BatchRecords(step.records, signer.sign(3, bytes(32)))
    with pytest.raises(VerificationError) as info:
        host.commit(lying)
    assert info.value.check == "checkpoint_root"
    assert len(host.store.checkpoints) == 1
    forged = BatchRecords((), LogSigner(key(5), signer.origin).sign(3, host.store.root()))
    with pytest.raises(VerificationError):
        host.commit(forged)
    host.commit(BatchRecords((), step.checkpoint))
    assert host.store.checkpoints[-1].size == 3
    with pytest.raises(ValueError, match="seq"):
        enclave.batch(5, b"", b"", time_ns=2)
    host.close()


def test_resume_reads_only_after_the_mark_across_segments_and_refuses_a_cut(
        tmp_path: Path) -> None:
    folder = tmp_path / "log"
    store = LogStore.create(folder, segment_bytes=1024)
    store.append(_records(0, 30))
    store.sync()
    store.add_checkpoint(SIGNER.sign(store.size, store.root()))
    mark = store.mark()
    assert mark.records == 30
    store.append(_records(30, 40))  # rolls over into later segments
    store.sync()
    store.add_checkpoint(SIGNER.sign(store.size, store.root()))
    root, segments = store.root(), len(list(folder.glob("seg-*.zlog")))
    store.close()
    assert segments > mark.segment + 1
    with (folder / segment_name(segments - 1)).open("ab") as out:
        out.write(b"\x00\x00\x00\x09torn")  # a torn tail after the mark is cut as by open
    resumed = LogStore.resume(folder, mark)
    assert (resumed.size, resumed.root(), resumed.recovery.classification) == (
        70, root, "torn_tail")
    later = resumed.mark()
    resumed.append(_records(70, 1))  # it appends where the log ends
    resumed.sync()
    resumed.add_checkpoint(SIGNER.sign(resumed.size, resumed.root()))
    resumed.close()
    with LogStore.open(folder) as unsigned:
        assert unsigned.size == 71
        unsigned.append(_records(71, 1))
        unsigned.sync()
        with pytest.raises(UsageError):  # no mark over records no checkpoint covers
            unsigned.mark()
    # the log cut back below a mark (entries and checkpoints alike) is a rollback
    for path in sorted(folder.glob("seg-*.zlog"))[later.segment + 1:]:
        path.unlink()
    (folder / segment_name(later.segment)).write_bytes(
        (folder / segment_name(later.segment)).read_bytes()[:later.segment_end - 10])
    with pytest.raises(LogDamageError, match="rollback"):
        LogStore.resume(folder, later)


def _checkpointed(folder: Path, sizes: tuple[int, ...]) -> StoreMark:
    """A log of ``sizes[-1]`` records with a checkpoint at each of ``sizes``; its mark."""
    store = LogStore.create(folder)
    for size in sizes:
        store.append(_records(store.size, size - store.size))
        store.sync()
        store.add_checkpoint(SIGNER.sign(store.size, store.root()))
    with store:
        return store.mark()


def _add_checkpoint_note(folder: Path, size: int, root: bytes) -> int:
    """Append a checkpoint note to the file as a writer would have; returns its offset."""
    path = folder / CHECKPOINT_FILE
    offset = len(path.read_bytes())
    path.write_bytes(path.read_bytes() + frame(SIGNER.sign(size, root)))
    return offset


def test_a_whole_read_names_a_checkpoint_its_records_miss_rewritten(tmp_path: Path) -> None:
    """recover walks every record once: a checkpoint at size 0 off the empty tree, and one
    whose root the records do not reach, are `rewritten`, from the last size that matched."""
    folder = tmp_path / "log"
    _checkpointed(folder, (4, 9))
    at = _add_checkpoint_note(folder, 0, b"\x01" * 32)
    finding = recover(folder).finding
    assert finding is not None
    assert (finding.classification, finding.index, finding.path, finding.offset) == (
        "rewritten", 0, str(folder / CHECKPOINT_FILE), at)
    assert "empty tree" in finding.message

    folder = tmp_path / "log2"
    _checkpointed(folder, (4, 9))
    _add_checkpoint_note(folder, 6, b"\x02" * 32)  # the records at size 6 hash elsewhere
    seg = folder / segment_name(0)
    sixth = scan_file(seg, seg.read_bytes(), SEGMENT_MAGIC).frames[5]
    finding = recover(folder, repair=False).finding
    assert finding is not None
    assert (finding.classification, finding.index, finding.path, finding.offset) == (
        "rewritten", 4, str(seg), sixth.offset)
    assert "[4, 6)" in finding.message


def test_a_read_after_the_mark_names_a_checkpoint_its_records_miss_forked(
        tmp_path: Path) -> None:
    """resume walks only the records after the mark: a newer checkpoint they do not lead to is
    `forked` below the mark's size, one they fall short of is a `rollback`."""
    folder = tmp_path / "log"
    mark = _checkpointed(folder, (5,))
    with LogStore.open(folder) as grown:
        grown.append(_records(5, 3))
        grown.sync()
    at = _add_checkpoint_note(folder, 8, b"\x03" * 32)
    with pytest.raises(LogDamageError) as info:
        LogStore.resume(folder, mark)
    finding = info.value.report.finding
    assert finding is not None
    assert (finding.classification, finding.index, finding.path, finding.offset) == (
        "forked", 5, str(folder / CHECKPOINT_FILE), at)
    assert "not consistent with the one of size 5" in finding.message

    folder = tmp_path / "log2"
    mark = _checkpointed(folder, (5,))
    _add_checkpoint_note(folder, 9, b"\x04" * 32)  # commits to records never written
    with pytest.raises(LogDamageError) as info:
        LogStore.resume(folder, mark)
    finding = info.value.report.finding
    assert finding is not None
    assert (finding.classification, finding.index, finding.path) == ("rollback", 5, None)
    assert "commits to 9" in finding.message
