"""C2SP signed notes with Ed25519 keys, verifier keys (vkeys) and cosignature/v1.

Formats from https://c2sp.org/signed-note and https://c2sp.org/tlog-cosignature::

    <text, ending in "\\n">
    <empty line>
    — <key name> <base64(4-byte key ID ‖ signature)>      one line per signature

A key ID is ``SHA-256(name ‖ "\\n" ‖ sig_type ‖ public key)[:4]``; sig_type is 0x01 for an
Ed25519 note signature and 0x04 for a cosignature/v1, whose signature is an 8-byte big-endian
timestamp then an Ed25519 signature over ``"cosignature/v1\\ntime <ts>\\n" ‖ checkpoint text``.
A vkey is ``<name>+<hex key ID>+<base64(sig_type ‖ public key)>``.

Verification fails closed: unknown signers are ignored, a known signer whose signature does not
verify rejects the note, and a note no known key verifies is rejected. This module signs and
verifies text; what the text means (a checkpoint) is :mod:`zcbench.auditlog.checkpoint`'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from zcbench.auditlog._errors import LogFormatError, NoteError

__all__ = [
    "MAX_SIGNATURES",
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "Cosigner",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "cosignature_message",
    "key_id",
    "open_note",
    "parse_cosigner_vkey",
    "parse_note",
    "parse_skey",
    "parse_vkey",
    "sign_note",
]

SIG_ED25519: Final = 0x01
SIG_COSIGNATURE_V1: Final = 0x04
MAX_SIGNATURES: Final = 100
"""Signature lines accepted on one note (the spec asks verifiers to accept at least 16)."""
_DASH: Final = "\u2014 "
_CONTROL: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
_SPACE: Final = re.compile(r"\s")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name ‖ 0x0A ‖ sig_type ‖ public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or "+" in name or _SPACE.search(name):
        raise ValueError(f"key name {name!r} must be non-empty, without spaces or '+'")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the signer's name, key ID and signature bytes (after the key ID)."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """The line as it appears in the note, with its newline."""
        payload = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_DASH}{self.name} {payload}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed signed note: its text (with final newline) and signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        """The note's bytes: text, empty line, signature lines."""
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 note-signing public key under a name (sig_type 0x01).

    ``key_id`` (the 4-byte key ID for this name and key) is computed once, at construction.
    """

    name: str
    public_key: Ed25519PublicKey
    key_id: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "key_id", key_id(self.name, SIG_ED25519, _raw(self.public_key)))

    @property
    def vkey(self) -> str:
        """The verifier key string ``name+hex8+base64(0x01 ‖ key)``."""
        data = base64.b64encode(bytes([SIG_ED25519]) + _raw(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def verifies(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``text``."""
        try:
            self.public_key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 note-signing private key under a name.

    ``verifier`` (the matching public key and its key ID) is made once, at construction: a
    live run's log signs a checkpoint for every batch, and deriving the public key, its raw
    bytes and the key ID's hash for each was a quarter of the signature's time.
    """

    name: str
    private_key: Ed25519PrivateKey
    verifier: NoteVerifier = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "verifier", NoteVerifier(self.name, self.private_key.public_key()))

    def sign(self, text: str) -> NoteSignature:
        """This key's signature line over ``text``."""
        data = _check_text(text)
        return NoteSignature(self.name, self.verifier.key_id, self.private_key.sign(data))


def _check_text(text: str) -> bytes:
    if not text.endswith("\n"):
        raise ValueError("note text must end with a newline")
    if _CONTROL.search(text):
        raise ValueError("note text may contain no control character but newline")
    return text.encode()


def parse_vkey(vkey: str) -> NoteVerifier:
    """The verifier described by a vkey string; only Ed25519 (type 0x01) keys are accepted."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise LogFormatError(f"vkey {vkey!r} is not name+keyid+key")
    name, hex_id, data = parts
    try:
        raw = base64.b64decode(data, validate=True)
        want_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise LogFormatError(f"vkey {vkey!r} is not well-formed: {exc}") from exc
    if len(hex_id) != 8 or len(raw) != 33 or raw[0] != SIG_ED25519:
        raise LogFormatError(f"vkey {vkey!r} is not an Ed25519 note key")
    try:
        verifier = NoteVerifier(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
    except ValueError as exc:
        raise LogFormatError(f"vkey {vkey!r}: {exc}") from exc
    if verifier.key_id != want_id:
        raise LogFormatError(
            f"vkey {vkey!r} names key ID {hex_id}, the key's ID is {verifier.key_id.hex()}"
        )
    return verifier


def parse_cosigner_vkey(vkey: str) -> tuple[str, Ed25519PublicKey]:
    """The name and key of a cosignature/v1 vkey (type 0x04), e.g. from a tlog-policy."""
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise LogFormatError(f"vkey {vkey!r} is not name+keyid+key")
    name, hex_id, data = parts
    try:
        _check_name(name)
        raw = base64.b64decode(data, validate=True)
        want_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise LogFormatError(f"vkey {vkey!r} is not well-formed: {exc}") from exc
    if len(hex_id) != 8 or len(raw) != 33 or raw[0] != SIG_COSIGNATURE_V1:
        raise LogFormatError(f"vkey {vkey!r} is not an Ed25519 cosignature/v1 key")
    if key_id(name, SIG_COSIGNATURE_V1, raw[1:]) != want_id:
        raise LogFormatError(f"vkey {vkey!r} names key ID {hex_id}, the key's ID differs")
    try:
        return name, Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError as exc:
        raise LogFormatError(f"vkey {vkey!r}: {exc}") from exc


def parse_skey(skey: str) -> NoteSigner:
    """The signer described by a Go ``sumdb/note`` private key string.

    ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 ‖ 32-byte seed)>``. Meant for test keys:
    a real log key never leaves its enclave.
    """
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise LogFormatError("skey is not PRIVATE+KEY+name+keyid+key")
    name, hex_id, data = parts[2:]
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise LogFormatError(f"skey key data is not base64: {exc}") from exc
    if len(raw) != 33 or raw[0] != SIG_ED25519:
        raise LogFormatError("skey is not an Ed25519 key")
    signer = NoteSigner(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if signer.verifier.key_id.hex() != hex_id:
        raise LogFormatError(f"skey names key ID {hex_id}, the key's ID differs")
    return signer


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note of ``text`` with one line per signer, in the order given."""
    if not signers:
        raise ValueError("a note needs at least one signer")
    return Note(text, tuple(s.sign(text) for s in signers)).to_bytes()


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signature lines, without verifying anything."""
    if len(data) > 1_000_000:
        raise LogFormatError(f"note of {len(data)} bytes is too large")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LogFormatError(f"note is not UTF-8: {exc}") from exc
    if _CONTROL.search(decoded):
        raise LogFormatError("note contains a control character other than newline")
    cut = decoded.rfind("\n\n")
    if cut < 0 or not decoded.endswith("\n"):
        raise LogFormatError("note has no empty line before its signatures")
    text, block = decoded[: cut + 1], decoded[cut + 2 :]
    lines = block.split("\n")[:-1]
    if not lines:
        raise LogFormatError("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise LogFormatError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = []
    for line in lines:
        if not line.startswith(_DASH):
            raise LogFormatError(f"signature line {line!r} does not start with an em dash")
        name, sep, payload = line[len(_DASH) :].partition(" ")
        try:
            _check_name(name)
            raw = binascii.a2b_base64(payload, strict_mode=True)
        except (ValueError, binascii.Error) as exc:
            raise LogFormatError(f"signature line {line!r} is malformed: {exc}") from exc
        if not sep or len(raw) < 5:
            raise LogFormatError(f"signature line {line!r} is malformed")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def open_note(data: bytes, verifiers: Sequence[NoteVerifier]) -> tuple[Note, list[NoteVerifier]]:
    """Parse and verify a note; returns it with the verifiers whose signatures verified.

    Raises :class:`NoteError` when a known key's signature fails or no known key signed it.
    """
    note = parse_note(data)
    text = note.text.encode()
    known = {(v.name, v.key_id): v for v in verifiers}
    good: list[NoteVerifier] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # unknown signers are ignored (cosigners, rotated keys)
        if not verifier.verifies(text, sig.signature):
            raise NoteError(
                f"the signature of {sig.name} (key {sig.key_id.hex()}) on the note does not "
                "verify: the note was altered or signed by another key",
                check="note_signature",
                expected=verifier.vkey,
                actual=sig.line().strip(),
            )
        if not any(v is verifier for v in good):
            good.append(verifier)
    if not good:
        raise NoteError(
            "no known key signed the note",
            check="note_signer",
            expected=[v.vkey for v in verifiers],
            actual=[f"{s.name}+{s.key_id.hex()}" for s in note.signatures],
        )
    return note, good


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header, the time line and the checkpoint text."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode()


@dataclass(frozen=True, slots=True)
class Cosigner:
    """A witness key making cosignature/v1 lines (sig_type 0x04) over checkpoint texts."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_id(self) -> bytes:
        """The 4-byte cosignature key ID."""
        return key_id(self.name, SIG_COSIGNATURE_V1, _raw(self.private_key.public_key()))

    @property
    def vkey(self) -> str:
        """The witness's verifier key ``name+hex8+base64(0x04 ‖ key)`` (tlog-policy's form)."""
        data = base64.b64encode(
            bytes([SIG_COSIGNATURE_V1]) + _raw(self.private_key.public_key())).decode()
        return f"{self.name}+{self.key_id.hex()}+{data}"

    def cosign(self, checkpoint_text: str, timestamp: int) -> NoteSignature:
        """The cosignature line over ``checkpoint_text`` at ``timestamp`` (Unix seconds)."""
        if not 0 <= timestamp < 2**63:
            raise ValueError(f"timestamp {timestamp} out of range")
        sig = self.private_key.sign(cosignature_message(checkpoint_text, timestamp))
        return NoteSignature(self.name, self.key_id, struct.pack(">Q", timestamp) + sig)

    @staticmethod
    def verify(
        signature: NoteSignature, checkpoint_text: str, public_key: Ed25519PublicKey
    ) -> int:
        """The timestamp of a cosignature by ``public_key``; raises :class:`NoteError`."""
        want = key_id(signature.name, SIG_COSIGNATURE_V1, _raw(public_key))
        if signature.key_id != want or len(signature.signature) != 72:
            raise NoteError(
                f"{signature.name}'s line is not a cosignature/v1 by this key",
                check="cosignature_key",
                expected=want.hex(),
                actual=signature.key_id.hex(),
            )
        (timestamp,) = struct.unpack(">Q", signature.signature[:8])
        try:
            public_key.verify(
                signature.signature[8:], cosignature_message(checkpoint_text, timestamp)
            )
        except InvalidSignature:
            raise NoteError(
                f"the cosignature of {signature.name} does not verify",
                check="cosignature",
            ) from None
        return int(timestamp)
