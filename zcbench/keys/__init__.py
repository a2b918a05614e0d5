"""Key release and sealing: the local key broker, the KMS ``Recipient`` adapter, sealing.

Owns the data key of every strategy (created once, kept by a broker), deterministic sealing of the
strategy module and parameters (and of state the enclave seals for itself: a strategy's
snapshot, the ledger's state), and the KMS ``Recipient`` exchange: a broker answers a ``Decrypt``
request carrying an attestation document with CMS EnvelopedData, and the enclave opens it with
:func:`unwrap_recipient`, the same code for the local broker and AWS KMS. A broker must never
release a key without a verified document whose PCR0 has a policy naming that strategy: one
policy per packaged build, listed and revoked by the operator (``zcbench keys``).
"""

from zcbench.keys._broker import (
    KEY_ENCRYPTION_ALGORITHM,
    AttestedRecipient,
    DocumentVerifier,
    KeyBroker,
    KeyPolicy,
    KeyReleaseRefused,
    LocalKeyBroker,
    Refusal,
    is_enclave_sealed,
    nitro_document_verifier,
    parse_pcr0,
    seal_to_broker,
)
from zcbench.keys._cms import UnwrapError, unwrap_recipient, wrap_for_recipient
from zcbench.keys._kms import KmsRecipientBroker, kms_key_policy_statement
from zcbench.keys._seal import (
    SEAL_ALG,
    DataKey,
    SealedHeader,
    Unsealed,
    UnsealError,
    open_state,
    read_sealed_header,
    seal_state,
    seal_strategy,
    sealed_content_sha256,
    state_key,
    unseal_strategy,
)

__all__ = [
    "KEY_ENCRYPTION_ALGORITHM",
    "SEAL_ALG",
    "AttestedRecipient",
    "DataKey",
    "DocumentVerifier",
    "KeyBroker",
    "KeyPolicy",
    "KeyReleaseRefused",
    "KmsRecipientBroker",
    "LocalKeyBroker",
    "Refusal",
    "SealedHeader",
    "UnsealError",
    "Unsealed",
    "UnwrapError",
    "is_enclave_sealed",
    "kms_key_policy_statement",
    "nitro_document_verifier",
    "open_state",
    "parse_pcr0",
    "read_sealed_header",
    "seal_state",
    "seal_strategy",
    "seal_to_broker",
    "sealed_content_sha256",
    "state_key",
    "unseal_strategy",
    "unwrap_recipient",
    "wrap_for_recipient",
]
