"""``zcbench demo``: the main job end to end on the embedded defaults (thin over run_demo)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="research -> package -> live enclave run -> attestation -> log audit -> LP report",
        description=(
            "Run the product's main job locally: backtest the research notebook's strategy, "
            "package it into a sealed, measured bundle, run it live in the local enclave, "
            "request and verify a fresh attestation against the commitment, verify the signed "
            "log, and write the LP report. Local results are SIMULATED (development CA)."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder")
    p.add_argument("--notebook", type=Path, default=None, help="research notebook to promote")
    p.add_argument("--seed", type=int, default=7, help="synthetic data seed")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of synthetic ticks")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from zcbench.demo import run_demo

    say = (lambda s: print(s, file=sys.stderr)) if args.json else print
    result = run_demo(
        args.out, notebook=args.notebook, seed=args.seed, duration_s=args.duration, say=say
    )
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
        return 0
    print()
    print("SIMULATED: every document here is signed by the local development CA, not AWS.")
    print(f"  build folder (bundle, commitment.json): {result.build_dir}")
    print(f"  run folder (signed log, journal, boot document): {result.run_dir}")
    print(f"  attestation document: {result.attestation}")
    print(f"  LP report: {result.report}")
    print("Re-verify like an LP would:")
    print(
        f"  zcbench verify attestation {result.attestation} --trust dev "
        f"--commitment {result.build_dir / 'commitment.json'}"
    )
    print(f"  zcbench log verify {result.run_dir} --trust dev")
    return 0
