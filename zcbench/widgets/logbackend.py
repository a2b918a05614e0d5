"""What the log inspector asks of the audit log, and the real implementation over it.

:class:`LogBackend` is the small interface the panel draws from (tests use an in-memory fake);
:class:`AuditLogBackend` is :mod:`zcbench.auditlog`'s public API: ``check_log`` under the boot
verifier that holds the log to its build's PCRs (``boot_verifier_for``, the same as the CLI),
``to_polars``, ``export_slice`` and a replay through ``zcbench.host.replay.replay_log``. It
decides nothing itself: verdicts, headlines and caveats come from the library's reports.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

__all__ = ["AuditLogBackend", "LogBackend", "LogReportLike", "ReplaySummary"]


class LogReportLike(Protocol):
    """What the inspector reads of a log verification report (the audit log's ``LogReport``)."""

    @property
    def verified(self) -> bool: ...
    @property
    def classification(self) -> str: ...
    @property
    def entries(self) -> int: ...
    @property
    def checkpoints(self) -> int: ...
    @property
    def first_bad_index(self) -> int | None: ...
    @property
    def message(self) -> str: ...
    @property
    def warnings(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class ReplaySummary:
    """A replay's outcome: OUT records compared, how many matched, the first that did not.

    ``headline`` and ``warnings`` are the replay report's own (``REPLAY MATCHES``, ``REPLAY
    DIFFERS``, ``REPLAY INCONCLUSIVE``, ``REPLAY REFUSED`` and its caveats), so the panel says
    what the CLI says; without a headline it is derived from the counts.
    """

    compared: int
    matched: int
    first_mismatch_index: int | None
    message: str
    headline: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def mismatched(self) -> int:
        return self.compared - self.matched

    @property
    def verdict_headline(self) -> str:
        if self.headline is not None:
            return self.headline
        ok = self.mismatched == 0 and self.compared > 0
        return "REPLAY MATCHES" if ok else "REPLAY DIFFERS"


class LogBackend(Protocol):
    """The audit log operations the inspector uses.

    Each raises a :class:`~zcbench.errors.ZcbenchError` with a readable message when it cannot
    do what was asked (a missing folder, a path that is no log, replay not available).
    """

    def verify(
        self, path: pathlib.Path, *, on_progress: Callable[[int, int], None]
    ) -> LogReportLike: ...

    def records(self, path: pathlib.Path) -> pl.DataFrame: ...

    def export(
        self, path: pathlib.Path, out_dir: pathlib.Path, *, start: int, stop: int
    ) -> pathlib.Path: ...

    def replay(self, path: pathlib.Path, *, start: int, stop: int) -> ReplaySummary: ...


class AuditLogBackend:
    """The real backend over :mod:`zcbench.auditlog`, under the root named by ``trust``
    (``"dev"`` for local runs). ``commitment`` holds the boot document to a commitment's PCRs;
    by default, to those of the build the run's ``summary.json`` names (as the CLI does)."""

    def __init__(
        self, *, trust: str | pathlib.Path = "aws", commitment: pathlib.Path | None = None
    ) -> None:
        self.trust = trust
        self.commitment = commitment

    def _boot_verifier(self, path: pathlib.Path) -> Any:
        from zcbench.auditlog import boot_verifier_for

        return boot_verifier_for(path, commitment=self.commitment)

    def verify(
        self, path: pathlib.Path, *, on_progress: Callable[[int, int], None]
    ) -> LogReportLike:
        from zcbench.auditlog import check_log

        # check_log reports progress as lines or a terminal bar, not to a callback: the
        # panel's bar shows start and end.
        on_progress(0, 1)
        report = check_log(
            path, trust=self.trust, boot_verifier=self._boot_verifier(path), progress=False
        )
        on_progress(1, 1)
        return report

    def records(self, path: pathlib.Path) -> pl.DataFrame:
        from zcbench.auditlog import to_polars

        return to_polars(path)  # refuses a path that is no log (UsageError)

    def export(
        self, path: pathlib.Path, out_dir: pathlib.Path, *, start: int, stop: int
    ) -> pathlib.Path:
        from zcbench.auditlog import export_slice

        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"slice-{start}-{stop}.cbor"
        summary = export_slice(
            path, out, index_range=(start, stop), trust=self.trust,
            boot_verifier=self._boot_verifier(path),
        )
        return summary.path

    def replay(self, path: pathlib.Path, *, start: int, stop: int) -> ReplaySummary:
        from zcbench.host.replay import replay_log

        report = replay_log(
            path,
            trust=self.trust,
            boot_verifier=self._boot_verifier(path),
            index_range=(start, stop),
            progress=False,
        )
        problems = []
        if report.missing:
            problems.append(f"{len(report.missing)} batches never answered")
        if report.extra:
            problems.append(f"{len(report.extra)} unexpected answers")
        message = report.message + (f" ({'; '.join(problems)})" if problems else "")
        return ReplaySummary(
            compared=report.batches,
            matched=report.matched,
            first_mismatch_index=report.first_mismatch_index,
            message=message,
            headline=report.headline,
            warnings=report.warnings,
        )
