"""Certificate path validation for attestation documents, done by hand and kept small.

The path is ``[pinned root, cabundle[1], ..., cabundle[-1], leaf]`` (reference §1.3); the
bundle's own root (``cabundle[0]``) must be byte-identical to the pinned one and is otherwise
never used. Checked per certificate, top down, each failure under its own check name:
P-384 key and ecdsa-with-SHA384 signature, the same in the TBS as outside it (RFC 5280
§4.1.1.2; ``algorithm``), issuer name and signature by the
certificate above (``chain``), validity at the given time for every certificate including the
root (``validity``), basicConstraints CA with a respected pathLen for issuers, not-a-CA for the
leaf, and no unknown critical extension (``ca_constraints``), keyCertSign for issuers and
digitalSignature for the leaf, and keyCertSign never without cA (RFC 5280 §4.2.1.3;
``key_usage``). No revocation: AWS publishes none for the leaf.
A certificate cryptography cannot parse, or only parses with a warning, is ``certificate``.

Names are chained by their encoding, byte for byte (stricter than RFC 5280's normalised
comparison, and what AWS's chains do); they are decoded into text only for display.

Why not cryptography's ``PolicyBuilder``: its client verifier rejects every real leaf (no
authorityKeyIdentifier), and one error for every failure would hide which check failed. This
code makes exactly one ECDSA verification per link, which the benchmark holds it to. Parsed
certificates are cached by their bytes; ``warnings.catch_warnings`` around parsing makes that
step not thread-safe with respect to other code changing warning filters at the same time.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtensionOID, SignatureAlgorithmOID

from zcbench.nitro.errors import AttestationError
from zcbench.nitro.trust import TrustRoot

__all__ = ["CertificateFacts", "facts_of", "load_certificate", "validate_path", "validity_of"]

_ES384 = ec.ECDSA(hashes.SHA384())
_KNOWN_CRITICAL = frozenset({ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE})


@dataclass(frozen=True)
class CertificateFacts:
    """What a person checking a chain wants to see about one certificate."""

    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str
    ca: bool


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at ``pos``: (tag, start of its content, end)."""
    tag = data[pos]
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("DER element overruns its container")
    return tag, start, end


def _outer_algorithm(der: bytes) -> bytes:
    """The encoded signatureAlgorithm of a Certificate, the one after the TBSCertificate."""
    tag, pos, end = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("Certificate is not a SEQUENCE")
    _tag, _start, tbs_end = _tlv(der, pos)
    alg_tag, _start, alg_end = _tlv(der, tbs_end)
    if alg_tag != 0x30 or alg_end > end:
        raise ValueError("Certificate lacks its signatureAlgorithm")
    return der[tbs_end:alg_end]


def _raw_names(tbs: bytes) -> tuple[bytes, bytes, bytes]:
    """The encoded signature AlgorithmIdentifier, issuer and subject Names of a
    TBSCertificate (RFC 5280 §4.1)."""
    tag, pos, end = _tlv(tbs, 0)
    if tag != 0x30:
        raise ValueError("TBSCertificate is not a SEQUENCE")
    fields: list[tuple[int, int, int]] = []
    while pos < end and len(fields) < 6:
        field_tag, _start, field_end = _tlv(tbs, pos)
        fields.append((field_tag, pos, field_end))
        pos = field_end
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5 or fields[2][0] != 0x30 or fields[4][0] != 0x30:
        raise ValueError("TBSCertificate lacks issuer or subject")
    if fields[1][0] != 0x30:
        raise ValueError("TBSCertificate lacks its signature AlgorithmIdentifier")
    algorithm = tbs[fields[1][1] : fields[1][2]]
    issuer = tbs[fields[2][1] : fields[2][2]]
    subject = tbs[fields[4][1] : fields[4][2]]
    return algorithm, issuer, subject


class _Parsed:
    """One parsed certificate with what the checks read, decoded once."""

    def __init__(self, der: bytes) -> None:
        self.der = der
        self.cert = x509.load_der_x509_certificate(der)
        cert = self.cert
        # cryptography decodes some fields lazily: decode each one the checks read here, so a
        # malformed field fails now, as "certificate", never later as a stray exception.
        self.key: PublicKeyTypes = cert.public_key()
        _ = (cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.version)
        _ = (cert.signature_algorithm_oid, cert.signature)
        self.tbs = cert.tbs_certificate_bytes
        # Chaining compares the encoded names byte for byte (stricter than RFC 5280's
        # normalised matching, and what AWS's chains do): decoding names into Python objects
        # is the costliest part of parsing and is left to display (``facts``).
        self.tbs_algorithm_der, self.issuer_der, self.subject_der = _raw_names(self.tbs)
        self.algorithm_der = _outer_algorithm(der)

    @functools.cached_property
    def facts(self) -> CertificateFacts:
        try:
            ca = bool(self.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            ca = False
        return CertificateFacts(
            subject=_printable(lambda: self.cert.subject),
            issuer=_printable(lambda: self.cert.issuer),
            serial=format(self.cert.serial_number, "x"),
            not_before=self.cert.not_valid_before_utc,
            not_after=self.cert.not_valid_after_utc,
            sha256=hashlib.sha256(self.der).hexdigest(),
            ca=ca,
        )


def _printable(name: Callable[[], x509.Name]) -> str:
    # Names are decoded only to be shown; one cryptography cannot render is shown as such.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return name().rfc4514_string()
        except (ValueError, TypeError):
            return "<name not decodable>"


@functools.lru_cache(maxsize=256)
def _parse_der(der: bytes) -> _Parsed:
    # Parsing is a pure function of the bytes, so a parsed certificate can be shared between
    # documents: the bundle's intermediates recur for hours. Every check still runs each call.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = _Parsed(der)
    if caught:
        # What cryptography only warns about (a negative serial, a mis-sized name attribute)
        # RFC 5280 forbids: strict means refused.
        raise ValueError(str(caught[0].message))
    return parsed


@functools.lru_cache(maxsize=8)
def _root_parsed(der: bytes) -> _Parsed:
    # Roots are few and live for the process; kept apart from the documents' certificates.
    return _load(der, "the pinned root")


def load_certificate(der: bytes, where: str) -> x509.Certificate:
    """Parse one DER certificate or raise ``AttestationError`` (``certificate``/``algorithm``)."""
    return _load(der, where).cert


def _load(der: bytes, where: str) -> _Parsed:
    try:
        return _parse_der(der)
    except UnsupportedAlgorithm as exc:
        raise AttestationError(
            f"{where} uses an unsupported key or signature algorithm: {exc}", check="algorithm"
        ) from exc
    except (
        ValueError,
        TypeError,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as exc:
        # The exceptions cryptography's X.509 parser raises for malformed input (found by
        # fuzzing mutated real documents; tests/nitro/test_fuzz.py).
        raise AttestationError(
            f"{where} is not a valid DER X.509 certificate: {exc}", check="certificate"
        ) from exc


def validity_of(der: bytes) -> tuple[dt.datetime, dt.datetime]:
    """``(not_before, not_after)`` of the certificate ``der``, aware UTC (parsed once, cached)."""
    cert = _load(der, "certificate").cert
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def facts_of(der: bytes) -> CertificateFacts:
    """Display facts for the certificate ``der`` (raises ``AttestationError`` if malformed)."""
    return _load(der, "certificate").facts


def _fail(check: str, message: str, *, expected: object = None, actual: object = None) -> NoReturn:
    raise AttestationError(message, check=check, expected=expected, actual=actual)


def _extensions(cert: x509.Certificate, label: str) -> x509.Extensions:
    try:
        return cert.extensions
    except ValueError as exc:  # duplicate or malformed extensions
        raise AttestationError(
            f"{label} has malformed extensions: {exc}", check="certificate"
        ) from exc


def _check_algorithm(parsed: _Parsed, label: str, *, signed: bool) -> None:
    cert, key = parsed.cert, parsed.key
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        _fail("algorithm", f"{label} key is not P-384", expected="secp384r1", actual=curve)
    if parsed.tbs_algorithm_der != parsed.algorithm_der:
        # RFC 5280 §4.1.1.2: the two MUST be the same; the signed one is what an issuer meant.
        _fail(
            "algorithm",
            f"{label} names one signature algorithm inside its signed part and another "
            "outside it (RFC 5280 4.1.1.2); refusing it",
            expected=parsed.tbs_algorithm_der.hex(),
            actual=parsed.algorithm_der.hex(),
        )
    if signed and cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA384:
        _fail(
            "algorithm",
            f"{label} is not signed with ecdsa-with-SHA384",
            expected=SignatureAlgorithmOID.ECDSA_WITH_SHA384.dotted_string,
            actual=cert.signature_algorithm_oid.dotted_string,
        )


def _check_validity(cert: x509.Certificate, label: str, at: dt.datetime) -> None:
    before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not before <= at <= after:
        state = "not yet valid" if at < before else "expired"
        _fail(
            "validity",
            f"{label} is {state} at {at.isoformat()} (valid {before.isoformat()} to "
            f"{after.isoformat()}); an archived document verifies only at its own "
            "timestamp (at=document.time, --at doc)",
            expected=f"{before.isoformat()}..{after.isoformat()}",
            actual=at.isoformat(),
        )


def _check_constraints(cert: x509.Certificate, label: str, *, issuer: bool, cas_below: int) -> None:
    exts = _extensions(cert, label)
    for ext in exts:
        if ext.critical and ext.oid not in _KNOWN_CRITICAL:
            _fail(
                "ca_constraints",
                f"{label} has a critical extension this verifier does not process: "
                f"{ext.oid.dotted_string}",
                actual=ext.oid.dotted_string,
            )
    try:
        bc: x509.BasicConstraints | None = exts.get_extension_for_class(x509.BasicConstraints).value
        bc_critical = exts.get_extension_for_class(x509.BasicConstraints).critical
    except x509.ExtensionNotFound:
        bc, bc_critical = None, False
    try:
        ku: x509.KeyUsage | None = exts.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if issuer:
        if cert.version is not x509.Version.v3 or bc is None or not bc.ca or not bc_critical:
            _fail(
                "ca_constraints",
                f"{label} issues certificates but is not a CA (critical basicConstraints "
                "CA:TRUE required)",
                expected="CA:TRUE (critical)",
                actual="absent" if bc is None else f"CA:{bc.ca} critical={bc_critical}",
            )
        assert bc is not None
        if bc.path_length is not None and cas_below > bc.path_length:
            _fail(
                "ca_constraints",
                f"{label} allows {bc.path_length} CA certificate(s) below it; the path has "
                f"{cas_below}",
                expected=f"<= {bc.path_length}",
                actual=cas_below,
            )
        if ku is None or not ku.key_cert_sign:
            _fail(
                "key_usage",
                f"{label} issues certificates without keyCertSign in its keyUsage",
                expected="keyCertSign",
                actual="no keyUsage" if ku is None else "keyCertSign absent",
            )
    else:
        if ku is not None and ku.key_cert_sign and (bc is None or not bc.ca):
            # RFC 5280 §4.2.1.3: keyCertSign asserted means cA MUST be asserted too.
            _fail(
                "key_usage",
                f"{label} asserts keyCertSign without basicConstraints CA:TRUE (RFC 5280 "
                "4.2.1.3); refusing it",
                expected="no keyCertSign on a certificate that is not a CA",
                actual="keyCertSign with CA:FALSE",
            )
        if bc is not None and bc.ca:
            _fail(
                "ca_constraints",
                f"{label} is a CA certificate; a document must be signed by an end entity",
                expected="CA:FALSE",
                actual="CA:TRUE",
            )
        if ku is None or not ku.digital_signature:
            _fail(
                "key_usage",
                f"{label} lacks digitalSignature in its keyUsage",
                expected="digitalSignature",
                actual="no keyUsage" if ku is None else "digitalSignature absent",
            )


def validate_path(
    leaf_der: bytes,
    cabundle: tuple[bytes, ...],
    root: TrustRoot,
    at: dt.datetime,
    seen: list[bytes],
) -> ec.EllipticCurvePublicKey:
    """Validate the document's chain to ``root`` at ``at``; return the leaf's (P-384) key.

    ``seen`` receives the document's certificates (``cabundle`` order, then the leaf) once
    they all parse, so a failed check can still show the chain (:func:`facts_of`). Raises
    ``AttestationError`` naming the failed check.
    """
    rest = [_load(der, f"cabundle[{i}]") for i, der in enumerate(cabundle[1:], start=1)]
    leaf = _load(leaf_der, "the leaf certificate")
    if cabundle[0] != root.der:
        _load(cabundle[0], "cabundle[0]")  # parsed only to be shown
        seen.extend((*cabundle, leaf_der))
        _fail(
            "root",
            f"the document's chain does not start at the pinned {root.name!r} root "
            f"(SHA-256 {root.fingerprint}); "
            + (
                "this is a development-CA document: verify it with --trust dev, or with "
                "--trust and the development root the fund exported"
                if root.name == "aws"
                else "check which root the document was issued under"
            ),
            expected=root.fingerprint,
            actual=hashlib.sha256(cabundle[0]).hexdigest(),
        )
    seen.extend((*cabundle, leaf_der))
    # From here on the pinned root stands in for the bundle's (byte-identical) copy.
    labels = [
        "pinned root",
        *(f"cabundle[{i}]" for i in range(1, len(cabundle))),
        "leaf certificate",
    ]
    path = [_root_parsed(root.der), *rest, leaf]
    last = len(path) - 1
    for i in range(len(path)):
        try:
            _check_certificate(path, labels, i, at, last)
        except ValueError as exc:  # defensive: every lazily parsed field was touched at load
            raise AttestationError(f"{labels[i]} is malformed: {exc}", check="certificate") from exc
    key = leaf.key
    assert isinstance(key, ec.EllipticCurvePublicKey)  # _check_algorithm made sure
    return key


def _check_certificate(
    path: list[_Parsed], labels: list[str], i: int, at: dt.datetime, last: int
) -> None:
    """All checks on ``path[i]``: algorithm, issued by ``path[i-1]``, validity, constraints."""
    cert, label = path[i].cert, labels[i]
    _check_algorithm(path[i], label, signed=i > 0)
    if i > 0:
        issuer = path[i - 1]
        if path[i].issuer_der != issuer.subject_der:
            _fail(
                "chain",
                f"{label} is not issued by {labels[i - 1]} (issuer name differs)",
                expected=_printable(lambda: issuer.cert.subject),
                actual=_printable(lambda: cert.issuer),
            )
        # The issuer's key is P-384 and this certificate says ecdsa-with-SHA384: both checked
        # by _check_algorithm, so the one verification below is the whole link.
        issuer_key = issuer.key
        assert isinstance(issuer_key, ec.EllipticCurvePublicKey)
        try:
            issuer_key.verify(cert.signature, path[i].tbs, _ES384)
        except InvalidSignature:
            _fail(
                "chain",
                f"{label} is not signed by {labels[i - 1]} (the signature does not verify)",
                expected=f"signature by {_printable(lambda: issuer.cert.subject)}",
                actual="invalid signature",
            )
    _check_validity(cert, label, at)
    _check_constraints(cert, label, issuer=i < last, cas_below=last - 1 - i)
