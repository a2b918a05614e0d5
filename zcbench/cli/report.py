"""``zcbench report RUN_DIR``: the LP's HTML attestation report of a run (zcbench.report)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import sys

from zcbench.errors import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="write the LP's HTML attestation report of a run",
        description=(
            "Check a run's attestation document against the commitment its summary.json names, "
            "and its signed log, then write an HTML report (an executed notebook, code hidden) "
            "an LP can keep. Exit 0 when both verified, 1 when a check failed (the report is "
            "still written and says which)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=pathlib.Path, help="the run folder")
    p.add_argument(
        "-o", "--out", type=pathlib.Path, default=None,
        help="the HTML file to write (default: report.html beside the run folder)",
    )
    p.add_argument(
        "--trust", default="aws", metavar="aws|dev|PEMFILE",
        help="root of trust: aws (default), dev (local development CA: SIMULATED) or a PEM file",
    )
    p.add_argument(
        "--attestation", type=pathlib.Path, default=None, metavar="FILE",
        help="the document to check (default: attestation.cbor beside or in the run, "
        "else boot.cbor)",
    )
    p.add_argument("--nonce", metavar="HEX", help="the nonce the document must carry")
    p.add_argument(
        "--at", default="doc", metavar="doc|now|ISO8601",
        help="verification time: the document's own time (default), now, or an instant",
    )
    p.add_argument(
        "--ledger", type=pathlib.Path, default=None, metavar="DIR",
        help="the strategy's ledger: the report shows its version history and holds this run "
        "to it (exit 1 when the ledger or this run's place in it fails)",
    )
    p.add_argument(
        "--cert", action="append", default=[], type=pathlib.Path, metavar="FILE",
        help="SEV-SNP: the VCEK or VLEK (and optionally its ASK/ASVK and ARK) of the evidence "
        "given with --attestation (repeatable)",
    )
    p.add_argument(
        "--collateral", type=pathlib.Path, default=None, metavar="FILE",
        help="TDX/SGX: the collateral JSON of the quote given with --attestation (without it "
        "the TCB status is unknown)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=_handle)


def _at(text: str) -> dt.datetime | None:
    if text == "doc":
        return None
    if text == "now":
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not doc, now or an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise UsageError(f"--at {text!r} needs a time zone, e.g. 2026-01-02T15:04:05Z")
    return value


def _handle(args: argparse.Namespace) -> int:
    from zcbench.report import collect_report, write_report
    from zcbench.report.attestation import parse_nonce

    at = _at(args.at)
    nonce = None if args.nonce is None else parse_nonce(args.nonce)
    trust: str | pathlib.Path = args.trust if args.trust in ("aws", "dev") else pathlib.Path(
        args.trust
    )
    run_dir: pathlib.Path = args.run_dir
    out = args.out if args.out is not None else run_dir.resolve().parent / "report.html"
    for cert in args.cert:
        if not cert.is_file():
            raise UsageError(f"--cert {cert} does not exist")
    if args.collateral is not None and not args.collateral.is_file():
        raise UsageError(f"--collateral {args.collateral} does not exist")
    inputs = {"certificates": args.cert, "collateral": args.collateral}
    facts = collect_report(run_dir, trust=trust, attestation=args.attestation, nonce=nonce, at=at,
                           ledger=args.ledger, **inputs)
    write_report(run_dir, out, trust=trust, attestation=args.attestation, nonce=nonce, at=at,
                 ledger=args.ledger, **inputs)
    result = facts.attestation.tee_verdict
    if args.json:
        print(json.dumps({**facts.to_json(), "report": str(out)}, sort_keys=True))
    else:
        verdict = facts.attestation.verdict + (" (SIMULATED)" if result.simulated else "")
        log = "unreadable" if facts.log is None else facts.log.classification
        print(f"{verdict}; log {log}; report written to {out}")
        if not result.verified:
            print(f"failed check {result.failed_check}: {result.message}", file=sys.stderr)
        if facts.ledger is not None:
            held = facts.ledger_run
            print(f"ledger {'verified' if facts.ledger.ok else 'FAILED'}: {facts.ledger.message}; "
                  + ("this run not checked (its log did not verify)" if held is None else
                     f"this run {'held' if held.ok else 'NOT held'}: {held.message}"))
    ledger_ok = facts.ledger is None or (
        facts.ledger.ok and facts.ledger_run is not None and facts.ledger_run.ok)
    return EXIT_OK if facts.verified and ledger_ok else EXIT_FAILED
