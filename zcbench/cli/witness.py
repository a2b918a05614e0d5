"""``zcbench witness serve|vkey``: a C2SP tlog-witness over HTTP (Starlette on uvicorn).

Anyone can run one, an LP included: it cosigns a log's checkpoints only while they stay
consistent with what it cosigned before, and keeps that state in ``--state DIR`` (the same
format as ``zcbench log witness``'s). ``vkey`` prints the witness's cosignature vkey for a
tlog-policy's ``witness`` line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "witness",
        help="run a transparency-log witness (C2SP tlog-witness) for ledgers",
        description="A witness cosigns a log's checkpoints (cosignature/v1) as long as each new "
        "one is consistent with the last it cosigned; two witnesses shown two histories of one "
        "ledger never both cosign.",
    )
    actions = parser.add_subparsers(dest="witness_command", metavar="ACTION")
    actions.required = True
    serve = actions.add_parser("serve", help="serve add-checkpoint on 127.0.0.1:PORT")
    serve.add_argument("--port", type=int, required=True, metavar="N")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--state", type=Path, required=True, metavar="DIR",
                       help="the witness state folder (made if absent)")
    serve.add_argument("--key", type=Path, required=True, metavar="FILE",
                       help="the witness's Ed25519 key, PEM (made, owner-only, if absent)")
    serve.add_argument("--name", default="witness.local", help="the witness's key name")
    serve.add_argument("--log", action="append", default=[], metavar="VKEY", dest="logs",
                       help="a log to witness, by its vkey (named by its origin); repeatable")
    serve.add_argument("--log-list", type=Path, default=None, metavar="FILE", dest="log_list",
                       help="logs to witness, in the witness network's 'logs/v0' list format")
    serve.set_defaults(handler=_serve, check_values=_check_serve)
    vkey = actions.add_parser("vkey", help="print the witness's cosignature vkey")
    vkey.add_argument("--key", type=Path, required=True, metavar="FILE")
    vkey.add_argument("--name", default="witness.local")
    vkey.set_defaults(handler=_vkey)


def _check_serve(args: argparse.Namespace) -> None:
    from zcbench.errors import UsageError

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port (1..65535)")
    if not args.logs and args.log_list is None:
        raise UsageError("give the logs to witness: --log VKEY (repeatable) or --log-list FILE")


def _serve(args: argparse.Namespace) -> int:
    from zcbench.auditlog.note import parse_vkey
    from zcbench.auditlog.witness import Witness, load_cosigner
    from zcbench.ledger.witness_server import build_app, parse_log_list, serve

    logs = [parse_vkey(v) for v in args.logs]
    if args.log_list is not None:
        logs += parse_log_list(args.log_list.read_text(encoding="utf-8"))
    args.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    cosigner = load_cosigner(args.key, args.name, create=True)
    app = build_app(Witness(args.state), cosigner, logs)

    def ready(url: str) -> None:
        print(f"witness {cosigner.name} serving {len(logs)} log(s) on {url}", flush=True)
        print(f"  vkey {cosigner.vkey}", flush=True)

    try:
        serve(app, host=args.host, port=args.port, on_ready=ready)
    except OSError as exc:
        from zcbench.errors import EnvError

        raise EnvError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    sys.stdout.flush()
    return 0


def _vkey(args: argparse.Namespace) -> int:
    from zcbench.auditlog.witness import load_cosigner

    print(load_cosigner(args.key, args.name).vkey)
    return 0
