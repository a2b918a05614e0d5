"""``zcbench serve``: the proof service over run folders (thin over :mod:`zcbench.serve.app`)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from zcbench.errors import EXIT_OK, UsageError

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve run logs as tlog-tiles and fresh attestations to LPs over HTTP(S)",
        description=(
            "Serve every run folder under --runs (a run in progress included) at "
            "/runs/<run id>/ as C2SP tlog-tiles (hash tiles public, entry bundles for reader "
            "tokens), slices at /runs/<run id>/slice?start=A&end=B and ledger entries as "
            ".tlog-proof files at /ledger/proof/<index> (for reader tokens), and "
            "/.well-known/zcbench/attestation?nonce=<hex>: a fresh document from "
            "the running enclave. LPs check it with 'zcbench verify remote URL'. With "
            "--add-reader NAME, add a reader to --readers FILE, print its token once and exit."
        ),
    )
    p.add_argument("--runs", type=Path, default=Path.cwd(), metavar="DIR",
                   help="the folder holding the run folders (default: the current folder)")
    p.add_argument("--ledger", type=Path, default=None, metavar="DIR",
                   help="the strategy's ledger folder, served at /ledger/ as tlog-tiles "
                   "(public: its entries are hashes and facts)")
    p.add_argument("--witness-state", type=Path, default=None, metavar="DIR",
                   help="also witness the ledger (C2SP tlog-witness) at /witness/, keeping "
                   "its state here (needs --ledger and --witness-key)")
    p.add_argument("--witness-key", type=Path, default=None, metavar="FILE",
                   help="the witness's Ed25519 key, PEM (made, owner-only, if absent)")
    p.add_argument("--witness-name", default="witness.local", metavar="NAME",
                   help="the witness's key name (default witness.local)")
    p.add_argument("--tiles", type=Path, default=None, metavar="OUT_DIR",
                   help="where the tiles are written (default: <runs>/.tiles)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    p.add_argument("--readers", type=Path, default=None, metavar="READERS_FILE",
                   help="bearer-token readers (JSON; tokens stored hashed)")
    p.add_argument("--tls-cert", type=Path, default=None, metavar="PEM", help="TLS certificate")
    p.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="TLS private key")
    p.add_argument("--access-log", type=Path, default=None, metavar="LOG",
                   help="one JSON line per request (default: <tiles>/access.log)")
    p.add_argument("--attest-rate", type=float, default=2.0, metavar="N",
                   help="attestations per second per reader (burst 5; default 2)")
    p.add_argument("--request-rate", type=float, default=200.0, metavar="N",
                   help="requests per second per client address (burst 2 N; default 200)")
    add = p.add_argument_group("adding a reader (then exit)")
    add.add_argument("--add-reader", default=None, metavar="NAME", help="the reader's name")
    add.add_argument("--scope", action="append", default=None, metavar="RUN_ID",
                     help="a run id the reader may read (repeatable; default all runs)")
    add.add_argument("--bodies", action="store_true",
                     help="the reader may read market-data bodies (default: their hashes only)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from zcbench.serve.readers import Readers, add_reader

    if args.add_reader is not None:
        if args.readers is None:
            raise UsageError("--add-reader needs --readers FILE")
        token = add_reader(args.readers, args.add_reader, runs=args.scope or ["*"],
                           bodies=args.bodies)
        sys.stderr.write(f"added reader {args.add_reader} to {args.readers}; its token, shown "
                         "this once (hand it over privately):\n")
        print(token)
        return EXIT_OK
    if not args.runs.is_dir():
        raise UsageError(f"--runs {args.runs} is not a folder")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    for flag, value in (("--attest-rate", args.attest_rate), ("--request-rate", args.request_rate)):
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"{flag} must be a positive number, got {value:g}")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path} does not exist")
    if args.ledger is not None:
        from zcbench.ledger.store import read_ledger_file

        read_ledger_file(args.ledger)  # a folder that is no ledger is refused here
    if (args.witness_state is None) != (args.witness_key is None) or (
            args.witness_state is not None and args.ledger is None):
        raise UsageError("give --witness-state and --witness-key together, with --ledger")
    if args.readers is not None and not args.readers.is_file():
        raise UsageError(f"--readers {args.readers} does not exist")
    return _serve_forever(args, Readers.load(args.readers) if args.readers else None)


def _serve_forever(args: argparse.Namespace, readers: Any) -> int:
    from zcbench.serve.app import ServeConfig, build_app, make_server

    witness = None
    if args.witness_state is not None:
        from zcbench.auditlog.note import parse_vkey
        from zcbench.auditlog.witness import Witness, load_cosigner
        from zcbench.ledger.store import read_ledger_file
        from zcbench.ledger.witness_server import build_app as witness_app

        _, vkey = read_ledger_file(args.ledger)
        args.witness_state.mkdir(mode=0o700, parents=True, exist_ok=True)
        cosigner = load_cosigner(args.witness_key, args.witness_name, create=True)
        witness = witness_app(Witness(args.witness_state), cosigner, [parse_vkey(vkey)])
        sys.stderr.write(f"zcbench serve: witnessing the ledger at /witness/ as {cosigner.vkey}\n")
    config = ServeConfig(
        runs=args.runs, tiles=args.tiles, readers=readers,
        access_log=args.access_log or (args.tiles or args.runs / ".tiles") / "access.log",
        attest_per_s=args.attest_rate, request_burst=max(1, int(2 * args.request_rate)),
        requests_per_s=args.request_rate, ledger=args.ledger, witness=witness,
    )
    app, catalog = build_app(config)
    server = make_server(app, host=args.host, port=args.port, tls_cert=args.tls_cert,
                         tls_key=args.tls_key)
    catalog.start()
    scheme = "https" if args.tls_cert else "http"
    ledger = "" if args.ledger is None else f" and the ledger {args.ledger}"
    sys.stderr.write(f"zcbench serve: {len(catalog.runs())} runs from {args.runs}{ledger} on "
                     f"{scheme}://{args.host}:{args.port} (access log {config.access_log})\n")
    sys.stderr.flush()
    try:
        server.run()
    finally:
        catalog.stop()
        app.close()
    return EXIT_OK
