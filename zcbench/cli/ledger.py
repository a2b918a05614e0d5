"""``zcbench ledger init|show|announce|revoke|witness|proof|verify``: a strategy's ledger.

Thin over :mod:`zcbench.ledger`. ``init`` makes the ledger with the genesis build's commitment;
``announce`` endorses a successor build with a notice period; ``revoke`` withdraws one;
``witness`` submits the newest checkpoint to a policy's witnesses; ``proof`` exports one entry
as a ``.tlog-proof``; ``verify`` is the LP's check (exit 0 pass, 1 failed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["parse_duration", "register"]

_DURATION: Final = re.compile(r"(0|[1-9][0-9]{0,9})(s|m|h|d)")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> int:
    """Nanoseconds in a duration such as ``30s``, ``15m``, ``12h`` or ``7d``."""
    from zcbench.errors import UsageError

    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--notice {text!r} is not a duration such as 30s, 15m, 12h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)] * 10**9


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "ledger",
        help="a strategy's witnessed ledger: versions, upgrades and runs in one history",
        description="One append-only, witnessed log per strategy, under a fixed origin and a "
        "stable ledger key: which build (PCR0) was announced when, valid from when, revoked "
        "when, and every run. LPs verify it against their tlog-policy.",
    )
    actions = parser.add_subparsers(dest="ledger_command", metavar="ACTION")
    actions.required = True

    init = actions.add_parser("init", help="make a ledger whose genesis entry is BUILD_DIR")
    init.add_argument("folder", type=Path, metavar="NEW_LEDGER",
                      help="the ledger folder to make (absent or empty)")
    init.add_argument("--origin", required=True, metavar="ORIGIN",
                      help="<fund>/zcbench/<strategy>, fixed for the ledger's life")
    init.add_argument("--genesis", type=Path, required=True, metavar="BUILD_DIR", dest="build",
                      help="the first build (folder from zcbench package)")
    init.add_argument("--json", action="store_true", help="print one JSON object")
    init.set_defaults(handler=_init)

    show = actions.add_parser("show", help="versions (live when, revoked when), runs, checkpoint")
    show.add_argument("folder", type=Path, metavar="DIR")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_show)

    announce = actions.add_parser("announce", help="endorse a successor build after a notice")
    announce.add_argument("build", type=Path, metavar="BUILD_DIR")
    announce.add_argument("--ledger", type=Path, required=True, metavar="DIR")
    announce.add_argument("--notice", required=True, metavar="DURATION",
                          help="how long before it may run: 30s, 15m, 12h, 7d (0s: at once)")
    announce.add_argument("--by", type=Path, metavar="LIVE_BUILD_DIR", default=None,
                          help="the live version's build (required): its enclave passes the "
                          "ledger's gate and signs the announcement itself")
    announce.add_argument("--json", action="store_true", help="print one JSON object")
    announce.set_defaults(handler=_announce, check_values=_check_notice)

    revoke = actions.add_parser("revoke", help="withdraw an announcement or a retired build")
    revoke.add_argument("pcr0", metavar="PCR0", help="96 hex digits")
    revoke.add_argument("--ledger", type=Path, required=True, metavar="DIR")
    revoke.add_argument("--reason", default="", help="a short reason, kept in the entry")
    revoke.add_argument("--by", type=Path, metavar="LIVE_BUILD_DIR", default=None,
                        help="the live version's build (required): its enclave signs the "
                        "revocation")
    revoke.add_argument("--json", action="store_true", help="print one JSON object")
    revoke.set_defaults(handler=_revoke)

    witness = actions.add_parser("witness", help="get the newest checkpoint cosigned")
    witness.add_argument("folder", type=Path, metavar="DIR")
    witness.add_argument("--policy", type=Path, required=True, metavar="FILE",
                         help="tlog-policy naming the witnesses (with URLs) and the quorum")
    witness.add_argument("--json", action="store_true", help="print one JSON object")
    witness.set_defaults(handler=_witness)

    proof = actions.add_parser("proof", help="export one entry as a .tlog-proof")
    proof.add_argument("folder", type=Path, metavar="DIR")
    proof.add_argument("--index", type=int, required=True, metavar="N")
    proof.add_argument("--out", type=Path, required=True, metavar="FILE")
    proof.set_defaults(handler=_proof)

    verify = actions.add_parser("verify", help="verify the ledger (for LPs)")
    verify.add_argument("folder", type=Path, metavar="DIR")
    verify.add_argument("--policy", type=Path, default=None, metavar="FILE",
                        help="your tlog-policy: the ledger key and the witnesses' quorum")
    verify.add_argument("--known-checkpoint", type=Path, default=None, metavar="FILE",
                        help="a ledger checkpoint you saw before: the ledger must still hold it")
    verify.add_argument("--save-checkpoint", type=Path, default=None, metavar="FILE",
                        dest="out", help="after a pass, keep the newest checkpoint here")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.set_defaults(handler=_verify)


def _check_notice(args: argparse.Namespace) -> None:
    parse_duration(args.notice)


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="seconds")


def _build(build: Path) -> tuple[bytes, bytes]:
    """The build's PCR0 and the SHA-256 of its commitment.json bytes."""
    from zcbench.errors import DataError, UsageError
    from zcbench.nitro.commitment import Commitment

    path = build / "commitment.json"
    if not path.is_file():
        raise UsageError(f"{build} has no commitment.json: give a folder from 'zcbench package'")
    commitment = Commitment.load(path)
    pcr0 = commitment.pcrs.get(0)
    if pcr0 is None:
        raise DataError(f"{path} commits to no PCR0")
    return bytes(pcr0), hashlib.sha256(path.read_bytes()).digest()


def _init(args: argparse.Namespace) -> int:
    from zcbench.host import BuildImage
    from zcbench.host.genesis import genesis
    from zcbench.ledger.store import check_new_ledger

    check_new_ledger(args.folder, args.origin)
    pcr0, digest = _build(args.build)
    _need_build_folder(args.build, "--genesis")
    with genesis(BuildImage(args.build), args.folder, origin=args.origin,
                 commitment_sha256=digest) as ledger:
        if args.json:
            print(json.dumps({"ledger": str(args.folder), "origin": ledger.origin,
                              "vkey": ledger.vkey, "genesis_pcr0": pcr0.hex()}, sort_keys=True))
            return 0
        print(f"ledger {ledger.origin} made in {args.folder} by the genesis build's enclave "
              "(the ledger key was made and sealed there)")
        print(f"  genesis: PCR0 {pcr0.hex()}")
        print(f"  vkey:    {ledger.vkey}")
        print("next: give LPs the vkey in a tlog-policy ('log <vkey>'); 'zcbench witness serve' "
              "runs a witness")
    return 0


def _need_build_folder(build: Path, option: str) -> None:
    from zcbench.errors import UsageError

    if not (build / "manifest.json").is_file():
        raise UsageError(f"{option} {build}: not a build folder; give the folder 'zcbench "
                         "package' wrote")


def _show(args: argparse.Namespace) -> int:
    import time

    from zcbench.ledger import Ledger
    from zcbench.ledger.store import host_made_key_warning

    with Ledger.open(args.folder) as ledger:
        now = time.time_ns()
        state = ledger.state
        live = state.live(now)
        if args.json:
            from zcbench.ledger.verify import LedgerReport

            report = LedgerReport(str(args.folder), ledger.origin, ledger.vkey, ok=True,
                                  size=ledger.size, state=state)
            doc = report.to_json()
            doc["allowed_now"] = [v.pcr0.hex() for v in state.allowed(now)]
            doc["recovery"] = ledger.recovery.message
            if ledger.tail_recovery is not None:
                doc["tail_recovery"] = ledger.tail_recovery.to_json()
            doc["key_made_in_enclave"] = ledger.key_made_in_enclave
            for key in ("ok", "failed", "message", "vkey_source", "classification", "quorum",
                        "known_checkpoint_size", "warnings", "checkpoint_size",
                        "witnessed_size"):
                doc.pop(key, None)
            print(json.dumps(doc, sort_keys=True))
            return 0
        if ledger.recovery.classification != "clean":
            sys.stderr.write(f"zcbench: warning: {ledger.recovery.message}\n")
        if ledger.tail_recovery is not None:
            sys.stderr.write(f"zcbench: warning: {ledger.tail_recovery.message}\n")
        host_made = host_made_key_warning(args.folder)
        if host_made is not None:
            sys.stderr.write(f"zcbench: warning: {host_made}\n")
        witnessed = ledger.witnessed_checkpoint()
        witnessed_size = "none" if witnessed is None else witnessed.split(b"\n")[1].decode()
        print(f"ledger {ledger.origin}: {ledger.size} entries ({args.folder})")
        print(f"  vkey {ledger.vkey}")
        print(f"  witnessed checkpoint: size {witnessed_size}")
        print("versions:")
        for v in state.versions.values():
            mark = "live" if live is not None and v.pcr0 == live.pcr0 else (
                "allowed" if v.allowed_at(now) else "revoked" if v.revoked_ns is not None
                else "pending")
            print(f"  {v.pcr0.hex()[:16]}...  {mark:8}  announced {_when(v.announced_ns)}  "
                  f"valid from {_when(v.valid_from_ns)}"
                  + (f"  revoked {_when(v.revoked_ns)}" if v.revoked_ns is not None else ""))
        print(f"runs: {len(state.runs)}")
        for r in state.runs.values():
            print(f"  {r.origin}  started {_when(r.started_ns)}  "
                  + (f"ended {_when(r.ended_ns)} at size {r.last_size}" if r.ended
                     else f"open (last checkpoint size {max(r.last_size, 0)})"))
            for index, archive in r.archives:
                print(f"    archive entry {index}: {len(archive.objects)} objects in bucket "
                      f"{archive.bucket}, locked until {_when(archive.retain_until_ns)}")
            for index, control in r.controls:
                print(f"    control entry {index}: {control.action} by {control.operator} "
                      f"(the run's record {control.log_index})")
    return 0


def _announce(args: argparse.Namespace) -> int:
    pcr0, digest = _build(args.build)
    notice = parse_duration(args.notice)
    by = _endorse(args, "announce", "announce_request", pcr0, digest, notice)
    appended = by.appended
    when = appended.entry.time_ns
    if args.json:
        print(json.dumps({"index": appended.entry.index, "pcr0": pcr0.hex(),
                          "valid_from": _when(when + notice)}, sort_keys=True))
        return 0
    print(f"announced PCR0 {pcr0.hex()} as entry {appended.entry.index}, signed by the live "
          f"enclave (run {by.run_origin})")
    print(f"  valid from {_when(when + notice)} (notice {args.notice}); until then it gets "
          "no key and cannot serve; 'zcbench ledger revoke' withdraws it")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from zcbench.keys import LocalKeyBroker, parse_pcr0

    pcr0 = parse_pcr0(args.pcr0)
    appended = _endorse(args, "revoke", "revoke_request", pcr0, args.reason).appended
    # the key broker follows the ledger: the revoked build gets no data key either
    broker = LocalKeyBroker()
    policy = broker.revoke(pcr0) if broker.policy_for(pcr0) is not None else None
    if args.json:
        print(json.dumps({"index": appended.entry.index, "revoked": pcr0.hex(),
                          "key_policy_revoked": policy is not None}))
        return 0
    print(f"revoked PCR0 {pcr0.hex()} (entry {appended.entry.index}): it gets no ledger "
          "key and cannot serve from now on"
          + ("; its data-key policy is revoked too" if policy is not None else ""))
    return 0


def _endorse(args: argparse.Namespace, command: str, request: str, *values: Any) -> Any:
    """The live build's enclave (``--by``) signs the endorsement (zcbench.host.endorse); no
    process but an attested enclave holds the ledger key, so without ``--by`` this is a usage
    error naming the live version's PCR0."""
    import time

    from zcbench.errors import UsageError
    from zcbench.host import BuildImage
    from zcbench.host import endorse as endorsing

    if args.by is None:
        from zcbench.ledger import Ledger

        with Ledger.open(args.ledger) as ledger:
            live = ledger.state.live(time.time_ns())
        which = (f"PCR0 {live.pcr0.hex()[:16]}..." if live is not None
                 else "none is live now")
        raise UsageError(f"ledger {command} needs --by LIVE_BUILD_DIR: only the live "
                         f"version's enclave ({which}) holds the ledger key and signs it; give "
                         "its build folder (the one 'zcbench package' wrote)")
    _need_build_folder(args.by, "--by")
    return endorsing.endorse(BuildImage(args.by), args.ledger,
                             getattr(endorsing, request)(*values))


def _witness(args: argparse.Namespace) -> int:
    from zcbench.ledger import Ledger, load_policy
    from zcbench.ledger.witness_client import witness_ledger

    policy = load_policy(args.policy)
    with Ledger.open(args.folder) as ledger:
        report = witness_ledger(ledger, policy)
    if args.json:
        print(json.dumps({"size": report.size, "quorum_met": report.quorum_met,
                          "witnesses": [{"name": o.name, "cosigned": o.cosigned,
                                         "status": o.status, "message": o.message}
                                        for o in report.outcomes]}, sort_keys=True))
    else:
        for o in report.outcomes:
            print(f"  {o.name}: {'cosigned' if o.cosigned else f'refused ({o.status})'}"
                  + ("" if o.cosigned else f": {o.message}"))
        print(f"checkpoint of size {report.size}: quorum "
              + ("met, published as the witnessed checkpoint" if report.quorum_met
                 else "NOT met, nothing published"))
    return 0 if report.quorum_met else 1


def _proof(args: argparse.Namespace) -> int:
    from zcbench.durable import write_output
    from zcbench.errors import UsageError
    from zcbench.ledger import Ledger, format_tlog_proof, tlog_proof_for

    with Ledger.open(args.folder) as ledger:
        if not 0 <= args.index < ledger.size:
            raise UsageError(f"--index {args.index}: the ledger has entries 0 to "
                             f"{ledger.size - 1}; `zcbench ledger show {args.folder}` lists them")
        note = ledger.witnessed_checkpoint() or ledger.latest_checkpoint()
        proof = tlog_proof_for(list(ledger.entry_bytes), args.index, note)
    write_output(args.out, format_tlog_proof(proof))
    print(f"wrote {args.out}: entry {args.index}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from zcbench.ledger import load_policy
    from zcbench.ledger.store import write_atomic
    from zcbench.ledger.verify import check_ledger

    policy = load_policy(args.policy) if args.policy is not None else None
    known = args.known_checkpoint.read_bytes() if args.known_checkpoint is not None else None
    report = check_ledger(args.folder, policy=policy, known_checkpoint=known)
    if report.ok and args.out is not None:
        note = (args.folder / "checkpoint")
        source = note.read_bytes() if policy is not None and note.is_file() else None
        if source is None:
            from zcbench.ledger import Ledger

            with Ledger.open(args.folder) as ledger:
                source = ledger.latest_checkpoint()
        write_atomic(args.out, source)
    if args.json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        for warning in report.warnings:
            sys.stderr.write(f"zcbench: warning: {warning}\n")
        if report.ok:
            print(f"ledger {report.origin}: intact, {report.size} entries, "
                  f"{len(report.state.versions)} versions, {len(report.state.runs)} runs"
                  + (f"; witnessed at size {report.witnessed_size} by "
                     f"{', '.join(report.quorum.cosigned)}" if report.quorum else ""))
        else:
            sys.stderr.write(f"zcbench: ledger {args.folder} FAILED ({report.failed}): "
                             f"{report.message}\n")
    return 0 if report.ok else 1
