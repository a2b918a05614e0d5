"""The attestation document codec: COSE_Sign1 envelope and payload map, parsed strictly.

Owns the byte format of Nitro attestation documents (AWS ``attestation_process.md`` §2.2; the
real documents in tests/vectors/nitro) in both directions. It checks syntax only (the CBOR
grammar, field types and sizes); trust (signature, chain, policy) belongs to
:mod:`zcbench.nitro.verify`. It keeps the original payload bytes: the signature is over them and
re-encoding an indefinite-length payload map would change them.

Accepted, and why:

* untagged and tag-18 envelopes (the tag is not signed);
* a payload map of definite (``a9``, documents until about April 2025) or indefinite (``bf``,
  since mid-2025) length, in any key order;
* ``null`` or an omitted key for ``public_key``, ``user_data`` and ``nonce`` (the CDDL makes them
  optional; real documents write ``null``);
* ``user_data`` and ``nonce`` up to 1024 bytes, like the CDDL and AWS's own hardware test
  (nsm-api ``nsm-check.rs`` ``DATA_LEN = 1024``), not the 512 of the prose (nsm-api issue #52).

Refused (``AttestationError`` with check ``decode``, ``schema`` or ``algorithm``): trailing bytes,
duplicate keys, chunked strings, unknown payload keys, a protected header other than the exact
bytes ``a1 01 38 22`` (ES384), a non-empty unprotected header, a signature not 96 bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NoReturn

from zcbench.errors import UsageError
from zcbench.nitro import _cbor
from zcbench.nitro.errors import AttestationError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_FIELD_BYTES",
    "MAX_PAYLOAD_BYTES",
    "PROTECTED_ES384",
    "AttestationDocument",
    "encode_document",
    "encode_payload",
    "parse_document",
    "sig_structure",
]

PROTECTED_ES384 = bytes.fromhex("a1013822")
"""The only protected header accepted: ``{1: -35}`` (alg ES384), exactly these bytes."""

MAX_PAYLOAD_BYTES = 16384
"""Largest payload (the CDDL's bound; the NSM response buffer is only 12 KiB)."""

MAX_DOCUMENT_BYTES = MAX_PAYLOAD_BYTES + 128
"""Largest document: the payload plus the envelope, header and 96-byte signature."""

MAX_FIELD_BYTES = 1024
"""Largest certificate, ``public_key``, ``user_data`` or ``nonce``."""

_PCR_SIZES = (32, 48, 64)
_MAX_PCR_INDEX = 31
_MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the last instant datetime holds
_REQUIRED = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
_OPTIONAL = ("public_key", "user_data", "nonce")
_COSE_SIGN1_TAG = 18
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SIGNATURE_BYTES = 96


@dataclass(frozen=True)
class AttestationDocument:
    """A parsed attestation document: its fields, and the raw bytes the signature covers.

    ``timestamp`` is milliseconds since the epoch as signed; ``time`` is the same instant as an
    aware UTC datetime. ``pcrs`` maps index to value (read-only). Optional fields are ``None``
    when the document has ``null`` or omits them. ``indefinite`` says the payload map had
    indefinite length; ``tagged`` that the envelope carried tag 18.
    """

    module_id: str
    digest: str
    timestamp: int
    time: dt.datetime
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None
    protected: bytes
    payload: bytes
    signature: bytes
    tagged: bool
    indefinite: bool

    def signed_bytes(self) -> bytes:
        """The COSE Sig_structure the signature is over (RFC 8152 §4.4)."""
        return sig_structure(self.protected, self.payload)

    @property
    def document_id(self) -> str:
        """SHA-256 (hex) of the signed payload: what to key a document on (caches, replays).

        One genuine document has many byte encodings that verify (the other ECDSA signature
        ``s -> n - s``, other CBOR length forms, the envelope's tag); the payload is what was
        signed, so it is the same for all of them.
        """
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def instance_id(self) -> str:
        """The parent instance id: ``module_id`` before ``-enc`` (the whole id if none)."""
        return self.module_id.split("-enc", 1)[0]


def _fail(check: str, message: str, *, expected: object = None, actual: object = None) -> NoReturn:
    raise AttestationError(message, check=check, expected=expected, actual=actual)


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``["Signature1", protected, h'', payload]`` encoded: the bytes ES384 signs."""
    return _cbor.encode(["Signature1", protected, b"", payload])


def _optional_bytes(name: str, value: object, low: int, high: int) -> bytes | None:
    return None if value is None else _required_bytes(name, value, low, high, nullable=True)


def _required_bytes(
    name: str, value: object, low: int, high: int, *, nullable: bool = False
) -> bytes:
    if not isinstance(value, bytes):
        _fail(
            "schema",
            f"payload field {name!r} must be a byte string"
            + (" or null" if nullable else "")
            + f", not {_type_name(value)}",
            expected="bytes",
            actual=_type_name(value),
        )
    if not low <= len(value) <= high:
        _fail(
            "schema",
            f"payload field {name!r} is {len(value)} bytes; allowed {low}..{high}",
            expected=f"{low}..{high} bytes",
            actual=f"{len(value)} bytes",
        )
    return value


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, _cbor.Tagged):
        return f"tag {value.tag}"
    return {
        bool: "bool",
        int: "integer",
        bytes: "bytes",
        str: "text",
        list: "array",
        dict: "map",
    }.get(type(value), type(value).__name__)


def _parse_pcrs(value: object) -> Mapping[int, bytes]:
    if not isinstance(value, dict):
        _fail("schema", f"payload field 'pcrs' must be a map, not {_type_name(value)}")
    if not 1 <= len(value) <= _MAX_PCR_INDEX + 1:
        _fail(
            "schema",
            f"'pcrs' has {len(value)} entries; allowed 1..{_MAX_PCR_INDEX + 1}",
            expected=f"1..{_MAX_PCR_INDEX + 1}",
            actual=len(value),
        )
    pcrs: dict[int, bytes] = {}
    for index, pcr in value.items():
        if isinstance(index, bool) or not isinstance(index, int):
            _fail("schema", f"PCR index {index!r} is not an integer")
        if not 0 <= index <= _MAX_PCR_INDEX:
            _fail(
                "schema",
                f"PCR index {index} is outside 0..{_MAX_PCR_INDEX}",
                expected=f"0..{_MAX_PCR_INDEX}",
                actual=index,
            )
        if not isinstance(pcr, bytes) or len(pcr) not in _PCR_SIZES:
            size = f"{len(pcr)} bytes" if isinstance(pcr, bytes) else _type_name(pcr)
            _fail(
                "schema",
                f"PCR{index} must be 32, 48 or 64 bytes; it is {size}",
                expected="32, 48 or 64 bytes",
                actual=size,
            )
        pcrs[index] = pcr
    return MappingProxyType(dict(sorted(pcrs.items())))


def _parse_payload(payload: bytes) -> dict[str, object]:
    try:
        fields = _cbor.decode(payload)
    except _cbor.CborError as exc:
        raise AttestationError(f"payload is not valid CBOR: {exc}", check="decode") from exc
    if not isinstance(fields, dict):
        _fail("schema", f"payload must be a map, not {_type_name(fields)}")
    unknown = [k for k in fields if k not in _REQUIRED and k not in _OPTIONAL]
    if unknown:
        _fail("schema", f"payload has unknown field(s) {unknown!r}", actual=repr(unknown))
    missing = [k for k in _REQUIRED if k not in fields]
    if missing:
        _fail("schema", f"payload lacks required field(s) {missing}", expected=missing)
    return {str(k): v for k, v in fields.items()}


def parse_document(data: bytes) -> AttestationDocument:
    """Parse an attestation document strictly; raise :class:`AttestationError` on any defect.

    This checks the format only. Nothing here says the document is genuine: use
    :func:`zcbench.nitro.verify_attestation` for that.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError(f"parse_document expects bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        _fail("decode", "the document is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        _fail(
            "decode",
            f"the document is {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} are accepted",
            expected=f"<= {MAX_DOCUMENT_BYTES} bytes",
            actual=f"{len(data)} bytes",
        )
    try:
        envelope = _cbor.decode(data)
    except _cbor.CborError as exc:
        raise AttestationError(f"document is not valid CBOR: {exc}", check="decode") from exc
    tagged = False
    if isinstance(envelope, _cbor.Tagged):
        if envelope.tag != _COSE_SIGN1_TAG:
            _fail(
                "decode",
                f"document carries tag {envelope.tag}; only 18 (COSE_Sign1) or none is accepted",
                expected=_COSE_SIGN1_TAG,
                actual=envelope.tag,
            )
        if data[0] != 0xD2:
            _fail("decode", "tag 18 must be written in its one-byte form (d2)")
        tagged = True
        envelope = envelope.value
    # Definite array of 4, as COSE_Sign1 and every NSM write it.
    if data[1 if tagged else 0] != 0x84 or not isinstance(envelope, list):
        _fail("schema", "document must be a COSE_Sign1: a definite array of 4 items")
    protected, unprotected, payload, signature = envelope
    if not isinstance(protected, bytes):
        _fail("schema", f"protected header must be a byte string, not {_type_name(protected)}")
    if protected != PROTECTED_ES384:
        _fail(
            "algorithm",
            "protected header is not exactly {1: -35} (ES384); refusing other algorithms",
            expected=PROTECTED_ES384.hex(),
            actual=protected.hex(),
        )
    if unprotected != {}:
        _fail("schema", "unprotected header must be an empty map", actual=repr(unprotected))
    if not isinstance(payload, bytes) or not 1 <= len(payload) <= MAX_PAYLOAD_BYTES:
        _fail("schema", f"payload must be a byte string of 1..{MAX_PAYLOAD_BYTES} bytes")
    if not isinstance(signature, bytes) or len(signature) != _SIGNATURE_BYTES:
        size = f"{len(signature)} bytes" if isinstance(signature, bytes) else "not bytes"
        _fail(
            "signature",
            f"signature must be 96 bytes (raw r || s for P-384); it is {size}",
            expected="96 bytes",
            actual=size,
        )
    fields = _parse_payload(payload)

    module_id = fields["module_id"]
    if not isinstance(module_id, str) or not 1 <= len(module_id) <= MAX_FIELD_BYTES:
        _fail("schema", "'module_id' must be non-empty text (at most 1024 characters)")
    digest = fields["digest"]
    if digest != "SHA384":
        _fail("schema", "'digest' must be \"SHA384\"", expected="SHA384", actual=repr(digest))
    timestamp = fields["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        _fail("schema", f"'timestamp' must be an unsigned integer, not {_type_name(timestamp)}")
    if not 0 < timestamp <= _MAX_TIMESTAMP_MS:
        _fail("schema", f"'timestamp' {timestamp} is outside 1..{_MAX_TIMESTAMP_MS} ms")
    pcrs = _parse_pcrs(fields["pcrs"])
    certificate = _required_bytes("certificate", fields["certificate"], 1, MAX_FIELD_BYTES)
    cabundle_raw = fields["cabundle"]
    if not isinstance(cabundle_raw, list) or not cabundle_raw:
        _fail("schema", "'cabundle' must be a non-empty array of certificates")
    cabundle = tuple(
        _required_bytes(f"cabundle[{i}]", c, 1, MAX_FIELD_BYTES) for i, c in enumerate(cabundle_raw)
    )
    public_key = _optional_bytes("public_key", fields.get("public_key"), 1, MAX_FIELD_BYTES)
    user_data = _optional_bytes("user_data", fields.get("user_data"), 0, MAX_FIELD_BYTES)
    nonce = _optional_bytes("nonce", fields.get("nonce"), 0, MAX_FIELD_BYTES)
    return AttestationDocument(
        module_id=module_id,
        digest="SHA384",
        timestamp=timestamp,
        time=_EPOCH + dt.timedelta(milliseconds=timestamp),
        pcrs=pcrs,
        certificate=certificate,
        cabundle=cabundle,
        public_key=public_key,
        user_data=user_data,
        nonce=nonce,
        protected=protected,
        payload=payload,
        signature=signature,
        tagged=tagged,
        indefinite=payload[0] == 0xBF,
    )


def encode_payload(
    *,
    module_id: str,
    timestamp: int,
    pcrs: Mapping[int, bytes],
    certificate: bytes,
    cabundle: list[bytes] | tuple[bytes, ...],
    public_key: bytes | None = None,
    user_data: bytes | None = None,
    nonce: bytes | None = None,
    indefinite: bool = False,
) -> bytes:
    """The payload map in the NSM's shape: nine keys in order, explicit nulls, 8-byte timestamp.

    ``indefinite`` writes ``bf … ff`` like documents since mid-2025; otherwise ``a9``.
    """
    items: list[tuple[object, object]] = [
        ("module_id", module_id),
        ("digest", "SHA384"),
        ("timestamp", _cbor.Uint64(timestamp)),
        ("pcrs", {int(i): bytes(v) for i, v in sorted(pcrs.items())}),
        ("certificate", certificate),
        ("cabundle", list(cabundle)),
        ("public_key", public_key),
        ("user_data", user_data),
        ("nonce", nonce),
    ]
    body = _cbor.encode_map_items(items)
    if indefinite:
        return b"\xbf" + body + b"\xff"
    return b"\xa9" + body


def encode_document(payload: bytes, signature: bytes, *, tagged: bool = False) -> bytes:
    """The COSE_Sign1 envelope around ``payload`` with a raw 96-byte ``signature``."""
    body = _cbor.encode([PROTECTED_ES384, {}, payload, signature])
    return (b"\xd2" + body) if tagged else body
