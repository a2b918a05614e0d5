"""Re-verifying an evidence pack: its own files against ``SHA256SUMS``, and every table rebuilt
from the run folders it names (their logs verified again, journals reread, archive manifests
reread) and compared with the pack's CSV and Parquet files. A pack whose run folders changed, or
whose tables were edited, fails naming the table.

:func:`check_pack` returns a frozen :class:`PackReport`; :func:`verify_pack` raises
:class:`PackVerificationError` unless it is clean.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from zcbench.errors import DataError, UsageError, VerificationError
from zcbench.evidence.collect import RTS25_LIMITS_NS, collect_evidence
from zcbench.evidence.pack import PACK_SCHEMA, SUMS_FILE, clock_distribution, files_table

__all__ = ["PackReport", "PackVerificationError", "check_pack", "verify_pack"]

_MAX_JSON: Final = 1 << 20
_PACK_KEYS: Final = frozenset({"schema", "generated_at", "runs", "trust", "rts25", "tables",
                               "commands", "clock_at_build", "capital_ticks",
                               "clock_distribution"})


@dataclass(frozen=True, slots=True)
class PackReport:
    """What re-verifying a pack found: ``problems`` is empty when every check passed."""

    pack: Path
    runs: tuple[str, ...]
    tables: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def verified(self) -> bool:
        return not self.problems

    def summary_lines(self) -> list[str]:
        head = "VERIFIED" if self.verified else "FAILED"
        lines = [f"{head}: evidence pack {self.pack}: {len(self.tables)} tables rebuilt from "
                 f"{len(self.runs)} run(s)"]
        return lines + [f"  {p}" for p in self.problems]

    def to_json(self) -> dict[str, Any]:
        return {"pack": str(self.pack), "runs": list(self.runs), "tables": list(self.tables),
                "verified": self.verified, "problems": list(self.problems)}


class PackVerificationError(VerificationError):
    """The pack did not re-verify; ``report`` holds every problem."""

    def __init__(self, report: PackReport) -> None:
        super().__init__(f"evidence pack {report.pack} does not verify: {report.problems[0]}",
                         check="evidence_pack")
        self.report = report


def _pack_json(pack: Path) -> dict[str, Any]:
    path = pack / "pack.json"
    if not path.is_file():
        raise UsageError(f"{pack} is not an evidence pack (no pack.json): build one with "
                         "'zcbench evidence RUN_DIR... --out DIR'")
    raw = path.read_bytes()[:_MAX_JSON + 1]
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or set(data) - {"ledger"} != _PACK_KEYS:
        raise DataError(f"{path}: expected exactly the keys {sorted(_PACK_KEYS)} (and ledger)")
    if data.get("ledger") is not None and not isinstance(data["ledger"], str):
        raise DataError(f"{path}: ledger must be a folder name or null")
    if data["schema"] != PACK_SCHEMA:
        raise DataError(f"{path}: schema {data['schema']!r}, expected {PACK_SCHEMA!r}")
    if (not isinstance(data["runs"], list) or not data["runs"]
            or not all(isinstance(r, str) for r in data["runs"])):
        raise DataError(f"{path}: runs must be a non-empty list of run folders")
    if not isinstance(data["tables"], list) or not all(isinstance(t, str) for t in data["tables"]):
        raise DataError(f"{path}: tables must be a list of names")
    if data["rts25"] not in RTS25_LIMITS_NS or not isinstance(data["trust"], str):
        raise DataError(f"{path}: rts25 or trust is not one zcbench writes")
    return data


def _sums(pack: Path) -> list[str]:
    problems = []
    path = pack / SUMS_FILE
    if not path.is_file():
        return [f"{SUMS_FILE} is missing"]
    listed = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or "/" in name or len(digest) != 64:
            problems.append(f"{SUMS_FILE} line {number} is not '<sha256>  <name>'")
            continue
        listed.add(name)
        target = pack / name
        if not target.is_file():
            problems.append(f"{name}: listed in {SUMS_FILE} but missing")
        elif hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: its SHA-256 is not the one {SUMS_FILE} lists")
    extra = sorted(p.name for p in pack.iterdir() if p.name not in listed | {SUMS_FILE})
    problems += [f"{name}: in the pack but not in {SUMS_FILE}" for name in extra]
    return problems


def check_pack(pack: Path) -> PackReport:
    """Re-verify the pack in ``pack`` (see the module docstring)."""
    pack = Path(pack)
    data = _pack_json(pack)
    trust: str | Path = data["trust"] if data["trust"] in ("aws", "dev") else Path(data["trust"])
    problems = _sums(pack)
    runs = [Path(r) for r in data["runs"]]
    missing = [str(r) for r in runs if not r.is_dir()]
    if missing:
        problems += [f"run folder {m} is gone: the tables cannot be rebuilt" for m in missing]
        return PackReport(pack, tuple(data["runs"]), (), tuple(problems))
    capital = data["capital_ticks"]
    if capital is not None and (type(capital) is not int or capital <= 0):
        raise DataError(f"{pack / 'pack.json'}: capital_ticks must be a positive integer")
    ledger = Path(data["ledger"]) if data.get("ledger") is not None else None
    if ledger is not None and not ledger.is_dir():
        problems.append(f"the ledger {ledger} is gone: the tables cannot be rebuilt")
        return PackReport(pack, tuple(data["runs"]), (), tuple(problems))
    try:
        evidence = collect_evidence(runs, trust=trust, rts25=data["rts25"], capital_ticks=capital,
                                    ledger=ledger)
    except VerificationError as exc:
        problems.append(str(exc))
        return PackReport(pack, tuple(data["runs"]), (), tuple(problems))
    tables = dict(evidence.tables)
    tables["files"] = files_table(evidence, trust=trust, out_dir=pack)
    if sorted(tables) != sorted(data["tables"]):
        problems.append(f"the pack lists tables {sorted(data['tables'])}, a rebuild makes "
                        f"{sorted(tables)}")
    if clock_distribution(tables["clock"], data["rts25"]) != data["clock_distribution"]:
        problems.append("pack.json's clock distribution differs from a rebuild from the run "
                        "folders")
    for run in evidence.runs:
        if not run.verified:
            problems.append(f"run {run.run_id}: its signed log does not verify ({run.verdict})")
    for name, frame in sorted(tables.items()):
        csv = pack / f"{name}.csv"
        if not csv.is_file():
            problems.append(f"{name}.csv is missing")
            continue
        buffer = io.BytesIO()
        frame.write_csv(buffer)
        if buffer.getvalue() != csv.read_bytes():
            problems.append(f"{name}.csv differs from a rebuild from the run folders")
        parquet = pack / f"{name}.parquet"
        try:
            same = parquet.is_file() and pl.read_parquet(parquet).equals(frame)
        except (OSError, pl.exceptions.PolarsError):  # unreadable Parquet: a finding
            same = False
        if not same:
            problems.append(f"{name}.parquet differs from a rebuild from the run folders")
    return PackReport(pack, tuple(data["runs"]), tuple(sorted(tables)), tuple(problems))


def verify_pack(pack: Path) -> PackReport:
    """:func:`check_pack`, raising :class:`PackVerificationError` unless it verified."""
    report = check_pack(pack)
    if not report.verified:
        raise PackVerificationError(report)
    return report
