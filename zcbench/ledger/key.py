"""The ledger key: one stable Ed25519 key per strategy's ledger, released only to allowed PCR0s.

The key signs the ledger's C2SP checkpoints under the ledger's origin for the ledger's whole
life (a witness follows one origin under one key). It is made at genesis and sealed by the key
broker; the sealed blob lives beside the ledger (``ledger-key.sealed``, owner-only) and is opened
only for a requester whose PCR0 the ledger allows at that moment (:class:`SealedLedgerKey`).

Two worlds (DESIGN.md): on Nitro the enclave makes the key, AWS KMS seals it (``Encrypt``) and
releases it by ``Decrypt`` with ``Recipient`` under a key policy whose PCR0 condition is the
ledger's allowed set (:func:`kms_ledger_key_policy`); KMS verifies the document. In the local
stand-in the local key broker holds it (:meth:`zcbench.keys.LocalKeyBroker.seal_secret`), and
the allowed-set check is made here before the broker opens the blob: the requester's PCR0 is the
build it acts for, as a local enclave's is its measured image. The stand-in is not
confidential (anyone with the zcbench home can open the blob), like every local secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog.checkpoint import LogSigner
from zcbench.errors import EnvError
from zcbench.keys import KeyReleaseRefused, LocalKeyBroker, kms_key_policy_statement
from zcbench.ledger._errors import LedgerKeyRefused
from zcbench.ledger.rules import LedgerState

__all__ = ["KEY_FILE", "SealedLedgerKey", "kms_ledger_key_policy", "secret_name"]

KEY_FILE: Final = "ledger-key.sealed"


def secret_name(origin: str) -> str:
    """The broker's name for the ledger key of ``origin`` (letters, digits, ``_.-``)."""
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in origin)
    return f"ledger.{safe}"[:64]


@dataclass(frozen=True, slots=True)
class SealedLedgerKey:
    """The ledger key sealed by a local key broker, in ``folder/ledger-key.sealed``."""

    folder: Path
    origin: str
    broker_factory: Callable[[], LocalKeyBroker] = LocalKeyBroker

    @property
    def path(self) -> Path:
        return self.folder / KEY_FILE

    @classmethod
    def generate(cls, folder: Path, origin: str,
                 broker_factory: Callable[[], LocalKeyBroker] = LocalKeyBroker
                 ) -> tuple[SealedLedgerKey, LogSigner]:
        """Genesis: a new key, sealed into ``folder``; returns the holder and the signer that
        appends the genesis entry (the key is in memory only for that)."""
        key = Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        holder = cls(folder, origin, broker_factory)
        blob = broker_factory().seal_secret(secret_name(origin), seed)
        fd = os.open(holder.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        return holder, LogSigner(key, origin)

    def release(self, pcr0: bytes, state: LedgerState, at_ns: int) -> LogSigner:
        """The ledger's signer for a requester whose PCR0 is ``pcr0``, at ``at_ns``.

        Raises :class:`LedgerKeyRefused` unless ``pcr0`` is in the allowed set at ``at_ns``.
        """
        if not state.is_allowed(pcr0, at_ns):
            version = state.versions.get(pcr0)
            why = ("is not announced in the ledger" if version is None else
                   "is revoked" if version.revoked_ns is not None else
                   f"is valid only from {version.valid_from_ns} ns")
            raise LedgerKeyRefused(f"the ledger key is not released to PCR0 {pcr0.hex()[:16]}...:"
                                   f" it {why}", check="ledger_key_release")
        try:
            blob = self.path.read_bytes()
        except OSError as exc:
            raise EnvError(f"{self.path}: the sealed ledger key cannot be read ({exc.strerror})"
                           ) from None
        try:
            seed = self.broker_factory().open_secret(blob, secret_name(self.origin))
        except KeyReleaseRefused as exc:
            raise LedgerKeyRefused(f"the key broker refused the ledger key: {exc}",
                                   check="ledger_key_release") from None
        return LogSigner(Ed25519PrivateKey.from_private_bytes(seed), self.origin)


def kms_ledger_key_policy(state: LedgerState, *, principal_arn: str, at_ns: int
                          ) -> dict[str, Any]:
    """The KMS key-policy statement releasing the ledger key (and the data key) only to the
    PCR0s the ledger allows at ``at_ns``: put it again whenever the allowed set changes (an
    announcement reaching its ``valid_from``, a revocation)."""
    allowed = [v.pcr0 for v in state.allowed(at_ns)]
    if not allowed:
        raise LedgerKeyRefused("the ledger allows no PCR0 at that time", check="allowed_set")
    return kms_key_policy_statement(principal_arn=principal_arn, pcr0s=allowed)
