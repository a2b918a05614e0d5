"""A strategy's ledger on disk: one append-only log of entries, checkpointed by the ledger key.

Layout of a ledger folder::

    ledger.json          {"schema": "zcbench.ledger/1", "origin": ..., "vkey": ...}, written
                         once at genesis, last (the commit point of ``init``)
    ledger-key.sealed    the ledger key, sealed by the key broker (owner-only)
    log/                 the entries: the audit log's segment files and checkpoints.zlog, with
                         ledger entries as the record type (zcbench.auditlog.storage)
    checkpoint           the newest checkpoint with the witnesses' cosignatures, replaced
                         atomically (temp file, fsync, rename, fsync of the folder)
    pending-entry        the entry being appended with the signed checkpoint over it, written
                         (atomically) before the entry: what completes an append a crash cut
    recoveries.json      every unsigned tail a ledger found on open and what it did with it
    enclave-state        the enclave's newest verified state, sealed by it (opaque here: the
                         next boot starts from it, zcbench.enclave.ledger)
    verified-state       this host's record of what it verified (size, tree, where the log
                         ends, the newest checkpoint, the rules' state): an open reads only
                         the entries after it (see :meth:`Ledger.open`)

The storage is the run log's: frames with checksums, an fsync before anything is acknowledged,
and on open a torn tail is cut and reported (:attr:`Ledger.recovery`) while damage anywhere
else, a rewrite, a fork or a rollback below a checkpoint is refused
(:class:`zcbench.auditlog.LogDamageError`). Appending holds an exclusive lock on the folder,
checks the entry against the rules (:mod:`zcbench.ledger.rules`) and the key release against
the allowed set, signs the checkpoint of the new size, writes the entry and that checkpoint to
``pending-entry`` (fsync), then writes and fsyncs the entry, then stores the checkpoint: an
entry is acknowledged only once its checkpoint is durable.

A crash between the entry's fsync and its checkpoint's leaves an **unsigned tail** (entries no
stored checkpoint covers). The next open settles it, under the writer lock, before anything
reads the ledger (:attr:`Ledger.tail_recovery`): when ``pending-entry`` holds exactly that
entry and a checkpoint the ledger key signed over exactly this ledger plus it, the append is
*completed* (the checkpoint stored); otherwise (no or another pending entry, a signature or
root that does not match, an entry that breaks a rule) the tail is *rolled back* (cut at the
newest checkpoint, durably). A crash before the entry's write leaves only ``pending-entry``
(signed, never written): it is *discarded*. None of these was acknowledged, so none loses an
acknowledged entry. Each is recorded in ``recoveries.json`` before it is done (the index, type
and SHA-256 of every entry; the bytes unless completed; a discarded entry's signed
checkpoint, so no signature the host held is dropped unseen), so a recovery is never silent:
``ledger show`` and ``ledger verify`` report them. Until an open settles it,
:func:`zcbench.ledger.verify.check_ledger` (read-only) reports the tail.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from zcbench import _cbor
from zcbench.auditlog import LogFormatError, NoteError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.checkpoint import Checkpoint, CheckpointVerifier
from zcbench.auditlog.merkle import CompactRange, leaf_hash
from zcbench.auditlog.note import NoteVerifier, parse_vkey
from zcbench.auditlog.storage import LogStore, RecoveryReport, StoreMark
from zcbench.durable import write_atomically
from zcbench.errors import DataError, EnvError, UsageError
from zcbench.keys import LocalKeyBroker
from zcbench.ledger._errors import LedgerKeyRefused, LedgerRuleError, LedgerVerificationError
from zcbench.ledger.entries import (
    LEDGER_ENTRIES,
    CommitmentEntry,
    EntryBody,
    LedgerEntry,
    RevocationEntry,
    encode_entry,
)
from zcbench.ledger.key import (
    KEY_FILE,
    LedgerKeyHolder,
    SealedLedgerKey,
    _write_key_blob,
    secret_name,
)
from zcbench.ledger.rules import LedgerState

__all__ = [
    "ENCLAVE_STATE_FILE",
    "LEDGER_FILE",
    "LEDGER_SCHEMA",
    "PENDING_FILE",
    "RECOVERIES_FILE",
    "VERIFIED_FILE",
    "WITNESSED_FILE",
    "Appended",
    "Ledger",
    "TailRecovery",
    "TreeMark",
    "check_new_ledger",
    "check_origin",
    "checkpoint_of",
    "host_made_key_warning",
    "read_ledger_file",
    "read_recoveries",
    "write_atomic",
]

LEDGER_FILE: Final = "ledger.json"
LEDGER_SCHEMA: Final = "zcbench.ledger/1"
WITNESSED_FILE: Final = "checkpoint"
PENDING_FILE: Final = "pending-entry"
ENCLAVE_STATE_FILE: Final = "enclave-state"
RECOVERIES_FILE: Final = "recoveries.json"
VERIFIED_FILE: Final = "verified-state"
_MAX_VERIFIED: Final = 64 * 1024 * 1024
_VERIFIED_KEYS: Final = frozenset({"v", "origin", "vkey", "size", "range", "segment",
                                   "segment_end", "last", "checkpoint", "checkpoint_start",
                                   "checkpoint_end", "rules", "extra"})
_EXTRA_TYPES: Final = ("archive", "control")  # kept whole in the state the record holds
RECOVERIES_SCHEMA: Final = "zcbench.ledger-recoveries/1"
_MAX_PENDING: Final = 65_535 + 16_384  # one entry and one checkpoint note
_MAX_RECOVERIES_BYTES: Final = 16 * 1024 * 1024
_KEPT_RECOVERIES: Final = 1000
_ORIGIN: Final = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}/zcbench/[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_origin(origin: str) -> str:
    """``origin`` if it has the ledger's shape ``<fund>/zcbench/<strategy>``; else UsageError."""
    if not _ORIGIN.fullmatch(origin):
        raise UsageError(f"ledger origin {origin!r} must be <fund>/zcbench/<strategy> (fund: "
                         "letters, digits, '.', '-'; strategy: letters, digits, '.', '_', '-')")
    return origin


def check_new_ledger(folder: Path, origin: str) -> None:
    """Refuse (UsageError) a ledger origin of the wrong shape, or a folder already in use."""
    check_origin(origin)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder} exists and is not an empty folder; a ledger is made in a "
                         "new folder")


write_atomic = write_atomically  # the ledger's files: one home, zcbench.durable


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """The ledger folder's writer lock: appends, and recovery on open (which may cut a torn
    tail, so it must never run while another process is writing a frame)."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Appended:
    """An entry appended: the entry, its bytes and the signed checkpoint that covers it."""

    entry: LedgerEntry
    data: bytes
    checkpoint: bytes


@dataclass(frozen=True, slots=True)
class TreeMark:
    """A size of the ledger's tree someone holds (a witness, say): the compact range of its
    first ``size`` entries, and where the entry after them starts in the log (``segment``,
    byte ``offset``), so the entries after it can be read without the ones before
    (:meth:`Ledger.tree_from`). A hint: it is checked against the verified tree before use."""

    size: int
    compact: tuple[bytes, ...]
    segment: int
    offset: int


def _now_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class TailRecovery:
    """What an open did with an unsigned tail (see the module docstring): ``completed`` (the
    pending checkpoint stored), ``rolled_back`` (the entries cut) or ``discarded`` (a pending
    entry whose checkpoint the ledger key signed but which never reached the log: the crash
    came before its fsync); ``checkpoint_size`` is the newest stored checkpoint's size before,
    ``entries`` (index, type, SHA-256 hex) the tail."""

    action: Literal["completed", "rolled_back", "discarded"]
    checkpoint_size: int
    entries: tuple[tuple[int, str, str], ...]
    at_ns: int
    reason: str

    @property
    def message(self) -> str:
        listed = ", ".join(f"{i} ({kind})" for i, kind, _ in self.entries)
        verb = {"completed": "completed: its signed checkpoint was stored",
                "rolled_back": "rolled back: cut from the ledger, never acknowledged",
                "discarded": "discarded: signed, never written, never acknowledged"
                }[self.action]
        return (f"unsigned tail after a crash (entries {listed} beyond the checkpoint of size "
                f"{self.checkpoint_size}) {verb}; {self.reason}")

    def to_json(self, data: list[bytes] | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "action": self.action, "checkpoint_size": self.checkpoint_size,
            "at_ns": self.at_ns, "reason": self.reason,
            "entries": [{"index": i, "type": kind, "sha256": digest}
                        for i, kind, digest in self.entries]}
        if data is not None:
            for row, blob in zip(doc["entries"], data, strict=True):
                row["bytes"] = base64.b64encode(blob).decode()
        return doc


def _read_pending(folder: Path) -> tuple[bytes, bytes] | None:
    """The (entry, checkpoint note) of ``pending-entry``, or None (absent or not one)."""
    try:
        blob = (folder / PENDING_FILE).read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = _cbor.decode(blob, canonical=True, max_depth=1, max_bytes=_MAX_PENDING)
    except _cbor.CborError:
        return None
    if (not isinstance(doc, dict) or set(doc) != {"entry", "checkpoint"}
            or not isinstance(doc["entry"], bytes) or not isinstance(doc["checkpoint"], bytes)):
        return None
    return doc["entry"], doc["checkpoint"]


def read_recoveries(folder: Path) -> list[dict[str, Any]]:
    """The recoveries ``recoveries.json`` records (oldest first; empty when there is none);
    DataError when the file is not one."""
    path = folder / RECOVERIES_FILE
    try:
        with path.open("rb") as handle:
            blob = handle.read(_MAX_RECOVERIES_BYTES + 1)
    except FileNotFoundError:
        return []
    if len(blob) > _MAX_RECOVERIES_BYTES:
        raise DataError(f"{path} is larger than {_MAX_RECOVERIES_BYTES} bytes")
    try:
        doc = json.loads(blob)
    except ValueError as exc:
        raise DataError(f"{path} is not JSON: {exc}") from None
    if (not isinstance(doc, dict) or doc.get("schema") != RECOVERIES_SCHEMA
            or not isinstance(doc.get("recoveries"), list)
            or not all(isinstance(r, dict) for r in doc["recoveries"])):
        raise DataError(f"{path} is not a {RECOVERIES_SCHEMA} file")
    return list(doc["recoveries"])


def _record_recovery(folder: Path, recovery: TailRecovery, data: list[bytes],
                     note: bytes | None = None) -> None:
    """Add ``recovery`` to ``recoveries.json`` durably (before it is carried out): with the
    entries' bytes unless completed, and ``note`` (the signed checkpoint) when given."""
    try:
        kept = read_recoveries(folder)
    except DataError:
        kept = []  # a damaged record file is replaced; the recovery itself is never skipped
    doc = recovery.to_json(data if recovery.action != "completed" else None)
    if note is not None:
        doc["checkpoint"] = note.decode("utf-8", errors="replace")
    kept.append(doc)
    doc = {"schema": RECOVERIES_SCHEMA, "recoveries": kept[-_KEPT_RECOVERIES:]}
    write_atomic(folder / RECOVERIES_FILE, json.dumps(doc, indent=1).encode() + b"\n")


def _cut_log(log: Path, keep: int) -> None:
    """Cut the ledger's log back to its first ``keep`` entries (a tail no checkpoint covers),
    durably: the segment holding entry ``keep`` is truncated before it, later ones removed."""
    fs = OsFileSystem()
    walk = LogWalk(log, fs, LEDGER_ENTRIES)
    for item in walk.records():
        if item.index == keep:
            later = walk.segments[walk.segments.index(item.path) + 1:]
            fs.truncate(item.path, item.offset)
            for path in reversed(later):
                path.unlink()
            fs.fsync_dir(log)
            return
    raise EnvError(f"{log}: no entry {keep} to cut the log back to")


def _remove_unfinished(folder: Path, created: bool) -> None:
    """Remove what an unfinished genesis wrote (no ``ledger.json`` yet), so ``init`` can be
    run again; the folder too when this genesis made it."""
    import shutil

    if (folder / LEDGER_FILE).exists():
        return
    for path in list(folder.iterdir()):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _drop_pending(folder: Path) -> None:
    # A stale pending entry (its checkpoint stored) is recognised as such on every open, so
    # losing this unlink in a crash costs nothing.
    with contextlib.suppress(FileNotFoundError):
        (folder / PENDING_FILE).unlink()


class Ledger:
    """An open ledger folder (see the module docstring). Make one with :meth:`from_genesis`
    (what the genesis enclave made) or :meth:`open`; it keeps the state (:attr:`state`)
    current."""

    def __init__(self, folder: Path, origin: str, vkey: str, store: LogStore,
                 entries: list[LedgerEntry], data: list[bytes], state: LedgerState,
                 key: LedgerKeyHolder, *, first: int = 0, first_root: bytes | None = None,
                 extras: list[tuple[int, bytes]] | None = None) -> None:
        self.folder = folder
        self.origin = origin
        self.vkey = vkey
        self.verifier: NoteVerifier = parse_vkey(vkey)
        self._store = store
        self._first = first  # entries before it are verified (the record), not held here
        self._first_root = first_root
        self._first_range: tuple[bytes, ...] = ()  # the record's compact range (at first)
        self._entries = entries
        self._data = data
        self._extras = [] if extras is None else extras  # archive and control entries
        self.state = state
        self.key = key
        self.tail_recovery: TailRecovery | None = None
        """What this open did with an unsigned tail a crash left (None: there was none)."""
        self.read_from = first
        """The index of the first entry this open read from the log: 0 for a whole read, the
        verified record's size when it read only the entries after it (``verified-state``)."""
        self._recorded = first
        self._marker = self._disk_marker()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def from_genesis(cls, folder: Path, *, origin: str, vkey: str, key_blob: bytes,
                     entry: bytes, checkpoint: bytes, genesis_pcr0: bytes,
                     commitment_sha256: bytes,
                     broker_factory: Callable[[], LocalKeyBroker] = LocalKeyBroker) -> Ledger:
        """A new ledger in ``folder`` (absent or empty) from the genesis the first build's
        enclave made (:func:`zcbench.host.genesis.genesis`): the ledger key sealed to the key
        broker (``key_blob``: this process cannot open it), the genesis ``entry`` announcing
        ``genesis_pcr0`` with ``commitment_sha256``, and the ledger key's ``checkpoint`` over
        it. Refused (DataError, nothing kept) unless the entry is exactly that genesis and the
        checkpoint is signed by ``vkey`` under ``origin`` over exactly it."""
        from zcbench.keys import is_enclave_sealed
        from zcbench.ledger.entries import decode_entry

        check_new_ledger(folder, origin)
        verifier = parse_vkey(vkey)
        if verifier.name != origin:
            raise DataError(f"the genesis enclave's vkey is named {verifier.name!r}, not "
                            f"{origin!r}")
        if not is_enclave_sealed(key_blob):
            raise DataError("the genesis enclave's ledger key is not sealed to the key broker")
        made = decode_entry(entry)
        body = made.body
        if (made.index != 0 or not isinstance(body, CommitmentEntry)
                or body.pcr0 != genesis_pcr0 or body.commitment_sha256 != commitment_sha256):
            raise DataError("the genesis enclave's entry is not the genesis commitment of "
                            f"PCR0 {genesis_pcr0.hex()[:16]}... and its commitment")
        state = LedgerState().after(made)  # the genesis rules (valid from its own append)
        signed = checkpoint_of(checkpoint, vkey)
        if (signed.size, signed.root) != (1, leaf_hash(entry)):
            raise DataError("the genesis enclave's checkpoint does not cover exactly the "
                            "genesis entry")
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            holder = SealedLedgerKey(folder, origin, broker_factory)
            _write_key_blob(holder.path, key_blob)
            store = LogStore.create(folder / "log", codec=LEDGER_ENTRIES)
            ledger = cls(folder, origin, vkey, store, [], [], LedgerState(), holder)
            ledger._commit(entry, checkpoint)
            ledger._took(made, entry, state)
            doc = {"schema": LEDGER_SCHEMA, "origin": origin, "vkey": vkey}
            write_atomic(folder / LEDGER_FILE, json.dumps(doc, indent=1).encode() + b"\n")
        except BaseException:
            _remove_unfinished(folder, created)
            raise
        ledger.sync_key_policy()
        return ledger

    @classmethod
    def init_insecure_host_key(cls, folder: Path, *, origin: str, genesis_pcr0: bytes,
                               commitment_sha256: bytes, at_ns: int | None = None,
                               broker_factory: Callable[[], LocalKeyBroker] = LocalKeyBroker
                               ) -> Ledger:
        """DEVELOPMENT ONLY, NOT CONFIDENTIAL: a new ledger whose key is generated and sealed
        in *this* process, which therefore held it, and which this process can open again to
        sign entries (:meth:`append`). For tests of the ledger's storage and rules; a real
        ledger is made by the genesis build's enclave (:meth:`from_genesis`, ``zcbench ledger
        init``), and ``ledger show``/``verify`` warn about a key made like this."""
        check_new_ledger(folder, origin)
        folder.mkdir(parents=True, exist_ok=True)
        key, signer = SealedLedgerKey.generate_insecure_host_key(folder, origin, broker_factory)
        store = LogStore.create(folder / "log", codec=LEDGER_ENTRIES)
        ledger = cls(folder, origin, signer.vkey, store, [], [], LedgerState(), key)
        when = _now_ns() if at_ns is None else at_ns
        genesis = CommitmentEntry(genesis_pcr0, commitment_sha256, when)
        ledger._write(genesis, when, lambda _state: signer)
        doc = {"schema": LEDGER_SCHEMA, "origin": origin, "vkey": signer.vkey}
        write_atomic(folder / LEDGER_FILE, json.dumps(doc, indent=1).encode() + b"\n")
        ledger.sync_key_policy()
        return ledger

    @property
    def key_made_in_enclave(self) -> bool:
        """Whether the ledger key was made in the genesis enclave and sealed there (False: a
        development ledger, or one made before genesis moved into the enclave, whose key a
        host process held at genesis)."""
        from zcbench.keys import is_enclave_sealed

        try:
            return is_enclave_sealed((self.folder / KEY_FILE).read_bytes())
        except OSError:
            return False

    @classmethod
    def open(cls, folder: Path,
             broker_factory: Callable[[], LocalKeyBroker] = LocalKeyBroker, *,
             key: LedgerKeyHolder | None = None) -> Ledger:
        """Open ``folder``: recover the log (a torn tail is cut, see :attr:`recovery`; damage
        is refused), read and rule-check the entries, check the newest checkpoint's signature.

        With a verified record (``verified-state``) only the entries after it are read
        (:attr:`read_from`): the log must still end where the record says and every newer
        checkpoint must extend the recorded tree by those entries, else the ledger was rolled
        back or forked below the record (:class:`~zcbench.auditlog.LogDamageError`). Without
        one every entry is read, and the record is kept for the next open.

        ``key`` holds the ledger key (default: sealed by the local key broker from
        ``broker_factory``; on Nitro a :class:`~zcbench.ledger.key.AttestedLedgerKey`)."""
        read_ledger_file(folder)  # a folder that is no ledger is refused before any lock
        with _folder_lock(folder):
            return cls._open(folder, broker_factory, key)

    @classmethod
    def _open(cls, folder: Path, broker_factory: Callable[[], LocalKeyBroker],
              key: LedgerKeyHolder | None) -> Ledger:
        origin, vkey = read_ledger_file(folder)
        record = _read_verified(folder, origin, vkey)
        extras: list[tuple[int, bytes]]
        if record is None:
            store = LogStore.open(folder / "log", codec=LEDGER_ENTRIES)
            first, start, state, extras = 0, None, LedgerState(), []
        else:
            mark, state, extras = record
            store = LogStore.resume(folder / "log", mark, codec=LEDGER_ENTRIES)
            first, start = mark.records, (mark.segment, mark.segment_end, mark.records)
        try:
            signed = max((c.size for c in store.checkpoints), default=0)
            walk = LogWalk(folder / "log", OsFileSystem(), LEDGER_ENTRIES)
            entries: list[LedgerEntry] = []
            data: list[bytes] = []
            at_signed = (copy.deepcopy(state) if signed == first and store.size > signed
                         else None)  # the state to roll back to
            broken: str | None = None
            for item in walk.records(start):
                try:
                    state.apply(item.record)
                except LedgerRuleError as exc:
                    if item.index < signed:
                        raise LedgerVerificationError(
                            f"{folder}: ledger entry {item.index} breaks a rule: {exc}",
                            check=exc.check, expected=exc.expected, actual=exc.actual) from None
                    broken = f"entry {item.index} breaks a rule ({exc.check})"
                    break
                entries.append(item.record)
                data.append(item.data)
                if item.record.body.type in _EXTRA_TYPES:
                    extras.append((item.index, item.data))
                if state.size == signed and store.size > signed:
                    at_signed = copy.deepcopy(state)
            tail = None
            if store.size > signed:
                assert at_signed is not None
                store, tail = cls._settle(folder, vkey, store, signed, first, start, entries,
                                          data, broken)
                if tail.action == "rolled_back":
                    del entries[signed - first:], data[signed - first:]
                    extras = [(i, d) for i, d in extras if i < signed]
                    state = at_signed
            if tail is None:
                tail = cls._unwritten(folder, vkey, signed)
            _drop_pending(folder)
            holder = key if key is not None else SealedLedgerKey(folder, origin, broker_factory)
            first_root = None if record is None else CompactRange(
                record[0].records, list(record[0].compact)).root()
            ledger = cls(folder, origin, vkey, store, entries, data, state, holder,
                         first=first, first_root=first_root, extras=extras)
            if record is not None:
                ledger._first_range = record[0].compact
            ledger.tail_recovery = tail
            newest = store.newest_checkpoint_note
            if newest is not None:
                ledger._checkpoint_verifier().verify(newest)
            if ledger.size > first or record is None:
                # a cache of what was verified: when it cannot be kept (a full disk, say) the
                # next open reads a longer tail, nothing is lost
                with contextlib.suppress(EnvError, UsageError, OSError):
                    ledger._save_record()
        except BaseException:
            store.close()
            raise
        return ledger

    def _save_record(self) -> None:
        """Keep the verified state (``verified-state``: the log's mark, the rules' state, the
        archive and control entries) so the next open reads only the entries after it; the
        caller holds the writer lock. Only for a ledger whose newest checkpoint covers every
        entry (durable, signed), so the record is never ahead of the ledger."""
        mark = self._store.mark()
        doc = {"v": 1, "origin": self.origin, "vkey": self.vkey, "size": mark.records,
               "range": list(mark.compact), "segment": mark.segment,
               "segment_end": mark.segment_end,
               "last": None if mark.last is None else list(mark.last),
               "checkpoint": mark.checkpoint, "checkpoint_start": mark.checkpoint_start,
               "checkpoint_end": mark.checkpoint_end, "rules": self.state.snapshot(),
               "extra": [data for _, data in self._extras]}
        write_atomic(self.folder / VERIFIED_FILE, _cbor.encode_canonical(doc), 0o600)
        self._recorded = mark.records

    @staticmethod
    def _unwritten(folder: Path, vkey: str, signed: int) -> TailRecovery | None:
        """A pending entry signed for the next index that never reached the log: recorded as
        discarded (the ledger key's signature over it is in the record, so it is not lost
        silently); None for a stale pending entry (its checkpoint stored) or none."""
        pending = _read_pending(folder)
        if pending is None:
            return None
        try:
            checkpoint = checkpoint_of(pending[1], vkey)
        except (LogFormatError, NoteError, LedgerVerificationError):
            checkpoint = None
        if checkpoint is not None and checkpoint.size <= signed:
            return None  # stale: that append completed
        from zcbench.ledger._errors import LedgerFormatError
        from zcbench.ledger.entries import decode_entry

        try:
            kind: str = decode_entry(pending[0]).body.type
        except LedgerFormatError:
            kind = "?"
        recovery = TailRecovery("discarded", signed,
                                ((signed, kind, hashlib.sha256(pending[0]).hexdigest()),),
                                _now_ns(), "the crash came before the entry's fsync")
        _record_recovery(folder, recovery, [pending[0]], pending[1])
        return recovery

    @staticmethod
    def _settle(folder: Path, vkey: str, store: LogStore, signed: int, first: int,
                start: tuple[int, int, int] | None, entries: list[LedgerEntry],
                data: list[bytes], broken: str | None) -> tuple[LogStore, TailRecovery]:
        """Complete or roll back the unsigned tail (entries ``signed`` on; ``entries`` and
        ``data`` start at index ``first``, read from ``start``), recorded first; returns the
        store to use and what was done."""
        tail = data[signed - first:]
        held = first + len(entries)
        listed = tuple((signed + i, entries[signed - first + i].body.type
                        if signed + i < held else "?", hashlib.sha256(blob).hexdigest())
                       for i, blob in enumerate(tail))
        if len(tail) < store.size - signed:  # entries after a broken one: listed by hash only
            rest = [item.data for item in LogWalk(folder / "log", OsFileSystem(),
                                                  LEDGER_ENTRIES).records(start)][len(data):]
            listed += tuple((first + len(data) + i, "?", hashlib.sha256(blob).hexdigest())
                            for i, blob in enumerate(rest))
            tail = tail + rest
        pending = _read_pending(folder)
        reason = broken or _why_not_complete(pending, tail, store, vkey)
        when = _now_ns()
        if reason is None:
            assert pending is not None
            recovery = TailRecovery("completed", signed, listed, when,
                                    "the pending entry and the ledger key's checkpoint over it "
                                    f"were in {PENDING_FILE}")
            _record_recovery(folder, recovery, tail)
            store.add_checkpoint(pending[1])
            return store, recovery
        recovery = TailRecovery("rolled_back", signed, listed, when, reason)
        _record_recovery(folder, recovery, tail)
        store.close()
        _cut_log(folder / "log", signed)
        reopened = LogStore.open(folder / "log", codec=LEDGER_ENTRIES)
        reopened.recovery = store.recovery  # what the first open found (a torn tail, say)
        return reopened, recovery

    def close(self) -> None:
        """Keep the verified state when the ledger grew since it was last kept (so the next
        open reads only what follows), then close the log files."""
        if self.size > self._recorded:
            # a cache of what was verified: when it cannot be written the next open reads a
            # longer tail, nothing is lost
            with contextlib.suppress(EnvError, UsageError, OSError), self._locked():
                if self._disk_marker() == self._marker:
                    self._save_record()
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    @property
    def recovery(self) -> RecoveryReport:
        """What opening found: ``clean`` or ``torn_tail`` (the cut bytes are listed)."""
        return self._store.recovery

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        """Every entry, in order (read from the log, once, when the open read only a tail)."""
        self._read_prefix()
        return tuple(self._entries)

    @property
    def entry_bytes(self) -> tuple[bytes, ...]:
        """The encoded entries (the leaves' data), in order."""
        self._read_prefix()
        return tuple(self._data)

    def entry_bytes_from(self, index: int) -> tuple[bytes, ...]:
        """The encoded entries from ``index`` on: without reading the log again when the open
        read them (``index`` at or after :attr:`read_from`)."""
        if index < self._first:
            self._read_prefix()
        return tuple(self._data[max(index - self._first, 0):])

    def tree_mark(self) -> TreeMark | None:
        """The mark of the ledger's current size (None when the newest checkpoint does not
        cover every entry)."""
        try:
            mark = self._store.mark()
        except UsageError:
            return None
        return TreeMark(mark.records, mark.compact, mark.segment, mark.segment_end)

    def tree_from(self, size: int, known: TreeMark | None = None
                  ) -> tuple[CompactRange, list[bytes]]:
        """The compact range of the first ``size`` entries and the leaf hashes of the entries
        after them: what a consistency proof from ``size`` needs
        (:func:`~zcbench.auditlog.merkle.consistency_proof_from`).

        From the verified record and the entries this open read when ``size`` is at or after
        :attr:`read_from`; else from ``known`` (a mark at or below ``size``), reading only the
        entries after it and holding them to the record's root; else (no mark, or one that does
        not hold) by a whole read."""
        if not 0 <= size <= self.size:
            raise UsageError(f"no tree of {size} entries in a ledger of {self.size}")
        if size < self._first and known is not None and known.size <= size:
            between = self._leaves_between(known)
            if between is not None:
                compact = CompactRange(known.size, known.compact)
                for leaf in between[: size - known.size]:
                    compact.append(leaf)
                return compact, between[size - known.size:] + [leaf_hash(d) for d in self._data]
        if size < self._first:
            self._read_prefix()
        compact = CompactRange(self._first, self._first_range if self._first else ())
        leaves = [leaf_hash(d) for d in self._data]
        for leaf in leaves[: size - self._first]:
            compact.append(leaf)
        return compact, leaves[size - self._first:]

    def _leaves_between(self, known: TreeMark) -> list[bytes] | None:
        """The leaf hashes of the entries from ``known`` to the verified record, read from the
        position ``known`` names; None unless they extend its range to the record's root."""
        try:
            compact = CompactRange(known.size, known.compact)
        except ValueError:
            return None
        leaves: list[bytes] = []
        walk = LogWalk(self.folder / "log", OsFileSystem(), LEDGER_ENTRIES)
        try:
            for item in walk.records((known.segment, known.offset, known.size)):
                if item.index >= self._first:
                    break
                leaves.append(item.leaf_hash)
                compact.append(item.leaf_hash)
        except (OSError, ValueError, EnvError, DataError, LogFormatError, IndexError):
            return None
        if walk.finding is not None or compact.size != self._first:
            return None
        return leaves if compact.root() == self._first_root else None

    def _read_prefix(self) -> None:
        """Read the entries before the verified record, held to the record's root."""
        if self._first == 0:
            return
        entries: list[LedgerEntry] = []
        data: list[bytes] = []
        tree = CompactRange()
        walk = LogWalk(self.folder / "log", OsFileSystem(), LEDGER_ENTRIES)
        for item in walk.records():
            if item.index >= self._first:
                break
            entries.append(item.record)
            data.append(item.data)
            tree.append(item.leaf_hash)
        if walk.finding is not None:
            raise LedgerVerificationError(
                f"{self.folder}: log damaged, {walk.finding.classification} (entry "
                f"{walk.finding.index}): {walk.finding.message}",
                check=walk.finding.classification)
        if tree.size != self._first or tree.root() != self._first_root:
            raise LedgerVerificationError(
                f"{self.folder}: the ledger's first {self._first} entries are not the ones "
                f"verified before ({VERIFIED_FILE}): they were rewritten", check="rewritten")
        self._entries[:0], self._data[:0] = entries, data
        self._first = 0

    @property
    def size(self) -> int:
        return self._first + len(self._entries)

    def _checkpoint_verifier(self) -> CheckpointVerifier:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        spki = self.verifier.public_key.public_bytes(Encoding.DER,
                                                     PublicFormat.SubjectPublicKeyInfo)
        return CheckpointVerifier(spki, self.origin)

    def checkpoint_notes(self) -> list[bytes]:
        """Every signed checkpoint note stored, oldest first."""
        notes, _, _ = LogWalk(self.folder / "log", OsFileSystem(), LEDGER_ENTRIES
                              ).checkpoint_notes()
        return [note for note, _ in notes]

    def latest_checkpoint(self) -> bytes:
        """The newest checkpoint note the ledger key signed."""
        note = self._store.newest_checkpoint_note
        if note is None:
            raise DataError(f"{self.folder}: the ledger has no checkpoint")
        return note

    def witnessed_checkpoint(self) -> bytes | None:
        """The newest checkpoint with its cosignatures (``checkpoint``), or None."""
        path = self.folder / WITNESSED_FILE
        return path.read_bytes() if path.is_file() else None

    def store_witnessed(self, note: bytes) -> None:
        """Keep ``note`` (a ledger checkpoint with cosignatures) as the witnessed one."""
        checkpoint = self._checkpoint_verifier().verify(note)
        if checkpoint.size > self.size:
            raise UsageError(f"a witnessed checkpoint of size {checkpoint.size} for a ledger of "
                             f"{self.size} entries")
        write_atomic(self.folder / WITNESSED_FILE, note)

    def enclave_state(self) -> bytes | None:
        """The enclave's sealed state the host keeps (``enclave-state``), or None."""
        path = self.folder / ENCLAVE_STATE_FILE
        return path.read_bytes() if path.is_file() else None

    def store_enclave_state(self, sealed: bytes) -> None:
        """Keep the enclave's sealed state (replaced atomically); the host cannot read it, the
        next enclave checks it."""
        write_atomic(self.folder / ENCLAVE_STATE_FILE, sealed, 0o600)

    # -- appending ---------------------------------------------------------------------------

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return _folder_lock(self.folder)

    def append(self, body: EntryBody, *, pcr0: bytes | None = None,
               at_ns: int | None = None) -> Appended:
        """Append ``body`` as the enclave of ``pcr0`` (default: the live version at ``at_ns``,
        the stand-in's requester) at ``at_ns`` (default now).

        Raises :class:`LedgerKeyRefused` when ``pcr0`` may not hold the key then, and
        :class:`LedgerRuleError` when the entry breaks a rule; the ledger is unchanged then.
        """
        when = _now_ns() if at_ns is None else at_ns
        with self._locked():
            self._catch_up()

            def release(state: LedgerState) -> Any:
                requester = pcr0
                if requester is None:
                    live = state.live(when)
                    if live is None:
                        raise LedgerKeyRefused("no version is live: nothing may sign the ledger",
                                               check="ledger_key_release")
                    requester = live.pcr0
                return self.key.release(requester, state, when)

            return self._write(body, when, release)

    def announce(self, pcr0: bytes, commitment_sha256: bytes, *, notice_ns: int,
                 at_ns: int | None = None, by: bytes | None = None) -> Appended:
        """Announce a new version, valid ``notice_ns`` after the append."""
        if notice_ns < 0:
            raise UsageError("a notice period is zero or more")
        when = _now_ns() if at_ns is None else at_ns
        return self.append(CommitmentEntry(pcr0, commitment_sha256, when + notice_ns),
                           pcr0=by, at_ns=when)

    def revoke(self, pcr0: bytes, *, reason: str = "", at_ns: int | None = None,
               by: bytes | None = None) -> Appended:
        """Revoke an announcement before its ``valid_from``, or a retired version."""
        return self.append(RevocationEntry(pcr0, reason), pcr0=by, at_ns=at_ns)

    def sync_key_policy(self) -> None:
        """Make the key broker's release policy of the ledger key the ledger's allowed set
        (every version with its ``valid_from`` and revocation). Called after genesis and every
        announcement or revocation; on Nitro the operator puts
        :func:`~zcbench.ledger.key.kms_ledger_key_policy` instead."""
        if isinstance(self.key, SealedLedgerKey):
            rows = [(v.pcr0, v.valid_from_ns, v.revoked_ns) for v in self.state.versions.values()]
            self.key.broker_factory().set_secret_policy(secret_name(self.origin), rows)

    def append_signed(self, data: bytes, note: bytes) -> Appended:
        """Store an entry the enclave appended and the checkpoint it signed over it.

        Refused (nothing written) unless ``data`` decodes strictly as the next entry, follows
        the rules, and ``note`` is signed by the ledger key over exactly this ledger plus that
        entry."""
        from zcbench.ledger.entries import decode_entry

        with self._locked():
            self._catch_up()
            entry = decode_entry(data)
            trial = self.state.after(entry)  # the index and every rule
            checkpoint = checkpoint_of(note, self.vkey)
            grown = self._store.compact_range()
            grown.append(leaf_hash(data))
            if (checkpoint.size, checkpoint.root) != (self.size + 1, grown.root()):
                raise LedgerVerificationError(
                    f"the enclave's checkpoint (size {checkpoint.size}) does not cover this "
                    f"ledger of {self.size} entries and the new one", check="enclave_checkpoint")
            self._commit(data, note)
            self._took(entry, data, trial)
            if isinstance(entry.body, (CommitmentEntry, RevocationEntry)):
                self.sync_key_policy()  # the broker follows the allowed set
            return Appended(entry, data, note)

    def _commit(self, data: bytes, note: bytes) -> None:
        """Write ``data`` (the next entry) and ``note`` (the ledger key's checkpoint over this
        ledger plus it): pending first, then the entry, then the checkpoint (each fsynced)."""
        if self._store.size != self.size:
            raise EnvError(f"{self.folder}: the log holds {self._store.size} entries, the "
                           f"ledger read {self.size}; reopen it")
        write_atomic(self.folder / PENDING_FILE,
                     _cbor.encode_canonical({"entry": data, "checkpoint": note}), 0o600)
        self._store.append([data])
        self._store.sync()
        self._store.add_checkpoint(note)

    def _took(self, entry: LedgerEntry, data: bytes, state: LedgerState) -> None:
        """An entry this process appended (durable, checkpointed): held and in the state."""
        self.state = state
        self._entries.append(entry)
        self._data.append(data)
        if entry.body.type in _EXTRA_TYPES:
            self._extras.append((entry.index, data))
        self._marker = self._disk_marker()

    def _disk_marker(self) -> tuple[int, ...]:
        log = self.folder / "log"
        return tuple(p.stat().st_size for p in sorted(log.iterdir()) if p.suffix == ".zlog")

    def _catch_up(self) -> None:
        """Read entries another process appended since this one opened the ledger."""
        if self._disk_marker() == self._marker:
            return
        fresh = Ledger._open(self.folder, LocalKeyBroker, self.key)  # the lock is held
        if fresh.size != self.size:
            self._store.close()
            self._store, self._entries, self._data = fresh._store, fresh._entries, fresh._data
            self._first, self._first_root = fresh._first, fresh._first_root
            self._first_range = fresh._first_range
            self._extras, self._recorded = fresh._extras, fresh._recorded
            self.state = fresh.state
        else:
            fresh.close()
        self._marker = self._disk_marker()

    def _write(self, body: EntryBody, when: int,
               release: Callable[[LedgerState], Any]) -> Appended:
        signer = release(self.state)
        entry = LedgerEntry(self.size, when, body)
        trial = self.state.after(entry)  # raises LedgerRuleError, nothing written
        try:
            data = encode_entry(index=entry.index, time_ns=when, body=body)
        except ValueError as exc:
            raise UsageError(f"the entry cannot be encoded: {exc}") from None
        grown = self._store.compact_range()
        grown.append(leaf_hash(data))
        note: bytes = signer.sign(grown.size, grown.root())
        self._commit(data, note)
        self._took(entry, data, trial)
        if isinstance(body, (CommitmentEntry, RevocationEntry)):
            self.sync_key_policy()
        return Appended(entry, data, note)


def _why_not_complete(pending: tuple[bytes, bytes] | None, tail: list[bytes],
                      store: LogStore, vkey: str) -> str | None:
    """Why the unsigned ``tail`` cannot be completed from ``pending`` (None: it can)."""
    if pending is None:
        return f"no pending entry ({PENDING_FILE}) holds its checkpoint"
    if len(tail) != 1 or pending[0] != tail[0]:
        return f"{PENDING_FILE} holds another entry than the tail"
    try:
        checkpoint = checkpoint_of(pending[1], vkey)
    except (LogFormatError, NoteError, LedgerVerificationError):
        return f"the checkpoint in {PENDING_FILE} is not signed by the ledger key"
    if (checkpoint.size, checkpoint.root) != (store.size, store.root()):
        return f"the checkpoint in {PENDING_FILE} does not cover exactly the ledger and the tail"
    return None


def _read_verified(folder: Path, origin: str, vkey: str
                   ) -> tuple[StoreMark, LedgerState, list[tuple[int, bytes]]] | None:
    """The verified-state record (``verified-state``), or None when there is none; DataError
    when it is not one of this ledger's, saying how to have the whole ledger read again."""
    from zcbench.ledger.entries import decode_entry

    path = folder / VERIFIED_FILE
    try:
        with path.open("rb") as handle:
            blob = handle.read(_MAX_VERIFIED + 1)
    except FileNotFoundError:
        return None
    fix = (f"; remove {path} to have the next open read and verify the whole ledger (and "
           "check how it changed: only this host's ledger code writes it)")
    if len(blob) > _MAX_VERIFIED:
        raise DataError(f"{path} is larger than {_MAX_VERIFIED} bytes{fix}")
    try:
        doc = _cbor.decode(blob, canonical=True, max_depth=8, max_bytes=_MAX_VERIFIED)
        if not isinstance(doc, dict) or set(doc) != _VERIFIED_KEYS or doc["v"] != 1:
            raise ValueError("not a verified-state record")
        if (doc["origin"], doc["vkey"]) != (origin, vkey):
            raise ValueError("the record of another ledger (origin or vkey)")
        last = doc["last"]
        if last is not None:
            if (not isinstance(last, list) or len(last) != 3 or type(last[0]) is not int
                    or type(last[1]) is not int or not isinstance(last[2], bytes)):
                raise ValueError("a bad last record")
            last = (last[0], last[1], last[2])
        ints = [doc[k] for k in ("size", "segment", "segment_end", "checkpoint_start",
                                 "checkpoint_end")]
        if (not all(type(v) is int and v >= 0 for v in ints)
                or not isinstance(doc["range"], list)
                or not all(isinstance(h, bytes) and len(h) == 32 for h in doc["range"])
                or not isinstance(doc["checkpoint"], bytes)
                or not isinstance(doc["extra"], list)
                or not all(isinstance(e, bytes) for e in doc["extra"])):
            raise ValueError("a field of the wrong type")
        checkpoint = checkpoint_of(doc["checkpoint"], vkey)  # signed by the ledger key
        CompactRange(doc["size"], doc["range"])  # the range fits the size
        mark = StoreMark(doc["size"], tuple(doc["range"]), doc["segment"], doc["segment_end"],
                         last, doc["checkpoint"], doc["checkpoint_start"],
                         doc["checkpoint_end"])
        if checkpoint.size != mark.records:
            raise ValueError("its checkpoint is not at its size")
        state = LedgerState.from_snapshot(doc["rules"], signed_history=False)
        if state.size != mark.records:
            raise ValueError("its rules' state is not at its size")
        extras: list[tuple[int, bytes]] = []
        for held in state.runs.values():
            held.controls.clear()  # every control entry is in the extras
        for data in doc["extra"]:
            entry = decode_entry(data)
            body: Any = entry.body
            run = state.runs.get(getattr(body, "run_origin", ""))
            if entry.index >= mark.records or run is None or body.type not in _EXTRA_TYPES:
                raise ValueError("an archive or control entry that is not the state's")
            (run.archives if body.type == "archive" else run.controls).append(
                (entry.index, body))
            extras.append((entry.index, data))
    except (ValueError, TypeError, _cbor.CborError, LogFormatError, NoteError,
            LedgerVerificationError) as exc:
        raise DataError(f"{path} is not this ledger's verified state ({exc}){fix}") from None
    return mark, state, extras


def host_made_key_warning(folder: Path) -> str | None:
    """A warning when ``folder``'s ledger key was not made in its genesis enclave (a
    development ledger, or one made before genesis moved into the enclave): some host process
    held that key at genesis. None when the key was made and sealed in the enclave, or when the
    folder holds no key file (an LP's copy of the entries)."""
    from zcbench.keys import is_enclave_sealed

    try:
        blob = (folder / KEY_FILE).read_bytes()
    except OSError:
        return None
    if is_enclave_sealed(blob):
        return None
    return ("the ledger key was made outside an enclave (a development ledger, or one made "
            "before 'zcbench ledger init' had the genesis enclave make it): the host process "
            "that ran its genesis held it; make a new ledger with 'zcbench ledger init' for a "
            "key only attested enclaves ever held")


def read_ledger_file(folder: Path) -> tuple[str, str]:
    """The origin and vkey in ``folder/ledger.json``; DataError when it is not a ledger's."""
    path = folder / LEDGER_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder} is not a ledger (no {LEDGER_FILE}); make one with "
                         "'zcbench ledger init'") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a ledger file: {exc}") from None
    if (not isinstance(doc, dict) or doc.get("schema") != LEDGER_SCHEMA
            or set(doc) != {"schema", "origin", "vkey"}
            or not isinstance(doc["origin"], str) or not isinstance(doc["vkey"], str)):
        raise DataError(f"{path} is not a {LEDGER_SCHEMA} file")
    verifier = parse_vkey(doc["vkey"])
    if verifier.name != doc["origin"]:
        raise DataError(f"{path}: the vkey is named {verifier.name!r}, not the origin")
    return doc["origin"], doc["vkey"]


def checkpoint_of(note: bytes, vkey: str) -> Checkpoint:
    """The ledger checkpoint in ``note`` after checking the ledger key's signature."""
    from zcbench.auditlog.checkpoint import parse_checkpoint
    from zcbench.auditlog.note import open_note

    verifier = parse_vkey(vkey)
    checkpoint = parse_checkpoint(open_note(note, [verifier])[0].text)
    if checkpoint.origin != verifier.name:
        raise LedgerVerificationError(
            f"checkpoint is for {checkpoint.origin!r}, the ledger is {verifier.name!r}",
            check="checkpoint_origin", expected=verifier.name, actual=checkpoint.origin)
    return checkpoint
