"""``zcbench log``: verify, show, export, witness and replay a run's signed audit log.

Thin over :mod:`zcbench.auditlog`. PATH is a run folder, its ``log/`` folder or an exported slice.
``verify`` exits 0 for intact, torn_tail and uncommitted_tail (the last two with warnings), 1 for
every other classification. ``replay`` runs the logged batches through a fresh local enclave
from the build and exits 0 when every OUT body matches, 1 on a mismatch or a log that does not
verify, 2 on usage, 3 when no enclave can run.
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
        "that verifies alone, or witness its checkpoints.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    verify = actions.add_parser(
        "verify",
        help="verify a log or slice from its boot document to every record",
        description="Verify the boot document (at its own time), every checkpoint signature, "
        "every root and every record. Exit 0: intact, torn_tail, uncommitted_tail; 1 otherwise.",
    )
    _path_and_trust(verify)
    verify.add_argument("--known-checkpoint", metavar="FILE",
                        help="a signed checkpoint kept outside the log (an LP's or a witness's): "
                        "catches a log rolled back below it or forked from it")
    verify.add_argument("--from-witness", action="store_true",
                        help="use this machine's witness state for the log's origin as the "
                        "known checkpoint")
    verify.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    verify.set_defaults(handler=_verify)

    show = actions.add_parser("show", help="list the records of a log or slice (unverified)",
                              description="List records; this reads, it does not verify.")
    show.add_argument("path", type=Path, metavar="PATH")
    show.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    show.add_argument("--raw", action="store_true", help="do not decode IN/OUT bodies")
    show.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    show.set_defaults(handler=_show)

    export = actions.add_parser(
        "export",
        help="write a slice with inclusion proofs that verifies alone",
        description="Verify the log, then write the selected records with inclusion proofs, "
        "the newest signed checkpoint and the boot record into one file.",
    )
    _path_and_trust(export)
    export.add_argument("--out", type=Path, required=True, metavar="FILE")
    chosen = export.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--range", metavar="START:STOP", help="record indices [START, STOP)")
    chosen.add_argument("--time", metavar="T0:T1", help="event time [T0, T1), ns since epoch")
    chosen.add_argument("--symbol", help="every batch (IN and OUT) that names this symbol")
    export.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    export.set_defaults(handler=_export)

    witness = actions.add_parser(
        "witness",
        help="record (and optionally cosign) a log's newest checkpoint; refuse inconsistent ones",
        description="Verify the log, then check its newest checkpoint against this machine's "
        "witness state for its origin (consistency proof from the log) and store it. Refuses "
        "a rollback, a fork or another key (exit 1). --list shows the state.",
    )
    witness.add_argument("path", type=Path, nargs="?", metavar="PATH")
    witness.add_argument("--trust", default="aws", metavar="aws|dev|PEM")
    witness.add_argument("--cosign-as", metavar="NAME",
                         help="cosign (cosignature/v1) with this machine's witness key")
    witness.add_argument("--out", type=Path, metavar="FILE", help="write the cosigned note here")
    witness.add_argument("--list", action="store_true", help="list the witnessed origins")
    witness.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    witness.set_defaults(handler=_witness)

    _register_replay(actions)


def _path_and_trust(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, metavar="PATH",
                        help="run folder, log folder or exported slice")
    parser.add_argument("--trust", default="aws", metavar="aws|dev|PEM",
                        help="root for the boot document: the pinned AWS root (default), the "
                        "development CA (local runs; SIMULATED) or a PEM file")


def _trust(value: str) -> str | Path:
    if value in ("aws", "dev"):
        if value == "dev":
            sys.stderr.write("zcbench: trusting the development CA (--trust dev): SIMULATED\n")
        return value
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"--trust must be aws, dev or a PEM file; {value!r} is none")
    return path


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    else:
        sys.stdout.write(text + "\n")


def _origin_hint(path: Path) -> str | None:
    """The origin named by the log's first checkpoint (unverified; a lookup key only)."""
    from zcbench.auditlog._errors import LogFormatError
    from zcbench.auditlog._fs import OsFileSystem
    from zcbench.auditlog._walk import LogWalk
    from zcbench.auditlog.checkpoint import parse_checkpoint_note
    from zcbench.auditlog.verify import resolve_log_path

    kind, folder, _ = resolve_log_path(path)
    if kind != "log":
        return None
    notes, _, _ = LogWalk(folder, OsFileSystem()).checkpoint_notes()
    for note, _ in notes:
        try:
            return parse_checkpoint_note(note).origin
        except LogFormatError:
            continue  # an unparsable note is simply not a hint
    return None


def _verify(args: argparse.Namespace) -> int:
    from zcbench.auditlog.verify import check_log
    from zcbench.auditlog.witness import Witness

    trust = _trust(args.trust)
    known = None
    if args.known_checkpoint:
        known = Path(args.known_checkpoint).read_bytes()
    if args.from_witness:
        if known is not None:
            raise UsageError("give --known-checkpoint or --from-witness, not both")
        origin = _origin_hint(args.path)
        state = Witness().state(origin) if origin else None
        if state is None:
            sys.stderr.write("zcbench: the witness has no state for this log; nothing to match\n")
        else:
            known = state.checkpoint
    report = check_log(args.path, trust=trust, known_checkpoint=known)
    for warning in report.warnings:
        sys.stderr.write(f"zcbench: warning: {warning}\n")
    text = (
        f"{report.classification.upper()}: {report.message}\n"
        f"  entries {report.entries}, records {report.records}, checkpoints "
        f"{report.checkpoints}, first bad index {report.first_bad_index}"
        + (f"\n  at {report.bad_path}:{report.bad_offset}" if report.bad_offset is not None
           else "")
        + ("\n  SIMULATED (development CA)" if report.simulated else "")
    )
    _emit(args, report.to_json(), text)
    return EXIT_OK if report.verified else EXIT_FAILED


def _show(args: argparse.Namespace) -> int:
    import polars as pl

    from zcbench.auditlog.frame import strategy_summary, to_polars
    from zcbench.auditlog.verify import resolve_log_path

    resolve_log_path(args.path)
    frame = to_polars(args.path, decoder=None if args.raw else strategy_summary)
    view = frame.with_columns(pl.col("body").bin.size().alias("body_bytes")).drop("body")
    if args.json:
        rows = view.head(args.limit).to_dicts() if args.limit >= 0 else view.to_dicts()
        _emit(args, {"records": frame.height, "rows": rows}, "")
        return EXIT_OK
    with pl.Config(tbl_rows=max(args.limit, 1), tbl_cols=-1, fmt_str_lengths=40):
        sys.stdout.write(f"{frame.height} records (unverified listing)\n")
        sys.stdout.write(str(view.head(args.limit)) + "\n")
    return EXIT_OK


def _pair(text: str, what: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return int(start), int(stop)
    except ValueError:
        raise UsageError(f"{what} must be START:STOP integers, not {text!r}") from None


def _export(args: argparse.Namespace) -> int:
    from zcbench.auditlog.export import export_slice

    summary = export_slice(
        args.path,
        args.out,
        index_range=_pair(args.range, "--range") if args.range else None,
        time_range=_pair(args.time, "--time") if args.time else None,
        symbol=args.symbol,
        trust=_trust(args.trust),
    )
    payload = {
        "path": str(summary.path),
        "entries": summary.entries,
        "checkpoint_size": summary.checkpoint_size,
        "origin": summary.origin,
    }
    _emit(args, payload, f"wrote {summary.entries} records with proofs against size "
                         f"{summary.checkpoint_size} of {summary.origin} to {summary.path}")
    return EXIT_OK


def _witness(args: argparse.Namespace) -> int:
    from zcbench.auditlog.checkpoint import parse_checkpoint_note
    from zcbench.auditlog.verify import check_log, resolve_log_path
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
    report = check_log(args.path, trust=_trust(args.trust))
    if not report.verified or report.latest_checkpoint is None or report.origin is None:
        sys.stderr.write(f"zcbench: the log does not verify ({report.classification}): "
                         f"{report.message}\n")
        return EXIT_FAILED
    kind, _, _ = resolve_log_path(args.path)
    previous = witness.state(report.origin)
    new_size = parse_checkpoint_note(report.latest_checkpoint).size
    proof = None
    if previous is not None and 0 < previous.size < new_size and kind == "log":
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
    payload: dict[str, Any] = {
        "origin": result.state.origin,
        "size": result.state.size,
        "root": result.state.root.hex(),
        "previous_size": result.previous.size if result.previous else None,
        "cosigned": result.cosigned is not None,
    }
    grew = f" (was {result.previous.size})" if result.previous else " (first sight)"
    _emit(args, payload, f"witnessed {result.state.origin} at size {result.state.size}{grew}")
    return EXIT_OK


def _register_replay(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = actions.add_parser(
        "replay",
        help="re-run the logged IN batches in a replay enclave and compare the signals",
        description="Verify the log, then run its IN batches through a fresh local enclave "
        "loaded from the build (unsealed through the key broker like a live run) and compare "
        "every OUT body byte for byte (never record times). A slice or --range replays only "
        "the batches whose IN and OUT records are both in it. Exit 0: every batch matches; "
        "1: a mismatch or a log that does not verify; 2: usage; 3: no enclave could run.",
    )
    _path_and_trust(replay)
    replay.add_argument("--build", type=Path, metavar="DIR",
                        help="the build folder (default: the one named in the run's "
                        "summary.json)")
    replay.add_argument("--range", metavar="START:STOP",
                        help="only batches whose records lie in [START, STOP)")
    replay.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the replay enclave's own log in DIR (default: discarded)")
    replay.add_argument("--unsafe-skip-log-check", action="store_true",
                        help="replay without verifying the log first (UNSAFE: a match then "
                        "proves nothing about what the enclave did)")
    replay.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from zcbench.auditlog.replay import check_replay
    from zcbench.errors import EnvError
    from zcbench.host.replay import EnclaveReplayRunner, build_of_run

    trust = _trust(args.trust)
    try:
        build = args.build if args.build is not None else build_of_run(args.path)
    except UsageError as exc:
        raise UsageError(f"{exc} (--build DIR)") from None
    if not build.is_dir():
        raise EnvError(f"build folder {build} does not exist; give --build DIR")
    sys.stderr.write("zcbench: the replay enclave runs locally (development CA): SIMULATED\n")
    runner = EnclaveReplayRunner(build, keep_dir=args.keep)
    report = check_replay(
        args.path, runner, trust=trust,
        index_range=_pair(args.range, "--range") if args.range else None,
        unsafe_skip_log_check=args.unsafe_skip_log_check,
    )
    for warning in report.warnings:
        sys.stderr.write(f"zcbench: warning: {warning}\n")
    lines = [f"{'MATCH' if report.verified else 'MISMATCH'}: {report.message}",
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
    payload = {**report.to_json(), "build": str(build), "replay_run_id": runner.last_run_id,
               "renumbered": runner.renumbered}
    _emit(args, payload, "\n".join(lines))
    return EXIT_OK if report.verified else EXIT_FAILED
