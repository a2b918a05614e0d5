"""Intel DCAP quotes (TDX v4 and v5, SGX v3): parse strictly, verify to the pinned Intel root.

Owns the quote's byte format (header, SGX report or TD report body, ECDSA-256 signature data
with its QE report and PCK certificate chain), the checks this module makes itself on every
quote (the PCK chain to the pinned Intel SGX Root CA, the QE report's signature by the PCK key
and its binding of the attestation key, the quote's signature by that key), and the
collateral: TCB info, QE identity and CRLs, read from a file (:func:`load_collateral`, the JSON
``dcap-qvl`` and PCCS clients write) or fetched by a :class:`PccsClient` passed in. With
collateral, ``dcap-qvl`` (a maintained DCAP verifier, the lock's ``dcap-qvl``) evaluates the
collateral's signatures, the CRLs and the TCB level under the same pinned root and the same
time; without it the verdict says plainly ``tcb_status: "unknown"``.

Checks in order, each failure under its stable ``check`` name:

========================  ==================================================================
``decode``                truncated, non-zero trailing bytes (zero padding after the signature
                          data is allowed: TDX quote buffers carry it), a length field that
                          overruns or does not fill its container
``version``               not a TDX v4/v5 or SGX v3 quote (version, TEE type, body type)
``schema``                attestation key type not ECDSA-256-with-P-256, an unknown QE
                          vendor, certification data of a type other than 1-6 or of the
                          wrong size for its type
``certificate``           the PCK chain is not three readable PEM certificates, or the quote
                          carries only its platform's PPID (certification data type 1-3)
                          or PCK leaf (type 4) and no chain was given or fetched
``root``                  the chain's root is not the pinned Intel SGX Root CA
``chain``                 a PCK certificate is not issued (name, ECDSA signature) by the next
``validity``              a PCK certificate is expired or not yet valid at the time
``qe_report``             the QE report is not signed by the PCK key
``qe_binding``            the QE report does not bind the attestation key (SHA-256 of key and
                          QE authentication data in its report data)
``signature``             the quote is not signed by the attestation key
``collateral``            collateral for another FMSPC or TEE, out of its validity window at
                          the time, or refused by ``dcap-qvl`` (signatures, CRL, QE identity)
``revoked``               the PCK certificate or its CA is revoked (CRL)
``tcb_status``            the TCB status is not UpToDate and not allowed by name, or no TCB
                          level matches (Revoked is never allowed)
``debug``                 TDX TD attributes bit 0 (TUD.DEBUG) or SGX attributes bit 1 set, and
                          ``allow_debug`` not asked for
``measurement``           MRTD (TDX) or MRENCLAVE (SGX) differs from the expected one
``report_data``           the report data differs from the expected (zero-padded) value
``<field>``               a field in ``expected_fields`` differs or is absent (TDX
                          ``rtmr0``..``rtmr3``, ``mrconfigid``, ``mrowner``,
                          ``mrownerconfig``, ``mrseam``, ``mrsignerseam``; TD report 1.5
                          also ``mrservicetd``, ``tee_tcb_svn2``; SGX ``mrsigner``,
                          ``isvprodid``, ``isvsvn``, ``configsvn`` as 2-byte little-endian,
                          ``configid``, ``isvfamilyid``, ``isvextprodid``)
========================  ==================================================================
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import importlib.resources
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, Protocol

import dcap_qvl  # type: ignore[import-untyped]  # ships .pyi stubs, but no py.typed
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from zcbench.errors import DataError, EnvError, UsageError
from zcbench.tee._der import outer_fields_agree
from zcbench.tee.errors import AttestationError
from zcbench.tee.policy import AttestationPolicy
from zcbench.tee.verdict import ChainCertificate, TeeVerdict, chain_roles, text_of

__all__ = [
    "COLLATERAL_KEYS",
    "INTEL_ROOT_SHA256",
    "Collateral",
    "DcapQuote",
    "HttpPccs",
    "MemoryPccs",
    "PccsClient",
    "PckRequest",
    "check_quote",
    "load_collateral",
    "parse_quote",
    "verify_quote",
    "with_pck_chain",
]

INTEL_ROOT_SHA256: Final = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
"""SHA-256 of the DER of the Intel SGX Root CA (the root of every PCK chain)."""

COLLATERAL_KEYS: Final = (
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
    "tcb_info_issuer_chain",
    "tcb_info",
    "tcb_info_signature",
    "qe_identity_issuer_chain",
    "qe_identity",
    "qe_identity_signature",
)

_HEADER: Final = 48
_SGX_BODY: Final = 384
_TD10_BODY: Final = 584
_TD15_BODY: Final = 648
_QE_REPORT: Final = 384
_INTEL_QE_VENDOR: Final = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_MAX_QUOTE: Final = 64 * 1024
_MAX_COLLATERAL: Final = 1 << 20
_ES256 = ec.ECDSA(hashes.SHA256())
_TDX_FIELDS: Final = {
    "mrseam": (16, 48),
    "mrtd": (136, 48),
    "mrconfigid": (184, 48),
    "mrowner": (232, 48),
    "mrownerconfig": (280, 48),
    "rtmr0": (328, 48),
    "rtmr1": (376, 48),
    "rtmr2": (424, 48),
    "rtmr3": (472, 48),
    "mrsignerseam": (64, 48),
}
# TD report 1.5 (v5 body type 3) adds TEE_TCB_SVN2 and MRSERVICETD after the report data.
_TD15_FIELDS: Final = {"tee_tcb_svn2": (584, 16), "mrservicetd": (600, 48)}
_SGX_FIELDS: Final = {"mrenclave": (64, 32), "mrsigner": (128, 32), "isvprodid": (256, 2),
                      "isvextprodid": (32, 16), "configid": (192, 64), "configsvn": (260, 2),
                      "isvfamilyid": (304, 16),
                      "isvsvn": (258, 2)}

TeeName = Literal["tdx", "sgx"]

# PCK certification data types 1-3 carry a PPID of this size (1 plain, 2 RSA-2048-OAEP, 3
# RSA-3072-OAEP encrypted), then CPUSVN (16), PCESVN (2) and PCE ID (2); type 4 the PCK leaf.
_PPID_SIZES: Final = {1: 16, 2: 256, 3: 384}
_MAX_PCK_LEAF: Final = 8 * 1024


@dataclass(frozen=True)
class PckRequest:
    """The platform identity a quote of certification data type 1-3 carries: what a PCCS is
    asked for the PCK certificate (Intel PCS API ``pckcert``)."""

    ppid: bytes
    encrypted: bool
    cpusvn: bytes
    pcesvn: int
    pceid: bytes

    def query(self) -> str:
        """The PCCS query string (hex, as the PCS API spells its parameters)."""
        name = "encrypted_ppid" if self.encrypted else "ppid"
        return (f"{name}={self.ppid.hex()}&cpusvn={self.cpusvn.hex()}"
                f"&pcesvn={self.pcesvn.to_bytes(2, 'little').hex()}&pceid={self.pceid.hex()}")


def _fail(check: str, message: str, *, expected: object = None, actual: object = None) -> NoReturn:
    raise AttestationError(message, check=check, expected=expected, actual=actual)


@dataclass(frozen=True)
class DcapQuote:
    """One parsed quote. ``signed`` is what the attestation key signs (header and body)."""

    raw: bytes
    tee: TeeName
    version: int
    body_type: int
    header: bytes
    body: bytes
    signed: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: bytes
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain_pem: bytes
    padding: int = 0
    pck_data_type: int = 5
    pck_data: bytes = b""

    @property
    def pck_request(self) -> PckRequest | None:
        """What a PCCS is asked for this quote's PCK certificate (certification data types
        1-3: the PPID, plain or RSA-OAEP encrypted, CPUSVN, PCESVN and PCE ID), else None."""
        if self.pck_data_type not in _PPID_SIZES:
            return None
        n = _PPID_SIZES[self.pck_data_type]
        d = self.pck_data
        return PckRequest(
            ppid=d[:n], encrypted=self.pck_data_type != 1, cpusvn=d[n : n + 16],
            pcesvn=int.from_bytes(d[n + 16 : n + 18], "little"), pceid=d[n + 18 : n + 20],
        )

    @property
    def report_data(self) -> bytes:
        return self.body[520:584] if self.tee == "tdx" else self.body[320:384]

    @property
    def measurement(self) -> bytes:
        """MRTD for TDX, MRENCLAVE for SGX."""
        return self.body[136:184] if self.tee == "tdx" else self.body[64:96]

    @property
    def debug(self) -> bool:
        if self.tee == "tdx":
            return bool(self.body[120] & 1)  # TD_ATTRIBUTES.TUD.DEBUG
        return bool(self.body[48] & 2)  # ATTRIBUTES.FLAGS.DEBUG

    def _table(self) -> Mapping[str, tuple[int, int]]:
        if self.tee == "sgx":
            return _SGX_FIELDS
        return {**_TDX_FIELDS, **_TD15_FIELDS} if len(self.body) == _TD15_BODY else _TDX_FIELDS

    def field(self, name: str) -> bytes | None:
        """A measured or reported field by name; None when this body has none (a TD report
        1.0 has no ``mrservicetd``)."""
        place = self._table().get(name)
        if place is None:
            return None
        offset, size = place
        return self.body[offset : offset + size]

    def fields(self) -> dict[str, str]:
        out = {name: self.body[o : o + n].hex() for name, (o, n) in self._table().items()}
        out["version"] = str(self.version)
        out["padding"] = str(self.padding)
        if self.tee == "tdx":
            out["td_attributes"] = self.body[120:128].hex()
            out["tee_tcb_svn"] = self.body[0:16].hex()
            out["xfam"] = self.body[128:136].hex()
        else:
            out["attributes"] = self.body[48:64].hex()
            out["cpusvn"] = self.body[0:16].hex()
        return out


class _Reader:
    """Bounded reads over the quote; any overrun is ``decode``."""

    def __init__(self, data: bytes, start: int, end: int, what: str) -> None:
        self.data, self.pos, self.end, self.what = data, start, end, what

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            _fail(
                "decode",
                f"the quote is truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"{max(self.end - self.pos, 0)} remain in {self.what}",
                expected=f">= {n} bytes",
                actual=self.end - self.pos,
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def done(self) -> None:
        if self.pos != self.end:
            _fail(
                "decode",
                f"{self.end - self.pos} trailing bytes after {self.what}",
                expected=0,
                actual=self.end - self.pos,
            )


def parse_quote(data: bytes) -> DcapQuote:
    """Parse a DCAP quote strictly (``decode``, ``version``, ``schema``); no cryptography."""
    if not isinstance(data, (bytes, bytearray)):
        raise UsageError("a DCAP quote is bytes")
    raw = bytes(data)
    if len(raw) > _MAX_QUOTE:
        _fail("decode", f"a quote of {len(raw)} bytes is larger than any DCAP quote",
              expected=f"<= {_MAX_QUOTE}", actual=len(raw))
    r = _Reader(raw, 0, len(raw), "the quote")
    header = r.take(_HEADER, "the header")
    version = int.from_bytes(header[0:2], "little")
    key_type = int.from_bytes(header[2:4], "little")
    tee_type = int.from_bytes(header[4:8], "little")
    if version not in (3, 4, 5) or tee_type not in (0, 0x81) or (version, tee_type) == (3, 0x81):
        _fail(
            "version",
            f"quote version {version} with TEE type 0x{tee_type:x} is not supported (SGX v3, "
            "v4 and v5, TDX v4 and v5 are)",
            expected="SGX v3/v4/v5 (0x0), TDX v4/v5 (0x81)",
            actual=f"v{version} 0x{tee_type:x}",
        )
    if key_type != 2:
        _fail("schema", f"attestation key type {key_type} is not ECDSA-256 with P-256 (2)",
              expected=2, actual=key_type)
    if header[12:28] != _INTEL_QE_VENDOR:
        _fail("schema", "the QE vendor ID is not Intel's", expected=_INTEL_QE_VENDOR.hex(),
              actual=header[12:28].hex())
    tee: TeeName = "sgx" if tee_type == 0 else "tdx"
    if version == 5:
        body_type = r.u16("the body type")
        body_size = r.u32("the body size")
        sizes = {1: _SGX_BODY} if tee == "sgx" else {2: _TD10_BODY, 3: _TD15_BODY}
        if sizes.get(body_type) != body_size:
            want = "1/384" if tee == "sgx" else "2/584 or 3/648"
            _fail("version", f"{tee.upper()} v5 body type {body_type} of {body_size} bytes is "
                  "not " + ("an SGX report (1, 384)" if tee == "sgx" else "a TD report 1.0 "
                  "(2, 584) or 1.5 (3, 648)"), expected=want, actual=f"{body_type}/{body_size}")
    else:
        body_type = 1 if tee == "sgx" else 2
        body_size = _SGX_BODY if tee == "sgx" else _TD10_BODY
    body = r.take(body_size, "the report body")
    signed = raw[: r.pos]
    sig_len = r.u32("the signature data length")
    s = _Reader(raw, r.pos, r.pos + sig_len, "the signature data")
    if s.end > len(raw):
        _fail("decode", f"the signature data length {sig_len} overruns the quote",
              expected=f"<= {len(raw) - r.pos}", actual=sig_len)
    # The TDX quote-generation interface hands back a fixed-size buffer: zero bytes after
    # the signature data are its padding (unsigned, ignored, counted in ``padding``); any
    # other byte there is refused.
    padding = raw[s.end :]
    if any(padding):
        _fail("decode", f"{len(padding)} trailing bytes after the quote's signature data, not "
              "all zero (zero padding is the only thing allowed there)", expected="zero padding",
              actual=padding[:16].hex())
    signature = s.take(64, "the quote signature")
    attestation_key = s.take(64, "the attestation key")
    if version == 3:
        qe = s
    else:
        cert_type = s.u16("the certification data type")
        if cert_type != 6:
            _fail("schema", f"certification data type {cert_type} is not the QE report (6)",
                  expected=6, actual=cert_type)
        size = s.u32("the certification data size")
        qe = _Reader(raw, s.pos, s.pos + size, "the QE report certification data")
        s.take(size, "the QE report certification data")
        s.done()
    qe_report = qe.take(_QE_REPORT, "the QE report")
    qe_signature = qe.take(64, "the QE report signature")
    qe_auth = qe.take(qe.u16("the QE authentication data size"), "the QE authentication data")
    cert_type = qe.u16("the PCK certification data type")
    if cert_type not in (1, 2, 3, 4, 5):
        _fail("schema", f"PCK certification data type {cert_type} is none of 1-5 (PPID forms, "
              "the PCK leaf, the PEM chain)", expected="1-5", actual=cert_type)
    chain = qe.take(qe.u32("the PCK certification data size"), "the PCK certification data")
    qe.done()
    pck_data = b""
    if cert_type in _PPID_SIZES:
        size = _PPID_SIZES[cert_type] + 20
        if len(chain) != size:
            _fail("schema", f"PCK certification data type {cert_type} is {size} bytes (PPID, "
                  f"CPUSVN, PCESVN, PCE ID); this one is {len(chain)}", expected=size,
                  actual=len(chain))
        pck_data, chain = chain, b""
    elif cert_type == 4:
        if not 0 < len(chain) <= _MAX_PCK_LEAF:
            _fail("schema", f"a PCK leaf certificate (type 4) of {len(chain)} bytes",
                  expected=f"1..{_MAX_PCK_LEAF}", actual=len(chain))
        pck_data, chain = chain, b""
    return DcapQuote(
        raw=raw, tee=tee, version=version, body_type=body_type, header=header, body=body,
        signed=signed, signature=signature, attestation_key=attestation_key,
        qe_report=qe_report, qe_report_signature=qe_signature, qe_auth_data=qe_auth,
        pck_chain_pem=chain.rstrip(b"\0"),
        padding=len(padding),
        pck_data_type=cert_type,
        pck_data=pck_data,
    )


def with_pck_chain(quote: DcapQuote, chain_pem: bytes) -> bytes:
    """``quote`` with its PCK certification data replaced by ``chain_pem`` (type 5).

    The certification data is not signed (the attestation key signs header and body, the PCK
    key the QE report), so this changes nothing any signature covers: a wrong chain fails the
    QE report's signature or the chain to the pinned root like any other. Zero padding after
    the signature data is dropped.
    """
    def u16(n: int) -> bytes:
        return n.to_bytes(2, "little")

    def u32(n: int) -> bytes:
        return n.to_bytes(4, "little")

    inner = (quote.qe_report + quote.qe_report_signature + u16(len(quote.qe_auth_data))
             + quote.qe_auth_data + u16(5) + u32(len(chain_pem)) + chain_pem)
    if quote.version != 3:
        inner = u16(6) + u32(len(inner)) + inner
    data = quote.signature + quote.attestation_key + inner
    return quote.signed + u32(len(data)) + data


# --- the chain and the signatures ------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _pinned_root() -> x509.Certificate:
    blob = importlib.resources.files("zcbench.tee").joinpath("roots", "intel_sgx_root_ca.pem")
    root = x509.load_pem_x509_certificate(blob.read_bytes())
    got = hashlib.sha256(root.public_bytes(Encoding.DER)).hexdigest()
    if got != INTEL_ROOT_SHA256:
        raise EnvError(
            f"the packaged Intel SGX Root CA has SHA-256 {got}, not the pinned "
            f"{INTEL_ROOT_SHA256}; the installation is damaged, reinstall zcbench"
        )
    return root


@functools.lru_cache(maxsize=1)
def _root_der() -> bytes:
    return _pinned_root().public_bytes(Encoding.DER)


@dataclass(frozen=True)
class _PckCert:
    """One certificate of a PCK chain with what the checks read, taken once per chain (the
    chain is cached by its PEM bytes; cryptography re-encodes the TBS on every access)."""

    cert: x509.Certificate
    der: bytes
    key: object
    not_before: dt.datetime
    not_after: dt.datetime
    signature: bytes
    tbs: bytes


@dataclass(frozen=True)
class _PckChain:
    leaf: _PckCert
    ca: _PckCert
    root: _PckCert
    ca_named_by_root: bool
    leaf_named_by_ca: bool
    fingerprints: tuple[str, ...]


def _prepared(cert: x509.Certificate) -> _PckCert:
    return _PckCert(
        cert=cert,
        der=cert.public_bytes(Encoding.DER),
        key=cert.public_key(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        signature=cert.signature,
        tbs=cert.tbs_certificate_bytes,
    )


def _der_sequence(blob: bytes) -> list[x509.Certificate]:
    """Certificates concatenated as DER (some test quotes carry the chain so, not as PEM)."""
    out: list[x509.Certificate] = []
    pos = 0
    while pos < len(blob) and len(out) < 4:
        if blob[pos] != 0x30 or pos + 4 > len(blob) or blob[pos + 1] != 0x82:
            raise ValueError("not a DER certificate sequence")
        end = pos + 4 + int.from_bytes(blob[pos + 2 : pos + 4], "big")
        out.append(x509.load_der_x509_certificate(blob[pos:end]))
        pos = end
    if pos != len(blob):
        raise ValueError("bytes left after the DER certificates")
    return out


@functools.lru_cache(maxsize=32)
def _pck_chain(pem: bytes) -> _PckChain:
    try:
        parsed = (
            x509.load_pem_x509_certificates(pem)
            if pem.lstrip().startswith(b"-----BEGIN")
            else _der_sequence(pem)
        )
        certs = [_prepared(c) for c in parsed]
        # Names decode lazily: decode them here, so a malformed one is "certificate".
        names = [(c.cert.issuer, c.cert.subject) for c in certs]
    # cryptography raises several types for malformed certificates (ValueError,
    # UnsupportedAlgorithm, InvalidVersion, DuplicateExtension, ...): each is "certificate".
    except Exception as exc:
        _fail("certificate", f"the quote's PCK chain is not readable PEM (or DER): {exc}",
              expected="PEM certificates", actual="unreadable")
    if len(certs) != 3:
        _fail("certificate", f"the PCK chain has {len(certs)} certificates; it has 3 (PCK, "
              "PCK CA, Intel SGX Root CA)", expected=3, actual=len(certs))
    for cert in certs:
        if not outer_fields_agree(cert.der):
            _fail("certificate", "a PCK chain certificate names another signature algorithm "
                  "outside its signed part than inside, or its signature has unused bits",
                  expected="outer fields equal to the signed ones", actual="they differ")
    leaf, ca, root = certs
    return _PckChain(
        leaf=leaf,
        ca=ca,
        root=root,
        ca_named_by_root=names[1][0] == names[2][1],
        leaf_named_by_ca=names[0][0] == names[1][1],
        fingerprints=tuple(hashlib.sha256(c.der).hexdigest() for c in (root, ca, leaf)),
    )


def _ec_verify(key: object, signature: bytes, data: bytes) -> bool:
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return False
    try:
        key.verify(signature, data, _ES256)
    except InvalidSignature:
        return False
    return True


def _raw_signature(sig: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


def _check_chain(quote: DcapQuote, at: dt.datetime) -> _PckCert:
    chain = _pck_chain(quote.pck_chain_pem)
    leaf, ca, root = chain.leaf, chain.ca, chain.root
    if root.der != _root_der():
        got = chain.fingerprints[0]
        _fail("root", f"the PCK chain ends in a root with SHA-256 {got}, not the pinned Intel "
              "SGX Root CA", expected=INTEL_ROOT_SHA256, actual=got)
    for cert, issuer, named, label in (
        (ca, root, chain.ca_named_by_root, "PCK CA"),
        (leaf, ca, chain.leaf_named_by_ca, "PCK certificate"),
    ):
        if not named or not _ec_verify(issuer.key, cert.signature, cert.tbs):
            name = issuer.cert.subject.rfc4514_string()
            _fail("chain", f"the {label} is not issued by {name} (name or ECDSA signature)",
                  expected=name, actual=cert.cert.issuer.rfc4514_string())
    for cert, label in ((root, "Intel SGX Root CA"), (ca, "PCK CA"), (leaf, "PCK certificate")):
        start, end = cert.not_before, cert.not_after
        if not start <= at <= end:
            _fail("validity", f"the {label} is valid {start.isoformat()} to {end.isoformat()}, "
                  f"not at {at.isoformat()}; verify at a time inside that window (--at)",
                  expected=f"{start.isoformat()}..{end.isoformat()}", actual=at.isoformat())
    return leaf


@functools.lru_cache(maxsize=64)
def _attestation_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    # Decoding and validating the point is a pure function of its 64 bytes.
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)


def _check_signatures(quote: DcapQuote, pck: _PckCert) -> None:
    if not _ec_verify(pck.key, _raw_signature(quote.qe_report_signature), quote.qe_report):
        _fail("qe_report", "the QE report is not signed by the PCK certificate's key: the "
              "quote's quoting enclave is not the attested one", expected="valid signature",
              actual="invalid")
    digest = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    bound = quote.qe_report[320:384]
    if bound != digest + bytes(32):
        _fail("qe_binding", "the QE report does not bind the attestation key (its report data "
              "is not SHA-256 of the key and the QE authentication data)",
              expected=(digest + bytes(32)).hex(), actual=bound.hex())
    try:
        key = _attestation_key(quote.attestation_key)
    except ValueError:
        _fail("signature", "the attestation key is not a P-256 point", expected="P-256 point",
              actual=quote.attestation_key.hex())
    if not _ec_verify(key, _raw_signature(quote.signature), quote.signed):
        _fail("signature", "the quote is not signed by its attestation key: the header or the "
              "report body was altered", expected="valid signature", actual="invalid")


# --- collateral ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collateral:
    """The DCAP collateral for one quote: the nine fields ``dcap-qvl`` and PCCS name
    (:data:`COLLATERAL_KEYS`), as JSON text (CRLs and signatures in hex)."""

    json_text: str
    tcb_info: Mapping[str, Any]
    qe_identity: Mapping[str, Any]
    pck_crl_issuer_chain: str = ""

    @classmethod
    def from_json(cls, raw: str | bytes, *, source: str = "collateral") -> Collateral:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise DataError(f"{source} must be a JSON object")
        missing = [k for k in COLLATERAL_KEYS if not isinstance(doc.get(k), str)]
        if missing:
            raise DataError(f"{source}: {missing[0]!r} is missing or not a string (DCAP "
                            f"collateral has {', '.join(COLLATERAL_KEYS)})")
        try:
            tcb_info = json.loads(doc["tcb_info"])
            qe_identity = json.loads(doc["qe_identity"])
        except ValueError as exc:
            raise DataError(f"{source}: tcb_info or qe_identity is not JSON: {exc}") from None
        if not isinstance(tcb_info, dict) or not isinstance(qe_identity, dict):
            raise DataError(f"{source}: tcb_info and qe_identity must be JSON objects")
        text = raw.decode() if isinstance(raw, bytes) else raw
        return cls(json_text=text, tcb_info=tcb_info, qe_identity=qe_identity,
                   pck_crl_issuer_chain=doc["pck_crl_issuer_chain"])


def load_collateral(path: str | os.PathLike[str]) -> Collateral:
    """Read a collateral JSON file (missing: UsageError; malformed: DataError)."""
    name = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_COLLATERAL + 1)
    except FileNotFoundError:
        raise UsageError(f"collateral file {name} does not exist") from None
    except OSError as exc:
        raise EnvError(f"cannot read collateral file {name}: {exc.strerror}") from None
    if len(raw) > _MAX_COLLATERAL:
        raise DataError(f"collateral file {name} is larger than 1 MiB")
    return Collateral.from_json(raw, source=name)


class PccsClient(Protocol):
    """Where collateral comes from: ``collateral(quote)`` for the quote's FMSPC and CA; and
    the PCK certificate chain (PEM) of a platform a quote names by PPID:
    ``pck_certificate(request)``. Failures raise :class:`~zcbench.errors.EnvError`."""

    def collateral(self, quote: bytes) -> Collateral: ...

    def pck_certificate(self, request: PckRequest) -> bytes: ...


class HttpPccs:
    """A PCCS (or Intel PCS) over HTTPS, through ``dcap-qvl``'s client; never used in tests."""

    def __init__(self, url: str) -> None:
        if not url.startswith("https://"):
            raise UsageError(f"the PCCS URL must be https: {url}")
        self.url = url

    def collateral(self, quote: bytes) -> Collateral:
        try:
            fetched = asyncio.run(dcap_qvl.get_collateral(self.url, quote))
        except (ValueError, RuntimeError, OSError) as exc:
            raise EnvError(f"cannot fetch collateral from {self.url}: {exc}") from None
        return Collateral.from_json(fetched.to_json(), source=self.url)

    def pck_certificate(self, request: PckRequest) -> bytes:
        """GET ``/sgx/certification/v4/pckcert`` (Intel PCS API): the PCK certificate in the
        body, its issuer chain in ``SGX-PCK-Certificate-Issuer-Chain``; returns both (PEM)."""
        import urllib.error
        import urllib.parse
        import urllib.request

        if not request.encrypted:
            raise EnvError(
                "a PCCS is asked by encrypted PPID; this quote carries its PPID in plain text "
                "(type 1): give the PCK certificate chain with --pck-chain FILE"
            )
        url = self.url.rstrip("/") + "/sgx/certification/v4/pckcert?" + request.query()
        try:
            # https only (checked when made): no file: or custom scheme reaches urlopen.
            with urllib.request.urlopen(url, timeout=10.0) as response:  # noqa: S310
                body: bytes = response.read(_MAX_PCK_LEAF + 1)
                issuers = response.headers.get("SGX-PCK-Certificate-Issuer-Chain", "")
        except urllib.error.HTTPError as exc:
            raise EnvError(f"the PCCS answered {exc.code} for the PCK certificate ({url}): "
                           "give it with --pck-chain FILE") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise EnvError(f"cannot reach the PCCS at {self.url}: {exc}") from None
        if len(body) > _MAX_PCK_LEAF or len(issuers) > 4 * _MAX_PCK_LEAF:
            raise EnvError("the PCCS sent more than a PCK certificate chain")
        return body + urllib.parse.unquote(issuers).encode()


class MemoryPccs:
    """Collateral held in memory by FMSPC (uppercase hex) and PCK chains by
    :meth:`PckRequest.query`; records each request."""

    def __init__(
        self,
        by_fmspc: Mapping[str, Collateral] | None = None,
        pck_chains: Mapping[str, bytes] | None = None,
    ) -> None:
        self.by_fmspc = dict(by_fmspc or {})
        self.pck_chains = dict(pck_chains or {})  # by PckRequest.query()
        self.requests: list[str] = []

    def pck_certificate(self, request: PckRequest) -> bytes:
        query = request.query()
        self.requests.append(query)
        try:
            return self.pck_chains[query]
        except KeyError:
            raise EnvError(f"no PCK certificate held for {query}") from None

    def collateral(self, quote: bytes) -> Collateral:
        fmspc = _fmspc(quote)
        self.requests.append(fmspc)
        try:
            return self.by_fmspc[fmspc]
        except KeyError:
            raise EnvError(f"no collateral held for FMSPC {fmspc}") from None


def _fmspc(quote: bytes) -> str:
    """The platform's FMSPC, from the PCK certificate's Intel SGX extension."""
    try:
        return str(dcap_qvl.parse_quote(quote).fmspc()).upper()
    except ValueError as exc:
        _fail("certificate", f"the PCK certificate names no FMSPC: {exc}",
              expected="an Intel SGX extension with an FMSPC", actual=None)


def _instant(text: object, what: str) -> dt.datetime:
    try:
        assert isinstance(text, str)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AssertionError, ValueError):
        _fail("collateral", f"the collateral's {what} is not an ISO 8601 time",
              expected="ISO 8601", actual=text)


def _check_collateral_fit(quote: DcapQuote, collateral: Collateral, at: dt.datetime) -> None:
    fmspc = _fmspc(quote.raw)
    got = str(collateral.tcb_info.get("fmspc", "")).upper()
    if got != fmspc:
        _fail("collateral", f"the collateral's TCB info is for FMSPC {got or '(none)'}, the "
              f"quote's platform is {fmspc}: fetch the collateral for this platform",
              expected=fmspc, actual=got or None)
    want_id = "TDX" if quote.tee == "tdx" else "SGX"
    got_id = str(collateral.tcb_info.get("id", "SGX"))
    if got_id != want_id:
        _fail("collateral", f"the collateral's TCB info is for {got_id}, the quote is {want_id}",
              expected=want_id, actual=got_id)
    for doc, what in ((collateral.tcb_info, "TCB info"), (collateral.qe_identity, "QE identity")):
        issued = _instant(doc.get("issueDate"), f"{what} issueDate")
        until = _instant(doc.get("nextUpdate"), f"{what} nextUpdate")
        if not issued <= at <= until:
            _fail("collateral", f"the collateral's {what} is valid {issued.isoformat()} to "
                  f"{until.isoformat()}, not at {at.isoformat()}: "
                  + ("fetch current collateral" if at > until else "it was issued later"),
                  expected=f"{issued.isoformat()}..{until.isoformat()}", actual=at.isoformat())


def _tcb_status(
    quote: DcapQuote, collateral: Collateral, at: dt.datetime
) -> tuple[str, tuple[str, ...]]:
    """``dcap-qvl``'s verdict on the collateral and TCB level under the pinned root."""
    try:
        native = dcap_qvl.QuoteCollateralV3.from_json(collateral.json_text)
        result = dcap_qvl.verify_with_root_ca(quote.raw, native, _root_der(), int(at.timestamp()))
    except ValueError as exc:
        text = str(exc)
        lower = text.lower()
        if "no matching tcb level" in lower:
            _fail("tcb_status", "no TCB level of the collateral matches this platform's TCB: "
                  "its TCB is older than every level Intel lists (out of date) or the "
                  "collateral is another platform's", expected="UpToDate",
                  actual="no matching TCB level")
        if "revoked" in lower:
            _fail("revoked", f"a PCK certificate is revoked: {text}", expected="not revoked",
                  actual="revoked")
        _fail("collateral", f"the collateral does not verify for this quote: {text}",
              expected="valid collateral", actual=text)
    return str(result.status), tuple(str(a) for a in result.advisory_ids)


def _check_policy(quote: DcapQuote, policy: AttestationPolicy) -> None:
    if quote.debug and not policy.allow_debug:
        where = "TD attributes bit 0 (TUD.DEBUG)" if quote.tee == "tdx" else "attributes bit 1"
        _fail("debug", f"the {quote.tee.upper()} report has {where} set: a debug "
              f"{'TD' if quote.tee == 'tdx' else 'enclave'} can be read by the host; pass "
              "allow_debug=True (--allow-debug) only for tests", expected="debug clear",
              actual="debug set")
    want = policy.expected_measurement
    if want is not None and quote.measurement != want:
        name = "MRTD" if quote.tee == "tdx" else "MRENCLAVE"
        _fail("measurement", f"{name} differs from the expected measurement: this is not the "
              "committed image; check the commitment you compare against",
              expected=want.hex(), actual=quote.measurement.hex())
    data = policy.report_data_padded()
    if data is not None and quote.report_data != data:
        _fail("report_data", "the report data differs from the expected value (compared "
              "zero-padded to 64 bytes): the quote is not bound to your nonce or key",
              expected=data.hex(), actual=quote.report_data.hex())
    for name, value in (policy.expected_fields or {}).items():
        got = quote.field(name)
        if got is None:
            _fail(name, f"the quote has no {name}: its report body (TD report 1.0) predates it",
                  expected=value.hex(), actual=None)
        if got != value:
            _fail(name, f"the quote's {name} differs from the expected value",
                  expected=value.hex(), actual=got.hex())


def _refuse_foreign(policy: AttestationPolicy, tee: TeeName) -> None:
    foreign = [
        name
        for name, value in (
            ("expected_pcrs", policy.expected_pcrs),
            ("nonce", policy.nonce),
            ("max_age", policy.max_age),
            ("expected_public_key", policy.expected_public_key),
            ("expected_user_data", policy.expected_user_data),
        )
        if value is not None
    ]
    if foreign:
        raise UsageError(f"a {tee.upper()} quote has no {', '.join(foreign)}: bind a nonce or "
                         "key with expected_report_data and the image with expected_measurement")
    table = {**_TDX_FIELDS, **_TD15_FIELDS} if tee == "tdx" else _SGX_FIELDS
    unknown = sorted(set(policy.expected_fields or ()) - set(table))
    if unknown:
        raise UsageError(f"a {tee.upper()} quote has no field {unknown[0]!r}; expected_fields "
                         f"may name {', '.join(table)}")
    if policy.trust != "aws":
        raise UsageError(f"{tee.upper()} quotes verify only against the pinned Intel SGX Root "
                         "CA: leave the policy's trust at its default")


def check_quote(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    collateral: Collateral | None = None,
    pccs: PccsClient | None = None,
    pck_chain: bytes | None = None,
) -> TeeVerdict:
    """Check a TDX or SGX quote against ``policy`` at ``at``; a verdict, never a failed-check
    raise. With ``collateral`` (or a ``pccs`` to fetch it) the TCB status is evaluated and must
    be UpToDate or allowed by name; without, the verdict's ``tcb_status`` is ``"unknown"``.

    A quote that carries its platform's PPID (certification data types 1-3) instead of its
    PCK chain is checked with ``pck_chain`` (PEM: PCK certificate, PCK CA, Intel SGX Root CA)
    or the chain ``pccs`` fetches for its PPID, CPUSVN, PCESVN and PCE ID; one that carries
    the PCK leaf (type 4) with ``pck_chain`` (the leaf's issuers, or the whole chain) or the
    PCK CA chain its collateral carries. The chain is then checked to the pinned root like
    any other.
    """
    if not isinstance(policy, AttestationPolicy):
        raise UsageError("policy must be an AttestationPolicy")
    if not isinstance(at, dt.datetime) or at.utcoffset() is None:
        raise UsageError("'at' must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    if collateral is not None and pccs is not None:
        raise UsageError("give collateral or a PCCS client, not both")
    at = at.astimezone(dt.UTC)
    quote: DcapQuote | None = None
    status = "unknown"
    advisories: tuple[str, ...] = ()
    tee: TeeName = "tdx" if bytes(data)[4:8] == b"\x81\0\0\0" else "sgx"
    _refuse_foreign(policy, tee)
    warned = list(policy.warn())
    failed: AttestationError | None = None
    pck_note: str | None = None
    try:
        quote = parse_quote(data)
        if quote.pck_data_type != 5:
            chain_pem, pck_note = _resolve_pck_chain(quote, pck_chain, collateral, pccs)
            quote = parse_quote(with_pck_chain(quote, chain_pem))
        elif pck_chain is not None:
            raise UsageError("this quote carries its PCK certificate chain: give no --pck-chain")
        pck = _check_chain(quote, at)
        _check_signatures(quote, pck)
        if collateral is None and pccs is not None:
            collateral = pccs.collateral(quote.raw)
        if collateral is not None:
            _check_collateral_fit(quote, collateral, at)
            status, advisories = _tcb_status(quote, collateral, at)
            allowed = {"UpToDate", *policy.allowed_tcb_statuses}
            if status not in allowed:
                _fail("tcb_status", f"the TCB status is {status}"
                      + (f" (advisories {', '.join(advisories)})" if advisories else "")
                      + ": the platform lacks security fixes; allow the status by name "
                      "(allowed_tcb_statuses, --allow-tcb-status) only if you accept that",
                      expected=" or ".join(sorted(allowed)), actual=status)
        _check_policy(quote, policy)
    except AttestationError as exc:
        failed = exc
    if pck_note is not None:
        warned.append(pck_note)
    if collateral is None and failed is None:
        warned.append("no collateral: the TCB status is unknown (the chain and signatures "
                      "hold, but the platform's patch level and revocation were not checked)")
    return TeeVerdict(
        tee=tee if quote is None else quote.tee,
        verified=failed is None,
        failed_check=None if failed is None else failed.check,
        message="verified" + ("" if collateral is not None else " (TCB status unknown)")
        if failed is None
        else str(failed),
        expected=None if failed is None else text_of(failed.expected),
        actual=None if failed is None else text_of(failed.actual),
        at=at,
        rests_on="Intel SGX Root CA (pinned)",
        measurement=None if quote is None else quote.measurement,
        report_data=None if quote is None else quote.report_data,
        debug=None if quote is None else quote.debug,
        tcb_status=status,
        advisory_ids=advisories,
        measurement_checked=failed is None and policy.expected_measurement is not None,
        fields={} if quote is None else quote.fields(),
        chain=() if quote is None else _chain_fingerprints(quote),
        warnings=tuple(warned),
        certificates=() if quote is None else _chain_facts(quote),
    )


def _chain_facts(quote: DcapQuote) -> tuple[ChainCertificate, ...]:
    """The PCK chain as read, root first (empty when it did not read)."""
    try:
        return _chain_facts_of(quote.pck_chain_pem)
    except AttestationError:
        return ()


@functools.lru_cache(maxsize=32)
def _chain_facts_of(pem: bytes) -> tuple[ChainCertificate, ...]:
    # A pure function of the chain's bytes: its names are read once per chain.
    chain = _pck_chain(pem)
    roles = chain_roles(3)
    certs = (chain.root, chain.ca, chain.leaf)
    return tuple(
        ChainCertificate(role, c.cert.subject.rfc4514_string(), c.not_before, c.not_after,
                         fingerprint)
        for role, c, fingerprint in zip(roles, certs, chain.fingerprints, strict=True)
    )


def _pem_blocks(blob: bytes) -> list[bytes]:
    """The certificates of ``blob`` (PEM, or one DER certificate) as PEM blocks."""
    try:
        if blob.lstrip().startswith(b"-----BEGIN"):
            certs = x509.load_pem_x509_certificates(blob)
        else:
            certs = [x509.load_der_x509_certificate(blob)]
    except Exception as exc:  # cryptography raises several types: each is "certificate"
        _fail("certificate", f"a PCK certificate given or fetched is not readable: {exc}",
              expected="PEM certificates", actual="unreadable")
    return [c.public_bytes(Encoding.PEM) for c in certs]


def _resolve_pck_chain(
    quote: DcapQuote,
    given: bytes | None,
    collateral: Collateral | None,
    pccs: PccsClient | None,
) -> tuple[bytes, str]:
    """The PCK chain for a quote that does not carry it, and where it came from (in words)."""
    kind = {1: "PPID", 2: "encrypted PPID", 3: "encrypted PPID", 4: "PCK leaf"}[quote.pck_data_type]
    if quote.pck_data_type == 4:
        leaf = _pem_blocks(quote.pck_data)
        if len(leaf) != 1:
            _fail("certificate", "the quote's PCK leaf (type 4) is not one certificate",
                  expected=1, actual=len(leaf))
        if given is not None:
            blocks = _pem_blocks(given)
            issuers = blocks[1:] if blocks[:1] == leaf else blocks
            return b"".join(leaf + issuers), "the PCK leaf's issuers were given (--pck-chain)"
        if collateral is not None:
            issuers = _pem_blocks(collateral.pck_crl_issuer_chain.encode())
            return b"".join(leaf + issuers), "the PCK leaf's issuers are the collateral's PCK CA"
    elif given is not None:
        return b"".join(_pem_blocks(given)), "the PCK certificate chain was given (--pck-chain)"
    elif pccs is not None:
        request = quote.pck_request
        assert request is not None
        fetched = pccs.pck_certificate(request)
        return b"".join(_pem_blocks(fetched)), "the PCK certificate chain was fetched from a PCCS"
    _fail(
        "certificate",
        f"the quote carries its platform's {kind} (certification data type "
        f"{quote.pck_data_type}), not its PCK certificate chain: give the chain with "
        "--pck-chain FILE (PEM: PCK certificate, PCK CA, Intel SGX Root CA, from your PCCS or "
        "the platform's registration)"
        + (", or fetch it with --pccs URL" if quote.pck_data_type != 4 else
           ", or the collateral (--collateral) whose PCK CA issued the leaf"),
        expected="PCK certificate chain",
        actual=f"certification data type {quote.pck_data_type}",
    )


def _chain_fingerprints(quote: DcapQuote) -> tuple[str, ...]:
    """Root first, as far as the chain parsed (empty when it did not)."""
    try:
        return _pck_chain(quote.pck_chain_pem).fingerprints
    except AttestationError:
        return ()


def verify_quote(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    collateral: Collateral | None = None,
    pccs: PccsClient | None = None,
    pck_chain: bytes | None = None,
) -> TeeVerdict:
    """:func:`check_quote`, raising :class:`AttestationError` when a check failed."""
    verdict = check_quote(data, policy, at=at, collateral=collateral, pccs=pccs,
                          pck_chain=pck_chain)
    if not verdict.verified:
        raise verdict.error()
    return verdict
