"""The AWS KMS adapter: the same broker interface over boto3's ``GenerateDataKey``/``Decrypt``.

For Nitro, AWS KMS is the key broker: the key policy's ``kms:RecipientAttestation:ImageSha384``
condition plays the part of the local broker's PCR0 policy, and KMS itself verifies the document
against the AWS root (AWS KMS developer guide, "How AWS Nitro Enclaves uses AWS KMS"). This
adapter only shapes requests and answers; it holds no key material but the wrapped data-key
blobs, kept per strategy in the zcbench home so a rebuild can ask KMS for the same data key again
and stay reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zcbench.errors import EnvError
from zcbench.keys._broker import KEY_ENCRYPTION_ALGORITHM, KeyReleaseRefused, _check_name
from zcbench.keys._seal import DataKey

__all__ = ["KmsRecipientBroker", "kms_key_policy_statement"]


def kms_key_policy_statement(
    *,
    principal_arn: str,
    pcr0s: Iterable[bytes] = (),
    pcr0: bytes | None = None,
) -> dict[str, Any]:
    """A KMS key-policy statement allowing ``Decrypt`` only to enclaves with one of these PCR0s.

    One PCR0 per build that may run (``pcr0s``; ``pcr0`` for a single one), as the local broker
    keeps one policy per build: a list under one condition key matches any of its values. The
    PCR0 of a build does not depend on the data key (DESIGN.md, promotion), so rotating the KMS
    key's material changes nothing here; revoking a build is removing its PCR0 and putting the
    key policy again.
    """
    values = [*pcr0s, *([pcr0] if pcr0 is not None else [])]
    if not values:
        raise ValueError("give at least one PCR0 (an empty statement would allow no build)")
    for value in values:
        if not isinstance(value, bytes) or len(value) != 48 or value == bytes(48):
            raise ValueError("each PCR0 is 48 bytes and not all zero")
    hexes = sorted({v.hex() for v in values})
    return {
        "Sid": "ZcbenchEnclaveDecrypt",
        "Effect": "Allow",
        "Principal": {"AWS": principal_arn},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {
            "StringEqualsIgnoreCase": {
                "kms:RecipientAttestation:ImageSha384": hexes[0] if len(hexes) == 1 else hexes
            }
        },
    }


class KmsRecipientBroker:
    """A key broker backed by AWS KMS (``client`` is a boto3 KMS client, or a stubbed one).

    ``key_id`` is the KMS key (id, ARN or alias); ``store`` keeps each strategy's data-key blob
    (default ``zcbench_home()/kms``).
    """

    def __init__(self, client: Any, *, key_id: str, store: str | Path | None = None) -> None:
        if store is None:
            from zcbench.home import zcbench_home

            store = zcbench_home() / "kms"
        self.client = client
        self.key_id = key_id
        self.store = Path(store)

    def _blob_path(self, strategy: str) -> Path:
        self.store.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.store / f"{_check_name(strategy)}.blob"

    def generate_data_key(self, strategy: str) -> DataKey:
        """The strategy's data key: ``GenerateDataKey`` once, then ``Decrypt`` of the kept blob."""
        from botocore.exceptions import BotoCoreError, ClientError

        path = self._blob_path(strategy)
        try:
            if path.exists():
                blob = path.read_bytes()
                answer = self.client.decrypt(CiphertextBlob=blob, KeyId=self.key_id)
            else:
                answer = self.client.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
                blob = answer["CiphertextBlob"]
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, blob)
                finally:
                    os.close(fd)
        except (BotoCoreError, ClientError) as exc:
            raise EnvError(f"AWS KMS refused or failed for key {self.key_id}: {exc}") from None
        plaintext = answer.get("Plaintext")
        if not isinstance(plaintext, bytes) or len(plaintext) != 32:
            raise EnvError("AWS KMS returned no 32-byte data key")
        return DataKey(plaintext=plaintext, ciphertext_blob=blob, key_id=str(answer["KeyId"]))

    def decrypt(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Forward an enclave's ``Decrypt`` with ``Recipient``; answer only the envelope.

        Any KMS error, or an answer carrying plaintext or lacking the envelope, becomes
        :class:`KeyReleaseRefused`; KMS's own message is not passed to the enclave.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        recipient = request.get("Recipient")
        if (
            not isinstance(recipient, Mapping)
            or recipient.get("KeyEncryptionAlgorithm") != KEY_ENCRYPTION_ALGORITHM
        ):
            raise KeyReleaseRefused()
        try:
            answer = self.client.decrypt(
                CiphertextBlob=request["CiphertextBlob"],
                KeyId=self.key_id,
                Recipient={
                    "AttestationDocument": recipient["AttestationDocument"],
                    "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
                },
            )
        except (BotoCoreError, ClientError, KeyError):
            raise KeyReleaseRefused() from None
        envelope = answer.get("CiphertextForRecipient")
        if answer.get("Plaintext") or not isinstance(envelope, bytes) or not envelope:
            raise KeyReleaseRefused()
        return {"CiphertextForRecipient": envelope, "KeyId": str(answer.get("KeyId", ""))}
