"""``zcbench package NOTEBOOK``: promote a notebook's strategy into a sealed, measured build."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "package",
        help="promote a notebook's strategy cells into a sealed, reproducible, measured build",
        description=(
            "Extract the cells tagged 'strategy' (and the imports they use), lint them, seal "
            "them with the strategy's data key, and write a deterministic bundle, the local "
            "image, its PCRs and commitment.json into the build folder."
        ),
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the research notebook (.ipynb)")
    parser.add_argument("-o", "--out", default="build", help="build folder (default: ./build)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a value of the notebook's parameters cell (a Python literal, else text)",
    )
    parser.add_argument(
        "--source-date-epoch",
        type=int,
        default=None,
        help="timestamp recorded in the archives (default: $SOURCE_DATE_EPOCH, else 0)",
    )
    parser.add_argument("--lock", default=None, help="pinned requirements lock to bundle")
    parser.add_argument(
        "--allow-import",
        action="append",
        default=[],
        metavar="MODULE",
        help="also allow the strategy to import MODULE (repeatable)",
    )
    parser.add_argument(
        "--research",
        action="append",
        default=[],
        metavar="FILE",
        help="a research record of a sweep or walk-forward (zcbench sweep --record): its "
        "digest, the trial count and the deflated Sharpe ratio go into commitment.json "
        "(repeatable)",
    )
    parser.add_argument(
        "--check-reproducible",
        action="store_true",
        help="build twice more in other processes, folders, umasks, time zones and hash seeds; "
        "exit 1 on any byte difference",
    )
    parser.add_argument(
        "--ledger-origin",
        default=None,
        metavar="ORIGIN",
        help="measure a ledger requirement: the build's enclave serves only once the ledger "
        "<fund>/zcbench/<strategy> holds its run-start (the ledger's gate)",
    )
    parser.add_argument(
        "--ledger-policy",
        default=None,
        metavar="FILE",
        help="with --ledger-origin: a tlog-policy whose witnesses and quorum must cosign the "
        "run-start (its log lines are not used: the ledger key is the one the key broker "
        "releases)",
    )
    parser.add_argument(
        "--ledger-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --ledger-origin: the least time between two run-checkpoint entries "
        "(default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(handler=_package)


def _ledger_requirement(args: argparse.Namespace) -> bytes | None:
    from pathlib import Path

    from zcbench.errors import UsageError

    if args.ledger_origin is None:
        if args.ledger_policy is not None:
            raise UsageError("--ledger-policy needs --ledger-origin")
        return None
    from zcbench.enclave.ledger import LedgerRequirement
    from zcbench.ledger import LedgerFormatError

    text = None
    if args.ledger_policy is not None:
        try:
            text = Path(args.ledger_policy).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--ledger-policy {args.ledger_policy}: cannot read it ({exc})"
                             ) from None
    try:
        return LedgerRequirement.from_policy(args.ledger_origin, text,
                                             args.ledger_interval).to_bytes()
    except LedgerFormatError as exc:
        raise UsageError(f"the ledger requirement: {exc}") from None


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _package(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zcbench.errors import UsageError
    from zcbench.packager import DEFAULT_ALLOWED_IMPORTS, check_reproducible, package_notebook

    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise UsageError(f"{notebook}: no such notebook")
    sde = args.source_date_epoch
    if sde is None and os.environ.get("SOURCE_DATE_EPOCH"):
        try:
            sde = int(os.environ["SOURCE_DATE_EPOCH"])
        except ValueError:
            raise UsageError("$SOURCE_DATE_EPOCH must be an integer") from None
    overrides = {name: _literal(value) for name, value in args.parameter}
    research: tuple[Any, ...] = ()
    if args.research:
        from zcbench.backtest import load_research_record

        research = tuple(load_research_record(path) for path in args.research)
    build = package_notebook(
        notebook,
        Path(args.out),
        source_date_epoch=sde,
        overrides=overrides,
        lock_path=args.lock,
        allowed_imports=(*DEFAULT_ALLOWED_IMPORTS, *args.allow_import),
        research=research,
        ledger=_ledger_requirement(args),
    )
    out: dict[str, Any] = build.summary()
    if build.commitment.research is not None:
        out["research"] = dict(build.commitment.research)
    code = 0
    if args.check_reproducible:
        shared = []
        if args.lock:
            shared.append(f"--lock={Path(args.lock).resolve()}")
        for module in args.allow_import:
            shared.append(f"--allow-import={module}")
        for name, value in args.parameter:
            shared += ["-p", name, value]
        for path in args.research:
            shared.append(f"--research={Path(path).resolve()}")
        if args.ledger_origin is not None:
            shared += [f"--ledger-origin={args.ledger_origin}",
                       f"--ledger-interval={args.ledger_interval!r}"]
        if args.ledger_policy is not None:
            shared.append(f"--ledger-policy={Path(args.ledger_policy).resolve()}")
        report = check_reproducible(
            notebook,
            reference_dir=build.build_dir,
            package_args=shared,
            source_date_epoch=build.manifest.source_date_epoch,
        )
        out["reproducible"] = report.to_json()
        code = 0 if report.identical else 1
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return code
    print(f"strategy {build.strategy}: sealed and measured into {build.build_dir}")
    for index, value in out["pcrs"].items():
        print(f"  PCR{index}  {value}")
    print(f"  strategy_sha256  {build.strategy_sha256}")
    print(f"  bundle_sha256    {build.bundle_sha256}")
    print(f"  commitment       {build.paths.commitment}")
    committed = build.commitment.research
    if committed is not None:
        dsr = committed.get("deflated_sharpe")
        shown = "n/a" if dsr is None else f"{dsr:.3f}"
        print(
            f"  research         {committed['n_trials']} trials behind these parameters, "
            f"deflated Sharpe ratio {shown}"
        )
    from zcbench.keys import LocalKeyBroker

    builds = len(LocalKeyBroker().policies(build.strategy))
    print(
        f"  key policy       set for this PCR0; {builds} build(s) of {build.strategy} may get "
        "its key ('zcbench keys list', 'zcbench keys revoke PCR0')"
    )
    if args.check_reproducible:
        rep = out["reproducible"]
        if rep["identical"]:
            names = ", ".join(rep["builds"])
            print(f"reproducible: {len(rep['builds'])} builds byte-identical ({names})")
        else:
            print(f"NOT reproducible: files differ: {', '.join(rep['differences'])}")
    print("next: run it live in the local enclave (SIMULATED), then report on the run:")
    print(f"  zcbench run {shlex.quote(str(build.build_dir))} --synthetic --duration 10")
    return code
