"""A local witness: remembers the last checkpoint seen per log origin, refuses inconsistent ones,
and can cosign (cosignature/v1) what it accepts.

This is how an LP catches a fund showing two LPs two different logs: each LP's witness keeps the
size, root and log key it last accepted for an origin, and accepts a new checkpoint only with a
consistency proof from that state (https://c2sp.org/tlog-witness semantics: a smaller size, the
same size with another root, or a proof that fails are refused, and nothing is cosigned then).

State lives in ``zcbench_home()/witness/``: one JSON file per origin, replaced atomically (temp
file, fsync, rename, fsync of the folder) under a lock, so a refusal can never race an update.
The witness key (``witness/cosigner.key``, owner-only) is made on first use when cosigning.

The same state is what the HTTP witness (``zcbench witness serve``, zcbench.ledger's
``witness_server``) keeps: :meth:`Witness.add_checkpoint` is the C2SP tlog-witness
add-checkpoint check, whose refusals carry the HTTP status the spec gives
(:attr:`WitnessRefusal.status`, and the witness's size for a 409).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from zcbench.auditlog._errors import LogFormatError, NoteError, WitnessRefusal
from zcbench.auditlog._fs import OsFileSystem
from zcbench.auditlog._walk import LogWalk
from zcbench.auditlog.checkpoint import (
    Checkpoint,
    parse_checkpoint,
    parse_checkpoint_note,
    verify_checkpoint,
)
from zcbench.auditlog.merkle import MerkleTree, ProofError, verify_consistency
from zcbench.auditlog.note import (
    Cosigner,
    NoteSignature,
    NoteVerifier,
    open_note,
    parse_note,
)
from zcbench.auditlog.verify import resolve_log_path
from zcbench.durable import write_atomically
from zcbench.home import zcbench_home

__all__ = [
    "Witness",
    "WitnessRefusal",
    "WitnessResult",
    "WitnessState",
    "consistency_proof_from_log",
    "load_cosigner",
]

_STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What the witness last accepted for one origin."""

    origin: str
    size: int
    root: bytes
    public_key: bytes
    checkpoint: bytes


@dataclass(frozen=True, slots=True)
class WitnessResult:
    """An accepted checkpoint: the previous state (None on first sight), the new one, and the
    note with this witness's cosignature appended when asked for."""

    previous: WitnessState | None
    state: WitnessState
    cosigned: bytes | None


def consistency_proof_from_log(path: Path, old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof between two sizes of the log at ``path`` (read, not verified)."""
    kind, folder, _ = resolve_log_path(path)
    if kind != "log":
        raise LogFormatError("a consistency proof needs the log folder, not a slice")
    leaves = []
    for item in LogWalk(folder, OsFileSystem()).records():
        if item.index >= new_size:
            break
        leaves.append(item.leaf_hash)
    if len(leaves) < new_size:
        raise LogFormatError(f"the log holds {len(leaves)} records, fewer than {new_size}")
    return MerkleTree(leaves).consistency_proof(old_size, new_size)


class Witness:
    """The witness state in ``folder`` (default ``zcbench_home()/witness``)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else zcbench_home() / "witness"

    def _ensure(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _state_path(self, origin: str) -> Path:
        return self.folder / f"{hashlib.sha256(origin.encode()).hexdigest()[:32]}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure()
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def state(self, origin: str) -> WitnessState | None:
        """The last accepted state for ``origin``, or None."""
        path = self._state_path(origin)
        if not path.is_file():
            return None
        try:
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            state = WitnessState(
                origin=doc["origin"],
                size=int(doc["size"]),
                root=base64.b64decode(doc["root"]),
                public_key=base64.b64decode(doc["public_key"]),
                checkpoint=doc["checkpoint"].encode(),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LogFormatError(f"witness state {path} is damaged: {exc}") from exc
        if state.origin != origin or doc.get("version") != _STATE_VERSION:
            raise LogFormatError(f"witness state {path} is not for {origin}")
        return state

    def origins(self) -> list[WitnessState]:
        """Every origin this witness has accepted, with its state."""
        if not self.folder.is_dir():
            return []
        states = []
        for path in sorted(self.folder.glob("*.json")):
            doc = json.loads(path.read_text(encoding="utf-8"))
            found = self.state(doc["origin"])
            if found is not None:
                states.append(found)
        return states

    def _write(self, state: WitnessState) -> None:
        path = self._state_path(state.origin)
        doc = {
            "version": _STATE_VERSION,
            "origin": state.origin,
            "size": state.size,
            "root": base64.b64encode(state.root).decode(),
            "public_key": base64.b64encode(state.public_key).decode(),
            "checkpoint": state.checkpoint.decode(),
        }
        write_atomically(path, json.dumps(doc, indent=1, sort_keys=True).encode())

    def cosigner(self, name: str) -> Cosigner:
        """This witness's cosigning key under ``name`` (created owner-only on first use)."""
        self._ensure()
        path = self.folder / "cosigner.key"
        if path.is_file():
            key = load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise LogFormatError(f"{path} is not an Ed25519 private key")
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
        return Cosigner(name, key)

    def observe(
        self,
        note: bytes,
        *,
        public_key: bytes,
        proof: Sequence[bytes] | None = None,
        cosign_as: str | None = None,
        timestamp: int | None = None,
    ) -> WitnessResult:
        """Accept ``note`` (a checkpoint signed by the log key ``public_key``, DER SPKI) if it
        is consistent with what this witness saw for its origin, or raise :class:`WitnessRefusal`.

        ``proof`` is the consistency proof from the stored size to the note's (needed when the
        size grew). With ``cosign_as`` the accepted note comes back cosigned at ``timestamp``.
        """
        origin = parse_checkpoint_note(note).origin
        checkpoint = verify_checkpoint(note, public_key, origin)
        with self._locked():
            previous = self.state(origin)
            if previous is not None:
                self._check(previous, checkpoint, public_key, proof)
            state = WitnessState(origin, checkpoint.size, checkpoint.root, public_key, note)
            if previous is None or previous.size != state.size:
                self._write(state)
        cosigned = None
        if cosign_as is not None:
            if timestamp is None:
                raise ValueError("cosigning needs a timestamp (Unix seconds)")
            line = self.cosigner(cosign_as).cosign(parse_note(note).text, timestamp)
            cosigned = note + line.line().encode()
        return WitnessResult(previous, state, cosigned)

    def add_checkpoint(
        self,
        note: bytes,
        *,
        old_size: int,
        proof: Sequence[bytes],
        log: NoteVerifier,
        cosigner: Cosigner,
        timestamp: int,
    ) -> NoteSignature:
        """The C2SP tlog-witness add-checkpoint check of ``note`` from the log ``log``; returns
        this witness's cosignature/v1 line once the new state is durable.

        ``old_size`` is the size the client believes this witness holds, ``proof`` the
        consistency proof from it. Raises :class:`WitnessRefusal` whose ``status`` is the
        spec's: 403 no signature by the log key, 400 ``old_size`` above the checkpoint's size,
        409 ``old_size`` is not this witness's size (``witness_size`` holds it) or the same
        size with another root, 422 the proof does not verify. A refused request changes no
        state and is never cosigned. The check and the update are one step under the lock.
        """
        try:
            text = open_note(note, [log])[0].text
            checkpoint = parse_checkpoint(text)
        except (NoteError, LogFormatError) as exc:
            raise _refusal(403, f"the checkpoint is not signed by the log key of {log.name}: "
                           f"{exc}", "witness_signature") from None
        origin = checkpoint.origin
        public_key = log.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if old_size > checkpoint.size:
            raise _refusal(400, f"{origin}: old size {old_size} is larger than the checkpoint's "
                           f"{checkpoint.size}", "witness_old_size")
        with self._locked():
            previous = self.state(origin)
            size = previous.size if previous is not None else 0
            if previous is not None and previous.public_key != public_key:
                raise _refusal(403, f"{origin} was witnessed under another log key",
                               "witness_key")
            if old_size != size:
                raise _refusal(409, f"{origin}: this witness holds size {size}, not {old_size}",
                               "witness_size", size=size)
            if previous is not None and checkpoint.size == size and (
                    checkpoint.root != previous.root):
                raise _refusal(409, f"{origin}: a second root for size {size}: the log forked",
                               "witness_fork", size=size)
            if checkpoint.size < size:  # unreachable after the two checks above; fail closed
                raise _refusal(400, f"{origin}: smaller than the witnessed {size}",
                               "witness_rollback")
            if old_size == 0 or checkpoint.size == size:
                if proof:
                    raise _refusal(422, f"{origin}: a proof from size {old_size} must be empty",
                                   "witness_consistency")
            else:
                assert previous is not None
                try:
                    verify_consistency(size, checkpoint.size, proof, previous.root,
                                       checkpoint.root)
                except ProofError as exc:
                    raise _refusal(422, f"{origin}: the consistency proof from {size} to "
                                   f"{checkpoint.size} does not verify: {exc}",
                                   "witness_consistency") from None
            state = WitnessState(origin, checkpoint.size, checkpoint.root, public_key, note)
            if previous is None or previous.size != state.size:
                self._write(state)
        return cosigner.cosign(text, timestamp)

    @staticmethod
    def _check(previous: WitnessState, checkpoint: Checkpoint, public_key: bytes,
               proof: Sequence[bytes] | None) -> None:
        origin = checkpoint.origin
        if previous.public_key != public_key:
            raise WitnessRefusal(
                f"{origin} was witnessed under another log key: the same origin now shows a "
                "different log",
                check="witness_key",
                expected=previous.public_key.hex(),
                actual=public_key.hex(),
            )
        if checkpoint.size < previous.size:
            raise WitnessRefusal(
                f"{origin}: checkpoint of size {checkpoint.size} is smaller than the "
                f"{previous.size} already witnessed: the log was rolled back",
                check="witness_rollback",
                expected=f">= {previous.size}",
                actual=checkpoint.size,
            )
        if checkpoint.size == previous.size:
            if checkpoint.root != previous.root:
                raise WitnessRefusal(
                    f"{origin}: a second root for size {checkpoint.size}: the log forked",
                    check="witness_fork",
                    expected=previous.root.hex(),
                    actual=checkpoint.root.hex(),
                )
            return
        if proof is None:
            raise WitnessRefusal(
                f"{origin}: growing from {previous.size} to {checkpoint.size} needs a "
                "consistency proof (pass the log, or --proof)",
                check="witness_consistency",
            )
        try:
            verify_consistency(previous.size, checkpoint.size, proof, previous.root,
                               checkpoint.root)
        except ProofError as exc:
            raise WitnessRefusal(
                f"{origin}: the checkpoint of size {checkpoint.size} is not consistent with "
                f"the witnessed size {previous.size}: {exc}",
                check="witness_consistency",
                expected=exc.expected,
                actual=exc.actual,
            ) from exc


def _refusal(status: int, message: str, check: str, *, size: int | None = None
             ) -> WitnessRefusal:
    refusal = WitnessRefusal(message, check=check, actual=size)
    refusal.status = status
    refusal.witness_size = size
    return refusal


def load_cosigner(path: Path, name: str, *, create: bool = False) -> Cosigner:
    """The witness key in ``path`` (PEM PKCS#8 Ed25519) under ``name``; with ``create`` a new
    key is written there (owner-only) when the file does not exist."""
    if create and not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        write_atomically(path, pem, 0o600, exclusive=True)
    try:
        loaded = load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise LogFormatError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise LogFormatError(f"{path} is not an Ed25519 private key")
    return Cosigner(name, loaded)
