"""``zcbench reconcile RUN_DIR... --statement FILE``: runs against the venue's statement
(thin over zcbench.venue.reconcile)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from zcbench.errors import EXIT_FAILED, EXIT_OK

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile",
        help="reconcile runs' signed logs and journals with the venue's statement",
        description=(
            "Check, across a chain of runs, that every execution in the venue's statement (a "
            "FIX drop copy, or a CSV of executions) maps to an order of these runs that maps "
            "to one signed signal, that every signed signal has its outcome, that sides, "
            "quantities and prices agree, and that positions recomputed from the fills agree. "
            "Each discrepancy is named by ExecID and log index. Exit 0 when everything "
            "reconciles, 1 when anything does not."
        ),
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folders, oldest first")
    p.add_argument("--statement", type=Path, required=True, metavar="FILE",
                   help="the venue's drop copy (FIX) or a CSV of executions")
    p.add_argument("--trust", default="aws", metavar="aws|dev|PEMFILE",
                   help="root of trust for the runs' boot documents (local runs: dev)")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from zcbench.venue.reconcile import check_reconciliation

    report = check_reconciliation(args.run_dirs, args.statement, trust=args.trust)
    if args.json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        print("\n".join(report.summary_lines()))
    return EXIT_OK if report.ok else EXIT_FAILED
