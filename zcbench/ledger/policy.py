"""tlog-policy files: which log key, which witnesses, and the quorum a checkpoint needs.

The format (https://c2sp.org/tlog-policy), one statement a line, ``#`` comments::

    log <vkey> [<url>]
    witness <name> <cosignature vkey> [<submission url>]
    group <name> all|any|<k> <member> ...      members: witnesses or groups defined above
    quorum <name>|none                         exactly once

A checkpoint is accepted only when the log key signed it and the quorum cosigned it
(cosignature/v1); :func:`check_quorum` says which witnesses' cosignatures verify and whether the
quorum holds. Parsing is strict: an unknown keyword, a member not defined above it, a ``k``
outside 1..members, a second quorum or none at all are refused with the line number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from zcbench.auditlog import LogFormatError, NoteError
from zcbench.auditlog.note import (
    Cosigner,
    NoteVerifier,
    key_id,
    parse_cosigner_vkey,
    parse_note,
    parse_vkey,
)
from zcbench.ledger._errors import LedgerFormatError

__all__ = ["Group", "PolicyWitness", "QuorumReport", "TlogPolicy", "check_quorum",
           "load_policy", "parse_policy", "policy_text"]

_MAX_POLICY: Final = 65_536
_NAME: Final = re.compile(r"[^\s+]{1,128}")


@dataclass(frozen=True, slots=True)
class PolicyWitness:
    """A witness of the policy: its local name, cosigning key and submission URL (if any)."""

    name: str
    key_name: str
    public_key: Ed25519PublicKey
    vkey: str
    url: str | None

    @property
    def key_id(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return key_id(self.key_name, 0x04, raw)


@dataclass(frozen=True, slots=True)
class Group:
    """``k`` of ``members`` (witness or group names) must hold."""

    name: str
    k: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TlogPolicy:
    """A parsed tlog-policy."""

    logs: tuple[tuple[NoteVerifier, str | None], ...]
    witnesses: dict[str, PolicyWitness]
    groups: dict[str, Group]
    quorum: str | None  # None: "quorum none"

    def holds(self, cosigned: set[str], name: str | None = None) -> bool:
        """Whether the witnesses named in ``cosigned`` satisfy ``name`` (default the quorum)."""
        target = self.quorum if name is None else name
        if target is None:
            return True
        if target in self.witnesses:
            return target in cosigned
        group = self.groups[target]
        return sum(self.holds(cosigned, m) for m in group.members) >= group.k


def parse_policy(text: str) -> TlogPolicy:
    """The policy in ``text``; raises :class:`LedgerFormatError` naming the line."""
    if len(text) > _MAX_POLICY:
        raise LedgerFormatError(f"tlog-policy of {len(text)} characters is too large")
    logs: list[tuple[NoteVerifier, str | None]] = []
    witnesses: dict[str, PolicyWitness] = {}
    groups: dict[str, Group] = {}
    quorum: str | None = None
    seen_quorum = False
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        keyword, args = words[0], words[1:]

        def bad(why: str, line_no: int = number) -> LedgerFormatError:
            return LedgerFormatError(f"tlog-policy line {line_no}: {why}")

        try:
            if keyword == "log":
                if len(args) not in (1, 2):
                    raise bad("log takes a vkey and an optional URL")
                logs.append((parse_vkey(args[0]), args[1] if len(args) == 2 else None))
            elif keyword == "witness":
                if len(args) not in (2, 3):
                    raise bad("witness takes a name, a vkey and an optional URL")
                name = args[0]
                if not _NAME.fullmatch(name) or name in witnesses or name in groups:
                    raise bad(f"witness name {name!r} is malformed or defined twice")
                key_name, key = parse_cosigner_vkey(args[1])
                witnesses[name] = PolicyWitness(name, key_name, key, args[1],
                                                args[2] if len(args) == 3 else None)
            elif keyword == "group":
                if len(args) < 3:
                    raise bad("group takes a name, all|any|<k> and at least one member")
                name, rule, members = args[0], args[1], tuple(args[2:])
                if not _NAME.fullmatch(name) or name in witnesses or name in groups:
                    raise bad(f"group name {name!r} is malformed or defined twice")
                for member in members:
                    if member not in witnesses and member not in groups:
                        raise bad(f"group member {member!r} is not defined above")
                if len(set(members)) != len(members):
                    raise bad("a group names a member twice")
                if rule == "all":
                    k = len(members)
                elif rule == "any":
                    k = 1
                elif rule.isdigit() and rule == str(int(rule)) and 1 <= int(rule) <= len(
                        members):
                    k = int(rule)
                else:
                    raise bad(f"group threshold {rule!r} is not all, any or 1..{len(members)}")
                groups[name] = Group(name, k, members)
            elif keyword == "quorum":
                if len(args) != 1 or seen_quorum:
                    raise bad("quorum takes one name and appears once")
                seen_quorum = True
                if args[0] != "none":
                    if args[0] not in witnesses and args[0] not in groups:
                        raise bad(f"quorum {args[0]!r} is not a witness or group defined above")
                    quorum = args[0]
            else:
                raise bad(f"unknown keyword {keyword!r}")
        except LogFormatError as exc:
            raise bad(str(exc)) from None
    if not seen_quorum:
        raise LedgerFormatError("tlog-policy has no quorum line (write 'quorum none' for none)")
    if not logs:
        raise LedgerFormatError("tlog-policy names no log")
    return TlogPolicy(tuple(logs), witnesses, groups, quorum)


def load_policy(path: Path) -> TlogPolicy:
    """The policy in file ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LedgerFormatError(f"{path} is not UTF-8 text") from None
    try:
        return parse_policy(text)
    except LedgerFormatError as exc:
        raise LedgerFormatError(f"{path}: {exc}") from None


def policy_text(log_vkey: str, witnesses: Sequence[tuple[str, Cosigner, str | None]],
                quorum: str | int) -> str:
    """A policy for one log and ``witnesses`` (name, key, URL): a quorum of all of them
    (``"all"``), any, or ``k``."""
    lines = [f"log {log_vkey}"]
    for name, cosigner, url in witnesses:
        lines.append(f"witness {name} {cosigner.vkey}" + (f" {url}" if url else ""))
    if witnesses:
        lines.append(f"group quorum {quorum} " + " ".join(n for n, _, _ in witnesses))
        lines.append("quorum quorum")
    else:
        lines.append("quorum none")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class QuorumReport:
    """Which witnesses of the policy cosigned a checkpoint (verified), and whether the quorum
    holds; ``bad`` lists witnesses whose line is there but does not verify."""

    cosigned: tuple[str, ...]
    bad: tuple[str, ...]
    met: bool
    timestamps: dict[str, int]


def check_quorum(note: bytes, policy: TlogPolicy) -> QuorumReport:
    """Check the cosignatures on ``note`` against ``policy``'s witnesses (the log signature is
    checked elsewhere); unknown lines are ignored, as the signed-note spec says."""
    parsed = parse_note(note)
    cosigned: list[str] = []
    bad: list[str] = []
    times: dict[str, int] = {}
    for witness in policy.witnesses.values():
        for sig in parsed.signatures:
            if sig.name != witness.key_name or sig.key_id != witness.key_id:
                continue
            try:
                times[witness.name] = Cosigner.verify(sig, parsed.text, witness.public_key)
            except NoteError:
                bad.append(witness.name)
                continue
            cosigned.append(witness.name)
            break
    met = policy.holds(set(cosigned)) and not bad
    return QuorumReport(tuple(cosigned), tuple(bad), met, times)
