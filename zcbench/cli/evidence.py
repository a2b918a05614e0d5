"""``zcbench evidence``: the pack an examiner can use, and its re-verification.

``zcbench evidence RUN_DIR... --out DIR [--trust aws|dev|PEM] [--rts25 hft|algo|voice]`` writes
``index.html``, every table as CSV and Parquet, ``files.csv`` with the command that re-verifies
each file, ``pack.json`` and ``SHA256SUMS``. ``zcbench evidence verify DIR`` rebuilds every table
from the run folders the pack names and compares. Thin over :mod:`zcbench.evidence`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from zcbench.errors import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "evidence",
        help="an examiner's evidence pack for runs (HTML, CSV, Parquet); 'evidence verify' "
        "rebuilds and compares it",
        description="Build an evidence pack for the runs: the algorithm inventory (PCR0 and "
        "commitment of each version), every order tied to its PCR0 and OUT log index, the risk "
        "controls and their events, clock evidence against an RTS 25 limit, the archive "
        "locations with VersionIds, and for every file the command that re-verifies it. "
        "'zcbench evidence verify PACK_DIR' rebuilds every table from the run folders and "
        "compares.",
    )
    parser.add_argument("run_dir", nargs="+", metavar="RUN_DIR",
                        help="run folders (or 'verify' and the pack's folder)")
    parser.add_argument("--out", metavar="DIR", help="the pack's folder (new or empty)")
    parser.add_argument("--trust", default="aws", metavar="aws|dev|PEM",
                        help="root for the boot documents: the pinned AWS root (default), the "
                        "development CA (local runs; SIMULATED) or a PEM file")
    parser.add_argument("--rts25", default="algo", choices=("hft", "algo", "voice"),
                        help="the RTS 25 clock limit to report against: hft 100 µs, algo 1 ms "
                        "(default), voice 1 s")
    parser.add_argument("--capital", type=int, metavar="UNITS",
                        help="capital the tear sheet measures returns against, in currency "
                        "units (default 1,000,000)")
    parser.add_argument("--ledger", metavar="DIR", type=Path,
                        help="the strategy's ledger (verified first): the inventory of every "
                        "PCR0 it announced and revoked, its runs and archive entries")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_run, check_values=_check_values)


def _check_values(args: argparse.Namespace) -> None:
    args.verify = args.run_dir[0] == "verify" and not Path("verify").is_dir()
    if args.verify:
        args.run_dir = args.run_dir[1:]
        if len(args.run_dir) != 1:
            raise UsageError("evidence verify takes one pack folder")
        if args.out is not None or args.ledger is not None:
            raise UsageError("--out and --ledger are for building a pack, not for 'evidence "
                             "verify' (the pack names its ledger)")
        return
    if args.out is None:
        raise UsageError("give --out DIR, the folder the pack is written to")
    if args.capital is not None and not 1 <= args.capital <= 10**12:
        raise UsageError("--capital must be a whole number of currency units, 1 to 10^12")
    if args.ledger is not None:
        from zcbench.ledger.store import read_ledger_file

        read_ledger_file(args.ledger)  # a folder that is no ledger is refused before any work


def _trust(value: str) -> str | Path:
    if value in ("aws", "dev"):
        if value == "dev":
            sys.stderr.write("zcbench: trusting the development CA (--trust dev): SIMULATED\n")
        return value
    return Path(value)


def _run(args: argparse.Namespace) -> int:
    if args.verify:
        from zcbench.evidence import check_pack

        report = check_pack(Path(args.run_dir[0]))
        text = report.summary_lines()
        payload: object = report.to_json()
        code = EXIT_OK if report.verified else EXIT_FAILED
    else:
        from zcbench.evidence import build_pack
        from zcbench.strategy import PRICE_SCALE

        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pack = build_pack([Path(p) for p in args.run_dir], Path(args.out),
                          trust=_trust(args.trust), rts25=args.rts25, generated_at=now,
                          capital_ticks=None if args.capital is None
                          else args.capital * PRICE_SCALE, ledger=args.ledger)
        failed = [r.run_id for r in pack.runs if not r.verified]
        text = [f"{'WRITTEN' if not failed else 'WRITTEN, WITH FAILURES'}: evidence pack "
                f"{pack.out_dir} for {len(pack.runs)} run(s): {pack.out_dir / 'index.html'}"]
        text += [f"  run {r}: its signed log does not verify" for r in failed]
        text.append("Re-verify each file with:")
        text += [f"  {c}" for c in pack.commands]
        payload = pack.to_json()
        code = EXIT_OK if not failed else EXIT_FAILED
    if args.json:
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        sys.stdout.write("\n".join(text) + "\n")
    return code
