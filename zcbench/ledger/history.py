"""A ledger's version history, for surfaces: which PCR0 was live when, and which runs ran
under which PCR0.

:func:`version_history` verifies the ledger (:func:`zcbench.ledger.verify.check_ledger`, read
only) and returns what its entries mean as plain rows: every announced version (announced when,
valid from, revoked when, the periods it was the live one) and every run (its PCR0, started,
ended). Nothing here decides a verdict: ``ok``, ``failed`` and ``message`` are the verifier's,
and the rows are what the verifier replayed (empty when it failed before replaying).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcbench.ledger.policy import TlogPolicy
from zcbench.ledger.rules import LedgerState

__all__ = ["LedgerHistory", "RunRow", "VersionRow", "live_periods", "version_history"]


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One announced version. ``live`` holds the periods ``(from_ns, until_ns)`` in which it
    was the newest allowed version (``until_ns`` None: live still)."""

    pcr0: bytes
    commitment_sha256: bytes
    index: int
    announced_ns: int
    valid_from_ns: int
    revoked_ns: int | None
    live: tuple[tuple[int, int | None], ...]

    @property
    def notice_ns(self) -> int:
        """The notice period: from announcement to ``valid_from``."""
        return self.valid_from_ns - self.announced_ns


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the ledger holds it."""

    origin: str
    pcr0: bytes
    start_index: int
    started_ns: int
    end_index: int | None
    ended_ns: int | None


@dataclass(frozen=True)
class LedgerHistory:
    """A ledger's history (see the module docstring)."""

    folder: str
    origin: str
    ok: bool
    failed: str | None
    message: str
    size: int
    warnings: tuple[str, ...] = ()
    versions: tuple[VersionRow, ...] = ()
    runs: tuple[RunRow, ...] = ()
    _by_origin: dict[str, RunRow] = field(default_factory=dict, repr=False, compare=False)

    def run(self, origin: str | None) -> RunRow | None:
        """The run with this run-log origin, or None when the ledger holds no run-start of it."""
        return None if origin is None else self._by_origin.get(origin)

    def to_json(self) -> dict[str, Any]:
        """The history as JSON (hex for hashes, nanoseconds since the epoch for times)."""
        return {
            "ledger": self.folder, "origin": self.origin, "ok": self.ok, "failed": self.failed,
            "message": self.message, "entries": self.size, "warnings": list(self.warnings),
            "versions": [
                {"pcr0": v.pcr0.hex(), "commitment_sha256": v.commitment_sha256.hex(),
                 "index": v.index, "announced_ns": v.announced_ns,
                 "valid_from_ns": v.valid_from_ns, "revoked_ns": v.revoked_ns,
                 "live": [list(p) for p in v.live]}
                for v in self.versions],
            "runs": [
                {"origin": r.origin, "pcr0": r.pcr0.hex(), "start_index": r.start_index,
                 "started_ns": r.started_ns, "end_index": r.end_index, "ended_ns": r.ended_ns}
                for r in self.runs],
        }


def live_periods(state: LedgerState) -> dict[bytes, list[tuple[int, int | None]]]:
    """For each PCR0, the periods in which it was the live version (the newest allowed):
    the live version changes only at a ``valid_from`` or a revocation."""
    times = sorted({v.valid_from_ns for v in state.versions.values()}
                   | {v.revoked_ns for v in state.versions.values() if v.revoked_ns is not None})
    periods: dict[bytes, list[tuple[int, int | None]]] = {pcr0: [] for pcr0 in state.versions}
    current: tuple[bytes, int] | None = None
    for at in times:
        live = state.live(at)
        pcr0 = None if live is None else live.pcr0
        if current is not None and current[0] == pcr0:
            continue
        if current is not None:
            periods[current[0]].append((current[1], at))
        current = None if pcr0 is None else (pcr0, at)
    if current is not None:
        periods[current[0]].append((current[1], None))
    return periods


def version_history(folder: Path, *, policy: TlogPolicy | None = None) -> LedgerHistory:
    """Verify the ledger in ``folder`` and return its version and run history."""
    from zcbench.ledger.verify import check_ledger

    report = check_ledger(Path(folder), policy=policy)
    state = report.state
    periods = live_periods(state)
    versions = tuple(
        VersionRow(v.pcr0, v.commitment_sha256, v.index, v.announced_ns, v.valid_from_ns,
                   v.revoked_ns, tuple(periods[v.pcr0]))
        for v in sorted(state.versions.values(), key=lambda v: v.index))
    runs = tuple(
        RunRow(r.origin, r.pcr0, r.start_index, r.started_ns, r.end_index, r.ended_ns)
        for r in sorted(state.runs.values(), key=lambda r: r.start_index))
    return LedgerHistory(str(folder), report.origin, report.ok, report.failed, report.message,
                         report.size, tuple(report.warnings), versions, runs,
                         {r.origin: r for r in runs})
