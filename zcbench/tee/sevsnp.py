"""AMD SEV-SNP attestation reports: parse strictly, verify against the pinned AMD roots.

Owns the report's byte format (SEV-SNP ABI, ``ATTESTATION_REPORT``: 0x4A0 bytes, versions 2 to
5: version 3 adds the CPUID family, model and stepping at 0x188; version 4 has version 3's
layout; version 5 adds ``LAUNCH_MIT_VECTOR`` at 0x1F8 and ``CURRENT_MIT_VECTOR`` at 0x200, the
rest up to the signature staying reserved), the AMD certificate chain (ARK → ASK → VCEK, or
ARK → ASVK → VLEK as AWS EC2 signs reports), and the SEV-SNP half of the one
:class:`~zcbench.tee.policy.AttestationPolicy`. It does not fetch anything by itself: a VCEK
comes from the caller's files or from a :class:`~zcbench.tee.amd_kds.KdsClient` passed in (the
real one speaks HTTP to AMD's KDS, the in-memory one serves tests).

The AMD roots are packaged in ``zcbench/tee/roots/`` (ASK, ARK and ASVK per product, as AMD's
KDS serves them) and pinned here by the SHA-256 of their DER, checked on every load. A report
is checked in this order, each failure under its stable ``check`` name:

========================  ==================================================================
``decode``                not 0x4A0 bytes (truncated or with trailing bytes)
``version``               a report version other than 2, 3, 4 or 5 (a later one's layout
                          is not known here: refused, never read as an older one)
``reserved``              a reserved field is not zero (or policy bit 17, reserved one, is 0)
``schema``                a field out of its range: VMPL above 3, an unknown signing key
``algorithm``             the report's signature algorithm is not ECDSA P-384 with SHA-384,
                          a certificate not RSASSA-PSS SHA-384, a leaf key not P-384
``certificate``           no VCEK/VLEK given (and none fetched), or one that is not X.509
``product``               the leaf names no known product (Milan, Genoa, Turin), or the
                          report's CPUID names another one
``root``                  a given ARK is not the pinned ARK of the leaf's product
``chain``                 the ASK/ASVK is not signed by the ARK, or the leaf by the ASK/ASVK
                          (names and RSASSA-PSS SHA-384 signature)
``signing_key``           the report says VCEK and the leaf is a VLEK, or the reverse
``validity``              a certificate is expired or not yet valid at the verification time
``tcb``                   the leaf's TCB extensions differ from the report's ``reported_tcb``
``chip_id``               the VCEK's hwID differs from the report's ``chip_id`` (a report
                          that masks its chip ID, all zero, is tied to its chip by the
                          VCEK's signature alone, and the verdict warns so)
``signature``             the report's ECDSA P-384 signature (little-endian r, s) fails
``debug``                 guest policy bit 19 (debug) set and ``allow_debug`` not asked for
``measurement``           ``MEASUREMENT`` differs from the expected one
``report_data``           ``REPORT_DATA`` differs from the expected (zero-padded) value
``<field>``               a field in ``expected_fields`` (``host_data``, ``id_key_digest``,
                          ``author_key_digest``, ``family_id``, ``image_id``) differs
========================  ==================================================================

The guest policy's SMT and migration-agent bits are reported (the verdict's ``fields`` and
``warnings``), not refused: whether they are acceptable is the reader's call.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.resources
import struct
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from zcbench.errors import EnvError, UsageError
from zcbench.tee._der import outer_fields_agree
from zcbench.tee.amd_kds import KdsClient
from zcbench.tee.errors import AttestationError
from zcbench.tee.policy import AttestationPolicy
from zcbench.tee.verdict import ChainCertificate, TeeVerdict, chain_roles, text_of

__all__ = [
    "AMD_ROOT_SHA256",
    "PRODUCTS",
    "REPORT_SIZE",
    "VERSIONS",
    "Product",
    "SnpReport",
    "TcbVersion",
    "check_snp",
    "looks_like_snp",
    "parse_report",
    "verify_snp",
]

REPORT_SIZE: Final = 0x4A0
VERSIONS: Final = (2, 3, 4, 5)
"""The report versions whose layout is known (SEV-SNP ABI; 4 is laid out as 3)."""
_SIGNED_SIZE: Final = 0x2A0
_SIG_COMPONENT: Final = 72

Product = Literal["Milan", "Genoa", "Turin"]
PRODUCTS: tuple[Product, ...] = ("Milan", "Genoa", "Turin")

AMD_ROOT_SHA256: Final[Mapping[Product, Mapping[str, str]]] = {
    # SHA-256 of the DER of each packaged certificate, as AMD's KDS serves them
    # (kdsintf.amd.com/vcek/v1/<product>/cert_chain and .../vlek/v1/<product>/cert_chain).
    "Milan": {
        "ark": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        "ask": "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
        "asvk": "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    },
    "Genoa": {
        "ark": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        "ask": "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
        "asvk": "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    },
    "Turin": {
        "ark": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        "ask": "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
        "asvk": "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
    },
}
"""The pinned AMD certificates per product: ARK (root), ASK (VCEK signer), ASVK (VLEK signer)."""

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
_AMD_OID = "1.3.6.1.4.1.3704.1."
_OID_PRODUCT = _AMD_OID + "2"
_OID_HWID = _AMD_OID + "4"
_OID_SPL = {
    "boot_loader": _AMD_OID + "3.1",
    "tee": _AMD_OID + "3.2",
    "snp": _AMD_OID + "3.3",
    "microcode": _AMD_OID + "3.8",
    "fmc": _AMD_OID + "3.9",
}
_FIELDS = ("host_data", "id_key_digest", "author_key_digest", "family_id", "image_id")

# Guest policy bits (SEV-SNP ABI, GUEST_POLICY).
_POLICY_SMT = 1 << 16
_POLICY_RESERVED_ONE = 1 << 17
_POLICY_MIGRATE_MA = 1 << 18
_POLICY_DEBUG = 1 << 19
_POLICY_SINGLE_SOCKET = 1 << 20
_POLICY_RESERVED_MASK = ~((1 << 26) - 1) & ((1 << 64) - 1)


def _fail(check: str, message: str, *, expected: object = None, actual: object = None) -> NoReturn:
    raise AttestationError(message, check=check, expected=expected, actual=actual)


@dataclass(frozen=True)
class TcbVersion:
    """A packed TCB_VERSION: the security patch levels of each firmware part.

    Milan and Genoa pack ``boot_loader, tee, 4 reserved, snp, microcode``; Turin packs
    ``fmc, boot_loader, tee, snp, 3 reserved, microcode`` (``fmc`` is ``None`` before Turin).
    """

    raw: int
    boot_loader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None
    reserved: bytes

    @classmethod
    def unpack(cls, raw: int, product: Product) -> TcbVersion:
        b = raw.to_bytes(8, "little")
        if product == "Turin":
            return cls(raw, b[1], b[2], b[3], b[7], fmc=b[0], reserved=b[4:7])
        return cls(raw, b[0], b[1], b[6], b[7], fmc=None, reserved=b[2:6])

    def spl(self) -> dict[str, int]:
        """The patch levels by the names the VCEK's extensions use."""
        out = {
            "boot_loader": self.boot_loader,
            "tee": self.tee,
            "snp": self.snp,
            "microcode": self.microcode,
        }
        if self.fmc is not None:
            out["fmc"] = self.fmc
        return out


@dataclass(frozen=True)
class SnpReport:
    """One parsed ATTESTATION_REPORT (offsets in the SEV-SNP ABI); ``raw`` is its 0x4A0 bytes."""

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid: tuple[int, int, int] | None
    chip_id: bytes
    committed_tcb: int
    launch_tcb: int
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        """Bytes 0x000-0x29F: what the report signature covers."""
        return self.raw[:_SIGNED_SIZE]

    @property
    def debug(self) -> bool:
        return bool(self.policy & _POLICY_DEBUG)

    @property
    def smt_allowed(self) -> bool:
        return bool(self.policy & _POLICY_SMT)

    @property
    def migration_agent(self) -> bool:
        return bool(self.policy & _POLICY_MIGRATE_MA)

    @property
    def signed_by(self) -> Literal["vcek", "vlek"]:
        return "vlek" if self.signing_key == 1 else "vcek"


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 4], "little")


def _u64(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 8], "little")


def looks_like_snp(data: bytes) -> bool:
    """True when ``data`` has the size and leading version of an SEV-SNP report (dispatch)."""
    return len(data) == REPORT_SIZE and _u32(data, 0) in VERSIONS


def _zero(b: bytes, start: int, end: int, what: str) -> None:
    if any(b[start:end]):
        _fail(
            "reserved",
            f"the report's reserved bytes 0x{start:03X}-0x{end - 1:03X} ({what}) are not zero: "
            "this is not a report this verifier knows; refusing it",
            expected="zero",
            actual=b[start:end].hex(),
        )


def parse_report(data: bytes) -> SnpReport:
    """Parse an SEV-SNP report strictly: exact size, version 2 to 5, reserved fields zero as
    its version's layout says.

    Raises :class:`AttestationError` (``decode``, ``version``, ``reserved``, ``schema``,
    ``algorithm``). Checks nothing cryptographic (:func:`check_snp` does).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise UsageError("an SEV-SNP report is bytes")
    b = bytes(data)
    if len(b) != REPORT_SIZE:
        _fail(
            "decode",
            f"an SEV-SNP report is exactly {REPORT_SIZE} bytes; this one is {len(b)} "
            "(truncated, or trailing bytes after it): give the raw report",
            expected=REPORT_SIZE,
            actual=len(b),
        )
    version = _u32(b, 0x00)
    if version not in VERSIONS:
        _fail(
            "version",
            f"SEV-SNP report version {version} is not one whose layout this verifier knows "
            f"(versions {', '.join(map(str, VERSIONS))}): "
            + (
                "a newer firmware's report; upgrade zcbench"
                if version > VERSIONS[-1]
                else "not an SEV-SNP guest attestation report"
            ),
            expected=", ".join(map(str, VERSIONS)),
            actual=version,
        )
    policy = _u64(b, 0x08)
    if policy & _POLICY_RESERVED_MASK or not policy & _POLICY_RESERVED_ONE:
        _fail(
            "reserved",
            "the guest policy has reserved bits set (63:26) or bit 17 (reserved, one) clear",
            expected="bits 63:26 zero, bit 17 one",
            actual=f"0x{policy:016x}",
        )
    vmpl = _u32(b, 0x30)
    if vmpl > 3:
        _fail("schema", f"VMPL {vmpl} is not 0..3", expected="0..3", actual=vmpl)
    algo = _u32(b, 0x34)
    if algo != 1:
        _fail(
            "algorithm",
            f"signature algorithm {algo} is not ECDSA P-384 with SHA-384 (1)",
            expected=1,
            actual=algo,
        )
    flags = _u32(b, 0x48)
    if flags >> 5:
        _fail("reserved", "reserved bits 31:5 at 0x048 are set", expected=0, actual=hex(flags))
    signing_key = (flags >> 2) & 7
    if signing_key not in (0, 1):
        _fail(
            "schema",
            f"signing key {signing_key} is neither the VCEK (0) nor the VLEK (1): the report "
            "is unsigned or signed by a key this verifier cannot check",
            expected="0 or 1",
            actual=signing_key,
        )
    _zero(b, 0x4C, 0x50, "after the key flags")
    if version == 2:
        _zero(b, 0x188, 0x1A0, "after reported_tcb")
        cpuid = None
    else:
        _zero(b, 0x18B, 0x1A0, "after the CPUID")
        cpuid = (b[0x188], b[0x189], b[0x18A])
    _zero(b, 0x1EB, 0x1EC, "after the current version")
    _zero(b, 0x1EF, 0x1F0, "after the committed version")
    if version >= 5:
        mitigations: tuple[int | None, int | None] = (_u64(b, 0x1F8), _u64(b, 0x200))
        _zero(b, 0x208, _SIGNED_SIZE, "after the mitigation vectors")
    else:
        mitigations = (None, None)
        _zero(b, 0x1F8, _SIGNED_SIZE, "before the signature")
    _zero(b, _SIGNED_SIZE + 2 * _SIG_COMPONENT, REPORT_SIZE, "after the signature's r and s")
    return SnpReport(
        raw=b,
        version=version,
        guest_svn=_u32(b, 0x04),
        policy=policy,
        family_id=b[0x10:0x20],
        image_id=b[0x20:0x30],
        vmpl=vmpl,
        signature_algo=algo,
        current_tcb=_u64(b, 0x38),
        platform_info=_u64(b, 0x40),
        author_key_en=bool(flags & 1),
        mask_chip_key=bool(flags & 2),
        signing_key=signing_key,
        report_data=b[0x50:0x90],
        measurement=b[0x90:0xC0],
        host_data=b[0xC0:0xE0],
        id_key_digest=b[0xE0:0x110],
        author_key_digest=b[0x110:0x140],
        report_id=b[0x140:0x160],
        report_id_ma=b[0x160:0x180],
        reported_tcb=_u64(b, 0x180),
        cpuid=cpuid,
        chip_id=b[0x1A0:0x1E0],
        committed_tcb=_u64(b, 0x1E0),
        launch_tcb=_u64(b, 0x1F0),
        launch_mit_vector=mitigations[0],
        current_mit_vector=mitigations[1],
        signature_r=int.from_bytes(b[_SIGNED_SIZE : _SIGNED_SIZE + _SIG_COMPONENT], "little"),
        signature_s=int.from_bytes(
            b[_SIGNED_SIZE + _SIG_COMPONENT : _SIGNED_SIZE + 2 * _SIG_COMPONENT], "little"
        ),
    )


# --- certificates -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _load_der(der: bytes) -> x509.Certificate:
    # AMD's Turin VCEKs carry a serial number that is not positive; cryptography loads them
    # with a deprecation warning. AMD issues them so, and the signature covers the serial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cert = x509.load_der_x509_certificate(der)
        _ = (cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc)
        _ = (cert.public_key(), cert.tbs_certificate_bytes, cert.signature_algorithm_oid)
        _ = (cert.issuer, cert.subject, cert.signature_hash_algorithm)
    return cert


# The GHCB certificate table (AMD GHCB specification, SNP extended guest request): the form in
# which a host hands a guest its VCEK/VLEK, ASK and ARK (Linux's SNP_GET_EXT_REPORT, Google
# Cloud's ``aux_blob``). Entries of GUID, offset and length, ended by an all-zero entry.
_TABLE_GUIDS: Final = {
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"): "vcek",
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"): "vlek",
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"): "ask",
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"): "ark",
}
_TABLE_ENTRY: Final = 24
_TABLE_MAX_ENTRIES: Final = 16


def _table_guid(raw: bytes) -> str | None:
    """The role of a table GUID, read in RFC 4122 byte order or in the mixed-endian order of
    Linux's guid_t (both are found in the field)."""
    for guid in (uuid.UUID(bytes=raw), uuid.UUID(bytes_le=raw)):
        if guid in _TABLE_GUIDS:
            return _TABLE_GUIDS[guid]
    return None


def _certificate_table(blob: bytes) -> list[bytes] | None:
    """The DER certificates of a GHCB certificate table, or None when ``blob`` is not one.

    Strict: an all-zero entry ends the table within its first entries, every entry's data
    lies after the table and inside ``blob``; entries of GUIDs other than the four AMD
    certificates' are other data and skipped."""
    if len(blob) < 2 * _TABLE_ENTRY or _table_guid(blob[:16]) is None:
        return None
    entries = [blob[i : i + _TABLE_ENTRY] for i in range(0, len(blob), _TABLE_ENTRY)]
    entries = [e for e in entries[:_TABLE_MAX_ENTRIES] if len(e) == _TABLE_ENTRY]
    count = next((i for i, e in enumerate(entries) if not any(e)), None)
    if count is None:
        _fail("certificate", "a certificate table with no all-zero entry ending it in its first "
              f"{_TABLE_MAX_ENTRIES} entries", expected="an ending entry", actual="none")
    data_start = (count + 1) * _TABLE_ENTRY
    found: list[bytes] = []
    for i, entry in enumerate(entries[:count]):
        offset, length = struct.unpack("<II", entry[16:24])
        if length == 0 or offset < data_start or offset + length > len(blob):
            _fail("certificate", f"certificate table entry {i} points outside the table's data "
                  f"(offset {offset}, length {length}; data is {data_start}..{len(blob)})",
                  expected=f"within {data_start}..{len(blob)}", actual=f"{offset}+{length}")
        if _table_guid(entry[:16]) is not None:
            found.append(blob[offset : offset + length])
    return found


def _certificates(blob: bytes) -> list[x509.Certificate]:
    """The certificates in one file: DER, one or more PEM blocks, or a GHCB certificate table
    (the host's VCEK/VLEK, ASK and ARK)."""
    table = _certificate_table(blob)
    if table is not None:
        return [c for der in table for c in _certificates(der)]
    try:
        if blob.lstrip().startswith(b"-----BEGIN"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pems = x509.load_pem_x509_certificates(blob)
            return [_load_der(c.public_bytes(Encoding.DER)) for c in pems]
        return [_load_der(blob)]
    # cryptography raises several types for malformed certificates (ValueError,
    # UnsupportedAlgorithm, InvalidVersion, DuplicateExtension, ...): each is "certificate".
    except Exception as exc:
        _fail(
            "certificate",
            f"a given certificate is not valid X.509 (DER or PEM): {exc}",
            expected="X.509 certificate",
            actual="unreadable",
        )


# Parsed certificates are cached by their bytes (_load_der), so these pure functions of a
# certificate are cached too: every check still runs on every call, only re-encoding is saved.
@functools.lru_cache(maxsize=128)
def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@functools.lru_cache(maxsize=128)
def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(_der(cert)).hexdigest()


@functools.lru_cache(maxsize=128)
def _names_chain(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    return cert.issuer == issuer.subject


@functools.lru_cache(maxsize=128)
def _extensions(cert: x509.Certificate) -> Mapping[str, bytes]:
    return {
        ext.oid.dotted_string: ext.value.value
        for ext in cert.extensions
        if isinstance(ext.value, x509.UnrecognizedExtension)
    }


@functools.lru_cache(maxsize=128)
def _key(cert: x509.Certificate) -> object:
    return cert.public_key()


@functools.lru_cache(maxsize=128)
def _signed_parts(cert: x509.Certificate) -> tuple[bytes, bytes]:
    # cryptography re-encodes the TBS on every access: take it once per parsed certificate.
    return cert.signature, cert.tbs_certificate_bytes


@functools.lru_cache(maxsize=128)
def _validity(cert: x509.Certificate) -> tuple[dt.datetime, dt.datetime]:
    return cert.not_valid_before_utc, cert.not_valid_after_utc


@functools.lru_cache(maxsize=128)
def _pss_sha384(cert: x509.Certificate) -> bool:
    return (
        cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
        and isinstance(cert.signature_hash_algorithm, hashes.SHA384)
        and outer_fields_agree(_der(cert))
    )


@functools.lru_cache(maxsize=128)
def _cn(cert: x509.Certificate) -> str:
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    value = names[0].value if names else ""
    return value if isinstance(value, str) else ""


@functools.lru_cache(maxsize=len(PRODUCTS))
def _pinned(product: Product) -> Mapping[str, x509.Certificate]:
    """The packaged ASK, ARK and ASVK of ``product``, each checked against its pin."""
    name = f"amd_{product.lower()}_ask_ark_asvk.pem"
    blob = importlib.resources.files("zcbench.tee").joinpath("roots", name).read_bytes()
    certs = x509.load_pem_x509_certificates(blob)
    out = dict(zip(("ask", "ark", "asvk"), certs, strict=True))
    for role, cert in out.items():
        got = _sha256(cert)
        if got != AMD_ROOT_SHA256[product][role]:
            raise EnvError(
                f"the packaged AMD {product} {role.upper()} ({name}) has SHA-256 {got}, not the "
                f"pinned {AMD_ROOT_SHA256[product][role]}; the installation is damaged, "
                "reinstall zcbench"
            )
    return out


def _der_value(raw: bytes, tag: int) -> bytes:
    """The content of one short-form DER element of ``tag`` that fills ``raw``."""
    if len(raw) < 2 or raw[0] != tag or raw[1] & 0x80 or 2 + raw[1] != len(raw):
        raise ValueError("not a short DER element")
    return raw[2:]


def _extension(cert: x509.Certificate, oid: str) -> bytes | None:
    return _extensions(cert).get(oid)


def _product_of(leaf: x509.Certificate) -> Product:
    raw = _extension(leaf, _OID_PRODUCT)
    name = ""
    if raw is not None:
        try:
            name = _der_value(raw, 0x16).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            name = ""
    family = name.split("-", 1)[0]
    for product in PRODUCTS:
        if family == product:
            return product
    _fail(
        "product",
        f"the {_cn(leaf) or 'leaf'} certificate names product {name or '(none)'!r}, not one "
        f"of {', '.join(PRODUCTS)} whose AMD root is pinned",
        expected="/".join(PRODUCTS),
        actual=name or None,
    )


def _product_of_cpuid(cpuid: tuple[int, int, int]) -> Product | None:
    family, model, _stepping = cpuid
    if family == 0x19 and model <= 0x0F:
        return "Milan"
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return "Genoa"
    if family == 0x1A and model <= 0x11:
        return "Turin"
    return None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate, label: str, by: str) -> None:
    """``cert`` names ``issuer`` and carries its RSASSA-PSS SHA-384 signature."""
    if not _pss_sha384(cert):
        _fail(
            "algorithm",
            f"the {label} is not signed with RSASSA-PSS SHA-384, as AMD signs its certificates "
            "(or names another algorithm outside its signed part than inside)",
            expected="RSASSA-PSS SHA-384",
            actual=cert.signature_algorithm_oid.dotted_string,
        )
    if not _names_chain(cert, issuer):
        _fail(
            "chain",
            f"the {label} is issued by {cert.issuer.rfc4514_string()}, not by the {by} "
            f"({issuer.subject.rfc4514_string()}): give the certificates of the report's product",
            expected=issuer.subject.rfc4514_string(),
            actual=cert.issuer.rfc4514_string(),
        )
    key = _key(issuer)
    if not isinstance(key, rsa.RSAPublicKey):
        _fail("algorithm", f"the {by} has no RSA key", expected="RSA", actual=type(key).__name__)
    try:
        signature, tbs = _signed_parts(cert)
        key.verify(signature, tbs, _PSS, hashes.SHA384())
    except InvalidSignature:
        _fail(
            "chain",
            f"the {label} is not signed by the {by} (the RSASSA-PSS signature does not verify)",
            expected=f"signature by {_cn(issuer)}",
            actual="invalid signature",
        )


def _valid_at(cert: x509.Certificate, label: str, at: dt.datetime) -> None:
    start, end = _validity(cert)
    if not start <= at <= end:
        _fail(
            "validity",
            f"the {label} is valid {start.isoformat()} to {end.isoformat()}, not at "
            f"{at.isoformat()}: "
            + ("it has expired; fetch a current one" if at > end else "it is not yet valid")
            + " (or verify an archived report at a time inside that window with --at)",
            expected=f"{start.isoformat()}..{end.isoformat()}",
            actual=at.isoformat(),
        )


@dataclass(frozen=True)
class _Chain:
    product: Product
    ark: x509.Certificate
    signer: x509.Certificate
    leaf: x509.Certificate


def _classify(
    certs: Iterable[x509.Certificate],
) -> tuple[list[x509.Certificate], list[x509.Certificate], list[x509.Certificate]]:
    """Given certificates as (leaves, intermediates, roots), by their AMD common names."""
    leaves, middles, roots = [], [], []
    for cert in certs:
        cn = _cn(cert)
        if cn in ("SEV-VCEK", "SEV-VLEK"):
            leaves.append(cert)
        elif cn.startswith("ARK-"):
            roots.append(cert)
        else:
            middles.append(cert)
    return leaves, middles, roots


def _build_chain(
    report: SnpReport, given: Sequence[bytes], kds: KdsClient | None, at: dt.datetime
) -> _Chain:
    certs = [c for blob in given for c in _certificates(blob)]
    leaves, middles, roots = _classify(certs)
    want = "SEV-VLEK" if report.signed_by == "vlek" else "SEV-VCEK"
    matching = [c for c in leaves if _cn(c) == want]
    if not matching and leaves:
        _fail(
            "signing_key",
            f"the report is signed by its {report.signed_by.upper()} but the certificate given is "
            f"a {_cn(leaves[0])}: give the report's {report.signed_by.upper()}",
            expected=want,
            actual=_cn(leaves[0]),
        )
    if len(matching) > 1:
        _fail(
            "certificate",
            f"{len(matching)} {want} certificates given; give exactly the report's one",
            expected=1,
            actual=len(matching),
        )
    if matching:
        leaf = matching[0]
    elif report.signed_by == "vcek" and kds is not None:
        leaf = _fetch_vcek(report, kds)
    else:
        _fail(
            "certificate",
            f"no {want} certificate: give it with --cert FILE"
            + (" (or fetch it from AMD's KDS)" if report.signed_by == "vcek" else "")
            + (
                "; a VLEK comes from the cloud provider that signed the report"
                if report.signed_by == "vlek"
                else ""
            ),
            expected=want,
            actual=None,
        )
    product = _product_of(leaf)
    if report.cpuid is not None and any(report.cpuid):
        by_cpuid = _product_of_cpuid(report.cpuid)
        if by_cpuid is not None and by_cpuid != product:
            _fail(
                "product",
                f"the report's CPUID (family 0x{report.cpuid[0]:02x}, model "
                f"0x{report.cpuid[1]:02x}) is a {by_cpuid}, its certificate a {product}",
                expected=by_cpuid,
                actual=product,
            )
    pinned = _pinned(product)
    ark = pinned["ark"]
    for root in roots:
        if _der(root) != _der(ark):
            _fail(
                "root",
                f"the given {_cn(root) or 'root'} (SHA-256 {_sha256(root)}) is not the pinned "
                f"AMD {product} ARK: the chain must end in AMD's root for the leaf's product",
                expected=AMD_ROOT_SHA256[product]["ark"],
                actual=_sha256(root),
            )
    role = "asvk" if report.signed_by == "vlek" else "ask"
    signer_name = "ASVK" if role == "asvk" else "ASK"
    # The product's pinned ASK and ASVK come together in AMD's bundles: the one that is not
    # the leaf's issuer is left out; any other stranger to the chain is refused.
    pinned_der = {_der(c) for c in pinned.values()}
    middles = [c for c in middles if _names_chain(leaf, c) or _der(c) not in pinned_der]
    for cert in middles:
        if not _names_chain(leaf, cert):
            _fail(
                "chain",
                f"the given {_cn(cert) or 'certificate'} is not the {want}'s issuer "
                f"({leaf.issuer.rfc4514_string()}): give only the report's own chain",
                expected=leaf.issuer.rfc4514_string(),
                actual=cert.subject.rfc4514_string(),
            )
    if len(middles) > 1:
        _fail("certificate", "more than one issuer certificate for the leaf given")
    signer = middles[0] if middles else pinned[role]
    _signed_by(signer, ark, f"AMD {product} {signer_name}", f"AMD {product} ARK")
    _signed_by(leaf, signer, want, f"AMD {product} {signer_name}")
    for cert, label in ((ark, f"AMD {product} ARK"), (signer, signer_name), (leaf, want)):
        _valid_at(cert, label, at)
    return _Chain(product=product, ark=ark, signer=signer, leaf=leaf)


def _fetch_vcek(report: SnpReport, kds: KdsClient) -> x509.Certificate:
    product = _product_of_cpuid(report.cpuid) if report.cpuid is not None else None
    if product is None:
        _fail(
            "certificate",
            "no VCEK given and the report (version 2) does not say its product: give the VCEK "
            "with --cert FILE",
            expected="SEV-VCEK",
            actual=None,
        )
    if not any(report.chip_id):
        _fail(
            "certificate",
            "no VCEK given and the report masks its chip ID (all zero), which AMD's KDS needs "
            "to find it: give the VCEK with --cert FILE (the host's certificate table has it)",
            expected="SEV-VCEK",
            actual=None,
        )
    tcb = TcbVersion.unpack(report.reported_tcb, product)
    hwid = report.chip_id[:8] if product == "Turin" else report.chip_id
    der = kds.vcek(product, hwid, tcb.spl())
    return _certificates(der)[0]


def _check_leaf(report: SnpReport, chain: _Chain) -> None:
    leaf, product = chain.leaf, chain.product
    key = _key(leaf)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        _fail(
            "algorithm",
            "the leaf's key is not ECDSA P-384",
            expected="secp384r1",
            actual=getattr(getattr(key, "curve", None), "name", type(key).__name__),
        )
    tcb = TcbVersion.unpack(report.reported_tcb, product)
    if any(tcb.reserved):
        _fail(
            "tcb",
            f"the report's reported_tcb 0x{report.reported_tcb:016x} sets bytes a {product} "
            "TCB_VERSION reserves: no VCEK is issued for it",
            expected="reserved bytes zero",
            actual=tcb.reserved.hex(),
        )
    for name, got in tcb.spl().items():
        raw = _extension(leaf, _OID_SPL[name])
        try:
            cert_value = None if raw is None else int.from_bytes(_der_value(raw, 0x02), "big")
        except ValueError:
            cert_value = None
        if cert_value != got:
            _fail(
                "tcb",
                f"the {_cn(leaf)} is for {name} SPL {cert_value}, the report's reported_tcb says "
                f"{got}: this certificate is for another TCB; fetch the one for "
                f"reported_tcb 0x{report.reported_tcb:016x}",
                expected=got,
                actual=cert_value,
            )
    if report.signed_by == "vcek" and any(report.chip_id):
        hwid = _extension(leaf, _OID_HWID)
        chip = report.chip_id[:8] if product == "Turin" else report.chip_id
        if hwid != chip:
            _fail(
                "chip_id",
                "the VCEK's hwID is not the report's chip_id: this VCEK is another chip's",
                expected=chip.hex(),
                actual=None if hwid is None else hwid.hex(),
            )


def _check_signature(report: SnpReport, leaf: x509.Certificate) -> None:
    key = _key(leaf)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        signature = encode_dss_signature(report.signature_r, report.signature_s)
        key.verify(signature, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, ValueError):
        _fail(
            "signature",
            "the report's ECDSA P-384 signature does not verify with the leaf's key: the "
            "report was altered or not signed by this certificate",
            expected="valid signature over bytes 0x000-0x29F",
            actual="invalid",
        )


def _check_policy(report: SnpReport, policy: AttestationPolicy) -> None:
    if report.debug and not policy.allow_debug:
        _fail(
            "debug",
            "the guest policy allows debugging (bit 19): the hypervisor can read and change the "
            "guest's memory; pass allow_debug=True (--allow-debug) only for tests",
            expected="debug bit clear",
            actual=f"policy 0x{report.policy:016x}",
        )
    want_measurement = policy.expected_measurement
    if want_measurement is not None and report.measurement != want_measurement:
        _fail(
            "measurement",
            "the launch measurement differs from the expected one: this is not the committed "
            "guest image; check the commitment you compare against",
            expected=want_measurement.hex(),
            actual=report.measurement.hex(),
        )
    want = policy.report_data_padded()
    if want is not None and report.report_data != want:
        _fail(
            "report_data",
            "the report_data differs from the expected value (compared zero-padded to 64 "
            "bytes): the report is not bound to your nonce or key; ask for a fresh report",
            expected=want.hex(),
            actual=report.report_data.hex(),
        )
    for name, value in (policy.expected_fields or {}).items():
        got = getattr(report, name)
        if got != value:
            _fail(
                name,
                f"the report's {name} differs from the expected value",
                expected=value.hex(),
                actual=got.hex(),
            )


def _refuse_foreign(policy: AttestationPolicy) -> None:
    """Misuse: a policy field SEV-SNP cannot check is refused, never silently dropped."""
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
    if policy.allowed_tcb_statuses:
        foreign.append("allowed_tcb_statuses")
    if foreign:
        raise UsageError(
            f"an SEV-SNP report has no {', '.join(foreign)}: bind a nonce or key with "
            "expected_report_data and the image with expected_measurement"
        )
    unknown = sorted(set(policy.expected_fields or ()) - set(_FIELDS))
    if unknown:
        raise UsageError(
            f"an SEV-SNP report has no field {unknown[0]!r}; expected_fields may name "
            + ", ".join(_FIELDS)
        )
    if policy.trust != "aws":
        raise UsageError(
            "SEV-SNP reports verify only against the pinned AMD roots: leave the policy's "
            "trust at its default"
        )


def _fields(report: SnpReport, product: Product | None) -> dict[str, str]:
    out = {
        "version": str(report.version),
        "policy": f"0x{report.policy:016x}",
        "smt_allowed": str(report.smt_allowed).lower(),
        "migration_agent": str(report.migration_agent).lower(),
        "single_socket": str(bool(report.policy & _POLICY_SINGLE_SOCKET)).lower(),
        "vmpl": str(report.vmpl),
        "guest_svn": str(report.guest_svn),
        "signing_key": report.signed_by,
        "reported_tcb": f"0x{report.reported_tcb:016x}",
        "chip_id": report.chip_id.hex(),
        "host_data": report.host_data.hex(),
        "id_key_digest": report.id_key_digest.hex(),
        "author_key_digest": report.author_key_digest.hex(),
        "family_id": report.family_id.hex(),
        "image_id": report.image_id.hex(),
        "report_id": report.report_id.hex(),
    }
    if product is not None:
        out["product"] = product
    if report.launch_mit_vector is not None and report.current_mit_vector is not None:
        out["launch_mit_vector"] = f"0x{report.launch_mit_vector:016x}"
        out["current_mit_vector"] = f"0x{report.current_mit_vector:016x}"
    return out


def _facts(report: SnpReport | None) -> list[str]:
    notes = []
    if report is not None and report.smt_allowed:
        notes.append("the guest policy allows SMT (hyperthreading) on the host")
    if report is not None and report.migration_agent:
        notes.append("the guest policy allows a migration agent")
    if report is not None and report.signed_by == "vcek" and not any(report.chip_id):
        notes.append(
            "the report masks its chip ID (all zero): the VCEK's signature ties it to a chip, "
            "but the report does not say which"
        )
    return notes


def check_snp(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    certificates: Sequence[bytes] = (),
    kds: KdsClient | None = None,
) -> TeeVerdict:
    """Check an SEV-SNP report against ``policy`` at ``at``; a verdict, never a failed-check raise.

    ``certificates`` are file contents (DER or PEM): the VCEK or VLEK, and optionally the ASK
    or ASVK and ARK (any given ARK must be the pinned one). Without a VCEK, ``kds`` fetches it.
    Raises only for misuse (:class:`~zcbench.errors.UsageError`) or a damaged installation.
    """
    if not isinstance(policy, AttestationPolicy):
        raise UsageError("policy must be an AttestationPolicy")
    if not isinstance(at, dt.datetime) or at.utcoffset() is None:
        raise UsageError("'at' must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    at = at.astimezone(dt.UTC)
    _refuse_foreign(policy)
    warned = policy.warn()
    report: SnpReport | None = None
    chain: _Chain | None = None
    try:
        report = parse_report(data)
        chain = _build_chain(report, certificates, kds, at)
        _check_leaf(report, chain)
        _check_signature(report, chain.leaf)
        _check_policy(report, policy)
    except AttestationError as exc:
        failed: AttestationError | None = exc
    else:
        failed = None
    product = None if chain is None else chain.product
    rests_on = (
        "AMD SEV-SNP root (pinned)" if product is None else f"AMD {product} ARK (pinned)"
    )
    return TeeVerdict(
        tee="sev-snp",
        verified=failed is None,
        failed_check=None if failed is None else failed.check,
        message="verified" if failed is None else str(failed),
        expected=None if failed is None else text_of(failed.expected),
        actual=None if failed is None else text_of(failed.actual),
        at=at,
        rests_on=rests_on,
        measurement=None if report is None else report.measurement,
        report_data=None if report is None else report.report_data,
        debug=None if report is None else report.debug,
        tcb_status=None,
        measurement_checked=failed is None and policy.expected_measurement is not None,
        fields={} if report is None else _fields(report, product),
        chain=()
        if chain is None
        else tuple(_sha256(c) for c in (chain.ark, chain.signer, chain.leaf)),
        warnings=(*warned, *_facts(report)),
        certificates=() if chain is None else _chain_facts(chain),
    )


@functools.lru_cache(maxsize=64)
def _chain_facts(chain: _Chain) -> tuple[ChainCertificate, ...]:
    # A pure function of the (cached) certificates: named once per chain, not per report.
    roles = chain_roles(3)
    certs = (chain.ark, chain.signer, chain.leaf)
    return tuple(
        ChainCertificate(role, c.subject.rfc4514_string(), *_validity(c), _sha256(c))
        for role, c in zip(roles, certs, strict=True)
    )


def verify_snp(
    data: bytes,
    policy: AttestationPolicy,
    *,
    at: dt.datetime,
    certificates: Sequence[bytes] = (),
    kds: KdsClient | None = None,
) -> TeeVerdict:
    """:func:`check_snp`, raising :class:`AttestationError` when a check failed."""
    verdict = check_snp(data, policy, at=at, certificates=certificates, kds=kds)
    if not verdict.verified:
        raise verdict.error()
    return verdict
