"""Runs in the ledger: the run's hook, the serve gate, and a run's log held to the ledger.

* :class:`LedgerRunHook` is what a live run calls: :meth:`~LedgerRunHook.booted` once the boot
  document verified (it appends ``run-start`` with the boot document's hash, the run log's
  origin and vkey, the PCR0 and the previous run's last checkpoint, gets it witnessed when a
  policy is given, then passes the gate), :meth:`~LedgerRunHook.progress` as batches go (a
  ``run-checkpoint`` at most every ``checkpoint_interval_s``), :meth:`~LedgerRunHook.control`
  for each control record of the run's limits (a ``control`` entry: the record's log index and
  leaf hash, the action and the operator), :meth:`~LedgerRunHook.end`
  after the run (``run-end`` with the final checkpoint and the SHA-256 of ``summary.json``).
  The run log's checkpoints are read from the run folder the host writes; the ledger key is
  asked for as the run's PCR0, so a build the ledger does not allow now cannot even write.
* :func:`check_serve` is the gate: a PCR0 serves only when the ledger allows it now and holds
  its run's ``run-start`` (cosigned by the policy's quorum when a policy is configured); else
  :class:`ServeRefused`, and the run stops before its first batch.
* :func:`check_run` holds a run's log to the ledger for an LP (``zcbench log verify RUN
  --ledger DIR``): its run-start entry (boot document, vkey, PCR0), its PCR0 allowed when it
  started, and its newest checkpoint equal to the ledger's run-end (or, for a run without one,
  no smaller than the ledger's last checkpoint of it).

In the local stand-in the hook and the gate run in the host's process, around the enclave; on
Nitro the same calls belong inside the enclave's boot path (the enclave holds the ledger key).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcbench.auditlog._frames import CHECKPOINT_FILE, HEADER_SIZE
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.checkpoint import log_verifier, parse_checkpoint_note
from zcbench.auditlog.merkle import leaf_hash
from zcbench.ledger._errors import ServeRefused
from zcbench.ledger.entries import ControlEntry, RunCheckpointEntry, RunEndEntry, RunStartEntry
from zcbench.ledger.policy import TlogPolicy, check_quorum
from zcbench.ledger.rules import LedgerState
from zcbench.ledger.store import Ledger, checkpoint_of

__all__ = ["LedgerRunHook", "RunLedgerReport", "check_run", "check_run_at", "check_serve"]


def check_serve(ledger: Ledger, pcr0: bytes, run_origin: str, *, at_ns: int,
                policy: TlogPolicy | None = None) -> None:
    """Raise :class:`ServeRefused` unless the enclave of ``pcr0`` may serve run ``run_origin``
    at ``at_ns`` (see the module docstring)."""
    state = ledger.state
    short = pcr0.hex()[:16]
    version = state.versions.get(pcr0)
    if version is None:
        raise ServeRefused(f"PCR0 {short}... is not announced in the ledger {ledger.origin}: "
                           "it may not serve ('zcbench ledger announce')", check="serve_pcr0")
    if not version.allowed_at(at_ns):
        why = ("is revoked" if version.revoked_ns is not None and version.revoked_ns <= at_ns
               else f"is valid only from {version.valid_from_ns} ns")
        raise ServeRefused(f"PCR0 {short}... {why}: it may not serve", check="serve_pcr0")
    run = state.runs.get(run_origin)
    if run is None or run.pcr0 != pcr0:
        raise ServeRefused(f"run {run_origin} has no run-start of PCR0 {short}... in the "
                           "ledger: it may not serve", check="serve_run_start")
    if policy is not None and policy.quorum is not None:
        note = ledger.witnessed_checkpoint()
        witnessed = checkpoint_of(note, ledger.vkey) if note is not None else None
        if note is None or witnessed is None or witnessed.size <= run.start_index or not (
                check_quorum(note, policy).met):
            raise ServeRefused(f"the run-start of {run_origin} is not cosigned by the policy's "
                               "quorum: it may not serve", check="serve_quorum")


def _newest_run_checkpoint(run_dir: Path) -> bytes | None:
    notes, _, _ = LogWalk(run_dir / "log", OsFileSystem()).checkpoint_notes()
    return notes[-1][0] if notes else None


class _CheckpointTail:
    """The run's checkpoint file read from where the last read stopped: a long run's file is
    never read whole again. Whole frames only (a frame being written is left for next time);
    what it returns is checked where it is used (the rules verify every run checkpoint)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = HEADER_SIZE
        self.newest: bytes | None = None

    def read(self) -> bytes | None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return self.newest
        pos = 0
        while pos + 4 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "big")
            end = pos + 4 + length + 32
            if length == 0 or end > len(data):
                break
            payload = data[pos + 4:pos + 4 + length]
            if leaf_hash(payload) != data[end - 32:end]:
                break
            self.newest, pos = payload, end
        self.offset += pos
        return self.newest


@dataclass
class LedgerRunHook:
    """The ledger side of one live run (see the module docstring)."""

    ledger_dir: Path
    run_dir: Path
    policy: TlogPolicy | None = None
    checkpoint_interval_s: float = 10.0
    clock: Callable[[], int] = time.time_ns
    monotonic: Callable[[], float] = time.monotonic
    pcr0: bytes = b""
    origin: str = ""
    appended: list[str] = field(default_factory=list)
    _last_size: int = -1
    _last_at: float = float("-inf")
    _tail: _CheckpointTail | None = None

    def _witness(self, ledger: Ledger) -> None:
        if self.policy is not None and self.policy.quorum is not None:
            from zcbench.ledger.witness_client import witness_ledger

            witness_ledger(ledger, self.policy)

    def booted(self, handle: Any) -> None:
        """Append run-start, witness it, pass the gate (raises :class:`ServeRefused` or
        :class:`~zcbench.ledger.LedgerKeyRefused`: the run then stops before serving)."""
        from zcbench.nitro import parse_document

        document = (self.run_dir / "boot.cbor").read_bytes()
        parsed = parse_document(document)
        pcr0 = parsed.pcrs.get(0)
        if pcr0 is None or parsed.public_key is None:
            raise ServeRefused("the boot document has no PCR0 or no log key", check="serve_boot")
        self.pcr0, self.origin = bytes(pcr0), str(handle.origin)
        vkey = log_verifier(bytes(parsed.public_key), self.origin).vkey
        now = self.clock()
        with Ledger.open(self.ledger_dir) as ledger:
            ledger.append(RunStartEntry(self.pcr0, self.origin, vkey,
                                        hashlib.sha256(document).digest(),
                                        ledger.state.previous_checkpoint()),
                          pcr0=self.pcr0, at_ns=now)
            self.appended.append("run-start")
            self._witness(ledger)
            check_serve(ledger, self.pcr0, self.origin, at_ns=self.clock(), policy=self.policy)

    def progress(self, _progress: object = None) -> None:
        """A run-checkpoint of the newest run checkpoint, at most every interval."""
        if not self.origin or self.monotonic() - self._last_at < self.checkpoint_interval_s:
            return
        if self._tail is None:
            self._tail = _CheckpointTail(self.run_dir / "log" / CHECKPOINT_FILE)
        note = self._tail.read()
        if note is None or parse_checkpoint_note(note).size <= self._last_size:
            return
        with Ledger.open(self.ledger_dir) as ledger:
            ledger.append(RunCheckpointEntry(self.origin, note), pcr0=self.pcr0,
                          at_ns=self.clock())
        self._last_at = self.monotonic()
        self._last_size = parse_checkpoint_note(note).size
        self.appended.append("run-checkpoint")

    def control(self, log_index: int, leaf: bytes, action: str, operator: str) -> None:
        """Append a ``control`` entry for the run's control record at ``log_index``."""
        if not self.origin:
            return
        with Ledger.open(self.ledger_dir) as ledger:
            ledger.append(ControlEntry(self.origin, log_index, bytes(leaf), action, operator),
                          pcr0=self.pcr0, at_ns=self.clock())
        self.appended.append("control")

    def after(self, first: Callable[[Any], None]) -> Callable[[Any], None]:
        """A progress callback calling ``first``, then :meth:`progress`."""

        def both(progress: Any) -> None:
            first(progress)
            self.progress(progress)

        return both

    def end(self) -> None:
        """Append run-end with the run's final checkpoint and its summary's hash."""
        if not self.origin:
            return
        note = _newest_run_checkpoint(self.run_dir)
        summary = self.run_dir / "summary.json"
        if note is None or not summary.is_file():
            return  # nothing durable to end with: the run-start stays open, as after a crash
        with Ledger.open(self.ledger_dir) as ledger:
            ledger.append(RunEndEntry(self.origin, note,
                                      hashlib.sha256(summary.read_bytes()).digest()),
                          pcr0=self.pcr0, at_ns=self.clock())
            self.appended.append("run-end")
            self._witness(ledger)


@dataclass
class RunLedgerReport:
    """A run held to the ledger: ``ok``, and why not (``failed``, ``message``)."""

    ok: bool
    failed: str | None
    message: str
    run_origin: str | None = None
    start_index: int | None = None
    end_index: int | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "message": self.message,
                "run_origin": self.run_origin, "start_index": self.start_index,
                "end_index": self.end_index, "warnings": self.warnings}


def check_run(ledger_dir: Path, *, origin: str | None, boot_document: bytes,
              latest_checkpoint: bytes | None, public_key: bytes | None,
              policy: TlogPolicy | None = None) -> RunLedgerReport:
    """Hold a verified run log (its origin, boot document, newest checkpoint and log key, from
    :func:`zcbench.auditlog.check_log`) to the ledger in ``ledger_dir``."""
    from zcbench.ledger.verify import check_ledger
    from zcbench.nitro import parse_document

    ledger_report = check_ledger(ledger_dir, policy=policy)
    if not ledger_report.ok:
        return RunLedgerReport(False, "ledger", f"the ledger failed ({ledger_report.failed}): "
                               f"{ledger_report.message}", origin)
    state: LedgerState = ledger_report.state
    run = state.runs.get(origin or "")
    if origin is None or run is None:
        return RunLedgerReport(False, "run_start", f"run {origin} has no run-start in the "
                               f"ledger {ledger_report.origin}: a run the ledger does not hold",
                               origin)
    report = RunLedgerReport(False, None, "", origin, run.start_index, run.end_index,
                             list(ledger_report.warnings))
    pcr0 = parse_document(boot_document).pcrs.get(0)
    if run.boot_sha256 != hashlib.sha256(boot_document).digest():
        return _fail(report, "boot_document", "the run's boot document is not the one its "
                     "run-start names")
    if pcr0 is None or bytes(pcr0) != run.pcr0:
        return _fail(report, "pcr0", "the run's PCR0 is not the one its run-start names")
    if public_key is None or log_verifier(public_key, origin).vkey != run.vkey:
        return _fail(report, "run_vkey", "the run's log key is not the one its run-start names")
    version = state.versions[run.pcr0]
    if not version.allowed_at(run.started_ns):
        return _fail(report, "pcr0_allowed", "the run's PCR0 was not allowed when it started")
    if latest_checkpoint is None:
        return _fail(report, "checkpoint", "the run's log has no verified checkpoint")
    mine = parse_checkpoint_note(latest_checkpoint)
    if run.ended:
        if (mine.size, mine.root) != (run.last_size, run.last_root):
            return _fail(report, "run_end", f"the run's log ends at size {mine.size}, its "
                         f"run-end in the ledger at size {run.last_size}: the log shown is not "
                         "the one the ledger holds")
    else:
        report.warnings.append("the ledger holds no run-end of this run (still running, or "
                               "the host stopped before writing it)")
        if mine.size < run.last_size:
            return _fail(report, "rollback", f"the run's log ends at size {mine.size}, below "
                         f"the ledger's checkpoint of size {run.last_size}")
        if mine.size == run.last_size and mine.root != run.last_root:
            return _fail(report, "forked", "the run's log and the ledger disagree at size "
                         f"{mine.size}")
    report.ok = True
    report.message = (f"run {origin} is in the ledger (entries {run.start_index}"
                      + (f"..{run.end_index}" if run.end_index is not None else "") + ")")
    return report


def _fail(report: RunLedgerReport, check: str, message: str) -> RunLedgerReport:
    report.ok, report.failed, report.message = False, check, message
    return report



def check_run_at(ledger_dir: Path, log_path: Path, log_report: Any,
                 policy_path: Path | None = None) -> RunLedgerReport:
    """:func:`check_run` for the log at ``log_path`` whose :func:`zcbench.auditlog.check_log`
    report (verified) is ``log_report``; ``policy_path`` a tlog-policy file."""
    from zcbench.auditlog.boot import boot_record_of
    from zcbench.ledger.policy import load_policy

    policy = load_policy(policy_path) if policy_path is not None else None
    return check_run(ledger_dir, origin=log_report.origin,
                     boot_document=boot_record_of(log_path),
                     latest_checkpoint=log_report.latest_checkpoint,
                     public_key=log_report.public_key, policy=policy)
