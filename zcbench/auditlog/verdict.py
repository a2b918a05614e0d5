"""A log check's outcome: the closed set of classifications and the frozen :class:`LogReport`.

``check_log`` (verify.py) and ``check_slice`` (slice.py) both return a :class:`LogReport`;
:class:`LogVerificationError` carries one when a caller asked to raise. The classifications
(DESIGN.md, "Cross-part contracts")::

    exit 0   intact            every record under the newest signed checkpoint
             torn_tail         as intact, plus bad bytes cut-able at the very end (warning)
             uncommitted_tail  as intact, plus whole records no checkpoint covers (warning)
    exit 1   corrupt           bytes that are not records, in the middle; no log at all;
                               or no signed checkpoint, so nothing is proven
             rewritten         records that do not hash to a signed root
             reordered         records or segments out of sequence (deleted, inserted, swapped)
             forked            two signed checkpoints that cannot both be true
             rollback          fewer records than a signed checkpoint commits to
             bad_signature     a checkpoint the boot-attested key did not sign
             untrusted_boot    no boot record, or its document fails attestation
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from zcbench.errors import VerificationError

__all__ = [
    "CLASSIFICATIONS",
    "OK_CLASSIFICATIONS",
    "Classification",
    "LogReport",
    "LogVerificationError",
]

Classification = Literal[
    "intact", "torn_tail", "uncommitted_tail", "corrupt", "rewritten", "reordered", "forked",
    "rollback", "bad_signature", "untrusted_boot",
]
CLASSIFICATIONS: Final[tuple[str, ...]] = (
    "intact", "torn_tail", "uncommitted_tail", "corrupt", "rewritten", "reordered", "forked",
    "rollback", "bad_signature", "untrusted_boot",
)
OK_CLASSIFICATIONS: Final = frozenset({"intact", "torn_tail", "uncommitted_tail"})


@dataclass(frozen=True)
class LogReport:
    """The outcome of a log check. ``entries`` is how many records the newest verified
    checkpoint covers; ``records`` how many whole records were read."""

    verified: bool
    classification: Classification
    entries: int
    records: int
    checkpoints: int
    first_bad_index: int | None
    message: str
    bad_path: str | None = None
    bad_offset: int | None = None
    origin: str | None = None
    root: str | None = None
    latest_checkpoint: bytes | None = None
    public_key: bytes | None = None
    simulated: bool = False
    warnings: tuple[str, ...] = ()
    kind: Literal["log", "slice"] = "log"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """The report as text lines, the same in the CLI and the widgets: verdict, counts,
        where the first damage is (only when there is any), SIMULATED when it is."""
        lines = [f"{self.classification.upper()}: {self.message}",
                 f"  entries {self.entries}, records {self.records}, checkpoints "
                 f"{self.checkpoints}"]
        if self.first_bad_index is not None:
            lines.append(f"  first bad record: index {self.first_bad_index}")
        if self.bad_path is not None:
            at = f":{self.bad_offset}" if self.bad_offset is not None else ""
            lines.append(f"  at {self.bad_path}{at}")
        if self.simulated:
            lines.append("  SIMULATED (development CA)")
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        return {
            "verified": self.verified,
            "classification": self.classification,
            "entries": self.entries,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "first_bad_index": self.first_bad_index,
            "bad_path": self.bad_path,
            "bad_offset": self.bad_offset,
            "origin": self.origin,
            "root": self.root,
            "simulated": self.simulated,
            "warnings": list(self.warnings),
            "message": self.message,
            "kind": self.kind,
            **dict(self.extra),
        }


class LogVerificationError(VerificationError):
    """A log failed verification; ``report`` holds the details."""

    def __init__(self, report: LogReport) -> None:
        super().__init__(
            report.message,
            check=f"log_{report.classification}",
            expected="intact",
            actual=report.classification,
        )
        self.report = report
