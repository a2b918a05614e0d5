"""The facts of an evidence pack, gathered from run folders through the public readers: the log
verified (``zcbench.auditlog.check_log``, held to the build's commitment), the journal read
(``zcbench.host.execution.read_journal``), every order tied to the OUT record that caused it and
to the PCR0 that signed it, the controls and their events, the records' times against the RTS 25
limit, and the archive manifest; with the strategy's ledger (verified first: a ledger that does
not verify is refused), the algorithm inventory as the ledger holds it (every PCR0 announced,
when, valid from, revoked, and the runs under it), its ``archive`` entries and its ``control``
entries (each a run's control record: its log index and leaf hash, action, operator).

Every table is a polars DataFrame in a fixed column order and a fixed row order, so the same run
folders always give the same bytes (``zcbench evidence verify`` rebuilds and compares them).
Nothing here reads a clock: the pack's own time is given by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from zcbench.errors import DataError, UsageError, VerificationError, ZcbenchError

__all__ = [
    "RTS25_LIMITS_NS",
    "TABLE_NAMES",
    "EvidenceTables",
    "RunFacts",
    "collect_evidence",
    "iso_ns",
]

RTS25_LIMITS_NS: Final[dict[str, int]] = {
    "hft": 100_000,          # 100 µs: high-frequency algorithmic trading
    "algo": 1_000_000,       # 1 ms: other algorithmic trading
    "voice": 1_000_000_000,  # 1 s: voice trading
}
"""RTS 25's maximum divergence from UTC, by activity (secondary source: shared reference)."""

_LIMIT_KEYS: Final = ("limits", "risk_limits")


def iso_ns(time_ns: int) -> str:
    """``time_ns`` (ns since the Unix epoch) as ISO 8601 UTC with nanoseconds."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns:09d}Z"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunFacts:
    """What the pack says about one run, and the paths its re-verify commands name."""

    run_dir: Path
    run_id: str
    origin: str
    pcr0: str
    verdict: str
    verified: bool
    simulated: bool
    commitment: Path | None
    build: Path | None
    attestation: Path | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvidenceTables:
    """The pack's tables, by name (each written as CSV and Parquet), and the runs behind them."""

    runs: tuple[RunFacts, ...]
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    ledger: Path | None = None


_SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "runs": {"run_id": pl.String, "origin": pl.String, "pcr0": pl.String,
             "log_verdict": pl.String, "verified": pl.Boolean, "entries": pl.Int64,
             "checkpoints": pl.Int64, "root": pl.String, "status": pl.String,
             "simulated": pl.Boolean, "run_dir": pl.String, "caveats": pl.String},
    "algorithms": {"pcr0": pl.String, "pcr1": pl.String, "pcr2": pl.String,
                   "strategy": pl.String, "strategy_sha256": pl.String,
                   "commitment_sha256": pl.String, "first_seen_utc": pl.String,
                   "runs": pl.String},
    "orders": {"run_id": pl.String, "pcr0": pl.String, "time_ns": pl.Int64,
               "time_utc": pl.String, "seq": pl.Int64, "out_log_index": pl.Int64,
               "event": pl.String, "symbol": pl.String, "side": pl.String,
               "quantity": pl.Int64, "limit_price_ticks": pl.Int64, "price_ticks": pl.Int64,
               "reason": pl.String, "position_after": pl.Int64, "out_leaf_hash": pl.String,
               "in_signed_log": pl.Boolean, "signal_run_id": pl.String},
    "controls": {"run_id": pl.String, "control": pl.String, "setting": pl.String,
                 "source": pl.String},
    "control_changes": {"run_id": pl.String, "log_index": pl.Int64, "time_utc": pl.String,
                        "action": pl.String, "operator": pl.String, "reason": pl.String,
                        "control": pl.String, "old": pl.Int64, "new": pl.Int64},
    "control_flags": {"run_id": pl.String, "problem": pl.String},
    "control_events": {"run_id": pl.String, "time_utc": pl.String, "seq": pl.Int64,
                       "out_log_index": pl.Int64, "control": pl.String, "symbol": pl.String,
                       "reason": pl.String, "limit_value": pl.Int64,
                       "attempted_value": pl.Int64},
    "clock": {"run_id": pl.String, "log_index": pl.Int64, "kind": pl.String,
              "time_utc": pl.String, "source": pl.String, "bound_ns": pl.Int64,
              "limit_ns": pl.Int64, "within_limit": pl.Boolean, "flag": pl.String},
    "performance": {"run_id": pl.String, "capital_ticks": pl.Int64, "pnl_ticks": pl.Int64,
                    "summary_pnl_ticks": pl.Int64, "pnl_matches_summary": pl.Boolean,
                    "total_return": pl.Float64, "volatility": pl.Float64, "sharpe": pl.Float64,
                    "sharpe_per_batch": pl.Float64, "sortino": pl.Float64,
                    "max_drawdown": pl.Float64, "max_drawdown_duration_s": pl.Float64,
                    "exposure": pl.Float64, "turnover": pl.Float64, "n_batches": pl.Int64,
                    "n_fills": pl.Int64, "periods_per_year": pl.Float64, "trials": pl.Int64,
                    "deflated_sharpe": pl.Float64, "currency": pl.String,
                    "money_scale": pl.Int64},
    "performance_backtest": {
        "run_id": pl.String, "capital_ticks": pl.Int64, "pnl_ticks": pl.Int64,
        "total_return": pl.Float64, "volatility": pl.Float64, "sharpe": pl.Float64,
        "sharpe_per_batch": pl.Float64, "sortino": pl.Float64, "max_drawdown": pl.Float64,
        "max_drawdown_duration_s": pl.Float64, "exposure": pl.Float64, "turnover": pl.Float64,
        "n_batches": pl.Int64, "n_fills": pl.Int64, "periods_per_year": pl.Float64,
        "trials": pl.Int64, "deflated_sharpe": pl.Float64, "currency": pl.String,
        "money_scale": pl.Int64, "fill_model": pl.String},
    "archive": {"run_id": pl.String, "path": pl.String, "bucket": pl.String,
                "endpoint": pl.String, "key": pl.String, "version_id": pl.String,
                "sha256": pl.String, "size": pl.Int64, "mode": pl.String,
                "retain_until": pl.String, "archived_at": pl.String},
    "ledger_versions": {"pcr0": pl.String, "commitment_sha256": pl.String,
                        "entry_index": pl.Int64, "announced_utc": pl.String,
                        "valid_from_utc": pl.String, "revoked_utc": pl.String,
                        "revocation_index": pl.Int64, "runs": pl.String},
    "ledger_archives": {"run_origin": pl.String, "entry_index": pl.Int64, "bucket": pl.String,
                        "key": pl.String, "version_id": pl.String, "sha256": pl.String,
                        "retain_until_utc": pl.String, "manifest_sha256": pl.String},
    "ledger_controls": {"run_origin": pl.String, "entry_index": pl.Int64,
                        "appended_utc": pl.String, "log_index": pl.Int64,
                        "leaf_sha256": pl.String, "action": pl.String, "operator": pl.String},
}
TABLE_NAMES: Final = tuple(_SCHEMAS)


def _frame(name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_SCHEMAS[name], orient="row") if rows else pl.DataFrame(
        schema=_SCHEMAS[name])


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file() and not (run_dir / "journal.jsonl").is_file():
        return {"status": "unknown (no summary.json, no journal.jsonl)"}
    if not path.is_file():
        from zcbench.host.execution import read_journal

        header = read_journal(run_dir / "journal.jsonl").header
        return {**header, "status": "unfinished"}
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} is not a JSON object")
    return data


def _row_of_signal(row: dict[str, Any], signals: list[Any]) -> bool:
    """Whether a journal row is of one of its OUT record's ``signals``. A row whose ClOrdID
    names its signal (batch seq, position: :func:`zcbench.venue.signal_of_cl_ord_id`) is held
    to that signal: the same symbol and side, the order's quantity and limit price on its order
    and reject rows, at most the order's quantity on a report (a partial fill, a cancel of the
    rest). A row without one (the built-in fills) matches any signal of the record exactly."""
    from zcbench.venue import signal_of_cl_ord_id

    named = signal_of_cl_ord_id(row.get("cl_ord_id") or "")
    if named is None:
        return any(s.symbol == row["symbol"] and s.side == row["side"]
                   and s.quantity == row["quantity"] and s.limit_price == row["limit_price_ticks"]
                   for s in signals)
    _, seq, position = named
    if seq != row["seq"] or position >= len(signals):
        return False
    signal = signals[position]
    if signal.symbol != row["symbol"] or signal.side != row["side"]:
        return False
    if row["event"] in ("order", "reject"):
        return bool(signal.quantity == row["quantity"]
                    and signal.limit_price == row["limit_price_ticks"])
    return bool(0 <= row["quantity"] <= signal.quantity)


def _carried_signals(run_dir: Path, facts: RunFacts, entries: int, journal: pl.DataFrame,
                     trust: str | Path, folders: Sequence[Path],
                     ) -> tuple[dict[str, tuple[int, bytes, list[Any]] | None], str]:
    """The signed signals of the orders a continuing run carried in (its journal's rows of
    ClOrdIDs another run's id names), by ClOrdID: the OUT record (log index, leaf hash,
    signals) of the batch the ClOrdID names in the verified log of the run it names, found
    through this run's verified boot link (:func:`zcbench.host.restart.chain_folders`), and
    only for an order the run's signed start state names as carried (None: not proven); and
    the caveat, when a predecessor's folder is not at hand ("" when none)."""
    from zcbench.auditlog.opening import start_state_of
    from zcbench.host.restart import chain_folders, out_record
    from zcbench.strategy import decode_signals
    from zcbench.venue import signal_of_cl_ord_id

    own = facts.origin.rpartition("/")[2]
    named = {cid: signal_of_cl_ord_id(cid) for cid in
             (journal.get_column("cl_ord_id").unique().to_list() if journal.height else [])}
    foreign = {cid: n for cid, n in named.items() if n is not None and n[0] != own}
    if not foreign:
        return {}, ""
    start = start_state_of(run_dir)
    listed = {o.cl_ord_id: (o.batch, o.signal) for o in
              ((*start.open_orders, *start.orders) if start is not None else ())}
    chain, short = chain_folders(run_dir, facts.origin, entries, trust=trust,
                                 wanted={n[0] for n in foreign.values()}, folders=folders)
    out: dict[str, tuple[int, bytes, list[Any]] | None] = {}
    for cid, (run_id, seq, position) in sorted(foreign.items()):
        out[cid] = None
        if listed.get(cid) != (seq, position) or run_id not in chain:
            continue
        where, size = chain[run_id]
        found = out_record(where, seq, size)
        if found is not None:
            out[cid] = (found[0].index, found[1], decode_signals(found[0].body))
    caveat = ""
    missing = sorted({n[0] for n in foreign.values()} - set(chain))
    if missing:
        caveat = (f"orders carried from {', '.join(missing)} are not checked against a "
                  f"signed log (in_signed_log false): {short}")
    return out, caveat


def _signals_by_index(run_dir: Path) -> dict[int, tuple[int | None, bytes, list[Any]]]:
    from zcbench.auditlog import RecordFilter
    from zcbench.auditlog.frame import iter_records
    from zcbench.strategy import decode_signals

    out: dict[int, tuple[int | None, bytes, list[Any]]] = {}
    for record, leaf in iter_records(run_dir, RecordFilter(kinds=frozenset({"out"}))):
        if record.kind == "out":
            out[record.index] = (record.seq, leaf, decode_signals(record.body))
    return out


def _run_facts(run_dir: Path, trust: str | Path) -> tuple[RunFacts, Any, dict[str, Any]]:
    from zcbench.auditlog import boot_verifier_for, check_log, locate_log
    from zcbench.auditlog.boot import commitment_of_run

    where = locate_log(run_dir)  # a build folder, a document: a usage error naming it
    if where.kind != "log" or where.run_folder is None or where.run_folder != run_dir:
        raise UsageError(f"{run_dir} is not a run folder: give the folder holding log/, "
                         "boot.cbor and journal.jsonl")
    summary = _summary(run_dir)
    commitment = commitment_of_run(run_dir)
    report = check_log(run_dir, trust=trust, boot_verifier=boot_verifier_for(run_dir))
    pcr0 = ""
    boot = run_dir / "boot.cbor"
    if boot.is_file():
        from zcbench.nitro import parse_document

        try:
            pcr0 = parse_document(boot.read_bytes()).pcrs.get(0, b"").hex()
        except ZcbenchError:  # a document that does not parse: the log's verdict says why
            pcr0 = ""
    attestation = run_dir / "attestation.cbor"
    facts = RunFacts(
        run_dir=run_dir,
        run_id=str(summary.get("run_id") or (report.origin or "").rpartition("/")[2]),
        origin=report.origin or str(summary.get("origin") or ""),
        pcr0=pcr0 if report.verified else "",
        verdict=report.classification,
        verified=report.verified,
        simulated=report.simulated,
        commitment=commitment,
        build=commitment.parent if commitment is not None else None,
        attestation=attestation if attestation.is_file() else None,
        warnings=tuple(report.warnings),
    )
    return facts, report, summary


def _control_rows(run_id: str, run_dir: Path, summary: dict[str, Any],
                  rows: dict[str, list[dict[str, Any]]]) -> None:
    """The limits in force at the start, every change, and every contradiction of them."""
    from zcbench.host.controls import control_history

    history = control_history(run_dir, summary)
    if history.events and history.events[0].record.action == "start":
        start = history.events[0]
        rows["controls"] += [
            {"run_id": run_id, "control": name, "setting": json.dumps(value),
             "source": f"signed control record at log index {start.log_index} (start, by "
                       f"{start.record.operator})"}
            for name, value in sorted(start.record.new.items())]
    else:
        rows["controls"] += _limits_rows(run_id, summary)
    for event in history.events:
        for name, (old, new) in event.record.changed().items():
            rows["control_changes"].append({
                "run_id": run_id, "log_index": event.log_index,
                "time_utc": iso_ns(event.time_ns), "action": event.record.action,
                "operator": event.record.operator, "reason": event.record.reason,
                "control": name, "old": old, "new": new})
    rows["control_flags"] += [{"run_id": run_id, "problem": p} for p in history.problems]


def _clock_rows(run_id: str, run_dir: Path, limit_ns: int,
                out: list[dict[str, Any]]) -> int | None:
    """Each record's time, source and bound from the log's clock records; the first time."""
    from zcbench.auditlog.frame import iter_records
    from zcbench.evidence.clock import decode_clock_note, is_clock_note, record_bounds

    records, notes = [], []
    for record, _ in iter_records(run_dir):
        records.append((record.index, record.time_ns, record.kind))
        if record.kind == "note" and is_clock_note(record.body):
            try:
                notes.append((record.index, record.time_ns, decode_clock_note(record.body)))
            except DataError:
                continue  # not a reading: its records get no bound from it
    bounds = record_bounds([(i, t) for i, t, _ in records], notes)
    for (index, time_ns, kind), clock in zip(records, bounds, strict=True):
        within = clock.bound_ns is not None and clock.bound_ns <= limit_ns
        flag = clock.flag or ("" if within else
                              f"bound {clock.bound_ns:,} ns exceeds the limit of {limit_ns:,} ns")
        out.append({
            "run_id": run_id, "log_index": index, "kind": kind, "time_utc": iso_ns(time_ns),
            "source": clock.source, "bound_ns": clock.bound_ns, "limit_ns": limit_ns,
            "within_limit": within if clock.bound_ns is not None else None, "flag": flag})
    return records[0][1] if records else None


def _limits_rows(run_id: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    for key in _LIMIT_KEYS:
        limits = summary.get(key)
        if isinstance(limits, dict):
            return [{"run_id": run_id, "control": str(name), "setting": json.dumps(value),
                     "source": f"summary.json {key}"} for name, value in sorted(limits.items())]
    return [{"run_id": run_id, "control": "risk_limits",
             "setting": "not recorded by this run",
             "source": "the run folder holds no record of the limits in force"}]


def _ledger_rows(ledger: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    from zcbench.ledger.verify import check_ledger

    report = check_ledger(ledger)
    if not report.ok:
        raise VerificationError(f"the ledger {ledger} does not verify ({report.failed}): "
                                f"{report.message}; run 'zcbench ledger verify {ledger}'",
                                check="ledger")
    state = report.state
    for version in state.versions.values():
        runs = [r.origin for r in state.runs.values() if r.pcr0 == version.pcr0]
        rows["ledger_versions"].append({
            "pcr0": version.pcr0.hex(), "commitment_sha256": version.commitment_sha256.hex(),
            "entry_index": version.index, "announced_utc": iso_ns(version.announced_ns),
            "valid_from_utc": iso_ns(version.valid_from_ns),
            "revoked_utc": iso_ns(version.revoked_ns) if version.revoked_ns is not None else "",
            "revocation_index": version.revoked_index, "runs": " ".join(runs)})
    for run in state.runs.values():
        for index, archive in run.archives:
            for obj in archive.objects:
                rows["ledger_archives"].append({
                    "run_origin": run.origin, "entry_index": index, "bucket": archive.bucket,
                    "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256.hex(),
                    "retain_until_utc": iso_ns(archive.retain_until_ns),
                    "manifest_sha256": archive.manifest_sha256.hex()})
        for index, control in run.controls:
            rows["ledger_controls"].append({
                "run_origin": run.origin, "entry_index": index,
                "appended_utc": iso_ns(report.entries[index].time_ns),
                "log_index": control.log_index, "leaf_sha256": control.leaf_sha256.hex(),
                "action": control.action, "operator": control.operator})


def collect_evidence(
    run_dirs: Sequence[Path], *, trust: str | Path = "aws", rts25: str = "algo",
    capital_ticks: int | None = None, ledger: Path | None = None,
) -> EvidenceTables:
    """The pack's tables for ``run_dirs`` (see the module docstring); ``capital_ticks`` is what
    the verified tear sheet measures returns against (default 1,000,000 currency units);
    ``ledger`` the strategy's ledger, for its inventory and archive entries."""
    from zcbench.evidence.tearsheet import (
        DEFAULT_CAPITAL_TICKS,
        run_backtest_model,
        run_tear_sheet,
    )
    from zcbench.host.execution import read_journal
    from zcbench.nitro.commitment import Commitment
    from zcbench.venue import signal_of_cl_ord_id

    if rts25 not in RTS25_LIMITS_NS:
        raise UsageError(f"--rts25 {rts25!r}: choose one of {', '.join(RTS25_LIMITS_NS)}")
    if not run_dirs:
        raise UsageError("give at least one run folder")
    limit_ns = RTS25_LIMITS_NS[rts25]
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _SCHEMAS}
    algorithms: dict[str, dict[str, Any]] = {}
    facts_all = []
    seen: set[str] = set()
    for run_dir in (Path(p) for p in run_dirs):
        facts, report, summary = _run_facts(run_dir, trust)
        if facts.run_id in seen:
            raise UsageError(f"run {facts.run_id} is given twice")
        seen.add(facts.run_id)
        signals = _signals_by_index(run_dir) if facts.verified else {}
        journal = (read_journal(run_dir / "journal.jsonl").rows
                   if (run_dir / "journal.jsonl").is_file() else pl.DataFrame())
        carried, caveat = (_carried_signals(run_dir, facts, report.entries, journal, trust,
                                            [Path(p) for p in run_dirs])
                           if facts.verified else ({}, ""))
        if caveat:
            facts = dataclasses.replace(facts, warnings=(*facts.warnings, caveat))
        facts_all.append(facts)
        rows["runs"].append({
            "run_id": facts.run_id, "origin": facts.origin, "pcr0": facts.pcr0,
            "log_verdict": facts.verdict, "verified": facts.verified,
            "entries": report.entries, "checkpoints": report.checkpoints,
            "root": report.root or "", "status": str(summary.get("status") or ""),
            "simulated": facts.simulated, "run_dir": str(run_dir), "caveats": caveat})
        first_ns = _clock_rows(facts.run_id, run_dir, limit_ns, rows["clock"])
        if facts.verified and facts.commitment is not None:
            commitment = Commitment.load(facts.commitment)
            entry = algorithms.setdefault(facts.pcr0, {
                "pcr0": facts.pcr0, "pcr1": commitment.pcrs.get(1, b"").hex(),
                "pcr2": commitment.pcrs.get(2, b"").hex(), "strategy": commitment.strategy or "",
                "strategy_sha256": commitment.strategy_sha256 or "",
                "commitment_sha256": _sha256(facts.commitment),
                "first_seen_utc": iso_ns(first_ns) if first_ns is not None else "",
                "runs": []})
            entry["runs"].append(facts.run_id)
        own = facts.origin.rpartition("/")[2]
        for row in journal.iter_rows(named=True):
            index = row["log_index"]
            cid = row["cl_ord_id"] or ""
            named = signal_of_cl_ord_id(cid)
            signal_run = named[0] if named is not None else own
            if cid in carried:  # an earlier run's order: held to that run's signed signal
                proven = carried[cid]
                logged = None if proven is None else (row["seq"], proven[1], proven[2])
                matched = (proven is not None and proven[0] == index
                           and _row_of_signal(row, proven[2]))
            else:
                logged = signals.get(index)
                matched = (logged is not None and logged[0] == row["seq"]
                           and _row_of_signal(row, logged[2]) and index < report.entries)
            rows["orders"].append({
                "run_id": facts.run_id, "pcr0": facts.pcr0, "time_ns": row["time_ns"],
                "time_utc": iso_ns(row["time_ns"]), "seq": row["seq"], "out_log_index": index,
                "event": row["event"], "symbol": row["symbol"], "side": row["side"],
                "quantity": row["quantity"], "limit_price_ticks": row["limit_price_ticks"],
                "price_ticks": row["price_ticks"], "reason": row["reason"],
                "position_after": row["position_after"],
                "out_leaf_hash": logged[1].hex() if logged is not None else "",
                "in_signed_log": matched, "signal_run_id": signal_run})
            if row["event"] == "reject":
                rows["control_events"].append({
                    "run_id": facts.run_id, "time_utc": iso_ns(row["time_ns"]),
                    "seq": row["seq"], "out_log_index": index,
                    "control": row["control"], "symbol": row["symbol"],
                    "reason": row["reason"], "limit_value": row["limit_value"],
                    "attempted_value": row["attempted_value"]})
        _control_rows(facts.run_id, run_dir, summary, rows)
        if facts.verified:
            run_orders = _frame("orders", [r for r in rows["orders"]
                                           if r["run_id"] == facts.run_id])
            sheet = run_tear_sheet(run_dir, run_orders,
                                   capital_ticks=capital_ticks or DEFAULT_CAPITAL_TICKS)
            logged_pnl = summary.get("pnl_ticks")
            summary_pnl = logged_pnl if type(logged_pnl) is int else None
            rows["performance"].append({
                "run_id": facts.run_id, **sheet.to_row(), "summary_pnl_ticks": summary_pnl,
                "pnl_matches_summary": summary_pnl == sheet.pnl_ticks if summary_pnl is not None
                else None})
            backtest, model = run_backtest_model(
                run_dir, capital_ticks=capital_ticks or DEFAULT_CAPITAL_TICKS)
            rows["performance_backtest"].append({"run_id": facts.run_id, **backtest.to_row(),
                                                 "fill_model": model})
        from zcbench.archive import read_manifest

        manifest = read_manifest(run_dir)
        for archive in manifest.archives if manifest is not None else ():
            for item in archive.objects:
                rows["archive"].append({
                    "run_id": facts.run_id, "path": item.path, "bucket": archive.bucket,
                    "endpoint": archive.endpoint, "key": item.key,
                    "version_id": item.version_id, "sha256": item.sha256, "size": item.size,
                    "mode": archive.mode, "retain_until": archive.retain_until,
                    "archived_at": archive.archived_at})
    for entry in algorithms.values():
        rows["algorithms"].append({**entry, "runs": " ".join(entry["runs"])})
    if ledger is not None:
        _ledger_rows(Path(ledger), rows)
    tables = {name: _frame(name, rows[name]) for name in _SCHEMAS}
    return EvidenceTables(tuple(facts_all), tables, None if ledger is None else Path(ledger))
