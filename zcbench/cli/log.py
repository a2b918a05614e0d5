"""``zcbench log``: verify, show, export, witness, replay a run's signed audit log; print its vkey.

Thin over :mod:`zcbench.auditlog`. PATH is a run folder, its ``log/`` folder or an exported slice;
anything else (a build folder, a document) is a usage error (exit 2). ``verify`` exits 0 for
intact, torn_tail and uncommitted_tail (the last two with warnings), 1 for every other
classification. ``replay`` runs the logged batches through a fresh local enclave from the build
and exits 0 when every OUT body matches, 1 on a mismatch, an inconclusive slice or a log that
does not verify, 2 on usage, 3 when no enclave can run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from zcbench.errors import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "log",
        help="verify, show, export, witness and replay a run's signed audit log",
        description="The signed audit log of a run: verify it, look at it, export a slice "
        "that verifies alone, witness its checkpoints, replay it, print its verifier key.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    _register_verify(actions)
    _register_show(actions)
    _register_export(actions)
    _register_witness(actions)
    _register_replay(actions)
    _register_vkey(actions)


def _path_and_trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH",
                        help="run folder, log folder or exported slice")
    parser.add_argument("--trust", default="aws", metavar="aws|dev|PEM",
                        help="root for the boot document: the pinned AWS root (default), the "
                        "development CA (local runs; SIMULATED) or a PEM file")


def _commitment_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--commitment", type=Path, metavar="FILE",
                        help="the build's commitment.json: the boot document's PCRs must match "
                        "it (default: the one of the build the run's summary.json names)")


def _trust(value: str) -> str | Path:
    if value in ("aws", "dev"):
        if value == "dev":
            sys.stderr.write("zcbench: trusting the development CA (--trust dev): SIMULATED\n")
        return value
    return Path(value)  # the CLI checked it names a file


def _boot_verifier(args: argparse.Namespace) -> Any:
    from zcbench.auditlog import boot_verifier_for

    return boot_verifier_for(args.path, commitment=getattr(args, "commitment", None))


def _warn(warnings: Any) -> None:
    from zcbench.cli import cli_wording

    for warning in warnings:
        sys.stderr.write(f"zcbench: warning: {cli_wording(warning)}\n")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        sys.stdout.write(text + "\n")


# -- verify ----------------------------------------------------------------------------------


def _register_verify(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = actions.add_parser(
        "verify",
        help="verify a log or slice from its boot document to every record",
        description="Verify the boot document (at its own time, its PCRs against the build's "
        "commitment), every checkpoint signature, every root and every record. Exit 0: "
        "intact, torn_tail, uncommitted_tail; 1 otherwise; 2 when PATH is no log.",
    )
    _path_and_trust(verify)
    _commitment_option(verify)
    verify.add_argument("--known-checkpoint", type=Path, metavar="FILE",
                        help="a signed checkpoint kept outside the log (an LP's or a witness's): "
                        "catches a log rolled back below it or forked from it")
    verify.add_argument("--from-witness", action="store_true",
                        help="use this machine's witness state for the log's origin as the "
                        "known checkpoint")
    verify.add_argument("--ledger", type=Path, metavar="DIR",
                        help="the strategy's ledger: the run must be in it (run-start, PCR0 "
                        "allowed, final checkpoint = run-end)")
    verify.add_argument("--policy", type=Path, metavar="FILE",
                        help="with --ledger: your tlog-policy for the ledger")
    verify.add_argument("--previous", type=Path, metavar="RUN_DIR",
                        help="the run this one continues: its final checkpoint and positions "
                        "must be what this run's boot names, and the venue state at start "
                        "must add only the fills it recovered")
    verify.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    verify.set_defaults(handler=_verify)


def _witnessed_checkpoint(path: Path) -> bytes | None:
    from zcbench.auditlog import origin_hint
    from zcbench.auditlog.witness import Witness

    origin = origin_hint(path)
    state = Witness().state(origin) if origin else None
    return None if state is None else state.checkpoint


def _verify_text(report: Any) -> str:
    from zcbench.cli import cli_wording

    lines = report.summary_lines()
    return "\n".join([cli_wording(lines[0]), *lines[1:]])


def _verify(args: argparse.Namespace) -> int:
    from zcbench.auditlog import check_log

    trust = _trust(args.trust)
    known = args.known_checkpoint.read_bytes() if args.known_checkpoint else None
    if args.from_witness:
        if known is not None:
            raise UsageError("give --known-checkpoint or --from-witness, not both")
        known = _witnessed_checkpoint(args.path)
        if known is None:
            sys.stderr.write("zcbench: the witness has no state for this log; nothing to match\n")
    report = check_log(args.path, trust=trust, known_checkpoint=known,
                       boot_verifier=_boot_verifier(args))
    if args.ledger is not None and report.verified:
        from zcbench.ledger.runs import check_run_at

        held = check_run_at(args.ledger, args.path, report, args.policy)
        _warn(held.warnings)
        _emit(args, {**report.to_json(), "ledger": held.to_json()},
              _verify_text(report) + f"\nledger: {held.message}")
        return EXIT_OK if held.ok else EXIT_FAILED
    journal = _journal_problems(args.path) if report.verified else []
    chain: list[str] = []
    if args.previous is not None and report.verified:
        from zcbench.host.restart import check_link

        chain = check_link(args.previous, args.path, trust=trust)
    _warn(report.warnings)
    if journal or chain:
        text = _verify_text(report)
        text += "\njournal: " + "; ".join(journal) if journal else ""
        text += "\nchain: " + "; ".join(chain) if chain else ""
        _emit(args, {**report.to_json(), "journal": journal, "chain": chain}, text)
        return EXIT_FAILED
    if args.previous is not None:
        _emit(args, {**report.to_json(), "chain": []},
              _verify_text(report) + f"\nchain: continues {args.previous} (link holds)")
        return EXIT_OK if report.verified else EXIT_FAILED
    _emit(args, report.to_json(), _verify_text(report))
    return EXIT_OK if report.verified else EXIT_FAILED


def _journal_problems(path: Path) -> list[str]:
    """A run folder's journal checked row by row against its signed feedback records, and
    against its signed control records (a limit changed outside the logged command)."""
    if not (path / "journal.jsonl").is_file():
        return []
    import json

    from zcbench.host.controls import control_history
    from zcbench.host.feedback import check_journal

    summary_path = path / "summary.json"
    try:
        summary = json.loads(summary_path.read_bytes()) if summary_path.is_file() else None
    except ValueError:
        summary = None  # the log's verdict stands; the summary is checked where it is read
    controls = control_history(path, summary if isinstance(summary, dict) else None)
    return check_journal(path) + list(controls.problems)


# -- show ------------------------------------------------------------------------------------


def _register_show(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = actions.add_parser(
        "show", help="list the records of a log or slice (unverified)",
        description="List records with ISO times and decoded bodies, streamed: the first "
        "--limit matches are printed without reading the rest of the log. This reads, it "
        "does not verify.")
    show.add_argument("path", type=Path, metavar="PATH",
                      help="run folder, log folder or exported slice")
    show.add_argument("--limit", type=int, default=20,
                      help="rows to print (default 20; 0 for every match)")
    _selection_options(show, required=False)
    show.add_argument("--raw", action="store_true", help="do not decode IN/OUT bodies")
    show.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    show.set_defaults(handler=_show)


def _selection_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--range", metavar="START:STOP", help="record indices [START, STOP)")
    parser.add_argument("--time", metavar="T0:T1",
                        help="event time [T0, T1): ISO 8601 times (UTC unless a zone is given) "
                        "or nanoseconds since the epoch, e.g. "
                        "2026-01-02T15:00:00Z:2026-01-02T16:00:00Z; either side may be empty")
    parser.add_argument("--symbol", help="records (for export: every IN and OUT record of each "
                        "batch) that name this symbol")
    parser.add_argument("--kind", action="append", choices=("boot", "in", "out", "note"),
                        help="records of this kind (repeatable)")
    parser.set_defaults(_selection_required=required)


def _pair(text: str, what: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return int(start), int(stop)
    except ValueError:
        raise UsageError(f"{what} must be START:STOP integers, not {text!r}") from None


def _time_pair(text: str) -> tuple[int | None, int | None]:
    """``T0:T1`` where each side is ISO 8601 (which has colons of its own) or ns, or empty."""
    from zcbench.auditlog import parse_time_ns

    cuts = [i for i, c in enumerate(text) if c == ":"]
    for cut in cuts:
        left, right = text[:cut], text[cut + 1:]
        try:
            t0 = parse_time_ns(left, "--time start") if left.strip() else None
            t1 = parse_time_ns(right, "--time end") if right.strip() else None
        except UsageError:
            continue
        if t0 is None and t1 is None:
            break
        return t0, t1
    raise UsageError(f"--time must be T0:T1 with ISO 8601 times (2026-01-02T15:00:00Z) or "
                     f"nanoseconds, not {text!r}")


def _record_filter(args: argparse.Namespace) -> Any:
    from zcbench.auditlog import RecordFilter

    since = until = None
    if args.time:
        since, until = _time_pair(args.time)
    chosen = RecordFilter(
        kinds=frozenset(args.kind) if args.kind else None,
        symbol=args.symbol,
        since_ns=since,
        until_ns=until,
        index_range=_pair(args.range, "--range") if args.range else None,
    )
    if args._selection_required and chosen.is_everything:
        raise UsageError("choose the records: --range, --time, --symbol or --kind")
    return chosen


def _show(args: argparse.Namespace) -> int:
    from zcbench.auditlog import list_records

    if args.limit < 0:
        raise UsageError("--limit must be 0 (every match) or more")
    listing = list_records(args.path, _record_filter(args), limit=args.limit or None,
                           decode=not args.raw)
    if args.json:
        _emit(args, listing.to_json(), "")
        return EXIT_OK
    out = sys.stdout
    out.write(listing.header() + "\n")
    if listing.rows:
        out.write(f"{'index':>7}  {'kind':<4}  {'seq':>6}  {'event time (UTC)':<30}  body\n")
    for row in listing.rows:
        seq = "" if row.seq is None else str(row.seq)
        when = row.event_time or row.time
        out.write(f"{row.index:>7}  {row.kind:<4}  {seq:>6}  {when:<30}  {row.summary}\n")
    return EXIT_OK


# -- export ----------------------------------------------------------------------------------


def _register_export(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = actions.add_parser(
        "export",
        help="write a slice with inclusion proofs that verifies alone",
        description="Write the selected records with inclusion proofs, the newest signed "
        "checkpoint and the boot record into one file, after checking that it verifies alone "
        "(the whole log is not re-verified: run 'zcbench log verify' for that).",
    )
    _path_and_trust(export)
    _commitment_option(export)
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    _selection_options(export, required=True)
    export.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from zcbench.auditlog import export_slice

    summary = export_slice(args.path, args.out, record_filter=_record_filter(args),
                           trust=_trust(args.trust), boot_verifier=_boot_verifier(args))
    payload = {
        "path": str(summary.path),
        "entries": summary.entries,
        "checkpoint_size": summary.checkpoint_size,
        "origin": summary.origin,
    }
    _emit(args, payload, f"wrote {summary.entries} records with proofs against size "
                         f"{summary.checkpoint_size} of {summary.origin} to {summary.path} "
                         "(it verifies alone)")
    return EXIT_OK


# -- witness ---------------------------------------------------------------------------------


def _register_witness(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    witness = actions.add_parser(
        "witness",
        help="record (and optionally cosign) a log's newest checkpoint; refuse inconsistent ones",
        description="Verify the log against this machine's witness state for its origin (the "
        "same verdict as 'log verify --from-witness'), then store its newest checkpoint "
        "(consistency proof from the log). Refuses a rollback, a fork or another key (exit 1). "
        "--list shows the state.",
    )
    witness.add_argument("path", type=Path, nargs="?", metavar="PATH")
    witness.add_argument("--trust", default="aws", metavar="aws|dev|PEM")
    _commitment_option(witness)
    witness.add_argument("--cosign-as", metavar="NAME",
                         help="cosign (cosignature/v1) with this machine's witness key")
    witness.add_argument("--out", type=Path, metavar="FILE", help="write the cosigned note here")
    witness.add_argument("--list", action="store_true", help="list the witnessed origins")
    witness.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    witness.set_defaults(handler=_witness)


def _witness(args: argparse.Namespace) -> int:
    from zcbench.auditlog import check_log, locate_log
    from zcbench.auditlog.checkpoint import parse_checkpoint_note
    from zcbench.auditlog.witness import Witness, consistency_proof_from_log

    witness = Witness()
    if args.list:
        states = witness.origins()
        listing: dict[str, Any] = {
            "origins": [{"origin": s.origin, "size": s.size, "root": s.root.hex()}
                        for s in states]
        }
        _emit(args, listing, "\n".join(f"{s.origin} {s.size} {s.root.hex()}" for s in states)
              or "no origins witnessed yet")
        return EXIT_OK
    if args.path is None:
        raise UsageError("give a PATH to witness, or --list")
    trust = _trust(args.trust)
    known = _witnessed_checkpoint(args.path)
    report = check_log(args.path, trust=trust, known_checkpoint=known,
                       boot_verifier=_boot_verifier(args))
    if not report.verified or report.latest_checkpoint is None or report.origin is None:
        from zcbench.cli import cli_wording

        sys.stderr.write(cli_wording(f"zcbench: the log does not verify "
                                     f"({report.classification}): {report.message}") + "\n")
        return EXIT_FAILED
    _warn(report.warnings)
    previous = witness.state(report.origin)
    new_size = parse_checkpoint_note(report.latest_checkpoint).size
    if previous is not None and new_size < previous.size:
        # The log's own newest checkpoint is older than what was witnessed (it was damaged or
        # cut as a torn tail), but the log's records still hash to the witnessed checkpoint
        # (check_log matched it above): nothing new to witness, nothing inconsistent.
        payload = {"origin": previous.origin, "size": previous.size,
                   "root": previous.root.hex(), "previous_size": previous.size,
                   "cosigned": False, "log_checkpoint_size": new_size}
        _emit(args, payload, f"unchanged: {previous.origin} stays at size {previous.size}; "
                             f"the log's newest own checkpoint is of size {new_size}, and its "
                             "records match the witnessed checkpoint")
        return EXIT_OK
    proof = None
    if previous is not None and 0 < previous.size < new_size and \
            locate_log(args.path).kind == "log":
        proof = consistency_proof_from_log(args.path, previous.size, new_size)
    if report.public_key is None:  # set whenever the boot verified; kept explicit
        raise UsageError("the log's boot record gave no key to witness against")
    timestamp = None
    if args.cosign_as:
        import time

        timestamp = int(time.time())
    result = witness.observe(report.latest_checkpoint, public_key=report.public_key, proof=proof,
                             cosign_as=args.cosign_as, timestamp=timestamp)
    if result.cosigned is not None and args.out is not None:
        args.out.write_bytes(result.cosigned)
    payload = {
        "origin": result.state.origin,
        "size": result.state.size,
        "root": result.state.root.hex(),
        "previous_size": result.previous.size if result.previous else None,
        "cosigned": result.cosigned is not None,
    }
    grew = f" (was {result.previous.size})" if result.previous else " (first sight)"
    _emit(args, payload, f"witnessed {result.state.origin} at size {result.state.size}{grew}")
    return EXIT_OK


# -- replay ----------------------------------------------------------------------------------


def _register_replay(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = actions.add_parser(
        "replay",
        help="re-run the logged IN batches in a replay enclave and compare the signals",
        description="Verify the log, then run its IN batches through a fresh local enclave "
        "loaded from the build (unsealed through the key broker like a live run) and compare "
        "every OUT body byte for byte (never record times). --range replays from the newest "
        "strategy snapshot logged before the range, else (or with --from-start) from the "
        "run's first batch (a strategy may keep state), and compares only the batches in the "
        "range; "
        "a slice that lacks earlier batches can only be inconclusive on a mismatch. Exit 0: "
        "every compared batch matches; 1: a mismatch, an inconclusive slice or a log that "
        "does not verify; 2: usage; 3: no enclave could run.",
    )
    _path_and_trust(replay)
    _commitment_option(replay)
    replay.add_argument("--build", type=Path, metavar="DIR",
                        help="the build folder (default: the one named in the run's "
                        "summary.json)")
    replay.add_argument("--range", metavar="START:STOP",
                        help="compare only batches whose records lie in [START, STOP)")
    replay.add_argument("--from-start", action="store_true",
                        help="with --range: replay from the run's first batch, not from the "
                        "newest strategy snapshot logged before the range")
    replay.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the replay enclave's own log in DIR (default: discarded)")
    replay.add_argument("--unsafe-skip-log-check", action="store_true",
                        help="replay without verifying the log first (UNSAFE: a match then "
                        "proves nothing about what the enclave did)")
    replay.add_argument("--ledger", type=Path, metavar="DIR", default=None,
                        help="the strategy's ledger: a build packaged with --ledger-origin "
                        "replays only through the ledger's gate, and the replay is a run in it")
    replay.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    replay.set_defaults(handler=_replay)


def _replay_lines(report: Any) -> list[str]:
    """The replay report as text lines (CLI)."""
    from zcbench.cli import cli_wording

    lines = [cli_wording(f"{report.headline}: {report.message}"),
             f"  batches {report.batches}, matched {report.matched}, scope {report.scope}, "
             f"log {report.log_classification or 'not checked'}"]
    lines += [f"  batch {m.seq} (OUT record {m.index}): logged {m.expected}; replayed {m.actual}"
              for m in report.mismatches[:20]]
    if len(report.mismatches) > 20:
        lines.append(f"  ... and {len(report.mismatches) - 20} more (--json lists all)")
    if report.missing:
        lines.append(f"  not answered: seqs {list(report.missing[:20])}")
    if report.extra:
        lines.append(f"  unexpected answers: seqs {list(report.extra[:20])}")
    return lines


def _replay(args: argparse.Namespace) -> int:
    from zcbench.auditlog.replay import check_replay
    from zcbench.host.replay import EnclaveReplayRunner, build_of_run

    trust = _trust(args.trust)
    try:
        build = args.build if args.build is not None else build_of_run(args.path)
    except UsageError as exc:
        raise UsageError(f"{exc} (--build DIR)") from None
    sys.stderr.write("zcbench: the replay enclave runs locally (development CA): SIMULATED\n")
    ledger = None
    if args.ledger is not None:
        from zcbench.ledger.runs import LedgerRunHook

        ledger = LedgerRunHook(args.ledger, args.keep or args.path)
    runner = EnclaveReplayRunner(build, keep_dir=args.keep, ledger=ledger)
    report = check_replay(
        args.path, runner, trust=trust, boot_verifier=_boot_verifier(args),
        index_range=_pair(args.range, "--range") if args.range else None,
        unsafe_skip_log_check=args.unsafe_skip_log_check,
        from_snapshot=not args.from_start,
    )
    _warn(report.warnings)
    payload = {**report.to_json(), "build": str(build), "replay_run_id": runner.last_run_id,
               "renumbered": runner.renumbered}
    _emit(args, payload, "\n".join(_replay_lines(report)))
    return EXIT_OK if report.verified else EXIT_FAILED


# -- vkey ------------------------------------------------------------------------------------


def _register_vkey(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vkey = actions.add_parser(
        "vkey",
        help="print the log's C2SP verifier key (from its verified boot document)",
        description="Verify the boot document of the log or slice at PATH and print the "
        "C2SP note verifier key of its log key under its origin (<origin>+<key id>+<key>), "
        "for witnesses and other tlog tools.",
    )
    _path_and_trust(vkey)
    _commitment_option(vkey)
    vkey.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    vkey.set_defaults(handler=_vkey)


def _vkey(args: argparse.Namespace) -> int:
    from zcbench.auditlog import log_vkey

    trust = _trust(args.trust)
    identity = log_vkey(args.path, trust=trust, boot_verifier=_boot_verifier(args))
    _warn(identity.warnings)
    _emit(args, {"origin": identity.origin, "vkey": identity.vkey,
                 "simulated": identity.simulated},
          identity.vkey + ("\n  SIMULATED (development CA)" if identity.simulated else ""))
    return EXIT_OK
