"""``.tlog-proof`` files (https://c2sp.org/tlog-proof): one ledger entry, verifiable offline.

::

    c2sp.org/tlog-proof@v1
    [extra <base64>]               here: the entry's bytes (the leaf's data)
    index <n>
    <base64 inclusion-proof hash>  one a line, leaf level first
    <empty line>
    <checkpoint note, with its cosignatures>

:func:`verify_tlog_proof` checks the log signature by the ledger vkey, the quorum of a policy
when one is given, and the inclusion of the entry; it returns the decoded entry. The tree size
and root are taken from the verified checkpoint only (a proof never binds them by itself).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

from zcbench.auditlog import LogFormatError, NoteError, ProofError
from zcbench.auditlog.checkpoint import Checkpoint, parse_checkpoint
from zcbench.auditlog.merkle import MerkleTree, leaf_hash, verify_inclusion
from zcbench.auditlog.note import open_note, parse_vkey
from zcbench.ledger._errors import LedgerFormatError, LedgerVerificationError
from zcbench.ledger.entries import LedgerEntry, decode_entry
from zcbench.ledger.policy import TlogPolicy, check_quorum

__all__ = ["HEADER", "TlogProof", "format_tlog_proof", "parse_tlog_proof", "tlog_proof_for",
           "verify_tlog_proof"]

HEADER: Final = "c2sp.org/tlog-proof@v1"
_MAX: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A parsed tlog-proof: extra data, index, inclusion proof and the checkpoint note."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None


def format_tlog_proof(proof: TlogProof) -> bytes:
    """The file's bytes."""
    lines = [HEADER]
    if proof.extra is not None:
        lines.append("extra " + base64.b64encode(proof.extra).decode())
    lines.append(f"index {proof.index}")
    lines.extend(base64.b64encode(h).decode() for h in proof.proof)
    return ("\n".join(lines) + "\n\n").encode() + proof.checkpoint


def parse_tlog_proof(data: bytes) -> TlogProof:
    """The proof in ``data``; raises :class:`LedgerFormatError` when malformed."""
    if len(data) > _MAX:
        raise LedgerFormatError(f"tlog-proof of {len(data)} bytes is too large")
    head, sep, checkpoint = data.partition(b"\n\n")
    if not sep or not checkpoint:
        raise LedgerFormatError("tlog-proof has no empty line before its checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise LedgerFormatError("tlog-proof header is not ASCII") from None
    if lines[0] != HEADER:
        raise LedgerFormatError(f"tlog-proof does not start with {HEADER!r}")
    rest = lines[1:]
    extra = None
    try:
        if rest and rest[0].startswith("extra "):
            extra = binascii.a2b_base64(rest.pop(0)[6:], strict_mode=True)
        if not rest or not rest[0].startswith("index "):
            raise LedgerFormatError("tlog-proof has no index line")
        text = rest.pop(0)[6:]
        if not text.isdigit() or text != str(int(text)) or int(text) >= 2**63:
            raise LedgerFormatError(f"tlog-proof index {text!r} is not a decimal")
        hashes = tuple(binascii.a2b_base64(line, strict_mode=True) for line in rest)
    except (binascii.Error, ValueError) as exc:
        raise LedgerFormatError(f"tlog-proof line is not base64: {exc}") from None
    if len(hashes) > 64 or any(len(h) != 32 for h in hashes):
        raise LedgerFormatError("tlog-proof hashes are 32 bytes each, at most 64 of them")
    return TlogProof(int(text), hashes, checkpoint, extra)


def tlog_proof_for(entries: list[bytes], index: int, checkpoint_note: bytes) -> TlogProof:
    """The proof of entry ``index`` against ``checkpoint_note`` (a checkpoint of the ledger
    whose encoded entries are ``entries``), with the entry's bytes as extra data."""
    checkpoint = parse_checkpoint(open_note_text(checkpoint_note))
    if not 0 <= index < checkpoint.size <= len(entries):
        raise LedgerFormatError(f"entry {index} is not in the checkpoint of size "
                                f"{checkpoint.size}")
    tree = MerkleTree([leaf_hash(e) for e in entries[: checkpoint.size]])
    if tree.root() != checkpoint.root:
        raise LedgerVerificationError("the entries do not hash to the checkpoint's root",
                                      check="checkpoint_root")
    return TlogProof(index, tuple(tree.inclusion_proof(index)), checkpoint_note,
                     entries[index])


def open_note_text(note: bytes) -> str:
    from zcbench.auditlog.note import parse_note

    return parse_note(note).text


def verify_tlog_proof(data: bytes, vkey: str, policy: TlogPolicy | None = None,
                      entry: bytes | None = None) -> tuple[LedgerEntry, Checkpoint]:
    """The entry a tlog-proof proves, and the checkpoint it proves it against.

    ``entry`` is the entry's bytes when held apart (else the proof's extra data). Raises
    :class:`LedgerVerificationError` naming the failed check.
    """
    proof = parse_tlog_proof(data)
    try:
        verifier = parse_vkey(vkey)
        checkpoint = parse_checkpoint(open_note(proof.checkpoint, [verifier])[0].text)
    except (NoteError, LogFormatError) as exc:
        raise LedgerVerificationError(f"the proof's checkpoint is not signed by the ledger key: "
                                      f"{exc}", check="checkpoint_signature") from None
    if checkpoint.origin != verifier.name:
        raise LedgerVerificationError("the proof's checkpoint is for another origin",
                                      check="checkpoint_origin", expected=verifier.name,
                                      actual=checkpoint.origin)
    if policy is not None:
        report = check_quorum(proof.checkpoint, policy)
        if not report.met:
            raise LedgerVerificationError(
                f"the proof's checkpoint lacks the policy's quorum (cosigned by: "
                f"{', '.join(report.cosigned) or 'none'})", check="quorum")
    body = entry if entry is not None else proof.extra
    if body is None:
        raise LedgerVerificationError("the proof carries no entry and none was given",
                                      check="entry")
    try:
        verify_inclusion(leaf_hash(body), proof.index, checkpoint.size, list(proof.proof),
                         checkpoint.root)
    except ProofError as exc:
        raise LedgerVerificationError(f"entry {proof.index} is not in the checkpoint: {exc}",
                                      check="inclusion") from None
    decoded = decode_entry(body)
    if decoded.index != proof.index:
        raise LedgerVerificationError("the entry carries another index than the proof",
                                      check="entry_index", expected=proof.index,
                                      actual=decoded.index)
    return decoded, checkpoint
