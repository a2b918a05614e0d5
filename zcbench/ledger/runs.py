"""Runs in the ledger: the host's side of the enclave's gate, and a run's log held to the ledger.

The ledger's rules for a run are kept inside the enclave (:mod:`zcbench.enclave.ledger`): it
holds the ledger key, checks what the host delivers, appends the run's entries and signs the
ledger's checkpoints. The host, untrusted, only carries:

* :class:`LedgerRunHook` is what a live run (``run_live(..., ledger=hook)``) calls.
  :meth:`~LedgerRunHook.gate` right after boot: the ledger key's sealed blob (the enclave gets
  it released by the key broker through the host's relay), the enclave's sealed state from its
  last run when the ledger folder keeps one (``enclave-state``), every entry the ledger's
  newest checkpoint covers (after that state) and that checkpoint; the enclave answers with
  its run-start and the checkpoint it signed, which the hook stores
  (:meth:`Ledger.append_signed`), gets witnessed when a policy is given, and hands back
  cosigned. The enclave serves only once it accepted
  that; any refusal raises :class:`ServeRefused` and the run stops before its first batch.
  While the run goes, :meth:`~LedgerRunHook.due` says when to ask for a ``run-checkpoint`` (the
  enclave keeps its own minimum interval too); :meth:`~LedgerRunHook.appended` stores each one
  and a background thread submits the new ledger checkpoint to the policy's witnesses (409
  retry); :meth:`~LedgerRunHook.control_reply` stores the ``control`` entry the enclave appends
  with each control record it logs. :meth:`~LedgerRunHook.end` asks for the ``run-end`` (the
  final checkpoint and the SHA-256 of ``summary.json``) and witnesses it; a replay, which
  writes no summary, ends with :meth:`~LedgerRunHook.final_checkpoint` (its last
  ``run-checkpoint``) instead.
* :func:`check_run` holds a run's log to the ledger for an LP (``zcbench log verify RUN
  --ledger DIR``): its run-start entry (boot document, vkey, PCR0), its PCR0 allowed when it
  started, and its newest checkpoint equal to the ledger's run-end (or, for a run without one,
  no smaller than the ledger's last checkpoint of it).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from zcbench.auditlog.checkpoint import log_verifier, parse_checkpoint_note
from zcbench.channel import MAX_LEDGER_BATCH, Message
from zcbench.ledger._errors import ServeRefused
from zcbench.ledger.key import KEY_FILE, SealedLedgerKey
from zcbench.ledger.policy import TlogPolicy
from zcbench.ledger.rules import LedgerState
from zcbench.ledger.store import ENCLAVE_STATE_FILE, Appended, Ledger

__all__ = ["LedgerRunHook", "RunLedgerReport", "check_run", "check_run_at", "resumed_at"]

Exchange = Callable[[Message], Message]
"""Send one message to the enclave and return its reply (key requests relayed in between)."""


_ENDORSEMENTS: Final = ("ledger_announce", "ledger_revoke", "ledger_archive")


def _expect(reply: Message, kind: str, what: str) -> Message:
    if reply.type == "error":
        raise ServeRefused(f"the enclave refused {what}: {reply['reason']}",
                           check=str(reply["code"]))
    if reply.type != kind:
        raise ServeRefused(f"the enclave answered {reply.type} to {what}", check="serve_gate")
    return reply


def resumed_at(reply: Message, ledger_dir: Path) -> int:
    """The index from which to deliver entries after ``ledger_resume``: the size the sealed
    state covers, or 0 from an enclave built before sealed states (it does not know the
    message: the whole ledger, as it always took); any refusal raises :class:`ServeRefused`."""
    if reply.type == "error" and reply["code"] == "unknown_type":
        return 0
    size: int = _expect(reply, "ledger_ack", f"the sealed state ({ENCLAVE_STATE_FILE} in "
                        f"{ledger_dir}; removed, the next run delivers the whole ledger)")["size"]
    return size


class _Witnessing:
    """Submits the ledger's newest checkpoint to the witnesses in a thread of its own, as
    checkpoints are made; a run never waits for a witness."""

    def __init__(self, ledger_dir: Path, policy: TlogPolicy) -> None:
        self.ledger_dir, self.policy = ledger_dir, policy
        self.reports: list[Any] = []
        self.errors: list[str] = []
        self._due = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="zcbench-witnessing",
                                        daemon=True)
        self._thread.start()

    def kick(self) -> None:
        self._due.set()

    def _loop(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stop:
                return
            self.witness()

    def witness(self) -> Any:
        from zcbench.errors import ZcbenchError
        from zcbench.ledger.witness_client import witness_ledger

        try:
            with Ledger.open(self.ledger_dir) as ledger:
                report = witness_ledger(ledger, self.policy)
        except ZcbenchError as exc:
            self.errors.append(str(exc))
            return None
        self.reports.append(report)
        return report

    def close(self) -> None:
        self._stop = True
        self._due.set()
        self._thread.join(timeout=60)


@dataclass
class LedgerRunHook:
    """The host's side of one live run's ledger (see the module docstring)."""

    ledger_dir: Path
    run_dir: Path
    policy: TlogPolicy | None = None
    checkpoint_interval_s: float = 10.0
    monotonic: Callable[[], float] = time.monotonic
    origin: str = ""
    appended: list[str] = field(default_factory=list)
    _last_at: float = float("-inf")
    _ledger: Ledger | None = None
    _witnessing: _Witnessing | None = None

    def _witnessed(self) -> bool:
        return self.policy is not None and self.policy.quorum is not None

    def gate(self, exchange: Exchange, run_origin: str) -> None:
        """Deliver the ledger to the enclave and pass its gate (see the module docstring);
        raises :class:`ServeRefused` (the run then stops before serving)."""
        self.origin = run_origin
        self._ledger = Ledger.open(self.ledger_dir)
        try:
            self._gate(exchange)
        except BaseException:
            self.close()
            raise
        self._last_at = self.monotonic()

    def _gate(self, exchange: Exchange) -> None:
        ledger = self._ledger
        assert ledger is not None
        ledger.sync_key_policy()  # the broker's release policy is the ledger's allowed set
        try:
            blob = (self.ledger_dir / KEY_FILE).read_bytes()
        except OSError as exc:
            raise ServeRefused(f"the sealed ledger key cannot be read ({exc.strerror})",
                               check="ledger_key_release") from None
        key_id = ledger.key.key_id if isinstance(ledger.key, SealedLedgerKey) else ""
        reply = _expect(exchange(Message("ledger_open", {
            "origin": ledger.origin, "key_blob": blob, "key_id": key_id})),
            "ledger_key", "the ledger key")
        if reply["vkey"] != ledger.vkey:
            raise ServeRefused("the enclave holds another key than this ledger's",
                               check="ledger_vkey", expected=ledger.vkey, actual=reply["vkey"])
        note = ledger.latest_checkpoint()
        size = parse_checkpoint_note(note).size
        first = 0
        sealed = ledger.enclave_state()
        if sealed is not None:  # the enclave takes only the entries after its sealed state
            first = resumed_at(exchange(Message("ledger_resume", {"state": sealed})),
                               self.ledger_dir)
            if not 0 <= first <= size:
                raise ServeRefused(f"the enclave's sealed state covers {first} entries, the "
                                   f"ledger's checkpoint {size}: remove {ENCLAVE_STATE_FILE} "
                                   "to deliver the whole ledger", check="ledger_state")
        covered = ledger.entry_bytes_from(first)[:size - first]  # no whole read for a tail
        for at in range(0, len(covered), MAX_LEDGER_BATCH):
            _expect(exchange(Message("ledger_entries", {
                "entries": list(covered[at:at + MAX_LEDGER_BATCH])})), "ledger_ack",
                "the ledger's entries")
        reply = _expect(exchange(Message("ledger_start", {"checkpoint": note})),
                        "ledger_appended", "the run-start")
        self._store(reply)  # the run-start, and the enclave's sealed state with it
        cosigned = reply["checkpoint"]
        if self._witnessed():
            assert self.policy is not None
            self._witnessing = _Witnessing(self.ledger_dir, self.policy)
            report = self._witnessing.witness()
            if report is not None:
                cosigned = report.cosigned
        _expect(exchange(Message("ledger_cosigned", {"checkpoint": cosigned})),
                "ledger_serving", "the cosigned run-start")

    def _store(self, reply: Message, checkpoint_field: str = "checkpoint") -> bool:
        from zcbench.ledger.entries import decode_entry

        entry, checkpoint = reply.fields.get("entry"), reply.fields.get(checkpoint_field)
        if entry is None or checkpoint is None:
            return False
        assert self._ledger is not None
        appended = self._ledger.append_signed(entry, checkpoint)
        self.appended.append(decode_entry(appended.data).type)
        sealed = reply.fields.get("state")
        if sealed is not None:  # after the entry is durable: a state never ahead of the ledger
            self._ledger.store_enclave_state(sealed)
        return True

    def due(self) -> bool:
        """Whether to ask the enclave for a run-checkpoint now (at most every interval)."""
        if self._ledger is None or self.monotonic() - self._last_at < self.checkpoint_interval_s:
            return False
        self._last_at = self.monotonic()
        return True

    def appended_reply(self, reply: Message) -> None:
        """Store the enclave's answer to a run-checkpoint request and have it witnessed."""
        if reply.type == "ledger_appended" and self._store(reply) and self._witnessing:
            self._witnessing.kick()

    def control_reply(self, reply: Message) -> None:
        """Store the control entry the enclave appended with a control record (its
        ``note_logged`` reply) and have it witnessed; a reply without one is refused, since
        every control record of a run with a ledger has its entry."""
        if not self._store(reply, "ledger_checkpoint"):
            raise ServeRefused("the enclave logged a control record without its ledger entry",
                               check="control_entry")
        if self._witnessing:
            self._witnessing.kick()

    def endorse(self, exchange: Exchange, request: Message) -> Appended:
        """Have the enclave append an endorsement (``ledger_announce`` or ``ledger_revoke``,
        by the live version) or an archive entry (``ledger_archive``), store it (the key
        broker's policy follows) and have it witnessed; returns it as stored. Raises
        :class:`ServeRefused` when the enclave refuses."""
        if request.type not in _ENDORSEMENTS:
            raise ValueError(f"not an endorsement: {request.type}")
        reply = _expect(exchange(request), "ledger_appended", "the endorsement")
        entry, checkpoint = reply.fields.get("entry"), reply.fields.get("checkpoint")
        if entry is None or checkpoint is None or self._ledger is None:
            raise ServeRefused("the enclave appended no endorsement", check="serve_gate")
        appended = self._ledger.append_signed(entry, checkpoint)
        self.appended.append(appended.entry.body.type)
        if self._witnessing:
            self._witnessing.kick()
        return appended

    def final_checkpoint(self, exchange: Exchange) -> None:
        """The last run-checkpoint of a run that has no run-end (a replay writes no summary):
        the run's log as it ends is in the ledger, and the next run's run-start names it."""
        if self._ledger is None:
            return
        try:
            self.appended_reply(_expect(exchange(Message("ledger_final", {})),
                                        "ledger_appended", "the final run-checkpoint"))
        finally:
            self.close()

    def end(self, exchange: Exchange) -> None:
        """The run-end with the final checkpoint and the summary's hash, witnessed."""
        if self._ledger is None:
            return
        summary = self.run_dir / "summary.json"
        try:
            if summary.is_file():
                reply = _expect(exchange(Message("ledger_end", {
                    "summary_sha256": hashlib.sha256(summary.read_bytes()).digest()})),
                    "ledger_appended", "the run-end")
                self._store(reply)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the witnessing thread after a last submission, close the ledger."""
        if self._witnessing is not None:
            self._witnessing.close()
            self._witnessing.witness()
            self._witnessing = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    @property
    def witnessing_errors(self) -> list[str]:
        return [] if self._witnessing is None else list(self._witnessing.errors)


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
    from zcbench.auditlog.opening import boot_record_of
    from zcbench.ledger.policy import load_policy

    policy = load_policy(policy_path) if policy_path is not None else None
    return check_run(ledger_dir, origin=log_report.origin,
                     boot_document=boot_record_of(log_path),
                     latest_checkpoint=log_report.latest_checkpoint,
                     public_key=log_report.public_key, policy=policy)
