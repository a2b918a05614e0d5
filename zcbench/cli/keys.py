"""``zcbench keys list|revoke|refusals``: the local key broker's policies, for the operator.

One policy per packaged build (PCR0): ``list`` shows them, ``revoke PCR0`` stops releasing the
data key to that build, ``refusals`` shows the reasons the broker wrote for refused releases
(the enclave itself is only ever told "refused").
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "keys",
        help="list and revoke the key broker's per-build (PCR0) release policies",
        description=(
            "The local key broker in the zcbench home releases a strategy's data key only to an "
            "enclave whose attested PCR0 has a policy; packaging a build adds one. List them, "
            "revoke one, or read why releases were refused."
        ),
    )
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="every policy: PCR0, strategy, when, which build")
    listing.add_argument("--strategy", default=None, help="only this strategy's builds")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(handler=_list)
    revoke = actions.add_parser("revoke", help="stop releasing the key to the build PCR0")
    revoke.add_argument("pcr0", metavar="PCR0", help="the build's PCR0, 96 hex digits")
    revoke.add_argument("--json", action="store_true", help="print one JSON object")
    revoke.set_defaults(handler=_revoke)
    refusals = actions.add_parser("refusals", help="the reasons of the latest refused releases")
    refusals.add_argument("--limit", type=int, default=10, metavar="N", help="default 10")
    refusals.add_argument("--json", action="store_true", help="print one JSON object")
    refusals.set_defaults(handler=_refusals)


def _broker() -> Any:
    from zcbench.keys import LocalKeyBroker

    return LocalKeyBroker()


def _list(args: argparse.Namespace) -> int:
    policies = _broker().policies(args.strategy)
    if args.json:
        print(json.dumps({"policies": [p.to_json() for p in policies]}, sort_keys=True))
        return 0
    if not policies:
        print("no key policies: 'zcbench package' adds one per build")
        return 0
    print(f"{len(policies)} key polic{'y' if len(policies) == 1 else 'ies'} (one per build):")
    for p in policies:
        where = p.facts.get("build_dir", "")
        print(f"  {p.pcr0.hex()}  {p.strategy}  since {p.created_at}  {where}".rstrip())
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from zcbench.keys import parse_pcr0

    broker = _broker()
    removed = broker.revoke(parse_pcr0(args.pcr0))
    left = len(broker.policies(removed.strategy))
    if args.json:
        print(json.dumps({"revoked": removed.to_json(), "remaining": left}, sort_keys=True))
        return 0
    print(f"revoked: the build {removed.pcr0.hex()} of {removed.strategy} gets no key any more")
    print(f"  {left} other build(s) of {removed.strategy} keep theirs ('zcbench keys list')")
    return 0


def _refusals(args: argparse.Namespace) -> int:
    from zcbench.errors import UsageError

    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    broker = _broker()
    found = broker.refusals()
    shown = found[-args.limit :]
    if args.json:
        rows = [{"at": r.at, "strategy": r.strategy, "reason": r.reason} for r in shown]
        print(json.dumps({"refusals": rows, "total": len(found)}, sort_keys=True))
        return 0
    if not found:
        print(f"no refused releases recorded in {broker.diagnostics_path}")
        return 0
    print(f"showing {len(shown)} of {len(found)} refusals ({broker.diagnostics_path}):")
    for r in shown:
        print(f"  {r.at}  {r.strategy or '-'}  {r.reason}")
    return 0
