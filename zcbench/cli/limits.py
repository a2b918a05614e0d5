"""``zcbench limits set|show``, ``zcbench kill``, ``zcbench enable``: a run's risk limits and
kill switch, changed only through the run's control socket and each change a signed control
record (thin over zcbench.serve.control and zcbench.host.controls)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from zcbench.errors import EXIT_FAILED, EXIT_OK

__all__ = ["register"]


def _operator(p: argparse.ArgumentParser) -> None:
    p.add_argument("--operator", required=True, metavar="NAME",
                   help="who makes the change (recorded in the signed control record)")


def register(sub: Any) -> None:
    limits = sub.add_parser(
        "limits", help="a run's risk limits: change them while it runs, or show their history",
        description="Every change to a running run's limits goes through its control socket "
        "and is logged as a signed control record before it is in force (from the next batch).")
    actions = limits.add_subparsers(dest="limits_command", metavar="ACTION")
    actions.required = True
    change = actions.add_parser(
        "set", help="change limits of a running run",
        description="Change one or more limits of the run live in RUN_DIR, e.g. "
        "'zcbench limits set run-1 --operator alice max_position=500'. Prints the control "
        "record's log index and the limits now in force.")
    change.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the live run's folder")
    _operator(change)
    change.add_argument("--reason", default="", help="why (one line, kept in the record)")
    change.add_argument("assignments", nargs="+", metavar="LIMIT=VALUE",
                        help="max_position, max_notional, max_orders_per_s, price_collar_bps")
    change.add_argument("--json", action="store_true", help="print one JSON object")
    change.set_defaults(handler=_set)
    show = actions.add_parser(
        "show", help="the limits in force at the start and every change (from the signed log)",
        description="List a run's control records: the limits at its start, every change "
        "(who, when, old, new), kill and re-enable, and anything in its journal or summary that "
        "contradicts them (exit 1). This reads the log; 'zcbench log verify' verifies it.")
    show.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_show)
    kill = sub.add_parser(
        "kill", help="engage a running run's kill switch (logged, by a named operator)",
        description="Every later order of the run in RUN_DIR is refused until an operator "
        "re-enables it with 'zcbench enable'.")
    kill.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the live run's folder")
    _operator(kill)
    kill.add_argument("--reason", default="", help="why (one line, kept in the record)")
    kill.add_argument("--json", action="store_true", help="print one JSON object")
    kill.set_defaults(handler=_action("kill"))
    enable = sub.add_parser(
        "enable", help="release a running run's kill switch (logged, by a named operator)",
        description="Trading resumes from the next batch of the run in RUN_DIR.")
    enable.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the live run's folder")
    _operator(enable)
    enable.add_argument("--reason", default="", help="why (one line, kept in the record)")
    enable.add_argument("--json", action="store_true", help="print one JSON object")
    enable.set_defaults(handler=_action("enable"))


def _print(args: argparse.Namespace, index: int, limits: dict[str, int], what: str) -> int:
    if args.json:
        print(json.dumps({"log_index": index, "limits": limits}, sort_keys=True))
    else:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(limits.items()))
        print(f"{what}: control record at log index {index}; in force from the next batch: "
              f"{shown}")
    return EXIT_OK


def _set(args: argparse.Namespace) -> int:
    from zcbench.host.controls import parse_assignments
    from zcbench.serve.control import control_run

    values = parse_assignments(args.assignments)
    index, limits = control_run(args.run_dir, "set", operator=args.operator, values=values,
                                reason=args.reason)
    return _print(args, index, limits, f"limits changed by {args.operator}")


def _action(action: str) -> Any:
    def handle(args: argparse.Namespace) -> int:
        from zcbench.serve.control import control_run

        index, limits = control_run(args.run_dir, action, operator=args.operator,
                                    reason=args.reason)
        what = "kill switch engaged" if action == "kill" else "trading re-enabled"
        return _print(args, index, limits, f"{what} by {args.operator}")

    return handle


def _show(args: argparse.Namespace) -> int:
    from zcbench.evidence.collect import iso_ns
    from zcbench.host.controls import control_history

    summary_path = args.run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    history = control_history(args.run_dir, summary if isinstance(summary, dict) else None)
    if args.json:
        print(json.dumps({"events": [
            {"log_index": e.log_index, "time_utc": iso_ns(e.time_ns), "action": e.record.action,
             "operator": e.record.operator, "reason": e.record.reason,
             "old": dict(e.record.old), "new": dict(e.record.new)} for e in history.events],
            "problems": list(history.problems)}, sort_keys=True))
    else:
        if not history.events:
            print("no control records: this run recorded no limits")
        for e in history.events:
            changes = ", ".join(
                f"{k} {'' if old is None else f'{old} -> '}{new}"
                for k, (old, new) in e.record.changed().items())
            why = f" ({e.record.reason})" if e.record.reason else ""
            print(f"{iso_ns(e.time_ns)}  #{e.log_index}  {e.record.action:<6} "
                  f"{e.record.operator}{why}: {changes or 'no change'}")
        for problem in history.problems:
            print(f"FLAG: {problem}")
    return EXIT_FAILED if history.problems else EXIT_OK
