"""Verifying a ledger, for an LP: every entry and checkpoint, the quorum, and what this LP saw.

:func:`check_ledger` reads a ledger folder without changing it and returns a
:class:`LedgerReport`; :func:`verify_ledger` raises :class:`LedgerVerificationError` (carrying
the report) unless it passed. Checked, in order:

1. the storage (the audit log's recovery, read-only): a torn tail is a warning, damage in the
   middle, a rewrite, a fork between checkpoints or a log shorter than a checkpoint is fatal;
2. the ledger key: from the policy's ``log`` line when a policy is given (the file's vkey must
   be the same), else from ``ledger.json`` (trusted on first use, and the report says so);
3. every entry's format and every rule (:mod:`zcbench.ledger.rules`), replayed from genesis;
4. every stored checkpoint: signed by the ledger key, for the ledger's origin, its root the
   root of that many entries;
5. with a policy, the witnessed checkpoint (``checkpoint``): signed by the ledger key, its root
   the entries', and cosigned by the policy's quorum; entries after it are reported unwitnessed;
6. with a known checkpoint (one this LP saved before, or a witness's): signed by the ledger
   key, and the ledger still holds it: no fewer entries (``rollback``), the same root at its
   size (``forked``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcbench.auditlog import LogFormatError, NoteError
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.merkle import CompactRange
from zcbench.auditlog.storage import recover
from zcbench.errors import DataError
from zcbench.ledger._errors import LedgerRuleError, LedgerVerificationError
from zcbench.ledger.entries import LEDGER_ENTRIES, LedgerEntry
from zcbench.ledger.policy import QuorumReport, TlogPolicy, check_quorum
from zcbench.ledger.rules import LedgerState
from zcbench.ledger.store import (
    RECOVERIES_FILE,
    WITNESSED_FILE,
    checkpoint_of,
    host_made_key_warning,
    read_ledger_file,
    read_recoveries,
)

__all__ = ["LedgerReport", "check_ledger", "verify_ledger"]


@dataclass
class LedgerReport:
    """What :func:`check_ledger` found. ``ok`` is the verdict; ``failed`` names the failed check
    (``storage``, ``vkey``, ``rule``, ``checkpoint_signature``, ``checkpoint_root``, ``quorum``,
    ``rollback``, ``forked``) and ``message`` says why."""

    folder: str
    origin: str = ""
    vkey: str = ""
    vkey_source: str = "ledger.json"
    ok: bool = False
    failed: str | None = None
    message: str = ""
    classification: str = ""
    size: int = 0
    checkpoint_size: int = 0
    witnessed_size: int | None = None
    quorum: QuorumReport | None = None
    known_size: int | None = None
    warnings: list[str] = field(default_factory=list)
    state: LedgerState = field(default_factory=LedgerState)
    entries: list[LedgerEntry] = field(default_factory=list)

    def fail(self, check: str, message: str) -> LedgerReport:
        self.ok, self.failed, self.message = False, check, message
        return self

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (``--json``)."""
        return {
            "ledger": self.folder,
            "ok": self.ok,
            "failed": self.failed,
            "message": self.message,
            "origin": self.origin,
            "vkey": self.vkey,
            "vkey_source": self.vkey_source,
            "classification": self.classification,
            "entries": self.size,
            "checkpoint_size": self.checkpoint_size,
            "witnessed_size": self.witnessed_size,
            "quorum": None if self.quorum is None else {
                "met": self.quorum.met, "cosigned": list(self.quorum.cosigned),
                "bad": list(self.quorum.bad)},
            "known_checkpoint_size": self.known_size,
            "warnings": self.warnings,
            "versions": [
                {"pcr0": v.pcr0.hex(), "commitment_sha256": v.commitment_sha256.hex(),
                 "index": v.index, "announced_ns": v.announced_ns,
                 "valid_from_ns": v.valid_from_ns, "revoked_ns": v.revoked_ns}
                for v in self.state.versions.values()],
            "runs": [
                {"origin": r.origin, "pcr0": r.pcr0.hex(), "start_index": r.start_index,
                 "started_ns": r.started_ns, "ended": r.ended, "last_size": r.last_size,
                 "end_index": r.end_index,
                 "archives": [{"index": i, "bucket": a.bucket, "objects": len(a.objects),
                               "manifest_sha256": a.manifest_sha256.hex(),
                               "retain_until_ns": a.retain_until_ns} for i, a in r.archives],
                 "controls": [{"index": i, "log_index": c.log_index,
                               "leaf_sha256": c.leaf_sha256.hex(), "action": c.action,
                               "operator": c.operator} for i, c in r.controls]}
                for r in self.state.runs.values()],
        }


def check_ledger(folder: Path, *, policy: TlogPolicy | None = None,
                 known_checkpoint: bytes | None = None) -> LedgerReport:
    """Verify the ledger in ``folder`` (read-only); see the module docstring."""
    report = LedgerReport(str(folder))
    origin, vkey = read_ledger_file(folder)
    report.origin, report.vkey = origin, vkey
    if policy is not None:
        trusted = [log for log, _ in policy.logs if log.name == origin]
        if not trusted:
            return report.fail("vkey", f"the policy names no log key for {origin}")
        if all(log.vkey != vkey for log in trusted):
            return report.fail("vkey", f"{folder}'s ledger key {vkey} is not the policy's "
                               f"({trusted[0].vkey}): another ledger under the same origin")
        report.vkey_source = "policy"
    else:
        report.warnings.append("no policy: the ledger key is the one ledger.json names "
                               "(trusted on first use); give --policy to hold it to yours")
    host_made = host_made_key_warning(folder)
    if host_made is not None:
        report.warnings.append(host_made)
    log = folder / "log"
    recovery = recover(log, repair=False, codec=LEDGER_ENTRIES)
    report.classification = recovery.classification
    if recovery.classification == "fatal":
        finding = recovery.finding
        return report.fail(finding.classification if finding else "storage", recovery.message)
    if recovery.classification == "torn_tail":
        report.warnings.append(recovery.message)
    walk = LogWalk(log, OsFileSystem(), LEDGER_ENTRIES)
    compact = CompactRange()
    roots = {0: compact.root()}
    try:
        for item in walk.records():
            report.state.apply(item.record)
            report.entries.append(item.record)
            compact.append(item.leaf_hash)
            roots[compact.size] = compact.root()
    except LedgerRuleError as exc:
        return report.fail("rule", f"entry {report.state.size} breaks a rule ({exc.check}): "
                           f"{exc}")
    except LogFormatError as exc:
        return report.fail("corrupt", str(exc))
    report.size = compact.size
    notes, _, _ = walk.checkpoint_notes()
    if not notes:
        return report.fail("checkpoint_signature", "the ledger holds no signed checkpoint")
    for note, offset in notes:
        try:
            checkpoint = checkpoint_of(note, vkey)
        except (NoteError, LogFormatError, LedgerVerificationError) as exc:
            return report.fail("checkpoint_signature", f"the checkpoint at byte {offset} of "
                               f"checkpoints.zlog is not signed by the ledger key: {exc}")
        if roots.get(checkpoint.size) != checkpoint.root:
            return report.fail("checkpoint_root", f"the checkpoint of size {checkpoint.size} "
                               "does not match the entries")
        report.checkpoint_size = max(report.checkpoint_size, checkpoint.size)
    if report.checkpoint_size < report.size:
        report.warnings.append(f"entries {report.checkpoint_size}..{report.size - 1} are not "
                               "checkpointed yet (written before a crash; the next open "
                               "completes or rolls them back)")
    try:
        recoveries = read_recoveries(folder)
    except DataError as exc:  # the host's record, not the ledger: what it says is lost
        recoveries = []
        report.warnings.append(f"the record of crash recoveries is unreadable: {exc}")
    for r in recoveries:
        listed_entries = r.get("entries")
        entries: list[Any] = listed_entries if isinstance(listed_entries, list) else []
        listed = ", ".join(f"{e.get('index')} ({e.get('type')})" for e in entries
                           if isinstance(e, dict))
        verb = {"completed": "completed", "rolled_back": "rolled back",
                "discarded": "discarded (signed, never written)"}.get(
            str(r.get("action")), f"settled ({r.get('action')!r})")
        report.warnings.append(f"an unsigned tail after a crash (entries {listed}) was {verb} "
                               f"on open: {r.get('reason')} ({RECOVERIES_FILE})")
    if policy is not None:
        failed = _check_witnessed(report, folder, policy, roots)
        if failed is not None:
            return failed
    if known_checkpoint is not None:
        try:
            known = checkpoint_of(known_checkpoint, vkey)
        except (NoteError, LogFormatError, LedgerVerificationError) as exc:
            return report.fail("checkpoint_signature", f"the known checkpoint is not signed by "
                               f"the ledger key: {exc}")
        report.known_size = known.size
        if known.size > report.size:
            return report.fail("rollback", f"this LP saw {known.size} entries before; the ledger "
                               f"holds {report.size}: it was rolled back")
        if roots[known.size] != known.root:
            return report.fail("forked", f"this LP saw another root for size {known.size}: the "
                               "ledger forked (two histories under one key)")
    report.ok = True
    report.message = "intact" if not report.warnings else "intact, with warnings"
    return report


def _check_witnessed(report: LedgerReport, folder: Path, policy: TlogPolicy,
                     roots: dict[int, bytes]) -> LedgerReport | None:
    path = folder / WITNESSED_FILE
    if policy.quorum is None:
        return None
    if not path.is_file():
        return report.fail("quorum", "no witnessed checkpoint: the ledger was never cosigned "
                           "by the policy's witnesses")
    note = path.read_bytes()
    try:
        witnessed = checkpoint_of(note, report.vkey)
    except (NoteError, LogFormatError, LedgerVerificationError) as exc:
        return report.fail("checkpoint_signature", f"the witnessed checkpoint is not signed by "
                           f"the ledger key: {exc}")
    if roots.get(witnessed.size) != witnessed.root:
        check = "rollback" if witnessed.size > report.size else "forked"
        return report.fail(check, f"the witnessed checkpoint of size {witnessed.size} is not "
                           "the ledger's: the entries were rolled back or forked")
    report.witnessed_size = witnessed.size
    try:
        report.quorum = check_quorum(note, policy)
    except LogFormatError as exc:
        return report.fail("quorum", f"the witnessed checkpoint is malformed: {exc}")
    if not report.quorum.met:
        return report.fail("quorum", f"the witnessed checkpoint lacks the policy's quorum "
                           f"(cosigned by: {', '.join(report.quorum.cosigned) or 'none'}"
                           + (f"; bad cosignatures: {', '.join(report.quorum.bad)}"
                              if report.quorum.bad else "") + ")")
    if witnessed.size < report.size:
        report.warnings.append(f"entries {witnessed.size}..{report.size - 1} are not witnessed "
                               "yet")
    return None


def verify_ledger(folder: Path, *, policy: TlogPolicy | None = None,
                  known_checkpoint: bytes | None = None) -> LedgerReport:
    """:func:`check_ledger`, raising :class:`LedgerVerificationError` unless it passed."""
    report = check_ledger(folder, policy=policy, known_checkpoint=known_checkpoint)
    if not report.ok:
        error = LedgerVerificationError(f"ledger {folder} failed verification "
                                        f"({report.failed}): {report.message}",
                                        check=report.failed or "ledger")
        error.report = report
        raise error
    return report

