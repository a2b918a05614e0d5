"""Checkpoints: C2SP tlog-checkpoint bodies, the log's signer and their verification.

A checkpoint body (https://c2sp.org/tlog-checkpoint)::

    <origin>\\n<tree size, decimal>\\n<base64 root>\\n[<extension line>\\n ...]

signed as a C2SP note whose key name is the origin. The origin of a zcbench run's log is
``zcbench/<first 16 hex digits of PCR0>/<run id>`` (one log per run: the key is ephemeral per
boot). :class:`LogSigner` is what the enclave holds; :func:`verify_checkpoint` is what everyone
else calls with the public key taken from the verified boot document (DER SubjectPublicKeyInfo).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from zcbench.auditlog._errors import LogFormatError, NoteError
from zcbench.auditlog.merkle import HASH_SIZE
from zcbench.auditlog.note import NoteSigner, NoteVerifier, open_note, parse_note, sign_note

__all__ = [
    "Checkpoint",
    "CheckpointVerifier",
    "LogSigner",
    "format_checkpoint",
    "log_origin",
    "log_verifier",
    "parse_checkpoint",
    "parse_checkpoint_note",
    "verify_checkpoint",
]

_SIZE: Final = re.compile(r"(0|[1-9][0-9]{0,19})")
_RUN_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: origin, size and root, plus opaque extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The checkpoint body as signed."""
        return format_checkpoint(self)


def log_origin(pcr0: bytes | str, run_id: str) -> str:
    """``zcbench/<first 16 hex of PCR0>/<run id>``: the origin of one run's log."""
    hex_pcr0 = pcr0.hex() if isinstance(pcr0, bytes) else pcr0.lower()
    if len(hex_pcr0) < 16 or any(c not in "0123456789abcdef" for c in hex_pcr0):
        raise ValueError(f"PCR0 {hex_pcr0!r} is not a hex digest")
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    return f"zcbench/{hex_pcr0[:16]}/{run_id}"


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The C2SP checkpoint body of ``checkpoint``."""
    if not checkpoint.origin or "\n" in checkpoint.origin:
        raise ValueError(f"origin {checkpoint.origin!r} must be one non-empty line")
    if checkpoint.size < 0 or len(checkpoint.root) != HASH_SIZE:
        raise ValueError("a checkpoint needs a size >= 0 and a 32-byte root")
    for line in checkpoint.extensions:
        if not line or "\n" in line:
            raise ValueError(f"extension line {line!r} must be one non-empty line")
    lines = [checkpoint.origin, str(checkpoint.size), base64.b64encode(checkpoint.root).decode()]
    return "\n".join([*lines, *checkpoint.extensions]) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note's text; raises :class:`LogFormatError` when malformed."""
    if not text.endswith("\n"):
        raise LogFormatError("checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise LogFormatError("checkpoint needs origin, size and root lines, none empty")
    origin, size_line, root_line = lines[:3]
    if not _SIZE.fullmatch(size_line) or int(size_line) >= 2**64:
        raise LogFormatError(f"checkpoint size {size_line!r} is not a decimal without zeros")
    try:
        root = binascii.a2b_base64(root_line, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise LogFormatError(f"checkpoint root {root_line!r} is not base64") from exc
    if len(root) != HASH_SIZE or binascii.b2a_base64(root, newline=False) != root_line.encode():
        raise LogFormatError(f"checkpoint root {root_line!r} is not a canonical 32-byte hash")
    return Checkpoint(origin, int(size_line), root, tuple(lines[3:]))


def parse_checkpoint_note(note: bytes) -> Checkpoint:
    """The checkpoint in a signed note, *unverified* (for display and triage only)."""
    return parse_checkpoint(parse_note(note).text)


def log_verifier(public_key_spki_der: bytes, origin: str) -> NoteVerifier:
    """The note verifier for a log: the Ed25519 key from its DER SPKI, named by the origin."""
    try:
        key = load_der_public_key(public_key_spki_der)
    except ValueError as exc:
        raise NoteError(
            f"the log public key is not a DER SubjectPublicKeyInfo: {exc}",
            check="log_public_key",
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise NoteError(
            f"the log public key is a {type(key).__name__}, not Ed25519",
            check="log_public_key",
            expected="Ed25519",
            actual=type(key).__name__,
        )
    return NoteVerifier(origin, key)


def verify_checkpoint(note: bytes, public_key_spki_der: bytes, origin: str) -> Checkpoint:
    """The checkpoint in ``note`` after checking the log's signature and its origin.

    Raises :class:`NoteError` (a VerificationError) when the log key did not sign it or the
    origin differs, :class:`LogFormatError` when it is not a checkpoint note.
    """
    return CheckpointVerifier(public_key_spki_der, origin).verify(note)


class CheckpointVerifier:
    """:func:`verify_checkpoint` with the key loaded once, for logs with many checkpoints."""

    def __init__(self, public_key_spki_der: bytes, origin: str) -> None:
        self.origin = origin
        verifier = log_verifier(public_key_spki_der, origin)
        self._verifiers = [verifier]
        self._public_key = verifier.public_key
        self._key_id = verifier.key_id
        self._line = "\u2014 ".encode() + origin.encode() + b" "

    def verify(self, note: bytes) -> Checkpoint:
        """The verified checkpoint in ``note`` (see :func:`verify_checkpoint`)."""
        text = self._single_signature_text(note)
        if text is None:
            text = open_note(note, self._verifiers)[0].text
        checkpoint = parse_checkpoint(text)
        if checkpoint.origin != self.origin:
            raise NoteError(
                f"checkpoint is for log {checkpoint.origin!r}, expected {self.origin!r}",
                check="checkpoint_origin",
                expected=self.origin,
                actual=checkpoint.origin,
            )
        return checkpoint

    def _single_signature_text(self, note: bytes) -> str | None:
        """The text of a note carrying exactly one line, by this log key, once verified.

        The common case, checked directly; any other note (cosigned, malformed, another key,
        a bad signature) returns None and takes the general path, which decides and explains.
        """
        cut = note.rfind(b"\n\n")
        line = note[cut + 2 :]
        if (cut < 0 or not line.startswith(self._line) or not line.endswith(b"\n")
                or line.count(b"\n") != 1):
            return None
        try:
            raw = binascii.a2b_base64(line[len(self._line) : -1], strict_mode=True)
            text = note[: cut + 1].decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        if len(raw) != 68 or raw[:4] != self._key_id or _CONTROL.search(text):
            return None
        try:
            self._public_key.verify(raw[4:], note[: cut + 1])
        except InvalidSignature:
            return None
        return text


class LogSigner:
    """The log key: signs checkpoints of one origin. Pure computation, usable in the enclave."""

    def __init__(self, private_key: Ed25519PrivateKey, origin: str) -> None:
        self._signer = NoteSigner(origin, private_key)
        self.origin = origin

    @property
    def public_key_spki_der(self) -> bytes:
        """The public key as DER SubjectPublicKeyInfo (44 bytes): the boot document's field."""
        return self._signer.private_key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def vkey(self) -> str:
        """The C2SP verifier key string of this log."""
        return self._signer.verifier.vkey

    def sign(self, size: int, root: bytes, extensions: Sequence[str] = ()) -> bytes:
        """The signed checkpoint note for (size, root)."""
        body = format_checkpoint(Checkpoint(self.origin, size, root, tuple(extensions)))
        return sign_note(body, [self._signer])
