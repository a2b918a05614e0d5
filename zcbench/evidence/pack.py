"""Writing an evidence pack: ``index.html`` for a person, every table as CSV and Parquet for a
program, ``files.csv`` naming every source file with its SHA-256 and the exact command that
re-verifies it, ``pack.json`` (what the pack was built from) and ``SHA256SUMS`` over the lot.

The pack folder is written beside and renamed into place, so an interrupted pack leaves no
half-written folder under the name asked for; an existing non-empty folder is refused. Commands
name the run and build folders as given, shell-quoted; they run from where the pack was built.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from zcbench.errors import UsageError, ZcbenchError
from zcbench.evidence.clock import ClockSource, HostClock, judge
from zcbench.evidence.collect import RTS25_LIMITS_NS, EvidenceTables, RunFacts, collect_evidence

__all__ = [
    "PACK_SCHEMA",
    "SUMS_FILE",
    "EvidencePack",
    "build_pack",
    "clock_distribution",
    "files_table",
    "write_tables",
]

PACK_SCHEMA: Final = "zcbench.evidence/1"
SUMS_FILE: Final = "SHA256SUMS"
_TITLES: Final = {
    "runs": "Runs and their signed logs",
    "algorithms": "Algorithm inventory (each version by PCR0, with its commitment)",
    "orders": "Every order's lifecycle, tied to its PCR0 and OUT log index (RTS 6 Art. 12)",
    "controls": "Risk controls in force (RTS 6 Art. 15)",
    "control_changes": "Changes to the controls: who, when, old, new; kill switch and "
                       "re-enables (signed control records)",
    "control_flags": "Flags: anything contradicting the signed controls (a limit change not "
                     "made through the logged command)",
    "control_events": "Control events: rejects by control, kill switch, throttles",
    "clock": "Clock evidence: each record's time source and error bound (RTS 25)",
    "performance": "Verified tear sheet: performance recomputed from the signed log and the "
                   "fills it covers (Rule 204-2)",
    "performance_backtest": "The backtest over the same logged batches: the signed signals "
                            "filled by the backtest's model named in fill_model (venue: the "
                            "closed loop's paper venue and risk limits, as zcbench backtest "
                            "fills a strategy that takes the feedback context, so its PnL is "
                            "the live paper run's; next_event: the next event after the "
                            "batch, for a strategy without it, or a log without the bar "
                            "volume the venue needs), the same figures (beside the verified "
                            "tear sheet)",
    "archive": "Archive locations (WORM, by VersionId)",
    "ledger_versions": "Algorithm inventory in the ledger (every PCR0 announced, valid from, "
                       "revoked, its runs)",
    "ledger_archives": "Archive entries in the ledger (bucket, key, VersionId, SHA-256)",
    "ledger_controls": "Control entries in the ledger (each control record's log index, leaf "
                       "hash, action and operator, signed by the enclave)",
    "files": "Every file, its SHA-256 and the command that re-verifies it",
}
_HTML_ROWS: Final = 500


@dataclass(frozen=True)
class EvidencePack:
    """A pack written: its folder, the runs, the commands an examiner runs."""

    out_dir: Path
    runs: tuple[RunFacts, ...]
    commands: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "runs": [r.run_id for r in self.runs],
                "commands": list(self.commands)}


def _q(path: Path | str) -> str:
    return shlex.quote(str(path))


def _trust_arg(trust: str | Path) -> str:
    return f"--trust {_q(trust)}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_commands(tables: EvidenceTables, run: RunFacts) -> dict[str, str]:
    frame = tables.tables["archive"].filter(pl.col("run_id") == run.run_id)
    commands = {}
    for bucket, endpoint in frame.select("bucket", "endpoint").unique(maintain_order=True).rows():
        commands[bucket] = (f"zcbench archive verify {_q(run.run_dir)} --s3 {_q(endpoint)} "
                            f"--bucket {_q(bucket)}"
                            + (f" --ledger {_q(tables.ledger)}" if tables.ledger is not None
                               else ""))
    return commands


def _run_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, never through a symbolic link, sorted."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
        found += [here / n for n in names if (here / n).is_file() and not (here / n).is_symlink()]
    return sorted(found)


def files_table(tables: EvidenceTables, *, trust: str | Path, out_dir: Path) -> pl.DataFrame:
    """``files``: every source file of every run and build, its hash, the command that
    re-verifies it (each command runs from where the pack was built)."""
    rows = []
    pack_check = f"zcbench evidence verify {_q(out_dir)}"
    for run in tables.runs:
        log_check = f"zcbench log verify {_q(run.run_dir)} {_trust_arg(trust)}"
        boot_check = log_check
        if run.commitment is not None:
            boot_check = (f"zcbench verify attestation {_q(run.run_dir / 'boot.cbor')} --at doc "
                          f"{_trust_arg(trust)} --commitment {_q(run.commitment)}")
        archived = list(_archive_commands(tables, run).values()) or [pack_check]
        what: dict[str, tuple[str, str]] = {
            "boot.cbor": ("boot attestation document: PCR0 and the log key", boot_check),
            "journal.jsonl": ("orders, fills and rejects, each naming its OUT log index",
                              pack_check),
            "summary.json": ("how the run ended; its build folder", pack_check),
        }
        for path in _run_files(run.run_dir):
            rel = path.relative_to(run.run_dir).as_posix()
            if rel.startswith("log/"):
                kind, command = "signed log: segments and checkpoints", log_check
            elif rel == "attestation.cbor" and run.commitment is not None:
                kind = "final attestation: this code, alive, with this log"
                command = (f"zcbench verify attestation {_q(path)} --at doc {_trust_arg(trust)} "
                           f"--commitment {_q(run.commitment)} --log {_q(run.run_dir)}")
            elif rel == "archive.json":  # one row per bucket it was archived to
                for command in archived[:-1]:
                    rows.append({"run_id": run.run_id, "file": str(path),
                                 "what": "archive manifest: bucket, key, VersionId, SHA-256",
                                 "sha256": _sha256(path), "size": path.stat().st_size,
                                 "verify_command": command})
                kind, command = "archive manifest: bucket, key, VersionId, SHA-256", archived[-1]
            elif rel in what:
                kind, command = what[rel]
            else:
                kind, command = "run file (diagnostics)", pack_check
            rows.append({"run_id": run.run_id, "file": str(path), "what": kind,
                         "sha256": _sha256(path), "size": path.stat().st_size,
                         "verify_command": command})
        if run.commitment is not None:
            rows.append({"run_id": run.run_id, "file": str(run.commitment),
                         "what": "measurement commitment: the PCRs the boot document must carry",
                         "sha256": _sha256(run.commitment),
                         "size": run.commitment.stat().st_size, "verify_command": boot_check})
    if tables.ledger is not None:
        ledger_check = f"zcbench ledger verify {_q(tables.ledger)}"
        for path in _run_files(tables.ledger):
            rel = path.relative_to(tables.ledger).as_posix()
            if rel in (".lock", "ledger-key.sealed"):
                continue  # the writer's lock; the sealed key is no record
            rows.append({"run_id": "", "file": str(path),
                         "what": "the strategy's ledger: versions, runs, archive entries",
                         "sha256": _sha256(path), "size": path.stat().st_size,
                         "verify_command": ledger_check})
    schema = {"run_id": pl.String, "file": pl.String, "what": pl.String, "sha256": pl.String,
              "size": pl.Int64, "verify_command": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)


def write_tables(folder: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Each table as ``<name>.csv`` and ``<name>.parquet`` in ``folder``."""
    for name, frame in tables.items():
        frame.write_csv(folder / f"{name}.csv")
        frame.write_parquet(folder / f"{name}.parquet", statistics=False)


def _cell(value: object) -> str:
    if value is None:
        return '<td class="null">—</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table_html(name: str, frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>"
                   for row in frame.head(_HTML_ROWS).iter_rows())
    more = (f"<p>{frame.height - _HTML_ROWS} more rows in the CSV and Parquet files.</p>"
            if frame.height > _HTML_ROWS else "")
    return (f'<section id="{name}"><h2>{html.escape(_TITLES[name])}</h2>'
            f'<p>{frame.height} rows: <a href="{name}.csv">{name}.csv</a>, '
            f'<a href="{name}.parquet">{name}.parquet</a></p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}</section>")


def clock_distribution(frame: pl.DataFrame, rts25: str) -> dict[str, Any]:
    """The records' clock bounds against the RTS 25 limit chosen: how many records, how many
    carry a bound, how many of those are within, and the bounds' p50, p99 and max (nearest
    rank, ns; None without any bound)."""
    limit = RTS25_LIMITS_NS[rts25]
    bounded = frame.filter(pl.col("bound_ns").is_not_null())
    q = bounded["bound_ns"].sort()

    def rank(p: float) -> int | None:
        return int(q[max(0, -(-int(p * q.len()) // 100) - 1)]) if q.len() else None

    return {"rts25": rts25, "limit_ns": limit, "records": frame.height,
            "bounded": bounded.height, "within": bounded.filter(pl.col("within_limit")).height,
            "unbounded": frame.height - bounded.height, "p50_ns": rank(50), "p99_ns": rank(99),
            "max_ns": int(q[-1]) if q.len() else None}


def _clock_summary(frame: pl.DataFrame, rts25: str) -> str:
    d = clock_distribution(frame, rts25)
    text = (f"RTS 25 limit chosen: {rts25} ({d['limit_ns']:,} ns). {d['records']} records; "
            f"{d['bounded']} carry an error bound, {d['within']} of them within the limit; "
            f"{d['unbounded']} carry none and are flagged.")
    if d["bounded"]:
        text += (f" Bounds: p50 {d['p50_ns']:,} ns, p99 {d['p99_ns']:,} ns, max "
                 f"{d['max_ns']:,} ns.")
    return f"<p>{html.escape(text)}</p>"


def _index_html(tables: dict[str, pl.DataFrame], runs: Sequence[RunFacts], rts25: str,
                commands: Sequence[str], generated_at: str, clock_now: dict[str, Any]) -> str:
    simulated = any(r.simulated for r in runs)
    banner = ('<p class="sim">SIMULATED: these runs chain to the development CA, not to AWS '
              "Nitro's root. A stand-in, not confidential.</p>" if simulated else "")
    failed = [r for r in runs if not r.verified]
    verdict = ("".join(f'<p class="bad">{html.escape(r.run_id)}: the signed log does not '
                       f"verify ({html.escape(r.verdict)}); its orders are not tied to a "
                       "PCR0.</p>" for r in failed))
    verdict += "".join(f'<p class="bad">{html.escape(run_id)}: {html.escape(caveat)}.</p>'
                       for run_id, caveat in tables["runs"].select("run_id", "caveats").rows()
                       if caveat)
    nav = " · ".join(f'<a href="#{n}">{html.escape(n)}</a>' for n in _TITLES)
    bound = clock_now["bound_ns"]
    host = "<p>" + html.escape(
        f"The clock of the machine that built this pack: {clock_now['source']}, "
        f"{'synchronised' if clock_now['synchronised'] else 'NOT synchronised'}, bound "
        f"{f'{bound:,} ns' if bound is not None else 'none'} ({clock_now['detail']}); "
        f"{'within' if clock_now['within_limit'] else 'NOT within'} the limit.") + "</p>"
    sections = "".join(
        _table_html(name, tables[name])
        + (_clock_summary(tables[name], rts25) + host if name == "clock" else "")
        for name in _TITLES)
    cmds = "".join(f"<li><code>{html.escape(c)}</code></li>" for c in commands)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zcbench evidence pack</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:100em}}table{{border-collapse:collapse;
font-size:.85em}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
td.null{{color:#999}}.sim{{background:#ffe9a8;padding:.5em}}.bad{{background:#fbb;
padding:.5em}}code{{font-size:.9em}}</style></head><body>
<h1>Evidence pack</h1>
<p>Built {html.escape(generated_at)} from {len(runs)} run(s) by zcbench; every figure is
recomputed from the run folders. Re-verify everything with the commands below (from the folder
the pack was built in); <code>sha256sum -c {SUMS_FILE}</code> in this folder checks the pack's
own files.</p>
{banner}{verdict}
<h2>Re-verify</h2><ul>{cmds}</ul>
<p>{nav}</p>
{sections}
</body></html>
"""


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.iterdir(), folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _clock_at_build(clock: ClockSource, limit_ns: int) -> dict[str, Any]:
    try:
        reading = clock.read()
    except ZcbenchError as exc:
        return {"source": clock.name, "bound_ns": None, "synchronised": False,
                "detail": str(exc), "within_limit": False, "flag": "no reading"}
    within, flag = judge(reading, limit_ns)
    return {"source": reading.source, "bound_ns": reading.bound_ns,
            "synchronised": reading.synchronised, "detail": reading.detail,
            "within_limit": within, "flag": flag}


def build_pack(
    run_dirs: Sequence[Path], out_dir: Path, *, trust: str | Path = "aws", rts25: str = "algo",
    generated_at: str, clock: ClockSource | None = None, capital_ticks: int | None = None,
    ledger: Path | None = None,
) -> EvidencePack:
    """Collect the evidence of ``run_dirs`` and write the pack into ``out_dir``; ``clock``
    (default the host's) is read once and reported as the building machine's clock."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UsageError(f"{out_dir} exists and is not an empty folder: give a new --out")
    for run_dir in run_dirs:
        if out_dir.resolve().is_relative_to(Path(run_dir).resolve()):
            raise UsageError(f"--out {out_dir} is inside the run folder {run_dir}: the pack "
                             "would change the run it describes; write it elsewhere")
    evidence = collect_evidence(run_dirs, trust=trust, rts25=rts25, capital_ticks=capital_ticks,
                                ledger=ledger)
    tables = dict(evidence.tables)
    tables["files"] = files_table(evidence, trust=trust, out_dir=out_dir)
    commands = tuple(dict.fromkeys(tables["files"]["verify_command"].to_list()))
    clock_now = _clock_at_build(clock or HostClock(), RTS25_LIMITS_NS[rts25])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        write_tables(staging, tables)
        (staging / "index.html").write_text(
            _index_html(tables, evidence.runs, rts25, commands, generated_at, clock_now))
        (staging / "pack.json").write_text(json.dumps({
            "schema": PACK_SCHEMA, "generated_at": generated_at,
            "runs": [str(r.run_dir) for r in evidence.runs],
            "trust": str(trust), "rts25": rts25, "capital_ticks": capital_ticks,
            "tables": sorted(tables), "commands": list(commands), "clock_at_build": clock_now,
            "clock_distribution": clock_distribution(tables["clock"], rts25),
            "ledger": None if ledger is None else str(ledger),
        }, indent=1, sort_keys=True) + "\n")
        names = sorted(p.name for p in staging.iterdir())
        (staging / SUMS_FILE).write_text(
            "".join(f"{_sha256(staging / n)}  {n}\n" for n in names))
        _fsync_tree(staging)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EvidencePack(out_dir, evidence.runs, commands)
