"""``zcbench verify remote URL``: the LP's one command against a fund's proof service (thin over
:mod:`zcbench.serve.remote`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from zcbench.errors import EXIT_FAILED, EXIT_OK, DataError, EnvError, UsageError

__all__ = ["register_kind"]


def register_kind(kinds: Any) -> None:
    p = kinds.add_parser(
        "remote",
        help="verify a fund's running strategy over HTTP (attestation, log tiles, last visit)",
        description=(
            "Ask the proof service at URL for a fresh attestation with a random nonce, verify "
            "it (chain to the root you name, PCRs against the commitment, nonce, age), verify "
            "the checkpoint it carries against the log tiles served (roots recomputed), and "
            "compare with the checkpoint saved on your last visit (--state): a rollback or a "
            "fork is caught. Exit 0 verified, 1 failed, 2 usage, 3 server unreachable or no "
            "enclave running."
        ),
    )
    p.add_argument("url", metavar="URL", help="the proof service, e.g. https://fund.example:8443")
    p.add_argument("--commitment", required=True, metavar="FILE",
                   help="the commitment.json the fund handed you")
    p.add_argument("--trust", default="aws", metavar="aws|dev|PEMFILE",
                   help="root of trust: aws (default), dev (SIMULATED) or a PEM root file")
    p.add_argument("--token", default=None, metavar="T",
                   help="your reader token (or set ZCBENCH_TOKEN)")
    p.add_argument("--state", type=Path, default=None, metavar="DIR",
                   help="where your last-seen checkpoints are kept (rollback and fork checks)")
    p.add_argument("--report", type=Path, default=None, metavar="OUT.html",
                   help="also write the verdict as an HTML page to file")
    p.add_argument("--max-age", type=float, default=300.0, metavar="SECONDS",
                   help="refuse documents older than this (default 300)")
    p.add_argument("--tls-ca", type=Path, default=None, metavar="PEM",
                   help="CA bundle for the server's TLS certificate (default: the system's)")
    p.add_argument("--ledger-vkey", default=None, metavar="VKEY",
                   help="the ledger key the fund handed you (a vkey, or a file holding it): "
                   "also hold the run to the ledger served at URL/ledger/")
    p.add_argument("--policy", type=Path, default=None, metavar="FILE",
                   help="a tlog-policy naming the ledger key and the witnesses' quorum (the "
                   "ledger checkpoint must carry it)")
    p.add_argument("--slice", default=None, metavar="START:STOP",
                   help="also fetch records [START, STOP) of the run with their proofs (your "
                   "token's scope must cover the run) and verify them as 'zcbench log verify' "
                   "verifies a slice file")
    p.add_argument("--slice-out", type=Path, default=None, metavar="FILE",
                   help="with --slice: keep the verified slice in FILE (for 'zcbench log "
                   "verify' or 'log replay' later)")
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.set_defaults(handler=_handle)


def _trust(value: str) -> str | Path:
    if value in ("aws", "dev"):
        return value
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"--trust {value!r}: use aws, dev or an existing PEM file")
    return path


def _handle(args: argparse.Namespace) -> int:
    from zcbench.nitro.commitment import Commitment
    from zcbench.serve.remote import check_remote

    if not (math.isfinite(args.max_age) and args.max_age > 0):
        raise UsageError("--max-age must be a positive number of seconds")
    if args.tls_ca is not None and not args.tls_ca.is_file():
        raise UsageError(f"--tls-ca {args.tls_ca} does not exist")
    if args.state is not None and args.state.exists() and not args.state.is_dir():
        raise UsageError(f"--state {args.state} is a file, not a folder")
    token = args.token or os.environ.get("ZCBENCH_TOKEN") or None
    ledger_vkey, policy = _ledger_args(args)
    slice_range = _slice_range(args.slice) if args.slice is not None else None
    if args.slice_out is not None and slice_range is None:
        raise UsageError("--slice-out needs --slice START:STOP")
    report = check_remote(
        args.url,
        Commitment.load(args.commitment),
        trust=_trust(args.trust),
        token=token,
        state=args.state,
        max_age=dt.timedelta(seconds=args.max_age),
        tls_verify=str(args.tls_ca) if args.tls_ca is not None else True,
        ledger_vkey=ledger_vkey,
        policy=policy,
        slice_range=slice_range,
        slice_out=args.slice_out,
    )
    verdict = report.to_dict()
    if args.report is not None:
        from zcbench.serve.report import render_report

        try:
            args.report.write_text(render_report(report), encoding="utf-8")
        except OSError as exc:
            raise EnvError(f"cannot write --report {args.report}: {exc.strerror}") from None
    if report.simulated:
        sys.stderr.write("SIMULATED: the document chains to the development CA, not AWS; it "
                         "proves nothing about real hardware\n")
    if args.json:
        print(json.dumps(verdict, sort_keys=True))
    else:
        _print(verdict)
    return EXIT_OK if report.verified else EXIT_FAILED


def _slice_range(text: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    if not (sep and start.isdigit() and stop.isdigit() and int(start) < int(stop)):
        raise UsageError(f"--slice must be START:STOP with 0 <= START < STOP, not {text!r}")
    return int(start), int(stop)


def _ledger_args(args: argparse.Namespace) -> tuple[str | None, Any]:
    vkey: str | None = args.ledger_vkey
    if vkey is not None:
        path = Path(vkey)
        if "+" not in vkey and path.is_file():
            vkey = path.read_text(encoding="utf-8").strip()
        from zcbench.auditlog.note import parse_vkey

        try:
            parse_vkey(vkey)
        except (ValueError, DataError) as exc:
            raise UsageError(f"--ledger-vkey is no vkey: {exc}") from None
    policy = None
    if args.policy is not None:
        from zcbench.ledger.policy import load_policy

        if not args.policy.is_file():
            raise UsageError(f"--policy {args.policy} does not exist")
        policy = load_policy(args.policy)
    return vkey, policy


def _print(v: dict[str, Any]) -> None:
    label = "SIMULATED " if v["simulated"] else ""
    head = "VERIFIED" if v["verified"] else f"FAILED: {v['failed_check']}: {v['message']}"
    print(f"{label}{head}")
    if not v["verified"] and (v["expected"] or v["actual"]):
        print(f"  expected: {v['expected']}\n  actual:   {v['actual']}")
    print(f"  server:     {v['url']}")
    if v["trust_root"]:
        print(f"  root:       {v['trust_root'].get('description')}")
    att = v["attestation"]
    if att.get("verified"):
        checked = ", ".join(f"PCR{i}" for i in att.get("checked_pcrs", []))
        print(f"  attestation: verified ({checked} as committed; your nonce; "
              f"signed {att.get('timestamp')})")
    if v["origin"]:
        print(f"  log:        {v['origin']}")
    if v["checkpoint"]:
        print(f"  attested:   size {v['checkpoint']['size']}, root {v['checkpoint']['root']}")
    if v["published"]:
        print(f"  served:     size {v['published']['size']}, root {v['published']['root']}"
              + ("; both roots recomputed from the tiles" if v["tiles_checked"] else ""))
    if v["state"]:
        previous = v["previous"]
        saved = f" (saved size {previous['size']})" if previous else ""
        print(f"  last visit: {v['state'].replace('_', ' ')}{saved}")
    sliced = v.get("slice")
    if sliced:
        withheld = "; IN records withheld by the server" if sliced["withheld"] else ""
        print(f"  slice:      records [{sliced['start']}, {sliced['stop']}): "
              f"{sliced['records']} verified against size {sliced['size']}{withheld}")
    ledger = v.get("ledger")
    if ledger:
        print(f"  ledger:     {ledger.get('origin')}, size {ledger.get('size')}; passed: "
              f"{', '.join(ledger.get('checks', [])) or 'none'}")
