"""The local key broker: data keys per strategy, one policy per build (PCR0), attested release.

It speaks the AWS KMS shapes so the enclave code is the same in both worlds (DESIGN.md, "Two
worlds"): ``generate_data_key`` answers like ``GenerateDataKey`` (``Plaintext``, ``CiphertextBlob``,
``KeyId``) and ``decrypt`` takes a ``Decrypt`` request with ``Recipient`` and answers with
``CiphertextForRecipient`` (CMS EnvelopedData, RSAES-OAEP-SHA-256 + AES-256-CBC). It releases a
data key only when the attestation document verifies (through an injected verifier; by default
zcbench.nitro with the dev root, trusted here by name) and its PCR0 has a policy that names the
strategy whose key is asked for.

Policies are kept per PCR0, one per packaged build: packaging a variant of a strategy (another
parameter) adds a policy and leaves every earlier build able to boot until the operator revokes
it (:meth:`LocalKeyBroker.revoke`, ``zcbench keys revoke PCR0``). The document's claimed PCR0
only picks the policy; the verifier is then held to that PCR0, so an unverified claim never
releases anything.

Every refusal reaches the requester (the enclave, through the host's relay) as the one word
"refused"; the reason goes to the broker's own diagnostics (``diagnostics`` in memory and
``diagnostics.jsonl`` in its folder), for the operator, never to the enclave. The exception the
operator's process sees names that file (:attr:`KeyReleaseRefused.diagnostics`), never the reason.

State lives in ``zcbench_home()/keybroker/`` (folder 0700, files 0600): ``master.key`` (32 random
bytes), ``datakeys/<strategy>.blob`` (each data key wrapped under the master key),
``policies/<pcr0 hex>.json`` (:class:`KeyPolicy`) and ``revocations.jsonl``. A data key is
created once per strategy and reused, so rebuilds seal to the same bytes; the measured image
does not depend on it (DESIGN.md, promotion), so rotating it changes no PCR.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_private_key,
    load_der_public_key,
)

from zcbench import _cbor
from zcbench.durable import write_atomically
from zcbench.errors import EnvError, UsageError, VerificationError
from zcbench.keys._cms import UnwrapError, unwrap_recipient, wrap_for_recipient
from zcbench.keys._seal import DataKey

__all__ = [
    "KEY_ENCRYPTION_ALGORITHM",
    "AttestedRecipient",
    "DocumentVerifier",
    "KeyBroker",
    "KeyPolicy",
    "KeyReleaseRefused",
    "LocalKeyBroker",
    "Refusal",
    "is_enclave_sealed",
    "nitro_document_verifier",
    "parse_pcr0",
    "seal_to_broker",
]

KEY_ENCRYPTION_ALGORITHM: Final = "RSAES_OAEP_SHA_256"
MAX_ATTESTATION_DOCUMENT: Final = 262_144  # KMS's documented bound
MIN_RSA_BITS: Final = 2048
DEFAULT_MAX_AGE: Final = dt.timedelta(minutes=5)
_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_BLOB_LABEL: Final = b"zcbench.keybroker.datakey/1"
_MAX_BLOB: Final = 4096  # a wrapped data key is about 100 bytes
POLICY_SCHEMA: Final = "zcbench.keypolicy/1"
SECRET_POLICY_SCHEMA: Final = "zcbench.secretpolicy/1"  # noqa: S105 (a schema name)
_PCR0_HEX: Final = re.compile(r"[0-9a-f]{96}")
_SECRET_PREFIX: Final = "secret:"  # noqa: S105 (a name prefix, not a password)
_SEAL_KEY_FILE: Final = "seal.key"
_ENCLAVE_SEALED: Final = frozenset({"v", "secret", "envelope"})
_MAX_SEALED_CONTENT: Final = 256


def seal_to_broker(name: str, secret: bytes, seal_public_key: bytes, *,
                   rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """``secret`` sealed for the key broker whose sealing key is ``seal_public_key`` (DER
    SubjectPublicKeyInfo, :attr:`LocalKeyBroker.seal_public_key`), bound to ``name``.

    Made inside the enclave that generated ``secret`` (the ledger key at genesis): CMS
    EnvelopedData to the broker's RSA sealing key over ``{"name", "secret"}``, so only the
    broker opens it, and it releases it only by ``Decrypt`` with ``Recipient`` to an attested
    enclave (:meth:`LocalKeyBroker.decrypt`), never in plaintext (:meth:`~LocalKeyBroker.
    open_secret` refuses it). On Nitro the same step is KMS ``Encrypt`` called from inside the
    enclave over TLS.
    """
    _check_name(name)
    if not isinstance(secret, bytes) or not 0 < len(secret) <= 64:
        raise UsageError("a sealed secret is 1..64 bytes")
    try:
        public = load_der_public_key(seal_public_key)
    except (ValueError, TypeError):
        raise UsageError("the key broker's sealing key is not a DER public key") from None
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
        raise UsageError(f"the key broker's sealing key is not RSA of {MIN_RSA_BITS} bits or more")
    content = _cbor.encode_canonical({"name": name, "secret": secret})
    envelope = wrap_for_recipient(content, public, rng=rng)
    return _cbor.encode_canonical({"v": 1, "secret": name, "envelope": envelope})


def is_enclave_sealed(blob: bytes) -> bool:
    """Whether ``blob`` is a secret an enclave sealed to the broker (:func:`seal_to_broker`),
    which the broker releases only to attested enclaves, rather than one sealed in the
    caller's process (:meth:`LocalKeyBroker.seal_secret`)."""
    try:
        value = _cbor.decode(blob, canonical=True, max_depth=1, max_bytes=_MAX_BLOB)
    except _cbor.CborError:
        return False
    return isinstance(value, dict) and set(value) == _ENCLAVE_SEALED


@dataclass(frozen=True, slots=True)
class AttestedRecipient:
    """What a verified attestation document tells the broker: its PCRs and its public key."""

    pcrs: Mapping[int, bytes]
    public_key: bytes


DocumentVerifier = Callable[[bytes, Mapping[int, bytes]], AttestedRecipient]
"""``(document, expected_pcrs) -> AttestedRecipient``; raises on any failed check."""


class KeyReleaseRefused(VerificationError):
    """The key broker refused a release.

    :attr:`answer` ("refused") is all a requester (the enclave) is ever told. The message, for
    the operator whose process relayed the request, adds only where the broker wrote the reason
    (:attr:`diagnostics`, when the broker keeps such a file); never the reason itself.
    """

    answer: Final = "refused"

    def __init__(self, diagnostics: str | os.PathLike[str] | None = None) -> None:
        self.diagnostics = Path(diagnostics) if diagnostics is not None else None
        message = self.answer
        if self.diagnostics is not None:
            message += (
                f" (the key broker wrote the reason to {self.diagnostics}; "
                "'zcbench keys refusals' shows the latest)"
            )
        super().__init__(message, check="key_release")


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """One build's key-release policy: the data key of ``strategy`` to an enclave with ``pcr0``.

    ``created_at`` is when it was set (ISO 8601, UTC); ``facts`` what the packager recorded to
    tell builds apart (``strategy_sha256``, ``sealed_content_sha256``, ...).
    """

    pcr0: bytes
    strategy: str
    created_at: str
    facts: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": POLICY_SCHEMA,
            "pcr0": self.pcr0.hex(),
            "strategy": self.strategy,
            "created_at": self.created_at,
            "facts": dict(sorted(self.facts.items())),
        }


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refusal, for the operator: when, which strategy (if known) and why."""

    at: str
    strategy: str | None
    reason: str


class KeyBroker(Protocol):
    """What the packager and the enclave need from a key broker (local or KMS)."""

    def generate_data_key(self, strategy: str) -> DataKey: ...

    def decrypt(self, request: Mapping[str, Any]) -> dict[str, Any]: ...


class _Refuse(Exception):
    def __init__(self, reason: str, strategy: str | None = None) -> None:
        super().__init__(reason)
        self.strategy = strategy


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def nitro_document_verifier(
    *,
    trust: str = "dev",
    clock: Callable[[], dt.datetime] = _utcnow,
    max_age: dt.timedelta = DEFAULT_MAX_AGE,
) -> DocumentVerifier:
    """A verifier over ``zcbench.nitro.verify_attestation`` trusting the root named ``trust``.

    ``"dev"`` is the local development CA: right for the local broker, never for real money.
    Documents older than ``max_age`` at ``clock()`` are refused: a key request is made at boot,
    so its document is fresh; an old one is a replay. So are documents stamped after
    ``clock()`` by more than ``zcbench.nitro.MAX_CLOCK_SKEW`` (check ``future``: their age is
    negative, so ``max_age`` alone would pass them).
    """

    def verify(document: bytes, expected_pcrs: Mapping[int, bytes]) -> AttestedRecipient:
        import zcbench.nitro as nitro

        verify_attestation = getattr(nitro, "verify_attestation", None)
        if verify_attestation is None:
            raise EnvError("zcbench.nitro.verify_attestation is not available")
        policy = nitro.AttestationPolicy(
            trust=trust, expected_pcrs=dict(expected_pcrs), max_age=max_age
        )
        verified = verify_attestation(document, policy, at=clock())
        doc = verified.document
        if doc.public_key is None:
            raise VerificationError("document carries no public_key", check="public_key")
        return AttestedRecipient(pcrs=dict(doc.pcrs), public_key=bytes(doc.public_key))

    return verify


def _claimed_pcr0(document: bytes) -> bytes | None:
    """The PCR0 a document claims, unverified: only to pick the policy to verify it against."""
    from zcbench.nitro import parse_document

    try:
        value = parse_document(document).pcrs.get(0)
    except Exception:
        raise _Refuse("the attestation document is malformed") from None
    return bytes(value) if value is not None else None


def _check_pcr0(pcr0: object) -> bytes:
    if not isinstance(pcr0, bytes) or len(pcr0) != 48 or pcr0 == bytes(48):
        raise UsageError("a PCR0 policy is 48 bytes and not all zero (a debug enclave)")
    return pcr0


def parse_pcr0(text: str) -> bytes:
    """A PCR0 given as 96 hex digits (either case), for the operator's commands."""
    value = text.strip().lower()
    if not _PCR0_HEX.fullmatch(value):
        raise UsageError(f"a PCR0 is 96 hex digits (48 bytes); got {len(text.strip())} characters")
    return _check_pcr0(bytes.fromhex(value))


def _check_name(strategy: str) -> str:
    if not isinstance(strategy, str) or not _NAME.fullmatch(strategy):
        raise UsageError(
            f"strategy name {strategy!r} cannot name a key: use 1-64 letters, digits, '_', '.', "
            "'-', not starting with '.' or '-'"
        )
    return strategy


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, owner read/write only whatever the umask."""
    write_atomically(path, data, 0o600)


def _create_private_once(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` (0600) unless it exists; never replace it.

    Two processes creating the same key at once (a build and a run) must end up with one key:
    the file is written aside and linked into place, which fails if another got there first.
    """
    with contextlib.suppress(FileExistsError):
        write_atomically(path, data, 0o600, exclusive=True)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class LocalKeyBroker:
    """A key broker on this machine, answering in the KMS ``Recipient`` shapes.

    ``root`` defaults to ``zcbench_home()/keybroker``; ``verifier`` checks attestation documents
    (default: :func:`nitro_document_verifier` with the dev root); ``rng`` supplies key material.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        verifier: DocumentVerifier | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        if root is None:
            from zcbench.home import zcbench_home

            root = zcbench_home() / "keybroker"
        self.root = Path(root)
        self._verifier = verifier or nitro_document_verifier(trust="dev", clock=clock)
        self._rng = rng
        self._clock = clock
        self.diagnostics: list[Refusal] = []
        _private_dir(self.root)
        for sub in ("datakeys", "policies", "secrets"):
            _private_dir(self.root / sub)
        self._check_permissions()
        self._migrate_strategy_policies()

    def _check_permissions(self) -> None:
        for path in [self.root, *self.root.rglob("*")]:
            try:
                mode = stat.S_IMODE(path.lstat().st_mode)
            except FileNotFoundError:
                continue  # another process's temporary file, linked into place and removed
            if mode & 0o077:
                raise EnvError(
                    f"{path} is open to other users (mode {mode:o}); run chmod go-rwx on it"
                )

    def _migrate_strategy_policies(self) -> None:
        """Turn a policy of the old one-per-strategy layout into the one-per-PCR0 layout."""
        for path in sorted((self.root / "policies").glob("*.json")):
            if _PCR0_HEX.fullmatch(path.stem):
                continue
            try:
                value = json.loads(path.read_text())
                strategy, pcr0 = value["strategy"], bytes.fromhex(value["pcr0"])
            except (OSError, ValueError, KeyError, TypeError):
                raise EnvError(f"{path} is damaged; remove it and package again") from None
            if path.stem != strategy:
                raise EnvError(f"{path} names strategy {strategy!r}; remove it and package again")
            if self.policy_for(pcr0) is None:
                self.set_policy(strategy, pcr0=pcr0, facts={"migrated": path.name})
            path.unlink()

    # --- keys ---------------------------------------------------------------------------------

    def _master(self) -> bytes:
        path = self.root / "master.key"
        if not path.exists():
            _create_private_once(path, self._rng(32))
        key = path.read_bytes()
        if len(key) != 32:
            raise EnvError(f"{path} is damaged ({len(key)} bytes, expected 32)")
        return key

    @property
    def key_id(self) -> str:
        """This broker's key id: a fingerprint of its master key, never the key."""
        digest = hashlib.sha256(b"zcbench.keybroker.id" + self._master()).hexdigest()
        return f"zcbench:local:key/{digest[:32]}"

    def _wrap(self, strategy: str, data_key: bytes) -> bytes:
        master = self._master()
        aad = _BLOB_LABEL + strategy.encode()
        nonce = hmac.new(master, aad + data_key, hashlib.sha256).digest()[:12]
        ct = AESGCMSIV(master).encrypt(nonce, data_key, aad)
        return _cbor.encode_canonical({"v": 1, "strategy": strategy, "nonce": nonce, "ct": ct})

    def _unwrap(self, blob: bytes) -> tuple[str, bytes]:
        if not isinstance(blob, bytes) or len(blob) > _MAX_BLOB:
            raise _Refuse("CiphertextBlob is not bytes or too large")
        try:  # exactly what _wrap writes: one canonical map, nothing after it
            value = _cbor.decode(blob, canonical=True, max_depth=1, max_bytes=_MAX_BLOB)
        except _cbor.CborError:
            raise _Refuse("CiphertextBlob is not canonical CBOR") from None
        if isinstance(value, dict) and set(value) == _ENCLAVE_SEALED:
            return self._open_enclave_sealed(value)
        if (
            not isinstance(value, dict)
            or set(value) != {"v", "strategy", "nonce", "ct"}
            or value["v"] != 1
            or not isinstance(value["strategy"], str)
            or not isinstance(value["nonce"], bytes)
            or not isinstance(value["ct"], bytes)
        ):
            raise _Refuse("CiphertextBlob is malformed")
        strategy = value["strategy"]
        try:
            key = AESGCMSIV(self._master()).decrypt(
                value["nonce"], value["ct"], _BLOB_LABEL + strategy.encode()
            )
        except Exception:
            raise _Refuse("CiphertextBlob was not made by this broker", strategy) from None
        return strategy, key

    def _seal_key(self) -> rsa.RSAPrivateKey:
        """The broker's RSA sealing key (``seal.key``, made once): what an enclave seals a
        secret it made to (:func:`seal_to_broker`)."""
        path = self.root / _SEAL_KEY_FILE
        if not path.exists():
            made = rsa.generate_private_key(public_exponent=65537, key_size=MIN_RSA_BITS)
            _create_private_once(path, made.private_bytes(Encoding.DER, PrivateFormat.PKCS8,
                                                          NoEncryption()))
        try:
            key = load_der_private_key(path.read_bytes(), password=None)
        except ValueError:
            raise EnvError(f"{path} is damaged; remove it (secrets sealed to it are lost)"
                           ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise EnvError(f"{path} is not an RSA key")
        return key

    @property
    def seal_public_key(self) -> bytes:
        """The public half of the broker's sealing key (DER SubjectPublicKeyInfo), handed to
        an enclave that seals a secret it made (the ledger key at genesis)."""
        return self._seal_key().public_key().public_bytes(Encoding.DER,
                                                          PublicFormat.SubjectPublicKeyInfo)

    def _open_enclave_sealed(self, value: dict[str, Any]) -> tuple[str, bytes]:
        name, envelope = value["secret"], value["envelope"]
        if value["v"] != 1 or not isinstance(name, str) or not isinstance(envelope, bytes):
            raise _Refuse("CiphertextBlob is malformed")
        try:
            content = unwrap_recipient(envelope, self._seal_key())
            inner = _cbor.decode(content, canonical=True, max_depth=1,
                                 max_bytes=_MAX_SEALED_CONTENT)
        except (UnwrapError, _cbor.CborError):
            raise _Refuse("CiphertextBlob was not sealed to this broker") from None
        if (not isinstance(inner, dict) or set(inner) != {"name", "secret"}
                or inner["name"] != name or not isinstance(inner["secret"], bytes)
                or not 0 < len(inner["secret"]) <= 64):
            raise _Refuse("CiphertextBlob's sealed content is not the secret it names")
        return _SECRET_PREFIX + name, inner["secret"]

    def generate_data_key(self, strategy: str) -> DataKey:
        """The data key of ``strategy``: created on first use, then the same one every time.

        The KMS ``GenerateDataKey`` answer (``Plaintext``, ``CiphertextBlob``, ``KeyId``) as a
        :class:`DataKey`; only the packager should call this.
        """
        _check_name(strategy)
        path = self.root / "datakeys" / f"{strategy}.blob"
        if not path.exists():
            key = self._rng(32)
            if len(key) != 32:
                raise EnvError("the random source returned the wrong number of bytes")
            _create_private_once(path, self._wrap(strategy, key))
        blob = path.read_bytes()
        try:
            found, key = self._unwrap(blob)
        except _Refuse as exc:
            raise EnvError(f"{path} is damaged or from another broker: {exc}") from None
        if found != strategy:
            raise EnvError(f"{path} holds the key of {found!r}, not {strategy!r}")
        return DataKey(plaintext=key, ciphertext_blob=blob, key_id=self.key_id)

    # --- sealed secrets (the ledger key) ---------------------------------------------------------

    def seal_secret(self, name: str, secret: bytes) -> bytes:
        """Wrap ``secret`` (at most 64 bytes) under this broker's master key, bound to ``name``.

        A strategy's ledger key is sealed so at genesis (``zcbench.ledger``); the blob is kept
        beside the ledger and opened only through :meth:`open_secret`, which the ledger calls
        for a PCR0 it allows. (On Nitro the same blob is a KMS ``Encrypt`` ciphertext, released
        by ``Decrypt`` with ``Recipient`` under a key policy over the ledger's allowed set.)
        """
        _check_name(name)
        if not isinstance(secret, bytes) or not 0 < len(secret) <= 64:
            raise UsageError("a sealed secret is 1..64 bytes")
        return self._wrap(_SECRET_PREFIX + name, secret)

    def open_secret(self, blob: bytes, name: str) -> bytes:
        """The secret :meth:`seal_secret` wrapped for ``name``; :class:`KeyReleaseRefused` if
        the blob is not this broker's or names another secret (the reason goes to the
        diagnostics)."""
        try:
            if is_enclave_sealed(blob):
                raise _Refuse(f"the secret {name!r} was sealed by an enclave: it is released "
                              "only to an attested enclave (Decrypt with Recipient)")
            found, secret = self._unwrap(blob)
            if found != _SECRET_PREFIX + _check_name(name):
                raise _Refuse(f"the sealed blob holds {found!r}, not the secret {name!r}")
        except _Refuse as exc:
            self._record(None, str(exc))
            raise KeyReleaseRefused(self.diagnostics_path) from None
        return secret

    def _secret_policy_path(self, name: str) -> Path:
        return self.root / "secrets" / f"{_check_name(name)}.json"

    def set_secret_policy(self, name: str, allowed: Sequence[tuple[bytes, int, int | None]]
                          ) -> None:
        """Release the sealed secret ``name`` (through :meth:`decrypt`, to an attested
        enclave) only to a PCR0 of ``allowed`` — ``(pcr0, valid from ns, revoked at ns or
        None)`` — at this broker's clock. The ledger writes it again after every announcement
        and revocation, so it follows the ledger's allowed set."""
        rows = []
        for pcr0, valid_from_ns, revoked_ns in allowed:
            _check_pcr0(pcr0)
            rows.append({"pcr0": pcr0.hex(), "valid_from_ns": int(valid_from_ns),
                         "revoked_ns": None if revoked_ns is None else int(revoked_ns)})
        body = json.dumps({"schema": SECRET_POLICY_SCHEMA, "name": name, "allowed": rows},
                          sort_keys=True)
        _write_private(self._secret_policy_path(name), body.encode() + b"\n")

    def _secret_pcr0(self, name: str, document: bytes) -> bytes:
        """The PCR0 a request for secret ``name`` is held to: the document's claim, if the
        secret's policy allows it now."""
        path = self._secret_policy_path(name)
        try:
            value = json.loads(path.read_text())
            rows = [(bytes.fromhex(r["pcr0"]), int(r["valid_from_ns"]), r["revoked_ns"])
                    for r in value["allowed"]]
        except FileNotFoundError:
            raise _Refuse(f"the secret {name!r} has no release policy") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise _Refuse(f"{path} is damaged") from None
        claimed = _claimed_pcr0(document)
        if claimed is None or not any(claimed):
            raise _Refuse("the attestation document has no PCR0, or a debug one")
        now = int(self._clock().timestamp() * 1_000_000_000)
        for pcr0, valid_from, revoked in rows:
            if hmac.compare_digest(pcr0, claimed):
                if revoked is not None and revoked <= now:
                    raise _Refuse(f"PCR0 {claimed.hex()} was revoked for {name!r}")
                if now < valid_from:
                    raise _Refuse(f"PCR0 {claimed.hex()} may hold {name!r} only from "
                                  f"{valid_from} ns")
                return pcr0
        raise _Refuse(f"PCR0 {claimed.hex()} is not allowed to hold {name!r}")

    # --- policies -------------------------------------------------------------------------------

    @property
    def diagnostics_path(self) -> Path:
        """Where every refusal's reason is written, one JSON object a line."""
        return self.root / "diagnostics.jsonl"

    def _policy_path(self, pcr0: bytes) -> Path:
        return self.root / "policies" / f"{pcr0.hex()}.json"

    def set_policy(
        self, strategy: str, *, pcr0: bytes, facts: Mapping[str, str] | None = None
    ) -> KeyPolicy:
        """Release ``strategy``'s data key to enclaves whose PCR0 is ``pcr0`` (48 bytes).

        Adds one policy per build; the policies of other builds (of this or any strategy) stay
        until revoked. Setting the same build again keeps its first ``created_at``.
        """
        _check_name(strategy)
        _check_pcr0(pcr0)
        existing = self.policy_for(pcr0)
        if existing is not None and existing.strategy != strategy:
            raise UsageError(
                f"PCR0 {pcr0.hex()[:16]}... is bound to strategy {existing.strategy!r}, not "
                f"{strategy!r}; revoke it first"
            )
        created = existing.created_at if existing is not None else self._clock().isoformat()
        policy = KeyPolicy(pcr0, strategy, created, dict(facts or {}))
        body = json.dumps(policy.to_json(), sort_keys=True)
        _write_private(self._policy_path(pcr0), body.encode() + b"\n")
        return policy

    def _read_policy(self, path: Path) -> KeyPolicy:
        try:
            value = json.loads(path.read_text())
            pcr0 = bytes.fromhex(value["pcr0"])
            policy = KeyPolicy(
                pcr0, value["strategy"], value["created_at"], dict(value.get("facts", {}))
            )
        except (OSError, ValueError, KeyError, TypeError):
            raise EnvError(f"{path} is damaged; revoke the build and package it again") from None
        if (
            value.get("schema") != POLICY_SCHEMA
            or path.name != f"{pcr0.hex()}.json"
            or not isinstance(policy.strategy, str)
            or not _NAME.fullmatch(policy.strategy)
            or not all(isinstance(v, str) for v in policy.facts.values())
        ):
            raise EnvError(f"{path} is damaged; revoke the build and package it again")
        return policy

    def policy_for(self, pcr0: bytes) -> KeyPolicy | None:
        """The policy of the build whose PCR0 is ``pcr0``, or None."""
        path = self._policy_path(_check_pcr0(pcr0))
        return self._read_policy(path) if path.exists() else None

    def policies(self, strategy: str | None = None) -> list[KeyPolicy]:
        """Every policy (of ``strategy`` when given), oldest first."""
        if strategy is not None:
            _check_name(strategy)
        found = [
            self._read_policy(path)
            for path in sorted((self.root / "policies").glob("*.json"))
            if _PCR0_HEX.fullmatch(path.stem)
        ]
        if strategy is not None:
            found = [p for p in found if p.strategy == strategy]
        return sorted(found, key=lambda p: (p.created_at, p.strategy, p.pcr0))

    def revoke(self, pcr0: bytes) -> KeyPolicy:
        """Stop releasing keys to the build ``pcr0``; returns the policy removed.

        Raises :class:`UsageError` when no policy has that PCR0. The revocation is appended to
        ``revocations.jsonl``. Packaging the same build again sets its policy again.
        """
        policy = self.policy_for(pcr0)
        if policy is None:
            raise UsageError(
                f"no key policy has PCR0 {pcr0.hex()}; 'zcbench keys list' shows the policies"
            )
        line = json.dumps({**policy.to_json(), "revoked_at": self._clock().isoformat()})
        self._append(self.root / "revocations.jsonl", line)
        self._policy_path(pcr0).unlink()
        return policy

    def refusals(self) -> list[Refusal]:
        """Every refusal written to :attr:`diagnostics_path`, oldest first."""
        try:
            lines = self.diagnostics_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        found: list[Refusal] = []
        for line in lines:
            try:
                value = json.loads(line)
                found.append(Refusal(str(value["at"]), value.get("strategy"), str(value["reason"])))
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash: the others still count
        return found

    # --- release --------------------------------------------------------------------------------

    def decrypt(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a KMS ``Decrypt`` request that carries ``Recipient``.

        Returns ``{"CiphertextForRecipient": bytes, "KeyId": str, "EncryptionAlgorithm":
        "SYMMETRIC_DEFAULT"}``. Raises :class:`KeyReleaseRefused` ("refused") otherwise; the
        reason is recorded in :attr:`diagnostics` and :attr:`diagnostics_path`.
        """
        strategy: str | None = None
        try:
            strategy, data_key, public_key = self._check_request(request)
            envelope = wrap_for_recipient(data_key, public_key, rng=self._rng)
        except _Refuse as exc:
            self._record(exc.strategy or strategy, str(exc))
            raise KeyReleaseRefused(self.diagnostics_path) from None
        except Exception as exc:  # fail closed on anything unexpected, keep the reason here
            self._record(strategy, f"{type(exc).__name__}: {exc}")
            raise KeyReleaseRefused(self.diagnostics_path) from None
        return {
            "CiphertextForRecipient": envelope,
            "KeyId": self.key_id,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }

    def _check_request(self, request: Mapping[str, Any]) -> tuple[str, bytes, rsa.RSAPublicKey]:
        if not isinstance(request, Mapping):
            raise _Refuse("request is not a mapping")
        unknown = set(request) - {"CiphertextBlob", "KeyId", "Recipient", "EncryptionAlgorithm"}
        if unknown:
            raise _Refuse(f"unsupported request fields {sorted(unknown)}")
        recipient = request.get("Recipient")
        if not isinstance(recipient, Mapping):
            raise _Refuse("no Recipient: the local broker releases keys only to attested enclaves")
        if set(recipient) != {"AttestationDocument", "KeyEncryptionAlgorithm"}:
            raise _Refuse("Recipient needs exactly AttestationDocument and KeyEncryptionAlgorithm")
        if recipient["KeyEncryptionAlgorithm"] != KEY_ENCRYPTION_ALGORITHM:
            raise _Refuse(f"KeyEncryptionAlgorithm must be {KEY_ENCRYPTION_ALGORITHM}")
        document = recipient["AttestationDocument"]
        if not isinstance(document, bytes) or not 0 < len(document) <= MAX_ATTESTATION_DOCUMENT:
            raise _Refuse("AttestationDocument must be 1..262144 bytes")
        if request.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            raise _Refuse("EncryptionAlgorithm must be SYMMETRIC_DEFAULT")
        if "KeyId" in request and request["KeyId"] != self.key_id:
            raise _Refuse(f"KeyId {request['KeyId']!r} is not this broker's key")
        strategy, data_key = self._unwrap(request.get("CiphertextBlob"))  # type: ignore[arg-type]
        if strategy.startswith(_SECRET_PREFIX):  # a sealed secret: the ledger key
            pcr0 = self._secret_pcr0(strategy[len(_SECRET_PREFIX):], document)
        else:
            pcr0 = self._policy_pcr0(strategy, document)
        try:
            attested = self._verifier(document, {0: pcr0})
        except Exception as exc:
            check = getattr(exc, "check", type(exc).__name__)
            raise _Refuse(f"attestation document refused ({check}): {exc}", strategy) from None
        actual = attested.pcrs.get(0)
        if not isinstance(actual, bytes) or not hmac.compare_digest(actual, pcr0):
            shown = actual.hex() if isinstance(actual, bytes) else "missing"
            raise _Refuse(f"PCR0 {shown} does not match the policy {pcr0.hex()}", strategy)
        try:
            public_key = load_der_public_key(attested.public_key)
        except Exception:
            raise _Refuse("public_key is not a DER SubjectPublicKeyInfo", strategy) from None
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_RSA_BITS:
            raise _Refuse(f"public_key must be RSA of at least {MIN_RSA_BITS} bits", strategy)
        return strategy, data_key, public_key

    def _policy_pcr0(self, strategy: str, document: bytes) -> bytes:
        """The PCR0 of the policy this request is held to: the one the document claims."""
        claimed = _claimed_pcr0(document)
        if claimed is None:
            raise _Refuse("the attestation document has no PCR0", strategy)
        if not any(claimed):
            raise _Refuse("the document is from a debug enclave (PCR0 all zero) (debug)", strategy)
        policy = self.policy_for(claimed) if len(claimed) == 48 else None
        if policy is None:
            builds = len(self.policies(strategy))
            raise _Refuse(
                f"no PCR0 policy for {claimed.hex()} (this strategy has policies for {builds} "
                "other build(s)): package that build again, or it was revoked",
                strategy,
            )
        if policy.strategy != strategy:
            raise _Refuse(
                f"PCR0 {claimed.hex()} is the build of {policy.strategy!r}, not of this key",
                strategy,
            )
        return policy.pcr0

    def _record(self, strategy: str | None, reason: str) -> None:
        refusal = Refusal(self._clock().isoformat(), strategy, reason)
        self.diagnostics.append(refusal)
        line = json.dumps({"at": refusal.at, "strategy": strategy, "reason": reason})
        self._append(self.diagnostics_path, line)

    @staticmethod
    def _append(path: Path, line: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
