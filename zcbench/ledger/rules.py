"""The ledger's rules: what a sequence of entries means, and which entries may follow.

:class:`LedgerState` is the state after some entries; :meth:`LedgerState.apply` checks one more
entry against the rules and takes it, or raises :class:`LedgerRuleError` naming the rule and
leaves the state as it was. The writer checks an entry this way before it appends it; the
verifier replays every entry the same way, so a ledger whose entries break a rule (written by
anything but this code) fails verification with the same reason.

The rules:

* entries are in index order and their append times never go back;
* the first entry is the genesis ``commitment``: the first version announces itself, valid from
  its own append;
* a ``commitment``'s ``valid_from`` is never before its append (a notice period of zero or more);
  a PCR0 is announced once (a revoked one never comes back);
* a ``revocation`` withdraws an announcement before its ``valid_from``, or revokes a *retired*
  version (one a later announcement has superseded and that is live at the revocation); a
  version that is the only one live is never revoked, and nothing is revoked twice;
* the **allowed set at time t**: the versions whose ``valid_from`` is at or before t and that
  no revocation appended at or before t withdrew;
* a ``run-start`` names a PCR0 allowed at its append, a run origin seen for the first time
  (``zcbench/<first 16 hex of PCR0>/<run id>``) with its log's vkey, and the last checkpoint the
  ledger holds of the run before it (None for the first run);
* ``run-checkpoint`` and ``run-end`` carry checkpoints of an open run's log, signed by its vkey,
  never smaller than the run's previous one (the same size only with the same root); a run ends
  once;
* an ``archive`` entry names a run whose run-start is in the ledger (ended or not), and no
  object key appears twice in it;
* a ``control`` entry names an open run; its first is the ``start`` record of the run's limits
  and no other is, and their log indices go up (the records themselves are in the run's log:
  ``zcbench.host.controls``).

Time is given (``time_ns`` of each entry, ``at_ns`` of a question); nothing here reads a clock.

:meth:`LedgerState.snapshot` writes what the rules read of a state as plain data (the enclave
checkpoints its verified state with it, :mod:`zcbench.enclave.ledger`) and
:meth:`LedgerState.from_snapshot` reads it back strictly: every version, every run's facts, its
newest checkpoint and its last control entry; a run's archive entries and earlier control
entries are left out (no rule reads them), so a state read back answers every rule's question
but not "which archives" (verifiers replay the whole ledger).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from zcbench.auditlog import LogFormatError, NoteError
from zcbench.auditlog.checkpoint import Checkpoint, parse_checkpoint
from zcbench.auditlog.note import open_note, parse_vkey
from zcbench.ledger._errors import LedgerRuleError
from zcbench.ledger.entries import (
    ArchiveEntry,
    CommitmentEntry,
    ControlEntry,
    LedgerEntry,
    RevocationEntry,
    RunCheckpointEntry,
    RunEndEntry,
    RunStartEntry,
)

T = TypeVar("T")

__all__ = ["SNAPSHOT_VERSION", "LedgerState", "RunInfo", "Version", "read_run_checkpoint"]

SNAPSHOT_VERSION = 1
"""The layout :meth:`LedgerState.snapshot` writes (a reader of another refuses it)."""


@dataclass(slots=True)
class Version:
    """One announced version: its PCR0, commitment hash, when it was announced and valid from,
    and its revocation (if any)."""

    pcr0: bytes
    commitment_sha256: bytes
    index: int
    announced_ns: int
    valid_from_ns: int
    revoked_ns: int | None = None
    revoked_index: int | None = None

    def allowed_at(self, at_ns: int) -> bool:
        """Whether this version may run at ``at_ns``."""
        return self.valid_from_ns <= at_ns and (self.revoked_ns is None or at_ns < self.revoked_ns)


@dataclass(slots=True)
class RunInfo:
    """One run as the ledger saw it."""

    origin: str
    pcr0: bytes
    vkey: str
    boot_sha256: bytes
    start_index: int
    started_ns: int
    last_checkpoint: bytes | None = None
    last_size: int = -1
    last_root: bytes = b""
    end_index: int | None = None
    ended_ns: int | None = None
    summary_sha256: bytes | None = None
    archives: list[tuple[int, ArchiveEntry]] = field(default_factory=list)
    controls: list[tuple[int, ControlEntry]] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        """Whether the run-end entry is in the ledger."""
        return self.end_index is not None


def read_run_checkpoint(note: bytes, vkey: str, origin: str) -> Checkpoint:
    """The checkpoint in ``note`` after checking the run log's signature (``vkey``) and origin.

    Raises :class:`LedgerRuleError` (check ``run_checkpoint``).
    """
    try:
        verifier = parse_vkey(vkey)
        text = open_note(note, [verifier])[0].text
        checkpoint = parse_checkpoint(text)
    except (LogFormatError, NoteError) as exc:
        raise LedgerRuleError(f"the checkpoint of run {origin} does not verify with its vkey: "
                              f"{exc}", check="run_checkpoint") from None
    if checkpoint.origin != origin:
        raise LedgerRuleError(f"a checkpoint of {checkpoint.origin!r} is given for run {origin}",
                              check="run_checkpoint", expected=origin, actual=checkpoint.origin)
    return checkpoint


def _unverified_run_checkpoint(note: bytes, origin: str) -> Checkpoint:
    """The checkpoint in ``note`` of run ``origin``, its signature not checked (see
    :attr:`LedgerState.signed_history`)."""
    from zcbench.auditlog.note import parse_note

    try:
        checkpoint = parse_checkpoint(parse_note(note).text)
    except LogFormatError as exc:
        raise LedgerRuleError(f"the checkpoint of run {origin} is malformed: {exc}",
                              check="run_checkpoint") from None
    if checkpoint.origin != origin:
        raise LedgerRuleError(f"a checkpoint of {checkpoint.origin!r} is given for run {origin}",
                              check="run_checkpoint", expected=origin, actual=checkpoint.origin)
    return checkpoint


@dataclass
class LedgerState:
    """The meaning of a ledger's entries so far (see the module docstring for the rules)."""

    size: int = 0
    last_time_ns: int | None = None
    versions: dict[bytes, Version] = field(default_factory=dict)
    runs: dict[str, RunInfo] = field(default_factory=dict)
    last_run: str | None = None
    signed_history: bool = False
    """True for a replay of entries a ledger checkpoint covers (the enclave's gate): the code
    that signed that checkpoint checked every rule, run checkpoints' signatures included, so
    those signatures are not verified again (origins, sizes and roots still are); a replay
    whose root then differs from the checkpoint's is refused whole."""

    # -- questions ---------------------------------------------------------------------------

    def allowed(self, at_ns: int) -> list[Version]:
        """The allowed set at ``at_ns``, in announcement order."""
        return [v for v in self.versions.values() if v.allowed_at(at_ns)]

    def is_allowed(self, pcr0: bytes, at_ns: int) -> bool:
        """Whether ``pcr0`` may run (and hold the ledger key) at ``at_ns``."""
        version = self.versions.get(pcr0)
        return version is not None and version.allowed_at(at_ns)

    def live(self, at_ns: int) -> Version | None:
        """The newest allowed version at ``at_ns``: the one that endorses successors."""
        allowed = self.allowed(at_ns)
        return max(allowed, key=lambda v: (v.valid_from_ns, v.index)) if allowed else None

    def retired(self, pcr0: bytes, at_ns: int) -> bool:
        """Whether a version announced after ``pcr0``'s is live at ``at_ns``."""
        version = self.versions[pcr0]
        return any(other.index > version.index and other.allowed_at(at_ns)
                   for other in self.versions.values())

    def previous_checkpoint(self) -> bytes | None:
        """The last checkpoint the ledger holds of the newest run (None before any run)."""
        if self.last_run is None:
            return None
        return self.runs[self.last_run].last_checkpoint

    # -- the state as data ---------------------------------------------------------------------

    def snapshot(self) -> list[object]:
        """What the rules read of this state, as plain data (see the module docstring)."""
        versions = [[v.pcr0, v.commitment_sha256, v.index, v.announced_ns, v.valid_from_ns,
                     v.revoked_ns, v.revoked_index] for v in self.versions.values()]
        runs = []
        for r in self.runs.values():
            last = r.controls[-1] if r.controls else None
            runs.append([r.origin, r.pcr0, r.vkey, r.boot_sha256, r.start_index, r.started_ns,
                         r.last_checkpoint, r.last_size, r.last_root, r.end_index, r.ended_ns,
                         r.summary_sha256,
                         None if last is None else [last[0], last[1].log_index,
                                                    last[1].leaf_sha256, last[1].action,
                                                    last[1].operator]])
        return [SNAPSHOT_VERSION, self.size, self.last_time_ns, versions, runs, self.last_run]

    @classmethod
    def from_snapshot(cls, doc: object, *, signed_history: bool = True) -> LedgerState:
        """The state :meth:`snapshot` wrote; ValueError unless ``doc`` is exactly one."""
        top = _row(doc, 6, "snapshot")
        if top[0] != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot layout {top[0]!r}, this code reads {SNAPSHOT_VERSION}")
        state = cls(size=_int(top[1]), last_time_ns=_opt(top[2], _int),
                    last_run=_opt(top[5], _text), signed_history=signed_history)
        for row in _rows(top[3], "versions"):
            v = _row(row, 7, "version")
            version = Version(_blob(v[0], 48), _blob(v[1], 32), _int(v[2]), _int(v[3]),
                              _int(v[4]), _opt(v[5], _int), _opt(v[6], _int))
            if version.pcr0 in state.versions:
                raise ValueError("a version twice in the snapshot")
            state.versions[version.pcr0] = version
        for row in _rows(top[4], "runs"):
            r = _row(row, 13, "run")
            run = RunInfo(_text(r[0]), _blob(r[1], 48), _text(r[2]), _blob(r[3], 32),
                          _int(r[4]), _int(r[5]), _opt(r[6], _bytes), _int(r[7], low=-1),
                          _bytes(r[8]), _opt(r[9], _int), _opt(r[10], _int),
                          _opt(r[11], lambda x: _blob(x, 32)))
            if r[12] is not None:
                c = _row(r[12], 5, "control")
                run.controls.append((_int(c[0]), ControlEntry(run.origin, _int(c[1]),
                                                              _blob(c[2], 32), _text(c[3]),
                                                              _text(c[4]))))
            if run.origin in state.runs:
                raise ValueError("a run twice in the snapshot")
            state.runs[run.origin] = run
        if state.last_run is not None and state.last_run not in state.runs:
            raise ValueError("the snapshot's last run is not one of its runs")
        return state

    # -- rules -------------------------------------------------------------------------------

    def apply(self, entry: LedgerEntry) -> None:
        """Take ``entry`` if it follows the rules; else raise :class:`LedgerRuleError` and leave
        the state unchanged."""
        self.__dict__.update(self.after(entry).__dict__)

    def replay(self, entry: LedgerEntry) -> None:
        """Take ``entry`` in place, without keeping the state before it: for a replay that is
        abandoned at the first broken rule (:class:`LedgerRuleError`; the state is then
        unusable)."""
        self._apply(entry)

    def after(self, entry: LedgerEntry) -> LedgerState:
        """The state once ``entry`` is taken (this one unchanged); raises
        :class:`LedgerRuleError` when it breaks a rule."""
        trial = copy.deepcopy(self)
        trial._apply(entry)
        return trial

    def _apply(self, entry: LedgerEntry) -> None:
        if entry.index != self.size:
            raise LedgerRuleError(f"entry carries index {entry.index}, the ledger's next is "
                                  f"{self.size}", check="entry_index", expected=self.size,
                                  actual=entry.index)
        if self.last_time_ns is not None and entry.time_ns < self.last_time_ns:
            raise LedgerRuleError(
                f"entry {entry.index} was appended at {entry.time_ns} ns, before the entry "
                f"before it ({self.last_time_ns} ns): the ledger's time never goes back",
                check="entry_time", expected=f">= {self.last_time_ns}", actual=entry.time_ns)
        body = entry.body
        if entry.index == 0 and not (isinstance(body, CommitmentEntry)
                                     and body.valid_from_ns == entry.time_ns):
            raise LedgerRuleError("the first entry must be the genesis commitment, valid from its "
                                  "own append", check="genesis")
        if isinstance(body, CommitmentEntry):
            self._commitment(entry, body)
        elif isinstance(body, RevocationEntry):
            self._revocation(entry, body)
        elif isinstance(body, RunStartEntry):
            self._run_start(entry, body)
        elif isinstance(body, RunCheckpointEntry):
            self._run_checkpoint(entry, body.run_origin, body.checkpoint)
        elif isinstance(body, ArchiveEntry):
            self._archive(entry, body)
        elif isinstance(body, ControlEntry):
            self._control(entry, body)
        else:
            self._run_end(entry, body)
        self.size += 1
        self.last_time_ns = entry.time_ns

    def _commitment(self, entry: LedgerEntry, body: CommitmentEntry) -> None:
        if body.valid_from_ns < entry.time_ns:
            raise LedgerRuleError(
                f"the announcement of {body.pcr0.hex()[:16]}... is valid from "
                f"{body.valid_from_ns} ns, before its own append at {entry.time_ns} ns",
                check="valid_from", expected=f">= {entry.time_ns}", actual=body.valid_from_ns)
        if body.pcr0 in self.versions:
            raise LedgerRuleError(f"PCR0 {body.pcr0.hex()[:16]}... was already announced (entry "
                                  f"{self.versions[body.pcr0].index}); a PCR0 is announced once",
                                  check="announced_twice")
        self.versions[body.pcr0] = Version(body.pcr0, body.commitment_sha256, entry.index,
                                           entry.time_ns, body.valid_from_ns)

    def _revocation(self, entry: LedgerEntry, body: RevocationEntry) -> None:
        version = self.versions.get(body.pcr0)
        short = body.pcr0.hex()[:16]
        if version is None:
            raise LedgerRuleError(f"PCR0 {short}... was never announced; nothing to revoke",
                                  check="revoke_unknown")
        if version.revoked_ns is not None:
            raise LedgerRuleError(f"PCR0 {short}... was already revoked (entry "
                                  f"{version.revoked_index})", check="revoked_twice")
        pending = entry.time_ns < version.valid_from_ns
        if not pending and not self.retired(body.pcr0, entry.time_ns):
            raise LedgerRuleError(
                f"PCR0 {short}... is live since {version.valid_from_ns} ns and no later version "
                "is live: a revocation comes before valid_from, or after a successor is live",
                check="revoke_live")
        version.revoked_ns = entry.time_ns
        version.revoked_index = entry.index

    def _run_start(self, entry: LedgerEntry, body: RunStartEntry) -> None:
        short = body.pcr0.hex()[:16]
        if not self.is_allowed(body.pcr0, entry.time_ns):
            version = self.versions.get(body.pcr0)
            why = ("was never announced" if version is None else
                   "is revoked" if version.revoked_ns is not None and
                   version.revoked_ns <= entry.time_ns else
                   f"is valid only from {version.valid_from_ns} ns")
            raise LedgerRuleError(f"a run of PCR0 {short}... cannot start at {entry.time_ns} ns: "
                                  f"it {why}", check="run_pcr0_allowed")
        if body.run_origin in self.runs:
            raise LedgerRuleError(f"run {body.run_origin} already started (entry "
                                  f"{self.runs[body.run_origin].start_index})",
                                  check="run_started_twice")
        parts = body.run_origin.split("/")
        if len(parts) != 3 or parts[0] != "zcbench" or parts[1] != body.pcr0.hex()[:16]:
            raise LedgerRuleError(f"run origin {body.run_origin!r} does not name PCR0 {short} "
                                  "(zcbench/<first 16 hex of PCR0>/<run id>)",
                                  check="run_origin")
        try:
            verifier = parse_vkey(body.run_vkey)
        except LogFormatError as exc:
            raise LedgerRuleError(f"run {body.run_origin}: {exc}", check="run_vkey") from None
        if verifier.name != body.run_origin:
            raise LedgerRuleError(f"run vkey is named {verifier.name!r}, not the run's origin",
                                  check="run_vkey", expected=body.run_origin,
                                  actual=verifier.name)
        previous = self.previous_checkpoint()
        if body.previous_checkpoint != previous:
            raise LedgerRuleError(
                f"run {body.run_origin} names a previous checkpoint that is not the last one the "
                f"ledger holds of run {self.last_run}: a run is missing or hidden",
                check="run_previous_checkpoint",
                expected=previous.decode(errors="replace") if previous else None,
                actual=(body.previous_checkpoint.decode(errors="replace")
                        if body.previous_checkpoint else None))
        self.runs[body.run_origin] = RunInfo(body.run_origin, body.pcr0, body.run_vkey,
                                             body.boot_sha256, entry.index, entry.time_ns)
        self.last_run = body.run_origin

    def _open_run(self, origin: str) -> RunInfo:
        run = self.runs.get(origin)
        if run is None:
            raise LedgerRuleError(f"run {origin} has no run-start in the ledger",
                                  check="run_unknown")
        if run.ended:
            raise LedgerRuleError(f"run {origin} already ended (entry {run.end_index})",
                                  check="run_ended")
        return run

    def _run_checkpoint(self, entry: LedgerEntry, origin: str, note: bytes) -> RunInfo:
        run = self._open_run(origin)
        checkpoint = (_unverified_run_checkpoint(note, origin) if self.signed_history
                      else read_run_checkpoint(note, run.vkey, origin))
        if checkpoint.size < run.last_size or (
                checkpoint.size == run.last_size and checkpoint.root != run.last_root):
            raise LedgerRuleError(
                f"run {origin}: a checkpoint of size {checkpoint.size} after one of size "
                f"{run.last_size}: the run's log went back or forked", check="run_rollback",
                expected=f">= {run.last_size}", actual=checkpoint.size)
        run.last_checkpoint = note
        run.last_size = checkpoint.size
        run.last_root = checkpoint.root
        return run

    def _run_end(self, entry: LedgerEntry, body: RunEndEntry) -> None:
        run = self._run_checkpoint(entry, body.run_origin, body.final_checkpoint)
        run.end_index = entry.index
        run.ended_ns = entry.time_ns
        run.summary_sha256 = body.summary_sha256

    def _archive(self, entry: LedgerEntry, body: ArchiveEntry) -> None:
        run = self.runs.get(body.run_origin)
        if run is None:
            raise LedgerRuleError(f"an archive of run {body.run_origin}, which has no run-start "
                                  "in the ledger", check="archive_run_unknown")
        keys = [o.key for o in body.objects]
        if len(set(keys)) != len(keys):
            raise LedgerRuleError(f"an archive entry of run {body.run_origin} names an object "
                                  "key twice", check="archive_duplicate_key")
        run.archives.append((entry.index, body))

    def _control(self, entry: LedgerEntry, body: ControlEntry) -> None:
        run = self._open_run(body.run_origin)
        first = not run.controls
        if first != (body.action == "start"):
            raise LedgerRuleError(
                f"run {body.run_origin}: a {body.action} control entry "
                + ("before the run's start record" if first else "after its start record"),
                check="control_order")
        if run.controls and body.log_index <= run.controls[-1][1].log_index:
            raise LedgerRuleError(
                f"run {body.run_origin}: control record {body.log_index} after record "
                f"{run.controls[-1][1].log_index}: the run's control records go forward",
                check="control_order", expected=f"> {run.controls[-1][1].log_index}",
                actual=body.log_index)
        if body.log_index < 0:
            raise LedgerRuleError("a control entry's log index is never negative",
                                  check="control_order")
        run.controls.append((entry.index, body))


def _row(value: object, n: int, what: str) -> list[object]:
    if not isinstance(value, list) or len(value) != n:
        raise ValueError(f"a snapshot's {what} is not a list of {n}")
    return value


def _rows(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"a snapshot's {what} is not a list")
    return value


def _int(value: object, low: int = 0) -> int:
    if type(value) is not int or value < low:
        raise ValueError(f"a snapshot's number is not an integer of at least {low}")
    return value


def _text(value: object) -> str:
    if type(value) is not str:
        raise ValueError("a snapshot's text is not text")
    return value


def _bytes(value: object) -> bytes:
    if type(value) is not bytes:
        raise ValueError("a snapshot's bytes are not bytes")
    return value


def _blob(value: object, n: int) -> bytes:
    if type(value) is not bytes or len(value) != n:
        raise ValueError(f"a snapshot's hash is not {n} bytes")
    return value


def _opt(value: object, read: Callable[[object], T]) -> T | None:
    return None if value is None else read(value)
