"""Deterministic sealing of a strategy module and its parameters under a data key.

AES-256-GCM-SIV with a synthetic nonce, ``HMAC-SHA256(data key, "zcbench.seal/1" || plaintext)``
truncated to 12 bytes: the same module, parameters and key always give the same sealed bytes (so a
rebuild is byte-identical), while different plaintexts never share a nonce, and GCM-SIV stays safe
even if they did. The header (strategy name, key id and the wrapped data key the enclave must ask
the key broker to release) is authenticated as associated data and travels in the clear.

Sealed payload, canonical CBOR::

    {"v": 1, "alg": "AES-256-GCM-SIV", "strategy": str, "key_id": str,
     "data_key_blob": bytes, "nonce": bytes(12), "ciphertext": bytes}

The plaintext is canonical CBOR ``{"module": str, "parameters": map}``; its SHA-256,
:func:`sealed_content_sha256`, is what the measured manifest carries (DESIGN.md, promotion): the
enclave unseals a payload delivered at boot and refuses it unless the plaintext hashes to the
measured value, so the image names the strategy and its parameters without holding the ciphertext
(whose bytes depend on the data key). The digest covers the module with the parameters, so a
grid of guessed parameters cannot be tested against it without the module source. Unsealing
failures are one opaque :class:`UnsealError`.

**State the enclave seals for itself** (:func:`seal_state`, :func:`open_state`): the same
AES-256-GCM-SIV with a synthetic nonce, under a key :func:`state_key` derives inside the
enclave, ``HMAC-SHA256(secret, label || context)``, from a secret only an attested enclave got
from the key broker (the data key released at boot, the ledger key) and, where the state must
stay with one build, its PCR0 as ``context``. The label is authenticated too, so a state sealed
for one purpose never opens as another. Sealed state, canonical CBOR::

    {"v": 1, "alg": "AES-256-GCM-SIV", "label": str, "nonce": bytes(12), "ciphertext": bytes}

The same key and plaintext give the same bytes (a replay seals what the live run sealed).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from zcbench import _cbor
from zcbench._cbor import describe
from zcbench.errors import DataError, VerificationError

__all__ = [
    "SEAL_ALG",
    "DataKey",
    "SealedHeader",
    "UnsealError",
    "Unsealed",
    "open_state",
    "read_sealed_header",
    "seal_state",
    "seal_strategy",
    "sealed_content_sha256",
    "state_key",
    "unseal_strategy",
]

SEAL_VERSION: Final = 1
SEAL_ALG: Final = "AES-256-GCM-SIV"
MAX_SEALED: Final = 16 * 1024 * 1024
_NONCE_LABEL: Final = b"zcbench.seal/1"
_HEADER_KEYS: Final = ("alg", "data_key_blob", "key_id", "strategy", "v")


@dataclass(frozen=True, slots=True)
class DataKey:
    """A 256-bit data key as a key broker hands it to the packager (never printed)."""

    plaintext: bytes = field(repr=False)
    ciphertext_blob: bytes
    key_id: str

    def __post_init__(self) -> None:
        if len(self.plaintext) != 32:
            raise DataError("a data key is 32 bytes")


@dataclass(frozen=True, slots=True)
class SealedHeader:
    """The clear part of a sealed payload: what the enclave needs to ask for its key."""

    strategy: str
    key_id: str
    data_key_blob: bytes


@dataclass(frozen=True, slots=True)
class Unsealed:
    """A strategy module and its parameters, as only the enclave ever sees them."""

    strategy: str
    module_source: str = field(repr=False)
    parameters: Mapping[str, Any] = field(repr=False)
    content_sha256: str = ""
    """SHA-256 of the plaintext opened (see :func:`sealed_content_sha256`)."""


class UnsealError(VerificationError):
    """A sealed payload could not be opened (deliberately says nothing more)."""

    def __init__(self) -> None:
        super().__init__("sealed payload could not be opened", check="unseal")


def _canonical(value: object) -> bytes:
    """RFC 8949 canonical CBOR (the bytes cbor2's canonical writer gave, byte for byte)."""
    return _cbor.encode_canonical(value)


def _aad(header: Mapping[str, Any]) -> bytes:
    return _canonical({k: header[k] for k in _HEADER_KEYS})


def _plaintext(module_source: str, parameters: Mapping[str, Any]) -> bytes:
    try:
        return _canonical({"module": module_source, "parameters": dict(parameters)})
    except _cbor.CborError as exc:  # a tag or bignum would never unseal: refused here
        raise DataError(f"strategy parameters are not plain data: {exc}") from None


def sealed_content_sha256(module_source: str, parameters: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the plaintext :func:`seal_strategy` seals for this module and parameters."""
    return hashlib.sha256(_plaintext(module_source, parameters)).hexdigest()


def seal_strategy(
    module_source: str,
    parameters: Mapping[str, Any],
    *,
    strategy: str,
    data_key: DataKey,
) -> bytes:
    """The sealed payload for ``module_source`` and ``parameters``; deterministic."""
    plaintext = _plaintext(module_source, parameters)
    nonce = hmac.new(data_key.plaintext, _NONCE_LABEL + plaintext, hashlib.sha256).digest()[:12]
    header: dict[str, Any] = {
        "v": SEAL_VERSION,
        "alg": SEAL_ALG,
        "strategy": strategy,
        "key_id": data_key.key_id,
        "data_key_blob": data_key.ciphertext_blob,
    }
    ciphertext = AESGCMSIV(data_key.plaintext).encrypt(nonce, plaintext, _aad(header))
    return _canonical({**header, "nonce": nonce, "ciphertext": ciphertext})


def _decode(sealed: bytes) -> dict[str, Any]:
    if not isinstance(sealed, bytes) or not 0 < len(sealed) <= MAX_SEALED:
        raise DataError("sealed payload: empty, not bytes or too large")
    try:
        value = _cbor.decode(sealed, canonical=True, max_depth=1, max_bytes=MAX_SEALED)
    except _cbor.CborError as exc:
        raise DataError(f"sealed payload: not canonical CBOR: {exc}") from None
    expected = {*_HEADER_KEYS, "nonce", "ciphertext"}
    if not isinstance(value, dict) or set(value) != expected:
        raise DataError(f"sealed payload: expected keys {sorted(expected)}")
    if type(value["v"]) is not int or value["v"] != SEAL_VERSION or value["alg"] != SEAL_ALG:
        version, alg = describe(value["v"]), describe(value["alg"])
        raise DataError(f"sealed payload: unsupported version {version} / {alg}")
    types = {
        "strategy": str,
        "key_id": str,
        "data_key_blob": bytes,
        "nonce": bytes,
        "ciphertext": bytes,
    }
    for key, kind in types.items():
        if not isinstance(value[key], kind):
            raise DataError(f"sealed payload: {key} must be {kind.__name__}")
    if len(value["nonce"]) != 12:
        raise DataError("sealed payload: nonce must be 12 bytes")
    return value


def read_sealed_header(sealed: bytes) -> SealedHeader:
    """The clear header of a sealed payload (raises :class:`DataError` if malformed)."""
    v = _decode(sealed)
    return SealedHeader(v["strategy"], v["key_id"], v["data_key_blob"])


def unseal_strategy(sealed: bytes, data_key: bytes) -> Unsealed:
    """Open a sealed payload with the released 32-byte data key.

    Raises :class:`UnsealError` on a wrong key or any tampering (opaque by design).
    """
    try:
        v = _decode(sealed)
        plaintext = AESGCMSIV(data_key).decrypt(v["nonce"], v["ciphertext"], _aad(v))
        inner = _cbor.decode(plaintext, canonical=True, floats=True, max_bytes=MAX_SEALED)
        if not (
            isinstance(inner, dict)
            and set(inner) == {"module", "parameters"}
            and isinstance(inner["module"], str)
            and isinstance(inner["parameters"], dict)
        ):
            raise DataError("bad inner payload")
    except Exception:
        raise UnsealError() from None
    digest = hashlib.sha256(plaintext).hexdigest()
    return Unsealed(v["strategy"], inner["module"], inner["parameters"], digest)


_STATE_KEYS: Final = frozenset({"v", "alg", "label", "nonce", "ciphertext"})
MAX_SEALED_STATE: Final = 17 * 1024 * 1024
"""Largest sealed state :func:`open_state` reads (the ledger's state is at most 16 MiB)."""


def state_key(secret: bytes, label: str, context: bytes = b"") -> bytes:
    """The 32-byte key of state sealed for ``label`` (and ``context``, e.g. a PCR0) under a
    secret the key broker released to this enclave."""
    return hmac.new(secret, label.encode() + context, hashlib.sha256).digest()


def seal_state(key: bytes, label: str, plaintext: bytes) -> bytes:
    """``plaintext`` sealed under ``key`` for ``label`` (see the module docstring);
    deterministic."""
    if len(key) != 32 or not label or len(plaintext) > MAX_SEALED_STATE:
        raise DataError("sealing needs a 32-byte key, a label and a bounded plaintext")
    nonce = hmac.new(key, label.encode() + b"\0" + plaintext, hashlib.sha256).digest()[:12]
    header = {"v": SEAL_VERSION, "alg": SEAL_ALG, "label": label}
    ciphertext = AESGCMSIV(key).encrypt(nonce, plaintext, _canonical(header))
    return _canonical({**header, "nonce": nonce, "ciphertext": ciphertext})


def open_state(sealed: bytes, key: bytes, label: str) -> bytes:
    """The plaintext :func:`seal_state` sealed under ``key`` for ``label``; one opaque
    :class:`UnsealError` for anything else (another key, label or build, an edit)."""
    try:
        if not isinstance(sealed, bytes) or not 0 < len(sealed) <= MAX_SEALED_STATE:
            raise DataError("size")
        value = _cbor.decode(sealed, canonical=True, max_depth=1,
                             max_bytes=MAX_SEALED_STATE)
        if (not isinstance(value, dict) or set(value) != _STATE_KEYS
                or value["v"] != SEAL_VERSION or value["alg"] != SEAL_ALG
                or value["label"] != label or not isinstance(value["nonce"], bytes)
                or len(value["nonce"]) != 12 or not isinstance(value["ciphertext"], bytes)):
            raise DataError("shape")
        header = {"v": SEAL_VERSION, "alg": SEAL_ALG, "label": label}
        plaintext: bytes = AESGCMSIV(key).decrypt(value["nonce"], value["ciphertext"],
                                                  _canonical(header))
    except Exception:
        raise UnsealError() from None
    return plaintext
