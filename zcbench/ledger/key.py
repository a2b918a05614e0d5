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
build it acts for, as a local enclave's is its measured image. An enclave asks the broker
itself (:func:`zcbench.enclave.ledger.release_ledger_seed`, ``Decrypt`` with ``Recipient``):
the broker's release policy of the secret is the ledger's allowed set
(:meth:`zcbench.ledger.Ledger.sync_key_policy`) and is checked against the attested PCR0.
The stand-in is not confidential (anyone with the zcbench home can open the blob), like every
local secret.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from zcbench.auditlog.checkpoint import LogSigner
from zcbench.errors import EnvError
from zcbench.keys import KeyReleaseRefused, LocalKeyBroker, kms_key_policy_statement
from zcbench.ledger._errors import LedgerKeyRefused
from zcbench.ledger.rules import LedgerState

__all__ = ["KEY_FILE", "AttestedLedgerKey", "LedgerKeyHolder", "SealedLedgerKey",
           "kms_ledger_key_policy", "secret_name"]

KEY_FILE: Final = "ledger-key.sealed"


class LedgerKeyHolder(Protocol):
    """Where a ledger's key is kept: released as a signer to a PCR0 the ledger allows."""

    @property
    def origin(self) -> str: ...

    def release(self, pcr0: bytes, state: LedgerState, at_ns: int) -> LogSigner: ...


def _refuse_unless_allowed(pcr0: bytes, state: LedgerState, at_ns: int) -> None:
    if state.is_allowed(pcr0, at_ns):
        return
    version = state.versions.get(pcr0)
    why = ("is not announced in the ledger" if version is None else
           "is revoked" if version.revoked_ns is not None else
           f"is valid only from {version.valid_from_ns} ns")
    raise LedgerKeyRefused(f"the ledger key is not released to PCR0 {pcr0.hex()[:16]}...: "
                           f"it {why}", check="ledger_key_release")


def _write_key_blob(path: Path, blob: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)


def _seed_of(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


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

    @property
    def key_id(self) -> str:
        """The key id of the broker that sealed it (a KMS request's ``KeyId``)."""
        return self.broker_factory().key_id

    @classmethod
    def generate_insecure_host_key(cls, folder: Path, origin: str,
                                   broker_factory: Callable[[], LocalKeyBroker] = LocalKeyBroker
                                   ) -> tuple[SealedLedgerKey, LogSigner]:
        """DEVELOPMENT ONLY: a new key made in *this* process and sealed into ``folder`` so
        that this process can open it again (:meth:`release`); returns the holder and the
        signer. A real ledger's key is made in the genesis enclave and sealed there
        (:func:`zcbench.keys.seal_to_broker`), and no host process can open it."""
        key = Ed25519PrivateKey.generate()
        holder = cls(folder, origin, broker_factory)
        _write_key_blob(holder.path, broker_factory().seal_secret(secret_name(origin),
                                                                  _seed_of(key)))
        return holder, LogSigner(key, origin)

    def release(self, pcr0: bytes, state: LedgerState, at_ns: int) -> LogSigner:
        """The ledger's signer for a requester whose PCR0 is ``pcr0``, at ``at_ns``.

        Raises :class:`LedgerKeyRefused` unless ``pcr0`` is in the allowed set at ``at_ns``.
        """
        _refuse_unless_allowed(pcr0, state, at_ns)
        try:
            blob = self.path.read_bytes()
        except OSError as exc:
            raise EnvError(f"{self.path}: the sealed ledger key cannot be read ({exc.strerror})"
                           ) from None
        from zcbench.keys import is_enclave_sealed

        if is_enclave_sealed(blob):
            raise LedgerKeyRefused(
                "this ledger's key was made in its genesis enclave and is released only to an "
                "attested enclave the ledger allows: this process cannot sign (have the live "
                "version's enclave append it: 'zcbench ledger announce|revoke ... --by "
                "LIVE_BUILD_DIR')", check="ledger_key_release")
        try:
            seed = self.broker_factory().open_secret(blob, secret_name(self.origin))
        except KeyReleaseRefused as exc:
            raise LedgerKeyRefused(f"the key broker refused the ledger key: {exc}",
                                   check="ledger_key_release") from None
        return LogSigner(Ed25519PrivateKey.from_private_bytes(seed), self.origin)


@dataclass(frozen=True, slots=True)
class AttestedLedgerKey:
    """The ledger key as an enclave holds it on Nitro: sealed by AWS KMS (``Encrypt`` at
    genesis, inside the first enclave), released by ``Decrypt`` with ``Recipient`` to this
    enclave's attestation document; KMS checks the document's PCR0 against the key policy
    (:func:`kms_ledger_key_policy`), the enclave checks the ledger's allowed set first.

    ``kms`` is a boto3 KMS client (genesis), ``broker`` answers ``Decrypt`` with ``Recipient``
    (:class:`zcbench.keys.KmsRecipientBroker`), ``attest(public_key_der)`` is the enclave's
    attestation document binding that RSA key (the NSM), ``new_rsa_key`` makes the one-use key.
    """

    folder: Path
    origin: str
    key_id: str
    broker: Any
    attest: Callable[[bytes], bytes]
    new_rsa_key: Callable[[], Any] | None = None

    @property
    def path(self) -> Path:
        return self.folder / KEY_FILE

    @classmethod
    def generate(cls, folder: Path, origin: str, *, kms: Any, key_id: str, broker: Any,
                 attest: Callable[[bytes], bytes]) -> tuple[AttestedLedgerKey, LogSigner]:
        """Genesis inside the first enclave: a new key, sealed by KMS ``Encrypt``."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = Ed25519PrivateKey.generate()
        try:
            answer = kms.encrypt(KeyId=key_id, Plaintext=_seed_of(key))
        except (BotoCoreError, ClientError) as exc:
            raise EnvError(f"AWS KMS could not seal the ledger key under {key_id}: {exc}"
                           ) from None
        holder = cls(folder, origin, key_id, broker, attest)
        _write_key_blob(holder.path, bytes(answer["CiphertextBlob"]))
        return holder, LogSigner(key, origin)

    def release(self, pcr0: bytes, state: LedgerState, at_ns: int) -> LogSigner:
        """The signer, once the allowed set and then KMS (on the attested PCR0) agree."""
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from zcbench.keys import KEY_ENCRYPTION_ALGORITHM, UnwrapError, unwrap_recipient

        _refuse_unless_allowed(pcr0, state, at_ns)
        rsa_key = (self.new_rsa_key() if self.new_rsa_key is not None
                   else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        spki = rsa_key.public_key().public_bytes(Encoding.DER,
                                                 PublicFormat.SubjectPublicKeyInfo)
        request = {"CiphertextBlob": self.path.read_bytes(), "KeyId": self.key_id,
                   "Recipient": {"AttestationDocument": self.attest(spki),
                                 "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM}}
        try:
            answer = self.broker.decrypt(request)
            seed = unwrap_recipient(answer["CiphertextForRecipient"], rsa_key)
            return LogSigner(Ed25519PrivateKey.from_private_bytes(seed), self.origin)
        except (KeyReleaseRefused, UnwrapError, KeyError, ValueError):
            raise LedgerKeyRefused("the key broker refused the ledger key",
                                   check="ledger_key_release") from None


def kms_ledger_key_policy(state: LedgerState, *, principal_arn: str, at_ns: int
                          ) -> dict[str, Any]:
    """The KMS key-policy statement releasing the ledger key (and the data key) only to the
    PCR0s the ledger allows at ``at_ns``: put it again whenever the allowed set changes (an
    announcement reaching its ``valid_from``, a revocation)."""
    allowed = [v.pcr0 for v in state.allowed(at_ns)]
    if not allowed:
        raise LedgerKeyRefused("the ledger allows no PCR0 at that time", check="allowed_set")
    return kms_key_policy_statement(principal_arn=principal_arn, pcr0s=allowed)
