"""The LP attestation report: what is gathered about a run, and how it becomes one HTML file.

:func:`collect_report` reads a run folder and checks everything with the public verifiers (the
attestation evidence against the commitment the run names in ``summary.json``: a Nitro document
with :func:`zcbench.nitro.check_attestation`, an SEV-SNP report or a TDX/SGX quote, when the
commitment names that TEE, with :func:`zcbench.tee.check_evidence`; the signed log with
:func:`zcbench.auditlog.check_log`);
:func:`report_sections` renders it as HTML fragments; :func:`write_report` runs a small notebook
that does both in a kernel and converts it with nbconvert, code hidden, into one file an LP can
keep. Nothing here decides a verdict: it shows the verifiers' reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pathlib
import re
import shlex
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zcbench.errors import DataError, EnvError, UsageError, ZcbenchError
from zcbench.report import html as h
from zcbench.report.attestation import (
    AttestationResult,
    attestation_result,
    committed_fields,
    read_commitment,
)
from zcbench.report.attestation_html import (
    chain_html,
    document_facts_html,
    measured_title,
    pcr_table_html,
    verdict_html,
)

__all__ = [
    "LPReport",
    "collect_report",
    "report_sections",
    "write_report",
]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class LPReport:
    """Everything the LP report shows about one run.

    ``document_path`` is the attestation document checked: an on-demand document when one was
    given, lies beside the run folder or in it (``attestation.cbor``), else the boot document.
    ``at_mode`` says how the verification time was chosen (``"document"`` or ``"given"``);
    ``log`` is the audit log's report (``None`` with ``log_problem`` set when it could not be
    read at all).
    """

    run_dir: pathlib.Path
    summary: Mapping[str, Any]
    commitment_path: pathlib.Path
    commitment: Mapping[str, Any]
    commitment_sha256: str
    document_path: pathlib.Path
    attestation: AttestationResult
    at_mode: str
    trust: str
    generated_at: dt.datetime
    log: Any
    log_problem: str | None
    journal: Any = None  # the run's orders/fills journal (JournalRead), None if unreadable
    journal_problem: str | None = None
    ledger: Any = None  # the strategy ledger's history (LedgerHistory), when a ledger is given
    ledger_run: Any = None  # this run held to that ledger (RunLedgerReport), when its log read
    certificate_paths: tuple[pathlib.Path, ...] = field(default=())
    collateral_path: pathlib.Path | None = None

    @property
    def verified(self) -> bool:
        """The attestation verified and the log verified (warnings allowed)."""
        return self.attestation.verified and self.log is not None and self.log.verified

    def to_json(self) -> dict[str, Any]:
        """The report's facts as one JSON-ready object (``zcbench report --json``)."""
        report = self.attestation.report
        verdict = self.attestation.tee_verdict
        log = self.log
        return {
            "schema": "zcbench.lp-report/1",
            "verified": self.verified,
            "verdict": self.attestation.verdict,
            "tee": verdict.tee,
            "simulated": verdict.simulated,
            "trust_root": None if report is None else report.trust_root.to_dict(),
            "rests_on": verdict.rests_on,
            "failed_check": verdict.failed_check,
            "message": verdict.message,
            "measurement": None if verdict.measurement is None else verdict.measurement.hex(),
            "report_data": None if verdict.report_data is None else verdict.report_data.hex(),
            "debug": verdict.debug,
            "tcb_status": verdict.tcb_status,
            "advisory_ids": list(verdict.advisory_ids),
            "run_id": self.summary.get("run_id"),
            "document": str(self.document_path),
            "commitment": str(self.commitment_path),
            "commitment_sha256": self.commitment_sha256,
            "checked_at": verdict.at.isoformat(),
            "at_mode": self.at_mode,
            "trust": self.trust,
            "log": None
            if log is None
            else {
                "verified": log.verified,
                "classification": log.classification,
                "entries": log.entries,
                "checkpoints": log.checkpoints,
                "message": log.message,
            },
            "log_problem": self.log_problem,
            "run": _run_facts(self),
            "ledger": None if self.ledger is None else {
                **self.ledger.to_json(),
                "this_run": None if self.ledger_run is None else self.ledger_run.to_json()},
        }


def _read_json(path: pathlib.Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: {path.parent} is not a run folder made by "
                         "'zcbench run'") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{what} {path} is not a JSON object")
    return data


def _read_summary(run_dir: pathlib.Path) -> dict[str, Any]:
    """``summary.json``; for a host killed before it wrote one, the journal's header (run id,
    origin, build) with status ``unfinished``."""
    from zcbench.host.execution import JOURNAL_FILE, read_journal

    path = run_dir / "summary.json"
    if path.exists() or not (run_dir / JOURNAL_FILE).is_file():
        return _read_json(path, "run summary")
    journal = read_journal(run_dir)
    return {**journal.header, "status": "unfinished"}


def _commitment_path(run_dir: pathlib.Path, summary: Mapping[str, Any]) -> pathlib.Path:
    image = summary.get("image")
    if not isinstance(image, str) or not image:
        raise DataError(
            f"{run_dir / 'summary.json'} names no build folder ('image'): the report needs the "
            "build's commitment.json"
        )
    named = pathlib.Path(image)
    # Where the run named it (on the fund's machine); else, for the folders handed to an LP
    # on another machine, a build folder of that name beside the run folder.
    candidates = [named] if named.is_absolute() else [named, run_dir / named]
    candidates.append(run_dir.parent / named.name)
    for build in candidates:
        path = build / "commitment.json"
        if path.is_file():
            return path
    raise UsageError(
        f"the run's build folder {named.name} has no commitment.json here (looked in "
        f"{', '.join(str(c) for c in dict.fromkeys(candidates))}): the report compares the "
        f"document's PCRs with it; put the build's commitment.json in "
        f"{run_dir.parent / named.name}"
    )


def _document_path(
    run_dir: pathlib.Path, given: pathlib.Path | None, tee: str = "nitro"
) -> pathlib.Path:
    if given is not None:
        if not given.is_file():
            raise UsageError(f"attestation document {given} does not exist")
        return given
    if tee != "nitro":
        raise UsageError(
            f"the run's commitment names {tee}: give its evidence with --attestation FILE "
            "(an SEV-SNP report with --cert for its VCEK or VLEK; a TDX or SGX quote with "
            "--collateral for its TCB status)"
        )
    for candidate in (run_dir.parent / "attestation.cbor", run_dir / "attestation.cbor"):
        if candidate.is_file():  # an on-demand document: the demo's, or the run's final one
            return candidate
    boot = run_dir / "boot.cbor"
    if not boot.is_file():
        raise UsageError(f"{run_dir} has no boot.cbor: is this a run folder made by 'zcbench run'?")
    return boot


def collect_report(
    run_dir: pathlib.Path,
    *,
    trust: str | pathlib.Path = "aws",
    attestation: pathlib.Path | None = None,
    nonce: bytes | None = None,
    at: dt.datetime | None = None,
    clock: Callable[[], dt.datetime] = _utcnow,
    ledger: pathlib.Path | None = None,
    certificates: Sequence[pathlib.Path] = (),
    collateral: pathlib.Path | None = None,
) -> LPReport:
    """Gather and check what the LP report shows about the run in ``run_dir``.

    ``trust`` names the root (``"dev"`` for a local run: SIMULATED). ``attestation`` is the
    document to check (default: ``attestation.cbor`` beside the run folder, then in it, else
    the run's ``boot.cbor``); ``nonce`` the nonce it must carry (default for the boot
    document: the run id; otherwise unchecked, and the report says so). ``at`` is the
    verification time (default: the document's own time: the report is a record of what was
    attested then). ``ledger`` is the strategy's ledger folder: the report then shows its
    version history and holds this run to it (:mod:`zcbench.ledger.history`). Raises
    :class:`~zcbench.errors.EnvError` or :class:`~zcbench.errors.DataError` for a missing or
    malformed run folder; a document or log that fails its checks is a verdict, not an error.

    When the commitment names another TEE (schema 2: SEV-SNP, TDX, SGX), ``attestation`` is
    its evidence (required), ``certificates`` the SEV-SNP VCEK or VLEK files, ``collateral``
    a DCAP collateral file, ``nonce`` the report data it must carry, and ``at`` is required
    (such evidence carries no signed time). The signed log's boot record is then checked
    without PCRs, and the report says so.
    """
    from zcbench.auditlog.verify import nitro_boot_verifier
    from zcbench.nitro import parse_document

    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} does not exist")
    summary = _read_summary(run_dir)
    commitment_path = _commitment_path(run_dir, summary)
    expected, commitment = read_commitment(commitment_path)
    tee, _ = committed_fields(commitment)
    document_path = _document_path(run_dir, attestation, tee)
    document = document_path.read_bytes()
    if tee != "nitro":
        return _collect_tee(
            run_dir, summary, commitment_path, commitment, document_path, document,
            trust=trust, nonce=nonce, at=at, clock=clock, ledger=ledger,
            certificates=tuple(pathlib.Path(c) for c in certificates),
            collateral=None if collateral is None else pathlib.Path(collateral),
        )
    if certificates or collateral is not None:
        raise UsageError(
            "--cert and --collateral are for SEV-SNP, TDX and SGX evidence; the run's "
            "commitment is a Nitro one"
        )
    if nonce is None and document_path == run_dir / "boot.cbor":
        run_id = summary.get("run_id")
        if isinstance(run_id, str) and run_id:
            nonce = run_id.encode()  # the boot document's nonce is the run id
    at_mode = "given"
    if at is None:
        at_mode = "document"
        try:
            at = parse_document(document).time
        except ZcbenchError:
            at = clock()  # an unreadable document fails its checks at any time
            at_mode = "now"
    result = attestation_result(
        document,
        nonce=nonce,
        expected_pcrs=expected,
        trust=trust,
        at=at,
        source=str(document_path),
        commitment=commitment,
    )
    log, problem = _checked_log(run_dir, trust, nitro_boot_verifier(expected_pcrs=expected))
    return LPReport(
        run_dir=run_dir,
        summary=summary,
        commitment_path=commitment_path,
        commitment=commitment,
        commitment_sha256=hashlib.sha256(commitment_path.read_bytes()).hexdigest(),
        document_path=document_path,
        attestation=result,
        at_mode=at_mode,
        trust=str(trust),
        generated_at=clock(),
        log=log,
        log_problem=problem,
        **_journal(run_dir),
        **_ledger(ledger, run_dir, log),
    )


_TEE_LOG_NOTE = (
    "the commitment names {tee}: the log's boot record was checked without PCRs (its binding "
    "to the {tee} evidence is not checked here)"
)


def _collect_tee(
    run_dir: pathlib.Path,
    summary: Mapping[str, Any],
    commitment_path: pathlib.Path,
    commitment: Mapping[str, Any],
    document_path: pathlib.Path,
    document: bytes,
    *,
    trust: str | pathlib.Path,
    nonce: bytes | None,
    at: dt.datetime | None,
    clock: Callable[[], dt.datetime],
    ledger: pathlib.Path | None,
    certificates: tuple[pathlib.Path, ...],
    collateral: pathlib.Path | None,
) -> LPReport:
    """:func:`collect_report` for a commitment of another TEE than Nitro."""
    from zcbench.auditlog.verify import nitro_boot_verifier
    from zcbench.nitro.commitment import read_bounded

    tee = str(commitment.get("tee"))
    if at is None:
        raise UsageError(
            f"{tee} evidence carries no signed time: give the verification time with --at "
            "(an ISO 8601 instant inside its certificates' validity, or now)"
        )
    loaded = tuple(read_bounded(c, what="certificate") for c in certificates)
    dcap = None
    if collateral is not None:
        from zcbench.tee.dcap import load_collateral

        dcap = load_collateral(collateral)
    result = attestation_result(
        document, nonce=nonce, expected_pcrs={}, trust="aws", at=at,
        source=str(document_path), commitment=commitment, certificates=loaded, collateral=dcap,
    )
    log, problem = _checked_log(run_dir, trust, nitro_boot_verifier())
    if log is not None:
        log = _with_warning(log, _TEE_LOG_NOTE.format(tee=tee))
    return LPReport(
        run_dir=run_dir,
        summary=summary,
        commitment_path=commitment_path,
        commitment=commitment,
        commitment_sha256=hashlib.sha256(commitment_path.read_bytes()).hexdigest(),
        document_path=document_path,
        attestation=result,
        at_mode="given",
        trust=str(trust),
        generated_at=clock(),
        log=log,
        log_problem=problem,
        certificate_paths=certificates,
        collateral_path=collateral,
        **_journal(run_dir),
        **_ledger(ledger, run_dir, log),
    )


def _checked_log(
    run_dir: pathlib.Path, trust: str | pathlib.Path, boot_verifier: Any
) -> tuple[Any, str | None]:
    """The run's log verdict (``zcbench.auditlog.check_log``), or None and the problem that
    kept it from being checked."""
    from zcbench.auditlog import check_log

    try:
        return check_log(run_dir, trust=trust, boot_verifier=boot_verifier, progress=False), None
    except ZcbenchError as exc:
        return None, str(exc)


def _with_warning(log: Any, text: str) -> Any:
    import dataclasses

    return dataclasses.replace(log, warnings=(*log.warnings, text))


def _journal(run_dir: pathlib.Path) -> dict[str, Any]:
    from zcbench.host.execution import read_journal

    try:
        return {"journal": read_journal(run_dir)}
    except ZcbenchError as exc:
        return {"journal_problem": str(exc)}


def _ledger(ledger: pathlib.Path | None, run_dir: pathlib.Path, log: Any) -> dict[str, Any]:
    """The ledger's history and this run held to it; the run only when its log verified (a
    log that failed is no run to hold)."""
    if ledger is None:
        return {}
    from zcbench.ledger.history import version_history
    from zcbench.ledger.runs import check_run_at

    ledger = pathlib.Path(ledger)
    if not (ledger / "ledger.json").is_file():
        raise UsageError(f"{ledger} is not a ledger folder (no ledger.json): give the folder "
                         "'zcbench ledger init' made")
    history = version_history(ledger)
    held = None
    if log is not None and log.verified:
        held = check_run_at(ledger, run_dir, log)
    return {"ledger": history, "ledger_run": held}


def _ledger_section(report: LPReport) -> list[str]:
    if report.ledger is None:
        return []
    from zcbench.report.ledger_html import ledger_html

    origin = None if report.log is None else report.log.origin
    return [h.heading("The strategy's ledger: versions and runs")
            + ledger_html(report.ledger, report.ledger_run, origin)]


def _run_facts(report: LPReport) -> dict[str, Any]:
    """Status, order counts and PnL of the run (``pnl_ticks`` in units of ``1 / money_scale``
    of ``currency``, the account the run recorded; both None for a run that recorded none)."""
    from zcbench.host.summary import recorded_account

    s = report.summary
    facts: dict[str, Any] = {"status": s.get("status"), "pnl_ticks": s.get("pnl_ticks")}
    journal = report.journal
    account = recorded_account(s, None if journal is None else journal.header, source="the run")
    facts["currency"] = None if account is None else account.currency
    facts["money_scale"] = None if account is None else account.money_scale
    if journal is not None:
        events = journal.rows.get_column("event")
        for name, event in (("orders", "order"), ("fills", "fill"), ("rejects", "reject")):
            facts[name] = int((events == event).sum())
        facts["journal_torn_tail"] = None if journal.torn is None else journal.torn.describe()
    facts["journal_problem"] = report.journal_problem
    return facts


def _pnl_text(pnl: Any, facts: Mapping[str, Any]) -> str:
    """The run's PnL in the currency and unit it recorded (a run that recorded none: the
    schema's 1/10,000 of an unnamed currency, as such runs counted)."""
    from zcbench.money import format_money

    if type(pnl) is not int:
        return "not recorded"
    if facts.get("currency") is None:
        return format_money(pnl, signed=True) + " (the run recorded no currency)"
    return format_money(pnl, signed=True, scale=facts["money_scale"], currency=facts["currency"])


def _run_html(report: LPReport) -> str:
    facts = _run_facts(report)
    pnl = facts["pnl_ticks"]
    status = str(facts["status"])
    if status == "unfinished":
        status += " (no summary.json: the host stopped before writing it; the journal is whole)"
    pairs = [
        ("status", h.esc(status)),
        ("PnL", h.esc(_pnl_text(pnl, facts))),
    ]
    if report.journal is not None:
        pairs.append(
            ("orders / fills / rejects",
             h.esc(f"{facts['orders']:,} / {facts['fills']:,} / {facts['rejects']:,}"))
        )
    for key in ("journal_torn_tail", "journal_problem"):
        if facts.get(key):
            pairs.append(("journal", h.esc(facts[key])))
    return h.facts(pairs)


def _commitment_html(report: LPReport) -> str:
    c = report.commitment
    raw = c.get("pcrs")
    pcrs: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    raw = c.get("measurements")
    measured: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    pairs = [
        ("tee", h.esc(c.get("tee", "nitro"))),
        *((name.upper(), h.mono(str(v))) for name, v in sorted(measured.items())),
        ("strategy", h.esc(c.get("strategy", "—"))),
        ("strategy_sha256", h.mono(str(c.get("strategy_sha256", "—")))),
        ("lock_sha256", h.mono(str(c.get("lock_sha256", "—")))),
        ("zcbench version", h.esc(c.get("zcbench_version", "—"))),
        ("source_date_epoch", h.esc(c.get("source_date_epoch", "—"))),
        *((f"PCR{k}", h.mono(str(v))) for k, v in sorted(pcrs.items())),
        *_research_pairs(c.get("research")),
        ("commitment file", h.mono(report.commitment_path.name)),
        ("its SHA-256", h.mono(report.commitment_sha256)),
    ]
    return h.facts(pairs)


def _research_pairs(research: object) -> list[tuple[str, str]]:
    """The trials behind the parameters and the deflated Sharpe ratio, when committed."""
    if not isinstance(research, dict):
        return [("research trials", "not committed (no research record was packaged)")]
    dsr = research.get("deflated_sharpe")
    digests = ", ".join(str(r.get("digest", ""))[:16] for r in research.get("records", []))
    return [
        ("research trials", h.esc(f"{research.get('n_trials')} backtests behind these parameters")),
        (
            "deflated Sharpe ratio",
            h.esc(
                "n/a" if not isinstance(dsr, float)
                else f"{dsr:.3f} (probability the Sharpe ratio beats the best of "
                f"{research.get('n_trials')} trials by luck)"
            ),
        ),
        ("research records", h.mono(digests)),
    ]


def _log_html(report: LPReport) -> str:
    log = report.log
    if log is None:
        return h.notice(f"The log could not be read: {report.log_problem}", h.RED)
    ok = log.verified
    colour = h.GREEN if ok else h.RED
    pairs = [
        ("verdict", f'<b style="color:{colour}">{"VERIFIED" if ok else "FAILED"}</b> '
                    f"({h.esc(log.classification)})"),
        ("records", h.esc(f"{log.entries:,}")),
        ("signed checkpoints", h.esc(f"{log.checkpoints:,}")),
        ("message", h.esc(log.message)),
        ("origin", h.mono(str(log.origin or "—"))),
        ("latest root", h.mono(str(log.root or "—"))),
    ]
    if log.first_bad_index is not None:
        pairs.append(("first bad record", h.esc(log.first_bad_index)))
    pairs += [("warning", h.esc(w)) for w in log.warnings]
    if log.latest_checkpoint is not None:
        note = bytes(log.latest_checkpoint).decode("utf-8", "replace")
        pairs.append(("latest checkpoint", f'<pre style="{h.MONO};margin:0">{h.esc(note)}</pre>'))
    return h.facts(pairs)


def _as_received(path: pathlib.Path, base: pathlib.Path) -> str:
    """``path`` relative to ``base`` when it lies inside it, else its bare name."""
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return path.name


def _commands_html(report: LPReport) -> str:
    result = report.attestation
    # A root given as a file is named as the LP receives it, beside the other files.
    shown = report.trust if report.trust in ("aws", "dev") else pathlib.Path(report.trust).name
    trust = f" --trust {shlex.quote(shown)}" if shown != "aws" else ""
    # Name the files as the LP receives them (the document, commitment.json, the run folder),
    # never by a path on the machine that built the report: relative to the folder holding
    # the run folder, where the commands are run (build/commitment.json, as handed over).
    base = report.run_dir.resolve().parent
    verify = [
        "zcbench verify attestation",
        shlex.quote(_as_received(report.document_path, base)),
        "--commitment",
        shlex.quote(_as_received(report.commitment_path, base)),
    ]
    if result.nonce is not None:
        verify += ["--nonce" if result.report is not None else "--report-data", result.nonce.hex()]
    for cert in report.certificate_paths:
        verify += ["--cert", shlex.quote(_as_received(cert, base))]
    if report.collateral_path is not None:
        verify += ["--collateral", shlex.quote(_as_received(report.collateral_path, base))]
    verify.append("--at " + ("doc" if report.at_mode == "document" else
                             shlex.quote(result.tee_verdict.at.isoformat())))
    lines = [
        # other TEEs verify against the pinned vendor roots only: no --trust
        " ".join(verify) + (trust if result.report is not None else ""),
        f"zcbench log verify {shlex.quote(report.run_dir.name)}{trust}",
    ]
    if report.ledger is not None:
        name = shlex.quote(pathlib.Path(report.ledger.folder).name)
        lines += [f"zcbench ledger verify {name}",
                  f"zcbench log verify {shlex.quote(report.run_dir.name)}{trust} --ledger {name}"]
    block = "\n".join(lines)
    note = (
        "These commands re-run every check above from the files alone; they need no access to "
        "the strategy code. Exit code 0 means verified, 1 a failed check (the output names it)."
    )
    if result.tee_verdict.simulated:
        note += (
            " The root is the local development CA: a SIMULATED enclave, a faithful "
            "stand-in, not a confidential one."
        )
    if report.trust == "dev":
        note += (
            " On any machine but the fund's, --trust dev has no root to read: use the "
            "development CA root the fund hands over ('zcbench nitro export-root --out "
            "dev-root.pem') as --trust dev-root.pem."
        )
    return f'<pre style="{h.MONO};background:#f6f8fa;padding:8px">{h.esc(block)}</pre>' + \
        h.notice(note)


def report_sections(report: LPReport) -> list[str]:
    """The report as HTML fragments, in reading order."""
    from zcbench.report.tearsheet import tear_sheet_html

    result = report.attestation
    doc = None if result.report is None else result.report.document
    when = (
        "the document's own time"
        if report.at_mode == "document"
        else "the time given" if report.at_mode == "given" else "report time"
    )
    age = (
        ""
        if doc is None
        else f"; the document was {h.duration(report.generated_at - doc.time)} old when this "
        "report was made"
    )
    title = (
        f'<div style="{h.FONT};color:{h.INK}"><div style="font-size:26px;font-weight:700">'
        f"Attestation report: {h.esc(report.commitment.get('strategy', 'strategy'))}</div>"
        f'<div style="color:{h.GREY}">run {h.esc(report.summary.get("run_id", "—"))} · '
        f"generated {h.when(report.generated_at)} · checked as of {h.esc(when)}, "
        f"{h.when(result.tee_verdict.at)}{h.esc(age)}</div></div>"
    )
    evidence = "document" if result.report is not None else f"evidence ({result.view.tee_name})"
    return [
        title,
        verdict_html(result),
        h.heading("What was committed (commitment.json)") + _commitment_html(report),
        h.heading(f"The attestation {evidence}") + document_facts_html(result),
        h.heading(measured_title(result)) + pcr_table_html(result),
        h.heading("Certificate chain") + chain_html(result),
        h.heading("The run: status, orders, PnL") + _run_html(report),
        h.heading("The signed log of the run") + _log_html(report),
        h.heading("Verified tear sheet (recomputed from the signed log)") + tear_sheet_html(report),
        *_ledger_section(report),
        h.heading("Re-verify it yourself") + _commands_html(report),
    ]


_NOTEBOOK_CODE = """\
from IPython.display import HTML, display
from zcbench.report import collect_report, report_sections

_report = collect_report(
    pathlib.Path(run_dir),
    trust=trust if trust in ("aws", "dev") else pathlib.Path(trust),
    attestation=None if attestation is None else pathlib.Path(attestation),
    nonce=None if nonce_hex is None else bytes.fromhex(nonce_hex),
    at=None if at is None else datetime.datetime.fromisoformat(at),
    ledger=None if ledger is None else pathlib.Path(ledger),
    certificates=[pathlib.Path(c) for c in certificates],
    collateral=None if collateral is None else pathlib.Path(collateral),
)
for _section in report_sections(_report):
    display(HTML(_section))
"""


def _notebook(params: Mapping[str, object]) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    header = "import datetime\nimport pathlib\n\n" + "".join(
        f"{name} = {value!r}\n" for name, value in params.items()
    )
    cell = nbformat.v4.new_code_cell(header)  # type: ignore[no-untyped-call]
    cell.metadata["tags"] = ["parameters"]
    code = nbformat.v4.new_code_cell(_NOTEBOOK_CODE)  # type: ignore[no-untyped-call]
    nb.cells = [cell, code]
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python"
    }
    nb.metadata["title"] = "zcbench attestation report"
    return nb


def _execute(client: Any) -> None:
    import nbclient.exceptions

    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        raise DataError(f"the report notebook failed: {exc.ename}: {exc.evalue}") from exc
    except (nbclient.exceptions.DeadKernelError, RuntimeError, OSError) as exc:
        raise EnvError(
            f"could not run the report notebook's python3 kernel: {exc}; is ipykernel installed?"
        ) from exc


def write_report(
    run_dir: pathlib.Path,
    out_path: pathlib.Path,
    *,
    trust: str | pathlib.Path = "aws",
    attestation: pathlib.Path | None = None,
    nonce: bytes | None = None,
    at: dt.datetime | None = None,
    timeout: float = 120.0,
    ledger: pathlib.Path | None = None,
    certificates: Sequence[pathlib.Path] = (),
    collateral: pathlib.Path | None = None,
) -> pathlib.Path:
    """Write the LP report for ``run_dir`` to ``out_path`` (HTML, code hidden); returns it.

    The report is an executed notebook converted by nbconvert. Arguments as for
    :func:`collect_report`, which runs first here so a missing or malformed run folder fails
    before a kernel starts. A failed verification still writes the report (it says FAILED).
    """
    import nbclient
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    run_dir = pathlib.Path(run_dir).resolve()
    out_path = pathlib.Path(out_path)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise UsageError("'at' must be a timezone-aware datetime")
    collect_report(run_dir, trust=trust, attestation=attestation, nonce=nonce, at=at,
                   ledger=ledger, certificates=certificates, collateral=collateral)
    params = {
        "run_dir": str(run_dir),
        # the kernel runs in the run folder: a root given as a file is passed by absolute path
        "trust": trust if trust in ("aws", "dev") else str(pathlib.Path(trust).resolve()),
        "attestation": None if attestation is None else str(pathlib.Path(attestation).resolve()),
        "nonce_hex": None if nonce is None else nonce.hex(),
        "at": None if at is None else at.isoformat(),
        "ledger": None if ledger is None else str(pathlib.Path(ledger).resolve()),
        "certificates": [str(pathlib.Path(c).resolve()) for c in certificates],
        "collateral": None if collateral is None else str(pathlib.Path(collateral).resolve()),
    }
    nb = _notebook(params)
    with tempfile.TemporaryDirectory(prefix="zcbench-report-") as sockets:
        # IPC sockets in a private folder: no TCP port, nothing readable by other users.
        config = Config()
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(Path(sockets) / "kernel")
        client = nbclient.NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            config=config,
            resources={"metadata": {"path": str(run_dir)}},
        )
        _execute(client)
    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": "zcbench attestation report"}}
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(self_contained(body, run_dir), encoding="utf-8")
    return out_path


_REMOTE_SCRIPT = re.compile(r"<script[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.I)


def self_contained(html: str, run_dir: pathlib.Path) -> str:
    """``html`` with no script fetched from a CDN (the report must render offline; the
    sections are plain HTML and need none) and no absolute path of this machine."""
    html = _REMOTE_SCRIPT.sub("", html)
    for folder in sorted({run_dir.resolve().parent, run_dir.resolve()}, key=lambda f: -len(str(f))):
        html = html.replace(str(folder) + "/", "").replace(str(folder), folder.name)
    return html
